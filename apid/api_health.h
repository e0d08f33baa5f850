/*  api_health - the deep health endpoints (SPEC §10, seeds 003 and 004).

      GET /api/health               every actor instance over the bus with its
                                    round trip (proto_census), PostgreSQL and
                                    Redis as the actors that use them report
                                    them; "healthy" / "degraded" / "unhealthy"
      GET /api/health/ready         200 when a router (with its configuration
                                    loaded) and a balancer answer, else 503
      GET /api/health/live          200: apid answers
      GET /api/health/metrics       statsd's /metrics (an alias)
      GET /api/health/system        the host: load, memory, CPUs, uptime
      GET /api/health/sockets       client connections and chat sessions, from
                                    the gateways' and chatd's counters
      GET /api/health/db-pool       the config store as each router reports it
      GET /api/health/comprehensive all of the above in one answer

    The rules of /api/health (seed 004's three states): unhealthy (503) when
    no router or no balancer answers — nothing can be routed; degraded (200)
    when something answers less than fully: an instance found on the bus
    that did not answer, a kind of actor with no instance up (healthd,
    statsd, chatd), a router whose PostgreSQL store is unreachable or not
    loaded, a Redis reported down; healthy (200) otherwise. Each answer
    says which check made it so ("reasons").

    A census round waits at most API_HEALTH_TIMEOUT_MS for slow instances;
    apid's own entry is filled in locally.
*/
#ifndef API_HEALTH_H
#define API_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ev.h>

#include <jansson.h>

#include "proto_actor.h"
#include "proto_bus.h"
#include "proto_census.h"

#define API_HEALTH_TIMEOUT_MS 1000 // longest wait for an instance's pong

typedef struct api_health api_health_t;

//  Create the handler. cfg gives the bus directory, peers, instance and
//  region (copied). Returns NULL with a one-line reason in err.
api_health_t *api_health_new(struct ev_loop *loop,
                             proto_bus_t *bus,
                             const proto_common_config_t *cfg,
                             char *err,
                             size_t errlen);

//  If path is one of the endpoints above, answer it (at once or after a
//  census round) to ret and return true; else false.
bool api_health_handle(api_health_t *self,
                       const proto_return_t *ret,
                       const char *method,
                       const char *path);

//  The census the handler pings the fleet with (the event stream's actors
//  event runs its rounds too).
proto_census_t *api_health_census(api_health_t *self);

//  One census entry as /api/health lists it: kind, endpoint, status and,
//  when it answered, instance, pid, region, version, uptimeMs, rttMs (and
//  every counter when counters). A new reference.
json_t *api_health_instance(const proto_census_entry_t *e, bool counters);

//  This apid's own entry in the same shape ("endpoint": "(this one)",
//  round trip 0). A new reference.
json_t *api_health_self(const api_health_t *self);

//  Answers still being prepared.
size_t api_health_pending(const api_health_t *self);

//  Free; answers in preparation are dropped. Sets *self_p to NULL.
void api_health_destroy(api_health_t **self_p);

#endif
