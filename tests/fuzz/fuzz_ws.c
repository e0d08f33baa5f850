/*  fuzz_ws - libFuzzer target for gw_ws, the gateway's chat WebSocket.

    The input is what a client sends after the 101: bytes into a gw_ws on
    one end of a socketpair, on a real libev loop. The first byte chooses
    how many bytes come as the request head's leftovers (pending), whether
    the client half-closes at the end and whether the gateway starts a close;
    the rest is written in pieces (sizes from a hash of the input), the loop
    turning (EVRUN_NOWAIT, a bounded number of times) after each. The client
    end is drained so that the gateway's writes never block. Checks: no
    crash, no leak, on_text only ever sees valid UTF-8 (a decoder of its
    own, not gw_ws's) of at most max_message bytes, on_closed at most once
    and nothing after it. gw_ws_accept_key runs on the first 24 bytes.
    Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <ev.h>

#include "gw_ws.h"

#define S_MAX_MESSAGE 4096 // small, so that 1009 is reached
#define S_TURNS       64   // loop turns after the last piece

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    gw_ws_t *ws; // the session
    int texts;   // on_text calls
    int closed;  // on_closed calls
    bool gone;   // destroyed in on_closed
} s_state_t;

//  Strict UTF-8 by decoding: each sequence gives a code point that must be
//  in the range its length allows, not a surrogate, at most U+10FFFF.
static bool
s_utf8(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint32_t cp = s[i];
        size_t more;
        uint32_t min;
        if (cp < 0x80) {
            i++;
            continue;
        } else if ((cp & 0xe0) == 0xc0) {
            more = 1, min = 0x80, cp &= 0x1f;
        } else if ((cp & 0xf0) == 0xe0) {
            more = 2, min = 0x800, cp &= 0x0f;
        } else if ((cp & 0xf8) == 0xf0) {
            more = 3, min = 0x10000, cp &= 0x07;
        } else {
            return false;
        }
        if (more > len - i - 1)
            return false;
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += more + 1;
    }
    return true;
}

static void
s_on_text(gw_ws_t *ws, const uint8_t *data, size_t len, void *arg)
{
    s_state_t *st = arg;
    if (st->gone || st->closed || len > S_MAX_MESSAGE || !s_utf8(data, len))
        abort();
    st->texts++;
    (void) gw_ws_send_text(ws, data, len); // echo: the write path too
}

static void
s_on_closed(gw_ws_t *ws, uint16_t code, const char *why, void *arg)
{
    s_state_t *st = arg;
    if (ws != st->ws || st->closed || why == NULL || code < 1000)
        abort();
    st->closed++;
    gw_ws_destroy(&st->ws);
    st->gone = true;
}

static void
s_drain(int fd)
{
    uint8_t buf[4096];
    for (int i = 0; i < 16 && read(fd, buf, sizeof buf) > 0; i++)
        ;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct ev_loop *loop;
    if (loop == NULL)
        loop = ev_loop_new(EVFLAG_AUTO);
    if (size >= 24) {
        char out[GW_WS_ACCEPT_LEN + 1];
        if (gw_ws_accept_key((const char *) data, 24, out) == 0 && strlen(out) != GW_WS_ACCEPT_LEN)
            abort();
    }
    if (size < 1)
        return 0;
    uint8_t ctl = data[0];
    data++;
    size--;
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) != 0)
        abort();
    size_t pending = (size_t) (ctl & 0x1f);
    if (pending > size)
        pending = size;
    s_state_t st = {0};
    gw_ws_config_t cfg = {
        .ping_interval = 0, .idle_timeout = 0, .max_message = S_MAX_MESSAGE, .max_queued = 1 << 16};
    gw_ws_callbacks_t cb = {.on_text = s_on_text, .on_closed = s_on_closed, .arg = &st};
    st.ws = gw_ws_new(loop, sv[0], &cfg, &cb, data, pending);
    if (st.ws == NULL)
        abort();
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 16777619u;
    size_t off = pending;
    while (off < size && !st.gone) {
        h = h * 1103515245u + 12345u;
        size_t piece = 1 + (h >> 16) % 97;
        if (piece > size - off)
            piece = size - off;
        ssize_t n = write(sv[1], data + off, piece);
        if (n > 0)
            off += (size_t) n;
        ev_run(loop, EVRUN_NOWAIT);
        s_drain(sv[1]);
        if (n <= 0 && !st.gone) { // the socket is full: let the gateway read
            ev_run(loop, EVRUN_NOWAIT);
            if (write(sv[1], data + off, 1) <= 0)
                break; // it does not read any more (closing)
            off++;
        }
    }
    if (!st.gone && (ctl & 0x20))
        gw_ws_close(st.ws, 1001, "drain");
    if (ctl & 0x40)
        shutdown(sv[1], SHUT_WR);
    for (int i = 0; i < S_TURNS && !st.gone; i++) {
        ev_run(loop, EVRUN_NOWAIT);
        s_drain(sv[1]);
    }
    gw_ws_destroy(&st.ws);
    close(sv[1]);
    return 0;
}
