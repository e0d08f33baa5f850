/*  gw_tunnel - two sockets relayed to each other after a protocol switch.

    Each end has the bytes waiting to be written to it (out) and a read
    watcher whose bytes go to the other end's out. Reading an end stops
    while the other end's out is above GW_OUT_HIGH and starts again when a
    write brings it below GW_OUT_LOW, so a slow reader slows its peer down
    instead of filling memory (at most GW_OUT_HIGH + GW_READ_CHUNK per
    direction). An EOF read from one end becomes shutdown(SHUT_WR) of the
    other once its out is written: a WebSocket close handshake, or any
    half-closing protocol, sees what it would see without the gateway.
    Idle time is checked lazily (libev's "last activity" timer): one timer
    per tunnel, re-armed only when it fires. Once one side has closed, the
    bound shortens to fin_s (HAProxy's client-fin/server-fin): a peer that
    never closes its half does not hold the connection for the whole idle_s.

    A TLS end (the client's, over the HTTPS listener) is read and written
    with SSL_read/SSL_write: WANT_READ/WANT_WRITE are EAGAIN, a read that
    waits for writability is retried from the write watcher and a write
    that waits for readability from the read watcher. OpenSSL may hold
    decrypted bytes the socket will not announce (SSL_has_pending): after a
    turn that stopped at its read budget, or when reading resumes after a
    pause, the end's read watcher is fed instead. Its EOF passed on is a
    close_notify (retried while the socket is full), then SHUT_WR. Never
    spliced: the bytes have to pass through OpenSSL either way.
*/
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "gw_buf.h"
#include "gw_req.h"
#include "gw_tls.h"
#include "gw_tunnel.h"
#include "proto_util.h"

#define S_READS_PER_EVENT 4 // reads per readiness event before the loop turns

typedef struct {
    gw_tunnel_t *tunnel;   // the tunnel
    int fd;                // the socket
    SSL *ssl;              // its TLS session (borrowed), or NULL: a plain socket
    ev_io rio;             // readable: bytes for the other end
    ev_io wio;             // writable: out has bytes
    gw_buf_t out;          // bytes waiting to be written to this end
    bool reading;          // rio started
    bool eof;              // this end sent EOF: nothing more to read
    bool shut;             // shutdown(SHUT_WR) done: nothing more to write
    bool notified;         // TLS: close_notify sent (or not to be sent: a fatal error)
    bool read_wants_write; // TLS: the last read waits for the socket to be writable
    bool write_wants_read; // TLS: the last write waits for the socket to be readable
    uint64_t relayed;      // bytes read from the other end for this one
} s_end_t;

struct gw_tunnel {
    struct ev_loop *loop;     // the loop
    s_end_t ends[2];          // GW_TUNNEL_CLIENT, GW_TUNNEL_BACKEND
    ev_timer idle;            // idle bound (lazily re-armed)
    double idle_s;            // seconds without a byte either way (0: none)
    double fin_s;             // the same once one side has closed (0: idle_s)
    ev_tstamp last;           // loop time of the last byte read or written
    gw_tunnel_done_fn *done;  // called once at the end
    void *arg;                // its argument
    gw_tunnel_stats_t *stats; // counters (borrowed) or NULL
};

static s_end_t *
s_peer(s_end_t *end)
{
    gw_tunnel_t *t = end->tunnel;
    return end == &t->ends[0] ? &t->ends[1] : &t->ends[0];
}

//  close_notify to a TLS end, best effort: 0 when it is sent (or need not
//  be), -1 when the socket is full and it must be tried again.
static int
s_notify(s_end_t *end)
{
    if (end->ssl == NULL || end->notified)
        return 0;
    ERR_clear_error();
    int r = SSL_shutdown(end->ssl); // 1 at once after a fatal error (quiet shutdown)
    int e = r < 0 ? SSL_get_error(end->ssl, r) : SSL_ERROR_NONE;
    ERR_clear_error();
    if (r < 0 && e == SSL_ERROR_WANT_WRITE)
        return -1;
    end->notified = true;
    return 0;
}

//  The tunnel is over: stop everything, then tell the owner (who may free
//  it). Returns -1 so callers can pass it on and touch nothing after.
static int
s_finish(gw_tunnel_t *t, const char *reason)
{
    if (strcmp(reason, "error") != 0) // idle: a TLS client still hears the end
        (void) s_notify(&t->ends[GW_TUNNEL_CLIENT]);
    for (int i = 0; i < 2; i++) {
        ev_io_stop(t->loop, &t->ends[i].rio);
        ev_io_stop(t->loop, &t->ends[i].wio);
        t->ends[i].reading = false;
    }
    ev_timer_stop(t->loop, &t->idle);
    t->done(t, reason, t->arg);
    return -1;
}

//  (Re)arm the idle timer for what is left of idle_s since the last byte.
static void
s_arm_idle(gw_tunnel_t *t)
{
    ev_timer_stop(t->loop, &t->idle);
    if (t->idle_s <= 0.)
        return;
    ev_tstamp left = t->last + t->idle_s - ev_now(t->loop);
    ev_timer_set(&t->idle, left > 0. ? left : 0., 0.);
    ev_timer_start(t->loop, &t->idle);
}

static void
s_set_reading(s_end_t *end, bool on)
{
    gw_tunnel_t *t = end->tunnel;
    if (on && !end->reading && !end->eof) {
        ev_io_start(t->loop, &end->rio);
        end->reading = true;
        if (end->ssl && SSL_has_pending(end->ssl)) // decrypted before the pause (or the 101)
            ev_feed_event(t->loop, &end->rio, EV_READ);
    } else if (!on && end->reading) {
        ev_io_stop(t->loop, &end->rio);
        end->reading = false;
    }
}

//  Read at most max bytes from end into out: what gw_buf_read does, through
//  OpenSSL on a TLS end. Returns > 0, 0 at EOF (close_notify, or EOF:
//  SSL_OP_IGNORE_UNEXPECTED_EOF), or -1 with errno.
static ssize_t
s_read(s_end_t *end, gw_buf_t *out, size_t max)
{
    if (end->ssl == NULL)
        return gw_buf_read(out, end->fd, max);
    char *at = gw_buf_reserve(out, max);
    ssize_t n = gw_tls_read(end->ssl, at, max, &end->read_wants_write);
    if (n > 0)
        gw_buf_commit(out, (size_t) n);
    else if (n < 0 && errno != EAGAIN)
        end->notified = true; // a fatal error: no close_notify may follow
    return n;
}

//  Write from end's out what its socket takes: gw_buf_write, or SSL_write
//  on a TLS end (a write that wanted to write more is repeated with the
//  same bytes at the head of out, as OpenSSL requires; the buffer may have
//  moved: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
static ssize_t
s_write(s_end_t *end)
{
    if (end->ssl == NULL)
        return gw_buf_write(&end->out, end->fd);
    ssize_t n = gw_tls_write(end->ssl, gw_buf_head(&end->out), gw_buf_len(&end->out),
                             &end->write_wants_read);
    if (n > 0)
        gw_buf_consume(&end->out, (size_t) n);
    else if (n < 0 && errno != EAGAIN)
        end->notified = true; // a fatal error: no close_notify may follow
    return n;
}

//  Write what end's socket takes now; pass an EOF on once out is empty;
//  let the other end be read again when out is low. Returns -1 when the
//  tunnel finished.
static int
s_flush(s_end_t *end)
{
    gw_tunnel_t *t = end->tunnel;
    s_end_t *src = s_peer(end);
    end->write_wants_read = false;
    while (gw_buf_len(&end->out) > 0) {
        ssize_t n = s_write(end);
        if (n > 0) {
            t->last = ev_now(t->loop);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        return s_finish(t, "error"); // the peer reset, or the socket broke
    }
    if (end->write_wants_read) {
        ev_io_stop(t->loop, &end->wio); // its read watcher retries (s_on_readable)
        s_set_reading(end, true);
    } else if (gw_buf_len(&end->out) > 0) {
        ev_io_start(t->loop, &end->wio);
    } else if (src->eof && !end->shut && s_notify(end) != 0) {
        ev_io_start(t->loop, &end->wio); // close_notify waits for room
    } else {
        if (!end->read_wants_write)
            ev_io_stop(t->loop, &end->wio);
        if (src->eof && !end->shut) {
            shutdown(end->fd, SHUT_WR); // half-close passed on
            end->shut = true;
            if (t->fin_s > 0. && (t->idle_s <= 0. || t->fin_s < t->idle_s)) {
                t->idle_s = t->fin_s; // the other side should close soon too
                s_arm_idle(t);
            }
        }
    }
    if (gw_buf_len(&end->out) < GW_OUT_LOW)
        s_set_reading(src, true);
    if (t->ends[0].shut && t->ends[1].shut)
        return s_finish(t, "closed");
    return 0;
}

//  Read end into the other end's out (a few reads per turn), then write
//  that out. Returns -1 when the tunnel finished.
static int
s_pump(s_end_t *end)
{
    gw_tunnel_t *t = end->tunnel;
    s_end_t *dst = s_peer(end);
    int i = 0;
    end->read_wants_write = false;
    for (; i < S_READS_PER_EVENT; i++) {
        if (gw_buf_len(&dst->out) > GW_OUT_HIGH) {
            s_set_reading(end, false); // the other side is slow: s_flush resumes us
            break;
        }
        ssize_t n = s_read(end, &dst->out, GW_READ_CHUNK);
        if (n > 0) {
            dst->relayed += (uint64_t) n;
            t->last = ev_now(t->loop);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n < 0)
            return s_finish(t, "error");
        s_set_reading(end, false); // EOF: passed on once dst's out is written
        end->eof = true;
        break;
    }
    if (end->read_wants_write)
        ev_io_start(t->loop, &end->wio); // s_on_writable reads again
    // the budget ran out with decrypted bytes left in OpenSSL: the socket
    // will not say so (a partial record, which it will, stops a turn early)
    if (i == S_READS_PER_EVENT && end->ssl && end->reading && SSL_has_pending(end->ssl))
        ev_feed_event(t->loop, &end->rio, EV_READ);
    return s_flush(dst);
}

static void
s_on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    s_end_t *end = w->data;
    if (end->write_wants_read && s_flush(end) != 0) // a TLS write waited for this
        return;
    if (end->reading)
        (void) s_pump(end);
}

static void
s_on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    s_end_t *end = w->data;
    if (end->read_wants_write && s_pump(end) != 0) // a TLS read waited for this
        return;
    (void) s_flush(end);
}

static void
s_on_idle(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    gw_tunnel_t *t = w->data;
    if (t->last + t->idle_s > ev_now(loop)) {
        s_arm_idle(t); // a byte moved since it was armed
        return;
    }
    (void) s_finish(t, "idle");
}

gw_tunnel_t *
gw_tunnel_new(struct ev_loop *loop,
              int client_fd,
              SSL *client_ssl,
              int backend_fd,
              double idle_s,
              double fin_s,
              gw_tunnel_stats_t *stats,
              gw_tunnel_done_fn *done,
              void *arg)
{
    gw_tunnel_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->stats = stats;
    if (stats) {
        stats->open++;
        stats->total++;
    }
    self->idle_s = idle_s;
    self->fin_s = fin_s;
    self->done = done;
    self->arg = arg;
    int fds[2] = {client_fd, backend_fd};
    for (int i = 0; i < 2; i++) {
        s_end_t *end = &self->ends[i];
        end->tunnel = self;
        end->fd = fds[i];
        end->ssl = i == GW_TUNNEL_CLIENT ? client_ssl : NULL;
        ev_io_init(&end->rio, s_on_readable, end->fd, EV_READ);
        ev_io_init(&end->wio, s_on_writable, end->fd, EV_WRITE);
        end->rio.data = end->wio.data = end;
    }
    ev_timer_init(&self->idle, s_on_idle, 0., 0.);
    self->idle.data = self;
    return self;
}

void
gw_tunnel_queue(gw_tunnel_t *self, gw_tunnel_side_t side, const void *data, size_t len)
{
    if (len > 0)
        gw_buf_append(&self->ends[side].out, data, len);
}

void
gw_tunnel_start(gw_tunnel_t *self)
{
    self->last = ev_now(self->loop);
    s_arm_idle(self);
    for (int i = 0; i < 2; i++)
        s_set_reading(&self->ends[i], true);
    // what was queued goes now; a full out pauses its source (s_on_readable)
    for (int i = 0; i < 2; i++)
        if (s_flush(&self->ends[i]) != 0)
            return;
}

uint64_t
gw_tunnel_bytes(const gw_tunnel_t *self, gw_tunnel_side_t side)
{
    return self->ends[side].relayed;
}

void
gw_tunnel_destroy(gw_tunnel_t **self_p)
{
    gw_tunnel_t *self = *self_p;
    if (self == NULL)
        return;
    for (int i = 0; i < 2; i++) {
        ev_io_stop(self->loop, &self->ends[i].rio);
        ev_io_stop(self->loop, &self->ends[i].wio);
        gw_buf_free(&self->ends[i].out);
    }
    ev_timer_stop(self->loop, &self->idle);
    if (self->ends[GW_TUNNEL_BACKEND].fd >= 0)
        close(self->ends[GW_TUNNEL_BACKEND].fd);
    if (self->stats)
        self->stats->open--;
    free(self);
    *self_p = NULL;
}
