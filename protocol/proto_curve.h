/*  proto_curve - CURVE encryption and authentication of the tcp bus.

    Keys come from the BUS_CURVE_* settings (docs/bus-security.md), each the
    Z85 text of a 32-byte key (40 characters) or "file:PATH" naming a file
    that holds it (trailing whitespace ignored: a mounted Kubernetes secret).
    A process that binds the bus (an actor) needs the fleet's server secret
    and its own client secret; a client-only process (the CLI) needs the
    server public key (or the secret) and its client secret. Public keys are
    derived from secret ones (zmq_curve_public); a public key given as well
    must match. CURVE applies to tcp endpoints only: ipc in BUS_DIR stays
    plain, guarded by file permissions.

    Bound tcp sockets (ROUTER, XPUB) are CURVE servers with ZAP domain
    "switchyard"; every tcp DEALER/SUB is a CURVE client with the server's
    public key and this process's client pair. The ZAP handler (RFC 27)
    allows a client whose public key is this process's own client key or
    one of BUS_CURVE_CLIENTS, and refuses any other with status 400.

    Why a ZAP handler of our own, not czmq's zauth: zauth runs an actor
    thread in czmq's own ZeroMQ context, and ZAP works only within the
    context of the sockets it guards (inproc://zeromq.zap.01), while the
    bus's sockets live in a raw libzmq context. So the handler here is a
    ZMQ_REP bound at inproc://zeromq.zap.01 in the bus's context, read on
    the actor's libev loop through a proto_zwatch like every bus socket: no
    thread, no czmq. It must be bound before the first CURVE server socket:
    libzmq lets every CURVE client in when no handler is bound.

    The guard also counts and logs (warn, at most one line per peer per
    PROTO_CURVE_LOG_EVERY seconds) the peers refused (bus.refused: ZAP said
    400; the line carries the peer's address and its key's first 8 Z85
    characters) and the handshakes that failed otherwise (bus.handshake_failed:
    a peer without CURVE or with the wrong server key, seen through the bus's
    socket monitors; libzmq's monitor gives no peer address for those, only
    the bound endpoint, so such lines name the socket).
*/
#ifndef PROTO_CURVE_H
#define PROTO_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#define PROTO_CURVE_Z85_LEN      40                       // a key as Z85 text
#define PROTO_CURVE_KEY_BYTES    32                       // a key
#define PROTO_CURVE_CLIENTS_MAX  1024                     // keys in BUS_CURVE_CLIENTS
#define PROTO_CURVE_FILE_MAX     (64 * 1024)              // bytes of a file: value
#define PROTO_CURVE_DOMAIN       "switchyard"             // ZAP domain of bus sockets
#define PROTO_CURVE_ZAP_ENDPOINT "inproc://zeromq.zap.01" // RFC 27
#define PROTO_CURVE_LOG_EVERY    10.0                     // seconds between lines per peer
#define PROTO_CURVE_PREFIX_LEN   8                        // key characters a log line shows

typedef struct proto_curve proto_curve_t;

//  The settings as given (NULL or "" when unset); borrowed for the call.
typedef struct {
    const char *server_secret; // BUS_CURVE_SERVER_SECRET
    const char *server_public; // BUS_CURVE_SERVER_PUBLIC
    const char *client_secret; // BUS_CURVE_CLIENT_SECRET
    const char *client_public; // BUS_CURVE_CLIENT_PUBLIC
    const char *clients;       // BUS_CURVE_CLIENTS
} proto_curve_settings_t;

//  Read one key setting named name: Z85 text or file:PATH. On success the
//  40 characters and a NUL go to z85 (41 bytes) and the key to key (32
//  bytes, may be NULL). Returns 0, or -1 with one line in err naming name
//  and never quoting a secret's value ("(secret)"), nor a file's content.
int proto_curve_key_read(const char *name,
                         const char *value,
                         bool secret,
                         char *z85,
                         uint8_t *key,
                         char *err,
                         size_t errlen);

//  Decode 40 characters of Z85 into 32 bytes. Returns 0, or -1 when text
//  is not 40 characters of the Z85 alphabet or a group overflows 32 bits.
int proto_curve_z85_decode(const char *text, uint8_t *key);

//  Build the CURVE settings of a process. server: it binds the bus (an
//  actor: the server secret is required) rather than only connecting (the
//  CLI: the server public key, or the secret, is required). When no
//  setting is given, *out is NULL: the bus is plain. Returns 0, or -1 with
//  one line in err naming the variable (a bad value, a missing key of a
//  pair, a public key that does not match its secret).
int proto_curve_new(const proto_curve_settings_t *settings,
                    bool server,
                    proto_curve_t **out,
                    char *err,
                    size_t errlen);

//  A copy (caller destroys), or NULL for NULL.
proto_curve_t *proto_curve_dup(const proto_curve_t *self);

//  Wipe the secrets, free. Sets *self_p to NULL. Safe to call twice.
void proto_curve_destroy(proto_curve_t **self_p);

//  True if it holds the server secret (it can bind a CURVE server).
bool proto_curve_is_server(const proto_curve_t *self);

//  Borrowed Z85 text of the server's and of this process's client public key.
const char *proto_curve_server_public(const proto_curve_t *self);
const char *proto_curve_client_public(const proto_curve_t *self);

//  True if the ZAP handler lets this client public key (32 bytes) in.
bool proto_curve_allows(const proto_curve_t *self, const uint8_t *key);

//  Number of client keys allowed (ours included).
size_t proto_curve_allowed_count(const proto_curve_t *self);

//  Before zmq_bind(sock, endpoint): a tcp endpoint makes sock a CURVE
//  server (secret key, ZAP domain); any other stays plain. self NULL: no
//  change. Returns 0, or -1 with zmq_errno() set.
int proto_curve_bind_opts(const proto_curve_t *self, void *sock, const char *endpoint);

//  Before zmq_connect(sock, endpoint): a tcp endpoint gets CURVE client
//  options (server key, our client pair), any other the NULL mechanism
//  (one socket may reach tcp and ipc peers; libzmq takes a connection's
//  options at connect time). self NULL: no change. Returns 0 or -1.
int proto_curve_connect_opts(const proto_curve_t *self, void *sock, const char *endpoint);

//  The bus's door keeper: the ZAP handler and the accounting of refused
//  peers and failed handshakes.
typedef struct proto_curve_guard proto_curve_guard_t;

//  zap: curve (borrowed, must outlive the guard) to bind the ZAP handler in
//  ctx (the context of the server sockets, before they bind), answered on
//  loop; NULL to count handshake failures only. Returns NULL with err set.
proto_curve_guard_t *proto_curve_guard_new(
    struct ev_loop *loop, void *ctx, const proto_curve_t *zap, char *err, size_t errlen);

//  A socket event (proto_monitor) of a bus socket named socket; bound: one
//  we bound (ROUTER, XPUB), else one we connect (DEALER, SUB). Failed
//  handshakes are counted and logged; a refusal by our own ZAP handler on a
//  bound socket is not counted twice. Other events are ignored.
void proto_curve_guard_event(proto_curve_guard_t *self,
                             const char *socket,
                             bool bound,
                             const char *event,
                             const char *endpoint,
                             uint32_t value);

//  Counters for pong (borrowed; valid until the guard is destroyed):
//  peers refused by the ZAP handler, other failed handshakes.
const uint64_t *proto_curve_guard_refused(const proto_curve_guard_t *self);
const uint64_t *proto_curve_guard_failed(const proto_curve_guard_t *self);

//  Stop, close the ZAP socket (before the context ends), free. Sets *self_p
//  to NULL. Safe to call twice.
void proto_curve_guard_destroy(proto_curve_guard_t **self_p);

#endif
