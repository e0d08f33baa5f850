# tests/ - unit tests (cmocka) and integration tests of each actor binary.
UNIT_TESTS += tests/protocol/test_proto tests/protocol/test_log tests/protocol/test_config \
        tests/protocol/test_disc tests/protocol/test_zwatch tests/protocol/test_url \
        tests/protocol/test_route_model tests/protocol/test_resolve
UNIT_TESTS += tests/protocol/test_bus tests/protocol/test_util tests/protocol/test_slab tests/protocol/test_pairs tests/protocol/test_hold
UNIT_TESTS += tests/protocol/test_curve
tests/protocol/test_curve_SRCS := tests/lib/t_loop.c
tests/protocol/test_resolve_SRCS := tests/lib/t_dns.c tests/lib/t_loop.c
UNIT_TESTS += tests/chatd/test_frame
tests/chatd/test_frame_SRCS := chatd/chat_frame.c
tests/chatd/test_frame_LIBS := -ljansson
UNIT_TESTS += tests/chatd/test_keys
tests/chatd/test_keys_SRCS := chatd/chat_keys.c
UNIT_TESTS += tests/chatd/test_redis
tests/chatd/test_redis_SRCS := chatd/chat_redis.c tests/lib/t_loop.c tests/lib/t_redis.c
tests/chatd/test_redis_LIBS := -lhiredis
IT_TESTS += tests/gateway/it_gateway tests/router/it_router tests/balancer/it_balancer \
        tests/healthd/it_healthd tests/statsd/it_statsd tests/chatd/it_chatd tests/apid/it_apid \
        tests/bus/it_discovery tests/bus/it_curve
TEST_LIB_SRCS := tests/lib/it.c tests/lib/it_actor.c
tests/chatd/it_chatd_SRCS := tests/lib/t_redis.c
tests/chatd/it_chatd_LIBS := -lhiredis
# tests that are scripts (run as they are, beside the unit tests)
SCRIPT_TESTS += tests/build/test_make_parse.sh
