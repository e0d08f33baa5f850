/*  gw_report - batched request.done publishing. */
#include <stdlib.h>
#include <string.h>

#include "gw_report.h"
#include "proto_util.h"

struct gw_report {
    struct ev_loop *loop;                   // our loop
    proto_bus_t *bus;                       // where batches go
    proto_msg_t batch;                      // pending message; its arena holds the strings
    proto_reqinfo_t items[GW_REPORT_BATCH]; // pending items
    uint32_t count;                         // how many
    ev_timer timer;                         // flush timer
    uint64_t reported;                      // total
};

static const char *
s_copy(gw_report_t *self, const char *s, size_t max)
{
    if (s == NULL)
        return NULL;
    size_t len = strnlen(s, max);
    return proto_msg_strdup(&self->batch, s, len);
}

void
gw_report_flush(gw_report_t *self)
{
    ev_timer_stop(self->loop, &self->timer);
    if (self->count == 0)
        return;
    self->batch.type = PROTO_REQUEST_DONE;
    self->batch.rid = "";
    self->batch.request_done.items = self->items;
    self->batch.request_done.items_count = self->count;
    proto_bus_publish(self->bus, &self->batch);
    self->count = 0;
    proto_msg_clear(&self->batch);
}

static void
s_on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    gw_report_flush(w->data);
}

gw_report_t *
gw_report_new(struct ev_loop *loop, proto_bus_t *bus)
{
    gw_report_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->bus = bus;
    proto_msg_init(&self->batch, PROTO_REQUEST_DONE);
    ev_timer_init(&self->timer, s_on_timer, GW_REPORT_FLUSH_MS / 1000.0, 0.);
    self->timer.data = self;
    return self;
}

void
gw_report_add(gw_report_t *self, const proto_reqinfo_t *info)
{
    proto_reqinfo_t *it = &self->items[self->count++];
    // bounds as messages.def gives them: the encoder refuses anything longer
    it->rid = s_copy(self, info->rid, 128);
    it->method = s_copy(self, info->method, 16);
    it->vhost = s_copy(self, info->vhost, 255);
    it->route = s_copy(self, info->route, 255);
    it->path = s_copy(self, info->path, 2048);
    it->status = info->status;
    it->bytes = info->bytes;
    it->duration_us = info->duration_us;
    it->backend = s_copy(self, info->backend, 128);
    it->upstream_us = info->upstream_us;
    it->region = s_copy(self, info->region, 64);
    it->client = s_copy(self, info->client, 64);
    it->attempts = info->attempts;
    self->reported++;
    if (self->count == GW_REPORT_BATCH)
        gw_report_flush(self);
    else if (!ev_is_active(&self->timer)) {
        // set again each time: libev keeps a stopped or expired one-shot
        // timer's remaining time (0 after it fired), not its interval
        ev_timer_set(&self->timer, GW_REPORT_FLUSH_MS / 1000.0, 0.);
        ev_timer_start(self->loop, &self->timer);
    }
}

uint64_t
gw_report_count(gw_report_t *self)
{
    return self->reported;
}

void
gw_report_destroy(gw_report_t **self_p)
{
    gw_report_t *self = *self_p;
    if (self == NULL)
        return;
    gw_report_flush(self);
    proto_msg_clear(&self->batch);
    free(self);
    *self_p = NULL;
}
