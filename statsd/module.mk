# statsd/ - the statsd actor.
PROGRAMS += statsd
statsd_SRCS := statsd/main.c statsd/st_actor.c statsd/st_agg.c statsd/st_hist.c \
        statsd/st_render.c statsd/st_reply.c statsd/st_text.c
statsd_LIBS :=
