/*  it_apid - integration test of bin/apid: the real binary, driven over the bus.

    The test plays both of apid's neighbours: the gateway (a DEALER sending
    admin.request to apid's ROUTER) and a scripted router (a ROUTER and an
    XPUB bound at router.<test pid>.req/.pub in the test's BUS_DIR, which is
    how apid discovers it; the test's pid is alive, so the files count). The
    scripted router checks each config.* apid sends and answers config.reply.
    The event-stream tests (GET /api/v1/events) add a scripted healthd,
    gateway and statsd the same way, and a SUB on apid's XPUB as the gateway's.

    Every wait is a poll with a deadline; readiness (apid connected to the
    scripted router) is a retried call, never a sleep.
*/
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <jansson.h>
#include <zmq.h>

#include "it.h"
#include "it_actor.h"
#include "proto_util.h"

#define T_WAIT_MS 10000 // upper bound of any single wait

typedef struct {
    it_env_t env;     // temp dir, bus dir, zmq context
    bool env_ready;   // env initialised
    pid_t pid;        // apid, 0 when stopped
    void *router;     // the scripted router's ROUTER, or NULL
    void *xpub;       // its XPUB (only there to be discovered)
    void *dealer;     // the gateway's DEALER to apid
    uint64_t next_id; // ids of admin.requests
    // the event-stream tests only (events set before t_start)
    bool events;          // also bind a scripted healthd, gateway (it-gw) and statsd
    void *healthd_req;    // the scripted healthd's ROUTER (pings only)
    void *healthd_pub;    // its XPUB: backend.state
    void *gw_req;         // the scripted gateway's ROUTER (pings only)
    void *gw_pub;         // its XPUB: events.close@it-apid;
    void *statsd_req;     // the scripted statsd's ROUTER: stats.get
    void *statsd_pub;     // its XPUB (only there to be discovered)
    void *sub;            // the gateway's SUB on apid's XPUB: events.push@it-gw;
    uint64_t stats_asked; // stats.get answered by the scripted statsd
} t_fix_t;

typedef struct {
    uint8_t identity[256]; // routing id of apid's DEALER
    size_t identity_len;   // its length
    proto_msg_t msg;       // the config.* request
} t_ask_t;

// --------------------------------------------------------------------------
// The scripted router

//  Bind a scripted actor's socket where apid discovers an instance of kind.
static void *
t_bind_as(t_fix_t *f, const char *kind, int type, const char *suffix)
{
    char ep[256];
    snprintf(ep, sizeof ep, "ipc://%s/%s.%d.%s", f->env.bus_dir, kind, (int) getpid(), suffix);
    void *sock = zmq_socket(f->env.ctx, type);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(sock, ep), 0);
    return sock;
}

static void *
t_bind(t_fix_t *f, int type, const char *suffix)
{
    return t_bind_as(f, "router", type, suffix);
}

//  Receive one config.* request on the scripted router within timeout_ms.
//  Returns 0, or -1 on timeout.
static int
t_router_recv(t_fix_t *f, t_ask_t *ask, int timeout_ms)
{
    zmq_pollitem_t item = {.socket = f->router, .events = ZMQ_POLLIN};
    if (zmq_poll(&item, 1, timeout_ms) <= 0)
        return -1;
    zmq_msg_t part;
    int frame = 0, more, rc = -1;
    do {
        zmq_msg_init(&part);
        assert_true(zmq_msg_recv(&part, f->router, 0) >= 0);
        more = zmq_msg_more(&part);
        if (frame == 0) {
            ask->identity_len = zmq_msg_size(&part);
            assert_true(ask->identity_len <= sizeof ask->identity);
            memcpy(ask->identity, zmq_msg_data(&part), ask->identity_len);
        } else if (!more) {
            rc = proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), &ask->msg);
        }
        frame++;
        zmq_msg_close(&part);
    } while (more);
    assert_int_equal(frame, 2);
    assert_int_equal(rc, 0);
    return 0;
}

//  Answer a config.* request with config.reply.
static void
t_router_reply(t_fix_t *f,
               const t_ask_t *ask,
               uint16_t status,
               const char *body,
               const char *error,
               const char *field)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_REPLY);
    msg.id = ask->msg.id;
    msg.rid = ask->msg.rid;
    msg.src = "router/it";
    msg.ts = proto_now_ms();
    msg.config_reply.status = status;
    msg.config_reply.version = 42;
    msg.config_reply.body = body;
    msg.config_reply.error = error;
    msg.config_reply.field = field;
    proto_buf_t buf = {0};
    assert_int_equal(proto_encode(&msg, &buf), 0);
    assert_true(zmq_send(f->router, ask->identity, ask->identity_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(f->router, buf.data, buf.size, 0) >= 0);
    proto_buf_free(&buf);
}

// --------------------------------------------------------------------------
// The gateway side

//  Send admin.request; returns its message id. A query after '?' in path is
//  sent apart, as the gateway does.
static uint64_t
t_admin(t_fix_t *f, const char *method, const char *path, const char *body, const char *principal)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_REQUEST);
    msg.rid = "it-request-1";
    msg.admin_request.method = method;
    char bare[512];
    const char *q = strchr(path, '?');
    if (q) {
        snprintf(bare, sizeof bare, "%.*s", (int) (q - path), path);
        msg.admin_request.query = q + 1;
        path = bare;
    }
    msg.admin_request.path = path;
    msg.admin_request.client = "127.0.0.1";
    msg.admin_request.principal = principal;
    proto_kv_t headers[] = {{"content-type", "application/json"}};
    msg.admin_request.headers = headers;
    msg.admin_request.headers_count = 1;
    if (body)
        msg.admin_request.body = (proto_bin_t){(const uint8_t *) body, strlen(body)};
    assert_int_equal(it_send(f->dealer, &msg), 0);
    return msg.id;
}

//  Receive the admin.response to request id. Returns 0, or -1 on timeout.
static int
t_response(t_fix_t *f, uint64_t id, proto_msg_t *out, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    while (it_now_ms() < deadline) {
        int left = (int) (deadline - it_now_ms());
        int rc = it_recv(f->dealer, out, NULL, 0, left > 0 ? left : 1);
        if (rc == -1)
            return -1;
        if (rc == 0 && out->type == PROTO_ADMIN_RESPONSE && out->id == id)
            return 0;
    }
    return -1;
}

static const char *
t_header(const proto_msg_t *resp, const char *name)
{
    for (uint32_t i = 0; i < resp->admin_response.headers_count; i++)
        if (strcmp(resp->admin_response.headers[i].key, name) == 0)
            return resp->admin_response.headers[i].value;
    return NULL;
}

//  The response body as a NUL-terminated string (caller frees).
static char *
t_body(const proto_msg_t *resp)
{
    const proto_bin_t *b = &resp->admin_response.body;
    char *s = malloc(b->size + 1);
    if (b->size)
        memcpy(s, b->data, b->size);
    s[b->size] = '\0';
    return s;
}

//  Check an error response: status, code and field ("" for null).
static void
t_expect_error(const proto_msg_t *resp, int status, const char *code, const char *field)
{
    assert_int_equal(resp->admin_response.status, status);
    assert_string_equal(t_header(resp, "content-type"), "application/json");
    char *text = t_body(resp);
    json_t *doc = json_loads(text, 0, NULL);
    if (doc == NULL)
        fail_msg("not JSON: %s", text);
    json_t *err = json_object_get(doc, "error");
    const char *got_code = json_string_value(json_object_get(err, "code"));
    json_t *got_field = json_object_get(err, "field");
    bool ok =
        got_code && strcmp(got_code, code) == 0
        && (*field ? json_is_string(got_field) && strcmp(json_string_value(got_field), field) == 0
                   : json_is_null(got_field))
        && json_string_length(json_object_get(err, "message")) > 0;
    if (!ok)
        fail_msg("expected %d %s on '%s', got %s", status, code, field, text);
    json_decref(doc);
    free(text);
}

//  One call answered by apid without the router.
static void
t_local(t_fix_t *f,
        const char *method,
        const char *path,
        const char *body,
        int status,
        const char *code,
        const char *field)
{
    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    uint64_t id = t_admin(f, method, path, body, NULL);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    t_expect_error(&resp, status, code, field);
    proto_msg_clear(&resp);
}

// --------------------------------------------------------------------------
// Fixture

static int
t_setup(void **state)
{
    t_fix_t *f = calloc(1, sizeof *f);
    *state = f;
    return 0;
}

static int
t_teardown(void **state)
{
    t_fix_t *f = *state;
    int rc = 0;
    if (f->pid > 0) {
        if (it_stop(&f->env, f->pid, T_WAIT_MS) != 0) {
            fprintf(stderr, "apid did not exit 0 on SIGTERM\n");
            rc = -1;
        }
        f->pid = 0;
    }
    if (f->env_ready && !it_clean_stderr(&f->env, "apid"))
        rc = -1;
    if (rc != 0 && f->env_ready)
        it_dump(&f->env, "apid");
    if (f->dealer)
        zmq_close(f->dealer);
    if (f->router)
        zmq_close(f->router);
    if (f->xpub)
        zmq_close(f->xpub);
    void *more[] = {f->healthd_req, f->healthd_pub, f->gw_req, f->gw_pub,
                    f->statsd_req,  f->statsd_pub,  f->sub};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++)
        if (more[i])
            zmq_close(more[i]);
    if (f->env_ready)
        it_env_fini(&f->env);
    free(f);
    return rc;
}

//  Start apid with APID_ROUTER_TIMEOUT=timeout (and the scripted router if
//  with_router), and wait until a call reaches the router.
static void
t_start(t_fix_t *f, const char *timeout, bool with_router)
{
    assert_int_equal(it_env_init(&f->env), 0);
    f->env_ready = true;
    assert_int_equal(mkdir(f->env.bus_dir, 0755), 0);
    if (with_router) {
        f->router = t_bind(f, ZMQ_ROUTER, "req");
        f->xpub = t_bind(f, ZMQ_XPUB, "pub");
    }
    if (f->events) {
        f->healthd_req = t_bind_as(f, "healthd", ZMQ_ROUTER, "req");
        f->healthd_pub = t_bind_as(f, "healthd", ZMQ_XPUB, "pub");
        f->gw_req = t_bind_as(f, "gateway", ZMQ_ROUTER, "req");
        f->gw_pub = t_bind_as(f, "gateway", ZMQ_XPUB, "pub");
        f->statsd_req = t_bind_as(f, "statsd", ZMQ_ROUTER, "req");
        f->statsd_pub = t_bind_as(f, "statsd", ZMQ_XPUB, "pub");
    }
    char setting[64];
    snprintf(setting, sizeof setting, "APID_ROUTER_TIMEOUT=%s", timeout);
    const char *envs[] = {setting, "LOG_LEVEL=debug", "INSTANCE_ID=it-apid", NULL};
    f->pid = it_spawn(&f->env, "apid", "apid", envs, NULL);
    assert_true(f->pid > 0);
    if (it_wait_bound(&f->env, "apid", f->pid, T_WAIT_MS) != 0) {
        it_dump(&f->env, "apid");
        fail_msg("apid did not bind its bus sockets");
    }
    char req[256];
    it_req_endpoint(&f->env, "apid", f->pid, req, sizeof req);
    f->dealer = it_dealer(&f->env, req);
    if (!with_router)
        return;
    // apid finds the router's files and connects: retry a call until it arrives
    uint64_t deadline = it_now_ms() + T_WAIT_MS;
    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    for (;;) {
        assert_true(it_now_ms() < deadline);
        uint64_t id = t_admin(f, "GET", "/api/v1/routes/ready.test", NULL, NULL);
        zmq_pollitem_t items[] = {{.socket = f->router, .events = ZMQ_POLLIN},
                                  {.socket = f->dealer, .events = ZMQ_POLLIN}};
        assert_true(zmq_poll(items, 2, T_WAIT_MS) > 0);
        if (items[0].revents & ZMQ_POLLIN) {
            t_ask_t ask = {0};
            assert_int_equal(t_router_recv(f, &ask, T_WAIT_MS), 0);
            t_router_reply(f, &ask, 404, NULL, NULL, NULL);
            proto_msg_clear(&ask.msg);
            assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
            assert_int_equal(resp.admin_response.status, 404);
            proto_msg_clear(&resp);
            return;
        }
        assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
        assert_int_equal(resp.admin_response.status, 503); // not connected yet
        proto_msg_clear(&resp);
        it_pause(20);
    }
}

// --------------------------------------------------------------------------
// Tests

//  One call through the router: check what apid asks, answer, check the response.
typedef struct {
    const char *method, *path, *body, *principal; // the admin.request
    proto_type_t type;                            // expected config.* type
    const char *what, *key, *sub;                 // expected fields ("" = absent)
    uint8_t create_only;                          // expected
    const char *by;                               // expected (writes)
    const char *expect_body;                      // substring expected in config body, or NULL
    uint16_t status;                              // the router's answer
    const char *reply_body;                       // its body
} t_call_t;

static void
t_through_router(t_fix_t *f, const t_call_t *c)
{
    uint64_t id = t_admin(f, c->method, c->path, c->body, c->principal);
    t_ask_t ask = {0};
    if (t_router_recv(f, &ask, T_WAIT_MS) != 0)
        fail_msg("%s %s: nothing reached the router", c->method, c->path);
    const proto_msg_t *m = &ask.msg;
    assert_int_equal(m->type, c->type);
    assert_string_equal(m->rid, "it-request-1");
    const char *what = NULL, *key = NULL, *sub = NULL, *by = NULL, *body = NULL;
    uint8_t create_only = 0;
    if (m->type == PROTO_CONFIG_GET) {
        what = m->config_get.what;
        key = m->config_get.key;
    } else if (m->type == PROTO_CONFIG_PUT) {
        what = m->config_put.what;
        key = m->config_put.key;
        sub = m->config_put.sub;
        by = m->config_put.by;
        body = m->config_put.body;
        create_only = m->config_put.create_only;
    } else {
        what = m->config_delete.what;
        key = m->config_delete.key;
        sub = m->config_delete.sub;
        by = m->config_delete.by;
    }
    assert_string_equal(what, c->what);
    assert_string_equal(key ? key : "", c->key);
    assert_string_equal(sub ? sub : "", c->sub);
    assert_int_equal(create_only, c->create_only);
    if (c->by)
        assert_string_equal(by, c->by);
    if (c->expect_body) {
        if (body == NULL || strstr(body, c->expect_body) == NULL)
            fail_msg("%s %s: config body %s lacks %s", c->method, c->path, body ? body : "(none)",
                     c->expect_body);
    } else {
        assert_true(body == NULL || *body == '\0');
    }
    t_router_reply(f, &ask, c->status, c->reply_body, NULL, NULL);
    proto_msg_clear(&ask.msg);

    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    assert_int_equal(resp.admin_response.status, c->status);
    assert_string_equal(t_header(&resp, "x-config-version"), "42");
    char *got = t_body(&resp);
    if (c->reply_body) {
        assert_string_equal(got, c->reply_body);
        assert_string_equal(t_header(&resp, "content-type"), "application/json");
    } else {
        assert_string_equal(got, "");
        assert_null(t_header(&resp, "content-type"));
    }
    free(got);
    proto_msg_clear(&resp);
}

static void
test_crud_mapping(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "3s", true);
    const char *route = "{\"vHost\":\"API.Example.com\",\"backends\":[{\"hostname\":\"10.0.0.1\","
                        "\"port\":3000}]}";
    const char *stored = "{\"id\":\"api.example.com\",\"vHost\":\"api.example.com\"}";
    const t_call_t calls[] = {
        {"POST", "/api/v1/routes", route, "ops", PROTO_CONFIG_PUT, "route", "api.example.com", "",
         1, "ops",
         "{\"id\":\"api.example.com\",\"vHost\":\"api.example.com\",\"strategy\":"
         "\"ROUND_ROBIN\",\"autoHttps\":false,\"reqActiveLength\":50,\"reqQueueLength\":100,"
         "\"retries\":2,\"timeoutMs\":30000,\"queueTimeoutMs\":30000,\"maxBodyBytes\":"
         "10485760,\"headers\":{},\"auth\":null,\"authProvider\":null,\"authCacheMs\":5000,"
         "\"rateLimit\":null,\"securityHeaders\":false,\"cors\":null,\"chatPath\":null,"
         "\"healthPath\":\"/\",\"backends\":[{\"id\":"
         "\"10.0.0.1:3000\",\"hostname\":\"10.0.0.1\",\"port\":3000,\"weight\":1,\"probe\":"
         "\"http\"}],\"ssl\":null}",
         201, stored},
        {"PUT", "/api/v1/routes/Api.Example.COM", route, NULL, PROTO_CONFIG_PUT, "route",
         "api.example.com", "", 0, "local", "\"vHost\":\"api.example.com\"", 200, stored},
        {"PUT", "/api/v1/routes/new.example.com", "{\"backends\":[]}", "", PROTO_CONFIG_PUT,
         "route", "new.example.com", "", 0, "local", "\"vHost\":\"new.example.com\"", 201, "{}"},
        {"GET", "/api/v1/routes", NULL, NULL, PROTO_CONFIG_GET, "routes", "", "", 0, NULL, NULL,
         200, "[]"},
        {"GET", "/api/v1/routes/API.example.com", NULL, NULL, PROTO_CONFIG_GET, "route",
         "api.example.com", "", 0, NULL, NULL, 200, stored},
        {"HEAD", "/api/v1/routes/api.example.com", NULL, NULL, PROTO_CONFIG_GET, "route",
         "api.example.com", "", 0, NULL, NULL, 200, stored},
        {"POST", "/api/v1/routes/api.example.com/backends",
         "{\"hostname\":\"10.0.0.2\",\"port\":3001,\"region\":\"2\"}", "ops", PROTO_CONFIG_PUT,
         "backend", "api.example.com", "", 0, "ops",
         "{\"id\":\"10.0.0.2:3001\",\"hostname\":\"10.0.0.2\",\"port\":3001,\"weight\":1,"
         "\"region\":\"2\",\"probe\":\"http\"}",
         201, "{\"id\":\"10.0.0.2:3001\"}"},
        {"POST", "/api/v1/routes/api.example.com/backends/10.0.0.2%3A3001/dead", NULL, "ops",
         PROTO_CONFIG_PUT, "dead", "api.example.com", "10.0.0.2:3001", 0, "ops", NULL, 200,
         "{\"isDead\":true}"},
        {"POST", "/api/v1/routes/api.example.com/backends/10.0.0.2:3001/alive", NULL, "ops",
         PROTO_CONFIG_PUT, "alive", "api.example.com", "10.0.0.2:3001", 0, "ops", NULL, 200,
         "{\"isDead\":false}"},
        {"DELETE", "/api/v1/routes/api.example.com/backends/10.0.0.2:3001", NULL, "ops",
         PROTO_CONFIG_DELETE, "backend", "api.example.com", "10.0.0.2:3001", 0, "ops", NULL, 204,
         NULL},
        {"DELETE", "/api/v1/routes/api.example.com", NULL, NULL, PROTO_CONFIG_DELETE, "route",
         "api.example.com", "", 0, "local", NULL, 204, NULL},
        {"GET", "/api/v1/regions", NULL, NULL, PROTO_CONFIG_GET, "regions", "", "", 0, NULL, NULL,
         200, "[]"},
        {"PUT", "/api/v1/regions/eu%2Fwest",
         "{\"id\":\"eu/west\",\"publicAddress\":\"[::1]:8080\"}", NULL, PROTO_CONFIG_PUT, "region",
         "eu/west", "", 0, "local", "{\"id\":\"eu/west\",\"publicAddress\":\"[::1]:8080\"}", 200,
         "{\"id\":\"eu/west\"}"},
        {"PUT", "/api/v1/regions/2", "{\"publicAddress\":\"r2.example.net\"}", "ops",
         PROTO_CONFIG_PUT, "region", "2", "", 0, "ops",
         "{\"id\":\"2\",\"publicAddress\":\"r2.example.net:80\"}", 201,
         "{\"id\":\"2\",\"publicAddress\":\"r2.example.net:80\"}"},
        {"DELETE", "/api/v1/regions/2", NULL, "ops", PROTO_CONFIG_DELETE, "region", "2", "", 0,
         "ops", NULL, 204, NULL},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        t_through_router(f, &calls[i]);
}

//  The router's 4xx/5xx answers in SPEC §5's error shape.
static void
test_router_errors(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "3s", true);
    struct {
        const char *method, *path, *body;
        uint16_t status;
        const char *error, *field, *code;
    } cases[] = {
        {"GET", "/api/v1/routes/missing.com", NULL, 404, NULL, NULL, "not_found"},
        {"POST", "/api/v1/routes", "{\"vHost\":\"a.com\",\"backends\":[]}", 409,
         "a route for vHost 'a.com' exists already", NULL, "conflict"},
        {"POST", "/api/v1/routes/a.com/backends", "{\"hostname\":\"h\",\"port\":1}", 409,
         "backend id h:1 exists", "id", "conflict"},
        {"PUT", "/api/v1/routes/a.com", "{\"backends\":[]}", 400,
         "ssl.key: [redacted] keeps the stored key only for the same certificate", "ssl.key",
         "invalid_value"},
        {"DELETE", "/api/v1/routes/a.com/backends/nope", NULL, 404, "no backend nope", NULL,
         "not_found"},
        {"DELETE", "/api/v1/routes/a.com", NULL, 500, "store write failed", NULL, "internal"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t id = t_admin(f, cases[i].method, cases[i].path, cases[i].body, NULL);
        t_ask_t ask = {0};
        assert_int_equal(t_router_recv(f, &ask, T_WAIT_MS), 0);
        t_router_reply(f, &ask, cases[i].status, NULL, cases[i].error, cases[i].field);
        proto_msg_clear(&ask.msg);
        proto_msg_t resp;
        proto_msg_init(&resp, PROTO_NONE);
        assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
        t_expect_error(&resp, cases[i].status, cases[i].code, cases[i].field ? cases[i].field : "");
        if (cases[i].error) {
            char *text = t_body(&resp);
            assert_non_null(strstr(text, cases[i].error));
            free(text);
        }
        proto_msg_clear(&resp);
    }
}

//  Bad input, unknown paths and wrong methods never reach the router.
static void
test_local_answers(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "3s", true);
    t_local(f, "POST", "/api/v1/routes",
            "{\"vHost\":\"a.com\",\"backends\":[{\"hostname\":\"h\",\"port\":0}]}", 400,
            "out_of_range", "backends[0].port");
    t_local(f, "POST", "/api/v1/routes", "{\"vHost\":\"a.com\",", 400, "invalid_json", "");
    t_local(f, "POST", "/api/v1/routes", "{\"vHost\":\"a.com\",\"vHost\":\"b.com\"}", 400,
            "duplicate_key", "vHost");
    t_local(f, "POST", "/api/v1/routes", "{\"vHost\":\"a.com\",\"backends\":[],\"x\":1}", 400,
            "unknown_field", "x");
    t_local(f, "POST", "/api/v1/routes", "{\"vHost\":\"a.com\",\"backends\":[],\"retries\":\"2\"}",
            400, "invalid_type", "retries");
    t_local(f, "POST", "/api/v1/routes",
            "{\"vHost\":\"a.com\",\"backends\":[],\"strategy\":\"FASTEST\"}", 400, "invalid_value",
            "strategy");
    t_local(f, "POST", "/api/v1/routes",
            "{\"vHost\":\"a.com\",\"backends\":[{\"id\":\"n\",\"hostname\":\"h\",\"port\":1},"
            "{\"id\":\"n\",\"hostname\":\"g\",\"port\":1}]}",
            400, "duplicate_id", "backends[1].id");
    t_local(f, "PUT", "/api/v1/routes/a.com", "{\"vHost\":\"B.com\",\"backends\":[]}", 400,
            "invalid_value", "vHost");
    t_local(f, "POST", "/api/v1/routes/a.com/backends", "{\"hostname\":\"\",\"port\":1}", 400,
            "invalid_value", "hostname");
    t_local(f, "GET", "/api/v1/nothing", NULL, 404, "not_found", "");
    t_local(f, "GET", "/api/v2/routes", NULL, 404, "not_found", "");
    t_local(f, "GET", "/api/v1/routes/a.com/backends/n/x", NULL, 404, "not_found", "");
    t_local(f, "GET", "/api/v1/routes/a..b", NULL, 404, "not_found", "");
    t_local(f, "PUT", "/api/v1/regions/2", "{\"publicAddress\":\"a.com:0\"}", 400, "invalid_value",
            "publicAddress");
    t_local(f, "PUT", "/api/v1/regions/a%20b", "{\"publicAddress\":\"a.com\"}", 400,
            "invalid_value", "id");

    // a wrong method on a known path: 405 with Allow
    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    uint64_t id = t_admin(f, "DELETE", "/api/v1/routes", NULL, NULL);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    t_expect_error(&resp, 405, "method_not_allowed", "");
    assert_string_equal(t_header(&resp, "allow"), "GET, HEAD, POST");
    proto_msg_clear(&resp);
    id = t_admin(f, "PATCH", "/api/v1/routes/a.com", "{}", NULL);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    t_expect_error(&resp, 405, "method_not_allowed", "");
    assert_string_equal(t_header(&resp, "allow"), "GET, HEAD, PUT, DELETE");
    proto_msg_clear(&resp);

    // the first thing the router hears of is this call: nothing above reached it
    t_call_t list = {
        "GET", "/api/v1/routes", NULL, NULL, PROTO_CONFIG_GET, "routes", "", "", 0, NULL, NULL, 200,
        "[]"};
    t_through_router(f, &list);
}

// --------------------------------------------------------------------------
// Certificates and configuration versions

//  A small EC P-256 certificate and its key (openssl req -x509 -newkey ec, 10 years from
//  2026-12-05), as JSON string contents.
#define T_CERT_PEM                                                                                 \
    "-----BEGIN "                                                                                  \
    "CERTIFICATE-----\nMIIBvTCCAWOgAwIBAgIUCDBFql/DvfXMFUnGaLTMbvwj0gUwCgYIKoZIzj0EAwIw\n"         \
    "NDEYMBYGA1UEAwwPYXBpLmV4YW1wbGUuY29tMRgwFgYDVQQKDA9Td2l0Y2h5YXJk\nIFRlc3QwHhcNMjYxMjA1MjM1"   \
    "MDA3WhcNMzYxMjAyMjM1MDA3WjA0MRgwFgYDVQQD\nDA9hcGkuZXhhbXBsZS5jb20xGDAWBgNVBAoMD1N3aXRjaHlh"   \
    "cmQgVGVzdDBZMBMG\nByqGSM49AgEGCCqGSM49AwEHA0IABEHGG274JvVAG9p86rq32QbsL16/xsBUiokB\nKZktuT"   \
    "Tr+MuKeAJroDhumFKKxPI/EX0Dh1tPOtFHG1ysEsqVBmSjUzBRMB0GA1Ud\nDgQWBBR79sh7GkVpzeKC0FZe+UEf0JO"  \
    "dITAfBgNVHSMEGDAWgBR79sh7GkVpzeKC\n0FZe+UEf0JOdITAPBgNVHRMBAf8EBTADAQH/MAoGCCqGSM49BAMCA0gA"  \
    "MEUCIAfF\nWxiMZILJ9ey6XG0JufX2YwHs+sYNVGRFF/FibYiAAiEAqn/S3EOQaFquK0sR327z\nd0i9wvJ+cyfDbv"   \
    "ls/sVcK+k=\n-----END CERTIFICATE-----\n"
#define T_KEY_PEM                                                                                  \
    "-----BEGIN PRIVATE "                                                                          \
    "KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgFrfymLe51lumKRmY\n"                 \
    "4FsRONtq4ONV14z/WxPjysO+3aShRANCAARBxhtu+Cb1QBvafOq6t9kG7C9ev8bA\nVIqJASmZLbk06/jLingCa6A4"   \
    "bphSisTyPxF9A4dbTzrRRxtcrBLKlQZk\n-----END PRIVATE KEY-----\n"
//  Another EC key, which does not match T_CERT_PEM.
#define T_OTHER_KEY_PEM                                                                            \
    "-----BEGIN PRIVATE "                                                                          \
    "KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgWCUDbRtFHuIgAJ+K\n"                 \
    "nXroTwbOj6K7jgRwLKzuRN4Z5O+hRANCAARewHb+QsQ7JcUj8UQK08BzttdGPVK8\n"                           \
    "3pPtFhCa6EVX+wJOCrXRSXb2syioCEXz1OstcS/tpeS4D/hsAHlS1wbK\n-----END PRIVATE KEY-----\n"

//  A JSON body {"domain", "key", "cert"} with PEM texts whose newlines are escaped.
static char *
t_cert_body(const char *domain, const char *key, const char *cert)
{
    json_t *doc = json_pack("{s:s, s:s, s:s}", "domain", domain, "key", key, "cert", cert);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

static void
test_cert_config_mapping(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "3s", true);
    char *body = t_cert_body("API.Example.com", T_KEY_PEM, T_CERT_PEM);
    // what the router must get: the whole normalized body (the PEM texts are canonical already)
    json_t *doc =
        json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "domain", "api.example.com", "cert",
                  T_CERT_PEM, "key", T_KEY_PEM, "issuer", "O=Switchyard Test,CN=api.example.com",
                  "subject", "O=Switchyard Test,CN=api.example.com", "notBefore",
                  "2026-12-05T23:50:07Z", "notAfter", "2036-12-02T23:50:07Z");
    char *stored = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    const char *view = "{\"domain\":\"api.example.com\",\"issuer\":\"O=Switchyard Test,CN=api."
                       "example.com\"}";
    const t_call_t calls[] = {
        {"POST", "/api/v1/certificates", body, "ops", PROTO_CONFIG_PUT, "certificate",
         "api.example.com", "", 0, "ops", stored, 201, view},
        {"POST", "/api/v1/certificates", body, NULL, PROTO_CONFIG_PUT, "certificate",
         "api.example.com", "", 0, "local", stored, 200, view},
        {"GET", "/api/v1/certificates", NULL, NULL, PROTO_CONFIG_GET, "certificates", "", "", 0,
         NULL, NULL, 200, "[]"},
        {"HEAD", "/api/v1/certificates/", NULL, NULL, PROTO_CONFIG_GET, "certificates", "", "", 0,
         NULL, NULL, 200, "[]"},
        {"DELETE", "/api/v1/certificates/%2A.Example.COM", NULL, "ops", PROTO_CONFIG_DELETE,
         "certificate", "*.example.com", "", 0, "ops", NULL, 204, NULL},
        {"DELETE", "/api/v1/certificates/*", NULL, NULL, PROTO_CONFIG_DELETE, "certificate", "*",
         "", 0, "local", NULL, 204, NULL},
        {"GET", "/api/v1/config/versions", NULL, NULL, PROTO_CONFIG_GET, "versions", "", "", 0,
         NULL, NULL, 200, "[{\"version\":3}]"},
        {"GET", "/api/v1/config/versions/0012", NULL, NULL, PROTO_CONFIG_GET, "version", "12", "",
         0, NULL, NULL, 200, "{\"routes\":[]}"},
        {"GET", "/api/v1/config/diff?from=3&to=18446744073709551615", NULL, NULL, PROTO_CONFIG_GET,
         "diff", "3:18446744073709551615", "", 0, NULL, NULL, 200, "{\"routes\":{}}"},
        {"GET", "/api/v1/config/diff?to=5&from=4", NULL, NULL, PROTO_CONFIG_GET, "diff", "4:5", "",
         0, NULL, NULL, 200, "{}"},
        {"POST", "/api/v1/config/rollback/4", NULL, "ops", PROTO_CONFIG_PUT, "rollback", "4", "", 0,
         "ops", NULL, 200, "{\"version\":43}"},
    };
    for (size_t i = 0; i < sizeof calls / sizeof calls[0]; i++)
        t_through_router(f, &calls[i]);
    free(stored);
    free(body);
}

//  The router's 404s on the new calls: its message, or apid's own when it gave none.
static void
test_cert_config_errors(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "3s", true);
    struct {
        const char *method, *path;
        uint16_t status;
        const char *error, *field, *code, *message;
    } cases[] = {
        {"DELETE", "/api/v1/certificates/Nope.com", 404, NULL, NULL, "not_found",
         "no certificate for 'nope.com'"},
        {"GET", "/api/v1/config/versions/9", 404, NULL, NULL, "not_found", "no version 9"},
        {"POST", "/api/v1/config/rollback/9", 404, "", NULL, "not_found", "no version 9"},
        {"GET", "/api/v1/config/diff?from=1&to=99", 404, "no version 99 (the oldest kept is 2)",
         NULL, "not_found", "no version 99 (the oldest kept is 2)"},
        {"POST", "/api/v1/config/rollback/2", 500, "store write failed", NULL, "internal",
         "store write failed"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint64_t id = t_admin(f, cases[i].method, cases[i].path, NULL, NULL);
        t_ask_t ask = {0};
        assert_int_equal(t_router_recv(f, &ask, T_WAIT_MS), 0);
        t_router_reply(f, &ask, cases[i].status, NULL, cases[i].error, cases[i].field);
        proto_msg_clear(&ask.msg);
        proto_msg_t resp;
        proto_msg_init(&resp, PROTO_NONE);
        assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
        t_expect_error(&resp, cases[i].status, cases[i].code, cases[i].field ? cases[i].field : "");
        char *text = t_body(&resp);
        if (strstr(text, cases[i].message) == NULL)
            fail_msg("%s %s: %s lacks %s", cases[i].method, cases[i].path, text, cases[i].message);
        free(text);
        proto_msg_clear(&resp);
    }
    // the router's 400 on a certificate: its field and message relayed
    char *body = t_cert_body("a.com", T_KEY_PEM, T_CERT_PEM);
    uint64_t id = t_admin(f, "POST", "/api/v1/certificates", body, NULL);
    free(body);
    t_ask_t ask = {0};
    assert_int_equal(t_router_recv(f, &ask, T_WAIT_MS), 0);
    t_router_reply(f, &ask, 400, NULL, "the domain is reserved", "domain");
    proto_msg_clear(&ask.msg);
    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    t_expect_error(&resp, 400, "invalid_value", "domain");
    proto_msg_clear(&resp);
}

//  Bad certificates, versions and queries are answered by apid: nothing reaches the router.
static void
test_cert_config_local(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "3s", true);
    char *body = t_cert_body("a.com", T_OTHER_KEY_PEM, T_CERT_PEM);
    t_local(f, "POST", "/api/v1/certificates", body, 400, "invalid_value", "key");
    free(body);
    body = t_cert_body("a.com", T_KEY_PEM,
                       "-----BEGIN CERTIFICATE-----\nAAAA\n"
                       "-----END CERTIFICATE-----\n");
    t_local(f, "POST", "/api/v1/certificates", body, 400, "invalid_value", "cert");
    free(body);
    body = t_cert_body("a..com", T_KEY_PEM, T_CERT_PEM);
    t_local(f, "POST", "/api/v1/certificates", body, 400, "invalid_value", "domain");
    free(body);
    t_local(f, "POST", "/api/v1/certificates", "{\"domain\":\"a.com\"}", 400, "missing_field",
            "key");
    t_local(f, "POST", "/api/v1/certificates", "{\"domain\":\"a.com\",\"x\":1}", 400,
            "unknown_field", "x");
    t_local(f, "POST", "/api/v1/certificates", "", 400, "invalid_json", "");
    t_local(f, "DELETE", "/api/v1/certificates/a..com", NULL, 400, "invalid_value", "domain");
    t_local(f, "GET", "/api/v1/config/versions/x1", NULL, 400, "invalid_value", "version");
    t_local(f, "GET", "/api/v1/config/versions/18446744073709551616", NULL, 400, "invalid_value",
            "version");
    t_local(f, "POST", "/api/v1/config/rollback/-1", NULL, 400, "invalid_value", "version");
    t_local(f, "POST", "/api/v1/config/rollback/3", "{}", 400, "invalid_value", "");
    t_local(f, "GET", "/api/v1/config/diff?to=3", NULL, 400, "missing_field", "from");
    t_local(f, "GET", "/api/v1/config/diff?from=3", NULL, 400, "missing_field", "to");
    t_local(f, "GET", "/api/v1/config/diff?from=a&to=3", NULL, 400, "invalid_value", "from");
    t_local(f, "GET", "/api/v1/config/diff?from=1&to=3&verbose=1", NULL, 400, "unknown_field",
            "verbose");
    t_local(f, "GET", "/api/v1/config", NULL, 404, "not_found", "");
    t_local(f, "GET", "/api/v1/config/rollback", NULL, 404, "not_found", "");
    t_local(f, "GET", "/api/v1/certificates/a.com/x", NULL, 404, "not_found", "");

    // wrong methods: 405 with Allow
    const struct {
        const char *method, *path, *allow;
    } wrong[] = {
        {"PUT", "/api/v1/certificates", "GET, HEAD, POST"},
        {"GET", "/api/v1/certificates/a.com", "DELETE"},
        {"POST", "/api/v1/config/versions", "GET, HEAD"},
        {"DELETE", "/api/v1/config/versions/3", "GET, HEAD"},
        {"POST", "/api/v1/config/diff", "GET, HEAD"},
        {"GET", "/api/v1/config/rollback/3", "POST"},
    };
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        proto_msg_t resp;
        proto_msg_init(&resp, PROTO_NONE);
        uint64_t id = t_admin(f, wrong[i].method, wrong[i].path, NULL, NULL);
        assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
        t_expect_error(&resp, 405, "method_not_allowed", "");
        assert_string_equal(t_header(&resp, "allow"), wrong[i].allow);
        proto_msg_clear(&resp);
    }

    // the first thing the router hears of is this call: nothing above reached it
    t_call_t list = {"GET",
                     "/api/v1/certificates",
                     NULL,
                     NULL,
                     PROTO_CONFIG_GET,
                     "certificates",
                     "",
                     "",
                     0,
                     NULL,
                     NULL,
                     200,
                     "[]"};
    t_through_router(f, &list);
}

//  A router that does not answer within APID_ROUTER_TIMEOUT: 503, and its
//  late reply is dropped without harm.
static void
test_router_timeout(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "300ms", true);
    uint64_t start = it_now_ms();
    uint64_t id = t_admin(f, "GET", "/api/v1/routes/slow.com", NULL, NULL);
    t_ask_t ask = {0};
    assert_int_equal(t_router_recv(f, &ask, T_WAIT_MS), 0);
    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    uint64_t took = it_now_ms() - start;
    t_expect_error(&resp, 503, "unavailable", "");
    char *text = t_body(&resp);
    assert_non_null(strstr(text, "300 ms"));
    free(text);
    proto_msg_clear(&resp);
    assert_true(took >= 250);
    assert_true(took < 5000);

    // the late answer is counted and dropped; apid goes on serving
    t_router_reply(f, &ask, 200, "{}", NULL, NULL);
    proto_msg_clear(&ask.msg);
    uint64_t deadline = it_now_ms() + T_WAIT_MS;
    uint64_t late = 0;
    while (it_now_ms() < deadline) {
        proto_msg_t pong;
        proto_msg_init(&pong, PROTO_NONE);
        if (it_ping(f->dealer, &pong, 2000) == 0)
            late = it_counter(&pong, "replies.late");
        proto_msg_clear(&pong);
        if (late >= 1 && late != UINT64_MAX)
            break;
        it_pause(20);
    }
    assert_int_equal(late, 1);
    t_call_t list = {
        "GET", "/api/v1/routes", NULL, NULL, PROTO_CONFIG_GET, "routes", "", "", 0, NULL, NULL, 200,
        "[]"};
    t_through_router(f, &list);
}

//  No router at all: a call waits for one within its deadline (a router
//  that is starting or restarting answers it), then 503, and nothing is
//  sent after the deadline.
static void
test_no_router(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "400ms", false);
    uint64_t start = it_now_ms();
    t_local(f, "GET", "/api/v1/routes", NULL, 503, "unavailable", "");
    assert_true(it_now_ms() - start >= 350); // it waited for a router
    t_local(f, "POST", "/api/v1/routes", "{\"vHost\":\"a.com\",\"backends\":[]}", 503,
            "unavailable", "");
    assert_true(it_now_ms() - start < 2500); // no more than the deadline each
    // local answers do not need the router
    t_local(f, "GET", "/api/v1/elsewhere", NULL, 404, "not_found", "");
}

//  Many calls wait for the router at once; answers in any order reach the
//  right request.
static void
test_concurrent_calls(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "5s", true);
    enum { N = 64 };
    uint64_t ids[N];
    char path[64];
    for (int i = 0; i < N; i++) {
        snprintf(path, sizeof path, "/api/v1/routes/r%d.example.com", i);
        ids[i] = t_admin(f, "GET", path, NULL, NULL);
    }
    t_ask_t *asks = calloc(N, sizeof *asks);
    for (int i = 0; i < N; i++)
        assert_int_equal(t_router_recv(f, &asks[i], T_WAIT_MS), 0);
    char body[64];
    for (int i = N - 1; i >= 0; i--) {
        snprintf(body, sizeof body, "{\"vHost\":\"%s\"}", asks[i].msg.config_get.key);
        t_router_reply(f, &asks[i], 200, body, NULL, NULL);
        proto_msg_clear(&asks[i].msg);
    }
    free(asks);
    bool seen[N] = {false};
    for (int n = 0; n < N; n++) {
        proto_msg_t resp;
        proto_msg_init(&resp, PROTO_NONE);
        assert_int_equal(it_recv(f->dealer, &resp, NULL, 0, T_WAIT_MS), 0);
        assert_int_equal(resp.type, PROTO_ADMIN_RESPONSE);
        int which = -1;
        for (int i = 0; i < N; i++)
            if (ids[i] == resp.id)
                which = i;
        assert_true(which >= 0 && !seen[which]);
        seen[which] = true;
        assert_int_equal(resp.admin_response.status, 200);
        snprintf(body, sizeof body, "{\"vHost\":\"r%d.example.com\"}", which);
        char *got = t_body(&resp);
        assert_string_equal(got, body);
        free(got);
        proto_msg_clear(&resp);
    }
}

//  SIGTERM while a call waits for the router: the call is still answered,
//  then apid exits 0.
static void
test_drain_on_sigterm(void **state)
{
    t_fix_t *f = *state;
    t_start(f, "5s", true);
    uint64_t id = t_admin(f, "DELETE", "/api/v1/routes/a.com", NULL, NULL);
    t_ask_t ask = {0};
    assert_int_equal(t_router_recv(f, &ask, T_WAIT_MS), 0);
    assert_int_equal(kill(f->pid, SIGTERM), 0);
    t_router_reply(f, &ask, 204, NULL, NULL, NULL);
    proto_msg_clear(&ask.msg);
    proto_msg_t resp;
    proto_msg_init(&resp, PROTO_NONE);
    assert_int_equal(t_response(f, id, &resp, T_WAIT_MS), 0);
    assert_int_equal(resp.admin_response.status, 204);
    proto_msg_clear(&resp);
    // it exits by itself, with no second signal (which could land mid-exit)
    uint64_t deadline = it_now_ms() + T_WAIT_MS;
    siginfo_t info = {0};
    while (info.si_pid != f->pid && it_now_ms() < deadline) {
        if (waitid(P_PID, (id_t) f->pid, &info, WEXITED | WNOHANG | WNOWAIT) != 0)
            break;
        if (info.si_pid != f->pid)
            it_pause(10);
    }
    assert_int_equal(info.si_pid, f->pid);
    assert_int_equal(it_stop(&f->env, f->pid, T_WAIT_MS), 0); // reaps the exited process
    f->pid = 0;
}

// --------------------------------------------------------------------------
// The event stream (GET /api/v1/events, docs/dashboard.md)
//
// The test plays the gateway it-gw (admin.requests with src gateway/it-gw, a
// SUB on apid's XPUB subscribed to its events.push address, events.close
// published on its own XPUB), a router (config.changed), a healthd
// (backend.state) and a statsd (stats.reply), and answers the census pings
// apid sends to every scripted instance.

#define T_GW_SRC      "gateway/it-gw"
#define T_PUSH_TOPIC  "events.push@it-gw;"
#define T_CLOSE_TOPIC "events.close@it-apid;"
#define T_STATS_AT    UINT64_C(1765060801000) // the scripted statsd's clock (+ answers given)
#define T_APID_RSS    UINT64_C(8388608)       // apid's resident set as the statsd reports it
#define T_STATSD_RSS  UINT64_C(1234)          // the statsd's own

//  Send msg with src as sender on sock, after a first frame (a topic or a
//  routing id) when first is not NULL. A msg->id of 0 gets a fresh id.
static void
t_send_as(void *sock, const void *first, size_t first_len, proto_msg_t *msg, const char *src)
{
    static uint64_t next_id = UINT64_C(1) << 40; // apart from it_send's
    if (msg->id == 0)
        msg->id = ++next_id;
    msg->src = src;
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    proto_buf_t buf = {0};
    assert_int_equal(proto_encode(msg, &buf), 0);
    if (first)
        assert_true(zmq_send(sock, first, first_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(sock, buf.data, buf.size, 0) >= 0);
    proto_buf_free(&buf);
}

//  Publish msg under topic on a scripted XPUB.
static void
t_publish(void *xpub, const char *topic, proto_msg_t *msg, const char *src)
{
    t_send_as(xpub, topic, strlen(topic), msg, src);
}

//  Wait until apid's subscription to topic arrives on a scripted XPUB (only
//  then does a message published there reach apid).
static void
t_wait_subscribed(void *xpub, const char *topic)
{
    size_t tlen = strlen(topic);
    uint64_t deadline = it_now_ms() + T_WAIT_MS;
    while (it_now_ms() < deadline) {
        zmq_pollitem_t item = {.socket = xpub, .events = ZMQ_POLLIN};
        if (zmq_poll(&item, 1, (int) (deadline - it_now_ms()) + 1) <= 0)
            continue;
        zmq_msg_t frame;
        zmq_msg_init(&frame);
        assert_true(zmq_msg_recv(&frame, xpub, 0) >= 0);
        const uint8_t *d = zmq_msg_data(&frame);
        bool hit = zmq_msg_size(&frame) == tlen + 1 && d[0] == 1 && memcmp(d + 1, topic, tlen) == 0;
        zmq_msg_close(&frame);
        if (hit)
            return;
    }
    fail_msg("apid did not subscribe to %s", topic);
}

//  The name a scripted ROUTER answers pings as.
static void
t_scripted(t_fix_t *f, void *sock, const char **kind, const char **instance)
{
    if (sock == f->router) {
        *kind = "router";
        *instance = "it-router";
    } else if (sock == f->healthd_req) {
        *kind = "healthd";
        *instance = "it-healthd";
    } else if (sock == f->gw_req) {
        *kind = "gateway";
        *instance = "it-gw";
    } else {
        *kind = "statsd";
        *instance = "it-statsd";
    }
}

//  The scripted statsd's answer: fixed figures, and process figures whose
//  CPU time grows by 0.5 s (apid) and 0.25 s (statsd) per second of seen_ms.
static void
t_stats_reply(t_fix_t *f, proto_msg_t *msg)
{
    static proto_routestat_t routes[1];
    static proto_procstat_t procs[2];
    uint64_t n = ++f->stats_asked;
    routes[0] = (proto_routestat_t){.vhost = "api.example.com",
                                    .requests = 1000,
                                    .errors_4xx = 3,
                                    .errors_5xx = 1,
                                    .rps = 12.5,
                                    .p50_ms = 1.25,
                                    .p99_ms = 8.5};
    procs[0] = (proto_procstat_t){.kind = "apid",
                                  .instance = "it-apid",
                                  .pid = (uint32_t) f->pid,
                                  .cpu_seconds = 1.0 + 0.5 * (double) n,
                                  .rss_bytes = T_APID_RSS,
                                  .seen_ms = T_STATS_AT + 1000 * n};
    procs[1] = (proto_procstat_t){.kind = "statsd",
                                  .instance = "it-statsd",
                                  .pid = (uint32_t) getpid(),
                                  .cpu_seconds = 0.25 * (double) n,
                                  .rss_bytes = T_STATSD_RSS,
                                  .seen_ms = T_STATS_AT + 1000 * n};
    proto_msg_init(msg, PROTO_STATS_REPLY);
    proto_stats_reply_t *r = &msg->stats_reply;
    r->now_ms = T_STATS_AT + n;
    r->since_ms = T_STATS_AT - 60000;
    r->requests = 120034;
    r->rps = 41.2;
    r->chat_sessions = 2;
    r->chat_messages = 40;
    r->ws_connections = 2;
    r->routes = routes;
    r->routes_count = 1;
    r->procs = procs;
    r->procs_count = 2;
}

//  One request on a scripted ROUTER: a census ping is answered with pong,
//  a stats.get (on the statsd) with stats.reply; anything else is dropped.
static void
t_serve(t_fix_t *f, void *sock)
{
    uint8_t identity[256];
    size_t identity_len = 0;
    proto_msg_t req;
    proto_msg_init(&req, PROTO_NONE);
    int frame = 0, more, rc = -1;
    do {
        zmq_msg_t part;
        zmq_msg_init(&part);
        assert_true(zmq_msg_recv(&part, sock, 0) >= 0);
        more = zmq_msg_more(&part);
        if (frame == 0) {
            identity_len = zmq_msg_size(&part);
            assert_true(identity_len <= sizeof identity);
            memcpy(identity, zmq_msg_data(&part), identity_len);
        } else if (!more) {
            rc = proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), &req);
        }
        frame++;
        zmq_msg_close(&part);
    } while (more);
    const char *kind, *instance;
    t_scripted(f, sock, &kind, &instance);
    char src[96];
    snprintf(src, sizeof src, "%s/%s", kind, instance);
    proto_msg_t out;
    if (rc == 0 && req.type == PROTO_PING) {
        proto_msg_init(&out, PROTO_PONG);
        out.pong.kind = kind;
        out.pong.instance = instance;
        out.pong.pid = (uint32_t) getpid();
        out.pong.version = "0.0.0-it";
        out.pong.region = "1";
        out.pong.uptime_ms = 1000;
        out.pong.sent_us = req.ping.sent_us;
    } else if (rc == 0 && req.type == PROTO_STATS_GET && sock == f->statsd_req) {
        t_stats_reply(f, &out);
    } else {
        proto_msg_clear(&req);
        return;
    }
    out.id = req.id;
    out.rid = req.rid;
    t_send_as(sock, identity, identity_len, &out, src);
    proto_msg_clear(&req);
}

//  Serve the scripted ROUTERs for up to timeout_ms, or until the SUB (when
//  watch_sub) has something to read. Returns true when the SUB has.
static bool
t_serve_for(t_fix_t *f, int timeout_ms, bool watch_sub)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        zmq_pollitem_t items[6];
        int n = 0;
        if (watch_sub && f->sub)
            items[n++] = (zmq_pollitem_t){.socket = f->sub, .events = ZMQ_POLLIN};
        void *routers[] = {f->router, f->healthd_req, f->gw_req, f->statsd_req};
        for (size_t i = 0; i < sizeof routers / sizeof routers[0]; i++)
            if (routers[i])
                items[n++] = (zmq_pollitem_t){.socket = routers[i], .events = ZMQ_POLLIN};
        uint64_t now = it_now_ms();
        int left = now < deadline ? (int) (deadline - now) : 0;
        if (zmq_poll(items, n, left) > 0) {
            for (int i = 0; i < n; i++) {
                if (!(items[i].revents & ZMQ_POLLIN))
                    continue;
                if (items[i].socket == f->sub)
                    return true;
                t_serve(f, items[i].socket);
            }
        }
        if (it_now_ms() >= deadline)
            return false;
    }
}

typedef enum {
    T_ANY,      // any push
    T_NUMBERED, // a push with a seq (config, backend)
    T_NAMED,    // an unnumbered push of a named event (stats, actors)
} t_want_t;

//  The next events.push to it-gw that is wanted (event names the event for
//  T_NAMED), within timeout_ms, serving the scripted ROUTERs meanwhile; its
//  SSE text (caller frees) into *text and its seq into *seq. Returns 0, or
//  -1 on timeout.
static int
t_push(t_fix_t *f, t_want_t want, const char *event, char **text, uint64_t *seq, int timeout_ms)
{
    uint64_t deadline = it_now_ms() + (uint64_t) timeout_ms;
    for (;;) {
        uint64_t now = it_now_ms();
        if (now >= deadline || !t_serve_for(f, (int) (deadline - now), true))
            return -1;
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_NONE);
        char topic[128] = "";
        assert_int_equal(it_recv(f->sub, &msg, topic, sizeof topic, 0), 0);
        assert_string_equal(topic, T_PUSH_TOPIC);
        assert_int_equal(msg.type, PROTO_EVENTS_PUSH);
        assert_string_equal(msg.src, "apid/it-apid");
        const proto_bin_t *d = &msg.events_push.data;
        char *s = malloc(d->size + 1);
        memcpy(s, d->data, d->size);
        s[d->size] = '\0';
        uint64_t got_seq = msg.events_push.seq;
        proto_msg_clear(&msg);
        char named[64];
        snprintf(named, sizeof named, "event: %s\n", event ? event : "");
        bool hit = want == T_ANY || (want == T_NUMBERED && got_seq > 0)
                   || (want == T_NAMED && got_seq == 0 && proto_starts_with(s, named));
        if (hit) {
            *text = s;
            if (seq)
                *seq = got_seq;
            return 0;
        }
        free(s);
    }
}

//  A counter of apid's pong (UINT64_MAX when absent).
static uint64_t
t_pong_counter(t_fix_t *f, const char *name)
{
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_NONE);
    assert_int_equal(it_ping(f->dealer, &pong, T_WAIT_MS), 0);
    uint64_t v = it_counter(&pong, name);
    proto_msg_clear(&pong);
    return v;
}

//  Wait until apid's pong counter name is want (absent counts as 0),
//  serving the scripted ROUTERs between two pings.
static void
t_wait_counter(t_fix_t *f, const char *name, uint64_t want)
{
    uint64_t deadline = it_now_ms() + T_WAIT_MS, got = 0;
    while (it_now_ms() < deadline) {
        got = t_pong_counter(f, name);
        if (got == UINT64_MAX)
            got = 0;
        if (got == want)
            return;
        t_serve_for(f, 20, false);
    }
    fail_msg("pong %s: %llu, expected %llu", name, (unsigned long long) got,
             (unsigned long long) want);
}

//  Send an admin.request for the event stream from src (last_id: the
//  last-event-id header, or NULL) and return its answer.
static void
t_events_call(t_fix_t *f,
              const char *method,
              const char *path,
              const char *src,
              const char *last_id,
              proto_msg_t *resp)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ADMIN_REQUEST);
    msg.rid = "it-events-1";
    msg.admin_request.method = method;
    msg.admin_request.path = path;
    msg.admin_request.client = "127.0.0.1";
    proto_kv_t headers[] = {{"accept", "text/event-stream"}, {"last-event-id", last_id}};
    msg.admin_request.headers = headers;
    msg.admin_request.headers_count = last_id ? 2 : 1;
    t_send_as(f->dealer, NULL, 0, &msg, src);
    proto_msg_init(resp, PROTO_NONE);
    assert_int_equal(t_response(f, msg.id, resp, T_WAIT_MS), 0);
}

//  Open a stream of it-gw (GET, 200); its body (caller frees) into *body
//  when body is not NULL, and the x-switchyard-events header's sequence
//  number returned. epoch (when not NULL, 128 bytes) receives its epoch.
static uint64_t
t_open(t_fix_t *f, const char *last_id, char **body, char *epoch)
{
    proto_msg_t resp;
    t_events_call(f, "GET", "/api/v1/events", T_GW_SRC, last_id, &resp);
    assert_int_equal(resp.admin_response.status, 200);
    assert_string_equal(t_header(&resp, "content-type"), "text/event-stream");
    const char *covers = t_header(&resp, "x-switchyard-events");
    assert_non_null(covers);
    const char *colon = strrchr(covers, ':');
    assert_non_null(colon);
    if (epoch) {
        assert_true((size_t) (colon - covers) < 128);
        snprintf(epoch, 128, "%.*s", (int) (colon - covers), covers);
    }
    uint64_t seq = strtoull(colon + 1, NULL, 10);
    if (body)
        *body = t_body(&resp);
    proto_msg_clear(&resp);
    return seq;
}

//  Start apid with the scripted actors, wait for its subscriptions on their
//  XPUBs, connect the gateway's SUB, open one stream and wait until a push
//  reaches the SUB (so the SUB's subscription is in place). epoch (128
//  bytes) receives the stream's epoch.
static void
t_events_start(t_fix_t *f, char *epoch)
{
    f->events = true;
    t_start(f, "3s", true);
    t_wait_subscribed(f->xpub, "config.changed");
    t_wait_subscribed(f->healthd_pub, "backend.state");
    t_wait_subscribed(f->gw_pub, T_CLOSE_TOPIC);
    char pub[256];
    it_pub_endpoint(&f->env, "apid", f->pid, pub, sizeof pub);
    f->sub = it_sub(&f->env, pub, T_PUSH_TOPIC);
    assert_int_equal(t_open(f, NULL, NULL, epoch), 0);
    char *text = NULL;
    if (t_push(f, T_ANY, NULL, &text, NULL, T_WAIT_MS) != 0)
        fail_msg("no events.push reached the gateway's SUB");
    free(text);
}

static void
t_config_changed(t_fix_t *f,
                 uint64_t version,
                 const char *what,
                 const char *key,
                 const char *by,
                 const char *summary)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_CHANGED);
    msg.config_changed.version = version;
    msg.config_changed.what = what;
    msg.config_changed.key = key;
    msg.config_changed.by = by;
    msg.config_changed.summary = summary;
    t_publish(f->xpub, "config.changed", &msg, "router/it-router");
}

static void
t_backend_state(t_fix_t *f,
                const char *backend,
                bool up,
                const char *reason,
                uint32_t failures,
                uint64_t since_ms)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_BACKEND_STATE);
    msg.backend_state.route = "api";
    msg.backend_state.backend = backend;
    msg.backend_state.up = up;
    msg.backend_state.reason = reason;
    msg.backend_state.failures = failures;
    msg.backend_state.since_ms = since_ms;
    t_publish(f->healthd_pub, "backend.state", &msg, "healthd/it-healthd");
}

static void
t_events_close(t_fix_t *f, const char *src, uint32_t streams, bool all)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_EVENTS_CLOSE);
    msg.events_close.streams = streams;
    msg.events_close.all = all;
    t_publish(f->gw_pub, T_CLOSE_TOPIC, &msg, src);
}

//  Check a numbered event's SSE text: "id: <epoch>:<seq>\nevent: <event>\n
//  data: <JSON on one line>\n\n". Returns the JSON (caller decrefs).
static json_t *
t_numbered(const char *text, const char *epoch, uint64_t seq, const char *event)
{
    char head[256];
    snprintf(head, sizeof head, "id: %s:%llu\nevent: %s\ndata: ", epoch, (unsigned long long) seq,
             event);
    if (!proto_starts_with(text, head))
        fail_msg("expected an event starting %s, got %s", head, text);
    const char *json = text + strlen(head);
    size_t len = strlen(json);
    assert_true(len > 2 && strcmp(json + len - 2, "\n\n") == 0);
    assert_null(memchr(json, '\n', len - 2)); // one data line
    json_error_t err;
    json_t *doc = json_loadb(json, len - 2, 0, &err);
    if (doc == NULL)
        fail_msg("not JSON: %s (%s)", json, err.text);
    return doc;
}

//  An unnumbered event's JSON (no id line). Returns it (caller decrefs).
static json_t *
t_unnumbered(const char *text, const char *event)
{
    char head[64];
    snprintf(head, sizeof head, "event: %s\ndata: ", event);
    if (!proto_starts_with(text, head))
        fail_msg("expected an event starting %s, got %s", head, text);
    const char *json = text + strlen(head);
    size_t len = strlen(json);
    assert_true(len > 2 && strcmp(json + len - 2, "\n\n") == 0);
    json_t *doc = json_loadb(json, len - 2, 0, NULL);
    if (doc == NULL)
        fail_msg("not JSON: %s", json);
    return doc;
}

//  An ISO 8601 UTC time with milliseconds: 2026-12-06T22:40:01.123Z.
static void
t_expect_iso(json_t *v)
{
    const char *s = json_string_value(v);
    assert_non_null(s);
    assert_int_equal(strlen(s), 24);
    assert_true(s[4] == '-' && s[10] == 'T' && s[19] == '.' && s[23] == 'Z');
}

static void
t_expect_str(json_t *doc, const char *key, const char *want)
{
    const char *got = json_string_value(json_object_get(doc, key));
    if (got == NULL || strcmp(got, want) != 0)
        fail_msg("%s: %s, expected %s", key, got ? got : "(none)", want);
}

//  The next numbered push: check it is seq, a config event of version.
static json_t *
t_expect_config(t_fix_t *f, const char *epoch, uint64_t seq, uint64_t version)
{
    char *text = NULL;
    uint64_t got = 0;
    if (t_push(f, T_NUMBERED, NULL, &text, &got, T_WAIT_MS) != 0)
        fail_msg("no config event %llu pushed", (unsigned long long) seq);
    assert_int_equal(got, seq);
    json_t *doc = t_numbered(text, epoch, seq, "config");
    free(text);
    assert_int_equal(json_integer_value(json_object_get(doc, "version")), version);
    return doc;
}

//  Opening a stream: the answer's head and replay; HEAD, other methods and a
//  sender that is not a gateway.
static void
test_events_open(void **state)
{
    t_fix_t *f = *state;
    f->events = true;
    t_start(f, "3s", true);
    proto_msg_t resp;
    t_events_call(f, "GET", "/api/v1/events", T_GW_SRC, NULL, &resp);
    assert_int_equal(resp.admin_response.status, 200);
    assert_string_equal(t_header(&resp, "content-type"), "text/event-stream");
    const char *covers = t_header(&resp, "x-switchyard-events");
    assert_non_null(covers);
    // <epoch>:<seq>: the epoch names this apid's run, and nothing happened yet
    assert_true(proto_starts_with(covers, "it-apid."));
    const char *colon = strrchr(covers, ':');
    assert_non_null(colon);
    assert_string_equal(colon, ":0");
    char epoch[128];
    snprintf(epoch, sizeof epoch, "%.*s", (int) (colon - covers), covers);
    char *body = t_body(&resp);
    assert_true(proto_starts_with(body, "retry: 2000\n"));
    assert_non_null(strstr(body, "\n: switchyard events of apid it-apid\n\n"));
    assert_null(strstr(body, "event:")); // nothing to replay, no reset
    free(body);
    proto_msg_clear(&resp);
    t_wait_counter(f, "events.streams", 1);

    // the path with a trailing slash is the same stream
    t_events_call(f, "GET", "/api/v1/events/", T_GW_SRC, NULL, &resp);
    assert_int_equal(resp.admin_response.status, 200);
    proto_msg_clear(&resp);
    t_wait_counter(f, "events.streams", 2);

    // HEAD: the head without a body, and no stream
    t_events_call(f, "HEAD", "/api/v1/events", T_GW_SRC, NULL, &resp);
    assert_int_equal(resp.admin_response.status, 200);
    assert_string_equal(t_header(&resp, "content-type"), "text/event-stream");
    char want[160];
    snprintf(want, sizeof want, "%s:0", epoch);
    assert_string_equal(t_header(&resp, "x-switchyard-events"), want);
    assert_int_equal(resp.admin_response.body.size, 0);
    proto_msg_clear(&resp);
    assert_int_equal(t_pong_counter(f, "events.streams"), 2);
    assert_int_equal(t_pong_counter(f, "events.opened"), 2);

    // other methods: 405 with Allow
    const char *wrong[] = {"POST", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        t_events_call(f, wrong[i], "/api/v1/events", T_GW_SRC, NULL, &resp);
        t_expect_error(&resp, 405, "method_not_allowed", "");
        assert_string_equal(t_header(&resp, "allow"), "GET, HEAD");
        proto_msg_clear(&resp);
    }

    // a sender that is not a gateway cannot hold a stream
    const char *not_gateways[] = {"test/it", "gateway/", "statsd/it-statsd"};
    for (size_t i = 0; i < sizeof not_gateways / sizeof not_gateways[0]; i++) {
        t_events_call(f, "GET", "/api/v1/events", not_gateways[i], NULL, &resp);
        t_expect_error(&resp, 400, "bad_request", "");
        proto_msg_clear(&resp);
    }
    assert_int_equal(t_pong_counter(f, "events.refused"), 3);
    assert_int_equal(t_pong_counter(f, "events.streams"), 2);
    assert_int_equal(t_pong_counter(f, "events.opened"), 2);
}

//  config.changed: one numbered event per new version, with who and what.
static void
test_events_config(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    t_config_changed(f, 5, "route", "a.test", "local", "PUT route a.test");
    json_t *doc = t_expect_config(f, epoch, 1, 5);
    t_expect_str(doc, "what", "route");
    t_expect_str(doc, "key", "a.test");
    t_expect_str(doc, "by", "local");
    t_expect_str(doc, "summary", "PUT route a.test");
    t_expect_iso(json_object_get(doc, "at"));
    assert_int_equal(json_object_size(doc), 6);
    json_decref(doc);

    // the same version (every router tells it) and an older one: nothing;
    // the next event is the next version's, numbered 2
    t_config_changed(f, 5, "route", "a.test", "local", "PUT route a.test");
    t_config_changed(f, 4, "route", "b.test", "local", "PUT route b.test");
    t_config_changed(f, 6, "reload", "", NULL, NULL);
    doc = t_expect_config(f, epoch, 2, 6);
    t_expect_str(doc, "what", "reload");
    t_expect_str(doc, "key", "");
    assert_null(json_object_get(doc, "by")); // absent for reload and edge
    assert_null(json_object_get(doc, "summary"));
    json_decref(doc);

    t_config_changed(f, 6, "reload", "", NULL, NULL);
    t_config_changed(f, 9, "certificate", "*.example.com", "token-0123456789ab",
                     "POST certificate *.example.com");
    doc = t_expect_config(f, epoch, 3, 9);
    t_expect_str(doc, "by", "token-0123456789ab");
    json_decref(doc);
    // empty by and summary are absent too
    t_config_changed(f, 10, "edge", "", "", "");
    doc = t_expect_config(f, epoch, 4, 10);
    t_expect_str(doc, "what", "edge");
    assert_null(json_object_get(doc, "by"));
    assert_null(json_object_get(doc, "summary"));
    json_decref(doc);
}

//  The next numbered push: check it is seq, a backend event; returns its JSON.
static json_t *
t_expect_backend(t_fix_t *f, const char *epoch, uint64_t seq, const char *backend, const char *st)
{
    char *text = NULL;
    uint64_t got = 0;
    if (t_push(f, T_NUMBERED, NULL, &text, &got, T_WAIT_MS) != 0)
        fail_msg("no backend event %llu pushed", (unsigned long long) seq);
    if (got != seq)
        fail_msg("expected event %llu, got %s", (unsigned long long) seq, text);
    json_t *doc = t_numbered(text, epoch, seq, "backend");
    free(text);
    t_expect_str(doc, "route", "api");
    t_expect_str(doc, "backend", backend);
    t_expect_str(doc, "state", st);
    return doc;
}

static void
t_expect_failures(json_t *doc, const char *reason, json_int_t failures)
{
    t_expect_str(doc, "reason", reason);
    assert_int_equal(json_integer_value(json_object_get(doc, "failures")), failures);
}

//  backend.state: one numbered event per change of a (route, backend)'s state.
static void
test_events_backend(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    uint64_t since = proto_now_ms();
    t_backend_state(f, "b1", false, "maintenance", 0, since);
    json_t *doc = t_expect_backend(f, epoch, 1, "b1", "maintenance");
    t_expect_failures(doc, "maintenance", 0);
    t_expect_iso(json_object_get(doc, "since"));
    json_decref(doc);

    // the same again (healthd restarted, or a second healthd): nothing
    t_backend_state(f, "b1", false, "maintenance", 0, since);
    t_backend_state(f, "b1", true, "recovered", 0, since + 1000);
    doc = t_expect_backend(f, epoch, 2, "b1", "alive");
    t_expect_failures(doc, "recovered", 0);
    json_decref(doc);

    t_backend_state(f, "b1", true, "", 0, 0);
    t_backend_state(f, "b1", false, "3 failures", 3, 0);
    doc = t_expect_backend(f, epoch, 3, "b1", "dead");
    t_expect_failures(doc, "3 failures", 3);
    assert_null(json_object_get(doc, "since")); // none said
    json_decref(doc);

    // dead for another reason is still dead; another backend is its own
    t_backend_state(f, "b1", false, "4 failures", 4, 0);
    t_backend_state(f, "b2", false, "3 failures", 3, 0);
    doc = t_expect_backend(f, epoch, 4, "b2", "dead");
    json_decref(doc);
    t_backend_state(f, "b1", false, "maintenance", 0, 0);
    doc = t_expect_backend(f, epoch, 5, "b1", "maintenance");
    json_decref(doc);
}

//  Last-Event-ID: the kept events after it, in order; another run's id or
//  garbage: reset.
static void
test_events_replay(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    t_config_changed(f, 1, "route", "a.test", "local", "PUT route a.test");
    t_backend_state(f, "b1", false, "3 failures", 3, 0);
    t_config_changed(f, 2, "route", "a.test", "local", "DELETE route a.test");
    char *texts[4] = {NULL};
    for (uint64_t s = 1; s <= 3; s++) {
        uint64_t got = 0;
        assert_int_equal(t_push(f, T_NUMBERED, NULL, &texts[s], &got, T_WAIT_MS), 0);
        assert_int_equal(got, s);
    }
    const char *preamble = "retry: 2000\n: switchyard events of apid it-apid\n\n";

    // after 1: events 2 and 3, as pushed
    char last[192], *body = NULL, want[4096];
    snprintf(last, sizeof last, "%s:1", epoch);
    assert_int_equal(t_open(f, last, &body, NULL), 3);
    snprintf(want, sizeof want, "%s%s%s", preamble, texts[2], texts[3]);
    assert_string_equal(body, want);
    free(body);
    // after 0: all three; after 3: none
    snprintf(last, sizeof last, "%s:0", epoch);
    assert_int_equal(t_open(f, last, &body, NULL), 3);
    snprintf(want, sizeof want, "%s%s%s%s", preamble, texts[1], texts[2], texts[3]);
    assert_string_equal(body, want);
    free(body);
    snprintf(last, sizeof last, "%s:3", epoch);
    assert_int_equal(t_open(f, last, &body, NULL), 3);
    assert_string_equal(body, preamble);
    free(body);
    assert_int_equal(t_pong_counter(f, "events.replayed"), 5);
    assert_int_equal(t_pong_counter(f, "events.resets"), 0);

    // ids that cannot be replayed: reset, and no event
    char other[192], same_len[192], ahead[192], shorter[192];
    snprintf(other, sizeof other, "it-apid.1:1");
    // another run of the same instance: an epoch as long, one digit apart
    snprintf(same_len, sizeof same_len, "%s:1", epoch);
    char *digit = same_len + strlen(epoch) - 1;
    *digit = *digit == '0' ? '1' : '0';
    snprintf(ahead, sizeof ahead, "%s:4", epoch);
    snprintf(shorter, sizeof shorter, "%.*s:1", (int) strlen(epoch) - 1, epoch);
    const char *resets[] = {other, same_len, ahead, shorter, "garbage", "1", ":1", "x:y:1"};
    size_t nresets = sizeof resets / sizeof resets[0];
    snprintf(want, sizeof want, "%sevent: reset\ndata: {}\n\n", preamble);
    for (size_t i = 0; i < nresets; i++) {
        assert_int_equal(t_open(f, resets[i], &body, NULL), 3);
        if (strcmp(body, want) != 0)
            fail_msg("last-event-id %s: %s", resets[i], body);
        free(body);
    }
    // an empty one is none
    assert_int_equal(t_open(f, "", &body, NULL), 3);
    assert_string_equal(body, preamble);
    free(body);
    assert_int_equal(t_pong_counter(f, "events.resets"), nresets);
    assert_int_equal(t_pong_counter(f, "events.replayed"), 5);
    for (size_t i = 0; i < 4; i++)
        free(texts[i]);
}

//  Wait until a HEAD's x-switchyard-events says seq (apid has taken an event).
static void
t_wait_covers(t_fix_t *f, const char *epoch, uint64_t seq)
{
    char want[192];
    snprintf(want, sizeof want, "%s:%llu", epoch, (unsigned long long) seq);
    uint64_t deadline = it_now_ms() + T_WAIT_MS;
    while (it_now_ms() < deadline) {
        proto_msg_t resp;
        t_events_call(f, "HEAD", "/api/v1/events", T_GW_SRC, NULL, &resp);
        assert_int_equal(resp.admin_response.status, 200);
        bool done = strcmp(t_header(&resp, "x-switchyard-events"), want) == 0;
        proto_msg_clear(&resp);
        if (done)
            return;
        t_serve_for(f, 20, false);
    }
    fail_msg("apid never covered %s", want);
}

//  Streams counted per gateway, closed by events.close; one push per
//  gateway whatever its streams; none while it holds none.
static void
test_events_closes(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 0);
    t_wait_counter(f, "events.streams", 2);

    // two streams, one push each event (the next numbered push is the next event)
    t_config_changed(f, 1, "route", "a.test", "local", "PUT route a.test");
    t_config_changed(f, 2, "route", "b.test", "local", "PUT route b.test");
    json_decref(t_expect_config(f, epoch, 1, 1));
    json_decref(t_expect_config(f, epoch, 2, 2));

    t_events_close(f, T_GW_SRC, 1, false);
    t_wait_counter(f, "events.streams", 1);
    // another gateway's close, or one from no gateway, is not about it-gw's
    t_events_close(f, "gateway/other-gw", 0, true);
    t_events_close(f, "test/it", 0, true);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 2);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 2);
    t_wait_counter(f, "events.streams", 3);
    // more closed than held: none left
    t_events_close(f, T_GW_SRC, 1, false);
    t_wait_counter(f, "events.streams", 2); // (the two others were ignored)
    t_events_close(f, T_GW_SRC, 5, false);
    t_wait_counter(f, "events.streams", 0);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 2);
    t_wait_counter(f, "events.streams", 1);
    t_events_close(f, T_GW_SRC, 0, true);
    t_wait_counter(f, "events.streams", 0);

    // no stream: an event is kept but not published
    uint64_t pushed = t_pong_counter(f, "events.pushed");
    t_config_changed(f, 3, "route", "c.test", "local", "PUT route c.test");
    t_wait_covers(f, epoch, 3);
    assert_int_equal(t_pong_counter(f, "events.pushed"), pushed);
    // a new stream gets the next one: nothing of event 3 reached the SUB before it
    assert_int_equal(t_open(f, NULL, NULL, NULL), 3);
    t_config_changed(f, 4, "route", "d.test", "local", "PUT route d.test");
    json_decref(t_expect_config(f, epoch, 4, 4));
    assert_true(t_pong_counter(f, "events.pushed") > pushed);
}

//  The gateway's subscription ends (it went): its streams are forgotten.
static void
test_events_gateway_goes(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 0);
    t_wait_counter(f, "events.streams", 2);
    zmq_close(f->sub);
    f->sub = NULL;
    t_wait_counter(f, "events.streams", 0);

    // it comes back: a new stream is served and pushed to
    char pub[256];
    it_pub_endpoint(&f->env, "apid", f->pid, pub, sizeof pub);
    f->sub = it_sub(&f->env, pub, T_PUSH_TOPIC);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 0);
    t_wait_counter(f, "events.streams", 1);
    char *text = NULL;
    assert_int_equal(t_push(f, T_ANY, NULL, &text, NULL, T_WAIT_MS), 0);
    free(text);
    t_config_changed(f, 1, "route", "a.test", "local", "PUT route a.test");
    json_decref(t_expect_config(f, epoch, 1, 1));
}

//  The unnumbered events: stats (statsd's figures, once a second) and actors
//  (the census, with statsd's process figures).
static void
test_events_stats_actors(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    // a stream is open: statsd is asked at once and every second, and each
    // answer is pushed (the first ask may find statsd not connected yet)
    char *text = NULL;
    json_t *stats[2] = {NULL};
    for (int i = 0; i < 2; i++) {
        if (t_push(f, T_NAMED, "stats", &text, NULL, i == 0 ? 3000 : T_WAIT_MS) != 0)
            fail_msg("no stats event %d (statsd asked %llu times)", i + 1,
                     (unsigned long long) f->stats_asked);
        stats[i] = t_unnumbered(text, "stats");
        free(text);
    }
    json_t *s = stats[1];
    json_int_t at = json_integer_value(json_object_get(s, "at"));
    json_int_t at0 = json_integer_value(json_object_get(stats[0], "at"));
    assert_true(at0 > (json_int_t) T_STATS_AT && at > at0);
    assert_true(at <= (json_int_t) (T_STATS_AT + f->stats_asked));
    assert_int_equal(json_integer_value(json_object_get(s, "requests")), 120034);
    assert_true(json_real_value(json_object_get(s, "rps")) == 41.2);
    json_t *routes = json_object_get(s, "routes");
    assert_int_equal(json_array_size(routes), 1);
    json_t *r = json_array_get(routes, 0);
    t_expect_str(r, "vHost", "api.example.com");
    assert_int_equal(json_integer_value(json_object_get(r, "requests")), 1000);
    assert_true(json_real_value(json_object_get(r, "rps")) == 12.5);
    assert_true(json_real_value(json_object_get(r, "p50")) == 1.25);
    assert_true(json_real_value(json_object_get(r, "p99")) == 8.5);
    json_t *errors = json_object_get(r, "errors");
    assert_int_equal(json_integer_value(json_object_get(errors, "4xx")), 3);
    assert_int_equal(json_integer_value(json_object_get(errors, "5xx")), 1);
    json_t *chat = json_object_get(s, "chat");
    assert_int_equal(json_integer_value(json_object_get(chat, "sessions")), 2);
    assert_int_equal(json_integer_value(json_object_get(chat, "messages")), 40);
    assert_int_equal(json_integer_value(json_object_get(chat, "wsConnections")), 2);
    json_decref(stats[0]);
    json_decref(stats[1]);

    // two samples of the statsd's process figures are in. With no stream the
    // periodic asks stop; a new stream gets an actors event at once (not
    // after the 5 s period), with apid itself and every scripted instance,
    // and the CPU and memory statsd reported
    t_events_close(f, T_GW_SRC, 0, true);
    t_wait_counter(f, "events.streams", 0);
    assert_int_equal(t_open(f, NULL, NULL, NULL), 0);
    if (t_push(f, T_NAMED, "actors", &text, NULL, 2500) != 0)
        fail_msg("no actors event at the stream's start");
    json_t *doc = t_unnumbered(text, "actors");
    free(text);
    assert_true(json_integer_value(json_object_get(doc, "at")) > 0);
    json_t *list = json_object_get(doc, "instances");
    json_t *me = NULL, *statsd = NULL;
    bool kinds[4] = {false};
    const char *names[4] = {"router", "healthd", "gateway", "statsd"};
    for (size_t i = 0; i < json_array_size(list); i++) {
        json_t *o = json_array_get(list, i);
        const char *kind = json_string_value(json_object_get(o, "kind"));
        assert_non_null(kind);
        if (strcmp(kind, "apid") == 0)
            me = o;
        if (strcmp(kind, "statsd") == 0)
            statsd = o;
        for (size_t k = 0; k < 4; k++)
            if (strcmp(kind, names[k]) == 0)
                kinds[k] = true;
    }
    for (size_t k = 0; k < 4; k++)
        if (!kinds[k])
            fail_msg("no %s in the actors event: %s", names[k], json_dumps(doc, 0));
    assert_non_null(me);
    t_expect_str(me, "instance", "it-apid");
    assert_int_equal(json_integer_value(json_object_get(me, "pid")), f->pid);
    assert_int_equal(json_integer_value(json_object_get(me, "rssBytes")), T_APID_RSS);
    assert_true(json_real_value(json_object_get(me, "cpu")) == 0.5);
    assert_non_null(statsd);
    t_expect_str(statsd, "instance", "it-statsd");
    assert_int_equal(json_integer_value(json_object_get(statsd, "rssBytes")), T_STATSD_RSS);
    assert_true(json_real_value(json_object_get(statsd, "cpu")) == 0.25);
    json_decref(doc);
}

//  Gateways that subscribe (every gateway does, at start) and go without ever
//  holding a stream give their slot back: 256 of them do not lock the stream
//  out for good.
static void
test_events_slot_leak(void **state)
{
    t_fix_t *f = *state;
    char epoch[128];
    t_events_start(f, epoch);
    char pub[256];
    it_pub_endpoint(&f->env, "apid", f->pid, pub, sizeof pub);
    void *sub2 = it_sub(&f->env, pub, "events.push@gw-0;");
    char topic[64];
    for (int i = 1; i < 256; i++) {
        snprintf(topic, sizeof topic, "events.push@gw-%d;", i);
        zmq_setsockopt(sub2, ZMQ_SUBSCRIBE, topic, strlen(topic));
    }
    // gateways that subscribed but never held a stream fill the table
    int k = 0, status = 200;
    uint64_t deadline = it_now_ms() + T_WAIT_MS;
    while (status == 200 && it_now_ms() < deadline) {
        char src[64];
        snprintf(src, sizeof src, "gateway/probe-%d", k++);
        proto_msg_t resp;
        t_events_call(f, "GET", "/api/v1/events", src, NULL, &resp);
        status = resp.admin_response.status;
        proto_msg_clear(&resp);
    }
    assert_int_equal(status, 503);
    zmq_close(sub2); // those 256 gateways went, never having held a stream
    deadline = it_now_ms() + 3000;
    for (k = 0; status != 200 && it_now_ms() < deadline; k++) {
        char src[64];
        snprintf(src, sizeof src, "gateway/new-%d", k);
        proto_msg_t resp;
        t_events_call(f, "GET", "/api/v1/events", src, NULL, &resp);
        status = resp.admin_response.status;
        proto_msg_clear(&resp);
        it_pause(50);
    }
    assert_int_equal(status, 200); // the slots of gateways gone are free again
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("apid"),
        cmocka_unit_test_setup_teardown(test_crud_mapping, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_router_errors, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_local_answers, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_cert_config_mapping, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_cert_config_errors, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_cert_config_local, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_router_timeout, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_no_router, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_concurrent_calls, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_drain_on_sigterm, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_open, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_config, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_backend, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_replay, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_closes, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_gateway_goes, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_stats_actors, t_setup, t_teardown),
        cmocka_unit_test_setup_teardown(test_events_slot_leak, t_setup, t_teardown),
    };
    return cmocka_run_group_tests_name("it_apid", tests, NULL, NULL);
}
