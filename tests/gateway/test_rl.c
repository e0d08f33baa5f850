/*  test_rl - unit tests for gw_rl, the rate limit shared through Redis.

    Memory-only tests need no server. The others start a real redis-server
    (t_redis, on a free port, by PID) and run the instances on one real
    libev loop: two gw_rl on one loop and one Redis are two gateways. Waits
    run the loop until a condition holds, bounded (t_loop_until); the clock
    of the decisions is the test's (T0 and offsets), so windows never roll
    over by accident. A plain hiredis client looks into Redis, and plays
    "the other gateways" by writing the counts directly.

    How a gateway uses gw_rl, in short: gw_rl_new(loop, {REDIS_URL}) once;
    per request of a route with a rateLimit, gw_rl_decide(rl, route id,
    policy, client IP or user id, ev_now(loop), &r), then gw_rl_headers(&r)
    into the response (a 429 when !r.allowed); gw_rl_degraded() for
    /api/health; gw_rl_stats() for pong; gw_rl_destroy() at the end.

    test_bench prints ns per decision (and the CPU of a sync per key); it
    asserts nothing about time.
*/
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <ev.h>
#include <hiredis/hiredis.h>

#include "../../gateway/gw_rl.h"
#include "proto_log.h"
#include "proto_util.h"
#include "t_loop.h"
#include "t_redis.h"

#define DEADLINE_S 5.0          // no wait in this file may take longer
#define T0         1800000000.0 // a start of window for 60, 900 and 3600 s
#define SYNC_MS    20           // sync interval of the instances with Redis
#define PASSWORD   "s3cret-Pa55"

typedef struct {
    struct ev_loop *loop; // the test's loop
    int port;             // Redis's port (a server runs only when pid > 0)
    pid_t pid;            // redis-server, or 0
    gw_rl_t *a;           // gateway A
    gw_rl_t *b;           // gateway B
    gw_rl_t *wait[2];     // s_wait_sync: the instances waited for (or NULL)
    uint64_t syncs[2];    // ... and their syncs before
} fx_t;

//  --------------------------------------------------------------------------
//  Fixture and helpers

static int
s_setup(void **state)
{
    fx_t *fx = proto_xcalloc(1, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
    fx->port = t_redis_free_port();
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fx_t *fx = *state;
    gw_rl_destroy(&fx->a);
    gw_rl_destroy(&fx->b);
    if (fx->pid > 0) {
        kill(fx->pid, SIGCONT); // test_timeout stops it
    }
    t_redis_stop(&fx->pid, SIGTERM);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

//  A limiter with Redis at the fixture's port (redis false: memory only).
static gw_rl_t *
s_new(fx_t *fx, bool redis, size_t max_entries)
{
    char url[64];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", fx->port);
    gw_rl_config_t cfg = {
        .redis_url = redis ? url : NULL,
        .sync_ms = SYNC_MS,
        .max_entries = max_entries,
        .connect_timeout_ms = 500,
        .command_timeout_ms = 500,
        .backoff_min_ms = 20,
        .backoff_max_ms = 200,
    };
    char err[160];
    gw_rl_t *rl = gw_rl_new(fx->loop, &cfg, err, sizeof err);
    if (!rl) {
        fail_msg("gw_rl_new: %s", err);
    }
    return rl;
}

//  Decide and return whether allowed.
static bool
s_decide(gw_rl_t *rl,
         const char *route,
         uint32_t requests,
         uint32_t window_s,
         const char *key,
         double now,
         gw_rl_result_t *out)
{
    gw_rl_policy_t policy = {.requests = requests, .window_s = window_s};
    gw_rl_result_t r;
    assert_int_equal(gw_rl_decide(rl, route, &policy, key, now, &r), 0);
    if (out) {
        *out = r;
    }
    return r.allowed;
}

static bool
s_up_a(void *arg)
{
    fx_t *fx = arg;
    return !gw_rl_degraded(fx->a, NULL);
}

static bool
s_up_both(void *arg)
{
    fx_t *fx = arg;
    return !gw_rl_degraded(fx->a, NULL) && !gw_rl_degraded(fx->b, NULL);
}

static bool
s_down_a(void *arg)
{
    fx_t *fx = arg;
    return gw_rl_degraded(fx->a, NULL);
}

static void
s_wait(fx_t *fx, bool (*done)(void *), const char *what)
{
    if (!t_loop_until(fx->loop, done, fx, DEADLINE_S)) {
        fail_msg("not %s within %.1f s", what, DEADLINE_S);
    }
}

static bool
s_synced(void *arg)
{
    fx_t *fx = arg;
    for (int i = 0; i < 2; i++) {
        const gw_rl_stats_t *st = fx->wait[i] ? gw_rl_stats(fx->wait[i]) : NULL;
        if (st && (st->syncs <= fx->syncs[i] || st->unsynced != 0)) {
            return false;
        }
    }
    return true;
}

//  Run until x's next batch (and y's, unless NULL) is answered in full:
//  every decision made before the call has reached Redis and its answer is
//  back. Each must have something to sync (a decision since its last batch).
static void
s_wait_sync(fx_t *fx, gw_rl_t *x, gw_rl_t *y)
{
    fx->wait[0] = x;
    fx->wait[1] = y;
    for (int i = 0; i < 2; i++) {
        fx->syncs[i] = fx->wait[i] ? gw_rl_stats(fx->wait[i])->syncs : 0;
    }
    if (!t_loop_until(fx->loop, s_synced, fx, DEADLINE_S)) {
        fail_msg("no sync within %.1f s", DEADLINE_S);
    }
}

//  The Redis key of a window (the format gw_rl.h documents).
static void
s_key(char *out, size_t cap, const char *route, const char *key, uint32_t window_s, double now)
{
    snprintf(out, cap, "sy:rl:%zu:%s:%s:%u:%llu", strlen(route), route, key, window_s,
             (unsigned long long) ((uint64_t) now / window_s));
}

//  A plain client on the fixture's server (password, db as given).
static redisContext *
s_client(fx_t *fx, const char *password, int db)
{
    redisContext *c = redisConnect("127.0.0.1", fx->port);
    assert_true(c && !c->err);
    redisReply *reply;
    if (password) {
        reply = redisCommand(c, "AUTH %s", password);
        assert_true(reply && reply->type == REDIS_REPLY_STATUS);
        freeReplyObject(reply);
    }
    reply = redisCommand(c, "SELECT %d", db);
    assert_true(reply && reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);
    return c;
}

//  GET key as a number; -1 for nil.
static long long
s_get(redisContext *c, const char *key)
{
    redisReply *reply = redisCommand(c, "GET %s", key);
    assert_non_null(reply);
    long long v = -1;
    if (reply->type == REDIS_REPLY_STRING) {
        v = strtoll(reply->str, NULL, 10);
    } else {
        assert_int_equal(reply->type, REDIS_REPLY_NIL);
    }
    freeReplyObject(reply);
    return v;
}

static long long
s_ttl_ms(redisContext *c, const char *key)
{
    redisReply *reply = redisCommand(c, "PTTL %s", key);
    assert_true(reply && reply->type == REDIS_REPLY_INTEGER);
    long long v = reply->integer;
    freeReplyObject(reply);
    return v;
}

static void
s_command(redisContext *c, const char *command, const char *key, long long n)
{
    redisReply *reply = n >= 0 ? redisCommand(c, "%s %s %lld", command, key, n)
                               : redisCommand(c, "%s %s", command, key);
    assert_true(reply && reply->type == REDIS_REPLY_INTEGER);
    freeReplyObject(reply);
}

static double
s_seconds(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

//  --------------------------------------------------------------------------
//  Memory only

static void
test_tiers(void **state)
{
    (void) state;
    gw_rl_policy_t p;
    assert_int_equal(gw_rl_tier("general", &p), 0);
    assert_int_equal(p.requests, 100);
    assert_int_equal(p.window_s, 900);
    assert_int_equal(p.burst, 10);
    assert_int_equal(gw_rl_tier("strict", &p), 0);
    assert_int_equal(p.requests, 20);
    assert_int_equal(gw_rl_tier("auth", &p), 0);
    assert_int_equal(p.requests, 5);
    assert_int_equal(p.window_s, 900);
    assert_int_equal(p.burst, 10);
    assert_int_equal(gw_rl_tier("General", &p), -1);
    assert_int_equal(gw_rl_tier("", &p), -1);
    assert_int_equal(gw_rl_tier(NULL, &p), -1);
}

//  5 per minute: five allowed with Remaining counting down, then 429s with
//  Retry-After until the window's end; keys and routes apart.
static void
test_memory_limit(void **state)
{
    fx_t *fx = *state;
    fx->a = s_new(fx, false, 0);
    const char *why = NULL;
    assert_false(gw_rl_degraded(fx->a, &why));
    assert_string_equal(why, "");
    gw_rl_result_t r;
    for (uint32_t i = 0; i < 5; i++) {
        assert_true(s_decide(fx->a, "api", 5, 60, "10.0.0.1", T0 + 0.5, &r));
        assert_int_equal(r.limit, 5);
        assert_int_equal(r.remaining, 4 - i);
        assert_int_equal(r.reset_s, 60); // 59.5 s, rounded up
        assert_int_equal(r.retry_after_s, 0);
        assert_false(r.by_burst);
    }
    assert_false(s_decide(fx->a, "api", 5, 60, "10.0.0.1", T0 + 0.5, &r));
    assert_int_equal(r.limit, 5);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.reset_s, 60);
    assert_int_equal(r.retry_after_s, 60);
    assert_false(r.by_burst);
    assert_false(s_decide(fx->a, "api", 5, 60, "10.0.0.1", T0 + 30.25, &r));
    assert_int_equal(r.reset_s, 30);
    assert_int_equal(r.retry_after_s, 30);
    assert_false(s_decide(fx->a, "api", 5, 60, "10.0.0.1", T0 + 59.999, &r));
    assert_int_equal(r.retry_after_s, 1);

    // another key, another route: counted apart (bytes, IPv6 colons included)
    assert_true(s_decide(fx->a, "api", 5, 60, "10.0.0.2", T0 + 1, &r));
    assert_int_equal(r.remaining, 4);
    assert_true(s_decide(fx->a, "api2", 5, 60, "10.0.0.1", T0 + 1, &r));
    assert_true(s_decide(fx->a, "a:b", 1, 60, "c", T0 + 1, NULL));
    assert_true(s_decide(fx->a, "a", 1, 60, "b:c", T0 + 1, NULL));
    assert_true(s_decide(fx->a, "api", 5, 60, "", T0 + 1, NULL)); // an empty key is a key

    const gw_rl_stats_t *st = gw_rl_stats(fx->a);
    assert_int_equal(st->decisions, 13);
    assert_int_equal(st->limited, 3);
    assert_int_equal(st->entries, 6);
    assert_int_equal(st->unsynced, 10);
    assert_int_equal(st->degraded, 0);
    assert_int_equal(st->sync_errors, 0);
    assert_int_equal(st->evicted, 0);
}

//  Windows are aligned to the epoch: the count starts again at each multiple
//  of window_s, whatever the first request's time.
static void
test_window_reset(void **state)
{
    fx_t *fx = *state;
    fx->a = s_new(fx, false, 0);
    gw_rl_result_t r;
    for (int i = 0; i < 3; i++) {
        assert_true(s_decide(fx->a, "api", 3, 10, "u1", T0 + 9.9, &r));
        assert_int_equal(r.reset_s, 1);
    }
    assert_false(s_decide(fx->a, "api", 3, 10, "u1", T0 + 9.9, &r));
    assert_int_equal(r.retry_after_s, 1);
    assert_true(s_decide(fx->a, "api", 3, 10, "u1", T0 + 10, &r));
    assert_int_equal(r.remaining, 2);
    assert_int_equal(r.reset_s, 10);
    assert_true(s_decide(fx->a, "api", 3, 10, "u1", T0 + 19.99, &r));
    assert_int_equal(r.remaining, 1);
    assert_int_equal(r.reset_s, 1);
    // a window skipped entirely: a fresh count
    assert_true(s_decide(fx->a, "api", 3, 10, "u1", T0 + 45, &r));
    assert_int_equal(r.remaining, 2);
    assert_int_equal(r.reset_s, 5);
    assert_int_equal(gw_rl_stats(fx->a)->unsynced, 1); // ended windows do not count
}

//  burstPerSecond: a second limit over one-second windows.
static void
test_burst(void **state)
{
    fx_t *fx = *state;
    fx->a = s_new(fx, false, 0);
    gw_rl_policy_t p = {.requests = 100, .window_s = 900, .burst = 3};
    gw_rl_result_t r;
    for (uint32_t i = 0; i < 3; i++) {
        assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", T0 + 0.25, &r), 0);
        assert_true(r.allowed);
        assert_int_equal(r.remaining, 99 - i);
    }
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", T0 + 0.75, &r), 0);
    assert_false(r.allowed);
    assert_true(r.by_burst);
    assert_int_equal(r.retry_after_s, 1);
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.limit, 100);
    assert_int_equal(r.reset_s, 900);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", T0 + 1, &r), 0); // the next second
    assert_true(r.allowed);
    assert_int_equal(r.remaining, 96); // refusals did not count

    // the window binds before the burst: Retry-After is the window's
    p = (gw_rl_policy_t){.requests = 5, .window_s = 900, .burst = 3};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gw_rl_decide(fx->a, "api", &p, "w", T0 + 2, &r), 0);
        assert_true(r.allowed);
    }
    for (int i = 0; i < 2; i++) {
        assert_int_equal(gw_rl_decide(fx->a, "api", &p, "w", T0 + 3.5, &r), 0);
        assert_true(r.allowed);
    }
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "w", T0 + 4.5, &r), 0);
    assert_false(r.allowed);
    assert_false(r.by_burst);
    assert_int_equal(r.retry_after_s, 896); // 895.5 s, rounded up

    // a one-second window with a burst: one count, the lower limit
    p = (gw_rl_policy_t){.requests = 10, .window_s = 1, .burst = 2};
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "s", T0 + 7.5, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(r.limit, 2);
    assert_int_equal(r.remaining, 1);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "s", T0 + 7.6, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "s", T0 + 7.7, &r), 0);
    assert_false(r.allowed);
    assert_int_equal(r.retry_after_s, 1);
}

static void
test_headers(void **state)
{
    (void) state;
    char buf[GW_RL_HEADERS_MAX];
    gw_rl_result_t r = {.allowed = true, .limit = 100, .remaining = 99, .reset_s = 873};
    const char *want =
        "RateLimit-Limit: 100\r\nRateLimit-Remaining: 99\r\nRateLimit-Reset: 873\r\n";
    assert_int_equal(gw_rl_headers(&r, buf, sizeof buf), (int) strlen(want));
    assert_string_equal(buf, want);
    r = (gw_rl_result_t){
        .allowed = false, .limit = 5, .remaining = 0, .reset_s = 60, .retry_after_s = 60};
    want = "Retry-After: 60\r\nRateLimit-Limit: 5\r\nRateLimit-Remaining: 0\r\n"
           "RateLimit-Reset: 60\r\n";
    assert_int_equal(gw_rl_headers(&r, buf, sizeof buf), (int) strlen(want));
    assert_string_equal(buf, want);
    // too small: -1, and nothing half-written
    assert_int_equal(gw_rl_headers(&r, buf, strlen(want)), -1);
    assert_string_equal(buf, "");
    // the largest values fit GW_RL_HEADERS_MAX
    r = (gw_rl_result_t){.limit = UINT32_MAX,
                         .remaining = UINT32_MAX,
                         .reset_s = UINT32_MAX,
                         .retry_after_s = UINT32_MAX};
    assert_true(gw_rl_headers(&r, buf, sizeof buf) > 0);
}

static void
s_url_refused(fx_t *fx, const char *url, const char *what)
{
    gw_rl_config_t cfg = {.redis_url = url};
    char err[160] = "";
    gw_rl_t *rl = gw_rl_new(fx->loop, &cfg, err, sizeof err);
    if (rl) {
        gw_rl_destroy(&rl);
        fail_msg("'%s' accepted", url);
    }
    assert_true(err[0] != '\0');
    if (!strstr(err, what)) {
        fail_msg("'%s': error '%s' does not say '%s'", url, err, what);
    }
    assert_null(strstr(err, "hunter2"));
}

//  A bad REDIS_URL is refused with a reason (never the password); bad
//  arguments to decide fail open and count nothing.
static void
test_bad_arguments(void **state)
{
    fx_t *fx = *state;
    s_url_refused(fx, "http://127.0.0.1:6379", "");
    s_url_refused(fx, "redis://", "");
    s_url_refused(fx, "redis://:hunter2@127.0.0.1:70000", "");
    s_url_refused(fx, "redis://:hunter2@127.0.0.1:6379/16", "out of range");
    s_url_refused(fx, "redis://127.0.0.1:6379/x", "");
    gw_rl_config_t big = {.max_entries = ((size_t) 1 << 31) + 1};
    char err[160];
    assert_null(gw_rl_new(fx->loop, &big, err, sizeof err));
    assert_string_equal(err, "max_entries over 2^31");

    fx->a = s_new(fx, false, 0);
    gw_rl_policy_t p = {.requests = 1, .window_s = 60};
    gw_rl_result_t r;
    char long_route[GW_RL_ROUTE_MAX + 2];
    memset(long_route, 'r', sizeof long_route - 1);
    long_route[sizeof long_route - 1] = '\0';
    char long_key[GW_RL_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = '\0';
    assert_int_equal(gw_rl_decide(fx->a, "", &p, "k", T0, &r), -1);
    assert_true(r.allowed);
    assert_int_equal(gw_rl_decide(fx->a, NULL, &p, "k", T0, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, NULL, T0, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, "api", NULL, "k", T0, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, long_route, &p, "k", T0, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, long_key, T0, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", -1, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", NAN, &r), -1);
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", INFINITY, &r), -1);
    p.requests = 0;
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", T0, &r), -1);
    p = (gw_rl_policy_t){.requests = 1, .window_s = 0};
    assert_int_equal(gw_rl_decide(fx->a, "api", &p, "k", T0, &r), -1);
    assert_true(r.allowed);
    assert_int_equal(gw_rl_stats(fx->a)->decisions, 0);
    assert_int_equal(gw_rl_stats(fx->a)->entries, 0);
    // the longest route and key are fine
    long_route[GW_RL_ROUTE_MAX] = '\0';
    long_key[GW_RL_KEY_MAX] = '\0';
    p.window_s = 60;
    assert_int_equal(gw_rl_decide(fx->a, long_route, &p, long_key, T0, &r), 0);
    assert_true(r.allowed);
    assert_int_equal(gw_rl_decide(fx->a, long_route, &p, long_key, T0, &r), 0);
    assert_false(r.allowed);
}

static bool
s_entries_one(void *arg)
{
    fx_t *fx = arg;
    return gw_rl_stats(fx->a)->entries == 1;
}

//  At most max_entries: the least recently used goes (and fails open); the
//  sweep frees entries whose window ended.
static void
test_eviction(void **state)
{
    fx_t *fx = *state;
    fx->a = s_new(fx, false, 100);
    char key[32];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof key, "10.1.%d.%d", i / 256, i % 256);
        assert_true(s_decide(fx->a, "api", 1, 3600, key, T0 + 1, NULL));
    }
    const gw_rl_stats_t *st = gw_rl_stats(fx->a);
    assert_int_equal(st->entries, 100);
    assert_int_equal(st->evicted, 900);
    assert_int_equal(st->unsynced, 100);
    // the last 100 are still counted
    assert_false(s_decide(fx->a, "api", 1, 3600, "10.1.3.231", T0 + 2, NULL)); // i = 999
    assert_false(s_decide(fx->a, "api", 1, 3600, "10.1.3.132", T0 + 2, NULL)); // i = 900
    // an evicted key starts again from zero: fails open
    assert_true(s_decide(fx->a, "api", 1, 3600, "10.1.0.0", T0 + 2, NULL));
    assert_int_equal(st->evicted, 901);
    assert_int_equal(st->entries, 100);

    // the next hour: the sweep frees every entry of the last one; the one
    // that made room for the new entry was over, so not counted as evicted
    assert_true(s_decide(fx->a, "other", 1, 3600, "x", T0 + 3600, NULL));
    s_wait(fx, s_entries_one, "swept");
    assert_int_equal(st->evicted, 901);
    assert_int_equal(st->unsynced, 1);
    assert_int_equal(st->degraded, 0);
}

//  --------------------------------------------------------------------------
//  With Redis

//  Two gateways: each round both admit up to k requests, then both sync
//  (a request rate of k per gateway per sync interval). Returns the total
//  admitted; the shared count in Redis must be exactly that.
static int
s_lockstep(fx_t *fx, const char *key, uint32_t limit, int k)
{
    int admitted_a = 0, admitted_b = 0;
    for (int round = 0; round < 1000; round++) {
        int admitted = 0;
        for (int i = 0; i < k; i++) {
            if (s_decide(fx->a, "api", limit, 3600, key, T0 + 5, NULL)) {
                admitted_a++;
                admitted++;
            }
            if (s_decide(fx->b, "api", limit, 3600, key, T0 + 5, NULL)) {
                admitted_b++;
                admitted++;
            }
        }
        s_wait_sync(fx, fx->a, fx->b);
        if (admitted == 0) {
            break;
        }
    }
    int total = admitted_a + admitted_b;
    print_message("two gateways, limit %u, %d requests per gateway per sync: A admitted %d, "
                  "B %d, total %d (overshoot %d, bound %d)\n",
                  limit, k, admitted_a, admitted_b, total, total - (int) limit, k);
    char rkey[128];
    s_key(rkey, sizeof rkey, "api", key, 3600, T0 + 5);
    redisContext *c = s_client(fx, NULL, 0);
    assert_int_equal(s_get(c, rkey), total);
    long long ttl = s_ttl_ms(c, rkey);
    assert_true(ttl > 0 && ttl <= (3600 - 5) * 1000 + GW_RL_TTL_SLACK_MS);
    redisFree(c);
    return total;
}

//  Two instances on one Redis share one limit: the total over both is at
//  most limit + (G - 1) * r (G = 2; r = k, what one admits per interval),
//  and far from 2 * limit.
static void
test_shared_limit(void **state)
{
    fx_t *fx = *state;
    fx->pid = t_redis_start(fx->port, NULL);
    fx->a = s_new(fx, true, 0);
    fx->b = s_new(fx, true, 0);
    s_wait(fx, s_up_both, "up");
    const int rates[] = {1, 7, 25};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(rates); i++) {
        char key[32];
        snprintf(key, sizeof key, "10.2.0.%zu", i);
        int total = s_lockstep(fx, key, 100, rates[i]);
        assert_true(total >= 100);
        assert_true(total <= 100 + rates[i]);
        assert_true(total < 2 * 100);
    }
    assert_int_equal(gw_rl_stats(fx->a)->sync_errors, 0);
    assert_int_equal(gw_rl_stats(fx->b)->sync_errors, 0);
}

//  An entry in use learns the others' counts at each sync: INCRBY answers
//  the new total, and a refusal (nothing to add) sends a GET.
static void
test_learns_others(void **state)
{
    fx_t *fx = *state;
    fx->pid = t_redis_start(fx->port, NULL);
    fx->a = s_new(fx, true, 0);
    s_wait(fx, s_up_a, "up");
    char rkey[128];
    s_key(rkey, sizeof rkey, "api", "u", 3600, T0);
    redisContext *c = s_client(fx, NULL, 0);

    gw_rl_result_t r;
    assert_true(s_decide(fx->a, "api", 10, 3600, "u", T0, &r));
    s_wait_sync(fx, fx->a, NULL);
    assert_int_equal(s_get(c, rkey), 1);
    s_command(c, "INCRBY", rkey, 20); // the other gateways: 21 now
    // A's view is one sync old: it admits once more (the documented
    // overshoot), and its answer brings the total
    assert_true(s_decide(fx->a, "api", 10, 3600, "u", T0, &r));
    assert_int_equal(r.remaining, 8);
    s_wait_sync(fx, fx->a, NULL);
    assert_int_equal(s_get(c, rkey), 22);
    assert_false(s_decide(fx->a, "api", 10, 3600, "u", T0, &r));
    assert_int_equal(r.remaining, 0);
    assert_int_equal(r.retry_after_s, 3600);

    // a refusal adds nothing: the sync asks (GET) and learns the count went
    s_wait_sync(fx, fx->a, NULL);
    s_command(c, "DEL", rkey, -1);
    assert_false(s_decide(fx->a, "api", 10, 3600, "u", T0, &r)); // still the old view
    s_wait_sync(fx, fx->a, NULL);
    assert_int_equal(s_get(c, rkey), -1); // a GET creates nothing
    assert_true(s_decide(fx->a, "api", 10, 3600, "u", T0, &r));
    assert_int_equal(r.remaining, 9);
    s_wait_sync(fx, fx->a, NULL);
    assert_int_equal(s_get(c, rkey), 1);
    assert_int_equal(gw_rl_stats(fx->a)->sync_errors, 0);
    redisFree(c);
}

//  Redis goes away: degraded, and the memory fallback keeps limiting from
//  what was known; Redis comes back: not degraded, the counts kept meanwhile
//  reach it, and a second gateway shares them again.
static void
test_outage(void **state)
{
    fx_t *fx = *state;
    fx->pid = t_redis_start(fx->port, NULL);
    fx->a = s_new(fx, true, 0);
    s_wait(fx, s_up_a, "up");
    char rkey[128];
    s_key(rkey, sizeof rkey, "api", "ip", 3600, T0);
    for (int i = 0; i < 3; i++) {
        assert_true(s_decide(fx->a, "api", 10, 3600, "ip", T0, NULL));
    }
    s_wait_sync(fx, fx->a, NULL);

    t_redis_stop(&fx->pid, SIGKILL);
    s_wait(fx, s_down_a, "degraded");
    const char *why = NULL;
    assert_true(gw_rl_degraded(fx->a, &why));
    print_message("degraded: %s\n", why);
    assert_true(strncmp(why, "redis: ", 7) == 0);
    assert_int_equal(gw_rl_stats(fx->a)->degraded, 1);
    int admitted = 0;
    for (int i = 0; i < 20; i++) {
        admitted += s_decide(fx->a, "api", 10, 3600, "ip", T0, NULL);
    }
    assert_int_equal(admitted, 7); // 3 known + 7 in memory
    t_loop_pass(fx->loop, 0.1);    // a few failed attempts (backoff 20 ms doubling)
    assert_true(gw_rl_stats(fx->a)->sync_errors >= 2);
    assert_true(gw_rl_degraded(fx->a, NULL));
    assert_int_equal(gw_rl_stats(fx->a)->unsynced, 7);

    fx->pid = t_redis_start(fx->port, NULL); // a new, empty server
    s_wait(fx, s_up_a, "up again");
    assert_true(gw_rl_degraded(fx->a, &why) == false);
    assert_string_equal(why, "");
    s_wait_sync(fx, fx->a, NULL);
    redisContext *c = s_client(fx, NULL, 0);
    assert_int_equal(s_get(c, rkey), 7); // what was counted meanwhile

    // a second gateway, one request per sync: its first view is empty (one
    // stale admission), then it knows the rest
    fx->b = s_new(fx, true, 0);
    s_wait(fx, s_up_both, "b up");
    int admitted_b = 0;
    for (int i = 0; i < 10; i++) {
        admitted_b += s_decide(fx->b, "api", 10, 3600, "ip", T0, NULL);
        s_wait_sync(fx, fx->b, NULL);
    }
    assert_int_equal(admitted_b, 3);
    assert_int_equal(s_get(c, rkey), 10);
    // a has not used the key since it pushed its 7: at most one stale
    // admission, and its answer brings the total
    int admitted_a = s_decide(fx->a, "api", 10, 3600, "ip", T0, NULL);
    s_wait_sync(fx, fx->a, NULL);
    assert_false(s_decide(fx->a, "api", 10, 3600, "ip", T0, NULL));
    assert_int_equal(s_get(c, rkey), 10 + admitted_a);
    redisFree(c);
}

//  Redis down when the gateway starts: memory only and degraded until it
//  answers; then what was counted is pushed.
static void
test_down_at_start(void **state)
{
    fx_t *fx = *state;
    fx->a = s_new(fx, true, 0);
    const char *why = NULL;
    assert_true(gw_rl_degraded(fx->a, &why));
    assert_true(strncmp(why, "redis: ", 7) == 0);
    int admitted = 0;
    for (int i = 0; i < 8; i++) {
        admitted += s_decide(fx->a, "api", 5, 3600, "ip", T0, NULL);
    }
    assert_int_equal(admitted, 5);
    t_loop_pass(fx->loop, 0.1);
    assert_true(gw_rl_degraded(fx->a, &why));
    print_message("degraded: %s\n", why);
    assert_non_null(strstr(why, "connect"));
    assert_true(gw_rl_stats(fx->a)->sync_errors >= 2);

    fx->pid = t_redis_start(fx->port, NULL);
    s_wait(fx, s_up_a, "up");
    s_wait_sync(fx, fx->a, NULL);
    char rkey[128];
    s_key(rkey, sizeof rkey, "api", "ip", 3600, T0);
    redisContext *c = s_client(fx, NULL, 0);
    assert_int_equal(s_get(c, rkey), 5);
    redisFree(c);
}

static bool
s_errors_two(void *arg)
{
    fx_t *fx = arg;
    return gw_rl_stats(fx->a)->sync_errors >= 2;
}

//  A server that stops answering (SIGSTOP): the batch times out, degraded;
//  attempts time out too (the kernel still accepts); answering again: up, and
//  the delta of the lost batch is sent again (at least once: the stopped
//  server may still run the first one, so 1 or 2 for that request).
static void
test_timeout(void **state)
{
    fx_t *fx = *state;
    fx->pid = t_redis_start(fx->port, NULL);
    fx->a = s_new(fx, true, 0);
    s_wait(fx, s_up_a, "up");
    assert_true(s_decide(fx->a, "api", 10, 3600, "ip", T0, NULL));
    s_wait_sync(fx, fx->a, NULL);

    assert_int_equal(kill(fx->pid, SIGSTOP), 0);
    assert_true(s_decide(fx->a, "api", 10, 3600, "ip", T0, NULL));
    s_wait(fx, s_down_a, "degraded");
    const char *why = NULL;
    assert_true(gw_rl_degraded(fx->a, &why));
    print_message("degraded: %s\n", why);
    assert_non_null(strstr(why, "timeout"));
    s_wait(fx, s_errors_two, "a failed attempt");
    assert_true(gw_rl_degraded(fx->a, &why));
    assert_non_null(strstr(why, "timeout"));
    assert_int_equal(gw_rl_stats(fx->a)->unsynced, 1);

    assert_int_equal(kill(fx->pid, SIGCONT), 0);
    s_wait(fx, s_up_a, "up again");
    s_wait_sync(fx, fx->a, NULL);
    char rkey[128];
    s_key(rkey, sizeof rkey, "api", "ip", 3600, T0);
    redisContext *c = s_client(fx, NULL, 0);
    long long count = s_get(c, rkey);
    print_message("count after the lost batch: %lld for 2 requests\n", count);
    assert_true(count == 2 || count == 3);
    redisFree(c);
}

static bool
s_synced_once(void *arg)
{
    fx_t *fx = arg;
    return gw_rl_stats(fx->a)->syncs > fx->syncs[0];
}

//  Someone else's value under one of our keys fails that count only.
static void
test_foreign_value(void **state)
{
    fx_t *fx = *state;
    fx->pid = t_redis_start(fx->port, NULL);
    fx->a = s_new(fx, true, 0);
    s_wait(fx, s_up_a, "up");
    char bad[128], good[128], text[128];
    s_key(bad, sizeof bad, "api", "bad", 3600, T0);
    s_key(good, sizeof good, "api", "good", 3600, T0);
    s_key(text, sizeof text, "api", "text", 3600, T0);
    redisContext *c = s_client(fx, NULL, 0);
    s_command(c, "LPUSH", bad, 7);
    redisReply *reply = redisCommand(c, "SET %s hello", text);
    assert_true(reply && reply->type == REDIS_REPLY_STATUS);
    freeReplyObject(reply);

    assert_true(s_decide(fx->a, "api", 10, 3600, "bad", T0, NULL));
    assert_true(s_decide(fx->a, "api", 10, 3600, "bad", T0, NULL));
    assert_true(s_decide(fx->a, "api", 10, 3600, "good", T0, NULL));
    assert_true(s_decide(fx->a, "api", 10, 3600, "text", T0, NULL));
    fx->syncs[0] = gw_rl_stats(fx->a)->syncs;
    s_wait(fx, s_synced_once, "synced");
    const gw_rl_stats_t *st = gw_rl_stats(fx->a);
    assert_int_equal(st->sync_errors, 2);
    assert_int_equal(st->unsynced, 3); // bad's 2 and text's 1, kept to be sent again
    assert_false(gw_rl_degraded(fx->a, NULL));
    assert_int_equal(s_get(c, good), 1);
    redisFree(c);
    // decided locally meanwhile: 2 of 10 used
    int admitted = 0;
    for (int i = 0; i < 10; i++) {
        admitted += s_decide(fx->a, "api", 10, 3600, "bad", T0, NULL);
    }
    assert_int_equal(admitted, 8);
}

//  AUTH and SELECT from the URL; a wrong password is a degraded reason that
//  does not hold it.
static void
test_auth_db(void **state)
{
    fx_t *fx = *state;
    fx->pid = t_redis_start(fx->port, PASSWORD);
    char url[128];
    snprintf(url, sizeof url, "redis://:%s@127.0.0.1:%d/3", PASSWORD, fx->port);
    gw_rl_config_t cfg = {.redis_url = url, .sync_ms = SYNC_MS, .backoff_min_ms = 20};
    char err[160];
    fx->a = gw_rl_new(fx->loop, &cfg, err, sizeof err);
    assert_non_null(fx->a);
    s_wait(fx, s_up_a, "up");
    assert_true(s_decide(fx->a, "api", 5, 3600, "ip", T0, NULL));
    assert_true(s_decide(fx->a, "api", 5, 3600, "ip", T0, NULL));
    s_wait_sync(fx, fx->a, NULL);
    char rkey[128];
    s_key(rkey, sizeof rkey, "api", "ip", 3600, T0);
    redisContext *c = s_client(fx, PASSWORD, 3);
    assert_int_equal(s_get(c, rkey), 2);
    redisFree(c);
    c = s_client(fx, PASSWORD, 0);
    assert_int_equal(s_get(c, rkey), -1);
    redisFree(c);
    gw_rl_destroy(&fx->a);

    snprintf(url, sizeof url, "redis://:wrong-%s@127.0.0.1:%d", PASSWORD, fx->port);
    fx->a = gw_rl_new(fx->loop, &cfg, err, sizeof err);
    assert_non_null(fx->a);
    s_wait(fx, s_errors_two, "two failed attempts");
    const char *why = NULL;
    assert_true(gw_rl_degraded(fx->a, &why));
    print_message("degraded: %s\n", why);
    assert_non_null(strstr(why, "handshake"));
    assert_null(strstr(why, PASSWORD));
}

//  --------------------------------------------------------------------------
//  Micro-benchmark (figures printed, nothing asserted about time)

static double
s_bench_hot(gw_rl_t *rl, int n)
{
    gw_rl_policy_t p = {.requests = 1000000000, .window_s = 900, .burst = 0};
    gw_rl_result_t r;
    double start = s_seconds(CLOCK_MONOTONIC);
    for (int i = 0; i < n; i++) {
        (void) gw_rl_decide(rl, "api.example.com", &p, "203.0.113.7", T0 + 1 + i * 1e-7, &r);
    }
    double ns = (s_seconds(CLOCK_MONOTONIC) - start) * 1e9 / n;
    assert_true(r.allowed);
    return ns;
}

static void
test_bench(void **state)
{
    fx_t *fx = *state;
    const int n = 1000000;
    fx->a = s_new(fx, false, 0);
    double memory_ns = s_bench_hot(fx->a, n);
    gw_rl_destroy(&fx->a);

    fx->pid = t_redis_start(fx->port, NULL);
    fx->a = s_new(fx, true, 0);
    s_wait(fx, s_up_a, "up");
    double redis_ns = s_bench_hot(fx->a, n);
    double cpu0 = s_seconds(CLOCK_PROCESS_CPUTIME_ID);
    s_wait_sync(fx, fx->a, NULL);
    double hot_sync_us = (s_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e6;

    // 10,000 keys, one request each: every request is a key in the batch
    const int keys = 10000;
    gw_rl_policy_t p = {.requests = 100, .window_s = 900, .burst = 10};
    gw_rl_result_t r;
    char key[32];
    double start = s_seconds(CLOCK_MONOTONIC);
    for (int i = 0; i < keys; i++) {
        snprintf(key, sizeof key, "198.51.%d.%d", i / 256, i % 256);
        assert_int_equal(gw_rl_decide(fx->a, "api.example.com", &p, key, T0 + 2, &r), 0);
    }
    double cold_ns = (s_seconds(CLOCK_MONOTONIC) - start) * 1e9 / keys;
    cpu0 = s_seconds(CLOCK_PROCESS_CPUTIME_ID);
    s_wait_sync(fx, fx->a, NULL);
    double sync_ns = (s_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0) * 1e9 / keys;
    assert_int_equal(gw_rl_stats(fx->a)->entries, (uint64_t) keys + 1);
    print_message("gw_rl_decide, hot key: %.0f ns memory only, %.0f ns with Redis "
                  "(+ %.0f us CPU for its one sync of 1e6 requests)\n",
                  memory_ns, redis_ns, hot_sync_us);
    print_message("gw_rl_decide, 10,000 new keys with a burst: %.0f ns each, + %.0f ns CPU "
                  "each in the sync (2 counts per key)\n",
                  cold_ns, sync_ns);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiers),
        cmocka_unit_test(test_headers),
        cmocka_unit_test_setup_teardown(test_memory_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_window_reset, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_burst, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_eviction, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_shared_limit, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_learns_others, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_outage, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_down_at_start, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_auth_db, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_foreign_value, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bench, s_setup, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("gw_rl", tests, NULL, NULL);
    proto_log_shutdown();
    return failed;
}
