/*  proto_bus - ROUTER + XPUB bound, DEALER + SUB per peer kind, on one libev loop.

    Receive path: a proto_zwatch per socket calls s_on_<socket>, which takes at
    most PROTO_BUS_BATCH messages with ZMQ_DONTWAIT, checks the frame count,
    decodes (proto_decode validates everything), mirrors to taps, drops a
    type arriving on a kind of socket its messages.def SOCKET does not name,
    and dispatches: replies to their pending request by id (never to a
    handler), ping to the built-in pong, requests and events to the handler
    registered for their type.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <zmq.h>

#include "proto_bus.h"
#include "proto_curve.h"
#include "proto_desc.h"
#include "proto_disc.h"
#include "proto_log.h"
#include "proto_monitor.h"
#include "proto_proc.h"
#include "proto_util.h"
#include "proto_hold.h"
#include "proto_zwatch.h"

#define S_PENDING_BUCKETS 4096
#define S_MAX_TOPICS      16
#define S_SUBWATCH_MAX    4
#define S_MAXMSGSIZE      (16 * 1024 * 1024) // far above PROTO_MSG_MAX: libzmq drops the link

static const char *s_kind_names[PROTO_KIND_COUNT] = {
#define PROTO_KIND_NAME(C, name) #name,
    PROTO_KINDS(PROTO_KIND_NAME)
#undef PROTO_KIND_NAME
};

const char *
proto_kind_name(int kind)
{
    return kind >= 0 && kind < PROTO_KIND_COUNT ? s_kind_names[kind] : NULL;
}

int
proto_kind_by_name(const char *name)
{
    for (int k = 0; k < PROTO_KIND_COUNT; k++)
        if (strcmp(s_kind_names[k], name) == 0)
            return k;
    return -1;
}

#define S_PARKED_RETRY_MS 5 // how often a request waiting for a peer tries again

static void s_on_parked_timer(struct ev_loop *loop, ev_timer *t, int revents);
static void s_on_hold_timer(struct ev_loop *loop, ev_timer *t, int revents);

typedef struct s_pending {
    uint64_t id;             // request message id
    ev_tstamp deadline;      // ev_now-based
    proto_reply_fn *fn;      // callback
    void *arg;               // its argument
    int kind;                // peer kind it goes to
    uint8_t *parked;         // the encoded request while no peer could take it, else NULL
    size_t parked_len;       // its bytes
    struct s_pending *hnext; // hash chain
    struct s_pending *prev;  // deadline order
    struct s_pending *next;  // deadline order
} s_pending_t;

typedef struct {
    void *dealer;             // requests out, NULL if unused
    void *sub;                // events in, NULL if unused
    proto_zwatch_t *dealer_w; // watcher of dealer
    proto_zwatch_t *sub_w;    // watcher of sub
    bool used;                // proto_bus_use was called
} s_peer_t;

typedef struct {
    proto_bus_fn *fn; // handler
    void *arg;        // its argument
} s_handler_t;

typedef struct {
    char name[PROTO_COUNTER_NAME_MAX + 1]; // as pong reports it
    const uint64_t *value;                 // the actor's, read at each pong
} s_own_counter_t;

//  Counters pong reports before the actor's own: one per drop reason but
//  PROTO_OK, s_fixed_counters, and one per peer kind.
static const char *const s_fixed_counters[] = {
    "dropped.send", "replies.late",         "requests.pending", "log.dropped", "taps",
    "monitors",     "bus.handshake_failed", "bus.refused",      "bus.held",    "bus.hold_dropped",
};
#define S_BUILTIN_COUNTERS                                                                         \
    (PROTO_ERR_COUNT - 1 + PROTO_ARRAY_SIZE(s_fixed_counters) + PROTO_KIND_COUNT)
_Static_assert(S_BUILTIN_COUNTERS + PROTO_BUS_COUNTERS <= PROTO_PONG_COUNTERS_MAX,
               "pong's counters list cannot hold every counter");
_Static_assert((int) PROTO_PROC_STATS_COUNTERS_MAX == (int) PROTO_PONG_COUNTERS_MAX,
               "proc.stats carries the counters pong reports");

//  A watch on the subscribers of one addressed event type (proto_bus_on_subscriber).
typedef struct {
    proto_type_t type; // the event
    proto_sub_fn *fn;  // told of each instance that comes and goes
    void *arg;         // its argument
} s_subwatch_t;

struct proto_bus {
    struct ev_loop *loop;                            // the actor's loop
    void *ctx;                                       // ZeroMQ context
    proto_curve_t *curve;                            // CURVE keys for tcp, NULL: plain
    proto_curve_guard_t *guard;                      // ZAP handler, failed handshakes
    void *router;                                    // requests in
    void *xpub;                                      // events out, subscriptions in
    proto_zwatch_t *router_w;                        // watcher of router
    proto_zwatch_t *xpub_w;                          // watcher of xpub
    s_peer_t peers[PROTO_KIND_COUNT];                // per peer kind
    proto_disc_t *disc;                              // finds peer instances
    s_handler_t handlers[PROTO_TYPE_COUNT];          // per message type
    char *kind;                                      // our kind
    char *instance;                                  // INSTANCE_ID
    char *region;                                    // REGION
    char *bus_dir;                                   // BUS_DIR
    char *bus_bind;                                  // BUS_BIND or NULL
    char *peer_specs[PROTO_KIND_COUNT];              // BUS_PEERS_<KIND>
    char src[PROTO_SRC_MAX + 1];                     // "kind/instance"
    char req_path[256];                              // ipc file of router ("" for tcp)
    char pub_path[256];                              // ipc file of xpub ("" for tcp)
    int64_t stats_interval_ms;                       // proc.stats period
    ev_timer stats_timer;                            // publishes proc.stats
    ev_timer pending_timer;                          // fires at the earliest deadline
    ev_timer parked_timer;                           // retries parked requests
    size_t nparked;                                  // requests waiting for a peer
    s_pending_t *buckets[S_PENDING_BUCKETS];         // pending requests by id
    s_pending_t *oldest;                             // pending requests by deadline
    s_pending_t *newest;                             // ...
    size_t npending;                                 // how many
    uint64_t next_id;                                // message ids
    uint64_t start_ms;                               // wall clock at start
    uint64_t start_us;                               // monotonic at start
    uint64_t msgs_in;                                // received
    uint64_t msgs_out;                               // sent
    uint64_t dropped[PROTO_ERR_COUNT];               // dropped by reason
    uint64_t send_failed;                            // sends that could not be queued
    uint64_t late_replies;                           // replies with no pending request
    int taps;                                        // tap subscriptions
    s_subwatch_t subwatch[S_SUBWATCH_MAX];           // subscribers to addressed events
    size_t nsubwatch;                                // how many
    proto_hold_t *hold;                              // addressed events waiting for a subscription
    ev_timer hold_timer;                             // expires them while some are held
    int monitors;                                    // socket.event subscriptions
    proto_monitor_t *mons[2 + 2 * PROTO_KIND_COUNT]; // socket event sources
    size_t nmons;                                    // how many
    bool started;                                    // proto_bus_start succeeded
    proto_buf_t buf;                                 // encoding buffer
    proto_in_t *in;                                  // receive slot
    s_own_counter_t counters[PROTO_BUS_COUNTERS];    // the actor's own, for pong
    size_t ncounters;                                // how many
};

// --------------------------------------------------------------------------
// Socket helpers

static void
s_setint(void *sock, int option, int value)
{
    if (zmq_setsockopt(sock, option, &value, sizeof value) != 0)
        log_warn("zmq_setsockopt failed", LOG_I("option", option),
                 LOG_S("error", zmq_strerror(zmq_errno())));
}

static void *
s_socket(proto_bus_t *self, int type)
{
    void *sock = zmq_socket(self->ctx, type);
    if (sock == NULL)
        return NULL;
    bool pubsub = type == ZMQ_XPUB || type == ZMQ_SUB;
    s_setint(sock, ZMQ_SNDHWM, pubsub ? PROTO_BUS_PUB_HWM : PROTO_BUS_HWM);
    s_setint(sock, ZMQ_RCVHWM, pubsub ? PROTO_BUS_PUB_HWM : PROTO_BUS_HWM);
    s_setint(sock, ZMQ_LINGER, 0);
    s_setint(sock, ZMQ_IPV6, 1);
    s_setint(sock, ZMQ_HEARTBEAT_IVL, PROTO_BUS_HEARTBEAT);
    s_setint(sock, ZMQ_HEARTBEAT_TIMEOUT, PROTO_BUS_HB_TIMEOUT);
    s_setint(sock, ZMQ_HEARTBEAT_TTL, PROTO_BUS_HB_TIMEOUT);
    // a peer found the moment its file (or DNS name) appears may not listen yet: retry
    // after 10 ms, not libzmq's 100, doubling up to 2 s for a peer that stays away
    s_setint(sock, ZMQ_RECONNECT_IVL, 10);
    s_setint(sock, ZMQ_RECONNECT_IVL_MAX, 2000);
    int64_t maxmsg = S_MAXMSGSIZE;
    zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    if (type == ZMQ_DEALER)
        s_setint(sock, ZMQ_IMMEDIATE, 1);
    if (type == ZMQ_ROUTER)
        s_setint(sock, ZMQ_ROUTER_MANDATORY, 1);
    if (type == ZMQ_XPUB)
        s_setint(sock, ZMQ_XPUB_VERBOSER, 1);
    return sock;
}

//  Send one or two frames without blocking. Returns 0 or -1.
static int
s_send(void *sock, const void *f1, size_t l1, const void *f2, size_t l2)
{
    if (f1 != NULL && zmq_send(sock, f1, l1, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
        return -1;
    // ZeroMQ sends multi-part messages atomically: once the first part is
    // queued, the rest is accepted too
    if (zmq_send(sock, f2, l2, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

//  The watcher of a socket we just used outside its callback.
static void
s_touch(proto_bus_t *self, void *sock)
{
    if (sock == self->router && self->router_w)
        proto_zwatch_touch(self->router_w);
    else if (sock == self->xpub && self->xpub_w)
        proto_zwatch_touch(self->xpub_w);
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (sock == self->peers[k].dealer && self->peers[k].dealer_w)
            proto_zwatch_touch(self->peers[k].dealer_w);
        if (sock == self->peers[k].sub && self->peers[k].sub_w)
            proto_zwatch_touch(self->peers[k].sub_w);
    }
}

//  Mirror a message to the taps, if any are attached.
static void
s_tap(proto_bus_t *self, const char *dir, proto_type_t type, const void *body, size_t len)
{
    if (self->taps <= 0 || self->xpub == NULL)
        return;
    char topic[96];
    const char *name = proto_type_name(type);
    int n = snprintf(topic, sizeof topic, "tap.%s.%s.%s", self->kind, dir, name ? name : "invalid");
    if (n <= 0 || (size_t) n >= sizeof topic)
        return;
    (void) s_send(self->xpub, topic, (size_t) n, body, len);
    s_touch(self, self->xpub);
}

//  Fill the envelope and encode into self->buf.
static int
s_encode(proto_bus_t *self, proto_msg_t *msg, bool new_id)
{
    if (new_id)
        msg->id = ++self->next_id;
    msg->src = self->src;
    msg->ts = proto_now_ms();
    if (msg->rid == NULL)
        msg->rid = "";
    if (proto_encode(msg, &self->buf) != 0) {
        log_error("bus message not encodable", LOG_S("type", proto_type_name(msg->type)),
                  LOG_ERRNO(errno));
        self->send_failed++;
        return -1;
    }
    return 0;
}

//  At debug level, one line per request a message is about (its envelope
//  rid, or each item of a request.done batch), so that one grep for a
//  request id follows the request through every process. dir: "sent" or
//  "received"; peer: the sender of a received message.
static void
s_trace(const char *dir, const proto_msg_t *msg, const char *peer)
{
    if (proto_log_level_current < PROTO_LOG_DEBUG)
        return;
    const char *type = proto_type_name(msg->type);
    if (msg->rid != NULL && msg->rid[0] != '\0')
        log_debug(dir[0] == 's' ? "bus message sent" : "bus message received",
                  LOG_S("request_id", msg->rid), LOG_S("type", type), LOG_S("peer", peer));
    if (msg->type == PROTO_REQUEST_DONE)
        for (uint32_t i = 0; i < msg->request_done.items_count; i++) {
            const proto_reqinfo_t *r = &msg->request_done.items[i];
            log_debug(dir[0] == 's' ? "request metadata sent" : "request metadata received",
                      LOG_S("request_id", r->rid), LOG_S("type", type), LOG_S("peer", peer),
                      LOG_U("status", r->status), LOG_S("backend", r->backend));
        }
}

static void
s_sent(proto_bus_t *self, int rc, const proto_msg_t *msg)
{
    if (rc == 0) {
        self->msgs_out++;
        s_tap(self, "out", msg->type, self->buf.data, self->buf.size);
        s_trace("sent", msg, NULL);
    } else {
        self->send_failed++;
        log_debug("bus send failed", LOG_S("type", proto_type_name(msg->type)),
                  LOG_S("error", zmq_strerror(zmq_errno())));
    }
}

// --------------------------------------------------------------------------
// Pending requests

static size_t
s_bucket(uint64_t id)
{
    return (size_t) ((id * 0x9E3779B97F4A7C15ull) >> 52) & (S_PENDING_BUCKETS - 1);
}

static void
s_pending_rearm(proto_bus_t *self)
{
    ev_timer_stop(self->loop, &self->pending_timer);
    if (self->oldest == NULL)
        return;
    ev_tstamp after = self->oldest->deadline - ev_now(self->loop);
    ev_timer_set(&self->pending_timer, after > 0 ? after : 0., 0.);
    ev_timer_start(self->loop, &self->pending_timer);
}

static void
s_pending_unlink(proto_bus_t *self, s_pending_t *p)
{
    s_pending_t **pp = &self->buckets[s_bucket(p->id)];
    while (*pp != p)
        pp = &(*pp)->hnext;
    *pp = p->hnext;
    if (p->prev)
        p->prev->next = p->next;
    else
        self->oldest = p->next;
    if (p->next)
        p->next->prev = p->prev;
    else
        self->newest = p->prev;
    self->npending--;
}

static void
s_pending_free(proto_bus_t *self, s_pending_t **p_p)
{
    s_pending_t *p = *p_p;
    if (p->parked) {
        free(p->parked);
        p->parked = NULL;
        self->nparked--;
    }
    free(p);
    *p_p = NULL;
}

static s_pending_t *
s_pending_take(proto_bus_t *self, uint64_t id)
{
    for (s_pending_t *p = self->buckets[s_bucket(id)]; p; p = p->hnext) {
        if (p->id != id)
            continue;
        bool was_oldest = p == self->oldest;
        s_pending_unlink(self, p);
        if (was_oldest)
            s_pending_rearm(self);
        return p;
    }
    return NULL;
}

static void
s_pending_add(proto_bus_t *self, s_pending_t *p)
{
    size_t b = s_bucket(p->id);
    p->hnext = self->buckets[b];
    self->buckets[b] = p;
    // keep deadline order; mostly an append, since timeouts are mostly equal
    s_pending_t *after = self->newest;
    while (after && after->deadline > p->deadline)
        after = after->prev;
    p->prev = after;
    p->next = after ? after->next : self->oldest;
    if (p->next)
        p->next->prev = p;
    else
        self->newest = p;
    if (after)
        after->next = p;
    else
        self->oldest = p;
    self->npending++;
    if (p == self->oldest)
        s_pending_rearm(self);
}

static void
s_on_pending_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) revents;
    proto_bus_t *self = t->data;
    ev_tstamp now = ev_now(loop);
    while (self->oldest && self->oldest->deadline <= now) {
        s_pending_t *p = self->oldest;
        s_pending_unlink(self, p);
        p->fn(self, NULL, p->arg); // may add new requests
        s_pending_free(self, &p);
    }
    s_pending_rearm(self);
}

// --------------------------------------------------------------------------
// Built-in messages

static void
s_counter(proto_counter_t *c, size_t *n, size_t cap, const char *name, uint64_t value)
{
    if (*n >= cap)
        return;
    c[*n].name = name;
    c[*n].value = value;
    (*n)++;
}

//  The counters pong and proc.stats report, into counters (PROTO_PONG_COUNTERS_MAX
//  entries; names are borrowed from the bus). Returns how many.
static size_t
s_fill_counters(proto_bus_t *self, proto_counter_t *counters)
{
    static const char *drop_names[PROTO_ERR_COUNT] = {
        NULL,
        "dropped.oversize",
        "dropped.malformed",
        "dropped.version",
        "dropped.unknown",
        "dropped.missing",
        "dropped.type",
        "dropped.bound",
        "dropped.duplicate",
        "dropped.frames",
        "dropped.unexpected",
    };
    static const char *peer_names[PROTO_KIND_COUNT] = {
#define PROTO_KIND_PEER(C, name) "peers." #name,
        PROTO_KINDS(PROTO_KIND_PEER)
#undef PROTO_KIND_PEER
    };
    // in the order of s_fixed_counters
    const uint64_t fixed[] = {
        self->send_failed,
        self->late_replies,
        self->npending,
        proto_log_dropped(),
        (uint64_t) (self->taps > 0 ? self->taps : 0),
        (uint64_t) (self->monitors > 0 ? self->monitors : 0),
        *proto_curve_guard_failed(self->guard),
        *proto_curve_guard_refused(self->guard),
        proto_hold_count(self->hold),
        proto_hold_dropped(self->hold),
    };
    _Static_assert(PROTO_ARRAY_SIZE(fixed) == PROTO_ARRAY_SIZE(s_fixed_counters),
                   "a fixed counter without a name or value");
    size_t n = 0, cap = PROTO_PONG_COUNTERS_MAX;
    for (int r = 1; r < PROTO_ERR_COUNT; r++)
        s_counter(counters, &n, cap, drop_names[r], self->dropped[r]);
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(fixed); i++)
        s_counter(counters, &n, cap, s_fixed_counters[i], fixed[i]);
    for (int k = 0; k < PROTO_KIND_COUNT; k++)
        if (self->peers[k].used)
            s_counter(counters, &n, cap, peer_names[k], proto_bus_peers(self, k));
    for (size_t i = 0; i < self->ncounters; i++)
        s_counter(counters, &n, cap, self->counters[i].name, *self->counters[i].value);
    return n;
}

static void
s_answer_ping(proto_bus_t *self, proto_in_t *in)
{
    proto_counter_t counters[PROTO_PONG_COUNTERS_MAX];
    size_t n = s_fill_counters(self, counters);

    proto_msg_t pong;
    proto_msg_init(&pong, PROTO_PONG);
    pong.pong.kind = self->kind;
    pong.pong.instance = self->instance;
    pong.pong.pid = (uint32_t) getpid();
    pong.pong.version = SWITCHYARD_VERSION;
    pong.pong.region = self->region;
    pong.pong.uptime_ms = (proto_mono_us() - self->start_us) / 1000;
    pong.pong.sent_us = in->msg.ping.sent_us;
    pong.pong.msgs_in = self->msgs_in;
    pong.pong.msgs_out = self->msgs_out;
    pong.pong.counters = counters;
    pong.pong.counters_count = (uint32_t) n;
    proto_bus_reply(self, &in->ret, &pong);
}

void
proto_bus_proc_stats(proto_bus_t *self, proto_msg_t *msg, proto_counter_t *counters)
{
    proto_proc_sample_t s;
    (void) proto_proc_sample(&s);
    proto_msg_init(msg, PROTO_PROC_STATS);
    msg->proc_stats.kind = self->kind;
    msg->proc_stats.instance = self->instance;
    msg->proc_stats.pid = (uint32_t) getpid();
    msg->proc_stats.cpu_seconds = s.cpu_seconds;
    msg->proc_stats.rss_bytes = s.rss_bytes;
    msg->proc_stats.open_fds = s.open_fds;
    msg->proc_stats.start_time = (double) self->start_ms / 1000.0;
    msg->proc_stats.uptime_ms = (proto_mono_us() - self->start_us) / 1000;
    msg->proc_stats.counters = counters;
    msg->proc_stats.counters_count = (uint32_t) s_fill_counters(self, counters);
}

static void
s_publish_stats(proto_bus_t *self)
{
    proto_counter_t counters[PROTO_PONG_COUNTERS_MAX];
    proto_msg_t msg;
    proto_bus_proc_stats(self, &msg, counters);
    proto_bus_publish(self, &msg);
}

static void
s_on_stats_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) loop;
    (void) revents;
    s_publish_stats(t->data);
}

// --------------------------------------------------------------------------
// Receive

//  Read one whole message (all its frames) into parts[0..max). Returns the
//  number of frames (more than max if there were more), 0 if none waiting.
static int
s_recv_parts(void *sock, zmq_msg_t *parts, int max)
{
    int n = 0;
    int more;
    do {
        zmq_msg_t scratch;
        zmq_msg_t *part = n < max ? &parts[n] : &scratch;
        zmq_msg_init(part);
        if (zmq_msg_recv(part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(part);
            for (int i = 0; i < n && i < max; i++)
                zmq_msg_close(&parts[i]);
            return 0;
        }
        more = zmq_msg_more(part);
        if (part == &scratch)
            zmq_msg_close(&scratch);
        n++;
    } while (more);
    return n;
}

static void
s_close_parts(zmq_msg_t *parts, int n, int max)
{
    for (int i = 0; i < n && i < max; i++)
        zmq_msg_close(&parts[i]);
}

static void
s_drop(proto_bus_t *self, proto_in_t *in, const char *socket)
{
    self->dropped[in->msg.err]++;
    log_debug("bus message dropped", LOG_S("socket", socket),
              LOG_S("reason", proto_err_name(in->msg.err)), LOG_S("field", in->msg.err_field));
}

//  Decode body into self->in and dispatch it.
static void
s_dispatch(proto_bus_t *self, const void *body, size_t len, const char *socket)
{
    proto_in_t *in = self->in;
    self->msgs_in++;
    int rc = proto_decode(body, len, &in->msg);
    s_tap(self, "in", rc == 0 ? in->msg.type : PROTO_NONE, body, len);
    if (rc != 0) {
        s_drop(self, in, socket);
        return;
    }
    // messages.def's SOCKET column: an event type only on a SUB, a request
    // or reply type only on our ROUTER or a DEALER. So a handler of a ROUTER
    // type sees only requests, and one of an XPUB type only events.
    bool is_event = proto_mdesc(in->msg.type)->socket_type == PROTO_SOCKET_XPUB;
    if (is_event != (in->from == PROTO_FROM_EVENT)) {
        in->msg.err = PROTO_ERR_UNEXPECTED;
        in->msg.err_field = proto_type_name(in->msg.type);
        s_drop(self, in, socket);
        return;
    }
    s_trace("received", &in->msg, in->msg.src);
    if (in->from == PROTO_FROM_REQUEST) {
        in->ret.id = in->msg.id;
        proto_strlcpy(in->ret.rid, in->msg.rid, sizeof in->ret.rid);
    }
    if (in->from == PROTO_FROM_REPLY) {
        // a reply goes to the request that waits for it, never to a handler
        s_pending_t *p = s_pending_take(self, in->msg.id);
        if (p == NULL) {
            self->late_replies++;
            return;
        }
        p->fn(self, in, p->arg);
        s_pending_free(self, &p);
        return;
    }
    if (in->msg.type == PROTO_PING) {
        s_answer_ping(self, in);
        return;
    }
    s_handler_t *h = &self->handlers[in->msg.type];
    if (h->fn == NULL) {
        in->msg.err = PROTO_ERR_UNEXPECTED;
        in->msg.err_field = proto_type_name(in->msg.type);
        s_drop(self, in, socket);
        return;
    }
    h->fn(self, in, h->arg);
}

static void
s_on_router(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    proto_bus_t *self = arg;
    for (int i = 0; i < PROTO_BUS_BATCH; i++) {
        zmq_msg_t parts[2];
        int n = s_recv_parts(sock, parts, 2);
        if (n == 0)
            break;
        if (n != 2) {
            self->msgs_in++;
            self->dropped[PROTO_ERR_FRAMES]++;
            s_close_parts(parts, n, 2);
            continue;
        }
        proto_in_t *in = self->in;
        in->from = PROTO_FROM_REQUEST;
        in->kind = -1;
        size_t idlen = zmq_msg_size(&parts[0]);
        if (idlen > PROTO_BUS_IDENTITY)
            idlen = PROTO_BUS_IDENTITY;
        memcpy(in->ret.identity, zmq_msg_data(&parts[0]), idlen);
        in->ret.identity_len = (uint8_t) idlen;
        s_dispatch(self, zmq_msg_data(&parts[1]), zmq_msg_size(&parts[1]), "router");
        s_close_parts(parts, n, 2);
    }
}

static void
s_on_socket_event(
    const char *socket, const char *event, const char *endpoint, uint32_t value, void *arg)
{
    proto_bus_t *self = arg;
    log_debug("socket event", LOG_S("socket", socket), LOG_S("event", event),
              LOG_S("endpoint", endpoint));
    bool bound = strcmp(socket, "router") == 0 || strcmp(socket, "xpub") == 0;
    proto_curve_guard_event(self->guard, socket, bound, event, endpoint, value);
    if (self->monitors <= 0)
        return; // nobody is watching: it costs nothing more
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_SOCKET_EVENT);
    msg.socket_event.kind = self->kind;
    msg.socket_event.instance = self->instance;
    msg.socket_event.socket = socket;
    msg.socket_event.event = event;
    msg.socket_event.endpoint = endpoint;
    msg.socket_event.value = value;
    proto_bus_publish(self, &msg);
}

//  Monitor a socket's events under a name ("router", "dealer.apid", ...).
static void
s_monitor(proto_bus_t *self, void *sock, const char *name)
{
    if (sock == NULL || self->nmons >= PROTO_ARRAY_SIZE(self->mons))
        return;
    proto_monitor_t *m =
        proto_monitor_new(self->loop, self->ctx, sock, name, s_on_socket_event, self);
    if (m)
        self->mons[self->nmons++] = m;
}

//  Send an addressed event that was held for its subscription (proto_hold).
static int
s_send_held(void *arg, const char *topic, size_t tlen, const void *body, size_t len)
{
    proto_bus_t *self = arg;
    int rc = s_send(self->xpub, topic, tlen, body, len);
    s_touch(self, self->xpub);
    if (rc == 0)
        self->msgs_out++;
    else
        self->send_failed++;
    return rc;
}

//  An addressed event's subscription ("<wire>@<instance>;") came or went:
//  tell the watch of its type, with the instance.
static void
s_subscriber(proto_bus_t *self, const char *topic, size_t tlen, bool subscribed)
{
    for (size_t i = 0; i < self->nsubwatch; i++) {
        const char *wire = proto_type_name(self->subwatch[i].type);
        size_t wlen = strlen(wire);
        if (tlen < wlen + 3 || memcmp(topic, wire, wlen) != 0 || topic[wlen] != '@'
            || topic[tlen - 1] != ';')
            continue;
        char instance[PROTO_BUS_NAME_MAX + 1];
        size_t ilen = tlen - wlen - 2;
        if (ilen > PROTO_BUS_NAME_MAX)
            return;
        memcpy(instance, topic + wlen + 1, ilen);
        instance[ilen] = '\0';
        log_debug(subscribed ? "subscriber came" : "subscriber went", LOG_S("type", wire),
                  LOG_S("instance", instance));
        // what waited for this subscription goes before anything the watch sends
        proto_hold_subscription(self->hold, topic, tlen, subscribed, s_send_held, self);
        self->subwatch[i].fn(self, instance, subscribed, self->subwatch[i].arg);
        return;
    }
}

//  Subscription messages: count taps, answer a new proc.stats subscriber.
static void
s_on_xpub(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    proto_bus_t *self = arg;
    for (int i = 0; i < PROTO_BUS_BATCH; i++) {
        zmq_msg_t parts[1];
        int n = s_recv_parts(sock, parts, 1);
        if (n == 0)
            break;
        const uint8_t *data = zmq_msg_data(&parts[0]);
        size_t size = zmq_msg_size(&parts[0]);
        if (n == 1 && size >= 1 && (data[0] == 0 || data[0] == 1)) {
            const char *topic = (const char *) data + 1;
            size_t tlen = size - 1;
            // "tap." or a longer topic under it, or a prefix of it (such as "")
            bool tap = memcmp(topic, "tap.", tlen < strlen("tap.") ? tlen : strlen("tap.")) == 0;
            if (tap) {
                self->taps += data[0] == 1 ? 1 : -1;
                if (self->taps < 0)
                    self->taps = 0;
                log_info(data[0] == 1 ? "tap attached" : "tap detached", LOG_I("taps", self->taps));
            }
            bool mon = tlen > 0 && tlen <= strlen("socket.event")
                       && memcmp(topic, "socket.event", tlen) == 0;
            if (mon) {
                self->monitors += data[0] == 1 ? 1 : -1;
                if (self->monitors < 0)
                    self->monitors = 0;
            }
            bool stats = tlen <= strlen("proc.stats") && memcmp(topic, "proc.stats", tlen) == 0;
            if (data[0] == 1 && stats && self->started)
                s_publish_stats(self);
            s_subscriber(self, topic, tlen, data[0] == 1);
        }
        s_close_parts(parts, n, 1);
    }
}

static void
s_on_peer_socket(proto_bus_t *self, void *sock, bool is_sub)
{
    int kind = -1;
    for (int k = 0; k < PROTO_KIND_COUNT && kind < 0; k++)
        if (self->peers[k].dealer == sock || self->peers[k].sub == sock)
            kind = k;
    for (int i = 0; i < PROTO_BUS_BATCH; i++) {
        zmq_msg_t parts[2];
        int n = s_recv_parts(sock, parts, 2);
        if (n == 0)
            break;
        int want = is_sub ? 2 : 1;
        if (n != want) {
            self->msgs_in++;
            self->dropped[PROTO_ERR_FRAMES]++;
            s_close_parts(parts, n, 2);
            continue;
        }
        proto_in_t *in = self->in;
        in->from = is_sub ? PROTO_FROM_EVENT : PROTO_FROM_REPLY;
        in->kind = kind;
        in->ret.identity_len = 0;
        zmq_msg_t *body = &parts[want - 1];
        s_dispatch(self, zmq_msg_data(body), zmq_msg_size(body), is_sub ? "sub" : "dealer");
        s_close_parts(parts, n, 2);
    }
}

static void
s_on_dealer(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    s_on_peer_socket(arg, sock, false);
}

static void
s_on_sub(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    s_on_peer_socket(arg, sock, true);
}

// --------------------------------------------------------------------------
// Discovery

static void
s_on_instance(void *arg, const char *kind_name, const char *req, const char *pub, bool added)
{
    proto_bus_t *self = arg;
    int kind = proto_kind_by_name(kind_name);
    if (kind < 0)
        return;
    s_peer_t *peer = &self->peers[kind];
    // through the watchers: a connect can consume the ZMQ_FD edge, and the SUB never sends
    int (*op)(proto_zwatch_t *, const char *) =
        added ? proto_zwatch_connect : proto_zwatch_disconnect;
    // CURVE for a tcp peer, plain for ipc: libzmq takes the options at connect
    if (added && peer->dealer && proto_curve_connect_opts(self->curve, peer->dealer, req) != 0)
        log_warn("cannot set CURVE options", LOG_S("endpoint", req),
                 LOG_S("error", zmq_strerror(zmq_errno())));
    if (added && peer->sub && proto_curve_connect_opts(self->curve, peer->sub, pub) != 0)
        log_warn("cannot set CURVE options", LOG_S("endpoint", pub),
                 LOG_S("error", zmq_strerror(zmq_errno())));
    if (peer->dealer_w && op(peer->dealer_w, req) != 0)
        log_warn(added ? "connect failed" : "disconnect failed", LOG_S("endpoint", req),
                 LOG_S("error", zmq_strerror(zmq_errno())));
    if (peer->sub_w && op(peer->sub_w, pub) != 0)
        log_warn(added ? "connect failed" : "disconnect failed", LOG_S("endpoint", pub),
                 LOG_S("error", zmq_strerror(zmq_errno())));
}

// --------------------------------------------------------------------------
// Lifecycle

proto_bus_t *
proto_bus_new(struct ev_loop *loop, const proto_bus_config_t *cfg, char *err, size_t errlen)
{
    proto_bus_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->kind = proto_xstrdup(cfg->kind);
    self->instance = proto_xstrdup(cfg->instance);
    self->region = proto_xstrdup(cfg->region ? cfg->region : "");
    self->bus_dir = proto_xstrdup(cfg->bus_dir);
    self->bus_bind = cfg->bus_bind && *cfg->bus_bind ? proto_xstrdup(cfg->bus_bind) : NULL;
    for (int k = 0; k < PROTO_KIND_COUNT; k++)
        self->peer_specs[k] = cfg->peers[k] ? proto_xstrdup(cfg->peers[k]) : NULL;
    self->stats_interval_ms = cfg->stats_interval_ms > 0 ? cfg->stats_interval_ms : 5000;
    int n = snprintf(self->src, sizeof self->src, "%s/%s", self->kind, self->instance);
    if (n <= 0 || (size_t) n >= sizeof self->src) {
        snprintf(err, errlen, "kind/instance longer than %d bytes", PROTO_SRC_MAX);
        goto fail;
    }
    self->start_ms = proto_now_ms();
    self->start_us = proto_mono_us();
    self->next_id = self->start_us << 16; // distinct across restarts
    self->in = proto_xcalloc(1, sizeof *self->in);
    ev_timer_init(&self->stats_timer, s_on_stats_timer, 0.,
                  (double) self->stats_interval_ms / 1000.);
    self->stats_timer.data = self;
    ev_timer_init(&self->pending_timer, s_on_pending_timer, 0., 0.);
    self->pending_timer.data = self;
    ev_timer_init(&self->parked_timer, s_on_parked_timer, 0., S_PARKED_RETRY_MS / 1000.);
    self->parked_timer.data = self;
    self->hold = proto_hold_new();
    ev_timer_init(&self->hold_timer, s_on_hold_timer, 0., 1.);
    self->hold_timer.data = self;
    self->ctx = zmq_ctx_new();
    if (self->ctx == NULL) {
        snprintf(err, errlen, "zmq_ctx_new: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    // the ZAP handler binds before the CURVE servers it guards (tcp only)
    self->curve = proto_curve_dup(cfg->curve);
    bool zap = self->bus_bind && proto_curve_is_server(self->curve);
    self->guard = proto_curve_guard_new(loop, self->ctx, zap ? self->curve : NULL, err, errlen);
    if (self->guard == NULL)
        goto fail;
    self->disc = proto_disc_new(loop, self->bus_dir, getpid(), s_on_instance, self);
    return self;
fail:
    proto_bus_destroy(&self);
    return NULL;
}

int
proto_bus_start(proto_bus_t *self, char *err, size_t errlen)
{
    char req_ep[PROTO_DISC_ENDPOINT_MAX], pub_ep[PROTO_DISC_ENDPOINT_MAX];
    if (self->bus_bind) {
        proto_strlcpy(req_ep, self->bus_bind, sizeof req_ep);
        if (proto_disc_pub_of(req_ep, pub_ep, sizeof pub_ep) != 0) {
            snprintf(err, errlen, "bad value for BUS_BIND: '%s' (expected tcp://HOST:PORT)",
                     self->bus_bind);
            return -1;
        }
    } else {
        if (proto_disc_mkdirs(self->bus_dir) != 0) {
            snprintf(err, errlen, "cannot create BUS_DIR '%s': %s", self->bus_dir, strerror(errno));
            return -1;
        }
        int a = snprintf(self->req_path, sizeof self->req_path, "%s/%s.%d.req", self->bus_dir,
                         self->kind, (int) getpid());
        int b = snprintf(self->pub_path, sizeof self->pub_path, "%s/%s.%d.pub", self->bus_dir,
                         self->kind, (int) getpid());
        if (a <= 0 || b <= 0 || a > 107 || b > 107) {
            snprintf(err, errlen, "BUS_DIR '%s' is too long for a unix socket path (108 bytes)",
                     self->bus_dir);
            self->req_path[0] = self->pub_path[0] = '\0';
            return -1;
        }
        snprintf(req_ep, sizeof req_ep, "ipc://%s", self->req_path);
        snprintf(pub_ep, sizeof pub_ep, "ipc://%s", self->pub_path);
    }
    self->router = s_socket(self, ZMQ_ROUTER);
    self->xpub = s_socket(self, ZMQ_XPUB);
    if (self->router == NULL || self->xpub == NULL) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    if (proto_curve_bind_opts(self->curve, self->router, req_ep) != 0
        || proto_curve_bind_opts(self->curve, self->xpub, pub_ep) != 0) {
        snprintf(err, errlen, "cannot make %s a CURVE server: %s", req_ep,
                 zmq_strerror(zmq_errno()));
        return -1;
    }
    if (zmq_bind(self->router, req_ep) != 0 || zmq_bind(self->xpub, pub_ep) != 0) {
        snprintf(err, errlen, "cannot bind %s / %s: %s", req_ep, pub_ep, zmq_strerror(zmq_errno()));
        return -1;
    }
    self->router_w = proto_zwatch_new(self->loop, self->router, ZMQ_POLLIN, s_on_router, self);
    self->xpub_w = proto_zwatch_new(self->loop, self->xpub, ZMQ_POLLIN, s_on_xpub, self);
    if (self->router_w == NULL || self->xpub_w == NULL) {
        snprintf(err, errlen, "cannot watch bus sockets: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    proto_zwatch_start(self->router_w);
    proto_zwatch_start(self->xpub_w);
    s_monitor(self, self->router, "router");
    s_monitor(self, self->xpub, "xpub");
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        if (self->peers[k].dealer_w)
            proto_zwatch_start(self->peers[k].dealer_w);
        if (self->peers[k].sub_w)
            proto_zwatch_start(self->peers[k].sub_w);
    }
    ev_timer_again(self->loop, &self->stats_timer);
    self->started = true;
    log_info("bus bound", LOG_S("requests", req_ep), LOG_S("events", pub_ep),
             LOG_B("curve", self->curve && self->bus_bind));
    return 0;
}

int
proto_bus_use(
    proto_bus_t *self, int kind, bool requests, const char *const *topics, char *err, size_t errlen)
{
    if (kind < 0 || kind >= PROTO_KIND_COUNT || self->peers[kind].used) {
        snprintf(err, errlen, "peer kind %d used twice or unknown", kind);
        return -1;
    }
    s_peer_t *peer = &self->peers[kind];
    peer->used = true;
    if (requests) {
        peer->dealer = s_socket(self, ZMQ_DEALER);
        if (peer->dealer == NULL) {
            snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        peer->dealer_w = proto_zwatch_new(self->loop, peer->dealer, ZMQ_POLLIN, s_on_dealer, self);
    }
    if (topics && topics[0]) {
        peer->sub = s_socket(self, ZMQ_SUB);
        if (peer->sub == NULL) {
            snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
            return -1;
        }
        for (size_t i = 0; topics[i] && i < S_MAX_TOPICS; i++)
            zmq_setsockopt(peer->sub, ZMQ_SUBSCRIBE, topics[i], strlen(topics[i]));
        peer->sub_w = proto_zwatch_new(self->loop, peer->sub, ZMQ_POLLIN, s_on_sub, self);
    }
    if ((requests && peer->dealer_w == NULL) || (peer->sub && peer->sub_w == NULL)) {
        snprintf(err, errlen, "cannot watch peer sockets: %s", zmq_strerror(zmq_errno()));
        return -1;
    }
    char name[48];
    snprintf(name, sizeof name, "dealer.%s", proto_kind_name(kind));
    s_monitor(self, peer->dealer, name);
    snprintf(name, sizeof name, "sub.%s", proto_kind_name(kind));
    s_monitor(self, peer->sub, name);
    if (self->started) {
        if (peer->dealer_w)
            proto_zwatch_start(peer->dealer_w);
        if (peer->sub_w)
            proto_zwatch_start(peer->sub_w);
    }
    return proto_disc_watch(self->disc, proto_kind_name(kind), self->peer_specs[kind], err, errlen);
}

void
proto_bus_on(proto_bus_t *self, proto_type_t type, proto_bus_fn *fn, void *arg)
{
    if (type <= PROTO_NONE || type >= PROTO_TYPE_COUNT)
        return;
    self->handlers[type].fn = fn;
    self->handlers[type].arg = arg;
}

int
proto_bus_send(proto_bus_t *self, int kind, proto_msg_t *msg)
{
    if (kind < 0 || kind >= PROTO_KIND_COUNT || self->peers[kind].dealer == NULL) {
        self->send_failed++;
        return -1;
    }
    if (s_encode(self, msg, true) != 0)
        return -1;
    int rc = s_send(self->peers[kind].dealer, NULL, 0, self->buf.data, self->buf.size);
    s_touch(self, self->peers[kind].dealer);
    s_sent(self, rc, msg);
    return rc;
}

//  Try to send a parked request again. Returns 0 when it went out.
static int
s_unpark(proto_bus_t *self, s_pending_t *p)
{
    void *dealer = self->peers[p->kind].dealer;
    if (s_send(dealer, NULL, 0, p->parked, p->parked_len) != 0) {
        s_touch(self, dealer);
        return -1;
    }
    s_touch(self, dealer);
    self->msgs_out++;
    if (self->taps > 0) {
        proto_msg_t msg;
        proto_msg_init(&msg, PROTO_NONE);
        if (proto_decode(p->parked, p->parked_len, &msg) == 0)
            s_tap(self, "out", msg.type, p->parked, p->parked_len);
        proto_msg_clear(&msg);
    }
    free(p->parked);
    p->parked = NULL;
    self->nparked--;
    return 0;
}

static void
s_on_parked_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) loop;
    (void) revents;
    proto_bus_t *self = t->data;
    // oldest first, so requests leave in the order they were made
    for (s_pending_t *p = self->oldest; p && self->nparked > 0; p = p->next)
        if (p->parked)
            (void) s_unpark(self, p);
    if (self->nparked == 0)
        ev_timer_stop(self->loop, &self->parked_timer);
}

static int
s_request(proto_bus_t *self,
          int kind,
          proto_msg_t *msg,
          int64_t timeout_ms,
          proto_reply_fn *fn,
          void *arg,
          bool park)
{
    if (self->npending >= PROTO_BUS_PENDING || kind < 0 || kind >= PROTO_KIND_COUNT
        || self->peers[kind].dealer == NULL) {
        self->send_failed++;
        return -1;
    }
    if (s_encode(self, msg, true) != 0)
        return -1;
    s_pending_t *p = proto_xcalloc(1, sizeof *p);
    p->id = msg->id;
    p->kind = kind;
    p->deadline = ev_now(self->loop) + (double) timeout_ms / 1000.0;
    p->fn = fn;
    p->arg = arg;
    void *dealer = self->peers[kind].dealer;
    int rc = s_send(dealer, NULL, 0, self->buf.data, self->buf.size);
    s_touch(self, dealer);
    if (rc == 0) {
        s_sent(self, rc, msg);
    } else if (!park) {
        s_sent(self, rc, msg); // counted as dropped.send
        free(p);
        return -1;
    } else {
        // no instance connected yet (a cold start, a restart) or its queue is
        // full: the request waits for one, up to its own deadline
        p->parked = proto_xmalloc(self->buf.size);
        memcpy(p->parked, self->buf.data, self->buf.size);
        p->parked_len = self->buf.size;
        self->nparked++;
        if (!ev_is_active(&self->parked_timer))
            ev_timer_again(self->loop, &self->parked_timer);
    }
    s_pending_add(self, p);
    return 0;
}

int
proto_bus_request(proto_bus_t *self,
                  int kind,
                  proto_msg_t *msg,
                  int64_t timeout_ms,
                  proto_reply_fn *fn,
                  void *arg)
{
    return s_request(self, kind, msg, timeout_ms, fn, arg, true);
}

int
proto_bus_try_request(proto_bus_t *self,
                      int kind,
                      proto_msg_t *msg,
                      int64_t timeout_ms,
                      proto_reply_fn *fn,
                      void *arg)
{
    return s_request(self, kind, msg, timeout_ms, fn, arg, false);
}

void
proto_bus_cancel(proto_bus_t *self, uint64_t id)
{
    s_pending_t *p = s_pending_take(self, id);
    if (p)
        s_pending_free(self, &p);
}

int
proto_bus_reply(proto_bus_t *self, const proto_return_t *to, proto_msg_t *msg)
{
    if (self->router == NULL)
        return -1;
    msg->id = to->id;
    msg->rid = to->rid;
    if (s_encode(self, msg, false) != 0)
        return -1;
    int rc = s_send(self->router, to->identity, to->identity_len, self->buf.data, self->buf.size);
    s_touch(self, self->router);
    s_sent(self, rc, msg);
    return rc;
}

int
proto_bus_publish(proto_bus_t *self, proto_msg_t *msg)
{
    if (self->xpub == NULL)
        return -1;
    if (s_encode(self, msg, true) != 0)
        return -1;
    const char *topic = proto_type_name(msg->type);
    int rc = s_send(self->xpub, topic, strlen(topic), self->buf.data, self->buf.size);
    s_touch(self, self->xpub);
    s_sent(self, rc, msg);
    return rc;
}

size_t
proto_bus_address(char *out, size_t cap, proto_type_t type, const char *instance)
{
    const char *wire = proto_type_name(type);
    size_t wlen = wire ? strlen(wire) : 0;
    size_t ilen = instance ? strlen(instance) : 0;
    if (wlen == 0 || ilen == 0 || ilen > PROTO_BUS_NAME_MAX || wlen + ilen + 3 > cap)
        return 0;
    memcpy(out, wire, wlen);
    out[wlen] = '@';
    memcpy(out + wlen + 1, instance, ilen);
    out[wlen + 1 + ilen] = ';';
    out[wlen + 2 + ilen] = '\0';
    return wlen + 2 + ilen;
}

//  True when somebody watches the subscriptions of type's addresses.
static bool
s_watched(const proto_bus_t *self, proto_type_t type)
{
    for (size_t i = 0; i < self->nsubwatch; i++)
        if (self->subwatch[i].type == type)
            return true;
    return false;
}

static void
s_on_hold_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) revents;
    proto_bus_t *self = t->data;
    size_t n = proto_hold_expire(self->hold, proto_now_ms());
    if (n)
        log_warn("addressed events dropped: their instance did not subscribe in time",
                 LOG_U("events", n), LOG_I("hold_ms", PROTO_HOLD_MS));
    if (proto_hold_count(self->hold) == 0)
        ev_timer_stop(loop, t);
}

int
proto_bus_publish_to(proto_bus_t *self, proto_msg_t *msg, const char *instance)
{
    char topic[PROTO_BUS_ADDRESS_MAX];
    size_t tlen = proto_bus_address(topic, sizeof topic, msg->type, instance);
    if (self->xpub == NULL || tlen == 0)
        return -1;
    if (s_encode(self, msg, true) != 0)
        return -1;
    if (s_watched(self, msg->type) && !proto_hold_reachable(self->hold, topic, tlen)) {
        // nobody would get it now: held until the instance subscribes
        int kept = proto_hold_keep(self->hold, topic, tlen, self->buf.data, self->buf.size,
                                   proto_now_ms());
        if (kept == 0 && !ev_is_active(&self->hold_timer))
            ev_timer_again(self->loop, &self->hold_timer);
        if (kept != 0)
            log_debug("addressed event dropped: too much held",
                      LOG_S("type", proto_type_name(msg->type)), LOG_S("instance", instance));
        return kept;
    }
    int rc = s_send(self->xpub, topic, tlen, self->buf.data, self->buf.size);
    s_touch(self, self->xpub);
    s_sent(self, rc, msg);
    return rc;
}

int
proto_bus_on_subscriber(proto_bus_t *self, proto_type_t type, proto_sub_fn *fn, void *arg)
{
    if (fn == NULL || proto_type_name(type) == NULL || self->nsubwatch >= S_SUBWATCH_MAX)
        return -1;
    self->subwatch[self->nsubwatch++] = (s_subwatch_t){.type = type, .fn = fn, .arg = arg};
    return 0;
}

size_t
proto_bus_peers(proto_bus_t *self, int kind)
{
    if (kind < 0 || kind >= PROTO_KIND_COUNT || self->disc == NULL)
        return 0;
    return proto_disc_count(self->disc, proto_kind_name(kind));
}

int
proto_bus_taps(proto_bus_t *self)
{
    return self->taps;
}

void
proto_bus_count_drop(proto_bus_t *self, proto_err_t reason)
{
    if (reason > PROTO_OK && reason < PROTO_ERR_COUNT)
        self->dropped[reason]++;
}

//  True if pong already reports a counter of this name.
static bool
s_builtin_counter(const char *name)
{
    if (proto_starts_with(name, "dropped.") || proto_starts_with(name, "peers."))
        return true;
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_fixed_counters); i++)
        if (strcmp(name, s_fixed_counters[i]) == 0)
            return true;
    return false;
}

int
proto_bus_counter(proto_bus_t *self, const char *name, const uint64_t *value)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > PROTO_COUNTER_NAME_MAX || value == NULL) {
        errno = EINVAL;
        return -1;
    }
    bool taken = s_builtin_counter(name);
    for (size_t i = 0; i < self->ncounters && !taken; i++)
        taken = strcmp(self->counters[i].name, name) == 0;
    if (taken) {
        log_warn("counter already reported: not added", LOG_S("counter", name));
        errno = EEXIST;
        return -1;
    }
    if (self->ncounters >= PROTO_BUS_COUNTERS) {
        log_warn("no room for another counter in pong: not added", LOG_S("counter", name));
        errno = ENOSPC;
        return -1;
    }
    s_own_counter_t *c = &self->counters[self->ncounters++];
    memcpy(c->name, name, len + 1);
    c->value = value;
    return 0;
}

static void
s_close(void **sock)
{
    if (*sock == NULL)
        return;
    zmq_close(*sock);
    *sock = NULL;
}

void
proto_bus_destroy(proto_bus_t **self_p)
{
    proto_bus_t *self = *self_p;
    if (self == NULL)
        return;
    ev_timer_stop(self->loop, &self->stats_timer);
    ev_timer_stop(self->loop, &self->pending_timer);
    while (self->oldest) {
        s_pending_t *p = self->oldest;
        s_pending_unlink(self, p);
        s_pending_free(self, &p);
    }
    ev_timer_stop(self->loop, &self->parked_timer);
    ev_timer_stop(self->loop, &self->hold_timer);
    proto_hold_destroy(&self->hold);
    proto_disc_destroy(&self->disc);
    for (size_t i = 0; i < self->nmons; i++)
        proto_monitor_destroy(&self->mons[i]);
    self->nmons = 0;
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        proto_zwatch_destroy(&self->peers[k].dealer_w);
        proto_zwatch_destroy(&self->peers[k].sub_w);
        s_close(&self->peers[k].dealer);
        s_close(&self->peers[k].sub);
    }
    proto_zwatch_destroy(&self->router_w);
    proto_zwatch_destroy(&self->xpub_w);
    s_close(&self->router);
    s_close(&self->xpub);
    proto_curve_guard_destroy(&self->guard); // its socket before the context
    if (self->ctx) {
        zmq_ctx_term(self->ctx);
        self->ctx = NULL;
    }
    // libzmq removes the files it bound; make sure, without caring if it did
    if (self->req_path[0])
        unlink(self->req_path);
    if (self->pub_path[0])
        unlink(self->pub_path);
    if (self->in) {
        proto_msg_clear(&self->in->msg);
        free(self->in);
        self->in = NULL;
    }
    proto_buf_free(&self->buf);
    proto_curve_destroy(&self->curve);
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        free(self->peer_specs[k]);
        self->peer_specs[k] = NULL;
    }
    free(self->bus_bind);
    self->bus_bind = NULL;
    free(self->bus_dir);
    self->bus_dir = NULL;
    free(self->region);
    self->region = NULL;
    free(self->instance);
    self->instance = NULL;
    free(self->kind);
    self->kind = NULL;
    free(self);
    *self_p = NULL;
}

int
proto_bus_reply_error(proto_bus_t *self,
                      const proto_return_t *to,
                      const char *code,
                      const char *message)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_ERROR);
    msg.error.code = code;
    msg.error.message = message;
    return proto_bus_reply(self, to, &msg);
}
