# bench/ - the chat load generator `chat-load` of `make bench` (bench/README.md):
# libev, wslay's client API for the framing, jansson, OpenSSL for the handshake.
# Not an actor: no bus, no libproto.
PROGRAMS += chat-load
chat-load_SRCS := bench/chat_load.c
chat-load_LIBS := -Wl,--as-needed -lwslay -ljansson -lcrypto
