/*  rt_store - the file store (ROUTER_STATE_FILE, docs/request-path.md).

    One JSON document holds the whole configuration:
      {"format": 1, "version": 7,
       "routes": [ {route as SPEC §4, plus "maintenance": ["backend-id", ...]} ],
       "regions": [ {"id": "2", "publicAddress": "10.0.0.2:80"} ],
       "history": [ {"version", "at", "by", "summary"} ]}      oldest first
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
    uint64_t version;  // configuration version (0: nothing configured yet)
    rt_table_t *table; // routes
    json_t *regions;   // array of {"id", "publicAddress"}
    json_t *history;   // array of {"version", "at", "by", "summary"}, oldest first
} rt_store_data_t;

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

//  Free what data holds and zero it. Safe to call twice.
void rt_store_data_clear(rt_store_data_t *data);

//  A history entry {version, at (ISO-8601 UTC with ms), by, summary}.
//  Caller owns it.
json_t *
rt_store_history_entry(uint64_t version, uint64_t at_ms, const char *by, const char *summary);

//  Format ms since the epoch as "2026-11-21T22:10:46.123Z" into out.
void rt_store_iso8601(uint64_t ms, char *out, size_t cap);

#endif
