# healthd/ - the healthd actor.
PROGRAMS += healthd
healthd_SRCS := healthd/main.c healthd/hd_actor.c healthd/hd_fsm.c healthd/hd_probe.c \
        healthd/hd_sched.c healthd/hd_specs.c
healthd_LIBS := -ljansson
