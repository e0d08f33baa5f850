# tests/gateway/ - unit tests of the gateway's modules (integration tests: tests/module.mk).
UNIT_TESTS += tests/gateway/test_prescan
tests/gateway/test_prescan_SRCS := gateway/gw_prescan.c
UNIT_TESTS += tests/gateway/test_lease
tests/gateway/test_lease_SRCS := gateway/gw_lease.c tests/lib/it.c
UNIT_TESTS += tests/gateway/test_chunk
tests/gateway/test_chunk_SRCS := gateway/gw_chunk.c
UNIT_TESTS += tests/gateway/test_http
tests/gateway/test_http_SRCS := gateway/gw_http.c
UNIT_TESTS += tests/gateway/test_head
tests/gateway/test_head_SRCS := gateway/gw_head.c gateway/gw_http.c gateway/gw_buf.c
UNIT_TESTS += tests/gateway/test_queue
tests/gateway/test_queue_SRCS := gateway/gw_queue.c
UNIT_TESTS += tests/gateway/test_dns
tests/gateway/test_dns_SRCS := gateway/gw_dns.c tests/lib/t_dns.c tests/lib/t_loop.c
UNIT_TESTS += tests/gateway/test_splice
tests/gateway/test_splice_SRCS := gateway/gw_splice.c
