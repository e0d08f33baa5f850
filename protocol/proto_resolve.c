/*  proto_resolve - asynchronous name resolution (c-ares) on a libev loop.

    Every lookup is a query record on the resolver's list, found by its id.
    c-ares cannot drop one query of a channel (ares_cancel drops them all),
    so a cancelled query only loses its callback: the record stays until
    c-ares ends it, then is freed without a word. Answers are not delivered
    from inside c-ares: they are queued and handed out by a zero-delay timer,
    so that a callback may start or cancel lookups freely, and so that an
    answer c-ares gives synchronously (an /etc/hosts hit, inside
    ares_getaddrinfo) reaches the caller only after proto_resolve_lookup has
    returned its id, like a literal's.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ares.h>
#include <ev.h>

#include "proto_log.h"
#include "proto_resolve.h"
#include "proto_util.h"

#define S_MAX_FDS 32 // c-ares sockets watched at once

typedef struct s_query s_query_t;

//  One lookup, from proto_resolve_lookup until its answer is delivered (or,
//  when cancelled, until c-ares lets go of it).
struct s_query {
    proto_resolve_t *owner;         // for the c-ares callback
    uint64_t id;                    // > 0, unique per resolver
    uint16_t port;                  // set in every address
    proto_resolve_fn *fn;           // NULL once cancelled
    void *arg;                      // its argument
    bool in_ares;                   // c-ares still holds it (its callback is to come)
    proto_resolve_status_t status;  // the answer ...
    struct sockaddr_storage *addrs; // ... its addresses (heap, NULL when none)
    size_t count;                   // ... how many
    uint32_t ttl_s;                 // ... the smallest TTL
    s_query_t *prev;                // every live query
    s_query_t *next;                // ...
    s_query_t *ready_next;          // answered, waiting for delivery
};

typedef struct {
    ev_io io;  // readiness of one c-ares socket
    bool used; // slot in use
} s_fd_t;

struct proto_resolve {
    struct ev_loop *loop;  // our loop
    char *servers;         // NULL: the system's; else for ares_set_servers_ports_csv
    int timeout_ms;        // per try
    int tries;             // per server
    ares_channel channel;  // created by the first name lookup
    bool channel_on;       // channel initialised
    bool channel_warned;   // a failed channel creation was logged
    s_fd_t fds[S_MAX_FDS]; // c-ares sockets
    ev_timer ares_timer;   // c-ares timeouts, running only while pending > 0
    size_t pending;        // queries c-ares holds
    uint64_t sent;         // lookups handed to c-ares
    uint64_t next_id;      // the last id given
    s_query_t *all;        // every live query
    s_query_t *ready_head; // answered queries, in order
    s_query_t *ready_tail; // ...
    ev_timer ready_timer;  // delivers them on the next loop turn
    bool delivering;       // inside a user callback
};

// --------------------------------------------------------------------------
// Names and addresses

proto_resolve_status_t
proto_resolve_check_name(const char *name, size_t len)
{
    if (name == NULL || len == 0 || len > PROTO_RESOLVE_NAME_MAX)
        return PROTO_RESOLVE_BAD_NAME;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) name[i];
        if (c <= ' ' || c == 0x7f)
            return PROTO_RESOLVE_BAD_NAME; // NUL, space, control: never part of a host name
    }
    return PROTO_RESOLVE_OK;
}

socklen_t
proto_resolve_literal(const char *name, uint16_t port, int family, struct sockaddr_storage *addr)
{
    memset(addr, 0, sizeof *addr);
    if (family != AF_INET6) {
        struct sockaddr_in *sin = (struct sockaddr_in *) (void *) addr;
        if (inet_pton(AF_INET, name, &sin->sin_addr) == 1) {
            sin->sin_family = AF_INET;
            sin->sin_port = htons(port);
            return (socklen_t) sizeof *sin;
        }
    }
    if (family != AF_INET) {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *) (void *) addr;
        if (inet_pton(AF_INET6, name, &sin6->sin6_addr) == 1) {
            sin6->sin6_family = AF_INET6;
            sin6->sin6_port = htons(port);
            return (socklen_t) sizeof *sin6;
        }
    }
    memset(addr, 0, sizeof *addr);
    return 0;
}

int
proto_resolve_check_servers(const char *servers, char *err, size_t errlen)
{
    if (servers == NULL || *servers == '\0')
        return 0;
    if (strlen(servers) > PROTO_RESOLVE_SERVERS) {
        snprintf(err, errlen, "longer than %d bytes", PROTO_RESOLVE_SERVERS);
        return -1;
    }
    // c-ares itself is the judge (a channel that never sends a query)
    ares_channel channel;
    int rc = ares_init_options(&channel, &(struct ares_options){0}, 0);
    if (rc == ARES_SUCCESS) {
        rc = ares_set_servers_ports_csv(channel, servers);
        ares_destroy(channel);
    }
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "expected IP[:PORT] or [IPv6]:PORT, comma-separated: %s",
                 ares_strerror(rc));
        return -1;
    }
    return 0;
}

socklen_t
proto_resolve_addrlen(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET)
        return (socklen_t) sizeof(struct sockaddr_in);
    if (addr->ss_family == AF_INET6)
        return (socklen_t) sizeof(struct sockaddr_in6);
    return 0;
}

const char *
proto_resolve_strstatus(proto_resolve_status_t status)
{
    switch (status) {
        case PROTO_RESOLVE_OK:
            return "ok";
        case PROTO_RESOLVE_NOT_FOUND:
            return "not found";
        case PROTO_RESOLVE_TIMEOUT:
            return "timeout";
        case PROTO_RESOLVE_FAILED:
            return "failed";
        case PROTO_RESOLVE_BAD_NAME:
            return "bad name";
    }
    return "unknown";
}

// --------------------------------------------------------------------------
// Queries

static s_query_t *
s_query_new(proto_resolve_t *self, uint16_t port, proto_resolve_fn *fn, void *arg)
{
    s_query_t *q = proto_xcalloc(1, sizeof *q);
    q->owner = self;
    q->id = ++self->next_id;
    q->port = port;
    q->fn = fn;
    q->arg = arg;
    q->next = self->all;
    if (self->all)
        self->all->prev = q;
    self->all = q;
    return q;
}

static void
s_query_free(proto_resolve_t *self, s_query_t **q_p)
{
    s_query_t *q = *q_p;
    if (q->prev)
        q->prev->next = q->next;
    else
        self->all = q->next;
    if (q->next)
        q->next->prev = q->prev;
    free(q->addrs);
    q->addrs = NULL;
    free(q);
    *q_p = NULL;
}

//  Queue q's answer for delivery on the next loop turn.
static void
s_ready(proto_resolve_t *self, s_query_t *q)
{
    q->ready_next = NULL;
    if (self->ready_tail)
        self->ready_tail->ready_next = q;
    else
        self->ready_head = q;
    self->ready_tail = q;
    if (!ev_is_active(&self->ready_timer)) {
        ev_timer_set(&self->ready_timer, 0., 0.);
        ev_timer_start(self->loop, &self->ready_timer);
    }
}

static void
s_on_ready(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    proto_resolve_t *self = w->data;
    // this batch only: answers queued by the callbacks wait for the next turn
    s_query_t *q = self->ready_head;
    self->ready_head = NULL;
    self->ready_tail = NULL;
    while (q) {
        s_query_t *next = q->ready_next;
        if (q->fn) {
            proto_resolve_fn *fn = q->fn;
            q->fn = NULL; // answered: a cancel from the callback is a no-op
            self->delivering = true;
            fn(q->arg, q->status, q->addrs, q->count, q->ttl_s);
            self->delivering = false;
        }
        s_query_free(self, &q);
        q = next;
    }
}

// --------------------------------------------------------------------------
// c-ares on the loop

//  Run the timeout timer until the nearest c-ares deadline, or stop it when
//  nothing is pending.
static void
s_arm(proto_resolve_t *self)
{
    ev_timer_stop(self->loop, &self->ares_timer);
    if (self->pending == 0 || !self->channel_on)
        return;
    struct timeval max = {.tv_sec = 1, .tv_usec = 0}, tv;
    struct timeval *next = ares_timeout(self->channel, &max, &tv);
    double after = (double) next->tv_sec + (double) next->tv_usec / 1e6;
    ev_timer_set(&self->ares_timer, after < 0.001 ? 0.001 : after, 0.);
    ev_timer_start(self->loop, &self->ares_timer);
}

static void
s_on_ares_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    proto_resolve_t *self = w->data;
    ares_process_fd(self->channel, (revents & EV_READ) ? w->fd : ARES_SOCKET_BAD,
                    (revents & EV_WRITE) ? w->fd : ARES_SOCKET_BAD);
    s_arm(self);
}

static void
s_on_ares_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    proto_resolve_t *self = w->data;
    ares_process_fd(self->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    s_arm(self);
}

//  c-ares tells us which sockets to watch.
static void
s_on_ares_sock(void *data, ares_socket_t fd, int readable, int writable)
{
    proto_resolve_t *self = data;
    int events = (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    s_fd_t *slot = NULL, *free_slot = NULL;
    for (size_t i = 0; i < S_MAX_FDS; i++) {
        if (self->fds[i].used && self->fds[i].io.fd == fd)
            slot = &self->fds[i];
        else if (!self->fds[i].used && free_slot == NULL)
            free_slot = &self->fds[i];
    }
    if (slot) {
        ev_io_stop(self->loop, &slot->io);
        slot->used = false;
    }
    if (events == 0)
        return;
    slot = slot ? slot : free_slot;
    if (slot == NULL) {
        // its queries still end, by timeout
        log_warn("too many DNS sockets", LOG_I("fd", fd));
        return;
    }
    ev_io_init(&slot->io, s_on_ares_io, fd, events);
    slot->io.data = self;
    slot->used = true;
    ev_io_start(self->loop, &slot->io);
}

static proto_resolve_status_t
s_status_of(int ares_status)
{
    switch (ares_status) {
        case ARES_SUCCESS:
            return PROTO_RESOLVE_OK;
        case ARES_ENOTFOUND:
        case ARES_ENODATA:
        case ARES_ENONAME:
            return PROTO_RESOLVE_NOT_FOUND;
        case ARES_ETIMEOUT:
            return PROTO_RESOLVE_TIMEOUT;
        default:
            return PROTO_RESOLVE_FAILED;
    }
}

static bool
s_same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    return a->ss_family == b->ss_family && memcmp(a, b, proto_resolve_addrlen(a)) == 0;
}

//  Copy res's addresses (deduplicated, port set) and smallest TTL into q.
static void
s_take_answer(s_query_t *q, const struct ares_addrinfo *res)
{
    size_t n = 0;
    for (const struct ares_addrinfo_node *node = res->nodes; node; node = node->ai_next)
        n++;
    if (n > PROTO_RESOLVE_MAX_ADDRS)
        n = PROTO_RESOLVE_MAX_ADDRS;
    q->addrs = n ? proto_xcalloc(n, sizeof *q->addrs) : NULL;
    long ttl = -1;
    for (const struct ares_addrinfo_node *node = res->nodes; node && q->count < n;
         node = node->ai_next) {
        struct sockaddr_storage *a = &q->addrs[q->count];
        if (node->ai_family == AF_INET && node->ai_addrlen >= sizeof(struct sockaddr_in)) {
            memcpy(a, node->ai_addr, sizeof(struct sockaddr_in));
            ((struct sockaddr_in *) (void *) a)->sin_port = htons(q->port);
        } else if (node->ai_family == AF_INET6 && node->ai_addrlen >= sizeof(struct sockaddr_in6)) {
            memcpy(a, node->ai_addr, sizeof(struct sockaddr_in6));
            ((struct sockaddr_in6 *) (void *) a)->sin6_port = htons(q->port);
        } else {
            continue;
        }
        bool dup = false;
        for (size_t i = 0; i < q->count && !dup; i++)
            dup = s_same_addr(&q->addrs[i], a);
        if (dup) {
            memset(a, 0, sizeof *a);
            continue;
        }
        q->count++;
        if (ttl < 0 || node->ai_ttl < ttl)
            ttl = node->ai_ttl;
    }
    // a CNAME on the way bounds the answer's life too
    for (const struct ares_addrinfo_cname *c = res->cnames; c && q->count; c = c->next)
        if (c->ttl < ttl)
            ttl = c->ttl;
    q->ttl_s = ttl > 0 ? (uint32_t) ttl : 0;
    q->status = q->count ? PROTO_RESOLVE_OK : PROTO_RESOLVE_NOT_FOUND;
}

static void
s_on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    (void) timeouts;
    s_query_t *q = arg;
    proto_resolve_t *self = q->owner;
    q->in_ares = false;
    self->pending--;
    if (status == ARES_EDESTRUCTION || q->fn == NULL) {
        // the resolver is going (it frees the record itself), or nobody listens
        if (res)
            ares_freeaddrinfo(res);
        if (status != ARES_EDESTRUCTION)
            s_query_free(self, &q);
        return;
    }
    if (status == ARES_SUCCESS && res)
        s_take_answer(q, res);
    else
        q->status = s_status_of(status == ARES_SUCCESS ? ARES_ENODATA : status);
    if (res)
        ares_freeaddrinfo(res);
    s_ready(self, q);
}

static int
s_channel(proto_resolve_t *self)
{
    if (self->channel_on)
        return 0;
    struct ares_options opts = {.sock_state_cb = s_on_ares_sock,
                                .sock_state_cb_data = self,
                                .timeout = self->timeout_ms,
                                .tries = self->tries};
    int rc = ares_init_options(&self->channel, &opts,
                               ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    const char *what = "ares_init_options";
    if (rc == ARES_SUCCESS && self->servers) {
        what = "ares_set_servers_ports_csv";
        rc = ares_set_servers_ports_csv(self->channel, self->servers);
        if (rc != ARES_SUCCESS)
            ares_destroy(self->channel);
    }
    if (rc != ARES_SUCCESS) {
        if (!self->channel_warned)
            log_warn("cannot start the DNS resolver", LOG_S("call", what),
                     LOG_S("servers", self->servers ? self->servers : "system"),
                     LOG_S("error", ares_strerror(rc)));
        self->channel_warned = true;
        return -1;
    }
    self->channel_on = true;
    return 0;
}

// --------------------------------------------------------------------------
// Lifecycle and lookups

proto_resolve_t *
proto_resolve_new(struct ev_loop *loop, const proto_resolve_opts_t *opts)
{
    assert(loop);
    proto_resolve_opts_t none = {0};
    if (opts == NULL)
        opts = &none;
    if (opts->timeout_ms < 0 || opts->tries < 0
        || (opts->servers && strlen(opts->servers) > PROTO_RESOLVE_SERVERS))
        return NULL;
    proto_resolve_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    if (opts->servers && *opts->servers)
        self->servers = proto_xstrdup(opts->servers);
    self->timeout_ms = opts->timeout_ms ? opts->timeout_ms : PROTO_RESOLVE_TIMEOUT_MS;
    self->tries = opts->tries ? opts->tries : PROTO_RESOLVE_TRIES;
    ev_init(&self->ares_timer, s_on_ares_timer);
    self->ares_timer.data = self;
    ev_init(&self->ready_timer, s_on_ready);
    self->ready_timer.data = self;
    return self;
}

proto_resolve_status_t
proto_resolve_lookup(proto_resolve_t *self,
                     const char *name,
                     uint16_t port,
                     int family,
                     proto_resolve_fn *fn,
                     void *arg,
                     uint64_t *id_p)
{
    assert(self);
    assert(fn);
    assert(id_p);
    assert(family == AF_UNSPEC || family == AF_INET || family == AF_INET6);
    *id_p = 0;
    size_t len = name ? strnlen(name, PROTO_RESOLVE_NAME_MAX + 1) : 0;
    if (proto_resolve_check_name(name, len) != PROTO_RESOLVE_OK)
        return PROTO_RESOLVE_BAD_NAME;

    struct sockaddr_storage addr;
    bool v4 = proto_resolve_literal(name, port, AF_INET, &addr) > 0;
    bool v6 = !v4 && proto_resolve_literal(name, port, AF_INET6, &addr) > 0;
    if (v4 || v6) {
        // a literal: no query, only the family to check
        s_query_t *q = s_query_new(self, port, fn, arg);
        if ((v4 && family == AF_INET6) || (v6 && family == AF_INET)) {
            q->status = PROTO_RESOLVE_NOT_FOUND;
        } else {
            q->addrs = proto_xcalloc(1, sizeof *q->addrs);
            q->addrs[0] = addr;
            q->count = 1;
            q->status = PROTO_RESOLVE_OK;
        }
        s_ready(self, q);
        *id_p = q->id;
        return PROTO_RESOLVE_OK;
    }

    if (s_channel(self) != 0)
        return PROTO_RESOLVE_FAILED;
    s_query_t *q = s_query_new(self, port, fn, arg);
    *id_p = q->id;
    q->in_ares = true;
    self->pending++;
    self->sent++;
    struct ares_addrinfo_hints hints = {.ai_family = family, .ai_socktype = SOCK_STREAM};
    // may call s_on_addrinfo at once (/etc/hosts): it only queues the answer
    ares_getaddrinfo(self->channel, name, NULL, &hints, s_on_addrinfo, q);
    s_arm(self);
    return PROTO_RESOLVE_OK;
}

void
proto_resolve_cancel(proto_resolve_t *self, uint64_t id)
{
    assert(self);
    if (id == 0)
        return;
    for (s_query_t *q = self->all; q; q = q->next)
        if (q->id == id) {
            // freed when delivered, or when c-ares ends it
            q->fn = NULL;
            q->arg = NULL;
            return;
        }
}

size_t
proto_resolve_pending(const proto_resolve_t *self)
{
    return self->pending;
}

uint64_t
proto_resolve_sent(const proto_resolve_t *self)
{
    return self->sent;
}

void
proto_resolve_destroy(proto_resolve_t **self_p)
{
    assert(self_p);
    proto_resolve_t *self = *self_p;
    if (self == NULL)
        return;
    assert(!self->delivering); // not from inside our own callback
    ev_timer_stop(self->loop, &self->ready_timer);
    ev_timer_stop(self->loop, &self->ares_timer);
    for (s_query_t *q = self->all; q; q = q->next)
        q->fn = NULL; // nobody hears of anything from now on
    if (self->channel_on) {
        ares_destroy(self->channel); // its callbacks see ARES_EDESTRUCTION
        self->channel_on = false;
        for (size_t i = 0; i < S_MAX_FDS; i++)
            if (self->fds[i].used) {
                ev_io_stop(self->loop, &self->fds[i].io);
                self->fds[i].used = false;
            }
    }
    while (self->all) {
        s_query_t *q = self->all;
        s_query_free(self, &q);
    }
    free(self->servers);
    self->servers = NULL;
    free(self);
    *self_p = NULL;
}
