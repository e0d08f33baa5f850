# tests/statsd/ - unit tests of statsd's modules, and the strict exposition
# parser its unit and integration tests share.
UNIT_TESTS += tests/statsd/test_stats
tests/statsd/test_stats_SRCS := statsd/st_agg.c statsd/st_hist.c statsd/st_render.c \
        statsd/st_reply.c statsd/st_text.c tests/statsd/t_expo.c
tests/statsd/it_statsd_SRCS := tests/statsd/t_expo.c
# statsd's headers and the parser's, for these tests only
$(ASAN)/obj/tests/statsd/%.o: CPPFLAGS_ALL += -Istatsd -Itests/statsd
