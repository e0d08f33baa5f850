/*  test_queue - unit tests for gw_queue, per-route backpressure.

    A real libev loop drives the queue timeouts (a few tens of milliseconds,
    the loop run until they fire, bounded). The callback records what it was
    told and can be scripted to leave at once, as a request that fails
    straight away does, to show that places are handed out in a loop and not
    by recursion.
*/
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

#include "../../gateway/gw_queue.h"

#define T_WAITERS 16

typedef struct {
    struct ev_loop *loop;
    gw_queues_t *q;
    gw_qwait_t w[T_WAITERS];
    int told[T_WAITERS];  // 0 nothing, 1 go, 2 timeout
    int order[T_WAITERS]; // indices in the order they were told
    int ntold;
    bool leave_at_once; // the callback leaves right away (a request failing at once)
    gw_qwait_t *other;  // and also leaves this one (another route), if set
} t_fix_t;

static int
s_index(t_fix_t *f, gw_qwait_t *w)
{
    return (int) (w - f->w);
}

static void
s_told(gw_qwait_t *w, bool go, void *arg)
{
    t_fix_t *f = arg;
    int i = s_index(f, w);
    assert_true(i >= 0 && i < T_WAITERS);
    assert_int_equal(f->told[i], 0);
    f->told[i] = go ? 1 : 2;
    f->order[f->ntold++] = i;
    if (go)
        assert_true(w->active);
    else
        assert_null(w->slot);
    if (go && f->leave_at_once)
        gw_queues_leave(f->q, w);
    if (go && f->other) {
        gw_qwait_t *o = f->other;
        f->other = NULL;
        gw_queues_leave(f->q, o);
    }
}

static int
s_setup(void **state)
{
    t_fix_t *f = calloc(1, sizeof *f);
    f->loop = ev_loop_new(EVFLAG_AUTO);
    f->q = gw_queues_new(f->loop, s_told, f);
    *state = f;
    return 0;
}

static int
s_teardown(void **state)
{
    t_fix_t *f = *state;
    gw_queues_destroy(&f->q);
    assert_null(f->q);
    ev_loop_destroy(f->loop);
    free(f);
    return 0;
}

static void
s_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) revents;
    *(bool *) t->data = true;
    ev_break(loop, EVBREAK_ALL);
}

//  Run the loop until n callbacks came or 2 s passed.
static void
s_run_until(t_fix_t *f, int n)
{
    bool expired = false;
    ev_timer guard;
    ev_timer_init(&guard, s_timeout, 2.0, 0.);
    guard.data = &expired;
    ev_timer_start(f->loop, &guard);
    while (f->ntold < n && !expired)
        ev_run(f->loop, EVRUN_ONCE);
    ev_timer_stop(f->loop, &guard);
    assert_int_equal(f->ntold, n);
}

//  2 in flight, 2 waiting, then refused; places go to the oldest waiter.
static void
test_go_wait_full_fifo(void **state)
{
    t_fix_t *f = *state;
    const gw_queue_stats_t *st = gw_queues_stats(f->q);
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "r", 2, 2, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[1], "r", 2, 2, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[2], "r", 2, 2, 1000), GW_QUEUE_WAIT);
    assert_int_equal(gw_queues_enter(f->q, &f->w[3], "r", 2, 2, 1000), GW_QUEUE_WAIT);
    assert_int_equal(gw_queues_enter(f->q, &f->w[4], "r", 2, 2, 1000), GW_QUEUE_FULL);
    assert_null(f->w[4].slot);
    assert_int_equal(st->active, 2);
    assert_int_equal(st->waiting, 2);
    assert_int_equal(st->refused, 1);
    assert_int_equal(st->slots, 1);
    // another route is not affected
    assert_int_equal(gw_queues_enter(f->q, &f->w[5], "other", 2, 2, 1000), GW_QUEUE_GO);
    assert_int_equal(st->slots, 2);
    gw_queues_leave(f->q, &f->w[5]);
    assert_int_equal(st->slots, 1);
    // a place frees: the oldest waiter goes
    gw_queues_leave(f->q, &f->w[0]);
    assert_int_equal(f->ntold, 1);
    assert_int_equal(f->order[0], 2);
    assert_int_equal(f->told[2], 1);
    gw_queues_leave(f->q, &f->w[1]);
    assert_int_equal(f->order[1], 3);
    assert_int_equal(st->waiting, 0);
    assert_int_equal(st->active, 2);
    // leaving twice, or without a place, changes nothing
    gw_queues_leave(f->q, &f->w[0]);
    gw_queues_leave(f->q, &f->w[4]);
    assert_int_equal(st->active, 2);
    gw_queues_leave(f->q, &f->w[2]);
    gw_queues_leave(f->q, &f->w[3]);
    assert_int_equal(st->active, 0);
    assert_int_equal(st->slots, 0); // an idle route costs nothing
    assert_int_equal(st->queued, 2);
}

//  A queued request whose client left is removed; the next one goes.
static void
test_abandoned(void **state)
{
    t_fix_t *f = *state;
    const gw_queue_stats_t *st = gw_queues_stats(f->q);
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "r", 1, 5, 1000), GW_QUEUE_GO);
    for (int i = 1; i <= 3; i++)
        assert_int_equal(gw_queues_enter(f->q, &f->w[i], "r", 1, 5, 1000), GW_QUEUE_WAIT);
    gw_queues_leave(f->q, &f->w[1]); // first waiter's client went away
    gw_queues_leave(f->q, &f->w[3]); // and the last one's
    assert_int_equal(st->abandoned, 2);
    assert_int_equal(st->waiting, 1);
    gw_queues_leave(f->q, &f->w[0]);
    assert_int_equal(f->ntold, 1);
    assert_int_equal(f->order[0], 2);
    gw_queues_leave(f->q, &f->w[2]);
    assert_int_equal(st->slots, 0);
    assert_int_equal(f->told[1], 0);
    assert_int_equal(f->told[3], 0);
}

//  queueTimeoutMs: the waiter is told, leaves the queue, the others stay.
static void
test_timeout(void **state)
{
    t_fix_t *f = *state;
    const gw_queue_stats_t *st = gw_queues_stats(f->q);
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "r", 1, 5, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[1], "r", 1, 5, 30), GW_QUEUE_WAIT);
    assert_int_equal(gw_queues_enter(f->q, &f->w[2], "r", 1, 5, 60000), GW_QUEUE_WAIT);
    ev_now_update(f->loop);
    ev_tstamp t0 = ev_now(f->loop);
    s_run_until(f, 1);
    assert_true(ev_now(f->loop) - t0 >= 0.025);
    assert_int_equal(f->told[1], 2);
    assert_int_equal(st->timeouts, 1);
    assert_int_equal(st->waiting, 1);
    gw_queues_leave(f->q, &f->w[1]); // the request's own finish: nothing to do
    gw_queues_leave(f->q, &f->w[0]);
    assert_int_equal(f->told[2], 1);
    gw_queues_leave(f->q, &f->w[2]);
    assert_int_equal(st->slots, 0);
}

//  Waiters whose requests fail at once (leave inside the callback) are
//  served one after the other by a loop: every one goes, in order.
static void
test_leave_inside_callback(void **state)
{
    t_fix_t *f = *state;
    const gw_queue_stats_t *st = gw_queues_stats(f->q);
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "r", 1, 10, 1000), GW_QUEUE_GO);
    for (int i = 1; i <= 8; i++)
        assert_int_equal(gw_queues_enter(f->q, &f->w[i], "r", 1, 10, 1000), GW_QUEUE_WAIT);
    f->leave_at_once = true;
    gw_queues_leave(f->q, &f->w[0]);
    assert_int_equal(f->ntold, 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(f->order[i], i + 1);
    assert_int_equal(st->active, 0);
    assert_int_equal(st->waiting, 0);
    assert_int_equal(st->slots, 0);
}

//  A callback of one route that frees a place of another route: that
//  route's waiter goes too (each route hands out its own places).
static void
test_other_route_inside_callback(void **state)
{
    t_fix_t *f = *state;
    const gw_queue_stats_t *st = gw_queues_stats(f->q);
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "a", 1, 1, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[1], "a", 1, 1, 1000), GW_QUEUE_WAIT);
    assert_int_equal(gw_queues_enter(f->q, &f->w[2], "b", 1, 1, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[3], "b", 1, 1, 1000), GW_QUEUE_WAIT);
    f->other = &f->w[2];
    gw_queues_leave(f->q, &f->w[0]); // a's waiter goes, and its callback frees b's place
    assert_int_equal(f->told[1], 1);
    assert_int_equal(f->told[3], 1);
    gw_queues_leave(f->q, &f->w[1]);
    gw_queues_leave(f->q, &f->w[3]);
    assert_int_equal(st->active, 0);
    assert_int_equal(st->slots, 0);
}

//  A limit lowered by a new configuration applies to the next request;
//  100,000 routes used once leave no slot behind.
static void
test_limits_follow_the_request_and_routes_are_freed(void **state)
{
    t_fix_t *f = *state;
    const gw_queue_stats_t *st = gw_queues_stats(f->q);
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "r", 3, 0, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[1], "r", 3, 0, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[2], "r", 1, 0, 1000), GW_QUEUE_FULL);
    gw_queues_leave(f->q, &f->w[0]);
    gw_queues_leave(f->q, &f->w[1]);
    char route[32];
    for (int i = 0; i < 100000; i++) {
        snprintf(route, sizeof route, "route-%d", i);
        assert_int_equal(gw_queues_enter(f->q, &f->w[i % 2], route, 1, 0, 1000), GW_QUEUE_GO);
        if (i % 2)
            gw_queues_leave(f->q, &f->w[0]), gw_queues_leave(f->q, &f->w[1]);
    }
    assert_int_equal(st->slots, 0);
    assert_int_equal(st->active, 0);
}

//  Destroying with requests queued frees everything (ASan's leak check).
static void
test_destroy_with_waiters(void **state)
{
    t_fix_t *f = *state;
    assert_int_equal(gw_queues_enter(f->q, &f->w[0], "r", 1, 3, 1000), GW_QUEUE_GO);
    assert_int_equal(gw_queues_enter(f->q, &f->w[1], "r", 1, 3, 1000), GW_QUEUE_WAIT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_go_wait_full_fifo, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_abandoned, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_timeout, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_leave_inside_callback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_other_route_inside_callback, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_limits_follow_the_request_and_routes_are_freed,
                                        s_setup, s_teardown),
        cmocka_unit_test_setup_teardown(test_destroy_with_waiters, s_setup, s_teardown),
    };
    return cmocka_run_group_tests_name("test_queue", tests, NULL, NULL);
}
