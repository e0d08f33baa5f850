/*  gw_resp - a backend's response head as http-parser hands it over: the
    status reason and the header fields, collected in place.

    http-parser calls back with pieces of the head (a name or a value may
    come in several pieces when reads split it); the pieces point into the
    caller's input buffer, which holds the whole head until it is parsed, so
    a field is a (pointer, length) pair grown piece by piece and nothing is
    copied. What cannot be relayed marks the head bad: more than
    GW_RESP_FIELDS_MAX fields, or a value continued on a folded line (obs-fold
    from a lax backend, RFC 9112 §5.2), which shows as a value piece that
    does not follow the previous one. gw_proxy answers a bad head with 502.
    tests/fuzz/fuzz_resp.c drives it with http-parser on arbitrary bytes.
*/
#ifndef GW_RESP_H
#define GW_RESP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "gw_http.h"

#define GW_RESP_FIELDS_MAX 128 // response header fields relayed

typedef struct {
    const char *name;  // into the caller's buffer (valid while the head is parsed)
    size_t name_len;   // bytes
    const char *value; // ...
    size_t value_len;  // bytes
    gw_hdr_t id;       // gw_http id of the name (set by gw_resp_head_done)
} gw_rfield_t;

typedef struct {
    const char *reason;                     // status reason phrase, or NULL
    size_t reason_len;                      // bytes
    gw_rfield_t fields[GW_RESP_FIELDS_MAX]; // header fields, in order
    uint32_t nfields;                       // how many
    bool in_value;                          // the last piece was a value
    bool bad;                               // a field that cannot be relayed
} gw_resp_head_t;

//  Start a new head.
void gw_resp_head_reset(gw_resp_head_t *head);

//  The pieces http-parser hands over (on_status, on_header_field,
//  on_header_value).
void gw_resp_head_status(gw_resp_head_t *head, const char *at, size_t len);
void gw_resp_head_field(gw_resp_head_t *head, const char *at, size_t len);
void gw_resp_head_value(gw_resp_head_t *head, const char *at, size_t len);

//  The head is complete (on_headers_complete): each field gets its gw_http id.
void gw_resp_head_done(gw_resp_head_t *head);

//  True if a Connection field of the head names field f (so f is
//  hop-by-hop for this response), unless f is one the gateway protects.
bool gw_resp_head_listed(const gw_resp_head_t *head, const gw_rfield_t *f);

#endif
