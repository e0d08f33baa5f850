/*  t_loop - run a test's libev loop until a condition holds, or for a while,
    always bounded: the tests' way to wait without sleeping.
*/
#ifndef T_LOOP_H
#define T_LOOP_H

#include <stdbool.h>

#include <ev.h>

//  Run loop until done(arg) holds (checked before each wait of the loop) or
//  seconds pass. Returns true if done held, false at the deadline.
bool t_loop_until(struct ev_loop *loop, bool (*done)(void *arg), void *arg, double seconds);

//  Let the loop run for seconds (timers, answers and queries go on).
void t_loop_pass(struct ev_loop *loop, double seconds);

#endif
