/*  proto_census - who is on the bus right now, instance by instance.

    A bus peer socket (proto_bus_use) reaches one instance of a kind per
    request, whichever ZeroMQ picks; deep health must see every instance.
    A census keeps its own discovery of every kind (proto_disc: the same
    BUS_DIR files, DNS names or lists as the bus) and, for a round, opens
    one DEALER per known instance, pings each, and reports every instance
    with its round trip and pong — or no answer — once all have answered or
    the round's deadline passed. Rounds may overlap; each owns its sockets
    (closed when it ends), so a census costs nothing between rounds but the
    discovery's directory watch.

    Its own ZeroMQ context: nothing here touches the bus's sockets.
*/
#ifndef PROTO_CENSUS_H
#define PROTO_CENSUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include "proto.h"
#include "proto_bus.h"
#include "proto_curve.h"
#include "proto_disc.h"

#define PROTO_CENSUS_MAX 512 // instances in one round (all kinds)

//  One instance in a round's report.
typedef struct {
    int kind;                               // PROTO_KIND_*
    char endpoint[PROTO_DISC_ENDPOINT_MAX]; // its ROUTER
    bool answered;                          // a pong came back in time
    double rtt_ms;                          // round trip, when answered
    proto_msg_t pong;                       // the pong, when answered
} proto_census_entry_t;

typedef struct proto_census proto_census_t;

//  A round ended: entries[0..n) ordered by kind, then endpoint. Valid
//  during the call only.
typedef void(proto_census_fn)(void *arg, const proto_census_entry_t *entries, size_t n);

//  Watch every kind in bus_dir (or peers[kind], a BUS_PEERS_<KIND> value,
//  when set). curve: the process's CURVE keys (copied; NULL: plain), used
//  for tcp instances. src is the sender name pings carry. Returns NULL with
//  a one-line reason in err.
proto_census_t *proto_census_new(struct ev_loop *loop,
                                 const char *bus_dir,
                                 const char *const *peers,
                                 const proto_curve_t *curve,
                                 const char *src,
                                 char *err,
                                 size_t errlen);

//  Ping every instance known now; done is called once, on the loop (never
//  before this returns), when every instance answered or timeout_ms passed.
void proto_census_round(proto_census_t *self, int64_t timeout_ms, proto_census_fn *done, void *arg);

//  Instances of kind known now.
size_t proto_census_count(const proto_census_t *self, int kind);

//  End every round without calling back, close everything, free. Sets
//  *self_p to NULL. Safe to call twice.
void proto_census_destroy(proto_census_t **self_p);

#endif
