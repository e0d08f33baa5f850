/*  rt_control_int - what rt_control, rt_change and rt_query share: the
    context, a queued command, and the helpers that fill an answer. Not for
    anyone else: the router's other modules use rt_control.h.
*/
#ifndef RT_CONTROL_INT_H
#define RT_CONTROL_INT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "rt_control.h"
#include "rt_route.h"
#include "rt_store.h"

//  A stored certificate's OCSP response, decoded for certs.reply (the
//  store keeps it in base64).
typedef struct {
    uint8_t *der; // DER, or NULL: none
    size_t len;   // its bytes
} rt_ocsp_t;

//  A change waiting for its turn (owned copies of the command's fields).
typedef struct rt_cmd {
    struct rt_cmd *next;      // queue link
    bool is_delete;           // config.delete (else config.put)
    char *what, *key, *sub;   // as the command had them ("" for absent)
    char *body, *by;          // put's body (NULL: none); who
    bool create_only;         // put's create_only
    uint64_t now_ms;          // wall clock when it arrived (history)
    uint64_t queued_ms;       // monotonic clock when it arrived (queue deadline)
    int tries;                // runs so far (conflicts)
    rt_control_done_fn *done; // answer
    void *arg;                // its argument
} rt_cmd_t;

struct rt_control {
    char *path;              // the file store's path (rt_control_open_file), or NULL
    char *region;            // REGION: default backend region
    rt_store_data_t data;    // version, routes, regions, certificates, history
    proto_region_t *regions; // regions with a public address, as pick carries them
    uint32_t regions_count;  // how many
    rt_ocsp_t *ocsp;         // per stored certificate, in data.certificates' order, or NULL
    size_t ocsp_count;       // how many (the certificates when it was built)
    rt_store_ops_t store;    // where changes are committed

    rt_cmd_t *head, *tail;           // changes waiting for their turn
    rt_cmd_t *inflight;              // the change being committed, or NULL
    bool staged;                     // a handler staged next/entry/pending
    rt_store_data_t next;            // the staged configuration
    json_t *entry;                   // its history entry
    rt_result_t pending;             // the answer once it is durable
    bool waiting_reload;             // a conflict asked the store to reload
    bool pumping;                    // s_pump is on the stack
    rt_store_data_t deferred;        // a replacement that came while a change was in flight
    rt_control_reload_fn *on_reload; // told when a replacement became current
    void *on_reload_arg;             // its argument
    bool loaded;                     // a configuration is loaded (else decide cannot answer)

    rt_table_t *edge;     // routes from seed 002's tables (rt_edge), or NULL
    json_t *edge_regions; // their regions, or NULL
    rt_table_t *served;   // the API's routes and the edge's, or NULL (no edge: data.table)
    const struct proto_pairs *health; // healthd's verdicts (rt_runtime_t), or NULL
};

//  Fill result with an error (status >= 400) and a printf-style message.
void rt_result_error(rt_result_t *result, uint16_t status, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

//  A route model refusal: 400 with its field.
void rt_result_route_error(rt_result_t *result, const rt_error_t *err);

//  Answer status with body (taken; NULL for none); 500 if it is larger than
//  a bus message may be.
void rt_result_ok(rt_result_t *result, uint16_t status, json_t *body);

static inline bool
rt_empty(const char *s)
{
    return s == NULL || *s == '\0';
}

//  Parse a configuration version (decimal digits, fits 64 bits).
bool rt_control_parse_version(const char *s, uint64_t *out);

//  A certificate as GET /certificates lists it: never the key.
json_t *rt_control_cert_public(const json_t *cert);

//  Decode a stored OCSP response: base64 (standard alphabet, padded, no
//  whitespace, as apid writes it) of at most max bytes. Returns 0 with *der
//  (caller frees) and *len, -1 if text is not that, -2 if over max.
int rt_control_ocsp_decode(const char *text, size_t max, uint8_t **der, size_t *len);

//  The configuration as of version key (keyed, rt_history), or NULL with a
//  400 or 404 in result.
json_t *rt_control_cfg_at(rt_control_t *self, const char *key, rt_result_t *result);

//  Run one change command: an answer in result, or (self->staged) the next
//  configuration staged in self->next/entry/pending for the store.
void rt_change_run(rt_control_t *self, const rt_cmd_t *cmd, rt_result_t *result);

#endif
