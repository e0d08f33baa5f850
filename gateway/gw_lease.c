/*  gw_lease - routing decisions as leases, cached per (Host, requested region, local).

    Entries live in a chained hash table and an LRU list. An entry holds the
    current lease (a reference), whether an ask is in flight, and the list of
    requests waiting on that ask. Entries with an ask in flight or waiters
    are never evicted (the bus calls back exactly once per ask).

    Stale-while-revalidate: a lease past its TTL, still of the current
    configuration, serves at once while one ask refreshes it in the
    background. A lease invalidated (newer configuration, routes read again,
    a backend down, a recovered backend it lacks) or any lease with TTL 0
    makes requests wait for an ask, as a key never decided does, until an
    ask after the invalidation has failed: from then on the router or
    balancer is known to be away, and the lease serves at once, stale, with
    at most one ask per retry pause (s_failed) until one is answered.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gw_cors.h"
#include "gw_lease.h"
#include "proto_list.h"
#include "proto_log.h"
#include "proto_strategy.h"
#include "proto_util.h"

#define S_BUCKETS   16384
#define S_MAX_CANDS 64
#define S_RETRY_MIN 50   // ms: the least pause between two failed asks of a key
#define S_RETRY_MAX 1000 // ms: the longest (the decision timeout in between)

typedef struct s_entry {
    char *key;             // host '\n' region '\n' ('L' local, '-' not)
    char *host;            // the Host asked for
    char *region;          // the requested region
    bool local;            // asked with decide's local (a trusted hop marker)
    gw_lease_t *lease;     // last lease, or NULL
    uint64_t expires_ms;   // fresh until (monotonic ms); then refreshed while it serves
    bool must_ask;         // invalidated: not reused before an answer (or a failed ask)
    bool asking;           // a decide is in flight
    bool failed;           // the last ask failed, none answered since: serve stale at once
    uint64_t failed_ver;   // min_version when it failed (a newer configuration forgets it)
    uint64_t retry_ms;     // after a failed ask, none before this (monotonic ms)
    gw_waiter_t *waiters;  // requests waiting for the answer
    struct s_entry *hnext; // hash chain
    proto_link_t lru;      // in the LRU list, most recent first
    gw_leases_t *owner;    // for callbacks
} s_entry_t;

struct gw_leases {
    struct ev_loop *loop;          // our loop
    proto_bus_t *bus;              // to ask the router
    gw_lease_config_t cfg;         // settings (gw_region copied)
    char *gw_region;               // our REGION
    gw_lease_fn *fn;               // decision callback
    void *arg;                     // its argument
    s_entry_t *buckets[S_BUCKETS]; // by key
    proto_list_t lru;              // every entry, most recently used first
    uint64_t min_version;          // leases below this are not reused
    uint64_t asks;                 // decides sent
    uint64_t stale;                // decisions served stale
};

static uint64_t
s_now_ms(void)
{
    return proto_mono_us() / 1000;
}

// --------------------------------------------------------------------------
// Leases

static char *s_dup(const char *s);

gw_lease_t *
gw_lease_ref(gw_lease_t *lease)
{
    lease->refs++;
    return lease;
}

void
gw_lease_unref(gw_lease_t **lease_p)
{
    gw_lease_t *l = *lease_p;
    if (l == NULL)
        return;
    *lease_p = NULL;
    if (--l->refs > 0)
        return;
    for (uint32_t i = 0; i < l->ncands; i++) {
        free(l->cands[i].id);
        free(l->cands[i].host);
        free(l->cands[i].region);
    }
    free(l->cands);
    for (uint32_t i = 0; i < l->nheaders; i++) {
        free((char *) l->headers[i].key);
        free((char *) l->headers[i].value);
    }
    free(l->headers);
    free(l->route);
    free(l->vhost);
    free(l->region);
    free(l->chat_path);
    gw_cors_destroy(&l->cors);
    free(l->auth_provider);
    gw_creds_unref(&l->creds);
    free(l);
}

void
gw_creds_unref(gw_creds_t **creds_p)
{
    gw_creds_t *c = *creds_p;
    if (c == NULL)
        return;
    *creds_p = NULL;
    if (--c->refs > 0)
        return;
    for (uint32_t i = 0; c->users && i < c->count; i++) {
        free((char *) c->users[i].key);
        free((char *) c->users[i].value);
    }
    for (uint32_t i = 0; c->tokens && i < c->count; i++)
        free(c->tokens[i]);
    free(c->users);
    free(c->tokens);
    if (c->check && c->check_free)
        c->check_free(c->check);
    free(c);
}

//  The credentials of m: its own, or prev's when m names them without
//  carrying them; NULL when neither (lease->auth_missing).
static gw_creds_t *
s_creds(const proto_lease_t *m, const gw_lease_t *prev)
{
    bool bearer = strcmp(m->auth, "bearer") == 0;
    uint32_t n = bearer ? m->auth_tokens_count : m->auth_users_count;
    if (n == 0) {
        gw_creds_t *held = prev ? prev->creds : NULL;
        if (held && strcmp(held->id, m->auth_id ? m->auth_id : "") == 0 && held->bearer == bearer) {
            held->refs++;
            return held;
        }
        return NULL;
    }
    gw_creds_t *c = proto_xcalloc(1, sizeof *c);
    c->refs = 1;
    proto_strlcpy(c->id, m->auth_id ? m->auth_id : "", sizeof c->id);
    c->bearer = bearer;
    c->count = n;
    if (bearer) {
        c->tokens = proto_xcalloc(n, sizeof *c->tokens);
        for (uint32_t i = 0; i < n; i++)
            c->tokens[i] = s_dup(m->auth_tokens[i].sha256);
    } else {
        c->users = proto_xcalloc(n, sizeof *c->users);
        for (uint32_t i = 0; i < n; i++) {
            c->users[i].key = s_dup(m->auth_users[i].key);
            c->users[i].value = s_dup(m->auth_users[i].value);
        }
    }
    return c;
}

static char *
s_dup(const char *s)
{
    return proto_xstrdup(s ? s : "");
}

//  Resolve a literal address now; names are left for the connect path.
static void
s_resolve_literal(gw_cand_t *c)
{
    const char *host = strcmp(c->host, "localhost") == 0 ? "127.0.0.1" : c->host;
    struct sockaddr_in *in = (struct sockaddr_in *) &c->addr;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *) &c->addr;
    memset(&c->addr, 0, sizeof c->addr);
    c->addrlen = 0;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(c->port);
        c->addrlen = sizeof *in;
    } else if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(c->port);
        c->addrlen = sizeof *in6;
    }
}

gw_lease_t *
gw_lease_from_msg(const proto_lease_t *m, const gw_lease_t *prev)
{
    gw_lease_t *l = proto_xcalloc(1, sizeof *l);
    l->refs = 1;
    if (strcmp(m->status, "ok") == 0)
        l->status = GW_LEASE_OK;
    else if (strcmp(m->status, "no_route") == 0)
        l->status = GW_LEASE_NO_ROUTE;
    else
        l->status = GW_LEASE_NO_BACKEND;
    l->route = s_dup(m->route);
    l->vhost = s_dup(m->vhost);
    l->region = s_dup(m->region);
    l->version = m->version;
    proto_strategy_t strategy;
    if (proto_strategy_parse(m->strategy, &strategy) != 0)
        strategy = PROTO_STRATEGY_ROUND_ROBIN;
    l->strategy = (int) strategy;
    l->ncands = m->candidates_count < S_MAX_CANDS ? m->candidates_count : S_MAX_CANDS;
    l->cands = proto_xcalloc(l->ncands ? l->ncands : 1, sizeof *l->cands);
    for (uint32_t i = 0; i < l->ncands; i++) {
        const proto_candidate_t *src = &m->candidates[i];
        gw_cand_t *c = &l->cands[i];
        c->id = s_dup(src->id);
        c->host = s_dup(src->host);
        c->port = src->port;
        c->weight = src->weight ? src->weight : 1;
        c->region = s_dup(src->region);
        c->hop = src->hop;
        s_resolve_literal(c);
    }
    l->retries = m->retries;
    l->timeout_ms = m->timeout_ms ? m->timeout_ms : 30000;
    l->queue_timeout_ms = m->queue_timeout_ms ? m->queue_timeout_ms : l->timeout_ms;
    l->req_active = m->req_active;
    l->req_queue = m->req_queue;
    l->max_body = m->max_body ? m->max_body : 10485760;
    l->nheaders = m->headers_count;
    l->headers = proto_xcalloc(l->nheaders ? l->nheaders : 1, sizeof *l->headers);
    for (uint32_t i = 0; i < l->nheaders; i++) {
        l->headers[i].key = s_dup(m->headers[i].key);
        l->headers[i].value = s_dup(m->headers[i].value);
    }
    l->chat_path = s_dup(m->chat_path);
    l->wildcard = strncmp(l->vhost, PROTO_LIT("*.")) == 0;
    l->auto_https = m->auto_https;
    l->sec_headers = m->sec_headers;
    l->cors = gw_cors_new(m->cors);
    if (m->cors && *m->cors && l->cors == NULL)
        log_warn("a lease's cors cannot be read: no CORS fields for its route",
                 LOG_S("route", l->route));
    if (m->auth && (strcmp(m->auth, "basic") == 0 || strcmp(m->auth, "bearer") == 0)) {
        l->creds = s_creds(m, prev);
        l->auth_missing = l->creds == NULL;
    }
    l->auth_provider = s_dup(m->auth_provider);
    l->auth_cache_ms = m->auth_cache_ms;
    l->rl_requests = m->rl_requests;
    l->rl_window_s = m->rl_window_s ? m->rl_window_s : 1;
    l->rl_burst = m->rl_burst;
    l->rl_by_user = m->rl_key && strcmp(m->rl_key, "user") == 0;
    l->made_ms = s_now_ms();
    return l;
}

int
gw_lease_pick(gw_lease_t *l, uint64_t tried, const char *client_ip, uint64_t random)
{
    proto_strategy_item_t items[S_MAX_CANDS];
    int64_t current[S_MAX_CANDS];
    proto_strategy_mask_t excluded = {{0}};
    for (uint32_t i = 0; i < l->ncands; i++) {
        items[i].id = l->cands[i].id;
        items[i].weight = l->cands[i].weight;
        current[i] = l->cands[i].current;
        if (l->cands[i].failed || (tried & ((uint64_t) 1 << i)))
            proto_strategy_mask_set(&excluded, i);
    }
    int i = proto_strategy_pick((proto_strategy_t) l->strategy, items, l->ncands, current,
                                &excluded, client_ip, random);
    for (uint32_t k = 0; k < l->ncands; k++)
        l->cands[k].current = current[k];
    return i;
}

// --------------------------------------------------------------------------
// Cache

static size_t
s_hash(const char *key)
{
    return (size_t) (proto_fnv1a_str(key) & (S_BUCKETS - 1));
}

#define S_ENTRY(link) PROTO_LIST_ENTRY(link, s_entry_t, lru)

static void
s_entry_free(gw_leases_t *self, s_entry_t *e)
{
    s_entry_t **pp = &self->buckets[s_hash(e->key)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    proto_list_unlink(&self->lru, &e->lru);
    gw_lease_unref(&e->lease);
    free(e->key);
    free(e->host);
    free(e->region);
    free(e);
}

static void
s_evict(gw_leases_t *self)
{
    s_entry_t *e = S_ENTRY(self->lru.tail);
    while (self->lru.count > self->cfg.max_entries && e) {
        s_entry_t *prev = S_ENTRY(e->lru.prev);
        if (!e->asking && e->waiters == NULL)
            s_entry_free(self, e);
        e = prev;
    }
}

static s_entry_t *
s_find(gw_leases_t *self, const char *key)
{
    for (s_entry_t *e = self->buckets[s_hash(key)]; e; e = e->hnext)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

static s_entry_t *
s_create(gw_leases_t *self, const char *key, const char *host, const char *region, bool local)
{
    s_entry_t *e = proto_xcalloc(1, sizeof *e);
    e->owner = self;
    e->key = proto_xstrdup(key);
    e->host = proto_xstrdup(host);
    e->region = proto_xstrdup(region);
    e->local = local;
    size_t b = s_hash(e->key);
    e->hnext = self->buckets[b];
    self->buckets[b] = e;
    proto_list_push_front(&self->lru, &e->lru);
    s_evict(self);
    return e;
}

//  Hand the outcome to every waiter of the entry.
static void
s_wake(gw_leases_t *self, s_entry_t *e, bool stale)
{
    while (e->waiters) {
        gw_waiter_t *w = e->waiters;
        e->waiters = w->next;
        if (e->waiters)
            e->waiters->prev = NULL;
        w->prev = w->next = NULL;
        w->entry = NULL;
        gw_lease_t *lease = e->lease ? gw_lease_ref(e->lease) : NULL;
        self->fn(w, lease, stale, self->arg);
    }
}

//  An ask of e failed (no answer within the deadline, an error, or no router
//  to take it): with a lease to fall back on, the key is in failure mode
//  (served stale at once) and not asked again before the retry pause.
static void
s_failed(gw_leases_t *self, s_entry_t *e)
{
    if (e->lease == NULL)
        return; // a key never decided asks on every request, as before
    self->stale++;
    e->failed = true;
    e->failed_ver = self->min_version;
    int64_t pause = self->cfg.timeout_ms;
    pause = pause < S_RETRY_MIN ? S_RETRY_MIN : pause > S_RETRY_MAX ? S_RETRY_MAX : pause;
    e->retry_ms = s_now_ms() + (uint64_t) pause;
}

static void
s_on_reply(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    s_entry_t *e = arg;
    gw_leases_t *self = e->owner;
    e->asking = false;
    bool stale = false;
    if (in && in->msg.type == PROTO_LEASE) {
        gw_lease_t *lease = gw_lease_from_msg(&in->msg.lease, e->lease);
        gw_lease_unref(&e->lease);
        e->lease = lease;
        e->expires_ms = s_now_ms() + (uint64_t) self->cfg.ttl_ms;
        e->must_ask = false;
        e->failed = false;
        e->retry_ms = 0;
        if (e->lease->version > self->min_version)
            self->min_version = e->lease->version;
    } else {
        // no answer, or an error: the last lease (if any) keeps serving
        stale = e->lease != NULL;
        s_failed(self, e);
        log_warn(
            "no routing decision", LOG_S("host", e->host), LOG_S("region", e->region),
            LOG_S("reason", in ? (in->msg.type == PROTO_ERROR ? in->msg.error.code : "unexpected")
                               : "timeout"),
            LOG_B("local", e->local), LOG_B("stale", stale));
    }
    s_wake(self, e, stale);
}

static bool
s_ask(gw_leases_t *self, s_entry_t *e, const char *client, const char *rid)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_DECIDE);
    msg.rid = rid;
    msg.decide.host = e->host;
    msg.decide.region = e->region;
    msg.decide.gw_region = self->gw_region;
    msg.decide.client = client;
    msg.decide.local = e->local;
    // credentials held from the last lease: the router need not send them again
    msg.decide.auth_have = e->lease && e->lease->creds ? e->lease->creds->id : NULL;
    // with an old lease to fall back on, a router that cannot take the ask
    // now (gone, restarting) means serving that lease at once; without one
    // (a cold start) the ask waits for a router within the deadline
    int rc = e->lease ? proto_bus_try_request(self->bus, PROTO_KIND_ROUTER, &msg,
                                              self->cfg.timeout_ms, s_on_reply, e)
                      : proto_bus_request(self->bus, PROTO_KIND_ROUTER, &msg, self->cfg.timeout_ms,
                                          s_on_reply, e);
    if (rc != 0)
        return false;
    e->asking = true;
    self->asks++;
    return true;
}

gw_leases_t *
gw_leases_new(struct ev_loop *loop,
              proto_bus_t *bus,
              const gw_lease_config_t *cfg,
              gw_lease_fn *fn,
              void *arg)
{
    gw_leases_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->bus = bus;
    self->cfg = *cfg;
    self->gw_region = proto_xstrdup(cfg->gw_region);
    self->cfg.gw_region = self->gw_region;
    if (self->cfg.max_entries == 0)
        self->cfg.max_entries = 10000;
    self->fn = fn;
    self->arg = arg;
    // in pong: how often the router was asked, and how often an ask failed
    // and an old lease served instead
    (void) proto_bus_counter(bus, "leases.asks", &self->asks);
    (void) proto_bus_counter(bus, "leases.stale", &self->stale);
    return self;
}

//  How a request may use the lease of e now.
typedef enum {
    S_USE_FRESH, // within its TTL, of the current configuration
    S_USE_STALE, // at once, while (or after) an ask refreshes it
    S_USE_WAIT,  // wait for an ask (none yet, or invalidated, or TTL 0)
} s_use_t;

static s_use_t
s_use(gw_leases_t *self, const s_entry_t *e, uint64_t now)
{
    if (e->lease == NULL)
        return S_USE_WAIT;
    bool current = !e->must_ask && e->lease->version >= self->min_version;
    if (current && now < e->expires_ms)
        return S_USE_FRESH;
    // only its TTL ran out: still this configuration's decision
    if (current && self->cfg.ttl_ms > 0)
        return S_USE_STALE;
    // invalidated, or TTL 0: a fresh answer first, unless an ask made since
    // the invalidation (the configuration now known) has failed
    if (e->failed && e->failed_ver >= self->min_version)
        return S_USE_STALE;
    return S_USE_WAIT;
}

gw_lease_t *
gw_leases_get(gw_leases_t *self,
              const char *host,
              const char *region,
              bool local,
              const char *client,
              const char *rid,
              gw_waiter_t *waiter,
              bool *pending,
              bool *stale)
{
    char key[512];
    *pending = false;
    *stale = false;
    // a local lease (only our region, never a hop) is another decision than
    // the usual one for the same Host and region
    int n = snprintf(key, sizeof key, "%s\n%s\n%c", host, region, local ? 'L' : '-');
    if (n < 0 || (size_t) n >= sizeof key)
        return NULL; // bounded by the caller's validation; treat as no decision
    s_entry_t *e = s_find(self, key);
    if (e == NULL)
        e = s_create(self, key, host, region, local);
    else
        proto_list_to_front(&self->lru, &e->lru);
    uint64_t now = s_now_ms();
    switch (s_use(self, e, now)) {
        case S_USE_FRESH:
            return gw_lease_ref(e->lease);
        case S_USE_STALE:
            // served at once; one ask at a time refreshes it, and after a
            // failed one none before the retry pause (never one per request)
            if (!e->asking && now >= e->retry_ms && !s_ask(self, e, client, rid))
                s_failed(self, e);
            // stale only once the router or balancer failed to answer: a
            // lease served during its refresh is at most one round trip late
            *stale = e->failed;
            return gw_lease_ref(e->lease);
        case S_USE_WAIT:
            break;
    }
    if (!e->asking && !s_ask(self, e, client, rid)) {
        // no router connected at all: the last lease, stale, or none (503)
        if (e->lease == NULL)
            return NULL;
        s_failed(self, e);
        *stale = true;
        return gw_lease_ref(e->lease);
    }
    // wait for the answer of the ask in flight
    waiter->entry = e;
    waiter->prev = NULL;
    waiter->next = e->waiters;
    if (e->waiters)
        e->waiters->prev = waiter;
    e->waiters = waiter;
    *pending = true;
    return NULL;
}

void
gw_leases_cancel(gw_leases_t *self, gw_waiter_t *w)
{
    (void) self;
    s_entry_t *e = w->entry;
    if (e == NULL)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->waiters = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    w->entry = NULL;
}

void
gw_leases_on_config(gw_leases_t *self, uint64_t version)
{
    if (version > self->min_version)
        self->min_version = version;
}

//  e's lease is not reused before an answer; a failure seen before this
//  does not count (the next ask is made, and waited for, first).
static void
s_must_ask(s_entry_t *e)
{
    e->must_ask = true;
    e->failed = false;
    e->retry_ms = 0;
}

void
gw_leases_expire_all(gw_leases_t *self)
{
    for (proto_link_t *l = self->lru.head; l; l = l->next)
        s_must_ask(S_ENTRY(l));
}

//  healthd's verdict on backend of route, in every cached lease of route:
//  its candidate is marked failed (down) or not (up). Down invalidates the
//  leases that hold it (an answer is waited for). Up invalidates the leases
//  that lack it (decided while it was down: perhaps no_backend), but keeps
//  a failure seen (the router away, serving it stale costs nothing more
//  than before); a lease that holds it only expires (refreshed while it
//  serves, the backend no longer skipped). Returns how many expired.
static size_t
s_backend_state(gw_leases_t *self, const char *route, const char *backend, bool up)
{
    size_t n = 0;
    if (route == NULL || backend == NULL)
        return 0;
    for (proto_link_t *link = self->lru.head; link; link = link->next) {
        s_entry_t *e = S_ENTRY(link);
        gw_lease_t *l = e->lease;
        if (l == NULL || strcmp(l->route, route) != 0)
            continue;
        bool held = false;
        for (uint32_t i = 0; i < l->ncands && !held; i++)
            if (strcmp(l->cands[i].id, backend) == 0) {
                l->cands[i].failed = !up;
                held = true;
            }
        if (!up && held) {
            s_must_ask(e);
        } else if (up && held) {
            e->expires_ms = 0;
        } else if (up) {
            e->must_ask = true;
            e->retry_ms = 0;
        }
        if (up || held)
            n++;
    }
    return n;
}

size_t
gw_leases_backend_down(gw_leases_t *self, const char *route, const char *backend)
{
    return s_backend_state(self, route, backend, false);
}

size_t
gw_leases_backend_up(gw_leases_t *self, const char *route, const char *backend)
{
    return s_backend_state(self, route, backend, true);
}

uint64_t
gw_leases_stale(gw_leases_t *self)
{
    return self->stale;
}

size_t
gw_leases_size(gw_leases_t *self)
{
    return self->lru.count;
}

void
gw_leases_destroy(gw_leases_t **self_p)
{
    gw_leases_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->lru.head)
        s_entry_free(self, S_ENTRY(self->lru.head));
    free(self->gw_region);
    free(self);
    *self_p = NULL;
}
