/*  chat_hub - chatd's sessions and what they do in Redis (SPEC §9, docs/chat.md).

    A session arrives with chat.open from the gateway that holds its socket
    (addressed to this chatd), sends its client's frames as chat.in and ends
    with chat.close. The hub parses each frame (chat_frame), does what it
    asks in Redis (chat_redis) and answers through chat.out addressed to the
    session's gateway: an ack once a message is stored, an error frame for a
    bad frame or while Redis is away, and every message, typing and presence
    event published on a channel the session listens to.

    Channels carry "<inbox entry id or ->\n<origin session>\n<frame>": the
    entry id orders and de-duplicates a user's messages (the inbox cursor),
    the origin keeps a session from hearing its own typing and presence.
*/
#ifndef CHAT_HUB_H
#define CHAT_HUB_H

#include <stdint.h>

#include "chat_redis.h"
#include "proto_bus.h"

#define CHAT_ROOMS_MAX    100  // rooms one session may be in
#define CHAT_INBOX_MAX    1000 // entries kept per user inbox
#define CHAT_INBOX_TTL_S  (7 * 24 * 3600)
#define CHAT_SEEN_TTL_S   600 // a client message id is remembered this long
#define CHAT_REPLAY_BATCH 100 // inbox entries read at once

typedef struct chat_hub chat_hub_t;

//  Counters, for pong (chat.*) and /metrics.
typedef struct {
    uint64_t sessions;   // sessions held now (switchyard_chat_sessions)
    uint64_t opened;     // sessions opened (or moved here)
    uint64_t messages;   // messages accepted (switchyard_chat_messages_total)
    uint64_t delivered;  // frames sent to clients
    uint64_t errors;     // error frames sent (bad frames, unavailable)
    uint64_t replayed;   // inbox entries delivered on open or after a gap
    uint64_t rooms;      // rooms with a member here (switchyard_chat_rooms)
    uint64_t dropped;    // chat.in for a session we do not hold
    uint64_t duplicates; // live inbox entries already delivered by a replay (skipped)
} chat_hub_stats_t;

//  The hub on bus (handlers registered here) with Redis (owned by the
//  caller, its callbacks routed to chat_hub_on_message/on_state).
chat_hub_t *chat_hub_new(proto_bus_t *bus, const char *instance, chat_redis_t *redis);
void chat_hub_destroy(chat_hub_t **self_p);

//  Use another Redis client, or none (NULL: everything that needs Redis
//  answers "unavailable"); for the actor's shutdown.
void chat_hub_set_redis(chat_hub_t *self, chat_redis_t *redis);

//  chat_redis callbacks: a pub/sub message, Redis up or down.
void chat_hub_on_message(chat_hub_t *self, const char *channel, const char *payload, size_t len);
void chat_hub_on_state(chat_hub_t *self, int up);
//  Redis confirmed the subscription to channel: sessions waiting for it to
//  read their inbox start now (a replay before it could miss a message
//  published between the read and the subscription).
void chat_hub_on_subscribed(chat_hub_t *self, const char *channel);

const chat_hub_stats_t *chat_hub_stats(const chat_hub_t *self);

#endif
