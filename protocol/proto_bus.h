/*  proto_bus - an actor's place on the Switchyard bus.

    Binds one ROUTER (requests to this actor) and one XPUB (its events): ipc
    files <kind>.<pid>.req/.pub in BUS_DIR, or tcp BUS_BIND and the next port.
    For each peer kind the actor uses it keeps one DEALER (requests out, spread
    by ZeroMQ over every instance) and/or one SUB (events in), connected and
    disconnected per instance as proto_disc finds them.

    With CURVE keys (proto_curve), a tcp BUS_BIND binds CURVE servers guarded
    by a ZAP handler, and every tcp peer is connected as a CURVE client; ipc
    stays plain. Refused peers and failed handshakes are counted in pong
    (bus.refused, bus.handshake_failed) and logged, rate-limited.

    Every message in or out is counted; a malformed, oversized, unknown or
    unexpected one is dropped and counted by reason, never fatal. Requests
    carry an id and a deadline: a late or duplicate reply is dropped by id.
    ping is answered with pong, proc.stats is published every interval and
    when a subscriber arrives, and every message is mirrored on the XPUB under
    tap.<kind>.<in|out>.<type> while (and only while) a tap is subscribed.
*/
#ifndef PROTO_BUS_H
#define PROTO_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proto.h"
#include "proto_curve.h"

//  The actor kinds. PROTO_KIND_CLI is the operator CLI (never bound).
#define PROTO_KINDS(X)                                                                             \
    X(GATEWAY, gateway)                                                                            \
    X(ROUTER, router)                                                                              \
    X(BALANCER, balancer)                                                                          \
    X(HEALTHD, healthd)                                                                            \
    X(STATSD, statsd)                                                                              \
    X(CHATD, chatd)                                                                                \
    X(APID, apid)

typedef enum {
#define PROTO_KIND_ENUM(C, name) PROTO_KIND_##C,
    PROTO_KINDS(PROTO_KIND_ENUM)
#undef PROTO_KIND_ENUM
        PROTO_KIND_COUNT
} proto_kind_t;

//  Name of a kind ("router"), or NULL. Kind by name, or -1.
const char *proto_kind_name(int kind);
int proto_kind_by_name(const char *name);

#define PROTO_BUS_HWM        10000  // ROUTER/DEALER queue bound, messages
#define PROTO_BUS_PUB_HWM    100000 // XPUB/SUB queue bound, messages
#define PROTO_BUS_BATCH      64     // messages handled per wake-up per socket
#define PROTO_BUS_IDENTITY   255    // routing id bytes
#define PROTO_BUS_PENDING    65536  // requests awaiting replies
#define PROTO_BUS_HEARTBEAT  1000   // ZMTP heartbeat interval, ms
#define PROTO_BUS_HB_TIMEOUT 3000   // ZMTP heartbeat timeout, ms
#define PROTO_BUS_COUNTERS   96     // counters an actor may add to pong (proto_bus_counter)

typedef struct proto_bus proto_bus_t;

typedef enum {
    PROTO_FROM_REQUEST, // on our ROUTER: a request to answer
    PROTO_FROM_REPLY,   // on a DEALER: an answer to us
    PROTO_FROM_EVENT,   // on a SUB: an event
} proto_from_t;

//  Where to send a reply; copy it to answer later.
typedef struct {
    uint8_t identity[PROTO_BUS_IDENTITY]; // ROUTER routing id
    uint8_t identity_len;                 // its length
    uint64_t id;                          // the request's message id
    char rid[PROTO_RID_MAX + 1];          // the request's rid
} proto_return_t;

//  A received message (borrowed by handlers; valid during the call).
typedef struct {
    proto_msg_t msg;    // decoded
    proto_from_t from;  // which kind of socket
    int kind;           // REPLY/EVENT: peer kind of the socket; REQUEST: -1
    proto_return_t ret; // REQUEST: where the reply goes
} proto_in_t;

typedef void(proto_bus_fn)(proto_bus_t *bus, proto_in_t *in, void *arg);
//  Answer to proto_bus_request: in is the reply, or NULL when the deadline
//  passed or the request could not be sent.
typedef void(proto_reply_fn)(proto_bus_t *bus, proto_in_t *in, void *arg);

typedef struct {
    const char *kind;                    // our kind ("router")
    const char *instance;                // INSTANCE_ID
    const char *region;                  // REGION (reported in pong)
    const char *bus_dir;                 // BUS_DIR
    const char *bus_bind;                // BUS_BIND or NULL for ipc in bus_dir
    const char *peers[PROTO_KIND_COUNT]; // BUS_PEERS_<KIND> or NULL
    int64_t stats_interval_ms;           // proc.stats period
    const proto_curve_t *curve;          // CURVE keys for tcp (copied), NULL: plain
} proto_bus_config_t;

//  Create the bus for an actor (sockets are bound by proto_bus_start).
//  Strings in cfg are copied. Returns NULL with a reason in err.
proto_bus_t *
proto_bus_new(struct ev_loop *loop, const proto_bus_config_t *cfg, char *err, size_t errlen);

//  Bind and start watching. Returns 0, or -1 with a reason in err.
int proto_bus_start(proto_bus_t *self, char *err, size_t errlen);

//  Use a peer kind: requests (a DEALER) and/or events (a SUB subscribed to
//  each wire type name in topics, NULL-terminated). Call before or after
//  start. Returns 0, or -1 with a reason in err.
int proto_bus_use(proto_bus_t *self,
                  int kind,
                  bool requests,
                  const char *const *topics,
                  char *err,
                  size_t errlen);

//  Handle messages of a type: requests (on our ROUTER) of a type whose
//  messages.def SOCKET is ROUTER, events (on a SUB) of one whose SOCKET is
//  XPUB. The bus drops, as dropped.unexpected, a type on a socket its
//  SOCKET does not name (an event sent as a request, a request published),
//  and a type nobody handles; so in->from needs no check. A reply (on a
//  DEALER) goes only to its proto_bus_request callback, and one that
//  matches no pending request counts as replies.late. ping has a built-in
//  handler.
void proto_bus_on(proto_bus_t *self, proto_type_t type, proto_bus_fn *fn, void *arg);

//  Send a request to one instance of kind (ZeroMQ picks which). Fills the
//  envelope (id, src, ts; rid stays as set). Returns 0, or -1 (no instance,
//  queue full) counted as dropped.send.
int proto_bus_send(proto_bus_t *self, int kind, proto_msg_t *msg);

//  Send a request and wait for its reply up to timeout_ms: fn is called
//  exactly once, with the reply or with NULL. When no instance of kind is
//  connected yet (a cold start, a restart) or its queue is full, the request
//  waits for one (retried every few ms, in order) within the same deadline,
//  so a request made in the first milliseconds of a stack is not lost.
//  Returns 0, or -1 if the kind is not used or too many requests are
//  pending (fn is then not called).
int proto_bus_request(proto_bus_t *self,
                      int kind,
                      proto_msg_t *msg,
                      int64_t timeout_ms,
                      proto_reply_fn *fn,
                      void *arg);

//  As proto_bus_request, but never waits for a peer: -1 (counted as
//  dropped.send) when no instance can take it now. For a caller that has
//  something better to do at once, e.g. serve its last good decision.
int proto_bus_try_request(proto_bus_t *self,
                          int kind,
                          proto_msg_t *msg,
                          int64_t timeout_ms,
                          proto_reply_fn *fn,
                          void *arg);

//  Forget a request sent with proto_bus_request (its id is msg->id after
//  the call): its callback will not be called; a reply counts as late.
void proto_bus_cancel(proto_bus_t *self, uint64_t id);

//  Reply through our ROUTER. msg takes the request's id and rid.
int proto_bus_reply(proto_bus_t *self, const proto_return_t *to, proto_msg_t *msg);

//  Reply through our ROUTER with error{code, message} (strings borrowed for
//  the call), e.g. code "unavailable" or "bad_request". Returns as
//  proto_bus_reply.
int proto_bus_reply_error(proto_bus_t *self,
                          const proto_return_t *to,
                          const char *code,
                          const char *message);

//  Publish an event on our XPUB under its wire type name.
int proto_bus_publish(proto_bus_t *self, proto_msg_t *msg);

//  Addressed events: an event for ONE instance (a chat session's chatd, its
//  gateway). It is published under the topic "<wire name>@<instance>;"
//  (proto_bus_address) and a subscriber gets its own by subscribing to that
//  topic on the publisher's kind (proto_bus_use): the publisher's XPUB filters,
//  so nobody else receives it. Returns as proto_bus_publish; -1 also for an
//  instance name that is empty or too long. An address is an INSTANCE_ID,
//  optionally followed by "/<something the subscriber wants known>" (chatd:
//  "<instance>/<region>"), at most PROTO_BUS_NAME_MAX bytes.
#define PROTO_BUS_NAME_MAX    (PROTO_PONG_INSTANCE_MAX + 1 + PROTO_PONG_REGION_MAX)
#define PROTO_BUS_ADDRESS_MAX (PROTO_BUS_NAME_MAX + 32)
int proto_bus_publish_to(proto_bus_t *self, proto_msg_t *msg, const char *instance);

//  The topic of type addressed to instance, NUL-terminated, into out (cap
//  bytes). Returns its length, or 0 if it does not fit or a name is empty.
size_t proto_bus_address(char *out, size_t cap, proto_type_t type, const char *instance);

//  Who can be addressed: fn is called when an instance subscribes to its own
//  address for events of type on our XPUB (subscribed true: from then on an
//  event published to it reaches it), and when it unsubscribes or its
//  connection ends (libzmq unsubscribes a peer that is gone: at once on ipc,
//  after the heartbeat timeout on tcp). The XPUB is verbose: after a
//  reconnect an instance may be told subscribed twice before the old
//  connection's unsubscription; keep a count per instance. At most 4
//  watches. Returns 0 or -1.
typedef void(proto_sub_fn)(proto_bus_t *bus, const char *instance, bool subscribed, void *arg);
int proto_bus_on_subscriber(proto_bus_t *self, proto_type_t type, proto_sub_fn *fn, void *arg);

//  Live instances of a kind currently connected.
size_t proto_bus_peers(proto_bus_t *self, int kind);

//  Number of taps attached (subscribed to tap.*).
int proto_bus_taps(proto_bus_t *self);

//  Count a drop for a reason (for messages a handler rejects).
void proto_bus_count_drop(proto_bus_t *self, proto_err_t reason);

//  Report a counter the actor owns in every pong (switchyard ping -v), after
//  the bus's own (dropped.*, replies.late, ..., peers.*): pong carries name
//  with the value *value holds when the pong is built. name (1 to
//  PROTO_COUNTER_NAME_MAX bytes, e.g. "picks.refused") is copied; value is
//  borrowed, usually a field of the actor's context, and must stay valid
//  until the bus is destroyed. At most PROTO_BUS_COUNTERS per bus. Returns 0,
//  or -1 with errno EINVAL (empty or long name, NULL value), EEXIST (a name
//  pong already reports) or ENOSPC (no room left).
int proto_bus_counter(proto_bus_t *self, const char *name, const uint64_t *value);

//  Fill msg (initialised here) as the proc.stats this bus publishes every
//  PROC_STATS_INTERVAL: /proc figures and the counters pong reports, written
//  into counters (PROTO_PONG_COUNTERS_MAX entries, names borrowed from the
//  bus), which must outlive msg. For an actor that records its own figures
//  (statsd does not hear its own XPUB).
void proto_bus_proc_stats(proto_bus_t *self, proto_msg_t *msg, proto_counter_t *counters);

//  Stop watching, close every socket (linger 0), remove our ipc files, free.
//  Sets *self_p to NULL. Safe to call twice.
void proto_bus_destroy(proto_bus_t **self_p);

#endif
