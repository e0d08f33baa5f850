/*  proto_zwatch - ev_prepare/ev_check/ev_idle/ev_io bundle for a ZeroMQ socket. */
#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>

#include <ev.h>
#include <zmq.h>

#include "proto_util.h"
#include "proto_zwatch.h"

struct proto_zwatch {
    struct ev_loop *loop; // the loop we run in
    void *socket;         // the watched socket (borrowed)
    int events;           // wanted ZMQ_EVENTS bits
    proto_zwatch_fn *fn;  // callback
    void *arg;            // callback argument
    ev_prepare prepare;   // decides between idle and io before the loop blocks
    ev_check check;       // after the loop wakes: read ZMQ_EVENTS, call fn
    ev_idle idle;         // keeps the loop from blocking while events are pending
    ev_io io;             // wakes the loop on the ZMQ_FD edge
    bool active;          // started
    bool dirty;           // ZMQ_EVENTS may have changed since it was last read
};

static int
s_events(proto_zwatch_t *self)
{
    int events = 0;
    size_t size = sizeof events;
    if (zmq_getsockopt(self->socket, ZMQ_EVENTS, &events, &size) != 0)
        return 0;
    return events & self->events;
}

static void
s_on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
    (void) revents;
    proto_zwatch_t *self = w->data;
    if (self->dirty && s_events(self))
        ev_idle_start(loop, &self->idle); // work is waiting: do not block
    else
        ev_io_start(loop, &self->io);
    // an edge on ZMQ_FD (io) or pending work (idle) marks it dirty again
    self->dirty = ev_is_active(&self->idle);
}

static void
s_on_check(struct ev_loop *loop, ev_check *w, int revents)
{
    (void) revents;
    proto_zwatch_t *self = w->data;
    if (ev_is_pending(&self->io) || ev_is_active(&self->idle))
        self->dirty = true; // the fd fired, or work was already waiting
    ev_io_stop(loop, &self->io);
    ev_idle_stop(loop, &self->idle);
    if (!self->dirty)
        return;
    int ready = s_events(self);
    if (ready) {
        self->fn(self, self->socket, ready, self->arg);
        self->dirty = true; // a bounded batch may have left more; it may have sent
    } else {
        self->dirty = false;
    }
}

static void
s_on_nothing(struct ev_loop *loop, ev_idle *w, int revents)
{
    (void) loop;
    (void) revents;
    ((proto_zwatch_t *) w->data)->dirty = true; // the check watcher does the work
}

static void
s_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    (void) revents;
    ((proto_zwatch_t *) w->data)->dirty = true; // the check watcher does the work
}

proto_zwatch_t *
proto_zwatch_new(struct ev_loop *loop, void *socket, int events, proto_zwatch_fn *fn, void *arg)
{
    int fd;
    size_t size = sizeof fd;
    if (zmq_getsockopt(socket, ZMQ_FD, &fd, &size) != 0)
        return NULL;
    proto_zwatch_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->socket = socket;
    self->events = events;
    self->fn = fn;
    self->arg = arg;
    ev_prepare_init(&self->prepare, s_on_prepare);
    ev_check_init(&self->check, s_on_check);
    ev_idle_init(&self->idle, s_on_nothing);
    ev_io_init(&self->io, s_on_io, fd, EV_READ);
    self->prepare.data = self->check.data = self->idle.data = self->io.data = self;
    self->dirty = true;
    return self;
}

void
proto_zwatch_start(proto_zwatch_t *self)
{
    if (self->active)
        return;
    ev_prepare_start(self->loop, &self->prepare);
    ev_check_start(self->loop, &self->check);
    self->active = true;
    self->dirty = true;
}

void
proto_zwatch_touch(proto_zwatch_t *self)
{
    self->dirty = true;
}

int
proto_zwatch_connect(proto_zwatch_t *self, const char *endpoint)
{
    int rc = zmq_connect(self->socket, endpoint);
    self->dirty = true; // the edge may be gone: a message already delivered would wait
    return rc;
}

int
proto_zwatch_disconnect(proto_zwatch_t *self, const char *endpoint)
{
    int rc = zmq_disconnect(self->socket, endpoint);
    self->dirty = true; // as for connect
    return rc;
}

void
proto_zwatch_stop(proto_zwatch_t *self)
{
    if (!self->active)
        return;
    ev_prepare_stop(self->loop, &self->prepare);
    ev_check_stop(self->loop, &self->check);
    ev_io_stop(self->loop, &self->io);
    ev_idle_stop(self->loop, &self->idle);
    self->active = false;
}

void
proto_zwatch_destroy(proto_zwatch_t **self_p)
{
    if (*self_p == NULL)
        return;
    proto_zwatch_stop(*self_p);
    free(*self_p);
    *self_p = NULL;
}
