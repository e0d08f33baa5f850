/*  proto - encoder and validating decoder of bus messages.

    Both walk the descriptors of proto_desc.c. The encoder uses msgpack-c's
    packer into a reusable proto_buf_t. The decoder reads with proto_mp (every
    length checked), makes two passes over the top-level map (the first finds
    `t` and proves the whole map well-formed, the second fills the struct),
    and copies strings into the message's arena.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "proto.h"
#include "proto_desc.h"
#include "proto_mp.h"
#include "proto_util.h"

struct proto_arena_block {
    proto_arena_block_t *next; // older block
    size_t cap;                // bytes in data
    size_t used;               // bytes handed out
    uint64_t data[];           // 8-byte aligned storage
};

static const char *s_err_names[PROTO_ERR_COUNT] = {
    "ok",   "oversize", "malformed", "version", "unknown",    "missing",
    "type", "bound",    "duplicate", "frames",  "unexpected",
};

const char *
proto_err_name(proto_err_t err)
{
    if (err < 0 || err >= PROTO_ERR_COUNT)
        return "invalid";
    return s_err_names[err];
}

const char *
proto_type_name(proto_type_t type)
{
    const proto_mdesc_t *d = proto_mdesc(type);
    return d ? d->wire : NULL;
}

proto_type_t
proto_type_by_name(const char *name, size_t len)
{
    for (int t = PROTO_NONE + 1; t < PROTO_TYPE_COUNT; t++) {
        const char *w = proto_mdesc((proto_type_t) t)->wire;
        if (strlen(w) == len && memcmp(w, name, len) == 0)
            return (proto_type_t) t;
    }
    return PROTO_NONE;
}

uint64_t
proto_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t) ts.tv_sec * 1000u + (uint64_t) ts.tv_nsec / 1000000u;
}

uint64_t
proto_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000u + (uint64_t) ts.tv_nsec / 1000u;
}

void
proto_msg_init(proto_msg_t *msg, proto_type_t type)
{
    memset(msg, 0, offsetof(proto_msg_t, arena_inline));
    msg->type = type;
    msg->rid = "";
}

void
proto_msg_clear(proto_msg_t *msg)
{
    proto_arena_block_t *b = msg->arena_head;
    while (b) {
        proto_arena_block_t *next = b->next;
        free(b);
        b = next;
    }
    msg->arena_head = NULL;
    proto_msg_init(msg, PROTO_NONE);
}

void *
proto_msg_alloc(proto_msg_t *msg, size_t len)
{
    size_t need = (len + 7) & ~(size_t) 7;
    if (need == 0)
        need = 8;
    if (msg->arena_head == NULL && sizeof msg->arena_inline - msg->arena_used >= need) {
        void *p = (uint8_t *) msg->arena_inline + msg->arena_used;
        msg->arena_used += need;
        return p;
    }
    proto_arena_block_t *b = msg->arena_head;
    if (b == NULL || b->cap - b->used < need) {
        size_t cap = need > 4096 ? need : 4096;
        b = proto_xmalloc(sizeof *b + cap);
        b->cap = cap;
        b->used = 0;
        b->next = msg->arena_head;
        msg->arena_head = b;
    }
    void *p = (uint8_t *) b->data + b->used;
    b->used += need;
    return p;
}

const char *
proto_msg_strdup(proto_msg_t *msg, const char *s, size_t len)
{
    char *copy = proto_msg_alloc(msg, len + 1);
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

void
proto_buf_free(proto_buf_t *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->size = buf->cap = 0;
}

// --------------------------------------------------------------------------
// Encoding

static int
s_buf_write(void *data, const char *bytes, size_t len)
{
    proto_buf_t *buf = data;
    if (buf->size + len > buf->cap) {
        size_t cap = buf->cap ? buf->cap : 256;
        while (cap < buf->size + len)
            cap *= 2;
        buf->data = proto_xrealloc(buf->data, cap);
        buf->cap = cap;
    }
    memcpy(buf->data + buf->size, bytes, len);
    buf->size += len;
    return 0;
}

static void
s_pack_str(msgpack_packer *pk, const char *s, size_t len)
{
    msgpack_pack_str(pk, len);
    msgpack_pack_str_body(pk, s, len);
}

static void
s_pack_key(msgpack_packer *pk, const char *key)
{
    s_pack_str(pk, key, strlen(key));
}

//  True if an optional field has a value worth sending.
static bool
s_present(const proto_field_t *f, const uint8_t *base)
{
    const void *p = base + f->offset;
    if (f->required)
        return true;
    switch (f->type) {
        case PROTO_FT_STR:
            return *(const char *const *) p != NULL;
        case PROTO_FT_BIN:
            return ((const proto_bin_t *) p)->data != NULL || ((const proto_bin_t *) p)->size;
        case PROTO_FT_U8:
            return *(const uint8_t *) p != 0;
        case PROTO_FT_U16:
            return *(const uint16_t *) p != 0;
        case PROTO_FT_U32:
            return *(const uint32_t *) p != 0;
        case PROTO_FT_U64:
            return *(const uint64_t *) p != 0;
        case PROTO_FT_I64:
            return *(const int64_t *) p != 0;
        case PROTO_FT_F64:
            return *(const double *) p != 0.0;
        case PROTO_FT_BOOL:
            return *(const bool *) p;
        case PROTO_FT_LIST:
        case PROTO_FT_KV:
            return *(const uint32_t *) (base + f->count_offset) != 0;
    }
    return false;
}

static int s_encode_struct(msgpack_packer *pk, const proto_sdesc_t *d, const uint8_t *base);

//  Unsigned value of an integer field, for bound checks.
static uint64_t
s_unsigned(const proto_field_t *f, const void *p)
{
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

static int
s_encode_field(msgpack_packer *pk, const proto_field_t *f, const uint8_t *base)
{
    const void *p = base + f->offset;
    switch (f->type) {
        case PROTO_FT_STR: {
            const char *s = *(const char *const *) p;
            if (s == NULL) {
                errno = EINVAL;
                return -1;
            }
            size_t len = strlen(s);
            if (len > f->bound) {
                errno = EMSGSIZE;
                return -1;
            }
            s_pack_str(pk, s, len);
            return 0;
        }
        case PROTO_FT_BIN: {
            const proto_bin_t *b = p;
            if (b->size > f->bound) {
                errno = EMSGSIZE;
                return -1;
            }
            if (b->size && b->data == NULL) {
                errno = EINVAL;
                return -1;
            }
            msgpack_pack_bin(pk, b->size);
            msgpack_pack_bin_body(pk, b->data, b->size);
            return 0;
        }
        case PROTO_FT_U8:
        case PROTO_FT_U16:
        case PROTO_FT_U32:
        case PROTO_FT_U64: {
            uint64_t v = s_unsigned(f, p);
            if (f->bound && v > f->bound) {
                errno = EMSGSIZE;
                return -1;
            }
            msgpack_pack_uint64(pk, v);
            return 0;
        }
        case PROTO_FT_I64:
            msgpack_pack_int64(pk, *(const int64_t *) p);
            return 0;
        case PROTO_FT_F64:
            msgpack_pack_double(pk, *(const double *) p);
            return 0;
        case PROTO_FT_BOOL:
            if (*(const bool *) p)
                msgpack_pack_true(pk);
            else
                msgpack_pack_false(pk);
            return 0;
        case PROTO_FT_LIST: {
            uint32_t n = *(const uint32_t *) (base + f->count_offset);
            const proto_sdesc_t *sub = f->sub();
            const uint8_t *items = *(const uint8_t *const *) p;
            if (n > f->bound) {
                errno = EMSGSIZE;
                return -1;
            }
            if (n && items == NULL) {
                errno = EINVAL;
                return -1;
            }
            msgpack_pack_array(pk, n);
            for (uint32_t i = 0; i < n; i++)
                if (s_encode_struct(pk, sub, items + i * sub->size) != 0)
                    return -1;
            return 0;
        }
        case PROTO_FT_KV: {
            uint32_t n = *(const uint32_t *) (base + f->count_offset);
            const proto_kv_t *kv = *(const proto_kv_t *const *) p;
            if (n > f->bound) {
                errno = EMSGSIZE;
                return -1;
            }
            if (n && kv == NULL) {
                errno = EINVAL;
                return -1;
            }
            msgpack_pack_map(pk, n);
            for (uint32_t i = 0; i < n; i++) {
                if (kv[i].key == NULL || kv[i].value == NULL) {
                    errno = EINVAL;
                    return -1;
                }
                size_t kl = strlen(kv[i].key), vl = strlen(kv[i].value);
                if (kl > f->item_bound || vl > f->item_bound) {
                    errno = EMSGSIZE;
                    return -1;
                }
                s_pack_str(pk, kv[i].key, kl);
                s_pack_str(pk, kv[i].value, vl);
            }
            return 0;
        }
    }
    errno = EINVAL;
    return -1;
}

//  Entries of a struct's map: its present fields.
static size_t
s_struct_entries(const proto_sdesc_t *d, const uint8_t *base)
{
    size_t n = 0;
    for (size_t i = 0; i < d->nfields; i++)
        if (s_present(&d->fields[i], base))
            n++;
    return n;
}

//  Pack a struct's present fields as map entries (the header is the caller's).
static int
s_encode_fields(msgpack_packer *pk, const proto_sdesc_t *d, const uint8_t *base)
{
    for (size_t i = 0; i < d->nfields; i++) {
        const proto_field_t *f = &d->fields[i];
        if (!s_present(f, base))
            continue;
        s_pack_key(pk, f->key);
        if (s_encode_field(pk, f, base) != 0)
            return -1;
    }
    return 0;
}

//  Encode a struct as a map.
static int
s_encode_struct(msgpack_packer *pk, const proto_sdesc_t *d, const uint8_t *base)
{
    msgpack_pack_map(pk, s_struct_entries(d, base));
    return s_encode_fields(pk, d, base);
}

int
proto_encode(const proto_msg_t *msg, proto_buf_t *buf)
{
    const proto_mdesc_t *md = proto_mdesc(msg->type);
    if (md == NULL || msg->src == NULL) {
        errno = EINVAL;
        return -1;
    }
    const char *rid = msg->rid ? msg->rid : "";
    size_t rid_len = strlen(rid), src_len = strlen(msg->src);
    if (rid_len > PROTO_RID_MAX || src_len > PROTO_SRC_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    buf->size = 0;
    msgpack_packer pk;
    msgpack_packer_init(&pk, buf, s_buf_write);
    // the envelope first, v and t leading: the decoder reads in one pass then
    const proto_sdesc_t *d = md->body();
    const uint8_t *base = (const uint8_t *) &msg->ping;
    msgpack_pack_map(&pk, 6 + s_struct_entries(d, base));
    s_pack_key(&pk, "v");
    msgpack_pack_uint8(&pk, PROTO_VERSION);
    s_pack_key(&pk, "t");
    s_pack_key(&pk, md->wire);
    s_pack_key(&pk, "id");
    msgpack_pack_uint64(&pk, msg->id);
    s_pack_key(&pk, "rid");
    s_pack_str(&pk, rid, rid_len);
    s_pack_key(&pk, "src");
    s_pack_str(&pk, msg->src, src_len);
    s_pack_key(&pk, "ts");
    msgpack_pack_uint64(&pk, msg->ts);
    if (s_encode_fields(&pk, d, base) != 0)
        return -1;
    if (buf->size > PROTO_MSG_MAX) {
        errno = EMSGSIZE;
        return -1;
    }
    return 0;
}

// --------------------------------------------------------------------------
// Decoding

static int
s_fail(proto_msg_t *msg, proto_err_t err, const char *field)
{
    msg->err = err;
    msg->err_field = field;
    return -2;
}

static bool
s_key_is(const char *key, uint32_t len, const char *name)
{
    return strlen(name) == len && memcmp(key, name, len) == 0;
}

//  Read a str value of at most bound bytes without NUL into the arena.
static int
s_read_str(proto_mp_t *mp, proto_msg_t *msg, uint32_t bound, const char *field, const char **out)
{
    const char *s;
    uint32_t len;
    if (proto_mp_peek(mp) != PROTO_MP_STR)
        return s_fail(msg, PROTO_ERR_TYPE, field);
    if (proto_mp_str(mp, &s, &len) != 0)
        return s_fail(msg, PROTO_ERR_MALFORMED, field);
    if (len > bound)
        return s_fail(msg, PROTO_ERR_BOUND, field);
    if (memchr(s, '\0', len) != NULL)
        return s_fail(msg, PROTO_ERR_TYPE, field);
    *out = proto_msg_strdup(msg, s, len);
    return 0;
}

static int
s_decode_struct(proto_mp_t *mp, proto_msg_t *msg, const proto_sdesc_t *d, uint8_t *base, int depth);

static int
//  depth: how deep the value is nested (0: a value of the top-level map),
//  so that an unknown key's value inside a record is skipped with the same
//  depth limit as the first pass applies to the whole message.
s_decode_field(proto_mp_t *mp, proto_msg_t *msg, const proto_field_t *f, uint8_t *base, int depth)
{
    void *p = base + f->offset;
    proto_mp_kind_t kind = proto_mp_peek(mp);
    switch (f->type) {
        case PROTO_FT_STR:
            return s_read_str(mp, msg, f->bound, f->key, (const char **) p);
        case PROTO_FT_BIN: {
            const uint8_t *data;
            uint32_t len;
            int rc;
            if (kind == PROTO_MP_BIN)
                rc = proto_mp_bin(mp, &data, &len);
            else if (kind == PROTO_MP_STR)
                rc = proto_mp_str(mp, (const char **) &data, &len);
            else
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (rc != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, f->key);
            if (len > f->bound)
                return s_fail(msg, PROTO_ERR_BOUND, f->key);
            proto_bin_t *b = p;
            uint8_t *copy = proto_msg_alloc(msg, len + 1);
            memcpy(copy, data, len);
            copy[len] = 0; // convenient for text bodies; not counted in size
            b->data = copy;
            b->size = len;
            return 0;
        }
        case PROTO_FT_U8:
        case PROTO_FT_U16:
        case PROTO_FT_U32:
        case PROTO_FT_U64: {
            uint64_t v;
            if (kind != PROTO_MP_UINT && kind != PROTO_MP_INT)
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (proto_mp_uint(mp, &v) != 0)
                return s_fail(msg, kind == PROTO_MP_INT ? PROTO_ERR_BOUND : PROTO_ERR_MALFORMED,
                              f->key);
            uint64_t max = f->type == PROTO_FT_U8    ? UINT8_MAX
                           : f->type == PROTO_FT_U16 ? UINT16_MAX
                           : f->type == PROTO_FT_U32 ? UINT32_MAX
                                                     : UINT64_MAX;
            if (v > max || (f->bound && v > f->bound))
                return s_fail(msg, PROTO_ERR_BOUND, f->key);
            if (f->type == PROTO_FT_U8)
                *(uint8_t *) p = (uint8_t) v;
            else if (f->type == PROTO_FT_U16)
                *(uint16_t *) p = (uint16_t) v;
            else if (f->type == PROTO_FT_U32)
                *(uint32_t *) p = (uint32_t) v;
            else
                *(uint64_t *) p = v;
            return 0;
        }
        case PROTO_FT_I64:
            if (kind != PROTO_MP_UINT && kind != PROTO_MP_INT)
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (proto_mp_int(mp, (int64_t *) p) != 0)
                return s_fail(msg, PROTO_ERR_BOUND, f->key);
            return 0;
        case PROTO_FT_F64:
            if (kind != PROTO_MP_FLOAT && kind != PROTO_MP_UINT && kind != PROTO_MP_INT)
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (proto_mp_double(mp, (double *) p) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, f->key);
            return 0;
        case PROTO_FT_BOOL:
            if (kind != PROTO_MP_BOOL)
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (proto_mp_bool(mp, (bool *) p) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, f->key);
            return 0;
        case PROTO_FT_LIST: {
            uint32_t n;
            if (kind != PROTO_MP_ARRAY)
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (proto_mp_array(mp, &n) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, f->key);
            if (n > f->bound)
                return s_fail(msg, PROTO_ERR_BOUND, f->key);
            const proto_sdesc_t *sub = f->sub();
            uint8_t *items = n ? proto_msg_alloc(msg, n * sub->size) : NULL;
            if (items)
                memset(items, 0, n * sub->size);
            for (uint32_t i = 0; i < n; i++)
                if (s_decode_struct(mp, msg, sub, items + i * sub->size, depth + 2) != 0)
                    return -2;
            *(uint8_t **) p = items;
            *(uint32_t *) (base + f->count_offset) = n;
            return 0;
        }
        case PROTO_FT_KV: {
            uint32_t n;
            if (kind != PROTO_MP_MAP)
                return s_fail(msg, PROTO_ERR_TYPE, f->key);
            if (proto_mp_map(mp, &n) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, f->key);
            if (n > f->bound)
                return s_fail(msg, PROTO_ERR_BOUND, f->key);
            proto_kv_t *kv = n ? proto_msg_alloc(msg, n * sizeof *kv) : NULL;
            for (uint32_t i = 0; i < n; i++) {
                if (s_read_str(mp, msg, f->item_bound, f->key, &kv[i].key) != 0
                    || s_read_str(mp, msg, f->item_bound, f->key, &kv[i].value) != 0)
                    return -2;
            }
            *(proto_kv_t **) p = kv;
            *(uint32_t *) (base + f->count_offset) = n;
            return 0;
        }
    }
    return s_fail(msg, PROTO_ERR_TYPE, f->key);
}

//  Find a field by key; returns its index or -1. Encoders write fields in
//  definition order, so the one after the previous match (hint) is tried
//  first: one comparison per key in the usual case.
static int
s_find_field(const proto_sdesc_t *d, const char *key, uint32_t len, size_t hint)
{
    const proto_field_t *f = d->fields;
    if (hint < d->nfields && f[hint].key_len == len && memcmp(key, f[hint].key, len) == 0)
        return (int) hint;
    for (size_t i = 0; i < d->nfields; i++)
        if (f[i].key_len == len && memcmp(key, f[i].key, len) == 0)
            return (int) i;
    return -1;
}

//  Decode one map entry's value into field i of d, tracking duplicates.
static int
s_decode_entry(proto_mp_t *mp,
               proto_msg_t *msg,
               const proto_sdesc_t *d,
               int i,
               uint8_t *base,
               uint64_t *seen,
               int depth)
{
    const proto_field_t *f = &d->fields[i];
    if (*seen & ((uint64_t) 1 << i))
        return s_fail(msg, PROTO_ERR_DUPLICATE, f->key);
    *seen |= (uint64_t) 1 << i;
    if (proto_mp_peek(mp) == PROTO_MP_NIL && !f->required) {
        (void) proto_mp_nil(mp); // nil for an optional field means absent
        return 0;
    }
    return s_decode_field(mp, msg, f, base, depth);
}

static int
s_check_required(proto_msg_t *msg, const proto_sdesc_t *d, uint64_t seen)
{
    for (size_t i = 0; i < d->nfields; i++)
        if (d->fields[i].required && !(seen & ((uint64_t) 1 << i)))
            return s_fail(msg, PROTO_ERR_MISSING, d->fields[i].key);
    return 0;
}

static int
s_decode_struct(proto_mp_t *mp, proto_msg_t *msg, const proto_sdesc_t *d, uint8_t *base, int depth)
{
    uint32_t n;
    if (proto_mp_peek(mp) != PROTO_MP_MAP)
        return s_fail(msg, PROTO_ERR_TYPE, d->name);
    if (proto_mp_map(mp, &n) != 0)
        return s_fail(msg, PROTO_ERR_MALFORMED, d->name);
    uint64_t seen = 0;
    size_t hint = 0;
    for (uint32_t k = 0; k < n; k++) {
        const char *key;
        uint32_t len;
        if (proto_mp_str(mp, &key, &len) != 0)
            return s_fail(msg, PROTO_ERR_MALFORMED, d->name);
        int i = s_find_field(d, key, len, hint);
        if (i < 0) {
            if (proto_mp_skip_at(mp, depth) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, d->name);
            continue;
        }
        hint = (size_t) i + 1;
        if (s_decode_entry(mp, msg, d, i, base, &seen, depth) != 0)
            return -2;
    }
    return s_check_required(msg, d, seen);
}

enum { ENV_V, ENV_T, ENV_ID, ENV_RID, ENV_SRC, ENV_TS, ENV_COUNT };
static const char *s_env_keys[ENV_COUNT] = {"v", "t", "id", "rid", "src", "ts"};

static int
s_env_index(const char *key, uint32_t len)
{
    for (int i = 0; i < ENV_COUNT; i++)
        if (s_key_is(key, len, s_env_keys[i]))
            return i;
    return -1;
}

//  First pass: prove the buffer is exactly one well-formed map with string
//  keys, and find the type.
static int
s_scan_type(const void *buf, size_t len, proto_msg_t *msg)
{
    proto_mp_t mp;
    uint32_t n;
    const char *type_name = NULL;
    uint32_t type_len = 0;
    bool have_type = false, bad_type = false, wrong_version = false;
    proto_mp_init(&mp, buf, len);
    if (proto_mp_map(&mp, &n) != 0)
        return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
    for (uint32_t k = 0; k < n; k++) {
        const char *key;
        uint32_t klen;
        if (proto_mp_str(&mp, &key, &klen) != 0)
            return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
        if (s_key_is(key, klen, "t")) {
            if (proto_mp_peek(&mp) != PROTO_MP_STR) {
                if (proto_mp_skip(&mp) != 0)
                    return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
                bad_type = true;
                continue;
            }
            if (proto_mp_str(&mp, &type_name, &type_len) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, "t");
            if (have_type)
                return s_fail(msg, PROTO_ERR_DUPLICATE, "t");
            have_type = true;
        } else if (s_key_is(key, klen, "v") && proto_mp_peek(&mp) == PROTO_MP_UINT) {
            // the version decides how the rest is read: checked before all else
            uint64_t v;
            if (proto_mp_uint(&mp, &v) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, "v");
            if (v != PROTO_VERSION)
                wrong_version = true;
        } else if (proto_mp_skip(&mp) != 0) {
            return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
        }
    }
    if (!proto_mp_done(&mp))
        return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
    if (wrong_version)
        return s_fail(msg, PROTO_ERR_VERSION, "v");
    if (bad_type)
        return s_fail(msg, PROTO_ERR_TYPE, "t");
    if (!have_type)
        return s_fail(msg, PROTO_ERR_MISSING, "t");
    msg->type = proto_type_by_name(type_name, type_len);
    if (msg->type == PROTO_NONE)
        return s_fail(msg, PROTO_ERR_UNKNOWN, "t");
    return 0;
}

static int
s_decode_envelope(proto_mp_t *mp, proto_msg_t *msg, int which)
{
    uint64_t v;
    const char *key = s_env_keys[which];
    switch (which) {
        case ENV_V:
            if (proto_mp_peek(mp) != PROTO_MP_UINT)
                return s_fail(msg, PROTO_ERR_TYPE, key);
            if (proto_mp_uint(mp, &v) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, key);
            if (v != PROTO_VERSION)
                return s_fail(msg, PROTO_ERR_VERSION, key);
            return 0;
        case ENV_T:
            return proto_mp_skip(mp) == 0 ? 0 : s_fail(msg, PROTO_ERR_MALFORMED, key);
        case ENV_ID:
        case ENV_TS:
            if (proto_mp_peek(mp) != PROTO_MP_UINT)
                return s_fail(msg, PROTO_ERR_TYPE, key);
            if (proto_mp_uint(mp, which == ENV_ID ? &msg->id : &msg->ts) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, key);
            return 0;
        case ENV_RID:
            return s_read_str(mp, msg, PROTO_RID_MAX, key, &msg->rid);
        case ENV_SRC:
            return s_read_str(mp, msg, PROTO_SRC_MAX, key, &msg->src);
    }
    return s_fail(msg, PROTO_ERR_MALFORMED, key);
}

//  Decode n map entries (envelope and body) of a message whose type is
//  known; env_seen: envelope keys already read. Every read is checked, so
//  this is safe on bytes no first pass has proven.
static int
s_decode_entries(proto_mp_t *mp, uint32_t n, proto_msg_t *msg, unsigned env_seen)
{
    const proto_sdesc_t *d = proto_mdesc(msg->type)->body();
    uint8_t *base = (uint8_t *) &msg->ping;
    uint64_t seen = 0;
    size_t hint = 0;
    for (uint32_t k = 0; k < n; k++) {
        const char *key;
        uint32_t klen;
        if (proto_mp_str(mp, &key, &klen) != 0)
            return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
        int e = klen <= 3 ? s_env_index(key, klen) : -1;
        if (e >= 0) {
            if (env_seen & (1u << e))
                return s_fail(msg, PROTO_ERR_DUPLICATE, s_env_keys[e]);
            env_seen |= 1u << e;
            if (s_decode_envelope(mp, msg, e) != 0)
                return -2;
            continue;
        }
        int i = s_find_field(d, key, klen, hint);
        if (i < 0) {
            // unknown keys are ignored: newer senders may add fields
            if (proto_mp_skip(mp) != 0)
                return s_fail(msg, PROTO_ERR_MALFORMED, NULL);
            continue;
        }
        hint = (size_t) i + 1;
        if (s_decode_entry(mp, msg, d, i, base, &seen, 0) != 0)
            return -2;
    }
    const int required_env[] = {ENV_V, ENV_ID, ENV_SRC, ENV_TS};
    for (size_t r = 0; r < sizeof required_env / sizeof required_env[0]; r++)
        if (!(env_seen & (1u << required_env[r])))
            return s_fail(msg, PROTO_ERR_MISSING, s_env_keys[required_env[r]]);
    return s_check_required(msg, d, seen);
}

//  One pass, for what proto_encode writes: "v" (this version) and "t" as
//  the first two keys, then everything else, and nothing after the map.
//  Returns 0, or -1 when the message is not of that shape or fails in any
//  way: the caller then decodes it again the careful way, which gives the
//  canonical error (the same bytes get the same answer either way).
static int
s_decode_fast(const void *buf, size_t len, proto_msg_t *msg)
{
    proto_mp_t mp;
    uint32_t n;
    const char *key, *type_name;
    uint32_t klen, type_len;
    uint64_t v;
    proto_mp_init(&mp, buf, len);
    if (proto_mp_map(&mp, &n) != 0 || n < 2)
        return -1;
    if (proto_mp_str(&mp, &key, &klen) != 0 || !s_key_is(key, klen, "v")
        || proto_mp_peek(&mp) != PROTO_MP_UINT || proto_mp_uint(&mp, &v) != 0 || v != PROTO_VERSION)
        return -1;
    if (proto_mp_str(&mp, &key, &klen) != 0 || !s_key_is(key, klen, "t")
        || proto_mp_peek(&mp) != PROTO_MP_STR || proto_mp_str(&mp, &type_name, &type_len) != 0)
        return -1;
    msg->type = proto_type_by_name(type_name, type_len);
    if (msg->type == PROTO_NONE)
        return -1;
    if (s_decode_entries(&mp, n - 2, msg, (1u << ENV_V) | (1u << ENV_T)) != 0)
        return -1;
    return proto_mp_done(&mp) ? 0 : -1;
}

int
proto_decode(const void *buf, size_t len, proto_msg_t *msg)
{
    proto_msg_clear(msg);
    if (len > PROTO_MSG_MAX)
        return s_fail(msg, PROTO_ERR_OVERSIZE, NULL);
    if (s_decode_fast(buf, len, msg) == 0)
        return 0;
    // the careful way: a first pass proves the map and finds the type
    proto_msg_clear(msg);
    if (s_scan_type(buf, len, msg) != 0)
        return -2;
    proto_mp_t mp;
    uint32_t n;
    proto_mp_init(&mp, buf, len);
    (void) proto_mp_map(&mp, &n); // proven by the first pass
    return s_decode_entries(&mp, n, msg, 0);
}
