/*  proto_desc - field descriptors generated from messages.def.

    Each descriptor function declares a block-scope typedef of its struct so
    that offsetof() can name the members the X-macros list.
*/
#include <stddef.h>

#include "proto_desc.h"

#define PROTO_REQ_REQ true
#define PROTO_REQ_OPT false

#define FIELD(pt, pk, pb, pr, pd)                                                                  \
    {.key = #pk,                                                                                   \
     .key_len = sizeof(#pk) - 1,                                                                   \
     .type = PROTO_FT_##pt,                                                                        \
     .bound = (pb),                                                                                \
     .required = PROTO_REQ_##pr,                                                                   \
     .offset = offsetof(self_t, pk),                                                               \
     .doc = (pd)},
#define LIST(ps, pk, pm, pr, pd)                                                                   \
    {.key = #pk,                                                                                   \
     .key_len = sizeof(#pk) - 1,                                                                   \
     .type = PROTO_FT_LIST,                                                                        \
     .bound = (pm),                                                                                \
     .required = PROTO_REQ_##pr,                                                                   \
     .offset = offsetof(self_t, pk),                                                               \
     .count_offset = offsetof(self_t, pk##_count),                                                 \
     .sub = proto_sdesc_##ps,                                                                      \
     .doc = (pd)},
#define KV(pk, pm, pb, pr, pd)                                                                     \
    {.key = #pk,                                                                                   \
     .key_len = sizeof(#pk) - 1,                                                                   \
     .type = PROTO_FT_KV,                                                                          \
     .bound = (pm),                                                                                \
     .item_bound = (pb),                                                                           \
     .required = PROTO_REQ_##pr,                                                                   \
     .offset = offsetof(self_t, pk),                                                               \
     .count_offset = offsetof(self_t, pk##_count),                                                 \
     .doc = (pd)},
#define PROTO_DESC_FN(name, pdoc, ...)                                                             \
    const proto_sdesc_t *proto_sdesc_##name(void)                                                  \
    {                                                                                              \
        typedef proto_##name##_t self_t;                                                           \
        static const proto_field_t f[] = {__VA_ARGS__{.key = NULL}};                               \
        static const proto_sdesc_t d = {#name, pdoc, sizeof(self_t), f,                            \
                                        sizeof(f) / sizeof(f[0]) - 1};                             \
        return &d;                                                                                 \
    }
#define PROTO_STRUCT(C, name, doc, fields) PROTO_DESC_FN(name, doc, fields)
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)                           \
    PROTO_DESC_FN(name, doc, fields)
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT

static const proto_mdesc_t s_messages[] = {
#define PROTO_STRUCT(C, name, doc, fields)
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)                           \
    {PROTO_##C, wire, sender, receivers, #socket, PROTO_SOCKET_##socket, doc, proto_sdesc_##name},
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT
};

const proto_mdesc_t *
proto_mdesc(proto_type_t type)
{
    if (type <= PROTO_NONE || type >= PROTO_TYPE_COUNT)
        return NULL;
    return &s_messages[type - 1];
}

const char *
proto_ftype_name(proto_ftype_t type)
{
    static const char *names[] = {"str", "bin", "u8",   "u16",  "u32", "u64",
                                  "i64", "f64", "bool", "list", "map"};
    return names[type];
}
