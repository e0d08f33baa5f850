/*  api_route - validation and normalization of route and backend bodies.

    A body of the control API (SPEC §4, §5) is parsed with jansson, checked
    completely, and turned into normalized JSON: every field present, defaults
    applied, in SPEC §4's order, vHost lower-case. The first bad field in
    document order is reported with its path ("backends[0].port",
    "headers.X-Env", "rateLimit.requests"), so a client can fix one thing at a
    time and always sees the earliest problem.

    Document order: jansson iterates an object in insertion order (checked by
    test_route_json), so walking the parsed document visits fields as they
    were written. Duplicate keys and numbers too big for jansson are parse
    errors; their path and place in the text come from a small scanner of the
    raw text, and a bad field written before them still wins.

    Error codes (api_error_t.code), all HTTP 400:
      invalid_json    not one JSON object (field is empty)
      duplicate_key   a key given twice in one object (field: the second one)
      unknown_field   a key the model does not have
      invalid_type    a value of the wrong JSON type
      out_of_range    a number or a count outside its bounds
      invalid_value   a string that is not valid for its field (hostname,
                      enum, header name, vHost differing from the path)
      missing_field   a required field is absent
      duplicate_id    a backend id used twice (field: the second one)
*/
#ifndef API_ROUTE_H
#define API_ROUTE_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#include "proto_route.h"
#include "api_json.h"

//  The rules the router shares (names, numbers, defaults) are proto_route's;
//  these bound the fields only apid checks.
#define API_PATH_FIELD_MAX   1024 // bytes of chatPath and healthPath
#define API_URL_MAX          2048 // bytes of authProvider
#define API_AUTH_ENTRIES_MAX 1000 // auth users or tokens
#define API_CORS_ITEMS_MAX   32   // cors origins, methods, headers or exposeHeaders
#define API_CORS_ITEM_MAX    255  // bytes of one of them
#define API_CORS_LIST_BYTES  2048 // bytes of one list (the lease carries the cors object)
#define API_CORS_MAX_AGE     600  // cors maxAge default, seconds

//  A route's ssl.key as GET answers it; sent back, it keeps the stored key.
#define API_ROUTE_KEY_REDACTED "[redacted]"

//  Validate and normalize a route body of len bytes (need not end in NUL).
//  path_vhost is the vHost of a PUT's path (lower-case) or NULL: when given,
//  a body vHost must equal it (case-insensitively, else 400 on "vHost") and
//  an absent one is taken from it. Returns a new JSON object the caller
//  owns (json_decref), or NULL with err filled.
json_t *api_route_parse(const char *text, size_t len, const char *path_vhost, api_error_t *err);

//  Validate and normalize a single backend body ({hostname, port, weight?,
//  region?, id?, probe?}) as POST .../backends takes it. Field paths have no
//  prefix ("port"). Returns a new JSON object the caller owns, or NULL with
//  err filled.
json_t *api_backend_parse(const char *text, size_t len, api_error_t *err);

#endif
