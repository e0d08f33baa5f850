/*  api_region - validation and normalization of a region body (SPEC §5, §7).

    PUT /api/v1/regions/:id takes {"publicAddress": "host[:port]"}: host a
    host name or IPv4 address, or an IPv6 address in brackets; port 1-65535,
    80 when left out (proto_route_address_normalize is the one rule, the
    router checks the same). An "id" in the body is accepted when it equals
    the path's id (so GET -> edit -> PUT works), else 400 on "id". The
    normalized body is {"id": <path id>, "publicAddress": "host:port"}.

    Errors are api_route's (api_route.h): invalid_json, duplicate_key,
    unknown_field, invalid_type, invalid_value, missing_field, all 400, with
    the first bad field in document order.
*/
#ifndef API_REGION_H
#define API_REGION_H

#include <stddef.h>

#include <jansson.h>

#include "proto_route.h"
#include "api_json.h"

//  Validate and normalize a region body of len bytes (need not end in NUL)
//  for the region path_id (a valid region id, proto_route_valid_region).
//  Returns a new JSON object the caller owns (json_decref), or NULL with
//  err filled.
json_t *api_region_parse(const char *text, size_t len, const char *path_id, api_error_t *err);

#endif
