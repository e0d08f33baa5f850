/*  test_slab - unit tests for proto_slab.

    Records are written end to end (ASan sees any overlap), freed in
    several orders, and the chunk count checked: a chunk goes back when its
    last record is freed, except the one kept against churn; freed records
    are reused before a new chunk is taken.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "proto_slab.h"

#define T_SIZE 456
#define T_MANY 2000

static void
test_records_are_distinct_and_zeroed(void **state)
{
    (void) state;
    proto_slab_t *slab = proto_slab_new(T_SIZE);
    assert_non_null(slab);
    unsigned char **r = calloc(T_MANY, sizeof *r);
    for (int i = 0; i < T_MANY; i++) {
        r[i] = proto_slab_alloc(slab);
        assert_non_null(r[i]);
        assert_int_equal((uintptr_t) r[i] % _Alignof(max_align_t), 0);
        for (int k = 0; k < T_SIZE; k++)
            assert_int_equal(r[i][k], 0);
        memset(r[i], i & 0xff, T_SIZE); // the whole record is ours
    }
    for (int i = 0; i < T_MANY; i++)
        for (int k = 0; k < T_SIZE; k += 97)
            assert_int_equal(r[i][k], i & 0xff);
    assert_int_equal(proto_slab_live(slab), T_MANY);
    size_t per_chunk = PROTO_SLAB_CHUNK / (T_SIZE + 16);
    size_t chunks = proto_slab_chunks(slab);
    assert_true(chunks >= T_MANY / per_chunk && chunks <= T_MANY / per_chunk + 2);

    //  A freed record comes back zeroed, and before any new chunk.
    proto_slab_free(slab, r[5]);
    r[5] = proto_slab_alloc(slab);
    for (int k = 0; k < T_SIZE; k++)
        assert_int_equal(r[5][k], 0);
    assert_int_equal(proto_slab_chunks(slab), chunks);

    //  Every other record freed, then all: the chunks go back but one.
    for (int i = 0; i < T_MANY; i += 2)
        proto_slab_free(slab, r[i]);
    assert_int_equal(proto_slab_live(slab), T_MANY / 2);
    assert_int_equal(proto_slab_chunks(slab), chunks);
    for (int i = 1; i < T_MANY; i += 2)
        proto_slab_free(slab, r[i]);
    assert_int_equal(proto_slab_live(slab), 0);
    assert_int_equal(proto_slab_chunks(slab), 1);
    proto_slab_free(slab, NULL);

    //  Reused from the kept chunk.
    void *again = proto_slab_alloc(slab);
    assert_int_equal(proto_slab_chunks(slab), 1);
    proto_slab_free(slab, again);
    free(r);
    proto_slab_destroy(&slab);
    assert_null(slab);
    proto_slab_destroy(&slab); // twice is fine
}

//  Churn at a chunk's edge does not allocate and free a chunk each time.
static void
test_churn_keeps_one_chunk(void **state)
{
    (void) state;
    proto_slab_t *slab = proto_slab_new(T_SIZE);
    size_t per_chunk = PROTO_SLAB_CHUNK / (T_SIZE + 16);
    void **r = calloc(per_chunk + 1, sizeof *r);
    size_t n = 0;
    while (proto_slab_chunks(slab) < 2)
        r[n++] = proto_slab_alloc(slab); // the first record of a second chunk
    for (int i = 0; i < 1000; i++) {
        proto_slab_free(slab, r[n - 1]);
        assert_true(proto_slab_chunks(slab) <= 2);
        r[n - 1] = proto_slab_alloc(slab);
        assert_int_equal(proto_slab_chunks(slab), 2);
    }
    //  Destroyed with records live: every chunk goes (LeakSanitizer checks).
    free(r);
    proto_slab_destroy(&slab);
}

static void
test_bad_sizes(void **state)
{
    (void) state;
    assert_null(proto_slab_new(0));
    assert_null(proto_slab_new(PROTO_SLAB_CHUNK));
    proto_slab_t *small = proto_slab_new(1);
    assert_non_null(small);
    char *a = proto_slab_alloc(small);
    char *b = proto_slab_alloc(small);
    assert_true(b - a >= 8 || a - b >= 8);
    proto_slab_destroy(&small);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_records_are_distinct_and_zeroed),
        cmocka_unit_test(test_churn_keeps_one_chunk),
        cmocka_unit_test(test_bad_sizes),
    };
    return cmocka_run_group_tests_name("proto_slab", tests, NULL, NULL);
}
