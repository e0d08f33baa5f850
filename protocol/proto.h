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

//  The bounds of messages.def as constants, for buffers and checks that
//  mirror a field: PROTO_<NAME>_<KEY>_MAX is the bound of field key of the
//  message or struct NAME (bytes of a str or bin, records of a list, pairs
//  of a map) and PROTO_<NAME>_<KEY>_ITEM_MAX the bytes of each string of a
//  map. Enum constants, so usable as array sizes:
//      char host[PROTO_DECIDE_HOST_MAX + 1];
//      char region[PROTO_BACKEND_REGION_MAX + 1];
//  Integer fields have none (their bound is a value, 0 for the type's range).
//
//  How: each field becomes a tuple (TYPE, key, bound), PROTO_BOUNDS_EACH
//  applies PROTO_BOUND_ENTRY to every tuple of a record with its NAME, and
//  PROTO_UC_<key> spells the key in upper case (the preprocessor cannot).
//  A new key in messages.def needs a line in that table, or proto.h stops
//  compiling there.
#define PROTO_UC_address(C, s)       PROTO_##C##_ADDRESS##s
#define PROTO_UC_auth(C, s)          PROTO_##C##_AUTH##s
#define PROTO_UC_auth_have(C, s)     PROTO_##C##_AUTH_HAVE##s
#define PROTO_UC_auth_id(C, s)       PROTO_##C##_AUTH_ID##s
#define PROTO_UC_auth_provider(C, s) PROTO_##C##_AUTH_PROVIDER##s
#define PROTO_UC_auth_tokens(C, s)   PROTO_##C##_AUTH_TOKENS##s
#define PROTO_UC_auth_users(C, s)    PROTO_##C##_AUTH_USERS##s
#define PROTO_UC_backend(C, s)       PROTO_##C##_BACKEND##s
#define PROTO_UC_backends(C, s)      PROTO_##C##_BACKENDS##s
#define PROTO_UC_body(C, s)          PROTO_##C##_BODY##s
#define PROTO_UC_by(C, s)            PROTO_##C##_BY##s
#define PROTO_UC_candidates(C, s)    PROTO_##C##_CANDIDATES##s
#define PROTO_UC_certs(C, s)         PROTO_##C##_CERTS##s
#define PROTO_UC_chain(C, s)         PROTO_##C##_CHAIN##s
#define PROTO_UC_chat_path(C, s)     PROTO_##C##_CHAT_PATH##s
#define PROTO_UC_client(C, s)        PROTO_##C##_CLIENT##s
#define PROTO_UC_code(C, s)          PROTO_##C##_CODE##s
#define PROTO_UC_cors(C, s)          PROTO_##C##_CORS##s
#define PROTO_UC_counters(C, s)      PROTO_##C##_COUNTERS##s
#define PROTO_UC_cursor(C, s)        PROTO_##C##_CURSOR##s
#define PROTO_UC_data(C, s)          PROTO_##C##_DATA##s
#define PROTO_UC_domain(C, s)        PROTO_##C##_DOMAIN##s
#define PROTO_UC_endpoint(C, s)      PROTO_##C##_ENDPOINT##s
#define PROTO_UC_error(C, s)         PROTO_##C##_ERROR##s
#define PROTO_UC_event(C, s)         PROTO_##C##_EVENT##s
#define PROTO_UC_field(C, s)         PROTO_##C##_FIELD##s
#define PROTO_UC_gateway(C, s)       PROTO_##C##_GATEWAY##s
#define PROTO_UC_gw_region(C, s)     PROTO_##C##_GW_REGION##s
#define PROTO_UC_headers(C, s)       PROTO_##C##_HEADERS##s
#define PROTO_UC_host(C, s)          PROTO_##C##_HOST##s
#define PROTO_UC_id(C, s)            PROTO_##C##_ID##s
#define PROTO_UC_instance(C, s)      PROTO_##C##_INSTANCE##s
#define PROTO_UC_items(C, s)         PROTO_##C##_ITEMS##s
#define PROTO_UC_join(C, s)          PROTO_##C##_JOIN##s
#define PROTO_UC_key(C, s)           PROTO_##C##_KEY##s
#define PROTO_UC_kind(C, s)          PROTO_##C##_KIND##s
#define PROTO_UC_leave(C, s)         PROTO_##C##_LEAVE##s
#define PROTO_UC_message(C, s)       PROTO_##C##_MESSAGE##s
#define PROTO_UC_method(C, s)        PROTO_##C##_METHOD##s
#define PROTO_UC_name(C, s)          PROTO_##C##_NAME##s
#define PROTO_UC_ocsp(C, s)          PROTO_##C##_OCSP##s
#define PROTO_UC_path(C, s)          PROTO_##C##_PATH##s
#define PROTO_UC_principal(C, s)     PROTO_##C##_PRINCIPAL##s
#define PROTO_UC_procs(C, s)         PROTO_##C##_PROCS##s
#define PROTO_UC_query(C, s)         PROTO_##C##_QUERY##s
#define PROTO_UC_reason(C, s)        PROTO_##C##_REASON##s
#define PROTO_UC_region(C, s)        PROTO_##C##_REGION##s
#define PROTO_UC_regions(C, s)       PROTO_##C##_REGIONS##s
#define PROTO_UC_rid(C, s)           PROTO_##C##_RID##s
#define PROTO_UC_rl_key(C, s)        PROTO_##C##_RL_KEY##s
#define PROTO_UC_rooms(C, s)         PROTO_##C##_ROOMS##s
#define PROTO_UC_route(C, s)         PROTO_##C##_ROUTE##s
#define PROTO_UC_routes(C, s)        PROTO_##C##_ROUTES##s
#define PROTO_UC_routes_max(C, s)    PROTO_##C##_ROUTES_MAX##s
#define PROTO_UC_session(C, s)       PROTO_##C##_SESSION##s
#define PROTO_UC_sha256(C, s)        PROTO_##C##_SHA256##s
#define PROTO_UC_socket(C, s)        PROTO_##C##_SOCKET##s
#define PROTO_UC_status(C, s)        PROTO_##C##_STATUS##s
#define PROTO_UC_strategy(C, s)      PROTO_##C##_STRATEGY##s
#define PROTO_UC_sub(C, s)           PROTO_##C##_SUB##s
#define PROTO_UC_summary(C, s)       PROTO_##C##_SUMMARY##s
#define PROTO_UC_tenant(C, s)        PROTO_##C##_TENANT##s
#define PROTO_UC_text(C, s)          PROTO_##C##_TEXT##s
#define PROTO_UC_user(C, s)          PROTO_##C##_USER##s
#define PROTO_UC_version(C, s)       PROTO_##C##_VERSION##s
#define PROTO_UC_vhost(C, s)         PROTO_##C##_VHOST##s
#define PROTO_UC_what(C, s)          PROTO_##C##_WHAT##s

#define PROTO_BOUNDS_CAT(a, b)                a##b
#define PROTO_BOUNDS_XCAT(a, b)               PROTO_BOUNDS_CAT(a, b)
#define PROTO_BOUNDS_UNPAREN(...)             __VA_ARGS__
#define PROTO_BOUND_ENTRY(C, t)               PROTO_BOUND_ENTRY_(C, PROTO_BOUNDS_UNPAREN t)
#define PROTO_BOUND_ENTRY_(C, ...)            PROTO_BOUND_ENTRY__(C, __VA_ARGS__)
#define PROTO_BOUND_ENTRY__(C, T, key, bound) PROTO_BOUND_##T(C, key, bound)
#define PROTO_BOUND_STR(C, key, bound)        enum { PROTO_UC_##key(C, _MAX) = (bound) };
#define PROTO_BOUND_BIN(C, key, bound)        enum { PROTO_UC_##key(C, _MAX) = (bound) };
#define PROTO_BOUND_LIST(C, key, bound)       enum { PROTO_UC_##key(C, _MAX) = (bound) };
#define PROTO_BOUND_KV(C, key, bound)         enum { PROTO_UC_##key(C, _MAX) = (bound) };
#define PROTO_BOUND_KVITEM(C, key, bound)     enum { PROTO_UC_##key(C, _ITEM_MAX) = (bound) };
#define PROTO_BOUND_U8(C, key, bound)
#define PROTO_BOUND_U16(C, key, bound)
#define PROTO_BOUND_U32(C, key, bound)
#define PROTO_BOUND_U64(C, key, bound)
#define PROTO_BOUND_I64(C, key, bound)
#define PROTO_BOUND_F64(C, key, bound)
#define PROTO_BOUND_BOOL(C, key, bound)
#define PROTO_BOUND_END(C, key, bound)
//  PROTO_BOUNDS_EACH(M, C, t1, t2, ...) is M(C, t1) M(C, t2) ...: up to 48.
#define PROTO_BOUNDS_1(M, C, t)       M(C, t)
#define PROTO_BOUNDS_2(M, C, t, ...)  M(C, t) PROTO_BOUNDS_1(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_3(M, C, t, ...)  M(C, t) PROTO_BOUNDS_2(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_4(M, C, t, ...)  M(C, t) PROTO_BOUNDS_3(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_5(M, C, t, ...)  M(C, t) PROTO_BOUNDS_4(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_6(M, C, t, ...)  M(C, t) PROTO_BOUNDS_5(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_7(M, C, t, ...)  M(C, t) PROTO_BOUNDS_6(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_8(M, C, t, ...)  M(C, t) PROTO_BOUNDS_7(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_9(M, C, t, ...)  M(C, t) PROTO_BOUNDS_8(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_10(M, C, t, ...) M(C, t) PROTO_BOUNDS_9(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_11(M, C, t, ...) M(C, t) PROTO_BOUNDS_10(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_12(M, C, t, ...) M(C, t) PROTO_BOUNDS_11(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_13(M, C, t, ...) M(C, t) PROTO_BOUNDS_12(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_14(M, C, t, ...) M(C, t) PROTO_BOUNDS_13(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_15(M, C, t, ...) M(C, t) PROTO_BOUNDS_14(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_16(M, C, t, ...) M(C, t) PROTO_BOUNDS_15(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_17(M, C, t, ...) M(C, t) PROTO_BOUNDS_16(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_18(M, C, t, ...) M(C, t) PROTO_BOUNDS_17(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_19(M, C, t, ...) M(C, t) PROTO_BOUNDS_18(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_20(M, C, t, ...) M(C, t) PROTO_BOUNDS_19(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_21(M, C, t, ...) M(C, t) PROTO_BOUNDS_20(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_22(M, C, t, ...) M(C, t) PROTO_BOUNDS_21(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_23(M, C, t, ...) M(C, t) PROTO_BOUNDS_22(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_24(M, C, t, ...) M(C, t) PROTO_BOUNDS_23(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_25(M, C, t, ...) M(C, t) PROTO_BOUNDS_24(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_26(M, C, t, ...) M(C, t) PROTO_BOUNDS_25(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_27(M, C, t, ...) M(C, t) PROTO_BOUNDS_26(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_28(M, C, t, ...) M(C, t) PROTO_BOUNDS_27(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_29(M, C, t, ...) M(C, t) PROTO_BOUNDS_28(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_30(M, C, t, ...) M(C, t) PROTO_BOUNDS_29(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_31(M, C, t, ...) M(C, t) PROTO_BOUNDS_30(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_32(M, C, t, ...) M(C, t) PROTO_BOUNDS_31(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_33(M, C, t, ...) M(C, t) PROTO_BOUNDS_32(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_34(M, C, t, ...) M(C, t) PROTO_BOUNDS_33(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_35(M, C, t, ...) M(C, t) PROTO_BOUNDS_34(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_36(M, C, t, ...) M(C, t) PROTO_BOUNDS_35(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_37(M, C, t, ...) M(C, t) PROTO_BOUNDS_36(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_38(M, C, t, ...) M(C, t) PROTO_BOUNDS_37(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_39(M, C, t, ...) M(C, t) PROTO_BOUNDS_38(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_40(M, C, t, ...) M(C, t) PROTO_BOUNDS_39(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_41(M, C, t, ...) M(C, t) PROTO_BOUNDS_40(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_42(M, C, t, ...) M(C, t) PROTO_BOUNDS_41(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_43(M, C, t, ...) M(C, t) PROTO_BOUNDS_42(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_44(M, C, t, ...) M(C, t) PROTO_BOUNDS_43(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_45(M, C, t, ...) M(C, t) PROTO_BOUNDS_44(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_46(M, C, t, ...) M(C, t) PROTO_BOUNDS_45(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_47(M, C, t, ...) M(C, t) PROTO_BOUNDS_46(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_48(M, C, t, ...) M(C, t) PROTO_BOUNDS_47(M, C, __VA_ARGS__)
#define PROTO_BOUNDS_COUNT(...)                                                                    \
    PROTO_BOUNDS_COUNT_(__VA_ARGS__, 48, 47, 46, 45, 44, 43, 42, 41, 40, 39, 38, 37, 36, 35, 34,   \
                        33, 32, 31, 30, 29, 28, 27, 26, 25, 24, 23, 22, 21, 20, 19, 18, 17, 16,    \
                        15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0)
#define PROTO_BOUNDS_COUNT_(_1, _2, _3, _4, _5, _6, _7, _8, _9, _10, _11, _12, _13, _14, _15, _16, \
                            _17, _18, _19, _20, _21, _22, _23, _24, _25, _26, _27, _28, _29, _30,  \
                            _31, _32, _33, _34, _35, _36, _37, _38, _39, _40, _41, _42, _43, _44,  \
                            _45, _46, _47, _48, n, ...)                                            \
    n
#define PROTO_BOUNDS_EACH(M, C, ...)                                                               \
    PROTO_BOUNDS_XCAT(PROTO_BOUNDS_, PROTO_BOUNDS_COUNT(__VA_ARGS__))(M, C, __VA_ARGS__)
#define FIELD(T, key, bound, req, doc)     (T, key, bound),
#define LIST(s, key, max, req, doc)        (LIST, key, max),
#define KV(key, max, bound, req, doc)      (KV, key, max), (KVITEM, key, bound),
#define PROTO_BOUNDS_RECORD(C, ...)        PROTO_BOUNDS_EACH(PROTO_BOUND_ENTRY, C, __VA_ARGS__(END, -, 0))
#define PROTO_STRUCT(C, name, doc, fields) PROTO_BOUNDS_RECORD(C, fields)
#define PROTO_MSG(C, name, wire, sender, receivers, socket, doc, fields)                           \
    PROTO_BOUNDS_RECORD(C, fields)
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
