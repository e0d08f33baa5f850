/*  proto_census - who is on the bus right now (see proto_census.h).

    Discovery's callback keeps a list of ROUTER endpoints per kind. A round
    copies them into entries (sorted), opens a DEALER per entry with a
    watcher, sends each a ping, and ends through a zero-delay timer — never
    from inside a watcher's callback, so the watchers can be destroyed —
    when the last pong arrived or the deadline passed.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <zmq.h>

#include "proto_census.h"
#include "proto_log.h"
#include "proto_util.h"
#include "proto_zwatch.h"

typedef struct s_round s_round_t;

//  One instance of a round: its socket and watcher.
typedef struct {
    s_round_t *round;      // owner
    size_t index;          // in round->entries
    void *sock;            // DEALER to the instance
    proto_zwatch_t *watch; // its watcher
    uint64_t sent_us;      // when the ping left
} s_slot_t;

struct s_round {
    s_round_t *next, *prev;        // the census's rounds
    proto_census_t *owner;         // the census
    proto_census_entry_t *entries; // the report
    s_slot_t *slots;               // one per entry
    size_t n;                      // entries
    size_t pending;                // not answered yet
    ev_timer timer;                // deadline, then "end now"
    proto_census_fn *done;         // report to
    void *arg;                     // its argument
};

struct proto_census {
    struct ev_loop *loop;               // the actor's loop
    void *ctx;                          // our own ZeroMQ context
    proto_disc_t *disc;                 // every kind
    char *src;                          // pings' sender
    proto_curve_t *curve;               // CURVE keys for tcp instances, NULL: plain
    char **endpoints[PROTO_KIND_COUNT]; // known ROUTER endpoints per kind
    size_t counts[PROTO_KIND_COUNT];    // how many
    s_round_t *rounds;                  // in progress
};

// --------------------------------------------------------------------------
// Discovery

static void
s_on_instance(void *arg, const char *kind_name, const char *req, const char *pub, bool added)
{
    (void) pub;
    proto_census_t *self = arg;
    int kind = proto_kind_by_name(kind_name);
    if (kind < 0)
        return;
    char **list = self->endpoints[kind];
    size_t n = self->counts[kind];
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], req) != 0)
            continue;
        if (!added) {
            free(list[i]);
            list[i] = list[n - 1];
            self->counts[kind] = n - 1;
        }
        return;
    }
    if (!added || n >= PROTO_DISC_MAX_INSTANCES)
        return;
    self->endpoints[kind] = list = proto_xrealloc(list, (n + 1) * sizeof *list);
    list[n] = proto_xstrdup(req);
    self->counts[kind] = n + 1;
}

proto_census_t *
proto_census_new(struct ev_loop *loop,
                 const char *bus_dir,
                 const char *const *peers,
                 const proto_curve_t *curve,
                 const char *src,
                 char *err,
                 size_t errlen)
{
    proto_census_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->src = proto_xstrdup(src);
    self->curve = proto_curve_dup(curve);
    self->ctx = zmq_ctx_new();
    self->disc = self->ctx ? proto_disc_new(loop, bus_dir, getpid(), s_on_instance, self) : NULL;
    if (self->disc == NULL) {
        snprintf(err, errlen, "cannot watch the bus directory '%s'", bus_dir);
        proto_census_destroy(&self);
        return NULL;
    }
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        const char *spec = peers ? peers[k] : NULL;
        if (proto_disc_watch(self->disc, proto_kind_name(k), spec, err, errlen) != 0) {
            proto_census_destroy(&self);
            return NULL;
        }
    }
    return self;
}

size_t
proto_census_count(const proto_census_t *self, int kind)
{
    return kind >= 0 && kind < PROTO_KIND_COUNT ? self->counts[kind] : 0;
}

// --------------------------------------------------------------------------
// Rounds

static void
s_round_free(s_round_t *r)
{
    proto_census_t *self = r->owner;
    if (r->prev)
        r->prev->next = r->next;
    else
        self->rounds = r->next;
    if (r->next)
        r->next->prev = r->prev;
    ev_timer_stop(self->loop, &r->timer);
    for (size_t i = 0; i < r->n; i++) {
        proto_zwatch_destroy(&r->slots[i].watch);
        if (r->slots[i].sock)
            zmq_close(r->slots[i].sock);
        proto_msg_clear(&r->entries[i].pong);
    }
    free(r->slots);
    free(r->entries);
    free(r);
}

//  The deadline passed, or every instance answered (the timer set to 0).
static void
s_on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) loop;
    (void) revents;
    s_round_t *r = t->data;
    r->done(r->arg, r->entries, r->n);
    s_round_free(r);
}

static void
s_end_soon(s_round_t *r)
{
    ev_timer_stop(r->owner->loop, &r->timer);
    ev_timer_set(&r->timer, 0.0, 0.0);
    ev_timer_start(r->owner->loop, &r->timer);
}

static void
s_on_readable(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    s_slot_t *slot = arg;
    s_round_t *r = slot->round;
    proto_census_entry_t *e = &r->entries[slot->index];
    for (;;) {
        zmq_msg_t part;
        zmq_msg_init(&part);
        if (zmq_msg_recv(&part, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&part);
            break;
        }
        // decoded in place: a message points into itself, it cannot be copied
        bool ok = !e->answered
                  && proto_decode(zmq_msg_data(&part), zmq_msg_size(&part), &e->pong) == 0
                  && e->pong.type == PROTO_PONG && e->pong.id == slot->index + 1;
        zmq_msg_close(&part);
        if (!ok) {
            if (!e->answered)
                proto_msg_clear(&e->pong);
            continue;
        }
        e->answered = true;
        e->rtt_ms = (double) (proto_mono_us() - slot->sent_us) / 1000.0;
        if (--r->pending == 0)
            s_end_soon(r);
    }
}

static int
s_cmp_entry(const void *a, const void *b)
{
    const proto_census_entry_t *x = a, *y = b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    return strcmp(x->endpoint, y->endpoint);
}

void
proto_census_round(proto_census_t *self, int64_t timeout_ms, proto_census_fn *done, void *arg)
{
    s_round_t *r = proto_xcalloc(1, sizeof *r);
    r->owner = self;
    r->done = done;
    r->arg = arg;
    size_t total = 0;
    for (int k = 0; k < PROTO_KIND_COUNT; k++)
        total += self->counts[k];
    if (total > PROTO_CENSUS_MAX)
        total = PROTO_CENSUS_MAX;
    r->entries = proto_xcalloc(total ? total : 1, sizeof *r->entries);
    r->slots = proto_xcalloc(total ? total : 1, sizeof *r->slots);
    for (int k = 0; k < PROTO_KIND_COUNT && r->n < total; k++)
        for (size_t i = 0; i < self->counts[k] && r->n < total; i++) {
            proto_census_entry_t *e = &r->entries[r->n++];
            e->kind = k;
            proto_strlcpy(e->endpoint, self->endpoints[k][i], sizeof e->endpoint);
            proto_msg_init(&e->pong, PROTO_NONE);
        }
    qsort(r->entries, r->n, sizeof *r->entries, s_cmp_entry);
    r->next = self->rounds;
    if (self->rounds)
        self->rounds->prev = r;
    self->rounds = r;
    ev_init(&r->timer, s_on_timer);
    r->timer.data = r;

    proto_buf_t buf = {0};
    for (size_t i = 0; i < r->n; i++) {
        s_slot_t *slot = &r->slots[i];
        slot->round = r;
        slot->index = i;
        slot->sock = zmq_socket(self->ctx, ZMQ_DEALER);
        if (slot->sock == NULL)
            continue; // reported as no answer
        int zero = 0;
        zmq_setsockopt(slot->sock, ZMQ_LINGER, &zero, sizeof zero);
        slot->watch = proto_zwatch_new(self->loop, slot->sock, ZMQ_POLLIN, s_on_readable, slot);
        if (slot->watch == NULL
            || proto_curve_connect_opts(self->curve, slot->sock, r->entries[i].endpoint) != 0
            || zmq_connect(slot->sock, r->entries[i].endpoint) != 0)
            continue;
        proto_zwatch_start(slot->watch);
        proto_msg_t ping;
        proto_msg_init(&ping, PROTO_PING);
        ping.id = i + 1;
        ping.src = self->src;
        ping.ts = proto_now_ms();
        slot->sent_us = ping.ping.sent_us = proto_mono_us();
        if (proto_encode(&ping, &buf) == 0
            && zmq_send(slot->sock, buf.data, buf.size, ZMQ_DONTWAIT) >= 0) {
            r->pending++;
            proto_zwatch_touch(slot->watch); // the send may have consumed the edge
        }
    }
    proto_buf_free(&buf);
    if (r->pending == 0)
        s_end_soon(r);
    else {
        ev_timer_set(&r->timer, (double) timeout_ms / 1000.0, 0.0);
        ev_timer_start(self->loop, &r->timer);
    }
}

void
proto_census_destroy(proto_census_t **self_p)
{
    proto_census_t *self = *self_p;
    if (self == NULL)
        return;
    while (self->rounds)
        s_round_free(self->rounds);
    proto_disc_destroy(&self->disc);
    for (int k = 0; k < PROTO_KIND_COUNT; k++) {
        for (size_t i = 0; i < self->counts[k]; i++)
            free(self->endpoints[k][i]);
        free(self->endpoints[k]);
    }
    if (self->ctx)
        zmq_ctx_term(self->ctx);
    proto_curve_destroy(&self->curve);
    free(self->src);
    free(self);
    *self_p = NULL;
}
