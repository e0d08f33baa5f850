# chatd/ - the chatd actor.
PROGRAMS += chatd
chatd_SRCS := chatd/main.c chatd/chat_actor.c chatd/chat_frame.c chatd/chat_redis.c \
        chatd/chat_keys.c chatd/chat_hub.c
chatd_LIBS := -ljansson -lhiredis
