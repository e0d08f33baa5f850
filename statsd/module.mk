# statsd/ - the statsd actor.
PROGRAMS += statsd
statsd_SRCS := statsd/main.c statsd/st_actor.c
statsd_LIBS :=
