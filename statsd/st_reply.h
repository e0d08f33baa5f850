/*  st_reply - statsd's stats.reply (the dashboard's stats and actors events,
    docs/dashboard.md): the figures /api/v1/stats, /api/v1/stats/:vHost and
    /metrics give, computed by the same functions, as one bus message.

    routes: every vHost series (st_agg_vhosts: "(other)" and "" included),
    busiest first (rps over the last minute, then requests since the start,
    then name, so equal figures give equal replies), at most routes_max when
    it is > 0 and at most PROTO_STATS_REPLY_ROUTES_MAX; p50/p99 as
    /api/v1/stats/:vHost's latencyMs. procs: every tracked instance
    (st_agg_instances, by kind then instance). Chat: st_agg_chat, as /metrics.
*/
#ifndef ST_REPLY_H
#define ST_REPLY_H

#include <stdint.h>

#include "proto.h"
#include "st_agg.h"

//  A stats.reply and the records its lists point to.
typedef struct {
    proto_msg_t msg;                                        // the stats.reply
    proto_routestat_t routes[PROTO_STATS_REPLY_ROUTES_MAX]; // msg's routes
    proto_procstat_t procs[PROTO_STATS_REPLY_PROCS_MAX];    // msg's procs
} st_reply_t;

//  Fill out->msg with the stats.reply to a stats.get asking for routes_max
//  vHosts (0: every one), at now_ms (ms since the epoch). Strings are
//  borrowed from agg: send the message before the next st_agg call.
void st_reply_stats(const st_agg_t *agg, uint32_t routes_max, uint64_t now_ms, st_reply_t *out);

#endif
