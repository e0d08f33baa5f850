/*  it_apid - integration test of bin/apid: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("apid"),
    };
    return cmocka_run_group_tests_name("it_apid", tests, NULL, NULL);
}
