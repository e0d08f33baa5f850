/*  it_balancer - integration test of bin/balancer: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("balancer"),
    };
    return cmocka_run_group_tests_name("it_balancer", tests, NULL, NULL);
}
