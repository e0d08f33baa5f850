# balancer/ - the balancer actor.
PROGRAMS += balancer
balancer_SRCS := balancer/main.c balancer/bal_actor.c balancer/bal_lease.c balancer/bal_health.c \
        balancer/bal_state.c balancer/bal_latency.c balancer/bal_lru.c
balancer_LIBS :=
