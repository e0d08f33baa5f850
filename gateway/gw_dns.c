/*  gw_dns - the gateway's cache of backend host names (see gw_dns.h).

    Entries live in a chained hash table and an LRU list. An entry holds the
    last good answer (addresses without a port, sorted, so that two answers
    compare whatever order the server gave), when it is due again, the
    query in flight if any, and the requests waiting for it (oldest first).
    Entries with a query in flight or waiters are never evicted, so the
    resolver's callback, which carries the entry, always finds it alive;
    destroy frees the resolver first, so no callback comes after.

    Times are the loop's (ev_now): what a timer-driven test moves, and what
    every other watcher of the gateway sees.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "gw_dns.h"
#include "proto_list.h"
#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"

#define S_MIN_BUCKETS 64

typedef struct s_entry {
    char *name;                     // as queried: lower case
    struct sockaddr_storage *addrs; // last good answer (port 0, sorted), or NULL
    size_t count;                   // how many
    size_t turn;                    // rotation: the next answer starts here
    double expires;                 // with addresses: re-resolve from then (ev_now)
    double failed_until;            // without: answer FAILED until then
    uint64_t qid;                   // the query in flight, 0 if none
    bool warned;                    // a failure was logged since the last good answer
    bool waking;                    // its waiters are being called: keep it
    gw_dns_waiter_t *head;          // waiters, oldest first
    gw_dns_waiter_t *tail;          // ... newest
    struct s_entry *hnext;          // hash chain
    proto_link_t lru;               // in the LRU list, most recent first
    gw_dns_t *owner;                // for the resolver's callback
} s_entry_t;

struct gw_dns {
    struct ev_loop *loop;                                     // our loop
    gw_dns_config_t cfg;                                      // settings, defaults applied
    char *servers;                                            // cfg.servers, copied
    proto_resolve_t *resolve;                                 // c-ares on the loop
    s_entry_t **buckets;                                      // by name
    size_t nbuckets;                                          // a power of two
    proto_list_t lru;                                         // entries, most recently used first
    gw_dns_stats_t stats;                                     // counters
    struct sockaddr_storage scratch[PROTO_RESOLVE_MAX_ADDRS]; // borrowed answers
};

// --------------------------------------------------------------------------
// Addresses

static int
s_addr_cmp(const void *a, const void *b)
{
    const struct sockaddr_storage *x = a, *y = b;
    if (x->ss_family != y->ss_family)
        return x->ss_family < y->ss_family ? -1 : 1;
    return memcmp(x, y, proto_resolve_addrlen(x));
}

static void
s_set_port(struct sockaddr_storage *a, uint16_t port)
{
    if (a->ss_family == AF_INET)
        ((struct sockaddr_in *) (void *) a)->sin_port = htons(port);
    else if (a->ss_family == AF_INET6)
        ((struct sockaddr_in6 *) (void *) a)->sin6_port = htons(port);
}

//  The text of a (no port), for logs.
static const char *
s_addr_text(const struct sockaddr_storage *a, char *buf, size_t cap)
{
    const void *raw =
        a->ss_family == AF_INET6
            ? (const void *) &((const struct sockaddr_in6 *) (const void *) a)->sin6_addr
            : (const void *) &((const struct sockaddr_in *) (const void *) a)->sin_addr;
    if (inet_ntop(a->ss_family, raw, buf, (socklen_t) cap) == NULL)
        proto_strlcpy(buf, "?", cap);
    return buf;
}

//  e's addresses with port, rotated, into the scratch array; returns how many.
static size_t
s_fill(gw_dns_t *self, s_entry_t *e, uint16_t port)
{
    size_t start = e->turn % e->count;
    e->turn = start + 1;
    for (size_t i = 0; i < e->count; i++) {
        self->scratch[i] = e->addrs[(start + i) % e->count];
        s_set_port(&self->scratch[i], port);
    }
    return e->count;
}

// --------------------------------------------------------------------------
// Entries

static size_t
s_bucket(const gw_dns_t *self, const char *name)
{
    return (size_t) (proto_fnv1a_str(name) & (self->nbuckets - 1));
}

#define S_ENTRY(link) PROTO_LIST_ENTRY(link, s_entry_t, lru)

static void
s_entry_free(gw_dns_t *self, s_entry_t *e)
{
    s_entry_t **pp = &self->buckets[s_bucket(self, e->name)];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    proto_list_unlink(&self->lru, &e->lru);
    free(e->addrs);
    e->addrs = NULL;
    free(e->name);
    e->name = NULL;
    free(e);
    self->stats.entries--;
}

static bool
s_busy(const s_entry_t *e)
{
    return e->qid != 0 || e->head != NULL || e->waking;
}

//  Drop idle entries, least recently used first, until fewer than limit
//  remain (or only busy ones).
static void
s_evict(gw_dns_t *self, size_t limit)
{
    s_entry_t *e = S_ENTRY(self->lru.tail);
    while (self->stats.entries > limit && e) {
        s_entry_t *prev = S_ENTRY(e->lru.prev);
        if (!s_busy(e))
            s_entry_free(self, e);
        e = prev;
    }
}

static s_entry_t *
s_find(gw_dns_t *self, const char *name)
{
    for (s_entry_t *e = self->buckets[s_bucket(self, name)]; e; e = e->hnext)
        if (strcmp(e->name, name) == 0)
            return e;
    return NULL;
}

static s_entry_t *
s_create(gw_dns_t *self, const char *name)
{
    // make room first: the new entry, idle until its query starts, must not
    // be the one evicted
    s_evict(self, self->cfg.max_entries - 1);
    s_entry_t *e = proto_xcalloc(1, sizeof *e);
    e->owner = self;
    e->name = proto_xstrdup(name);
    size_t b = s_bucket(self, name);
    e->hnext = self->buckets[b];
    self->buckets[b] = e;
    self->stats.entries++;
    proto_list_push_front(&self->lru, &e->lru);
    return e;
}

// --------------------------------------------------------------------------
// Answers

//  Hand the outcome to every waiter of e, oldest first.
static void
s_wake(gw_dns_t *self, s_entry_t *e)
{
    e->waking = true;
    while (e->head) {
        gw_dns_waiter_t *w = e->head;
        e->head = w->next;
        if (e->head)
            e->head->prev = NULL;
        else
            e->tail = NULL;
        w->prev = w->next = NULL;
        w->entry = NULL;
        self->stats.waiting--;
        if (e->count) {
            size_t n = s_fill(self, e, w->port);
            self->cfg.fn(w, GW_DNS_READY, self->scratch, n, self->cfg.arg);
        } else {
            self->stats.failures++;
            self->cfg.fn(w, GW_DNS_FAILED, NULL, 0, self->cfg.arg);
        }
    }
    e->waking = false;
    // callbacks may have added names while this one was kept
    s_evict(self, self->cfg.max_entries);
}

//  A good answer: keep it (sorted), log a change, set the next refresh.
static void
s_take(gw_dns_t *self,
       s_entry_t *e,
       const struct sockaddr_storage *addrs,
       size_t count,
       uint32_t ttl_s,
       double now)
{
    struct sockaddr_storage *fresh = proto_xcalloc(count, sizeof *fresh);
    memcpy(fresh, addrs, count * sizeof *fresh);
    for (size_t i = 0; i < count; i++)
        s_set_port(&fresh[i], 0);
    qsort(fresh, count, sizeof *fresh, s_addr_cmp);
    bool changed = count != e->count;
    for (size_t i = 0; i < count && !changed; i++)
        changed = s_addr_cmp(&fresh[i], &e->addrs[i]) != 0;
    int64_t ttl_ms = (int64_t) ttl_s * 1000;
    if (ttl_ms < self->cfg.min_ttl_ms)
        ttl_ms = self->cfg.min_ttl_ms;
    if (ttl_ms > self->cfg.max_ttl_ms)
        ttl_ms = self->cfg.max_ttl_ms;
    if (changed) {
        char first[INET6_ADDRSTRLEN];
        log_info("backend name resolved", LOG_S("name", e->name), LOG_U("old", e->count),
                 LOG_U("new", count), LOG_S("first", s_addr_text(&fresh[0], first, sizeof first)),
                 LOG_I("ttl_ms", ttl_ms));
        e->turn = 0;
    }
    free(e->addrs);
    e->addrs = fresh;
    e->count = count;
    e->expires = now + (double) ttl_ms / 1000.0;
    e->failed_until = 0;
    e->warned = false;
}

static void
s_on_resolved(void *arg,
              proto_resolve_status_t status,
              const struct sockaddr_storage *addrs,
              size_t count,
              uint32_t ttl_s)
{
    s_entry_t *e = arg;
    gw_dns_t *self = e->owner;
    double now = ev_now(self->loop);
    double negative = (double) self->cfg.negative_ttl_ms / 1000.0;
    e->qid = 0;
    self->stats.resolving--;
    if (status == PROTO_RESOLVE_OK && count > 0) {
        s_take(self, e, addrs, count, ttl_s, now);
    } else if (e->count && status != PROTO_RESOLVE_NOT_FOUND) {
        // a timeout or a server failure says nothing about the name: the
        // old addresses keep serving, and are asked for again a bit later
        if (!e->warned)
            log_warn("backend name not re-resolved, keeping its addresses", LOG_S("name", e->name),
                     LOG_S("reason", proto_resolve_strstatus(status)), LOG_U("count", e->count));
        e->warned = true;
        e->expires = now + negative;
    } else {
        if (e->count)
            log_warn("backend name stopped resolving", LOG_S("name", e->name),
                     LOG_S("reason", proto_resolve_strstatus(status)), LOG_U("old", e->count));
        else if (!e->warned)
            log_warn("backend name does not resolve", LOG_S("name", e->name),
                     LOG_S("reason", proto_resolve_strstatus(status)));
        e->warned = true;
        free(e->addrs);
        e->addrs = NULL;
        e->count = 0;
        e->turn = 0;
        e->failed_until = now + negative;
    }
    s_wake(self, e);
}

//  Start e's query. If it cannot start, e fails (or keeps its addresses)
//  for the negative TTL, and -1 is returned.
static int
s_query(gw_dns_t *self, s_entry_t *e)
{
    proto_resolve_status_t rc = proto_resolve_lookup(self->resolve, e->name, 0, self->cfg.family,
                                                     s_on_resolved, e, &e->qid);
    if (rc == PROTO_RESOLVE_OK) {
        self->stats.queries++;
        self->stats.resolving++;
        return 0;
    }
    // proto_resolve has said why (once); retry after the negative TTL
    double until = ev_now(self->loop) + (double) self->cfg.negative_ttl_ms / 1000.0;
    if (e->count)
        e->expires = until;
    else
        e->failed_until = until;
    return -1;
}

// --------------------------------------------------------------------------
// API

gw_dns_t *
gw_dns_new(struct ev_loop *loop, const gw_dns_config_t *cfg)
{
    assert(loop);
    assert(cfg);
    if (cfg->fn == NULL || cfg->min_ttl_ms < 0 || cfg->max_ttl_ms < 0 || cfg->negative_ttl_ms < 0)
        return NULL;
    gw_dns_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->cfg = *cfg;
    if (self->cfg.min_ttl_ms == 0)
        self->cfg.min_ttl_ms = GW_DNS_MIN_TTL_MS;
    if (self->cfg.max_ttl_ms == 0)
        self->cfg.max_ttl_ms = GW_DNS_MAX_TTL_MS;
    if (self->cfg.negative_ttl_ms == 0)
        self->cfg.negative_ttl_ms = GW_DNS_NEGATIVE_TTL_MS;
    if (self->cfg.max_entries == 0)
        self->cfg.max_entries = GW_DNS_MAX_ENTRIES;
    if (self->cfg.family == 0)
        self->cfg.family = AF_UNSPEC;
    if (self->cfg.min_ttl_ms > self->cfg.max_ttl_ms
        || (self->cfg.family != AF_UNSPEC && self->cfg.family != AF_INET
            && self->cfg.family != AF_INET6))
        goto fail;
    self->servers = cfg->servers ? proto_xstrdup(cfg->servers) : NULL;
    self->cfg.servers = self->servers;
    proto_resolve_opts_t opts = {
        .servers = self->servers, .timeout_ms = cfg->timeout_ms, .tries = cfg->tries};
    self->resolve = proto_resolve_new(loop, &opts);
    if (self->resolve == NULL)
        goto fail;
    self->nbuckets = S_MIN_BUCKETS;
    while (self->nbuckets < self->cfg.max_entries)
        self->nbuckets *= 2;
    self->buckets = proto_xcalloc(self->nbuckets, sizeof *self->buckets);
    return self;
fail:
    gw_dns_destroy(&self);
    return NULL;
}

void
gw_dns_destroy(gw_dns_t **self_p)
{
    assert(self_p);
    gw_dns_t *self = *self_p;
    if (self == NULL)
        return;
    // the resolver first: no callback can come after this
    proto_resolve_destroy(&self->resolve);
    while (self->lru.head) {
        s_entry_t *e = S_ENTRY(self->lru.head);
        for (gw_dns_waiter_t *w = e->head, *next; w; w = next) {
            next = w->next;
            w->prev = w->next = NULL;
            w->entry = NULL;
            self->stats.waiting--;
        }
        e->head = e->tail = NULL;
        s_entry_free(self, e);
    }
    free(self->buckets);
    self->buckets = NULL;
    free(self->servers);
    self->servers = NULL;
    free(self);
    *self_p = NULL;
}

gw_dns_status_t
gw_dns_get(gw_dns_t *self,
           const char *name,
           uint16_t port,
           gw_dns_waiter_t *waiter,
           const struct sockaddr_storage **addrs,
           size_t *count)
{
    assert(self);
    assert(name);
    assert(waiter);
    assert(addrs);
    assert(count);
    *addrs = NULL;
    *count = 0;
    // literals (the caller's job) cost nothing and need no entry
    const char *literal = strcasecmp(name, "localhost") == 0 || strcasecmp(name, "localhost.") == 0
                              ? "127.0.0.1"
                              : name;
    if (proto_resolve_literal(literal, port, AF_UNSPEC, &self->scratch[0]) > 0) {
        *addrs = self->scratch;
        *count = 1;
        return GW_DNS_READY;
    }
    self->stats.lookups++;
    size_t len = strlen(name);
    if (proto_resolve_check_name(name, len) != PROTO_RESOLVE_OK) {
        self->stats.failures++;
        return GW_DNS_FAILED;
    }
    char key[PROTO_RESOLVE_NAME_MAX + 1];
    for (size_t i = 0; i <= len; i++)
        key[i] = (char) ((name[i] >= 'A' && name[i] <= 'Z') ? name[i] - 'A' + 'a' : name[i]);
    s_entry_t *e = s_find(self, key);
    if (e == NULL)
        e = s_create(self, key);
    else
        proto_list_to_front(&self->lru, &e->lru);
    double now = ev_now(self->loop);
    if (e->count) {
        // stale-while-revalidate: past its TTL, it serves while one query runs
        if (e->qid == 0 && now >= e->expires)
            (void) s_query(self, e);
        self->stats.hits++;
        *count = s_fill(self, e, port);
        *addrs = self->scratch;
        return GW_DNS_READY;
    }
    if (e->qid == 0 && (now < e->failed_until || s_query(self, e) != 0)) {
        self->stats.failures++;
        return GW_DNS_FAILED;
    }
    assert(waiter->entry == NULL);
    waiter->entry = e;
    waiter->port = port;
    waiter->next = NULL;
    waiter->prev = e->tail;
    if (e->tail)
        e->tail->next = waiter;
    else
        e->head = waiter;
    e->tail = waiter;
    self->stats.waiting++;
    self->stats.misses++;
    return GW_DNS_PENDING;
}

void
gw_dns_cancel(gw_dns_t *self, gw_dns_waiter_t *w)
{
    assert(self);
    assert(w);
    s_entry_t *e = w->entry;
    if (e == NULL)
        return;
    if (w->prev)
        w->prev->next = w->next;
    else
        e->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        e->tail = w->prev;
    w->prev = w->next = NULL;
    w->entry = NULL;
    self->stats.waiting--;
}

const gw_dns_stats_t *
gw_dns_stats(const gw_dns_t *self)
{
    assert(self);
    return &self->stats;
}
