# healthd/ - the healthd actor.
PROGRAMS += healthd
healthd_SRCS := healthd/main.c healthd/hd_actor.c
healthd_LIBS :=
