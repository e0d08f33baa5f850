/*  it_actor - the integration checks every actor binary must pass: --help,
    bad settings exit 2 with one line, ping/pong, proc.stats, malformed bus
    messages dropped and counted while it keeps answering, taps only while
    subscribed, and a clean exit 0 on SIGTERM with no sanitizer report.
*/
#ifndef IT_ACTOR_H
#define IT_ACTOR_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>

#include <cmocka.h>

//  The common checks as cmocka tests; state is the kind name (a const char *).
void it_actor_test_help(void **state);
void it_actor_test_bad_settings(void **state);
void it_actor_test_lifecycle(void **state);

#define IT_ACTOR_COMMON_TESTS(kind)                                                                \
    cmocka_unit_test_prestate(it_actor_test_help, (void *) (kind)),                                \
        cmocka_unit_test_prestate(it_actor_test_bad_settings, (void *) (kind)),                    \
        cmocka_unit_test_prestate(it_actor_test_lifecycle, (void *) (kind))

//  Ping until the pong's counter name reaches at least want, at most
//  timeout_ms; its last value (a counter not reported counts as 0).
uint64_t it_wait_counter(void *dealer, const char *name, uint64_t want, int timeout_ms);

#endif
