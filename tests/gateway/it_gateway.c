/*  it_gateway - integration test of bin/gateway: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("gateway"),
    };
    return cmocka_run_group_tests_name("it_gateway", tests, NULL, NULL);
}
