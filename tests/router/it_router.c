/*  it_router - integration test of bin/router: the real binary, driven over the bus.

    Beyond the checks every actor passes: the control plane (config.put/get/
    delete answers, versions, config.changed on the XPUB, the state file
    written and reloaded by a restarted router), decisions (decide relayed
    to a scripted balancer peer and its lease relayed back with the route's
    policy; no route; no balancer; a silent balancer), and a malformed state
    file refused at start with exit 1.

    The scripted balancer binds balancer.<pid>.req/.pub in the router's
    BUS_DIR under this test's own pid (discovery only believes live pids).
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
#include <jansson.h>
#include <zmq.h>

#include "it.h"
#include "it_actor.h"
#include "proto_util.h"

#define S_WAIT_MS 10000 // generous deadline for anything under sanitizers

//  A router started in env, and the test's sockets to it.
typedef struct {
    pid_t pid;     // the router
    void *dealer;  // requests to it
    void *sub;     // its config.changed events
    char name[32]; // log file stem
} s_router_t;

static void
s_start(it_env_t *env, s_router_t *rt, const char *name, const char *state_file)
{
    char state_env[160];
    snprintf(state_env, sizeof state_env, "ROUTER_STATE_FILE=%s", state_file);
    const char *envs[] = {state_env, "REGION=eu-1", "LOG_LEVEL=debug", NULL};
    proto_strlcpy(rt->name, name, sizeof rt->name);
    rt->pid = it_spawn(env, "router", name, envs, NULL);
    assert_true(rt->pid > 0);
    if (it_wait_bound(env, "router", rt->pid, 20000) != 0) {
        it_dump(env, name);
        fail_msg("router did not bind its bus sockets");
    }
    char req[256], pub[256];
    it_req_endpoint(env, "router", rt->pid, req, sizeof req);
    it_pub_endpoint(env, "router", rt->pid, pub, sizeof pub);
    rt->dealer = it_dealer(env, req);
    // subscribed to proc.stats too: the router answers a new proc.stats
    // subscriber at once, which proves our subscriptions have arrived
    rt->sub = it_sub(env, pub, "config.changed");
    zmq_setsockopt(rt->sub, ZMQ_SUBSCRIBE, "proc.stats", strlen("proc.stats"));
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    char topic[64];
    assert_int_equal(it_recv(rt->sub, &msg, topic, sizeof topic, S_WAIT_MS), 0);
    assert_string_equal(topic, "proc.stats");
    proto_msg_clear(&msg);
}

//  SIGTERM: exit 0 and no sanitizer report (leaks included).
static void
s_stop(it_env_t *env, s_router_t *rt)
{
    zmq_close(rt->dealer);
    zmq_close(rt->sub);
    int status = it_stop(env, rt->pid, 20000);
    if (status != 0)
        it_dump(env, rt->name);
    assert_int_equal(status, 0);
    assert_true(it_clean_stderr(env, rt->name));
}

//  Send msg on a DEALER and wait for the answer carrying its id.
static int
s_request(void *dealer, proto_msg_t *msg, proto_msg_t *reply, int timeout_ms)
{
    if (it_send(dealer, msg) != 0)
        return -1;
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    while (it_now_ms() < deadline) {
        int left = (int) (deadline - it_now_ms());
        int rc = it_recv(dealer, reply, NULL, 0, left > 0 ? left : 1);
        if (rc == 0 && reply->id == msg->id)
            return 0;
        if (rc == -1)
            return -1;
    }
    return -1;
}

static uint16_t
s_put(s_router_t *rt,
      const char *what,
      const char *key,
      const char *sub,
      int create_only,
      const char *body,
      proto_msg_t *reply)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_PUT);
    msg.config_put.what = what;
    msg.config_put.key = key;
    msg.config_put.sub = sub;
    msg.config_put.create_only = (uint8_t) create_only;
    msg.config_put.body = body;
    msg.config_put.by = "it";
    assert_int_equal(s_request(rt->dealer, &msg, reply, S_WAIT_MS), 0);
    assert_int_equal(reply->type, PROTO_CONFIG_REPLY);
    return reply->config_reply.status;
}

static uint16_t
s_get(s_router_t *rt, const char *what, const char *key, proto_msg_t *reply)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_GET);
    msg.config_get.what = what;
    msg.config_get.key = key;
    assert_int_equal(s_request(rt->dealer, &msg, reply, S_WAIT_MS), 0);
    assert_int_equal(reply->type, PROTO_CONFIG_REPLY);
    return reply->config_reply.status;
}

static uint16_t
s_delete(s_router_t *rt, const char *what, const char *key, const char *sub, proto_msg_t *reply)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_DELETE);
    msg.config_delete.what = what;
    msg.config_delete.key = key;
    msg.config_delete.sub = sub;
    msg.config_delete.by = "it";
    assert_int_equal(s_request(rt->dealer, &msg, reply, S_WAIT_MS), 0);
    assert_int_equal(reply->type, PROTO_CONFIG_REPLY);
    return reply->config_reply.status;
}

//  The next config.changed (proc.stats skipped): must carry this version.
static void
s_expect_changed(s_router_t *rt, uint64_t version, const char *what, const char *key)
{
    proto_msg_t ev;
    proto_msg_init(&ev, PROTO_NONE);
    char topic[64];
    uint64_t deadline = it_now_ms() + S_WAIT_MS;
    bool seen = false;
    while (!seen && it_now_ms() < deadline) {
        if (it_recv(rt->sub, &ev, topic, sizeof topic, 500) != 0)
            continue;
        seen = strcmp(topic, "config.changed") == 0;
        if (!seen)
            continue;
        assert_int_equal(ev.type, PROTO_CONFIG_CHANGED);
        assert_int_equal(ev.config_changed.version, version);
        assert_string_equal(ev.config_changed.what, what);
        assert_string_equal(ev.config_changed.key, key);
    }
    assert_true(seen);
    proto_msg_clear(&ev);
}

//  A reply's JSON body (caller frees).
static json_t *
s_json(const proto_msg_t *reply)
{
    assert_non_null(reply->config_reply.body);
    json_t *json = json_loads(reply->config_reply.body, 0, NULL);
    assert_non_null(json);
    return json;
}

static const char *s_api_route = "{\"vHost\": \"api.example.com\", \"strategy\": \"ROUND_ROBIN\", "
                                 "\"retries\": 3, \"timeoutMs\": 1234, \"reqActiveLength\": 7, "
                                 "\"reqQueueLength\": 9, \"maxBodyBytes\": 4096, "
                                 "\"headers\": {\"X-Env\": \"prod\"}, \"chatPath\": \"/chat\", "
                                 "\"backends\": ["
                                 "{\"id\": \"n1\", \"hostname\": \"10.0.0.1\", \"port\": 3000}, "
                                 "{\"hostname\": \"10.0.0.2\", \"port\": 3001, \"region\": \"2\", "
                                 "\"weight\": 4}]}";

static void
test_config(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    s_router_t rt;
    s_start(&env, &rt, "router", "state/rt.json"); // state/ does not exist yet
    proto_msg_t reply;
    proto_msg_init(&reply, PROTO_NONE);

    assert_int_equal(s_get(&rt, "routes", NULL, &reply), 200);
    assert_string_equal(reply.config_reply.body, "[]");
    assert_int_equal(reply.config_reply.version, 0);

    assert_int_equal(s_put(&rt, "route", "api.example.com", NULL, 0, s_api_route, &reply), 201);
    assert_int_equal(reply.config_reply.version, 1);
    json_t *route = s_json(&reply);
    json_t *b0 = json_array_get(json_object_get(route, "backends"), 0);
    assert_string_equal(json_string_value(json_object_get(b0, "region")), "eu-1"); // REGION
    assert_true(json_is_false(json_object_get(b0, "isDead")));
    json_t *b1 = json_array_get(json_object_get(route, "backends"), 1);
    assert_string_equal(json_string_value(json_object_get(b1, "id")), "10.0.0.2:3001");
    json_decref(route);
    s_expect_changed(&rt, 1, "route", "api.example.com");

    // POST of an existing vHost, whatever its case: 409, nothing changes
    assert_int_equal(s_put(&rt, "route", NULL, NULL, 1,
                           "{\"vHost\": \"API.Example.com\", \"backends\": []}", &reply),
                     409);
    assert_int_equal(reply.config_reply.version, 1);
    assert_string_equal(reply.config_reply.field, "vHost");
    // bad input: 400 naming the field
    assert_int_equal(s_put(&rt, "route", "b.com", NULL, 0,
                           "{\"backends\": [{\"hostname\": \"h\", \"port\": 70000}]}", &reply),
                     400);
    assert_string_equal(reply.config_reply.field, "backends[0].port");
    assert_non_null(reply.config_reply.error);

    assert_int_equal(s_put(&rt, "backend", "api.example.com", NULL, 0,
                           "{\"hostname\": \"10.0.0.3\", \"port\": 3002}", &reply),
                     201);
    assert_int_equal(reply.config_reply.version, 2);
    s_expect_changed(&rt, 2, "backend", "api.example.com");
    assert_int_equal(s_put(&rt, "dead", "api.example.com", "n1", 0, NULL, &reply), 200);
    assert_int_equal(reply.config_reply.version, 3);
    s_expect_changed(&rt, 3, "dead", "api.example.com");
    assert_int_equal(s_delete(&rt, "backend", "api.example.com", "10.0.0.3:3002", &reply), 204);
    assert_int_equal(reply.config_reply.version, 4);
    s_expect_changed(&rt, 4, "backend", "api.example.com");
    assert_int_equal(s_delete(&rt, "route", "nope.example.com", NULL, &reply), 404);
    assert_int_equal(reply.config_reply.version, 4);

    assert_int_equal(s_get(&rt, "route", "api.example.com", &reply), 200);
    route = s_json(&reply);
    b0 = json_array_get(json_object_get(route, "backends"), 0);
    assert_true(json_is_true(json_object_get(b0, "isDead")));
    assert_true(json_is_integer(json_object_get(b0, "deadSince")));
    assert_int_equal(json_array_size(json_object_get(route, "backends")), 2);
    json_decref(route);
    assert_int_equal(s_get(&rt, "versions", NULL, &reply), 200);
    json_t *versions = s_json(&reply);
    assert_int_equal(json_array_size(versions), 4);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(versions, 0), "version")),
                     4);
    assert_string_equal(json_string_value(json_object_get(json_array_get(versions, 0), "by")),
                        "it");
    json_decref(versions);

    // the state file has it all
    char path[256];
    snprintf(path, sizeof path, "%s/state/rt.json", env.dir);
    json_t *file = json_load_file(path, JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(file);
    assert_int_equal(json_integer_value(json_object_get(file, "version")), 4);
    assert_int_equal(json_integer_value(json_object_get(file, "format")), 1);
    json_t *stored = json_array_get(json_object_get(file, "routes"), 0);
    assert_string_equal(
        json_string_value(json_array_get(json_object_get(stored, "maintenance"), 0)), "n1");
    json_decref(file);
    s_stop(&env, &rt);

    // a restarted router serves what the file says, and counts on from there
    s_start(&env, &rt, "router2", "state/rt.json");
    assert_int_equal(s_get(&rt, "route", "api.example.com", &reply), 200);
    assert_int_equal(reply.config_reply.version, 4);
    route = s_json(&reply);
    b0 = json_array_get(json_object_get(route, "backends"), 0);
    assert_true(json_is_true(json_object_get(b0, "isDead")));
    assert_int_equal(json_integer_value(json_object_get(route, "retries")), 3);
    json_decref(route);
    assert_int_equal(s_delete(&rt, "route", "API.EXAMPLE.COM", NULL, &reply), 204);
    assert_int_equal(reply.config_reply.version, 5);
    s_expect_changed(&rt, 5, "route", "api.example.com");
    assert_int_equal(s_get(&rt, "routes", NULL, &reply), 200);
    assert_string_equal(reply.config_reply.body, "[]");
    proto_msg_clear(&reply);
    s_stop(&env, &rt);
    it_env_fini(&env);
}

// --------------------------------------------------------------------------
// Certificates for gateways (certs.get)

//  One certs.get: the reply (a certs.reply) in *reply.
static void
s_certs_get(s_router_t *rt, uint32_t from, uint64_t version, proto_msg_t *reply)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CERTS_GET);
    msg.certs_get.from = from;
    msg.certs_get.version = version;
    assert_int_equal(s_request(rt->dealer, &msg, reply, S_WAIT_MS), 0);
    assert_int_equal(reply->type, PROTO_CERTS_REPLY);
}

static void
test_certs(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    s_router_t rt;
    s_start(&env, &rt, "router", "rt.json");
    proto_msg_t reply;
    proto_msg_init(&reply, PROTO_NONE);

    // none yet: an empty answer
    s_certs_get(&rt, 0, 0, &reply);
    assert_int_equal(reply.certs_reply.version, 0);
    assert_int_equal(reply.certs_reply.certs_count, 0);
    assert_int_equal(reply.certs_reply.next, 0);

    // 20 certificates (the router checks their shape; apid checked the PEMs),
    // a route with ssl and one without
    char domain[64], body[512];
    for (int i = 0; i < 20; i++) {
        snprintf(domain, sizeof domain, "d%02d.example.com", i);
        snprintf(body, sizeof body,
                 "{\"domain\": \"%s\", \"cert\": \"CERT %d\", \"key\": \"KEY %d\", "
                 "\"issuer\": \"CN=x\", \"subject\": \"CN=x\", \"notBefore\": \"a\", "
                 "\"notAfter\": \"b\"}",
                 domain, i, i);
        assert_int_equal(s_put(&rt, "certificate", domain, NULL, 0, body, &reply), 201);
    }
    assert_int_equal(s_put(&rt, "route", "plain.example.com", NULL, 0,
                           "{\"vHost\": \"plain.example.com\", \"backends\": []}", &reply),
                     201);
    assert_int_equal(s_put(&rt, "route", "tls.example.com", NULL, 0,
                           "{\"vHost\": \"tls.example.com\", \"backends\": [], "
                           "\"ssl\": {\"cert\": \"ROUTE CERT\", \"key\": \"ROUTE KEY\"}}",
                           &reply),
                     201);
    uint64_t version = reply.config_reply.version;
    assert_int_equal(version, 22);

    // paged: 16, then the rest; every certificate once, with its key
    bool seen[20] = {false};
    bool route_seen = false;
    uint32_t from = 0;
    int pages = 0;
    do {
        s_certs_get(&rt, from, from ? version : 0, &reply);
        const proto_certs_reply_t *r = &reply.certs_reply;
        assert_int_equal(r->version, version);
        assert_int_equal(r->total, 22); // 20 stored, then 2 routes
        assert_true(r->certs_count <= PROTO_CERTS_REPLY_CERTS_MAX);
        for (uint32_t i = 0; i < r->certs_count; i++) {
            const proto_cert_t *c = &r->certs[i];
            if (strcmp(c->domain, "tls.example.com") == 0) {
                assert_string_equal(c->chain, "ROUTE CERT");
                assert_string_equal(c->key, "ROUTE KEY");
                route_seen = true;
                continue;
            }
            int n = -1;
            assert_int_equal(sscanf(c->domain, "d%d.example.com", &n), 1);
            assert_true(n >= 0 && n < 20 && !seen[n]);
            seen[n] = true;
            char want[32];
            snprintf(want, sizeof want, "KEY %d", n);
            assert_string_equal(c->key, want);
            snprintf(want, sizeof want, "CERT %d", n);
            assert_string_equal(c->chain, want);
        }
        from = r->next;
        pages++;
    } while (from != 0 && pages < 10);
    assert_int_equal(pages, 2);
    assert_true(route_seen);
    for (int i = 0; i < 20; i++)
        assert_true(seen[i]);

    // a removed certificate is gone from the next answer; past the end: empty
    assert_int_equal(s_delete(&rt, "certificate", "d00.example.com", NULL, &reply), 204);
    s_certs_get(&rt, 0, 0, &reply);
    assert_int_equal(reply.certs_reply.version, version + 1);
    assert_int_equal(reply.certs_reply.total, 21);
    for (uint32_t i = 0; i < reply.certs_reply.certs_count; i++)
        assert_string_not_equal(reply.certs_reply.certs[i].domain, "d00.example.com");
    s_certs_get(&rt, 1000, version + 1, &reply);
    assert_int_equal(reply.certs_reply.certs_count, 0);
    assert_int_equal(reply.certs_reply.next, 0);
    proto_msg_clear(&reply);
    s_stop(&env, &rt);
    it_env_fini(&env);
}

// --------------------------------------------------------------------------
// Decisions

//  The scripted balancer: a ROUTER and an XPUB bound where the router's
//  discovery looks for balancers.
typedef struct {
    void *router;          // picks in, leases out
    void *xpub;            // bound so the instance is complete; silent
    uint8_t identity[256]; // routing id of the last pick's sender
    size_t identity_len;   // its length
} s_balancer_t;

static void
s_balancer_bind(it_env_t *env, s_balancer_t *bal)
{
    memset(bal, 0, sizeof *bal);
    char ep[256];
    int zero = 0;
    bal->router = zmq_socket(env->ctx, ZMQ_ROUTER);
    bal->xpub = zmq_socket(env->ctx, ZMQ_XPUB);
    zmq_setsockopt(bal->router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(bal->xpub, ZMQ_LINGER, &zero, sizeof zero);
    snprintf(ep, sizeof ep, "ipc://%s/balancer.%d.req", env->bus_dir, (int) getpid());
    assert_int_equal(zmq_bind(bal->router, ep), 0);
    snprintf(ep, sizeof ep, "ipc://%s/balancer.%d.pub", env->bus_dir, (int) getpid());
    assert_int_equal(zmq_bind(bal->xpub, ep), 0);
}

static void
s_balancer_close(s_balancer_t *bal)
{
    zmq_close(bal->router);
    zmq_close(bal->xpub);
}

//  Receive a pick within timeout_ms. Returns 0, or -1 if none came.
static int
s_balancer_recv(s_balancer_t *bal, proto_msg_t *pick, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = bal->router, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return -1;
    int n = zmq_recv(bal->router, bal->identity, sizeof bal->identity, 0);
    assert_true(n > 0 && n <= (int) sizeof bal->identity);
    bal->identity_len = (size_t) n;
    int more = 0;
    size_t len = sizeof more;
    zmq_getsockopt(bal->router, ZMQ_RCVMORE, &more, &len);
    assert_true(more);
    zmq_msg_t body;
    zmq_msg_init(&body);
    assert_true(zmq_msg_recv(&body, bal->router, 0) >= 0);
    int rc = proto_decode(zmq_msg_data(&body), zmq_msg_size(&body), pick);
    zmq_msg_close(&body);
    assert_int_equal(rc, 0);
    assert_int_equal(pick->type, PROTO_PICK);
    return 0;
}

//  Answer the last pick (id, rid) with a lease of one candidate.
static void
s_balancer_lease(s_balancer_t *bal, const proto_msg_t *pick)
{
    proto_candidate_t cand = {
        .id = "n1", .host = "10.0.0.1", .port = 3000, .weight = 1, .region = "1"};
    proto_msg_t lease;
    proto_msg_init(&lease, PROTO_LEASE);
    lease.id = pick->id;
    lease.rid = pick->rid;
    lease.src = "balancer/it";
    lease.ts = proto_now_ms();
    lease.lease.status = "ok";
    lease.lease.route = pick->pick.route;
    lease.lease.vhost = pick->pick.vhost;
    lease.lease.version = pick->pick.version;
    lease.lease.strategy = pick->pick.strategy;
    lease.lease.region = "1";
    lease.lease.candidates = &cand;
    lease.lease.candidates_count = 1;
    proto_buf_t buf = {0};
    assert_int_equal(proto_encode(&lease, &buf), 0);
    assert_true(zmq_send(bal->router, bal->identity, bal->identity_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(bal->router, buf.data, buf.size, 0) >= 0);
    proto_buf_free(&buf);
}

static void
s_decide_msg(proto_msg_t *msg, const char *host)
{
    proto_msg_init(msg, PROTO_DECIDE);
    msg->rid = "it-decide";
    msg->decide.host = host;
    msg->decide.region = "1";
    msg->decide.gw_region = "1";
    msg->decide.client = "192.0.2.1";
}

//  Wait until the router's pong says it has found n balancers.
static void
s_wait_balancers(s_router_t *rt, uint64_t n)
{
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    uint64_t deadline = it_now_ms() + S_WAIT_MS;
    bool ok = false;
    while (!ok && it_now_ms() < deadline) {
        ok = it_ping(rt->dealer, &pong, 2000) == 0 && it_counter(&pong, "peers.balancer") == n;
        if (!ok)
            it_pause(20);
    }
    proto_msg_clear(&pong);
    assert_true(ok);
}

//  Send a decide for host and, with bal, play the balancer: answer its pick
//  with a lease (answer) or stay silent. The connection from the router to
//  the balancer may still be in progress when discovery has found it, so an
//  early "unavailable" without a pick is retried until the deadline.
//  Returns the router's answer in reply; the pick (if any) in pick.
static void
s_decide(s_router_t *rt,
         s_balancer_t *bal,
         bool answer,
         const char *host,
         proto_msg_t *pick,
         proto_msg_t *reply)
{
    uint64_t deadline = it_now_ms() + S_WAIT_MS;
    for (;;) {
        proto_msg_t msg;
        s_decide_msg(&msg, host);
        assert_int_equal(it_send(rt->dealer, &msg), 0);
        bool picked = false;
        if (bal && s_balancer_recv(bal, pick, 1000) == 0) {
            picked = true;
            assert_string_equal(pick->rid, "it-decide");
            if (answer)
                s_balancer_lease(bal, pick);
        }
        bool got = false;
        while (!got && it_now_ms() < deadline) {
            int rc = it_recv(rt->dealer, reply, NULL, 0, 2000);
            got = rc == 0 && reply->id == msg.id;
        }
        assert_true(got);
        bool retry = bal && !picked && reply->type == PROTO_ERROR;
        if (!retry || it_now_ms() >= deadline)
            return;
        it_pause(50);
    }
}

static void
test_decide(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    s_router_t rt;
    s_start(&env, &rt, "router", "var/state.json");
    proto_msg_t reply, pick;
    proto_msg_init(&reply, PROTO_NONE);
    proto_msg_init(&pick, PROTO_NONE);
    assert_int_equal(s_put(&rt, "route", "api.example.com", NULL, 0, s_api_route, &reply), 201);
    assert_int_equal(
        s_put(&rt, "route", "*.example.com", NULL, 0,
              "{\"strategy\": \"IP_HASH\", \"backends\": [{\"hostname\": \"h\", \"port\": 1}]}",
              &reply),
        201);
    assert_int_equal(s_put(&rt, "dead", "api.example.com", "n1", 0, NULL, &reply), 200);
    uint64_t version = reply.config_reply.version;
    assert_int_equal(version, 3);

    // no balancer at all: unavailable at once, well within the gateway's deadline
    uint64_t t0 = it_now_ms();
    s_decide(&rt, NULL, false, "api.example.com", &pick, &reply);
    assert_int_equal(reply.type, PROTO_ERROR);
    assert_string_equal(reply.error.code, "unavailable");
    assert_true(it_now_ms() - t0 < 1000);
    // no route: a no_route lease, no balancer needed
    s_decide(&rt, NULL, false, "unknown.org", &pick, &reply);
    assert_int_equal(reply.type, PROTO_LEASE);
    assert_string_equal(reply.lease.status, "no_route");
    assert_int_equal(reply.lease.version, version);
    assert_string_equal(reply.rid, "it-decide");

    // a scripted balancer appears
    s_balancer_t bal;
    s_balancer_bind(&env, &bal);
    s_wait_balancers(&rt, 1);
    s_decide(&rt, &bal, true, "api.example.com", &pick, &reply);
    // the pick carried the route, its backends with regions and maintenance
    assert_int_equal(pick.type, PROTO_PICK);
    assert_string_equal(pick.pick.route, "api.example.com");
    assert_string_equal(pick.pick.vhost, "api.example.com");
    assert_string_equal(pick.pick.strategy, "ROUND_ROBIN");
    assert_int_equal(pick.pick.version, version);
    assert_string_equal(pick.pick.region, "1");
    assert_string_equal(pick.pick.gw_region, "1");
    assert_int_equal(pick.pick.backends_count, 2);
    assert_string_equal(pick.pick.backends[0].id, "n1");
    assert_string_equal(pick.pick.backends[0].region, "eu-1");
    assert_true(pick.pick.backends[0].maint);
    assert_string_equal(pick.pick.backends[1].id, "10.0.0.2:3001");
    assert_string_equal(pick.pick.backends[1].region, "2");
    assert_int_equal(pick.pick.backends[1].weight, 4);
    assert_false(pick.pick.backends[1].maint);
    assert_int_equal(pick.pick.regions_count, 0);
    // the lease came back to the decide's sender with the route's policy
    assert_int_equal(reply.type, PROTO_LEASE);
    assert_string_equal(reply.lease.status, "ok");
    assert_string_equal(reply.rid, "it-decide");
    assert_string_equal(reply.lease.route, "api.example.com");
    assert_string_equal(reply.lease.vhost, "api.example.com");
    assert_int_equal(reply.lease.version, version);
    assert_int_equal(reply.lease.candidates_count, 1);
    assert_string_equal(reply.lease.candidates[0].id, "n1");
    assert_int_equal(reply.lease.retries, 3);
    assert_int_equal(reply.lease.timeout_ms, 1234);
    assert_int_equal(reply.lease.queue_timeout_ms, 1234); // default: timeoutMs
    assert_int_equal(reply.lease.req_active, 7);
    assert_int_equal(reply.lease.req_queue, 9);
    assert_int_equal(reply.lease.max_body, 4096);
    assert_int_equal(reply.lease.headers_count, 1);
    assert_string_equal(reply.lease.headers[0].key, "X-Env");
    assert_string_equal(reply.lease.headers[0].value, "prod");
    assert_string_equal(reply.lease.chat_path, "/chat");

    // a wildcard host: the wildcard route, its defaults
    s_decide(&rt, &bal, true, "tenant.example.com", &pick, &reply);
    assert_string_equal(pick.pick.vhost, "*.example.com");
    assert_string_equal(pick.pick.strategy, "IP_HASH");
    assert_int_equal(reply.type, PROTO_LEASE);
    assert_string_equal(reply.lease.vhost, "*.example.com");
    assert_int_equal(reply.lease.retries, 2);
    assert_int_equal(reply.lease.timeout_ms, 30000);
    assert_int_equal(reply.lease.max_body, 10485760);
    assert_int_equal(reply.lease.headers_count, 0);
    assert_true(reply.lease.chat_path == NULL || *reply.lease.chat_path == '\0'); // none

    // a silent balancer: unavailable after the pick deadline (150 ms)
    t0 = it_now_ms();
    s_decide(&rt, &bal, false, "api.example.com", &pick, &reply);
    uint64_t waited = it_now_ms() - t0;
    assert_int_equal(reply.type, PROTO_ERROR);
    assert_string_equal(reply.error.code, "unavailable");
    assert_true(waited >= 100 && waited < 2000);
    fprintf(stderr, "  silent balancer: unavailable after %llu ms\n", (unsigned long long) waited);
    // ... and its late lease is dropped, not relayed
    s_balancer_lease(&bal, &pick);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    uint64_t deadline = it_now_ms() + S_WAIT_MS;
    uint64_t late = 0;
    while (late < 1 && it_now_ms() < deadline) {
        assert_int_equal(it_ping(rt.dealer, &pong, 2000), 0);
        late = it_counter(&pong, "replies.late");
        if (late < 1)
            it_pause(20);
    }
    assert_int_equal(late, 1);
    proto_msg_clear(&pong);

    proto_msg_clear(&pick);
    proto_msg_clear(&reply);
    s_stop(&env, &rt); // with nothing in flight
    s_balancer_close(&bal);
    it_env_fini(&env);
}

//  The regions registry: config.put/delete of a region, its versions and
//  config.changed, picks that carry the current public address, and a
//  restart that serves the same regions.
static void
test_regions(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    s_router_t rt;
    s_start(&env, &rt, "router", "var/state.json");
    proto_msg_t reply, pick;
    proto_msg_init(&reply, PROTO_NONE);
    proto_msg_init(&pick, PROTO_NONE);
    assert_int_equal(s_put(&rt, "route", "api.example.com", NULL, 0, s_api_route, &reply), 201);
    s_expect_changed(&rt, 1, "route", "api.example.com");

    assert_int_equal(
        s_put(&rt, "region", "2", NULL, 0, "{\"publicAddress\": \"r2.example.net\"}", &reply), 201);
    assert_int_equal(reply.config_reply.version, 2);
    assert_string_equal(reply.config_reply.body,
                        "{\"id\":\"2\",\"publicAddress\":\"r2.example.net:80\"}");
    s_expect_changed(&rt, 2, "region", "2");
    assert_int_equal(s_put(&rt, "region", "2", NULL, 0, "{\"publicAddress\": \"bad:0\"}", &reply),
                     400);
    assert_string_equal(reply.config_reply.field, "publicAddress");
    assert_int_equal(reply.config_reply.version, 2);

    // picks carry the region's public address
    s_balancer_t bal;
    s_balancer_bind(&env, &bal);
    s_wait_balancers(&rt, 1);
    s_decide(&rt, &bal, true, "api.example.com", &pick, &reply);
    assert_int_equal(pick.pick.version, 2);
    assert_int_equal(pick.pick.regions_count, 1);
    assert_string_equal(pick.pick.regions[0].id, "2");
    assert_string_equal(pick.pick.regions[0].address, "r2.example.net:80");

    // replaced: 200, and the next pick has the new address
    assert_int_equal(
        s_put(&rt, "region", "2", NULL, 0, "{\"publicAddress\": \"10.9.0.2:8080\"}", &reply), 200);
    assert_int_equal(reply.config_reply.version, 3);
    s_expect_changed(&rt, 3, "region", "2");
    s_decide(&rt, &bal, true, "api.example.com", &pick, &reply);
    assert_int_equal(pick.pick.version, 3);
    assert_int_equal(pick.pick.regions_count, 1);
    assert_string_equal(pick.pick.regions[0].address, "10.9.0.2:8080");
    assert_int_equal(
        s_put(&rt, "region", "3", NULL, 0, "{\"publicAddress\": \"[2001:db8::3]\"}", &reply), 201);
    s_expect_changed(&rt, 4, "region", "3");
    assert_int_equal(s_delete(&rt, "region", "3", NULL, &reply), 204);
    assert_int_equal(reply.config_reply.version, 5);
    s_expect_changed(&rt, 5, "region", "3");
    assert_int_equal(s_delete(&rt, "region", "3", NULL, &reply), 404);
    assert_int_equal(reply.config_reply.version, 5);
    assert_int_equal(s_get(&rt, "regions", NULL, &reply), 200);
    assert_string_equal(reply.config_reply.body,
                        "[{\"id\":\"2\",\"publicAddress\":\"10.9.0.2:8080\"}]");
    s_stop(&env, &rt);

    // a restarted router serves the same regions, in its picks too
    s_start(&env, &rt, "router2", "var/state.json");
    assert_int_equal(s_get(&rt, "regions", NULL, &reply), 200);
    assert_int_equal(reply.config_reply.version, 5);
    assert_string_equal(reply.config_reply.body,
                        "[{\"id\":\"2\",\"publicAddress\":\"10.9.0.2:8080\"}]");
    s_wait_balancers(&rt, 1);
    s_decide(&rt, &bal, true, "api.example.com", &pick, &reply);
    assert_int_equal(pick.pick.regions_count, 1);
    assert_string_equal(pick.pick.regions[0].address, "10.9.0.2:8080");
    proto_msg_clear(&pick);
    proto_msg_clear(&reply);
    s_stop(&env, &rt);
    s_balancer_close(&bal);
    it_env_fini(&env);
}

//  SIGTERM while a pick is in flight: the ask is freed, no leak report.
static void
test_stop_with_pick_in_flight(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    s_router_t rt;
    s_start(&env, &rt, "router", "var/state.json");
    proto_msg_t reply, pick;
    proto_msg_init(&reply, PROTO_NONE);
    proto_msg_init(&pick, PROTO_NONE);
    assert_int_equal(s_put(&rt, "route", "*", NULL, 0, "{\"backends\": []}", &reply), 201);
    s_balancer_t bal;
    s_balancer_bind(&env, &bal);
    s_wait_balancers(&rt, 1);
    // send decides until one pick arrives, then stop the router (s_stop sends
    // SIGTERM at once, well before the 150 ms pick deadline)
    uint64_t deadline = it_now_ms() + S_WAIT_MS;
    bool picked = false;
    while (!picked && it_now_ms() < deadline) {
        proto_msg_t msg;
        s_decide_msg(&msg, "anything.org");
        assert_int_equal(it_send(rt.dealer, &msg), 0);
        picked = s_balancer_recv(&bal, &pick, 500) == 0;
    }
    assert_true(picked);
    assert_string_equal(pick.pick.vhost, "*");
    proto_msg_clear(&pick);
    proto_msg_clear(&reply);
    s_stop(&env, &rt);
    s_balancer_close(&bal);
    it_env_fini(&env);
}

//  A state file that cannot be used: exit 1, one line on stderr, one error log line.
static void
test_bad_state_file(void **state)
{
    (void) state;
    it_env_t env;
    assert_int_equal(it_env_init(&env), 0);
    char path[256];
    snprintf(path, sizeof path, "%s/bad.json", env.dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"format\": 1, \"version\": 2, \"routes\": [{\"vHost\": 5}]}", f);
    fclose(f);
    const char *envs[] = {"ROUTER_STATE_FILE=bad.json", NULL};
    assert_int_equal(it_run(&env, "router", "bad", envs, NULL, 20000), 1);
    char *err = it_read_file(&env, "bad", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "ROUTER_STATE_FILE"));
    assert_non_null(strstr(err, "routes[0].vHost"));
    char *nl = strchr(err, '\n');
    assert_non_null(nl);
    assert_true(nl[1] == '\0'); // exactly one line
    free(err);
    char *out = it_read_file(&env, "bad", "out");
    assert_non_null(out);
    assert_non_null(strstr(out, "\"level\":\"error\""));
    assert_non_null(strstr(out, "cannot load the state file"));
    free(out);
    // it never bound: nothing to serve an empty table from
    assert_true(it_clean_stderr(&env, "bad"));

    // not JSON at all
    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{\"format\": 1,", f);
    fclose(f);
    assert_int_equal(it_run(&env, "router", "bad2", envs, NULL, 20000), 1);
    err = it_read_file(&env, "bad2", "err");
    assert_non_null(strstr(err, "not readable JSON"));
    free(err);
    it_env_fini(&env);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("router"),       cmocka_unit_test(test_config),
        cmocka_unit_test(test_certs),          cmocka_unit_test(test_decide),
        cmocka_unit_test(test_regions),        cmocka_unit_test(test_stop_with_pick_in_flight),
        cmocka_unit_test(test_bad_state_file),
    };
    return cmocka_run_group_tests_name("it_router", tests, NULL, NULL);
}
