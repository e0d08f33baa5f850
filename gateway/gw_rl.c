/*  gw_rl - SPEC §4's rateLimit, shared through Redis (see gw_rl.h).

    The table: an entry is named by its slot id, an index into slots, so
    that a batch in flight can name it without holding a pointer: a slot's
    generation goes up whenever its entry is freed, and an answer whose
    (slot, generation) no longer matches, or whose window has rolled over
    since, is dropped. Buckets chain slot ids (FNV-1a with a random seed); a
    doubly linked list of slot ids keeps entries in order of last use, the
    order of eviction. Slots and buckets start small and double as needed,
    up to max_entries.

    The connection (one hiredis async context on the gateway's loop): DOWN
    (waiting for the backoff timer), CONNECTING (AUTH, SELECT and PING
    queued behind the connect, bounded by the attempt timer) and UP. Any
    failure closes it, gives the batch's deltas back and goes DOWN.

    hiredis 0.14 (the rules chat_redis.c follows too): a context frees
    itself after a failed connect (connect callback with an error, no
    disconnect callback) and after a lost connection (the disconnect
    callback), calling every queued callback with a NULL reply first. So
    self->ac is forgotten before anything can free it, every callback
    checks that its context is still self->ac, and a NULL reply is never
    acted on: whoever ends the context says why. redisAsyncFree from inside
    one of the context's callbacks only marks it; hiredis frees it when the
    callback returns.
*/
#include <assert.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/random.h>
#include <unistd.h>

#include <ev.h>
#include <hiredis/adapters/libev.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "gw_rl.h"
#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"

#define S_NONE          UINT32_MAX // no slot
#define S_SLOTS_FIRST   256        // slots and buckets at first
#define S_SWEEP_SLOTS   1024       // slots the sweep looks at per tick
#define S_REASON_MAX    256        // bytes of the degraded reason
#define S_NOW_MAX       1e12       // latest now accepted (seconds since the epoch)
#define S_TIER_WINDOW_S 900        // seed 004: 15 minutes
#define S_TIER_BURST    10         // seed 004: per second
#define S_CHUNK         256        // counts per EVAL (Redis is busy ~2.6 us per count)
//  KEYS: the counts; ARGV: delta and TTL (ms) of each. A delta adds and
//  renews the TTL; 0 only reads. Answers each count, or -1 for a key that
//  holds something else than a count (someone else's value in our names:
//  that count fails, nothing is added to it, the others go on); any other
//  error (OOM, READONLY, ...) fails the whole chunk.
#define S_SCRIPT                                                                                   \
    "local out = {}\n"                                                                             \
    "for i, key in ipairs(KEYS) do\n"                                                              \
    "  local delta = tonumber(ARGV[2 * i - 1])\n"                                                  \
    "  local v\n"                                                                                  \
    "  if delta > 0 then\n"                                                                        \
    "    v = redis.pcall('INCRBY', key, delta)\n"                                                  \
    "  else\n"                                                                                     \
    "    v = redis.pcall('GET', key)\n"                                                            \
    "    if v == false then v = 0 elseif type(v) == 'string' then v = tonumber(v) or -1 end\n"     \
    "  end\n"                                                                                      \
    "  if type(v) == 'table' then\n"                                                               \
    "    if not (string.find(v.err, 'WRONGTYPE', 1, true)\n"                                       \
    "            or string.find(v.err, 'not an integer', 1, true)) then\n"                         \
    "      return redis.error_reply(v.err)\n"                                                      \
    "    end\n"                                                                                    \
    "    v = -1\n"                                                                                 \
    "  elseif delta > 0 then\n"                                                                    \
    "    redis.call('PEXPIRE', key, ARGV[2 * i])\n"                                                \
    "  end\n"                                                                                      \
    "  out[i] = v\n"                                                                               \
    "end\n"                                                                                        \
    "return out\n"
//  "sy:rl:" route length ':' route ':' key ':' window_s ':' index, NUL
#define S_KEY_TEXT_MAX (6 + 3 + 1 + GW_RL_ROUTE_MAX + 1 + GW_RL_KEY_MAX + 1 + 10 + 1 + 20 + 1)

static const struct {
    const char *name;  // the tier's name
    uint32_t requests; // per S_TIER_WINDOW_S
} s_tiers[] = {{"general", 100}, {"strict", 20}, {"auth", 5}};

typedef enum { S_OFF, S_DOWN, S_CONNECTING, S_UP } s_state_t;

//  One window's count.
typedef struct {
    uint64_t index;   // the window's number (now_s / its length); UINT64_MAX before use
    uint32_t global;  // its total in Redis at the last answer (every gateway's)
    uint32_t pending; // allowed here since, not sent yet
    uint32_t sent;    // allowed here, in the batch in flight
} s_count_t;

typedef struct {
    uint64_t hash;     // of route, key and window length (seeded)
    s_count_t window;  // the policy's window
    s_count_t second;  // the burst's one-second window
    uint32_t window_s; // the window's length (part of the identity)
    uint32_t chain;    // next slot in the bucket, S_NONE at the end
    uint32_t newer;    // neighbour towards the most recently used, S_NONE at the end
    uint32_t older;    // neighbour towards the least recently used, S_NONE at the end
    uint8_t route_len; // bytes of the route id at text
    uint8_t key_len;   // bytes of the key after it
    bool burst;        // the last decision had a burst: the second is synced too
    bool queued;       // in self->dirty
    char text[];       // the route id, then the key (not terminated)
} s_entry_t;

typedef struct {
    s_entry_t *entry;   // or NULL while free
    uint32_t gen;       // goes up whenever its entry is freed
    uint32_t next_free; // the next free slot while free
} s_slot_t;

//  An entry as named from outside the table.
typedef struct {
    uint32_t slot; // its slot
    uint32_t gen;  // the slot's generation when named
} s_ref_t;

//  One count sent in the batch in flight.
typedef struct {
    s_ref_t ref;    // the entry
    bool second;    // the burst's count (else the window's)
    uint64_t index; // the window sent
    uint32_t delta; // requests sent (0: a GET)
} s_item_t;

struct gw_rl {
    struct ev_loop *loop;      // the gateway's
    proto_redis_url_t url;     // where to (holds the password: never log it)
    s_state_t state;           // S_OFF without REDIS_URL
    redisAsyncContext *ac;     // the connection, or NULL
    double sync_s;             // tick period
    double connect_timeout_s;  // per attempt
    double command_timeout_s;  // per batch
    double backoff_min_s;      // first wait after a failure
    double backoff_max_s;      // longest wait
    double backoff_s;          // the next wait
    ev_timer tick;             // sweep a little, send a batch
    ev_timer attempt_timer;    // bounds an attempt
    ev_timer retry_timer;      // the wait before the next attempt
    ev_timer batch_timer;      // bounds a batch's answers
    uint64_t seed;             // of the hash
    uint32_t max_entries;      // the bound
    s_slot_t *slots;           // entries by slot id
    uint32_t nslots;           // slots allocated
    uint32_t used;             // slots ever handed out (0 .. used-1 are initialised)
    uint32_t free_head;        // first free slot below used, or S_NONE
    uint32_t *buckets;         // slot id of each chain's first entry, or S_NONE
    uint32_t nbuckets;         // a power of two
    uint32_t newest;           // most recently used entry, or S_NONE
    uint32_t oldest;           // least recently used entry, or S_NONE
    uint32_t sweep_at;         // the next slot the sweep looks at
    s_ref_t *dirty;            // entries used since the last batch
    size_t ndirty;             // how many
    size_t dirty_cap;          // allocated
    s_item_t *items;           // the batch in flight
    size_t nitems;             // how many
    size_t items_cap;          // allocated
    size_t answered;           // items answered so far
    const char **argv;         // an EVAL's arguments (3 + 3 * S_CHUNK)
    size_t *argvlen;           // their lengths
    size_t *offsets;           // their places in text while it is written
    char *text;                // scratch for their texts
    size_t text_len;           // used
    size_t text_cap;           // allocated
    bool in_flight;            // a batch waits for answers
    bool destroying;           // inside gw_rl_destroy
    double clock;              // the last now given to gw_rl_decide
    double clock_at;           // ev_now then (0: no decision yet)
    gw_rl_stats_t stats;       // counters
    char reason[S_REASON_MAX]; // why degraded, "" when not
};

//  --------------------------------------------------------------------------
//  Small helpers

//  The caller's clock, moved on by the loop's time since the last decision.
static double
s_clock(const gw_rl_t *self)
{
    double now = ev_now(self->loop);
    return self->clock_at > 0 ? self->clock + (now - self->clock_at) : now;
}

//  Seconds from now until end, rounded up, at least 1.
static uint32_t
s_seconds_until(double end, double now)
{
    double s = ceil(end - now);
    if (s < 1) {
        return 1;
    }
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t) s;
}

static uint64_t
s_hash(const gw_rl_t *self,
       const char *route,
       size_t route_len,
       const char *key,
       size_t key_len,
       uint32_t window_s)
{
    uint64_t h = proto_fnv1a_more(self->seed, route, route_len);
    h = proto_fnv1a_byte(h, 0);
    h = proto_fnv1a_more(h, key, key_len);
    h = proto_fnv1a_more(h, &window_s, sizeof window_s);
    return h ^ (h >> 32); // the bucket is taken from the low bits
}

static s_entry_t *
s_ref_entry(const gw_rl_t *self, s_ref_t ref)
{
    if (ref.slot >= self->used || self->slots[ref.slot].gen != ref.gen) {
        return NULL;
    }
    return self->slots[ref.slot].entry;
}

//  Start a count's window over when index is another one.
static void
s_roll(gw_rl_t *self, s_count_t *count, uint64_t index, bool window)
{
    if (count->index == index) {
        return;
    }
    if (window) {
        self->stats.unsynced -= (uint64_t) count->pending + count->sent;
    }
    *count = (s_count_t){.index = index};
}

//  --------------------------------------------------------------------------
//  Table

static void
s_lru_unlink(gw_rl_t *self, s_entry_t *e)
{
    if (e->newer != S_NONE) {
        self->slots[e->newer].entry->older = e->older;
    } else {
        self->newest = e->older;
    }
    if (e->older != S_NONE) {
        self->slots[e->older].entry->newer = e->newer;
    } else {
        self->oldest = e->newer;
    }
}

static void
s_lru_push(gw_rl_t *self, uint32_t id, s_entry_t *e)
{
    e->newer = S_NONE;
    e->older = self->newest;
    if (self->newest != S_NONE) {
        self->slots[self->newest].entry->newer = id;
    } else {
        self->oldest = id;
    }
    self->newest = id;
}

static void
s_free_entry(gw_rl_t *self, uint32_t id)
{
    s_slot_t *slot = &self->slots[id];
    s_entry_t *e = slot->entry;
    uint32_t *link = &self->buckets[e->hash & (self->nbuckets - 1)];
    while (*link != id) {
        link = &self->slots[*link].entry->chain;
    }
    *link = e->chain;
    s_lru_unlink(self, e);
    self->stats.unsynced -= (uint64_t) e->window.pending + e->window.sent;
    self->stats.entries--;
    free(e);
    slot->entry = NULL;
    slot->gen++;
    slot->next_free = self->free_head;
    self->free_head = id;
}

static bool
s_expired(const s_entry_t *e, uint64_t now_s)
{
    return e->window.index == UINT64_MAX || e->window.index < now_s / e->window_s;
}

//  The table is full: drop the least recently used entry.
static void
s_evict(gw_rl_t *self)
{
    uint32_t id = self->oldest;
    assert(id != S_NONE);
    if (!s_expired(self->slots[id].entry, (uint64_t) s_clock(self))) {
        self->stats.evicted++;
    }
    s_free_entry(self, id);
}

static uint32_t
s_slot_take(gw_rl_t *self)
{
    if (self->free_head != S_NONE) {
        uint32_t id = self->free_head;
        self->free_head = self->slots[id].next_free;
        return id;
    }
    if (self->used == self->nslots) {
        uint32_t n = self->nslots * 2 < self->max_entries ? self->nslots * 2 : self->max_entries;
        assert(n > self->nslots); // entries < max_entries here
        self->slots = proto_xrealloc(self->slots, n * sizeof *self->slots);
        self->nslots = n;
    }
    self->slots[self->used] = (s_slot_t){.next_free = S_NONE};
    return self->used++;
}

//  Twice as many buckets (load factor back to 1/2).
static void
s_rehash(gw_rl_t *self)
{
    uint32_t n = self->nbuckets * 2;
    free(self->buckets);
    self->buckets = proto_xmalloc(n * sizeof *self->buckets);
    self->nbuckets = n;
    for (uint32_t b = 0; b < n; b++) {
        self->buckets[b] = S_NONE;
    }
    for (uint32_t id = 0; id < self->used; id++) {
        s_entry_t *e = self->slots[id].entry;
        if (e) {
            uint32_t *head = &self->buckets[e->hash & (n - 1)];
            e->chain = *head;
            *head = id;
        }
    }
}

static s_entry_t *
s_find(const gw_rl_t *self,
       uint64_t hash,
       const char *route,
       size_t route_len,
       const char *key,
       size_t key_len,
       uint32_t window_s,
       uint32_t *id_out)
{
    uint32_t id = self->buckets[hash & (self->nbuckets - 1)];
    while (id != S_NONE) {
        s_entry_t *e = self->slots[id].entry;
        if (e->hash == hash && e->window_s == window_s && e->route_len == route_len
            && e->key_len == key_len && memcmp(e->text, route, route_len) == 0
            && memcmp(e->text + route_len, key, key_len) == 0) {
            *id_out = id;
            return e;
        }
        id = e->chain;
    }
    return NULL;
}

static s_entry_t *
s_create(gw_rl_t *self,
         uint64_t hash,
         const char *route,
         size_t route_len,
         const char *key,
         size_t key_len,
         uint32_t window_s,
         uint32_t *id_out)
{
    if (self->stats.entries >= self->max_entries) {
        s_evict(self);
    }
    uint32_t id = s_slot_take(self);
    s_entry_t *e = proto_xcalloc(1, sizeof *e + route_len + key_len);
    e->hash = hash;
    e->window.index = UINT64_MAX;
    e->second.index = UINT64_MAX;
    e->window_s = window_s;
    e->route_len = (uint8_t) route_len;
    e->key_len = (uint8_t) key_len;
    memcpy(e->text, route, route_len);
    memcpy(e->text + route_len, key, key_len);
    self->slots[id].entry = e;
    uint32_t *head = &self->buckets[hash & (self->nbuckets - 1)];
    e->chain = *head;
    *head = id;
    s_lru_push(self, id, e);
    self->stats.entries++;
    if (self->stats.entries > self->nbuckets / 2) {
        s_rehash(self);
    }
    *id_out = id;
    return e;
}

//  Look at up to S_SWEEP_SLOTS slots and free the entries whose window ended.
static void
s_sweep(gw_rl_t *self, uint64_t now_s)
{
    for (uint32_t n = 0; n < S_SWEEP_SLOTS && n < self->used; n++) {
        if (self->sweep_at >= self->used) {
            self->sweep_at = 0;
        }
        uint32_t id = self->sweep_at++;
        s_entry_t *e = self->slots[id].entry;
        if (e && s_expired(e, now_s)) {
            s_free_entry(self, id);
        }
    }
}

//  The entry is to be synced at the next tick.
static void
s_queue(gw_rl_t *self, uint32_t id, s_entry_t *e)
{
    if (self->ndirty == self->dirty_cap) {
        self->dirty_cap = self->dirty_cap ? self->dirty_cap * 2 : 64;
        self->dirty = proto_xrealloc(self->dirty, self->dirty_cap * sizeof *self->dirty);
    }
    self->dirty[self->ndirty++] = (s_ref_t){.slot = id, .gen = self->slots[id].gen};
    e->queued = true;
}

static void
s_unqueue_all(gw_rl_t *self)
{
    for (size_t i = 0; i < self->ndirty; i++) {
        s_entry_t *e = s_ref_entry(self, self->dirty[i]);
        if (e) {
            e->queued = false;
        }
    }
    self->ndirty = 0;
}

//  --------------------------------------------------------------------------
//  Decisions

int
gw_rl_decide(gw_rl_t *self,
             const char *route_id,
             const gw_rl_policy_t *policy,
             const char *key,
             double now,
             gw_rl_result_t *result)
{
    assert(self && result);
    *result = (gw_rl_result_t){.allowed = true};
    if (!route_id || !key || !policy || policy->requests == 0 || policy->window_s == 0
        || !isfinite(now) || now < 0 || now > S_NOW_MAX) {
        return -1;
    }
    size_t route_len = strnlen(route_id, GW_RL_ROUTE_MAX + 1);
    size_t key_len = strnlen(key, GW_RL_KEY_MAX + 1);
    if (route_len == 0 || route_len > GW_RL_ROUTE_MAX || key_len > GW_RL_KEY_MAX) {
        return -1;
    }
    self->clock = now;
    self->clock_at = ev_now(self->loop);
    uint64_t now_s = (uint64_t) now;
    uint32_t window_s = policy->window_s;
    uint32_t limit = policy->requests;
    uint32_t burst = policy->burst;
    if (window_s == 1 && burst) {
        limit = burst < limit ? burst : limit; // one count: the lower limit
        burst = 0;
    }

    uint64_t hash = s_hash(self, route_id, route_len, key, key_len, window_s);
    uint32_t id;
    s_entry_t *e = s_find(self, hash, route_id, route_len, key, key_len, window_s, &id);
    if (!e) {
        e = s_create(self, hash, route_id, route_len, key, key_len, window_s, &id);
    } else if (self->newest != id) {
        s_lru_unlink(self, e);
        s_lru_push(self, id, e);
    }

    uint64_t index = now_s / window_s;
    s_roll(self, &e->window, index, true);
    uint64_t window_used = (uint64_t) e->window.global + e->window.pending + e->window.sent;
    bool window_ok = window_used < limit;
    bool second_ok = true;
    e->burst = burst > 0;
    if (burst) {
        s_roll(self, &e->second, now_s, false);
        second_ok =
            (uint64_t) e->second.global + e->second.pending + e->second.sent < (uint64_t) burst;
    }

    result->limit = limit;
    result->reset_s = s_seconds_until((double) ((index + 1) * window_s), now);
    if (window_ok && second_ok) {
        e->window.pending++;
        self->stats.unsynced++;
        if (burst) {
            e->second.pending++;
        }
        result->remaining = (uint32_t) (limit - window_used - 1);
    } else {
        result->allowed = false;
        result->by_burst = window_ok;
        result->retry_after_s =
            window_ok ? s_seconds_until((double) (now_s + 1), now) : result->reset_s;
        self->stats.limited++;
    }
    self->stats.decisions++;
    if (self->state == S_UP && !e->queued) {
        s_queue(self, id, e);
    }
    return 0;
}

int
gw_rl_tier(const char *name, gw_rl_policy_t *policy)
{
    assert(policy);
    for (size_t i = 0; name && i < PROTO_ARRAY_SIZE(s_tiers); i++) {
        if (strcmp(name, s_tiers[i].name) == 0) {
            *policy = (gw_rl_policy_t){
                .requests = s_tiers[i].requests,
                .window_s = S_TIER_WINDOW_S,
                .burst = S_TIER_BURST,
            };
            return 0;
        }
    }
    return -1;
}

int
gw_rl_headers(const gw_rl_result_t *r, char *buf, size_t len)
{
    assert(r && buf);
    int n;
    if (r->allowed) {
        n = snprintf(buf, len,
                     "RateLimit-Limit: %u\r\nRateLimit-Remaining: %u\r\nRateLimit-Reset: %u\r\n",
                     r->limit, r->remaining, r->reset_s);
    } else {
        n = snprintf(buf, len,
                     "Retry-After: %u\r\nRateLimit-Limit: %u\r\nRateLimit-Remaining: %u\r\n"
                     "RateLimit-Reset: %u\r\n",
                     r->retry_after_s, r->limit, r->remaining, r->reset_s);
    }
    if (n < 0 || (size_t) n >= len) {
        if (len > 0) {
            buf[0] = '\0';
        }
        return -1;
    }
    return n;
}

//  --------------------------------------------------------------------------
//  Batches

static void s_fail(gw_rl_t *self, const char *what, const char *detail);

//  An item's answer (ok: total is the window's count in Redis) or its loss
//  (its requests are sent again with the next batch).
static void
s_settle(gw_rl_t *self, const s_item_t *item, bool ok, uint64_t total)
{
    s_entry_t *e = s_ref_entry(self, item->ref);
    if (!e) {
        return; // freed meanwhile: its counts went with it
    }
    s_count_t *count = item->second ? &e->second : &e->window;
    if (count->index != item->index) {
        return; // rolled over meanwhile
    }
    assert(count->sent >= item->delta);
    count->sent -= item->delta;
    if (ok) {
        count->global = total > UINT32_MAX ? UINT32_MAX : (uint32_t) total;
        if (!item->second) {
            self->stats.unsynced -= item->delta;
        }
    } else {
        count->pending += item->delta;
    }
}

//  The batch in flight ends without its answers.
static void
s_batch_abort(gw_rl_t *self)
{
    for (size_t i = self->answered; i < self->nitems; i++) {
        s_settle(self, &self->items[i], false, 0);
    }
    self->nitems = 0;
    self->answered = 0;
    self->in_flight = false;
    ev_timer_stop(self->loop, &self->batch_timer);
}

//  The answer of a chunk: one count per item, in order.
static void
s_on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    gw_rl_t *self = privdata;
    const redisReply *reply = r;
    if (!reply || ac != self->ac || !self->in_flight || self->answered >= self->nitems) {
        return;
    }
    size_t n = self->nitems - self->answered < S_CHUNK ? self->nitems - self->answered : S_CHUNK;
    if (reply->type == REDIS_REPLY_ERROR) {
        s_fail(self, "answer", reply->str);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != n) {
        s_fail(self, "answer", "not one count per key");
        return;
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *element = reply->element[i];
        if (element->type != REDIS_REPLY_INTEGER || element->integer < -1) {
            s_fail(self, "answer", "not a count");
            return;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const redisReply *element = reply->element[i];
        if (element->integer < 0) {
            self->stats.sync_errors++; // the key holds no count: sent again next time
            s_settle(self, &self->items[self->answered++], false, 0);
        } else {
            s_settle(self, &self->items[self->answered++], true, (uint64_t) element->integer);
        }
    }
    if (self->answered == self->nitems) {
        self->nitems = 0;
        self->answered = 0;
        self->in_flight = false;
        ev_timer_stop(self->loop, &self->batch_timer);
        self->stats.syncs++;
    }
}

//  Put one count of e into the batch (its requests now "sent").
static void
s_collect(gw_rl_t *self, s_ref_t ref, s_entry_t *e, bool second, double now)
{
    s_count_t *count = second ? &e->second : &e->window;
    uint32_t length_s = second ? 1 : e->window_s;
    if (count->index == UINT64_MAX || count->index < (uint64_t) now / length_s) {
        return; // over: nobody decides in it any more
    }
    if (self->nitems == self->items_cap) {
        self->items_cap = self->items_cap ? self->items_cap * 2 : 64;
        self->items = proto_xrealloc(self->items, self->items_cap * sizeof *self->items);
    }
    self->items[self->nitems++] = (s_item_t){
        .ref = ref,
        .second = second,
        .index = count->index,
        .delta = count->pending,
    };
    count->sent += count->pending;
    count->pending = 0;
}

//  Append an argument's text to the scratch (its place in offsets[k], its
//  length in argvlen[k]; the pointers come once every text is in).
static void
s_arg(gw_rl_t *self, size_t k, const char *text, int len)
{
    assert(len > 0);
    size_t n = (size_t) len;
    if (self->text_len + n > self->text_cap) {
        while (self->text_len + n > self->text_cap) {
            self->text_cap = self->text_cap ? self->text_cap * 2 : 4096;
        }
        self->text = proto_xrealloc(self->text, self->text_cap);
    }
    memcpy(self->text + self->text_len, text, n);
    self->offsets[k] = self->text_len;
    self->argvlen[k] = n;
    self->text_len += n;
}

//  Send items [start, start + n) as one EVAL of S_SCRIPT: numkeys, the n
//  keys, then delta and TTL of each. Returns 0, or -1 when hiredis refused
//  it (the connection is going).
static int
s_send_chunk(gw_rl_t *self, size_t start, size_t n, double now)
{
    if (!self->argv) {
        self->argv = proto_xcalloc(3 + 3 * S_CHUNK, sizeof *self->argv);
        self->argvlen = proto_xcalloc(3 + 3 * S_CHUNK, sizeof *self->argvlen);
        self->offsets = proto_xcalloc(3 + 3 * S_CHUNK, sizeof *self->offsets);
    }
    self->text_len = 0;
    char piece[S_KEY_TEXT_MAX];
    int len = snprintf(piece, sizeof piece, "%zu", n);
    s_arg(self, 2, piece, len);
    for (size_t i = 0; i < n; i++) {
        const s_item_t *item = &self->items[start + i];
        const s_entry_t *e = s_ref_entry(self, item->ref);
        assert(e); // nothing is freed between s_collect and here
        uint32_t length_s = item->second ? 1 : e->window_s;
        len = snprintf(piece, sizeof piece, "sy:rl:%u:%.*s:%.*s:%u:%llu", (unsigned) e->route_len,
                       (int) e->route_len, e->text, (int) e->key_len, e->text + e->route_len,
                       length_s, (unsigned long long) item->index);
        assert(len > 0 && (size_t) len < sizeof piece);
        s_arg(self, 3 + i, piece, len);
        len = snprintf(piece, sizeof piece, "%u", item->delta);
        s_arg(self, 3 + n + 2 * i, piece, len);
        double ttl_ms = ((double) (item->index + 1) * length_s - now) * 1000 + GW_RL_TTL_SLACK_MS;
        len = snprintf(piece, sizeof piece, "%llu", (unsigned long long) (ttl_ms > 1 ? ttl_ms : 1));
        s_arg(self, 4 + n + 2 * i, piece, len);
    }
    size_t argc = 3 + 3 * n;
    for (size_t k = 2; k < argc; k++) {
        self->argv[k] = self->text + self->offsets[k];
    }
    self->argv[0] = "EVAL";
    self->argvlen[0] = 4;
    self->argv[1] = S_SCRIPT;
    self->argvlen[1] = sizeof S_SCRIPT - 1;
    return redisAsyncCommandArgv(self->ac, s_on_reply, self, (int) argc, self->argv, self->argvlen)
                   == REDIS_OK
               ? 0
               : -1;
}

//  Send every count used since the last batch: one EVAL per S_CHUNK counts,
//  pipelined.
static void
s_sync(gw_rl_t *self, double now)
{
    self->nitems = 0;
    self->answered = 0;
    for (size_t i = 0; i < self->ndirty; i++) {
        s_ref_t ref = self->dirty[i];
        s_entry_t *e = s_ref_entry(self, ref);
        if (e) {
            e->queued = false;
            s_collect(self, ref, e, false, now);
            if (e->burst) {
                s_collect(self, ref, e, true, now);
            }
        }
    }
    self->ndirty = 0;
    if (self->nitems == 0) {
        return;
    }
    self->in_flight = true;
    for (size_t start = 0; start < self->nitems; start += S_CHUNK) {
        size_t n = self->nitems - start < S_CHUNK ? self->nitems - start : S_CHUNK;
        if (s_send_chunk(self, start, n, now) != 0) {
            s_fail(self, "command", "refused by hiredis");
            return;
        }
    }
    ev_timer_set(&self->batch_timer, self->command_timeout_s, 0.);
    ev_timer_start(self->loop, &self->batch_timer);
}

static void
s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_rl_t *self = w->data;
    double now = s_clock(self);
    s_sweep(self, (uint64_t) now);
    if (self->state == S_UP && !self->in_flight && self->ndirty > 0) {
        s_sync(self, now);
    }
}

static void
s_on_batch_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_rl_t *self = w->data;
    // the batch's counts go back to be sent again: the connection is reset
    // (SO_LINGER 0) so that the old batch, still queued in the kernel on a
    // path that died silently, cannot reach Redis later and count twice
    if (self->ac && self->ac->c.fd >= 0) {
        struct linger now = {.l_onoff = 1, .l_linger = 0};
        (void) setsockopt(self->ac->c.fd, SOL_SOCKET, SO_LINGER, &now, sizeof now);
    }
    s_fail(self, "timeout", "no answer to a batch");
}

//  --------------------------------------------------------------------------
//  Connection

static void
s_close(gw_rl_t *self)
{
    ev_timer_stop(self->loop, &self->attempt_timer);
    redisAsyncContext *ac = self->ac;
    self->ac = NULL;
    if (ac) {
        redisAsyncFree(ac);
    }
}

//  An attempt failed or the connection went: count in memory, wait, try again.
static void
s_fail(gw_rl_t *self, const char *what, const char *detail)
{
    if (self->destroying) {
        return;
    }
    bool was_up = self->state == S_UP;
    snprintf(self->reason, sizeof self->reason, "redis: %s%s%s", what, detail ? ": " : "",
             detail ? detail : "");
    log_warn(was_up ? "rate limit: redis lost, counting in memory"
                    : "rate limit: redis connect failed, counting in memory",
             LOG_S("error", self->reason), LOG_S("host", self->url.host),
             LOG_I("port", self->url.port));
    self->stats.sync_errors++;
    self->stats.degraded = 1;
    s_batch_abort(self);
    s_unqueue_all(self);
    s_close(self);
    self->state = S_DOWN;
    ev_timer_stop(self->loop, &self->retry_timer);
    ev_timer_set(&self->retry_timer, self->backoff_s, 0.);
    ev_timer_start(self->loop, &self->retry_timer);
    self->backoff_s =
        self->backoff_s * 2 < self->backoff_max_s ? self->backoff_s * 2 : self->backoff_max_s;
}

//  The handshake is done: share counts again.
static void
s_up(gw_rl_t *self)
{
    ev_timer_stop(self->loop, &self->attempt_timer);
    self->state = S_UP;
    self->backoff_s = self->backoff_min_s;
    self->stats.degraded = 0;
    self->reason[0] = '\0';
    log_info("rate limit: redis up", LOG_S("host", self->url.host), LOG_I("port", self->url.port));
    // every entry of a current window goes at the next tick: what was
    // counted meanwhile reaches Redis, and the others' counts come back
    uint64_t now_s = (uint64_t) s_clock(self);
    for (uint32_t id = 0; id < self->used; id++) {
        s_entry_t *e = self->slots[id].entry;
        if (e && !e->queued && !s_expired(e, now_s)) {
            s_queue(self, id, e);
        }
    }
}

//  AUTH or SELECT answered: an error ends the attempt.
static void
s_on_handshake_step(redisAsyncContext *ac, void *r, void *privdata)
{
    gw_rl_t *self = privdata;
    const redisReply *reply = r;
    if (!reply || ac != self->ac) {
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s_fail(self, "handshake", reply->str);
    }
}

//  PING answered: up.
static void
s_on_handshake_done(redisAsyncContext *ac, void *r, void *privdata)
{
    gw_rl_t *self = privdata;
    const redisReply *reply = r;
    if (!reply || ac != self->ac || self->state != S_CONNECTING) {
        return;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        s_fail(self, "PING", reply->str);
        return;
    }
    s_up(self);
}

static void
s_on_connect(const redisAsyncContext *ac, int status)
{
    gw_rl_t *self = ac->data;
    if (ac != self->ac || status == REDIS_OK) {
        return;
    }
    self->ac = NULL; // hiredis frees it after this callback
    s_fail(self, "connect", ac->errstr[0] ? ac->errstr : "failed");
}

static void
s_on_disconnect(const redisAsyncContext *ac, int status)
{
    (void) status;
    gw_rl_t *self = ac->data;
    if (ac != self->ac) {
        return; // we closed it
    }
    self->ac = NULL; // hiredis frees it after this callback
    s_fail(self, "connection lost", ac->errstr[0] ? ac->errstr : "closed by the server");
}

static void
s_handshake(gw_rl_t *self)
{
    const proto_redis_url_t *url = &self->url;
    if (url->password[0]) {
        // AUTH password, or AUTH user password (Redis 6 ACL)
        const char *argv[3] = {"AUTH", url->user, url->password};
        size_t argvlen[3] = {4, strlen(url->user), strlen(url->password)};
        int argc = 3;
        if (!url->user[0]) {
            argv[1] = url->password;
            argvlen[1] = argvlen[2];
            argc = 2;
        }
        redisAsyncCommandArgv(self->ac, s_on_handshake_step, self, argc, argv, argvlen);
    }
    if (url->db != 0) {
        char db[24];
        int n = snprintf(db, sizeof db, "%lld", (long long) url->db);
        const char *argv[2] = {"SELECT", db};
        size_t argvlen[2] = {6, (size_t) n};
        redisAsyncCommandArgv(self->ac, s_on_handshake_step, self, 2, argv, argvlen);
    }
    const char *ping = "PING";
    redisAsyncCommandArgv(self->ac, s_on_handshake_done, self, 1, &ping, NULL);
}

static void
s_attempt(gw_rl_t *self)
{
    self->state = S_CONNECTING;
    ev_timer_set(&self->attempt_timer, self->connect_timeout_s, 0.);
    ev_timer_start(self->loop, &self->attempt_timer);
    redisAsyncContext *ac = redisAsyncConnect(self->url.host, self->url.port);
    if (!ac) {
        s_fail(self, "connect", "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        proto_strlcpy(why, ac->errstr, sizeof why);
        redisAsyncFree(ac);
        s_fail(self, "connect", why);
        return;
    }
    ac->data = self;
    self->ac = ac;
    redisEnableKeepAlive(&ac->c); // a server that vanishes without a FIN is noticed
    redisLibevAttach(self->loop, ac);
    redisAsyncSetConnectCallback(ac, s_on_connect);
    redisAsyncSetDisconnectCallback(ac, s_on_disconnect);
    s_handshake(self);
}

static void
s_on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_attempt(w->data);
}

static void
s_on_attempt_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_fail(w->data, "connect timeout", NULL);
}

//  --------------------------------------------------------------------------
//  Lifecycle

static double
s_ms(uint32_t ms, uint32_t fallback)
{
    return (ms ? ms : fallback) / 1000.0;
}

gw_rl_t *
gw_rl_new(struct ev_loop *loop, const gw_rl_config_t *cfg, char *err, size_t errlen)
{
    assert(loop && err && errlen > 0);
    const gw_rl_config_t defaults = {0};
    if (!cfg) {
        cfg = &defaults;
    }
    err[0] = '\0';
    gw_rl_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    ev_timer_init(&self->tick, s_on_tick, 0., 0.);
    self->tick.data = self;
    ev_timer_init(&self->attempt_timer, s_on_attempt_timer, 0., 0.);
    self->attempt_timer.data = self;
    ev_timer_init(&self->retry_timer, s_on_retry_timer, 0., 0.);
    self->retry_timer.data = self;
    ev_timer_init(&self->batch_timer, s_on_batch_timer, 0., 0.);
    self->batch_timer.data = self;

    if (cfg->max_entries > (size_t) 1 << 31) {
        snprintf(err, errlen, "max_entries over 2^31");
        goto fail;
    }
    self->max_entries = cfg->max_entries ? (uint32_t) cfg->max_entries : GW_RL_ENTRIES_MAX;
    self->sync_s = s_ms(cfg->sync_ms, GW_RL_SYNC_MS);
    self->connect_timeout_s = s_ms(cfg->connect_timeout_ms, GW_RL_CONNECT_TIMEOUT_MS);
    self->command_timeout_s = s_ms(cfg->command_timeout_ms, GW_RL_COMMAND_TIMEOUT_MS);
    self->backoff_min_s = s_ms(cfg->backoff_min_ms, GW_RL_BACKOFF_MIN_MS);
    self->backoff_max_s = s_ms(cfg->backoff_max_ms, GW_RL_BACKOFF_MAX_MS);
    if (self->backoff_max_s < self->backoff_min_s) {
        self->backoff_max_s = self->backoff_min_s;
    }
    self->backoff_s = self->backoff_min_s;
    if (cfg->redis_url && cfg->redis_url[0]) {
        if (proto_redis_url_parse(cfg->redis_url, &self->url, err, errlen) != 0) {
            goto fail;
        }
        if (self->url.db < 0 || self->url.db > GW_RL_DB_MAX) {
            snprintf(err, errlen, "database number %lld out of range 0-%d",
                     (long long) self->url.db, GW_RL_DB_MAX);
            goto fail;
        }
        self->state = S_CONNECTING;
        self->stats.degraded = 1;
        snprintf(self->reason, sizeof self->reason, "redis: connecting");
    }

    if (getrandom(&self->seed, sizeof self->seed, GRND_NONBLOCK) != (ssize_t) sizeof self->seed) {
        self->seed = (uint64_t) (ev_time() * 1e9) ^ ((uint64_t) getpid() << 32);
    }
    self->seed = proto_fnv1a_more(PROTO_FNV1A_OFFSET, &self->seed, sizeof self->seed);
    self->nslots = S_SLOTS_FIRST < self->max_entries ? S_SLOTS_FIRST : self->max_entries;
    self->slots = proto_xcalloc(self->nslots, sizeof *self->slots);
    self->free_head = S_NONE;
    self->nbuckets = S_SLOTS_FIRST * 2;
    self->buckets = proto_xmalloc(self->nbuckets * sizeof *self->buckets);
    for (uint32_t b = 0; b < self->nbuckets; b++) {
        self->buckets[b] = S_NONE;
    }
    self->newest = S_NONE;
    self->oldest = S_NONE;

    ev_timer_set(&self->tick, self->sync_s, self->sync_s);
    ev_timer_start(loop, &self->tick);
    if (self->state == S_CONNECTING) {
        s_attempt(self);
    }
    return self;
fail:
    gw_rl_destroy(&self);
    return NULL;
}

void
gw_rl_destroy(gw_rl_t **self_p)
{
    assert(self_p);
    gw_rl_t *self = *self_p;
    if (!self) {
        return;
    }
    self->destroying = true;
    ev_timer_stop(self->loop, &self->tick);
    ev_timer_stop(self->loop, &self->retry_timer);
    ev_timer_stop(self->loop, &self->batch_timer);
    s_close(self);
    for (uint32_t id = 0; id < self->used; id++) {
        free(self->slots[id].entry);
        self->slots[id].entry = NULL;
    }
    free(self->slots);
    self->slots = NULL;
    free(self->buckets);
    self->buckets = NULL;
    free(self->dirty);
    self->dirty = NULL;
    free(self->items);
    self->items = NULL;
    free(self->argv);
    self->argv = NULL;
    free(self->argvlen);
    self->argvlen = NULL;
    free(self->offsets);
    self->offsets = NULL;
    free(self->text);
    self->text = NULL;
    explicit_bzero(self->url.password, sizeof self->url.password);
    free(self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  State

bool
gw_rl_degraded(const gw_rl_t *self, const char **why)
{
    assert(self);
    if (why) {
        *why = self->reason;
    }
    return self->stats.degraded != 0;
}

const gw_rl_stats_t *
gw_rl_stats(const gw_rl_t *self)
{
    assert(self);
    return &self->stats;
}
