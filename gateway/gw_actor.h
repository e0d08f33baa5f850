/*  gw_actor - the gateway actor: settings, context, lifetime.

    The gateway terminates HTTP clients on GATEWAY_HTTP_ADDR and the admin
    listener on GATEWAY_ADMIN_ADDR, asks the router for routing decisions
    (leases), proxies each request to a backend chosen inside its lease, and
    publishes every request's metadata as batched request.done. Its context
    is shared by the gateway's modules (gw_conn, gw_proxy, gw_admin).
*/
#ifndef GW_ACTOR_H
#define GW_ACTOR_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "gw_cidr.h"
#include "gw_lease.h"
#include "gw_dns.h"
#include "gw_queue.h"
#include "gw_report.h"
#include "gw_splice.h"
#include "gw_tunnel.h"
#include "gw_req.h"
#include "proto_actor.h"
#include "proto_slab.h"

typedef struct {
    proto_common_config_t common; // settings every actor has
    proto_addr_t http_addr;       // GATEWAY_HTTP_ADDR
    proto_addr_t https_addr;      // GATEWAY_HTTPS_ADDR (port 0: unset, no HTTPS listener)
    proto_addr_t admin_addr;      // GATEWAY_ADMIN_ADDR
    char *admin_token;            // ADMIN_TOKEN (secret) or NULL
    char admin_principal[24];     // who changes config: "token-<12 hex of its SHA-256>" or "local"
    char *trusted_proxies;        // GATEWAY_TRUSTED_PROXIES
    int64_t lease_ttl_ms;         // GATEWAY_LEASE_TTL (0: no reuse)
    int64_t decision_timeout_ms;  // GATEWAY_DECISION_TIMEOUT
    int64_t connect_timeout_ms;   // GATEWAY_CONNECT_TIMEOUT
    int64_t header_timeout_ms;    // GATEWAY_HEADER_TIMEOUT
    int64_t body_timeout_ms;      // GATEWAY_BODY_TIMEOUT: longest pause between two body reads
    int64_t idle_timeout_ms;      // GATEWAY_IDLE_TIMEOUT
    int64_t upstream_idle_timeout_ms; // GATEWAY_UPSTREAM_IDLE_TIMEOUT: pooled upstream idle limit
    int64_t drain_timeout_ms;         // GATEWAY_DRAIN_TIMEOUT
    int64_t max_connections;          // GATEWAY_MAX_CONNECTIONS
    char *public_health_path;         // GATEWAY_PUBLIC_HEALTH_PATH ("" disables)
    int64_t admin_timeout_ms;         // GATEWAY_ADMIN_TIMEOUT (handler deadline)
    bool access_log;                  // GATEWAY_ACCESS_LOG
    char *redis_url;                  // REDIS_URL (rate limits), NULL: count in memory
    char *chat_jwt_secret;            // CHAT_JWT_SECRET (secret), NULL: chat needs no token
    int64_t chat_ping_interval_ms;    // CHAT_PING_INTERVAL: WebSocket ping to chat clients
    int64_t chat_idle_timeout_ms;     // CHAT_IDLE_TIMEOUT: a silent chat session is closed
} gw_config_t;

//  Load settings. Returns 0 to run, 1 after --help, 2 after a bad value.
int gw_config_load(gw_config_t *cfg, int argc, char **argv);
void gw_config_free(gw_config_t *cfg);

typedef struct gw_pool gw_pool_t;
typedef struct gw_chat gw_chat_t;

//  The context every gateway module reaches through conn->gw.
struct gw_actor {
    const gw_config_t *cfg;                 // settings (borrowed)
    proto_actor_t *actor;                   // loop, bus, signals
    struct ev_loop *loop;                   // the loop
    proto_bus_t *bus;                       // the bus
    int http_fd;                            // public listener
    int admin_fd;                           // admin listener
    ev_io http_io;                          // accept on the public listener
    ev_io admin_io;                         // accept on the admin listener
    int https_fd;                           // HTTPS listener, or -1 (GATEWAY_HTTPS_ADDR unset)
    ev_io https_io;                         // accept on it
    struct gw_tls *tls;                     // its certificates (gw_tls), or NULL
    struct gw_tls_table *certs_next;        // the table being fetched from the router, page by page
    uint64_t certs_version;                 // configuration version of the pages fetched so far
    uint32_t certs_from;                    // index of the page asked for
    bool certs_pending;                     // a certs.get is in flight
    bool certs_again;                       // a change came meanwhile: fetch again after it
    ev_timer certs_timer;                   // a fetch that failed is tried again
    uint64_t tls_failures;                  // TLS handshakes that failed (pong tls.failures)
    struct gw_rl *rl;                       // rate limits (gw_rl)
    struct gw_authp *authp;                 // authProvider checks (gw_authp)
    uint64_t auth_refused;                  // requests a route's auth refused (pong auth.refused)
    gw_cidr_list_t trusted;                 // GATEWAY_TRUSTED_PROXIES
    gw_leases_t *leases;                    // routing decisions
    gw_report_t *report;                    // request.done batches
    gw_pool_t *pool;                        // idle upstream connections
    gw_pipes_t *pipes;                      // pipes for spliced response bodies
    gw_chat_t *chat;                        // chat sessions (gw_chat)
    struct gw_events *events;               // event streams (gw_events)
    char chat_topic[PROTO_BUS_ADDRESS_MAX]; // chat.out@<our instance>; (what chatd sends us)
    gw_queues_t *queues;                    // per-route backpressure
    gw_dns_t *dns;                          // backend names (c-ares)
    gw_conn_t *conns;                       // every client connection
    proto_slab_t *conn_slab;                // ... their records, packed (idle ones cost ~0.5 KB)
    uint64_t nconns;                        // how many
    bool draining;                          // SIGTERM received
    ev_timer drain_timer;                   // drain deadline
    ev_idle drain_done;                     // the last connection closed while draining
    ev_timer trim_timer;                    // gives freed memory back after many connections closed
    uint64_t closed_since_trim;             // connections closed since the last trim
    uint64_t active_reqs;                   // requests in the gateway now
    uint64_t reqs_since_trim;               // requests ended since the last trim
    uint64_t rng[2];                        // xorshift128+ state (request ids, random strategy)
    uint64_t start_us;                      // monotonic start
    // counters, in pong (proto_bus_counter) and later in /metrics
    uint64_t requests;          // public requests answered (or abandoned)
    uint64_t admin_requests;    // admin listener requests answered
    uint64_t stale_served;      // requests served from a stale lease
    uint64_t rejected;          // connections over GATEWAY_MAX_CONNECTIONS
    uint64_t upstream_failures; // failed upstream attempts (upstream.failed)
    gw_tunnel_stats_t tunnels;  // WebSocket tunnels (tunnels.open, tunnels.total)
};

typedef struct gw_actor gw_actor_t;

gw_actor_t *gw_actor_new(const gw_config_t *cfg);
int gw_actor_run(gw_actor_t *self);
void gw_actor_destroy(gw_actor_t **self_p);

//  A connection closed while draining (gw_conn calls it): when it was the
//  last, the drain ends.
void gw_actor_conn_gone(gw_actor_t *self);

//  A client connection closed (gw_conn calls it): after many closes the
//  allocator's free memory is given back to the system, off the hot path.
void gw_actor_conn_closed(gw_actor_t *self);

//  A request began or ended (gw_conn calls them): after many requests, the
//  first moment with none in flight gives the memory they used back (a trim).
void gw_actor_req_started(gw_actor_t *self);
void gw_actor_req_ended(gw_actor_t *self);

//  A 64-bit pseudo-random number (not for secrets).
uint64_t gw_actor_random(gw_actor_t *self);

#endif
