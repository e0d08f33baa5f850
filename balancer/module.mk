# balancer/ - the balancer actor.
PROGRAMS += balancer
balancer_SRCS := balancer/main.c balancer/bal_actor.c
balancer_LIBS :=
