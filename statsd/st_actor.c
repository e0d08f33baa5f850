/*  st_actor - the statsd actor's context and lifetime.

    Sockets: the bus ROUTER and XPUB of proto_bus (statsd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND), and a SUB per peer kind: every gateway's
    request.done and upstream.failed, healthd's backend.state, and every
    actor's proc.stats. admin.request (GET /metrics, /api/v1/stats,
    /api/v1/stats/:vHost) is answered with admin.response, stats.get (apid,
    for the dashboard) with stats.reply. See statsd/README.md.
*/
#include <stdlib.h>
#include <string.h>

#include "proto_log.h"
#include "proto_util.h"
#include "st_actor.h"
#include "st_agg.h"
#include "st_render.h"
#include "st_reply.h"
#include "st_text.h"

struct st_actor {
    proto_actor_t *actor;       // loop, bus, signals
    st_agg_t *agg;              // the aggregates
    int64_t proc_interval_ms;   // PROC_STATS_INTERVAL: instances expire after 3 of them
    uint64_t batches;           // request.done batches taken
    uint64_t instances_dropped; // proc.stats dropped: instance table full
    uint64_t admin_requests;    // admin.request answered
    uint64_t stats_gets;        // stats.get answered
};

int
st_config_load(st_config_t *cfg, int argc, char **argv)
{
    return proto_actor_config("statsd", &cfg->common, NULL, 0, argc, argv);
}

void
st_config_free(st_config_t *cfg)
{
    proto_actor_config_free(&cfg->common, NULL, 0);
}

// --------------------------------------------------------------------------
// Events

//  The time a batch counts at: its envelope ts (the same for every statsd
//  instance), never later than our clock.
static uint64_t
s_batch_time(const proto_msg_t *msg)
{
    uint64_t now = proto_now_ms();
    return msg->ts == 0 || msg->ts > now ? now : msg->ts;
}

static void
s_on_request_done(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    st_actor_t *self = arg;
    const proto_request_done_t *done = &in->msg.request_done;
    uint64_t at = s_batch_time(&in->msg);
    self->batches++;
    for (uint32_t i = 0; i < done->items_count; i++)
        st_agg_request(self->agg, &done->items[i], at);
}

static void
s_on_upstream_failed(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    st_actor_t *self = arg;
    st_agg_failure(self->agg, in->msg.upstream_failed.backend);
}

static void
s_on_backend_state(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    st_actor_t *self = arg;
    const proto_backend_state_t *s = &in->msg.backend_state;
    st_agg_state(self->agg, s->route, s->backend, s->up);
}

static void
s_on_proc_stats(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    st_actor_t *self = arg;
    if (st_agg_proc(self->agg, &in->msg.proc_stats, proto_now_ms()) != 0) {
        self->instances_dropped++;
        log_warn("too many actor instances, proc.stats dropped",
                 LOG_S("kind", in->msg.proc_stats.kind),
                 LOG_S("instance", in->msg.proc_stats.instance));
    }
}

// --------------------------------------------------------------------------
// admin.request

//  Percent-decode src into dst (cap bytes). Returns 0, or -1 when malformed,
//  too long or holding a NUL.
static int
s_unescape(const char *src, char *dst, size_t cap)
{
    size_t n = 0;
    for (const char *p = src; *p; p++) {
        char c = *p;
        if (c == '%') {
            int hi = proto_hex_digit(p[1]), lo = hi >= 0 ? proto_hex_digit(p[2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = (char) (hi * 16 + lo);
            p += 2;
        }
        if (n + 1 >= cap)
            return -1;
        dst[n++] = c;
    }
    dst[n] = '\0';
    return 0;
}

static void
s_reply(st_actor_t *self,
        const proto_return_t *to,
        int status,
        const char *ctype,
        const char *allow,
        const st_text_t *body)
{
    proto_kv_t headers[3];
    uint32_t n = 0;
    headers[n++] = (proto_kv_t){"content-type", ctype};
    headers[n++] = (proto_kv_t){"cache-control", "no-store"};
    if (allow)
        headers[n++] = (proto_kv_t){"allow", allow};
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_RESPONSE);
    msg.admin_response.status = (uint16_t) status;
    msg.admin_response.headers = headers;
    msg.admin_response.headers_count = n;
    msg.admin_response.body =
        (proto_bin_t){(const uint8_t *) (body->data ? body->data : ""), body->len};
    if (proto_bus_reply(proto_actor_bus(self->actor), to, &msg) != 0)
        log_warn("cannot send admin.response", LOG_U("bytes", body->len));
}

static void
s_reply_error(st_actor_t *self,
              const proto_return_t *to,
              int status,
              const char *code,
              const char *message,
              const char *allow)
{
    st_text_t body = {0};
    st_text_printf(&body, "{\"error\":{\"code\":\"%s\",\"message\":", code);
    st_text_json(&body, message);
    st_text_puts(&body, ",\"field\":null}}");
    s_reply(self, to, status, "application/json", allow, &body);
    st_text_free(&body);
}

//  Our own figures: statsd does not hear its own XPUB.
static void
s_record_self(st_actor_t *self, uint64_t now)
{
    proto_counter_t counters[PROTO_PONG_COUNTERS_MAX];
    proto_msg_t msg;
    proto_bus_proc_stats(proto_actor_bus(self->actor), &msg, counters);
    (void) st_agg_proc(self->agg, &msg.proc_stats, now);
}

//  The instances as /metrics and stats.reply show them: ours recorded now,
//  those not heard from for 3 intervals forgotten.
static void
s_refresh_instances(st_actor_t *self, uint64_t now)
{
    s_record_self(self, now);
    st_agg_expire(self->agg, now, 3 * (uint64_t) self->proc_interval_ms);
}

static void
s_on_admin_request(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    st_actor_t *self = arg;
    const proto_admin_request_t *r = &in->msg.admin_request;
    const char *path = r->path;
    uint64_t now = proto_now_ms();
    self->admin_requests++;
    bool known = strcmp(path, "/metrics") == 0 || strcmp(path, "/api/v1/stats") == 0
                 || proto_starts_with(path, "/api/v1/stats/");
    if (!known) {
        s_reply_error(self, &in->ret, 404, "not_found", "no such path", NULL);
        return;
    }
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        s_reply_error(self, &in->ret, 405, "method_not_allowed", "only GET is allowed",
                      "GET, HEAD");
        return;
    }
    st_text_t body = {0};
    if (strcmp(path, "/metrics") == 0) {
        s_refresh_instances(self, now);
        st_render_metrics(self->agg, now, &body);
        s_reply(self, &in->ret, 200, ST_RENDER_CONTENT_TYPE, NULL, &body);
    } else if (strcmp(path, "/api/v1/stats") == 0) {
        st_render_stats(self->agg, NULL, now, &body);
        s_reply(self, &in->ret, 200, "application/json", NULL, &body);
    } else {
        char vhost[PROTO_REQINFO_VHOST_MAX + 1];
        if (s_unescape(path + strlen("/api/v1/stats/"), vhost, sizeof vhost) != 0
            || st_render_stats(self->agg, vhost, now, &body) != 0)
            s_reply_error(self, &in->ret, 404, "not_found", "no stats for this vHost", NULL);
        else
            s_reply(self, &in->ret, 200, "application/json", NULL, &body);
    }
    st_text_free(&body);
}

// --------------------------------------------------------------------------
// stats.get

static void
s_on_stats_get(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    st_actor_t *self = arg;
    uint64_t now = proto_now_ms();
    self->stats_gets++;
    s_refresh_instances(self, now);
    st_reply_t reply;
    st_reply_stats(self->agg, in->msg.stats_get.routes_max, now, &reply);
    if (proto_bus_reply(bus, &in->ret, &reply.msg) != 0)
        log_warn("cannot send stats.reply", LOG_S("rid", in->ret.rid));
}

// --------------------------------------------------------------------------
// Lifetime

st_actor_t *
st_actor_new(const st_config_t *cfg)
{
    char err[512];
    st_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->proc_interval_ms = cfg->common.proc_stats_interval_ms;
    self->agg = st_agg_new(proto_now_ms());
    self->actor = proto_actor_new("statsd", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    static const char *const gateway_topics[] = {"request.done", "upstream.failed", "proc.stats",
                                                 NULL};
    static const char *const healthd_topics[] = {"backend.state", "proc.stats", NULL};
    static const char *const other_topics[] = {"proc.stats", NULL};
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        const char *const *topics = k == PROTO_KIND_GATEWAY   ? gateway_topics
                                    : k == PROTO_KIND_HEALTHD ? healthd_topics
                                                              : other_topics;
        if (proto_actor_use(self->actor, k, false, topics) != 0)
            goto fail;
    }
    proto_bus_t *bus = proto_actor_bus(self->actor);
    proto_bus_on(bus, PROTO_REQUEST_DONE, s_on_request_done, self);
    proto_bus_on(bus, PROTO_UPSTREAM_FAILED, s_on_upstream_failed, self);
    proto_bus_on(bus, PROTO_BACKEND_STATE, s_on_backend_state, self);
    proto_bus_on(bus, PROTO_PROC_STATS, s_on_proc_stats, self);
    proto_bus_on(bus, PROTO_ADMIN_REQUEST, s_on_admin_request, self);
    proto_bus_on(bus, PROTO_STATS_GET, s_on_stats_get, self);
    if (proto_bus_counter(bus, "stats.requests", &st_agg_total(self->agg)->requests) != 0
        || proto_bus_counter(bus, "stats.batches", &self->batches) != 0
        || proto_bus_counter(bus, "stats.folded", st_agg_folded(self->agg)) != 0
        || proto_bus_counter(bus, "stats.instances.dropped", &self->instances_dropped) != 0
        || proto_bus_counter(bus, "admin.requests", &self->admin_requests) != 0
        || proto_bus_counter(bus, "stats.gets", &self->stats_gets) != 0) {
        log_error("cannot register the counters");
        goto fail;
    }
    return self;
fail:
    st_actor_destroy(&self);
    return NULL;
}

int
st_actor_run(st_actor_t *self)
{
    return proto_actor_run(self->actor);
}

void
st_actor_destroy(st_actor_t **self_p)
{
    st_actor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_actor_destroy(&self->actor);
    st_agg_destroy(&self->agg);
    free(self);
    *self_p = NULL;
}
