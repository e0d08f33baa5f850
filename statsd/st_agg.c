/*  st_agg - per vHost / backend / instance aggregates, bounded. */
#include <stdlib.h>
#include <string.h>

#include "proto_util.h"
#include "st_agg.h"

const double st_agg_le_seconds[ST_AGG_LE_COUNT] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
};
const uint64_t st_agg_le_us[ST_AGG_LE_COUNT] = {
    1000,   2500,   5000,    10000,   25000,   50000,    100000,
    250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

//  An open-addressing index over an entry array: slot holds entry + 1.
typedef struct {
    uint32_t *slots;  // entry index + 1, 0 = empty
    uint64_t *hashes; // the entry's hash, per slot
    unsigned mask;    // slots - 1 (a power of two, at least twice the entries)
} s_index_t;

typedef bool(s_eq_fn)(const void *entry, const void *key);

struct st_agg {
    uint64_t started_ms;                            // "since"
    uint64_t folded;                                // requests counted in an "(other)" series
    st_series_t total;                              // every request
    st_vhost_t *vhosts[ST_AGG_MAX_VHOSTS];          // tracked vHosts
    unsigned nvhosts;                               // how many
    st_vhost_t *vhost_other;                        // the rest, or NULL
    s_index_t vhost_index;                          // by name
    st_backend_t *backends[ST_AGG_MAX_BACKENDS];    // tracked (vHost, backend) pairs
    unsigned nbackends;                             // how many
    st_backend_t *backend_other;                    // the rest, or NULL
    s_index_t backend_index;                        // by vHost and id
    st_failure_t *failures[ST_AGG_MAX_FAILURES];    // backends with upstream failures
    unsigned nfailures;                             // how many
    st_failure_t *failure_other;                    // the rest, or NULL
    s_index_t failure_index;                        // by id
    st_state_t states[ST_AGG_MAX_STATES];           // healthd's reports
    unsigned nstates;                               // how many
    st_instance_t *instances[ST_AGG_MAX_INSTANCES]; // actor instances
    unsigned ninstances;                            // how many
};

typedef struct {
    const char *vhost; // series vHost
    const char *id;    // backend id
} s_backend_key_t;

static void
s_index_init(s_index_t *index, unsigned max_entries)
{
    unsigned n = 16;
    while (n < 2 * max_entries)
        n *= 2;
    index->slots = proto_xcalloc(n, sizeof *index->slots);
    index->hashes = proto_xcalloc(n, sizeof *index->hashes);
    index->mask = n - 1;
}

static void
s_index_free(s_index_t *index)
{
    free(index->slots);
    index->slots = NULL;
    free(index->hashes);
    index->hashes = NULL;
}

//  The entry matching key, or -1 with *free_slot set to where it would go.
static int
s_index_find(const s_index_t *index,
             uint64_t hash,
             void *const *entries,
             s_eq_fn *eq,
             const void *key,
             unsigned *free_slot)
{
    unsigned i = (unsigned) hash & index->mask;
    while (index->slots[i] != 0) {
        unsigned e = index->slots[i] - 1;
        if (index->hashes[i] == hash && eq(entries[e], key))
            return (int) e;
        i = (i + 1) & index->mask;
    }
    *free_slot = i;
    return -1;
}

static void
s_index_put(s_index_t *index, unsigned slot, uint64_t hash, unsigned entry)
{
    index->slots[slot] = entry + 1;
    index->hashes[slot] = hash;
}

static bool
s_vhost_eq(const void *entry, const void *key)
{
    return strcmp(((const st_vhost_t *) entry)->name, key) == 0;
}

static bool
s_backend_eq(const void *entry, const void *key)
{
    const st_backend_t *b = entry;
    const s_backend_key_t *k = key;
    return strcmp(b->id, k->id) == 0 && strcmp(b->vhost, k->vhost) == 0;
}

static bool
s_failure_eq(const void *entry, const void *key)
{
    return strcmp(((const st_failure_t *) entry)->id, key) == 0;
}

st_agg_t *
st_agg_new(uint64_t started_ms)
{
    st_agg_t *self = proto_xcalloc(1, sizeof *self);
    self->started_ms = started_ms;
    s_index_init(&self->vhost_index, ST_AGG_MAX_VHOSTS);
    s_index_init(&self->backend_index, ST_AGG_MAX_BACKENDS);
    s_index_init(&self->failure_index, ST_AGG_MAX_FAILURES);
    return self;
}

void
st_agg_destroy(st_agg_t **self_p)
{
    st_agg_t *self = *self_p;
    if (self == NULL)
        return;
    for (unsigned i = 0; i < self->ninstances; i++)
        free(self->instances[i]);
    for (unsigned i = 0; i < self->nfailures; i++)
        free(self->failures[i]);
    free(self->failure_other);
    for (unsigned i = 0; i < self->nbackends; i++)
        free(self->backends[i]);
    free(self->backend_other);
    for (unsigned i = 0; i < self->nvhosts; i++)
        free(self->vhosts[i]);
    free(self->vhost_other);
    s_index_free(&self->failure_index);
    s_index_free(&self->backend_index);
    s_index_free(&self->vhost_index);
    free(self);
    *self_p = NULL;
}

static void
s_series_add(st_series_t *s, unsigned status, uint64_t us, uint64_t now_ms)
{
    s->requests++;
    if (status >= 400 && status <= 499)
        s->errors_4xx++;
    else if (status >= 500 && status <= 599)
        s->errors_5xx++;
    st_rate_add(&s->rate, now_ms, 1);
    st_latency_add(&s->latency, now_ms, us);
}

static st_vhost_t *
s_vhost(st_agg_t *self, const char *name)
{
    uint64_t hash = proto_fnv1a_str(name);
    unsigned slot = 0;
    int e = s_index_find(&self->vhost_index, hash, (void *const *) self->vhosts, s_vhost_eq, name,
                         &slot);
    if (e >= 0)
        return self->vhosts[e];
    if (self->nvhosts == ST_AGG_MAX_VHOSTS) {
        if (self->vhost_other == NULL) {
            self->vhost_other = proto_xcalloc(1, sizeof *self->vhost_other);
            proto_strlcpy(self->vhost_other->name, ST_AGG_OTHER, sizeof self->vhost_other->name);
        }
        self->folded++;
        return self->vhost_other;
    }
    st_vhost_t *v = proto_xcalloc(1, sizeof *v);
    proto_strlcpy(v->name, name, sizeof v->name);
    s_index_put(&self->vhost_index, slot, hash, self->nvhosts);
    self->vhosts[self->nvhosts++] = v;
    return v;
}

static st_backend_t *
s_backend(st_agg_t *self, const char *vhost, const char *id, const char *route)
{
    s_backend_key_t key = {vhost, id};
    uint64_t hash = proto_fnv1a_str(vhost);
    hash = proto_fnv1a_byte(hash, 0);
    hash = proto_fnv1a_more(hash, id, strlen(id));
    unsigned slot = 0;
    int e = s_index_find(&self->backend_index, hash, (void *const *) self->backends, s_backend_eq,
                         &key, &slot);
    if (e >= 0)
        return self->backends[e];
    if (self->nbackends == ST_AGG_MAX_BACKENDS) {
        if (self->backend_other == NULL) {
            self->backend_other = proto_xcalloc(1, sizeof *self->backend_other);
            proto_strlcpy(self->backend_other->vhost, ST_AGG_OTHER,
                          sizeof self->backend_other->vhost);
            proto_strlcpy(self->backend_other->id, ST_AGG_OTHER, sizeof self->backend_other->id);
        }
        self->folded++;
        return self->backend_other;
    }
    st_backend_t *b = proto_xcalloc(1, sizeof *b);
    proto_strlcpy(b->vhost, vhost, sizeof b->vhost);
    proto_strlcpy(b->id, id, sizeof b->id);
    proto_strlcpy(b->route, route ? route : "", sizeof b->route);
    s_index_put(&self->backend_index, slot, hash, self->nbackends);
    self->backends[self->nbackends++] = b;
    return b;
}

void
st_agg_request(st_agg_t *self, const proto_reqinfo_t *info, uint64_t now_ms)
{
    const char *name = info->vhost ? info->vhost : "";
    unsigned status = info->status;
    uint64_t us = info->duration_us;
    s_series_add(&self->total, status, us, now_ms);
    st_vhost_t *v = s_vhost(self, name);
    s_series_add(&v->s, status, us, now_ms);
    v->codes[status >= 100 && status <= 599 ? status - 100 : ST_AGG_CODES - 1]++;
    unsigned le = 0;
    while (le < ST_AGG_LE_COUNT && us > st_agg_le_us[le])
        le++;
    v->le[le]++;
    v->sum_us += us;
    if (info->backend && info->backend[0]) {
        st_backend_t *b = s_backend(self, v->name, info->backend, info->route);
        s_series_add(&b->s, status, us, now_ms);
    }
}

void
st_agg_failure(st_agg_t *self, const char *backend)
{
    uint64_t hash = proto_fnv1a_str(backend);
    unsigned slot = 0;
    int e = s_index_find(&self->failure_index, hash, (void *const *) self->failures, s_failure_eq,
                         backend, &slot);
    if (e >= 0) {
        self->failures[e]->failures++;
        return;
    }
    if (self->nfailures == ST_AGG_MAX_FAILURES) {
        if (self->failure_other == NULL) {
            self->failure_other = proto_xcalloc(1, sizeof *self->failure_other);
            proto_strlcpy(self->failure_other->id, ST_AGG_OTHER, sizeof self->failure_other->id);
        }
        self->folded++;
        self->failure_other->failures++;
        return;
    }
    st_failure_t *f = proto_xcalloc(1, sizeof *f);
    proto_strlcpy(f->id, backend, sizeof f->id);
    f->failures = 1;
    s_index_put(&self->failure_index, slot, hash, self->nfailures);
    self->failures[self->nfailures++] = f;
}

void
st_agg_state(st_agg_t *self, const char *route, const char *backend, bool up)
{
    for (unsigned i = 0; i < self->nstates; i++)
        if (strcmp(self->states[i].route, route) == 0
            && strcmp(self->states[i].backend, backend) == 0) {
            self->states[i].up = up;
            return;
        }
    if (self->nstates == ST_AGG_MAX_STATES)
        return; // healthd tracks at most what the routes hold; a bound, not a case
    st_state_t *s = &self->states[self->nstates++];
    proto_strlcpy(s->route, route, sizeof s->route);
    proto_strlcpy(s->backend, backend, sizeof s->backend);
    s->up = up;
}

int
st_agg_proc(st_agg_t *self, const proto_proc_stats_t *stats, uint64_t now_ms)
{
    st_instance_t *in = NULL;
    for (unsigned i = 0; i < self->ninstances && in == NULL; i++)
        if (strcmp(self->instances[i]->kind, stats->kind) == 0
            && strcmp(self->instances[i]->instance, stats->instance) == 0)
            in = self->instances[i];
    if (in == NULL) {
        if (self->ninstances == ST_AGG_MAX_INSTANCES)
            return -1;
        in = proto_xcalloc(1, sizeof *in);
        proto_strlcpy(in->kind, stats->kind, sizeof in->kind);
        proto_strlcpy(in->instance, stats->instance, sizeof in->instance);
        self->instances[self->ninstances++] = in;
    }
    in->pid = stats->pid;
    in->cpu_seconds = stats->cpu_seconds;
    in->rss_bytes = stats->rss_bytes;
    in->open_fds = stats->open_fds;
    in->start_time = stats->start_time;
    in->seen_ms = now_ms;
    in->ncounters = 0;
    for (uint32_t i = 0; i < stats->counters_count && i < PROTO_PROC_STATS_COUNTERS_MAX; i++) {
        proto_strlcpy(in->counters[i].name, stats->counters[i].name, sizeof in->counters[i].name);
        in->counters[i].value = stats->counters[i].value;
        in->ncounters++;
    }
    return 0;
}

void
st_agg_expire(st_agg_t *self, uint64_t now_ms, uint64_t max_age_ms)
{
    unsigned kept = 0;
    for (unsigned i = 0; i < self->ninstances; i++) {
        st_instance_t *in = self->instances[i];
        if (in->seen_ms + max_age_ms < now_ms) {
            free(in);
            continue;
        }
        self->instances[kept++] = in;
    }
    for (unsigned i = kept; i < self->ninstances; i++)
        self->instances[i] = NULL;
    self->ninstances = kept;
}

uint64_t
st_agg_since(const st_agg_t *self)
{
    return self->started_ms;
}

const uint64_t *
st_agg_folded(const st_agg_t *self)
{
    return &self->folded;
}

const st_series_t *
st_agg_total(const st_agg_t *self)
{
    return &self->total;
}

const st_vhost_t *
st_agg_vhost(const st_agg_t *self, const char *name)
{
    if (strcmp(name, ST_AGG_OTHER) == 0)
        return self->vhost_other;
    unsigned slot = 0;
    int e = s_index_find(&self->vhost_index, proto_fnv1a_str(name), (void *const *) self->vhosts,
                         s_vhost_eq, name, &slot);
    return e >= 0 ? self->vhosts[e] : NULL;
}

static int
s_cmp_vhost(const void *a, const void *b)
{
    return strcmp((*(const st_vhost_t *const *) a)->name, (*(const st_vhost_t *const *) b)->name);
}

static int
s_cmp_backend(const void *a, const void *b)
{
    const st_backend_t *x = *(const st_backend_t *const *) a, *y = *(const st_backend_t *const *) b;
    int c = strcmp(x->vhost, y->vhost);
    return c ? c : strcmp(x->id, y->id);
}

static int
s_cmp_failure(const void *a, const void *b)
{
    return strcmp((*(const st_failure_t *const *) a)->id, (*(const st_failure_t *const *) b)->id);
}

static int
s_cmp_state(const void *a, const void *b)
{
    const st_state_t *x = *(const st_state_t *const *) a, *y = *(const st_state_t *const *) b;
    int c = strcmp(x->route, y->route);
    return c ? c : strcmp(x->backend, y->backend);
}

static int
s_cmp_instance(const void *a, const void *b)
{
    const st_instance_t *x = *(const st_instance_t *const *) a;
    const st_instance_t *y = *(const st_instance_t *const *) b;
    int c = strcmp(x->kind, y->kind);
    return c ? c : strcmp(x->instance, y->instance);
}

unsigned
st_agg_vhosts(const st_agg_t *self, const st_vhost_t **out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < self->nvhosts; i++)
        out[n++] = self->vhosts[i];
    if (self->vhost_other)
        out[n++] = self->vhost_other;
    qsort(out, n, sizeof *out, s_cmp_vhost);
    return n;
}

unsigned
st_agg_backends(const st_agg_t *self, const st_backend_t **out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < self->nbackends; i++)
        out[n++] = self->backends[i];
    if (self->backend_other)
        out[n++] = self->backend_other;
    qsort(out, n, sizeof *out, s_cmp_backend);
    return n;
}

unsigned
st_agg_failures(const st_agg_t *self, const st_failure_t **out)
{
    unsigned n = 0;
    for (unsigned i = 0; i < self->nfailures; i++)
        out[n++] = self->failures[i];
    if (self->failure_other)
        out[n++] = self->failure_other;
    qsort(out, n, sizeof *out, s_cmp_failure);
    return n;
}

unsigned
st_agg_states(const st_agg_t *self, const st_state_t **out)
{
    for (unsigned i = 0; i < self->nstates; i++)
        out[i] = &self->states[i];
    qsort(out, self->nstates, sizeof *out, s_cmp_state);
    return self->nstates;
}

unsigned
st_agg_instances(const st_agg_t *self, const st_instance_t **out)
{
    for (unsigned i = 0; i < self->ninstances; i++)
        out[i] = self->instances[i];
    qsort(out, self->ninstances, sizeof *out, s_cmp_instance);
    return self->ninstances;
}

//  Sum of counter name over the instances of kind.
static uint64_t
s_counter_sum(const st_agg_t *self, const char *kind, const char *name)
{
    uint64_t sum = 0;
    for (unsigned i = 0; i < self->ninstances; i++) {
        const st_instance_t *in = self->instances[i];
        if (strcmp(in->kind, kind) != 0)
            continue;
        for (unsigned c = 0; c < in->ncounters; c++)
            if (strcmp(in->counters[c].name, name) == 0)
                sum += in->counters[c].value;
    }
    return sum;
}

void
st_agg_chat(const st_agg_t *self, st_chat_t *out)
{
    out->ws_connections = s_counter_sum(self, "gateway", "chat.sessions");
    out->sessions = s_counter_sum(self, "chatd", "chat.sessions");
    out->messages = s_counter_sum(self, "chatd", "chat.messages");
    out->rooms = s_counter_sum(self, "chatd", "chat.rooms");
}

bool
st_agg_backend_up(const st_agg_t *self, const st_backend_t *backend)
{
    for (unsigned i = 0; i < self->nstates; i++)
        if (strcmp(self->states[i].backend, backend->id) == 0
            && strcmp(self->states[i].route, backend->route) == 0)
            return self->states[i].up;
    return true;
}

const char *
st_agg_route_vhost(const st_agg_t *self, const char *route)
{
    for (unsigned i = 0; i < self->nbackends; i++)
        if (strcmp(self->backends[i]->route, route) == 0)
            return self->backends[i]->vhost;
    return NULL;
}
