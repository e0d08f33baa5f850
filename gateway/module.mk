# gateway/ - the gateway actor.
PROGRAMS += gateway
gateway_SRCS := gateway/main.c gateway/gw_actor.c
gateway_LIBS :=
