/*  it_statsd - integration test of bin/statsd: the real binary, driven over the bus.

    Besides the checks every actor passes, two scripted peers play a gateway
    and healthd (and a chatd for stats.get): each binds its own XPUB and ROUTER at
    ipc://<bus_dir>/<kind>.<pid>.pub/.req with this test process's pid (a
    live pid, so statsd's discovery takes the files), waits for statsd's
    subscriptions to arrive on the XPUB, then publishes request.done batches
    with known latencies, upstream.failed, proc.stats and backend.state. A
    DEALER plays the gateway's admin hand-over (admin.request in,
    admin.response out) and apid's stats.get. /metrics is parsed by the strict parser of t_expo.
    Effects are awaited by asking again until they show, with a deadline.
*/
#include <math.h>
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
#include "t_expo.h"

#define S_TIMEOUT_MS 10000      // any single wait
#define S_HIST_ERROR (1.0 / 64) // statsd's histogram: relative error of a reported value

typedef struct {
    pid_t pid;
    void *dealer;
    char name[32];
} statsd_t;

typedef struct {
    void *pub;
    void *req;
} peer_t;

typedef struct {
    it_env_t env;
    statsd_t st[2];
    peer_t gateway;
    peer_t healthd;
} fixture_t;

static void
s_start(fixture_t *f, statsd_t *st, const char *name)
{
    char instance[64];
    snprintf(instance, sizeof instance, "INSTANCE_ID=%s", name);
    const char *envs[] = {instance, "REGION=1", "PROC_STATS_INTERVAL=1s", NULL};
    snprintf(st->name, sizeof st->name, "%s", name);
    st->pid = it_spawn(&f->env, "statsd", name, envs, NULL);
    assert_true(st->pid > 0);
    if (it_wait_bound(&f->env, "statsd", st->pid, 20000) != 0) {
        it_dump(&f->env, name);
        fail_msg("statsd did not bind its bus sockets");
    }
    char req[256];
    it_req_endpoint(&f->env, "statsd", st->pid, req, sizeof req);
    st->dealer = it_dealer(&f->env, req);
}

static void
s_stop(fixture_t *f, statsd_t *st)
{
    zmq_close(st->dealer);
    int status = it_stop(&f->env, st->pid, 20000);
    if (status != 0)
        it_dump(&f->env, st->name);
    assert_int_equal(status, 0);
    assert_true(it_clean_stderr(&f->env, st->name));
}

static void
s_peer_bind(fixture_t *f, const char *kind, peer_t *peer)
{
    char pub[256], req[256];
    it_pub_endpoint(&f->env, kind, getpid(), pub, sizeof pub);
    it_req_endpoint(&f->env, kind, getpid(), req, sizeof req);
    int zero = 0, one = 1;
    peer->pub = zmq_socket(f->env.ctx, ZMQ_XPUB);
    peer->req = zmq_socket(f->env.ctx, ZMQ_ROUTER);
    zmq_setsockopt(peer->pub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(peer->req, ZMQ_LINGER, &zero, sizeof zero);
    // every subscriber's subscription, not only the first of a topic
    zmq_setsockopt(peer->pub, ZMQ_XPUB_VERBOSE, &one, sizeof one);
    assert_int_equal(zmq_bind(peer->pub, pub), 0);
    assert_int_equal(zmq_bind(peer->req, req), 0);
}

//  Read the XPUB until n subscriptions to topic arrived.
static void
s_peer_wait_subscribed(fixture_t *f, peer_t *peer, const char *topic, int n)
{
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    size_t tlen = strlen(topic);
    int seen = 0;
    while (it_now_ms() < deadline && seen < n) {
        zmq_pollitem_t item = {.socket = peer->pub, .events = ZMQ_POLLIN};
        int left = (int) (deadline - it_now_ms());
        if (zmq_poll(&item, 1, left > 0 ? left : 1) <= 0)
            continue;
        char buf[256];
        int got = zmq_recv(peer->pub, buf, sizeof buf, ZMQ_DONTWAIT);
        if (got == (int) tlen + 1 && buf[0] == 1 && memcmp(buf + 1, topic, tlen) == 0)
            seen++;
    }
    if (seen < n) {
        it_dump(&f->env, f->st[0].name);
        fail_msg("statsd never subscribed to %s", topic);
    }
}

static void
s_peer_publish(peer_t *peer, const char *src, proto_msg_t *msg)
{
    static uint64_t next_id = 5000;
    proto_buf_t buf = {0};
    msg->id = ++next_id;
    msg->src = src;
    if (msg->ts == 0)
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

//  GET path from a statsd; returns the status, body (caller frees) and content type.
static int
s_get(fixture_t *f, statsd_t *st, const char *method, const char *path, char **body, char *ctype)
{
    proto_msg_t req, reply;
    proto_msg_init(&req, PROTO_ADMIN_REQUEST);
    req.rid = "it-stats";
    req.admin_request.method = method;
    req.admin_request.path = path;
    req.admin_request.principal = "local";
    assert_int_equal(it_send(st->dealer, &req), 0);
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    while (it_now_ms() < deadline) {
        int left = (int) (deadline - it_now_ms());
        proto_msg_init(&reply, PROTO_NONE);
        int rc = it_recv(st->dealer, &reply, NULL, 0, left > 0 ? left : 1);
        if (rc == 0 && reply.id == req.id && reply.type == PROTO_ADMIN_RESPONSE) {
            const proto_admin_response_t *r = &reply.admin_response;
            *body = malloc(r->body.size + 1);
            memcpy(*body, r->body.data, r->body.size);
            (*body)[r->body.size] = '\0';
            ctype[0] = '\0';
            for (uint32_t i = 0; i < r->headers_count; i++)
                if (strcmp(r->headers[i].key, "content-type") == 0)
                    snprintf(ctype, 64, "%s", r->headers[i].value);
            int status = r->status;
            proto_msg_clear(&reply);
            return status;
        }
        proto_msg_clear(&reply);
        if (rc == -1)
            break;
    }
    it_dump(&f->env, st->name);
    fail_msg("no admin.response to %s", path);
    return -1;
}

//  A number after "key": in a JSON text (after the first occurrence of after, if given).
static double
s_json_num(const char *json, const char *after, const char *key)
{
    const char *p = after ? strstr(json, after) : json;
    assert_non_null(p);
    char needle[64];
    snprintf(needle, sizeof needle, "\"%s\":", key);
    p = strstr(p, needle);
    if (p == NULL)
        fail_msg("no %s in %s", key, json);
    return strtod(p + strlen(needle), NULL);
}

//  Wait until /api/v1/stats counts want requests.
static void
s_wait_requests(fixture_t *f, statsd_t *st, double want)
{
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    char ctype[64];
    double have = -1;
    while (it_now_ms() < deadline) {
        char *body;
        assert_int_equal(s_get(f, st, "GET", "/api/v1/stats", &body, ctype), 200);
        have = s_json_num(body, NULL, "requests");
        free(body);
        if (have == want)
            return;
        it_pause(20);
    }
    fail_msg("statsd counts %.0f requests, want %.0f", have, want);
}

static proto_reqinfo_t
s_info(const char *vhost, const char *backend, uint16_t status, uint64_t us)
{
    proto_reqinfo_t r;
    memset(&r, 0, sizeof r);
    r.rid = "it-req";
    r.method = "GET";
    r.vhost = vhost;
    r.route = vhost[0] ? "route-a" : "";
    r.path = "/";
    r.status = status;
    r.duration_us = us;
    r.backend = backend;
    return r;
}

//  The traffic both tests publish: a.test, node-1: 1..100 ms (status 200,
//  every 10th 404); node-2: five 503 at 200 ms; no route: two 404 of 50 µs.
static void
s_publish_traffic(fixture_t *f)
{
    proto_reqinfo_t items[107];
    unsigned n = 0;
    for (unsigned i = 1; i <= 100; i++)
        items[n++] = s_info("a.test", "node-1", i % 10 ? 200 : 404, i * 1000);
    for (unsigned i = 0; i < 5; i++)
        items[n++] = s_info("a.test", "node-2", 503, 200000);
    items[n++] = s_info("", "", 404, 50);
    items[n++] = s_info("", "", 404, 50);
    // in two batches, as a gateway flushes them
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_REQUEST_DONE);
    msg.rid = "";
    msg.request_done.items = items;
    msg.request_done.items_count = 60;
    s_peer_publish(&f->gateway, "gateway/it-gw", &msg);
    proto_msg_init(&msg, PROTO_REQUEST_DONE);
    msg.rid = "";
    msg.request_done.items = items + 60;
    msg.request_done.items_count = n - 60;
    s_peer_publish(&f->gateway, "gateway/it-gw", &msg);

    proto_msg_init(&msg, PROTO_UPSTREAM_FAILED);
    msg.upstream_failed.route = "route-a";
    msg.upstream_failed.backend = "node-2";
    msg.upstream_failed.reason = "refused";
    s_peer_publish(&f->gateway, "gateway/it-gw", &msg);

    proto_msg_init(&msg, PROTO_BACKEND_STATE);
    msg.backend_state.route = "route-a";
    msg.backend_state.backend = "node-2";
    msg.backend_state.up = false;
    msg.backend_state.reason = "connect refused";
    s_peer_publish(&f->healthd, "healthd/it-hd", &msg);
}

static void
s_publish_proc(fixture_t *f)
{
    proto_counter_t counters[] = {{"dropped.malformed", 3}, {"requests.served", 107}};
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_PROC_STATS);
    msg.proc_stats.kind = "gateway";
    msg.proc_stats.instance = "it-gw";
    msg.proc_stats.pid = (uint32_t) getpid();
    msg.proc_stats.cpu_seconds = 2.5;
    msg.proc_stats.rss_bytes = 7340032;
    msg.proc_stats.open_fds = 17;
    msg.proc_stats.start_time = 1767225600.5;
    msg.proc_stats.uptime_ms = 1000;
    msg.proc_stats.counters = counters;
    msg.proc_stats.counters_count = 2;
    s_peer_publish(&f->gateway, "gateway/it-gw", &msg);
}

static void
s_setup(fixture_t *f, int instances)
{
    memset(f, 0, sizeof *f);
    assert_int_equal(it_env_init(&f->env), 0);
    for (int i = 0; i < instances; i++)
        s_start(f, &f->st[i], i ? "it-st-2" : "it-st-1");
    s_peer_bind(f, "gateway", &f->gateway);
    s_peer_bind(f, "healthd", &f->healthd);
    s_peer_wait_subscribed(f, &f->gateway, "request.done", instances);
    s_peer_wait_subscribed(f, &f->healthd, "backend.state", instances);
}

static void
s_teardown(fixture_t *f, int instances)
{
    for (int i = 0; i < instances; i++)
        s_stop(f, &f->st[i]);
    s_peer_close(&f->gateway);
    s_peer_close(&f->healthd);
    it_env_fini(&f->env);
}

// --------------------------------------------------------------------------
// Tests

//  Known latencies in, SPEC §10's stats shape and percentiles out.
static void
test_stats_api(void **state)
{
    (void) state;
    fixture_t f;
    s_setup(&f, 1);
    statsd_t *st = &f.st[0];
    s_publish_traffic(&f);
    s_wait_requests(&f, st, 107);

    char *body, ctype[64];
    assert_int_equal(s_get(&f, st, "GET", "/api/v1/stats", &body, ctype), 200);
    assert_string_equal(ctype, "application/json");
    assert_true(s_json_num(body, NULL, "requests") == 107);
    assert_true(fabs(s_json_num(body, NULL, "rps") - 107.0 / 60) < 0.001);
    assert_true(s_json_num(body, NULL, "4xx") == 12);
    assert_true(s_json_num(body, NULL, "5xx") == 5);
    assert_non_null(strstr(body, "\"since\":\"20"));
    free(body);

    assert_int_equal(s_get(&f, st, "GET", "/api/v1/stats/a.test", &body, ctype), 200);
    assert_true(s_json_num(body, NULL, "requests") == 105);
    // a.test: 1..100 ms and five of 200 ms; nearest rank of 105 values
    const double want[][2] = {{50, 53}, {95, 100}, {99, 200}}; // p, value in ms
    const char *keys[] = {"p50", "p95", "p99"};
    for (int i = 0; i < 3; i++) {
        double got = s_json_num(body, NULL, keys[i]);
        if (fabs(got - want[i][1]) > want[i][1] * S_HIST_ERROR)
            fail_msg("%s is %.3f ms, want %.0f ± %.1f %%", keys[i], got, want[i][1],
                     S_HIST_ERROR * 100);
    }
    double avg = (5050.0 + 1000.0) / 105;
    assert_true(fabs(s_json_num(body, NULL, "avg") - avg) < 0.001);
    // backends: node-1 1..100 ms, node-2 five 503
    assert_true(s_json_num(body, "\"node-1\":", "requests") == 100);
    assert_true(fabs(s_json_num(body, "\"node-1\":", "p50") - 50) <= 50 * S_HIST_ERROR);
    assert_true(fabs(s_json_num(body, "\"node-1\":", "p99") - 99) <= 99 * S_HIST_ERROR);
    assert_true(s_json_num(body, "\"node-1\":", "4xx") == 10);
    assert_true(s_json_num(body, "\"node-2\":", "requests") == 5);
    assert_true(s_json_num(body, "\"node-2\":", "5xx") == 5);
    free(body);

    // unknown vHost: 404 JSON; a method other than GET: 405
    assert_int_equal(s_get(&f, st, "GET", "/api/v1/stats/nope.test", &body, ctype), 404);
    assert_string_equal(ctype, "application/json");
    assert_non_null(strstr(body, "\"not_found\""));
    free(body);
    assert_int_equal(s_get(&f, st, "POST", "/api/v1/stats", &body, ctype), 405);
    free(body);
    s_teardown(&f, 1);
}

//  /metrics: strict exposition, every metric of SPEC §10, the figures sent,
//  process metrics and counters of the fake gateway and of statsd itself;
//  an instance not heard from for 3 intervals is dropped.
static void
test_metrics(void **state)
{
    (void) state;
    fixture_t f;
    s_setup(&f, 1);
    statsd_t *st = &f.st[0];
    s_publish_traffic(&f);
    s_publish_proc(&f);
    s_wait_requests(&f, st, 107);

    char *body, ctype[64];
    t_expo_t doc;
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    for (;;) {
        assert_int_equal(s_get(&f, st, "GET", "/metrics", &body, ctype), 200);
        if (t_expo_parse(body, &doc) != 0)
            fail_msg("%s\n%s", doc.error, body);
        if (t_expo_find(&doc, "switchyard_process_open_fds", NULL, "instance", "it-gw", NULL) == 1
            && t_expo_find(&doc, "switchyard_upstream_failures_total", NULL, NULL) == 1
            && t_expo_find(&doc, "switchyard_backend_up", NULL, "backend", "node-2", NULL) == 1)
            break;
        assert_true(it_now_ms() < deadline);
        t_expo_free(&doc);
        free(body);
        it_pause(20);
    }
    assert_string_equal(ctype, "text/plain; version=0.0.4; charset=utf-8");
    const char *families[][2] = {
        {"switchyard_requests_total", "counter"},
        {"switchyard_request_duration_seconds", "histogram"},
        {"switchyard_upstream_failures_total", "counter"},
        {"switchyard_backend_up", "gauge"},
        {"switchyard_ws_connections", "gauge"},
        {"switchyard_chat_sessions", "gauge"},
        {"switchyard_chat_messages_total", "counter"},
        {"switchyard_chat_rooms", "gauge"},
        {"switchyard_process_cpu_seconds_total", "counter"},
        {"switchyard_process_resident_memory_bytes", "gauge"},
        {"switchyard_process_open_fds", "gauge"},
        {"switchyard_process_start_time_seconds", "gauge"},
        {"switchyard_actor_counter", "gauge"},
    };
    for (size_t i = 0; i < sizeof families / sizeof families[0]; i++) {
        const t_expo_family_t *fam = t_expo_family(&doc, families[i][0]);
        if (fam == NULL)
            fail_msg("no %s", families[i][0]);
        assert_string_equal(fam->type, families[i][1]);
        assert_non_null(fam->help);
    }
    double v;
    assert_int_equal(
        t_expo_find(&doc, "switchyard_requests_total", &v, "vhost", "a.test", "code", "200", NULL),
        1);
    assert_true(v == 90);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_requests_total", &v, "vhost", "a.test", "code", "503", NULL),
        1);
    assert_true(v == 5);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_requests_total", &v, "vhost", "", "code", "404", NULL), 1);
    assert_true(v == 2);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_request_duration_seconds_count", &v, "vhost", "a.test", NULL),
        1);
    assert_true(v == 105);
    assert_int_equal(t_expo_find(&doc, "switchyard_request_duration_seconds_bucket", &v, "vhost",
                                 "a.test", "le", "0.05", NULL),
                     1);
    assert_true(v == 50); // 1..50 ms
    assert_int_equal(
        t_expo_find(&doc, "switchyard_request_duration_seconds_sum", &v, "vhost", "a.test", NULL),
        1);
    assert_true(fabs(v - 6.05) < 1e-9);
    assert_int_equal(
        t_expo_find(&doc, "switchyard_upstream_failures_total", &v, "backend", "node-2", NULL), 1);
    assert_true(v == 1);
    assert_int_equal(t_expo_find(&doc, "switchyard_backend_up", &v, "vhost", "a.test", "backend",
                                 "node-2", NULL),
                     1);
    assert_true(v == 0);
    assert_int_equal(t_expo_find(&doc, "switchyard_backend_up", &v, "vhost", "a.test", "backend",
                                 "node-1", NULL),
                     1);
    assert_true(v == 1);
    assert_int_equal(t_expo_find(&doc, "switchyard_process_resident_memory_bytes", &v, "actor",
                                 "gateway", "instance", "it-gw", NULL),
                     1);
    assert_true(v == 7340032);
    assert_int_equal(t_expo_find(&doc, "switchyard_actor_counter", &v, "actor", "gateway",
                                 "instance", "it-gw", "name", "requests.served", NULL),
                     1);
    assert_true(v == 107);
    // statsd itself, with the counters its pong reports
    assert_int_equal(t_expo_find(&doc, "switchyard_process_cpu_seconds_total", NULL, "actor",
                                 "statsd", "instance", "it-st-1", NULL),
                     1);
    assert_int_equal(t_expo_find(&doc, "switchyard_actor_counter", &v, "actor", "statsd",
                                 "instance", "it-st-1", "name", "stats.requests", NULL),
                     1);
    assert_true(v == 107);
    assert_int_equal(t_expo_find(&doc, "switchyard_actor_counter", NULL, "actor", "statsd", "name",
                                 "dropped.malformed", NULL),
                     1);
    t_expo_free(&doc);
    free(body);

    // the fake gateway goes quiet: dropped after 3 x PROC_STATS_INTERVAL (1 s)
    deadline = it_now_ms() + S_TIMEOUT_MS;
    for (;;) {
        assert_int_equal(s_get(&f, st, "GET", "/metrics", &body, ctype), 200);
        assert_int_equal(t_expo_parse(body, &doc), 0);
        int left =
            t_expo_find(&doc, "switchyard_process_open_fds", NULL, "instance", "it-gw", NULL);
        t_expo_free(&doc);
        free(body);
        if (left == 0)
            break;
        assert_true(it_now_ms() < deadline);
        it_pause(100);
    }
    s_teardown(&f, 1);
}

//  A proc.stats of kind/instance with counters, from peer.
static void
s_publish_proc_of(
    peer_t *peer, const char *kind, const char *instance, proto_counter_t *counters, uint32_t n)
{
    char src[96];
    snprintf(src, sizeof src, "%s/%s", kind, instance);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_PROC_STATS);
    msg.proc_stats.kind = kind;
    msg.proc_stats.instance = instance;
    msg.proc_stats.pid = (uint32_t) getpid();
    msg.proc_stats.cpu_seconds = 2.5;
    msg.proc_stats.rss_bytes = 7340032;
    msg.proc_stats.open_fds = 17;
    msg.proc_stats.start_time = 1767225600.5;
    msg.proc_stats.uptime_ms = 1000;
    msg.proc_stats.counters = counters;
    msg.proc_stats.counters_count = n;
    s_peer_publish(peer, src, &msg);
}

//  Ask a statsd for stats.reply; reply is decoded (caller clears it).
static void
s_stats_get(fixture_t *f, statsd_t *st, uint32_t routes_max, proto_msg_t *reply)
{
    proto_msg_t req;
    proto_msg_init(&req, PROTO_STATS_GET);
    req.rid = "it-stats-get";
    req.stats_get.routes_max = routes_max;
    assert_int_equal(it_send(st->dealer, &req), 0);
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    while (it_now_ms() < deadline) {
        int left = (int) (deadline - it_now_ms());
        proto_msg_init(reply, PROTO_NONE);
        int rc = it_recv(st->dealer, reply, NULL, 0, left > 0 ? left : 1);
        if (rc == 0 && reply->id == req.id && reply->type == PROTO_STATS_REPLY)
            return;
        proto_msg_clear(reply);
        if (rc == -1)
            break;
    }
    it_dump(&f->env, st->name);
    fail_msg("no stats.reply");
}

static const proto_procstat_t *
s_proc_of(const proto_stats_reply_t *r, const char *kind, const char *instance)
{
    for (uint32_t i = 0; i < r->procs_count; i++)
        if (strcmp(r->procs[i].kind, kind) == 0 && strcmp(r->procs[i].instance, instance) == 0)
            return &r->procs[i];
    return NULL;
}

static void
s_check_latency(const char *what, double got, double want)
{
    if (fabs(got - want) > want * S_HIST_ERROR)
        fail_msg("%s is %.3f ms, want %.0f ± %.1f %%", what, got, want, S_HIST_ERROR * 100);
}

//  stats.get: totals, chat figures from the instances' counters, vHosts
//  busiest first (rps before requests) with their errors and latencies,
//  routes_max, every instance's process figures (statsd's own included); and
//  the same figures as /api/v1/stats, /api/v1/stats/a.test and /metrics.
static void
test_stats_get(void **state)
{
    (void) state;
    fixture_t f;
    s_setup(&f, 1);
    statsd_t *st = &f.st[0];
    peer_t chatd;
    s_peer_bind(&f, "chatd", &chatd);
    s_peer_wait_subscribed(&f, &chatd, "proc.stats", 1);
    uint64_t t0 = proto_now_ms();

    // a.test (105 now) and no route (2 now); b.test: 200 requests 90 s ago
    // (in the latency window, not in the rate's minute): 0.5..100 ms, ten
    // 404 and four 502; and 3 now: 500 at 400 ms
    s_publish_traffic(&f);
    proto_reqinfo_t items[200];
    for (unsigned i = 1; i <= 200; i++)
        items[i - 1] = s_info("b.test", "node-b", i <= 10 ? 404 : i <= 14 ? 502 : 200, i * 500);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_REQUEST_DONE);
    msg.rid = "";
    msg.ts = t0 - 90000;
    msg.request_done.items = items;
    msg.request_done.items_count = 200;
    s_peer_publish(&f.gateway, "gateway/it-gw", &msg);
    for (unsigned i = 0; i < 3; i++)
        items[i] = s_info("b.test", "node-b", 500, 400000);
    proto_msg_init(&msg, PROTO_REQUEST_DONE);
    msg.rid = "";
    msg.request_done.items = items;
    msg.request_done.items_count = 3;
    s_peer_publish(&f.gateway, "gateway/it-gw", &msg);

    // chat: a gateway holding 4 WebSockets, a chatd with 3 sessions and 40 messages
    proto_counter_t gw_counters[] = {{"chat.sessions", 4}, {"requests.served", 310}};
    proto_counter_t cd_counters[] = {
        {"chat.sessions", 3}, {"chat.messages", 40}, {"chat.rooms", 2}};
    proto_msg_t reply;
    const proto_stats_reply_t *r = &reply.stats_reply;
    uint64_t deadline = it_now_ms() + S_TIMEOUT_MS;
    for (;;) {
        // again each time: an instance quiet for 3 intervals (3 s) is forgotten
        s_publish_proc_of(&f.gateway, "gateway", "it-gw", gw_counters, 2);
        s_publish_proc_of(&chatd, "chatd", "it-cd", cd_counters, 3);
        s_stats_get(&f, st, 0, &reply);
        if (r->requests == 310 && s_proc_of(r, "gateway", "it-gw")
            && s_proc_of(r, "chatd", "it-cd"))
            break;
        proto_msg_clear(&reply);
        if (it_now_ms() >= deadline)
            fail_msg("stats.reply never showed the requests and instances sent");
        it_pause(50);
    }
    uint64_t t1 = proto_now_ms();
    assert_true(r->now_ms >= t0 && r->now_ms <= t1);
    assert_true(r->since_ms <= t0 && r->since_ms + 60000 > t0);
    assert_true(fabs(r->rps - 110.0 / 60) < 1e-9); // 105 + 2 + 3 in the last minute
    assert_int_equal(r->ws_connections, 4);
    assert_int_equal(r->chat_sessions, 3);
    assert_int_equal(r->chat_messages, 40);

    // busiest first: a.test (105/60 rps), b.test (3/60, though 203 requests), "" (2/60)
    assert_int_equal(r->routes_count, 3);
    const proto_routestat_t *a = &r->routes[0], *b = &r->routes[1], *none = &r->routes[2];
    assert_string_equal(a->vhost, "a.test");
    assert_string_equal(b->vhost, "b.test");
    assert_string_equal(none->vhost, "");
    assert_int_equal(a->requests, 105);
    assert_true(fabs(a->rps - 105.0 / 60) < 1e-9);
    assert_int_equal(a->errors_4xx, 10);
    assert_int_equal(a->errors_5xx, 5);
    s_check_latency("a.test p50", a->p50_ms, 53); // 1..100 ms and five of 200 ms
    s_check_latency("a.test p99", a->p99_ms, 200);
    assert_int_equal(b->requests, 203);
    assert_true(fabs(b->rps - 3.0 / 60) < 1e-9);
    assert_int_equal(b->errors_4xx, 10);
    assert_int_equal(b->errors_5xx, 7);
    s_check_latency("b.test p50", b->p50_ms, 51);  // rank 102 of 203
    s_check_latency("b.test p99", b->p99_ms, 400); // rank 201
    assert_int_equal(none->requests, 2);
    assert_int_equal(none->errors_4xx, 2);
    s_check_latency("no route p50", none->p50_ms, 0.05);

    // procs: the fake gateway and chatd, and statsd itself
    const proto_procstat_t *gw = s_proc_of(r, "gateway", "it-gw");
    assert_int_equal(gw->pid, (uint32_t) getpid());
    assert_true(gw->cpu_seconds == 2.5);
    assert_int_equal(gw->rss_bytes, 7340032);
    assert_int_equal(gw->open_fds, 17);
    assert_true(gw->seen_ms >= t0 && gw->seen_ms <= r->now_ms);
    const proto_procstat_t *self = s_proc_of(r, "statsd", "it-st-1");
    assert_non_null(self);
    assert_int_equal(self->pid, (uint32_t) st->pid);
    assert_true(self->rss_bytes > 0 && self->open_fds > 0);
    assert_int_equal(self->seen_ms, r->now_ms);

    // the same figures as the stats API (3 decimals) ...
    char *body, ctype[64];
    assert_int_equal(s_get(&f, st, "GET", "/api/v1/stats", &body, ctype), 200);
    assert_true(s_json_num(body, NULL, "requests") == (double) r->requests);
    assert_true(fabs(s_json_num(body, NULL, "rps") - r->rps) < 0.0005);
    free(body);
    assert_int_equal(s_get(&f, st, "GET", "/api/v1/stats/a.test", &body, ctype), 200);
    char *own = strstr(body, "\"backends\""); // a.test's own figures come before
    assert_non_null(own);
    *own = '\0';
    assert_true(s_json_num(body, NULL, "requests") == (double) a->requests);
    assert_true(fabs(s_json_num(body, NULL, "rps") - a->rps) < 0.0005);
    assert_true(s_json_num(body, NULL, "4xx") == (double) a->errors_4xx);
    assert_true(s_json_num(body, NULL, "5xx") == (double) a->errors_5xx);
    assert_true(fabs(s_json_num(body, NULL, "p50") - a->p50_ms) < 0.0005);
    assert_true(fabs(s_json_num(body, NULL, "p99") - a->p99_ms) < 0.0005);
    free(body);
    // ... and as /metrics
    assert_int_equal(s_get(&f, st, "GET", "/metrics", &body, ctype), 200);
    t_expo_t doc;
    if (t_expo_parse(body, &doc) != 0)
        fail_msg("%s\n%s", doc.error, body);
    double v;
    assert_int_equal(t_expo_find(&doc, "switchyard_ws_connections", &v, NULL), 1);
    assert_true(v == (double) r->ws_connections);
    assert_int_equal(t_expo_find(&doc, "switchyard_chat_sessions", &v, NULL), 1);
    assert_true(v == (double) r->chat_sessions);
    assert_int_equal(t_expo_find(&doc, "switchyard_chat_messages_total", &v, NULL), 1);
    assert_true(v == (double) r->chat_messages);
    t_expo_free(&doc);
    free(body);
    proto_msg_clear(&reply);

    // routes_max: the busiest only
    s_stats_get(&f, st, 2, &reply);
    assert_int_equal(r->routes_count, 2);
    assert_string_equal(r->routes[0].vhost, "a.test");
    assert_string_equal(r->routes[1].vhost, "b.test");
    assert_int_equal(r->requests, 310);
    proto_msg_clear(&reply);
    s_stats_get(&f, st, 1, &reply);
    assert_int_equal(r->routes_count, 1);
    assert_string_equal(r->routes[0].vhost, "a.test");
    proto_msg_clear(&reply);

    // the pong counts them
    proto_msg_t pong;
    assert_int_equal(it_ping(st->dealer, &pong, S_TIMEOUT_MS), 0);
    assert_true(it_counter(&pong, "stats.gets") >= 3);
    proto_msg_clear(&pong);
    s_peer_close(&chatd);
    s_teardown(&f, 1);
}

//  Everything up to the "since" key (statsd's own start differs).
static void
s_cut_since(char *json)
{
    char *p;
    while ((p = strstr(json, "\"since\":\"")) != NULL)
        memset(p, '_', 9 + 24 + 1); // "since":"YYYY-MM-DDTHH:MM:SS.mmmZ"
}

//  The request families of /metrics (process metrics differ by nature).
static char *
s_request_families(const char *text)
{
    size_t len = strlen(text), n = 0;
    char *out = malloc(len + 1);
    const char *p = text;
    while (*p) {
        const char *nl = strchr(p, '\n');
        size_t l = nl ? (size_t) (nl - p + 1) : strlen(p);
        char *line = strndup(p, l);
        if (strstr(line, "process_") == NULL && strstr(line, "actor_counter") == NULL
            && strstr(line, "switchyard_")) {
            memcpy(out + n, p, l);
            n += l;
        }
        free(line);
        p += l;
    }
    out[n] = '\0';
    return out;
}

//  Two statsd instances subscribed to the same gateway give the same answers.
static void
test_two_instances(void **state)
{
    (void) state;
    fixture_t f;
    s_setup(&f, 2);
    s_publish_traffic(&f);
    s_wait_requests(&f, &f.st[0], 107);
    s_wait_requests(&f, &f.st[1], 107);
    const char *paths[] = {"/api/v1/stats", "/api/v1/stats/a.test", "/api/v1/stats/", "/metrics"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        char *a, *b, ctype[64];
        int sa = s_get(&f, &f.st[0], "GET", paths[i], &a, ctype);
        int sb = s_get(&f, &f.st[1], "GET", paths[i], &b, ctype);
        assert_int_equal(sa, sb);
        if (strcmp(paths[i], "/metrics") == 0) {
            char *ra = s_request_families(a), *rb = s_request_families(b);
            assert_true(strlen(ra) > 1000);
            assert_string_equal(ra, rb);
            free(ra);
            free(rb);
        } else {
            s_cut_since(a);
            s_cut_since(b);
            assert_string_equal(a, b);
        }
        free(a);
        free(b);
    }
    s_teardown(&f, 2);
}

//  proc.stats carries the counters pong reports (shared bus code).
static void
test_proc_stats_counters(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    const char *envs[] = {"INSTANCE_ID=it-st", "PROC_STATS_INTERVAL=1s", NULL};
    pid_t pid = it_spawn(&env, "statsd", "statsd", envs, NULL);
    assert_true(pid > 0);
    assert_int_equal(it_wait_bound(&env, "statsd", pid, 20000), 0);
    char pub[256];
    it_pub_endpoint(&env, "statsd", pid, pub, sizeof pub);
    void *sub = it_sub(&env, pub, "proc.stats");
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    assert_int_equal(it_recv(sub, &msg, NULL, 0, S_TIMEOUT_MS), 0);
    assert_int_equal(msg.type, PROTO_PROC_STATS);
    bool drops = false, own = false;
    for (uint32_t i = 0; i < msg.proc_stats.counters_count; i++) {
        drops |= strcmp(msg.proc_stats.counters[i].name, "dropped.malformed") == 0;
        own |= strcmp(msg.proc_stats.counters[i].name, "stats.requests") == 0;
    }
    assert_true(drops && own);
    proto_msg_clear(&msg);
    zmq_close(sub);
    assert_int_equal(it_stop(&env, pid, 20000), 0);
    assert_true(it_clean_stderr(&env, "statsd"));
    it_env_fini(&env);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("statsd"),  cmocka_unit_test(test_proc_stats_counters),
        cmocka_unit_test(test_stats_api), cmocka_unit_test(test_metrics),
        cmocka_unit_test(test_stats_get), cmocka_unit_test(test_two_instances),
    };
    return cmocka_run_group_tests_name("it_statsd", tests, NULL, NULL);
}
