/*  test_hold - proto_hold: addressed events held until their addressee
    subscribes, released in order, expired, bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_hold.h"

typedef struct {
    char sent[16][64]; // "topic|body" of each send, in order
    int n;
    int fail; // sends to fail (counted down)
} t_sink_t;

static int
t_send(void *arg, const char *topic, size_t tlen, const void *body, size_t len)
{
    t_sink_t *s = arg;
    if (s->fail > 0) {
        s->fail--;
        return -1;
    }
    assert_true(s->n < 16);
    snprintf(s->sent[s->n++], sizeof s->sent[0], "%.*s|%.*s", (int) tlen, topic, (int) len,
             (const char *) body);
    return 0;
}

#define A "chat.out@gw-1;"
#define B "chat.out@gw-2;"

static void
test_release_in_order(void **state)
{
    (void) state;
    proto_hold_t *h = proto_hold_new();
    t_sink_t sink = {0};
    assert_false(proto_hold_reachable(h, A, strlen(A)));
    assert_int_equal(proto_hold_keep(h, A, strlen(A), "a1", 2, 1000), 0);
    assert_int_equal(proto_hold_keep(h, B, strlen(B), "b1", 2, 1001), 0);
    assert_int_equal(proto_hold_keep(h, A, strlen(A), "a2", 2, 1002), 0);
    assert_int_equal(proto_hold_count(h), 3);
    // A subscribes: its two, oldest first; B's stays
    proto_hold_subscription(h, A, strlen(A), true, t_send, &sink);
    assert_int_equal(sink.n, 2);
    assert_string_equal(sink.sent[0], A "|a1");
    assert_string_equal(sink.sent[1], A "|a2");
    assert_true(proto_hold_reachable(h, A, strlen(A)));
    assert_int_equal(proto_hold_count(h), 1);
    // a second subscription (a reconnect) releases nothing more; one
    // unsubscription leaves it reachable, the second does not
    proto_hold_subscription(h, A, strlen(A), true, t_send, &sink);
    proto_hold_subscription(h, A, strlen(A), false, t_send, &sink);
    assert_true(proto_hold_reachable(h, A, strlen(A)));
    proto_hold_subscription(h, A, strlen(A), false, t_send, &sink);
    assert_false(proto_hold_reachable(h, A, strlen(A)));
    proto_hold_subscription(h, A, strlen(A), false, t_send, &sink); // never below 0
    proto_hold_subscription(h, A, strlen(A), true, t_send, &sink);
    assert_true(proto_hold_reachable(h, A, strlen(A)));
    assert_int_equal(sink.n, 2);
    // a send that fails is dropped and counted, the rest go on
    sink.fail = 1;
    assert_int_equal(proto_hold_keep(h, B, strlen(B), "b2", 2, 1003), 0);
    proto_hold_subscription(h, B, strlen(B), true, t_send, &sink);
    assert_int_equal(sink.n, 3);
    assert_string_equal(sink.sent[2], B "|b2");
    assert_int_equal(proto_hold_dropped(h), 1);
    assert_int_equal(proto_hold_count(h), 0);
    proto_hold_destroy(&h);
    assert_null(h);
}

static void
test_expire_and_bounds(void **state)
{
    (void) state;
    proto_hold_t *h = proto_hold_new();
    t_sink_t sink = {0};
    assert_int_equal(proto_hold_keep(h, A, strlen(A), "old", 3, 1000), 0);
    assert_int_equal(proto_hold_keep(h, A, strlen(A), "new", 3, 5000), 0);
    assert_int_equal(proto_hold_expire(h, 1000 + PROTO_HOLD_MS - 1), 0);
    assert_int_equal(proto_hold_expire(h, 1000 + PROTO_HOLD_MS), 1);
    assert_int_equal(proto_hold_dropped(h), 1);
    proto_hold_subscription(h, A, strlen(A), true, t_send, &sink);
    assert_int_equal(sink.n, 1);
    assert_string_equal(sink.sent[0], A "|new");
    // bounds: a topic too long is refused; the byte bound refuses a body over it
    char lng[400];
    memset(lng, 'x', sizeof lng);
    assert_int_equal(proto_hold_keep(h, lng, sizeof lng, "z", 1, 1), -1);
    static char big[PROTO_HOLD_BYTES / 2 + 1];
    assert_int_equal(proto_hold_keep(h, B, strlen(B), big, sizeof big, 1), 0);
    assert_int_equal(proto_hold_keep(h, B, strlen(B), big, sizeof big, 1), -1);
    assert_int_equal(proto_hold_dropped(h), 3);
    proto_hold_destroy(&h); // frees what is still held
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_release_in_order),
        cmocka_unit_test(test_expire_and_bounds),
    };
    return cmocka_run_group_tests_name("hold", tests, NULL, NULL);
}
