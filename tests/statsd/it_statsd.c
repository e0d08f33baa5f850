/*  it_statsd - integration test of bin/statsd: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("statsd"),
    };
    return cmocka_run_group_tests_name("it_statsd", tests, NULL, NULL);
}
