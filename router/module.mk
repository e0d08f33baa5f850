# router/ - the router actor.
PROGRAMS += router
router_SRCS := router/main.c router/rt_actor.c router/rt_decide.c router/rt_control.c router/rt_change.c router/rt_query.c \
        router/rt_store.c router/rt_table.c router/rt_route.c router/rt_history.c router/rt_pg.c \
        router/rt_edge.c router/rt_policy.c
router_LIBS := -ljansson -lpq -lcrypto
