/*  hd_probe - one active probe on the loop: a non-blocking TCP connect, then
    (HTTP probes) `GET <path>` with `Connection: close` and the status line
    read strictly, bounded by a timeout. Nothing else of the answer is read.

    The result is one of: success (2xx/3xx, or TCP connected), refused
    (ECONNREFUSED), or another failure (timeout, reset, any other status, a
    malformed or missing status line).
*/
#ifndef HD_PROBE_H
#define HD_PROBE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include <ev.h>

#define HD_PROBE_LINE_MAX 256  // bytes of the status line read at most
#define HD_PROBE_REQ_MAX  1024 // bytes of the request

typedef enum {
    HD_PROBE_OK,      // healthy
    HD_PROBE_FAILED,  // unhealthy: timeout, reset, status, bad answer
    HD_PROBE_REFUSED, // connection refused
} hd_probe_result_t;

//  Parse an HTTP/1.x status line at the start of buf (len bytes read so
//  far): "HTTP/1.0" or "HTTP/1.1", one space, three digits, then a space and
//  a reason phrase (no control characters) or nothing, then CRLF. Returns 1
//  with *status set when complete, 0 when more bytes are needed (and len <
//  HD_PROBE_LINE_MAX), -1 when malformed or too long.
int hd_probe_status_line(const char *buf, size_t len, int *status);

//  True for the statuses that mean healthy: 200-399 (seed 002).
bool hd_probe_status_ok(int status);

//  Write the probe request into out (cap bytes): GET path, Host: host,
//  Connection: close. path must start with '/' and host be non-empty, both
//  without control characters or spaces. Returns the length, or 0 if invalid
//  or too long.
size_t hd_probe_request(char *out, size_t cap, const char *path, const char *host);

typedef struct hd_probe hd_probe_t;

//  The probe's outcome; reason is a short borrowed string ("refused",
//  "timeout", "reset", "status 500", ...); status is the HTTP status or 0.
typedef void(hd_probe_fn)(
    hd_probe_t *probe, hd_probe_result_t result, const char *reason, int status, void *arg);

struct hd_probe {
    struct ev_loop *loop;         // our loop
    ev_io io;                     // connect/write/read readiness
    ev_timer timer;               // the timeout (and deferred outcomes)
    int fd;                       // the socket, -1 when idle
    bool active;                  // started, outcome not delivered yet
    char req[HD_PROBE_REQ_MAX];   // request (HTTP), empty for TCP
    size_t req_len;               // its length (0: TCP probe)
    size_t req_off;               // bytes written
    char line[HD_PROBE_LINE_MAX]; // the answer's first bytes
    size_t line_len;              // bytes read
    bool connected;               // connect completed
    hd_probe_result_t result;     // deferred outcome
    const char *reason;           // ...
    int status;                   // ...
    char reason_buf[16];          // "status NNN"
    hd_probe_fn *fn;              // outcome callback
    void *arg;                    // its argument
};

//  Initialise an idle probe (once).
void hd_probe_init(hd_probe_t *probe, struct ev_loop *loop);

//  Start: connect to addr and, when request is not NULL, send it and read
//  the status line; fn is called exactly once (never from inside this call)
//  unless hd_probe_cancel is called first. The probe must be idle.
void hd_probe_start(hd_probe_t *probe,
                    const struct sockaddr *addr,
                    socklen_t addrlen,
                    const char *request,
                    size_t request_len,
                    int64_t timeout_ms,
                    hd_probe_fn *fn,
                    void *arg);

//  Stop a probe in flight without calling fn (safe when idle).
void hd_probe_cancel(hd_probe_t *probe);

#endif
