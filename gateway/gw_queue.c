/*  gw_queue - per-route backpressure in one gateway process (see gw_queue.h). */
#include <stdlib.h>
#include <string.h>

#include "gw_queue.h"
#include "proto_util.h"

#define S_BUCKETS 1024 // slots exist only for routes with requests: chains stay short

struct gw_qslot {
    gw_qslot_t *next;    // in its bucket
    gw_queues_t *owner;  // for the timers
    uint64_t hash;       // of route
    char *route;         // route id
    uint32_t active;     // in flight
    uint32_t max_active; // the latest request's limit
    proto_list_t queue;  // waiters, oldest first
    bool dispatching;    // handing places out (never freed meanwhile)
};

struct gw_queues {
    struct ev_loop *loop;           // our loop
    gw_queue_fn *fn;                // go / timeout
    void *arg;                      // for fn
    gw_qslot_t *buckets[S_BUCKETS]; // route -> slot
    gw_queue_stats_t stats;         // figures
};

static uint64_t
s_hash(const char *s)
{
    uint64_t h = 1469598103934665603ull; // FNV-1a
    for (; *s; s++)
        h = (h ^ (uint8_t) *s) * 1099511628211ull;
    return h;
}

static gw_qslot_t *
s_slot(gw_queues_t *self, const char *route)
{
    uint64_t h = s_hash(route);
    gw_qslot_t **pp = &self->buckets[h % S_BUCKETS];
    for (gw_qslot_t *s = *pp; s; s = s->next)
        if (s->hash == h && strcmp(s->route, route) == 0)
            return s;
    gw_qslot_t *s = proto_xcalloc(1, sizeof *s);
    s->owner = self;
    s->hash = h;
    s->route = proto_xstrdup(route);
    s->next = *pp;
    *pp = s;
    self->stats.slots++;
    return s;
}

//  Free a slot that holds nothing any more.
static void
s_slot_gc(gw_queues_t *self, gw_qslot_t *slot)
{
    if (slot->active > 0 || slot->queue.head != NULL || slot->dispatching)
        return;
    gw_qslot_t **pp = &self->buckets[slot->hash % S_BUCKETS];
    while (*pp != slot)
        pp = &(*pp)->next;
    *pp = slot->next;
    free(slot->route);
    free(slot);
    self->stats.slots--;
}

static void
s_unqueue(gw_queues_t *self, gw_qwait_t *w)
{
    proto_list_unlink(&w->slot->queue, &w->link);
    self->stats.waiting--;
    ev_timer_stop(self->loop, &w->timer);
}

#define S_WAITER(l) PROTO_LIST_ENTRY(l, gw_qwait_t, link)

//  Hand the free places of slot to its oldest waiters. A loop, not
//  recursion: a callback that leaves at once frees a place for the next turn.
static void
s_dispatch(gw_queues_t *self, gw_qslot_t *slot)
{
    if (slot->dispatching)
        return; // the loop below, further up the stack, sees the place
    slot->dispatching = true;
    while (slot->queue.head != NULL && slot->active < slot->max_active) {
        gw_qwait_t *w = S_WAITER(slot->queue.head);
        s_unqueue(self, w);
        w->active = true;
        slot->active++;
        self->stats.active++;
        self->fn(w, true, self->arg);
    }
    slot->dispatching = false;
    s_slot_gc(self, slot);
}

static void
s_on_timeout(struct ev_loop *loop, ev_timer *t, int revents)
{
    (void) loop;
    (void) revents;
    gw_qwait_t *w = t->data;
    gw_qslot_t *slot = w->slot;
    gw_queues_t *self = slot->owner;
    s_unqueue(self, w);
    w->slot = NULL;
    self->stats.timeouts++;
    s_slot_gc(self, slot);
    self->fn(w, false, self->arg);
}

gw_queues_t *
gw_queues_new(struct ev_loop *loop, gw_queue_fn *fn, void *arg)
{
    gw_queues_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->fn = fn;
    self->arg = arg;
    return self;
}

gw_queue_verdict_t
gw_queues_enter(gw_queues_t *self,
                gw_qwait_t *w,
                const char *route,
                uint32_t max_active,
                uint32_t max_queue,
                uint32_t timeout_ms)
{
    gw_qslot_t *slot = s_slot(self, route);
    slot->max_active = max_active > 0 ? max_active : 1;
    if (slot->active < slot->max_active && slot->queue.head == NULL) {
        slot->active++;
        self->stats.active++;
        w->slot = slot;
        w->active = true;
        return GW_QUEUE_GO;
    }
    if (slot->queue.count >= max_queue) {
        self->stats.refused++;
        s_slot_gc(self, slot);
        return GW_QUEUE_FULL;
    }
    w->slot = slot;
    w->active = false;
    proto_list_push_back(&slot->queue, &w->link);
    self->stats.waiting++;
    self->stats.queued++;
    ev_timer_init(&w->timer, s_on_timeout, (double) timeout_ms / 1000.0, 0.);
    w->timer.data = w;
    ev_timer_start(self->loop, &w->timer);
    return GW_QUEUE_WAIT;
}

void
gw_queues_leave(gw_queues_t *self, gw_qwait_t *w)
{
    gw_qslot_t *slot = w->slot;
    if (slot == NULL)
        return;
    w->slot = NULL;
    if (!w->active) {
        w->slot = slot; // s_unqueue reads it
        s_unqueue(self, w);
        w->slot = NULL;
        self->stats.abandoned++;
        s_slot_gc(self, slot);
        return;
    }
    w->active = false;
    slot->active--;
    self->stats.active--;
    s_dispatch(self, slot);
}

const gw_queue_stats_t *
gw_queues_stats(const gw_queues_t *self)
{
    return &self->stats;
}

void
gw_queues_destroy(gw_queues_t **self_p)
{
    gw_queues_t *self = *self_p;
    if (self == NULL)
        return;
    for (size_t b = 0; b < S_BUCKETS; b++)
        while (self->buckets[b]) {
            gw_qslot_t *slot = self->buckets[b];
            while (slot->queue.head) {
                gw_qwait_t *w = S_WAITER(slot->queue.head);
                s_unqueue(self, w);
            }
            self->buckets[b] = slot->next;
            free(slot->route);
            free(slot);
        }
    free(self);
    *self_p = NULL;
}
