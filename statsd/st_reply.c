/*  st_reply - the stats.reply of statsd's aggregates. */
#include <stdlib.h>
#include <string.h>

#include "st_reply.h"

//  A vHost series with its rate at the reply's time, for the ordering.
typedef struct {
    const st_vhost_t *vhost; // the series
    double rps;              // its requests per second over the last minute
} s_ranked_t;

//  Busiest first: rps, then requests, descending; then name.
static int
s_cmp_busiest(const void *a, const void *b)
{
    const s_ranked_t *x = a, *y = b;
    if (x->rps != y->rps)
        return x->rps < y->rps ? 1 : -1;
    if (x->vhost->s.requests != y->vhost->s.requests)
        return x->vhost->s.requests < y->vhost->s.requests ? 1 : -1;
    return strcmp(x->vhost->name, y->vhost->name);
}

static uint32_t
s_routes(const st_agg_t *agg, uint32_t routes_max, uint64_t now_ms, proto_routestat_t *routes)
{
    const st_vhost_t *vh[ST_AGG_MAX_VHOSTS + 1];
    s_ranked_t ranked[ST_AGG_MAX_VHOSTS + 1];
    unsigned n = st_agg_vhosts(agg, vh);
    for (unsigned i = 0; i < n; i++)
        ranked[i] = (s_ranked_t){vh[i], st_rate_per_second(&vh[i]->s.rate, now_ms)};
    qsort(ranked, n, sizeof *ranked, s_cmp_busiest);
    uint32_t max = PROTO_STATS_REPLY_ROUTES_MAX;
    if (routes_max > 0 && routes_max < max)
        max = routes_max;
    uint32_t count = n < max ? n : max;
    for (uint32_t i = 0; i < count; i++) {
        const st_series_t *s = &ranked[i].vhost->s;
        st_latency_summary_t lat;
        st_latency_summary(&s->latency, now_ms, &lat);
        routes[i] = (proto_routestat_t){
            .vhost = ranked[i].vhost->name,
            .requests = s->requests,
            .errors_4xx = s->errors_4xx,
            .errors_5xx = s->errors_5xx,
            .rps = ranked[i].rps,
            .p50_ms = lat.p50_ms,
            .p99_ms = lat.p99_ms,
        };
    }
    return count;
}

static uint32_t
s_procs(const st_agg_t *agg, proto_procstat_t *procs)
{
    const st_instance_t *in[ST_AGG_MAX_INSTANCES + 1];
    unsigned n = st_agg_instances(agg, in);
    uint32_t count = n < PROTO_STATS_REPLY_PROCS_MAX ? n : PROTO_STATS_REPLY_PROCS_MAX;
    for (uint32_t i = 0; i < count; i++)
        procs[i] = (proto_procstat_t){
            .kind = in[i]->kind,
            .instance = in[i]->instance,
            .pid = in[i]->pid,
            .cpu_seconds = in[i]->cpu_seconds,
            .rss_bytes = in[i]->rss_bytes,
            .open_fds = in[i]->open_fds,
            .seen_ms = in[i]->seen_ms,
        };
    return count;
}

void
st_reply_stats(const st_agg_t *agg, uint32_t routes_max, uint64_t now_ms, st_reply_t *out)
{
    proto_msg_init(&out->msg, PROTO_STATS_REPLY);
    proto_stats_reply_t *r = &out->msg.stats_reply;
    const st_series_t *total = st_agg_total(agg);
    r->now_ms = now_ms;
    r->since_ms = st_agg_since(agg);
    r->requests = total->requests;
    r->rps = st_rate_per_second(&total->rate, now_ms);
    st_chat_t chat;
    st_agg_chat(agg, &chat);
    r->chat_sessions = chat.sessions;
    r->chat_messages = chat.messages;
    r->ws_connections = chat.ws_connections;
    r->routes = out->routes;
    r->routes_count = s_routes(agg, routes_max, now_ms, out->routes);
    r->procs = out->procs;
    r->procs_count = s_procs(agg, out->procs);
}
