/*  it_healthd - integration test of bin/healthd: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("healthd"),
    };
    return cmocka_run_group_tests_name("it_healthd", tests, NULL, NULL);
}
