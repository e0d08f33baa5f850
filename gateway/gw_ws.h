/*  gw_ws - a chat session's WebSocket, terminated by the gateway (RFC 6455).

    After gw_conn has answered a chat upgrade with 101, the client's socket
    is handed to a gw_ws: Debian's wslay (server mode) parses and writes the
    frames, and this module runs it on the libev loop. Client frames must be
    masked (else 1002); fragments are reassembled; pings are answered with
    pongs; a text message is handed over whole and valid UTF-8 (else 1007);
    a binary message closes with 1003 (chat is text only) and a message over
    max_message with 1009. The gateway pings every ping_interval and closes a
    session silent for idle_timeout (SPEC §2 CHAT_PING_INTERVAL,
    CHAT_IDLE_TIMEOUT). A close from the client is echoed with its code; a
    close we start waits at most GW_WS_CLOSE_WAIT seconds for the client's.

    The socket is a plain one (recv/send), or one whose bytes go through an
    I/O layer the owner gives (gw_ws_io_t: TLS over the HTTPS listener, where
    gw_chat passes SSL_read/SSL_write); this module then never touches the
    socket's bytes itself, only its readiness.
*/
#ifndef GW_WS_H
#define GW_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <ev.h>

#define GW_WS_CLOSE_WAIT  5.0     // seconds a close handshake may take before the socket goes
#define GW_WS_ACCEPT_LEN  28      // Sec-WebSocket-Accept, without its NUL
#define GW_WS_REASON_MAX  123     // bytes of a close reason that fit a control frame
#define GW_WS_ABNORMAL    1006    // on_closed's code when no close frame was exchanged
#define GW_WS_MAX_MESSAGE 1048576 // SPEC §9: above this a message closes with 1009

typedef struct gw_ws gw_ws_t;

//  Limits of a session.
typedef struct {
    double ping_interval; // seconds between our pings (CHAT_PING_INTERVAL, 30; 0: none)
    double idle_timeout;  // close after this long without a frame from the client (60; 0: none)
    size_t max_message;   // a reassembled message above this closes with 1009 (1 MiB)
    size_t max_queued;    // bytes queued for the client above which gw_ws_send_text refuses
} gw_ws_config_t;

//  What the owner hears. Both are called from the loop, never from inside a
//  gw_ws_* call.
typedef struct {
    //  One whole text message: valid UTF-8, at most max_message bytes.
    //  data is borrowed (valid during the call). The callback may call
    //  gw_ws_send_text and gw_ws_close, but must not destroy the session.
    void (*on_text)(gw_ws_t *ws, const uint8_t *data, size_t len, void *arg);
    //  The session is over, called once: after the close handshake (code:
    //  the client's when it started it, else ours), after an error we closed
    //  for (1002, 1003, 1007, 1009), the idle timeout (1000, "idle"), or the
    //  peer vanishing or the close wait running out (GW_WS_ABNORMAL). why is
    //  a static string ("closed by client", "idle", "protocol error", ...).
    //  Nothing is read or written after it; the owner then calls
    //  gw_ws_destroy (it may do so inside the callback).
    void (*on_closed)(gw_ws_t *ws, uint16_t code, const char *why, void *arg);
    void *arg; // passed to both
} gw_ws_callbacks_t;

//  How a session reads and writes a socket that is not a plain one (TLS).
//  Every call is non-blocking and gets the io_ctx and fd given to
//  gw_ws_new_io.
typedef struct {
    //  Read at most len bytes into buf: > 0 bytes read, 0 the peer's end
    //  (TLS: close_notify, or EOF), -1 with errno (EAGAIN: not now; then
    //  *want_write is set when the read waits for the socket to be writable,
    //  not readable; any other errno: the connection is broken).
    ssize_t (*recv)(void *io_ctx, int fd, uint8_t *buf, size_t len, bool *want_write);
    //  Write at most len bytes: >= 0 bytes written, -1 with errno (EAGAIN:
    //  not now, with *want_read set when the write waits for the socket to
    //  be readable; else broken). more: another piece of the same frame
    //  follows at once.
    ssize_t (*send)(
        void *io_ctx, int fd, const uint8_t *buf, size_t len, bool more, bool *want_read);
    //  True while the layer holds bytes read from the socket that recv has
    //  not handed out yet (TLS: SSL_has_pending): the socket will not become
    //  readable for them, so the session reads again without waiting.
    bool (*pending)(void *io_ctx);
    //  The session closes the socket (gw_ws_destroy): end the layer (TLS: a
    //  close_notify, best effort, then free it) and close fd.
    void (*close)(void *io_ctx, int fd);
} gw_ws_io_t;

//  A session on fd, the client's socket after our 101 went out
//  (non-blocking; owned from now on: gw_ws_destroy closes it). cfg and cb
//  are copied. pending: bytes the client sent after its request head
//  (copied, may be NULL), read before anything from fd. Nothing happens until
//  the loop runs. Returns NULL (and closes nothing) if wslay cannot be set up.
gw_ws_t *gw_ws_new(struct ev_loop *loop,
                   int fd,
                   const gw_ws_config_t *cfg,
                   const gw_ws_callbacks_t *cb,
                   const void *pending,
                   size_t pending_len);

//  As gw_ws_new, on a socket read and written through io (borrowed: it must
//  outlive the session) with io_ctx (owned with fd from now on: io->close
//  ends both in gw_ws_destroy; gw_ws_detach gives both back). Bytes io
//  already holds (io->pending) are parsed on the first turn, as pending ones.
gw_ws_t *gw_ws_new_io(struct ev_loop *loop,
                      int fd,
                      const gw_ws_io_t *io,
                      void *io_ctx,
                      const gw_ws_config_t *cfg,
                      const gw_ws_callbacks_t *cb,
                      const void *pending,
                      size_t pending_len);

//  Queue one text message for the client (copied; the caller gives valid
//  UTF-8). Returns 0, or -1 when the session is closing or closed (errno
//  EPIPE) or when the bytes already queued plus len exceed max_queued
//  (errno ENOBUFS: the client does not keep up).
int gw_ws_send_text(gw_ws_t *ws, const void *data, size_t len);

//  Start the close handshake with code (1000 normal, 1001 when the gateway
//  drains) and reason (may be NULL; cut at GW_WS_REASON_MAX bytes). What is
//  already queued goes out first. on_closed follows, with this code and why
//  "closed by server", when the client answers or after GW_WS_CLOSE_WAIT
//  (then GW_WS_ABNORMAL, "close timeout"). Does nothing once closing.
void gw_ws_close(gw_ws_t *ws, uint16_t code, const char *reason);

//  Stop the watchers, close fd, free everything. Sets *ws_p to NULL. Safe
//  to call twice, and inside on_closed (not inside on_text).
void gw_ws_destroy(gw_ws_t **ws_p);

//  As gw_ws_destroy, but the socket stays open: returns it (the caller
//  closes it; with gw_ws_new_io, the caller also has io_ctx back and ends
//  it).
int gw_ws_detach(gw_ws_t **ws_p);

//  True once the client has said it sends nothing more: its close frame
//  arrived, or its socket ended (EOF or an error). For on_closed: false means
//  the client may still be sending (a close we started: 1002, 1003, 1007,
//  1009, the idle close, a close wait that ran out).
bool gw_ws_client_done(const gw_ws_t *ws);

//  Bytes queued for the client and not yet written (messages and control
//  frames, payload only).
size_t gw_ws_queued(const gw_ws_t *ws);

//  True while the session holds no wslay context (idle: nothing half read,
//  queued or closing); for tests and figures.
bool gw_ws_idle(const gw_ws_t *ws);

//  Sec-WebSocket-Accept for a client's Sec-WebSocket-Key (RFC 6455 §4.2.2):
//  base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")). key is the
//  header's value, already trimmed; it must be the base64 of 16 bytes (24
//  characters ending in "=="), else -1. out gets GW_WS_ACCEPT_LEN characters
//  and a NUL. Returns 0 or -1.
int gw_ws_accept_key(const char *key, size_t key_len, char out[GW_WS_ACCEPT_LEN + 1]);

#endif
