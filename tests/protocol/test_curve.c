/*  test_curve - unit tests for proto_curve.

    Keys: Z85 decoding against libzmq's own encoder, the settings as Z85
    text or file:PATH (trailing whitespace ignored), every bad form (length,
    alphabet, an overflowing group, a missing or wrong file) refused with a
    line naming the variable and never the secret, the pairs (a missing
    half, a public key derived, a given one checked), the allowlist
    (our own client key, BUS_CURVE_CLIENTS inline and from files).

    Sockets, in one context and one libev loop: a ROUTER made a CURVE
    server by proto_curve_bind_opts and guarded by proto_curve_guard's ZAP
    handler takes a message from a DEALER with an allowed client key, and
    none from a DEALER with a stranger's key (counted as refused, logged
    once per address) or without CURVE (a failed handshake, as the bus's
    monitor reports it); a DEALER given CURVE options and then an ipc
    endpoint speaks plain to a plain ipc ROUTER.
*/
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>
#include <zmq.h>

#include "proto_curve.h"
#include "proto_log.h"
#include "proto_util.h"
#include "t_loop.h"

#define T_Z85 (PROTO_CURVE_Z85_LEN + 1)

//  A fresh key pair from libzmq.
typedef struct {
    char public[T_Z85]; // Z85
    char secret[T_Z85]; // Z85
} t_pair_t;

static void
t_pair(t_pair_t *pair)
{
    assert_int_equal(zmq_curve_keypair(pair->public, pair->secret), 0);
}

//  A private directory for key files, removed by t_rmdir.
static void
t_mkdir(char *dir, size_t cap)
{
    proto_strlcpy(dir, "/tmp/sy-curve-XXXXXX", cap);
    assert_non_null(mkdtemp(dir));
}

static void
t_write(const char *dir, const char *name, const char *text, char *path, size_t cap)
{
    snprintf(path, cap, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void
t_rmdir(const char *dir, const char *const *names)
{
    for (size_t i = 0; names[i]; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

//  --------------------------------------------------------------------------
//  Keys

static void
test_z85_decode(void **state)
{
    (void) state;
    // ZeroMQ RFC 32's example: 86 4F D2 6F B5 59 F7 5B is "HelloWorld"
    const uint8_t hello[8] = {0x86, 0x4F, 0xD2, 0x6F, 0xB5, 0x59, 0xF7, 0x5B};
    uint8_t key[PROTO_CURVE_KEY_BYTES];
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWorld", key), 0);
    for (int i = 0; i < 4; i++)
        assert_memory_equal(key + 8 * i, hello, 8);
    // as libzmq decodes, for many keys
    for (int i = 0; i < 50; i++) {
        t_pair_t pair;
        t_pair(&pair);
        uint8_t theirs[PROTO_CURVE_KEY_BYTES];
        assert_non_null(zmq_z85_decode(theirs, pair.secret));
        assert_int_equal(proto_curve_z85_decode(pair.secret, key), 0);
        assert_memory_equal(key, theirs, sizeof key);
    }
    // all 85 characters are digits; the highest group value fits 32 bits
    assert_int_equal(proto_curve_z85_decode("%nSc0%nSc0%nSc0%nSc0%nSc0%nSc0%nSc0%nSc0", key), 0);
    for (int i = 0; i < 32; i++)
        assert_int_equal(key[i], 0xff);
    // not 40 characters, a character outside the alphabet, a group over 2^32 - 1
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWorl", key), -1);
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWorldH", key), -1);
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWor d", key), -1);
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWor,d", key), -1);
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWor\"d", key), -1);
    assert_int_equal(proto_curve_z85_decode("HelloWorldHelloWorldHelloWorldHelloWor~d", key), -1);
    assert_int_equal(proto_curve_z85_decode("%nSc1HelloWorldHelloWorldHelloWorldHello", key), -1);
    assert_int_equal(proto_curve_z85_decode("#####HelloWorldHelloWorldHelloWorldHello", key), -1);
    assert_int_equal(proto_curve_z85_decode("", key), -1);
    assert_int_equal(proto_curve_z85_decode(NULL, key), -1);
}

static void
test_key_read_text_and_file(void **state)
{
    (void) state;
    t_pair_t pair;
    t_pair(&pair);
    char z85[T_Z85], err[512];
    uint8_t key[PROTO_CURVE_KEY_BYTES], want[PROTO_CURVE_KEY_BYTES];
    assert_non_null(zmq_z85_decode(want, pair.public));

    assert_int_equal(proto_curve_key_read("K", pair.public, false, z85, key, err, sizeof err), 0);
    assert_string_equal(z85, pair.public);
    assert_memory_equal(key, want, sizeof key);

    // a file, trailing whitespace ignored (a mounted secret ends with a newline)
    char dir[64], path[256], value[300], text[64];
    t_mkdir(dir, sizeof dir);
    snprintf(text, sizeof text, "%s\n \t\r\n", pair.public);
    t_write(dir, "key", text, path, sizeof path);
    snprintf(value, sizeof value, "file:%s", path);
    memset(z85, 0, sizeof z85);
    assert_int_equal(proto_curve_key_read("K", value, true, z85, NULL, err, sizeof err), 0);
    assert_string_equal(z85, pair.public);

    // leading whitespace is not ignored, nor a second key
    snprintf(text, sizeof text, " %s", pair.public);
    t_write(dir, "lead", text, path, sizeof path);
    snprintf(value, sizeof value, "file:%s", path);
    assert_int_equal(proto_curve_key_read("K", value, false, z85, NULL, err, sizeof err), -1);
    const char *names[] = {"key", "lead", NULL};
    t_rmdir(dir, names);
}

//  err names name, and holds neither secret nor (when given) a file's content.
static void
t_refused(
    const char *name, const char *value, bool secret, const char *must_show, const char *never_show)
{
    char z85[T_Z85], err[512] = "";
    assert_int_equal(proto_curve_key_read(name, value, secret, z85, NULL, err, sizeof err), -1);
    if (strstr(err, name) == NULL || (must_show && strstr(err, must_show) == NULL)
        || (never_show && strstr(err, never_show) != NULL))
        fail_msg("%s='%s': %s", name, value, err);
}

static void
test_key_read_refuses(void **state)
{
    (void) state;
    t_pair_t pair;
    t_pair(&pair);
    char shorter[T_Z85], odd[T_Z85];
    snprintf(shorter, sizeof shorter, "%.39s", pair.secret);
    snprintf(odd, sizeof odd, "%.39s~", pair.secret);
    // a public value is quoted, a secret never: "(secret)"
    t_refused("BUS_CURVE_SERVER_PUBLIC", "tooshort", false, "'tooshort'", NULL);
    t_refused("BUS_CURVE_SERVER_SECRET", shorter, true, "(secret)", shorter);
    t_refused("BUS_CURVE_SERVER_SECRET", odd, true, "(secret)", "~");
    t_refused("BUS_CURVE_CLIENT_SECRET", "s3cret-but-short", true, "(secret)", "s3cret");
    t_refused("BUS_CURVE_CLIENT_SECRET", "", true, "missing", NULL);
    // a missing file: its path and why; a file that holds no key: never its content
    t_refused("BUS_CURVE_CLIENT_SECRET", "file:/nonexistent/client.secret", true,
              "file:/nonexistent/client.secret", NULL);
    t_refused("BUS_CURVE_CLIENT_SECRET", "file:/nonexistent/client.secret", true, strerror(ENOENT),
              NULL);
    char dir[64], path[256], value[300], text[128];
    t_mkdir(dir, sizeof dir);
    snprintf(text, sizeof text, "%s%s\n", pair.secret, pair.secret);
    t_write(dir, "two", text, path, sizeof path);
    snprintf(value, sizeof value, "file:%s", path);
    t_refused("BUS_CURVE_SERVER_SECRET", value, true, value, pair.secret);
    t_write(dir, "empty", "", path, sizeof path);
    snprintf(value, sizeof value, "file:%s", path);
    t_refused("BUS_CURVE_SERVER_SECRET", value, true, "does not hold a CURVE key", NULL);
    t_refused("BUS_CURVE_SERVER_SECRET", "file:/tmp", true, "cannot read", NULL); // a directory
    const char *names[] = {"two", "empty", NULL};
    t_rmdir(dir, names);
}

//  --------------------------------------------------------------------------
//  Settings

//  proto_curve_new fails, naming name, with neither secret in the line.
static void
t_new_fails(const proto_curve_settings_t *s, bool server, const char *name)
{
    proto_curve_t *curve = (proto_curve_t *) 1;
    char err[512] = "";
    assert_int_equal(proto_curve_new(s, server, &curve, err, sizeof err), -1);
    assert_null(curve);
    if (strstr(err, name) == NULL
        || (s->server_secret && strlen(s->server_secret) > 8 && strstr(err, s->server_secret))
        || (s->client_secret && strlen(s->client_secret) > 8 && strstr(err, s->client_secret)))
        fail_msg("expected a line naming %s: %s", name, err);
}

static void
test_settings_pairs(void **state)
{
    (void) state;
    t_pair_t server, client;
    t_pair(&server);
    t_pair(&client);
    char err[512];
    proto_curve_t *curve = (proto_curve_t *) 1;

    // nothing set: a plain bus
    proto_curve_settings_t none = {0};
    assert_int_equal(proto_curve_new(&none, true, &curve, err, sizeof err), 0);
    assert_null(curve);
    proto_curve_settings_t empty = {.server_secret = "", .clients = ""};
    assert_int_equal(proto_curve_new(&empty, true, &curve, err, sizeof err), 0);
    assert_null(curve);

    // an actor: both secrets; the public keys derived
    proto_curve_settings_t actor = {.server_secret = server.secret, .client_secret = client.secret};
    assert_int_equal(proto_curve_new(&actor, true, &curve, err, sizeof err), 0);
    assert_non_null(curve);
    assert_true(proto_curve_is_server(curve));
    assert_string_equal(proto_curve_server_public(curve), server.public);
    assert_string_equal(proto_curve_client_public(curve), client.public);
    assert_int_equal(proto_curve_allowed_count(curve), 1);
    proto_curve_t *copy = proto_curve_dup(curve);
    proto_curve_destroy(&curve);
    assert_null(curve);
    proto_curve_destroy(&curve); // twice is fine
    assert_string_equal(proto_curve_client_public(copy), client.public);
    proto_curve_destroy(&copy);
    assert_null(proto_curve_dup(NULL));

    // public keys given too: checked against the secrets
    proto_curve_settings_t both = {.server_secret = server.secret,
                                   .server_public = server.public,
                                   .client_secret = client.secret,
                                   .client_public = client.public};
    assert_int_equal(proto_curve_new(&both, true, &curve, err, sizeof err), 0);
    proto_curve_destroy(&curve);
    proto_curve_settings_t swapped = both;
    swapped.server_public = client.public;
    t_new_fails(&swapped, true, "BUS_CURVE_SERVER_PUBLIC");
    swapped = both;
    swapped.client_public = server.public;
    t_new_fails(&swapped, true, "BUS_CURVE_CLIENT_PUBLIC");

    // one half of what is needed
    proto_curve_settings_t half = {.client_secret = client.secret};
    t_new_fails(&half, true, "BUS_CURVE_SERVER_SECRET");
    half = (proto_curve_settings_t){.server_secret = server.secret};
    t_new_fails(&half, true, "BUS_CURVE_CLIENT_SECRET");
    half = (proto_curve_settings_t){.clients = client.public};
    t_new_fails(&half, true, "BUS_CURVE_SERVER_SECRET");
    // an actor cannot bind with only the server's public key
    half = (proto_curve_settings_t){.server_public = server.public, .client_secret = client.secret};
    t_new_fails(&half, true, "BUS_CURVE_SERVER_SECRET");
    // a bad value is named before a missing one
    half = (proto_curve_settings_t){.client_secret = "not-a-key-s3cret"};
    t_new_fails(&half, true, "BUS_CURVE_CLIENT_SECRET");

    // the CLI (client only): the server's public key, or its secret
    proto_curve_settings_t cli = {.server_public = server.public, .client_secret = client.secret};
    assert_int_equal(proto_curve_new(&cli, false, &curve, err, sizeof err), 0);
    assert_false(proto_curve_is_server(curve));
    assert_string_equal(proto_curve_server_public(curve), server.public);
    proto_curve_destroy(&curve);
    cli = (proto_curve_settings_t){.server_secret = server.secret, .client_secret = client.secret};
    assert_int_equal(proto_curve_new(&cli, false, &curve, err, sizeof err), 0);
    assert_string_equal(proto_curve_server_public(curve), server.public);
    proto_curve_destroy(&curve);
    cli = (proto_curve_settings_t){.client_secret = client.secret};
    t_new_fails(&cli, false, "BUS_CURVE_SERVER_PUBLIC");
    cli = (proto_curve_settings_t){.server_public = server.public};
    t_new_fails(&cli, false, "BUS_CURVE_CLIENT_SECRET");
}

static void
test_settings_allowlist(void **state)
{
    (void) state;
    t_pair_t server, client, op1, op2, op3, op4, stranger;
    t_pair(&server);
    t_pair(&client);
    t_pair(&op1);
    t_pair(&op2);
    t_pair(&op3);
    t_pair(&op4);
    t_pair(&stranger);
    char dir[64], path[256], text[512], list[1024], err[512];
    t_mkdir(dir, sizeof dir);
    // a file of several keys, one a line (a ConfigMap)
    snprintf(text, sizeof text, "%s\n%s\n", op3.public, op4.public);
    t_write(dir, "operators", text, path, sizeof path);
    snprintf(list, sizeof list, "%s, %s,,file:%s", op1.public, op2.public, path);
    proto_curve_settings_t s = {
        .server_secret = server.secret, .client_secret = client.secret, .clients = list};
    proto_curve_t *curve = NULL;
    assert_int_equal(proto_curve_new(&s, true, &curve, err, sizeof err), 0);
    assert_int_equal(proto_curve_allowed_count(curve), 5);
    const t_pair_t *in[] = {&client, &op1, &op2, &op3, &op4};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(in); i++) {
        uint8_t key[PROTO_CURVE_KEY_BYTES];
        assert_int_equal(proto_curve_z85_decode(in[i]->public, key), 0);
        assert_true(proto_curve_allows(curve, key));
    }
    uint8_t key[PROTO_CURVE_KEY_BYTES];
    assert_int_equal(proto_curve_z85_decode(stranger.public, key), 0);
    assert_false(proto_curve_allows(curve, key));
    assert_int_equal(proto_curve_z85_decode(server.public, key), 0);
    assert_false(proto_curve_allows(curve, key)); // the server's key is no client's
    proto_curve_destroy(&curve);

    // a bad item: the variable, the value and the item's place
    snprintf(list, sizeof list, "%s,notakey", op1.public);
    s.clients = list;
    char e2[512] = "";
    assert_int_equal(proto_curve_new(&s, true, &curve, e2, sizeof e2), -1);
    assert_non_null(strstr(e2, "BUS_CURVE_CLIENTS"));
    assert_non_null(strstr(e2, "item 2"));
    assert_non_null(strstr(e2, "notakey'"));
    snprintf(list, sizeof list, "file:%s/none", dir);
    assert_int_equal(proto_curve_new(&s, true, &curve, e2, sizeof e2), -1);
    assert_non_null(strstr(e2, "BUS_CURVE_CLIENTS"));
    assert_non_null(strstr(e2, strerror(ENOENT)));
    // a file of keys names no more files
    snprintf(text, sizeof text, "%s\nfile:%s\n", op3.public, path);
    t_write(dir, "nested", text, path, sizeof path);
    snprintf(list, sizeof list, "file:%s", path);
    assert_int_equal(proto_curve_new(&s, true, &curve, e2, sizeof e2), -1);
    assert_non_null(strstr(e2, "item 2 of a file"));
    const char *names[] = {"operators", "nested", NULL};
    t_rmdir(dir, names);
}

//  --------------------------------------------------------------------------
//  Sockets

typedef struct {
    void *ctx;                  // this test's context
    struct ev_loop *loop;       // this test's loop
    proto_curve_t *curve;       // the fleet's keys, as an actor holds them
    proto_curve_guard_t *guard; // ZAP handler in ctx
    void *router;               // CURVE server on tcp
    char endpoint[64];          // where it is bound
    t_pair_t server, client;    // the fleet's pairs
    void *socks[8];             // the test's sockets, closed in teardown
    size_t nsocks;              // how many
    proto_curve_t *other;       // a stranger's keys, or NULL
    ev_timer tick;              // wakes the loop: the test's own sockets have no watcher
} fixture_t;

static void
s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
}

static int
s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    *state = fx;
    t_pair(&fx->server);
    t_pair(&fx->client);
    proto_curve_settings_t s = {.server_secret = fx->server.secret,
                                .client_secret = fx->client.secret};
    char err[512];
    assert_int_equal(proto_curve_new(&s, true, &fx->curve, err, sizeof err), 0);
    fx->ctx = zmq_ctx_new();
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    ev_timer_init(&fx->tick, s_on_tick, 0.005, 0.005);
    ev_timer_start(fx->loop, &fx->tick);
    fx->guard = proto_curve_guard_new(fx->loop, fx->ctx, fx->curve, err, sizeof err);
    assert_non_null(fx->guard);
    fx->router = zmq_socket(fx->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(fx->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(proto_curve_bind_opts(fx->curve, fx->router, "tcp://127.0.0.1:*"), 0);
    assert_int_equal(zmq_bind(fx->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fx->endpoint;
    zmq_getsockopt(fx->router, ZMQ_LAST_ENDPOINT, fx->endpoint, &len);
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    for (size_t i = 0; i < fx->nsocks; i++)
        zmq_close(fx->socks[i]);
    zmq_close(fx->router);
    proto_curve_guard_destroy(&fx->guard);
    proto_curve_destroy(&fx->other);
    zmq_ctx_term(fx->ctx);
    ev_timer_stop(fx->loop, &fx->tick);
    ev_loop_destroy(fx->loop);
    proto_curve_destroy(&fx->curve);
    free(fx);
    return 0;
}

//  A socket of the test (linger 0), closed by the teardown.
static void *
s_socket(fixture_t *fx, int type)
{
    assert_true(fx->nsocks < PROTO_ARRAY_SIZE(fx->socks));
    void *sock = zmq_socket(fx->ctx, type);
    assert_non_null(sock);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    fx->socks[fx->nsocks++] = sock;
    return sock;
}

//  A DEALER in the fixture's context with the CURVE options of curve (NULL:
//  none), connected to endpoint, that sends one message.
static void *
s_dealer(fixture_t *fx, const proto_curve_t *curve, const char *endpoint)
{
    void *dealer = s_socket(fx, ZMQ_DEALER);
    assert_int_equal(proto_curve_connect_opts(curve, dealer, endpoint), 0);
    assert_int_equal(zmq_connect(dealer, endpoint), 0);
    assert_int_equal(zmq_send(dealer, "hello", 5, ZMQ_DONTWAIT), 5); // queued until connected
    return dealer;
}

typedef struct {
    fixture_t *fx;     // the loop
    void *sock;        // read this
    int received;      // messages taken
    const uint64_t *n; // or wait for this counter
} s_wait_t;

static bool
s_got(void *arg)
{
    s_wait_t *w = arg;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (zmq_msg_recv(&msg, w->sock, ZMQ_DONTWAIT) >= 0)
        if (!zmq_msg_more(&msg))
            w->received++;
    zmq_msg_close(&msg);
    return w->received > 0;
}

static bool
s_counted(void *arg)
{
    s_wait_t *w = arg;
    return *w->n > 0;
}

//  A client this process's own key lets in; a stranger's is refused by ZAP.
static void
test_zap_allows_and_refuses(void **state)
{
    fixture_t *fx = *state;
    s_dealer(fx, fx->curve, fx->endpoint);
    s_wait_t w = {.fx = fx, .sock = fx->router};
    assert_true(t_loop_until(fx->loop, s_got, &w, 5.0));
    assert_int_equal(*proto_curve_guard_refused(fx->guard), 0);

    // a stranger: its own pair, the right server key
    t_pair_t stranger;
    t_pair(&stranger);
    proto_curve_settings_t s = {.server_public = fx->server.public,
                                .client_secret = stranger.secret};
    char err[512];
    assert_int_equal(proto_curve_new(&s, false, &fx->other, err, sizeof err), 0);
    // the lines go to a file, to be counted
    FILE *log = tmpfile();
    assert_non_null(log);
    proto_log_setup("test", "curve", PROTO_LOG_WARN, PROTO_LOG_JSON, fileno(log));
    for (int i = 0; i < 3; i++) {
        s_dealer(fx, fx->other, fx->endpoint);
        s_wait_t r = {.fx = fx, .n = proto_curve_guard_refused(fx->guard)};
        assert_true(t_loop_until(fx->loop, s_counted, &r, 5.0));
    }
    t_loop_pass(fx->loop, 0.3);
    assert_int_equal(*proto_curve_guard_refused(fx->guard), 3);
    w.received = 0;
    assert_false(s_got(&w)); // none of theirs arrived
    assert_int_equal(*proto_curve_guard_failed(fx->guard), 0);

    // one line for the three: the address, the key's first 8 characters
    proto_log_setup("test", "curve", PROTO_LOG_WARN, PROTO_LOG_JSON, STDERR_FILENO);
    char text[4096] = "", prefix[64];
    rewind(log);
    size_t len = fread(text, 1, sizeof text - 1, log);
    text[len] = '\0';
    fclose(log);
    int lines = 0;
    for (const char *p = text; (p = strstr(p, "bus peer refused")) != NULL; p++)
        lines++;
    assert_int_equal(lines, 1);
    assert_non_null(strstr(text, "\"address\":\"127.0.0.1\""));
    snprintf(prefix, sizeof prefix, "\"client\":\"%.8s\"", stranger.public);
    if (strstr(text, prefix) == NULL)
        fail_msg("no %s in %s", prefix, text);
    assert_null(strstr(text, stranger.public)); // only its start
}

//  A peer without CURVE never gets a message through; the handshake
//  failure reaches the guard as the bus's monitor reports it.
static void
test_plain_peer_fails_handshake(void **state)
{
    fixture_t *fx = *state;
    s_dealer(fx, NULL, fx->endpoint);
    t_loop_pass(fx->loop, 0.3);
    s_wait_t w = {.fx = fx, .sock = fx->router};
    assert_false(s_got(&w));
    assert_int_equal(*proto_curve_guard_refused(fx->guard), 0); // ZAP never saw it

    // monitor events as proto_monitor names them
    proto_curve_guard_event(fx->guard, "router", true, "handshake_failed", fx->endpoint,
                            ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH);
    proto_curve_guard_event(fx->guard, "router", true, "handshake_failed", fx->endpoint, 104);
    proto_curve_guard_event(fx->guard, "router", true, "handshake_failed_auth", fx->endpoint, 400);
    proto_curve_guard_event(fx->guard, "dealer.router", false, "handshake_failed_auth",
                            "tcp://10.0.0.1:7100", 400);
    proto_curve_guard_event(fx->guard, "router", true, "accepted", fx->endpoint, 12);
    // the auth failure on our own bound socket is our ZAP's refusal: not counted twice
    assert_int_equal(*proto_curve_guard_failed(fx->guard), 3);
}

//  A socket given CURVE options for a tcp peer speaks plain to an ipc one.
static void
test_ipc_stays_plain(void **state)
{
    fixture_t *fx = *state;
    char dir[64], endpoint[128];
    t_mkdir(dir, sizeof dir);
    snprintf(endpoint, sizeof endpoint, "ipc://%s/plain.req", dir);
    void *router = s_socket(fx, ZMQ_ROUTER);
    assert_int_equal(proto_curve_bind_opts(fx->curve, router, endpoint), 0); // no change
    assert_int_equal(zmq_bind(router, endpoint), 0);
    void *dealer = s_socket(fx, ZMQ_DEALER);
    assert_int_equal(proto_curve_connect_opts(fx->curve, dealer, fx->endpoint), 0);
    assert_int_equal(zmq_connect(dealer, fx->endpoint), 0);
    assert_int_equal(proto_curve_connect_opts(fx->curve, dealer, endpoint), 0);
    assert_int_equal(zmq_connect(dealer, endpoint), 0);
    // one message to each (DEALER round-robins over connected peers)
    assert_int_equal(zmq_send(dealer, "a", 1, ZMQ_DONTWAIT), 1);
    assert_int_equal(zmq_send(dealer, "b", 1, ZMQ_DONTWAIT), 1);
    s_wait_t on_ipc = {.fx = fx, .sock = router}, on_tcp = {.fx = fx, .sock = fx->router};
    assert_true(t_loop_until(fx->loop, s_got, &on_ipc, 5.0));
    assert_true(t_loop_until(fx->loop, s_got, &on_tcp, 5.0));
    assert_int_equal(*proto_curve_guard_failed(fx->guard), 0);
    assert_int_equal(*proto_curve_guard_refused(fx->guard), 0);
    char path[128];
    snprintf(path, sizeof path, "%s/plain.req", dir);
    unlink(path);
    rmdir(dir);
}

int
main(void)
{
    proto_log_setup("test", "curve", PROTO_LOG_WARN, PROTO_LOG_JSON, STDERR_FILENO);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_z85_decode),
        cmocka_unit_test(test_key_read_text_and_file),
        cmocka_unit_test(test_key_read_refuses),
        cmocka_unit_test(test_settings_pairs),
        cmocka_unit_test(test_settings_allowlist),
        cmocka_unit_test_setup_teardown(test_zap_allows_and_refuses, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_plain_peer_fails_handshake, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ipc_stays_plain, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests_name("test_curve", tests, NULL, NULL);
    proto_log_shutdown();
    return rc;
}
