/*  test_resolve - unit tests for proto_resolve, against a real DNS server.

    The server is part of the test (tests/lib/t_dns): a UDP socket on
    127.0.0.1 at a port the kernel picks, served by an ev_io on the same loop
    as the resolver. It answers A queries for backend.test (10.1.2.3, TTL 42)
    and multi.test (two addresses, TTLs 300 and 60), answers other types for
    those names with no record (NODATA), never answers never.test (to time
    out) and says NXDOMAIN for the rest. The resolver is pointed at it with
    opts.servers = "127.0.0.1:PORT" and short timeouts (100 ms per try, 2
    tries).

    How a module uses proto_resolve, in short: proto_resolve_new() on its
    loop, proto_resolve_lookup() per name (keep the id), proto_resolve_cancel()
    when the owner goes before the answer, proto_resolve_destroy() at the end.

    Every ev_run has a deadline timer that fails the test (3 s); nothing
    waits by sleeping. Names end with a dot, so that no search domain of the
    machine's resolv.conf is tried.
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
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"
#include "t_dns.h"
#include "t_loop.h"

#define DEADLINE_S  3.0 // no ev_run in this file may take longer
#define MAX_ANSWERS 8   // callback invocations recorded per test
#define TRY_MS      100 // the resolver's wait per try

//  One callback invocation.
typedef struct {
    int tag;                          // which lookup (the callback's arg)
    proto_resolve_status_t status;    // what it said
    struct sockaddr_storage addrs[4]; // its first addresses
    size_t count;                     // how many it gave
    uint32_t ttl_s;                   // smallest TTL
} answer_t;

typedef struct fixture fixture_t;

//  The arg of one lookup: the fixture and a tag.
typedef struct {
    fixture_t *fx; // where to record
    int tag;       // which lookup
} lookup_t;

struct fixture {
    struct ev_loop *loop;          // the test's own loop
    t_dns_t *dns;                  // the DNS server
    proto_resolve_t *resolve;      // the resolver under test
    answer_t answers[MAX_ANSWERS]; // callbacks, in order
    size_t nanswers;               // how many
    size_t want;                   // ev_run stops at this many answers
    bool (*until)(fixture_t *);    // ... or when this holds
    lookup_t args[MAX_ANSWERS];    // lookup arguments, by tag
};

// --------------------------------------------------------------------------
// Fixture

static void
s_on_answer(void *arg,
            proto_resolve_status_t status,
            const struct sockaddr_storage *addrs,
            size_t count,
            uint32_t ttl_s)
{
    lookup_t *l = arg;
    fixture_t *fx = l->fx;
    assert_true(fx->nanswers < MAX_ANSWERS);
    answer_t *a = &fx->answers[fx->nanswers++];
    a->tag = l->tag;
    a->status = status;
    a->count = count;
    a->ttl_s = ttl_s;
    for (size_t i = 0; i < count && i < PROTO_ARRAY_SIZE(a->addrs); i++)
        a->addrs[i] = addrs[i];
    if (status != PROTO_RESOLVE_OK)
        assert_int_equal(count, 0);
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

static bool
s_nothing_pending(fixture_t *fx)
{
    return proto_resolve_pending(fx->resolve) == 0;
}

static proto_resolve_t *
s_resolver(fixture_t *fx, const char *servers)
{
    proto_resolve_opts_t opts = {.servers = servers, .timeout_ms = TRY_MS, .tries = 2};
    return proto_resolve_new(fx->loop, &opts);
}

static int
s_setup(void **state)
{
    fixture_t *fx = proto_xcalloc(1, sizeof *fx);
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    assert_non_null(fx->loop);
    fx->dns = t_dns_new(fx->loop);
    t_dns_set(fx->dns, "backend.test", "10.1.2.3", 42);
    t_dns_add(fx->dns, "multi.test", "10.1.2.4", 300);
    t_dns_add(fx->dns, "multi.test", "10.1.2.5", 60);
    t_dns_set_never(fx->dns, "never.test");
    fx->resolve = s_resolver(fx, t_dns_servers(fx->dns));
    assert_non_null(fx->resolve);
    for (int i = 0; i < MAX_ANSWERS; i++)
        fx->args[i] = (lookup_t){fx, i};
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    proto_resolve_destroy(&fx->resolve);
    t_dns_destroy(&fx->dns);
    ev_loop_destroy(fx->loop);
    free(fx);
    return 0;
}

//  Start a lookup tagged tag; it must be accepted.
static uint64_t
s_lookup(fixture_t *fx, const char *name, uint16_t port, int family, int tag)
{
    uint64_t id = 0;
    proto_resolve_status_t rc =
        proto_resolve_lookup(fx->resolve, name, port, family, s_on_answer, &fx->args[tag], &id);
    if (rc != PROTO_RESOLVE_OK)
        fail_msg("lookup %s: %s", name, proto_resolve_strstatus(rc));
    assert_true(id > 0);
    return id;
}

static void
s_assert_v4(const struct sockaddr_storage *a, const char *ip, uint16_t port)
{
    char buf[INET_ADDRSTRLEN];
    assert_int_equal(a->ss_family, AF_INET);
    const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) a;
    assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf));
    assert_string_equal(buf, ip);
    assert_int_equal(ntohs(sin->sin_port), port);
    assert_int_equal(proto_resolve_addrlen(a), sizeof *sin);
}

// --------------------------------------------------------------------------
// Tests

//  Names are bounded and checked before anything is sent.
static void
test_check_name(void **state)
{
    fixture_t *fx = *state;
    char long_name[300];
    memset(long_name, 'a', sizeof long_name);
    long_name[PROTO_RESOLVE_NAME_MAX] = '\0';
    assert_int_equal(proto_resolve_check_name(long_name, strlen(long_name)), PROTO_RESOLVE_OK);
    assert_int_equal(proto_resolve_check_name(long_name, PROTO_RESOLVE_NAME_MAX + 1),
                     PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(proto_resolve_check_name("backend.test.", 13), PROTO_RESOLVE_OK);
    assert_int_equal(proto_resolve_check_name("", 0), PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(proto_resolve_check_name(NULL, 0), PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(proto_resolve_check_name("a\0b", 3), PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(proto_resolve_check_name("a b", 3), PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(proto_resolve_check_name("a\tb", 3), PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(proto_resolve_check_name("a\x7f", 2), PROTO_RESOLVE_BAD_NAME);

    //  lookup refuses them at once: id 0, no callback, no query
    long_name[PROTO_RESOLVE_NAME_MAX] = 'a';
    long_name[PROTO_RESOLVE_NAME_MAX + 1] = '\0';
    const char *bad[] = {"", "back end.test.", "backend.test.\n", long_name};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(bad); i++) {
        uint64_t id = 99;
        assert_int_equal(proto_resolve_lookup(fx->resolve, bad[i], 80, AF_UNSPEC, s_on_answer,
                                              &fx->args[0], &id),
                         PROTO_RESOLVE_BAD_NAME);
        assert_int_equal(id, 0);
    }
    uint64_t id = 99;
    assert_int_equal(
        proto_resolve_lookup(fx->resolve, NULL, 80, AF_UNSPEC, s_on_answer, &fx->args[0], &id),
        PROTO_RESOLVE_BAD_NAME);
    assert_int_equal(id, 0);
    assert_int_equal(proto_resolve_sent(fx->resolve), 0);
    assert_int_equal(fx->nanswers, 0);
    assert_string_equal(proto_resolve_strstatus(PROTO_RESOLVE_BAD_NAME), "bad name");
}

//  Literals answer from the loop, without a query (no DNS socket even).
static void
test_literal(void **state)
{
    fixture_t *fx = *state;
    s_lookup(fx, "10.0.0.7", 8080, AF_UNSPEC, 0);
    s_lookup(fx, "::1", 443, AF_UNSPEC, 1);
    s_lookup(fx, "10.0.0.7", 8080, AF_INET6, 2); // the wrong family
    s_lookup(fx, "192.168.1.1", 1, AF_INET, 3);
    assert_int_equal(fx->nanswers, 0); // never from inside lookup
    s_run(fx, 4, NULL);

    assert_int_equal(fx->nanswers, 4);
    assert_int_equal(fx->answers[0].tag, 0); // in the order asked
    assert_int_equal(fx->answers[0].status, PROTO_RESOLVE_OK);
    assert_int_equal(fx->answers[0].count, 1);
    assert_int_equal(fx->answers[0].ttl_s, 0);
    s_assert_v4(&fx->answers[0].addrs[0], "10.0.0.7", 8080);

    assert_int_equal(fx->answers[1].status, PROTO_RESOLVE_OK);
    assert_int_equal(fx->answers[1].count, 1);
    const struct sockaddr_in6 *sin6 =
        (const struct sockaddr_in6 *) (const void *) &fx->answers[1].addrs[0];
    assert_int_equal(sin6->sin6_family, AF_INET6);
    assert_int_equal(ntohs(sin6->sin6_port), 443);
    assert_true(IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr));

    assert_int_equal(fx->answers[2].status, PROTO_RESOLVE_NOT_FOUND);
    assert_int_equal(fx->answers[3].status, PROTO_RESOLVE_OK);
    s_assert_v4(&fx->answers[3].addrs[0], "192.168.1.1", 1);

    assert_int_equal(proto_resolve_sent(fx->resolve), 0);
    assert_int_equal(t_dns_queries(fx->dns, NULL), 0);

    //  the synchronous parser the lookups use
    struct sockaddr_storage a;
    assert_int_equal(proto_resolve_literal("127.0.0.1", 9, AF_UNSPEC, &a),
                     sizeof(struct sockaddr_in));
    s_assert_v4(&a, "127.0.0.1", 9);
    assert_int_equal(proto_resolve_literal("backend.test", 9, AF_UNSPEC, &a), 0);
    assert_int_equal(proto_resolve_literal("::1", 9, AF_INET, &a), 0);
    assert_int_equal(proto_resolve_literal("1.2.3", 9, AF_UNSPEC, &a), 0);
}

//  A name answers with the server's address, the port asked and the TTL.
static void
test_name(void **state)
{
    fixture_t *fx = *state;
    s_lookup(fx, "backend.test.", 8080, AF_INET, 0);
    assert_int_equal(proto_resolve_pending(fx->resolve), 1);
    s_run(fx, 1, NULL);
    const answer_t *a = &fx->answers[0];
    assert_int_equal(a->status, PROTO_RESOLVE_OK);
    assert_int_equal(a->count, 1);
    assert_int_equal(a->ttl_s, 42);
    s_assert_v4(&a->addrs[0], "10.1.2.3", 8080);
    assert_int_equal(proto_resolve_sent(fx->resolve), 1);
    assert_true(t_dns_queries(fx->dns, NULL) >= 1);

    //  every address, and the smallest TTL; AF_UNSPEC asks AAAA too (no record)
    s_lookup(fx, "multi.test.", 53, AF_UNSPEC, 1);
    s_run(fx, 2, NULL);
    a = &fx->answers[1];
    assert_int_equal(a->status, PROTO_RESOLVE_OK);
    assert_int_equal(a->count, 2);
    assert_int_equal(a->ttl_s, 60);
    char seen[2][INET_ADDRSTRLEN];
    for (size_t i = 0; i < 2; i++) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *) (const void *) &a->addrs[i];
        assert_int_equal(sin->sin_family, AF_INET);
        assert_int_equal(ntohs(sin->sin_port), 53);
        inet_ntop(AF_INET, &sin->sin_addr, seen[i], sizeof seen[i]);
    }
    assert_true((strcmp(seen[0], "10.1.2.4") == 0 && strcmp(seen[1], "10.1.2.5") == 0)
                || (strcmp(seen[0], "10.1.2.5") == 0 && strcmp(seen[1], "10.1.2.4") == 0));
    assert_int_equal(proto_resolve_pending(fx->resolve), 0);
}

//  NXDOMAIN is "not found", with no address.
static void
test_nxdomain(void **state)
{
    fixture_t *fx = *state;
    s_lookup(fx, "missing.test.", 80, AF_UNSPEC, 0);
    s_run(fx, 1, NULL);
    assert_int_equal(fx->answers[0].status, PROTO_RESOLVE_NOT_FOUND);
    assert_int_equal(fx->answers[0].count, 0);
    assert_int_equal(fx->answers[0].ttl_s, 0);
    assert_true(t_dns_queries(fx->dns, NULL) >= 1);
    assert_string_equal(proto_resolve_strstatus(PROTO_RESOLVE_NOT_FOUND), "not found");
}

//  A server that never answers: a timeout after the tries, within a bound.
static void
test_timeout(void **state)
{
    fixture_t *fx = *state;
    ev_now_update(fx->loop);
    double start = ev_now(fx->loop);
    s_lookup(fx, "never.test.", 80, AF_INET, 0);
    s_run(fx, 1, NULL);
    ev_now_update(fx->loop);
    double took = ev_now(fx->loop) - start;
    assert_int_equal(fx->answers[0].status, PROTO_RESOLVE_TIMEOUT);
    assert_int_equal(fx->answers[0].count, 0);
    assert_int_equal(t_dns_queries(fx->dns, "never.test"), 2); // both tries reached the server
    // 2 tries of 100 ms (c-ares doubles the second): about 0.3 s
    assert_true(took >= 0.9 * TRY_MS / 1000.0);
    assert_true(took < 2.0);
    assert_int_equal(proto_resolve_pending(fx->resolve), 0);
}

//  A cancelled query is never answered: neither a name nor a literal.
static void
test_cancel(void **state)
{
    fixture_t *fx = *state;
    uint64_t name = s_lookup(fx, "backend.test.", 80, AF_INET, 0);
    uint64_t never = s_lookup(fx, "never.test.", 80, AF_INET, 1);
    uint64_t literal = s_lookup(fx, "10.0.0.1", 80, AF_INET, 2);
    s_lookup(fx, "10.0.0.2", 80, AF_INET, 3); // answered after the one above
    proto_resolve_cancel(fx->resolve, name);
    proto_resolve_cancel(fx->resolve, never);
    proto_resolve_cancel(fx->resolve, literal);
    proto_resolve_cancel(fx->resolve, literal); // twice: no-op
    proto_resolve_cancel(fx->resolve, 0);       // no-op
    proto_resolve_cancel(fx->resolve, 12345);   // unknown: no-op
    s_run(fx, 1, NULL);
    assert_int_equal(fx->nanswers, 1);
    assert_int_equal(fx->answers[0].tag, 3);

    //  c-ares ends the cancelled queries (an answer, a timeout) silently
    s_run(fx, 0, s_nothing_pending);
    assert_true(t_dns_queries(fx->dns, NULL) >= 2);
    assert_int_equal(fx->nanswers, 1);

    //  an id already answered: no-op
    proto_resolve_cancel(fx->resolve, name);
}

//  Destroy with queries in flight: no callback, nothing leaks (LSan).
static void
test_destroy_in_flight(void **state)
{
    fixture_t *fx = *state;
    s_lookup(fx, "never.test.", 80, AF_UNSPEC, 0);
    s_lookup(fx, "backend.test.", 80, AF_UNSPEC, 1);
    s_lookup(fx, "10.0.0.1", 80, AF_UNSPEC, 2);
    proto_resolve_destroy(&fx->resolve);
    assert_null(fx->resolve);
    proto_resolve_destroy(&fx->resolve); // twice: no-op
    assert_null(fx->resolve);

    //  again, once the server has seen the queries
    fx->resolve = s_resolver(fx, t_dns_servers(fx->dns));
    s_lookup(fx, "never.test.", 80, AF_INET, 3);
    s_lookup(fx, "missing.test.", 80, AF_INET, 4);
    s_run(fx, 1, NULL); // missing.test answered; never.test still in flight
    assert_int_equal(fx->answers[0].tag, 4);
    assert_int_equal(proto_resolve_pending(fx->resolve), 1);
    proto_resolve_destroy(&fx->resolve);

    //  nothing was left on the loop: it has only the DNS server to run
    t_loop_pass(fx->loop, 0.2);
    assert_int_equal(fx->nanswers, 1);
}

//  Names in /etc/hosts answer through c-ares, without asking the server.
static void
test_hosts(void **state)
{
    fixture_t *fx = *state;
    s_lookup(fx, "localhost", 7000, AF_INET, 0);
    s_run(fx, 1, NULL);
    assert_int_equal(fx->answers[0].status, PROTO_RESOLVE_OK);
    assert_true(fx->answers[0].count >= 1);
    s_assert_v4(&fx->answers[0].addrs[0], "127.0.0.1", 7000);
    assert_int_equal(t_dns_queries(fx->dns, NULL), 0);
}

//  Bad options: refused at creation (lengths) or at the first name lookup.
static void
test_bad_options(void **state)
{
    fixture_t *fx = *state;
    proto_resolve_opts_t opts = {.tries = -1};
    assert_null(proto_resolve_new(fx->loop, &opts));
    char servers[PROTO_RESOLVE_SERVERS + 2];
    memset(servers, '1', sizeof servers - 1);
    servers[sizeof servers - 1] = '\0';
    opts = (proto_resolve_opts_t){.servers = servers};
    assert_null(proto_resolve_new(fx->loop, &opts));

    proto_resolve_t *r = proto_resolve_new(fx->loop, NULL); // every default
    assert_non_null(r);
    proto_resolve_destroy(&r);

    proto_resolve_destroy(&fx->resolve);
    fx->resolve = s_resolver(fx, "not an address");
    assert_non_null(fx->resolve);
    uint64_t id = 99;
    assert_int_equal(proto_resolve_lookup(fx->resolve, "backend.test.", 80, AF_UNSPEC, s_on_answer,
                                          &fx->args[0], &id),
                     PROTO_RESOLVE_FAILED);
    assert_int_equal(id, 0);
    s_lookup(fx, "10.0.0.1", 80, AF_UNSPEC, 1); // literals still answer
    s_run(fx, 1, NULL);
    assert_int_equal(fx->answers[0].tag, 1);
    assert_int_equal(fx->answers[0].status, PROTO_RESOLVE_OK);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_check_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_literal, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_name, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_nxdomain, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancel, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_in_flight, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hosts, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_options, s_setup, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("proto_resolve", tests, NULL, NULL);
    proto_log_shutdown();
    return failed;
}
