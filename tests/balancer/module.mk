# tests/balancer/ - unit tests of the balancer's modules and of the shared strategies
# (proto_strategy is in libproto.a; the balancer's modules are linked in per test).
UNIT_TESTS += tests/protocol/test_strategy tests/balancer/test_lease tests/balancer/test_lru
tests/balancer/test_lease_SRCS := balancer/bal_lease.c balancer/bal_health.c balancer/bal_state.c \
        balancer/bal_latency.c balancer/bal_lru.c
tests/balancer/test_lru_SRCS := balancer/bal_health.c balancer/bal_latency.c balancer/bal_lru.c
# the balancer's headers, for its unit tests only
$(ASAN)/obj/tests/balancer/%.o: CPPFLAGS_ALL += -Ibalancer
