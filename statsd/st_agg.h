/*  st_agg - statsd's aggregates: per vHost and per (vHost, backend) request
    counts, errors, rates and latency windows; upstream failures per backend;
    backend health from healthd; process figures and counters per actor
    instance.

    Bounded: at most ST_AGG_MAX_VHOSTS vHosts and ST_AGG_MAX_BACKENDS
    (vHost, backend) pairs are tracked, each created on first sight and kept
    since statsd's start; requests of any further one count in the series
    named ST_AGG_OTHER ("(other)", which no hostname or backend id can be),
    and each such request in st_agg_folded. Recording a request is two or
    three hash lookups on the strings and a few increments: no allocation
    (a series is allocated once, the first time its name is seen).

    Time is given by the caller (ms since the epoch): the batch's envelope
    ts, so two statsd instances fed the same batches hold the same figures.
*/
#ifndef ST_AGG_H
#define ST_AGG_H

#include <stdbool.h>
#include <stdint.h>

#include "proto.h"
#include "st_hist.h"

#define ST_AGG_MAX_VHOSTS    128 // vHost series (plus "(other)")
#define ST_AGG_MAX_BACKENDS  512 // (vHost, backend) series (plus "(other)")
#define ST_AGG_MAX_FAILURES  512 // backends with upstream failures (plus "(other)")
#define ST_AGG_MAX_STATES    512 // (route, backend) health states from healthd
#define ST_AGG_MAX_INSTANCES 64  // actor instances with process figures
#define ST_AGG_OTHER         "(other)"
#define ST_AGG_CODES         501 // status codes 100..599, and one slot for any other
#define ST_AGG_LE_COUNT      13  // finite buckets of the Prometheus histogram

//  The Prometheus histogram's finite upper bounds, seconds and µs.
extern const double st_agg_le_seconds[ST_AGG_LE_COUNT];
extern const uint64_t st_agg_le_us[ST_AGG_LE_COUNT];

//  What every series counts.
typedef struct {
    uint64_t requests;    // since statsd's start
    uint64_t errors_4xx;  // status 400-499
    uint64_t errors_5xx;  // status 500-599
    st_rate_t rate;       // last minute
    st_latency_t latency; // last 5 minutes
} st_series_t;

typedef struct {
    char name[PROTO_REQINFO_VHOST_MAX + 1]; // the matched route's vHost, "" for none
    st_series_t s;                          // its figures
    uint64_t codes[ST_AGG_CODES];           // requests per status (index status - 100)
    uint64_t le[ST_AGG_LE_COUNT + 1];       // requests per Prometheus bucket (not cumulative)
    uint64_t sum_us;                        // sum of durations since the start
} st_vhost_t;

typedef struct {
    char vhost[PROTO_REQINFO_VHOST_MAX + 1]; // its series' vHost
    char id[PROTO_REQINFO_BACKEND_MAX + 1];  // backend id
    char route[PROTO_REQINFO_ROUTE_MAX + 1]; // route id (first seen), for healthd's states
    st_series_t s;                           // its figures
} st_backend_t;

typedef struct {
    char id[PROTO_UPSTREAM_FAILED_BACKEND_MAX + 1]; // backend id
    uint64_t failures;                              // upstream.failed events
} st_failure_t;

typedef struct {
    char route[PROTO_BACKEND_STATE_ROUTE_MAX + 1];     // route id
    char backend[PROTO_BACKEND_STATE_BACKEND_MAX + 1]; // backend id
    bool up;                                           // last reported
} st_state_t;

typedef struct {
    char name[PROTO_COUNTER_NAME_MAX + 1]; // counter name
    uint64_t value;                        // its value
} st_counter_t;

typedef struct {
    char kind[PROTO_PROC_STATS_KIND_MAX + 1];             // actor kind
    char instance[PROTO_PROC_STATS_INSTANCE_MAX + 1];     // INSTANCE_ID
    uint32_t pid;                                         // process id
    double cpu_seconds;                                   // user + system
    uint64_t rss_bytes;                                   // resident set
    uint32_t open_fds;                                    // open fds
    double start_time;                                    // seconds since the epoch
    uint64_t seen_ms;                                     // when its last proc.stats came
    st_counter_t counters[PROTO_PROC_STATS_COUNTERS_MAX]; // its pong counters
    uint32_t ncounters;                                   // how many
} st_instance_t;

//  Chat figures, from the counters of the gateways' and chatd instances'
//  proc.stats (every PROC_STATS_INTERVAL), summed over the instances.
typedef struct {
    uint64_t ws_connections; // WebSockets the gateways hold (gateway chat.sessions)
    uint64_t sessions;       // sessions chatd holds (chatd chat.sessions)
    uint64_t messages;       // messages chatd accepted (chatd chat.messages)
    uint64_t rooms;          // rooms with a member (chatd chat.rooms: a room whose
                             // members are on two instances counts twice)
} st_chat_t;

typedef struct st_agg st_agg_t;

//  Create empty aggregates; started_ms is "since" (ms since the epoch).
st_agg_t *st_agg_new(uint64_t started_ms);

//  Destroy. Sets *self_p to NULL. Safe to call twice.
void st_agg_destroy(st_agg_t **self_p);

//  Record one finished request at now_ms.
void st_agg_request(st_agg_t *self, const proto_reqinfo_t *info, uint64_t now_ms);

//  Record an upstream failure of a backend.
void st_agg_failure(st_agg_t *self, const char *backend);

//  Record a backend's health (healthd's backend.state).
void st_agg_state(st_agg_t *self, const char *route, const char *backend, bool up);

//  Record an actor instance's proc.stats at now_ms. Returns 0, or -1 when
//  the instance table is full (the message is dropped).
int st_agg_proc(st_agg_t *self, const proto_proc_stats_t *stats, uint64_t now_ms);

//  Forget instances not heard from since now_ms - max_age_ms.
void st_agg_expire(st_agg_t *self, uint64_t now_ms, uint64_t max_age_ms);

//  When aggregation started (ms since the epoch).
uint64_t st_agg_since(const st_agg_t *self);

//  Requests folded into an "(other)" series since the start; borrowed
//  pointer for the pong counter.
const uint64_t *st_agg_folded(const st_agg_t *self);

//  Every request (all vHosts together).
const st_series_t *st_agg_total(const st_agg_t *self);

//  A vHost's series by name, or NULL (borrowed).
const st_vhost_t *st_agg_vhost(const st_agg_t *self, const char *name);

//  The tracked entries, sorted by name (vHost; vHost then id; id; route then
//  backend; kind then instance). Fill out (borrowed pointers, valid until
//  the next st_agg call) and return the count; out has room for the table's
//  maximum plus one.
unsigned st_agg_vhosts(const st_agg_t *self, const st_vhost_t **out);
unsigned st_agg_backends(const st_agg_t *self, const st_backend_t **out);
unsigned st_agg_failures(const st_agg_t *self, const st_failure_t **out);
unsigned st_agg_states(const st_agg_t *self, const st_state_t **out);
unsigned st_agg_instances(const st_agg_t *self, const st_instance_t **out);

//  The chat figures of the instances tracked now.
void st_agg_chat(const st_agg_t *self, st_chat_t *out);

//  Health of a backend series: false only when healthd reported its
//  (route, backend) down.
bool st_agg_backend_up(const st_agg_t *self, const st_backend_t *backend);

//  The vHost a route serves, as learned from requests, or NULL.
const char *st_agg_route_vhost(const st_agg_t *self, const char *route);

#endif
