/*  gw_events - the event streams the gateway holds (see gw_events.h).

    A stream is pending from the hand-over until its answer, then live. The
    ring of recent pushes is kept only while some stream is pending: a push
    published by the apid after it counted the stream may overtake the
    answer (different sockets), and the answer says which event it covers
    last, so the pushes after it are taken from the ring. If the ring lost
    some of them (more than GW_EVENTS_RING pushes during one answer's trip)
    the stream is closed: the client reconnects with Last-Event-ID and the
    apid replays.
*/
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "gw_actor.h"
#include "gw_admin.h"
#include "gw_events.h"
#include "proto_list.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_APIDS 16 // apids whose subscriptions are counted

typedef struct gw_stream gw_stream_t;
struct gw_stream {
    gw_events_t *owner;
    gw_req_t *req;                     // its request (the connection's)
    char apid[PROTO_BUS_NAME_MAX + 1]; // the apid that answered
    bool live;                         // answered: pushes are written
    bool apid_gone;                    // nobody to tell at its end
    uint64_t last_seq;                 // the last numbered event written
    uint64_t evicted_at_open;          // the ring's evictions when it was handed over
    proto_link_t link;                 // in the owner's list
};

typedef struct {
    char apid[PROTO_BUS_NAME_MAX + 1]; // who pushed
    uint64_t seq;                      // its number
    gw_buf_t data;                     // its text
} s_held_t;

typedef struct {
    char name[PROTO_BUS_NAME_MAX + 1]; // INSTANCE_ID
    uint32_t subs;                     // its subscriptions to events.close@<us>
} s_apid_t;

struct gw_events {
    gw_actor_t *gw;
    char topic[PROTO_BUS_ADDRESS_MAX]; // events.push@<us>;
    proto_list_t streams;              // pending and live
    size_t npending;                   // of which pending
    s_held_t ring[GW_EVENTS_RING];     // pushes while something is pending
    size_t ring_next;                  // where the next goes
    uint64_t evicted;                  // pushes pushed out of the ring
    s_apid_t apids[S_APIDS];           // apids subscribed to us
    // counters (pong)
    uint64_t open;    // streams now
    uint64_t total;   // streams opened
    uint64_t dropped; // slow readers closed
    uint64_t lost;    // streams closed because the ring lost pushes
    uint64_t written; // events written to clients
};

// --------------------------------------------------------------------------
// Streams

static void
s_tell_apid(gw_events_t *self, const char *apid, uint32_t streams, bool all)
{
    proto_msg_t msg;
    proto_msg_init(&msg, PROTO_EVENTS_CLOSE);
    msg.events_close.streams = streams;
    msg.events_close.all = all;
    (void) proto_bus_publish_to(self->gw->bus, &msg, apid);
}

static void
s_ring_clear(gw_events_t *self)
{
    for (size_t i = 0; i < GW_EVENTS_RING; i++) {
        gw_buf_free(&self->ring[i].data);
        self->ring[i].seq = 0;
    }
    self->ring_next = 0;
}

static void
s_free(gw_stream_t *st)
{
    gw_events_t *self = st->owner;
    proto_list_unlink(&self->streams, &st->link);
    self->open = self->streams.count;
    if (!st->live && --self->npending == 0)
        s_ring_clear(self);
    st->req->stream = NULL;
    free(st);
}

void
gw_events_detach(gw_req_t *req)
{
    gw_stream_t *st = req->stream;
    if (st == NULL)
        return;
    if (st->live && !st->apid_gone)
        s_tell_apid(st->owner, st->apid, 1, false);
    s_free(st);
}

//  Close a stream's connection (its detach follows from the close).
static void
s_close(gw_stream_t *st)
{
    gw_req_abort(st->req);
}

//  Write an event to a live stream; a reader too far behind is closed.
//  Returns false when the stream is gone.
static bool
s_write(gw_stream_t *st, uint64_t seq, const void *data, size_t len)
{
    if (seq) {
        if (seq <= st->last_seq)
            return true; // in the replay already
        st->last_seq = seq;
    }
    gw_req_t *req = st->req;
    if (gw_req_out_full(req)) {
        st->owner->dropped++;
        log_info("event stream reader too slow: closed", LOG_S("request_id", req->rid),
                 LOG_S("client_ip", req->client_ip));
        s_close(st);
        return false;
    }
    req->bytes_out += len;
    st->owner->written++;
    gw_req_send(req, data, len);
    return true;
}

// --------------------------------------------------------------------------
// The answer

//  The apid's name from a message's src ("apid/<instance>"), or NULL.
static const char *
s_apid_of(const char *src)
{
    if (src == NULL || !proto_starts_with(src, "apid/") || src[5] == '\0')
        return NULL;
    return src + 5;
}

static const char *
s_header(const proto_admin_response_t *r, const char *name)
{
    for (uint32_t i = 0; i < r->headers_count; i++)
        if (strcasecmp(r->headers[i].key, name) == 0)
            return r->headers[i].value;
    return NULL;
}

static void
s_on_answer(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_req_t *req = arg;
    gw_stream_t *st = req->stream;
    gw_events_t *self = st->owner;
    req->admin_id = 0;
    const proto_admin_response_t *r =
        in && in->msg.type == PROTO_ADMIN_RESPONSE ? &in->msg.admin_response : NULL;
    const char *covers = r && r->status == 200 ? s_header(r, "x-switchyard-events") : NULL;
    const char *colon = covers ? strrchr(covers, ':') : NULL;
    const char *apid = s_apid_of(in ? in->msg.src : NULL);
    if (colon == NULL || apid == NULL || req->head_request || self->gw->draining) {
        // not a stream: an error, HEAD, no answer in time, or we are going
        bool counted = colon && apid && !req->head_request;
        s_free(st);
        if (counted)
            s_tell_apid(self, apid, 1, false);
        if (self->gw->draining && counted)
            gw_req_respond(req, 503, "application/json",
                           PROTO_LIT("{\"error\":{\"code\":\"unavailable\",\"message\":"
                                     "\"the gateway is draining\",\"field\":null}}"),
                           NULL);
        else
            gw_admin_relay(req, in);
        return;
    }
    proto_strlcpy(st->apid, apid, sizeof st->apid);
    st->last_seq = strtoull(colon + 1, NULL, 10);
    st->live = true;
    self->npending--;

    // the head: no length, the stream ends with the connection
    req->must_close = true;
    (void) gw_req_should_close(req);
    gw_buf_t out = {0};
    gw_buf_puts(&out, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Cache-Control: no-cache\r\nX-Accel-Buffering: no\r\n");
    if (req->rid[0])
        gw_buf_printf(&out, "X-Request-Id: %s\r\n", req->rid);
    gw_buf_puts(&out, "Connection: close\r\n\r\n");
    gw_buf_append(&out, (const char *) r->body.data, r->body.size);
    gw_req_responding(req, 200);
    // a fixed, small kernel buffer: what a reader has not taken stays in
    // ours, where GW_OUT_HIGH bounds it (autotuning would let the kernel
    // hold megabytes per stalled reader)
    int sndbuf = GW_EVENTS_SNDBUF;
    if (gw_req_client_fd(req) >= 0)
        (void) setsockopt(gw_req_client_fd(req), SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf);
    req->bytes_out += r->body.size;
    gw_req_send(req, gw_buf_head(&out), gw_buf_len(&out));
    gw_buf_free(&out);

    // pushes that overtook the answer
    bool lost = false;
    uint64_t first = 0;
    for (size_t i = 0; i < GW_EVENTS_RING; i++) {
        s_held_t *h = &self->ring[(self->ring_next + i) % GW_EVENTS_RING];
        if (h->seq == 0 || strcmp(h->apid, st->apid) != 0)
            continue;
        if (first == 0)
            first = h->seq;
        if (h->seq > st->last_seq
            && !s_write(st, h->seq, gw_buf_head(&h->data), gw_buf_len(&h->data)))
            return;
    }
    if (self->evicted > st->evicted_at_open && first > st->last_seq + 1)
        lost = true;
    if (self->npending == 0)
        s_ring_clear(self);
    if (lost) {
        self->lost++;
        log_info("event stream missed pushes during its start: closed",
                 LOG_S("request_id", req->rid));
        s_close(st);
    }
}

void
gw_events_open(gw_events_t *self,
               gw_req_t *req,
               const char *path,
               size_t path_len,
               const char *query,
               size_t query_len)
{
    gw_stream_t *st = proto_xcalloc(1, sizeof *st);
    st->owner = self;
    st->req = req;
    st->evicted_at_open = self->evicted;
    req->stream = st;
    proto_list_push_front(&self->streams, &st->link);
    self->npending++;
    self->total++;
    self->open = self->streams.count;
    // answered at once when it cannot be sent: the stream is then gone
    gw_admin_hand_over(req, PROTO_KIND_APID, path, path_len, query, query_len, s_on_answer);
    if (req->admin_id == 0 && req->stream)
        s_free(st);
}

// --------------------------------------------------------------------------
// Pushes and apids

static void
s_hold(gw_events_t *self, const char *apid, uint64_t seq, const proto_bin_t *data)
{
    s_held_t *h = &self->ring[self->ring_next];
    self->ring_next = (self->ring_next + 1) % GW_EVENTS_RING;
    if (h->seq)
        self->evicted++;
    proto_strlcpy(h->apid, apid, sizeof h->apid);
    h->seq = seq;
    gw_buf_reset(&h->data);
    gw_buf_append(&h->data, (const char *) data->data, data->size);
}

static void
s_on_push(proto_bus_t *bus, proto_in_t *in, void *arg)
{
    (void) bus;
    gw_events_t *self = arg;
    const char *apid = s_apid_of(in->msg.src);
    if (apid == NULL)
        return;
    const proto_events_push_t *p = &in->msg.events_push;
    if (self->npending > 0 && p->seq)
        s_hold(self, apid, p->seq, &p->data);
    size_t mine = 0;
    proto_link_t *next;
    for (proto_link_t *l = self->streams.head; l; l = next) {
        next = l->next; // a slow reader's stream goes while we walk
        gw_stream_t *st = PROTO_LIST_ENTRY(l, gw_stream_t, link);
        if (!st->live || strcmp(st->apid, apid) != 0)
            continue;
        mine++;
        (void) s_write(st, p->seq, p->data.data, p->data.size);
    }
    // the apid counts a stream we never held (its answer came too late):
    // it is told we hold none, unless an answer from it may still come
    if (mine == 0 && self->npending == 0)
        s_tell_apid(self, apid, 0, true);
}

static s_apid_t *
s_apid(gw_events_t *self, const char *name, bool create)
{
    s_apid_t *free_slot = NULL;
    for (size_t i = 0; i < S_APIDS; i++) {
        if (self->apids[i].name[0] == '\0') {
            if (free_slot == NULL)
                free_slot = &self->apids[i];
        } else if (strcmp(self->apids[i].name, name) == 0) {
            return &self->apids[i];
        }
    }
    if (!create || free_slot == NULL)
        return NULL;
    proto_strlcpy(free_slot->name, name, sizeof free_slot->name);
    return free_slot;
}

//  An apid subscribed to its events.close address on our XPUB, or went:
//  its streams end (their clients reconnect to another).
static void
s_on_apid(proto_bus_t *bus, const char *instance, bool subscribed, void *arg)
{
    (void) bus;
    gw_events_t *self = arg;
    s_apid_t *a = s_apid(self, instance, subscribed);
    if (a == NULL)
        return;
    if (subscribed) {
        a->subs++;
        return;
    }
    if (a->subs > 0 && --a->subs > 0)
        return;
    a->name[0] = '\0';
    proto_link_t *next;
    size_t closed = 0;
    for (proto_link_t *l = self->streams.head; l; l = next) {
        next = l->next;
        gw_stream_t *st = PROTO_LIST_ENTRY(l, gw_stream_t, link);
        if (st->live && strcmp(st->apid, instance) == 0) {
            st->apid_gone = true;
            s_close(st);
            closed++;
        }
    }
    if (closed)
        log_info("apid went: its event streams closed", LOG_S("apid", instance),
                 LOG_U("streams", closed));
}

// --------------------------------------------------------------------------
// Lifetime

gw_events_t *
gw_events_new(gw_actor_t *gw)
{
    gw_events_t *self = proto_xcalloc(1, sizeof *self);
    self->gw = gw;
    proto_bus_address(self->topic, sizeof self->topic, PROTO_EVENTS_PUSH,
                      gw->cfg->common.instance_id);
    proto_bus_on(gw->bus, PROTO_EVENTS_PUSH, s_on_push, self);
    if (proto_bus_on_subscriber(gw->bus, PROTO_EVENTS_CLOSE, s_on_apid, self) != 0) {
        log_error("cannot watch the apids' subscriptions");
        free(self);
        return NULL;
    }
    (void) proto_bus_counter(gw->bus, "events.streams", &self->open);
    (void) proto_bus_counter(gw->bus, "events.streams.total", &self->total);
    (void) proto_bus_counter(gw->bus, "events.dropped", &self->dropped);
    (void) proto_bus_counter(gw->bus, "events.lost", &self->lost);
    (void) proto_bus_counter(gw->bus, "events.written", &self->written);
    return self;
}

const char *
gw_events_topic(const gw_events_t *self)
{
    return self->topic;
}

void
gw_events_drain(gw_events_t *self)
{
    proto_link_t *next;
    for (proto_link_t *l = self->streams.head; l; l = next) {
        next = l->next;
        gw_stream_t *st = PROTO_LIST_ENTRY(l, gw_stream_t, link);
        if (st->live)
            s_close(st); // a pending one is answered 503 when its answer comes
    }
}

size_t
gw_events_count(const gw_events_t *self)
{
    return self->streams.count;
}

void
gw_events_destroy(gw_events_t **self_p)
{
    gw_events_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->streams.head)
        s_free(PROTO_LIST_ENTRY(self->streams.head, gw_stream_t, link));
    s_ring_clear(self);
    free(self);
    *self_p = NULL;
}
