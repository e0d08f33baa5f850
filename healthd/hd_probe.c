/*  hd_probe - one non-blocking probe on the loop (see hd_probe.h). */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hd_probe.h"
#include "proto_util.h"

int
hd_probe_status_line(const char *buf, size_t len, int *status)
{
    static const char prefix[] = "HTTP/1.";
    // "HTTP/1.x SP DDD" is 12 bytes: check what we have of it
    for (size_t i = 0; i < len && i < 12; i++) {
        char c = buf[i];
        bool ok = i < 7    ? c == prefix[i]
                  : i == 7 ? (c == '0' || c == '1')
                  : i == 8 ? c == ' '
                           : (c >= '0' && c <= '9');
        if (!ok)
            return -1;
    }
    if (len < 12)
        return 0;
    if (buf[9] == '0')
        return -1; // 0xx is not a status
    size_t i = 12;
    if (i < len && buf[i] == ' ') {
        // the reason phrase: HTAB, SP, VCHAR, obs-text
        for (i++; i < len && buf[i] != '\r'; i++) {
            unsigned char c = (unsigned char) buf[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f)
                return -1;
        }
    }
    if (i >= len)
        return len >= HD_PROBE_LINE_MAX ? -1 : 0;
    if (buf[i] != '\r')
        return -1;
    if (i + 1 >= len)
        return len >= HD_PROBE_LINE_MAX ? -1 : 0;
    if (buf[i + 1] != '\n')
        return -1;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    return 1;
}

bool
hd_probe_status_ok(int status)
{
    return status >= 200 && status <= 399;
}

static bool
s_token_ok(const char *s)
{
    for (; *s; s++)
        if ((unsigned char) *s <= 0x20 || *s == 0x7f)
            return false;
    return true;
}

size_t
hd_probe_request(char *out, size_t cap, const char *path, const char *host)
{
    if (path == NULL || path[0] != '/' || host == NULL || host[0] == '\0' || !s_token_ok(path)
        || !s_token_ok(host))
        return 0;
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: switchyard-healthd\r\n"
                     "Connection: close\r\n\r\n",
                     path, host);
    return n > 0 && (size_t) n < cap ? (size_t) n : 0;
}

static void
s_close(hd_probe_t *p)
{
    ev_io_stop(p->loop, &p->io);
    ev_timer_stop(p->loop, &p->timer);
    if (p->fd >= 0)
        close(p->fd);
    p->fd = -1;
}

//  Close and report (the callback may start the probe again).
static void
s_finish(hd_probe_t *p, hd_probe_result_t result, const char *reason, int status)
{
    s_close(p);
    p->active = false;
    p->fn(p, result, reason, status, p->arg);
}

//  An outcome known at start: delivered from the loop, never re-entrantly.
static void
s_defer(hd_probe_t *p, hd_probe_result_t result, const char *reason)
{
    s_close(p);
    p->result = result;
    p->reason = reason;
    p->status = 0;
    ev_timer_set(&p->timer, 0., 0.);
    ev_timer_start(p->loop, &p->timer);
}

static const char *
s_errno_reason(int err, hd_probe_result_t *result)
{
    *result = err == ECONNREFUSED ? HD_PROBE_REFUSED : HD_PROBE_FAILED;
    return proto_errno_reason(err);
}

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    hd_probe_t *p = w->data;
    if (p->fd >= 0)
        s_finish(p, HD_PROBE_FAILED, "timeout", 0);
    else
        s_finish(p, p->result, p->reason, p->status);
}

static void
s_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    hd_probe_t *p = w->data;
    hd_probe_result_t result;
    if (!p->connected) {
        int err = 0;
        socklen_t len = sizeof err;
        if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
        if (err != 0) {
            const char *reason = s_errno_reason(err, &result);
            s_finish(p, result, reason, 0);
            return;
        }
        p->connected = true;
        if (p->req_len == 0) {
            s_finish(p, HD_PROBE_OK, "connected", 0);
            return;
        }
    }
    if (p->req_off < p->req_len) {
        ssize_t n = send(p->fd, p->req + p->req_off, p->req_len - p->req_off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return;
        if (n <= 0) {
            const char *reason = s_errno_reason(errno, &result);
            s_finish(p, HD_PROBE_FAILED, reason, 0);
            return;
        }
        p->req_off += (size_t) n;
        if (p->req_off == p->req_len) {
            ev_io_stop(p->loop, &p->io);
            ev_io_set(&p->io, p->fd, EV_READ);
            ev_io_start(p->loop, &p->io);
        }
        return;
    }
    ssize_t n = recv(p->fd, p->line + p->line_len, sizeof p->line - p->line_len, 0);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return;
    if (n < 0) {
        (void) s_errno_reason(errno, &result);
        s_finish(p, HD_PROBE_FAILED, errno == ECONNRESET ? "reset" : "read error", 0);
        return;
    }
    if (n == 0) {
        s_finish(p, HD_PROBE_FAILED, "closed", 0);
        return;
    }
    p->line_len += (size_t) n;
    int status = 0;
    int rc = hd_probe_status_line(p->line, p->line_len, &status);
    if (rc < 0) {
        s_finish(p, HD_PROBE_FAILED, "bad response", 0);
    } else if (rc > 0) {
        if (hd_probe_status_ok(status)) {
            s_finish(p, HD_PROBE_OK, "ok", status);
        } else {
            snprintf(p->reason_buf, sizeof p->reason_buf, "status %d", status);
            s_finish(p, HD_PROBE_FAILED, p->reason_buf, status);
        }
    }
}

void
hd_probe_init(hd_probe_t *p, struct ev_loop *loop)
{
    memset(p, 0, sizeof *p);
    p->loop = loop;
    p->fd = -1;
    ev_init(&p->io, s_on_io);
    p->io.data = p;
    ev_init(&p->timer, s_on_timer);
    p->timer.data = p;
}

void
hd_probe_start(hd_probe_t *p,
               const struct sockaddr *addr,
               socklen_t addrlen,
               const char *request,
               size_t request_len,
               int64_t timeout_ms,
               hd_probe_fn *fn,
               void *arg)
{
    p->fn = fn;
    p->arg = arg;
    p->active = true;
    p->connected = false;
    p->req_off = 0;
    p->line_len = 0;
    p->req_len = 0;
    if (request && request_len > 0 && request_len <= sizeof p->req) {
        memcpy(p->req, request, request_len);
        p->req_len = request_len;
    }
    if (addr->sa_family == AF_UNSPEC) {
        s_defer(p, HD_PROBE_FAILED, "unresolved");
        return;
    }
    p->fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (p->fd < 0) {
        s_defer(p, HD_PROBE_FAILED, "no socket");
        return;
    }
    int one = 1;
    (void) setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(p->fd, addr, addrlen) != 0 && errno != EINPROGRESS) {
        hd_probe_result_t result;
        const char *reason = s_errno_reason(errno, &result);
        s_defer(p, result, reason);
        return;
    }
    ev_io_set(&p->io, p->fd, EV_WRITE);
    ev_io_start(p->loop, &p->io);
    ev_timer_set(&p->timer, (double) timeout_ms / 1000.0, 0.);
    ev_timer_start(p->loop, &p->timer);
}

void
hd_probe_cancel(hd_probe_t *p)
{
    s_close(p);
    p->active = false;
}
