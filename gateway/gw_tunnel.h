/*  gw_tunnel - two sockets relayed to each other after a protocol switch.

    After a backend answers a WebSocket upgrade with 101, the client's
    socket and the backend's carry bytes both ways, opaque (no framing is
    parsed), until both sides have closed. Each direction has a bounded
    buffer: while the bytes waiting for one side are above GW_OUT_HIGH, the
    other side is not read, and reading resumes below GW_OUT_LOW (the rest of
    the gateway's backpressure). An EOF from one side is passed on as
    shutdown(SHUT_WR) of the other once what it sent is written; the tunnel
    is done when both directions are, or at once on an error, or after
    idle_s seconds without a byte either way (fin_s once one side has
    closed).

    The client's side may be TLS (the HTTPS listener): its bytes then go
    through SSL_read/SSL_write on the connection's SSL and the record layer
    stays in the gateway (the backend's side is plain TCP). An EOF passed on
    to it is a close_notify, then shutdown(SHUT_WR). Nothing is spliced: the
    relay copies through its buffers either way.
*/
#ifndef GW_TUNNEL_H
#define GW_TUNNEL_H

#include <stddef.h>
#include <stdint.h>

#include <ev.h>
#include <openssl/ssl.h>

typedef struct gw_tunnel gw_tunnel_t;

typedef enum {
    GW_TUNNEL_CLIENT = 0, // the client's socket
    GW_TUNNEL_BACKEND,    // the backend's socket
} gw_tunnel_side_t;

//  Tunnels of a gateway process (pong: tunnels.open, tunnels.total).
typedef struct {
    uint64_t open;  // open now
    uint64_t total; // opened since start
} gw_tunnel_stats_t;

//  Called once when the tunnel is done; reason is "closed" (both sides
//  closed), "error" (a read or write failed) or "idle". The callback may
//  destroy the tunnel; the tunnel does not touch itself after calling it.
typedef void(gw_tunnel_done_fn)(gw_tunnel_t *tunnel, const char *reason, void *arg);

//  A tunnel between the client's socket client_fd (borrowed: its owner
//  closes it after destroying the tunnel) and the backend's backend_fd
//  (owned: closed by gw_tunnel_destroy). Both are non-blocking. client_ssl:
//  the client's TLS session over client_fd (borrowed with it: its owner
//  frees it after destroying the tunnel), or NULL for a plain socket; it
//  may hold decrypted bytes already (read first). idle_s:
//  seconds without a byte either way before it closes (0: no bound); fin_s:
//  the bound once one side's EOF was passed on, when shorter (0: idle_s).
//  stats (borrowed, may be NULL) counts it open until destroyed. Nothing
//  moves until gw_tunnel_start.
gw_tunnel_t *gw_tunnel_new(struct ev_loop *loop,
                           int client_fd,
                           SSL *client_ssl,
                           int backend_fd,
                           double idle_s,
                           double fin_s,
                           gw_tunnel_stats_t *stats,
                           gw_tunnel_done_fn *done,
                           void *arg);

//  Queue bytes for a side's socket ahead of anything relayed (a response
//  head not yet written, bytes read past a head). Copied.
void gw_tunnel_queue(gw_tunnel_t *self, gw_tunnel_side_t side, const void *data, size_t len);

//  Start relaying.
void gw_tunnel_start(gw_tunnel_t *self);

//  Bytes read from the other side and relayed towards this side.
uint64_t gw_tunnel_bytes(const gw_tunnel_t *self, gw_tunnel_side_t side);

//  Stop the watchers, close the backend's socket, free. Sets *self_p to
//  NULL. Safe to call twice.
void gw_tunnel_destroy(gw_tunnel_t **self_p);

#endif
