# tests/healthd/ - unit tests of healthd's modules (the integration test: tests/module.mk).
UNIT_TESTS += tests/healthd/test_health
tests/healthd/test_health_SRCS := healthd/hd_fsm.c healthd/hd_probe.c healthd/hd_sched.c \
        healthd/hd_specs.c
tests/healthd/test_health_LIBS := -ljansson
# healthd's headers, for these tests only
$(ASAN)/obj/tests/healthd/%.o: CPPFLAGS_ALL += -Ihealthd
