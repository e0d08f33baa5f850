/*  rt_store - the file store (ROUTER_STATE_FILE, docs/request-path.md).

    One JSON document holds the whole configuration:
      {"format": 1, "version": 7,
       "routes": [ {route as SPEC §4, plus "maintenance": ["backend-id", ...]} ],
       "regions": [ {"id": "2", "publicAddress": "10.0.0.2:80"} ],
       "certificates": [ {"domain", "cert", "key", "issuer", "subject",
                          "notBefore", "notAfter"[, "ocsp", "ocspNextUpdate"]} ],
       "history": [ {"version", "at", "by", "summary", "changes"} ]}  oldest first
    "changes" lists what the version changed, with the objects before and
    after (rt_history.h): enough to rebuild any kept version. The file holds
    private keys: it is created mode 0600 (mkstemp) and stays so.
    Saving is atomic: a temp file in the same directory, fsync, rename over
    the file, fsync of the directory. The directory is created if missing.
    Loading a missing file gives an empty configuration at version 0; a file
    that cannot be read or is malformed is refused with a one-line reason.
*/
#ifndef RT_STORE_H
#define RT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_table.h"

#define RT_STORE_FORMAT      1    // the "format" this code writes and reads
#define RT_STORE_HISTORY_MAX 1000 // history entries kept

//  The whole configuration.
typedef struct {
    uint64_t version;     // configuration version (0: nothing configured yet)
    rt_table_t *table;    // routes
    json_t *regions;      // array of {"id", "publicAddress"}
    json_t *certificates; // array of certificate objects (with their keys)
    json_t *history;      // array of {"version", "at", "by", "summary", "changes"}, oldest first
} rt_store_data_t;

//  What a store reports back (rt_store_commit_fn's rc).
enum {
    RT_STORE_OK = 0,
    RT_STORE_FAILED = -1,      // could not write; nothing changed
    RT_STORE_CONFLICT = -2,    // another writer made this version first (PostgreSQL)
    RT_STORE_UNAVAILABLE = -3, // the store cannot be reached now
};

typedef void(rt_store_done_fn)(void *arg, int rc, const char *err);

//  A store as rt_control uses it: commit makes next durable (entry is its
//  history entry, with changes) and calls done exactly once, possibly before
//  it returns (the file store) or later on the loop (PostgreSQL).
typedef struct {
    void (*commit)(void *store,
                   const rt_store_data_t *next,
                   const json_t *entry,
                   rt_store_done_fn *done,
                   void *done_arg);
    void (*reload)(void *store); // after a conflict: load again (NULL: cannot)
    void *store;
} rt_store_ops_t;

//  The file store as rt_store_ops_t: store is the path (a char *, borrowed).
rt_store_ops_t rt_store_file_ops(const char *path);

//  Load path into *data (which must be empty: zero). region is the default
//  backend region for routes that lack one. Returns 0 when loaded, 1 when
//  the file does not exist (data is then empty, version 0), -1 with a
//  one-line reason in err when it cannot be read or is malformed (data is
//  then left empty).
int rt_store_load(
    const char *path, const char *region, rt_store_data_t *data, char *err, size_t errlen);

//  Write data to path atomically (see above). Returns 0, or -1 with a
//  one-line reason in err (the previous file is then untouched and no temp
//  file is left behind).
int rt_store_save(const char *path, const rt_store_data_t *data, char *err, size_t errlen);

//  The document rt_store_save writes. Caller owns it.
json_t *rt_store_document(const rt_store_data_t *data);

//  Parse a document (as rt_store_document writes it) into *data (empty:
//  zero). Returns 0, or -1 with a one-line reason (data then empty).
int rt_store_parse(
    const json_t *doc, const char *region, rt_store_data_t *data, char *err, size_t errlen);

//  The configuration keyed by identity, as rt_history works on it:
//  {"routes": {vHost: route}, "regions": {id: region}, "certificates":
//  {domain: certificate}} (store form: keys included). Caller owns it.
json_t *rt_store_cfg(const rt_store_data_t *data);

//  The inverse: a document of cfg at version, with history (borrowed;
//  NULL: none). Caller owns it.
json_t *rt_store_cfg_document(const json_t *cfg, uint64_t version, const json_t *history);

//  Free what data holds and zero it. Safe to call twice.
void rt_store_data_clear(rt_store_data_t *data);

//  A history entry {version, at (ISO-8601 UTC with ms), by, summary}.
//  Caller owns it.
json_t *
rt_store_history_entry(uint64_t version, uint64_t at_ms, const char *by, const char *summary);

#endif
