/*  test_bus - unit tests for proto_bus: what dispatch lets through, by the
    SOCKET column of messages.def, and the counters an actor adds to pong.

    One bus per test, on its own libev loop, bound in a private BUS_DIR. The
    test plays the bus's neighbours with its own ZeroMQ sockets: a client
    DEALER connected to the bus's ROUTER (requests in), and a fake healthd,
    a ROUTER and an XPUB bound as healthd.<ppid>.req/.pub in the same
    BUS_DIR, which discovery finds (the parent's pid is alive and not ours),
    so the bus connects its DEALER (requests out) and SUB (events in) to them.

    The bus handles decide (a ROUTER type: requests only) and config.changed
    (an XPUB type: events only); each test sends one of them, or a reply, on
    a socket messages.def does not allow and checks that no handler or
    callback saw it and that pong counts it. Every wait runs the loop in
    short slices and fails at a 5 s deadline.

    How an actor reports its own counters, in short:
        proto_bus_counter(bus, "picks", &self->picks);   // once, at start
        self->picks++;                                   // as it happens
    and every pong carries picks with its value of the moment.
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

#include "proto.h"
#include "proto_bus.h"
#include "proto_log.h"
#include "proto_util.h"

#define DEADLINE_MS 5000 // no wait in this file may take longer
#define SLICE_MS    5    // the loop runs in slices this long between checks

//  Per-test state: the fixture creates and destroys all of it.
typedef struct {
    char dir[32];            // private temp directory
    char bus_dir[96];        // <dir>/bus
    struct ev_loop *loop;    // the bus's loop
    proto_bus_t *bus;        // under test, kind "router"
    void *ctx;               // the test's own sockets
    void *client;            // DEALER to the bus's ROUTER
    void *fake_req;          // ROUTER bound as healthd.<ppid>.req
    void *fake_pub;          // XPUB bound as healthd.<ppid>.pub
    char fake_paths[2][128]; // their ipc files
    int decides;             // decide handler calls
    int changes;             // config.changed handler calls
    uint64_t last_version;   // version of the last config.changed handled
    bool wrong_from;         // a handler saw a kind of socket it should not
    int replies;             // reply callback calls
    proto_type_t reply;      // type of the last reply (PROTO_NONE: the deadline)
    int chat_ins;            // chat.in handler calls (addressed to us)
    char subs[4][16];        // addressed subscribers seen, "+name" or "-name", in order
    int nsubs;               // how many
} fixture_t;

// --------------------------------------------------------------------------
// Handlers

static void
s_on_decide(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    fixture_t *fx = arg;
    fx->decides++;
    if (in->from != PROTO_FROM_REQUEST)
        fx->wrong_from = true;
}

static void
s_on_changed(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    fixture_t *fx = arg;
    fx->changes++;
    fx->last_version = in->msg.config_changed.version;
    if (in->from != PROTO_FROM_EVENT)
        fx->wrong_from = true;
}

static void
s_on_reply(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    fixture_t *fx = arg;
    fx->replies++;
    fx->reply = in ? in->msg.type : PROTO_NONE;
}

static void
s_on_chat_in(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    (void) in;
    fixture_t *fx = arg;
    fx->chat_ins++;
}

static void
s_on_subscriber(proto_bus_t *bus, const char *instance, bool subscribed, void *arg)
{
    (void) bus;
    fixture_t *fx = arg;
    if (fx->nsubs < 4)
        snprintf(fx->subs[fx->nsubs++], sizeof fx->subs[0], "%c%s", subscribed ? '+' : '-',
                 instance);
}

// --------------------------------------------------------------------------
// Fixture and helpers

static void *
s_socket(fixture_t *fx, int type, const char *endpoint, bool bind)
{
    void *sock = zmq_socket(fx->ctx, type);
    assert_non_null(sock);
    int linger = 0;
    assert_int_equal(zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger), 0);
    if (bind)
        assert_int_equal(zmq_bind(sock, endpoint), 0);
    else
        assert_int_equal(zmq_connect(sock, endpoint), 0);
    return sock;
}

static int
s_setup(void **state)
{
    fixture_t *fx = proto_xcalloc(1, sizeof *fx);
    *state = fx;
    snprintf(fx->dir, sizeof fx->dir, "/tmp/test-bus-XXXXXX");
    if (mkdtemp(fx->dir) == NULL)
        return -1;
    snprintf(fx->bus_dir, sizeof fx->bus_dir, "%s/bus", fx->dir);
    if (mkdir(fx->bus_dir, 0755) != 0)
        return -1;
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    fx->ctx = zmq_ctx_new();
    if (fx->loop == NULL || fx->ctx == NULL)
        return -1;

    // the fake healthd, bound before the bus looks for it
    char ep[160];
    int ppid = (int) getppid();
    snprintf(fx->fake_paths[0], sizeof fx->fake_paths[0], "%s/healthd.%d.req", fx->bus_dir, ppid);
    snprintf(fx->fake_paths[1], sizeof fx->fake_paths[1], "%s/healthd.%d.pub", fx->bus_dir, ppid);
    snprintf(ep, sizeof ep, "ipc://%s", fx->fake_paths[0]);
    fx->fake_req = s_socket(fx, ZMQ_ROUTER, ep, true);
    snprintf(ep, sizeof ep, "ipc://%s", fx->fake_paths[1]);
    fx->fake_pub = s_socket(fx, ZMQ_XPUB, ep, true);

    char err[256];
    proto_bus_config_t cfg = {
        .kind = "router",
        .instance = "t1",
        .region = "eu",
        .bus_dir = fx->bus_dir,
        .stats_interval_ms = 60000,
    };
    fx->bus = proto_bus_new(fx->loop, &cfg, err, sizeof err);
    if (fx->bus == NULL)
        return -1;
    proto_bus_on(fx->bus, PROTO_DECIDE, s_on_decide, fx);
    proto_bus_on(fx->bus, PROTO_CONFIG_CHANGED, s_on_changed, fx);
    proto_bus_on(fx->bus, PROTO_CHAT_IN, s_on_chat_in, fx);
    if (proto_bus_on_subscriber(fx->bus, PROTO_CHAT_OUT, s_on_subscriber, fx) != 0)
        return -1;
    static const char *const topics[] = {"config.changed", "decide", "chat.in@t1;", NULL};
    if (proto_bus_use(fx->bus, PROTO_KIND_HEALTHD, true, topics, err, sizeof err) != 0
        || proto_bus_start(fx->bus, err, sizeof err) != 0) {
        fprintf(stderr, "bus: %s\n", err);
        return -1;
    }
    snprintf(ep, sizeof ep, "ipc://%s/router.%d.req", fx->bus_dir, (int) getpid());
    fx->client = s_socket(fx, ZMQ_DEALER, ep, false);
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    proto_bus_destroy(&fx->bus);
    void *socks[] = {fx->client, fx->fake_req, fx->fake_pub};
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(socks); i++)
        if (socks[i])
            zmq_close(socks[i]);
    if (fx->ctx)
        zmq_ctx_term(fx->ctx);
    if (fx->loop)
        ev_loop_destroy(fx->loop);
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(fx->fake_paths); i++)
        if (fx->fake_paths[i][0])
            unlink(fx->fake_paths[i]);
    rmdir(fx->bus_dir);
    rmdir(fx->dir);
    free(fx);
    *state = NULL;
    return 0;
}

static void
s_on_slice(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    ev_break(loop, EVBREAK_ALL);
}

//  Run the bus's loop for one slice.
static void
s_slice(fixture_t *fx)
{
    ev_timer t;
    ev_timer_init(&t, s_on_slice, SLICE_MS / 1000., 0.);
    ev_now_update(fx->loop);
    ev_timer_start(fx->loop, &t);
    ev_run(fx->loop, 0);
    ev_timer_stop(fx->loop, &t);
}

static uint64_t
s_now_ms(void)
{
    return proto_mono_us() / 1000;
}

//  Encode msg (envelope: src "test/t", ts now; id as set) and send it as
//  the last of the frames given (first may be NULL).
static void
s_send(void *sock, const void *first, size_t first_len, proto_msg_t *msg)
{
    proto_buf_t buf = {0};
    msg->src = "test/t";
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    assert_int_equal(proto_encode(msg, &buf), 0);
    if (first)
        assert_true(zmq_send(sock, first, first_len, ZMQ_SNDMORE) >= 0);
    assert_true(zmq_send(sock, buf.data, buf.size, 0) >= 0);
    proto_buf_free(&buf);
}

//  Receive one message without waiting: its last frame decoded into msg
//  (initialised: the decoder clears it first), its first (a ROUTER's
//  identity) into first if not NULL. True if one was there.
static bool
s_try_recv(void *sock, proto_msg_t *msg, uint8_t *first, size_t *first_len)
{
    zmq_msg_t part;
    zmq_msg_init(&part);
    if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&part);
        return false;
    }
    if (first) {
        *first_len = zmq_msg_size(&part);
        assert_true(*first_len <= PROTO_BUS_IDENTITY);
        memcpy(first, zmq_msg_data(&part), *first_len);
        assert_true(zmq_msg_more(&part));
        zmq_msg_close(&part);
        zmq_msg_init(&part);
        assert_true(zmq_msg_recv(&part, sock, 0) >= 0);
    }
    assert_false(zmq_msg_more(&part));
    assert_int_equal(proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), msg), 0);
    zmq_msg_close(&part);
    return true;
}

//  Ping the bus from the client and return its pong in pong.
static void
s_ping(fixture_t *fx, proto_msg_t *pong)
{
    proto_msg_t ping;
    proto_msg_init(&ping, PROTO_PING);
    ping.id = 77;
    s_send(fx->client, NULL, 0, &ping);
    proto_msg_init(pong, PROTO_NONE);
    uint64_t deadline = s_now_ms() + DEADLINE_MS;
    while (!s_try_recv(fx->client, pong, NULL, NULL)) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(pong->type, PROTO_PONG);
    assert_int_equal(pong->id, 77);
}

//  A counter of a pong, or UINT64_MAX if absent; its index in *at.
static uint64_t
s_counter(const proto_msg_t *pong, const char *name, size_t *at)
{
    for (uint32_t i = 0; i < pong->pong.counters_count; i++)
        if (strcmp(pong->pong.counters[i].name, name) == 0) {
            if (at)
                *at = i;
            return pong->pong.counters[i].value;
        }
    return UINT64_MAX;
}

//  Publish config.changed with this version from the fake healthd.
static void
s_publish_changed(fixture_t *fx, uint64_t version)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_CONFIG_CHANGED);
    msg.config_changed.version = version;
    s_send(fx->fake_pub, "config.changed", strlen("config.changed"), &msg);
}

// --------------------------------------------------------------------------
// Tests

//  On our ROUTER: a request type reaches its handler, an event type does not.
static void
test_event_type_as_request(void **state)
{
    fixture_t *fx = *state;
    proto_msg_t msg, pong;
    proto_msg_init(&msg, PROTO_CONFIG_CHANGED);
    msg.config_changed.version = 9;
    s_send(fx->client, NULL, 0, &msg);
    proto_msg_init(&msg, PROTO_DECIDE);
    msg.decide.host = "a.example";
    msg.decide.region = "eu";
    msg.decide.gw_region = "eu";
    s_send(fx->client, NULL, 0, &msg);
    // one pipe keeps the order: once decide is handled, config.changed was seen
    uint64_t deadline = s_now_ms() + DEADLINE_MS;
    while (fx->decides == 0) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(fx->changes, 0);
    assert_false(fx->wrong_from);
    s_ping(fx, &pong);
    assert_int_equal(s_counter(&pong, "dropped.unexpected", NULL), 1);
    proto_msg_clear(&pong);
}

//  On a SUB: an event type reaches its handler, a request type does not.
static void
test_request_type_as_event(void **state)
{
    fixture_t *fx = *state;
    // until the subscription has reached the publisher, events are lost
    uint64_t deadline = s_now_ms() + DEADLINE_MS;
    for (uint64_t v = 1; fx->changes == 0; v++) {
        assert_true(s_now_ms() < deadline);
        s_publish_changed(fx, v);
        s_slice(fx);
    }
    proto_msg_t msg, pong;
    proto_msg_init(&msg, PROTO_DECIDE);
    msg.decide.host = "a.example";
    msg.decide.region = "eu";
    msg.decide.gw_region = "eu";
    s_send(fx->fake_pub, "decide", strlen("decide"), &msg);
    s_publish_changed(fx, 1000000);
    while (fx->last_version != 1000000) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(fx->decides, 0);
    assert_false(fx->wrong_from);
    s_ping(fx, &pong);
    assert_int_equal(s_counter(&pong, "dropped.unexpected", NULL), 1);
    proto_msg_clear(&pong);
}

//  On a DEALER: a reply of an event type is dropped and leaves the request
//  waiting; a reply matching no request is late, even of a handled type;
//  error is a reply like any other.
static void
test_replies(void **state)
{
    fixture_t *fx = *state;
    proto_msg_t req, msg, pong;
    proto_msg_init(&req, PROTO_PING);
    uint64_t deadline = s_now_ms() + DEADLINE_MS;
    // ZMQ_IMMEDIATE: nothing is sent until discovery has connected the DEALER
    while (proto_bus_request(fx->bus, PROTO_KIND_HEALTHD, &req, DEADLINE_MS, s_on_reply, fx) != 0) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    uint8_t identity[PROTO_BUS_IDENTITY];
    size_t identity_len = 0;
    proto_msg_init(&msg, PROTO_NONE);
    while (!s_try_recv(fx->fake_req, &msg, identity, &identity_len)) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(msg.type, PROTO_PING);
    uint64_t id = msg.id;
    proto_msg_clear(&msg);

    proto_msg_init(&msg, PROTO_CONFIG_CHANGED); // an event type as the reply
    msg.id = id;
    msg.config_changed.version = 5;
    s_send(fx->fake_req, identity, identity_len, &msg);
    proto_msg_init(&msg, PROTO_DECIDE); // a handled type, matching no request
    msg.id = id + 1;
    msg.decide.host = "a.example";
    msg.decide.region = "eu";
    msg.decide.gw_region = "eu";
    s_send(fx->fake_req, identity, identity_len, &msg);
    proto_msg_init(&msg, PROTO_ERROR); // the real answer
    msg.id = id;
    msg.error.code = "unavailable";
    s_send(fx->fake_req, identity, identity_len, &msg);
    while (fx->replies == 0) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(fx->replies, 1);
    assert_int_equal(fx->reply, PROTO_ERROR);
    assert_int_equal(fx->changes, 0);
    assert_int_equal(fx->decides, 0);
    s_ping(fx, &pong);
    assert_int_equal(s_counter(&pong, "dropped.unexpected", NULL), 1);
    assert_int_equal(s_counter(&pong, "replies.late", NULL), 1);
    assert_int_equal(s_counter(&pong, "requests.pending", NULL), 0);
    proto_msg_clear(&pong);
}

//  An actor's counters follow the bus's in pong, read at each pong.
static void
test_counters(void **state)
{
    fixture_t *fx = *state;
    uint64_t things = 42;
    assert_int_equal(proto_bus_counter(fx->bus, "test.things", &things), 0);

    // refused: taken names, bad names, no value
    errno = 0;
    assert_int_equal(proto_bus_counter(fx->bus, "test.things", &things), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(proto_bus_counter(fx->bus, "dropped.mine", &things), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(proto_bus_counter(fx->bus, "replies.late", &things), -1);
    assert_int_equal(errno, EEXIST);
    assert_int_equal(proto_bus_counter(fx->bus, "", &things), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(proto_bus_counter(fx->bus, NULL, &things), -1);
    assert_int_equal(errno, EINVAL);
    assert_int_equal(proto_bus_counter(fx->bus, "test.none", NULL), -1);
    assert_int_equal(errno, EINVAL);
    char longest[PROTO_COUNTER_NAME_MAX + 2];
    memset(longest, 'x', sizeof longest - 1);
    longest[sizeof longest - 1] = '\0';
    assert_int_equal(proto_bus_counter(fx->bus, longest, &things), -1); // one byte over
    assert_int_equal(errno, EINVAL);
    longest[PROTO_COUNTER_NAME_MAX] = '\0';
    assert_int_equal(proto_bus_counter(fx->bus, longest, &things), 0);

    // fill the rest: all of them fit in pong's list with the bus's own
    uint64_t values[PROTO_BUS_COUNTERS];
    char names[PROTO_BUS_COUNTERS][32];
    for (size_t i = 2; i < PROTO_BUS_COUNTERS; i++) {
        values[i] = 1000 + i;
        snprintf(names[i], sizeof names[i], "test.n%zu", i);
        assert_int_equal(proto_bus_counter(fx->bus, names[i], &values[i]), 0);
    }
    assert_int_equal(proto_bus_counter(fx->bus, "test.one_more", &things), -1);
    assert_int_equal(errno, ENOSPC);

    proto_msg_t pong;
    s_ping(fx, &pong);
    size_t at_things = 0, at_peers = 0, at_monitors = 0, at_last = 0;
    assert_int_equal(s_counter(&pong, "test.things", &at_things), 42);
    assert_int_equal(s_counter(&pong, longest, NULL), 42);
    assert_int_equal(s_counter(&pong, names[PROTO_BUS_COUNTERS - 1], &at_last),
                     1000 + PROTO_BUS_COUNTERS - 1);
    assert_int_not_equal(s_counter(&pong, "peers.healthd", &at_peers), UINT64_MAX);
    assert_int_not_equal(s_counter(&pong, "monitors", &at_monitors), UINT64_MAX);
    assert_true(at_things > at_peers && at_things > at_monitors);
    assert_int_equal(at_last, pong.pong.counters_count - 1);
    proto_msg_clear(&pong);

    things = 43; // read when the pong is built, not when registered
    s_ping(fx, &pong);
    assert_int_equal(s_counter(&pong, "test.things", NULL), 43);
    proto_msg_clear(&pong);
}

//  A request made before any instance of its kind exists (a cold start)
//  waits for one, within its deadline, and is delivered when it appears.
static void
test_request_waits_for_a_peer(void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal(proto_bus_use(fx->bus, PROTO_KIND_STATSD, true, NULL, err, sizeof err), 0);
    proto_msg_t req, msg;
    proto_msg_init(&req, PROTO_PING);
    assert_int_equal(proto_bus_request(fx->bus, PROTO_KIND_STATSD, &req, 3000, s_on_reply, fx), 0);
    for (int i = 0; i < 4; i++)
        s_slice(fx); // no statsd yet: nothing answers, nothing is lost
    assert_int_equal(fx->replies, 0);
    // a statsd appears
    char path[2][128], ep[160];
    int ppid = (int) getppid();
    snprintf(path[0], sizeof path[0], "%s/statsd.%d.req", fx->bus_dir, ppid);
    snprintf(path[1], sizeof path[1], "%s/statsd.%d.pub", fx->bus_dir, ppid);
    snprintf(ep, sizeof ep, "ipc://%s", path[0]);
    void *statsd = s_socket(fx, ZMQ_ROUTER, ep, true);
    snprintf(ep, sizeof ep, "ipc://%s", path[1]);
    void *statsd_pub = s_socket(fx, ZMQ_XPUB, ep, true);
    uint64_t t0 = s_now_ms(), deadline = t0 + DEADLINE_MS;
    uint8_t identity[PROTO_BUS_IDENTITY];
    size_t identity_len = 0;
    proto_msg_init(&msg, PROTO_NONE);
    while (!s_try_recv(statsd, &msg, identity, &identity_len)) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    printf("parked request delivered %llu ms after its peer bound\n",
           (unsigned long long) (s_now_ms() - t0));
    assert_int_equal(msg.type, PROTO_PING);
    assert_int_equal(msg.id, req.id);
    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_PONG);
    pong.id = msg.id;
    pong.pong.kind = "statsd";
    pong.pong.instance = "fake";
    pong.pong.version = "0";
    pong.pong.region = "eu";
    s_send(statsd, identity, identity_len, &pong);
    proto_msg_clear(&msg);
    while (fx->replies == 0) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(fx->reply, PROTO_PONG);
    zmq_close(statsd);
    zmq_close(statsd_pub);
    unlink(path[0]);
    unlink(path[1]);
}

//  A request whose kind never appears ends at its deadline, once, with NULL.
static void
test_parked_request_expires(void **state)
{
    fixture_t *fx = *state;
    char err[256];
    assert_int_equal(proto_bus_use(fx->bus, PROTO_KIND_APID, true, NULL, err, sizeof err), 0);
    proto_msg_t req, pong;
    proto_msg_init(&req, PROTO_PING);
    uint64_t t0 = s_now_ms();
    assert_int_equal(proto_bus_request(fx->bus, PROTO_KIND_APID, &req, 100, s_on_reply, fx), 0);
    while (fx->replies == 0) {
        assert_true(s_now_ms() < t0 + DEADLINE_MS);
        s_slice(fx);
    }
    assert_true(s_now_ms() - t0 >= 90);
    assert_int_equal(fx->replies, 1);
    assert_int_equal(fx->reply, PROTO_NONE);
    s_ping(fx, &pong);
    assert_int_equal(s_counter(&pong, "requests.pending", NULL), 0);
    proto_msg_clear(&pong);
    // a kind the bus does not use is refused at once
    assert_int_equal(proto_bus_request(fx->bus, PROTO_KIND_CHATD, &req, 100, s_on_reply, fx), -1);
}

//  Addressed events: published to one instance, only its subscriber gets it
//  ("a;" is no prefix of "ab;"); the publisher hears who subscribes and who
//  goes; an addressed event for another instance never reaches the handler.
static void
test_addressed_events(void **state)
{
    fixture_t *fx = *state;
    char ep[160];
    snprintf(ep, sizeof ep, "ipc://%s/router.%d.pub", fx->bus_dir, (int) getpid());
    void *sub_a = s_socket(fx, ZMQ_SUB, ep, false);
    void *sub_ab = s_socket(fx, ZMQ_SUB, ep, false);
    char topic[PROTO_BUS_ADDRESS_MAX];
    assert_int_equal(proto_bus_address(topic, sizeof topic, PROTO_CHAT_OUT, "a"), 11);
    assert_string_equal(topic, "chat.out@a;");
    assert_int_equal(zmq_setsockopt(sub_a, ZMQ_SUBSCRIBE, topic, strlen(topic)), 0);
    assert_int_equal(proto_bus_address(topic, sizeof topic, PROTO_CHAT_OUT, "ab"), 12);
    assert_int_equal(zmq_setsockopt(sub_ab, ZMQ_SUBSCRIBE, topic, strlen(topic)), 0);
    assert_int_equal(proto_bus_address(topic, 11, PROTO_CHAT_OUT, "a"), 0); // no room
    assert_int_equal(proto_bus_address(topic, sizeof topic, PROTO_CHAT_OUT, ""), 0);

    //  Both subscriptions arrive (in some order).
    uint64_t deadline = s_now_ms() + DEADLINE_MS;
    while (fx->nsubs < 2) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    bool a = strcmp(fx->subs[0], "+a") == 0 || strcmp(fx->subs[1], "+a") == 0;
    bool ab = strcmp(fx->subs[0], "+ab") == 0 || strcmp(fx->subs[1], "+ab") == 0;
    assert_true(a && ab);

    proto_msg_t out;
    proto_msg_init(&out, PROTO_CHAT_OUT);
    out.chat_out.session = "g/1";
    out.chat_out.text = (proto_bin_t){(const uint8_t *) "{\"type\":\"ack\"}", 14};
    assert_int_equal(proto_bus_publish_to(fx->bus, &out, "a"), 0);
    out.chat_out.session = "g/2";
    assert_int_equal(proto_bus_publish_to(fx->bus, &out, "ab"), 0);
    assert_int_equal(proto_bus_publish_to(fx->bus, &out, ""), -1);

    proto_msg_t got;
    uint8_t first[PROTO_BUS_IDENTITY];
    size_t first_len = 0;
    proto_msg_init(&got, PROTO_NONE);
    deadline = s_now_ms() + DEADLINE_MS;
    while (!s_try_recv(sub_a, &got, first, &first_len)) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(first_len, 11);
    assert_memory_equal(first, "chat.out@a;", 11);
    assert_int_equal(got.type, PROTO_CHAT_OUT);
    assert_string_equal(got.chat_out.session, "g/1");
    proto_msg_init(&got, PROTO_NONE);
    while (!s_try_recv(sub_ab, &got, first, &first_len)) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_string_equal(got.chat_out.session, "g/2");
    proto_msg_init(&got, PROTO_NONE);
    assert_false(s_try_recv(sub_a, &got, first, &first_len)); // g/2 was not for a
    assert_false(s_try_recv(sub_ab, &got, first, &first_len));

    //  a goes away: the bus hears its unsubscription.
    zmq_close(sub_a);
    deadline = s_now_ms() + DEADLINE_MS;
    while (fx->nsubs < 3) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_string_equal(fx->subs[2], "-a");
    zmq_close(sub_ab);

    //  Events addressed to us reach the handler; to someone else, never.
    proto_msg_t in;
    proto_msg_init(&in, PROTO_CHAT_IN);
    in.chat_in.session = "g/1";
    in.chat_in.text = (proto_bin_t){(const uint8_t *) "{}", 2};
    deadline = s_now_ms() + DEADLINE_MS;
    while (fx->chat_ins == 0) { // until the SUB is connected (slow joiner)
        assert_true(s_now_ms() < deadline);
        s_send(fx->fake_pub, "chat.in@t2;", 11, &in); // not ours
        s_send(fx->fake_pub, "chat.in@t1;", 11, &in);
        s_slice(fx);
    }
    int seen = fx->chat_ins;
    for (int i = 0; i < 20; i++)
        s_send(fx->fake_pub, "chat.in@t2;", 11, &in);
    s_send(fx->fake_pub, "chat.in@t1;", 11, &in);
    while (fx->chat_ins == seen) {
        assert_true(s_now_ms() < deadline);
        s_slice(fx);
    }
    assert_int_equal(fx->chat_ins, seen + 1);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_event_type_as_request, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_request_type_as_event, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_replies, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_counters, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_request_waits_for_a_peer, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_parked_request_expires, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_addressed_events, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests_name("bus", tests, NULL, NULL);
    proto_log_shutdown();
    return rc;
}
