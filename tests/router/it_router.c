/*  it_router - integration test of bin/router: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("router"),
    };
    return cmocka_run_group_tests_name("it_router", tests, NULL, NULL);
}
