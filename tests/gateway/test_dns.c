/*  test_dns - unit tests for gw_dns, the gateway's cache of backend names,
    against a real DNS server (tests/lib/t_dns) on the test's loop.

    How the gateway uses gw_dns, in short: gw_dns_new() with a callback;
    per attempt at a named backend, gw_dns_get() with the waiter embedded in
    the request: READY (copy addrs[0], keep the rest to retry elsewhere),
    PENDING (the callback brings the outcome; gw_dns_cancel() if the request
    goes first) or FAILED (a failed candidate: try the next backend).

    The cache is configured with short lives (answers 100..250 ms, failures
    250 ms) and the resolver with 100 ms per try, 2 tries, IPv4 only (one
    query per resolution, which the server counts). Time passes by running
    the loop until a timer fires; every ev_run has a deadline that fails the
    test. Names end with a dot, so no search domain of the machine is tried.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <ev.h>

#include "gw_dns.h"
#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"
#include "t_dns.h"
#include "t_loop.h"

#define DEADLINE_S  3.0 // no ev_run in this file may take longer
#define MAX_ANSWERS 16  // callback invocations recorded per test
#define MIN_TTL_MS  100 // the cache's clamp
#define MAX_TTL_MS  250 // ...
#define NEG_TTL_MS  250 // life of a failure
#define TRY_MS      100 // the resolver's wait per try

typedef struct fixture fixture_t;

//  A request: the waiter is embedded, as in the gateway's.
typedef struct {
    int tag;           // which request
    gw_dns_waiter_t w; // its place in a queue
} req_t;

//  One callback invocation.
typedef struct {
    int tag;                          // which request
    gw_dns_status_t status;           // what it said
    struct sockaddr_storage addrs[4]; // its first addresses
    size_t count;                     // how many it gave
} answer_t;

struct fixture {
    struct ev_loop *loop;          // the test's own loop
    t_dns_t *dns;                  // the DNS server
    gw_dns_t *cache;               // the cache under test
    const gw_dns_stats_t *stats;   // its counters
    req_t reqs[MAX_ANSWERS];       // requests, by tag
    answer_t answers[MAX_ANSWERS]; // callbacks, in order
    size_t nanswers;               // how many
    size_t want;                   // ev_run stops at this many answers
    bool (*until)(fixture_t *);    // ... or when this holds
};

static void
s_on_dns(gw_dns_waiter_t *w,
         gw_dns_status_t status,
         const struct sockaddr_storage *addrs,
         size_t count,
         void *arg)
{
    fixture_t *fx = arg;
    req_t *r = (req_t *) (void *) ((char *) w - offsetof(req_t, w));
    assert_null(w->entry); // no longer waiting
    assert_true(fx->nanswers < MAX_ANSWERS);
    answer_t *a = &fx->answers[fx->nanswers++];
    a->tag = r->tag;
    a->status = status;
    a->count = count;
    for (size_t i = 0; i < count && i < PROTO_ARRAY_SIZE(a->addrs); i++)
        a->addrs[i] = addrs[i];
    if (status == GW_DNS_READY)
        assert_true(count >= 1);
    else
        assert_true(count == 0 && addrs == NULL);
}

//  The run's condition: want answers recorded, or until() holds.
static bool
s_done(void *arg)
{
    fixture_t *fx = arg;
    return (fx->want && fx->nanswers >= fx->want) || (fx->until && fx->until(fx));
}

//  Run the loop until want answers were recorded, or until() holds; fail
//  the test at the deadline.
static void
s_run(fixture_t *fx, size_t want, bool (*until)(fixture_t *))
{
    fx->want = want;
    fx->until = until;
    bool met = t_loop_until(fx->loop, s_done, fx, DEADLINE_S);
    fx->until = NULL;
    if (!met)
        fail_msg("no answer within %.1f s (answers: %zu)", DEADLINE_S, fx->nanswers);
}

//  Let the loop run for ms (answers and queries go on meanwhile).
static void
s_pass(fixture_t *fx, int ms)
{
    t_loop_pass(fx->loop, ms / 1000.0);
}

static bool
s_idle(fixture_t *fx)
{
    return fx->stats->resolving == 0;
}

static gw_dns_config_t
s_config(fixture_t *fx)
{
    return (gw_dns_config_t){
        .servers = t_dns_servers(fx->dns),
        .timeout_ms = TRY_MS,
        .tries = 2,
        .family = AF_INET,
        .min_ttl_ms = MIN_TTL_MS,
        .max_ttl_ms = MAX_TTL_MS,
        .negative_ttl_ms = NEG_TTL_MS,
        .fn = s_on_dns,
        .arg = fx,
    };
}

static void
s_cache(fixture_t *fx, const gw_dns_config_t *cfg)
{
    gw_dns_destroy(&fx->cache);
    fx->cache = gw_dns_new(fx->loop, cfg);
    assert_non_null(fx->cache);
    fx->stats = gw_dns_stats(fx->cache);
}

static int
s_setup(void **state)
{
    fixture_t *fx = proto_xcalloc(1, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
    fx->dns = t_dns_new(fx->loop);
    t_dns_set(fx->dns, "a.test", "10.0.0.1,10.0.0.2", 60);
    t_dns_set(fx->dns, "b.test", "10.0.1.1", 60);
    t_dns_set_never(fx->dns, "never.test");
    gw_dns_config_t cfg = s_config(fx);
    s_cache(fx, &cfg);
    for (int i = 0; i < MAX_ANSWERS; i++)
        fx->reqs[i].tag = i;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    gw_dns_destroy(&fx->cache);
    t_dns_destroy(&fx->dns);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

//  gw_dns_get for request tag.
static gw_dns_status_t
s_get(fixture_t *fx,
      const char *name,
      uint16_t port,
      int tag,
      const struct sockaddr_storage **addrs,
      size_t *count)
{
    const struct sockaddr_storage *none;
    size_t n;
    return gw_dns_get(fx->cache, name, port, &fx->reqs[tag].w, addrs ? addrs : &none,
                      count ? count : &n);
}

//  The text of a's address, checking its port.
static const char *
s_ip(const struct sockaddr_storage *a, uint16_t port, char *buf)
{
    if (a->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) a;
        assert_int_equal(ntohs(sin->sin_port), port);
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, INET6_ADDRSTRLEN));
    } else {
        assert_int_equal(a->ss_family, AF_INET6);
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *) (const void *) a;
        assert_int_equal(ntohs(sin6->sin6_port), port);
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, INET6_ADDRSTRLEN));
    }
    return buf;
}

//  A READY get of name at port, with exactly the one address ip.
static void
s_assert_ready_one(fixture_t *fx, const char *name, uint16_t port, const char *ip)
{
    const struct sockaddr_storage *addrs;
    size_t count;
    char buf[INET6_ADDRSTRLEN];
    assert_int_equal(s_get(fx, name, port, 15, &addrs, &count), GW_DNS_READY);
    assert_int_equal(count, 1);
    assert_string_equal(s_ip(&addrs[0], port, buf), ip);
}

// --------------------------------------------------------------------------
// Tests

//  The first get waits; the callback brings every address; the next get is
//  a hit without a query, and rotates the addresses.
static void
test_first_get(void **state)
{
    fixture_t *fx = *state;
    const struct sockaddr_storage *addrs = (void *) 1;
    size_t count = 9;
    assert_int_equal(s_get(fx, "a.test.", 8080, 0, &addrs, &count), GW_DNS_PENDING);
    assert_null(addrs);
    assert_int_equal(count, 0);
    assert_ptr_not_equal(fx->reqs[0].w.entry, NULL);
    assert_int_equal(fx->stats->waiting, 1);
    assert_int_equal(fx->nanswers, 0); // never from inside get
    s_run(fx, 1, NULL);

    char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
    const answer_t *a = &fx->answers[0];
    assert_int_equal(a->tag, 0);
    assert_int_equal(a->status, GW_DNS_READY);
    assert_int_equal(a->count, 2);
    s_ip(&a->addrs[0], 8080, x);
    s_ip(&a->addrs[1], 8080, y);
    assert_true((strcmp(x, "10.0.0.1") == 0 && strcmp(y, "10.0.0.2") == 0)
                || (strcmp(x, "10.0.0.2") == 0 && strcmp(y, "10.0.0.1") == 0));
    assert_null(fx->reqs[0].w.entry);
    assert_int_equal(t_dns_queries(fx->dns, "a.test"), 1);

    //  now a hit, without a query, another port, rotated each time
    assert_int_equal(s_get(fx, "a.test.", 443, 1, &addrs, &count), GW_DNS_READY);
    assert_int_equal(count, 2);
    char first[INET6_ADDRSTRLEN], second[INET6_ADDRSTRLEN];
    s_ip(&addrs[0], 443, first);
    s_ip(&addrs[1], 443, x);
    assert_string_not_equal(first, x);
    assert_int_equal(s_get(fx, "A.TEST.", 443, 1, &addrs, &count), GW_DNS_READY);
    s_ip(&addrs[0], 443, second);
    assert_string_not_equal(first, second);
    assert_null(fx->reqs[1].w.entry); // never queued
    s_pass(fx, 20);
    assert_int_equal(t_dns_queries(fx->dns, "a.test"), 1);
    assert_int_equal(fx->nanswers, 1);

    assert_int_equal(fx->stats->lookups, 3);
    assert_int_equal(fx->stats->misses, 1);
    assert_int_equal(fx->stats->hits, 2);
    assert_int_equal(fx->stats->failures, 0);
    assert_int_equal(fx->stats->queries, 1);
    assert_int_equal(fx->stats->entries, 1);
    assert_int_equal(fx->stats->waiting, 0);
    assert_int_equal(fx->stats->resolving, 0);
}

//  Concurrent gets for one name share one query, and are answered in order.
static void
test_coalesce(void **state)
{
    fixture_t *fx = *state;
    for (int i = 0; i < 5; i++)
        assert_int_equal(
            s_get(fx, i % 2 ? "B.test." : "b.test.", (uint16_t) (8000 + i), i, NULL, NULL),
            GW_DNS_PENDING);
    assert_int_equal(fx->stats->waiting, 5);
    assert_int_equal(fx->stats->queries, 1);
    assert_int_equal(fx->stats->entries, 1);
    s_run(fx, 5, NULL);
    char ip[INET6_ADDRSTRLEN];
    for (int i = 0; i < 5; i++) {
        assert_int_equal(fx->answers[i].tag, i);
        assert_int_equal(fx->answers[i].status, GW_DNS_READY);
        assert_int_equal(fx->answers[i].count, 1);
        assert_string_equal(s_ip(&fx->answers[i].addrs[0], (uint16_t) (8000 + i), ip), "10.0.1.1");
    }
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 1);
    assert_int_equal(fx->stats->waiting, 0);
    assert_int_equal(fx->stats->misses, 5);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 1);
}

//  Past its TTL an entry still answers with its last addresses while
//  exactly one query runs; the new addresses are used once it answers.
static void
test_stale_while_revalidate(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_get(fx, "b.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 1, NULL);
    t_dns_set(fx->dns, "b.test", "10.0.1.9", 60);

    //  fresh: no query (the server's TTL of 60 s is clamped to MAX_TTL_MS)
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");
    s_pass(fx, 20);
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 1);

    //  expired: the old address at once, and one query for any number of gets
    s_pass(fx, MAX_TTL_MS + 20);
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 1); // an idle entry asks nothing
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");
    assert_int_equal(fx->stats->resolving, 1);
    s_assert_ready_one(fx, "b.test.", 81, "10.0.1.1");
    s_assert_ready_one(fx, "b.test.", 82, "10.0.1.1");
    assert_int_equal(fx->stats->queries, 2);
    s_run(fx, 0, s_idle);
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 2);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.9");
    assert_int_equal(fx->nanswers, 1); // no callback for a revalidation

    //  a TTL under the minimum is raised to it: not expired before MIN_TTL_MS
    t_dns_set(fx->dns, "b.test", "10.0.1.10", 0);
    s_pass(fx, MAX_TTL_MS + 20);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.9");
    s_run(fx, 0, s_idle);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.10");
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 3);
    s_pass(fx, MIN_TTL_MS / 2);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.10");
    assert_int_equal(fx->stats->resolving, 0);
    s_pass(fx, MIN_TTL_MS);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.10");
    assert_int_equal(fx->stats->resolving, 1);
    s_run(fx, 0, s_idle);
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 4);
}

//  A re-resolution that fails (server failure, timeout) keeps the old
//  addresses and is tried again after the negative TTL.
static void
test_failure_keeps_addresses(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_get(fx, "b.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 1, NULL);
    t_dns_set_servfail(fx->dns, "b.test");
    s_pass(fx, MAX_TTL_MS + 20);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");
    s_run(fx, 0, s_idle);
    unsigned asked = t_dns_queries(fx->dns, "b.test");
    assert_true(asked >= 2);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1"); // kept
    assert_int_equal(fx->stats->resolving, 0);         // not asked again yet

    //  a timeout too
    t_dns_set_never(fx->dns, "b.test");
    s_pass(fx, NEG_TTL_MS + 20);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");
    assert_int_equal(fx->stats->resolving, 1);
    s_run(fx, 0, s_idle);
    assert_true(t_dns_queries(fx->dns, "b.test") > asked);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");

    //  the server is back, with another address
    t_dns_set(fx->dns, "b.test", "10.0.1.2", 60);
    s_pass(fx, NEG_TTL_MS + 20);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1");
    s_run(fx, 0, s_idle);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.2");
    assert_int_equal(fx->nanswers, 1);
    assert_int_equal(fx->stats->failures, 0);
}

//  NXDOMAIN: FAILED for the negative TTL, then asked again; a name that
//  disappears loses its addresses.
static void
test_nxdomain(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_get(fx, "missing.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 1, NULL);
    assert_int_equal(fx->answers[0].status, GW_DNS_FAILED);
    assert_int_equal(fx->answers[0].count, 0);
    assert_int_equal(s_get(fx, "missing.test.", 80, 1, NULL, NULL), GW_DNS_FAILED);
    assert_null(fx->reqs[1].w.entry);
    s_pass(fx, NEG_TTL_MS / 2);
    assert_int_equal(s_get(fx, "missing.test.", 80, 1, NULL, NULL), GW_DNS_FAILED);
    assert_int_equal(t_dns_queries(fx->dns, "missing.test"), 1);
    assert_int_equal(fx->stats->failures, 3);

    //  after the negative TTL: asked again, and it exists now
    t_dns_set(fx->dns, "missing.test", "10.0.2.1", 60);
    s_pass(fx, NEG_TTL_MS);
    assert_int_equal(s_get(fx, "missing.test.", 80, 2, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 2, NULL);
    assert_int_equal(fx->answers[1].status, GW_DNS_READY);
    assert_int_equal(t_dns_queries(fx->dns, "missing.test"), 2);

    //  it disappears: served until the re-resolution says NXDOMAIN, then FAILED
    t_dns_set_nxdomain(fx->dns, "missing.test");
    s_pass(fx, MAX_TTL_MS + 20);
    s_assert_ready_one(fx, "missing.test.", 80, "10.0.2.1");
    s_run(fx, 0, s_idle);
    assert_int_equal(s_get(fx, "missing.test.", 80, 3, NULL, NULL), GW_DNS_FAILED);
    assert_int_equal(t_dns_queries(fx->dns, "missing.test"), 3);
}

//  A name never answered fails within the resolver's timeout, then answers
//  FAILED at once: never a stall.
static void
test_never_answered(void **state)
{
    fixture_t *fx = *state;
    ev_now_update(fx->loop);
    double start = ev_now(fx->loop);
    assert_int_equal(s_get(fx, "never.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(s_get(fx, "never.test.", 80, 1, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 2, NULL);
    ev_now_update(fx->loop);
    double took = ev_now(fx->loop) - start;
    assert_int_equal(fx->answers[0].status, GW_DNS_FAILED);
    assert_int_equal(fx->answers[1].status, GW_DNS_FAILED);
    // 2 tries of 100 ms (c-ares doubles the second): about 0.3 s
    assert_true(took < 1.0);
    assert_int_equal(t_dns_queries(fx->dns, "never.test"), 2);
    assert_int_equal(s_get(fx, "never.test.", 80, 2, NULL, NULL), GW_DNS_FAILED);
    assert_int_equal(fx->stats->failures, 3);
    assert_int_equal(fx->stats->waiting, 0);
    assert_int_equal(t_dns_queries(fx->dns, "never.test"), 2);
}

//  A cancelled waiter is not called; the query goes on and is cached.
static void
test_cancel(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_get(fx, "a.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(s_get(fx, "a.test.", 80, 1, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(s_get(fx, "a.test.", 80, 2, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(s_get(fx, "b.test.", 80, 3, NULL, NULL), GW_DNS_PENDING);
    gw_dns_cancel(fx->cache, &fx->reqs[1].w); // the middle one
    gw_dns_cancel(fx->cache, &fx->reqs[1].w); // twice: no-op
    gw_dns_cancel(fx->cache, &fx->reqs[3].w); // the only one of b.test
    gw_dns_cancel(fx->cache, &fx->reqs[9].w); // never waited: no-op
    assert_null(fx->reqs[1].w.entry);
    assert_int_equal(fx->stats->waiting, 2);
    s_run(fx, 2, NULL);
    s_run(fx, 0, s_idle);
    assert_int_equal(fx->nanswers, 2);
    assert_int_equal(fx->answers[0].tag, 0);
    assert_int_equal(fx->answers[1].tag, 2);
    s_assert_ready_one(fx, "b.test.", 80, "10.0.1.1"); // cached all the same
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 1);
    gw_dns_cancel(fx->cache, &fx->reqs[0].w); // answered: no-op
    assert_int_equal(fx->nanswers, 2);
}

//  A waiter may ask again from its callback (the entry is answered by then).
static void
s_on_dns_again(gw_dns_waiter_t *w,
               gw_dns_status_t status,
               const struct sockaddr_storage *addrs,
               size_t count,
               void *arg)
{
    fixture_t *fx = arg;
    s_on_dns(w, status, addrs, count, arg);
    const struct sockaddr_storage *again;
    size_t n;
    assert_int_equal(gw_dns_get(fx->cache, "b.test.", 80, w, &again, &n), GW_DNS_READY);
    assert_int_equal(n, 1);
    //  and may start waiting for another name
    assert_int_equal(gw_dns_get(fx->cache, "a.test.", 80, w, &again, &n), GW_DNS_PENDING);
}

static void
test_get_from_callback(void **state)
{
    fixture_t *fx = *state;
    gw_dns_config_t cfg = s_config(fx);
    cfg.fn = s_on_dns_again;
    cfg.max_entries = 1; // the entry answered is kept while its waiters run
    s_cache(fx, &cfg);
    assert_int_equal(s_get(fx, "b.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 1, NULL);
    assert_non_null(fx->reqs[0].w.entry); // waiting for a.test now
    //  b.test was kept while its waiter ran, then evicted (a.test is busy)
    assert_int_equal(fx->stats->entries, 1);
    assert_int_equal(fx->stats->waiting, 1);
    gw_dns_cancel(fx->cache, &fx->reqs[0].w);
}

//  Destroy with waiters and queries in flight: no callback, no leak (LSan).
static void
test_destroy_with_waiters(void **state)
{
    fixture_t *fx = *state;
    assert_int_equal(s_get(fx, "never.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(s_get(fx, "a.test.", 80, 1, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(s_get(fx, "a.test.", 80, 2, NULL, NULL), GW_DNS_PENDING);
    s_pass(fx, 20); // the server has the queries; never.test is still in flight
    assert_int_equal(fx->nanswers, 2);
    assert_int_equal(s_get(fx, "b.test.", 80, 3, NULL, NULL), GW_DNS_PENDING);
    gw_dns_destroy(&fx->cache);
    assert_null(fx->cache);
    gw_dns_destroy(&fx->cache); // twice: no-op
    assert_null(fx->reqs[0].w.entry);
    assert_null(fx->reqs[3].w.entry);
    s_pass(fx, 3 * TRY_MS + 100); // past never.test's timeout
    assert_int_equal(fx->nanswers, 2);
}

//  Past max_entries the least recently used idle entry goes; entries with
//  a query in flight or waiters stay.
static void
test_lru(void **state)
{
    fixture_t *fx = *state;
    gw_dns_config_t cfg = s_config(fx);
    cfg.max_entries = 3;
    s_cache(fx, &cfg);
    t_dns_set(fx->dns, "c.test", "10.0.3.1", 60);
    t_dns_set(fx->dns, "d.test", "10.0.4.1", 60);
    const char *names[] = {"a.test.", "b.test.", "c.test."};
    for (int i = 0; i < 3; i++)
        assert_int_equal(s_get(fx, names[i], 80, i, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 3, NULL);
    assert_int_equal(fx->stats->entries, 3);
    assert_int_equal(s_get(fx, "a.test.", 80, 0, NULL, NULL), GW_DNS_READY); // a is recent
    assert_int_equal(s_get(fx, "d.test.", 80, 3, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(fx->stats->entries, 3); // b.test went
    s_run(fx, 4, NULL);
    assert_int_equal(s_get(fx, "a.test.", 80, 0, NULL, NULL), GW_DNS_READY);
    assert_int_equal(s_get(fx, "c.test.", 80, 0, NULL, NULL), GW_DNS_READY);
    assert_int_equal(s_get(fx, "b.test.", 80, 4, NULL, NULL), GW_DNS_PENDING); // asked again
    assert_int_equal(t_dns_queries(fx->dns, "a.test"), 1);
    s_run(fx, 5, NULL);
    assert_int_equal(t_dns_queries(fx->dns, "b.test"), 2);
    assert_int_equal(fx->stats->entries, 3);

    //  busy entries are never evicted: the cache goes over its bound
    t_dns_set_never(fx->dns, "e.test");
    t_dns_set_never(fx->dns, "f.test");
    t_dns_set_never(fx->dns, "g.test");
    t_dns_set_never(fx->dns, "h.test");
    const char *slow[] = {"e.test.", "f.test.", "g.test.", "h.test."};
    for (int i = 0; i < 4; i++)
        assert_int_equal(s_get(fx, slow[i], 80, 6 + i, NULL, NULL), GW_DNS_PENDING);
    assert_int_equal(fx->stats->entries, 4);
    assert_int_equal(fx->stats->waiting, 4);
    s_run(fx, 9, NULL); // they fail; back under the bound
    assert_int_equal(fx->stats->entries, 3);
    assert_int_equal(fx->stats->waiting, 0);
}

//  Literals and "localhost" are answered at once, without entry or query;
//  bad names fail at once.
static void
test_literals_and_bad_names(void **state)
{
    fixture_t *fx = *state;
    const struct sockaddr_storage *addrs;
    size_t count;
    char ip[INET6_ADDRSTRLEN];
    assert_int_equal(s_get(fx, "10.9.8.7", 8080, 0, &addrs, &count), GW_DNS_READY);
    assert_int_equal(count, 1);
    assert_string_equal(s_ip(&addrs[0], 8080, ip), "10.9.8.7");
    assert_int_equal(proto_resolve_addrlen(&addrs[0]), sizeof(struct sockaddr_in));
    assert_int_equal(s_get(fx, "::1", 443, 0, &addrs, &count), GW_DNS_READY);
    assert_string_equal(s_ip(&addrs[0], 443, ip), "::1");
    assert_int_equal(s_get(fx, "localhost", 80, 0, &addrs, &count), GW_DNS_READY);
    assert_string_equal(s_ip(&addrs[0], 80, ip), "127.0.0.1");
    assert_int_equal(s_get(fx, "LOCALHOST.", 80, 0, &addrs, &count), GW_DNS_READY);
    assert_int_equal(fx->stats->lookups, 0);
    assert_int_equal(fx->stats->entries, 0);

    const char *bad[] = {"", "a b.test.", "a.test.\n"};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++)
        assert_int_equal(s_get(fx, bad[i], 80, 0, &addrs, &count), GW_DNS_FAILED);
    assert_int_equal(fx->stats->failures, 3);
    assert_int_equal(fx->stats->entries, 0);
    s_pass(fx, 20);
    assert_int_equal(t_dns_queries(fx->dns, NULL), 0);
    assert_int_equal(fx->nanswers, 0);
}

//  Every address of both families (the default, AF_UNSPEC).
static void
test_both_families(void **state)
{
    fixture_t *fx = *state;
    gw_dns_config_t cfg = s_config(fx);
    cfg.family = 0;
    s_cache(fx, &cfg);
    t_dns_set(fx->dns, "dual.test", "10.0.5.1,2001:db8::1", 60);
    assert_int_equal(s_get(fx, "dual.test.", 80, 0, NULL, NULL), GW_DNS_PENDING);
    s_run(fx, 1, NULL);
    assert_int_equal(fx->answers[0].status, GW_DNS_READY);
    assert_int_equal(fx->answers[0].count, 2);
    char x[INET6_ADDRSTRLEN], y[INET6_ADDRSTRLEN];
    s_ip(&fx->answers[0].addrs[0], 80, x);
    s_ip(&fx->answers[0].addrs[1], 80, y);
    assert_true((strcmp(x, "10.0.5.1") == 0 && strcmp(y, "2001:db8::1") == 0)
                || (strcmp(x, "2001:db8::1") == 0 && strcmp(y, "10.0.5.1") == 0));
}

//  Bad configurations are refused; zeros mean the defaults.
static void
test_config(void **state)
{
    fixture_t *fx = *state;
    gw_dns_config_t cfg = s_config(fx);
    cfg.fn = NULL;
    assert_null(gw_dns_new(fx->loop, &cfg));
    cfg = s_config(fx);
    cfg.min_ttl_ms = 500;
    cfg.max_ttl_ms = 100;
    assert_null(gw_dns_new(fx->loop, &cfg));
    cfg = s_config(fx);
    cfg.negative_ttl_ms = -1;
    assert_null(gw_dns_new(fx->loop, &cfg));
    cfg = s_config(fx);
    cfg.tries = -1;
    assert_null(gw_dns_new(fx->loop, &cfg));
    cfg = (gw_dns_config_t){.fn = s_on_dns, .arg = fx}; // every default, system servers
    gw_dns_t *d = gw_dns_new(fx->loop, &cfg);
    assert_non_null(d);
    gw_dns_destroy(&d);
    assert_null(d);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_first_get, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_coalesce, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stale_while_revalidate, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_failure_keeps_addresses, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_nxdomain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_never_answered, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_get_from_callback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_waiters, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_lru, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_literals_and_bad_names, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_both_families, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_config, s_setup, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("gw_dns", tests, NULL, NULL);
    proto_log_shutdown();
    return failed;
}
