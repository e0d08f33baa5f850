/*  api_events - the event stream's source side (see api_events.h and
    docs/dashboard.md).

    Kept: the last API_EVENTS_KEEP numbered events (a ring indexed by
    seq % KEEP), the gateways holding streams of ours and how many, the last
    state seen per (route, backend) to drop repeats (healthd says every
    verdict again when it restarts; two healthd say each change twice), and
    each instance's CPU time from the previous stats.reply to turn it into
    cores used.
*/
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_pairs.h"
#include "proto_util.h"
#include "api_events.h"
#include "api_http.h"

#define S_PATH          "/api/v1/events"
#define S_STATS_WAIT_MS 900  // a stats.get unanswered by then is dropped
#define S_RETRY_MS      2000 // the client's reconnect delay (SSE retry:)
#define S_PROCS_MAX     PROTO_STATS_REPLY_PROCS_MAX

typedef struct {
    char name[PROTO_BUS_NAME_MAX + 1]; // the gateway's INSTANCE_ID
    uint32_t streams;                  // streams it holds of ours
    uint32_t subs;                     // its subscriptions to its events.push address
} s_gw_t;

typedef struct {
    uint64_t seq; // 0: empty
    char *text;   // the event's SSE text
    size_t len;   // its bytes
} s_kept_t;

typedef struct {
    char kind[PROTO_PROCSTAT_KIND_MAX + 1];         // actor kind
    char instance[PROTO_PROCSTAT_INSTANCE_MAX + 1]; // INSTANCE_ID
    double cpu_seconds;                             // at seen_ms
    uint64_t seen_ms;                               // statsd's last proc.stats of it
    double cpu;                                     // cores used between the last two samples
    bool has_cpu;                                   // two samples seen
    uint64_t rss_bytes;                             // last resident set
    bool fresh;                                     // in the last stats.reply
} s_proc_t;

enum { S_ALIVE = 1, S_DEAD, S_MAINT };
static const char *const s_state_names[] = {"", "alive", "dead", "maintenance"};

struct api_events {
    struct ev_loop *loop;
    proto_bus_t *bus;
    api_health_t *health;
    char instance[PROTO_BUS_NAME_MAX + 1];
    char epoch[PROTO_BUS_NAME_MAX + 24]; // "<instance>.<start ms, hex>": one run's ids
    char topic[PROTO_BUS_NAME_MAX + 32]; // events.close@<instance>;
    s_kept_t kept[API_EVENTS_KEEP];      // ring by seq
    uint64_t seq;                        // last event number given
    uint64_t config_version;             // last config version told
    s_gw_t gws[API_EVENTS_GATEWAYS];     // gateways seen (name "" = free)
    proto_pairs_t *states;               // (route, backend) -> last state told (uint8_t)
    s_proc_t procs[S_PROCS_MAX];         // from stats.reply
    size_t nprocs;
    ev_timer stats_timer;  // 1 s while a stream is open
    ev_timer actors_timer; // 5 s while a stream is open
    ev_timer beat_timer;   // 15 s while a stream is open
    uint64_t stats_id;     // stats.get in flight (0: none)
    bool census_running;   // a census round in flight
    bool census_again;     // a new stream came during it: another round after
    // counters (pong)
    uint64_t streams;       // open now, all gateways
    uint64_t opened;        // streams started
    uint64_t pushed;        // events.push published
    uint64_t push_failed;   // ... that the bus refused
    uint64_t replayed;      // events sent again for a Last-Event-ID
    uint64_t resets;        // Last-Event-IDs that could not be replayed
    uint64_t refused;       // stream requests refused (table full, not from a gateway)
    uint64_t stats_missing; // stats.get without an answer in time
};

// --------------------------------------------------------------------------
// Gateways and their streams

static s_gw_t *
s_gw(api_events_t *self, const char *name, bool create)
{
    s_gw_t *free_slot = NULL;
    for (size_t i = 0; i < API_EVENTS_GATEWAYS; i++) {
        s_gw_t *g = &self->gws[i];
        if (g->name[0] == '\0') {
            if (free_slot == NULL)
                free_slot = g;
        } else if (strcmp(g->name, name) == 0) {
            return g;
        }
    }
    if (!create || free_slot == NULL)
        return NULL;
    proto_strlcpy(free_slot->name, name, sizeof free_slot->name);
    return free_slot;
}

static void
s_timers(api_events_t *self)
{
    if (self->streams > 0 && !ev_is_active(&self->stats_timer)) {
        ev_timer_again(self->loop, &self->stats_timer);
        ev_timer_again(self->loop, &self->actors_timer);
        ev_timer_again(self->loop, &self->beat_timer);
    } else if (self->streams == 0) {
        ev_timer_stop(self->loop, &self->stats_timer);
        ev_timer_stop(self->loop, &self->actors_timer);
        ev_timer_stop(self->loop, &self->beat_timer);
    }
}

static void
s_set_streams(api_events_t *self, s_gw_t *g, uint32_t streams)
{
    self->streams = self->streams - g->streams + streams;
    g->streams = streams;
    if (streams == 0 && g->subs == 0)
        g->name[0] = '\0';
    s_timers(self);
}

//  A gateway subscribed to its events.push address on our XPUB, or went.
static void
s_on_subscriber(proto_bus_t *bus, const char *instance, bool subscribed, void *arg)
{
    (void) bus;
    api_events_t *self = arg;
    s_gw_t *g = s_gw(self, instance, subscribed);
    if (g == NULL)
        return;
    if (subscribed) {
        g->subs++;
        return;
    }
    if (g->subs > 0)
        g->subs--;
    if (g->subs > 0)
        return;
    if (g->streams > 0)
        log_info("a gateway holding event streams went", LOG_S("gateway", instance),
                 LOG_U("streams", g->streams));
    s_set_streams(self, g, 0); // frees the slot (a gateway that never held one too)
}

//  The gateway's name from a message's src ("gateway/<instance>"), or NULL.
static const char *
s_gateway_of(const char *src)
{
    if (src == NULL || !proto_starts_with(src, "gateway/") || src[8] == '\0')
        return NULL;
    return src + 8;
}

static void
s_on_close(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    api_events_t *self = arg;
    const char *name = s_gateway_of(in->msg.src);
    s_gw_t *g = name ? s_gw(self, name, false) : NULL;
    if (g == NULL)
        return;
    const proto_events_close_t *c = &in->msg.events_close;
    uint32_t left = c->all || c->streams >= g->streams ? 0 : g->streams - c->streams;
    s_set_streams(self, g, left);
}

// --------------------------------------------------------------------------
// Publishing

static void
s_push(api_events_t *self, uint64_t seq, const char *text, size_t len)
{
    if (self->streams == 0)
        return;
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_EVENTS_PUSH);
    msg.events_push.seq = seq;
    msg.events_push.data = (proto_bin_t){(const uint8_t *) text, len};
    for (size_t i = 0; i < API_EVENTS_GATEWAYS; i++) {
        const s_gw_t *g = &self->gws[i];
        if (g->name[0] == '\0' || g->streams == 0)
            continue;
        if (proto_bus_publish_to(self->bus, &msg, g->name) == 0)
            self->pushed++;
        else
            self->push_failed++;
    }
}

//  The SSE text of an event: "id: <epoch>:<seq>" when numbered, event, the
//  JSON on one data line (compact JSON has no line break). Takes data.
static char *
s_text(const api_events_t *self, uint64_t seq, const char *event, json_t *data, size_t *len)
{
    char *json = json_dumps(data, JSON_COMPACT | JSON_REAL_PRECISION(6));
    json_decref(data);
    if (json == NULL)
        return NULL;
    size_t cap = strlen(json) + strlen(event) + sizeof self->epoch + 64;
    char *text = proto_xmalloc(cap);
    int n = seq ? snprintf(text, cap, "id: %s:%" PRIu64 "\nevent: %s\ndata: %s\n\n", self->epoch,
                           seq, event, json)
                : snprintf(text, cap, "event: %s\ndata: %s\n\n", event, json);
    free(json);
    *len = (size_t) n;
    return text;
}

//  A numbered event: kept for replay, then published. Takes data.
static void
s_emit_kept(api_events_t *self, const char *event, json_t *data)
{
    size_t len;
    char *text = s_text(self, self->seq + 1, event, data, &len);
    if (text == NULL)
        return;
    if (len > API_EVENTS_TEXT_MAX) {
        log_warn("event too long: dropped", LOG_S("event", event), LOG_U("bytes", len));
        free(text);
        return;
    }
    uint64_t seq = ++self->seq;
    s_kept_t *k = &self->kept[seq % API_EVENTS_KEEP];
    free(k->text);
    *k = (s_kept_t){seq, text, len};
    s_push(self, seq, text, len);
}

//  An event without id (stats, actors). Takes data.
static void
s_emit(api_events_t *self, const char *event, json_t *data)
{
    size_t len;
    char *text = s_text(self, 0, event, data, &len);
    if (text == NULL)
        return;
    s_push(self, 0, text, len);
    free(text);
}

// --------------------------------------------------------------------------
// config and backend events

static void
s_on_config_changed(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    api_events_t *self = arg;
    const proto_config_changed_t *c = &in->msg.config_changed;
    // every router says a change (the one that made it, the others on
    // reload): one event per version
    if (c->version <= self->config_version)
        return;
    self->config_version = c->version;
    char at[40];
    proto_iso8601_ms(proto_now_ms(), at, sizeof at);
    json_t *o = json_pack("{s:I, s:s, s:s, s:s}", "version", (json_int_t) c->version, "what",
                          c->what ? c->what : "", "key", c->key ? c->key : "", "at", at);
    if (c->by && *c->by)
        json_object_set_new(o, "by", json_string(c->by));
    if (c->summary && *c->summary)
        json_object_set_new(o, "summary", json_string(c->summary));
    s_emit_kept(self, "config", o);
}

//  Remember (route, backend)'s state; true when it differs from the last
//  one remembered (or cannot be remembered: the map is full).
static bool
s_state_changed(api_events_t *self, const char *route, const char *backend, uint8_t state)
{
    bool created;
    uint8_t *last = proto_pairs_put(self->states, route, backend, &created);
    if (last == NULL)
        return true;
    bool changed = created || *last != state;
    *last = state;
    return changed;
}

static void
s_on_backend_state(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    api_events_t *self = arg;
    const proto_backend_state_t *b = &in->msg.backend_state;
    const char *reason = b->reason ? b->reason : "";
    uint8_t state = b->up ? S_ALIVE : strcmp(reason, "maintenance") == 0 ? S_MAINT : S_DEAD;
    if (!s_state_changed(self, b->route, b->backend, state))
        return;
    json_t *o =
        json_pack("{s:s, s:s, s:s, s:s, s:i}", "route", b->route, "backend", b->backend, "state",
                  s_state_names[state], "reason", reason, "failures", (int) b->failures);
    if (b->since_ms) {
        char since[40];
        proto_iso8601_ms(b->since_ms, since, sizeof since);
        json_object_set_new(o, "since", json_string(since));
    }
    s_emit_kept(self, "backend", o);
}

// --------------------------------------------------------------------------
// stats (statsd) and actors (census)

static s_proc_t *
s_proc(api_events_t *self, const char *kind, const char *instance, bool create)
{
    for (size_t i = 0; i < self->nprocs; i++)
        if (strcmp(self->procs[i].instance, instance) == 0
            && strcmp(self->procs[i].kind, kind) == 0)
            return &self->procs[i];
    if (!create || self->nprocs == S_PROCS_MAX)
        return NULL;
    s_proc_t *p = &self->procs[self->nprocs++];
    memset(p, 0, sizeof *p);
    proto_strlcpy(p->kind, kind, sizeof p->kind);
    proto_strlcpy(p->instance, instance, sizeof p->instance);
    return p;
}

static void
s_take_procs(api_events_t *self, const proto_stats_reply_t *r)
{
    for (size_t i = 0; i < self->nprocs; i++)
        self->procs[i].fresh = false;
    for (uint32_t i = 0; i < r->procs_count; i++) {
        const proto_procstat_t *ps = &r->procs[i];
        s_proc_t *p = s_proc(self, ps->kind, ps->instance, true);
        if (p == NULL)
            break;
        if (p->seen_ms && ps->seen_ms > p->seen_ms && ps->cpu_seconds >= p->cpu_seconds) {
            p->cpu =
                (ps->cpu_seconds - p->cpu_seconds) * 1000.0 / (double) (ps->seen_ms - p->seen_ms);
            p->has_cpu = true;
        }
        if (ps->seen_ms != p->seen_ms) {
            p->cpu_seconds = ps->cpu_seconds;
            p->seen_ms = ps->seen_ms;
        }
        p->rss_bytes = ps->rss_bytes;
        p->fresh = true;
    }
    // instances statsd no longer reports are forgotten
    size_t w = 0;
    for (size_t i = 0; i < self->nprocs; i++)
        if (self->procs[i].fresh)
            self->procs[w++] = self->procs[i];
    self->nprocs = w;
}

static double
s_round3(double v)
{
    return (double) (int64_t) (v * 1000.0 + 0.5) / 1000.0;
}

static void
s_on_stats(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    api_events_t *self = arg;
    self->stats_id = 0;
    if (in == NULL || in->msg.type != PROTO_STATS_REPLY) {
        self->stats_missing++;
        return;
    }
    const proto_stats_reply_t *r = &in->msg.stats_reply;
    s_take_procs(self, r);
    json_t *routes = json_array();
    for (uint32_t i = 0; i < r->routes_count; i++) {
        const proto_routestat_t *s = &r->routes[i];
        json_array_append_new(
            routes, json_pack("{s:s, s:I, s:f, s:f, s:f, s:{s:I, s:I}}", "vHost", s->vhost,
                              "requests", (json_int_t) s->requests, "rps", s_round3(s->rps), "p50",
                              s_round3(s->p50_ms), "p99", s_round3(s->p99_ms), "errors", "4xx",
                              (json_int_t) s->errors_4xx, "5xx", (json_int_t) s->errors_5xx));
    }
    json_t *o =
        json_pack("{s:I, s:I, s:f, s:o, s:{s:I, s:I, s:I}}", "at", (json_int_t) r->now_ms,
                  "requests", (json_int_t) r->requests, "rps", s_round3(r->rps), "routes", routes,
                  "chat", "sessions", (json_int_t) r->chat_sessions, "messages",
                  (json_int_t) r->chat_messages, "wsConnections", (json_int_t) r->ws_connections);
    s_emit(self, "stats", o);
}

static void
s_ask_stats(api_events_t *self)
{
    if (self->stats_id)
        return; // the last one is still out (bounded by its deadline)
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_STATS_GET);
    if (proto_bus_try_request(self->bus, PROTO_KIND_STATSD, &msg, S_STATS_WAIT_MS, s_on_stats, self)
        == 0)
        self->stats_id = msg.id;
    else
        self->stats_missing++;
}

static void
s_on_round(void *arg, const proto_census_entry_t *entries, size_t n)
{
    api_events_t *self = arg;
    self->census_running = false;
    json_t *list = json_array();
    json_t *me = api_health_self(self->health);
    const s_proc_t *mine = s_proc(self, "apid", self->instance, false);
    if (mine && mine->has_cpu)
        json_object_set_new(me, "cpu", json_real(s_round3(mine->cpu)));
    if (mine)
        json_object_set_new(me, "rssBytes", json_integer((json_int_t) mine->rss_bytes));
    json_array_append_new(list, me);
    for (size_t i = 0; i < n; i++) {
        const proto_census_entry_t *e = &entries[i];
        json_t *o = api_health_instance(e, false);
        if (e->answered && e->pong.pong.instance) {
            const s_proc_t *p =
                s_proc(self, proto_kind_name(e->kind), e->pong.pong.instance, false);
            if (p && p->has_cpu)
                json_object_set_new(o, "cpu", json_real(s_round3(p->cpu)));
            if (p)
                json_object_set_new(o, "rssBytes", json_integer((json_int_t) p->rss_bytes));
        }
        json_array_append_new(list, o);
    }
    if (self->streams > 0)
        s_emit(self, "actors",
               json_pack("{s:I, s:o}", "at", (json_int_t) proto_now_ms(), "instances", list));
    else
        json_decref(list);
    if (self->census_again) {
        self->census_again = false;
        self->census_running = true;
        proto_census_round(api_health_census(self->health), API_HEALTH_TIMEOUT_MS, s_on_round,
                           self);
    }
}

static void
s_ask_actors(api_events_t *self)
{
    if (self->census_running) {
        self->census_again = true;
        return;
    }
    self->census_running = true;
    proto_census_round(api_health_census(self->health), API_HEALTH_TIMEOUT_MS, s_on_round, self);
}

static void
s_on_stats_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_ask_stats(w->data);
}

static void
s_on_actors_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_ask_actors(w->data);
}

static void
s_on_beat_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_push(w->data, 0, PROTO_LIT(": heartbeat\n\n"));
}

// --------------------------------------------------------------------------
// A stream's start

static int
s_answer(api_events_t *self,
         const proto_return_t *ret,
         uint16_t status,
         const char *body,
         size_t len,
         const proto_kv_t *headers,
         uint32_t nheaders)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_RESPONSE);
    msg.admin_response.status = status;
    msg.admin_response.headers = (proto_kv_t *) headers;
    msg.admin_response.headers_count = nheaders;
    if (body)
        msg.admin_response.body = (proto_bin_t){(const uint8_t *) body, len};
    int rc = proto_bus_reply(self->bus, ret, &msg);
    if (rc != 0)
        log_warn("admin.response not sent", LOG_S("request_id", ret->rid), LOG_I("status", status));
    return rc;
}

static void
s_answer_error(api_events_t *self,
               const proto_return_t *ret,
               uint16_t status,
               const char *code,
               const char *message,
               const char *allow)
{
    char body[256];
    int n =
        snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"%s\",\"message\":\"%s\",\"field\":null}}", code, message);
    proto_kv_t headers[2] = {{"content-type", "application/json"}, {"allow", allow}};
    (void) s_answer(self, ret, status, body, (size_t) n, headers, allow ? 2 : 1);
}

//  The first event number to replay after a Last-Event-ID: 0 for none
//  asked, UINT64_MAX when it cannot be replayed (reset).
static uint64_t
s_replay_from(const api_events_t *self, const char *last_id)
{
    if (last_id == NULL || *last_id == '\0')
        return 0;
    const char *colon = strrchr(last_id, ':');
    if (colon == NULL || (size_t) (colon - last_id) != strlen(self->epoch)
        || memcmp(last_id, self->epoch, (size_t) (colon - last_id)) != 0)
        return UINT64_MAX;
    char *end;
    errno = 0;
    unsigned long long seen = strtoull(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end != '\0' || seen > self->seq)
        return UINT64_MAX;
    uint64_t oldest = self->seq > API_EVENTS_KEEP ? self->seq - API_EVENTS_KEEP + 1 : 1;
    if (seen + 1 < oldest)
        return UINT64_MAX; // some were forgotten
    return seen + 1;
}

bool
api_events_handle(api_events_t *self,
                  const proto_return_t *ret,
                  const char *src,
                  const proto_admin_request_t *req,
                  bool draining)
{
    const char *p = req->path;
    if (strcmp(p, S_PATH) != 0 && strcmp(p, S_PATH "/") != 0)
        return false;
    bool head = strcmp(req->method, "HEAD") == 0;
    if (!head && strcmp(req->method, "GET") != 0) {
        s_answer_error(self, ret, 405, "method_not_allowed", "the event stream answers GET",
                       "GET, HEAD");
        return true;
    }
    if (draining) {
        s_answer_error(self, ret, 503, "unavailable", "apid is shutting down", NULL);
        return true;
    }
    const char *gw_name = s_gateway_of(src);
    s_gw_t *g = gw_name && !head ? s_gw(self, gw_name, true) : NULL;
    if (!head && g == NULL) {
        self->refused++;
        s_answer_error(self, ret, gw_name ? 503 : 400, gw_name ? "unavailable" : "bad_request",
                       gw_name ? "too many gateways hold event streams"
                               : "event streams are served through a gateway",
                       NULL);
        return true;
    }
    // the replay
    char *body = NULL;
    size_t len = 0, cap = 0;
    FILE *out = open_memstream(&body, &cap);
    fprintf(out, "retry: %d\n: switchyard events of apid %s\n\n", S_RETRY_MS, self->instance);
    // HEAD: the head alone (nothing replayed, nothing counted)
    uint64_t from = head ? 0 : s_replay_from(self, api_http_header(req, "last-event-id"));
    size_t budget = PROTO_ADMIN_RESPONSE_BODY_MAX / 2;
    if (from != 0 && from != UINT64_MAX) {
        size_t total = 0;
        for (uint64_t s = from; s <= self->seq; s++)
            total += self->kept[s % API_EVENTS_KEEP].len;
        if (total > budget)
            from = UINT64_MAX; // too much to say again: the client reloads instead
    }
    if (from == UINT64_MAX) {
        fputs("event: reset\ndata: {}\n\n", out);
        self->resets++;
    } else if (from != 0) {
        for (uint64_t s = from; s <= self->seq; s++) {
            const s_kept_t *k = &self->kept[s % API_EVENTS_KEEP];
            fwrite(k->text, 1, k->len, out);
            self->replayed++;
        }
    }
    fclose(out);
    len = strlen(body);
    char covers[sizeof self->epoch + 24];
    snprintf(covers, sizeof covers, "%s:%" PRIu64, self->epoch, self->seq);
    proto_kv_t headers[2] = {{"content-type", "text/event-stream"},
                             {"x-switchyard-events", covers}};
    int sent = s_answer(self, ret, 200, head ? NULL : body, len, headers, 2);
    free(body);
    if (head || sent != 0)
        return true; // no stream: HEAD, or an answer the bus would not take
    self->opened++;
    s_set_streams(self, g, g->streams + 1);
    log_debug("event stream opened", LOG_S("request_id", ret->rid), LOG_S("gateway", gw_name),
              LOG_U("streams", g->streams));
    // a new client sees the fleet at once, not in up to 5 s
    s_ask_actors(self);
    s_ask_stats(self);
    return true;
}

// --------------------------------------------------------------------------
// Lifetime

api_events_t *
api_events_new(struct ev_loop *loop, proto_bus_t *bus, const char *instance, api_health_t *health)
{
    api_events_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->bus = bus;
    self->health = health;
    proto_strlcpy(self->instance, instance ? instance : "", sizeof self->instance);
    snprintf(self->epoch, sizeof self->epoch, "%s.%" PRIx64, self->instance, proto_now_ms());
    proto_bus_address(self->topic, sizeof self->topic, PROTO_EVENTS_CLOSE, self->instance);
    self->states = proto_pairs_new(sizeof(uint8_t), API_EVENTS_STATES);
    ev_init(&self->stats_timer, s_on_stats_timer);
    self->stats_timer.repeat = API_EVENTS_STATS_MS / 1000.0;
    self->stats_timer.data = self;
    ev_init(&self->actors_timer, s_on_actors_timer);
    self->actors_timer.repeat = API_EVENTS_ACTORS_MS / 1000.0;
    self->actors_timer.data = self;
    ev_init(&self->beat_timer, s_on_beat_timer);
    self->beat_timer.repeat = API_EVENTS_HEARTBEAT_MS / 1000.0;
    self->beat_timer.data = self;
    proto_bus_on(bus, PROTO_CONFIG_CHANGED, s_on_config_changed, self);
    proto_bus_on(bus, PROTO_BACKEND_STATE, s_on_backend_state, self);
    proto_bus_on(bus, PROTO_EVENTS_CLOSE, s_on_close, self);
    (void) proto_bus_on_subscriber(bus, PROTO_EVENTS_PUSH, s_on_subscriber, self);
    (void) proto_bus_counter(bus, "events.streams", &self->streams);
    (void) proto_bus_counter(bus, "events.opened", &self->opened);
    (void) proto_bus_counter(bus, "events.pushed", &self->pushed);
    (void) proto_bus_counter(bus, "events.push_failed", &self->push_failed);
    (void) proto_bus_counter(bus, "events.replayed", &self->replayed);
    (void) proto_bus_counter(bus, "events.resets", &self->resets);
    (void) proto_bus_counter(bus, "events.refused", &self->refused);
    (void) proto_bus_counter(bus, "events.stats_missing", &self->stats_missing);
    return self;
}

const char *
api_events_topic(const api_events_t *self)
{
    return self->topic;
}

uint64_t
api_events_streams(const api_events_t *self)
{
    return self->streams;
}

void
api_events_destroy(api_events_t **self_p)
{
    api_events_t *self = *self_p;
    if (self == NULL)
        return;
    ev_timer_stop(self->loop, &self->stats_timer);
    ev_timer_stop(self->loop, &self->actors_timer);
    ev_timer_stop(self->loop, &self->beat_timer);
    if (self->stats_id)
        proto_bus_cancel(self->bus, self->stats_id);
    for (size_t i = 0; i < API_EVENTS_KEEP; i++)
        free(self->kept[i].text);
    proto_pairs_destroy(&self->states);
    free(self);
    *self_p = NULL;
}
