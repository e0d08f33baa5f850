/*  test_zwatch - unit tests for proto_zwatch.

    Real ZeroMQ sockets over inproc, one context and one libev loop per test
    (set up and torn down by the fixture, so a failing test still closes its
    sockets). Every ev_run has a 5 s deadline timer that fails the test
    instead of hanging it.

    How an actor uses proto_zwatch, in short: create the watcher for a socket
    and start it; in the callback, receive with ZMQ_DONTWAIT a bounded batch
    (here 32) and return; the next loop iteration calls again while
    ZMQ_EVENTS still says POLLIN. Sends inside the callback (ZMQ_DONTWAIT too)
    may consume the ZMQ_FD edge; the watcher must not stall on that. Connect
    and disconnect a watched socket through proto_zwatch_connect/disconnect,
    which tell the watcher to look again.
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

#include <cmocka.h>
#include <ev.h>
#include <zmq.h>

#include "proto_log.h"
#include "proto_util.h"
#include "proto_zwatch.h"

#define DEADLINE_S 5.0 // no ev_run in this file may take longer
#define BATCH_MAX  32  // messages a callback handles before returning
#define HWM        4000
#define MAX_SOCKS  4

//  Per-test state: the fixture creates and destroys all of it.
typedef struct {
    void *ctx;                // this test's zmq context
    struct ev_loop *loop;     // this test's loop
    ev_timer deadline;        // fails the run when it fires
    bool timed_out;           // the deadline fired
    void *socks[MAX_SOCKS];   // closed in teardown
    size_t nsocks;            // entries in socks
    proto_zwatch_t *watch[2]; // destroyed in teardown
} fixture_t;

//  What a receiving callback saw.
typedef struct {
    fixture_t *fx;   // for the loop
    int received;    // messages received
    int target;      // break the loop when received reaches this (0: never)
    int calls;       // callback invocations
    int max_batch;   // most messages handled in one call
    bool in_order;   // payloads were 0, 1, 2, ...
    int last_events; // revents of the last call
} rx_t;

//  The sender driven by a repeating timer.
typedef struct {
    ev_timer timer; // repeat 0.002
    void *sock;     // where to send
    int sent;       // messages sent so far
    int total;      // stop after this many
} trickle_t;

//  One side of the ROUTER/DEALER ping-pong.
typedef struct {
    fixture_t *fx;   // for the loop
    int rounds;      // DEALER: replies received; ROUTER: requests echoed
    int target;      // DEALER: round trips wanted
    int calls;       // callback invocations
    bool in_order;   // DEALER: replies carried 0, 1, 2, ...
    int send_errors; // sends that failed inside a callback
} pingpong_t;

//  --------------------------------------------------------------------------
//  Fixture and helpers

static void
s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    fixture_t *fx = w->data;
    fx->timed_out = true;
    ev_break(loop, EVBREAK_ALL);
}

static void
s_on_break(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    ev_break(loop, EVBREAK_ALL);
}

static int
s_setup(void **state)
{
    fixture_t *fx = calloc(1, sizeof *fx);
    if (fx == NULL)
        return -1;
    fx->ctx = zmq_ctx_new();
    fx->loop = ev_loop_new(EVFLAG_AUTO);
    if (fx->ctx == NULL || fx->loop == NULL) {
        if (fx->ctx)
            zmq_ctx_term(fx->ctx);
        if (fx->loop)
            ev_loop_destroy(fx->loop);
        free(fx);
        return -1;
    }
    ev_timer_init(&fx->deadline, s_on_deadline, DEADLINE_S, 0.);
    fx->deadline.data = fx;
    *state = fx;
    return 0;
}

static int
s_teardown(void **state)
{
    fixture_t *fx = *state;
    if (fx == NULL)
        return 0;
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(fx->watch); i++)
        proto_zwatch_destroy(&fx->watch[i]);
    if (fx->loop) {
        ev_timer_stop(fx->loop, &fx->deadline);
        ev_loop_destroy(fx->loop);
    }
    for (size_t i = 0; i < fx->nsocks; i++)
        zmq_close(fx->socks[i]);
    if (fx->ctx)
        zmq_ctx_term(fx->ctx);
    free(fx);
    *state = NULL;
    return 0;
}

//  A socket with linger 0 and explicit high-water marks, bound or connected
//  to endpoint; the fixture closes it.
static void *
s_socket(fixture_t *fx, int type, const char *endpoint, bool bind)
{
    assert_true(fx->nsocks < MAX_SOCKS);
    void *sock = zmq_socket(fx->ctx, type);
    assert_non_null(sock);
    fx->socks[fx->nsocks++] = sock;
    int linger = 0, hwm = HWM;
    assert_int_equal(zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_SNDHWM, &hwm, sizeof hwm), 0);
    assert_int_equal(zmq_setsockopt(sock, ZMQ_RCVHWM, &hwm, sizeof hwm), 0);
    if (bind)
        assert_int_equal(zmq_bind(sock, endpoint), 0);
    else
        assert_int_equal(zmq_connect(sock, endpoint), 0);
    return sock;
}

//  Run the loop until a callback breaks it; fail if the deadline comes first.
static void
s_run(fixture_t *fx)
{
    fx->timed_out = false;
    ev_now_update(fx->loop);
    ev_timer_set(&fx->deadline, DEADLINE_S, 0.);
    ev_timer_start(fx->loop, &fx->deadline);
    ev_run(fx->loop, 0);
    ev_timer_stop(fx->loop, &fx->deadline);
    assert_false(fx->timed_out);
}

//  Run the loop for ms milliseconds (a one-shot timer breaks it).
static void
s_run_for(fixture_t *fx, double ms)
{
    ev_timer stop;
    ev_timer_init(&stop, s_on_break, ms / 1000., 0.);
    ev_now_update(fx->loop);
    ev_timer_start(fx->loop, &stop);
    ev_run(fx->loop, 0);
    ev_timer_stop(fx->loop, &stop);
}

static void
s_send_int(void *sock, int value)
{
    assert_int_equal(zmq_send(sock, &value, sizeof value, ZMQ_DONTWAIT), (int) sizeof value);
}

//  Receive callback: a batch of at most BATCH_MAX with ZMQ_DONTWAIT, then return.
static void
s_on_rx(proto_zwatch_t *watch, void *sock, int revents, void *arg)
{
    (void) watch;
    rx_t *rx = arg;
    rx->calls++;
    rx->last_events = revents;
    int batch = 0;
    while (batch < BATCH_MAX) {
        int value;
        int rc = zmq_recv(sock, &value, sizeof value, ZMQ_DONTWAIT);
        if (rc < 0) {
            assert_int_equal(errno, EAGAIN);
            break;
        }
        assert_int_equal(rc, (int) sizeof value);
        if (value != rx->received)
            rx->in_order = false;
        rx->received++;
        batch++;
    }
    if (batch > rx->max_batch)
        rx->max_batch = batch;
    if (rx->target > 0 && rx->received >= rx->target)
        ev_break(rx->fx->loop, EVBREAK_ALL);
}

static void
s_rx_init(rx_t *rx, fixture_t *fx, int target)
{
    memset(rx, 0, sizeof *rx);
    rx->fx = fx;
    rx->target = target;
    rx->in_order = true;
}

//  --------------------------------------------------------------------------
//  Tests

//  1000 messages queued before the loop runs: one ZMQ_FD edge at most, yet
//  the watcher keeps calling (batches of 32) until all are read.
static void
test_burst_before_loop(void **state)
{
    fixture_t *fx = *state;
    void *rx_sock = s_socket(fx, ZMQ_PAIR, "inproc://burst", true);
    void *tx_sock = s_socket(fx, ZMQ_PAIR, "inproc://burst", false);
    rx_t rx;
    s_rx_init(&rx, fx, 1000);
    fx->watch[0] = proto_zwatch_new(fx->loop, rx_sock, ZMQ_POLLIN, s_on_rx, &rx);
    assert_non_null(fx->watch[0]);
    proto_zwatch_start(fx->watch[0]);

    for (int i = 0; i < 1000; i++)
        s_send_int(tx_sock, i);
    s_run(fx);

    assert_int_equal(rx.received, 1000);
    assert_true(rx.in_order);
    assert_true(rx.max_batch <= BATCH_MAX);
    assert_true(rx.calls >= 1000 / BATCH_MAX); // many calls, not one
    assert_int_equal(rx.last_events, ZMQ_POLLIN);
}

static void
s_on_trickle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    trickle_t *t = w->data;
    s_send_int(t->sock, t->sent++);
    if (t->sent >= t->total)
        ev_timer_stop(loop, w);
}

//  Messages that arrive one at a time while the loop is blocked in poll.
static void
test_messages_while_running(void **state)
{
    fixture_t *fx = *state;
    void *rx_sock = s_socket(fx, ZMQ_PULL, "inproc://trickle", true);
    void *tx_sock = s_socket(fx, ZMQ_PUSH, "inproc://trickle", false);
    rx_t rx;
    s_rx_init(&rx, fx, 200);
    fx->watch[0] = proto_zwatch_new(fx->loop, rx_sock, ZMQ_POLLIN, s_on_rx, &rx);
    assert_non_null(fx->watch[0]);
    proto_zwatch_start(fx->watch[0]);

    trickle_t t = {.sock = tx_sock, .total = 200};
    ev_timer_init(&t.timer, s_on_trickle, 0.002, 0.002);
    t.timer.data = &t;
    ev_timer_start(fx->loop, &t.timer);
    s_run(fx);
    ev_timer_stop(fx->loop, &t.timer);

    assert_int_equal(t.sent, 200);
    assert_int_equal(rx.received, 200);
    assert_true(rx.in_order);
}

//  DEALER side: count the reply, send the next request from inside the callback.
static void
s_on_dealer(proto_zwatch_t *watch, void *sock, int revents, void *arg)
{
    (void) watch;
    (void) revents;
    pingpong_t *pp = arg;
    pp->calls++;
    for (int batch = 0; batch < BATCH_MAX; batch++) {
        int value;
        int rc = zmq_recv(sock, &value, sizeof value, ZMQ_DONTWAIT);
        if (rc < 0) {
            assert_int_equal(errno, EAGAIN);
            return;
        }
        assert_int_equal(rc, (int) sizeof value);
        if (value != pp->rounds)
            pp->in_order = false;
        pp->rounds++;
        if (pp->rounds >= pp->target) {
            ev_break(pp->fx->loop, EVBREAK_ALL);
            return;
        }
        if (zmq_send(sock, &pp->rounds, sizeof pp->rounds, ZMQ_DONTWAIT) < 0)
            pp->send_errors++;
    }
}

//  ROUTER side: echo every request to its sender from inside the callback.
static void
s_on_router(proto_zwatch_t *watch, void *sock, int revents, void *arg)
{
    (void) watch;
    (void) revents;
    pingpong_t *pp = arg;
    pp->calls++;
    for (int batch = 0; batch < BATCH_MAX; batch++) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, sock, ZMQ_DONTWAIT) < 0) {
            assert_int_equal(errno, EAGAIN);
            zmq_msg_close(&id);
            return;
        }
        assert_true(zmq_msg_more(&id));
        zmq_msg_init(&body);
        assert_true(zmq_msg_recv(&body, sock, ZMQ_DONTWAIT) >= 0);
        if (zmq_msg_send(&id, sock, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
            || zmq_msg_send(&body, sock, ZMQ_DONTWAIT) < 0)
            pp->send_errors++;
        zmq_msg_close(&id);   // no-op after a successful send
        zmq_msg_close(&body); // idem
        pp->rounds++;
    }
}

//  Both ends watched in one loop, each sending from inside its callback.
static void
test_ping_pong_in_callbacks(void **state)
{
    fixture_t *fx = *state;
    void *router = s_socket(fx, ZMQ_ROUTER, "inproc://pingpong", true);
    void *dealer = s_socket(fx, ZMQ_DEALER, "inproc://pingpong", false);
    pingpong_t server = {.fx = fx, .in_order = true};
    pingpong_t client = {.fx = fx, .target = 500, .in_order = true};
    fx->watch[0] = proto_zwatch_new(fx->loop, router, ZMQ_POLLIN, s_on_router, &server);
    fx->watch[1] = proto_zwatch_new(fx->loop, dealer, ZMQ_POLLIN, s_on_dealer, &client);
    assert_non_null(fx->watch[0]);
    assert_non_null(fx->watch[1]);
    proto_zwatch_start(fx->watch[0]);
    proto_zwatch_start(fx->watch[1]);

    s_send_int(dealer, 0);
    s_run(fx);

    assert_int_equal(client.rounds, 500);
    assert_true(client.in_order);
    assert_int_equal(server.rounds, 500);
    assert_int_equal(client.send_errors, 0);
    assert_int_equal(server.send_errors, 0);
}

//  A stopped watcher never calls; started again, it delivers what waited.
static void
test_stop_and_start(void **state)
{
    fixture_t *fx = *state;
    void *rx_sock = s_socket(fx, ZMQ_PAIR, "inproc://stop", true);
    void *tx_sock = s_socket(fx, ZMQ_PAIR, "inproc://stop", false);
    rx_t rx;
    s_rx_init(&rx, fx, 1);
    fx->watch[0] = proto_zwatch_new(fx->loop, rx_sock, ZMQ_POLLIN, s_on_rx, &rx);
    assert_non_null(fx->watch[0]);
    proto_zwatch_start(fx->watch[0]);
    proto_zwatch_start(fx->watch[0]); // twice is a no-op
    proto_zwatch_stop(fx->watch[0]);
    proto_zwatch_stop(fx->watch[0]); // idem

    s_send_int(tx_sock, 0);
    s_run_for(fx, 50);
    assert_int_equal(rx.calls, 0);
    assert_int_equal(rx.received, 0);

    proto_zwatch_start(fx->watch[0]);
    s_run(fx);
    assert_int_equal(rx.received, 1);
    assert_true(rx.in_order);

    //  Stopped from the outside while data waits: still silent.
    proto_zwatch_stop(fx->watch[0]);
    int calls = rx.calls;
    s_send_int(tx_sock, 1);
    s_run_for(fx, 50);
    assert_int_equal(rx.calls, calls);
    assert_int_equal(rx.received, 1);
}

//  XPUB side: a subscription arrived; the publisher then queues its messages.
typedef struct {
    fixture_t *fx; // for the loop
    void *sock;    // the XPUB
    int sent;      // messages queued after the subscription
} publisher_t;

static void
s_on_subscribe(proto_zwatch_t *watch, void *sock, int revents, void *arg)
{
    (void) watch;
    (void) revents;
    publisher_t *pub = arg;
    char sub[16];
    int rc;
    while ((rc = zmq_recv(sock, sub, sizeof sub, ZMQ_DONTWAIT)) >= 0) {
        if (rc < 1 || sub[0] != 1)
            continue; // an unsubscription
        for (int i = 0; i < 3; i++)
            s_send_int(pub->sock, pub->sent++);
        ev_break(pub->fx->loop, EVBREAK_ALL);
    }
}

//  A SUB connected through the watcher while the loop was not looking: the
//  connect itself takes the ZMQ_FD edge (libzmq processes pending commands
//  in it), the messages arrive without another edge, and a SUB never sends,
//  so only the touch in proto_zwatch_connect makes the watcher look again.
//
//  Sequence: the SUB connects (unwatched yet: its first connect needs no
//  touch), the XPUB sees the subscription and queues 3 messages, which the
//  SUB's pipe holds with their activation command pending; the loop runs
//  with both watchers until nothing is left to do (the SUB's ZMQ_FD edge is
//  armed: its watcher blocks in ev_io); then the SUB connects to a second
//  endpoint outside the loop, and that zmq_connect processes the pending
//  commands: the messages become readable and the edge is spent. The loop
//  must deliver them before the deadline.
static void
test_connect_touches(void **state)
{
    fixture_t *fx = *state;
    void *xpub = s_socket(fx, ZMQ_XPUB, "inproc://xpub", true);
    void *other = s_socket(fx, ZMQ_XPUB, "inproc://other", true);
    void *sub = zmq_socket(fx->ctx, ZMQ_SUB);
    assert_non_null(sub);
    fx->socks[fx->nsocks++] = sub;
    int linger = 0;
    assert_int_equal(zmq_setsockopt(sub, ZMQ_LINGER, &linger, sizeof linger), 0);
    assert_int_equal(zmq_setsockopt(sub, ZMQ_SUBSCRIBE, "", 0), 0);

    publisher_t pub = {.fx = fx, .sock = xpub};
    rx_t rx;
    s_rx_init(&rx, fx, 3);
    fx->watch[0] = proto_zwatch_new(fx->loop, xpub, ZMQ_POLLIN, s_on_subscribe, &pub);
    fx->watch[1] = proto_zwatch_new(fx->loop, sub, ZMQ_POLLIN, s_on_rx, &rx);
    assert_non_null(fx->watch[0]);
    assert_non_null(fx->watch[1]);
    proto_zwatch_start(fx->watch[0]);
    proto_zwatch_start(fx->watch[1]);
    assert_int_equal(proto_zwatch_connect(fx->watch[1], "inproc://xpub"), 0);

    // the XPUB hears the subscription and publishes: the SUB's watcher has
    // already looked (no messages then) and waits on its edge
    s_run(fx);
    assert_int_equal(pub.sent, 3);
    assert_int_equal(rx.received, 0);

    // a connect outside the loop consumes that edge; the touch makes up for it
    assert_int_equal(proto_zwatch_connect(fx->watch[1], "inproc://other"), 0);
    s_run(fx);
    assert_int_equal(rx.received, 3);
    assert_true(rx.in_order);

    // a disconnect goes through the watcher too, and the socket keeps working
    assert_int_equal(proto_zwatch_disconnect(fx->watch[1], "inproc://other"), 0);
    assert_int_equal(proto_zwatch_disconnect(fx->watch[1], "inproc://nowhere"), -1);
    assert_int_equal(zmq_errno(), ENOENT);
    (void) other;
}

//  Destroy sets the pointer to NULL and a second call is a no-op; the loop
//  keeps no reference to the freed watcher (ASan would see it).
static void
test_destroy_twice(void **state)
{
    fixture_t *fx = *state;
    void *rx_sock = s_socket(fx, ZMQ_PAIR, "inproc://destroy", true);
    void *tx_sock = s_socket(fx, ZMQ_PAIR, "inproc://destroy", false);
    rx_t rx;
    s_rx_init(&rx, fx, 0);
    proto_zwatch_t *watch = proto_zwatch_new(fx->loop, rx_sock, ZMQ_POLLIN, s_on_rx, &rx);
    assert_non_null(watch);
    proto_zwatch_start(watch);
    proto_zwatch_destroy(&watch);
    assert_null(watch);
    proto_zwatch_destroy(&watch);
    assert_null(watch);

    s_send_int(tx_sock, 0);
    s_run_for(fx, 50);
    assert_int_equal(rx.calls, 0);
}

int
main(void)
{
    proto_log_setup("test", "t", PROTO_LOG_ERROR, PROTO_LOG_JSON, 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_burst_before_loop, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_messages_while_running, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_ping_pong_in_callbacks, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_stop_and_start, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_twice, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_connect_touches, s_setup, s_teardown),
    };
    int failed = cmocka_run_group_tests_name("proto_zwatch", tests, NULL, NULL);
    proto_log_shutdown();
    return failed;
}
