# router/ - the router actor.
PROGRAMS += router
router_SRCS := router/main.c router/rt_actor.c
router_LIBS :=
