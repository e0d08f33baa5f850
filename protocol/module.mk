# protocol/ - libproto.a: the bus messages, codec, watcher, logging, config,
# discovery and the actor runtime every actor links.
PROTO_SRCS += protocol/proto.c protocol/proto_desc.c protocol/proto_mp.c protocol/proto_util.c \
        protocol/proto_zwatch.c protocol/proto_log.c protocol/proto_config.c \
        protocol/proto_disc.c protocol/proto_proc.c protocol/proto_bus.c protocol/proto_actor.c protocol/proto_monitor.c
PROTO_SPEC_SRCS := protocol/proto_spec.c
PROTO_SRCS += protocol/proto_strategy.c protocol/proto_route.c
PROTO_SRCS += protocol/proto_url.c protocol/proto_resolve.c
PROTO_SRCS += protocol/proto_census.c protocol/proto_slab.c protocol/proto_pairs.c protocol/proto_hold.c
PROTO_SRCS += protocol/proto_curve.c
