// bench/chat_load.c - `chat-load`: the chat load generator of `make bench`
// (SPEC §9, §12; docs/chat.md). libev for the loop, wslay's client API for
// the RFC 6455 framing (masking, control frames, the close handshake),
// jansson for the JSON frames, OpenSSL for the handshake's key and accept.
//
//   chat-load idle --url ws://127.0.0.1:PORT/chat --host VHOST --sessions N
//                  [--hold-seconds S] [--open-rate R] [--user-prefix idle]
//       opens N sessions (?userId=<prefix><i>), at most R new ones a second
//       and a bounded number of handshakes in flight, prints progress on
//       stderr and "ready open=N failed=F" on stdout when every session has
//       its 101 (or failed), then holds them (answering the server's pings)
//       until SIGTERM/SIGINT or S seconds, closes them and prints
//       "closed open=N dropped=D".
//
//   chat-load deliver --send-url ws://.../chat --recv-url ws://.../chat
//                  --host VHOST --pairs N --rate R --seconds D
//       N receiver sessions r0..r<N-1> on --recv-url, N sender sessions
//       s0..s<N-1> on --send-url; a warm-up message per pair (every pair must
//       deliver one before the clock starts), then senders send
//       {"type":"message:send","to":"r<i>","text":"<CLOCK_MONOTONIC ns>","id":"m<seq>"}
//       paced at R messages a second in total for D seconds (round robin over
//       the pairs), and the receivers take the latency of each
//       message:received (now - the time in the text, one process, one
//       clock). Then up to --drain-seconds for the last ones. One result
//       line on stdout: key=value pairs (sent, acked, received, lost =
//       acked but never received, p50/p99/max latency in ms, ...).
//
// Everything is bounded (sessions, rate, duration, frame sizes, handshake
// time); a failure says what failed and exits 1; bad arguments exit 2.

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <wslay/wslay.h>

#define S_MAX_SESSIONS   19000     // below the usual hard limit of open files (20000)
#define S_MAX_PAIRS      5000      // deliver: sender + receiver sessions each
#define S_MAX_RATE       100000    // messages a second
#define S_MAX_SECONDS    600       // of sending
#define S_MAX_MESSAGES   10000000  // rate x seconds, bounded (latency table)
#define S_HEAD_MAX       4096      // the 101 response head
#define S_HANDSHAKE_SECS 10.0      // connect + 101 within this
#define S_INFLIGHT_MAX   256       // handshakes in flight at once
#define S_FRAME_MAX      (1 << 20) // a frame from the server (SPEC §9's cap)
#define S_ERRORS_SHOWN   5         // first errors printed in full
#define S_LAT_NONE       UINT32_MAX
#define S_WS_GUID        "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

enum { ROLE_IDLE, ROLE_SEND, ROLE_RECV };
enum { ST_FREE, ST_CONNECTING, ST_HANDSHAKE, ST_OPEN, ST_CLOSED };

typedef struct {
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char hostport[300]; // for messages
    char path[512];     // path and query of the URL
} s_url_t;

typedef struct conn {
    ev_io io;
    int fd;
    int idx;
    int role;
    int state;
    double started; // when the connect began (handshake deadline)
    wslay_event_context_ptr ws;
    char accept[64];           // the Sec-WebSocket-Accept we expect
    char *req;                 // the upgrade request while it is written
    size_t req_len, req_off;   //
    char *head;                // the response head while it is read
    size_t head_len;           //
    uint8_t *pend;             // bytes read after the 101 head, before wslay
    size_t pend_len, pend_off; //
    bool eof;                  // the peer closed the TCP connection
} conn_t;

static struct {
    struct ev_loop *loop;
    int mode; // 0 idle, 1 deliver
    // options
    const char *host;
    s_url_t url[2]; // idle: [0]; deliver: [0] send, [1] recv
    int sessions;
    double hold;
    int open_rate;
    const char *prefix;
    int pairs;
    int rate;
    int seconds;
    double drain;
    // sessions
    conn_t *conns;
    int nconns;
    int next_open; // the next session to start
    int inflight;  // connecting or in the handshake
    int open;      // 101 received, still open
    int failed;    // never opened
    int dropped;   // opened, then closed by the peer or an error
    int errors_shown;
    bool stopping;
    // deliver
    uint32_t *lat_us;  // per message seq: latency in µs, S_LAT_NONE = not received
    uint8_t *acked;    // per message seq
    uint64_t nmsg_max; //
    uint64_t sent, acked_n, received, dup, unknown, err_frames, send_fail;
    uint64_t warm_acked, warm_received;
    double t_send0, t_send1; // the sending phase
    uint64_t xs;             // mask PRNG
    char tag[16];            // this run's: ids are m<seq>.<tag>, w<i>.<tag> (chatd
                             // acks a reused id of a sender without delivering it)
    uint64_t stale;          // messages of another run (an inbox replayed)
    uint32_t *send_us;       // per message seq: sent at, µs after t0_ns
    uint32_t *ack_us;        // per message seq: send -> ack, µs (S_LAT_NONE: no ack)
    uint64_t t0_ns;          // the sending phase began (CLOCK_MONOTONIC)
    const char *dump;        // --dump FILE: one line per message
} G;

static double
s_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

static uint64_t
s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

static void s_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
s_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("chat-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static void s_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void
s_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("chat-load: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fputs("usage: chat-load idle --url ws://HOST:PORT/PATH --host VHOST --sessions N\n"
          "                      [--hold-seconds S] [--open-rate R] [--user-prefix P]\n"
          "       chat-load deliver --send-url URL --recv-url URL --host VHOST --pairs N\n"
          "                      --rate R --seconds D [--drain-seconds S] [--open-rate R]\n"
          "                      [--dump FILE]\n",
          stderr);
    exit(2);
}

// One error of a session: the first few in full, then only counted.
static void s_conn_error(const conn_t *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void
s_conn_error(const conn_t *c, const char *fmt, ...)
{
    if (G.errors_shown >= S_ERRORS_SHOWN)
        return;
    if (++G.errors_shown == S_ERRORS_SHOWN)
        fputs("chat-load: (further session errors are only counted)\n", stderr);
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "chat-load: session %d: ", c->idx);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

// ---------------------------------------------------------------------------
// Arguments.

static long
s_num(const char *name, const char *v, long lo, long hi)
{
    char *end = NULL;
    errno = 0;
    long n = strtol(v ? v : "", &end, 10);
    if (!v || errno || end == v || *end || n < lo || n > hi)
        s_usage("%s must be a number %ld-%ld, not '%s'", name, lo, hi, v ? v : "");
    return n;
}

static void
s_parse_url(const char *name, const char *s, s_url_t *u)
{
    if (!s || strncmp(s, "ws://", 5) != 0)
        s_usage("%s must be ws://HOST:PORT/PATH, not '%s'", name, s ? s : "");
    const char *hp = s + 5;
    const char *slash = strchr(hp, '/');
    size_t hplen = slash ? (size_t) (slash - hp) : strlen(hp);
    if (hplen == 0 || hplen >= sizeof u->hostport)
        s_usage("%s: bad host in '%s'", name, s);
    memcpy(u->hostport, hp, hplen);
    u->hostport[hplen] = '\0';
    int n = snprintf(u->path, sizeof u->path, "%s", slash ? slash : "/");
    if (n < 0 || (size_t) n >= sizeof u->path)
        s_usage("%s: path too long", name);
    char host[256];
    const char *port = "80";
    char *colon = strrchr(u->hostport, ':');
    size_t hlen = colon ? (size_t) (colon - u->hostport) : hplen;
    if (hlen == 0 || hlen >= sizeof host)
        s_usage("%s: bad host in '%s'", name, s);
    memcpy(host, u->hostport, hlen);
    host[hlen] = '\0';
    if (colon)
        port = colon + 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0 || !res)
        s_usage("%s: cannot resolve '%s' port '%s': %s", name, host, port, gai_strerror(rc));
    memcpy(&u->addr, res->ai_addr, res->ai_addrlen);
    u->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
}

static void
s_args(int argc, char **argv)
{
    if (argc < 2)
        s_usage("a mode is needed: idle or deliver");
    if (strcmp(argv[1], "idle") == 0)
        G.mode = 0;
    else if (strcmp(argv[1], "deliver") == 0)
        G.mode = 1;
    else
        s_usage("unknown mode '%s' (idle or deliver)", argv[1]);
    const char *url = NULL, *send_url = NULL, *recv_url = NULL;
    G.sessions = 10000;
    G.hold = 0;
    G.open_rate = 2000;
    G.prefix = "idle";
    G.pairs = 100;
    G.rate = 10000;
    G.seconds = 10;
    G.drain = 5;
    for (int i = 2; i < argc; i++) {
        const char *k = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            s_usage("%s needs a value", k);
        i++;
        if (strcmp(k, "--url") == 0)
            url = v;
        else if (strcmp(k, "--send-url") == 0)
            send_url = v;
        else if (strcmp(k, "--recv-url") == 0)
            recv_url = v;
        else if (strcmp(k, "--host") == 0)
            G.host = v;
        else if (strcmp(k, "--sessions") == 0)
            G.sessions = (int) s_num(k, v, 1, S_MAX_SESSIONS);
        else if (strcmp(k, "--hold-seconds") == 0)
            G.hold = (double) s_num(k, v, 0, 86400);
        else if (strcmp(k, "--open-rate") == 0)
            G.open_rate = (int) s_num(k, v, 1, 100000);
        else if (strcmp(k, "--user-prefix") == 0)
            G.prefix = v;
        else if (strcmp(k, "--pairs") == 0)
            G.pairs = (int) s_num(k, v, 1, S_MAX_PAIRS);
        else if (strcmp(k, "--rate") == 0)
            G.rate = (int) s_num(k, v, 1, S_MAX_RATE);
        else if (strcmp(k, "--seconds") == 0)
            G.seconds = (int) s_num(k, v, 1, S_MAX_SECONDS);
        else if (strcmp(k, "--dump") == 0)
            G.dump = v;
        else if (strcmp(k, "--drain-seconds") == 0)
            G.drain = (double) s_num(k, v, 1, 60);
        else
            s_usage("unknown option '%s'", k);
    }
    if (!G.host || !*G.host || strlen(G.host) > 255 || strpbrk(G.host, "\r\n "))
        s_usage("--host VHOST is needed");
    if (strlen(G.prefix) > 40
        || strspn(G.prefix, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                            "0123456789._@-")
               != strlen(G.prefix))
        s_usage("--user-prefix: up to 40 characters of A-Z a-z 0-9 . _ @ -");
    if (G.mode == 0) {
        s_parse_url("--url", url, &G.url[0]);
    } else {
        s_parse_url("--send-url", send_url, &G.url[0]);
        s_parse_url("--recv-url", recv_url, &G.url[1]);
        if ((uint64_t) G.rate * (uint64_t) G.seconds > S_MAX_MESSAGES)
            s_usage("--rate x --seconds must be at most %d messages", S_MAX_MESSAGES);
    }
}

// ---------------------------------------------------------------------------
// wslay callbacks.

static ssize_t
s_ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *ud)
{
    (void) flags;
    conn_t *c = ud;
    if (c->pend) { // what came with the 101 head first
        size_t n = c->pend_len - c->pend_off;
        if (n > len)
            n = len;
        memcpy(buf, c->pend + c->pend_off, n);
        c->pend_off += n;
        if (c->pend_off == c->pend_len) {
            free(c->pend);
            c->pend = NULL;
        }
        return (ssize_t) n;
    }
    for (;;) {
        ssize_t r = recv(c->fd, buf, len, 0);
        if (r > 0)
            return r;
        if (r == 0) {
            c->eof = true;
            wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
            return -1;
        }
        if (errno == EINTR)
            continue;
        wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
                                       ? WSLAY_ERR_WOULDBLOCK
                                       : WSLAY_ERR_CALLBACK_FAILURE);
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            c->eof = true;
        return -1;
    }
}

static ssize_t
s_ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void) flags;
    conn_t *c = ud;
    for (;;) {
        ssize_t r = send(c->fd, data, len, MSG_NOSIGNAL);
        if (r >= 0)
            return r;
        if (errno == EINTR)
            continue;
        wslay_event_set_error(ctx, (errno == EAGAIN || errno == EWOULDBLOCK)
                                       ? WSLAY_ERR_WOULDBLOCK
                                       : WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
}

static int
s_ws_genmask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *ud)
{
    (void) ctx;
    (void) ud;
    for (size_t i = 0; i < len; i++) { // xorshift: a load generator's masks need no secrecy
        G.xs ^= G.xs << 13;
        G.xs ^= G.xs >> 7;
        G.xs ^= G.xs << 17;
        buf[i] = (uint8_t) G.xs;
    }
    return 0;
}

// "<kind><n>.<tag>" -> n; -1 for another kind, -2 for another run's id
static int64_t
s_msg_seq(const char *id, char kind)
{
    if (!id || id[0] != kind || !id[1])
        return -1;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(id + 1, &end, 10);
    if (errno || *end != '.' || end == id + 1)
        return -1;
    if (strcmp(end + 1, G.tag) != 0)
        return -2;
    if (kind == 'm' && v >= G.nmsg_max)
        return -1;
    return (int64_t) v;
}

static void
s_on_text(conn_t *c, const uint8_t *msg, size_t len)
{
    uint64_t now = s_now_ns();
    if (c->role == ROLE_IDLE)
        return; // an idle session hears nothing we count
    json_error_t jerr;
    json_t *j = json_loadb((const char *) msg, len, 0, &jerr);
    const char *type = j ? json_string_value(json_object_get(j, "type")) : NULL;
    if (!type) {
        G.unknown++;
        s_conn_error(c, "a frame that is not a JSON object with a type: %.*s",
                     (int) (len > 200 ? 200 : len), (const char *) msg);
        json_decref(j);
        return;
    }
    const char *id = json_string_value(json_object_get(j, "id"));
    if (strcmp(type, "ack") == 0 && c->role == ROLE_SEND) {
        int64_t seq = s_msg_seq(id, 'm');
        if (seq >= 0) {
            if (!G.acked[seq]) {
                G.acked[seq] = 1;
                uint64_t at = (now - G.t0_ns) / 1000u;
                G.ack_us[seq] = at > G.send_us[seq] ? (uint32_t) (at - G.send_us[seq]) : 0;
                G.acked_n++;
            }
        } else if (s_msg_seq(id, 'w') >= 0) {
            G.warm_acked++;
        } else {
            G.unknown++;
        }
    } else if (strcmp(type, "message:received") == 0 && c->role == ROLE_RECV) {
        int64_t seq = s_msg_seq(id, 'm');
        if (seq >= 0) {
            const char *text = json_string_value(json_object_get(j, "text"));
            char *end = NULL;
            unsigned long long t = text ? strtoull(text, &end, 10) : 0;
            if (!text || *end || t == 0 || t > now) {
                G.unknown++;
            } else if (G.lat_us[seq] != S_LAT_NONE) {
                G.dup++;
            } else {
                uint64_t us = (now - t) / 1000u;
                G.lat_us[seq] = us >= S_LAT_NONE ? S_LAT_NONE - 1 : (uint32_t) us;
                G.received++;
            }
        } else if (s_msg_seq(id, 'w') >= 0) {
            G.warm_received++;
        } else if (seq == -2 || s_msg_seq(id, 'w') == -2) {
            G.stale++;
        } else {
            G.unknown++;
        }
    } else if (strcmp(type, "error") == 0) {
        G.err_frames++;
        s_conn_error(c, "error frame: %.*s", (int) (len > 200 ? 200 : len), (const char *) msg);
    } else if (strcmp(type, "presence:updated") != 0 && strcmp(type, "typing") != 0) {
        G.unknown++;
    }
    json_decref(j);
}

static void
s_ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *ud)
{
    (void) ctx;
    conn_t *c = ud;
    if (arg->opcode == WSLAY_TEXT_FRAME)
        s_on_text(c, arg->msg, arg->msg_length);
    else if (arg->opcode == WSLAY_CONNECTION_CLOSE)
        s_conn_error(c, "the server closed the session (status %u)", arg->status_code);
    // pings are answered by wslay itself (a pong is queued)
}

static const struct wslay_event_callbacks s_callbacks = {
    .recv_callback = s_ws_recv,
    .send_callback = s_ws_send,
    .genmask_callback = s_ws_genmask,
    .on_msg_recv_callback = s_ws_on_msg,
};

// ---------------------------------------------------------------------------
// Sessions.

static void s_io_cb(struct ev_loop *loop, ev_io *w, int revents);

static void
s_close(conn_t *c, bool failed)
{
    if (c->state == ST_FREE || c->state == ST_CLOSED)
        return;
    if (c->state == ST_CONNECTING || c->state == ST_HANDSHAKE) {
        G.inflight--;
        if (failed)
            G.failed++;
    } else if (c->state == ST_OPEN) {
        G.open--;
        if (failed)
            G.dropped++;
    }
    ev_io_stop(G.loop, &c->io);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    if (c->ws)
        wslay_event_context_free(c->ws);
    c->ws = NULL;
    free(c->req);
    free(c->head);
    free(c->pend);
    c->req = c->head = NULL;
    c->pend = NULL;
    c->state = ST_CLOSED;
}

static void
s_watch(conn_t *c, int events)
{
    if (c->io.events == events && ev_is_active(&c->io))
        return;
    ev_io_stop(G.loop, &c->io);
    ev_io_set(&c->io, c->fd, events);
    ev_io_start(G.loop, &c->io);
}

// After any wslay work: send what is queued, watch what wslay wants.
static void
s_ws_pump(conn_t *c)
{
    if (wslay_event_want_write(c->ws) && wslay_event_send(c->ws) != 0) {
        s_conn_error(c, "send failed: %s", strerror(errno));
        s_close(c, true);
        return;
    }
    int r = wslay_event_want_read(c->ws), w = wslay_event_want_write(c->ws);
    if (!r && !w) { // the close handshake is over
        s_close(c, true);
        return;
    }
    s_watch(c, (r ? EV_READ : 0) | (w ? EV_WRITE : 0));
}

static const char *
s_user(const conn_t *c, char *buf, size_t cap)
{
    if (c->role == ROLE_IDLE)
        snprintf(buf, cap, "%s%d", G.prefix, c->idx);
    else
        snprintf(buf, cap, "%c%d", c->role == ROLE_SEND ? 's' : 'r', c->idx % G.pairs);
    return buf;
}

static bool
s_make_key(char *key, size_t keycap, char *accept, size_t acceptcap)
{
    unsigned char raw[16], md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    char cat[128];
    if (keycap < 25 || acceptcap < 29 || RAND_bytes(raw, sizeof raw) != 1)
        return false;
    EVP_EncodeBlock((unsigned char *) key, raw, sizeof raw);
    int n = snprintf(cat, sizeof cat, "%s%s", key, S_WS_GUID);
    if (n < 0 || (size_t) n >= sizeof cat
        || EVP_Digest(cat, (size_t) n, md, &mdlen, EVP_sha1(), NULL) != 1)
        return false;
    EVP_EncodeBlock((unsigned char *) accept, md, (int) mdlen);
    return true;
}

static void
s_start(conn_t *c)
{
    const s_url_t *u = &G.url[c->role == ROLE_RECV ? 1 : 0];
    char user[64], key[32];
    c->started = ev_now(G.loop);
    c->state = ST_CONNECTING;
    G.inflight++;
    if (!s_make_key(key, sizeof key, c->accept, sizeof c->accept)) {
        s_conn_error(c, "cannot make a Sec-WebSocket-Key (OpenSSL)");
        s_close(c, true);
        return;
    }
    const char *sep = strchr(u->path, '?') ? "&" : "?";
    size_t cap = strlen(u->path) + strlen(G.host) + 300;
    c->req = malloc(cap);
    if (!c->req)
        s_fail("out of memory");
    int n = snprintf(c->req, cap,
                     "GET %s%suserId=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n\r\n",
                     u->path, sep, s_user(c, user, sizeof user), G.host, key);
    if (n < 0 || (size_t) n >= cap)
        s_fail("upgrade request too long");
    c->req_len = (size_t) n;
    c->req_off = 0;
    c->fd = socket(u->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        s_conn_error(c, "socket: %s", strerror(errno));
        s_close(c, true);
        return;
    }
    int one = 1;
    (void) setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (const struct sockaddr *) &u->addr, u->addrlen) != 0
        && errno != EINPROGRESS) {
        s_conn_error(c, "connect %s: %s", u->hostport, strerror(errno));
        s_close(c, true);
        return;
    }
    ev_io_init(&c->io, s_io_cb, c->fd, EV_WRITE);
    c->io.data = c;
    ev_io_start(G.loop, &c->io);
}

// The 101: status, and Sec-WebSocket-Accept as computed from our key.
static bool
s_check_head(conn_t *c, size_t headlen)
{
    c->head[headlen - 4] = '\0'; // cut at the blank line
    if (strncmp(c->head, "HTTP/1.1 101", 12) != 0) {
        char *eol = strpbrk(c->head, "\r\n");
        if (eol)
            *eol = '\0';
        s_conn_error(c, "upgrade refused: '%.120s'", c->head);
        return false;
    }
    bool ok = false;
    char *save = NULL;
    for (char *line = strtok_r(c->head, "\r\n", &save); line;
         line = strtok_r(NULL, "\r\n", &save)) {
        if (strncasecmp(line, "Sec-WebSocket-Accept:", 21) != 0)
            continue;
        const char *v = line + 21;
        v += strspn(v, " \t");
        size_t vl = strlen(v);
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        ok = vl == strlen(c->accept) && memcmp(v, c->accept, vl) == 0;
        if (!ok)
            s_conn_error(c, "Sec-WebSocket-Accept is '%.*s', expected '%s'", (int) vl, v,
                         c->accept);
        return ok;
    }
    s_conn_error(c, "101 without Sec-WebSocket-Accept");
    return false;
}

static void
s_handshake_io(conn_t *c, int revents)
{
    if (c->state == ST_CONNECTING && (revents & EV_WRITE)) {
        int err = 0;
        socklen_t el = sizeof err;
        if (c->req_off == 0 && (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0 || err)) {
            s_conn_error(c, "connect: %s", strerror(err ? err : errno));
            s_close(c, true);
            return;
        }
        ssize_t w = send(c->fd, c->req + c->req_off, c->req_len - c->req_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EINTR)
                return;
            s_conn_error(c, "send: %s", strerror(errno));
            s_close(c, true);
            return;
        }
        c->req_off += (size_t) w;
        if (c->req_off < c->req_len)
            return;
        free(c->req);
        c->req = NULL;
        c->state = ST_HANDSHAKE;
        c->head = malloc(S_HEAD_MAX + 1);
        if (!c->head)
            s_fail("out of memory");
        c->head_len = 0;
        s_watch(c, EV_READ);
        return;
    }
    if (c->state != ST_HANDSHAKE || !(revents & EV_READ))
        return;
    ssize_t r = recv(c->fd, c->head + c->head_len, S_HEAD_MAX - c->head_len, 0);
    if (r < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (r <= 0) {
        s_conn_error(c, "%s before the 101", r == 0 ? "connection closed" : strerror(errno));
        s_close(c, true);
        return;
    }
    c->head_len += (size_t) r;
    c->head[c->head_len] = '\0';
    char *end = strstr(c->head, "\r\n\r\n");
    if (!end) {
        if (c->head_len == S_HEAD_MAX) {
            s_conn_error(c, "response head over %d bytes", S_HEAD_MAX);
            s_close(c, true);
        }
        return;
    }
    size_t headlen = (size_t) (end - c->head) + 4;
    if (headlen < c->head_len) { // frames right behind the head: wslay reads them first
        c->pend_len = c->head_len - headlen;
        c->pend_off = 0;
        c->pend = malloc(c->pend_len);
        if (!c->pend)
            s_fail("out of memory");
        memcpy(c->pend, c->head + headlen, c->pend_len);
    }
    if (!s_check_head(c, headlen)) {
        s_close(c, true);
        return;
    }
    free(c->head);
    c->head = NULL;
    if (wslay_event_context_client_init(&c->ws, &s_callbacks, c) != 0)
        s_fail("out of memory (wslay)");
    wslay_event_config_set_max_recv_msg_length(c->ws, S_FRAME_MAX);
    c->state = ST_OPEN;
    G.inflight--;
    G.open++;
    if (c->pend && wslay_event_recv(c->ws) != 0) {
        s_conn_error(c, "%s", c->eof ? "the server closed the connection" : "bad data (wslay)");
        s_close(c, true);
        return;
    }
    s_ws_pump(c);
}

static void
s_io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    conn_t *c = w->data;
    if (c->state != ST_OPEN) {
        s_handshake_io(c, revents);
        return;
    }
    if ((revents & EV_READ) && wslay_event_recv(c->ws) != 0) {
        if (c->eof)
            s_conn_error(c, "the server closed the connection");
        else
            s_conn_error(c, "bad data from the server (wslay)");
        s_close(c, true);
        return;
    }
    s_ws_pump(c);
}

// Opens sessions [from, to) at G.open_rate a second with at most
// S_INFLIGHT_MAX handshakes in flight; handshakes past their deadline fail.
static int s_open_to;
static void
s_open_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) w;
    (void) revents;
    double now = ev_now(loop);
    for (int i = 0; i < G.next_open; i++) {
        conn_t *c = &G.conns[i];
        if ((c->state == ST_CONNECTING || c->state == ST_HANDSHAKE)
            && now - c->started > S_HANDSHAKE_SECS) {
            s_conn_error(c, "no 101 within %.0f s", S_HANDSHAKE_SECS);
            s_close(c, true);
        }
    }
    int budget = G.open_rate / 100 > 0 ? G.open_rate / 100 : 1; // a tick is 10 ms
    while (budget-- > 0 && G.next_open < s_open_to && G.inflight < S_INFLIGHT_MAX)
        s_start(&G.conns[G.next_open++]);
}

static void
s_signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) w;
    (void) revents;
    G.stopping = true;
    ev_break(loop, EVBREAK_ALL);
}

// Runs the loop until done() or the deadline (absolute, s_now()) or a signal.
static void
s_wake_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) w;
    (void) revents;
}

static bool
s_run_until(bool (*done)(void), double deadline)
{
    ev_timer wake; // the deadline is checked at least every 100 ms
    ev_timer_init(&wake, s_wake_cb, 0.1, 0.1);
    ev_timer_start(G.loop, &wake);
    bool ok = true;
    while (!G.stopping && !done()) {
        if (s_now() >= deadline) {
            ok = false;
            break;
        }
        ev_run(G.loop, EVRUN_ONCE);
    }
    ev_timer_stop(G.loop, &wake);
    return ok && !G.stopping;
}

static bool
s_opened_all(void)
{
    return G.next_open == s_open_to && G.inflight == 0;
}

static double s_progress_at;
static bool
s_opened_all_progress(void)
{
    double now = s_now();
    if (now >= s_progress_at) {
        fprintf(stderr, "chat-load: open %d, in handshake %d, failed %d, to start %d\n", G.open,
                G.inflight, G.failed, s_open_to - G.next_open);
        s_progress_at = now + 1.0;
    }
    return s_opened_all();
}

// Opens G.conns[from, to); false if the deadline passed or a signal came.
static bool
s_open_range(int from, int to, ev_timer *tick)
{
    G.next_open = from;
    s_open_to = to;
    s_progress_at = s_now() + 1.0;
    ev_timer_again(G.loop, tick);
    double deadline = s_now() + (double) (to - from) / G.open_rate + 2 * S_HANDSHAKE_SECS + 5;
    return s_run_until(s_opened_all_progress, deadline);
}

static void
s_nofile(int need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        s_fail("getrlimit: %s", strerror(errno));
    rl.rlim_cur = rl.rlim_max;
    (void) setrlimit(RLIMIT_NOFILE, &rl);
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < (rlim_t) need + 32)
        s_fail("%d sessions need %d open files; the limit is %llu (hard %llu)", need, need + 32,
               (unsigned long long) rl.rlim_cur, (unsigned long long) rl.rlim_max);
}

// ---------------------------------------------------------------------------
// idle

static bool
s_never(void)
{
    return false;
}

static int
s_idle(void)
{
    ev_timer tick;
    ev_timer_init(&tick, s_open_tick, 0.01, 0.01);
    G.nconns = G.sessions;
    G.conns = calloc((size_t) G.nconns, sizeof *G.conns);
    if (!G.conns)
        s_fail("out of memory");
    for (int i = 0; i < G.nconns; i++) {
        G.conns[i].idx = i;
        G.conns[i].fd = -1;
        G.conns[i].role = ROLE_IDLE;
    }
    double t0 = s_now();
    bool ok = s_open_range(0, G.nconns, &tick);
    ev_timer_stop(G.loop, &tick);
    if (!ok && !G.stopping) {
        fprintf(stderr,
                "chat-load: sessions not open in time: open %d, in handshake %d, failed %d\n",
                G.open, G.inflight, G.failed);
        return 1;
    }
    if (G.stopping)
        return 1;
    fprintf(stderr, "chat-load: %d sessions open in %.1f s (%d failed)\n", G.open, s_now() - t0,
            G.failed);
    printf("ready open=%d failed=%d\n", G.open, G.failed);
    fflush(stdout);
    (void) s_run_until(s_never, G.hold > 0 ? s_now() + G.hold : s_now() + 86400.0 * 365);
    int held = G.open;
    for (int i = 0; i < G.nconns; i++)
        s_close(&G.conns[i], false);
    printf("closed open=%d dropped=%d\n", held, G.dropped);
    fflush(stdout);
    return 0;
}

// ---------------------------------------------------------------------------
// deliver

static void
s_send_one(conn_t *c, const char *id, uint64_t tns)
{
    char buf[160];
    int n = snprintf(buf, sizeof buf,
                     "{\"type\":\"message:send\",\"to\":\"r%d\",\"text\":\"%" PRIu64
                     "\",\"id\":\"%s\"}",
                     c->idx % G.pairs, tns, id);
    struct wslay_event_msg m = {
        .opcode = WSLAY_TEXT_FRAME, .msg = (const uint8_t *) buf, .msg_length = (size_t) n};
    if (c->state != ST_OPEN || wslay_event_queue_msg(c->ws, &m) != 0) {
        G.send_fail++;
        return;
    }
    s_ws_pump(c);
}

static bool
s_warm_done(void)
{
    return G.warm_received >= (uint64_t) G.pairs && G.warm_acked >= (uint64_t) G.pairs;
}

// Paced sending: every millisecond, the messages due by now (at most 100 ms
// worth at once, so a stall is not followed by an unbounded burst).
static uint64_t s_total;
static void
s_send_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    double now = s_now();
    if (now >= G.t_send0 + G.seconds || G.sent >= s_total) {
        G.t_send1 = now;
        ev_timer_stop(loop, w);
        return;
    }
    uint64_t due = (uint64_t) ((now - G.t_send0) * G.rate);
    if (due > s_total)
        due = s_total;
    uint64_t burst = (uint64_t) G.rate / 10 + 1;
    char id[64];
    for (uint64_t k = 0; G.sent < due && k < burst; k++) {
        uint64_t seq = G.sent++;
        G.send_us[seq] = (uint32_t) ((s_now_ns() - G.t0_ns) / 1000u);
        snprintf(id, sizeof id, "m%" PRIu64 ".%s", seq, G.tag);
        s_send_one(&G.conns[G.pairs + (int) (seq % (uint64_t) G.pairs)], id, s_now_ns());
    }
}

static bool
s_send_done(void)
{
    return G.t_send1 > 0;
}

static bool
s_drained(void)
{
    return G.received + G.send_fail >= G.sent && G.acked_n + G.send_fail >= G.sent;
}

// this process's CPU time (user + system), µs
static double
s_cpu_us(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double) (ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1e6
           + (double) (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int
s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return x < y ? -1 : x > y;
}

static int
s_deliver(void)
{
    ev_timer tick;
    ev_timer_init(&tick, s_open_tick, 0.01, 0.01);
    G.nconns = 2 * G.pairs; // [0, pairs): receivers, [pairs, 2 pairs): senders
    G.conns = calloc((size_t) G.nconns, sizeof *G.conns);
    G.nmsg_max = (uint64_t) G.rate * (uint64_t) G.seconds;
    s_total = G.nmsg_max;
    G.lat_us = malloc(G.nmsg_max * sizeof *G.lat_us);
    G.send_us = calloc(G.nmsg_max, sizeof *G.send_us);
    G.ack_us = malloc(G.nmsg_max * sizeof *G.ack_us);
    if (!G.send_us || !G.ack_us)
        s_fail("out of memory");
    memset(G.ack_us, 0xff, G.nmsg_max * sizeof *G.ack_us);
    G.acked = calloc(G.nmsg_max, 1);
    if (!G.conns || !G.lat_us || !G.acked)
        s_fail("out of memory");
    memset(G.lat_us, 0xff, G.nmsg_max * sizeof *G.lat_us);
    for (int i = 0; i < G.nconns; i++) {
        G.conns[i].idx = i;
        G.conns[i].fd = -1;
        G.conns[i].role = i < G.pairs ? ROLE_RECV : ROLE_SEND;
    }
    // receivers first (they subscribe), then senders
    if (!s_open_range(0, G.pairs, &tick) || G.open != G.pairs)
        s_fail("receivers: %d of %d open (%d failed)", G.open, G.pairs, G.failed);
    if (!s_open_range(G.pairs, G.nconns, &tick) || G.open != G.nconns)
        s_fail("senders: %d of %d open (%d failed)", G.open - G.pairs, G.pairs, G.failed);
    ev_timer_stop(G.loop, &tick);
    // warm-up: one message per pair must go all the way before the clock starts
    char id[64];
    for (int i = 0; i < G.pairs; i++) {
        snprintf(id, sizeof id, "w%d.%s", i, G.tag);
        s_send_one(&G.conns[G.pairs + i], id, s_now_ns());
    }
    if (!s_run_until(s_warm_done, s_now() + 15))
        s_fail("warm-up: %" PRIu64 " of %d delivered, %" PRIu64 " acked within 15 s",
               G.warm_received, G.pairs, G.warm_acked);
    fprintf(stderr, "chat-load: %d pairs open and warm; sending %d messages/s for %d s\n", G.pairs,
            G.rate, G.seconds);
    ev_timer send;
    ev_timer_init(&send, s_send_tick, 0.001, 0.001);
    printf("sending\n"); // bench.sh reads the actors' CPU between these two lines
    fflush(stdout);
    double cpu0 = s_cpu_us();
    G.t_send0 = s_now();
    G.t0_ns = s_now_ns();
    ev_timer_start(G.loop, &send);
    (void) s_run_until(s_send_done, G.t_send0 + G.seconds + 5);
    ev_timer_stop(G.loop, &send);
    if (G.t_send1 == 0)
        G.t_send1 = s_now();
    double cpu_us = s_cpu_us() - cpu0;
    printf("sent %" PRIu64 "\n", G.sent);
    fflush(stdout);
    (void) s_run_until(s_drained, s_now() + G.drain);
    // figures
    uint32_t *v = malloc((G.sent + 1) * sizeof *v);
    if (!v)
        s_fail("out of memory");
    uint64_t n = 0, lost = 0, unacked = 0;
    for (uint64_t s = 0; s < G.sent; s++) {
        if (G.lat_us[s] != S_LAT_NONE)
            v[n++] = G.lat_us[s];
        else if (G.acked[s])
            lost++;
        if (!G.acked[s])
            unacked++;
    }
    qsort(v, n, sizeof *v, s_cmp_u32);
    double p50 = n ? v[(n - 1) * 50 / 100] / 1000.0 : -1;
    double p99 = n ? v[(n - 1) * 99 / 100] / 1000.0 : -1;
    double p999 = n ? v[(n - 1) * 999 / 1000] / 1000.0 : -1;
    double mx = n ? v[n - 1] / 1000.0 : -1;
    uint64_t na = 0; // the acks' latencies (sender -> gateway -> chatd -> Redis and back)
    for (uint64_t s = 0; s < G.sent; s++)
        if (G.ack_us[s] != S_LAT_NONE)
            v[na++] = G.ack_us[s];
    qsort(v, na, sizeof *v, s_cmp_u32);
    double ack50 = na ? v[(na - 1) * 50 / 100] / 1000.0 : -1;
    double ack99 = na ? v[(na - 1) * 99 / 100] / 1000.0 : -1;
    if (G.dump) {
        FILE *f = fopen(G.dump, "w");
        if (!f)
            s_fail("--dump %s: %s", G.dump, strerror(errno));
        fputs("# seq sent_at_us latency_us ack_us (4294967295: none)\n", f);
        for (uint64_t s = 0; s < G.sent; s++)
            fprintf(f, "%" PRIu64 " %" PRIu32 " %" PRIu32 " %" PRIu32 "\n", s, G.send_us[s],
                    G.lat_us[s], G.ack_us[s]);
        if (fclose(f) != 0)
            s_fail("--dump %s: %s", G.dump, strerror(errno));
    }
    double secs = G.t_send1 - G.t_send0;
    printf("pairs=%d target_rate=%d seconds=%.2f sent=%" PRIu64 " rate=%.0f acked=%" PRIu64
           " received=%" PRIu64 " lost=%" PRIu64 " unacked=%" PRIu64 " dup=%" PRIu64
           " error_frames=%" PRIu64 " unknown=%" PRIu64 " stale=%" PRIu64 " send_fail=%" PRIu64
           " dropped_sessions=%d cpu_us=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f"
           " ack_p50_ms=%.3f ack_p99_ms=%.3f\n",
           G.pairs, G.rate, secs, G.sent, secs > 0 ? G.sent / secs : 0, G.acked_n, G.received, lost,
           unacked, G.dup, G.err_frames, G.unknown, G.stale, G.send_fail, G.dropped, cpu_us, p50,
           p99, p999, mx, ack50, ack99);
    fflush(stdout);
    free(v);
    for (int i = 0; i < G.nconns; i++)
        s_close(&G.conns[i], false);
    return 0;
}

int
main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    s_args(argc, argv);
    s_nofile(G.mode == 0 ? G.sessions : 2 * G.pairs);
    G.xs = s_now_ns() | 1;
    unsigned char r[4];
    if (RAND_bytes(r, sizeof r) != 1)
        s_fail("RAND_bytes failed");
    snprintf(G.tag, sizeof G.tag, "%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
    signal(SIGPIPE, SIG_IGN);
    G.loop = ev_default_loop(EVFLAG_AUTO);
    if (!G.loop)
        s_fail("no event loop");
    ev_signal sterm, sint;
    ev_signal_init(&sterm, s_signal_cb, SIGTERM);
    ev_signal_init(&sint, s_signal_cb, SIGINT);
    ev_signal_start(G.loop, &sterm);
    ev_signal_start(G.loop, &sint);
    return G.mode == 0 ? s_idle() : s_deliver();
}
