/*  rt_pg - the PostgreSQL config store (see rt_pg.h).

    States: DOWN (waiting for the reconnect timer), CONNECTING (PQconnectPoll
    steps, watching whichever direction libpq asks for), READY. In READY one
    query at a time is in flight (op); what is wanted next waits as flags
    and the one commit rt_control allows, and s_next starts the most urgent:
    migrate, commit, load, version check, edge rows.
*/
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libpq-fe.h>

#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"
#include "rt_pg.h"
#include "rt_pg_sql.h"

typedef enum { S_DOWN, S_CONNECTING, S_READY } s_state_t;

typedef enum { S_OP_NONE, S_OP_MIGRATE, S_OP_COMMIT, S_OP_LOAD, S_OP_VERSION, S_OP_EDGE } s_op_t;

struct rt_pg {
    struct ev_loop *loop; // the actor's loop
    char *conninfo;       // DATABASE_URL
    char *shown;          // the same, password redacted, for logs
    char *region;         // REGION
    bool edge_schema;     // ROUTER_EDGE_SCHEMA=on
    rt_pg_events_t ev;    // owner's callbacks
    void *arg;            // their argument

    PGconn *conn;        // NULL when DOWN
    s_state_t state;     // see above
    s_op_t op;           // query in flight (READY)
    bool migrated;       // the migration ran on this connection
    ev_io io;            // the connection's socket
    ev_timer retry;      // reconnect
    ev_timer refresh;    // ROUTER_REFRESH_INTERVAL
    int64_t backoff_ms;  // next reconnect delay
    bool want_load;      // load the configuration
    bool want_version;   // check the version
    bool want_edge;      // read seed 002's rows
    bool load_for_retry; // the load was asked for after a conflict
    uint64_t known;      // newest version loaded or committed

    char *commit_entry;      // the commit waiting or in flight: entry JSON
    uint64_t commit_version; // its version
    rt_store_done_fn *done;  // its answer
    void *done_arg;          // its argument
    bool commit_sent;        // in flight (else waiting)

    uint64_t connects, loads, commits, failures, up; // pong counters
};

static void s_next(rt_pg_t *self);
static void s_connect(rt_pg_t *self);

// --------------------------------------------------------------------------
// The connection

static void
s_watch(rt_pg_t *self, int events)
{
    int fd = PQsocket(self->conn);
    if (ev_is_active(&self->io)
        && (self->io.fd != fd || (self->io.events & (EV_READ | EV_WRITE)) != events))
        ev_io_stop(self->loop, &self->io);
    if (!ev_is_active(&self->io) && fd >= 0) {
        ev_io_set(&self->io, fd, events);
        ev_io_start(self->loop, &self->io);
    }
}

//  Answer the commit (waiting or in flight) with rc and forget it.
static void
s_commit_answer(rt_pg_t *self, int rc, const char *why)
{
    rt_store_done_fn *done = self->done;
    void *arg = self->done_arg;
    free(self->commit_entry);
    self->commit_entry = NULL;
    self->done = NULL;
    self->commit_sent = false;
    if (done)
        done(arg, rc, why);
}

//  The connection is lost or unusable: close it, keep serving what we
//  have, and try again after the backoff.
static void
s_down(rt_pg_t *self, const char *why)
{
    bool was_ready = self->state == S_READY;
    ev_io_stop(self->loop, &self->io);
    if (self->conn)
        PQfinish(self->conn);
    self->conn = NULL;
    self->state = S_DOWN;
    self->op = S_OP_NONE;
    self->migrated = false;
    self->up = 0;
    self->failures++;
    log_warn("configuration store unreachable; serving the last configuration and retrying",
             LOG_S("database", self->shown), LOG_S("error", why),
             LOG_I("retry_ms", self->backoff_ms));
    if (self->done)
        s_commit_answer(self, RT_STORE_UNAVAILABLE,
                        self->commit_sent ? "the connection was lost during the commit (the next "
                                            "load shows whether it was made)"
                                          : why);
    if (self->load_for_retry) {
        self->load_for_retry = false;
        if (self->ev.load_failed)
            self->ev.load_failed(self->arg, why);
    }
    if (was_ready && self->ev.connected)
        self->ev.connected(self->arg, false);
    ev_timer_stop(self->loop, &self->retry);
    ev_timer_set(&self->retry, (double) self->backoff_ms / 1000.0, 0.0);
    ev_timer_start(self->loop, &self->retry);
    self->backoff_ms *= 2;
    if (self->backoff_ms > RT_PG_BACKOFF_MAX_MS)
        self->backoff_ms = RT_PG_BACKOFF_MAX_MS;
}

//  One line of libpq's message (it ends in a newline; may have several).
static void
s_oneline(const char *msg, char *out, size_t cap)
{
    proto_strlcpy(out, msg ? msg : "unknown error", cap);
    for (char *p = out; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = *(p + 1) ? ' ' : '\0';
}

static void
s_conn_error(rt_pg_t *self)
{
    char why[256];
    s_oneline(PQerrorMessage(self->conn), why, sizeof why);
    s_down(self, why);
}

static void
s_on_retry(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    s_connect(w->data);
}

static void
s_on_refresh(struct ev_loop *loop, ev_timer *w, int revents)
{
    (void) loop;
    (void) revents;
    rt_pg_t *self = w->data;
    self->want_version = true;
    self->want_edge = self->edge_schema; // those tables change without our versions
    s_next(self);
}

// --------------------------------------------------------------------------
// Results

//  A configuration document arrived: parse it and hand it over.
static void
s_loaded(rt_pg_t *self, const char *text)
{
    json_error_t jerr;
    json_t *doc = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    rt_store_data_t data = {0};
    char err[400] = "";
    if (doc == NULL)
        snprintf(err, sizeof err, "not JSON: %s", jerr.text);
    else if (rt_store_parse(doc, self->region, &data, err, sizeof err) != 0 && err[0] == '\0')
        proto_strlcpy(err, "malformed", sizeof err);
    json_decref(doc);
    if (err[0]) {
        // a row the route model refuses: keep serving what we have
        log_error("the configuration in the database is malformed; keeping the last one",
                  LOG_S("error", err));
        self->failures++;
        if (self->load_for_retry && self->ev.load_failed) {
            self->load_for_retry = false;
            self->ev.load_failed(self->arg, err);
        }
        return;
    }
    self->loads++;
    self->load_for_retry = false;
    if (data.version > self->known)
        self->known = data.version;
    self->ev.loaded(self->arg, &data);
    rt_store_data_clear(&data); // if the owner left it
}

//  Seed 002's rows arrived.
static void
s_edge_rows(rt_pg_t *self, PGresult *res)
{
    int n = PQntuples(res);
    if (PQnfields(res) < 5) {
        log_error("seed 002's query returned fewer columns than expected",
                  LOG_I("columns", PQnfields(res)));
        return;
    }
    rt_edge_row_t *rows = proto_xcalloc(n > 0 ? (size_t) n : 1, sizeof *rows);
    for (int i = 0; i < n; i++) {
        const char **cols[] = {&rows[i].domain, &rows[i].ip, &rows[i].port, &rows[i].region,
                               &rows[i].public_ip};
        for (int c = 0; c < 5; c++)
            *cols[c] = PQgetisnull(res, i, c) ? NULL : PQgetvalue(res, i, c);
    }
    if (self->ev.edge)
        self->ev.edge(self->arg, rows, (size_t) n);
    free(rows);
}

//  One result of the query in flight.
static void
s_result(rt_pg_t *self, PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    bool ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
    char why[256];
    if (!ok)
        s_oneline(PQresultErrorMessage(res), why, sizeof why);
    switch (self->op) {
        case S_OP_MIGRATE:
            if (!ok) {
                log_error("cannot migrate the configuration tables", LOG_S("error", why));
                self->failures++;
            }
            break;
        case S_OP_COMMIT: {
            if (ok) {
                self->commits++;
                if (self->commit_version > self->known)
                    self->known = self->commit_version;
                s_commit_answer(self, RT_STORE_OK, "");
                break;
            }
            const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
            bool conflict = state && strcmp(state, RT_PG_CONFLICT_STATE) == 0;
            if (!conflict)
                self->failures++;
            s_commit_answer(self, conflict ? RT_STORE_CONFLICT : RT_STORE_FAILED, why);
            break;
        }
        case S_OP_LOAD:
            if (ok && PQntuples(res) == 1)
                s_loaded(self, PQgetvalue(res, 0, 0));
            else if (!ok)
                log_error("cannot load the configuration", LOG_S("error", why));
            break;
        case S_OP_VERSION:
            if (ok && PQntuples(res) == 1) {
                uint64_t v = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
                if (v != self->known)
                    self->want_load = true;
            }
            break;
        case S_OP_EDGE:
            if (ok)
                s_edge_rows(self, res);
            else
                log_error("cannot read seed 002's tables", LOG_S("error", why));
            break;
        case S_OP_NONE:
            break;
    }
}

//  Notifications: another router (or we) made a version.
static void
s_notifies(rt_pg_t *self)
{
    PGnotify *n;
    while ((n = PQnotifies(self->conn)) != NULL) {
        uint64_t v = strtoull(n->extra ? n->extra : "0", NULL, 10);
        if (v > self->known)
            self->want_load = true;
        PQfreemem(n);
    }
}

static void
s_on_io(struct ev_loop *loop, ev_io *w, int revents)
{
    (void) loop;
    rt_pg_t *self = w->data;
    if (self->state == S_CONNECTING) {
        s_connect(self);
        return;
    }
    if (revents & EV_WRITE) {
        int rc = PQflush(self->conn);
        if (rc < 0) {
            s_conn_error(self);
            return;
        }
        if (rc == 0)
            s_watch(self, EV_READ);
    }
    if (!(revents & EV_READ))
        return;
    if (!PQconsumeInput(self->conn)) {
        s_conn_error(self);
        return;
    }
    s_notifies(self);
    while (self->op != S_OP_NONE && !PQisBusy(self->conn)) {
        PGresult *res = PQgetResult(self->conn);
        if (res == NULL) { // the query is complete
            s_op_t was = self->op;
            self->op = S_OP_NONE;
            if (was == S_OP_MIGRATE)
                self->migrated = true;
            break;
        }
        s_result(self, res);
        PQclear(res);
        if (self->conn == NULL)
            return;
    }
    if (PQstatus(self->conn) == CONNECTION_BAD) {
        s_conn_error(self);
        return;
    }
    s_next(self);
}

// --------------------------------------------------------------------------
// Queries

static bool
s_sent(rt_pg_t *self, int rc, s_op_t op)
{
    if (!rc) {
        s_conn_error(self);
        return false;
    }
    self->op = op;
    int flushed = PQflush(self->conn);
    if (flushed < 0) {
        s_conn_error(self);
        return false;
    }
    s_watch(self, flushed ? EV_READ | EV_WRITE : EV_READ);
    return true;
}

//  Start the most urgent query, if none is in flight.
static void
s_next(rt_pg_t *self)
{
    if (self->state != S_READY || self->op != S_OP_NONE)
        return;
    if (!self->migrated) {
        s_sent(self, PQsendQuery(self->conn, RT_PG_MIGRATE), S_OP_MIGRATE);
        return;
    }
    if (self->done && !self->commit_sent) {
        char version[24];
        snprintf(version, sizeof version, "%llu", (unsigned long long) self->commit_version);
        const char *params[2] = {version, self->commit_entry};
        self->commit_sent = true;
        s_sent(self, PQsendQueryParams(self->conn, RT_PG_COMMIT, 2, NULL, params, NULL, NULL, 0),
               S_OP_COMMIT);
        return;
    }
    if (self->want_load) {
        self->want_load = false;
        if (s_sent(self, PQsendQuery(self->conn, RT_PG_LOAD), S_OP_LOAD) && self->edge_schema)
            self->want_edge = true;
        return;
    }
    if (self->want_edge) {
        self->want_edge = false;
        s_sent(self, PQsendQuery(self->conn, RT_EDGE_QUERY), S_OP_EDGE);
        return;
    }
    if (self->want_version) {
        self->want_version = false;
        s_sent(self, PQsendQuery(self->conn, RT_PG_VERSION), S_OP_VERSION);
    }
}

//  Start or continue connecting.
static void
s_connect(rt_pg_t *self)
{
    if (self->state == S_DOWN) {
        self->conn = PQconnectStart(self->conninfo);
        if (self->conn == NULL) {
            s_down(self, "out of memory");
            return;
        }
        if (PQstatus(self->conn) == CONNECTION_BAD) {
            s_conn_error(self);
            return;
        }
        self->state = S_CONNECTING;
    }
    switch (PQconnectPoll(self->conn)) {
        case PGRES_POLLING_READING:
            s_watch(self, EV_READ);
            return;
        case PGRES_POLLING_WRITING:
            s_watch(self, EV_WRITE);
            return;
        case PGRES_POLLING_FAILED:
            s_conn_error(self);
            return;
        default:
            break;
    }
    // connected
    if (PQsetnonblocking(self->conn, 1) != 0) {
        s_conn_error(self);
        return;
    }
    self->state = S_READY;
    self->connects++;
    self->up = 1;
    self->backoff_ms = RT_PG_BACKOFF_MIN_MS;
    log_info("configuration store connected", LOG_S("database", self->shown));
    self->want_load = true; // whatever happened while we were away
    if (self->ev.connected)
        self->ev.connected(self->arg, true);
    s_watch(self, EV_READ);
    s_next(self);
}

// --------------------------------------------------------------------------
// The store

static void
s_commit(void *store,
         const rt_store_data_t *next,
         const json_t *entry,
         rt_store_done_fn *done,
         void *done_arg)
{
    rt_pg_t *self = store;
    if (self->state != S_READY) {
        done(done_arg, RT_STORE_UNAVAILABLE, "the configuration store is not connected");
        return;
    }
    char *text = json_dumps(entry, JSON_COMPACT);
    if (text == NULL) {
        done(done_arg, RT_STORE_FAILED, "cannot encode the change");
        return;
    }
    self->commit_entry = text;
    self->commit_version = next->version;
    self->done = done;
    self->done_arg = done_arg;
    self->commit_sent = false;
    s_next(self);
}

static void
s_reload(void *store)
{
    rt_pg_t *self = store;
    if (self->state != S_READY) {
        if (self->ev.load_failed)
            self->ev.load_failed(self->arg, "the configuration store is not connected");
        return;
    }
    self->load_for_retry = true;
    self->want_load = true;
    s_next(self);
}

rt_store_ops_t
rt_pg_ops(rt_pg_t *self)
{
    return (rt_store_ops_t){.commit = s_commit, .reload = s_reload, .store = self};
}

bool
rt_pg_connected(const rt_pg_t *self)
{
    return self->state == S_READY && self->migrated;
}

const uint64_t *
rt_pg_counter(const rt_pg_t *self, const char *name)
{
    if (strcmp(name, "connects") == 0)
        return &self->connects;
    if (strcmp(name, "loads") == 0)
        return &self->loads;
    if (strcmp(name, "commits") == 0)
        return &self->commits;
    if (strcmp(name, "failures") == 0)
        return &self->failures;
    if (strcmp(name, "up") == 0)
        return &self->up;
    return NULL;
}

rt_pg_t *
rt_pg_new(struct ev_loop *loop,
          const char *conninfo,
          const char *region,
          int64_t refresh_ms,
          bool edge_schema,
          rt_pg_events_t events,
          void *arg)
{
    rt_pg_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    self->conninfo = proto_xstrdup(conninfo);
    char shown[512];
    proto_url_redact(conninfo, shown, sizeof shown);
    self->shown = proto_xstrdup(shown);
    self->region = proto_xstrdup(region);
    self->edge_schema = edge_schema;
    self->ev = events;
    self->arg = arg;
    self->backoff_ms = RT_PG_BACKOFF_MIN_MS;
    ev_init(&self->io, s_on_io);
    self->io.data = self;
    ev_init(&self->retry, s_on_retry);
    self->retry.data = self;
    ev_init(&self->refresh, s_on_refresh);
    self->refresh.data = self;
    if (refresh_ms > 0) {
        ev_timer_set(&self->refresh, (double) refresh_ms / 1000.0, (double) refresh_ms / 1000.0);
        ev_timer_start(loop, &self->refresh);
    }
    s_connect(self);
    return self;
}

void
rt_pg_destroy(rt_pg_t **self_p)
{
    rt_pg_t *self = *self_p;
    if (self == NULL)
        return;
    ev_io_stop(self->loop, &self->io);
    ev_timer_stop(self->loop, &self->retry);
    ev_timer_stop(self->loop, &self->refresh);
    if (self->conn)
        PQfinish(self->conn);
    free(self->commit_entry);
    free(self->conninfo);
    free(self->shown);
    free(self->region);
    free(self);
    *self_p = NULL;
}
