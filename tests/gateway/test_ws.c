/*  test_ws - unit tests for gw_ws, a chat session's WebSocket.

    Each test runs a real libev loop with a gw_ws on one end of a socketpair;
    the test plays the client on the other end, writing frames it builds
    itself (masked by hand, independent of wslay) and parsing what comes
    back. Waits are bounded by a deadline timer on the loop, never a sleep.

    The sessions over an I/O layer (gw_ws_new_io, what TLS uses) run on a
    layer simulated here, t_io_t: it behaves as OpenSSL's record layer does
    towards the session (it reads ahead from the socket and hands out less,
    so the socket stops announcing bytes the session has not had; it can
    make a read wait for writability and a write wait for readability, and
    it checks that a write it refused is repeated with the same bytes), but
    leaves the bytes as they are, so the client's side stays plain frames.
    (The real SSL one, gw_chat's, is covered end to end: tests/e2e/
    test_tls_ws.py.)
*/
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <ev.h>

//  ASan's count of bytes in use (sanitizer/allocator_interface.h, which gcc
//  does not ship): the memory test measures with it.
#if defined(__SANITIZE_ADDRESS__)
size_t __sanitizer_get_current_allocated_bytes(void);
#define T_HAVE_ALLOC_STATS 1
#endif

#include "../../gateway/gw_ws.h"

#define T_DEADLINE 3.0 // seconds any wait may take

typedef struct {
    struct ev_loop *loop;  // the loop
    gw_ws_t *ws;           // the session under test
    int cfd;               // the client's end
    ev_io cio;             // client readable
    ev_timer guard;        // deadline of the current wait
    bool expired;          // the deadline passed
    bool cfd_eof;          // the server's end closed
    uint8_t in[1 << 16];   // bytes from the server not yet taken
    size_t in_len;         // how many
    int texts;             // on_text calls
    uint8_t text[1 << 18]; // the last text
    size_t text_len;       // its length
    int closed;            // on_closed calls
    uint16_t code;         // on_closed's code
    char why[64];          // on_closed's why
} t_env_t;

static void
s_on_text(gw_ws_t *ws, const uint8_t *data, size_t len, void *arg)
{
    (void) ws;
    t_env_t *t = arg;
    assert_true(len <= sizeof t->text);
    memcpy(t->text, data, len);
    t->text_len = len;
    t->texts++;
}

static void
s_on_closed(gw_ws_t *ws, uint16_t code, const char *why, void *arg)
{
    t_env_t *t = arg;
    assert_ptr_equal(ws, t->ws);
    t->closed++;
    t->code = code;
    snprintf(t->why, sizeof t->why, "%s", why);
    gw_ws_destroy(&t->ws); // the owner's way: destroy inside the callback
}

static void
s_on_client(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) revents;
    t_env_t *t = w->data;
    ssize_t n = read(t->cfd, t->in + t->in_len, sizeof t->in - t->in_len);
    if (n > 0)
        t->in_len += (size_t) n;
    else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        t->cfd_eof = true;
        ev_io_stop(loop, w);
    }
}

static void
s_on_guard(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    t_env_t *t = w->data;
    t->expired = true;
}

//  A simulated record layer (see the top of the file).
typedef struct {
    uint8_t held[1 << 21]; // read from the socket, not handed out yet
    size_t len;            // bytes in held
    size_t off;            // bytes handed out
    size_t give_max;       // at most this per recv (0: what is asked)
    size_t write_max;      // at most this per send (0: what is given)
    int read_waits_write;  // the next reads wait for writability (EAGAIN, *want_write)
    int write_waits_read;  // the next writes wait for readability (EAGAIN, *want_read)
    uint8_t refused[16];   // the first bytes of the last refused write
    size_t refused_len;    // its length (0: none to repeat)
    bool eof;              // the socket ended
    int calls;             // recv and send calls
    int sends;             // send calls that wrote
    int closes;            // close calls
} t_io_t;

static ssize_t
s_io_recv(void *ctx, int fd, uint8_t *buf, size_t len, bool *want_write)
{
    t_io_t *io = ctx;
    io->calls++;
    if (io->off == io->len) { // read ahead: everything the socket has now
        io->off = io->len = 0;
        while (!io->eof && io->len < sizeof io->held) {
            ssize_t n = read(fd, io->held + io->len, sizeof io->held - io->len);
            if (n > 0)
                io->len += (size_t) n;
            else if (n == 0)
                io->eof = true;
            else
                break;
        }
    }
    if (io->read_waits_write > 0 && io->off < io->len) {
        //  what TLS does with a record that needs an answer (a key update)
        //  while the socket is full: the bytes are read, the socket says
        //  nothing more, and only writability lets the read go on
        io->read_waits_write--;
        *want_write = true;
        errno = EAGAIN;
        return -1;
    }
    size_t n = io->len - io->off;
    if (n == 0) {
        if (io->eof)
            return 0;
        errno = EAGAIN;
        return -1;
    }
    if (n > len)
        n = len;
    if (io->give_max && n > io->give_max)
        n = io->give_max;
    memcpy(buf, io->held + io->off, n);
    io->off += n;
    return (ssize_t) n;
}

static ssize_t
s_io_send(void *ctx, int fd, const uint8_t *buf, size_t len, bool more, bool *want_read)
{
    (void) more;
    t_io_t *io = ctx;
    io->calls++;
    if (io->refused_len) { // OpenSSL's rule: a refused write comes again, same bytes first
        assert_true(len >= io->refused_len);
        size_t k = io->refused_len < sizeof io->refused ? io->refused_len : sizeof io->refused;
        assert_memory_equal(buf, io->refused, k);
        io->refused_len = 0;
    }
    if (io->write_waits_read > 0) {
        io->write_waits_read--;
        memcpy(io->refused, buf, len < sizeof io->refused ? len : sizeof io->refused);
        io->refused_len = len;
        *want_read = true;
        errno = EAGAIN;
        return -1;
    }
    if (io->write_max && len > io->write_max)
        len = io->write_max;
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EAGAIN) {
        memcpy(io->refused, buf, len < sizeof io->refused ? len : sizeof io->refused);
        io->refused_len = len;
    } else if (n > 0) {
        io->sends++;
    }
    return n;
}

static bool
s_io_pending(void *ctx)
{
    t_io_t *io = ctx;
    return io->off < io->len;
}

static void
s_io_close(void *ctx, int fd)
{
    t_io_t *io = ctx;
    io->closes++;
    close(fd);
}

static const gw_ws_io_t s_io = {
    .recv = s_io_recv, .send = s_io_send, .pending = s_io_pending, .close = s_io_close};

static const gw_ws_config_t s_cfg = {
    .ping_interval = 30, .idle_timeout = 60, .max_message = 1 << 20, .max_queued = 1 << 20};

static t_env_t *
s_env_new_io(const gw_ws_config_t *cfg, t_io_t *io, const void *pending, size_t pending_len)
{
    t_env_t *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->loop = ev_loop_new(EVFLAG_AUTO);
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fcntl(sv[i], F_SETFL, O_NONBLOCK), 0);
    t->cfd = sv[1];
    gw_ws_callbacks_t cb = {.on_text = s_on_text, .on_closed = s_on_closed, .arg = t};
    t->ws =
        io ? gw_ws_new_io(t->loop, sv[0], &s_io, io, cfg ? cfg : &s_cfg, &cb, pending, pending_len)
           : gw_ws_new(t->loop, sv[0], cfg ? cfg : &s_cfg, &cb, pending, pending_len);
    assert_non_null(t->ws);
    ev_io_init(&t->cio, s_on_client, t->cfd, EV_READ);
    t->cio.data = t;
    ev_io_start(t->loop, &t->cio);
    ev_init(&t->guard, s_on_guard);
    t->guard.data = t;
    return t;
}

static t_env_t *
s_env_new(const gw_ws_config_t *cfg, const void *pending, size_t pending_len)
{
    return s_env_new_io(cfg, NULL, pending, pending_len);
}

static void
s_env_destroy(t_env_t **t_p)
{
    t_env_t *t = *t_p;
    gw_ws_destroy(&t->ws);
    ev_io_stop(t->loop, &t->cio);
    ev_timer_stop(t->loop, &t->guard);
    if (t->cfd >= 0)
        close(t->cfd);
    ev_loop_destroy(t->loop);
    free(t);
    *t_p = NULL;
}

//  Run the loop until cond holds or seconds pass; asserts that it held (cond is
//  evaluated once per turn: it may consume, as s_take does).
#define T_WAIT(t, seconds, cond)                                                                   \
    do {                                                                                           \
        bool ok_ = false;                                                                          \
        (t)->expired = false;                                                                      \
        ev_timer_set(&(t)->guard, (seconds), 0);                                                   \
        ev_timer_start((t)->loop, &(t)->guard);                                                    \
        while (!(ok_ = (cond)) && !(t)->expired)                                                   \
            ev_run((t)->loop, EVRUN_ONCE);                                                         \
        ev_timer_stop((t)->loop, &(t)->guard);                                                     \
        assert_true(ok_);                                                                          \
    } while (0)

//  A client frame: masked with a fixed key unless mask is false.
static size_t
s_frame(uint8_t *out, bool fin, uint8_t opcode, bool mask, const void *payload, size_t len)
{
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    size_t n = 0;
    out[n++] = (uint8_t) ((fin ? 0x80 : 0) | opcode);
    uint8_t m = mask ? 0x80 : 0;
    if (len < 126) {
        out[n++] = (uint8_t) (m | len);
    } else if (len < 65536) {
        out[n++] = m | 126;
        out[n++] = (uint8_t) (len >> 8);
        out[n++] = (uint8_t) len;
    } else {
        out[n++] = m | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t) ((uint64_t) len >> (8 * i));
    }
    if (mask) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = mask ? (uint8_t) (p[i] ^ key[i % 4]) : p[i];
    return n + len;
}

static void
s_send(t_env_t *t, bool fin, uint8_t opcode, bool mask, const void *payload, size_t len)
{
    static uint8_t buf[(1 << 20) + 64];
    assert_true(len <= (1 << 20) + 32);
    size_t n = s_frame(buf, fin, opcode, mask, payload, len);
    size_t off = 0;
    while (off < n) { // the server reads as the loop turns
        ssize_t w = write(t->cfd, buf + off, n - off);
        if (w > 0)
            off += (size_t) w;
        else {
            assert_true(errno == EAGAIN);
            ev_run(t->loop, EVRUN_NOWAIT);
            if (t->closed)
                return; // the server gave up on the rest
        }
    }
}

//  A close frame's payload: code, then reason.
static void
s_send_close(t_env_t *t, uint16_t code, const char *reason)
{
    uint8_t p[128] = {(uint8_t) (code >> 8), (uint8_t) code};
    size_t rl = strlen(reason);
    memcpy(p + 2, reason, rl);
    s_send(t, true, 0x8, true, p, 2 + rl);
}

//  Take one whole frame from the server, if there is one: unmasked, final.
static bool
s_take(t_env_t *t, uint8_t *opcode, uint8_t *payload, size_t *len)
{
    if (t->in_len < 2)
        return false;
    assert_int_equal(t->in[1] & 0x80, 0); // a server never masks
    size_t hl = 2, pl = t->in[1] & 0x7f;
    if (pl == 126) {
        if (t->in_len < 4)
            return false;
        pl = (size_t) t->in[2] << 8 | t->in[3];
        hl = 4;
    } else if (pl == 127) {
        if (t->in_len < 10)
            return false;
        pl = 0;
        for (int i = 0; i < 8; i++)
            pl = pl << 8 | t->in[2 + i];
        hl = 10;
    }
    if (t->in_len < hl + pl)
        return false;
    assert_int_equal(t->in[0] & 0x80, 0x80);
    *opcode = t->in[0] & 0x0f;
    memcpy(payload, t->in + hl, pl);
    *len = pl;
    memmove(t->in, t->in + hl + pl, t->in_len - hl - pl);
    t->in_len -= hl + pl;
    return true;
}

//  Wait for the next frame from the server.
static void
s_expect(t_env_t *t, uint8_t opcode, const void *payload, size_t len)
{
    uint8_t op = 0, p[4096];
    size_t n = 0;
    T_WAIT(t, T_DEADLINE, s_take(t, &op, p, &n));
    assert_int_equal(op, opcode);
    assert_int_equal(n, len);
    if (len > 0)
        assert_memory_equal(p, payload, len);
}

//  Wait for a close frame from the server with code.
static void
s_expect_close(t_env_t *t, uint16_t code)
{
    uint8_t op = 0, p[4096];
    size_t n = 0;
    T_WAIT(t, T_DEADLINE, s_take(t, &op, p, &n));
    assert_int_equal(op, 0x8);
    assert_true(n >= 2);
    assert_int_equal((p[0] << 8) | p[1], code);
}

//  The session failed with code: the close frame came, on_closed once, the
//  socket closed.
static void
s_expect_failed(t_env_t *t, uint16_t code)
{
    s_expect_close(t, code);
    T_WAIT(t, T_DEADLINE, t->closed == 1 && t->cfd_eof);
    assert_int_equal(t->code, code);
    assert_null(t->ws);
}

static void
test_text_round_trip(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x1, true, "hello", 5);
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    assert_int_equal(t->text_len, 5);
    assert_memory_equal(t->text, "hello", 5);
    assert_int_equal(gw_ws_send_text(t->ws, "world", 5), 0);
    assert_int_equal(gw_ws_queued(t->ws), 5);
    s_expect(t, 0x1, "world", 5);
    assert_int_equal(gw_ws_queued(t->ws), 0);
    //  An empty message and a long one (16-bit length) both ways.
    s_send(t, true, 0x1, true, "", 0);
    T_WAIT(t, T_DEADLINE, t->texts == 2);
    assert_int_equal(t->text_len, 0);
    char big[3000];
    memset(big, 'x', sizeof big);
    s_send(t, true, 0x1, true, big, sizeof big);
    T_WAIT(t, T_DEADLINE, t->texts == 3);
    assert_int_equal(t->text_len, sizeof big);
    assert_int_equal(gw_ws_send_text(t->ws, big, sizeof big), 0);
    s_expect(t, 0x1, big, sizeof big);
    assert_int_equal(t->closed, 0);
    s_env_destroy(&t);
}

static void
test_fragments_and_ping(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x9, true, "abc", 3);
    s_expect(t, 0xa, "abc", 3);
    //  A text in three fragments with a ping between them.
    s_send(t, false, 0x1, true, "hel", 3);
    s_send(t, true, 0x9, true, "p", 1);
    s_send(t, false, 0x0, true, "l", 1);
    s_send(t, true, 0x0, true, "o", 1);
    s_expect(t, 0xa, "p", 1);
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    assert_int_equal(t->text_len, 5);
    assert_memory_equal(t->text, "hello", 5);
    //  A multi-byte character split across fragments is valid: accepted.
    s_send(t, false, 0x1, true, "\xe2\x82", 2);
    s_send(t, true, 0x0, true, "\xac", 1);
    T_WAIT(t, T_DEADLINE, t->texts == 2);
    assert_int_equal(t->text_len, 3);
    assert_memory_equal(t->text, "\xe2\x82\xac", 3);
    //  A pong is taken quietly.
    s_send(t, true, 0xa, true, "", 0);
    s_send(t, true, 0x1, true, "after", 5);
    T_WAIT(t, T_DEADLINE, t->texts == 3);
    assert_int_equal(t->closed, 0);
    s_env_destroy(&t);
}

static void
test_unmasked_is_1002(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x1, false, "hi", 2);
    s_expect_failed(t, 1002);
    assert_int_equal(t->texts, 0);
    assert_string_equal(t->why, "protocol error");
    s_env_destroy(&t);

    //  A reserved opcode, and a control frame over 125 bytes (refused by
    //  wslay's frame layer: the gateway sends the 1002 itself).
    t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x3, true, "x", 1);
    s_expect_failed(t, 1002);
    s_env_destroy(&t);
    t = s_env_new(NULL, NULL, 0);
    char p[126] = {0};
    s_send(t, true, 0x9, true, p, sizeof p);
    s_expect_failed(t, 1002);
    s_env_destroy(&t);
    //  A continuation with no message started.
    t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x0, true, "x", 1);
    s_expect_failed(t, 1002);
    s_env_destroy(&t);
}

static void
test_invalid_utf8_is_1007(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x1, true, "ok\xff", 3);
    s_expect_failed(t, 1007);
    assert_int_equal(t->texts, 0);
    s_env_destroy(&t);
    //  Invalid in the second fragment; overlong; surrogate; cut at the end.
    const char *bad[][2] = {
        {"\xe2", "\x28"}, {"a", "\xc0\xaf"}, {"\xed\xa0", "\x80"}, {"a", "\xe2"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t = s_env_new(NULL, NULL, 0);
        s_send(t, false, 0x1, true, bad[i][0], strlen(bad[i][0]));
        s_send(t, true, 0x0, true, bad[i][1], strlen(bad[i][1]));
        s_expect_failed(t, 1007);
        assert_int_equal(t->texts, 0);
        s_env_destroy(&t);
    }
}

static void
test_binary_is_1003(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x2, true, "\x01\x02", 2);
    s_expect_failed(t, 1003);
    assert_string_equal(t->why, "binary message");
    s_env_destroy(&t);
}

static void
test_too_big_is_1009(void **state)
{
    (void) state;
    gw_ws_config_t cfg = s_cfg;
    cfg.max_message = 100;
    char p[101];
    memset(p, 'a', sizeof p);
    t_env_t *t = s_env_new(&cfg, NULL, 0);
    s_send(t, true, 0x1, true, p, 100); // exactly the bound: fine
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    s_send(t, true, 0x1, true, p, 101);
    s_expect_failed(t, 1009);
    assert_int_equal(t->texts, 1);
    s_env_destroy(&t);
    //  Over the bound only once reassembled.
    t = s_env_new(&cfg, NULL, 0);
    s_send(t, false, 0x1, true, p, 60);
    s_send(t, true, 0x0, true, p, 60);
    s_expect_failed(t, 1009);
    assert_int_equal(t->texts, 0);
    s_env_destroy(&t);
    //  The default (SPEC: 1 MiB): a frame announcing more is refused before
    //  the rest of its payload arrives.
    cfg.max_message = GW_WS_MAX_MESSAGE;
    t = s_env_new(&cfg, NULL, 0);
    //  FIN text, masked, 64-bit length 0x100001 (1 MiB + 1), the key, and
    //  the first payload bytes (wslay reports a frame with its first bytes).
    static const uint8_t head[18] = {0x81, 0xff, 0, 0, 0, 0,   0,   0x10, 0,
                                     0x01, 1,    2, 3, 4, 'a', 'b', 'c',  'd'};
    assert_int_equal(write(t->cfd, head, sizeof head), (ssize_t) sizeof head);
    s_expect_failed(t, 1009);
    s_env_destroy(&t);
}

//  The client's side of keepalive: a pong for every ping. Returns false
//  (so that it can sit in a wait's condition).
static bool
s_answer_pings(t_env_t *t, int *answered)
{
    uint8_t op = 0, p[256];
    size_t n = 0;
    while (s_take(t, &op, p, &n)) {
        assert_int_equal(op, 0x9);
        s_send(t, true, 0xa, true, "", 0);
        (*answered)++;
    }
    return false;
}

static void
test_idle_timeout(void **state)
{
    (void) state;
    gw_ws_config_t cfg = s_cfg;
    cfg.ping_interval = 0.05;
    cfg.idle_timeout = 0.2;
    t_env_t *t = s_env_new(&cfg, NULL, 0);
    int pings = 0;
    uint8_t op = 0, p[256];
    size_t n = 0;
    for (;;) {
        T_WAIT(t, T_DEADLINE, s_take(t, &op, p, &n));
        if (op != 0x9)
            break;
        pings++;
    }
    assert_true(pings >= 2);
    assert_int_equal(op, 0x8);
    assert_int_equal((p[0] << 8) | p[1], 1000);
    T_WAIT(t, T_DEADLINE, t->closed == 1 && t->cfd_eof);
    assert_int_equal(t->code, 1000);
    assert_string_equal(t->why, "idle");
    s_env_destroy(&t);

    //  A client that answers pings stays: run past twice the idle bound.
    t = s_env_new(&cfg, NULL, 0);
    ev_tstamp until = ev_now(t->loop) + 0.5;
    int answered = 0;
    T_WAIT(t, T_DEADLINE, s_answer_pings(t, &answered) || ev_now(t->loop) >= until || t->closed);
    assert_int_equal(t->closed, 0);
    assert_true(answered >= 5);
    s_env_destroy(&t);
}

static void
test_close_by_client(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send_close(t, 4001, "bye");
    uint8_t op = 0, p[256];
    size_t n = 0;
    T_WAIT(t, T_DEADLINE, s_take(t, &op, p, &n));
    assert_int_equal(op, 0x8);
    assert_int_equal(n, 5);
    assert_memory_equal(p,
                        "\x0f\xa1"
                        "bye",
                        5); // echoed
    T_WAIT(t, T_DEADLINE, t->closed == 1 && t->cfd_eof);
    assert_int_equal(t->code, 4001);
    assert_string_equal(t->why, "closed by client");
    //  Called once, whatever comes after.
    for (int i = 0; i < 5; i++)
        ev_run(t->loop, EVRUN_NOWAIT);
    assert_int_equal(t->closed, 1);
    s_env_destroy(&t);

    //  A close without a code, then the socket's end at once.
    t = s_env_new(NULL, NULL, 0);
    s_send(t, true, 0x8, true, "", 0);
    shutdown(t->cfd, SHUT_WR);
    T_WAIT(t, T_DEADLINE, t->closed == 1);
    assert_int_equal(t->code, 1005);
    s_env_destroy(&t);
}

static void
test_close_by_server(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    assert_int_equal(gw_ws_send_text(t->ws, "last", 4), 0);
    gw_ws_close(t->ws, 1001, "drain");
    gw_ws_close(t->ws, 1000, "again"); // ignored
    assert_int_equal(gw_ws_send_text(t->ws, "late", 4), -1);
    assert_int_equal(errno, EPIPE);
    s_expect(t, 0x1, "last", 4); // queued before the close: still sent
    s_expect(t, 0x8,
             "\x03\xe9"
             "drain",
             7);
    //  The client still talks before answering: no more on_text.
    s_send(t, true, 0x1, true, "x", 1);
    for (int i = 0; i < 5; i++)
        ev_run(t->loop, EVRUN_NOWAIT);
    assert_int_equal(t->closed, 0);
    assert_int_equal(t->texts, 0);
    s_send_close(t, 1001, "");
    T_WAIT(t, T_DEADLINE, t->closed == 1 && t->cfd_eof);
    assert_int_equal(t->code, 1001);
    assert_string_equal(t->why, "closed by server");
    s_env_destroy(&t);

    //  The client vanishes instead of answering.
    t = s_env_new(NULL, NULL, 0);
    gw_ws_close(t->ws, 1000, NULL);
    s_expect_close(t, 1000);
    close(t->cfd);
    t->cfd = -1;
    ev_io_stop(t->loop, &t->cio);
    T_WAIT(t, T_DEADLINE, t->closed == 1);
    assert_int_equal(t->code, GW_WS_ABNORMAL);
    s_env_destroy(&t);
}

static void
test_client_vanishes(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    s_send(t, false, 0x1, true, "half", 4); // in the middle of a message
    ev_run(t->loop, EVRUN_NOWAIT);
    ev_io_stop(t->loop, &t->cio);
    close(t->cfd);
    t->cfd = -1;
    T_WAIT(t, T_DEADLINE, t->closed == 1);
    assert_int_equal(t->code, GW_WS_ABNORMAL);
    assert_string_equal(t->why, "peer gone");
    assert_int_equal(t->texts, 0);
    s_env_destroy(&t);
}

static void
test_pending_bytes(void **state)
{
    (void) state;
    uint8_t buf[64];
    size_t n = s_frame(buf, true, 0x1, true, "early", 5);
    size_t m = s_frame(buf + n, true, 0x1, true, "second", 6);
    //  The first frame and half of the second came with the request head.
    size_t cut = n + m / 2;
    t_env_t *t = s_env_new(NULL, buf, cut);
    T_WAIT(t, 0.5, t->texts == 1); // on the first turns, not at the next ping
    assert_memory_equal(t->text, "early", 5);
    assert_int_equal(write(t->cfd, buf + cut, n + m - cut), (ssize_t) (n + m - cut));
    T_WAIT(t, T_DEADLINE, t->texts == 2);
    assert_int_equal(t->text_len, 6);
    assert_memory_equal(t->text, "second", 6);
    s_env_destroy(&t);
}

static void
test_send_bounded(void **state)
{
    (void) state;
    gw_ws_config_t cfg = s_cfg;
    cfg.max_queued = 10;
    t_env_t *t = s_env_new(&cfg, NULL, 0);
    assert_int_equal(gw_ws_send_text(t->ws, "12345678", 8), 0);
    assert_int_equal(gw_ws_send_text(t->ws, "12345678", 8), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(gw_ws_send_text(t->ws, "12", 2), 0); // exactly the bound
    assert_int_equal(gw_ws_queued(t->ws), 10);
    s_expect(t, 0x1, "12345678", 8);
    s_expect(t, 0x1, "12", 2);
    assert_int_equal(gw_ws_queued(t->ws), 0);
    assert_int_equal(gw_ws_send_text(t->ws, "12345678", 8), 0);
    s_expect(t, 0x1, "12345678", 8);
    s_env_destroy(&t);
}

static void
test_accept_key(void **state)
{
    (void) state;
    char out[GW_WS_ACCEPT_LEN + 1];
    const char *key = "dGhlIHNhbXBsZSBub25jZQ==";
    assert_int_equal(gw_ws_accept_key(key, strlen(key), out), 0);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    const char *bad[] = {
        "",
        "dGhlIHNhbXBsZSBub25jZQ=",    // short
        "dGhlIHNhbXBsZSBub25jZQ===",  // long
        "dGhlIHNhbXBsZSBub25jZQ==  ", // untrimmed
        "dGhlIHNhbXBsZSBub25jZQAA",   // no padding: 18 bytes
        "dGhlIHNhbXBsZSBub25jZR==",   // bits past the 16th byte
        "dGhlIHNhbXBs*SBub25jZQ==",   // not base64
        "dGhlIHNhbXBsZSBub25j=Q==",   // padding inside
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(gw_ws_accept_key(bad[i], strlen(bad[i]), out), -1);
    assert_int_equal(gw_ws_accept_key("dGhlIHNhbXBsZSBu\0025jZQ==", 24, out), -1); // NUL inside
    assert_int_equal(gw_ws_accept_key(NULL, 24, out), -1);
}

//  Memory of an idle session: what the allocator holds per session (ours
//  and wslay's), measured over many sessions on a real loop.
//  An idle session holds no wslay context; half a frame, an open
//  fragmented message or a queued message keep it; a fresh one made on the
//  next byte carries on exactly where the old one stopped.
static void
test_idle_gives_the_context_back(void **state)
{
    (void) state;
    t_env_t *t = s_env_new(NULL, NULL, 0);
    ev_run(t->loop, EVRUN_NOWAIT);
    assert_true(gw_ws_idle(t->ws));
    //  a frame in two pieces: the first leaves half a frame read
    uint8_t buf[64];
    size_t n = s_frame(buf, true, 0x1, true, "hello", 5);
    assert_int_equal(write(t->cfd, buf, 3), 3);
    T_WAIT(t, T_DEADLINE, !gw_ws_idle(t->ws));
    ev_run(t->loop, EVRUN_NOWAIT);
    assert_false(gw_ws_idle(t->ws));
    assert_int_equal(write(t->cfd, buf + 3, n - 3), (ssize_t) (n - 3));
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    assert_memory_equal(t->text, "hello", 5);
    T_WAIT(t, T_DEADLINE, gw_ws_idle(t->ws));
    //  a fragmented message: open after its first fragment, done after FIN
    s_send(t, false, 0x1, true, "frag", 4);
    T_WAIT(t, T_DEADLINE, !gw_ws_idle(t->ws));
    ev_run(t->loop, EVRUN_NOWAIT);
    assert_false(gw_ws_idle(t->ws));
    s_send(t, true, 0x9, true, "p", 1); // a ping between fragments
    s_expect(t, 0xa, "p", 1);
    assert_false(gw_ws_idle(t->ws));
    s_send(t, true, 0x0, true, "ment", 4);
    T_WAIT(t, T_DEADLINE, t->texts == 2);
    assert_int_equal(t->text_len, 8);
    assert_memory_equal(t->text, "fragment", 8);
    T_WAIT(t, T_DEADLINE, gw_ws_idle(t->ws));
    //  a message for the client wakes it; once written it sleeps again
    assert_int_equal(gw_ws_send_text(t->ws, "world", 5), 0);
    assert_false(gw_ws_idle(t->ws));
    s_expect(t, 0x1, "world", 5);
    T_WAIT(t, T_DEADLINE, gw_ws_idle(t->ws));
    //  bad bytes after sleeping are still refused (a fresh context checks too)
    s_send(t, true, 0x1, false, "nomask", 6);
    s_expect_failed(t, 1002);
    s_env_destroy(&t);
}

static void
test_memory_per_session(void **state)
{
    (void) state;
#ifdef T_HAVE_ALLOC_STATS
    enum { N = 500 };
    struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
    static gw_ws_t *ws[N];
    static int peer[N];
    gw_ws_callbacks_t cb = {.on_text = s_on_text, .on_closed = s_on_closed, .arg = NULL};
    size_t before = __sanitizer_get_current_allocated_bytes();
    for (int i = 0; i < N; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
        ws[i] = gw_ws_new(loop, sv[0], &s_cfg, &cb, NULL, 0);
        assert_non_null(ws[i]);
        peer[i] = sv[1];
    }
    ev_run(loop, EVRUN_NOWAIT);
    size_t after = __sanitizer_get_current_allocated_bytes();
    size_t per = (after - before) / N;
    print_message("gw_ws: %zu bytes allocated per idle session (%zu sessions)\n", per, (size_t) N);
    for (int i = 0; i < N; i++)
        assert_true(gw_ws_idle(ws[i]));
    assert_true(per < 1024); // wslay's context (about 9 KiB) is not kept while idle
    for (int i = 0; i < N; i++) {
        gw_ws_destroy(&ws[i]);
        close(peer[i]);
    }
    ev_loop_destroy(loop);
#else
    fail_msg("built without AddressSanitizer's allocator statistics: the tests are built "
             "with it (Makefile), so this test must be too");
#endif
}

//  A session over an I/O layer: frames both ways through it, written a few
//  bytes at a time, a ping, a protocol error answered through the layer,
//  and the end: io->close ends the layer with the socket (once); detached,
//  neither is touched.
static void
test_io_layer(void **state)
{
    (void) state;
    t_io_t *io = calloc(1, sizeof *io);
    assert_non_null(io);
    io->write_max = 7; // partial writes: frames cut anywhere
    io->give_max = 3;  // and read a few bytes at a time
    t_env_t *t = s_env_new_io(NULL, io, NULL, 0);
    s_send(t, true, 0x1, true, "hello", 5);
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    assert_memory_equal(t->text, "hello", 5);
    char big[3000];
    memset(big, 'b', sizeof big);
    assert_int_equal(gw_ws_send_text(t->ws, big, sizeof big), 0);
    s_expect(t, 0x1, big, sizeof big);
    s_send(t, true, 0x9, true, "p", 1);
    s_expect(t, 0xa, "p", 1);
    assert_true(io->sends > (int) sizeof big / 7);
    s_send_close(t, 1000, "");
    s_expect_close(t, 1000);
    T_WAIT(t, T_DEADLINE, t->closed == 1 && t->cfd_eof);
    assert_int_equal(io->closes, 1); // gw_ws_destroy in on_closed
    s_env_destroy(&t);

    //  1002 goes out through the layer too
    memset(io, 0, sizeof *io);
    t = s_env_new_io(NULL, io, NULL, 0);
    s_send(t, true, 0x1, false, "nomask", 6);
    s_expect_failed(t, 1002);
    assert_int_equal(io->closes, 1);
    s_env_destroy(&t);

    //  detached: the socket and the layer go back to the caller untouched
    memset(io, 0, sizeof *io);
    t = s_env_new_io(NULL, io, NULL, 0);
    s_send(t, true, 0x1, true, "x", 1);
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    int fd = gw_ws_detach(&t->ws);
    assert_true(fd >= 0);
    assert_int_equal(io->closes, 0);
    assert_int_equal(write(fd, "z", 1), 1); // still open
    close(fd);
    s_env_destroy(&t);
    free(io);
}

//  Bytes the layer holds that the socket will never announce: a whole frame
//  of 200 KiB read ahead before the session starts (the socket is silent).
//  The first turn reads them (as pending request bytes); past the read
//  budget (64 KiB a turn) only the session's own feed brings the rest.
static void
test_io_layer_holds_bytes(void **state)
{
    (void) state;
    t_io_t *io = calloc(1, sizeof *io);
    assert_non_null(io);
    static uint8_t msg[200 * 1024];
    memset(msg, 'm', sizeof msg);
    io->len = s_frame(io->held, true, 0x1, true, msg, sizeof msg);
    io->len += s_frame(io->held + io->len, true, 0x1, true, "after", 5);
    t_env_t *t = s_env_new_io(NULL, io, NULL, 0);
    T_WAIT(t, 0.5, t->texts == 2); // on the first turns, not at the next ping
    assert_int_equal(t->text_len, 5);
    assert_memory_equal(t->text, "after", 5);
    //  and with request bytes too: those first, then the layer's
    uint8_t early[32];
    size_t n = s_frame(early, true, 0x1, true, "early", 5);
    s_env_destroy(&t);
    memset(io, 0, sizeof *io);
    io->len = s_frame(io->held, true, 0x1, true, "late", 4);
    t = s_env_new_io(NULL, io, early, n);
    T_WAIT(t, 0.5, t->texts == 2);
    assert_memory_equal(t->text, "late", 4);
    s_env_destroy(&t);
    free(io);
}

//  A read that waits for writability is retried from the write watcher; a
//  write that waits for readability from the read watcher, with the same
//  bytes, and the session does not spin meanwhile.
static void
test_io_layer_wants(void **state)
{
    (void) state;
    t_io_t *io = calloc(1, sizeof *io);
    assert_non_null(io);
    t_env_t *t = s_env_new_io(NULL, io, NULL, 0);
    io->read_waits_write = 1;
    s_send(t, true, 0x1, true, "w1", 2);
    T_WAIT(t, T_DEADLINE, t->texts == 1);
    assert_memory_equal(t->text, "w1", 2);
    io->write_waits_read = 1;
    assert_int_equal(gw_ws_send_text(t->ws, "r1", 2), 0);
    for (int i = 0; i < 5; i++)
        ev_run(t->loop, EVRUN_NOWAIT);
    assert_int_equal(t->in_len, 0); // refused: it waits for the socket to be readable
    int calls = io->calls;
    for (int i = 0; i < 20; i++)
        ev_run(t->loop, EVRUN_NOWAIT);
    assert_int_equal(io->calls, calls); // no spinning on a writable socket
    s_send(t, true, 0x9, true, "x", 1); // readable: the write goes on
    s_expect(t, 0x1, "r1", 2);
    s_expect(t, 0xa, "x", 1);
    assert_int_equal(io->refused_len, 0); // repeated, and with the same bytes
    assert_int_equal(t->closed, 0);
    s_env_destroy(&t);
    free(io);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_round_trip),
        cmocka_unit_test(test_fragments_and_ping),
        cmocka_unit_test(test_unmasked_is_1002),
        cmocka_unit_test(test_invalid_utf8_is_1007),
        cmocka_unit_test(test_binary_is_1003),
        cmocka_unit_test(test_too_big_is_1009),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_close_by_client),
        cmocka_unit_test(test_close_by_server),
        cmocka_unit_test(test_client_vanishes),
        cmocka_unit_test(test_pending_bytes),
        cmocka_unit_test(test_send_bounded),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_idle_gives_the_context_back),
        cmocka_unit_test(test_memory_per_session),
        cmocka_unit_test(test_io_layer),
        cmocka_unit_test(test_io_layer_holds_bytes),
        cmocka_unit_test(test_io_layer_wants),
    };
    return cmocka_run_group_tests_name("gw_ws", tests, NULL, NULL);
}
