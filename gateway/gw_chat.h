/*  gw_chat - chat sessions, the gateway's half (SPEC §9, docs/chat.md).

    A WebSocket upgrade to a route's chatPath is a chat session: the
    identity is checked before the 101 (userId, or the JWT's sub when
    CHAT_JWT_SECRET is set: 401 otherwise), the socket goes to gw_ws for the
    framing, and the session to ONE chatd instance, chosen by rendezvous
    hashing over the instances that subscribed to their address on this
    gateway's XPUB. Text frames go to that chatd as chat.in; chat.out from
    it carries frames for the client and the session's state (rooms,
    presence, inbox cursor), which the gateway keeps so that, when the chatd
    goes, the session moves to another one (chat.open with moved) and the
    client notices nothing. With no chatd at all, a client's frame gets an
    `unavailable` error frame and the session stays open.
*/
#ifndef GW_CHAT_H
#define GW_CHAT_H

#include <stdbool.h>
#include <stdint.h>

#include "gw_req.h"

typedef struct gw_chat gw_chat_t;
typedef struct gw_chat_session gw_chat_session_t;

//  Counters, for pong (chat.*) and /metrics.
typedef struct {
    uint64_t open;        // sessions open now (switchyard_ws_connections)
    uint64_t total;       // sessions opened
    uint64_t refused;     // upgrades refused (identity, handshake, no chatd)
    uint64_t frames_in;   // client frames handed to chatd
    uint64_t frames_out;  // frames written to clients
    uint64_t moved;       // sessions moved to another chatd
    uint64_t unavailable; // client frames answered "unavailable" (no chatd)
    uint64_t chatd;       // chatd instances reachable now
} gw_chat_stats_t;

gw_chat_t *gw_chat_new(gw_actor_t *gw);
void gw_chat_destroy(gw_chat_t **self_p);

//  True if the request is a chat session: a WebSocket upgrade (GET,
//  Connection: upgrade, Upgrade: websocket) to its route's chatPath.
bool gw_chat_wants(const gw_req_t *req);

//  Answer the upgrade: 101 and a session, or the refusal (400 bad
//  handshake, 426 wrong version, 401 no identity, 503 no chatd).
void gw_chat_start(gw_chat_t *self, gw_req_t *req);

//  The connection holding the session closes (gw_conn): the session ends
//  (chatd is told), its socket is closed unless keep_fd (the connection then
//  closes it itself, after a lingering close). Over TLS the connection's SSL
//  goes with the socket: shut down (close_notify) and freed with it, or
//  given back with it under keep_fd. Bytes written to the client are
//  returned for the access line.
uint64_t gw_chat_release(gw_chat_session_t *session, bool keep_fd);

//  SIGTERM: every session is closed with 1001 (going away).
void gw_chat_drain(gw_chat_t *self);

const gw_chat_stats_t *gw_chat_stats(const gw_chat_t *self);

#endif
