/*  api_region - validation and normalization of a region body (see
    api_region.h).

    Two known members, walked in document order so that the first bad one
    is the one reported; api_json_load_checked places duplicate keys and
    unparsable numbers among them.
*/
#include <stdbool.h>
#include <string.h>

#include <jansson.h>

#include "proto_route.h"
#include "api_region.h"

static bool
s_fail(api_error_t *err, const char *code, const char *field, const char *message)
{
    api_error_set(err, code, field, "%s%s%s", field, *field ? ": " : "", message);
    return false;
}

static bool
s_check_id(const json_t *value, const char *path_id, api_error_t *err)
{
    if (!json_is_string(value))
        return s_fail(err, "invalid_type", "id", "expected a string");
    if (strcmp(json_string_value(value), path_id) != 0) {
        api_error_set(err, "invalid_value", "id", "id: '%.64s' differs from the path's '%s'",
                      json_string_value(value), path_id);
        return false;
    }
    return true;
}

static bool
s_check_address(const json_t *value, char *out, size_t cap, api_error_t *err)
{
    if (!json_is_string(value))
        return s_fail(err, "invalid_type", "publicAddress", "expected a string");
    if (strlen(json_string_value(value)) != json_string_length(value)
        || proto_route_address_normalize(json_string_value(value), out, cap) != 0)
        return s_fail(err, "invalid_value", "publicAddress",
                      "must be host[:port]: a host name, an IPv4 address or [IPv6], and a port "
                      "1-65535 (default 80)");
    return true;
}

static json_t *
s_check_region(json_t *doc, void *arg, api_error_t *err)
{
    const char *path_id = arg;
    if (!json_is_object(doc)) {
        s_fail(err, "invalid_type", "", "expected a JSON object (a region)");
        return NULL;
    }
    char address[PROTO_ROUTE_ADDRESS_MAX + 1] = "";
    bool have_address = false;
    const char *key;
    json_t *value;
    json_object_foreach(doc, key, value)
    {
        bool ok;
        if (strcmp(key, "id") == 0)
            ok = s_check_id(value, path_id, err);
        else if (strcmp(key, "publicAddress") == 0)
            ok = have_address = s_check_address(value, address, sizeof address, err);
        else {
            api_error_set(err, "unknown_field", key, "%.200s: unknown field", key);
            ok = false;
        }
        if (!ok)
            return NULL;
    }
    if (!have_address) {
        s_fail(err, "missing_field", "publicAddress", "required");
        return NULL;
    }
    return json_pack("{s:s, s:s}", "id", path_id, "publicAddress", address);
}

json_t *
api_region_parse(const char *text, size_t len, const char *path_id, api_error_t *err)
{
    return api_json_load_checked(text, len, s_check_region, (void *) path_id, err);
}
