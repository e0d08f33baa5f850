/*  it_apid - integration test of bin/apid: the real binary, driven over the bus.

    The test plays both of apid's neighbours: the gateway (a DEALER sending
    admin.request to apid's ROUTER) and a scripted router (a ROUTER and an
    XPUB bound at router.<test pid>.req/.pub in the test's BUS_DIR, which is
    how apid discovers it; the test's pid is alive, so the files count). The
    scripted router checks each config.* apid sends and answers config.reply.

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
} t_fix_t;

typedef struct {
    uint8_t identity[256]; // routing id of apid's DEALER
    size_t identity_len;   // its length
    proto_msg_t msg;       // the config.* request
} t_ask_t;

// --------------------------------------------------------------------------
// The scripted router

static void *
t_bind(t_fix_t *f, int type, const char *suffix)
{
    char ep[256];
    snprintf(ep, sizeof ep, "ipc://%s/router.%d.%s", f->env.bus_dir, (int) getpid(), suffix);
    void *sock = zmq_socket(f->env.ctx, type);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(sock, ep), 0);
    return sock;
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
    };
    return cmocka_run_group_tests_name("it_apid", tests, NULL, NULL);
}
