/*  it_healthd - integration test of bin/healthd: the real binary, driven over
    the bus, probing real backends (bin/demo-backend).

    This process plays a router (router.<our pid>.req/.pub in the healthd's
    BUS_DIR: it answers config.get what=health with a body the test controls
    and publishes config.changed) and a gateway (gateway.<our pid>.pub:
    upstream.failed), and listens to healthd's backend.state. Probes run
    every 100 ms (HEALTHD_INTERVAL), recovery probes every 200 ms, with a
    150 ms timeout, so every timing below is bounded in a few seconds.
*/
#include <arpa/inet.h>
#include <netinet/in.h>
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

#define T_MAX_EVENTS 512

typedef struct {
    char route[64];    // backend.state route
    char backend[64];  // ... backend
    bool up;           // ... up
    char reason[64];   // ... reason
    uint32_t failures; // ... failures
    uint64_t at_ms;    // when it arrived (monotonic)
} t_event_t;

typedef struct {
    it_env_t env;
    pid_t healthd;
    pid_t backend_a; // demo-backend on port_a
    pid_t backend_b; // demo-backend on port_b
    int port_a;
    int port_b;
    void *router;        // scripted router: config.get
    void *router_pub;    // scripted router: config.changed
    void *gw_req;        // scripted gateway (only so that it is found)
    void *gw_pub;        // scripted gateway: upstream.failed
    void *states;        // SUB on healthd: backend.state
    void *dealer;        // DEALER to healthd (ping), or NULL
    char body[65536];    // what config.get what=health answers
    char web_body[2048]; // ... with key web.test (set by the test), else "[]"
    char last_key[64];   // the key of the last config.get
    int fetches;         // config.get answered
    t_event_t events[T_MAX_EVENTS];
    size_t nevents;
    int router_subs; // subscriptions seen on router_pub
    int gw_subs;     // ... on gw_pub
} t_fix_t;

static void
s_send_msg(void *sock, const void *id, size_t idlen, proto_msg_t *msg)
{
    proto_buf_t buf = {0};
    msg->src = "scripted/it";
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    assert_int_equal(proto_encode(msg, &buf), 0);
    if (id)
        zmq_send(sock, id, idlen, ZMQ_SNDMORE);
    zmq_send(sock, buf.data, buf.size, 0);
    proto_buf_free(&buf);
}

//  The route web.test as the router gives it; maint: backend "m" in maintenance.
static void
s_web_route(t_fix_t *f, bool maint, char *out, size_t cap)
{
    snprintf(out, cap,
             "{\"route\":\"web\",\"vHost\":\"web.test\",\"healthPath\":\"/\",\"backends\":["
             "{\"id\":\"a\",\"hostname\":\"127.0.0.1\",\"port\":%d,\"region\":\"1\","
             "\"probe\":\"http\",\"maintenance\":false},"
             "{\"id\":\"b\",\"hostname\":\"127.0.0.1\",\"port\":%d,\"region\":\"1\","
             "\"probe\":\"http\",\"maintenance\":false},"
             "{\"id\":\"t\",\"hostname\":\"127.0.0.1\",\"port\":%d,\"region\":\"1\","
             "\"probe\":\"tcp\",\"maintenance\":false},"
             "{\"id\":\"m\",\"hostname\":\"127.0.0.1\",\"port\":%d,\"region\":\"1\","
             "\"probe\":\"http\",\"maintenance\":%s}]}",
             f->port_a, f->port_b, f->port_b, f->port_a, maint ? "true" : "false");
}

//  The routes the scripted router serves; maint: backend "m" in maintenance.
static void
s_set_body(t_fix_t *f, bool maint)
{
    char web[1024];
    s_web_route(f, maint, web, sizeof web);
    snprintf(f->body, sizeof f->body,
             "[%s,"
             // one address, another check: its own state
             "{\"route\":\"err\",\"vHost\":\"err.test\",\"healthPath\":\"/status/500\","
             "\"backends\":[{\"id\":\"a\",\"hostname\":\"127.0.0.1\",\"port\":%d,"
             "\"region\":\"1\",\"probe\":\"http\",\"maintenance\":false}]},"
             "{\"route\":\"hang\",\"vHost\":\"*.hang.test\",\"healthPath\":\"/slow?ms=3000\","
             "\"backends\":[{\"id\":\"a\",\"hostname\":\"127.0.0.1\",\"port\":%d,"
             "\"region\":\"1\",\"probe\":\"http\",\"maintenance\":false}]},"
             "{\"route\":\"passive\",\"vHost\":\"p.test\",\"healthPath\":\"/\","
             "\"backends\":[{\"id\":\"a\",\"hostname\":\"127.0.0.1\",\"port\":%d,"
             "\"region\":\"1\",\"probe\":\"http\",\"maintenance\":false}]}]",
             web, f->port_a, f->port_a, f->port_a);
    // what the router answers for key web.test alone
    snprintf(f->web_body, sizeof f->web_body, "[%s]", web);
}

//  Serve the router, watch subscriptions, record backend.state, for up to ms.
static void
s_pump(t_fix_t *f, int ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) ms;
    for (;;) {
        int left = (int) (deadline - it_now_ms());
        if (left < 0)
            return;
        zmq_pollitem_t items[4] = {{.socket = f->router, .events = ZMQ_POLLIN},
                                   {.socket = f->states, .events = ZMQ_POLLIN},
                                   {.socket = f->router_pub, .events = ZMQ_POLLIN},
                                   {.socket = f->gw_pub, .events = ZMQ_POLLIN}};
        if (zmq_poll(items, 4, left) <= 0)
            return;
        if (items[0].revents & ZMQ_POLLIN) {
            uint8_t id[256];
            int idlen = zmq_recv(f->router, id, sizeof id, 0);
            zmq_msg_t body;
            zmq_msg_init(&body);
            zmq_msg_recv(&body, f->router, 0);
            proto_msg_t in;
            proto_msg_init(&in, PROTO_NONE);
            int rc = proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), &in);
            zmq_msg_close(&body);
            if (rc == 0 && idlen > 0 && in.type == PROTO_CONFIG_GET) {
                assert_string_equal(in.config_get.what, "health");
                const char *key = in.config_get.key ? in.config_get.key : "";
                snprintf(f->last_key, sizeof f->last_key, "%s", key);
                proto_msg_t reply;
                proto_msg_init(&reply, PROTO_CONFIG_REPLY);
                reply.id = in.id;
                reply.config_reply.status = 200;
                reply.config_reply.version = 1;
                // with a key, that vHost's route alone (the router's answer)
                // "@N" asks for a page: the whole list as one array is one
                const char *answer = f->body;
                if (*key && *key != '@')
                    answer = strcmp(key, "web.test") == 0 ? f->web_body : "[]";
                reply.config_reply.body = answer;
                s_send_msg(f->router, id, (size_t) idlen, &reply);
                f->fetches++;
            }
            proto_msg_clear(&in);
        }
        if (items[1].revents & ZMQ_POLLIN) {
            proto_msg_t msg;
            proto_msg_init(&msg, PROTO_NONE);
            char topic[64];
            if (it_recv(f->states, &msg, topic, sizeof topic, 0) == 0
                && msg.type == PROTO_BACKEND_STATE && f->nevents < T_MAX_EVENTS) {
                t_event_t *e = &f->events[f->nevents++];
                snprintf(e->route, sizeof e->route, "%s", msg.backend_state.route);
                snprintf(e->backend, sizeof e->backend, "%s", msg.backend_state.backend);
                e->up = msg.backend_state.up;
                snprintf(e->reason, sizeof e->reason, "%s",
                         msg.backend_state.reason ? msg.backend_state.reason : "");
                e->failures = msg.backend_state.failures;
                e->at_ms = it_now_ms();
                assert_true(msg.backend_state.since_ms > 0);
            }
            proto_msg_clear(&msg);
        }
        for (int i = 2; i < 4; i++)
            if (items[i].revents & ZMQ_POLLIN) {
                char sub[64];
                int n = zmq_recv(items[i].socket, sub, sizeof sub, 0);
                if (n > 1 && sub[0] == 1)
                    (*(i == 2 ? &f->router_subs : &f->gw_subs))++;
            }
    }
}

//  Index of the first event at or after from matching (route, backend, up),
//  waiting up to ms; -1 if none came.
static int
s_wait(t_fix_t *f, size_t from, const char *route, const char *backend, bool up, int ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) ms;
    for (;;) {
        for (size_t i = from; i < f->nevents; i++)
            if (strcmp(f->events[i].route, route) == 0 && strcmp(f->events[i].backend, backend) == 0
                && f->events[i].up == up)
                return (int) i;
        if (it_now_ms() >= deadline) {
            if (ms == 0)
                return -1; // asked whether it came already: not a failure to report
            fprintf(stderr, "no %s for %s/%s; events:\n", up ? "up" : "down", route, backend);
            for (size_t i = 0; i < f->nevents; i++)
                fprintf(stderr, "  %s/%s %s %s failures=%u\n", f->events[i].route,
                        f->events[i].backend, f->events[i].up ? "up" : "down", f->events[i].reason,
                        f->events[i].failures);
            it_dump(&f->env, "healthd");
            return -1;
        }
        s_pump(f, 20);
    }
}

//  Events of (route, backend) from index from, as a string of 'U' and 'D'
//  with repeats of the same state folded (a dead backend is re-announced).
static void
s_sequence(t_fix_t *f, size_t from, const char *route, const char *backend, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = from; i < f->nevents && n + 1 < cap; i++) {
        if (strcmp(f->events[i].route, route) != 0 || strcmp(f->events[i].backend, backend) != 0)
            continue;
        char c = f->events[i].up ? 'U' : 'D';
        if (n > 0 && out[n - 1] == c)
            continue;
        out[n++] = c;
        out[n] = '\0';
    }
}

static pid_t
s_backend(t_fix_t *f, int port, const char *name)
{
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *args[] = {"--port", p, "--name", name, NULL};
    pid_t pid = it_spawn(&f->env, "demo-backend", name, NULL, args);
    assert_true(pid > 0);
    uint64_t deadline = it_now_ms() + 10000;
    for (;;) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        int rc = connect(fd, (struct sockaddr *) &sa, sizeof sa);
        close(fd);
        if (rc == 0)
            return pid;
        assert_true(it_now_ms() < deadline);
        it_pause(10);
    }
}

static pid_t
s_healthd_env(t_fix_t *f, const char *name, const char *const *env)
{
    pid_t pid = it_spawn(&f->env, "healthd", name, env, NULL);
    assert_true(pid > 0);
    assert_int_equal(it_wait_bound(&f->env, "healthd", pid, 20000), 0);
    char pub[256];
    it_pub_endpoint(&f->env, "healthd", pid, pub, sizeof pub);
    if (f->states)
        zmq_close(f->states);
    f->states = it_sub(&f->env, pub, "backend.state");
    // proc.stats is published when a subscriber arrives: once it is here,
    // our SUB is connected and no backend.state can be missed (the
    // config.get waits in our ROUTER meanwhile, so nothing is probed yet)
    zmq_setsockopt(f->states, ZMQ_SUBSCRIBE, "proc.stats", 10);
    uint64_t deadline = it_now_ms() + 10000;
    bool joined = false;
    while (!joined && it_now_ms() < deadline) {
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_NONE);
        joined = it_recv(f->states, &msg, NULL, 0, 100) == 0 && msg.type == PROTO_PROC_STATS;
        proto_msg_clear(&msg);
    }
    assert_true(joined);
    return pid;
}

static pid_t
s_healthd(t_fix_t *f, const char *name)
{
    static const char *const env[] = {"HEALTHD_INTERVAL=100ms", "HEALTHD_TIMEOUT=150ms",
                                      "HEALTHD_RECOVERY_INTERVAL=200ms", "INSTANCE_ID=hd-it", NULL};
    return s_healthd_env(f, name, env);
}

static void *
s_bind(t_fix_t *f, int type, const char *kind, const char *ext)
{
    void *sock = zmq_socket(f->env.ctx, type);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    char ep[256];
    snprintf(ep, sizeof ep, "ipc://%s/%s.%d.%s", f->env.bus_dir, kind, (int) getpid(), ext);
    assert_int_equal(zmq_bind(sock, ep), 0);
    return sock;
}

static int
s_setup(void **state)
{
    t_fix_t *f = calloc(1, sizeof *f);
    assert_int_equal(it_env_init(&f->env), 0);
    mkdir(f->env.bus_dir, 0755);
    f->router = s_bind(f, ZMQ_ROUTER, "router", "req");
    f->router_pub = s_bind(f, ZMQ_XPUB, "router", "pub");
    f->gw_req = s_bind(f, ZMQ_ROUTER, "gateway", "req");
    f->gw_pub = s_bind(f, ZMQ_XPUB, "gateway", "pub");
    f->port_a = it_free_port_pair();
    f->port_b = it_free_port_pair();
    while (f->port_b == f->port_a || f->port_b == f->port_a + 1)
        f->port_b = it_free_port_pair();
    f->backend_a = s_backend(f, f->port_a, "backend-a");
    f->backend_b = s_backend(f, f->port_b, "backend-b");
    s_set_body(f, true);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    t_fix_t *f = *state;
    if (f->states)
        zmq_close(f->states);
    if (f->dealer)
        zmq_close(f->dealer);
    zmq_close(f->router);
    zmq_close(f->router_pub);
    zmq_close(f->gw_req);
    zmq_close(f->gw_pub);
    it_env_fini(&f->env);
    free(f);
    return 0;
}

static void
s_upstream_failed(t_fix_t *f, const char *route, const char *backend, const char *reason)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_UPSTREAM_FAILED);
    msg.id = 1;
    msg.upstream_failed.route = route;
    msg.upstream_failed.backend = backend;
    msg.upstream_failed.reason = reason;
    zmq_send(f->gw_pub, "upstream.failed", 15, ZMQ_SNDMORE);
    s_send_msg(f->gw_pub, NULL, 0, &msg);
}

static void
s_config_changed_key(t_fix_t *f, const char *what, const char *key)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_CHANGED);
    msg.id = 1;
    msg.config_changed.version = 2;
    msg.config_changed.what = what;
    msg.config_changed.key = key;
    zmq_send(f->router_pub, "config.changed", 14, ZMQ_SNDMORE);
    s_send_msg(f->router_pub, NULL, 0, &msg);
}

//  Die (refused), hang (timeouts), 500, recover, maintenance, passive
//  failures, two routes on one address: the backend.state sequence.
static void
test_states(void **state)
{
    t_fix_t *f = *state;
    f->healthd = s_healthd(f, "healthd");
    uint64_t t0 = it_now_ms();
    // start: live backends up after 2 probes (first one within 1 interval)
    int i;
    assert_true((i = s_wait(f, 0, "web", "a", true, 3000)) >= 0);
    assert_true(f->events[i].at_ms - t0 < 2000);
    assert_true(s_wait(f, 0, "web", "b", true, 3000) >= 0);
    assert_true(s_wait(f, 0, "web", "t", true, 3000) >= 0);
    assert_true(s_wait(f, 0, "passive", "a", true, 3000) >= 0);
    // maintenance: down at once, reason maintenance, never probed up
    assert_true((i = s_wait(f, 0, "web", "m", false, 3000)) >= 0);
    assert_string_equal(f->events[i].reason, "maintenance");
    // the same address with /status/500: dead after 3 failures, a state of its own
    assert_true((i = s_wait(f, 0, "err", "a", false, 3000)) >= 0);
    assert_string_equal(f->events[i].reason, "status 500");
    assert_int_equal(f->events[i].failures, 3);
    // hangs: dead after 3 timeouts
    assert_true((i = s_wait(f, 0, "hang", "a", false, 3000)) >= 0);
    assert_string_equal(f->events[i].reason, "timeout");
    assert_int_equal(f->events[i].failures, 3);

    // the backend dies: refused, dead after 1, within an interval (+ timing slack)
    size_t mark = f->nevents;
    it_kill(&f->env, f->backend_b);
    f->backend_b = 0;
    uint64_t killed = it_now_ms();
    assert_true((i = s_wait(f, mark, "web", "b", false, 2000)) >= 0);
    assert_string_equal(f->events[i].reason, "refused");
    // 1, or 2 when a probe in flight at the kill saw the connection closed first
    assert_in_range(f->events[i].failures, 1, 2);
    assert_true(f->events[i].at_ms - killed < 1000); // SPEC §6: within 1 s
    assert_true((i = s_wait(f, mark, "web", "t", false, 2000)) >= 0);
    assert_string_equal(f->events[i].reason, "refused");
    // it comes back: alive after 2 recovery probes (200 ms apart)
    mark = f->nevents;
    f->backend_b = s_backend(f, f->port_b, "backend-b.1");
    uint64_t back = it_now_ms();
    assert_true((i = s_wait(f, mark, "web", "b", true, 3000)) >= 0);
    assert_true(f->events[i].at_ms - back >= 150); // not after 1 probe
    assert_true(f->events[i].at_ms - back < 1500);
    assert_true(s_wait(f, mark, "web", "t", true, 3000) >= 0);

    // passive failures: 3 resets kill, then probes bring it back; 1 refused kills
    s_pump(f, 100);
    assert_true(f->gw_subs > 0); // healthd subscribed to our gateway
    mark = f->nevents;
    s_upstream_failed(f, "passive", "a", "reset");
    s_upstream_failed(f, "passive", "a", "reset");
    s_pump(f, 50);
    assert_int_equal(s_wait(f, mark, "passive", "a", false, 0), -1); // 2 are not enough
    // 3 in a row (sent together, so no successful probe falls between them)
    for (int k = 0; k < 3; k++)
        s_upstream_failed(f, "passive", "a", "reset");
    assert_true((i = s_wait(f, mark, "passive", "a", false, 1000)) >= 0);
    assert_string_equal(f->events[i].reason, "upstream reset");
    assert_true(s_wait(f, mark, "passive", "a", true, 3000) >= 0);
    mark = f->nevents;
    s_upstream_failed(f, "passive", "a", "refused");
    assert_true((i = s_wait(f, mark, "passive", "a", false, 1000)) >= 0);
    assert_string_equal(f->events[i].reason, "upstream refused");
    // passive failures of another route on the same address change nothing there
    assert_true(s_wait(f, mark, "passive", "a", true, 3000) >= 0);

    // maintenance over (config.changed what=alive key=web.test): healthd asks
    // for that route alone, probes m at once, up after 1 success, and
    // leaves the other routes' backends as they were
    mark = f->nevents;
    s_set_body(f, false);
    uint64_t alive = it_now_ms();
    s_config_changed_key(f, "alive", "web.test");
    assert_true((i = s_wait(f, mark, "web", "m", true, 3000)) >= 0);
    assert_true(f->events[i].at_ms - alive < 500); // not a jittered interval later
    assert_string_equal(f->last_key, "web.test");
    char *log = it_read_file(&f->env, "healthd", "out");
    assert_non_null(log);
    assert_null(strstr(log, "no longer watched"));
    free(log);

    // no flap anywhere: err and hang stayed down, web/a and web/b never went down
    // but when killed
    char seq[64];
    s_sequence(f, 0, "err", "a", seq, sizeof seq);
    assert_string_equal(seq, "D");
    s_sequence(f, 0, "hang", "a", seq, sizeof seq);
    assert_string_equal(seq, "D");
    s_sequence(f, 0, "web", "a", seq, sizeof seq);
    assert_string_equal(seq, "U");
    s_sequence(f, 0, "web", "b", seq, sizeof seq);
    assert_string_equal(seq, "UDU");
    s_sequence(f, 0, "web", "m", seq, sizeof seq);
    assert_string_equal(seq, "DU");

    // counters in pong
    char req[256];
    it_req_endpoint(&f->env, "healthd", f->healthd, req, sizeof req);
    void *dealer = f->dealer = it_dealer(&f->env, req);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(dealer, &pong, 5000), 0);
    assert_int_equal(it_counter(&pong, "backends.watched"), 7);
    assert_true(it_counter(&pong, "probes") > 20);
    assert_true(it_counter(&pong, "probes.failed") >= 8);
    assert_true(it_counter(&pong, "states.changed") >= 14);
    assert_int_equal(it_counter(&pong, "passive.failures"), 6);
    proto_msg_clear(&pong);
    zmq_close(dealer);
    f->dealer = NULL;

    // the warn lines
    char *out = it_read_file(&f->env, "healthd", "out");
    char *err = it_read_file(&f->env, "healthd", "err");
    char *all = NULL;
    assert_true(asprintf(&all, "%s%s", out ? out : "", err ? err : "") > 0);
    assert_non_null(strstr(all, "\"backend dead\""));
    assert_non_null(strstr(all, "\"backend alive\""));
    assert_non_null(strstr(all, "\"level\":\"warn\""));
    free(all);
    free(out);
    free(err);
    assert_int_equal(it_stop(&f->env, f->healthd, 10000), 0);
    assert_true(it_clean_stderr(&f->env, "healthd"));
}

//  A restarted healthd: every pair starts unknown and is published only at
//  a verdict, so a dead backend is never announced up and a live one never
//  down; a backend that recovered while no healthd ran is announced up.
static void
test_restart_no_flap(void **state)
{
    t_fix_t *f = *state;
    s_set_body(f, false);
    f->healthd = s_healthd(f, "healthd");
    assert_true(s_wait(f, 0, "err", "a", false, 3000) >= 0);
    assert_true(s_wait(f, 0, "web", "a", true, 3000) >= 0);
    // backend b dies while healthd runs, then healthd stops; b comes back
    it_kill(&f->env, f->backend_b);
    assert_true(s_wait(f, 0, "web", "b", false, 2000) >= 0);
    assert_int_equal(it_stop(&f->env, f->healthd, 10000), 0);
    f->backend_b = s_backend(f, f->port_b, "backend-b.2");
    size_t mark = f->nevents;
    f->healthd = s_healthd(f, "healthd.1");
    uint64_t t0 = it_now_ms();
    int i = s_wait(f, mark, "web", "b", true, 3000); // a balancer still holding "down" learns
    assert_true(i >= 0);
    assert_true(f->events[i].at_ms - t0 < 2000);
    assert_true(s_wait(f, mark, "hang", "a", false, 3000) >= 0);
    s_pump(f, 1000);
    const char *pairs[][3] = {{"err", "a", "D"},    {"hang", "a", "D"}, {"web", "a", "U"},
                              {"web", "b", "U"},    {"web", "t", "U"},  {"web", "m", "U"},
                              {"passive", "a", "U"}};
    for (size_t p = 0; p < sizeof pairs / sizeof *pairs; p++) {
        char seq[64];
        s_sequence(f, mark, pairs[p][0], pairs[p][1], seq, sizeof seq);
        if (strcmp(seq, pairs[p][2]) != 0)
            fail_msg("%s/%s after restart: %s, want %s", pairs[p][0], pairs[p][1], seq,
                     pairs[p][2]);
    }
    assert_int_equal(it_stop(&f->env, f->healthd, 10000), 0);
    assert_true(it_clean_stderr(&f->env, "healthd.1"));
}

//  Hundreds of backends: 400 pairs (300 on a live backend, 100 on a closed
//  port) all reach their verdict within a few intervals, and healthd keeps
//  the pace its schedule asks (one probe per pair per second) instead of
//  falling behind.
#define T_MANY      400
#define T_MANY_DEAD 4 // every 4th pair is on the closed port
static void
test_hundreds(void **state)
{
    t_fix_t *f = *state;
    int closed = it_free_port_pair();
    size_t n = (size_t) snprintf(f->body, sizeof f->body,
                                 "[{\"route\":\"many\",\"vHost\":\"many.test\","
                                 "\"healthPath\":\"/\",\"backends\":[");
    for (int i = 0; i < T_MANY; i++) {
        n += (size_t) snprintf(f->body + n, sizeof f->body - n,
                               "%s{\"id\":\"b%d\",\"hostname\":\"127.0.0.1\",\"port\":%d,"
                               "\"region\":\"1\",\"probe\":\"http\",\"maintenance\":false}",
                               i ? "," : "", i,
                               i % T_MANY_DEAD == T_MANY_DEAD - 1 ? closed : f->port_a);
        assert_true(n < sizeof f->body - 8);
    }
    n += (size_t) snprintf(f->body + n, sizeof f->body - n, "]}]");
    static const char *const env[] = {"HEALTHD_INTERVAL=1s", "HEALTHD_TIMEOUT=500ms",
                                      "HEALTHD_RECOVERY_INTERVAL=1s", "INSTANCE_ID=hd-many", NULL};
    uint64_t t0 = it_now_ms();
    f->healthd = s_healthd_env(f, "healthd", env);
    // every verdict: alive after 2 probes (the first within the first
    // interval, the second one interval later, +-10 %), dead after 1 refused
    // (a dead pair is announced again now and then: count pairs, not events)
    // ~2.1 s here when the machine is quiet; the bound is loose for a loaded
    // CI (a probe of the test's own backend can time out at 500 ms then)
    uint64_t deadline = t0 + 15000;
    bool seen[T_MANY] = {false};
    size_t verdicts = 0, down = 0, checked = 0;
    while (verdicts < T_MANY && it_now_ms() < deadline) {
        s_pump(f, 50);
        for (; checked < f->nevents; checked++) {
            const t_event_t *e = &f->events[checked];
            assert_string_equal(e->route, "many");
            int id = (int) strtol(e->backend + 1, NULL, 10);
            assert_true(id >= 0 && id < T_MANY);
            bool dead = id % T_MANY_DEAD == T_MANY_DEAD - 1;
            assert_true(e->up == !dead);
            if (!seen[id]) {
                seen[id] = true;
                verdicts++;
                down += dead;
            }
        }
    }
    uint64_t took = it_now_ms() - t0;
    print_message("%zu verdicts of %d pairs in %llu ms\n", verdicts, T_MANY,
                  (unsigned long long) took);
    assert_int_equal(verdicts, T_MANY);
    assert_int_equal(down, T_MANY / T_MANY_DEAD);
    // the pace: probes counted over 3 s against one per pair per second
    char ep[256];
    it_req_endpoint(&f->env, "healthd", f->healthd, ep, sizeof ep);
    f->dealer = it_dealer(&f->env, ep);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(f->dealer, &pong, 5000), 0);
    uint64_t p0 = it_counter(&pong, "probes"), m0 = it_now_ms();
    proto_msg_clear(&pong);
    s_pump(f, 3000);
    assert_int_equal(it_ping(f->dealer, &pong, 5000), 0);
    uint64_t p1 = it_counter(&pong, "probes"), m1 = it_now_ms();
    proto_msg_clear(&pong);
    double per_s = (double) (p1 - p0) * 1000.0 / (double) (m1 - m0);
    print_message("%.0f probes/s for %d pairs at a 1 s interval\n", per_s, T_MANY);
    assert_true(per_s >= 0.8 * T_MANY && per_s <= 1.25 * T_MANY);
    assert_int_equal(it_stop(&f->env, f->healthd, 10000), 0);
    assert_true(it_clean_stderr(&f->env, "healthd"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("healthd"),
        cmocka_unit_test_setup_teardown(test_states, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_restart_no_flap, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_hundreds, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("it_healthd", tests, NULL, NULL);
}
