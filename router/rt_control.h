/*  rt_control - the configuration the router serves, and the commands that
    read and change it (config.get, config.put, config.delete; the table of
    docs/request-path.md and router/README.md).

    Owns the route table, regions, certificates and history. A change is
    staged as the next configuration (a copy of the current one with the
    change applied, the next version, and a history entry that records what
    changed, before and after: rt_history), handed to the store, and made
    current only when the store says it is durable; when the store fails,
    the answer is 500 (503 when the store is unreachable) and nothing
    changes in memory.

    A store may answer later (PostgreSQL, on the loop): one change is in
    flight at a time, and commands that change something wait their turn in
    a FIFO queue (reads are answered at once, from the current state). A
    command that waited more than RT_CONTROL_QUEUE_MS is answered 503
    without being run (apid has given up on it by then: it must not happen
    behind the client's back). When another router made the same version
    first (RT_STORE_CONFLICT), the store is asked to reload and the command
    runs again on the new state, up to RT_CONTROL_TRIES times.

    No bus and no I/O here: the store is a set of callbacks
    (rt_store_ops_t), so every command is unit-testable.
*/
#ifndef RT_CONTROL_H
#define RT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "rt_store.h"
#include "rt_table.h"

#define RT_CONTROL_BODY_MAX    PROTO_CONFIG_REPLY_BODY_MAX // config.reply body bound
#define RT_CONTROL_REGIONS_MAX PROTO_PICK_REGIONS_MAX      // regions a PUT may register
#define RT_CONTROL_CERTS_MAX   10000                       // certificates that may be stored
#define RT_CONTROL_QUEUE_MS    2500 // a change waits at most this long for its turn
#define RT_CONTROL_TRIES       8    // runs of one change that meets a conflict

typedef struct rt_control rt_control_t;

//  The answer to one command.
typedef struct {
    uint16_t status;  // HTTP status: 200, 201, 204, 400, 404, 409, 500
    uint64_t version; // configuration version after the command
    char *body;       // JSON text, or NULL (204 and errors); owned, freed by rt_result_clear
    char error[512];  // message when status >= 400
    char field[PROTO_CONFIG_REPLY_FIELD_MAX + 1]; // the bad field, or ""
    bool changed;                                 // a new version was made: publish config.changed
    char what[PROTO_CONFIG_CHANGED_WHAT_MAX + 1]; // config.changed's what
    char key[PROTO_CONFIG_CHANGED_KEY_MAX + 1];   // config.changed's key
    char by[PROTO_CONFIG_CHANGED_BY_MAX + 1];     // config.changed's by
    char summary[PROTO_CONFIG_CHANGED_SUMMARY_MAX + 1]; // config.changed's summary
} rt_result_t;

//  Answer to a change: called exactly once per rt_control_put/delete,
//  possibly before it returns. result is cleared after the call. result is
//  NULL when rt_control_destroy drops a change nobody can be told about.
typedef void(rt_control_done_fn)(void *arg, rt_result_t *result);

//  Serve data (taken; the caller's copy is zeroed), saving changes through
//  store. region is REGION (default backend region).
rt_control_t *rt_control_new(const char *region, rt_store_data_t *data, rt_store_ops_t store);

//  Serve nothing until the store's first load (rt_control_replace): until
//  then rt_control_loaded is false and every command answers 503.
rt_control_t *rt_control_new_unloaded(const char *region, rt_store_ops_t store);

//  True once a configuration is loaded.
bool rt_control_loaded(const rt_control_t *self);

//  Routes derived from seed 002's tables (rt_edge; both taken, NULL for
//  none): served with the API's routes, the API's route winning a vHost
//  both have (logged), and their regions likewise. Not versioned, not in
//  GET /routes: they are the database's, read again every refresh.
void rt_control_set_edge(rt_control_t *self, rt_table_t *table, json_t *regions);

//  Load the file store at path and serve it (rt_store_file_ops). Returns
//  NULL with a one-line reason in err if the file cannot be read or is
//  malformed (a missing file is an empty configuration at version 0).
rt_control_t *rt_control_open_file(const char *path, const char *region, char *err, size_t errlen);

//  Free everything. Sets *self_p to NULL. Safe to call twice.
void rt_control_destroy(rt_control_t **self_p);

//  Current configuration version.
uint64_t rt_control_version(const rt_control_t *self);

//  The route table served (the API's routes and the edge's). Borrowed:
//  valid until the next change.
const rt_table_t *rt_control_table(const rt_control_t *self);

//  Regions that have a public address, as pick carries them. Borrowed:
//  valid until the next change.
const proto_region_t *rt_control_regions(const rt_control_t *self, uint32_t *count);

//  Show healthd's verdicts (a proto_pairs map of rt_runtime_t by route id
//  and backend id, borrowed; NULL: none) as the backends' runtime fields of
//  GET /routes.
struct proto_pairs;
void rt_control_set_health(rt_control_t *self, const struct proto_pairs *health);

//  A read: fills *result at once (the caller clears it with
//  rt_result_clear).
void rt_control_get(rt_control_t *self, const proto_config_get_t *cmd, rt_result_t *result);

//  certs.get: the certificates with their keys for gateways (the stored
//  ones, with their OCSP response decoded to DER when they have one, then
//  the routes' ssl with their vHost as domain), one page of at most cap from
//  index from, at most 1.5 MiB of PEM and OCSP bytes but always one (a
//  route without ssl, or a PEM over the bus's bounds, is skipped). *next is the index to ask for next, 0 after the
//  last page. Returns how many indexes there are. Strings borrowed: valid
//  until the next change.
uint32_t rt_control_certs(const rt_control_t *self,
                          uint32_t from,
                          proto_cert_t *page,
                          uint32_t cap,
                          uint32_t *count,
                          uint32_t *next);

//  A change (or a refusal): done is called with the answer, at once or when
//  the store has answered. now_ms is the wall clock (history, queue
//  deadline). cmd is copied.
void rt_control_put(rt_control_t *self,
                    const proto_config_put_t *cmd,
                    uint64_t now_ms,
                    rt_control_done_fn *done,
                    void *arg);
void rt_control_delete(rt_control_t *self,
                       const proto_config_delete_t *cmd,
                       uint64_t now_ms,
                       rt_control_done_fn *done,
                       void *arg);

//  The store found a configuration made elsewhere (another router's change,
//  a refresh, a reload after a conflict): serve data (taken) if its version
//  differs from the current one. While a change is in flight the newest
//  such data waits until it is done. When it becomes current, the reload
//  callback (rt_control_on_reload) is called (the caller publishes
//  config.changed).
void rt_control_replace(rt_control_t *self, rt_store_data_t *data);

typedef void(rt_control_reload_fn)(void *arg, uint64_t version);

//  Call fn when rt_control_replace made a configuration current.
void rt_control_on_reload(rt_control_t *self, rt_control_reload_fn *fn, void *arg);

//  A reload asked for after a conflict could not be made: the changes
//  waiting for it are answered 503.
void rt_control_reload_failed(rt_control_t *self, const char *why);

//  How many changes wait (in flight included).
size_t rt_control_queued(const rt_control_t *self);

//  Free what a result holds and zero it.
void rt_result_clear(rt_result_t *result);

#endif
