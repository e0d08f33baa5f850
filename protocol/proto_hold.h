/*  proto_hold - addressed events held until their addressee subscribes.

    An addressed event (PROTOCOL.md, "Addressed events") published while its
    instance has no subscription to "<type>@<instance>;" on our XPUB would be
    dropped by the XPUB without a word. That happens at every start: a
    gateway opens a chat session on a chatd once the chatd has subscribed to
    the gateway, but the gateway's own subscription to the chatd may still be
    on its way, and the first chat.out (an ack, the inbox) would be lost. So
    the bus holds such an event (a copy of its encoded bytes) until the
    subscription comes, then sends what was held, in order, before anything
    newer; what waits longer than PROTO_HOLD_MS is dropped and counted (an
    instance that never comes back: a gateway gone for good).

    Bounded: PROTO_HOLD_MSGS messages and PROTO_HOLD_BYTES bytes in all; past
    that, a new one is dropped (counted). Only types somebody watches with
    proto_bus_on_subscriber are held: their subscriptions are counted here,
    per address (a reconnect may subscribe twice before the old
    connection's unsubscription: counts, not flags).
*/
#ifndef PROTO_HOLD_H
#define PROTO_HOLD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_HOLD_MS    10000              // longest wait for a subscription
#define PROTO_HOLD_MSGS  65536              // messages held at most
#define PROTO_HOLD_BYTES (64 * 1024 * 1024) // bytes held at most

typedef struct proto_hold proto_hold_t;

//  Send one held message (topic and encoded body). Returns 0 when sent.
typedef int(proto_hold_send_fn)(
    void *arg, const char *topic, size_t tlen, const void *body, size_t len);

proto_hold_t *proto_hold_new(void);

//  True when the address (topic "<type>@<instance>;") has a subscription now.
bool proto_hold_reachable(const proto_hold_t *self, const char *topic, size_t tlen);

//  Keep a copy of an event for an address without a subscription, at now_ms.
//  Returns 0, or -1 when over a bound (dropped, counted).
int proto_hold_keep(proto_hold_t *self,
                    const char *topic,
                    size_t tlen,
                    const void *body,
                    size_t len,
                    uint64_t now_ms);

//  A subscription to the address came (subscribed) or went. When the address
//  becomes reachable, what was held for it is sent with send, oldest first.
void proto_hold_subscription(proto_hold_t *self,
                             const char *topic,
                             size_t tlen,
                             bool subscribed,
                             proto_hold_send_fn *send,
                             void *arg);

//  Drop what has waited PROTO_HOLD_MS at now_ms. Returns how many.
size_t proto_hold_expire(proto_hold_t *self, uint64_t now_ms);

//  Messages held now; dropped (expired or over a bound) since the start.
uint64_t proto_hold_count(const proto_hold_t *self);
uint64_t proto_hold_dropped(const proto_hold_t *self);

void proto_hold_destroy(proto_hold_t **self_p);

#endif
