/*  proto - the Switchyard bus messages: types, encoder, validating decoder.

    Every type, struct and field here comes from messages.def. A message on
    the wire is one msgpack map holding the envelope (v, t, id, rid, src, ts)
    and the body fields. proto_encode writes it; proto_decode checks every key,
    type and bound, copies what it keeps into the message's own arena, and
    returns -2 with a reason for anything malformed. Nothing in a decoded
    message points into the input buffer.
*/
#ifndef PROTO_H
#define PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_VERSION      1
#define PROTO_MSG_MAX      (2u * 1024u * 1024u) // largest message the bus accepts
#define PROTO_RID_MAX      128                  // request id bytes
#define PROTO_SRC_MAX      96                   // "kind/instance" bytes
#define PROTO_TYPE_MAX     32                   // wire type name bytes
#define PROTO_MAX_FIELDS   64                   // fields per struct (decoder bitmap)
#define PROTO_ARENA_INLINE 512                  // arena bytes inside proto_msg_t

//  A byte string. In a decoded message it points into the message's arena.
typedef struct {
    const uint8_t *data; // bytes (not NUL-terminated)
    size_t size;         // how many
} proto_bin_t;

//  A string pair of a KV field.
typedef struct {
    const char *key;   // name
    const char *value; // value
} proto_kv_t;

//  C types of the field kinds.
#define PROTO_CT_STR  const char *
#define PROTO_CT_BIN  proto_bin_t
#define PROTO_CT_U8   uint8_t
#define PROTO_CT_U16  uint16_t
#define PROTO_CT_U32  uint32_t
#define PROTO_CT_U64  uint64_t
#define PROTO_CT_I64  int64_t
#define PROTO_CT_F64  double
#define PROTO_CT_BOOL bool

//  The structs of messages.def: proto_<name>_t.
#define FIELD(T, key, bound, req, doc) PROTO_CT_##T key;
#define LIST(s, key, max, req, doc)                                                                \
    struct proto_##s *key;                                                                         \
    uint32_t key##_count;
#define KV(key, max, bound, req, doc)                                                              \
    proto_kv_t *key;                                                                               \
    uint32_t key##_count;
#define PROTO_STRUCT(C, name, doc, fields)                                                         \
    typedef struct proto_##name {                                                                  \
        fields                                                                                     \
    } proto_##name##_t;
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)                           \
    typedef struct proto_##name {                                                                  \
        fields uint8_t reserved_;                                                                  \
    } proto_##name##_t;
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT
#undef KV
#undef LIST
#undef FIELD

//  Message types: PROTO_PING, PROTO_PONG, ...; PROTO_NONE is 0.
typedef enum {
    PROTO_NONE = 0,
#define PROTO_STRUCT(C, name, doc, fields)
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields) PROTO_##C,
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT
    PROTO_TYPE_COUNT
} proto_type_t;

//  Why a message was dropped. Counted per reason by every actor.
typedef enum {
    PROTO_OK = 0,
    PROTO_ERR_OVERSIZE,   // over PROTO_MSG_MAX
    PROTO_ERR_MALFORMED,  // not one complete msgpack map (truncated, trailing bytes, bad encoding)
    PROTO_ERR_VERSION,    // v is not PROTO_VERSION
    PROTO_ERR_UNKNOWN,    // t is not a known type
    PROTO_ERR_MISSING,    // a required key is absent
    PROTO_ERR_TYPE,       // a value has the wrong type
    PROTO_ERR_BOUND,      // a value is over its bound
    PROTO_ERR_DUPLICATE,  // a key appears twice
    PROTO_ERR_FRAMES,     // the ZeroMQ message has the wrong number of frames
    PROTO_ERR_UNEXPECTED, // a valid message this actor does not take on that socket
    PROTO_ERR_COUNT
} proto_err_t;

typedef struct proto_arena_block proto_arena_block_t;

//  One bus message: the envelope and the body of its type.
typedef struct {
    proto_type_t type; // which member of the union is valid
    uint64_t id;       // message id, unique per sender; replies carry the request's id
    const char *rid;   // request id ("" for none)
    const char *src;   // sender, "kind/instance"
    uint64_t ts;       // milliseconds since the epoch
    union {
#define PROTO_STRUCT(C, name, doc, fields)
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields) proto_##name##_t name;
#include "messages.def"
#undef PROTO_MSG
#undef PROTO_STRUCT
    };
    proto_err_t err;       // after a failed decode: why
    const char *err_field; // after a failed decode: the key concerned, or NULL (static string)
    // arena holding everything a decode copied; private
    proto_arena_block_t *arena_head;
    size_t arena_used;
    uint64_t arena_inline[PROTO_ARENA_INLINE / 8];
} proto_msg_t;

//  A growable byte buffer for encoding.
typedef struct {
    uint8_t *data; // bytes
    size_t size;   // used
    size_t cap;    // allocated
} proto_buf_t;

//  Start a message of a type with an empty body. rid and src are borrowed.
void proto_msg_init(proto_msg_t *msg, proto_type_t type);

//  Free what a decode allocated and zero the message. Safe to call twice.
void proto_msg_clear(proto_msg_t *msg);

//  Allocate len bytes that live as long as the message (aborts on OOM).
void *proto_msg_alloc(proto_msg_t *msg, size_t len);

//  Copy a string into the message's arena. Returns the copy.
const char *proto_msg_strdup(proto_msg_t *msg, const char *s, size_t len);

//  Encode msg into buf (replacing its contents). Returns 0, or -1 with errno
//  EMSGSIZE when a field is over its bound or the result over PROTO_MSG_MAX,
//  EINVAL when a required string is NULL or the type is unknown.
int proto_encode(const proto_msg_t *msg, proto_buf_t *buf);

//  Decode len bytes into msg (which is cleared first). Returns 0, or -2 with
//  msg->err (and msg->err_field) saying why. Never reads outside buf.
int proto_decode(const void *buf, size_t len, proto_msg_t *msg);

//  Free a buffer's memory. Safe to call twice.
void proto_buf_free(proto_buf_t *buf);

//  Wire name of a type ("ping"), or NULL. Type by wire name, or PROTO_NONE.
const char *proto_type_name(proto_type_t type);
proto_type_t proto_type_by_name(const char *name, size_t len);

//  Short name of a drop reason ("malformed").
const char *proto_err_name(proto_err_t err);

//  Milliseconds since the epoch; microseconds of the monotonic clock.
uint64_t proto_now_ms(void);
uint64_t proto_mono_us(void);

#endif
