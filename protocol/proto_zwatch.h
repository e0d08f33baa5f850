/*  proto_zwatch - a libev watcher for a ZeroMQ socket.

    ZMQ_FD is edge-triggered and only a hint: any send, receive or ZMQ_EVENTS
    read can consume the edge, so a plain ev_io on it stalls. This bundle (after
    flux-core's ev_zmq.c) uses an ev_prepare that checks ZMQ_EVENTS and starts
    an ev_idle when work is pending (so the loop does not block) or an ev_io on
    ZMQ_FD otherwise, and an ev_check that stops both, re-reads ZMQ_EVENTS and
    calls the callback when the wanted events are set. The callback handles a
    bounded batch with ZMQ_DONTWAIT and returns; the next prepare sees the rest.

    ZMQ_EVENTS is read only for a socket that may have changed: its ZMQ_FD
    fired, its callback just ran, or its owner touched it (proto_zwatch_touch
    after a send, which can consume the edge). An idle socket then costs no
    system call per loop iteration, which matters when an actor holds many
    sockets and the loop turns tens of thousands of times a second.

    Connect and disconnect a watched socket only through proto_zwatch_connect
    and proto_zwatch_disconnect: libzmq processes pending commands (and may
    consume the ZMQ_FD edge) inside zmq_connect, and a socket that never
    sends (a SUB) would not be looked at again, its messages left unread.
*/
#ifndef PROTO_ZWATCH_H
#define PROTO_ZWATCH_H

#include <ev.h>

typedef struct proto_zwatch proto_zwatch_t;

//  Called with the ZMQ_EVENTS bits that are set among those wanted.
typedef void(proto_zwatch_fn)(proto_zwatch_t *watch, void *socket, int revents, void *arg);

//  Create a watcher for socket (borrowed) calling fn when any of events
//  (ZMQ_POLLIN, ZMQ_POLLOUT) is ready. Returns NULL if ZMQ_FD cannot be read.
proto_zwatch_t *
proto_zwatch_new(struct ev_loop *loop, void *socket, int events, proto_zwatch_fn *fn, void *arg);

void proto_zwatch_start(proto_zwatch_t *self);

//  The socket was used outside the callback (a send): read ZMQ_EVENTS again
//  before the loop next blocks.
void proto_zwatch_touch(proto_zwatch_t *self);

//  zmq_connect / zmq_disconnect the watched socket to endpoint, then touch
//  the watcher. Returns 0, or -1 with zmq_errno() set (the watcher is
//  touched either way).
int proto_zwatch_connect(proto_zwatch_t *self, const char *endpoint);
int proto_zwatch_disconnect(proto_zwatch_t *self, const char *endpoint);

void proto_zwatch_stop(proto_zwatch_t *self);

//  Stop and free. Sets *self_p to NULL. Safe to call twice.
void proto_zwatch_destroy(proto_zwatch_t **self_p);

#endif
