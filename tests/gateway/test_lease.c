/*  test_lease - the gateway's lease cache and per-request picks.

    The cache runs on a real proto_bus whose router peer is a scripted ZeroMQ
    ROUTER socket in this process (BUS_PEERS_ROUTER=tcp://127.0.0.1:PORT):
    keying by (Host, region, local), reuse within the TTL, TTL 0, coalesced asks,
    config.changed, stale fallback when the router is silent, and 503 (no
    lease) for a Host never decided; stale-while-revalidate: a lease past
    its TTL handed out at once while one ask refreshes it, a failed refresh
    serving on without an ask per request, and the invalidations that are
    waited for (config.changed) served stale only once an ask has failed.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <zmq.h>

#include "gw_lease.h"
#include "it.h"
#include "proto_log.h"
#include "proto_strategy.h"

typedef struct {
    struct ev_loop *loop;
    void *ctx;
    void *router;        // the scripted router
    proto_bus_t *bus;    // the gateway side
    gw_leases_t *leases; // under test
    char dir[64];
    int calls;        // callbacks seen
    gw_lease_t *last; // lease of the last callback
    bool last_stale;
    gw_waiter_t waiters[8];
} t_state_t;

static void
s_on_lease(gw_waiter_t *waiter, gw_lease_t *lease, bool stale, void *arg)
{
    (void) waiter;
    t_state_t *t = arg;
    t->calls++;
    gw_lease_unref(&t->last);
    t->last = lease;
    t->last_stale = stale;
}

static void
s_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
}

//  Run the loop until *counter reaches want or 5 s pass.
static bool
s_spin(t_state_t *t, const int *counter, int want)
{
    ev_timer tick;
    ev_timer_init(&tick, s_tick, 0.005, 0.005);
    ev_timer_start(t->loop, &tick);
    uint64_t deadline = it_now_ms() + 5000;
    while (*counter < want && it_now_ms() < deadline)
        ev_run(t->loop, EVRUN_ONCE);
    ev_timer_stop(t->loop, &tick);
    return *counter >= want;
}

//  Run the loop for about ms (the bus's timers and replies are handled).
static void
s_run(t_state_t *t, int ms)
{
    ev_timer tick;
    ev_timer_init(&tick, s_tick, 0.005, 0.005);
    ev_timer_start(t->loop, &tick);
    uint64_t deadline = it_now_ms() + (uint64_t) ms;
    while (it_now_ms() < deadline)
        ev_run(t->loop, EVRUN_ONCE);
    ev_timer_stop(t->loop, &tick);
}

//  Run the loop until the cache has counted want failed asks or 5 s pass.
static bool
s_spin_stale(t_state_t *t, uint64_t want)
{
    uint64_t deadline = it_now_ms() + 5000;
    while (gw_leases_stale(t->leases) < want && it_now_ms() < deadline)
        s_run(t, 5);
    return gw_leases_stale(t->leases) >= want;
}

//  A request that must be answered at once (no wait): its lease, and whether
//  it was served stale.
static gw_lease_t *
s_get_now(t_state_t *t, const char *host, bool *stale)
{
    bool pending = true;
    gw_lease_t *l = gw_leases_get(t->leases, host, "1", false, "10.0.0.1", "rid-now",
                                  &t->waiters[7], &pending, stale);
    assert_false(pending);
    assert_non_null(l);
    return l;
}

//  Receive one decide on the scripted router (waiting up to 5 s).
static bool
s_router_recv(t_state_t *t, proto_msg_t *msg, uint8_t *id, size_t *idlen)
{
    zmq_pollitem_t item = {.socket = t->router, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, 5000) <= 0)
        return false;
    int n = zmq_recv(t->router, id, 255, 0);
    if (n <= 0)
        return false;
    *idlen = (size_t) n;
    zmq_msg_t body;
    zmq_msg_init(&body);
    zmq_msg_recv(&body, t->router, 0);
    int rc = proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), msg);
    zmq_msg_close(&body);
    return rc == 0;
}

static bool
s_router_idle(t_state_t *t, int ms)
{
    zmq_pollitem_t item = {.socket = t->router, .events = ZMQ_POLLIN};
    return zmq_poll(&item, 1, ms) == 0;
}

static void
s_router_answer(t_state_t *t,
                const uint8_t *id,
                size_t idlen,
                uint64_t msg_id,
                uint64_t version,
                const char *status)
{
    proto_candidate_t cands[2] = {
        {.id = "a", .host = "127.0.0.1", .port = 4001, .weight = 1, .region = "1"},
        {.id = "b", .host = "127.0.0.1", .port = 4002, .weight = 1, .region = "1"},
    };
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_LEASE);
    msg.id = msg_id;
    msg.src = "router/test";
    msg.lease.status = status;
    msg.lease.route = "r1";
    msg.lease.vhost = "*.example.com";
    msg.lease.version = version;
    msg.lease.strategy = "ROUND_ROBIN";
    msg.lease.region = "1";
    msg.lease.candidates = cands;
    msg.lease.candidates_count = 2;
    msg.lease.retries = 2;
    proto_buf_t buf = {0};
    assert_int_equal(proto_encode(&msg, &buf), 0);
    zmq_send(t->router, id, idlen, ZMQ_SNDMORE);
    zmq_send(t->router, buf.data, buf.size, 0);
    proto_buf_free(&buf);
}

static int
s_setup(void **state, int64_t ttl_ms)
{
    t_state_t *t = calloc(1, sizeof *t);
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 2);
    t->loop = ev_loop_new(EVFLAG_AUTO);
    t->ctx = zmq_ctx_new();
    t->router = zmq_socket(t->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(t->router, ZMQ_LINGER, &zero, sizeof zero);
    int port = it_free_port_pair();
    char ep[64], peers[64];
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    snprintf(peers, sizeof peers, "tcp://127.0.0.1:%d", port);
    assert_int_equal(zmq_bind(t->router, ep), 0);
    snprintf(t->dir, sizeof t->dir, "/tmp/sy-lease-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    proto_bus_config_t cfg = {.kind = "gateway", .instance = "t", .region = "1", .bus_dir = t->dir};
    cfg.peers[PROTO_KIND_ROUTER] = peers;
    char err[256];
    t->bus = proto_bus_new(t->loop, &cfg, err, sizeof err);
    assert_non_null(t->bus);
    assert_int_equal(proto_bus_use(t->bus, PROTO_KIND_ROUTER, true, NULL, err, sizeof err), 0);
    assert_int_equal(proto_bus_start(t->bus, err, sizeof err), 0);
    gw_lease_config_t lc = {
        .ttl_ms = ttl_ms, .timeout_ms = 300, .gw_region = "1", .max_entries = 4};
    t->leases = gw_leases_new(t->loop, t->bus, &lc, s_on_lease, t);
    *state = t;
    return 0;
}

static int
s_setup_ttl(void **state)
{
    return s_setup(state, 60000);
}

static int
s_setup_ttl0(void **state)
{
    return s_setup(state, 0);
}

static int
s_setup_ttl_short(void **state)
{
    return s_setup(state, 100);
}

static int
s_teardown(void **state)
{
    t_state_t *t = *state;
    gw_lease_unref(&t->last);
    proto_bus_destroy(&t->bus);
    gw_leases_destroy(&t->leases);
    zmq_close(t->router);
    zmq_ctx_term(t->ctx);
    ev_loop_destroy(t->loop);
    char path[128];
    snprintf(path, sizeof path, "%s", t->dir);
    rmdir(path);
    free(t);
    return 0;
}

//  Ask, then run the loop until the ask reaches the scripted router: until
//  the DEALER's connection is up (ZMQ_IMMEDIATE), the bus holds it (parked).
static void
s_get_pending(t_state_t *t, const char *host, const char *region, gw_waiter_t *w)
{
    bool pending = false, stale = false;
    gw_lease_t *l =
        gw_leases_get(t->leases, host, region, false, "10.0.0.1", "rid-1", w, &pending, &stale);
    assert_null(l);
    assert_true(pending);
    uint64_t deadline = it_now_ms() + 5000;
    zmq_pollitem_t item = {.socket = t->router, .events = ZMQ_POLLIN};
    while (zmq_poll(&item, 1, 0) == 0 && it_now_ms() < deadline) {
        ev_run(t->loop, EVRUN_NOWAIT);
        (void) zmq_poll(&item, 1, 2); // the pause between two turns of the loop
    }
}

static void
test_ask_then_reuse(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "a.example.com", "1", &t->waiters[0]);
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_int_equal(decide.type, PROTO_DECIDE);
    assert_string_equal(decide.decide.host, "a.example.com");
    assert_string_equal(decide.decide.region, "1");
    assert_string_equal(decide.decide.gw_region, "1");
    assert_false(decide.decide.local);
    assert_string_equal(decide.rid, "rid-1");
    s_router_answer(t, id, idlen, decide.id, 3, "ok");
    assert_true(s_spin(t, &t->calls, 1));
    assert_non_null(t->last);
    assert_false(t->last_stale);
    assert_int_equal(t->last->status, GW_LEASE_OK);
    assert_int_equal(t->last->ncands, 2);
    assert_true(t->last->wildcard);
    assert_int_equal(t->last->version, 3);

    // within the TTL: answered from the cache, no new ask
    bool pending, stale;
    gw_lease_t *l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-2",
                                  &t->waiters[1], &pending, &stale);
    assert_non_null(l);
    assert_false(pending);
    assert_ptr_equal(l, t->last);
    gw_lease_unref(&l);
    assert_true(s_router_idle(t, 100));

    // another region is another key
    l = gw_leases_get(t->leases, "a.example.com", "2", false, "10.0.0.1", "rid-3", &t->waiters[2],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_string_equal(decide.decide.region, "2");
    s_router_answer(t, id, idlen, decide.id, 3, "no_backend");
    assert_true(s_spin(t, &t->calls, 2));
    assert_int_equal(t->last->status, GW_LEASE_NO_BACKEND);

    // a request forwarded by another region (local) is another key too, and
    // its decide says local; the usual lease of the same key is still cached
    l = gw_leases_get(t->leases, "a.example.com", "1", true, "10.0.0.1", "rid-5", &t->waiters[4],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_string_equal(decide.decide.host, "a.example.com");
    assert_string_equal(decide.decide.region, "1");
    assert_true(decide.decide.local);
    s_router_answer(t, id, idlen, decide.id, 3, "no_backend");
    assert_true(s_spin(t, &t->calls, 3));
    assert_int_equal(t->last->status, GW_LEASE_NO_BACKEND);
    l = gw_leases_get(t->leases, "a.example.com", "1", true, "10.0.0.1", "rid-6", &t->waiters[5],
                      &pending, &stale);
    assert_non_null(l);
    assert_int_equal(l->status, GW_LEASE_NO_BACKEND);
    gw_lease_unref(&l);
    l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-7", &t->waiters[6],
                      &pending, &stale);
    assert_non_null(l);
    assert_int_equal(l->status, GW_LEASE_OK);
    gw_lease_unref(&l);
    assert_true(s_router_idle(t, 100));

    // a newer configuration: the next request asks again
    gw_leases_on_config(t->leases, 4);
    l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-4", &t->waiters[3],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 4, "ok");
    assert_true(s_spin(t, &t->calls, 4));
    assert_int_equal(t->last->version, 4);
    proto_msg_clear(&decide);
}

//  healthd says a backend went down: the lease holding it is asked again
//  before its next use, requests holding it skip the backend, and a lease
//  of another route (or without that backend) is untouched; up expires the
//  route's leases again.
static void
test_backend_down(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "a.example.com", "1", &t->waiters[0]);
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 1));
    gw_lease_t *held = gw_lease_ref(t->last); // a request in flight holds it

    // not this route, not this backend: nothing expires
    assert_int_equal(gw_leases_backend_down(t->leases, "other", "a"), 0);
    assert_int_equal(gw_leases_backend_down(t->leases, "r1", "zz"), 0);
    bool pending, stale;
    gw_lease_t *l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-2",
                                  &t->waiters[1], &pending, &stale);
    assert_non_null(l);
    assert_false(pending);
    gw_lease_unref(&l);

    // "a" of r1 goes down
    assert_int_equal(gw_leases_backend_down(t->leases, "r1", "a"), 1);
    assert_true(held->cands[0].failed);
    assert_false(held->cands[1].failed);
    for (int i = 0; i < 4; i++)
        assert_int_equal(gw_lease_pick(held, 0, "10.0.0.1", (uint64_t) i), 1);
    l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-3", &t->waiters[2],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending); // asked again
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_int_equal(decide.type, PROTO_DECIDE);
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 2));
    assert_ptr_not_equal(t->last, held);

    // fresh again; then up expires the route's leases once more
    l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-4", &t->waiters[3],
                      &pending, &stale);
    assert_non_null(l);
    gw_lease_unref(&l);
    assert_int_equal(gw_leases_backend_up(t->leases, "other", "a"), 0);
    gw_lease_t *cached = t->last; // the cache's lease (it may have to serve stale)
    assert_int_equal(gw_leases_backend_down(t->leases, "r1", "a"), 1);
    assert_true(cached->cands[0].failed);
    assert_int_equal(gw_leases_backend_up(t->leases, "r1", "a"), 1);
    assert_false(cached->cands[0].failed); // served again, even stale
    l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-5", &t->waiters[4],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 3));

    // up for a backend the (fresh) lease holds: nothing in it is wrong, so
    // it serves at once while one ask revalidates it in the background
    gw_lease_t *before = t->last;
    assert_int_equal(gw_leases_backend_up(t->leases, "r1", "a"), 1);
    l = s_get_now(t, "a.example.com", &stale);
    assert_ptr_equal(l, before);
    assert_false(stale);
    gw_lease_unref(&l);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    l = s_get_now(t, "a.example.com", &stale); // the refresh is running: no other ask
    gw_lease_unref(&l);
    assert_true(s_router_idle(t, 50));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    uint64_t deadline = it_now_ms() + 5000;
    for (;;) {
        s_run(t, 5);
        l = s_get_now(t, "a.example.com", &stale);
        if (l != before)
            break;
        gw_lease_unref(&l);
        assert_true(it_now_ms() < deadline);
    }
    gw_lease_unref(&l);
    // up for a backend it lacks (decided while that one was down): waited for
    assert_int_equal(gw_leases_backend_up(t->leases, "r1", "zz"), 1);
    l = gw_leases_get(t->leases, "a.example.com", "1", false, "10.0.0.1", "rid-6", &t->waiters[5],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 4));
    assert_false(t->last_stale);
    gw_lease_unref(&held);
    proto_msg_clear(&decide);
}

static void
test_coalesced(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "b.example.com", "1", &t->waiters[0]);
    bool pending, stale;
    for (int i = 1; i < 3; i++) {
        gw_lease_t *l = gw_leases_get(t->leases, "b.example.com", "1", false, "10.0.0.1", "r",
                                      &t->waiters[i], &pending, &stale);
        assert_null(l);
        assert_true(pending);
    }
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_true(s_router_idle(t, 100)); // one ask for three requests
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 3));
    proto_msg_clear(&decide);
}

static void
test_cancelled_waiter(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "c.example.com", "1", &t->waiters[0]);
    bool pending, stale;
    gw_lease_t *l = gw_leases_get(t->leases, "c.example.com", "1", false, "10.0.0.1", "r",
                                  &t->waiters[1], &pending, &stale);
    assert_null(l);
    gw_leases_cancel(t->leases, &t->waiters[1]); // its client went away
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 1));
    assert_true(s_router_idle(t, 50));
    assert_int_equal(t->calls, 1);
    proto_msg_clear(&decide);
}

static void
test_ttl0_and_stale(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "d.example.com", "1", &t->waiters[0]);
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 1));
    assert_false(t->last_stale);

    // TTL 0: the next request asks again...
    bool pending, stale;
    gw_lease_t *l = gw_leases_get(t->leases, "d.example.com", "1", false, "10.0.0.1", "r",
                                  &t->waiters[1], &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    // ...and when the router stays silent past the deadline, the last lease serves, stale
    uint64_t t0 = it_now_ms();
    assert_true(s_spin(t, &t->calls, 2));
    assert_true(it_now_ms() - t0 >= 250);
    assert_non_null(t->last);
    assert_true(t->last_stale);
    assert_int_equal(gw_leases_stale(t->leases), 1);

    // the router is known away now: the lease serves at once, stale, and
    // nobody asks again before the retry pause (the decision timeout, 300 ms)
    uint64_t failed_at = it_now_ms();
    for (int i = 0; i < 5; i++) {
        l = s_get_now(t, "d.example.com", &stale);
        assert_ptr_equal(l, t->last);
        assert_true(stale);
        gw_lease_unref(&l);
    }
    assert_true(s_router_idle(t, 100));
    // past the pause: still at once, and one ask in the background
    s_run(t, (int) (failed_at + 350 - it_now_ms()));
    l = s_get_now(t, "d.example.com", &stale);
    assert_true(stale);
    gw_lease_unref(&l);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_string_equal(decide.decide.host, "d.example.com");
    l = s_get_now(t, "d.example.com", &stale); // joins that ask: at once
    gw_lease_unref(&l);
    assert_true(s_router_idle(t, 50));
    s_router_answer(t, id, idlen, decide.id, 2, "ok");
    // once answered, TTL 0 again: every request waits for its own ask
    uint64_t deadline = it_now_ms() + 5000;
    for (;;) {
        s_run(t, 5);
        l = gw_leases_get(t->leases, "d.example.com", "1", false, "10.0.0.1", "r", &t->waiters[1],
                          &pending, &stale);
        if (pending)
            break;
        assert_non_null(l);
        assert_true(stale); // not answered yet (no new ask while one runs)
        gw_lease_unref(&l);
        assert_true(it_now_ms() < deadline);
    }
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 2, "ok");
    assert_true(s_spin(t, &t->calls, 3));
    assert_false(t->last_stale);
    assert_int_equal(t->last->version, 2);

    // a Host never decided gets nothing when the router is silent: 503
    l = gw_leases_get(t->leases, "never.example.com", "1", false, "10.0.0.1", "r", &t->waiters[2],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_true(s_spin(t, &t->calls, 4));
    assert_null(t->last);
    // ...and its next request waits for an ask again (no retry pause without
    // a lease to serve meanwhile)
    l = gw_leases_get(t->leases, "never.example.com", "1", false, "10.0.0.1", "r", &t->waiters[2],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    gw_leases_cancel(t->leases, &t->waiters[2]);
    proto_msg_clear(&decide);
}

//  Stale-while-revalidate: past its TTL (100 ms here) a lease is handed out
//  at once, from the call itself, while exactly one ask refreshes it; the
//  answer replaces it.
static void
test_swr_expired_served_at_once(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "s.example.com", "1", &t->waiters[0]);
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 1));
    gw_lease_t *first = t->last;
    assert_true(s_router_idle(t, 150)); // past the TTL, nobody asked

    // many requests: every one served at once with the old lease, one ask
    bool stale;
    for (int i = 0; i < 6; i++) {
        gw_lease_t *l = s_get_now(t, "s.example.com", &stale);
        assert_ptr_equal(l, first);
        assert_false(stale); // no ask has failed: a refresh, not a fault
        gw_lease_unref(&l);
    }
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_int_equal(decide.type, PROTO_DECIDE);
    assert_string_equal(decide.decide.host, "s.example.com");
    assert_string_equal(decide.rid, "rid-now"); // the request that found it expired
    for (int i = 0; i < 6; i++) {               // while it runs too
        s_run(t, 2);
        gw_lease_t *l = s_get_now(t, "s.example.com", &stale);
        assert_ptr_equal(l, first);
        gw_lease_unref(&l);
    }
    assert_true(s_router_idle(t, 100)); // one ask for twelve requests
    assert_int_equal(t->calls, 1);      // nobody waited

    // the answer replaces the lease (fresh again: no ask within the TTL)
    s_router_answer(t, id, idlen, decide.id, 2, "ok");
    uint64_t deadline = it_now_ms() + 5000;
    gw_lease_t *l = NULL;
    for (;;) {
        s_run(t, 5);
        l = s_get_now(t, "s.example.com", &stale);
        if (l->version == 2)
            break;
        gw_lease_unref(&l);
        assert_true(it_now_ms() < deadline);
    }
    assert_ptr_not_equal(l, first);
    assert_false(stale);
    gw_lease_unref(&l);
    assert_int_equal(gw_leases_stale(t->leases), 0);
    assert_int_equal(t->calls, 1);
    proto_msg_clear(&decide);
}

//  A refresh the router does not answer: the lease keeps serving at once,
//  marked stale once the ask has failed, and the key is asked again only
//  after the retry pause (the decision timeout, 300 ms), never per request.
static void
test_swr_failed_refresh(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "f.example.com", "1", &t->waiters[0]);
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 1));
    gw_lease_t *first = t->last;
    assert_true(s_router_idle(t, 150)); // past the TTL

    bool stale;
    ev_now_update(t->loop); // the bus's deadline counts from the loop's time
    uint64_t t0 = it_now_ms();
    gw_lease_t *l = s_get_now(t, "f.example.com", &stale);
    assert_false(stale);
    gw_lease_unref(&l);
    assert_true(s_router_recv(t, &decide, id, &idlen)); // the refresh: never answered
    assert_true(s_spin_stale(t, 1));                    // it fails at its deadline
    uint64_t failed_at = it_now_ms();
    assert_true(failed_at - t0 >= 250);
    for (int i = 0; i < 10; i++) {
        l = s_get_now(t, "f.example.com", &stale);
        assert_ptr_equal(l, first);
        assert_true(stale);
        gw_lease_unref(&l);
    }
    assert_true(s_router_idle(t, 100)); // ten requests, no ask
    assert_int_equal(gw_leases_stale(t->leases), 1);

    // past the pause: one ask again, still served at once
    s_run(t, (int) (failed_at + 350 - it_now_ms()));
    for (int i = 0; i < 4; i++) {
        l = s_get_now(t, "f.example.com", &stale);
        assert_true(stale);
        gw_lease_unref(&l);
    }
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_true(s_router_idle(t, 50));
    // the router is back: the answer replaces the lease, not stale any more
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    uint64_t deadline = it_now_ms() + 5000;
    for (;;) {
        s_run(t, 5);
        l = s_get_now(t, "f.example.com", &stale);
        if (l != first)
            break;
        gw_lease_unref(&l);
        assert_true(it_now_ms() < deadline);
    }
    assert_false(stale);
    gw_lease_unref(&l);
    assert_int_equal(t->calls, 1); // nobody ever waited
    proto_msg_clear(&decide);
}

//  config.changed is an invalidation, not an expiry: the next request waits
//  for the new decision (never the old lease while an answer comes in
//  time); the old lease serves, stale, only once that ask has failed, and
//  then at once until the next configuration.
static void
test_config_change_waits(void **state)
{
    t_state_t *t = *state;
    s_get_pending(t, "v.example.com", "1", &t->waiters[0]);
    proto_msg_t decide;
    proto_msg_init(&decide, PROTO_NONE);
    uint8_t id[256];
    size_t idlen;
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 1, "ok");
    assert_true(s_spin(t, &t->calls, 1));

    // a new version, answered in time: every request gets the new lease
    gw_leases_on_config(t->leases, 2);
    bool pending, stale;
    for (int i = 1; i < 3; i++) {
        gw_lease_t *l = gw_leases_get(t->leases, "v.example.com", "1", false, "10.0.0.1", "r",
                                      &t->waiters[i], &pending, &stale);
        assert_null(l);
        assert_true(pending);
    }
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 2, "ok");
    assert_true(s_spin(t, &t->calls, 3));
    assert_false(t->last_stale);
    assert_int_equal(t->last->version, 2);
    gw_lease_t *v2 = t->last;

    // another version, and the router silent: the request waits the
    // deadline, then gets the old lease, stale; the next ones get it at once
    gw_leases_on_config(t->leases, 3);
    gw_lease_t *l = gw_leases_get(t->leases, "v.example.com", "1", false, "10.0.0.1", "r",
                                  &t->waiters[3], &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    assert_true(s_spin(t, &t->calls, 4));
    assert_ptr_equal(t->last, v2);
    assert_true(t->last_stale);
    for (int i = 0; i < 5; i++) {
        l = s_get_now(t, "v.example.com", &stale);
        assert_ptr_equal(l, v2);
        assert_true(stale);
        gw_lease_unref(&l);
    }
    assert_true(s_router_idle(t, 100));

    // a newer configuration forgets that failure: waited for again
    gw_leases_on_config(t->leases, 4);
    l = gw_leases_get(t->leases, "v.example.com", "1", false, "10.0.0.1", "r", &t->waiters[4],
                      &pending, &stale);
    assert_null(l);
    assert_true(pending);
    assert_true(s_router_recv(t, &decide, id, &idlen));
    s_router_answer(t, id, idlen, decide.id, 4, "ok");
    assert_true(s_spin(t, &t->calls, 5));
    assert_false(t->last_stale);
    assert_int_equal(t->last->version, 4);
    proto_msg_clear(&decide);
}

static void
test_eviction_bound(void **state)
{
    t_state_t *t = *state;
    // max_entries is 4: answered entries beyond it are dropped, oldest first
    char host[32];
    for (int i = 0; i < 8; i++) {
        snprintf(host, sizeof host, "h%d.test", i);
        s_get_pending(t, host, "1", &t->waiters[0]);
        proto_msg_t decide;
        proto_msg_init(&decide, PROTO_NONE);
        uint8_t id[256];
        size_t idlen;
        assert_true(s_router_recv(t, &decide, id, &idlen));
        s_router_answer(t, id, idlen, decide.id, 1, "ok");
        assert_true(s_spin(t, &t->calls, i + 1));
        proto_msg_clear(&decide);
    }
    assert_true(gw_leases_size(t->leases) <= 5);
}

static void
test_pick_inside_lease(void **state)
{
    (void) state;
    proto_candidate_t cands[3] = {
        {.id = "a", .host = "10.0.0.1", .port = 80, .weight = 5, .region = "1"},
        {.id = "b", .host = "10.0.0.2", .port = 80, .weight = 1, .region = "1"},
        {.id = "c", .host = "db.internal", .port = 80, .weight = 1, .region = "1", .hop = true},
    };
    proto_lease_t m = {.status = "ok",
                       .route = "r",
                       .vhost = "x.com",
                       .version = 1,
                       .strategy = "ROUND_ROBIN",
                       .candidates = cands,
                       .candidates_count = 3};
    gw_lease_t *l = gw_lease_from_msg(&m, NULL);
    assert_int_equal(l->cands[0].addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(l->cands[2].addrlen, 0); // a name: resolved elsewhere
    assert_true(l->cands[2].hop);
    assert_false(l->wildcard);
    assert_int_equal(l->timeout_ms, 30000); // defaults when the router sent none
    // smooth weighted round robin 5,1,1: a a b a c a a
    const char *want = "aabacaa";
    for (int i = 0; i < 7; i++) {
        int k = gw_lease_pick(l, 0, "1.2.3.4", 0);
        assert_true(k >= 0);
        assert_int_equal(l->cands[k].id[0], want[i]);
    }
    // a retry never repeats a tried candidate, and failed ones are skipped
    uint64_t tried = 1u << 0;
    l->cands[1].failed = true;
    assert_int_equal(gw_lease_pick(l, tried, "1.2.3.4", 0), 2);
    assert_int_equal(gw_lease_pick(l, tried | (1u << 2), "1.2.3.4", 0), -1);
    gw_lease_unref(&l);
    assert_null(l);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_inside_lease),
        cmocka_unit_test_setup_teardown(test_ask_then_reuse, s_setup_ttl, s_teardown),
        cmocka_unit_test_setup_teardown(test_coalesced, s_setup_ttl, s_teardown),
        cmocka_unit_test_setup_teardown(test_backend_down, s_setup_ttl, s_teardown),
        cmocka_unit_test_setup_teardown(test_cancelled_waiter, s_setup_ttl, s_teardown),
        cmocka_unit_test_setup_teardown(test_ttl0_and_stale, s_setup_ttl0, s_teardown),
        cmocka_unit_test_setup_teardown(test_eviction_bound, s_setup_ttl, s_teardown),
        cmocka_unit_test_setup_teardown(test_swr_expired_served_at_once, s_setup_ttl_short,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_swr_failed_refresh, s_setup_ttl_short, s_teardown),
        cmocka_unit_test_setup_teardown(test_config_change_waits, s_setup_ttl, s_teardown),
    };
    return cmocka_run_group_tests_name("gw_lease", tests, NULL, NULL);
}
