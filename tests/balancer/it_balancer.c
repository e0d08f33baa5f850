/*  it_balancer - integration test of bin/balancer: the real binary, driven over the bus.

    Besides the checks every actor passes, a DEALER plays the router (pick
    in, lease or error out, matched by message id) and two scripted peers
    play healthd and a gateway: each binds its own XPUB and ROUTER at
    ipc://<bus_dir>/<kind>.<pid>.pub/.req with this test process's pid (a
    live pid, so the balancer's discovery takes the files), waits for the
    balancer's subscription to arrive on the XPUB, then publishes
    backend.state or request.done. Effects are awaited by asking again
    until they show, with a deadline; nothing sleeps.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <zmq.h>

#include "it.h"
#include "it_actor.h"

#define S_TIMEOUT_MS 10000 // any single wait

//  A running balancer and the DEALER that plays the router.
typedef struct {
    it_env_t env;
    pid_t pid;
    void *dealer;
} fixture_t;

//  A scripted peer: its XPUB (events) and ROUTER (only so that its .req file exists).
typedef struct {
    void *pub;
    void *req;
} peer_t;

static void
s_start(fixture_t *f)
{
    assert_int_equal(it_env_init(&f->env), 0);
    const char *envs[] = {"INSTANCE_ID=it-bal", "REGION=1", "LOG_LEVEL=debug", NULL};
    f->pid = it_spawn(&f->env, "balancer", "balancer", envs, NULL);
    assert_true(f->pid > 0);
    if (it_wait_bound(&f->env, "balancer", f->pid, 20000) != 0) {
        it_dump(&f->env, "balancer");
        fail_msg("balancer did not bind its bus sockets");
    }
    char req[256];
    it_req_endpoint(&f->env, "balancer", f->pid, req, sizeof req);
    f->dealer = it_dealer(&f->env, req);
}

//  SIGTERM: exit 0, no sanitizer report.
static void
s_stop(fixture_t *f)
{
    zmq_close(f->dealer);
    int status = it_stop(&f->env, f->pid, 20000);
    if (status != 0)
        it_dump(&f->env, "balancer");
    assert_int_equal(status, 0);
    assert_true(it_clean_stderr(&f->env, "balancer"));
    it_env_fini(&f->env);
}

//  Send a request and wait for the reply carrying its id.
static void
s_ask(fixture_t *f, proto_msg_t *request, proto_msg_t *reply)
{
    assert_int_equal(it_send(f->dealer, request), 0);
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    while (it_now_ms() < deadline) {
        int left = (int) (deadline - it_now_ms());
        int rc = it_recv(f->dealer, reply, NULL, 0, left > 0 ? left : 1);
        if (rc == 0 && reply->id == request->id)
            return;
        if (rc == -1)
            break;
    }
    it_dump(&f->env, "balancer");
    fail_msg("no reply to %s", proto_type_name(request->type));
}

static void
s_pick_init(proto_msg_t *msg,
            const char *strategy,
            const char *region,
            proto_backend_t *backends,
            uint32_t nb,
            proto_region_t *regions,
            uint32_t nr)
{
    proto_msg_init(msg, PROTO_PICK);
    msg->rid = "it-rid-1";
    msg->pick.route = "service-a";
    msg->pick.vhost = "api.example.com";
    msg->pick.strategy = strategy;
    msg->pick.version = 42;
    msg->pick.region = region;
    msg->pick.gw_region = "1";
    msg->pick.backends = backends;
    msg->pick.backends_count = nb;
    msg->pick.regions = regions;
    msg->pick.regions_count = nr;
}

//  The candidate ids of a lease joined by spaces.
static const char *
s_ids(const proto_msg_t *lease)
{
    static char text[1024];
    size_t len = 0;
    text[0] = '\0';
    for (uint32_t i = 0; i < lease->lease.candidates_count; i++) {
        int n = snprintf(text + len, sizeof text - len, "%s%s", i ? " " : "",
                         lease->lease.candidates[i].id);
        if (n > 0)
            len += (size_t) n;
    }
    return text;
}

static bool
s_has(const proto_msg_t *lease, const char *id)
{
    for (uint32_t i = 0; i < lease->lease.candidates_count; i++)
        if (strcmp(lease->lease.candidates[i].id, id) == 0)
            return true;
    return false;
}

// --------------------------------------------------------------------------
// Scripted peers

static void
s_peer_bind(fixture_t *f, const char *kind, peer_t *peer)
{
    char pub[256], req[256];
    it_pub_endpoint(&f->env, kind, getpid(), pub, sizeof pub);
    it_req_endpoint(&f->env, kind, getpid(), req, sizeof req);
    int zero = 0;
    peer->pub = zmq_socket(f->env.ctx, ZMQ_XPUB);
    peer->req = zmq_socket(f->env.ctx, ZMQ_ROUTER);
    zmq_setsockopt(peer->pub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(peer->req, ZMQ_LINGER, &zero, sizeof zero);
    // the .pub first: discovery lists an instance by its .req file
    assert_int_equal(zmq_bind(peer->pub, pub), 0);
    assert_int_equal(zmq_bind(peer->req, req), 0);
}

//  Read the XPUB until a subscription to topic arrives (the balancer found us).
static void
s_peer_wait_subscribed(fixture_t *f, peer_t *peer, const char *topic)
{
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    size_t tlen = strlen(topic);
    while (it_now_ms() < deadline) {
        zmq_pollitem_t item = {.socket = peer->pub, .events = ZMQ_POLLIN};
        int left = (int) (deadline - it_now_ms());
        if (zmq_poll(&item, 1, left > 0 ? left : 1) <= 0)
            continue;
        char buf[256];
        int n = zmq_recv(peer->pub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (n == (int) tlen + 1 && buf[0] == 1 && memcmp(buf + 1, topic, tlen) == 0)
            return;
    }
    it_dump(&f->env, "balancer");
    fail_msg("the balancer never subscribed to %s", topic);
}

static void
s_peer_publish(peer_t *peer, const char *src, proto_msg_t *msg)
{
    static uint64_t next_id = 5000;
    proto_buf_t buf = {0};
    msg->id = ++next_id;
    msg->src = src;
    msg->ts = proto_now_ms();
    assert_int_equal(proto_encode(msg, &buf), 0);
    const char *topic = proto_type_name(msg->type);
    assert_int_equal(zmq_send(peer->pub, topic, strlen(topic), ZMQ_SNDMORE), (int) strlen(topic));
    assert_int_equal(zmq_send(peer->pub, buf.data, buf.size, 0), (int) buf.size);
    proto_buf_free(&buf);
}

static void
s_peer_close(peer_t *peer)
{
    zmq_close(peer->pub);
    zmq_close(peer->req);
    peer->pub = peer->req = NULL;
}

static void
s_backend_state(peer_t *healthd, const char *route, const char *backend, bool up)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_BACKEND_STATE);
    msg.backend_state.route = route;
    msg.backend_state.backend = backend;
    msg.backend_state.up = up;
    msg.backend_state.reason = up ? "probe ok" : "connect refused";
    msg.backend_state.since_ms = proto_now_ms();
    s_peer_publish(healthd, "healthd/it", &msg);
}

// --------------------------------------------------------------------------
// Tests

//  pick -> lease: the requested region's backends, hops through a public
//  address, the gateway's region when the requested one has none, and
//  no_backend for an empty route.
static void
test_pick_lease(void **state)
{
    (void) state;
    fixture_t f;
    s_start(&f);
    proto_backend_t b[] = {
        {"a", "10.0.0.1", 3001, 1, "1", false},
        {"b", "10.0.0.2", 3002, 1, "1", false},
        {"c", "10.0.0.3", 3003, 2, "2", false},
        {"m", "10.0.0.4", 3004, 1, "1", true},
    };
    proto_region_t r[] = {{"2", "203.0.113.2:8080"}};
    proto_msg_t pick, lease;
    proto_msg_init(&lease, PROTO_NONE);

    s_pick_init(&pick, "ROUND_ROBIN", "1", b, 4, r, 1);
    s_ask(&f, &pick, &lease);
    assert_int_equal(lease.type, PROTO_LEASE);
    assert_string_equal(lease.rid, "it-rid-1");
    assert_string_equal(lease.lease.status, "ok");
    assert_string_equal(lease.lease.route, "service-a");
    assert_string_equal(lease.lease.vhost, "api.example.com");
    assert_int_equal(lease.lease.version, 42);
    assert_int_equal(lease.lease.ttl_ms, 0);
    assert_string_equal(lease.lease.strategy, "ROUND_ROBIN");
    assert_string_equal(lease.lease.region, "1");
    assert_string_equal(s_ids(&lease), "a b"); // m is in maintenance, c in region 2
    assert_string_equal(lease.lease.candidates[0].host, "10.0.0.1");
    assert_int_equal(lease.lease.candidates[0].port, 3001);
    assert_int_equal(lease.lease.candidates[0].weight, 1);
    assert_false(lease.lease.candidates[0].hop);
    assert_true(strncmp(lease.src, "balancer/", 9) == 0);

    // region 2 from a gateway in region 1: through region 2's public address
    s_pick_init(&pick, "ROUND_ROBIN", "2", b, 4, r, 1);
    s_ask(&f, &pick, &lease);
    assert_string_equal(lease.lease.status, "ok");
    assert_string_equal(lease.lease.region, "2");
    assert_string_equal(s_ids(&lease), "hop:2");
    assert_string_equal(lease.lease.candidates[0].host, "203.0.113.2");
    assert_int_equal(lease.lease.candidates[0].port, 8080);
    assert_int_equal(lease.lease.candidates[0].weight, 2);
    assert_string_equal(lease.lease.candidates[0].region, "2");
    assert_true(lease.lease.candidates[0].hop);

    // a region with no backends: the gateway's own region serves
    s_pick_init(&pick, "RANDOM", "3", b, 4, r, 1);
    s_ask(&f, &pick, &lease);
    assert_string_equal(lease.lease.status, "ok");
    assert_string_equal(lease.lease.region, "1");
    assert_string_equal(lease.lease.strategy, "RANDOM");
    assert_string_equal(s_ids(&lease), "a b");

    // an empty route
    s_pick_init(&pick, "ROUND_ROBIN", "1", NULL, 0, NULL, 0);
    s_ask(&f, &pick, &lease);
    assert_int_equal(lease.type, PROTO_LEASE);
    assert_string_equal(lease.lease.status, "no_backend");
    assert_int_equal(lease.lease.candidates_count, 0);
    assert_int_equal(lease.lease.version, 42);

    // an unknown strategy: error{bad_request}, and it keeps answering
    s_pick_init(&pick, "FASTEST", "1", b, 4, r, 1);
    s_ask(&f, &pick, &lease);
    assert_int_equal(lease.type, PROTO_ERROR);
    assert_string_equal(lease.error.code, "bad_request");
    assert_non_null(strstr(lease.error.message, "ROUND_ROBIN"));
    s_pick_init(&pick, "IP_HASH", "1", b, 4, r, 1);
    s_ask(&f, &pick, &lease);
    assert_int_equal(lease.type, PROTO_LEASE);
    assert_string_equal(s_ids(&lease), "a b");

    // the balancer's own counters, in pong after the bus's
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(f.dealer, &pong, S_TIMEOUT_MS), 0);
    assert_int_equal(it_counter(&pong, "picks"), 5);
    assert_int_equal(it_counter(&pong, "picks.no_backend"), 1);
    assert_int_equal(it_counter(&pong, "picks.refused"), 1);
    assert_int_equal(it_counter(&pong, "backends.bad_address"), 0);
    assert_int_equal(it_counter(&pong, "backend_state.applied"), 0);
    proto_msg_clear(&pong);

    proto_msg_clear(&lease);
    s_stop(&f);
}

//  Successive picks start on successive backends: nginx's smooth weighted
//  round robin for weights 5, 1, 1 is a a b a c a a.
static void
test_pick_rotation(void **state)
{
    (void) state;
    fixture_t f;
    s_start(&f);
    proto_backend_t b[] = {
        {"a", "10.0.0.1", 3001, 5, "1", false},
        {"b", "10.0.0.2", 3002, 1, "1", false},
        {"c", "10.0.0.3", 3003, 1, "1", false},
    };
    proto_msg_t pick, lease;
    proto_msg_init(&lease, PROTO_NONE);
    char firsts[15] = {0};
    for (int i = 0; i < 14; i++) {
        s_pick_init(&pick, "ROUND_ROBIN", "1", b, 3, NULL, 0);
        s_ask(&f, &pick, &lease);
        assert_string_equal(lease.lease.status, "ok");
        assert_int_equal(lease.lease.candidates_count, 3);
        firsts[i] = lease.lease.candidates[0].id[0];
    }
    assert_string_equal(firsts, "aabacaaaabacaa");

    // equal weights in another route: a plain rotation, kept apart per route
    proto_backend_t e[] = {
        {"x", "10.0.1.1", 80, 1, "1", false},
        {"y", "10.0.1.2", 80, 1, "1", false},
    };
    static const char *want[] = {"x y", "y x", "x y"};
    for (int i = 0; i < 3; i++) {
        s_pick_init(&pick, "ROUND_ROBIN", "1", e, 2, NULL, 0);
        pick.pick.route = "service-e";
        s_ask(&f, &pick, &lease);
        assert_string_equal(s_ids(&lease), want[i]);
    }
    s_pick_init(&pick, "ROUND_ROBIN", "1", b, 3, NULL, 0);
    s_ask(&f, &pick, &lease);
    assert_string_equal(lease.lease.candidates[0].id, "a"); // the 15th of a a b a c a a ...
    proto_msg_clear(&lease);
    s_stop(&f);
}

//  healthd's backend.state takes a backend out of the candidates and puts it back.
static void
test_backend_state(void **state)
{
    (void) state;
    fixture_t f;
    s_start(&f);
    peer_t healthd;
    s_peer_bind(&f, "healthd", &healthd);
    s_peer_wait_subscribed(&f, &healthd, "backend.state");

    proto_backend_t b[] = {
        {"a", "10.0.0.1", 3001, 1, "1", false},
        {"b", "10.0.0.2", 3002, 1, "1", false},
        {"c", "10.0.0.3", 3003, 1, "2", false},
    };
    proto_msg_t pick, lease;
    proto_msg_init(&lease, PROTO_NONE);
    s_pick_init(&pick, "ROUND_ROBIN", "1", b, 3, NULL, 0);
    s_ask(&f, &pick, &lease);
    assert_string_equal(s_ids(&lease), "a b");

    // a down in another route: no effect here; a down in this route: gone
    s_backend_state(&healthd, "service-other", "b", false);
    s_backend_state(&healthd, "service-a", "a", false);
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    bool gone = false;
    while (!gone && it_now_ms() < deadline) {
        s_pick_init(&pick, "ROUND_ROBIN", "1", b, 3, NULL, 0);
        s_ask(&f, &pick, &lease);
        gone = !s_has(&lease, "a");
        if (!gone)
            it_pause(5);
    }
    assert_true(gone);
    assert_string_equal(lease.lease.status, "ok");
    assert_string_equal(s_ids(&lease), "b");

    // b down too: region 1 has backends, none healthy: no_backend (not region 2)
    s_backend_state(&healthd, "service-a", "b", false);
    deadline = it_now_ms() + S_TIMEOUT_MS;
    bool none = false;
    while (!none && it_now_ms() < deadline) {
        s_pick_init(&pick, "ROUND_ROBIN", "1", b, 3, NULL, 0);
        s_ask(&f, &pick, &lease);
        none = strcmp(lease.lease.status, "no_backend") == 0;
        if (!none)
            it_pause(5);
    }
    assert_true(none);
    assert_int_equal(lease.lease.candidates_count, 0);
    assert_string_equal(lease.lease.region, "1");

    // both back up
    s_backend_state(&healthd, "service-a", "a", true);
    s_backend_state(&healthd, "service-a", "b", true);
    deadline = it_now_ms() + S_TIMEOUT_MS;
    bool back = false;
    while (!back && it_now_ms() < deadline) {
        s_pick_init(&pick, "ROUND_ROBIN", "1", b, 3, NULL, 0);
        s_ask(&f, &pick, &lease);
        back = lease.lease.candidates_count == 2;
        if (!back)
            it_pause(5);
    }
    assert_true(back);
    assert_string_equal(s_ids(&lease), "a b"); // the set changed: rotation starts again

    // the balancer counts the healthd peer it found
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(f.dealer, &pong, S_TIMEOUT_MS), 0);
    assert_int_equal(it_counter(&pong, "peers.healthd"), 1);
    proto_msg_clear(&pong);

    proto_msg_clear(&lease);
    s_peer_close(&healthd);
    s_stop(&f);
}

//  A gateway's request.done feeds LEAST_LATENCY: the faster backend comes
//  first with the larger weight.
static void
test_least_latency(void **state)
{
    (void) state;
    fixture_t f;
    s_start(&f);
    peer_t gateway;
    s_peer_bind(&f, "gateway", &gateway);
    s_peer_wait_subscribed(&f, &gateway, "request.done");

    proto_backend_t b[] = {
        {"slow", "10.0.0.1", 3001, 1, "1", false},
        {"fast", "10.0.0.2", 3002, 1, "1", false},
    };
    proto_reqinfo_t items[] = {
        {.rid = "r1",
         .method = "GET",
         .route = "service-a",
         .status = 200,
         .duration_us = 41000,
         .backend = "slow",
         .upstream_us = 40000},
        {.rid = "r2",
         .method = "GET",
         .route = "service-a",
         .status = 200,
         .duration_us = 11000,
         .backend = "fast",
         .upstream_us = 10000},
    };
    proto_msg_t done;
    proto_msg_init(&done, PROTO_REQUEST_DONE);
    done.request_done.items = items;
    done.request_done.items_count = 2;
    s_peer_publish(&gateway, "gateway/it", &done);

    proto_msg_t pick, lease;
    proto_msg_init(&lease, PROTO_NONE);
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    bool measured = false;
    while (!measured && it_now_ms() < deadline) {
        s_pick_init(&pick, "LEAST_LATENCY", "1", b, 2, NULL, 0);
        s_ask(&f, &pick, &lease);
        assert_string_equal(lease.lease.status, "ok");
        measured = lease.lease.candidates_count == 2 && lease.lease.candidates[0].weight == 1000
                   && lease.lease.candidates[1].weight == 250;
        if (!measured)
            it_pause(5);
    }
    assert_true(measured);
    assert_string_equal(lease.lease.strategy, "LEAST_LATENCY");
    assert_string_equal(lease.lease.candidates[0].id, "fast");
    proto_msg_clear(&lease);
    s_peer_close(&gateway);
    s_stop(&f);
}

//  The balancer's own setting: listed in --help, refused when out of range.
static void
test_settings(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    const char *help[] = {"--help", NULL};
    assert_int_equal(it_run(&env, "balancer", "help", NULL, help, 20000), 0);
    char *out = it_read_file(&env, "help", "out");
    assert_non_null(out);
    assert_non_null(strstr(out, "BALANCER_MAX_ROUTES"));
    assert_non_null(strstr(out, "10000"));
    free(out);
    const char *bad[] = {"BALANCER_MAX_ROUTES=0", NULL};
    assert_int_equal(it_run(&env, "balancer", "bad", bad, NULL, 20000), 2);
    char *err = it_read_file(&env, "bad", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "BALANCER_MAX_ROUTES: '0'"));
    assert_non_null(strchr(err, '\n'));
    assert_true(strchr(err, '\n')[1] == '\0');
    free(err);
    it_env_fini(&env);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("balancer"),    cmocka_unit_test(test_pick_lease),
        cmocka_unit_test(test_pick_rotation), cmocka_unit_test(test_backend_state),
        cmocka_unit_test(test_least_latency), cmocka_unit_test(test_settings),
    };
    return cmocka_run_group_tests_name("it_balancer", tests, NULL, NULL);
}
