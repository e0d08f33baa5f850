/*  gw_ws - a chat session's WebSocket, terminated by the gateway (RFC 6455).

    wslay does the protocol: it parses (and unmasks) the client's frames,
    checks masking, opcodes and UTF-8 of text (Hoehrmann's DFA, across
    fragments), reassembles messages up to max_recv_msg_length, answers pings
    and echoes a close. It reads and writes through the two callbacks below,
    which never block: EAGAIN becomes WSLAY_ERR_WOULDBLOCK and the loop
    calls back when the socket is ready again. The write watcher runs only
    while wslay has something to write.

    One timer serves the pings, the idle bound and the close wait, re-armed
    lazily (libev's "last activity" pattern): a frame from the client only
    stores the loop time, and the timer, when it fires, works out what is
    due and when it next has to run.

    An idle session holds no wslay context: wslay keeps two 4 KiB buffers
    per context, which at 10,000 idle sessions is 90 MB. When nothing is
    half read (every byte read belongs to a frame wslay has finished, and no
    fragmented message is open), nothing is queued or half written and no
    close is under way, the context is freed (s_sleep); the next readiness,
    timer or send makes a fresh one (s_wake), whose state - between frames,
    nothing queued - is exactly the one given up.

    A socket with an I/O layer (gw_ws_io_t, TLS) is read and written only
    through it; the layer may hold bytes it has read but not handed out
    (decrypted ones), for which the socket will not become readable: a turn
    that used up its read budget while the layer still holds some feeds the
    session's own read watcher, and bytes it holds at the start are read on
    the first turn. A read that waits for writability (TLS) is retried from
    the write watcher, a write that waits for readability from the read
    watcher. The plain path pays one pointer test per read and write.

    on_closed is called only from a watcher's callback, as its last action,
    so the owner may destroy the session inside it; gw_ws_send_text and
    gw_ws_close only queue and start the write watcher.
*/
#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <wslay/wslay.h>

#include "gw_ws.h"
#include "proto_util.h"

#define S_READ_BUDGET (64 * 1024) // bytes read per readiness event before the loop turns
#define S_EPSILON     1e-3        // timer slack: a deadline this close is due

struct gw_ws {
    struct ev_loop *loop;       // the loop
    wslay_event_context_ptr wc; // wslay's session (frame parser and queues); NULL while idle
    int fd;                     // the client's socket (owned)
    const gw_ws_io_t *io;       // the socket's I/O layer (TLS), or NULL: plain recv/send
    void *io_ctx;               // its context (owned with fd: io->close ends both)
    ev_io rio;                  // readable, while wslay wants to read
    ev_io wio;                  // writable, while wslay wants to write
    ev_timer timer;             // next ping, idle bound or close wait (lazily re-armed)
    ev_tstamp last_rx;          // loop time of the last frame from the client
    ev_tstamp next_ping;        // when our next ping is due
    ev_tstamp close_by;         // closing: when the socket goes anyway (0: not closing)
    double ping_interval;       // cfg
    double idle_timeout;        // cfg
    size_t max_queued;          // cfg
    size_t max_message;         // cfg
    uint64_t rx_bytes;          // bytes given to wslay (socket and pending)
    uint64_t rx_framed;         // bytes of the frames wslay has begun (header and payload)
    gw_ws_callbacks_t cb;       // the owner's callbacks
    uint8_t *pending;           // bytes read past the request head, not yet parsed
    size_t pending_len;         // their length
    size_t pending_off;         // how many wslay has taken
    size_t read_budget;         // bytes still to read in this readiness event
    char *close_reason;         // gw_ws_close's reason, held until the queue drains (or NULL)
    const char *why;            // on_closed's why when we started the close
    uint16_t code;              // on_closed's code when we started the close (0: we did not)
    bool eof;                   // the client's socket ended
    bool io_error;              // a read or write failed
    bool out_partial;           // the last write stopped inside a frame
    bool kick;                  // pending bytes wait for the timer's first turn
    bool close_deferred;        // gw_ws_close waits for the queued messages to go first
    bool finished;              // on_closed was called
    bool in_frame;              // wslay is inside a frame (start seen, end not)
    bool in_message;            // a fragmented message is open (a data frame without FIN)
    bool read_wants_write;      // io: the last read waits for the socket to be writable
    bool write_wants_read;      // io: the last write waits for the socket to be readable
};

//  The session is over: stop everything, then tell the owner (who may free
//  the session: nothing touches it after the call).
static void
s_finish(gw_ws_t *ws, uint16_t code, const char *why)
{
    ev_io_stop(ws->loop, &ws->rio);
    ev_io_stop(ws->loop, &ws->wio);
    ev_timer_stop(ws->loop, &ws->timer);
    ws->finished = true;
    if (ws->cb.on_closed)
        ws->cb.on_closed(ws, code, why, ws->cb.arg);
}

//  The connection went without (the rest of) a handshake: the client's code
//  if its close arrived, else GW_WS_ABNORMAL.
static void
s_finish_lost(gw_ws_t *ws, const char *why)
{
    if (wslay_event_get_close_received(ws->wc))
        s_finish(ws, wslay_event_get_status_code_received(ws->wc), "closed by client");
    else
        s_finish(ws, GW_WS_ABNORMAL, why);
}

static const char *
s_why(uint16_t code)
{
    switch (code) {
        case 1002:
            return "protocol error";
        case 1003:
            return "binary message";
        case 1007:
            return "invalid utf-8";
        case 1009:
            return "message too big";
        default:
            return "closed";
    }
}

//  Strict UTF-8 (RFC 3629: no overlongs, no surrogates, at most U+10FFFF).
//  wslay already checks text; this is the module's own promise to on_text.
static bool
s_utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint8_t lo = 0x80, hi = 0xbf; // bounds of the second byte
        if (c < 0x80) {
            i++;
            continue;
        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            if (c == 0xe0)
                lo = 0xa0;
            else if (c == 0xed)
                hi = 0x9f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            if (c == 0xf0)
                lo = 0x90;
            else if (c == 0xf4)
                hi = 0x8f;
        } else {
            return false;
        }
        if (len - i - 1 < n || s[i + 1] < lo || s[i + 1] > hi)
            return false;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
        i += n + 1;
    }
    return true;
}

static void s_on_msg(wslay_event_context_ptr wc,
                     const struct wslay_event_on_msg_recv_arg *arg,
                     void *user_data);

static ssize_t
s_recv_cb(wslay_event_context_ptr wc, uint8_t *buf, size_t len, int flags, void *user_data)
{
    (void) flags;
    gw_ws_t *ws = user_data;
    if (ws->pending) {
        size_t n = ws->pending_len - ws->pending_off;
        if (n > len)
            n = len;
        memcpy(buf, ws->pending + ws->pending_off, n);
        ws->pending_off += n;
        if (ws->pending_off == ws->pending_len) {
            free(ws->pending);
            ws->pending = NULL;
        }
        ws->rx_bytes += n;
        return (ssize_t) n;
    }
    if (ws->read_budget == 0) {
        wslay_event_set_error(wc, WSLAY_ERR_WOULDBLOCK); // the rest on the next turn
        return -1;
    }
    if (len > ws->read_budget)
        len = ws->read_budget;
    ssize_t n;
    if (ws->io) {
        bool want_write = false;
        n = ws->io->recv(ws->io_ctx, ws->fd, buf, len, &want_write);
        ws->read_wants_write = n < 0 && want_write;
    } else {
        n = recv(ws->fd, buf, len, 0);
    }
    if (n > 0) {
        ws->read_budget -= (size_t) n;
        ws->rx_bytes += (uint64_t) n;
        return n;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
        wslay_event_set_error(wc, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (n == 0)
        ws->eof = true;
    else
        ws->io_error = true;
    wslay_event_set_error(wc, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t
s_send_cb(wslay_event_context_ptr wc, const uint8_t *data, size_t len, int flags, void *user_data)
{
    gw_ws_t *ws = user_data;
    ssize_t n;
    if (ws->io) {
        bool want_read = false;
        n = ws->io->send(ws->io_ctx, ws->fd, data, len, (flags & WSLAY_MSG_MORE) != 0, &want_read);
        ws->write_wants_read = n < 0 && want_read;
    } else {
        int sflags = MSG_NOSIGNAL | ((flags & WSLAY_MSG_MORE) ? MSG_MORE : 0);
        n = send(ws->fd, data, len, sflags);
    }
    if (n >= 0) {
        ws->out_partial = (size_t) n < len;
        return n;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        ws->out_partial = true; // wslay may be inside a frame
        wslay_event_set_error(wc, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    ws->io_error = true;
    wslay_event_set_error(wc, WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static void
s_on_frame_start(wslay_event_context_ptr wc,
                 const struct wslay_event_on_frame_recv_start_arg *arg,
                 void *user_data)
{
    (void) wc;
    gw_ws_t *ws = user_data;
    ws->last_rx = ev_now(ws->loop); // any frame, pongs included, is a sign of life
    //  A client's frame: 2 bytes, the extended length, the 4-byte mask key
    //  (wslay refuses an unmasked one), then the payload.
    uint64_t len = arg->payload_length;
    ws->rx_framed += 2 + (len < 126 ? 0 : len < 65536 ? 2 : 8) + 4 + len;
    ws->in_frame = true;
    if (arg->opcode < 0x8) // data or continuation: a message is open until FIN
        ws->in_message = !arg->fin;
}

static void
s_on_frame_end(wslay_event_context_ptr wc, void *user_data)
{
    (void) wc;
    gw_ws_t *ws = user_data;
    ws->in_frame = false;
}

//  A fresh wslay context (between frames, nothing queued). Returns 0 or -1.
static int
s_wake(gw_ws_t *ws)
{
    if (ws->wc)
        return 0;
    struct wslay_event_callbacks wcb = {
        .recv_callback = s_recv_cb,
        .send_callback = s_send_cb,
        .on_frame_recv_start_callback = s_on_frame_start,
        .on_frame_recv_end_callback = s_on_frame_end,
        .on_msg_recv_callback = s_on_msg,
    };
    if (wslay_event_context_server_init(&ws->wc, &wcb, ws) != 0) {
        ws->wc = NULL;
        return -1;
    }
    wslay_event_config_set_max_recv_msg_length(ws->wc, ws->max_message);
    return 0;
}

//  Give the context back if the session is idle (see the top of the file).
static void
s_sleep(gw_ws_t *ws)
{
    if (ws->wc == NULL || ws->finished || ws->pending || ws->kick || ws->in_frame || ws->in_message
        || ws->rx_bytes != ws->rx_framed || ws->out_partial || ws->close_by > 0 || ws->code != 0
        || ws->close_deferred || ws->read_wants_write || ws->write_wants_read
        || wslay_event_want_write(ws->wc) || wslay_event_get_queued_msg_count(ws->wc) != 0
        || !wslay_event_want_read(ws->wc) || !wslay_event_get_write_enabled(ws->wc)
        || wslay_event_get_close_received(ws->wc) || wslay_event_get_close_sent(ws->wc))
        return;
    wslay_event_context_free(ws->wc);
    ws->wc = NULL;
    ev_io_stop(ws->loop, &ws->wio);
}

//  Fail the session (idle, binary): the close frame goes ahead of anything
//  queued, reading stops, and the socket goes once the frame is out,
//  without waiting for the client's answer. Called from inside wslay's
//  calls too.
static void
s_fail(gw_ws_t *ws, uint16_t code, const char *reason, const char *why)
{
    size_t rlen = reason ? strlen(reason) : 0;
    if (wslay_event_queue_close(ws->wc, code, (const uint8_t *) reason, rlen) != 0)
        return; // a close is already queued (by wslay)
    ws->code = code;
    ws->why = why;
    ws->close_deferred = false; // a gw_ws_close waiting for the queue is overtaken
    wslay_event_shutdown_read(ws->wc);
}

static void
s_on_msg(wslay_event_context_ptr wc, const struct wslay_event_on_msg_recv_arg *arg, void *user_data)
{
    (void) wc;
    gw_ws_t *ws = user_data;
    if (arg->opcode == WSLAY_BINARY_FRAME) {
        s_fail(ws, 1003, "text only", "binary message");
    } else if (arg->opcode == WSLAY_TEXT_FRAME) {
        if (!s_utf8_valid(arg->msg, arg->msg_length))
            s_fail(ws, 1007, NULL, "invalid utf-8");
        else if (ws->close_by == 0 && ws->code == 0 && ws->cb.on_text)
            ws->cb.on_text(ws, arg->msg ? arg->msg : (const uint8_t *) "", arg->msg_length,
                           ws->cb.arg);
    }
}

//  Re-arm the timer for whatever is due first.
static void
s_arm(gw_ws_t *ws)
{
    if (ws->kick)
        return; // the first turn comes first; it re-arms
    ev_tstamp at = 0;
    if (ws->close_by > 0) {
        at = ws->close_by;
    } else {
        if (ws->idle_timeout > 0)
            at = ws->last_rx + ws->idle_timeout;
        if (ws->ping_interval > 0 && (at == 0 || ws->next_ping < at))
            at = ws->next_ping;
    }
    ev_timer_stop(ws->loop, &ws->timer);
    if (at > 0) {
        ev_tstamp after = at - ev_now(ws->loop);
        ev_timer_set(&ws->timer, after > 0 ? after : 0, 0);
        ev_timer_start(ws->loop, &ws->timer);
    }
}

//  A frame-level error wslay cannot answer with a code (a control frame
//  over 125 bytes or fragmented, a bad length): wslay queued a close without
//  a status; send 1002 ourselves unless a frame is half written, then go.
static void
s_fail_protocol(gw_ws_t *ws)
{
    wslay_event_shutdown_write(ws->wc);
    if (!ws->out_partial) {
        static const uint8_t close_1002[] = {0x88, 0x02, 0x03, 0xea};
        bool want_read = false;
        ssize_t n = ws->io ? ws->io->send(ws->io_ctx, ws->fd, close_1002, sizeof close_1002, false,
                                          &want_read)
                           : send(ws->fd, close_1002, sizeof close_1002, MSG_NOSIGNAL);
        (void) n; // best effort: the socket goes anyway
    }
    s_finish(ws, 1002, "protocol error");
}

//  After any event: write what wslay has, see whether the session is over,
//  and make the watchers match what wslay wants. Returns true when it is
//  over: on_closed was called and the session may be gone.
static bool
s_update(gw_ws_t *ws)
{
    if (wslay_event_want_write(ws->wc) && wslay_event_send(ws->wc) != 0) {
        s_finish_lost(ws, "write error");
        return true;
    }
    if (ws->close_deferred && wslay_event_get_queued_msg_count(ws->wc) == 0) {
        //  Everything before it is out: now the close frame (wslay would
        //  have put it ahead of queued messages, being a control frame).
        const char *r = ws->close_reason ? ws->close_reason : "";
        (void) wslay_event_queue_close(ws->wc, ws->code, (const uint8_t *) r, strlen(r));
        ws->close_deferred = false;
        free(ws->close_reason);
        ws->close_reason = NULL;
        if (wslay_event_want_write(ws->wc) && wslay_event_send(ws->wc) != 0) {
            s_finish_lost(ws, "write error");
            return true;
        }
    }
    bool rx = wslay_event_get_close_received(ws->wc);
    bool want_read = wslay_event_want_read(ws->wc);
    bool tx = wslay_event_get_close_sent(ws->wc);
    if (tx && (rx || !want_read)) {
        if (ws->code != 0)
            s_finish(ws, ws->code, ws->why);
        else if (rx)
            s_finish(ws, wslay_event_get_status_code_received(ws->wc), "closed by client");
        else {
            uint16_t code = wslay_event_get_status_code_sent(ws->wc);
            s_finish(ws, code, s_why(code));
        }
        return true;
    }
    if (!tx && !wslay_event_get_write_enabled(ws->wc)) { // a write failed: nothing more goes out
        s_finish_lost(ws, "write error");
        return true;
    }
    if (ws->close_by == 0 && (rx || !want_read || ws->code != 0)) {
        ws->close_by = ev_now(ws->loop) + GW_WS_CLOSE_WAIT; // a close is queued: bound it
        s_arm(ws);
    }
    //  An I/O layer's write may wait for readability, its read for
    //  writability (TLS): the other watcher then retries it.
    if (want_read || ws->write_wants_read)
        ev_io_start(ws->loop, &ws->rio);
    else
        ev_io_stop(ws->loop, &ws->rio);
    if ((wslay_event_want_write(ws->wc) && !ws->write_wants_read) || ws->read_wants_write)
        ev_io_start(ws->loop, &ws->wio);
    else
        ev_io_stop(ws->loop, &ws->wio);
    return false;
}

//  Read and parse what the client sent. Returns true when the session is
//  over (on_closed was called).
static bool
s_read(gw_ws_t *ws)
{
    ws->read_budget = S_READ_BUDGET;
    int r = wslay_event_recv(ws->wc);
    if (ws->eof || ws->io_error) {
        //  A close from the client may have come just before its end: echo
        //  it if the socket still takes it, then go.
        if (wslay_event_want_write(ws->wc))
            (void) wslay_event_send(ws->wc);
        s_finish_lost(ws, ws->eof ? "peer gone" : "read error");
        return true;
    }
    if (r != 0) {
        s_fail_protocol(ws);
        return true;
    }
    if (s_update(ws))
        return true;
    //  The read budget ran out with bytes the I/O layer read and still
    //  holds: the socket will not say so, so read again from the loop. (Not
    //  after the layer itself had nothing to give: what it holds then is a
    //  partial record, whose rest the socket will announce.)
    if (ws->io && ws->read_budget == 0 && ws->io->pending(ws->io_ctx)
        && wslay_event_want_read(ws->wc))
        ev_feed_event(ws->loop, &ws->rio, EV_READ);
    return false;
}

//  No memory for a wslay context: the session goes without a close frame.
static void
s_no_memory(gw_ws_t *ws)
{
    s_finish(ws, GW_WS_ABNORMAL, "out of memory");
}

static void
s_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_ws_t *ws = w->data;
    if (s_wake(ws) != 0)
        s_no_memory(ws);
    else if (!s_read(ws))
        s_sleep(ws);
}

static void
s_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_ws_t *ws = w->data;
    if (s_wake(ws) != 0) {
        s_no_memory(ws);
    } else if (ws->read_wants_write) {
        ws->read_wants_write = false;
        if (!s_read(ws)) // writes what is queued too
            s_sleep(ws);
    } else if (!s_update(ws)) {
        s_sleep(ws);
    }
}

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    gw_ws_t *ws = w->data;
    if (s_wake(ws) != 0) {
        s_no_memory(ws);
        return;
    }
    if (ws->kick) { // the first turn: parse the pending bytes
        ws->kick = false;
        if (!s_read(ws)) {
            s_arm(ws);
            s_sleep(ws);
        }
        return;
    }
    ev_tstamp now = ev_now(loop);
    if (ws->close_by > 0) {
        if (now + S_EPSILON >= ws->close_by) {
            s_finish(ws, GW_WS_ABNORMAL, "close timeout");
            return;
        }
    } else if (ws->idle_timeout > 0 && now + S_EPSILON >= ws->last_rx + ws->idle_timeout) {
        s_fail(ws, 1000, "idle timeout", "idle");
    } else if (ws->ping_interval > 0 && now + S_EPSILON >= ws->next_ping) {
        struct wslay_event_msg ping = {.opcode = WSLAY_PING, .msg = NULL, .msg_length = 0};
        (void) wslay_event_queue_msg(ws->wc, &ping);
        ws->next_ping = now + ws->ping_interval;
    }
    if (!s_update(ws)) {
        s_arm(ws);
        s_sleep(ws);
    }
}

gw_ws_t *
gw_ws_new(struct ev_loop *loop,
          int fd,
          const gw_ws_config_t *cfg,
          const gw_ws_callbacks_t *cb,
          const void *pending,
          size_t pending_len)
{
    return gw_ws_new_io(loop, fd, NULL, NULL, cfg, cb, pending, pending_len);
}

gw_ws_t *
gw_ws_new_io(struct ev_loop *loop,
             int fd,
             const gw_ws_io_t *io,
             void *io_ctx,
             const gw_ws_config_t *cfg,
             const gw_ws_callbacks_t *cb,
             const void *pending,
             size_t pending_len)
{
    assert(loop && fd >= 0 && cfg && cb);
    assert(io == NULL || (io->recv && io->send && io->pending && io->close));
    gw_ws_t *ws = proto_xcalloc(1, sizeof(gw_ws_t));
    ws->loop = loop;
    ws->fd = -1; // closed by gw_ws_destroy only once it is ours
    ws->max_message = cfg->max_message;
    if (s_wake(ws) != 0)
        goto fail;
    ws->fd = fd;
    ws->io = io;
    ws->io_ctx = io_ctx;
    ws->ping_interval = cfg->ping_interval;
    ws->idle_timeout = cfg->idle_timeout;
    ws->max_queued = cfg->max_queued;
    ws->cb = *cb;
    if (pending_len > 0) {
        ws->pending = proto_xcalloc(1, pending_len);
        memcpy(ws->pending, pending, pending_len);
        ws->pending_len = pending_len;
    }
    ev_io_init(&ws->rio, s_on_readable, fd, EV_READ);
    ws->rio.data = ws;
    ev_io_init(&ws->wio, s_on_writable, fd, EV_WRITE);
    ws->wio.data = ws;
    ev_init(&ws->timer, s_on_timer);
    ws->timer.data = ws;
    ws->last_rx = ev_now(loop);
    ws->next_ping = ws->last_rx + ws->ping_interval;
    ev_io_start(loop, &ws->rio);
    if (ws->pending || (io && io->pending(io_ctx))) {
        //  Parse them on the first turn. Not ev_feed_event: a fed event waits
        //  for the loop's next wake-up, which may be a ping interval away.
        ws->kick = true;
        ev_timer_set(&ws->timer, 0, 0);
        ev_timer_start(loop, &ws->timer);
    } else {
        s_arm(ws);
        s_sleep(ws); // nothing to parse yet: no context until the first byte
    }
    return ws;
fail:
    gw_ws_destroy(&ws);
    return NULL;
}

int
gw_ws_send_text(gw_ws_t *ws, const void *data, size_t len)
{
    assert(ws);
    if (ws->finished || ws->close_by > 0 || ws->code != 0) {
        errno = EPIPE;
        return -1;
    }
    if (s_wake(ws) != 0) {
        errno = ENOMEM;
        return -1;
    }
    if (wslay_event_get_queued_msg_length(ws->wc) + len > ws->max_queued) {
        errno = ENOBUFS;
        return -1;
    }
    struct wslay_event_msg msg = {.opcode = WSLAY_TEXT_FRAME, .msg = data, .msg_length = len};
    if (wslay_event_queue_msg(ws->wc, &msg) != 0) {
        errno = EPIPE; // wslay queued a close of its own
        return -1;
    }
    ev_io_start(ws->loop, &ws->wio);
    return 0;
}

void
gw_ws_close(gw_ws_t *ws, uint16_t code, const char *reason)
{
    assert(ws);
    if (ws->finished || ws->close_by > 0 || ws->code != 0)
        return;
    if (s_wake(ws) != 0) { // the close frame cannot be made: the timer ends it
        ws->code = code;
        ws->why = "closed by server";
        ws->close_by = ev_now(ws->loop);
        s_arm(ws);
        return;
    }
    if (!wslay_event_get_write_enabled(ws->wc) || !wslay_event_want_read(ws->wc))
        return; // wslay has queued (or sent) a close of its own: the loop finishes it
    ws->code = code;
    ws->why = "closed by server";
    if (reason) {
        size_t rlen = strnlen(reason, GW_WS_REASON_MAX);
        ws->close_reason = proto_xcalloc(1, rlen + 1);
        memcpy(ws->close_reason, reason, rlen);
    }
    ws->close_deferred = true; // queued by s_update once what is queued is out
    ws->close_by = ev_now(ws->loop) + GW_WS_CLOSE_WAIT;
    s_arm(ws);
    ev_io_start(ws->loop, &ws->wio);
}

int
gw_ws_detach(gw_ws_t **ws_p)
{
    assert(ws_p && *ws_p);
    int fd = (*ws_p)->fd;
    (*ws_p)->fd = -1; // and io_ctx goes back with it: nothing is closed
    gw_ws_destroy(ws_p);
    return fd;
}

void
gw_ws_destroy(gw_ws_t **ws_p)
{
    assert(ws_p);
    gw_ws_t *ws = *ws_p;
    if (ws == NULL)
        return;
    ev_io_stop(ws->loop, &ws->rio);
    ev_io_stop(ws->loop, &ws->wio);
    ev_timer_stop(ws->loop, &ws->timer);
    if (ws->wc)
        wslay_event_context_free(ws->wc);
    ws->wc = NULL;
    if (ws->fd >= 0 && ws->io)
        ws->io->close(ws->io_ctx, ws->fd);
    else if (ws->fd >= 0)
        close(ws->fd);
    ws->io_ctx = NULL;
    free(ws->pending);
    ws->pending = NULL;
    free(ws->close_reason);
    ws->close_reason = NULL;
    free(ws);
    *ws_p = NULL;
}

size_t
gw_ws_queued(const gw_ws_t *ws)
{
    assert(ws);
    return ws->wc ? wslay_event_get_queued_msg_length(ws->wc) : 0;
}

bool
gw_ws_client_done(const gw_ws_t *ws)
{
    assert(ws);
    return ws->eof || ws->io_error || (ws->wc && wslay_event_get_close_received(ws->wc));
}

bool
gw_ws_idle(const gw_ws_t *ws)
{
    assert(ws);
    return ws->wc == NULL;
}

int
gw_ws_accept_key(const char *key, size_t key_len, char out[GW_WS_ACCEPT_LEN + 1])
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    if (key == NULL || key_len != 24 || key[22] != '=' || key[23] != '=')
        return -1;
    for (size_t i = 0; i < 22; i++)
        if (key[i] == '\0' || strchr(b64, key[i]) == NULL)
            return -1;
    //  The last character holds 2 bits of the 16th byte and 4 bits of padding.
    const char *last = strchr(b64, key[21]);
    if (((last - b64) & 0x0f) != 0)
        return -1;
    uint8_t buf[24 + sizeof guid - 1];
    memcpy(buf, key, 24);
    memcpy(buf + 24, guid, sizeof guid - 1);
    uint8_t md[SHA_DIGEST_LENGTH];
    SHA1(buf, sizeof buf, md);
    int n = EVP_EncodeBlock((unsigned char *) out, md, SHA_DIGEST_LENGTH);
    if (n != GW_WS_ACCEPT_LEN)
        return -1;
    out[GW_WS_ACCEPT_LEN] = '\0';
    return 0;
}
