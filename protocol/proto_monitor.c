/*  proto_monitor - zmq_socket_monitor events of one socket on the loop.

    libzmq publishes each event on an inproc PAIR as two frames: 6 bytes
    (u16 event, u32 value, native byte order) and the endpoint.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zmq.h>

#include "proto_log.h"
#include "proto_monitor.h"
#include "proto_util.h"
#include "proto_zwatch.h"

#define S_EVENTS                                                                                   \
    (ZMQ_EVENT_CONNECTED | ZMQ_EVENT_CONNECT_RETRIED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_BIND_FAILED  \
     | ZMQ_EVENT_CLOSED | ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL            \
     | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL                         \
     | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)

struct proto_monitor {
    void *watched;         // the socket monitored (borrowed)
    void *pair;            // where libzmq sends its events
    proto_zwatch_t *watch; // readiness of pair
    char name[48];         // socket name for the event
    proto_monitor_fn *fn;  // callback
    void *arg;             // its argument
};

const char *
proto_monitor_event_name(int event)
{
    switch (event) {
        case ZMQ_EVENT_CONNECTED:
            return "connected";
        case ZMQ_EVENT_CONNECT_DELAYED:
            return "connect_delayed";
        case ZMQ_EVENT_CONNECT_RETRIED:
            return "connect_retried";
        case ZMQ_EVENT_LISTENING:
            return "listening";
        case ZMQ_EVENT_BIND_FAILED:
            return "bind_failed";
        case ZMQ_EVENT_ACCEPTED:
            return "accepted";
        case ZMQ_EVENT_ACCEPT_FAILED:
            return "accept_failed";
        case ZMQ_EVENT_CLOSED:
            return "closed";
        case ZMQ_EVENT_CLOSE_FAILED:
            return "close_failed";
        case ZMQ_EVENT_DISCONNECTED:
            return "disconnected";
        case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
        case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
            return "handshake_failed";
        case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
            return "handshake_failed_auth";
        case ZMQ_EVENT_HANDSHAKE_SUCCEEDED:
            return "handshake_succeeded";
        default:
            return "unknown";
    }
}

static void
s_on_event(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    proto_monitor_t *self = arg;
    for (int i = 0; i < 32; i++) {
        zmq_msg_t head, addr;
        zmq_msg_init(&head);
        zmq_msg_init(&addr);
        if (zmq_msg_recv(&head, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&head);
            zmq_msg_close(&addr);
            return;
        }
        bool two = zmq_msg_more(&head) && zmq_msg_recv(&addr, sock, ZMQ_DONTWAIT) >= 0;
        if (two && zmq_msg_size(&head) == 6) {
            uint16_t event;
            uint32_t value;
            const uint8_t *d = zmq_msg_data(&head);
            memcpy(&event, d, 2);
            memcpy(&value, d + 2, 4);
            char endpoint[300];
            size_t n = zmq_msg_size(&addr) < sizeof endpoint - 1 ? zmq_msg_size(&addr)
                                                                 : sizeof endpoint - 1;
            memcpy(endpoint, zmq_msg_data(&addr), n);
            endpoint[n] = '\0';
            self->fn(self->name, proto_monitor_event_name(event), endpoint, value, self->arg);
        }
        zmq_msg_close(&head);
        zmq_msg_close(&addr);
    }
}

proto_monitor_t *
proto_monitor_new(
    struct ev_loop *loop, void *ctx, void *sock, const char *name, proto_monitor_fn *fn, void *arg)
{
    proto_monitor_t *self = proto_xcalloc(1, sizeof *self);
    char endpoint[64];
    snprintf(endpoint, sizeof endpoint, "inproc://monitor-%p", sock);
    proto_strlcpy(self->name, name, sizeof self->name);
    self->fn = fn;
    self->arg = arg;
    if (zmq_socket_monitor(sock, endpoint, S_EVENTS) != 0)
        goto fail;
    self->watched = sock;
    self->pair = zmq_socket(ctx, ZMQ_PAIR);
    int zero = 0;
    if (self->pair == NULL || zmq_setsockopt(self->pair, ZMQ_LINGER, &zero, sizeof zero) != 0
        || zmq_connect(self->pair, endpoint) != 0)
        goto fail;
    self->watch = proto_zwatch_new(loop, self->pair, ZMQ_POLLIN, s_on_event, self);
    if (self->watch == NULL)
        goto fail;
    proto_zwatch_start(self->watch);
    return self;
fail:
    log_warn("socket monitor not available", LOG_S("socket", name),
             LOG_S("error", zmq_strerror(zmq_errno())));
    proto_monitor_destroy(&self);
    return NULL;
}

void
proto_monitor_destroy(proto_monitor_t **self_p)
{
    proto_monitor_t *self = *self_p;
    if (self == NULL)
        return;
    proto_zwatch_destroy(&self->watch);
    if (self->watched)
        zmq_socket_monitor(self->watched, NULL, 0);
    if (self->pair)
        zmq_close(self->pair);
    free(self);
    *self_p = NULL;
}
