/*  it_gateway - integration test of bin/gateway: the real binary, a scripted
    router peer (this process binds router.<our pid>.req/.pub in the
    gateway's BUS_DIR, so the gateway finds it like a real one) and a real
    backend (bin/demo-backend). HTTP is spoken over plain sockets.
*/
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "it.h"
#include "it_actor.h"

typedef struct {
    it_env_t env;
    pid_t gw;
    pid_t backend;
    int http_port;
    int admin_port;
    int backend_port;
    int dead_port;              // a port nobody listens on
    void *router;               // scripted router: requests from the gateway
    void *router_pub;           // scripted router: config.changed
    void *balancer;             // scripted balancer: answers pings (/ready)
    void *balancer_pub;         // ...its events socket (so it is found)
    uint64_t router_balancers;  // peers.balancer the scripted router reports
    uint64_t router_unloaded;   // 1: its config.loaded is 0 (store not loaded yet)
    char last_decide_host[256]; // host of the last decide served
    int stop_at;                // s_serve returns once decides reaches this (0: never)
    void *gw_events;            // SUB on the gateway's events
    uint64_t version;           // configuration version we announce
    int decides;                // decides answered
} t_stack_t;

//  --------------------------------------------------------------------------
//  HTTP over a plain socket

static int
s_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *) &sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

//  Read until EOF or timeout into a malloc'd string.
static char *
s_read_all(int fd, int timeout_ms)
{
    size_t cap = 65536, len = 0;
    char *buf = malloc(cap);
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        int left = (int) (deadline - it_now_ms());
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, left) <= 0)
            break;
        if (cap - len < 4096) {
            cap *= 2;
            buf = realloc(buf, cap);
        }
        ssize_t n = read(fd, buf + len, cap - len - 1);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    buf[len] = '\0';
    return buf;
}

//  Send raw bytes, read the answer until the server closes (or timeout).
static char *
s_exchange(int port, const char *raw, size_t len, int timeout_ms)
{
    int fd = s_connect(port);
    if (fd < 0)
        return strdup("");
    size_t off = 0;
    while (off < len) {
        ssize_t n = write(fd, raw + off, len - off);
        if (n <= 0)
            break;
        off += (size_t) n;
    }
    char *out = s_read_all(fd, timeout_ms);
    close(fd);
    return out;
}

static int
s_count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

//  --------------------------------------------------------------------------
//  The scripted router

static void
s_send_msg(void *sock, const void *id, size_t idlen, proto_msg_t *msg)
{
    proto_buf_t buf = {0};
    msg->src = "router/scripted";
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    assert_int_equal(proto_encode(msg, &buf), 0);
    if (id)
        zmq_send(sock, id, idlen, ZMQ_SNDMORE);
    zmq_send(sock, buf.data, buf.size, 0);
    proto_buf_free(&buf);
}

typedef enum { T_OK, T_NO_ROUTE, T_NO_BACKEND, T_SILENT, T_DEAD_FIRST } t_answer_t;

//  Answer decides until a request to the gateway completes; policy by host.
static t_answer_t
s_policy(const char *host)
{
    if (strcmp(host, "missing.test") == 0)
        return T_NO_ROUTE;
    if (strcmp(host, "empty.test") == 0)
        return T_NO_BACKEND;
    if (strcmp(host, "silent.test") == 0)
        return T_SILENT;
    if (strcmp(host, "retry.test") == 0)
        return T_DEAD_FIRST;
    return T_OK;
}

//  Serve the gateway's decides for up to ms (answers as s_policy says).
static void
s_pong(void *sock,
       const void *id,
       size_t idlen,
       const proto_msg_t *ping,
       const char *kind,
       uint64_t balancers,
       bool loaded)
{
    proto_counter_t counters[2] = {{.name = "peers.balancer", .value = balancers},
                                   {.name = "config.loaded", .value = loaded}};
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_PONG);
    pong.id = ping->id;
    pong.pong.kind = kind;
    pong.pong.instance = "scripted";
    pong.pong.version = "0";
    pong.pong.region = "1";
    if (strcmp(kind, "router") == 0) {
        pong.pong.counters = counters;
        pong.pong.counters_count = 2;
    }
    s_send_msg(sock, id, idlen, &pong);
}

static void
s_serve(t_stack_t *s, int ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) ms;
    for (;;) {
        int left = (int) (deadline - it_now_ms());
        if (left <= 0)
            return;
        zmq_pollitem_t items[2] = {{.socket = s->router, .events = ZMQ_POLLIN},
                                   {.socket = s->balancer, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, 2, left) <= 0)
            return;
        void *sock = (items[0].revents & ZMQ_POLLIN) ? s->router : s->balancer;
        uint8_t id[256];
        int idlen = zmq_recv(sock, id, sizeof id, 0);
        zmq_msg_t body;
        zmq_msg_init(&body);
        zmq_msg_recv(&body, sock, 0);
        proto_msg_t in;
        proto_msg_init(&in, PROTO_NONE);
        int rc = proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), &in);
        zmq_msg_close(&body);
        if (rc != 0 || idlen <= 0)
            continue;
        if (in.type == PROTO_PING) {
            s_pong(sock, id, (size_t) idlen, &in, sock == s->router ? "router" : "balancer",
                   s->router_balancers, !s->router_unloaded);
        } else if (in.type == PROTO_DECIDE && sock == s->router) {
            t_answer_t a = s_policy(in.decide.host);
            s->decides++;
            snprintf(s->last_decide_host, sizeof s->last_decide_host, "%s", in.decide.host);
            if (a == T_SILENT) {
                proto_msg_clear(&in);
                continue;
            }
            char host[32];
            snprintf(host, sizeof host, "127.0.0.1");
            proto_candidate_t cands[2] = {
                {.id = "live",
                 .host = host,
                 .port = (uint16_t) s->backend_port,
                 .weight = 1,
                 .region = "1"},
                {.id = "dead",
                 .host = host,
                 .port = (uint16_t) s->dead_port,
                 .weight = 1,
                 .region = "1"},
            };
            if (a == T_DEAD_FIRST) {
                proto_candidate_t tmp = cands[0];
                cands[0] = cands[1];
                cands[1] = tmp;
            }
            proto_kv_t headers[1] = {{.key = "X-Env", .value = "it"}};
            proto_msg_t lease;
            proto_msg_init(&lease, PROTO_LEASE);
            lease.id = in.id;
            lease.rid = in.rid;
            lease.lease.status = a == T_NO_ROUTE     ? "no_route"
                                 : a == T_NO_BACKEND ? "no_backend"
                                                     : "ok";
            lease.lease.route = "r";
            lease.lease.vhost =
                strcmp(in.decide.host, "acme.tenant.test") == 0 ? "*.tenant.test" : in.decide.host;
            lease.lease.version = s->version;
            lease.lease.strategy = "ROUND_ROBIN";
            lease.lease.region = "1";
            lease.lease.candidates = cands;
            lease.lease.candidates_count = a == T_OK ? 1 : a == T_DEAD_FIRST ? 2 : 0;
            lease.lease.retries = 2;
            lease.lease.timeout_ms = 5000;
            lease.lease.max_body = 1024 * 1024;
            lease.lease.headers = headers;
            lease.lease.headers_count = 1;
            s_send_msg(s->router, id, (size_t) idlen, &lease);
        }
        proto_msg_clear(&in);
        if (s->stop_at > 0 && s->decides >= s->stop_at)
            return;
    }
}

//  Do one HTTP exchange while serving decides from a child-free loop: the
//  request is written first, then decides are served, then the answer read.
static char *
s_request(t_stack_t *s, const char *raw)
{
    int fd = s_connect(s->http_port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t) strlen(raw));
    s_serve(s, 300);
    char *out = s_read_all(fd, 5000);
    close(fd);
    return out;
}

static int
s_setup(void **state)
{
    t_stack_t *s = calloc(1, sizeof *s);
    assert_int_equal(it_env_init(&s->env), 0);
    s->version = 1;
    s->http_port = it_free_port_pair();
    s->admin_port = it_free_port_pair();
    s->backend_port = it_free_port_pair();
    s->dead_port = it_free_port_pair();
    mkdir(s->env.bus_dir, 0755);
    char ep[256];
    s->router = zmq_socket(s->env.ctx, ZMQ_ROUTER);
    s->router_pub = zmq_socket(s->env.ctx, ZMQ_XPUB);
    s->balancer = zmq_socket(s->env.ctx, ZMQ_ROUTER);
    s->balancer_pub = zmq_socket(s->env.ctx, ZMQ_XPUB);
    s->router_balancers = 1;
    int zero = 0;
    zmq_setsockopt(s->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->router_pub, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->balancer, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s->balancer_pub, ZMQ_LINGER, &zero, sizeof zero);
    snprintf(ep, sizeof ep, "ipc://%s/balancer.%d.req", s->env.bus_dir, (int) getpid());
    assert_int_equal(zmq_bind(s->balancer, ep), 0);
    snprintf(ep, sizeof ep, "ipc://%s/balancer.%d.pub", s->env.bus_dir, (int) getpid());
    assert_int_equal(zmq_bind(s->balancer_pub, ep), 0);
    snprintf(ep, sizeof ep, "ipc://%s/router.%d.req", s->env.bus_dir, (int) getpid());
    assert_int_equal(zmq_bind(s->router, ep), 0);
    snprintf(ep, sizeof ep, "ipc://%s/router.%d.pub", s->env.bus_dir, (int) getpid());
    assert_int_equal(zmq_bind(s->router_pub, ep), 0);

    char port[16];
    snprintf(port, sizeof port, "%d", s->backend_port);
    const char *bargs[] = {"--port", port, "--name", "Backend", NULL};
    s->backend = it_spawn(&s->env, "demo-backend", "backend", NULL, bargs);
    char http[64], admin[64];
    snprintf(http, sizeof http, "GATEWAY_HTTP_ADDR=127.0.0.1:%d", s->http_port);
    snprintf(admin, sizeof admin, "GATEWAY_ADMIN_ADDR=127.0.0.1:%d", s->admin_port);
    const char *genv[] = {http,
                          admin,
                          "GATEWAY_DECISION_TIMEOUT=300ms",
                          "INSTANCE_ID=gw-it",
                          "GATEWAY_BODY_TIMEOUT=1s",
                          NULL};
    s->gw = it_spawn(&s->env, "gateway", "gateway", genv, NULL);
    assert_int_equal(it_wait_bound(&s->env, "gateway", s->gw, 20000), 0);
    char pub[256];
    it_pub_endpoint(&s->env, "gateway", s->gw, pub, sizeof pub);
    s->gw_events = it_sub(&s->env, pub, "");
    // wait until the gateway has found us (its config.changed subscription arrives)
    uint64_t deadline = it_now_ms() + 10000;
    bool subscribed = false;
    while (!subscribed && it_now_ms() < deadline) {
        zmq_pollitem_t item = {.socket = s->router_pub, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 100) > 0) {
            char sub[64];
            int n = zmq_recv(s->router_pub, sub, sizeof sub, 0);
            subscribed = n > 1 && sub[0] == 1;
        }
    }
    assert_true(subscribed);
    // and the backend answers
    deadline = it_now_ms() + 10000;
    int fd = -1;
    while ((fd = s_connect(s->backend_port)) < 0 && it_now_ms() < deadline)
        it_pause(10);
    assert_true(fd >= 0);
    close(fd);
    *state = s;
    return 0;
}

static int
s_teardown(void **state)
{
    t_stack_t *s = *state;
    zmq_close(s->gw_events);
    zmq_close(s->router);
    zmq_close(s->router_pub);
    zmq_close(s->balancer);
    zmq_close(s->balancer_pub);
    if (s->gw > 0) {
        int status = it_stop(&s->env, s->gw, 20000);
        if (status != 0)
            it_dump(&s->env, "gateway");
        assert_int_equal(status, 0);
    }
    assert_true(it_clean_stderr(&s->env, "gateway"));
    assert_int_equal(it_stop(&s->env, s->backend, 20000), 0);
    it_env_fini(&s->env);
    free(s);
    return 0;
}

//  --------------------------------------------------------------------------
//  Tests

static void
test_decide_and_lease_reuse(void **state)
{
    t_stack_t *s = *state;
    char *out = s_request(s, "GET / HTTP/1.1\r\nHost: Site.Test:8080\r\nx-region: 1\r\n"
                             "Connection: close\r\n\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(out, "Hello from Backend (Region 1)"));
    assert_non_null(strstr(out, "X-Request-Id: "));
    free(out);
    assert_int_equal(s->decides, 1);
    // within the lease: no new decide
    out = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out, "200 OK"));
    free(out);
    assert_int_equal(s->decides, 1);
    // config.changed with a newer version: the next request asks again
    s->version = 2;
    proto_msg_t changed;
    proto_msg_init(&changed, PROTO_CONFIG_CHANGED);
    changed.config_changed.version = 2;
    zmq_send(s->router_pub, "config.changed", 14, ZMQ_SNDMORE);
    s_send_msg(s->router_pub, NULL, 0, &changed);
    uint64_t deadline = it_now_ms() + 5000;
    while (s->decides < 2 && it_now_ms() < deadline) {
        out = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
        assert_non_null(strstr(out, "200 OK"));
        free(out);
    }
    assert_int_equal(s->decides, 2);
}

//  request.done batches: requests finished within one flush interval travel
//  together, the second interval as the first (a one-shot ev_timer restarted
//  without ev_timer_set fires at once after its first expiry: every request
//  went alone, and statsd paid a wake-up per request).
static int
s_batches_of(t_stack_t *s, int want_items)
{
    int batches = 0, items = 0;
    uint64_t deadline = it_now_ms() + 5000;
    while (items < want_items && it_now_ms() < deadline) {
        proto_msg_t ev;
        proto_msg_init(&ev, PROTO_NONE);
        char topic[64];
        // the SUB subscribes to everything, taps included: topic request.done only
        if (it_recv(s->gw_events, &ev, topic, sizeof topic, 500) == 0
            && strcmp(topic, "request.done") == 0) {
            batches++;
            items += (int) ev.request_done.items_count;
        }
        proto_msg_clear(&ev);
    }
    assert_int_equal(items, want_items);
    return batches;
}

static void
test_report_batches(void **state)
{
    t_stack_t *s = *state;
    // warm the lease (the fake router answers while s_request serves it)
    char *out = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out, "200 OK"));
    free(out);
    assert_int_equal(s_batches_of(s, 1), 1);
    const char *four = "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"
                       "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"
                       "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n"
                       "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
    for (int round = 0; round < 3; round++) {
        uint64_t t0 = it_now_ms();
        out = s_exchange(s->http_port, four, strlen(four), 5000);
        uint64_t took = it_now_ms() - t0;
        assert_int_equal(s_count(out, "HTTP/1.1 200"), 4);
        free(out);
        int batches = s_batches_of(s, 4);
        print_message("round %d: 4 requests in %llu ms, %d batches\n", round,
                      (unsigned long long) took, batches);
        // inside one flush interval: one batch, two when an interval ends among them
        if (took < 50)
            assert_true(batches <= 2);
    }
}

static void
test_outcomes(void **state)
{
    t_stack_t *s = *state;
    char *out = s_request(s, "GET / HTTP/1.1\r\nHost: missing.test\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 404 Not Found"));
    assert_non_null(strstr(out, "\r\n\r\nService Not Found"));
    free(out);
    out = s_request(s, "GET / HTTP/1.1\r\nHost: empty.test\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 503"));
    assert_non_null(strstr(out, "Service Unavailable - VM not responding"));
    free(out);
    // the router never answers about this Host: 503 after the decision deadline
    uint64_t t0 = it_now_ms();
    out = s_request(s, "GET / HTTP/1.1\r\nHost: silent.test\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 503"));
    assert_true(it_now_ms() - t0 >= 250);
    free(out);
    // a dead first candidate: retried on the next one, and reported
    void *events = s->gw_events;
    out = s_request(s, "GET / HTTP/1.1\r\nHost: retry.test\r\nConnection: close\r\n\r\n");
    assert_non_null(strstr(out, "200 OK"));
    free(out);
    bool failed_seen = false, done_seen = false;
    uint64_t deadline = it_now_ms() + 5000;
    while ((!failed_seen || !done_seen) && it_now_ms() < deadline) {
        proto_msg_t ev;
        proto_msg_init(&ev, PROTO_NONE);
        char topic[64];
        if (it_recv(events, &ev, topic, sizeof topic, 500) == 0) {
            if (ev.type == PROTO_UPSTREAM_FAILED) {
                assert_string_equal(ev.upstream_failed.backend, "dead");
                assert_string_equal(ev.upstream_failed.reason, "refused");
                failed_seen = true;
            }
            if (ev.type == PROTO_REQUEST_DONE) {
                for (uint32_t i = 0; i < ev.request_done.items_count; i++)
                    if (ev.request_done.items[i].attempts == 2
                        && strcmp(ev.request_done.items[i].backend, "live") == 0)
                        done_seen = true;
            }
        }
        proto_msg_clear(&ev);
    }
    assert_true(failed_seen);
    assert_true(done_seen);
    // the gateway's own counters are in its pong
    char ep[256];
    it_req_endpoint(&s->env, "gateway", s->gw, ep, sizeof ep);
    void *dealer = it_dealer(&s->env, ep);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(dealer, &pong, 5000), 0);
    assert_true(it_counter(&pong, "requests") >= 4 && it_counter(&pong, "requests") != UINT64_MAX);
    assert_int_equal(it_counter(&pong, "upstream.failures"), 1);
    assert_true(it_counter(&pong, "leases.asks") >= 4);
    assert_int_equal(it_counter(&pong, "connections.rejected"), 0);
    proto_msg_clear(&pong);
    zmq_close(dealer);
}

static void
test_keepalive_pipelining_headers(void **state)
{
    t_stack_t *s = *state;
    // warm the lease so the pipelined requests need no decide
    char *out =
        s_request(s, "GET / HTTP/1.1\r\nHost: acme.tenant.test\r\nConnection: close\r\n\r\n");
    free(out);
    const char *three =
        "GET /echo?a=1 HTTP/1.1\r\nHost: acme.tenant.test\r\nX-Forwarded-For: 6.6.6.6\r\n"
        "X-Request-Id: first-1\r\nConnection: x-drop\r\nX-Drop: 1\r\n\r\n"
        "GET /status/201 HTTP/1.1\r\nHost: acme.tenant.test\r\n\r\n"
        "GET / HTTP/1.1\r\nHost: acme.tenant.test\r\nConnection: close\r\n\r\n";
    out = s_exchange(s->http_port, three, strlen(three), 5000);
    assert_int_equal(s_count(out, "HTTP/1.1 "), 3);
    const char *r1 = strstr(out, "HTTP/1.1 200");
    const char *r2 = strstr(out, "HTTP/1.1 201");
    const char *r3 = strstr(out, "Hello from Backend");
    assert_true(r1 && r2 && r3 && r1 < r2 && r2 < r3); // in order
    // what the backend saw (/echo): our headers, not the forged or hop-by-hop ones
    assert_non_null(strstr(out, "\"x-forwarded-for\":\"127.0.0.1\""));
    assert_null(strstr(out, "6.6.6.6"));
    assert_non_null(strstr(out, "\"x-real-ip\":\"127.0.0.1\""));
    assert_non_null(strstr(out, "\"x-forwarded-proto\":\"http\""));
    assert_non_null(strstr(out, "\"x-forwarded-host\":\"acme.tenant.test\""));
    assert_non_null(strstr(out, "\"x-request-id\":\"first-1\""));
    assert_non_null(strstr(out, "\"x-correlation-id\":\"first-1\""));
    assert_non_null(strstr(out, "\"x-tenant-id\":\"acme\""));
    assert_non_null(strstr(out, "\"x-env\":\"it\""));
    assert_null(strstr(out, "x-drop"));
    assert_non_null(strstr(out, "X-Request-Id: first-1"));
    free(out);
}

static void
test_chunked_both_ways(void **state)
{
    t_stack_t *s = *state;
    char *warm = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    free(warm);
    const char *req = "POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n"
                      "Connection: close\r\n\r\n"
                      "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    char *out = s_exchange(s->http_port, req, strlen(req), 5000);
    assert_non_null(strstr(out, "\"bodyBytes\":11"));
    // sha256("hello world")
    assert_non_null(
        strstr(out, "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"));
    free(out);
    const char *get =
        "GET /chunked?n=3&size=4 HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n";
    out = s_exchange(s->http_port, get, strlen(get), 5000);
    assert_non_null(strstr(out, "Transfer-Encoding: chunked"));
    assert_non_null(strstr(out, "4\r\naaaa\r\n4\r\nbbbb\r\n4\r\ncccc\r\n0\r\n\r\n"));
    free(out);
    // HTTP/1.0 client: the chunked body is sent close-delimited
    const char *get10 = "GET /chunked?n=2&size=3 HTTP/1.0\r\nHost: site.test\r\n\r\n";
    out = s_exchange(s->http_port, get10, strlen(get10), 5000);
    assert_null(strstr(out, "Transfer-Encoding"));
    assert_non_null(strstr(out, "\r\n\r\naaabbb"));
    free(out);
}

static void
test_bad_requests(void **state)
{
    t_stack_t *s = *state;
    static const char *bad[] = {
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        "GET / HTTP/1.1\nHost: a\r\n\r\n",
        "GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out = s_exchange(s->http_port, bad[i], strlen(bad[i]), 5000);
        if (strstr(out, "HTTP/1.1 400 Bad Request") == NULL) {
            fprintf(stderr, "case %zu: %s\n", i, out);
            free(out);
            fail();
        }
        assert_non_null(strstr(out, "Connection: close"));
        free(out);
    }
    // a bad chunk size after a good head: 400 too
    char *warm = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    free(warm);
    const char *badchunk =
        "POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n"
        "zz\r\nhello\r\n0\r\n\r\n";
    char *out = s_exchange(s->http_port, badchunk, strlen(badchunk), 5000);
    assert_non_null(strstr(out, "HTTP/1.1 400"));
    free(out);
}

static void
test_admin_local_answers(void **state)
{
    t_stack_t *s = *state;
    const char *live = "GET /live HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char *out = s_exchange(s->admin_port, live, strlen(live), 5000);
    assert_non_null(strstr(out, "200 OK"));
    free(out);
    const char *health = "GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    out = s_exchange(s->admin_port, health, strlen(health), 5000);
    assert_non_null(strstr(out, "\"service\":\"gateway\""));
    assert_non_null(strstr(out, "\"region\":\"1\""));
    free(out);
    // no apid on this bus: 503 JSON within the handler deadline
    const char *api = "GET /api/v1/routes HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    out = s_exchange(s->admin_port, api, strlen(api), 8000);
    assert_non_null(strstr(out, "HTTP/1.1 503"));
    assert_non_null(strstr(out, "\"code\":\"unavailable\""));
    free(out);
    // public health path
    const char *ph = "GET /health HTTP/1.1\r\nHost: anything\r\nConnection: close\r\n\r\n";
    out = s_exchange(s->http_port, ph, strlen(ph), 5000);
    assert_non_null(strstr(out, "\"service\":\"gateway\""));
    free(out);
}

//  /ready is 200 only when a decision can be made: router and balancer
//  answer, the router has found a balancer (its pong's peers.balancer) and
//  has loaded its configuration (config.loaded: PostgreSQL may be down).
static void
test_ready_needs_a_router_with_a_balancer(void **state)
{
    t_stack_t *s = *state;
    const char *ready = "GET /ready HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    s->router_balancers = 0;
    int fd = s_connect(s->admin_port);
    assert_int_equal(write(fd, ready, strlen(ready)), (ssize_t) strlen(ready));
    s_serve(s, 300);
    char *out = s_read_all(fd, 5000);
    close(fd);
    assert_non_null(strstr(out, "HTTP/1.1 503"));
    assert_non_null(strstr(out, "\"router\":false"));
    free(out);
    s->router_balancers = 1;
    fd = s_connect(s->admin_port);
    assert_int_equal(write(fd, ready, strlen(ready)), (ssize_t) strlen(ready));
    s_serve(s, 300);
    out = s_read_all(fd, 5000);
    close(fd);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "\"status\":\"ready\""));
    free(out);
    s->router_unloaded = 1;
    fd = s_connect(s->admin_port);
    assert_int_equal(write(fd, ready, strlen(ready)), (ssize_t) strlen(ready));
    s_serve(s, 300);
    out = s_read_all(fd, 5000);
    close(fd);
    assert_non_null(strstr(out, "HTTP/1.1 503"));
    free(out);
    s->router_unloaded = 0;
}

//  A connection to port refused at once (nothing listens): true; accepted: false.
static bool
s_refused(int port)
{
    int fd = s_connect(port);
    if (fd < 0)
        return true;
    close(fd);
    return false;
}

//  SIGTERM: both listeners close at once, the in-flight request on a
//  keep-alive connection finishes with Connection: close, an idle
//  keep-alive connection is closed, and the gateway exits 0.
static void
test_sigterm_drains(void **state)
{
    t_stack_t *s = *state;
    char *warm = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    free(warm);
    // an idle keep-alive connection
    int idle = s_connect(s->http_port);
    const char *get = "GET / HTTP/1.1\r\nHost: site.test\r\n\r\n";
    assert_int_equal(write(idle, get, strlen(get)), (ssize_t) strlen(get));
    char buf[4096];
    struct pollfd pi = {.fd = idle, .events = POLLIN};
    assert_int_equal(poll(&pi, 1, 5000), 1);
    assert_true(read(idle, buf, sizeof buf) > 0);
    // a slow in-flight request on a keep-alive connection, for a Host not yet
    // decided: its decide shows the gateway has the request
    int slow = s_connect(s->http_port);
    const char *req = "GET /slow?ms=1500 HTTP/1.1\r\nHost: slow.test\r\n\r\n";
    assert_int_equal(write(slow, req, strlen(req)), (ssize_t) strlen(req));
    s->stop_at = s->decides + 1;
    s_serve(s, 5000);
    assert_int_equal(s->decides, s->stop_at);
    uint64_t t0 = it_now_ms();
    kill(s->gw, SIGTERM);
    // both listeners refuse new connections well before the response is due
    bool refused = false;
    while (!refused && it_now_ms() - t0 < 1000) {
        refused = s_refused(s->http_port) && s_refused(s->admin_port);
        if (!refused)
            it_pause(10);
    }
    printf("listeners refused %llu ms after SIGTERM\n", (unsigned long long) (it_now_ms() - t0));
    assert_true(refused);
    // the idle keep-alive connection was closed
    assert_int_equal(poll(&pi, 1, 2000), 1);
    assert_int_equal(read(idle, buf, sizeof buf), 0);
    close(idle);
    // the in-flight response completes, says Connection: close, then EOF
    char *out = s_read_all(slow, 10000);
    close(slow);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "Connection: close"));
    free(out);
    int status = it_wait_exit(&s->env, s->gw, 10000);
    s->gw = 0;
    assert_int_equal(status, 0);
    assert_true(it_clean_stderr(&s->env, "gateway"));
}

//  A PUT over 1 MiB on the admin listener: 413 with the JSON error shape as
//  soon as Content-Length says so, and the client, which sends its whole
//  body before it reads (as most HTTP clients do), can send it and read the
//  answer: no reset (a body larger than the socket buffers shows it).
static void
test_admin_body_over_1mib(void **state)
{
    t_stack_t *s = *state;
    size_t len = 8 * 1024 * 1024;
    char head[256];
    int hn =
        snprintf(head, sizeof head,
                 "PUT /api/v1/routes/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\n\r\n",
                 len);
    int fd = s_connect(s->admin_port);
    assert_int_equal(write(fd, head, (size_t) hn), hn);
    char *body = malloc(len);
    memset(body, ' ', len);
    size_t off = 0;
    signal(SIGPIPE, SIG_IGN);
    while (off < len) {
        ssize_t n = write(fd, body + off, len - off);
        if (n <= 0)
            break; // the server may stop reading; what matters is the answer
        off += (size_t) n;
    }
    free(body);
    char *out = s_read_all(fd, 5000);
    close(fd);
    if (strstr(out, "HTTP/1.1 413") == NULL || off != len)
        fprintf(stderr, "got: '%.200s' after writing %zu bytes\n", out, off);
    assert_int_equal(off, len);
    assert_non_null(strstr(out, "HTTP/1.1 413"));
    assert_non_null(strstr(out, "\"code\":\"payload_too_large\""));
    assert_non_null(strstr(out, "Connection: close"));
    free(out);
}

//  RFC 9112 §3.2.2: an absolute-form target's authority wins over Host, for
//  routing and upstream; userinfo in it is 400.
static void
test_absolute_form(void **state)
{
    t_stack_t *s = *state;
    char *out = s_request(s, "GET http://Other.Test:8080/echo?a=1 HTTP/1.1\r\nHost: site.test\r\n"
                             "Connection: close\r\n\r\n");
    assert_string_equal(s->last_decide_host, "other.test");
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "\"path\":\"/echo\""));
    assert_non_null(strstr(out, "\"host\":\"Other.Test:8080\""));
    assert_null(strstr(out, "site.test"));
    free(out);
    out = s_request(s, "GET http://other.test HTTP/1.1\r\nHost: site.test\r\n"
                       "Connection: close\r\n\r\n");
    assert_non_null(strstr(out, "Hello from Backend"));
    free(out);
    out = s_request(s, "GET http://user:pw@other.test/ HTTP/1.1\r\nHost: site.test\r\n"
                       "Connection: close\r\n\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 400"));
    free(out);
}

//  RFC 9110 §7.6.1: every Connection field, tokens separated by commas with
//  optional whitespace; Host is never removed because Connection names it.
static void
test_connection_fields(void **state)
{
    t_stack_t *s = *state;
    char *warm = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    free(warm);
    const char *req = "GET /echo HTTP/1.1\r\nHost: site.test\r\nConnection: Host,\tx-drop\r\n"
                      "Connection: x-other, close\r\nX-Drop: 1\r\nX-Other: 2\r\nX-Keep: 3\r\n\r\n";
    int fd = s_connect(s->http_port);
    assert_int_equal(write(fd, req, strlen(req)), (ssize_t) strlen(req));
    char *out = s_read_all(fd, 5000); // ends at EOF: the second field's close is honoured
    close(fd);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "Connection: close"));
    assert_non_null(strstr(out, "\"host\":\"site.test\""));
    assert_non_null(strstr(out, "\"x-keep\":\"3\""));
    assert_null(strstr(out, "x-drop"));
    assert_null(strstr(out, "x-other"));
    free(out);
}

//  Loose chunk framing is refused: junk after chunk data, a bare CR in a
//  size line, an LF inside a chunk extension.
static void
test_strict_chunk_framing(void **state)
{
    t_stack_t *s = *state;
    char *warm = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    free(warm);
    static const char *bodies[] = {
        "5\r\nhelloXX0\r\n\r\n",
        "5\rx\r\nhello\r\n0\r\n\r\n",
        "5;ext=a\nb\r\nhello\r\n0\r\n\r\n",
    };
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        char req[512];
        snprintf(req, sizeof req,
                 "POST /echo HTTP/1.1\r\nHost: site.test\r\nTransfer-Encoding: chunked\r\n\r\n%s",
                 bodies[i]);
        char *out = s_exchange(s->http_port, req, strlen(req), 5000);
        if (strstr(out, "HTTP/1.1 400") == NULL) {
            fprintf(stderr, "case %zu: %s\n", i, out);
            free(out);
            fail();
        }
        free(out);
    }
}

//  An HTTP/1.0 request without Host is never forwarded as a Host-less
//  HTTP/1.1 request.
static void
test_http10_without_host(void **state)
{
    t_stack_t *s = *state;
    char *out = s_request(s, "GET /echo HTTP/1.0\r\n\r\n");
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_non_null(strstr(out, "\"host\":\"127.0.0.1:"));
    free(out);
}

//  GATEWAY_BODY_TIMEOUT: a client that stops sending its body gets 408 and
//  the connection closes; the backend is not blamed.
//  One request to the gateway while this test plays the router: the decide
//  it sends is answered ok (the live backend) and its local copied into
//  *local; returns the HTTP answer (caller frees), "" if no decide came.
static char *
s_hop_request(t_stack_t *s, const char *raw, bool *local)
{
    int fd = s_connect(s->http_port);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, raw, strlen(raw)), (ssize_t) strlen(raw));
    bool decided = false;
    uint64_t deadline = it_now_ms() + 5000;
    while (!decided && it_now_ms() < deadline) {
        zmq_pollitem_t items[2] = {{.socket = s->router, .events = ZMQ_POLLIN},
                                   {.socket = s->balancer, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, 2, 100) <= 0)
            continue;
        void *sock = (items[0].revents & ZMQ_POLLIN) ? s->router : s->balancer;
        uint8_t id[256];
        int idlen = zmq_recv(sock, id, sizeof id, 0);
        zmq_msg_t body;
        zmq_msg_init(&body);
        zmq_msg_recv(&body, sock, 0);
        proto_msg_t in;
        proto_msg_init(&in, PROTO_NONE);
        int rc = proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), &in);
        zmq_msg_close(&body);
        if (rc != 0 || idlen <= 0)
            continue;
        if (in.type == PROTO_PING) {
            s_pong(sock, id, (size_t) idlen, &in, sock == s->router ? "router" : "balancer", 1,
                   true);
        } else if (in.type == PROTO_DECIDE && sock == s->router) {
            decided = true;
            *local = in.decide.local;
            proto_candidate_t cand = {.id = "live",
                                      .host = "127.0.0.1",
                                      .port = (uint16_t) s->backend_port,
                                      .weight = 1,
                                      .region = "1"};
            proto_msg_t lease;
            proto_msg_init(&lease, PROTO_LEASE);
            lease.id = in.id;
            lease.rid = in.rid;
            lease.lease.status = "ok";
            lease.lease.route = "r";
            lease.lease.vhost = in.decide.host;
            lease.lease.version = s->version;
            lease.lease.strategy = "ROUND_ROBIN";
            lease.lease.region = "1";
            lease.lease.candidates = &cand;
            lease.lease.candidates_count = 1;
            lease.lease.timeout_ms = 5000;
            lease.lease.max_body = 1024 * 1024;
            s_send_msg(s->router, id, (size_t) idlen, &lease);
        }
        proto_msg_clear(&in);
    }
    char *out = decided ? s_read_all(fd, 5000) : strdup("");
    close(fd);
    return out;
}

//  SPEC §3: the hop marker from a trusted peer (GATEWAY_TRUSTED_PROXIES)
//  asks for a local decision (decide's local: our region only, never
//  forwarded again), cached apart from the usual one; from any other peer
//  it means nothing, and does not reach the backend.
static void
test_hop_marker_local(void **state)
{
    t_stack_t *s = *state;
    static const char marked[] = "GET /echo HTTP/1.1\r\nHost: hop.test\r\n"
                                 "X-Switchyard-Hop: 1\r\nConnection: close\r\n\r\n";
    static const char plain[] = "GET /echo HTTP/1.1\r\nHost: hop.test\r\n"
                                "Connection: close\r\n\r\n";
    // the setup's gateway trusts nobody
    bool local = true;
    char *out = s_hop_request(s, marked, &local);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_false(local);
    assert_null(strstr(out, "x-switchyard-hop"));
    assert_null(strstr(out, "X-Switchyard-Hop"));
    free(out);

    // the same gateway, now trusting 127.0.0.1 (verbose: its subscription is
    // seen even if the old gateway's is not forgotten yet)
    int one = 1;
    assert_int_equal(zmq_setsockopt(s->router_pub, ZMQ_XPUB_VERBOSE, &one, sizeof one), 0);
    assert_int_equal(it_stop(&s->env, s->gw, 20000), 0);
    s->gw = -1;
    assert_true(it_clean_stderr(&s->env, "gateway"));
    char http[64], admin[64];
    snprintf(http, sizeof http, "GATEWAY_HTTP_ADDR=127.0.0.1:%d", s->http_port);
    snprintf(admin, sizeof admin, "GATEWAY_ADMIN_ADDR=127.0.0.1:%d", s->admin_port);
    const char *genv[] = {http,
                          admin,
                          "GATEWAY_DECISION_TIMEOUT=300ms",
                          "INSTANCE_ID=gw-it",
                          "GATEWAY_TRUSTED_PROXIES=127.0.0.1/32",
                          NULL};
    s->gw = it_spawn(&s->env, "gateway", "gateway", genv, NULL);
    assert_true(s->gw > 0);
    assert_int_equal(it_wait_bound(&s->env, "gateway", s->gw, 20000), 0);
    uint64_t deadline = it_now_ms() + 10000;
    bool subscribed = false;
    while (!subscribed && it_now_ms() < deadline) {
        zmq_pollitem_t item = {.socket = s->router_pub, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, 100) > 0) {
            char sub[64];
            int n = zmq_recv(s->router_pub, sub, sizeof sub, 0);
            subscribed = n > 1 && sub[0] == 1;
        }
    }
    assert_true(subscribed);

    out = s_hop_request(s, marked, &local);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_true(local);
    free(out);
    // the usual request for the same Host and region is another lease: a
    // decide of its own, not local
    local = true;
    out = s_hop_request(s, plain, &local);
    assert_non_null(strstr(out, "HTTP/1.1 200"));
    assert_false(local);
    free(out);
}

static void
test_body_timeout(void **state)
{
    t_stack_t *s = *state;
    char *warm = s_request(s, "GET / HTTP/1.1\r\nHost: site.test\r\nConnection: close\r\n\r\n");
    free(warm);
    const char *req = "POST /echo HTTP/1.1\r\nHost: site.test\r\nContent-Length: 10\r\n\r\nabc";
    uint64_t t0 = it_now_ms();
    char *out = s_exchange(s->http_port, req, strlen(req), 8000);
    uint64_t took = it_now_ms() - t0;
    printf("408 after %llu ms (GATEWAY_BODY_TIMEOUT=1s)\n", (unsigned long long) took);
    assert_non_null(strstr(out, "HTTP/1.1 408"));
    assert_non_null(strstr(out, "Connection: close"));
    assert_true(took >= 900 && took < 6000);
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("gateway"),
        cmocka_unit_test_setup_teardown(test_decide_and_lease_reuse, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_outcomes, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_report_batches, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_keepalive_pipelining_headers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_chunked_both_ways, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_bad_requests, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_admin_local_answers, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ready_needs_a_router_with_a_balancer, s_setup,
                                        s_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_drains, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_admin_body_over_1mib, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_absolute_form, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_connection_fields, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_strict_chunk_framing, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_http10_without_host, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_body_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hop_marker_local, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("it_gateway", tests, NULL, NULL);
}
