# tests/router/ - unit tests of the router's modules (it_router is in tests/module.mk).
UNIT_TESTS += tests/router/test_table tests/router/test_route tests/router/test_store \
        tests/router/test_control
tests/router/test_table_SRCS := router/rt_table.c router/rt_route.c router/rt_policy.c
tests/router/test_table_LIBS := -ljansson -lcrypto
tests/router/test_route_SRCS := router/rt_route.c router/rt_policy.c
tests/router/test_route_LIBS := -ljansson -lcrypto
tests/router/test_store_SRCS := router/rt_store.c router/rt_table.c router/rt_route.c router/rt_policy.c
tests/router/test_store_LIBS := -ljansson -lcrypto
tests/router/test_control_SRCS := router/rt_control.c router/rt_change.c router/rt_query.c router/rt_store.c router/rt_table.c router/rt_history.c \
        router/rt_route.c router/rt_policy.c
tests/router/test_control_LIBS := -ljansson -lcrypto
tests/router/it_router_LIBS := -ljansson
UNIT_TESTS += tests/router/test_history
tests/router/test_history_SRCS := router/rt_history.c
tests/router/test_history_LIBS := -ljansson
UNIT_TESTS += tests/router/test_versions
tests/router/test_versions_SRCS := router/rt_control.c router/rt_change.c router/rt_query.c router/rt_store.c router/rt_table.c \
        router/rt_route.c router/rt_policy.c router/rt_history.c
tests/router/test_versions_LIBS := -ljansson -lcrypto
UNIT_TESTS += tests/router/test_edge
tests/router/test_edge_SRCS := router/rt_edge.c router/rt_route.c router/rt_policy.c router/rt_table.c
tests/router/test_edge_LIBS := -ljansson -lcrypto
