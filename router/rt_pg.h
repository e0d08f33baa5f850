/*  rt_pg - the PostgreSQL config store (DATABASE_URL, SPEC §8), on the
    router's loop.

    One libpq connection in non-blocking mode, driven by an ev_io on its
    socket: connecting, queries and LISTEN notifications never block the
    loop. On connecting it migrates the project's tables (switchyard_*,
    rt_pg_sql.h: versioned, idempotent, under an advisory lock so routers
    starting together migrate once), LISTENs on switchyard_config and loads
    the whole configuration in one statement (one snapshot).

    Changes (rt_store_ops_t.commit) are one call of switchyard_commit(
    version, entry): it checks that the database is at version - 1 (else
    RT_STORE_CONFLICT: another router was first), applies the entry's
    changes to the tables, records the version and NOTIFYs the others, all
    in one transaction. A notification or the refresh timer
    (ROUTER_REFRESH_INTERVAL) with a version we do not have loads again.

    Losing the connection keeps the last configuration serving (nothing
    here drops it); a commit in flight or asked for meanwhile answers
    RT_STORE_UNAVAILABLE (for one in flight the outcome is unknown: the
    next load shows whether it was made), and the connection is made again
    with backoff (100 ms doubling to 5 s). rt_pg_connected says whether the
    store is reachable (the router reports `degraded` otherwise).

    With edge_schema (ROUTER_EDGE_SCHEMA=on), every load also runs seed
    002's query (rt_edge.h) and reports its rows.
*/
#ifndef RT_PG_H
#define RT_PG_H

#include <stdbool.h>
#include <stdint.h>

#include <ev.h>

#include "rt_edge.h"
#include "rt_store.h"

#define RT_PG_BACKOFF_MIN_MS 100        // first reconnect delay
#define RT_PG_BACKOFF_MAX_MS 5000       // longest reconnect delay
#define RT_PG_STATEMENT_MS   5000       // statement_timeout of every query
#define RT_PG_LOCK_ID        7345296001 // advisory lock of the migrations

typedef struct rt_pg rt_pg_t;

//  What the store reports to its owner.
typedef struct {
    //  A configuration read from the database (data taken).
    void (*loaded)(void *arg, rt_store_data_t *data);
    //  Seed 002's rows (edge schema on): valid during the call.
    void (*edge)(void *arg, const rt_edge_row_t *rows, size_t n);
    //  A load asked for after a conflict failed (the connection is down).
    void (*load_failed)(void *arg, const char *why);
    //  The connection went up (true) or down (false).
    void (*connected)(void *arg, bool up);
} rt_pg_events_t;

//  Start connecting to conninfo (a URL or key=value pairs). region is the
//  default backend region for routes that lack one. refresh_ms: re-check
//  period (0: never). Never fails: an unreachable database is retried.
rt_pg_t *rt_pg_new(struct ev_loop *loop,
                   const char *conninfo,
                   const char *region,
                   int64_t refresh_ms,
                   bool edge_schema,
                   rt_pg_events_t events,
                   void *arg);

//  Close the connection and free. Sets *self_p to NULL. Safe to call twice.
void rt_pg_destroy(rt_pg_t **self_p);

//  The store as rt_control uses it.
rt_store_ops_t rt_pg_ops(rt_pg_t *self);

//  True while the connection is up and migrated.
bool rt_pg_connected(const rt_pg_t *self);

//  Counters for pong: (re)connections, loads, commits, failures.
const uint64_t *rt_pg_counter(const rt_pg_t *self, const char *name);

#endif
