/*  hd_actor - the healthd actor: what to probe (config.get what=health from
    a router, again on every config.changed), the probes on its loop, passive
    failures from gateways, and backend.state on every change.

    Sockets: the bus ROUTER and XPUB of proto_bus (healthd.<pid>.req/.pub in
    BUS_DIR, or BUS_BIND); a DEALER and a SUB (config.changed) to every
    router; a SUB (upstream.failed) to every gateway. See healthd/README.md.

    Backend host names are resolved with proto_resolve (c-ares on our loop),
    never with a blocking call: a target waits for its first answer before
    its first probe, and is looked up again at its TTL and on every new
    configuration version.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"
#include "hd_actor.h"
#include "hd_fsm.h"
#include "hd_probe.h"
#include "hd_sched.h"
#include "hd_specs.h"

#define S_BUCKETS       4096  // target hash buckets
#define S_FETCH_TIMEOUT 5000  // config.get deadline, ms
#define S_FETCH_RETRY   1.0   // after a failed config.get, s
#define S_REFRESH       30.0  // config.get again without config.changed, s (a safety net)
#define S_WAIT_RETRY    0.005 // a probe waiting for a slot is retried after, s
#define S_RESOLVE_MIN   5.0   // a name is looked up again after its TTL, at least this, s
#define S_RESOLVE_MAX   300.0 // ... and at most this (also after a name that cannot be valid)

typedef struct s_target s_target_t;

//  A config.get of one route's health in flight (a route-level change).
typedef struct s_rfetch {
    struct s_rfetch *next; // in the actor's list
    hd_actor_t *owner;     // for the reply
    char *vhost;           // the route's vHost
} s_rfetch_t;

struct hd_actor {
    proto_actor_t *actor;           // loop, bus, signals
    struct ev_loop *loop;           // borrowed from actor
    proto_bus_t *bus;               // borrowed from actor
    proto_resolve_t *resolve;       // backend names, off the loop
    const hd_config_t *cfg;         // settings (borrowed)
    s_target_t *buckets[S_BUCKETS]; // by "route\nbackend"
    s_target_t *all;                // every target (list)
    s_target_t *wait_head;          // targets due while HD_SCHED_INFLIGHT probes run
    s_target_t *wait_tail;          // ...
    size_t inflight;                // probes in flight
    bool fetching;                  // a config.get is in flight
    bool fetch_again;               // config.changed during the fetch
    bool loaded;                    // a config.get answer was applied
    s_rfetch_t *rfetches;           // one-route fetches in flight
    hd_spec_t *acc;                 // the pages of a full fetch so far
    size_t acc_count;               // how many specs
    int64_t page_from;              // the page asked for (route offset)
    uint64_t page_version;          // the version its first page had
    uint64_t version;               // the configuration version applied last
    ev_timer fetch_timer;           // the first fetch, retries, the refresh
    uint64_t rng;                   // jitter
    uint64_t probes;                // probes run
    uint64_t probe_failures;        // ... that failed
    uint64_t state_changes;         // backend.state published on a change
    uint64_t watched;               // (route, backend) pairs watched
    uint64_t passive;               // upstream.failed applied
    uint64_t fetches;               // config.get answers applied
};

//  One (route, backend): its spec, its state, its probe.
struct s_target {
    hd_actor_t *owner;            // for callbacks
    char *key;                    // "route\nbackend"
    char *ident;                  // everything probed: a change resets the state
    hd_spec_t spec;               // owned copy
    struct sockaddr_storage addr; // the literal, or the name's latest address
    socklen_t addrlen;            // 0: unresolved
    bool literal;                 // an address (or localhost): never looked up
    bool awaiting;                // the first answer is not in yet: not probed
    int resolves;                 // last outcome of the name: 0 none yet, 1 resolves, -1 not
    uint64_t lookup;              // the name's lookup in flight, 0 if none
    ev_timer refresh;             // the name's next lookup
    char req[HD_PROBE_REQ_MAX];   // the HTTP request (empty: TCP)
    size_t req_len;               // ...
    hd_fsm_state_t state;         // the state machine
    uint32_t failures;            // consecutive failures
    uint64_t since_ms;            // when the current verdict was reached (epoch ms)
    char reason[64];              // last result
    hd_probe_t probe;             // the probe
    ev_timer next;                // the next probe
    bool waiting;                 // in the wait list
    bool seen;                    // in the latest configuration
    s_target_t *hnext;            // hash chain
    s_target_t *anext;            // all list
    s_target_t *wnext;            // wait list
};

static const proto_cfg_opt_t s_opts[] = {
    {"HEALTHD_INTERVAL", "interval", PROTO_CFG_DURATION, "5s",
     "active probe interval for live backends", offsetof(hd_config_t, interval_ms), 0, 0, NULL, 0},
    {"HEALTHD_TIMEOUT", "timeout", PROTO_CFG_DURATION, "2s", "probe timeout",
     offsetof(hd_config_t, timeout_ms), 0, 0, NULL, 0},
    {"HEALTHD_RECOVERY_INTERVAL", "recovery-interval", PROTO_CFG_DURATION, "10s",
     "probe interval for dead backends", offsetof(hd_config_t, recovery_interval_ms), 0, 0, NULL,
     0},
};

int
hd_config_load(hd_config_t *cfg, int argc, char **argv)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    return proto_actor_config("healthd", &cfg->common, &extra, 1, argc, argv);
}

void
hd_config_free(hd_config_t *cfg)
{
    proto_cfg_table_t extra = {s_opts, PROTO_ARRAY_SIZE(s_opts), cfg};
    proto_actor_config_free(&cfg->common, &extra, 1);
}

// --------------------------------------------------------------------------
// Targets

static size_t
s_hash(const char *key)
{
    return (size_t) (proto_fnv1a_str(key) & (S_BUCKETS - 1));
}

static s_target_t *
s_find(hd_actor_t *self, const char *key)
{
    for (s_target_t *t = self->buckets[s_hash(key)]; t; t = t->hnext)
        if (strcmp(t->key, key) == 0)
            return t;
    return NULL;
}

static char *
s_key(const char *route, const char *backend)
{
    size_t n = strlen(route) + strlen(backend) + 2;
    char *key = proto_xmalloc(n);
    snprintf(key, n, "%s\n%s", route, backend);
    return key;
}

static char *
s_ident(const hd_spec_t *s)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s|%u|%s|%s|%d", s->host, (unsigned) s->port, s->path, s->vhost,
             (int) s->tcp);
    return proto_xstrdup(buf);
}

static void
s_wait_remove(hd_actor_t *self, s_target_t *t)
{
    if (!t->waiting)
        return;
    s_target_t **pp = &self->wait_head;
    s_target_t *prev = NULL;
    while (*pp && *pp != t) {
        prev = *pp;
        pp = &(*pp)->wnext;
    }
    if (*pp)
        *pp = t->wnext;
    if (self->wait_tail == t)
        self->wait_tail = prev;
    t->wnext = NULL;
    t->waiting = false;
}

//  Stop everything the target has running (probe, timer, wait slot).
static void
s_target_quiet(hd_actor_t *self, s_target_t *t)
{
    if (t->probe.active) {
        hd_probe_cancel(&t->probe);
        self->inflight--;
    }
    ev_timer_stop(self->loop, &t->next);
    s_wait_remove(self, t);
}

static void
s_spec_free(hd_spec_t *s)
{
    free(s->route);
    free(s->vhost);
    free(s->path);
    free(s->backend);
    free(s->host);
    free(s->region);
    memset(s, 0, sizeof *s);
}

static void
s_target_free(hd_actor_t *self, s_target_t **t_p)
{
    s_target_t *t = *t_p;
    s_target_quiet(self, t);
    // an answer to come must not reach a freed target
    proto_resolve_cancel(self->resolve, t->lookup);
    t->lookup = 0;
    ev_timer_stop(self->loop, &t->refresh);
    s_spec_free(&t->spec);
    free(t->key);
    free(t->ident);
    free(t);
    *t_p = NULL;
}

//  Build the request, and take the address if it is a literal ("localhost"
//  is 127.0.0.1): a name is looked up by s_resolve, off the loop.
static void
s_target_prepare(s_target_t *t)
{
    const char *host = strcmp(t->spec.host, "localhost") == 0 ? "127.0.0.1" : t->spec.host;
    t->addrlen = proto_resolve_literal(host, t->spec.port, AF_UNSPEC, &t->addr);
    t->literal = t->addrlen > 0;
    t->req_len = 0;
    if (!t->spec.tcp) {
        char hosthdr[512];
        if (hd_specs_host_header(&t->spec, hosthdr, sizeof hosthdr))
            t->req_len = hd_probe_request(t->req, sizeof t->req, t->spec.path, hosthdr);
        if (t->req_len == 0)
            log_warn("probe request does not fit: probed as failed", LOG_S("route", t->spec.route),
                     LOG_S("backend", t->spec.backend), LOG_S("path", t->spec.path));
    }
}

// --------------------------------------------------------------------------
// State

static void
s_publish(hd_actor_t *self, s_target_t *t, bool up)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_BACKEND_STATE);
    msg.backend_state.route = t->spec.route;
    msg.backend_state.backend = t->spec.backend;
    msg.backend_state.up = up;
    msg.backend_state.reason = t->reason;
    msg.backend_state.failures = t->failures;
    msg.backend_state.since_ms = t->since_ms;
    (void) proto_bus_publish(self->bus, &msg);
}

//  Feed one event to a target's state machine; publish and log a verdict.
static void
s_apply(hd_actor_t *self, s_target_t *t, hd_fsm_event_t event, const char *reason)
{
    if (event == HD_FSM_SUCCESS)
        t->failures = 0;
    else if (event == HD_FSM_FAILURE || event == HD_FSM_REFUSED)
        t->failures++;
    hd_fsm_state_t before = t->state;
    hd_fsm_step_t step = hd_fsm_step(t->state, event);
    t->state = step.next;
    if (step.action == HD_FSM_NONE) {
        // a dead backend that keeps failing: say so again (quietly) for a
        // balancer that started after the verdict (probes only, at the
        // recovery interval: passive failures arrive by the hundred)
        if (before == HD_FSM_DEAD && t->state == HD_FSM_DEAD && reason
            && strncmp(reason, "upstream", 8) != 0) {
            proto_strlcpy(t->reason, reason, sizeof t->reason);
            s_publish(self, t, false);
        }
        return;
    }
    proto_strlcpy(t->reason, reason ? reason : "", sizeof t->reason);
    t->since_ms = proto_now_ms();
    self->state_changes++;
    bool up = step.action == HD_FSM_UP;
    s_publish(self, t, up);
    log_warn(up ? "backend alive" : "backend dead", LOG_S("route", t->spec.route),
             LOG_S("backend", t->spec.backend), LOG_S("reason", t->reason),
             LOG_U("failures", t->failures), LOG_S("was", hd_fsm_state_name(before)));
}

// --------------------------------------------------------------------------
// Probes

static void s_probe_start(hd_actor_t *self, s_target_t *t);

static void
s_schedule(hd_actor_t *self, s_target_t *t, int64_t delay_ms)
{
    ev_timer_stop(self->loop, &t->next);
    ev_timer_set(&t->next, (double) delay_ms / 1000.0, 0.);
    ev_timer_start(self->loop, &t->next);
}

static int64_t
s_interval(hd_actor_t *self, const s_target_t *t)
{
    return hd_fsm_is_dead(t->state) ? self->cfg->recovery_interval_ms : self->cfg->interval_ms;
}

//  A slot is free: start the oldest waiting probe.
static void
s_wait_next(hd_actor_t *self)
{
    while (self->wait_head && self->inflight < HD_SCHED_INFLIGHT) {
        s_target_t *t = self->wait_head;
        s_wait_remove(self, t);
        s_probe_start(self, t);
    }
}

static void
s_on_probe(hd_probe_t *probe, hd_probe_result_t result, const char *reason, int status, void *arg)
{
    (void) probe;
    (void) status;
    s_target_t *t = arg;
    hd_actor_t *self = t->owner;
    self->inflight--;
    hd_fsm_event_t event = result == HD_PROBE_OK        ? HD_FSM_SUCCESS
                           : result == HD_PROBE_REFUSED ? HD_FSM_REFUSED
                                                        : HD_FSM_FAILURE;
    if (event != HD_FSM_SUCCESS)
        self->probe_failures++;
    log_debug("probe", LOG_S("route", t->spec.route), LOG_S("backend", t->spec.backend),
              LOG_S("result", reason), LOG_I("status", status));
    s_apply(self, t, event, reason);
    if (hd_fsm_is_probed(t->state))
        s_schedule(self, t, hd_sched_next_ms(s_interval(self, t), hd_sched_random(&self->rng)));
    s_wait_next(self);
}

static void
s_probe_start(hd_actor_t *self, s_target_t *t)
{
    // a name without its first answer is neither probed nor failing: the answer schedules it
    if (t->probe.active || !hd_fsm_is_probed(t->state) || t->awaiting)
        return;
    if (self->inflight >= HD_SCHED_INFLIGHT) {
        t->waiting = true;
        t->wnext = NULL;
        if (self->wait_tail)
            self->wait_tail->wnext = t;
        else
            self->wait_head = t;
        self->wait_tail = t;
        return;
    }
    self->probes++;
    self->inflight++;
    if (t->addrlen == 0 || (!t->spec.tcp && t->req_len == 0)) {
        // still counted as a probe: deliver "unresolved" from the loop
        static const struct sockaddr_in none = {.sin_family = AF_UNSPEC};
        hd_probe_start(&t->probe, (const struct sockaddr *) &none, sizeof none, NULL, 0,
                       self->cfg->timeout_ms, s_on_probe, t);
        return;
    }
    hd_probe_start(&t->probe, (const struct sockaddr *) &t->addr, t->addrlen,
                   t->spec.tcp ? NULL : t->req, t->spec.tcp ? 0 : t->req_len, self->cfg->timeout_ms,
                   s_on_probe, t);
}

static void
s_on_next(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_target_t *t = w->data;
    s_probe_start(t->owner, t);
}

// --------------------------------------------------------------------------
// Names

static bool
s_same_addr(const struct sockaddr_storage *a, socklen_t alen, const struct sockaddr_storage *b)
{
    return alen == proto_resolve_addrlen(b) && memcmp(a, b, alen) == 0;
}

//  Take a lookup's outcome. A name that is gone (or cannot be one) has no
//  address: its probes fail as "unresolved". A server that did not answer
//  leaves the last address in use; there was none on a first lookup.
static void
s_resolved(hd_actor_t *self,
           s_target_t *t,
           proto_resolve_status_t status,
           const struct sockaddr_storage *addrs,
           size_t count,
           uint32_t ttl_s)
{
    bool first = t->awaiting;
    t->awaiting = false;
    double again = S_RESOLVE_MIN;
    if (status == PROTO_RESOLVE_OK && count > 0) {
        if (!s_same_addr(&t->addr, t->addrlen, &addrs[0]))
            log_debug("backend address", LOG_S("route", t->spec.route),
                      LOG_S("backend", t->spec.backend), LOG_S("hostname", t->spec.host),
                      LOG_U("ttl", ttl_s));
        t->addr = addrs[0];
        t->addrlen = proto_resolve_addrlen(&addrs[0]);
        if (t->resolves < 0)
            log_info("backend address resolves again", LOG_S("route", t->spec.route),
                     LOG_S("backend", t->spec.backend), LOG_S("hostname", t->spec.host));
        t->resolves = 1;
        again = ttl_s < S_RESOLVE_MIN   ? S_RESOLVE_MIN
                : ttl_s > S_RESOLVE_MAX ? S_RESOLVE_MAX
                                        : (double) ttl_s;
    } else {
        if (status != PROTO_RESOLVE_TIMEOUT && status != PROTO_RESOLVE_FAILED)
            t->addrlen = 0;
        if (status == PROTO_RESOLVE_BAD_NAME)
            again = S_RESOLVE_MAX; // it will not get better before the configuration does
        if (t->addrlen == 0 && t->resolves >= 0) {
            // once per change of outcome: every probe of it fails until then
            log_warn("backend address does not resolve: probed as failed",
                     LOG_S("route", t->spec.route), LOG_S("backend", t->spec.backend),
                     LOG_S("hostname", t->spec.host),
                     LOG_S("error", proto_resolve_strstatus(status)));
            t->resolves = -1;
        } else if (t->addrlen > 0) {
            log_debug("backend name not looked up again: keeping its address",
                      LOG_S("route", t->spec.route), LOG_S("backend", t->spec.backend),
                      LOG_S("hostname", t->spec.host),
                      LOG_S("error", proto_resolve_strstatus(status)));
        }
    }
    ev_timer_stop(self->loop, &t->refresh);
    ev_timer_set(&t->refresh, again, 0.);
    ev_timer_start(self->loop, &t->refresh);
    // a first probe that fell due while we waited did nothing: schedule it now
    if (first && hd_fsm_is_probed(t->state) && !t->probe.active && !t->waiting
        && !ev_is_active(&t->next))
        s_schedule(self, t, hd_sched_first_ms(s_interval(self, t), hd_sched_random(&self->rng)));
}

static void
s_on_resolved(void *arg,
              proto_resolve_status_t status,
              const struct sockaddr_storage *addrs,
              size_t count,
              uint32_t ttl_s)
{
    s_target_t *t = arg;
    t->lookup = 0;
    s_resolved(t->owner, t, status, addrs, count, ttl_s);
}

//  Look the target's name up (again), unless it is a literal or a lookup runs.
static void
s_resolve(hd_actor_t *self, s_target_t *t)
{
    if (t->literal || t->lookup != 0)
        return;
    ev_timer_stop(self->loop, &t->refresh);
    proto_resolve_status_t rc = proto_resolve_lookup(self->resolve, t->spec.host, t->spec.port,
                                                     AF_UNSPEC, s_on_resolved, t, &t->lookup);
    if (rc != PROTO_RESOLVE_OK)
        s_resolved(self, t, rc, NULL, 0, 0);
}

static void
s_on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_target_t *t = w->data;
    s_resolve(t->owner, t);
}

// --------------------------------------------------------------------------
// Configuration

static s_target_t *
s_target_new(hd_actor_t *self, hd_spec_t *spec, char *key)
{
    s_target_t *t = proto_xcalloc(1, sizeof *t);
    t->owner = self;
    t->key = key;
    t->spec = *spec;
    memset(spec, 0, sizeof *spec);
    t->ident = s_ident(&t->spec);
    t->state = HD_FSM_UNKNOWN;
    hd_probe_init(&t->probe, self->loop);
    ev_init(&t->next, s_on_next);
    t->next.data = t;
    ev_init(&t->refresh, s_on_refresh);
    t->refresh.data = t;
    size_t b = s_hash(key);
    t->hnext = self->buckets[b];
    self->buckets[b] = t;
    t->anext = self->all;
    self->all = t;
    s_target_prepare(t);
    t->awaiting = !t->literal;
    s_resolve(self, t);
    return t;
}

static void
s_unlink(hd_actor_t *self, s_target_t *t)
{
    s_target_t **pp = &self->buckets[s_hash(t->key)];
    while (*pp && *pp != t)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = t->hnext;
    pp = &self->all;
    while (*pp && *pp != t)
        pp = &(*pp)->anext;
    if (*pp)
        *pp = t->anext;
}

//  Apply maintenance from the configuration and start probing when needed.
static void
s_target_settle(hd_actor_t *self, s_target_t *t, bool maint)
{
    if (maint && t->state != HD_FSM_MAINT) {
        s_target_quiet(self, t);
        t->failures = 0;
        s_apply(self, t, HD_FSM_MAINT_ON, "maintenance");
    } else if (!maint && t->state == HD_FSM_MAINT) {
        // balancers hold it down (maintenance): probe at once, up on success
        s_apply(self, t, HD_FSM_MAINT_OFF, "maintenance over");
        s_schedule(self, t, 0);
    }
    if (hd_fsm_is_probed(t->state) && !t->probe.active && !t->waiting && !ev_is_active(&t->next))
        s_schedule(self, t, hd_sched_first_ms(s_interval(self, t), hd_sched_random(&self->rng)));
}

//  Apply a configuration; changed: its version is not the one applied last
//  (names are looked up again then). only_vhost: specs are that route's
//  alone, and the other routes' targets are left as they are.
static void
s_reconcile(hd_actor_t *self, hd_spec_t *specs, size_t count, bool changed, const char *only_vhost)
{
    for (s_target_t *t = self->all; t; t = t->anext)
        t->seen = only_vhost != NULL && strcmp(t->spec.vhost, only_vhost) != 0;
    for (size_t i = 0; i < count; i++) {
        hd_spec_t *spec = &specs[i];
        char *key = s_key(spec->route, spec->backend);
        s_target_t *t = s_find(self, key);
        bool maint = spec->maint;
        if (t && t->seen) {
            free(key); // a duplicate (route, backend): the first one wins
            continue;
        }
        if (t) {
            char *ident = s_ident(spec);
            bool same = strcmp(ident, t->ident) == 0;
            free(ident);
            if (!same) {
                // another address or check: another backend as far as health goes
                log_info("backend probe changed: state starts over", LOG_S("route", spec->route),
                         LOG_S("backend", spec->backend));
                s_unlink(self, t);
                s_target_free(self, &t);
            }
        }
        if (t) {
            free(key);
            if (changed)
                s_resolve(self, t);
        } else {
            t = s_target_new(self, spec, key);
        }
        t->seen = true;
        s_target_settle(self, t, maint);
    }
    size_t n = 0;
    for (s_target_t *t = self->all, *next; t; t = next) {
        next = t->anext;
        if (!t->seen) {
            log_info("backend no longer watched", LOG_S("route", t->spec.route),
                     LOG_S("backend", t->spec.backend));
            s_unlink(self, t);
            s_target_free(self, &t);
        } else {
            n++;
        }
    }
    self->watched = n;
}

static void s_fetch(hd_actor_t *self);

static void s_fetch_page(hd_actor_t *self);

static void
s_acc_free(hd_actor_t *self)
{
    hd_specs_free(&self->acc, self->acc_count);
    self->acc_count = 0;
}

//  One page of the full list: kept until the last one, then applied whole.
//  A version that changes between pages starts the list over.
static void
s_on_config_reply(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    hd_actor_t *self = arg;
    self->fetching = false;
    const char *why = NULL;
    char err[256] = "";
    if (in == NULL)
        why = "no router answered";
    else if (in->msg.type == PROTO_ERROR)
        why = in->msg.error.code;
    else if (in->msg.type != PROTO_CONFIG_REPLY)
        why = "unexpected answer";
    else if (in->msg.config_reply.status != 200)
        why = in->msg.config_reply.error ? in->msg.config_reply.error : "router refused";
    bool more = false;
    if (why == NULL) {
        hd_spec_t *specs = NULL;
        size_t count = 0, skipped = 0;
        int64_t next = -1;
        uint64_t version = in->msg.config_reply.version;
        if (hd_specs_parse_page(in->msg.config_reply.body, &specs, &count, &skipped, &next, err,
                                sizeof err)
            != 0) {
            why = err;
        } else if (self->page_from > 0 && version != self->page_version) {
            hd_specs_free(&specs, count); // changed meanwhile: from the start
            s_acc_free(self);
            self->page_from = 0;
            more = true;
        } else {
            if (skipped)
                log_warn("health entries skipped: no id, hostname or port",
                         LOG_U("skipped", skipped));
            if (self->page_from == 0)
                self->page_version = version;
            hd_specs_move(&self->acc, &self->acc_count, &specs, count);
            if (next > self->page_from) {
                self->page_from = next;
                more = true;
            } else {
                s_reconcile(self, self->acc, self->acc_count,
                            !self->loaded || self->version != version, NULL);
                self->version = version;
                s_acc_free(self);
                self->page_from = 0;
                self->fetches++;
                if (!self->loaded)
                    log_info("backends to probe", LOG_U("watched", self->watched),
                             LOG_U("version", version));
                self->loaded = true;
            }
        }
    }
    if (why) {
        s_acc_free(self);
        self->page_from = 0;
    }
    ev_timer_stop(self->loop, &self->fetch_timer);
    if (more) {
        s_fetch_page(self);
        return;
    }
    if (why) {
        log_warn("cannot learn the backends to probe: retrying", LOG_S("reason", why));
        ev_timer_set(&self->fetch_timer, S_FETCH_RETRY, 0.);
    } else {
        ev_timer_set(&self->fetch_timer, S_REFRESH, 0.);
    }
    ev_timer_start(self->loop, &self->fetch_timer);
    if (self->fetch_again) {
        self->fetch_again = false;
        s_fetch(self);
    }
}

//  Ask for the page of the full list from self->page_from ("@N": pages keep
//  each message far below the bus's bound whatever the number of routes).
static void
s_fetch_page(hd_actor_t *self)
{
    char key[32];
    snprintf(key, sizeof key, "@%lld", (long long) self->page_from);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_GET);
    msg.config_get.what = "health";
    msg.config_get.key = key;
    if (proto_bus_request(self->bus, PROTO_KIND_ROUTER, &msg, S_FETCH_TIMEOUT, s_on_config_reply,
                          self)
        == 0) {
        self->fetching = true;
        ev_timer_stop(self->loop, &self->fetch_timer);
    } else {
        s_acc_free(self);
        self->page_from = 0;
        ev_timer_stop(self->loop, &self->fetch_timer);
        ev_timer_set(&self->fetch_timer, S_FETCH_RETRY, 0.);
        ev_timer_start(self->loop, &self->fetch_timer);
    }
}

static void
s_fetch(hd_actor_t *self)
{
    if (self->fetching) {
        self->fetch_again = true;
        return;
    }
    s_acc_free(self);
    self->page_from = 0;
    s_fetch_page(self);
}

static void
s_on_fetch_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_fetch(w->data);
}

static void
s_rfetch_free(hd_actor_t *self, s_rfetch_t *f)
{
    for (s_rfetch_t **pp = &self->rfetches; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            break;
        }
    free(f->vhost);
    free(f);
}

//  One route's health arrived: its targets are brought up to date, the
//  others are left alone. On any failure the whole list is asked for.
static void
s_on_route_reply(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    s_rfetch_t *f = arg;
    hd_actor_t *self = f->owner;
    hd_spec_t *specs = NULL;
    size_t count = 0, skipped = 0;
    char err[256];
    bool ok =
        in != NULL && in->msg.type == PROTO_CONFIG_REPLY && in->msg.config_reply.status == 200
        && hd_specs_parse(in->msg.config_reply.body, &specs, &count, &skipped, err, sizeof err)
               == 0;
    if (ok) {
        s_reconcile(self, specs, count, true, f->vhost);
        hd_specs_free(&specs, count);
        self->fetches++;
    }
    s_rfetch_free(self, f);
    if (!ok)
        s_fetch(self);
}

//  A change of one route (what route, backend, dead or alive; key its
//  vHost) asks for that route alone: with 100,000 routes a change costs the
//  router one route, not the whole table. Anything else asks for everything.
static void
s_on_config_changed(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    hd_actor_t *self = arg;
    const proto_config_changed_t *c = &in->msg.config_changed;
    const char *what = c->what ? c->what : "";
    log_debug("configuration changed: asking again", LOG_U("version", c->version),
              LOG_S("what", what), LOG_S("key", c->key));
    bool one = c->key && *c->key
               && (strcmp(what, "route") == 0 || strcmp(what, "backend") == 0
                   || strcmp(what, "dead") == 0 || strcmp(what, "alive") == 0);
    if (!one || !self->loaded || self->fetching) {
        s_fetch(self); // a full fetch in flight is asked again after it
        return;
    }
    s_rfetch_t *f = proto_xcalloc(1, sizeof *f);
    f->owner = self;
    f->vhost = proto_xstrdup(c->key);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_GET);
    msg.config_get.what = "health";
    msg.config_get.key = f->vhost;
    if (proto_bus_request(self->bus, PROTO_KIND_ROUTER, &msg, S_FETCH_TIMEOUT, s_on_route_reply, f)
        != 0) {
        free(f->vhost);
        free(f);
        s_fetch(self);
        return;
    }
    f->next = self->rfetches;
    self->rfetches = f;
}

static void
s_on_upstream_failed(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    hd_actor_t *self = arg;
    const proto_upstream_failed_t *f = &in->msg.upstream_failed;
    char key[512];
    int n = snprintf(key, sizeof key, "%s\n%s", f->route, f->backend);
    if (n < 0 || (size_t) n >= sizeof key)
        return;
    s_target_t *t = s_find(self, key);
    if (t == NULL) {
        log_debug("upstream.failed for a backend not watched", LOG_S("route", f->route),
                  LOG_S("backend", f->backend));
        return;
    }
    self->passive++;
    char reason[64];
    snprintf(reason, sizeof reason, "upstream %s", f->reason);
    s_apply(self, t, strcmp(f->reason, "refused") == 0 ? HD_FSM_REFUSED : HD_FSM_FAILURE, reason);
}

// --------------------------------------------------------------------------
// Lifetime

hd_actor_t *
hd_actor_new(const hd_config_t *cfg)
{
    char err[512];
    hd_actor_t *self = proto_xcalloc(1, sizeof *self);
    self->cfg = cfg;
    if (getrandom(&self->rng, sizeof self->rng, 0) != sizeof self->rng || self->rng == 0)
        self->rng = proto_mono_us() ^ ((uint64_t) getpid() << 32) ^ 0x9E3779B97F4A7C15ull;
    self->actor = proto_actor_new("healthd", &cfg->common, err, sizeof err);
    if (self->actor == NULL) {
        log_error("cannot create the actor", LOG_S("error", err));
        goto fail;
    }
    self->loop = proto_actor_loop(self->actor);
    self->bus = proto_actor_bus(self->actor);
    proto_resolve_opts_t ro = {.servers = cfg->common.dns_servers};
    self->resolve = proto_resolve_new(self->loop, &ro);
    if (self->resolve == NULL) {
        log_error("cannot create the DNS resolver");
        goto fail;
    }
    ev_init(&self->fetch_timer, s_on_fetch_timer);
    self->fetch_timer.data = self;
    proto_bus_on(self->bus, PROTO_CONFIG_CHANGED, s_on_config_changed, self);
    proto_bus_on(self->bus, PROTO_UPSTREAM_FAILED, s_on_upstream_failed, self);
    const struct {
        const char *name;      // as pong reports it
        const uint64_t *value; // ours
    } counters[] = {
        {"probes", &self->probes},
        {"probes.failed", &self->probe_failures},
        {"states.changed", &self->state_changes},
        {"backends.watched", &self->watched},
        {"passive.failures", &self->passive},
        {"config.fetches", &self->fetches},
    };
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(counters); i++)
        if (proto_bus_counter(self->bus, counters[i].name, counters[i].value) != 0) {
            log_error("cannot report a counter in pong", LOG_S("name", counters[i].name));
            goto fail;
        }
    static const char *const router_topics[] = {"config.changed", NULL};
    static const char *const gateway_topics[] = {"upstream.failed", NULL};
    if (proto_actor_use(self->actor, PROTO_KIND_ROUTER, true, router_topics) != 0
        || proto_actor_use(self->actor, PROTO_KIND_GATEWAY, false, gateway_topics) != 0)
        goto fail;
    return self;
fail:
    hd_actor_destroy(&self);
    return NULL;
}

int
hd_actor_run(hd_actor_t *self)
{
    // the first config.get once the bus is bound (the loop's first turn)
    ev_timer_set(&self->fetch_timer, 0., 0.);
    ev_timer_start(self->loop, &self->fetch_timer);
    int rc = proto_actor_run(self->actor);
    log_info("healthd totals", LOG_U("probes", self->probes),
             LOG_U("probe_failures", self->probe_failures),
             LOG_U("state_changes", self->state_changes), LOG_U("watched", self->watched),
             LOG_U("passive", self->passive));
    return rc;
}

void
hd_actor_destroy(hd_actor_t **self_p)
{
    assert(self_p);
    hd_actor_t *self = *self_p;
    if (self == NULL)
        return;
    if (self->loop) {
        // our watchers first, while the loop exists
        ev_timer_stop(self->loop, &self->fetch_timer);
        while (self->all) {
            s_target_t *t = self->all;
            s_unlink(self, t);
            s_target_free(self, &t);
        }
        proto_resolve_destroy(&self->resolve); // no callback: every target is gone
    }
    proto_actor_destroy(&self->actor); // drops pending requests uncalled
    while (self->rfetches)
        s_rfetch_free(self, self->rfetches);
    s_acc_free(self);
    free(self);
    *self_p = NULL;
}
