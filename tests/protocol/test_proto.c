/*  test_proto - generated tests of the bus messages: proto, proto_desc, proto_mp.

    Every test walks the descriptors of messages.def (proto_mdesc for each
    type, proto_sdesc_* for each record), so a message added there is filled,
    encoded, decoded, compared, truncated at every byte, fuzzed and pushed past
    each of its bounds without editing this file.

    Values are derived from the field's position: variant "short" uses short
    strings and small numbers, variant "full" fills every string to exactly its
    bound and every unsigned integer to its maximum. Lists get 2 records and
    maps 2 pairs. Error paths are driven by messages hand-built with msgpack-c's
    packer from a plan (leave a field out, send it twice, with the wrong type,
    one over its bound, as nil, with a NUL byte). Inputs are copied into
    buffers of exactly their length, and truncated prefixes are cut with ASan
    poisoning, so a read one byte too far is an ASan report, not luck.

    The byte-flip loop skips the inside of str/bin payloads longer than 16
    bytes (it keeps their first 4, middle and last 4 bytes): flipping those
    only changes content, and every flip of a megabyte body would mean
    millions of megabyte copies.
*/
#include <errno.h>
#include <float.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sanitizer/asan_interface.h>

#include <cmocka.h>
#include <msgpack.h>

#include "proto.h"
#include "proto_desc.h"
#include "proto_mp.h"

// --------------------------------------------------------------------------
// Descriptors

//  Every record of messages.def, NULL-terminated.
static const proto_sdesc_t *(*const t_records[])(void) = {
#define PROTO_STRUCT(C, name, doc, fields) proto_sdesc_##name,
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT
    NULL,
};

static const char *const t_env_keys[] = {"v", "t", "id", "rid", "src", "ts"};
#define T_ENV_COUNT (sizeof t_env_keys / sizeof t_env_keys[0])

static bool
s_is_unsigned(const proto_field_t *f)
{
    return f->type == PROTO_FT_U8 || f->type == PROTO_FT_U16 || f->type == PROTO_FT_U32
           || f->type == PROTO_FT_U64;
}

//  Largest value the C type of an unsigned field holds.
static uint64_t
s_type_max(const proto_field_t *f)
{
    switch (f->type) {
        case PROTO_FT_U8:
            return UINT8_MAX;
        case PROTO_FT_U16:
            return UINT16_MAX;
        case PROTO_FT_U32:
            return UINT32_MAX;
        default:
            return UINT64_MAX;
    }
}

//  Largest value an unsigned field may carry on the bus.
static uint64_t
s_uint_max(const proto_field_t *f)
{
    uint64_t max = s_type_max(f);
    return f->bound && f->bound < max ? f->bound : max;
}

static uint64_t
s_get_uint(const proto_field_t *f, const uint8_t *base)
{
    const void *p = base + f->offset;
    switch (f->type) {
        case PROTO_FT_U8:
            return *(const uint8_t *) p;
        case PROTO_FT_U16:
            return *(const uint16_t *) p;
        case PROTO_FT_U32:
            return *(const uint32_t *) p;
        default:
            return *(const uint64_t *) p;
    }
}

static void
s_set_uint(const proto_field_t *f, uint8_t *base, uint64_t v)
{
    void *p = base + f->offset;
    switch (f->type) {
        case PROTO_FT_U8:
            *(uint8_t *) p = (uint8_t) v;
            break;
        case PROTO_FT_U16:
            *(uint16_t *) p = (uint16_t) v;
            break;
        case PROTO_FT_U32:
            *(uint32_t *) p = (uint32_t) v;
            break;
        default:
            *(uint64_t *) p = v;
            break;
    }
}

static uint32_t
s_get_count(const proto_field_t *f, const uint8_t *base)
{
    return *(const uint32_t *) (base + f->count_offset);
}

//  The body of a message: every member of the union starts here.
static uint8_t *
s_body(proto_msg_t *msg)
{
    return (uint8_t *) &msg->ping;
}

//  Call fn for every field of d and, through LIST fields, of its records.
static void
s_walk(proto_type_t type,
       const proto_sdesc_t *d,
       void (*fn)(proto_type_t type, const proto_field_t *f))
{
    for (size_t i = 0; i < d->nfields; i++) {
        fn(type, &d->fields[i]);
        if (d->fields[i].type == PROTO_FT_LIST)
            s_walk(type, d->fields[i].sub(), fn);
    }
}

static void
s_walk_all(void (*fn)(proto_type_t type, const proto_field_t *f))
{
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++)
        s_walk((proto_type_t) t, proto_mdesc((proto_type_t) t)->body(), fn);
}

// --------------------------------------------------------------------------
// Filling messages (every value from plain malloc, freed after)

typedef enum {
    T_SHORT,             // short strings, small numbers
    T_FULL,              // strings of exactly their bound, unsigned integers at their maximum
    T_VARIANTS,          // how many the round trip uses
    T_HUGE = T_VARIANTS, // T_FULL with every list and map at its bound too
} t_variant_t;

static const char *const t_variant_names[T_VARIANTS] = {"short", "full"};

//  What a plan does to its target.
typedef enum {
    T_ACT_NONE,      // the usual value
    T_ACT_OMIT,      // leave the key out
    T_ACT_DUP,       // send the key twice
    T_ACT_TYPE,      // a value of the wrong type
    T_ACT_OVER,      // one over the bound (bytes, items, pairs or value)
    T_ACT_OVER_ITEM, // KV: one pair's value one byte over item_bound
    T_ACT_NIL,       // nil
    T_ACT_NEG,       // unsigned: -1
    T_ACT_NUL,       // a string holding a NUL byte
    T_ACT_EXT,       // an ext value
    T_ACT_LIE,       // str/bin/list/map header claiming 1 MiB more than the buffer holds
} t_act_t;

//  How to build one message by hand (or fill one for proto_encode).
typedef struct {
    const proto_field_t *field; // body field the action applies to (at every depth), or NULL
    const char *env;            // envelope key the action applies to instead, or NULL
    t_act_t act;                // what to do to it
    const char *wire;           // value of "t" (NULL: the type's wire name)
    uint64_t version;           // value of "v"
    bool extra;                 // add unknown keys of every kind to every map
    bool body_first;            // body before the envelope (proto_encode writes v, t first)
} t_plan_t;

static t_plan_t
s_plan(void)
{
    t_plan_t plan = {.act = T_ACT_NONE, .version = PROTO_VERSION};
    return plan;
}

static t_act_t
s_act_on(const t_plan_t *plan, const proto_field_t *f)
{
    return plan && plan->field == f ? plan->act : T_ACT_NONE;
}

//  Every block a fill allocated.
typedef struct {
    void **ptrs;  // the blocks
    size_t count; // how many
    size_t cap;   // slots in ptrs
} t_allocs_t;

static void *
s_alloc(t_allocs_t *a, size_t size)
{
    if (a->count == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 64;
        void **ptrs = realloc(a->ptrs, cap * sizeof *ptrs);
        assert_non_null(ptrs);
        a->ptrs = ptrs;
        a->cap = cap;
    }
    void *p = malloc(size ? size : 1);
    assert_non_null(p);
    a->ptrs[a->count++] = p;
    return p;
}

static void
s_free_all(t_allocs_t *a)
{
    for (size_t i = 0; i < a->count; i++) {
        free(a->ptrs[i]);
        a->ptrs[i] = NULL;
    }
    free(a->ptrs);
    a->ptrs = NULL;
    a->count = a->cap = 0;
}

//  Deterministic text: len letters starting at idx.
static void
s_text(char *s, size_t len, unsigned idx)
{
    for (size_t k = 0; k < len; k++)
        s[k] = (char) ('a' + (idx + k) % 26);
}

static size_t
s_len(uint32_t bound, t_variant_t variant, unsigned idx)
{
    if (variant != T_SHORT)
        return bound;
    size_t len = idx % 6; // 0..5 bytes: empty strings too
    return len < bound ? len : bound;
}

//  Items of a LIST or pairs of a KV: 2, all of them (T_HUGE), or one too many.
static uint32_t
s_count(const proto_field_t *f, t_variant_t variant, t_act_t act)
{
    if (act == T_ACT_OVER)
        return f->bound + 1;
    if (variant == T_HUGE)
        return f->bound;
    return f->bound < 2 ? f->bound : 2;
}

static char *
s_new_text(t_allocs_t *a, size_t len, unsigned idx)
{
    char *s = s_alloc(a, len + 1);
    s_text(s, len, idx);
    s[len] = '\0';
    return s;
}

static void s_fill_struct(t_allocs_t *a,
                          const proto_sdesc_t *d,
                          uint8_t *base,
                          t_variant_t variant,
                          unsigned seed,
                          const t_plan_t *plan);

static void
s_fill_field(t_allocs_t *a,
             const proto_field_t *f,
             uint8_t *base,
             t_variant_t variant,
             unsigned idx,
             const t_plan_t *plan)
{
    void *p = base + f->offset;
    t_act_t act = s_act_on(plan, f);
    switch (f->type) {
        case PROTO_FT_STR: {
            size_t len = act == T_ACT_OVER ? f->bound + (size_t) 1 : s_len(f->bound, variant, idx);
            *(const char **) p = s_new_text(a, len, idx);
            break;
        }
        case PROTO_FT_BIN: {
            size_t len = act == T_ACT_OVER ? f->bound + (size_t) 1 : s_len(f->bound, variant, idx);
            uint8_t *b = s_alloc(a, len);
            for (size_t k = 0; k < len; k++)
                b[k] = (uint8_t) (idx * 7u + k * 13u); // NUL bytes included
            ((proto_bin_t *) p)->data = b;
            ((proto_bin_t *) p)->size = len;
            break;
        }
        case PROTO_FT_U8:
        case PROTO_FT_U16:
        case PROTO_FT_U32:
        case PROTO_FT_U64: {
            uint64_t max = s_uint_max(f);
            if (act == T_ACT_OVER)
                s_set_uint(f, base, max + 1); // callers check max < s_type_max(f)
            else
                s_set_uint(f, base, variant != T_SHORT ? max : 1 + idx % max);
            break;
        }
        case PROTO_FT_I64:
            *(int64_t *) p = variant != T_SHORT ? INT64_MIN : -(int64_t) idx - 1;
            break;
        case PROTO_FT_F64:
            *(double *) p = variant != T_SHORT ? -DBL_MAX : 1.5 + idx;
            break;
        case PROTO_FT_BOOL:
            *(bool *) p = true;
            break;
        case PROTO_FT_LIST: {
            const proto_sdesc_t *sub = f->sub();
            uint32_t n = s_count(f, variant, act);
            uint8_t *items = s_alloc(a, n * sub->size);
            memset(items, 0, n * sub->size);
            for (uint32_t k = 0; k < n; k++)
                s_fill_struct(a, sub, items + k * sub->size, variant, idx + k + 1, plan);
            *(uint8_t **) p = items;
            *(uint32_t *) (base + f->count_offset) = n;
            break;
        }
        case PROTO_FT_KV: {
            uint32_t n = s_count(f, variant, act);
            proto_kv_t *kv = s_alloc(a, n * sizeof *kv);
            for (uint32_t k = 0; k < n; k++) {
                size_t klen = s_len(f->item_bound, variant, idx + k);
                size_t vlen = s_len(f->item_bound, variant, idx + k + 3);
                if (act == T_ACT_OVER_ITEM && k == n - 1)
                    vlen = f->item_bound + (size_t) 1;
                kv[k].key = s_new_text(a, klen, idx + k);
                kv[k].value = s_new_text(a, vlen, idx + k + 3);
            }
            *(proto_kv_t **) p = kv;
            *(uint32_t *) (base + f->count_offset) = n;
            break;
        }
    }
}

static void
s_fill_struct(t_allocs_t *a,
              const proto_sdesc_t *d,
              uint8_t *base,
              t_variant_t variant,
              unsigned seed,
              const t_plan_t *plan)
{
    for (size_t i = 0; i < d->nfields; i++)
        s_fill_field(a, &d->fields[i], base, variant, seed * 31u + (unsigned) i, plan);
}

//  Fill every field and the envelope of a message of type.
static void
s_fill_msg(
    t_allocs_t *a, proto_msg_t *msg, proto_type_t type, t_variant_t variant, const t_plan_t *plan)
{
    proto_msg_init(msg, type);
    bool full = variant != T_SHORT;
    msg->id = full ? UINT64_MAX : 0x0123456789abcdefu + (uint64_t) type;
    msg->rid = s_new_text(a, full ? PROTO_RID_MAX : 12, (unsigned) type);
    msg->src = s_new_text(a, full ? PROTO_SRC_MAX : 9, (unsigned) type + 5);
    msg->ts = full ? UINT64_MAX : 1700000000000u + (uint64_t) type;
    s_fill_struct(a, proto_mdesc(type)->body(), s_body(msg), variant, (unsigned) type, plan);
}

// --------------------------------------------------------------------------
// Comparing

static void s_assert_struct_equal(const char *where,
                                  const proto_sdesc_t *d,
                                  const uint8_t *want,
                                  const uint8_t *got);

static void
s_assert_field_equal(const char *where,
                     const proto_field_t *f,
                     const uint8_t *want,
                     const uint8_t *got)
{
    const void *w = want + f->offset;
    const void *g = got + f->offset;
    switch (f->type) {
        case PROTO_FT_STR: {
            const char *ws = *(const char *const *) w;
            const char *gs = *(const char *const *) g;
            if ((ws == NULL) != (gs == NULL) || (ws && strcmp(ws, gs) != 0))
                fail_msg("%s.%s: string differs", where, f->key);
            break;
        }
        case PROTO_FT_BIN: {
            const proto_bin_t *wb = w;
            const proto_bin_t *gb = g;
            if (wb->size != gb->size || (wb->size && memcmp(wb->data, gb->data, wb->size) != 0))
                fail_msg("%s.%s: bytes differ", where, f->key);
            break;
        }
        case PROTO_FT_U8:
        case PROTO_FT_U16:
        case PROTO_FT_U32:
        case PROTO_FT_U64:
            if (s_get_uint(f, want) != s_get_uint(f, got))
                fail_msg("%s.%s: %llu != %llu", where, f->key,
                         (unsigned long long) s_get_uint(f, want),
                         (unsigned long long) s_get_uint(f, got));
            break;
        case PROTO_FT_I64:
            if (*(const int64_t *) w != *(const int64_t *) g)
                fail_msg("%s.%s: integer differs", where, f->key);
            break;
        case PROTO_FT_F64:
            if (*(const double *) w != *(const double *) g)
                fail_msg("%s.%s: %g != %g", where, f->key, *(const double *) w,
                         *(const double *) g);
            break;
        case PROTO_FT_BOOL:
            if (*(const bool *) w != *(const bool *) g)
                fail_msg("%s.%s: bool differs", where, f->key);
            break;
        case PROTO_FT_LIST: {
            uint32_t n = s_get_count(f, want);
            if (n != s_get_count(f, got))
                fail_msg("%s.%s: %u items != %u", where, f->key, n, s_get_count(f, got));
            const proto_sdesc_t *sub = f->sub();
            const uint8_t *wi = *(const uint8_t *const *) w;
            const uint8_t *gi = *(const uint8_t *const *) g;
            for (uint32_t k = 0; k < n; k++)
                s_assert_struct_equal(f->key, sub, wi + k * sub->size, gi + k * sub->size);
            break;
        }
        case PROTO_FT_KV: {
            uint32_t n = s_get_count(f, want);
            if (n != s_get_count(f, got))
                fail_msg("%s.%s: %u pairs != %u", where, f->key, n, s_get_count(f, got));
            const proto_kv_t *wk = *(const proto_kv_t *const *) w;
            const proto_kv_t *gk = *(const proto_kv_t *const *) g;
            for (uint32_t k = 0; k < n; k++)
                if (strcmp(wk[k].key, gk[k].key) != 0 || strcmp(wk[k].value, gk[k].value) != 0)
                    fail_msg("%s.%s: pair %u differs", where, f->key, k);
            break;
        }
    }
}

static void
s_assert_struct_equal(const char *where,
                      const proto_sdesc_t *d,
                      const uint8_t *want,
                      const uint8_t *got)
{
    for (size_t i = 0; i < d->nfields; i++)
        s_assert_field_equal(where, &d->fields[i], want, got);
}

static void
s_assert_msg_equal(proto_msg_t *want, proto_msg_t *got)
{
    const proto_mdesc_t *md = proto_mdesc(want->type);
    assert_int_equal(got->type, want->type);
    assert_true(got->id == want->id);
    assert_true(got->ts == want->ts);
    assert_string_equal(got->rid, want->rid);
    assert_string_equal(got->src, want->src);
    s_assert_struct_equal(md->wire, md->body(), s_body(want), s_body(got));
}

//  Assert that field f, wherever it occurs in d (records of lists too), is absent.
static void
s_assert_absent(const proto_sdesc_t *d, const uint8_t *base, const proto_field_t *target)
{
    for (size_t i = 0; i < d->nfields; i++) {
        const proto_field_t *f = &d->fields[i];
        const void *p = base + f->offset;
        if (f == target) {
            switch (f->type) {
                case PROTO_FT_STR:
                    assert_null(*(const char *const *) p);
                    break;
                case PROTO_FT_BIN:
                    assert_null(((const proto_bin_t *) p)->data);
                    assert_int_equal(((const proto_bin_t *) p)->size, 0);
                    break;
                case PROTO_FT_U8:
                case PROTO_FT_U16:
                case PROTO_FT_U32:
                case PROTO_FT_U64:
                    assert_true(s_get_uint(f, base) == 0);
                    break;
                case PROTO_FT_I64:
                    assert_true(*(const int64_t *) p == 0);
                    break;
                case PROTO_FT_F64:
                    assert_true(*(const double *) p == 0.0);
                    break;
                case PROTO_FT_BOOL:
                    assert_false(*(const bool *) p);
                    break;
                case PROTO_FT_LIST:
                case PROTO_FT_KV:
                    assert_null(*(const void *const *) p);
                    assert_int_equal(s_get_count(f, base), 0);
                    break;
            }
        } else if (f->type == PROTO_FT_LIST) {
            const proto_sdesc_t *sub = f->sub();
            const uint8_t *items = *(const uint8_t *const *) p;
            for (uint32_t k = 0; k < s_get_count(f, base); k++)
                s_assert_absent(sub, items + k * sub->size, target);
        }
    }
}

// --------------------------------------------------------------------------
// Decoding helpers

//  Copy len bytes into a block of exactly len bytes (ASan sees any read past it).
static uint8_t *
s_exact_copy(const void *data, size_t len)
{
    uint8_t *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    if (len)
        memcpy(copy, data, len);
    return copy;
}

static int
s_decode_exact(const void *data, size_t len, proto_msg_t *msg)
{
    uint8_t *copy = s_exact_copy(data, len);
    int rc = proto_decode(copy, len, msg);
    free(copy);
    return rc;
}

static const char *
s_field_name(const char *field)
{
    return field ? field : "(none)";
}

//  Fill and encode a message. Returns 0, or -1 when it is over PROTO_MSG_MAX
//  as a whole (then it could never be sent, and is skipped).
static int
s_encode_filled(
    t_allocs_t *a, proto_msg_t *msg, proto_type_t type, t_variant_t variant, proto_buf_t *buf)
{
    s_fill_msg(a, msg, type, variant, NULL);
    errno = 0;
    if (proto_encode(msg, buf) == 0)
        return 0;
    if (errno == EMSGSIZE && buf->size > PROTO_MSG_MAX) {
        print_message("%s (%s): %zu bytes, over PROTO_MSG_MAX: skipped\n", proto_type_name(type),
                      t_variant_names[variant], buf->size);
        return -1;
    }
    fail_msg("%s (%s): proto_encode failed: %s", proto_type_name(type), t_variant_names[variant],
             strerror(errno));
    return -1;
}

// --------------------------------------------------------------------------
// Hand-built messages

static void
s_pack_text(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

//  A str of len generated letters.
static void
s_pack_letters(msgpack_packer *pk, size_t len, unsigned idx)
{
    char *s = malloc(len ? len : 1);
    assert_non_null(s);
    s_text(s, len, idx);
    s_pack_text(pk, s, len);
    free(s);
}

//  Unknown keys of every kind, as a newer sender might add.
#define T_EXTRA_KEYS 9
static void
s_pack_extra(msgpack_packer *pk)
{
    static const uint8_t ext[5] = {1, 2, 3, 4, 5};
    s_pack_text(pk, "zz_nil", 6);
    msgpack_pack_nil(pk);
    s_pack_text(pk, "zz_int", 6);
    msgpack_pack_int64(pk, -12345678901);
    s_pack_text(pk, "zz_float", 8);
    msgpack_pack_float(pk, 2.5f);
    s_pack_text(pk, "zz_str", 6);
    s_pack_text(pk, "hello", 5);
    s_pack_text(pk, "zz_bin", 6);
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "\0\1\2", 3);
    s_pack_text(pk, "zz_array", 8);
    msgpack_pack_array(pk, 2);
    msgpack_pack_true(pk);
    msgpack_pack_array(pk, 1);
    msgpack_pack_map(pk, 0);
    s_pack_text(pk, "zz_map", 6);
    msgpack_pack_map(pk, 1);
    msgpack_pack_uint8(pk, 1); // not every map has string keys
    msgpack_pack_double(pk, 0.25);
    s_pack_text(pk, "zz_fixext", 9);
    msgpack_pack_ext_with_body(pk, ext, 4, 7);
    s_pack_text(pk, "zz_ext8", 7);
    msgpack_pack_ext_with_body(pk, ext, 5, -3);
}

static size_t
s_copies(const t_plan_t *plan, const proto_field_t *f)
{
    t_act_t act = s_act_on(plan, f);
    return act == T_ACT_OMIT ? 0 : act == T_ACT_DUP ? 2 : 1;
}

static size_t
s_count_entries(const proto_sdesc_t *d, const t_plan_t *plan)
{
    size_t n = plan->extra ? T_EXTRA_KEYS : 0;
    for (size_t i = 0; i < d->nfields; i++)
        n += s_copies(plan, &d->fields[i]);
    return n;
}

static void
s_pack_entries(msgpack_packer *pk, const proto_sdesc_t *d, const t_plan_t *plan, unsigned seed);

static void
s_pack_value(msgpack_packer *pk, const proto_field_t *f, const t_plan_t *plan, unsigned idx)
{
    t_act_t act = s_act_on(plan, f);
    switch (act) {
        case T_ACT_TYPE:
            if (f->type == PROTO_FT_STR || f->type == PROTO_FT_BIN)
                msgpack_pack_uint64(pk, 7);
            else
                s_pack_text(pk, "7", 1);
            return;
        case T_ACT_NIL:
            msgpack_pack_nil(pk);
            return;
        case T_ACT_NEG:
            msgpack_pack_int64(pk, -1);
            return;
        case T_ACT_EXT:
            msgpack_pack_ext_with_body(pk, "\1\2\3\4", 4, 1);
            return;
        case T_ACT_LIE: {
            // a header claiming 1 MiB, then one byte (an empty map) of it
            uint8_t raw[6] = {0xdb, 0x00, 0x10, 0x00, 0x00, 0x80};
            raw[0] = f->type == PROTO_FT_LIST  ? 0xdd
                     : f->type == PROTO_FT_KV  ? 0xdf
                     : f->type == PROTO_FT_BIN ? 0xc6
                                               : 0xdb;
            pk->callback(pk->data, (const char *) raw, sizeof raw);
            return;
        }
        case T_ACT_NUL:
            if (f->type == PROTO_FT_STR) {
                s_pack_text(pk, "a\0b", 3);
                return;
            }
            break; // KV: below
        default:
            break;
    }
    switch (f->type) {
        case PROTO_FT_STR:
            s_pack_letters(
                pk, act == T_ACT_OVER ? f->bound + (size_t) 1 : s_len(f->bound, T_SHORT, idx), idx);
            break;
        case PROTO_FT_BIN: {
            size_t len = act == T_ACT_OVER ? f->bound + (size_t) 1 : s_len(f->bound, T_SHORT, idx);
            uint8_t *b = calloc(len ? len : 1, 1);
            assert_non_null(b);
            msgpack_pack_bin(pk, len);
            msgpack_pack_bin_body(pk, b, len);
            free(b);
            break;
        }
        case PROTO_FT_U8:
        case PROTO_FT_U16:
        case PROTO_FT_U32:
        case PROTO_FT_U64:
            msgpack_pack_uint64(pk,
                                act == T_ACT_OVER ? s_uint_max(f) + 1 : 1 + idx % s_uint_max(f));
            break;
        case PROTO_FT_I64:
            msgpack_pack_int64(pk, -(int64_t) idx - 1);
            break;
        case PROTO_FT_F64:
            msgpack_pack_double(pk, 1.5 + idx);
            break;
        case PROTO_FT_BOOL:
            msgpack_pack_true(pk);
            break;
        case PROTO_FT_LIST: {
            const proto_sdesc_t *sub = f->sub();
            uint32_t n = s_count(f, T_SHORT, act);
            msgpack_pack_array(pk, n);
            for (uint32_t k = 0; k < n; k++) {
                msgpack_pack_map(pk, s_count_entries(sub, plan));
                s_pack_entries(pk, sub, plan, idx + k + 1);
            }
            break;
        }
        case PROTO_FT_KV: {
            uint32_t n = s_count(f, T_SHORT, act);
            msgpack_pack_map(pk, n);
            for (uint32_t k = 0; k < n; k++) {
                char key[16];
                int klen = snprintf(key, sizeof key, "h%u", k);
                if (act == T_ACT_NUL && k == 0)
                    s_pack_text(pk, "a\0b", 3);
                else
                    s_pack_text(pk, key, (size_t) klen);
                s_pack_letters(
                    pk, act == T_ACT_OVER_ITEM && k == n - 1 ? f->item_bound + (size_t) 1 : 4,
                    idx + k);
            }
            break;
        }
    }
}

static void
s_pack_entries(msgpack_packer *pk, const proto_sdesc_t *d, const t_plan_t *plan, unsigned seed)
{
    if (plan->extra)
        s_pack_extra(pk);
    for (size_t i = 0; i < d->nfields; i++) {
        const proto_field_t *f = &d->fields[i];
        for (size_t c = 0; c < s_copies(plan, f); c++) {
            s_pack_text(pk, f->key, strlen(f->key));
            s_pack_value(pk, f, plan, seed * 31u + (unsigned) i);
        }
    }
}

static void
s_pack_env_value(msgpack_packer *pk, proto_type_t type, const t_plan_t *plan, const char *key)
{
    t_act_t act = plan->env && strcmp(plan->env, key) == 0 ? plan->act : T_ACT_NONE;
    bool is_str = strcmp(key, "t") == 0 || strcmp(key, "rid") == 0 || strcmp(key, "src") == 0;
    if (act == T_ACT_TYPE) {
        if (is_str)
            msgpack_pack_uint64(pk, 7);
        else
            s_pack_text(pk, "1", 1);
    } else if (act == T_ACT_NIL) {
        msgpack_pack_nil(pk);
    } else if (act == T_ACT_NUL) {
        s_pack_text(pk, "a\0b", 3);
    } else if (strcmp(key, "v") == 0) {
        msgpack_pack_uint64(pk, plan->version);
    } else if (strcmp(key, "t") == 0) {
        const char *wire = plan->wire ? plan->wire : proto_type_name(type);
        s_pack_text(pk, wire, strlen(wire));
    } else if (strcmp(key, "id") == 0) {
        msgpack_pack_uint64(pk, 42);
    } else if (strcmp(key, "ts") == 0) {
        msgpack_pack_uint64(pk, 1700000000000u);
    } else if (strcmp(key, "rid") == 0) {
        s_pack_letters(pk, act == T_ACT_OVER ? PROTO_RID_MAX + 1 : 8, 1);
    } else {
        s_pack_letters(pk, act == T_ACT_OVER ? PROTO_SRC_MAX + 1 : 8, 2);
    }
}

//  Pack a message of type following plan: envelope first, then the body.
static void
s_pack_msg(msgpack_sbuffer *sb, proto_type_t type, const t_plan_t *plan)
{
    msgpack_packer pk;
    const proto_sdesc_t *d = proto_mdesc(type)->body();
    size_t n = s_count_entries(d, plan);
    for (size_t e = 0; e < T_ENV_COUNT; e++) {
        bool hit = plan->env && strcmp(plan->env, t_env_keys[e]) == 0;
        n += hit && plan->act == T_ACT_OMIT ? 0 : hit && plan->act == T_ACT_DUP ? 2 : 1;
    }
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, n);
    if (plan->body_first)
        s_pack_entries(&pk, d, plan, (unsigned) type);
    for (size_t e = 0; e < T_ENV_COUNT; e++) {
        const char *key = t_env_keys[e];
        bool hit = plan->env && strcmp(plan->env, key) == 0;
        size_t copies = hit && plan->act == T_ACT_OMIT ? 0 : hit && plan->act == T_ACT_DUP ? 2 : 1;
        for (size_t c = 0; c < copies; c++) {
            s_pack_text(&pk, key, strlen(key));
            s_pack_env_value(&pk, type, plan, key);
        }
    }
    if (!plan->body_first)
        s_pack_entries(&pk, d, plan, (unsigned) type);
}

//  Pack a message following plan and decode it into msg.
static int
s_try(proto_type_t type, const t_plan_t *plan, proto_msg_t *msg)
{
    msgpack_sbuffer sb;
    s_pack_msg(&sb, type, plan);
    int rc = s_decode_exact(sb.data, sb.size, msg);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

//  Pack a message following plan; its decode must fail with err on field.
static void
s_expect_fail(
    proto_type_t type, const t_plan_t *plan, proto_err_t err, const char *field, const char *what)
{
    // the same answer whichever comes first, envelope (the decoder's one
    // pass, which falls back on any failure) or body (the careful way only)
    for (int order = 0; order < 2; order++) {
        t_plan_t p = *plan;
        p.body_first = order == 1;
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_NONE);
        int rc = s_try(type, &p, &msg);
        if (rc != -2 || msg.err != err
            || (field && (msg.err_field == NULL || strcmp(msg.err_field, field) != 0)))
            fail_msg("%s, %s%s: got %d %s on %s, want -2 %s on %s", proto_type_name(type), what,
                     order ? " (body first)" : "", rc, proto_err_name(msg.err),
                     s_field_name(msg.err_field), proto_err_name(err), s_field_name(field));
        proto_msg_clear(&msg);
    }
}

//  Pack a message following plan; it must decode. msg is left for the caller to check.
static void
s_expect_ok(proto_type_t type, const t_plan_t *plan, proto_msg_t *msg, const char *what)
{
    proto_msg_init(msg, PROTO_NONE);
    int rc = s_try(type, plan, msg);
    if (rc != 0)
        fail_msg("%s, %s: got %d %s on %s, want 0", proto_type_name(type), what, rc,
                 proto_err_name(msg->err), s_field_name(msg->err_field));
    assert_int_equal(msg->type, type);
}

// --------------------------------------------------------------------------
// messages.def itself

static void
s_check_sdesc(const proto_sdesc_t *d, bool is_message)
{
    assert_non_null(d->name);
    assert_true(d->doc != NULL && d->doc[0] != '\0');
    assert_true(d->nfields <= PROTO_MAX_FIELDS); // the decoder's seen-bitmap is 64 bits
    for (size_t i = 0; i < d->nfields; i++) {
        const proto_field_t *f = &d->fields[i];
        if (f->key == NULL || f->key[0] == '\0' || f->doc == NULL || f->doc[0] == '\0')
            fail_msg("%s: field %zu has no key or no doc", d->name, i);
        for (size_t j = 0; j < i; j++)
            if (strcmp(f->key, d->fields[j].key) == 0)
                fail_msg("%s: key %s defined twice", d->name, f->key);
        if (is_message)
            for (size_t e = 0; e < T_ENV_COUNT; e++)
                if (strcmp(f->key, t_env_keys[e]) == 0)
                    fail_msg("%s: body field %s uses an envelope key", d->name, f->key);
        bool needs_bound = f->type == PROTO_FT_STR || f->type == PROTO_FT_BIN
                           || f->type == PROTO_FT_LIST || f->type == PROTO_FT_KV;
        if (needs_bound && f->bound == 0)
            fail_msg("%s.%s: %s field without a bound", d->name, f->key, proto_ftype_name(f->type));
        if (f->type == PROTO_FT_KV && f->item_bound == 0)
            fail_msg("%s.%s: map without a bound on its strings", d->name, f->key);
        if (f->type == PROTO_FT_LIST && (f->sub == NULL || f->sub() == NULL))
            fail_msg("%s.%s: list without a record", d->name, f->key);
        if (s_is_unsigned(f) && f->bound > s_type_max(f))
            fail_msg("%s.%s: bound over the type's range", d->name, f->key);
        if (f->type == PROTO_FT_LIST || f->type == PROTO_FT_KV)
            assert_true(f->count_offset + sizeof(uint32_t) <= d->size);
        assert_true(f->offset < d->size);
    }
}

static void
test_messages_def(void **state)
{
    (void) state;
    assert_null(proto_mdesc(PROTO_NONE));
    assert_null(proto_mdesc(PROTO_TYPE_COUNT));
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        const proto_mdesc_t *md = proto_mdesc((proto_type_t) t);
        assert_non_null(md);
        assert_int_equal(md->type, t);
        assert_non_null(md->wire);
        size_t len = strlen(md->wire);
        if (len == 0 || len > PROTO_TYPE_MAX
            || strspn(md->wire, "abcdefghijklmnopqrstuvwxyz.") != len)
            fail_msg("type %d: bad wire name \"%s\"", t, md->wire);
        for (int u = PROTO_NONE + 1; u < t; u++)
            if (strcmp(md->wire, proto_mdesc((proto_type_t) u)->wire) == 0)
                fail_msg("wire name %s used twice", md->wire);
        if (md->doc == NULL || md->doc[0] == '\0' || md->sender == NULL || md->sender[0] == '\0'
            || md->receivers == NULL || md->receivers[0] == '\0')
            fail_msg("%s: needs a doc, a sender and receivers", md->wire);
        if (md->socket == NULL
            || (strcmp(md->socket, "ROUTER") != 0 && strcmp(md->socket, "XPUB") != 0))
            fail_msg("%s: socket must be ROUTER or XPUB", md->wire);
        if ((md->socket_type == PROTO_SOCKET_XPUB) != (strcmp(md->socket, "XPUB") == 0))
            fail_msg("%s: socket_type is not socket", md->wire);
        assert_non_null(md->body);
        s_check_sdesc(md->body(), true);
    }
    size_t records = 0;
    for (size_t r = 0; t_records[r]; r++, records++)
        s_check_sdesc(t_records[r](), false);
    assert_true(records > 0);
}

//  The bound constants of proto.h are those of the descriptors (a sample:
//  the X-macros make them all the same way).
static void
test_bound_constants(void **state)
{
    (void) state;
    const struct {
        long constant;                        // PROTO_<NAME>_<KEY>[_ITEM]_MAX
        const proto_sdesc_t *(*record)(void); // its record
        const char *key;                      // its field
        bool item;                            // a map's string bound, not its pairs
    } cases[] = {
        {PROTO_DECIDE_HOST_MAX, proto_sdesc_decide, "host", false},
        {PROTO_BACKEND_REGION_MAX, proto_sdesc_backend, "region", false},
        {PROTO_COUNTER_NAME_MAX, proto_sdesc_counter, "name", false},
        {PROTO_PONG_COUNTERS_MAX, proto_sdesc_pong, "counters", false},
        {PROTO_REQINFO_PATH_MAX, proto_sdesc_reqinfo, "path", false},
        {PROTO_LEASE_HEADERS_MAX, proto_sdesc_lease, "headers", false},
        {PROTO_LEASE_HEADERS_ITEM_MAX, proto_sdesc_lease, "headers", true},
        {PROTO_ADMIN_REQUEST_BODY_MAX, proto_sdesc_admin_request, "body", false},
        {PROTO_CONFIG_REPLY_BODY_MAX, proto_sdesc_config_reply, "body", false},
        {PROTO_ERROR_MESSAGE_MAX, proto_sdesc_error, "message", false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const proto_sdesc_t *d = cases[i].record();
        const proto_field_t *f = NULL;
        for (size_t j = 0; j < d->nfields && f == NULL; j++)
            if (strcmp(d->fields[j].key, cases[i].key) == 0)
                f = &d->fields[j];
        assert_non_null(f);
        long want = (long) (cases[i].item ? f->item_bound : f->bound);
        if (cases[i].constant != want)
            fail_msg("%s.%s: constant %ld, messages.def %ld", d->name, f->key, cases[i].constant,
                     want);
    }
    // usable as an array size
    char host[PROTO_DECIDE_HOST_MAX + 1];
    assert_int_equal(sizeof host, 256);
}

static void
test_type_names(void **state)
{
    (void) state;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        const char *name = proto_type_name((proto_type_t) t);
        assert_non_null(name);
        assert_int_equal(proto_type_by_name(name, strlen(name)), t);
        // a strict prefix of a name is not a name
        if (strlen(name) > 1)
            assert_int_equal(proto_type_by_name(name, strlen(name) - 1), PROTO_NONE);
    }
    assert_null(proto_type_name(PROTO_NONE));
    assert_null(proto_type_name(PROTO_TYPE_COUNT));
    assert_int_equal(proto_type_by_name("nope", 4), PROTO_NONE);
    assert_int_equal(proto_type_by_name("", 0), PROTO_NONE);
    assert_int_equal(proto_type_by_name("pingx", 5), PROTO_NONE);
}

static void
test_err_names(void **state)
{
    (void) state;
    for (int e = 0; e < PROTO_ERR_COUNT; e++) {
        const char *name = proto_err_name((proto_err_t) e);
        assert_non_null(name);
        assert_true(name[0] != '\0');
        for (int f = 0; f < e; f++)
            assert_string_not_equal(name, proto_err_name((proto_err_t) f));
    }
    assert_string_equal(proto_err_name(PROTO_OK), "ok");
    assert_string_equal(proto_err_name(PROTO_ERR_MALFORMED), "malformed");
    assert_non_null(proto_err_name(PROTO_ERR_COUNT));
    assert_non_null(proto_err_name((proto_err_t) -1));
}

// --------------------------------------------------------------------------
// Round trip, truncation, fuzzing

static void
test_round_trip(void **state)
{
    (void) state;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        for (int v = 0; v < T_VARIANTS; v++) {
            t_allocs_t a = {0};
            proto_msg_t want, got;
            proto_buf_t buf = {0}, again = {0};
            proto_msg_init(&got, PROTO_NONE);
            if (s_encode_filled(&a, &want, (proto_type_t) t, (t_variant_t) v, &buf) == 0) {
                int rc = s_decode_exact(buf.data, buf.size, &got);
                if (rc != 0)
                    fail_msg("%s (%s): decode failed: %s on %s", proto_type_name((proto_type_t) t),
                             t_variant_names[v], proto_err_name(got.err),
                             s_field_name(got.err_field));
                assert_int_equal(got.err, PROTO_OK);
                s_assert_msg_equal(&want, &got);
                // what was decoded encodes to the same bytes
                assert_int_equal(proto_encode(&got, &again), 0);
                assert_int_equal(again.size, buf.size);
                assert_memory_equal(again.data, buf.data, buf.size);
                // decoding into a message that holds data replaces it
                assert_int_equal(s_decode_exact(again.data, again.size, &got), 0);
                s_assert_msg_equal(&want, &got);
            }
            proto_msg_clear(&got);
            proto_msg_clear(&got); // safe twice
            proto_buf_free(&again);
            proto_buf_free(&buf);
            proto_buf_free(&buf); // safe twice
            s_free_all(&a);
        }
    }
}

//  Decode every strict prefix of buf: all -2 malformed. Each prefix ends
//  where the block's addressable bytes end (the tail is ASan-poisoned one
//  byte at a time, from the end), so no read past a prefix goes unnoticed.
static void
s_check_prefixes(const char *what, const proto_buf_t *buf)
{
    proto_msg_t msg;
    uint8_t *copy = s_exact_copy(buf->data, buf->size);
    proto_msg_init(&msg, PROTO_NONE);
    for (size_t len = buf->size; len-- > 0;) {
        ASAN_POISON_MEMORY_REGION(copy + len, 1);
        int rc = proto_decode(copy, len, &msg);
        if (rc != -2 || msg.err != PROTO_ERR_MALFORMED)
            fail_msg("%s: prefix of %zu of %zu bytes: got %d %s", what, len, buf->size, rc,
                     proto_err_name(msg.err));
    }
    ASAN_UNPOISON_MEMORY_REGION(copy, buf->size);
    free(copy);

    // one trailing byte of garbage
    copy = malloc(buf->size + 1);
    assert_non_null(copy);
    memcpy(copy, buf->data, buf->size);
    copy[buf->size] = 0xc0;
    assert_int_equal(proto_decode(copy, buf->size + 1, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_MALFORMED);
    free(copy);
    proto_msg_clear(&msg);
}

static void
test_truncated(void **state)
{
    (void) state;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        for (int v = 0; v < T_VARIANTS; v++) {
            t_allocs_t a = {0};
            proto_msg_t msg;
            proto_buf_t buf = {0};
            if (s_encode_filled(&a, &msg, (proto_type_t) t, (t_variant_t) v, &buf) == 0) {
                char what[64];
                snprintf(what, sizeof what, "%s (%s)", proto_type_name((proto_type_t) t),
                         t_variant_names[v]);
                s_check_prefixes(what, &buf);
            }
            proto_buf_free(&buf);
            s_free_all(&a);
        }
    }
}

//  Mark the inside of every str/bin payload longer than 16 bytes, all but
//  its first 4, middle and last 4 bytes: flipping those only changes a
//  value's content, and skipping them keeps the fuzz loop quick on
//  megabyte-sized fields.
static void
s_mark_payloads(proto_mp_t *mp, const uint8_t *start, uint8_t *skip)
{
    const uint8_t *data = NULL;
    uint32_t len = 0, count;
    switch (proto_mp_peek(mp)) {
        case PROTO_MP_STR:
            assert_int_equal(proto_mp_str(mp, (const char **) &data, &len), 0);
            break;
        case PROTO_MP_BIN:
            assert_int_equal(proto_mp_bin(mp, &data, &len), 0);
            break;
        case PROTO_MP_ARRAY:
            assert_int_equal(proto_mp_array(mp, &count), 0);
            for (uint32_t k = 0; k < count; k++)
                s_mark_payloads(mp, start, skip);
            return;
        case PROTO_MP_MAP:
            assert_int_equal(proto_mp_map(mp, &count), 0);
            for (uint32_t k = 0; k < 2 * count; k++)
                s_mark_payloads(mp, start, skip);
            return;
        default:
            assert_int_equal(proto_mp_skip(mp), 0);
            return;
    }
    if (len > 16) {
        size_t at = (size_t) (data - start);
        memset(skip + at + 4, 1, len - 8);
        skip[at + len / 2] = 0;
    }
}

static void
s_fuzz(const char *what, const proto_buf_t *buf)
{
    static const int flips[] = {0x00, 0xff, 0xc1, 0xdd, -1}; // -1: byte ^ 0x01
    uint8_t *copy = s_exact_copy(buf->data, buf->size);
    uint8_t *skip = calloc(buf->size, 1);
    proto_msg_t msg;
    proto_buf_t again = {0};
    proto_mp_t mp;
    size_t decoded = 0, rejected = 0;
    assert_non_null(skip);
    proto_mp_init(&mp, buf->data, buf->size);
    s_mark_payloads(&mp, buf->data, skip);
    assert_true(proto_mp_done(&mp));
    proto_msg_init(&msg, PROTO_NONE);
    for (size_t i = 0; i < buf->size; i++) {
        if (skip[i])
            continue;
        uint8_t orig = copy[i];
        for (size_t k = 0; k < sizeof flips / sizeof flips[0]; k++) {
            uint8_t b = flips[k] < 0 ? orig ^ 0x01 : (uint8_t) flips[k];
            if (b == orig)
                continue;
            copy[i] = b;
            int rc = proto_decode(copy, buf->size, &msg);
            if (rc == 0) {
                // whatever the decoder accepts, the encoder can send
                if (proto_encode(&msg, &again) != 0)
                    fail_msg("%s: byte %zu = 0x%02x: decoded but not encodable: %s", what, i, b,
                             strerror(errno));
                decoded++;
            } else if (rc == -2) {
                assert_true(msg.err > PROTO_OK && msg.err < PROTO_ERR_COUNT);
                rejected++;
            } else {
                fail_msg("%s: byte %zu = 0x%02x: proto_decode returned %d", what, i, b, rc);
            }
        }
        copy[i] = orig;
    }
    assert_true(rejected > 0);
    (void) decoded;
    proto_msg_clear(&msg);
    proto_buf_free(&again);
    free(skip);
    free(copy);
}

static void
test_fuzz_flips(void **state)
{
    (void) state;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        for (int v = 0; v < T_VARIANTS; v++) {
            t_allocs_t a = {0};
            proto_msg_t msg;
            proto_buf_t buf = {0};
            if (s_encode_filled(&a, &msg, (proto_type_t) t, (t_variant_t) v, &buf) == 0) {
                char what[64];
                snprintf(what, sizeof what, "%s (%s)", proto_type_name((proto_type_t) t),
                         t_variant_names[v]);
                s_fuzz(what, &buf);
            }
            proto_buf_free(&buf);
            s_free_all(&a);
        }
    }
}

// --------------------------------------------------------------------------
// Bounds

//  proto_encode refuses a value one over its bound.
static void
s_check_encode_over(proto_type_t type, const proto_field_t *f)
{
    t_act_t acts[2] = {T_ACT_OVER, T_ACT_NONE};
    if (s_is_unsigned(f) && s_uint_max(f) == s_type_max(f))
        return; // the C type cannot hold more
    if (f->type == PROTO_FT_I64 || f->type == PROTO_FT_F64 || f->type == PROTO_FT_BOOL)
        return;
    if (f->type == PROTO_FT_KV)
        acts[1] = T_ACT_OVER_ITEM;
    for (size_t k = 0; k < 2 && acts[k] != T_ACT_NONE; k++) {
        t_allocs_t a = {0};
        proto_msg_t msg;
        proto_buf_t buf = {0};
        t_plan_t plan = s_plan();
        plan.field = f;
        plan.act = acts[k];
        s_fill_msg(&a, &msg, type, T_SHORT, &plan);
        errno = 0;
        if (proto_encode(&msg, &buf) != -1 || errno != EMSGSIZE)
            fail_msg("%s.%s: a value over the bound encoded (errno %d)", proto_type_name(type),
                     f->key, errno);
        proto_buf_free(&buf);
        s_free_all(&a);
    }
}

static void
test_encode_bounds(void **state)
{
    (void) state;
    s_walk_all(s_check_encode_over);

    // the envelope's strings too
    for (int k = 0; k < 2; k++) {
        t_allocs_t a = {0};
        proto_msg_t msg;
        proto_buf_t buf = {0};
        s_fill_msg(&a, &msg, PROTO_PING, T_SHORT, NULL);
        if (k == 0)
            msg.rid = s_new_text(&a, PROTO_RID_MAX + 1, 0);
        else
            msg.src = s_new_text(&a, PROTO_SRC_MAX + 1, 0);
        errno = 0;
        assert_int_equal(proto_encode(&msg, &buf), -1);
        assert_int_equal(errno, EMSGSIZE);
        proto_buf_free(&buf);
        s_free_all(&a);
    }
}

//  The decoder refuses a value one over its bound, naming the key.
static void
s_check_decode_over(proto_type_t type, const proto_field_t *f)
{
    t_plan_t plan = s_plan();
    plan.field = f;
    if (f->type == PROTO_FT_I64 || f->type == PROTO_FT_F64 || f->type == PROTO_FT_BOOL)
        return;
    if (s_is_unsigned(f) && s_uint_max(f) == UINT64_MAX)
        return; // nothing above it to send
    plan.act = T_ACT_OVER;
    s_expect_fail(type, &plan, PROTO_ERR_BOUND, f->key, "one over the bound");
    if (f->type == PROTO_FT_KV) {
        plan.act = T_ACT_OVER_ITEM;
        s_expect_fail(type, &plan, PROTO_ERR_BOUND, f->key, "a map value one over the bound");
    }
    if (s_is_unsigned(f)) {
        plan.act = T_ACT_NEG;
        s_expect_fail(type, &plan, PROTO_ERR_BOUND, f->key, "a negative unsigned");
    }
}

static void
test_decode_bounds(void **state)
{
    (void) state;
    s_walk_all(s_check_decode_over);

    // exactly at the bound is fine (the round trip's full variant does that
    // for every field); here the envelope's strings
    t_plan_t plan = s_plan();
    plan.act = T_ACT_OVER;
    plan.env = "rid";
    s_expect_fail(PROTO_PING, &plan, PROTO_ERR_BOUND, "rid", "rid over its bound");
    plan.env = "src";
    s_expect_fail(PROTO_PING, &plan, PROTO_ERR_BOUND, "src", "src over its bound");
}

// --------------------------------------------------------------------------
// Keys: missing, wrong type, duplicate, nil, NUL, unknown

static void
s_check_missing(proto_type_t type, const proto_field_t *f)
{
    t_plan_t plan = s_plan();
    plan.field = f;
    plan.act = T_ACT_OMIT;
    if (f->required) {
        s_expect_fail(type, &plan, PROTO_ERR_MISSING, f->key, "required key left out");
    } else {
        proto_msg_t msg;
        s_expect_ok(type, &plan, &msg, "optional key left out");
        s_assert_absent(proto_mdesc(type)->body(), s_body(&msg), f);
        proto_msg_clear(&msg);
    }
}

static void
test_missing(void **state)
{
    (void) state;
    s_walk_all(s_check_missing);
}

static void
s_check_wrong_type(proto_type_t type, const proto_field_t *f)
{
    t_plan_t plan = s_plan();
    plan.field = f;
    // a string where a number, bool, list or map is expected, and the reverse
    plan.act = T_ACT_TYPE;
    s_expect_fail(type, &plan, PROTO_ERR_TYPE, f->key, "value of the wrong type");
    plan.act = T_ACT_EXT; // ext values are skipped only for unknown keys
    s_expect_fail(type, &plan, PROTO_ERR_TYPE, f->key, "an ext value");
}

static void
test_wrong_type(void **state)
{
    (void) state;
    s_walk_all(s_check_wrong_type);
}

static void
s_check_duplicate(proto_type_t type, const proto_field_t *f)
{
    t_plan_t plan = s_plan();
    plan.field = f;
    plan.act = T_ACT_DUP;
    s_expect_fail(type, &plan, PROTO_ERR_DUPLICATE, f->key, "key sent twice");
}

static void
test_duplicate(void **state)
{
    (void) state;
    s_walk_all(s_check_duplicate);
}

static void
s_check_nil(proto_type_t type, const proto_field_t *f)
{
    t_plan_t plan = s_plan();
    plan.field = f;
    plan.act = T_ACT_NIL;
    if (f->required) {
        s_expect_fail(type, &plan, PROTO_ERR_TYPE, f->key, "nil for a required key");
    } else {
        proto_msg_t msg;
        s_expect_ok(type, &plan, &msg, "nil for an optional key");
        s_assert_absent(proto_mdesc(type)->body(), s_body(&msg), f);
        proto_msg_clear(&msg);
    }
}

static void
test_nil_optional(void **state)
{
    (void) state;
    s_walk_all(s_check_nil);
}

static void
s_check_nul(proto_type_t type, const proto_field_t *f)
{
    if (f->type != PROTO_FT_STR && f->type != PROTO_FT_KV)
        return;
    t_plan_t plan = s_plan();
    plan.field = f;
    plan.act = T_ACT_NUL;
    s_expect_fail(type, &plan, PROTO_ERR_TYPE, f->key, "string with a NUL byte");
}

static void
test_nul_byte(void **state)
{
    (void) state;
    s_walk_all(s_check_nul);
    t_plan_t plan = s_plan();
    plan.act = T_ACT_NUL;
    plan.env = "src";
    s_expect_fail(PROTO_PING, &plan, PROTO_ERR_TYPE, "src", "src with a NUL byte");
    plan.env = "rid";
    s_expect_fail(PROTO_PING, &plan, PROTO_ERR_TYPE, "rid", "rid with a NUL byte");
}

static void
test_unknown_keys(void **state)
{
    (void) state;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        proto_msg_t plain, extra;
        t_plan_t plan = s_plan();
        s_expect_ok((proto_type_t) t, &plan, &plain, "as built");
        plan.extra = true;
        s_expect_ok((proto_type_t) t, &plan, &extra, "with unknown keys of every kind");
        s_assert_msg_equal(&plain, &extra);
        proto_msg_clear(&extra);
        plan.body_first = true;
        s_expect_ok((proto_type_t) t, &plan, &extra, "body before the envelope");
        s_assert_msg_equal(&plain, &extra);
        assert_true(plain.id == 42);
        assert_string_equal(plain.rid, "bcdefghi");
        proto_msg_clear(&extra);
        proto_msg_clear(&plain);
    }
}

//  An unknown key inside a record whose value nests `levels` arrays: in
//  either key order (the one-pass decoder or the careful one), the same
//  answer, counting depth from the top of the message (fuzz_proto found the
//  one-pass decoder counting it from the record: tests/fuzz/regress/proto-*).
static int
s_deep_record(int levels, bool envelope_first, proto_msg_t *msg)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 7);
    for (int part = 0; part < 2; part++) {
        if ((part == 0) == envelope_first) {
            s_pack_text(&pk, "v", 1);
            msgpack_pack_uint8(&pk, PROTO_VERSION);
            s_pack_text(&pk, "t", 1);
            s_pack_text(&pk, "request.done", 12);
            s_pack_text(&pk, "id", 2);
            msgpack_pack_uint8(&pk, 1);
            s_pack_text(&pk, "rid", 3);
            s_pack_text(&pk, "", 0);
            s_pack_text(&pk, "src", 3);
            s_pack_text(&pk, "a/b", 3);
            s_pack_text(&pk, "ts", 2);
            msgpack_pack_uint8(&pk, 1);
        } else {
            s_pack_text(&pk, "items", 5);
            msgpack_pack_array(&pk, 1);
            msgpack_pack_map(&pk, 5);
            s_pack_text(&pk, "rid", 3);
            s_pack_text(&pk, "r", 1);
            s_pack_text(&pk, "method", 6);
            s_pack_text(&pk, "GET", 3);
            s_pack_text(&pk, "status", 6);
            msgpack_pack_uint8(&pk, 200);
            s_pack_text(&pk, "duration_us", 11);
            msgpack_pack_uint8(&pk, 1);
            s_pack_text(&pk, "x", 1);
            for (int i = 0; i < levels; i++)
                msgpack_pack_array(&pk, i + 1 < levels ? 1 : 0);
        }
    }
    proto_msg_init(msg, PROTO_NONE);
    int rc = s_decode_exact(sb.data, sb.size, msg);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}

static void
test_depth_in_records(void **state)
{
    (void) state;
    // items is at depth 0, its record at 1, the record's values at 2: 31
    // arrays reach depth 32 (the limit), 32 arrays one more
    for (int order = 0; order < 2; order++) {
        proto_msg_t msg;
        assert_int_equal(s_deep_record(PROTO_MP_MAX_DEPTH - 1, order == 0, &msg), 0);
        assert_int_equal(msg.request_done.items_count, 1);
        proto_msg_clear(&msg);
        assert_int_equal(s_deep_record(PROTO_MP_MAX_DEPTH, order == 0, &msg), -2);
        assert_int_equal(msg.err, PROTO_ERR_MALFORMED);
        proto_msg_clear(&msg);
    }
}

//  proto_encode leads with v and t, which lets the decoder read in one pass.
static void
test_encode_order(void **state)
{
    (void) state;
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_PING);
    msg.src = "a/b";
    msg.ping.sent_us = 5;
    proto_buf_t buf = {0};
    assert_int_equal(proto_encode(&msg, &buf), 0);
    static const uint8_t lead[] = {0x87, 0xa1, 'v', PROTO_VERSION, 0xa1, 't',
                                   0xa4, 'p',  'i', 'n',           'g'};
    assert_true(buf.size > sizeof lead);
    assert_memory_equal(buf.data, lead, sizeof lead);
    proto_buf_free(&buf);
}

static void
test_envelope(void **state)
{
    (void) state;
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        proto_type_t type = (proto_type_t) t;
        proto_msg_t msg;
        t_plan_t plan = s_plan();

        for (size_t e = 0; e < T_ENV_COUNT; e++) {
            const char *key = t_env_keys[e];
            plan = s_plan();
            plan.env = key;
            plan.act = T_ACT_DUP;
            s_expect_fail(type, &plan, PROTO_ERR_DUPLICATE, key, "envelope key sent twice");
            plan.act = T_ACT_OMIT;
            if (strcmp(key, "rid") == 0) {
                s_expect_ok(type, &plan, &msg, "without rid");
                assert_string_equal(msg.rid, "");
                proto_msg_clear(&msg);
            } else {
                s_expect_fail(type, &plan, PROTO_ERR_MISSING, key, "envelope key left out");
            }
            if (strcmp(key, "t") != 0) {
                plan.act = T_ACT_TYPE;
                s_expect_fail(type, &plan, PROTO_ERR_TYPE, key, "envelope value of the wrong type");
            }
        }

        plan = s_plan();
        plan.version = 2;
        s_expect_fail(type, &plan, PROTO_ERR_VERSION, "v", "v = 2");
        plan.version = 0;
        s_expect_fail(type, &plan, PROTO_ERR_VERSION, "v", "v = 0");

        plan = s_plan();
        plan.wire = "nope";
        s_expect_fail(type, &plan, PROTO_ERR_UNKNOWN, "t", "t = nope");
        plan.wire = "";
        s_expect_fail(type, &plan, PROTO_ERR_UNKNOWN, "t", "t = \"\"");
    }

    // the smallest valid message, by hand: an empty ping
    static const uint8_t ping[] = {0x85, 0xa1, 'v',  0x01, 0xa1, 't',  0xa4, 'p', 'i',
                                   'n',  'g',  0xa2, 'i',  'd',  0x07, 0xa3, 's', 'r',
                                   'c',  0xa3, 'c',  '/',  '1',  0xa2, 't',  's', 0x00};
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    assert_int_equal(s_decode_exact(ping, sizeof ping, &msg), 0);
    assert_int_equal(msg.type, PROTO_PING);
    assert_true(msg.id == 7);
    assert_string_equal(msg.src, "c/1");
    assert_string_equal(msg.rid, "");
    assert_true(msg.ping.sent_us == 0);
    // not a map at all
    static const uint8_t array[] = {0x91, 0xc0};
    assert_int_equal(s_decode_exact(array, sizeof array, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_MALFORMED);
    // a key that is not a string
    static const uint8_t intkey[] = {0x81, 0x01, 0x01};
    assert_int_equal(s_decode_exact(intkey, sizeof intkey, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_MALFORMED);
    // an empty map: no t
    static const uint8_t empty[] = {0x80};
    assert_int_equal(s_decode_exact(empty, sizeof empty, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_MISSING);
    assert_string_equal(msg.err_field, "t");
    proto_msg_clear(&msg);
}

static void
test_oversize(void **state)
{
    (void) state;
    proto_msg_t msg;
    uint8_t *big = calloc(PROTO_MSG_MAX + 1, 1);
    assert_non_null(big);
    big[0] = 0x80;
    proto_msg_init(&msg, PROTO_NONE);
    assert_int_equal(proto_decode(big, PROTO_MSG_MAX + 1, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_OVERSIZE);
    // exactly PROTO_MSG_MAX is not oversize (here: a map and trailing bytes)
    assert_int_equal(proto_decode(big, PROTO_MSG_MAX, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_MALFORMED);
    free(big);

    // every message with every string, list and map at its bound either fits
    // (and round-trips) or is refused by the encoder as a whole
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        t_allocs_t a = {0};
        proto_msg_t want, got;
        proto_buf_t buf = {0};
        proto_msg_init(&got, PROTO_NONE);
        s_fill_msg(&a, &want, (proto_type_t) t, T_HUGE, NULL);
        errno = 0;
        if (proto_encode(&want, &buf) == 0) {
            assert_true(buf.size <= PROTO_MSG_MAX);
            assert_int_equal(s_decode_exact(buf.data, buf.size, &got), 0);
            s_assert_msg_equal(&want, &got);
        } else {
            if (errno != EMSGSIZE || buf.size <= PROTO_MSG_MAX)
                fail_msg("%s at its bounds: encode failed (%s) at %zu bytes",
                         proto_type_name((proto_type_t) t), strerror(errno), buf.size);
        }
        proto_msg_clear(&got);
        proto_buf_free(&buf);
        s_free_all(&a);
    }
}

// --------------------------------------------------------------------------
// Hostile msgpack

static double
s_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static void
s_expect_malformed(const void *data, size_t len, const char *what)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    double start = s_seconds();
    int rc = s_decode_exact(data, len, &msg);
    double took = s_seconds() - start;
    if (rc != -2 || msg.err != PROTO_ERR_MALFORMED)
        fail_msg("%s: got %d %s", what, rc, proto_err_name(msg.err));
    if (took > 0.5)
        fail_msg("%s: took %.3f s", what, took);
    proto_msg_clear(&msg);
}

//  A valid ping with one more key whose value is the raw bytes given.
static void
s_with_raw_value(msgpack_sbuffer *sb, const char *key, const void *raw, size_t len)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    s_pack_text(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    s_pack_text(&pk, "t", 1);
    s_pack_text(&pk, "ping", 4);
    s_pack_text(&pk, "id", 2);
    msgpack_pack_uint8(&pk, 1);
    s_pack_text(&pk, "src", 3);
    s_pack_text(&pk, "c/1", 3);
    s_pack_text(&pk, "ts", 2);
    msgpack_pack_uint8(&pk, 1);
    s_pack_text(&pk, key, strlen(key));
    msgpack_sbuffer_write(sb, raw, len);
}

static void
test_hostile(void **state)
{
    (void) state;
    // an array claiming 2^32-1 elements inside a 10-byte buffer
    static const uint8_t array[10] = {0x81, 0xa1, 'x', 0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0};
    s_expect_malformed(array, sizeof array, "array32 of 2^32-1 in 10 bytes");
    static const uint8_t top_array[10] = {0xdd, 0xff, 0xff, 0xff, 0xff, 0xc0, 0xc0, 0xc0, 0xc0};
    s_expect_malformed(top_array, sizeof top_array, "top-level array32 of 2^32-1");
    // a map claiming 2^32-1 entries
    static const uint8_t map[10] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xa1, 't', 0xa1, 'x', 0xc0};
    s_expect_malformed(map, sizeof map, "map32 of 2^32-1");
    static const uint8_t map16[10] = {0xde, 0xff, 0xff, 0xa1, 't', 0xa1, 'x', 0xc0, 0xc0, 0xc0};
    s_expect_malformed(map16, sizeof map16, "map16 of 65535");
    static const uint8_t inner_map[] = {0xdf, 0xff, 0xff, 0xff, 0xff, 0xc0};
    static const uint8_t str32[] = {0xdb, 0x7f, 0xff, 0xff, 0xff, 'a', 'b', 'c'};
    static const uint8_t bin32[] = {0xc6, 0xff, 0xff, 0xff, 0xff, 0x00};
    static const uint8_t ext32[] = {0xc9, 0xff, 0xff, 0xff, 0xff, 0x01, 0x00};
    static const uint8_t str8[] = {0xd9, 0x05, 'a', 'b'};
    static const uint8_t never[] = {0xc1};
    static const uint8_t bad_float[] = {0xcb, 0x00, 0x00};
    struct {
        const uint8_t *raw;
        size_t len;
        const char *what;
    } values[] = {
        {array + 3, 7, "nested array32 of 2^32-1"},
        {inner_map, sizeof inner_map, "nested map32 of 2^32-1"},
        {str32, sizeof str32, "str32 longer than the buffer"},
        {bin32, sizeof bin32, "bin32 longer than the buffer"},
        {ext32, sizeof ext32, "ext32 longer than the buffer"},
        {str8, sizeof str8, "str8 longer than the buffer"},
        {never, sizeof never, "0xc1"},
        {bad_float, sizeof bad_float, "cut float64"},
    };
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        msgpack_sbuffer sb;
        s_with_raw_value(&sb, "x", values[i].raw, values[i].len);
        s_expect_malformed(sb.data, sb.size, values[i].what);
        msgpack_sbuffer_destroy(&sb);
    }
    // a str32 claiming more than the buffer as the type itself
    static const uint8_t t_str32[] = {0x81, 0xa1, 't', 0xdb, 0x00, 0x10, 0x00, 0x00, 'p'};
    s_expect_malformed(t_str32, sizeof t_str32, "t as a str32 past the end");

    // arrays nested 1000 deep as an unknown key's value
    uint8_t deep[1001];
    memset(deep, 0x91, 1000);
    deep[1000] = 0xc0;
    msgpack_sbuffer sb;
    s_with_raw_value(&sb, "x", deep, sizeof deep);
    s_expect_malformed(sb.data, sb.size, "arrays nested 1000 deep");
    msgpack_sbuffer_destroy(&sb);
    // ... and maps
    uint8_t deep_maps[2001];
    for (int i = 0; i < 1000; i++) {
        deep_maps[2 * i] = 0x81;
        deep_maps[2 * i + 1] = 0xc0; // key nil, value: the next map
    }
    deep_maps[2000] = 0xc0;
    s_with_raw_value(&sb, "x", deep_maps, sizeof deep_maps);
    s_expect_malformed(sb.data, sb.size, "maps nested 1000 deep");
    msgpack_sbuffer_destroy(&sb);
    // nesting within the limit is skipped like any unknown value
    deep[PROTO_MP_MAX_DEPTH] = 0xc0;
    s_with_raw_value(&sb, "x", deep, PROTO_MP_MAX_DEPTH + 1);
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    assert_int_equal(s_decode_exact(sb.data, sb.size, &msg), 0);
    assert_int_equal(msg.type, PROTO_PING);
    proto_msg_clear(&msg);
    msgpack_sbuffer_destroy(&sb);

    // a list field claiming more records than the buffer could hold
    static const uint8_t items[] = {0xdd, 0x00, 0x01, 0x00, 0x00, 0x80};
    msgpack_packer pk;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 6);
    s_pack_text(&pk, "v", 1);
    msgpack_pack_uint8(&pk, 1);
    s_pack_text(&pk, "t", 1);
    s_pack_text(&pk, "request.done", 12);
    s_pack_text(&pk, "id", 2);
    msgpack_pack_uint8(&pk, 1);
    s_pack_text(&pk, "src", 3);
    s_pack_text(&pk, "c/1", 3);
    s_pack_text(&pk, "ts", 2);
    msgpack_pack_uint8(&pk, 1);
    s_pack_text(&pk, "items", 5);
    msgpack_sbuffer_write(&sb, (const char *) items, sizeof items);
    s_expect_malformed(sb.data, sb.size, "list of 65536 records in 1 byte");
    msgpack_sbuffer_destroy(&sb);
}

static void
s_check_lie(proto_type_t type, const proto_field_t *f)
{
    if (f->type != PROTO_FT_STR && f->type != PROTO_FT_BIN && f->type != PROTO_FT_LIST
        && f->type != PROTO_FT_KV)
        return;
    t_plan_t plan = s_plan();
    plan.field = f;
    plan.act = T_ACT_LIE;
    s_expect_fail(type, &plan, PROTO_ERR_MALFORMED, NULL, "a length past the end");
}

//  Every str, bin, list and map field with a length past the end of the buffer.
static void
test_lying_lengths(void **state)
{
    (void) state;
    s_walk_all(s_check_lie);
}

// --------------------------------------------------------------------------
// proto_mp

typedef struct {
    int width;      // 0: fixint, else bytes
    bool is_signed; // int8..int64 (0xd0..0xd3) or negative fixint
    int64_t s;      // value when signed
    uint64_t u;     // value when unsigned
    uint8_t first;  // the format byte the packer must write
} t_int_case_t;

static void
s_pack_int_case(msgpack_packer *pk, const t_int_case_t *c)
{
    if (c->width == 0) {
        if (c->is_signed)
            msgpack_pack_int8(pk, (int8_t) c->s);
        else
            msgpack_pack_uint8(pk, (uint8_t) c->u);
    } else if (c->is_signed) {
        if (c->width == 1)
            msgpack_pack_fix_int8(pk, (int8_t) c->s);
        else if (c->width == 2)
            msgpack_pack_fix_int16(pk, (int16_t) c->s);
        else if (c->width == 4)
            msgpack_pack_fix_int32(pk, (int32_t) c->s);
        else
            msgpack_pack_fix_int64(pk, c->s);
    } else {
        if (c->width == 1)
            msgpack_pack_fix_uint8(pk, (uint8_t) c->u);
        else if (c->width == 2)
            msgpack_pack_fix_uint16(pk, (uint16_t) c->u);
        else if (c->width == 4)
            msgpack_pack_fix_uint32(pk, (uint32_t) c->u);
        else
            msgpack_pack_fix_uint64(pk, c->u);
    }
}

static void
test_mp_integers(void **state)
{
    (void) state;
    static const t_int_case_t cases[] = {
        {0, false, 0, 0, 0x00},
        {0, false, 0, 127, 0x7f},
        {1, false, 0, 0, 0xcc},
        {1, false, 0, 255, 0xcc},
        {2, false, 0, 65535, 0xcd},
        {4, false, 0, UINT32_MAX, 0xce},
        {8, false, 0, 1, 0xcf},
        {8, false, 0, (uint64_t) INT64_MAX, 0xcf},
        {8, false, 0, (uint64_t) INT64_MAX + 1, 0xcf},
        {8, false, 0, UINT64_MAX, 0xcf},
        {0, true, -1, 0, 0xff},
        {0, true, -32, 0, 0xe0},
        {1, true, -128, 0, 0xd0},
        {1, true, 127, 0, 0xd0},
        {2, true, INT16_MIN, 0, 0xd1},
        {2, true, 300, 0, 0xd1},
        {4, true, INT32_MIN, 0, 0xd2},
        {8, true, INT64_MIN, 0, 0xd3},
        {8, true, INT64_MAX, 0, 0xd3},
        {8, true, -1, 0, 0xd3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const t_int_case_t *c = &cases[i];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        proto_mp_t mp;
        uint64_t u = 0;
        int64_t s = 0;
        double d = 0;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        s_pack_int_case(&pk, c);
        assert_int_equal(sb.size, 1 + (size_t) c->width);
        assert_int_equal((uint8_t) sb.data[0], c->first);
        uint8_t *buf = s_exact_copy(sb.data, sb.size);
        bool negative = c->is_signed && c->s < 0;

        proto_mp_init(&mp, buf, sb.size);
        assert_int_equal(proto_mp_peek(&mp),
                         c->first >= 0xd0 || negative ? PROTO_MP_INT : PROTO_MP_UINT);
        if (negative) {
            assert_int_equal(proto_mp_uint(&mp, &u), -2);
        } else {
            assert_int_equal(proto_mp_uint(&mp, &u), 0);
            assert_true(u == (c->is_signed ? (uint64_t) c->s : c->u));
            assert_true(proto_mp_done(&mp));
        }

        proto_mp_init(&mp, buf, sb.size);
        if (!c->is_signed && c->u > (uint64_t) INT64_MAX) {
            assert_int_equal(proto_mp_int(&mp, &s), -2);
        } else {
            assert_int_equal(proto_mp_int(&mp, &s), 0);
            assert_true(s == (c->is_signed ? c->s : (int64_t) c->u));
            assert_true(proto_mp_done(&mp));
        }

        proto_mp_init(&mp, buf, sb.size);
        assert_int_equal(proto_mp_double(&mp, &d), 0);
        assert_true(d == (c->is_signed ? (double) c->s : (double) c->u));

        proto_mp_init(&mp, buf, sb.size);
        assert_int_equal(proto_mp_skip(&mp), 0);
        assert_true(proto_mp_done(&mp));

        // every strict prefix fails
        for (size_t len = 0; len < sb.size; len++) {
            uint8_t *cut = s_exact_copy(buf, len);
            proto_mp_init(&mp, cut, len);
            assert_int_equal(proto_mp_uint(&mp, &u), -2);
            proto_mp_init(&mp, cut, len);
            assert_int_equal(proto_mp_int(&mp, &s), -2);
            proto_mp_init(&mp, cut, len);
            assert_int_equal(proto_mp_skip(&mp), -2);
            free(cut);
        }
        free(buf);
        msgpack_sbuffer_destroy(&sb);
    }

    // floats and non-numbers
    msgpack_sbuffer sb;
    msgpack_packer pk;
    proto_mp_t mp;
    double d = 0;
    uint64_t u;
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_float(&pk, 1.5f);
    msgpack_pack_double(&pk, -2.25);
    msgpack_pack_true(&pk);
    proto_mp_init(&mp, sb.data, sb.size);
    assert_int_equal(proto_mp_peek(&mp), PROTO_MP_FLOAT);
    assert_int_equal(proto_mp_double(&mp, &d), 0);
    assert_true(d == 1.5);
    assert_int_equal(proto_mp_double(&mp, &d), 0);
    assert_true(d == -2.25);
    assert_int_equal(proto_mp_uint(&mp, &u), -2);
    assert_int_equal(proto_mp_double(&mp, &d), -2);
    msgpack_sbuffer_destroy(&sb);
}

//  Pack one value of a kind with msgpack-c (or raw bytes where the packer
//  would pick a shorter form).
typedef struct {
    const char *what;     // for messages
    proto_mp_kind_t kind; // what proto_mp_peek must say
    const uint8_t *raw;   // raw bytes, or NULL to use pack
    size_t raw_len;       // their length
    int pack;             // which packer call (see s_pack_kind)
} t_kind_case_t;

static void
s_pack_kind(msgpack_packer *pk, int which)
{
    static char payload[70000];
    memset(payload, 'p', sizeof payload);
    switch (which) {
        case 0:
            msgpack_pack_nil(pk);
            break;
        case 1:
            msgpack_pack_true(pk);
            break;
        case 2:
            msgpack_pack_false(pk);
            break;
        case 3:
            msgpack_pack_float(pk, 0.5f);
            break;
        case 4:
            msgpack_pack_double(pk, 0.5);
            break;
        case 5:
            s_pack_text(pk, payload, 31); // fixstr
            break;
        case 6:
            s_pack_text(pk, payload, 200); // str8
            break;
        case 7:
            s_pack_text(pk, payload, 300); // str16
            break;
        case 8:
            s_pack_text(pk, payload, 70000); // str32
            break;
        case 9:
            msgpack_pack_bin(pk, 10); // bin8
            msgpack_pack_bin_body(pk, payload, 10);
            break;
        case 10:
            msgpack_pack_bin(pk, 300); // bin16
            msgpack_pack_bin_body(pk, payload, 300);
            break;
        case 11:
            msgpack_pack_bin(pk, 70000); // bin32
            msgpack_pack_bin_body(pk, payload, 70000);
            break;
        case 12:
            msgpack_pack_array(pk, 2); // fixarray
            msgpack_pack_nil(pk);
            msgpack_pack_map(pk, 0);
            break;
        case 13:
            msgpack_pack_array(pk, 16); // array16
            for (int i = 0; i < 16; i++)
                msgpack_pack_int(pk, -i);
            break;
        case 14:
            msgpack_pack_map(pk, 1); // fixmap
            s_pack_text(pk, "k", 1);
            msgpack_pack_array(pk, 0);
            break;
        case 15:
            msgpack_pack_map(pk, 16); // map16
            for (int i = 0; i < 16; i++) {
                msgpack_pack_int(pk, i);
                msgpack_pack_nil(pk);
            }
            break;
        default: {
            // ext: fixext 1, 2, 4, 8, 16, then ext8, ext16, ext32
            static const size_t lens[] = {1, 2, 4, 8, 16, 3, 300, 70000};
            size_t len = lens[which - 16];
            msgpack_pack_ext(pk, len, 5);
            msgpack_pack_ext_body(pk, payload, len);
            break;
        }
    }
}

static void
test_mp_skip(void **state)
{
    (void) state;
    static const uint8_t array32[] = {0xdd, 0x00, 0x00, 0x00, 0x02, 0xc0, 0x01};
    static const uint8_t map32[] = {0xdf, 0x00, 0x00, 0x00, 0x01, 0xa1, 'k', 0xc3};
    static const uint8_t ext_neg[] = {0xd4, 0xff, 0x00};
    static const t_kind_case_t cases[] = {
        {"nil", PROTO_MP_NIL, NULL, 0, 0},
        {"true", PROTO_MP_BOOL, NULL, 0, 1},
        {"false", PROTO_MP_BOOL, NULL, 0, 2},
        {"float32", PROTO_MP_FLOAT, NULL, 0, 3},
        {"float64", PROTO_MP_FLOAT, NULL, 0, 4},
        {"fixstr", PROTO_MP_STR, NULL, 0, 5},
        {"str8", PROTO_MP_STR, NULL, 0, 6},
        {"str16", PROTO_MP_STR, NULL, 0, 7},
        {"str32", PROTO_MP_STR, NULL, 0, 8},
        {"bin8", PROTO_MP_BIN, NULL, 0, 9},
        {"bin16", PROTO_MP_BIN, NULL, 0, 10},
        {"bin32", PROTO_MP_BIN, NULL, 0, 11},
        {"fixarray", PROTO_MP_ARRAY, NULL, 0, 12},
        {"array16", PROTO_MP_ARRAY, NULL, 0, 13},
        {"array32", PROTO_MP_ARRAY, array32, sizeof array32, 0},
        {"fixmap", PROTO_MP_MAP, NULL, 0, 14},
        {"map16", PROTO_MP_MAP, NULL, 0, 15},
        {"map32", PROTO_MP_MAP, map32, sizeof map32, 0},
        {"fixext1", PROTO_MP_EXT, NULL, 0, 16},
        {"fixext2", PROTO_MP_EXT, NULL, 0, 17},
        {"fixext4", PROTO_MP_EXT, NULL, 0, 18},
        {"fixext8", PROTO_MP_EXT, NULL, 0, 19},
        {"fixext16", PROTO_MP_EXT, NULL, 0, 20},
        {"ext8", PROTO_MP_EXT, NULL, 0, 21},
        {"ext16", PROTO_MP_EXT, NULL, 0, 22},
        {"ext32", PROTO_MP_EXT, NULL, 0, 23},
        {"fixext1 of a negative type", PROTO_MP_EXT, ext_neg, sizeof ext_neg, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const t_kind_case_t *c = &cases[i];
        msgpack_sbuffer sb;
        msgpack_packer pk;
        proto_mp_t mp;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        if (c->raw)
            msgpack_sbuffer_write(&sb, (const char *) c->raw, c->raw_len);
        else
            s_pack_kind(&pk, c->pack);
        msgpack_pack_uint8(&pk, 9); // something after it, which skip must not eat
        uint8_t *buf = s_exact_copy(sb.data, sb.size);
        size_t len = sb.size - 1;

        proto_mp_init(&mp, buf, sb.size);
        if (proto_mp_peek(&mp) != c->kind)
            fail_msg("%s: peek says %d", c->what, proto_mp_peek(&mp));
        if (proto_mp_skip(&mp) != 0 || mp.pos != buf + len)
            fail_msg("%s: not skipped exactly", c->what);
        uint64_t u;
        assert_int_equal(proto_mp_uint(&mp, &u), 0);
        assert_true(u == 9 && proto_mp_done(&mp));

        // every strict prefix of the value fails (only the value: the byte after it
        // could complete a shorter reading)
        uint8_t *cut = s_exact_copy(buf, len);
        for (size_t n = len; n-- > 0;) {
            ASAN_POISON_MEMORY_REGION(cut + n, 1);
            proto_mp_init(&mp, cut, n);
            if (proto_mp_skip(&mp) != -2)
                fail_msg("%s: prefix of %zu bytes skipped", c->what, n);
        }
        ASAN_UNPOISON_MEMORY_REGION(cut, len);
        free(cut);
        free(buf);
        msgpack_sbuffer_destroy(&sb);
    }

    // 0xc1 is never used; nothing at all is nothing
    static const uint8_t never[] = {0xc1};
    proto_mp_t mp;
    proto_mp_init(&mp, never, sizeof never);
    assert_int_equal(proto_mp_peek(&mp), PROTO_MP_INVALID);
    assert_int_equal(proto_mp_skip(&mp), -2);
    proto_mp_init(&mp, never, 0);
    assert_int_equal(proto_mp_peek(&mp), PROTO_MP_INVALID);
    assert_int_equal(proto_mp_skip(&mp), -2);
    assert_true(proto_mp_done(&mp));

    // nesting: PROTO_MP_MAX_DEPTH levels below the value are fine, one more is not
    uint8_t deep[PROTO_MP_MAX_DEPTH + 2];
    memset(deep, 0x91, sizeof deep);
    deep[PROTO_MP_MAX_DEPTH] = 0xc0;
    proto_mp_init(&mp, deep, PROTO_MP_MAX_DEPTH + 1);
    assert_int_equal(proto_mp_skip(&mp), 0);
    assert_true(proto_mp_done(&mp));
    deep[PROTO_MP_MAX_DEPTH] = 0x91;
    deep[PROTO_MP_MAX_DEPTH + 1] = 0xc0;
    proto_mp_init(&mp, deep, PROTO_MP_MAX_DEPTH + 2);
    assert_int_equal(proto_mp_skip(&mp), -2);
}

static void
test_mp_containers(void **state)
{
    (void) state;
    proto_mp_t mp;
    uint32_t count;
    const char *s;
    const uint8_t *b;
    uint32_t len;
    bool flag;
    // counts are checked against what remains: one byte per element, two per entry
    static const uint8_t arr[] = {0x93, 0xc0, 0xc0, 0xc0};
    proto_mp_init(&mp, arr, sizeof arr);
    assert_int_equal(proto_mp_array(&mp, &count), 0);
    assert_int_equal(count, 3);
    proto_mp_init(&mp, arr, sizeof arr - 1);
    assert_int_equal(proto_mp_array(&mp, &count), -2);
    static const uint8_t map[] = {0x82, 0xc0, 0xc0, 0xc0, 0xc0};
    proto_mp_init(&mp, map, sizeof map);
    assert_int_equal(proto_mp_map(&mp, &count), 0);
    assert_int_equal(count, 2);
    proto_mp_init(&mp, map, sizeof map - 1);
    assert_int_equal(proto_mp_map(&mp, &count), -2);
    // readers refuse other kinds
    proto_mp_init(&mp, arr, sizeof arr);
    assert_int_equal(proto_mp_map(&mp, &count), -2);
    assert_int_equal(proto_mp_str(&mp, &s, &len), -2);
    assert_int_equal(proto_mp_bin(&mp, &b, &len), -2);
    assert_int_equal(proto_mp_bool(&mp, &flag), -2);
    assert_int_equal(proto_mp_nil(&mp), -2);
    // str and bin point into the input
    static const uint8_t strs[] = {0xa3, 'a', 'b', 'c', 0xc4, 0x02, 0x00, 0xff, 0xc2, 0xc0};
    proto_mp_init(&mp, strs, sizeof strs);
    assert_int_equal(proto_mp_str(&mp, &s, &len), 0);
    assert_int_equal(len, 3);
    assert_ptr_equal(s, strs + 1);
    assert_int_equal(proto_mp_bin(&mp, &b, &len), 0);
    assert_int_equal(len, 2);
    assert_ptr_equal(b, strs + 6);
    assert_int_equal(proto_mp_bool(&mp, &flag), 0);
    assert_false(flag);
    assert_int_equal(proto_mp_nil(&mp), 0);
    assert_true(proto_mp_done(&mp));
}

//  The version decides how the rest is read: a v=2 message is dropped as
//  "version" whatever else is in it; a "t" that is not a string is "type".
static void
test_version_first(void **state)
{
    (void) state;
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_NONE);
    // {"sent_us":"now","v":2,"t":"ping","id":1,"src":"a/b","ts":1}
    static const char v2[] = "\x86\xa7sent_us\xa3now\xa1v\x02\xa1t\xa4ping\xa2id\x01"
                             "\xa3src\xa3"
                             "a/b\xa2ts\x01";
    assert_int_equal(proto_decode(v2, sizeof v2 - 1, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_VERSION);
    // {"v":2,"t":"new.type",...}: still version, not unknown
    static const char v2new[] = "\x85\xa1v\x02\xa1t\xa8new.type\xa2id\x01\xa3src\xa3"
                                "a/b\xa2ts\x01";
    assert_int_equal(proto_decode(v2new, sizeof v2new - 1, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_VERSION);
    // {"v":1,"t":7,...}
    static const char tint[] = "\x85\xa1v\x01\xa1t\x07\xa2id\x01\xa3src\xa3"
                               "a/b\xa2ts\x01";
    assert_int_equal(proto_decode(tint, sizeof tint - 1, &msg), -2);
    assert_int_equal(msg.err, PROTO_ERR_TYPE);
    assert_string_equal(msg.err_field, "t");
    proto_msg_clear(&msg);

    // a map or bytes field with a count but no storage is refused, not read
    proto_buf_t buf = {0};
    proto_msg_init(&msg, PROTO_LEASE);
    msg.src = "a/b";
    msg.lease.status = "ok";
    msg.lease.headers_count = 1;
    assert_int_equal(proto_encode(&msg, &buf), -1);
    proto_msg_init(&msg, PROTO_ADMIN_RESPONSE);
    msg.src = "a/b";
    msg.admin_response.body.size = 3;
    assert_int_equal(proto_encode(&msg, &buf), -1);
    proto_buf_free(&buf);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        // messages.def itself
        cmocka_unit_test(test_messages_def),
        cmocka_unit_test(test_bound_constants),
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_err_names),
        // every message, filled from its descriptors
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_fuzz_flips),
        cmocka_unit_test(test_encode_bounds),
        cmocka_unit_test(test_decode_bounds),
        // hand-built messages, every field
        cmocka_unit_test(test_missing),
        cmocka_unit_test(test_wrong_type),
        cmocka_unit_test(test_duplicate),
        cmocka_unit_test(test_nil_optional),
        cmocka_unit_test(test_nul_byte),
        cmocka_unit_test(test_unknown_keys),
        cmocka_unit_test(test_encode_order),
        cmocka_unit_test(test_depth_in_records),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_version_first),
        cmocka_unit_test(test_oversize),
        // hostile msgpack
        cmocka_unit_test(test_hostile),
        cmocka_unit_test(test_lying_lengths),
        // proto_mp
        cmocka_unit_test(test_mp_integers),
        cmocka_unit_test(test_mp_skip),
        cmocka_unit_test(test_mp_containers),
    };
    return cmocka_run_group_tests_name("proto", tests, NULL, NULL);
}
