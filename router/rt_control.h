/*  rt_control - the configuration the router serves, and the commands that
    read and change it (config.get, config.put, config.delete; the table of
    docs/request-path.md).

    Owns the route table, regions and history, loaded from the file store at
    creation. A change is staged on a copy of the table, saved to the store,
    and only then made current: when the save fails the answer is 500 and
    nothing changes in memory. The caller (rt_actor) sends the reply and,
    when result.changed, publishes config.changed. No bus here, so every
    command is unit-testable.
*/
#ifndef RT_CONTROL_H
#define RT_CONTROL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"
#include "rt_table.h"

#define RT_CONTROL_BODY_MAX    PROTO_CONFIG_REPLY_BODY_MAX // config.reply body bound
#define RT_CONTROL_REGIONS_MAX PROTO_PICK_REGIONS_MAX      // regions a PUT may register

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
} rt_result_t;

//  Load the store at path. region is REGION (default backend region).
//  Returns NULL with a one-line reason in err if the file cannot be read or
//  is malformed (a missing file is an empty configuration at version 0).
rt_control_t *rt_control_new(const char *path, const char *region, char *err, size_t errlen);

//  Free everything. Sets *self_p to NULL. Safe to call twice.
void rt_control_destroy(rt_control_t **self_p);

//  Current configuration version.
uint64_t rt_control_version(const rt_control_t *self);

//  The current route table. Borrowed: valid until the next change.
const rt_table_t *rt_control_table(const rt_control_t *self);

//  Regions that have a public address, as pick carries them. Borrowed:
//  valid until the next change.
const proto_region_t *rt_control_regions(const rt_control_t *self, uint32_t *count);

//  The commands. now_ms is the wall clock for history. Fill *result (which
//  the caller clears with rt_result_clear).
void rt_control_get(rt_control_t *self, const proto_config_get_t *cmd, rt_result_t *result);
void rt_control_put(rt_control_t *self,
                    const proto_config_put_t *cmd,
                    uint64_t now_ms,
                    rt_result_t *result);
void rt_control_delete(rt_control_t *self,
                       const proto_config_delete_t *cmd,
                       uint64_t now_ms,
                       rt_result_t *result);

//  Free what a result holds and zero it.
void rt_result_clear(rt_result_t *result);

#endif
