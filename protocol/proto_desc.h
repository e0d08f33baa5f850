/*  proto_desc - field descriptors of every struct and message in messages.def.

    The encoder, the decoder, the generated tests and `make spec` all walk
    these tables, so there is one definition of every field's key, type,
    bound and whether it is required.
*/
#ifndef PROTO_DESC_H
#define PROTO_DESC_H

#include "proto.h"

typedef enum {
    PROTO_FT_STR,
    PROTO_FT_BIN,
    PROTO_FT_U8,
    PROTO_FT_U16,
    PROTO_FT_U32,
    PROTO_FT_U64,
    PROTO_FT_I64,
    PROTO_FT_F64,
    PROTO_FT_BOOL,
    PROTO_FT_LIST,
    PROTO_FT_KV,
} proto_ftype_t;

typedef struct proto_sdesc proto_sdesc_t;

//  The SOCKET column of messages.def: which bus sockets a type travels on.
typedef enum {
    PROTO_SOCKET_ROUTER, // a request on a ROUTER, its reply on the asker's DEALER
    PROTO_SOCKET_XPUB,   // an event, published on an XPUB, received on a SUB
} proto_socket_t;

typedef struct {
    const char *key;                   // wire key and C member name
    uint32_t key_len;                  // strlen(key)
    proto_ftype_t type;                // kind of value
    uint32_t bound;                    // STR/BIN bytes, LIST/KV items, max unsigned value (0: none)
    uint32_t item_bound;               // KV: bytes of each key and value
    bool required;                     // absent is malformed
    size_t offset;                     // of the member in the struct
    size_t count_offset;               // LIST/KV: of the uint32_t count member
    const proto_sdesc_t *(*sub)(void); // LIST: the element struct
    const char *doc;                   // one line
} proto_field_t;

struct proto_sdesc {
    const char *name;            // struct name in messages.def (lower case)
    const char *doc;             // one line
    size_t size;                 // sizeof the C struct
    const proto_field_t *fields; // the fields, in definition order
    size_t nfields;              // how many
};

typedef struct {
    proto_type_t type;                  // enum value
    const char *wire;                   // "t" on the wire
    const char *sender;                 // who sends it
    const char *receivers;              // who receives it
    const char *socket;                 // ROUTER (request/reply) or XPUB (event)
    proto_socket_t socket_type;         // the same, as an enum
    const char *doc;                    // one line
    const proto_sdesc_t *(*body)(void); // the body fields
} proto_mdesc_t;

//  Descriptor of a message type, or NULL for PROTO_NONE / out of range.
const proto_mdesc_t *proto_mdesc(proto_type_t type);

//  Descriptor functions of every struct and message body.
#define PROTO_STRUCT(C, name, doc, fields) const proto_sdesc_t *proto_sdesc_##name(void);
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)                           \
    const proto_sdesc_t *proto_sdesc_##name(void);
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT

//  Name of a field type as PROTOCOL.md writes it.
const char *proto_ftype_name(proto_ftype_t type);

#endif
