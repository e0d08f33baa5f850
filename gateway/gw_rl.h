/*  gw_rl - SPEC §4's rateLimit, shared by every gateway through Redis.

    A route's policy is `requests` per window of `window_s` seconds, and
    optionally `burst` per second. Windows are fixed and aligned to the
    epoch (the window's number is now_s / window_s, so every gateway agrees
    on it); the burst is a second limit over one-second windows, counted the
    same way. A request is allowed iff both counts are below their limits;
    only allowed requests count. A window of 1 s with a burst is one count
    limited by the lower of the two.

    The decision is synchronous and local: gw_rl_decide never waits for
    Redis. Each (route, key, window length) has an entry holding, per window
    (the policy's and the burst's second), the total Redis reported at the
    last answer (every gateway's requests), the requests this gateway
    allowed since and not yet sent, and those sent and not yet answered.
    Allowed iff total + not sent + not answered < limit.

    Every sync_ms (GW_RL_SYNC_MS) the counts of the entries used since the
    last sync go to Redis in one batch: one EVAL per 256 counts (pipelined)
    of a script that, for each count's key
        sy:rl:<route length>:<route>:<key>:<window_s>:<index>
    does INCRBY by the requests allowed here since and PEXPIREs the key to
    the window's end + GW_RL_TTL_SLACK_MS (the two atomically: no key is
    left without its TTL), or, when nothing was allowed here since (only
    refusals), a GET; and answers the totals. So an entry in use learns the
    other gateways' counts at every sync even when it only refuses. The
    script, rather than INCRBY and PEXPIRE pipelined, takes less than half
    the gateway's CPU per count (test_rl's bench: 0.5-0.8 us per count with
    -O2, against 1-2 us); Redis spends about 2.6 us per count in it (the
    two commands apart: 1.3 us, plus parsing each), so a chunk holds Redis
    for less than a millisecond.
    (Not for Redis Cluster, whose scripts need their keys in one slot;
    hiredis 0.14 has no cluster support anyway.) The length prefix keeps
    "a:b"+"c" apart from "a"+"b:c" (route ids may, and IPv6 keys do, hold
    colons). The burst's key has window_s 1 and the second as index. At
    most one batch is in flight; a tick that finds one skips.

    Overshoot: a gateway sees the others' requests only up to its last
    answer, so with G gateways a window admits at most limit + (G - 1) * r,
    where r is the most one gateway admits for that key during one sync
    interval plus one round trip to Redis (and never more than G * limit).
    Each gateway alone never goes over the limit. Measured in test_rl with
    two instances.

    Redis unreachable (connect refused, connect timeout, an error answer to
    the handshake or a script, no full answer within command_timeout_ms,
    the connection lost): the connection is closed, the batch's deltas go
    back to "not yet sent", and a new attempt follows after a backoff
    (backoff_min_ms doubling up to backoff_max_ms, back to the first step
    once up). Meanwhile decisions go on from the local counts (what Redis
    said last plus what this gateway allowed since): the memory fallback,
    so G gateways admit at most G * limit per window during an outage.
    gw_rl_degraded() is true, with a reason, from gw_rl_new until the first
    connection is up and from each failure until the next one is; then
    every entry of a current window is synced at the next tick, so the
    deltas kept during the outage reach Redis. Delivery is at least once: a
    batch whose connection is lost after Redis ran it is counted twice
    (towards refusing, never towards admitting more). A key that holds
    something other than a count (someone else's value under sy:rl:) fails
    that count only: counted in sync_errors, decided locally, sent again,
    not degraded. Without a REDIS_URL there is no Redis at all: memory
    only, never degraded.

    REDIS_URL: redis://[[user]:password@]host[:port][/db] (proto_url; AUTH
    and SELECT before the first command). hiredis resolves a host name with
    a blocking getaddrinfo() at each attempt: give an address where that
    matters.

    Memory is bounded: at most max_entries (GW_RL_ENTRIES_MAX) entries, a
    route id of at most GW_RL_ROUTE_MAX bytes and a key of at most
    GW_RL_KEY_MAX bytes. An entry whose window has ended is reused by the
    next decision for it, and freed by a sweep that looks at a bounded
    number of entries every tick. When the table is full the least recently
    used entry is dropped (counted in `evicted` when its window was still
    current): that key's count starts again from what Redis says at the
    next sync (memory only: from zero, so an evicted key fails open). The
    hash is FNV-1a seeded at random per instance, so chains cannot be
    steered from outside with precomputed keys.

    The clock is the caller's: now is wall-clock seconds since the epoch
    (ev_now), the same on every gateway up to clock skew. Between decisions
    the ticks move it on by the loop's time.

    Headers (SPEC §4): RateLimit-Limit is the window's requests,
    RateLimit-Reset the seconds until it ends (at least 1),
    RateLimit-Remaining how many more it admits after this request (0 when
    refused, by either limit); Retry-After, on a refusal only, the seconds
    until the window that refused (the policy's or the burst's second) ends,
    at least 1.
*/
#ifndef GW_RL_H
#define GW_RL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define GW_RL_SYNC_MS            50     // default sync_ms: how often counts go to Redis
#define GW_RL_ENTRIES_MAX        100000 // default max_entries
#define GW_RL_ROUTE_MAX          255    // bytes of a route id
#define GW_RL_KEY_MAX            128    // bytes of a key (a user id or an IP address)
#define GW_RL_DB_MAX             15     // highest database number of REDIS_URL (as chatd)
#define GW_RL_CONNECT_TIMEOUT_MS 1000   // default connect_timeout_ms
#define GW_RL_COMMAND_TIMEOUT_MS 1000   // default command_timeout_ms
#define GW_RL_BACKOFF_MIN_MS     100    // default backoff_min_ms
#define GW_RL_BACKOFF_MAX_MS     5000   // default backoff_max_ms
#define GW_RL_TTL_SLACK_MS       5000   // a Redis count lives this long past its window
#define GW_RL_HEADERS_MAX        160    // bytes gw_rl_headers may need, with the NUL

//  A route's rateLimit.
typedef struct {
    uint32_t requests; // per window, >= 1
    uint32_t window_s; // the window's length in seconds, >= 1
    uint32_t burst;    // per second; 0: none
} gw_rl_policy_t;

//  One decision.
typedef struct {
    bool allowed;           // false: answer 429
    bool by_burst;          // refused by the burst limit (the window had room)
    uint32_t limit;         // RateLimit-Limit
    uint32_t remaining;     // RateLimit-Remaining
    uint32_t reset_s;       // RateLimit-Reset, >= 1
    uint32_t retry_after_s; // Retry-After when refused (>= 1), else 0
} gw_rl_result_t;

typedef struct {
    const char *redis_url;       // REDIS_URL (copied); NULL or "": memory only
    uint32_t sync_ms;            // 0: GW_RL_SYNC_MS
    size_t max_entries;          // 0: GW_RL_ENTRIES_MAX
    uint32_t connect_timeout_ms; // per attempt, handshake included; 0: GW_RL_CONNECT_TIMEOUT_MS
    uint32_t command_timeout_ms; // for a batch's last answer; 0: GW_RL_COMMAND_TIMEOUT_MS
    uint32_t backoff_min_ms;     // wait after the first failure; 0: GW_RL_BACKOFF_MIN_MS
    uint32_t backoff_max_ms;     // doubling up to this; 0: GW_RL_BACKOFF_MAX_MS
} gw_rl_config_t;

//  Counters for pong (live: register each with proto_bus_counter).
typedef struct {
    uint64_t decisions;   // gw_rl_decide calls that decided
    uint64_t limited;     // ... refused (429)
    uint64_t sync_errors; // failed attempts, lost batches, counts refused by Redis (not a number)
    uint64_t evicted;     // entries of a current window dropped because the table was full
    uint64_t syncs;       // batches answered in full
    uint64_t entries;     // entries now
    uint64_t unsynced;    // requests allowed here that Redis has not confirmed (policy windows)
    uint64_t degraded;    // 1 while degraded (gw_rl_degraded), else 0
} gw_rl_stats_t;

typedef struct gw_rl gw_rl_t;

//  Create a limiter on loop (cfg NULL: every default, memory only) and, with
//  a REDIS_URL, start its first connection attempt at once. Returns NULL
//  with err set to one phrase (never the password) if the URL does not
//  parse or max_entries is over 2^31.
gw_rl_t *gw_rl_new(struct ev_loop *loop, const gw_rl_config_t *cfg, char *err, size_t errlen);

//  Close the connection (whatever was not sent is lost), free everything.
//  Sets *self_p to NULL; safe to call twice.
void gw_rl_destroy(gw_rl_t **self_p);

//  Decide one request of route_id (1..GW_RL_ROUTE_MAX bytes) by key (the
//  client's address or user id, 0..GW_RL_KEY_MAX bytes, compared as bytes)
//  under policy at now (see the clock above), and count it if allowed.
//  Never blocks. Returns 0 with *result filled, or -1 for a bad argument
//  (NULL, a length out of bounds, requests or window_s 0, now negative,
//  not finite or past 1e12), with *result saying allowed (fail open) and
//  nothing counted.
int gw_rl_decide(gw_rl_t *self,
                 const char *route_id,
                 const gw_rl_policy_t *policy,
                 const char *key,
                 double now,
                 gw_rl_result_t *result);

//  The policy of a tier of seed 004: "general" 100 per 15 min, "strict" 20,
//  "auth" 5, each with a burst of 10 per second. Returns 0 with *policy
//  filled, or -1 for another name.
int gw_rl_tier(const char *name, gw_rl_policy_t *policy);

//  Write r's header lines into buf (len bytes; GW_RL_HEADERS_MAX is always
//  enough) as `Name: value\r\n`: Retry-After first when refused, then
//  RateLimit-Limit, RateLimit-Remaining and RateLimit-Reset. Returns the
//  length written (buf NUL-terminated), or -1 if len is too small.
int gw_rl_headers(const gw_rl_result_t *r, char *buf, size_t len);

//  True while counts are not shared (see above); *why (if why is not NULL)
//  gets a borrowed text saying why, e.g. "redis: connect: Connection
//  refused", "" when not degraded.
bool gw_rl_degraded(const gw_rl_t *self, const char **why);

//  The counters (borrowed, live until gw_rl_destroy).
const gw_rl_stats_t *gw_rl_stats(const gw_rl_t *self);

#endif
