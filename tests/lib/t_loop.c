/*  t_loop - run a test's libev loop until a condition holds (see t_loop.h). */
#include "t_loop.h"

typedef struct {
    bool (*done)(void *arg); // the condition, or NULL
    void *arg;               // for it
    bool met;                // it held
} s_run_t;

static void
s_on_check(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void) revents;
    s_run_t *run = w->data;
    if (run->done && run->done(run->arg)) {
        run->met = true;
        ev_break(loop, EVBREAK_ONE);
    }
}

static void
s_on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    ev_break(loop, EVBREAK_ONE);
}

bool
t_loop_until(struct ev_loop *loop, bool (*done)(void *arg), void *arg, double seconds)
{
    s_run_t run = {.done = done, .arg = arg};
    ev_prepare check;
    ev_timer deadline;
    ev_prepare_init(&check, s_on_check);
    check.data = &run;
    ev_timer_init(&deadline, s_on_deadline, seconds, 0.);
    ev_prepare_start(loop, &check);
    ev_timer_start(loop, &deadline);
    ev_run(loop, 0);
    ev_timer_stop(loop, &deadline);
    ev_prepare_stop(loop, &check);
    return run.met;
}

void
t_loop_pass(struct ev_loop *loop, double seconds)
{
    (void) t_loop_until(loop, NULL, NULL, seconds);
}
