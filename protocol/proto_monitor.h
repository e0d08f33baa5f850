/*  proto_monitor - the ZeroMQ socket events of one socket (connected,
    disconnected, accepted, handshake failed, ...) through zmq_socket_monitor,
    read on the actor's loop. proto_bus republishes them as socket.event for
    `switchyard monitor`, only while one is subscribed.
*/
#ifndef PROTO_MONITOR_H
#define PROTO_MONITOR_H

#include <stdint.h>

#include <ev.h>

typedef struct proto_monitor proto_monitor_t;

//  One event: the socket's name, the event's name, the endpoint, its value
//  (an fd, an errno or a reconnect interval, depending on the event).
typedef void(proto_monitor_fn)(
    const char *socket, const char *event, const char *endpoint, uint32_t value, void *arg);

//  Watch the events of sock (borrowed) named name (copied). Returns NULL
//  (and logs) when the monitor cannot be set up.
proto_monitor_t *proto_monitor_new(
    struct ev_loop *loop, void *ctx, void *sock, const char *name, proto_monitor_fn *fn, void *arg);

//  The name of a ZMQ_EVENT_* value ("connected"), or "unknown".
const char *proto_monitor_event_name(int event);

//  Stop monitoring (before the watched socket is closed) and free.
//  Sets *self_p to NULL. Safe to call twice.
void proto_monitor_destroy(proto_monitor_t **self_p);

#endif
