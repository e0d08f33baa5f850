/*  cli_run - `switchyard run`: the whole stack in the foreground (make run).

    Starts a private redis-server (unless REDIS_URL is set or --no-redis),
    one of each actor and the two demo backends (Server A, region 1, and
    Server B, region 2), prints every line they write prefixed with their
    name, waits for the gateway's GET /ready, installs the demo routes over
    the control API, and prints the URLs and the curl lines to try.

    HTTPS: the gateway gets GATEWAY_HTTPS_ADDR (run's default :8443; off
    with RUN_NO_HTTPS, as an address setting cannot be emptied). A listener
    without a certificate fails every handshake, so after /ready, when
    GET /api/v1/certificates lists no certificate of domain "*" (the default
    for any SNI name and for clients that send none), a self-signed one for
    localhost (cli_cert) is POSTed as that default. Whatever is stored
    already is kept, never replaced: the store outlives a restart, and an
    operator's own certificate wins. This happens with RUN_NO_DEMO too
    (HTTPS needs a certificate whatever the routes), but not with
    RUN_NO_HTTPS. A list that cannot be read installs nothing. With a shared
    store (DATABASE_URL) the default is shared too: set RUN_NO_HTTPS, or
    store a real "*" first. A GATEWAY_HTTPS_ADDR in .env still reaches the
    gateway under RUN_NO_HTTPS (the gateway reads .env itself).

    Binaries come from the directory of this switchyard binary, so
    build/asan/bin/switchyard runs the sanitizer build. Every child is in our
    process group, dies with us (PR_SET_PDEATHSIG) and is never restarted: an
    exit is reported and the others keep running. SIGINT, SIGTERM or SIGHUP
    sends each child one SIGTERM, SIGKILLs whatever is left after
    GATEWAY_DRAIN_TIMEOUT plus 2 s, reaps everything and exits 0.

    Children start with SIGINT blocked: a terminal's Ctrl-C goes to the whole
    foreground process group, and a gateway that saw both that SIGINT and our
    SIGTERM would take the second signal as "stop now" and cut its drain short.

    One libev loop (the default one, which ev_child needs), no threads. The
    only blocking calls are the short, bounded HTTP requests to the admin
    listener on loopback while the stack starts.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ev.h>
#include <jansson.h>

#include "cli.h"
#include "cli_cert.h"
#include "proto.h"
#include "proto_util.h"

#define S_MAX_CHILDREN    12
#define S_LINE_MAX        8192 // a longer line is printed in pieces
#define S_TICK_S          0.1  // how often start-up conditions are polled
#define S_REDIS_WAIT_MS   5000 // how long redis-server may take to accept
#define S_HTTP_TIMEOUT_MS 2000 // one admin request (/ready itself waits up to 1 s)
#define S_KILL_GRACE_MS   2000 // after the drain timeout, before SIGKILL
#define S_REPLY_MAX       16384
#define S_CERTS_PATH      "/api/v1/certificates"

typedef struct {
    cli_bus_config_t bus;    // BUS_DIR, BUS_PEERS_<KIND>
    char *redis_url;         // REDIS_URL, NULL: start a private redis-server
    proto_addr_t http_addr;  // GATEWAY_HTTP_ADDR
    proto_addr_t https_addr; // GATEWAY_HTTPS_ADDR (unless no_https)
    proto_addr_t admin_addr; // GATEWAY_ADMIN_ADDR
    char *admin_token;       // ADMIN_TOKEN, or NULL
    int64_t drain_ms;        // GATEWAY_DRAIN_TIMEOUT
    int log_format;          // LOG_FORMAT: -1 unset, 0 json, 1 pretty
    bool no_demo;            // no demo backends, no demo routes
    bool no_redis;           // no private redis-server
    bool no_https;           // no HTTPS listener, no default certificate
    int64_t demo_port_a;     // Server A's port
    int64_t demo_port_b;     // Server B's port
    int64_t ready_ms;        // how long to wait for /ready (and the routes)
} s_config_t;

static const proto_cfg_opt_t s_opts[] = {
    {"REDIS_URL", "redis-url", PROTO_CFG_STR, NULL,
     "use this Redis instead of starting a private redis-server", offsetof(s_config_t, redis_url),
     0, 0, NULL, PROTO_CFG_SECRET},
    {"GATEWAY_HTTP_ADDR", "http-addr", PROTO_CFG_ADDR, "0.0.0.0:8080", "public HTTP listener",
     offsetof(s_config_t, http_addr), 0, 0, NULL, 0},
    {"GATEWAY_HTTPS_ADDR", "https-addr", PROTO_CFG_ADDR, "0.0.0.0:8443",
     "public HTTPS listener; a self-signed certificate for localhost becomes the default (domain "
     "*) when the store has none",
     offsetof(s_config_t, https_addr), 0, 0, NULL, 0},
    {"GATEWAY_ADMIN_ADDR", "admin-addr", PROTO_CFG_ADDR, "127.0.0.1:9000",
     "admin listener (waited on; the demo routes are installed through it)",
     offsetof(s_config_t, admin_addr), 0, 0, NULL, 0},
    {"ADMIN_TOKEN", "admin-token", PROTO_CFG_STR, NULL,
     "sent as Authorization: Bearer when installing the demo routes and the certificate",
     offsetof(s_config_t, admin_token), 0, 0, NULL, PROTO_CFG_SECRET},
    {"GATEWAY_DRAIN_TIMEOUT", "drain-timeout", PROTO_CFG_DURATION0, "10s",
     "on Ctrl-C, how long children may take to stop before SIGKILL (plus 2s)",
     offsetof(s_config_t, drain_ms), 0, 0, NULL, 0},
    {"LOG_FORMAT", "log-format", PROTO_CFG_ENUM, NULL,
     "the children's log format (default: pretty when stdout is a terminal)",
     offsetof(s_config_t, log_format), 0, 0, "json|pretty", 0},
    {"RUN_NO_DEMO", "no-demo", PROTO_CFG_BOOL, "false",
     "start no demo backends and install no demo routes", offsetof(s_config_t, no_demo), 0, 0, NULL,
     0},
    {"RUN_NO_REDIS", "no-redis", PROTO_CFG_BOOL, "false",
     "start no redis-server (chat needs one: set REDIS_URL)", offsetof(s_config_t, no_redis), 0, 0,
     NULL, 0},
    {"RUN_NO_HTTPS", "no-https", PROTO_CFG_BOOL, "false",
     "no HTTPS listener (GATEWAY_HTTPS_ADDR ignored) and no self-signed certificate",
     offsetof(s_config_t, no_https), 0, 0, NULL, 0},
    {"RUN_DEMO_PORT_A", "demo-port-a", PROTO_CFG_INT, "4001", "port of demo Server A (region 1)",
     offsetof(s_config_t, demo_port_a), 1, 65535, NULL, 0},
    {"RUN_DEMO_PORT_B", "demo-port-b", PROTO_CFG_INT, "4002", "port of demo Server B (region 2)",
     offsetof(s_config_t, demo_port_b), 1, 65535, NULL, 0},
    {"RUN_READY_TIMEOUT", "ready-timeout", PROTO_CFG_DURATION, "30s",
     "how long to wait for the gateway's /ready (and then for the demo routes)",
     offsetof(s_config_t, ready_ms), 0, 0, NULL, 0},
};

typedef struct s_run s_run_t;
typedef struct s_child s_child_t;

//  One output pipe of a child: bytes are collected until a newline.
typedef struct {
    ev_io io;             // the read end (io.fd); io.data is this stream
    s_child_t *child;     // whose output this is
    FILE *dst;            // stdout or stderr
    bool open;            // the fd is still ours
    size_t len;           // bytes waiting in buf
    char buf[S_LINE_MAX]; // the line so far
} s_stream_t;

//  One supervised process.
struct s_child {
    s_run_t *run;         // the supervisor
    char name[16];        // log prefix
    int color;            // ANSI colour of the prefix
    char path[PATH_MAX];  // program: absolute, or a name looked up in PATH
    const char *argv[24]; // arguments, argv[0] = path, NULL-terminated
    char port[8];         // --port's value (redis, demo backends)
    const char *region;   // REGION of this one (the demo's second chatd), NULL: the shared one
    pid_t pid;            // running process, 0 when none
    ev_child exit_w;      // its exit
    s_stream_t out;       // its stdout
    s_stream_t err;       // its stderr
};

typedef enum {
    S_PHASE_REDIS = 0, // waiting for redis-server to accept
    S_PHASE_READY,     // waiting for GET /ready
    S_PHASE_ROUTES,    // installing the demo routes and the default certificate
    S_PHASE_RUNNING,   // up; nothing to poll
    S_PHASE_STOPPING,  // children were sent SIGTERM
} s_phase_t;

struct s_run {
    const s_config_t *cfg;              // settings
    struct ev_loop *loop;               // the default loop
    char bin_dir[PATH_MAX / 2];         // where this binary and the actors are
    char cli_path[PATH_MAX];            // how to call switchyard in the printed lines
    s_child_t children[S_MAX_CHILDREN]; // everything started
    size_t nchildren;                   // entries used
    s_child_t *redis;                   // the private redis-server, or NULL
    s_child_t *gateway;                 // the gateway
    uint16_t redis_port;                // its port
    int width;                          // prefix width
    bool color_out;                     // colour the prefixes on stdout
    bool color_err;                     // and on stderr
    s_phase_t phase;                    // where start-up is
    uint64_t deadline_ms;               // of the current phase
    bool routes_done[2];                // demo route answered (localhost, 127.0.0.1)
    bool cert_done;                     // the default certificate settled
    bool cert_self_signed;              // it is cli_cert's (now or from an earlier run)
    ev_timer tick;                      // polls start-up conditions
    ev_timer kill_timer;                // SIGKILL after the drain timeout
    ev_signal sigint;                   // Ctrl-C
    ev_signal sigterm;                  // SIGTERM
    ev_signal sighup;                   // terminal gone
    int exit_code;                      // what cli_run returns
};

static const char *const s_actors[] = {"router", "balancer", "healthd", "statsd",
                                       "chatd",  "apid",     "gateway"};
static const char *const s_vhosts[] = {"localhost", "127.0.0.1"};
static const int s_colors[] = {36, 33, 32, 35, 34, 96, 93, 92, 95, 94, 91, 37};

static uint64_t
s_now_ms(void)
{
    return proto_mono_us() / 1000;
}

//  --------------------------------------------------------------------------
//  Output: every line prefixed with a padded name

static void
s_write_line(s_run_t *self, const char *name, int color, FILE *dst, const char *text, size_t len)
{
    while (len > 0 && (text[len - 1] == '\r' || text[len - 1] == '\n'))
        len--;
    char out[S_LINE_MAX + 64];
    bool colored = dst == stdout ? self->color_out : self->color_err;
    int n = colored ? snprintf(out, 64, "\033[%dm%-*s |\033[0m ", color, self->width, name)
                    : snprintf(out, 64, "%-*s | ", self->width, name);
    if (n < 0 || n >= 64)
        n = 0;
    if (len > sizeof out - (size_t) n - 1)
        len = sizeof out - (size_t) n - 1;
    memcpy(out + n, text, len);
    out[(size_t) n + len] = '\n';
    // one write per line, so stderr (unbuffered) never splits a line
    fwrite(out, 1, (size_t) n + len + 1, dst);
}

static void s_say(s_run_t *self, const char *format, ...) __attribute__((format(printf, 2, 3)));

//  A line of the supervisor's own, prefixed "run".
static void
s_say(s_run_t *self, const char *format, ...)
{
    char text[1024];
    va_list args;
    va_start(args, format);
    int n = vsnprintf(text, sizeof text, format, args);
    va_end(args);
    if (n < 0)
        return;
    s_write_line(self, "run", 1, stdout, text, strnlen(text, sizeof text));
    fflush(stdout);
}

//  Print the complete lines in the stream's buffer; at_eof also the rest.
static void
s_emit_lines(s_stream_t *stream, bool at_eof)
{
    s_child_t *child = stream->child;
    size_t start = 0;
    for (size_t i = 0; i < stream->len; i++) {
        if (stream->buf[i] != '\n')
            continue;
        s_write_line(child->run, child->name, child->color, stream->dst, stream->buf + start,
                     i - start);
        start = i + 1;
    }
    if (start == 0 && stream->len == sizeof stream->buf) {
        // no newline in a full buffer: print it as a line of its own
        s_write_line(child->run, child->name, child->color, stream->dst, stream->buf, stream->len);
        start = stream->len;
    }
    if (at_eof && start < stream->len) {
        s_write_line(child->run, child->name, child->color, stream->dst, stream->buf + start,
                     stream->len - start);
        start = stream->len;
    }
    memmove(stream->buf, stream->buf + start, stream->len - start);
    stream->len -= start;
    fflush(stream->dst);
}

static void
s_stream_close(s_run_t *self, s_stream_t *stream)
{
    if (!stream->open)
        return;
    ev_io_stop(self->loop, &stream->io);
    close(stream->io.fd);
    stream->open = false;
}

//  Read what is there, a bounded batch. Returns 1 when there may be more, 0
//  when a read would block, -1 once the pipe is closed.
static int
s_stream_read(s_run_t *self, s_stream_t *stream)
{
    for (int batch = 0; batch < 16; batch++) {
        if (!stream->open)
            return -1;
        ssize_t n =
            read(stream->io.fd, stream->buf + stream->len, sizeof stream->buf - stream->len);
        if (n > 0) {
            stream->len += (size_t) n;
            s_emit_lines(stream, false);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        s_emit_lines(stream, true); // EOF, or an error that will not go away
        s_stream_close(self, stream);
        return -1;
    }
    return 1;
}

static void
s_on_output(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    s_stream_t *stream = w->data;
    s_stream_read(stream->child->run, stream);
}

//  --------------------------------------------------------------------------
//  A minimal blocking HTTP/1.1 client for the admin listener, bounded by a
//  deadline: connect, send one request with Connection: close, read the
//  answer until the server closes or Content-Length is reached.

typedef struct {
    int status;             // 0 when there was no valid answer
    char text[S_REPLY_MAX]; // the whole answer, NUL-terminated
    size_t len;             // bytes in text
    const char *body;       // into text, or "" when there is none
} s_reply_t;

//  Wait for events on fd until deadline_ms. Returns 1 ready, 0 timeout, -1 error.
static int
s_wait_fd(int fd, short events, uint64_t deadline_ms)
{
    for (;;) {
        uint64_t now = s_now_ms();
        if (now >= deadline_ms)
            return 0;
        struct pollfd pfd = {.fd = fd, .events = events};
        int rc = poll(&pfd, 1, (int) (deadline_ms - now));
        if (rc < 0 && errno == EINTR)
            continue;
        return rc < 0 ? -1 : rc > 0;
    }
}

//  The host to connect to for a listener address ("" and wildcards are loopback).
static const char *
s_connect_host(const proto_addr_t *addr)
{
    if (addr->host[0] == '\0' || strcmp(addr->host, "0.0.0.0") == 0)
        return "127.0.0.1";
    if (strcmp(addr->host, "::") == 0)
        return "::1";
    return addr->host;
}

//  A non-blocking connected socket, or -1.
static int
s_connect(const char *host, uint16_t port, uint64_t deadline_ms)
{
    char service[8];
    snprintf(service, sizeof service, "%u", (unsigned) port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *list = NULL;
    if (getaddrinfo(host, service, &hints, &list) != 0)
        return -1;
    int fd = -1;
    for (struct addrinfo *ai = list; ai && fd < 0; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        int rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
        if (rc != 0 && errno == EINPROGRESS && s_wait_fd(fd, POLLOUT, deadline_ms) == 1) {
            int error = 0;
            socklen_t len = sizeof error;
            rc = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == 0 && error == 0 ? 0 : -1;
        }
        if (rc != 0) {
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(list);
    return fd;
}

static int
s_send_all(int fd, const char *data, size_t len, uint64_t deadline_ms)
{
    while (len > 0) {
        ssize_t n = send(fd, data, len, MSG_NOSIGNAL);
        if (n > 0) {
            data += n;
            len -= (size_t) n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (s_wait_fd(fd, POLLOUT, deadline_ms) != 1)
                return -1;
        } else {
            return -1;
        }
    }
    return 0;
}

//  True once the answer in reply is complete by its Content-Length.
static bool
s_reply_complete(s_reply_t *reply)
{
    const char *end = strstr(reply->text, "\r\n\r\n");
    if (end == NULL)
        return false;
    size_t head_len = (size_t) (end - reply->text) + 4;
    for (const char *line = strstr(reply->text, "\r\n"); line && line < end;
         line = strstr(line + 2, "\r\n")) {
        const char *field = line + strlen("\r\n");
        if (strncasecmp(field, PROTO_LIT("content-length:")) == 0) {
            unsigned long long length = strtoull(field + strlen("content-length:"), NULL, 10);
            return reply->len >= head_len + length;
        }
    }
    return false; // no length: read until the server closes
}

//  One request; body may be NULL. Returns 0 with reply->status set, or -1
//  when no answer came within timeout_ms.
static int
s_http(s_run_t *self, const char *method, const char *path, const char *body, s_reply_t *reply)
{
    const s_config_t *cfg = self->cfg;
    uint64_t deadline = s_now_ms() + S_HTTP_TIMEOUT_MS;
    reply->status = 0;
    reply->len = 0;
    reply->text[0] = '\0';
    reply->body = "";
    int fd = s_connect(s_connect_host(&cfg->admin_addr), cfg->admin_addr.port, deadline);
    if (fd < 0)
        return -1;

    const char *token = cfg->admin_token && *cfg->admin_token ? cfg->admin_token : NULL;
    size_t body_len = body ? strlen(body) : 0;
    size_t cap = 512 + strlen(path) + (token ? strlen(token) : 0) + body_len;
    char *request = proto_xmalloc(cap);
    int n = snprintf(
        request, cap,
        "%s %s HTTP/1.1\r\nHost: %s:%u\r\nUser-Agent: switchyard-run\r\nConnection: close\r\n"
        "%s%s%s",
        method, path, s_connect_host(&cfg->admin_addr), (unsigned) cfg->admin_addr.port,
        token ? "Authorization: Bearer " : "", token ? token : "", token ? "\r\n" : "");
    if (body)
        n += snprintf(request + n, cap - (size_t) n,
                      "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n%s", body_len,
                      body);
    else
        n += snprintf(request + n, cap - (size_t) n, "\r\n");
    int rc = s_send_all(fd, request, (size_t) n, deadline);
    free(request);
    request = NULL;

    while (rc == 0 && reply->len < sizeof reply->text - 1 && !s_reply_complete(reply)) {
        ssize_t got = recv(fd, reply->text + reply->len, sizeof reply->text - 1 - reply->len, 0);
        if (got > 0) {
            reply->len += (size_t) got;
            reply->text[reply->len] = '\0';
        } else if (got == 0) {
            break;
        } else if (errno == EINTR) {
            continue;
        } else if (errno != EAGAIN && errno != EWOULDBLOCK) {
            rc = -1;
        } else if (s_wait_fd(fd, POLLIN, deadline) != 1) {
            rc = -1;
        }
    }
    close(fd);
    if (rc != 0 || !proto_starts_with(reply->text, "HTTP/1.")
        || reply->len < strlen("HTTP/1.1 200"))
        return -1;
    long status = strtol(reply->text + strlen("HTTP/1.1 "), NULL, 10);
    if (status < 100 || status > 599)
        return -1;
    reply->status = (int) status;
    const char *end = strstr(reply->text, "\r\n\r\n");
    reply->body = end ? end + 4 : "";
    return 0;
}

//  --------------------------------------------------------------------------
//  Children

//  Find name in PATH; writes the full path into out. Returns 0 or -1.
static int
s_which(const char *name, char *out, size_t cap)
{
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t len = colon ? (size_t) (colon - path) : strlen(path);
        if (len > 0) {
            int n = snprintf(out, cap, "%.*s/%s", (int) len, path, name);
            if (n > 0 && (size_t) n < cap && access(out, X_OK) == 0)
                return 0;
        }
        path += len + (colon ? 1 : 0);
    }
    return -1;
}

//  A new child slot named name running path (argv[0]); arguments are added
//  to child->argv by the caller.
static s_child_t *
s_child_add(s_run_t *self, const char *name, const char *path)
{
    assert(self->nchildren < S_MAX_CHILDREN);
    s_child_t *child = &self->children[self->nchildren];
    child->run = self;
    child->color = s_colors[self->nchildren % PROTO_ARRAY_SIZE(s_colors)];
    self->nchildren++;
    proto_strlcpy(child->name, name, sizeof child->name);
    proto_strlcpy(child->path, path, sizeof child->path);
    child->argv[0] = child->path;
    int len = (int) strlen(name);
    if (len > self->width)
        self->width = len;
    return child;
}

static void
s_child_arg(s_child_t *child, const char *arg)
{
    size_t n = 0;
    while (child->argv[n])
        n++;
    assert(n + 1 < PROTO_ARRAY_SIZE(child->argv));
    child->argv[n] = arg;
}

static void s_on_child_exit(struct ev_loop *loop, ev_child *w, int revents);

static void
s_stream_start(s_run_t *self, s_child_t *child, s_stream_t *stream, int fd, FILE *dst)
{
    stream->child = child;
    stream->dst = dst;
    stream->len = 0;
    stream->open = true;
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    ev_io_init(&stream->io, s_on_output, fd, EV_READ);
    stream->io.data = stream;
    ev_io_start(self->loop, &stream->io);
}

//  Fork and exec the child with its stdout and stderr on pipes back to us.
//  Returns 0, or -1 (reported) when it could not be started.
static int
s_child_start(s_run_t *self, s_child_t *child)
{
    int out[2], err[2];
    if (pipe2(out, O_CLOEXEC) != 0) {
        s_say(self, "cannot start %s: pipe: %s", child->name, strerror(errno));
        return -1;
    }
    if (pipe2(err, O_CLOEXEC) != 0) {
        s_say(self, "cannot start %s: pipe: %s", child->name, strerror(errno));
        close(out[0]);
        close(out[1]);
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid == 0) {
        // dies with the supervisor, even by SIGKILL; the check closes the
        // race where the supervisor died before prctl
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        sigset_t mask;
        sigemptyset(&mask);
        sigaddset(&mask, SIGINT); // see the top of this file
        sigprocmask(SIG_SETMASK, &mask, NULL);
        signal(SIGPIPE, SIG_DFL);
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0) {
            dup2(null, STDIN_FILENO);
            close(null);
        }
        dup2(out[1], STDOUT_FILENO);
        dup2(err[1], STDERR_FILENO);
        if (child->region)
            setenv("REGION", child->region, 1);
        execv(child->path, (char *const *) child->argv);
        dprintf(STDERR_FILENO, "cannot run %s: %s\n", child->path, strerror(errno));
        _exit(127);
    }
    close(out[1]);
    close(err[1]);
    if (pid < 0) {
        s_say(self, "cannot start %s: fork: %s", child->name, strerror(errno));
        close(out[0]);
        close(err[0]);
        return -1;
    }
    child->pid = pid;
    ev_child_init(&child->exit_w, s_on_child_exit, pid, 0);
    child->exit_w.data = child;
    ev_child_start(self->loop, &child->exit_w);
    s_stream_start(self, child, &child->out, out[0], stdout);
    s_stream_start(self, child, &child->err, err[0], stderr);
    return 0;
}

static size_t
s_running(const s_run_t *self)
{
    size_t n = 0;
    for (size_t i = 0; i < self->nchildren; i++)
        n += self->children[i].pid > 0;
    return n;
}

//  Every child reaped: print what is left in the pipes and leave the loop.
static void
s_finish(s_run_t *self)
{
    ev_timer_stop(self->loop, &self->tick);
    ev_timer_stop(self->loop, &self->kill_timer);
    ev_signal_stop(self->loop, &self->sigint);
    ev_signal_stop(self->loop, &self->sigterm);
    ev_signal_stop(self->loop, &self->sighup);
    for (size_t i = 0; i < self->nchildren; i++) {
        s_child_t *child = &self->children[i];
        // the writers are gone: each read ends in EOF (or EAGAIN if a
        // grandchild still holds the pipe, which we do not wait for)
        while (s_stream_read(self, &child->out) > 0)
            ;
        while (s_stream_read(self, &child->err) > 0)
            ;
        s_emit_lines(&child->out, true);
        s_emit_lines(&child->err, true);
        s_stream_close(self, &child->out);
        s_stream_close(self, &child->err);
    }
    ev_break(self->loop, EVBREAK_ALL);
}

static void
s_describe(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d (%s)", WTERMSIG(status),
                 strsignal(WTERMSIG(status)));
    else
        snprintf(out, cap, "ended (wait status %d)", status);
}

static void
s_on_child_exit(struct ev_loop *loop, ev_child *w, int revents)
{
    (void) revents;
    s_child_t *child = w->data;
    s_run_t *self = child->run;
    ev_child_stop(loop, w);
    child->pid = 0;
    // its last lines first, so the report comes after them
    while (s_stream_read(self, &child->out) > 0)
        ;
    while (s_stream_read(self, &child->err) > 0)
        ;
    char how[128];
    s_describe(w->rstatus, how, sizeof how);
    if (self->phase == S_PHASE_STOPPING) {
        s_say(self, "%s %s", child->name, how);
        if (s_running(self) == 0)
            s_finish(self);
        return;
    }
    s_say(self, "%s %s; it is not restarted, the others keep running", child->name, how);
    if (s_running(self) == 0) {
        s_say(self, "every process has exited");
        self->exit_code = 1;
        s_finish(self);
    }
}

//  --------------------------------------------------------------------------
//  Shutdown

static void
s_kill_all(s_run_t *self)
{
    for (size_t i = 0; i < self->nchildren; i++) {
        s_child_t *child = &self->children[i];
        if (child->pid > 0) {
            s_say(self, "%s did not stop in time: SIGKILL", child->name);
            kill(child->pid, SIGKILL);
        }
    }
}

static void
s_on_kill_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_kill_all(w->data);
}

static void
s_on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
    (void) revents;
    s_run_t *self = w->data;
    if (self->phase == S_PHASE_STOPPING) {
        s_say(self, "second %s: SIGKILL", strsignal(w->signum));
        s_kill_all(self);
        return;
    }
    self->phase = S_PHASE_STOPPING;
    ev_timer_stop(loop, &self->tick);
    size_t n = s_running(self);
    s_say(self, "%s: stopping %zu processes (SIGTERM; SIGKILL after %.1f s)", strsignal(w->signum),
          n, (double) (self->cfg->drain_ms + S_KILL_GRACE_MS) / 1000.0);
    if (n == 0) {
        s_finish(self);
        return;
    }
    for (size_t i = 0; i < self->nchildren; i++)
        if (self->children[i].pid > 0)
            kill(self->children[i].pid, SIGTERM);
    ev_timer_set(&self->kill_timer, (double) (self->cfg->drain_ms + S_KILL_GRACE_MS) / 1000.0, 0.);
    ev_timer_start(loop, &self->kill_timer);
}

//  --------------------------------------------------------------------------
//  Start-up: redis, actors and backends, /ready, demo routes, the banner

//  "host:port" of a listener as a user would type it: wildcards become
//  localhost; with loopback_too, loopback addresses as well.
static void
s_user_addr(const proto_addr_t *addr, bool loopback_too, char *out, size_t cap)
{
    const char *host = addr->host;
    bool any = host[0] == '\0' || strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
    bool loopback = strcmp(host, "127.0.0.1") == 0 || strcmp(host, "::1") == 0;
    if (any || (loopback_too && loopback))
        host = "localhost";
    if (strchr(host, ':'))
        snprintf(out, cap, "[%s]:%u", host, (unsigned) addr->port);
    else
        snprintf(out, cap, "%s:%u", host, (unsigned) addr->port);
}

static bool
s_is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void
s_banner(s_run_t *self)
{
    const s_config_t *cfg = self->cfg;
    char pub[300], admin[300], pub_c[300], admin_c[300], tls[300], tls_c[300];
    s_user_addr(&cfg->http_addr, false, pub, sizeof pub);
    s_user_addr(&cfg->admin_addr, false, admin, sizeof admin);
    s_user_addr(&cfg->http_addr, true, pub_c, sizeof pub_c);
    s_user_addr(&cfg->admin_addr, true, admin_c, sizeof admin_c);
    s_user_addr(&cfg->https_addr, false, tls, sizeof tls);
    s_user_addr(&cfg->https_addr, true, tls_c, sizeof tls_c);
    const char *auth =
        cfg->admin_token && *cfg->admin_token ? "-H \"Authorization: Bearer $ADMIN_TOKEN\" " : "";
    const char *bus = strcmp(cfg->bus.bus_dir, "run/bus") != 0 ? cfg->bus.bus_dir : NULL;
    printf("\n"
           "  Switchyard is running. Ctrl-C stops everything.\n\n"
           "    public     http://%s\n",
           pub);
    if (!cfg->no_https)
        printf("    https      https://%s%s\n", tls,
               self->cert_self_signed ? "  (self-signed for localhost: curl -k)" : "");
    printf("    admin      http://%s\n", admin);
    printf("    dashboard  http://%s/dashboard/%s\n", admin,
           cfg->admin_token && *cfg->admin_token ? "  (asks for ADMIN_TOKEN once)" : "");
    if (!cfg->no_demo)
        printf("    chat page  http://%s/chat.html%s\n", pub,
               s_is_dir("client") ? "  (two tabs: alice in region 1, bob in region 2)"
                                  : "  (no client/ directory here: not served)");
    printf("\n  Try:\n");
    if (!cfg->no_demo) {
        printf("    curl -H 'x-region: 1' %s/\n"
               "    curl -H 'x-region: 2' %s/\n"
               "    curl '%s/?region=2'\n",
               pub_c, pub_c, pub_c);
        if (!cfg->no_https)
            printf("    curl -k https://%s/\n", tls_c);
    } else {
        printf("    curl -X PUT %s-d '{\"vHost\":\"localhost\",\"backends\":[...]}' "
               "%s/api/v1/routes/localhost\n",
               auth, admin_c);
    }
    printf("    curl %s/health\n"
           "    curl %s%s/api/v1/routes\n"
           "    %s ping%s%s\n\n",
           admin_c, auth, admin_c, self->cli_path, bus ? " --bus-dir " : "", bus ? bus : "");
    fflush(stdout);
}

static void
s_start_stack(s_run_t *self)
{
    for (size_t i = 0; i < self->nchildren; i++) {
        s_child_t *child = &self->children[i];
        if (child != self->redis)
            s_child_start(self, child);
    }
    self->phase = S_PHASE_READY;
    self->deadline_ms = s_now_ms() + (uint64_t) self->cfg->ready_ms;
}

//  Say why an admin call did not do what was asked (no answer, or the status
//  and the first line of the body), then what that means ("" or "; ...").
static void
s_say_failed(s_run_t *self,
             const char *method,
             const char *path,
             int rc,
             const s_reply_t *reply,
             const char *meaning)
{
    if (rc != 0) {
        s_say(self, "%s %s: no answer from the admin listener%s", method, path, meaning);
        return;
    }
    size_t len = strcspn(reply->body, "\r\n");
    s_say(self, "%s %s answered %d: %.*s%s", method, path, reply->status,
          (int) (len > 300 ? 300 : len), reply->body, meaning);
}

static char *
s_route_json(const s_config_t *cfg, const char *vhost)
{
    char *json = proto_xmalloc(1024);
    snprintf(json, 1024,
             "{\"vHost\":\"%s\",\"strategy\":\"ROUND_ROBIN\",\"healthPath\":\"/health\","
             "\"chatPath\":\"/chat\",\"backends\":["
             "{\"id\":\"server-a\",\"hostname\":\"127.0.0.1\",\"port\":%d,\"region\":\"1\"},"
             "{\"id\":\"server-b\",\"hostname\":\"127.0.0.1\",\"port\":%d,\"region\":\"2\"}]}",
             vhost, (int) cfg->demo_port_a, (int) cfg->demo_port_b);
    return json;
}

//  One demo route. Returns true when it is settled (installed, or refused
//  for good and reported); false to try again on the next tick.
static bool
s_install_route(s_run_t *self, const char *vhost, bool last_try)
{
    s_reply_t *reply = proto_xmalloc(sizeof *reply);
    char path[128];
    snprintf(path, sizeof path, "/api/v1/routes/%s", vhost);
    char *json = s_route_json(self->cfg, vhost);
    int rc = s_http(self, "PUT", path, json, reply);
    free(json);
    json = NULL;
    bool settled = true;
    if (rc == 0 && reply->status >= 200 && reply->status < 300) {
        s_say(self, "demo route %s installed (%d)", vhost, reply->status);
    } else if ((rc != 0 || reply->status == 503) && !last_try) {
        settled = false; // apid not there yet: /ready only waits for router and balancer
    } else {
        s_say_failed(self, "PUT", path, rc, reply, "");
    }
    free(reply);
    return settled;
}

//  Look for the default certificate (domain "*") in the body of
//  GET /api/v1/certificates. Returns 1 found (*self_signed: its subject is
//  CN=localhost, as cli_cert makes it), 0 not there, -1 not a list.
static int
s_find_default_cert(const char *body, bool *self_signed)
{
    json_t *list = json_loads(body, 0, NULL);
    int found = json_is_array(list) ? 0 : -1;
    size_t i;
    json_t *cert;
    json_array_foreach(list, i, cert)
    {
        const char *domain = json_string_value(json_object_get(cert, "domain"));
        const char *subject = json_string_value(json_object_get(cert, "subject"));
        if (found == 0 && domain && strcmp(domain, "*") == 0) {
            found = 1;
            *self_signed = subject && strcmp(subject, "CN=" CLI_CERT_CN) == 0;
        }
    }
    json_decref(list);
    return found;
}

//  The body of POST /api/v1/certificates for cert as the default (caller
//  frees), or NULL.
static char *
s_cert_json(const cli_cert_t *cert)
{
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "domain", "*", "cert", cert->cert, "key", cert->key);
    char *json = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    return json;
}

//  The default certificate for the HTTPS listener, unless the store has one
//  (kept, never replaced). Each try starts with the list, so an answer lost
//  after the certificate was stored never stores a second one. Returns
//  true when it is settled (there, installed, or failed for good and
//  reported); false to try again on the next tick.
static bool
s_install_cert(s_run_t *self, bool last_try)
{
    s_reply_t *reply = proto_xmalloc(sizeof *reply);
    bool settled = true;
    int rc = s_http(self, "GET", S_CERTS_PATH, NULL, reply);
    if ((rc != 0 || reply->status == 503) && !last_try) {
        settled = false; // apid not there yet
        goto done;
    }
    if (rc != 0 || reply->status != 200) {
        s_say_failed(self, "GET", S_CERTS_PATH, rc, reply, "; no default certificate installed");
        goto done;
    }
    int found = s_find_default_cert(reply->body, &self->cert_self_signed);
    if (found < 0) {
        s_say(self,
              "GET %s answered no list of certificates (%zu bytes); no default certificate "
              "installed",
              S_CERTS_PATH, reply->len);
        goto done;
    }
    if (found > 0) {
        s_say(self, "the stored default certificate (domain *) is kept%s",
              self->cert_self_signed ? " (self-signed for localhost)" : "");
        goto done;
    }
    cli_cert_t cert;
    char err[300];
    if (cli_cert_self_signed(&cert, err, sizeof err) != 0) {
        s_say(self, "%s; no default certificate installed", err);
        goto done;
    }
    char *json = s_cert_json(&cert);
    cli_cert_free(&cert);
    if (json == NULL) {
        s_say(self, "cannot encode the certificate; no default certificate installed");
        goto done;
    }
    rc = s_http(self, "POST", S_CERTS_PATH, json, reply);
    explicit_bzero(json, strlen(json)); // it holds the private key
    free(json);
    json = NULL;
    if (rc == 0 && reply->status >= 200 && reply->status < 300) {
        self->cert_self_signed = true;
        s_say(self, "self-signed certificate for localhost installed as the default (domain *)");
    } else if ((rc != 0 || reply->status == 503) && !last_try) {
        settled = false;
    } else {
        s_say_failed(self, "POST", S_CERTS_PATH, rc, reply, "; no default certificate installed");
    }
done:
    free(reply);
    return settled;
}

//  What start-up leaves out when the gateway is not up: "" or ": no ...".
static const char *
s_left_out(const s_config_t *cfg)
{
    if (!cfg->no_demo && !cfg->no_https)
        return ": no demo routes, no default certificate";
    if (!cfg->no_demo)
        return ": no demo routes";
    return cfg->no_https ? "" : ": no default certificate";
}

static void
s_on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) revents;
    s_run_t *self = w->data;
    const s_config_t *cfg = self->cfg;
    bool late = s_now_ms() >= self->deadline_ms;
    if (self->phase == S_PHASE_REDIS) {
        int fd = s_connect("127.0.0.1", self->redis_port, s_now_ms() + 200);
        if (fd >= 0)
            close(fd);
        else if (self->redis->pid > 0 && !late)
            return;
        else
            s_say(self, "redis-server is not answering on port %u; chat needs it",
                  (unsigned) self->redis_port);
        s_start_stack(self);
        return;
    }
    if (self->phase == S_PHASE_READY) {
        if (self->gateway->pid <= 0) {
            s_say(self, "the gateway is not running%s", s_left_out(cfg));
            self->phase = S_PHASE_RUNNING;
            ev_timer_stop(loop, w);
            return;
        }
        s_reply_t *reply = proto_xmalloc(sizeof *reply);
        int rc = s_http(self, "GET", "/ready", NULL, reply);
        bool ready = rc == 0 && reply->status == 200;
        free(reply);
        if (!ready && !late)
            return;
        if (!ready) {
            char admin[300];
            s_user_addr(&cfg->admin_addr, false, admin, sizeof admin);
            s_say(self, "http://%s/ready did not answer 200 within %.1f s%s", admin,
                  (double) cfg->ready_ms / 1000.0, s_left_out(cfg));
            self->phase = S_PHASE_RUNNING;
            ev_timer_stop(loop, w);
            return;
        }
        self->phase = cfg->no_demo && cfg->no_https ? S_PHASE_RUNNING : S_PHASE_ROUTES;
        self->deadline_ms = s_now_ms() + (uint64_t) cfg->ready_ms;
        late = false;
    }
    if (self->phase == S_PHASE_ROUTES) {
        bool all = true;
        for (size_t i = 0; !cfg->no_demo && i < PROTO_ARRAY_SIZE(s_vhosts); i++) {
            if (!self->routes_done[i])
                self->routes_done[i] = s_install_route(self, s_vhosts[i], late);
            all = all && self->routes_done[i];
        }
        if (!cfg->no_https) {
            if (!self->cert_done)
                self->cert_done = s_install_cert(self, late);
            all = all && self->cert_done;
        }
        if (!all)
            return;
        self->phase = S_PHASE_RUNNING;
    }
    ev_timer_stop(loop, w);
    s_banner(self);
}

//  --------------------------------------------------------------------------
//  Preparation: where things are, which children, their environment

static int
s_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0
        && getsockname(fd, (struct sockaddr *) &sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

static void
s_export_addr(const char *name, const proto_addr_t *addr)
{
    char text[300];
    if (strchr(addr->host, ':'))
        snprintf(text, sizeof text, "[%s]:%u", addr->host, (unsigned) addr->port);
    else
        snprintf(text, sizeof text, "%s:%u", addr->host, (unsigned) addr->port);
    setenv(name, text, 1);
}

//  The children inherit our environment; settings given to us as flags or
//  in .env are exported so that they and we agree.
static void
s_export(const s_config_t *cfg)
{
    setenv("BUS_DIR", cfg->bus.bus_dir, 1);
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (cfg->bus.peers[k] == NULL)
            continue;
        char name[64];
        snprintf(name, sizeof name, "BUS_PEERS_%s", proto_kind_name(k));
        for (char *c = name; *c; c++)
            if (*c >= 'a' && *c <= 'z')
                *c = (char) (*c - 'a' + 'A');
        setenv(name, cfg->bus.peers[k], 1);
    }
    s_export_addr("GATEWAY_HTTP_ADDR", &cfg->http_addr);
    if (cfg->no_https)
        unsetenv("GATEWAY_HTTPS_ADDR");
    else
        s_export_addr("GATEWAY_HTTPS_ADDR", &cfg->https_addr);
    s_export_addr("GATEWAY_ADMIN_ADDR", &cfg->admin_addr);
    char drain[32];
    snprintf(drain, sizeof drain, "%lldms", (long long) cfg->drain_ms);
    setenv("GATEWAY_DRAIN_TIMEOUT", cfg->drain_ms == 0 ? "0" : drain, 1);
    if (cfg->admin_token)
        setenv("ADMIN_TOKEN", cfg->admin_token, 1);
    if (cfg->redis_url)
        setenv("REDIS_URL", cfg->redis_url, 1);
    if (cfg->log_format >= 0)
        setenv("LOG_FORMAT", cfg->log_format == 1 ? "pretty" : "json", 1);
    else if (isatty(STDOUT_FILENO))
        setenv("LOG_FORMAT", "pretty", 1);
}

//  mkdir -p for a relative path of a few levels. Returns 0 or -1.
static int
s_mkdirs(const char *path)
{
    char dir[PATH_MAX];
    proto_strlcpy(dir, path, sizeof dir);
    for (char *slash = strchr(dir + 1, '/'); slash; slash = strchr(slash + 1, '/')) {
        *slash = '\0';
        if (mkdir(dir, 0755) != 0 && errno != EEXIST)
            return -1;
        *slash = '/';
    }
    return mkdir(dir, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

//  Fill the children table. Returns 0, or -1 after saying why.
static int
s_prepare(s_run_t *self)
{
    const s_config_t *cfg = self->cfg;
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "switchyard run: cannot read /proc/self/exe: %s\n", strerror(errno));
        return -1;
    }
    exe[n] = '\0';
    char *slash = strrchr(exe, '/');
    *slash = '\0';
    proto_strlcpy(self->bin_dir, exe[0] ? exe : "/", sizeof self->bin_dir);

    // how to call this binary again in the printed lines: relative when it
    // is under the working directory
    char cwd[PATH_MAX];
    size_t cwd_len = getcwd(cwd, sizeof cwd) ? strlen(cwd) : 0;
    if (cwd_len > 0 && strncmp(self->bin_dir, cwd, cwd_len) == 0 && self->bin_dir[cwd_len] == '/')
        snprintf(self->cli_path, sizeof self->cli_path, "%s/switchyard",
                 self->bin_dir + cwd_len + 1);
    else
        snprintf(self->cli_path, sizeof self->cli_path, "%s/switchyard", self->bin_dir);

    // the prefix width fits every name, known before the first line
    self->width = (int) strlen("server-a");
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_actors); i++)
        if ((int) strlen(s_actors[i]) > self->width)
            self->width = (int) strlen(s_actors[i]);
    bool missing = false;
    if (!cfg->no_redis && cfg->redis_url == NULL) {
        char path[PATH_MAX];
        int port = s_free_port();
        if (s_which("redis-server", path, sizeof path) != 0) {
            s_say(self, "redis-server not found (apt-get install redis-server): running "
                        "without Redis; chat needs it");
        } else if (port < 0 || s_mkdirs("var/redis") != 0) {
            s_say(self, "cannot prepare redis-server (%s): running without Redis", strerror(errno));
        } else {
            s_child_t *redis = s_child_add(self, "redis", path);
            self->redis = redis;
            self->redis_port = (uint16_t) port;
            snprintf(redis->port, sizeof redis->port, "%d", port);
            const char *args[] = {"--port",      redis->port, "--bind",       "127.0.0.1",
                                  "--save",      "",          "--appendonly", "no",
                                  "--daemonize", "no",        "--dir",        "var/redis"};
            for (size_t i = 0; i < PROTO_ARRAY_SIZE(args); i++)
                s_child_arg(redis, args[i]);
            char url[64];
            snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
            setenv("REDIS_URL", url, 1);
        }
    }
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_actors); i++) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/%s", self->bin_dir, s_actors[i]);
        if (access(path, X_OK) != 0) {
            fprintf(stderr, "switchyard run: no %s (run make first)\n", path);
            missing = true;
        }
        s_child_t *child = s_child_add(self, s_actors[i], path);
        if (strcmp(s_actors[i], "gateway") == 0)
            self->gateway = child;
        //  The demo's two regions each have a chatd, as seed 000 has a
        //  WebSocket server per region: a chat session goes to its region's.
        if (strcmp(s_actors[i], "chatd") == 0 && !cfg->no_demo)
            s_child_add(self, "chatd-2", path)->region = "2";
    }
    if (!cfg->no_demo) {
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/demo-backend", self->bin_dir);
        if (access(path, X_OK) != 0) {
            fprintf(stderr, "switchyard run: no %s (run make first)\n", path);
            missing = true;
        }
        static const struct {
            const char *service, *name, *region;
        } demos[] = {{"server-a", "Server A", "1"}, {"server-b", "Server B", "2"}};
        for (size_t i = 0; i < PROTO_ARRAY_SIZE(demos); i++) {
            s_child_t *demo = s_child_add(self, demos[i].service, path);
            snprintf(demo->port, sizeof demo->port, "%d",
                     (int) (i == 0 ? cfg->demo_port_a : cfg->demo_port_b));
            const char *args[] = {"--port",    demo->port,      "--addr",   "127.0.0.1",
                                  "--name",    demos[i].name,   "--region", demos[i].region,
                                  "--service", demos[i].service};
            for (size_t a = 0; a < PROTO_ARRAY_SIZE(args); a++)
                s_child_arg(demo, args[a]);
            if (s_is_dir("client")) {
                s_child_arg(demo, "--static-dir");
                s_child_arg(demo, "client");
            }
        }
    }
    return missing ? -1 : 0;
}

int
cli_run(int argc, char **argv)
{
    s_config_t cfg = {0};
    proto_cfg_table_t tables[] = {
        {cli_bus_opts, cli_bus_opts_count, &cfg.bus},
        {s_opts, PROTO_ARRAY_SIZE(s_opts), &cfg},
    };
    int rc = cli_config("run", tables, PROTO_ARRAY_SIZE(tables), argc, argv);
    if (rc != 0) {
        proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
        return rc == 1 ? 0 : 2;
    }
    signal(SIGPIPE, SIG_IGN);
    s_run_t *self = proto_xcalloc(1, sizeof *self);
    self->cfg = &cfg;
    const char *no_color = getenv("NO_COLOR");
    bool color = no_color == NULL || *no_color == '\0';
    self->color_out = color && isatty(STDOUT_FILENO);
    self->color_err = color && isatty(STDERR_FILENO);
    if (s_prepare(self) != 0) {
        free(self);
        proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
        return 1;
    }
    s_export(&cfg);

    self->loop = ev_default_loop(EVFLAG_AUTO);
    if (self->loop == NULL) {
        fprintf(stderr, "switchyard run: cannot start libev's default loop\n");
        free(self);
        proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
        return 1;
    }
    ev_signal_init(&self->sigint, s_on_signal, SIGINT);
    ev_signal_init(&self->sigterm, s_on_signal, SIGTERM);
    ev_signal_init(&self->sighup, s_on_signal, SIGHUP);
    self->sigint.data = self->sigterm.data = self->sighup.data = self;
    ev_signal_start(self->loop, &self->sigint);
    ev_signal_start(self->loop, &self->sigterm);
    ev_signal_start(self->loop, &self->sighup);
    ev_timer_init(&self->kill_timer, s_on_kill_timer, 0., 0.);
    self->kill_timer.data = self;
    ev_timer_init(&self->tick, s_on_tick, S_TICK_S, S_TICK_S);
    self->tick.data = self;

    char cwd[PATH_MAX / 2];
    s_say(self, "starting %zu processes: binaries from %s, working directory %s", self->nchildren,
          self->bin_dir, getcwd(cwd, sizeof cwd) ? cwd : ".");
    if (self->redis) {
        s_say(self, "private redis-server on 127.0.0.1:%u (REDIS_URL for the others)",
              (unsigned) self->redis_port);
        self->phase = S_PHASE_REDIS;
        self->deadline_ms = s_now_ms() + S_REDIS_WAIT_MS;
        if (s_child_start(self, self->redis) != 0)
            s_start_stack(self);
    } else {
        s_start_stack(self);
    }
    ev_timer_start(self->loop, &self->tick);
    ev_run(self->loop, 0);

    rc = self->exit_code;
    ev_loop_destroy(self->loop);
    free(self);
    proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
    return rc;
}
