/*  it_chatd - integration test of bin/chatd: the real binary, driven over the bus. */
#include "it_actor.h"

int
main(void)
{
    const struct CMUnitTest tests[] = {
        IT_ACTOR_COMMON_TESTS("chatd"),
    };
    return cmocka_run_group_tests_name("it_chatd", tests, NULL, NULL);
}
