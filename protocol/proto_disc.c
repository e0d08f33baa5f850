/*  proto_disc - find every live instance of a peer kind (ipc dir, DNS, list).

    The set of instances of each watched kind is recomputed from its source
    (a directory scan, a DNS answer, a fixed list) and compared with the
    previous set; the callback hears only the differences.

    The bus directory is watched with an inotify descriptor on its own ev_io:
    the events carry file names, so a bus file that appears or disappears
    triggers a rescan at once, whatever else changed in the same second.
    (libev's ev_stat compares stat() results, whose times have one-second
    resolution, and polls when the directory does not exist yet: a peer
    that bound after us was found only at the next 1 s rescan.)
*/
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>

#include "proto_disc.h"
#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"

#define S_MAX_WATCHES 16

typedef enum { S_IPC, S_DNS, S_LIST } s_mode_t;

typedef struct {
    char req[PROTO_DISC_ENDPOINT_MAX]; // ROUTER endpoint
    char pub[PROTO_DISC_ENDPOINT_MAX]; // XPUB endpoint
} s_inst_t;

typedef struct {
    proto_disc_t *owner;                     // back pointer for resolver callbacks
    char kind[32];                           // peer kind
    s_mode_t mode;                           // where instances come from
    char dns_name[256];                      // S_DNS: name to resolve
    unsigned port;                           // S_DNS: ROUTER port
    s_inst_t inst[PROTO_DISC_MAX_INSTANCES]; // current set
    size_t count;                            // entries in inst
    uint64_t dns_query;                      // S_DNS: the lookup in flight, 0 if none
} s_watch_t;

struct proto_disc {
    struct ev_loop *loop;              // our loop
    char *bus_dir;                     // directory of ipc files
    pid_t skip_pid;                    // our own pid
    proto_disc_fn *fn;                 // change callback
    void *arg;                         // its argument
    s_watch_t *watches[S_MAX_WATCHES]; // watched kinds
    size_t nwatches;                   // how many
    ev_timer scan_timer;               // periodic ipc rescan and dns re-resolve
    bool ipc_on;                       // an ipc kind is watched
    bool dir_warned;                   // the directory watch failed and we said so
    int dir_fd;                        // inotify descriptor, -1 if none
    int dir_wd;                        // its watch of bus_dir, -1 if none
    ev_io dir_io;                      // readiness of dir_fd
    proto_resolve_t *resolve;          // DNS, created on first dns watch
    uint64_t dns_due_ms;               // next re-resolve (ev_now based)
};

// --------------------------------------------------------------------------
// Names and endpoints

int
proto_disc_parse_name(const char *name, char *kind, size_t kind_cap, pid_t *pid, bool *is_req)
{
    const char *dot1 = strchr(name, '.');
    if (dot1 == NULL || dot1 == name)
        return -1;
    size_t klen = (size_t) (dot1 - name);
    if (klen >= kind_cap)
        return -1;
    for (size_t i = 0; i < klen; i++)
        if (!((name[i] >= 'a' && name[i] <= 'z') || name[i] == '_' || name[i] == '-'))
            return -1;
    const char *p = dot1 + 1;
    char *end;
    if (*p < '1' || *p > '9')
        return -1; // digits only, no sign, space or leading zero
    errno = 0;
    long v = strtol(p, &end, 10);
    if (end == p || *end != '.' || errno != 0 || v <= 0 || v > 4194304 || *p == '+' || *p == '-')
        return -1;
    if (strcmp(end, ".req") == 0)
        *is_req = true;
    else if (strcmp(end, ".pub") == 0)
        *is_req = false;
    else
        return -1;
    memcpy(kind, name, klen);
    kind[klen] = '\0';
    *pid = (pid_t) v;
    return 0;
}

bool
proto_disc_pid_alive(pid_t pid)
{
    if (pid <= 0)
        return false;
    return kill(pid, 0) == 0 || errno != ESRCH;
}

int
proto_disc_pub_of(const char *req, char *out, size_t cap)
{
    if (!proto_starts_with(req, "tcp://"))
        return -1;
    const char *colon = strrchr(req, ':');
    if (colon == NULL || colon < req + strlen("tcp://"))
        return -1;
    char *end;
    if (colon[1] < '0' || colon[1] > '9')
        return -1;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (*end != '\0' || errno != 0 || port < 1 || port > 65534 || end == colon + 1)
        return -1;
    int n = snprintf(out, cap, "%.*s:%ld", (int) (colon - req), req, port + 1);
    return n > 0 && (size_t) n < cap ? 0 : -1;
}

//  Check one tcp://host:port endpoint of a list.
static int
s_check_endpoint(const char *ep, size_t len)
{
    char buf[PROTO_DISC_ENDPOINT_MAX], pub[PROTO_DISC_ENDPOINT_MAX];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, ep, len);
    buf[len] = '\0';
    const char *host = buf + strlen("tcp://");
    if (!proto_starts_with(buf, "tcp://") || *host == ':' || *host == '\0')
        return -1;
    return proto_disc_pub_of(buf, pub, sizeof pub);
}

int
proto_disc_check_spec(const char *spec, char *err, size_t errlen)
{
    if (spec == NULL || *spec == '\0')
        return 0;
    if (proto_starts_with(spec, "dns:")) {
        const char *name = spec + strlen("dns:");
        const char *colon = strrchr(name, ':');
        char *end;
        if (colon == NULL || colon == name || (size_t) (colon - name) > 253) {
            snprintf(err, errlen, "expected dns:NAME:PORT");
            return -1;
        }
        errno = 0;
        long port = colon[1] >= '0' && colon[1] <= '9' ? strtol(colon + 1, &end, 10) : 0;
        if (port == 0 || *end != '\0' || end == colon + 1 || errno || port > 65534) {
            snprintf(err, errlen, "expected dns:NAME:PORT with port 1-65534");
            return -1;
        }
        return 0;
    }
    const char *p = spec;
    while (*p) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t) (comma - p) : strlen(p);
        if (s_check_endpoint(p, len) != 0) {
            snprintf(err, errlen, "expected dns:NAME:PORT or tcp://HOST:PORT[,tcp://HOST:PORT...]");
            return -1;
        }
        p += len;
        if (*p == ',' && *++p == '\0') {
            snprintf(err, errlen, "expected dns:NAME:PORT or tcp://HOST:PORT[,tcp://HOST:PORT...]");
            return -1; // a trailing comma: an empty last entry
        }
    }
    return 0;
}

// --------------------------------------------------------------------------
// Set differences

//  Replace w's instance set by next (n entries), reporting the changes.
static void
s_apply(proto_disc_t *self, s_watch_t *w, const s_inst_t *next, size_t n)
{
    // removals first, so that a changed address is disconnected before its replacement
    for (size_t i = 0; i < w->count;) {
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++)
            keep = strcmp(w->inst[i].req, next[j].req) == 0;
        if (keep) {
            i++;
            continue;
        }
        s_inst_t gone = w->inst[i];
        w->inst[i] = w->inst[--w->count];
        log_info("peer gone", LOG_S("kind", w->kind), LOG_S("endpoint", gone.req));
        self->fn(self->arg, w->kind, gone.req, gone.pub, false);
    }
    for (size_t j = 0; j < n; j++) {
        bool known = false;
        for (size_t i = 0; i < w->count && !known; i++)
            known = strcmp(w->inst[i].req, next[j].req) == 0;
        if (known || w->count >= PROTO_DISC_MAX_INSTANCES)
            continue;
        w->inst[w->count++] = next[j];
        log_info("peer found", LOG_S("kind", w->kind), LOG_S("endpoint", next[j].req));
        self->fn(self->arg, w->kind, next[j].req, next[j].pub, true);
    }
}

// --------------------------------------------------------------------------
// ipc directory scan

static s_watch_t *
s_find(proto_disc_t *self, const char *kind)
{
    for (size_t i = 0; i < self->nwatches; i++)
        if (strcmp(self->watches[i]->kind, kind) == 0)
            return self->watches[i];
    return NULL;
}

static void
s_scan_dir(proto_disc_t *self)
{
    // one pass over the directory collects the live instances of every ipc kind
    s_inst_t *found[S_MAX_WATCHES] = {0};
    size_t nfound[S_MAX_WATCHES] = {0};
    bool any = false;
    for (size_t i = 0; i < self->nwatches; i++)
        if (self->watches[i]->mode == S_IPC) {
            found[i] = proto_xcalloc(PROTO_DISC_MAX_INSTANCES, sizeof(s_inst_t));
            any = true;
        }
    if (!any)
        return;
    DIR *dir = opendir(self->bus_dir);
    struct dirent *de;
    while (dir && (de = readdir(dir)) != NULL) {
        char kind[32];
        pid_t pid;
        bool is_req;
        if (proto_disc_parse_name(de->d_name, kind, sizeof kind, &pid, &is_req) != 0)
            continue;
        if (!proto_disc_pid_alive(pid)) {
            // stale: its process is gone; a later bind of that pid would reuse the path
            char path[PROTO_DISC_ENDPOINT_MAX];
            int n = snprintf(path, sizeof path, "%s/%s", self->bus_dir, de->d_name);
            if (n > 0 && (size_t) n < sizeof path && unlink(path) == 0)
                log_debug("stale bus file removed", LOG_S("path", path));
            continue;
        }
        if (!is_req || pid == self->skip_pid)
            continue;
        for (size_t i = 0; i < self->nwatches; i++) {
            s_watch_t *w = self->watches[i];
            if (w->mode != S_IPC || strcmp(w->kind, kind) != 0
                || nfound[i] >= PROTO_DISC_MAX_INSTANCES)
                continue;
            s_inst_t *inst = &found[i][nfound[i]];
            int a = snprintf(inst->req, sizeof inst->req, "ipc://%s/%s.%d.req", self->bus_dir, kind,
                             (int) pid);
            int b = snprintf(inst->pub, sizeof inst->pub, "ipc://%s/%s.%d.pub", self->bus_dir, kind,
                             (int) pid);
            // an actor binds .req, then .pub: until both exist it is still starting, and a
            // SUB connected to the missing .pub would wait a reconnect interval for it
            if (a > 0 && (size_t) a < sizeof inst->req && b > 0 && (size_t) b < sizeof inst->pub
                && access(inst->pub + strlen("ipc://"), F_OK) == 0)
                nfound[i]++;
        }
    }
    if (dir)
        closedir(dir);
    for (size_t i = 0; i < self->nwatches; i++) {
        if (found[i] == NULL)
            continue;
        s_apply(self, self->watches[i], found[i], nfound[i]);
        free(found[i]);
        found[i] = NULL;
    }
}

// --------------------------------------------------------------------------
// DNS through proto_resolve (c-ares on our loop)

static void
s_on_resolved(void *arg,
              proto_resolve_status_t status,
              const struct sockaddr_storage *addrs,
              size_t count,
              uint32_t ttl_s)
{
    (void) ttl_s; // re-resolved every PROTO_DISC_DNS_MS whatever the TTL
    s_watch_t *w = arg;
    proto_disc_t *self = w->owner;
    w->dns_query = 0;
    if (status != PROTO_RESOLVE_OK) {
        if (status == PROTO_RESOLVE_NOT_FOUND)
            s_apply(self, w, NULL, 0); // the name is gone: so are its instances
        else
            log_warn("dns lookup failed", LOG_S("kind", w->kind), LOG_S("name", w->dns_name),
                     LOG_S("error", proto_resolve_strstatus(status)));
        return;
    }
    s_inst_t *next = proto_xcalloc(PROTO_DISC_MAX_INSTANCES, sizeof *next);
    size_t n = 0;
    for (size_t k = 0; k < count && n < PROTO_DISC_MAX_INSTANCES; k++) {
        char addr[INET6_ADDRSTRLEN];
        const void *src;
        int family = addrs[k].ss_family;
        if (family == AF_INET)
            src = &((const struct sockaddr_in *) (const void *) &addrs[k])->sin_addr;
        else if (family == AF_INET6)
            src = &((const struct sockaddr_in6 *) (const void *) &addrs[k])->sin6_addr;
        else
            continue;
        if (inet_ntop(family, src, addr, sizeof addr) == NULL)
            continue;
        const char *fmt_open = family == AF_INET6 ? "[" : "";
        const char *fmt_close = family == AF_INET6 ? "]" : "";
        snprintf(next[n].req, sizeof next[n].req, "tcp://%s%s%s:%u", fmt_open, addr, fmt_close,
                 w->port);
        snprintf(next[n].pub, sizeof next[n].pub, "tcp://%s%s%s:%u", fmt_open, addr, fmt_close,
                 w->port + 1);
        bool dup = false;
        for (size_t i = 0; i < n && !dup; i++)
            dup = strcmp(next[i].req, next[n].req) == 0;
        if (!dup)
            n++;
    }
    s_apply(self, w, next, n);
    free(next);
}

static void
s_resolve(proto_disc_t *self, s_watch_t *w)
{
    if (w->dns_query != 0)
        return; // the previous lookup is still running
    proto_resolve_status_t rc = proto_resolve_lookup(self->resolve, w->dns_name, (uint16_t) w->port,
                                                     AF_UNSPEC, s_on_resolved, w, &w->dns_query);
    if (rc != PROTO_RESOLVE_OK)
        log_warn("dns lookup failed", LOG_S("kind", w->kind), LOG_S("name", w->dns_name),
                 LOG_S("error", proto_resolve_strstatus(rc)));
}

static int
s_resolve_start(proto_disc_t *self, char *err, size_t errlen)
{
    if (self->resolve)
        return 0;
    self->resolve = proto_resolve_new(self->loop, NULL);
    if (self->resolve == NULL) {
        snprintf(err, errlen, "cannot create the DNS resolver");
        return -1;
    }
    return 0;
}

// --------------------------------------------------------------------------
// Directory watch (inotify)

int
proto_disc_mkdirs(const char *dir)
{
    char path[PROTO_DISC_ENDPOINT_MAX];
    if (!proto_strlcpy(path, dir, sizeof path) || path[0] == '\0') {
        errno = path[0] == '\0' ? ENOENT : ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

//  True if a directory event names a bus file of a kind we watch over ipc.
static bool
s_is_watched_file(proto_disc_t *self, const char *name)
{
    char kind[32];
    pid_t pid;
    bool is_req;
    if (proto_disc_parse_name(name, kind, sizeof kind, &pid, &is_req) != 0 || pid == self->skip_pid)
        return false;
    s_watch_t *w = s_find(self, kind);
    return w != NULL && w->mode == S_IPC;
}

static void
s_on_dir_event(struct ev_loop *loop, ev_io *io, int revents)
{
    (void) loop;
    (void) revents;
    proto_disc_t *self = io->data;
    char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
    bool rescan = false;
    for (;;) {
        ssize_t n = read(self->dir_fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n < 0 && errno != EAGAIN)
                log_warn("reading directory events failed", LOG_S("dir", self->bus_dir),
                         LOG_S("error", strerror(errno)));
            break;
        }
        for (char *p = buf; p < buf + n;) {
            const struct inotify_event *ev = (const struct inotify_event *) (void *) p;
            p += sizeof *ev + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                rescan = true; // events were lost: look at everything
            } else if ((ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF))
                       && ev->wd == self->dir_wd) {
                // the directory is gone (a moved one is watched under its new name: drop
                // it), and its instances with it; the timer creates and watches it again
                if (ev->mask & IN_MOVE_SELF)
                    inotify_rm_watch(self->dir_fd, self->dir_wd);
                self->dir_wd = -1;
                rescan = true;
            } else if (ev->len > 0 && s_is_watched_file(self, ev->name)) {
                rescan = true;
            }
        }
    }
    if (rescan)
        s_scan_dir(self);
}

//  Create the bus directory and watch it, if not done yet. Without a watch
//  the 1 s rescan still finds everything, only later.
static void
s_watch_dir(proto_disc_t *self)
{
    if (self->dir_wd >= 0)
        return;
    const char *what = "inotify_init1";
    if (self->dir_fd < 0) {
        self->dir_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        if (self->dir_fd < 0)
            goto fail;
        ev_io_init(&self->dir_io, s_on_dir_event, self->dir_fd, EV_READ);
        self->dir_io.data = self;
        ev_io_start(self->loop, &self->dir_io);
    }
    // before the watch, so that the watch exists even when no actor has bound yet
    what = "mkdir";
    if (proto_disc_mkdirs(self->bus_dir) != 0)
        goto fail;
    what = "inotify_add_watch";
    self->dir_wd = inotify_add_watch(self->dir_fd, self->bus_dir,
                                     IN_CREATE | IN_MOVED_TO | IN_DELETE | IN_MOVED_FROM
                                         | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR);
    if (self->dir_wd < 0)
        goto fail;
    self->dir_warned = false;
    return;
fail:
    // retried every rescan; said once
    if (!self->dir_warned)
        log_warn("cannot watch the bus directory: rescanning every second only",
                 LOG_S("dir", self->bus_dir), LOG_S("call", what), LOG_S("error", strerror(errno)));
    self->dir_warned = true;
}

// --------------------------------------------------------------------------
// Timers and lifecycle

static void
s_on_scan_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) revents;
    proto_disc_t *self = t->data;
    if (self->ipc_on)
        s_watch_dir(self); // again, if the directory was removed
    s_scan_dir(self);
    uint64_t now = (uint64_t) (ev_now(loop) * 1000);
    if (self->resolve && now >= self->dns_due_ms) {
        self->dns_due_ms = now + PROTO_DISC_DNS_MS;
        for (size_t i = 0; i < self->nwatches; i++)
            if (self->watches[i]->mode == S_DNS)
                s_resolve(self, self->watches[i]);
    }
}

proto_disc_t *
proto_disc_new(
    struct ev_loop *loop, const char *bus_dir, pid_t skip_pid, proto_disc_fn *fn, void *arg)
{
    proto_disc_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->bus_dir = proto_xstrdup(bus_dir);
    self->skip_pid = skip_pid;
    self->fn = fn;
    self->arg = arg;
    ev_timer_init(&self->scan_timer, s_on_scan_timer, 0., PROTO_DISC_SCAN_MS / 1000.);
    self->scan_timer.data = self;
    self->dir_fd = -1;
    self->dir_wd = -1;
    return self;
}

int
proto_disc_watch(proto_disc_t *self, const char *kind, const char *spec, char *err, size_t errlen)
{
    if (self->nwatches >= S_MAX_WATCHES || strlen(kind) >= sizeof(((s_watch_t *) 0)->kind)) {
        snprintf(err, errlen, "too many peer kinds");
        return -1;
    }
    if (proto_disc_check_spec(spec, err, errlen) != 0)
        return -1;
    if (s_find(self, kind) != NULL)
        return 0;
    s_watch_t *w = proto_xcalloc(1, sizeof *w);
    w->owner = self;
    proto_strlcpy(w->kind, kind, sizeof w->kind);
    if (spec == NULL || *spec == '\0') {
        w->mode = S_IPC;
        self->ipc_on = true;
        s_watch_dir(self);
    } else if (proto_starts_with(spec, "dns:")) {
        const char *name = spec + strlen("dns:");
        const char *colon = strrchr(name, ':');
        w->mode = S_DNS;
        snprintf(w->dns_name, sizeof w->dns_name, "%.*s", (int) (colon - name), name);
        w->port = (unsigned) strtoul(colon + 1, NULL, 10);
        if (s_resolve_start(self, err, errlen) != 0) {
            free(w);
            return -1;
        }
    } else {
        w->mode = S_LIST;
    }
    self->watches[self->nwatches++] = w;
    if (!ev_is_active(&self->scan_timer))
        ev_timer_again(self->loop, &self->scan_timer);

    // first answer now rather than at the first tick
    if (w->mode == S_IPC) {
        s_scan_dir(self);
    } else if (w->mode == S_DNS) {
        s_resolve(self, w);
    } else {
        s_inst_t *next = proto_xcalloc(PROTO_DISC_MAX_INSTANCES, sizeof *next);
        size_t n = 0;
        const char *p = spec;
        while (*p && n < PROTO_DISC_MAX_INSTANCES) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t) (comma - p) : strlen(p);
            snprintf(next[n].req, sizeof next[n].req, "%.*s", (int) len, p);
            proto_disc_pub_of(next[n].req, next[n].pub, sizeof next[n].pub);
            n++;
            p += len;
            if (*p == ',')
                p++;
        }
        s_apply(self, w, next, n);
        free(next);
    }
    return 0;
}

void
proto_disc_rescan(proto_disc_t *self)
{
    s_scan_dir(self);
}

size_t
proto_disc_count(proto_disc_t *self, const char *kind)
{
    s_watch_t *w = s_find(self, kind);
    return w ? w->count : 0;
}

void
proto_disc_destroy(proto_disc_t **self_p)
{
    proto_disc_t *self = *self_p;
    if (self == NULL)
        return;
    ev_timer_stop(self->loop, &self->scan_timer);
    if (self->dir_fd >= 0) {
        ev_io_stop(self->loop, &self->dir_io);
        close(self->dir_fd); // removes the watch too
        self->dir_fd = -1;
    }
    proto_resolve_destroy(&self->resolve); // queries in flight end without a callback
    for (size_t i = 0; i < self->nwatches; i++) {
        free(self->watches[i]);
        self->watches[i] = NULL;
    }
    free(self->bus_dir);
    self->bus_dir = NULL;
    free(self);
    *self_p = NULL;
}
