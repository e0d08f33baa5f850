/*  api_route - validation and normalization of route and backend bodies.

    Each object is checked by walking its members in document order and
    dispatching on the key through a table of fields; a checker stores the
    normalized value in its slot, and defaults fill the empty slots after
    the walk. The first failure stops everything: its path is in the
    context (s_ctx_t) at the moment it is recorded.

    The rules the router shares (names, bounds, defaults, the default
    backend id) are proto_route's and proto_strategy's; this file maps them
    to JSON paths and error codes.
*/
#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <jansson.h>

#include "proto_route.h"
#include "proto_strategy.h"
#include "proto_util.h"
#include "api_cert.h"
#include "api_route.h"

//  Read-only runtime fields of a backend, accepted and ignored in a body.
static const char *const s_backend_readonly[] = {"isDead", "deadSince", "failureCount", "latencyMs",
                                                 NULL};

typedef struct {
    api_error_t *err;             // where the failure goes
    char path[API_FIELD_MAX + 1]; // path of the value being checked
    size_t plen;                  // its length
    const char *path_vhost;       // PUT: the vHost of the path, else NULL
    json_t *backend_ids;          // ids of the backends checked so far, or NULL
} s_ctx_t;

typedef struct s_field s_field_t;
typedef bool(s_check_fn)(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f);

//  One known member of an object.
struct s_field {
    const char *name;           // JSON key
    s_check_fn *check;          // checks the value and stores the normalized one
    long long min, max;         // integers: bounds; strings: byte lengths
    const char *const *choices; // enums: NULL-terminated
};

// --------------------------------------------------------------------------
// Context

static size_t
s_enter(s_ctx_t *c, const char *seg, bool dot)
{
    size_t old = c->plen;
    char *p = c->path + c->plen;
    size_t room = sizeof c->path - c->plen;
    int n = snprintf(p, room, "%s%s", dot && c->plen > 0 ? "." : "", seg);
    if (n > 0)
        c->plen += (size_t) n < room ? (size_t) n : room - 1;
    if (n > 0 && (size_t) n >= room) {
        // cut at the bound: never inside a UTF-8 character (keys are UTF-8), or the
        // error body could not carry the field (fuzz_route_json)
        size_t lead = c->plen;
        while (lead > old && ((unsigned char) c->path[lead - 1] & 0xc0) == 0x80)
            lead--;
        unsigned char ch = lead > old ? (unsigned char) c->path[lead - 1] : 0;
        size_t need = ch >= 0xf0 ? 4 : ch >= 0xe0 ? 3 : ch >= 0xc0 ? 2 : 1;
        if (lead > old && c->plen - (lead - 1) < need) {
            c->plen = lead - 1;
            c->path[c->plen] = '\0';
        }
    }
    return old;
}

static size_t
s_enter_key(s_ctx_t *c, const char *key)
{
    return s_enter(c, key, true);
}

static size_t
s_enter_index(s_ctx_t *c, size_t index)
{
    char seg[32];
    snprintf(seg, sizeof seg, "[%zu]", index);
    return s_enter(c, seg, false);
}

static void
s_leave(s_ctx_t *c, size_t old)
{
    c->plen = old;
    c->path[old] = '\0';
}

__attribute__((format(printf, 3, 4))) static bool
s_fail(s_ctx_t *c, const char *code, const char *fmt, ...)
{
    char msg[API_MESSAGE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    api_error_set(c->err, code, c->path, "%s%s%s", c->path, c->plen ? ": " : "", msg);
    return false;
}

//  Fail on the member key of the current object.
__attribute__((format(printf, 4, 5))) static bool
s_fail_at(s_ctx_t *c, const char *key, const char *code, const char *fmt, ...)
{
    char msg[API_MESSAGE_MAX + 1];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    size_t old = s_enter_key(c, key);
    s_fail(c, code, "%s", msg);
    s_leave(c, old);
    return false;
}

static const char *
s_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
        case JSON_OBJECT:
            return "an object";
        case JSON_ARRAY:
            return "an array";
        case JSON_STRING:
            return "a string";
        case JSON_INTEGER:
        case JSON_REAL:
            return "a number";
        case JSON_TRUE:
        case JSON_FALSE:
            return "a boolean";
        case JSON_NULL:
        default:
            return "null";
    }
}

static bool
s_in_list(const char *const *list, const char *s)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], s) == 0)
            return true;
    return false;
}

static const s_field_t *
s_lookup(const s_field_t *fields, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].name, key) == 0)
            return &fields[i];
    return NULL;
}

//  Walk obj's members in document order, checking each known one into
//  slots (indexed like fields). Keys in ignored are skipped.
static bool
s_walk_object(s_ctx_t *c,
              json_t *obj,
              const s_field_t *fields,
              size_t n,
              json_t **slots,
              const char *const *ignored)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        const s_field_t *f = s_lookup(fields, n, key);
        if (f == NULL && s_in_list(ignored, key))
            continue;
        size_t old = s_enter_key(c, key);
        bool ok = f ? f->check(c, value, &slots[f - fields], f)
                    : s_fail(c, "unknown_field", "unknown field");
        s_leave(c, old);
        if (!ok)
            return false;
    }
    return true;
}

static bool
s_expect_object(s_ctx_t *c, json_t *value, const char *what)
{
    if (json_is_object(value))
        return true;
    return s_fail(c, "invalid_type", "expected %s, got %s", what, s_type_name(value));
}

// --------------------------------------------------------------------------
// Scalars

static bool
s_get_int(s_ctx_t *c, json_t *value, long long min, long long max, long long *out)
{
    long long n = 0;
    if (json_is_integer(value)) {
        n = json_integer_value(value);
    } else if (json_is_real(value)) {
        double d = json_real_value(value);
        if (d != floor(d))
            return s_fail(c, "invalid_type", "expected an integer, got %g", d);
        if (d < (double) min || d > (double) max)
            return s_fail(c, "out_of_range", "%g is out of range: must be %lld to %lld", d, min,
                          max);
        n = (long long) d;
    } else {
        return s_fail(c, "invalid_type", "expected an integer, got %s", s_type_name(value));
    }
    if (n < min || n > max)
        return s_fail(c, "out_of_range", "%lld is out of range: must be %lld to %lld", n, min, max);
    *out = n;
    return true;
}

static bool
s_check_int(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    long long n = 0;
    if (!s_get_int(c, value, f->min, f->max, &n))
        return false;
    *out = json_integer(n);
    return true;
}

static bool
s_check_bool(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (!json_is_boolean(value))
        return s_fail(c, "invalid_type", "expected a boolean, got %s", s_type_name(value));
    *out = json_incref(value);
    return true;
}

//  A string of min..max bytes.
static bool
s_get_str(s_ctx_t *c, json_t *value, long long min, long long max, const char **s, size_t *len)
{
    if (!json_is_string(value))
        return s_fail(c, "invalid_type", "expected a string, got %s", s_type_name(value));
    *s = json_string_value(value);
    *len = json_string_length(value);
    if ((long long) *len < min || (long long) *len > max) {
        if (*len == 0)
            return s_fail(c, "invalid_value", "must not be empty");
        return s_fail(c, "invalid_value", "must be %lld to %lld bytes long, is %zu", min, max,
                      *len);
    }
    return true;
}

static bool
s_check_enum(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 0, 64, &s, &len))
        return false;
    if (s_in_list(f->choices, s) && strlen(s) == len) {
        *out = json_incref(value);
        return true;
    }
    char list[256] = "";
    size_t used = 0;
    for (size_t i = 0; f->choices[i]; i++) {
        int n = snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", f->choices[i]);
        if (n > 0 && (size_t) n < sizeof list - used)
            used += (size_t) n;
    }
    return s_fail(c, "invalid_value", "'%.64s' is not one of %s", s, list);
}

//  A strategy name (proto_strategy's list).
static bool
s_check_strategy(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    const char *s = NULL;
    size_t len = 0;
    proto_strategy_t strategy;
    if (!s_get_str(c, value, 0, 64, &s, &len))
        return false;
    if (proto_strategy_parse(s, &strategy) != 0)
        return s_fail(c, "invalid_value", "'%.64s' is not one of %s", s, proto_strategy_list());
    *out = json_string(proto_strategy_name(strategy));
    return true;
}

//  A probe name (proto_route's list).
static bool
s_check_probe(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    const char *s = NULL;
    size_t len = 0;
    proto_route_probe_t probe;
    if (!s_get_str(c, value, 0, 64, &s, &len))
        return false;
    if (proto_route_probe_parse(s, &probe) != 0)
        return s_fail(c, "invalid_value", "'%.64s' is not one of %s", s, proto_route_probe_list());
    *out = json_string(proto_route_probe_name(probe));
    return true;
}

//  Printable ASCII or UTF-8, no control characters (JSON strings hold no NUL).
static bool
s_no_controls(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch < 0x20 || ch == 0x7f)
            return false;
    }
    return true;
}

static bool
s_check_region(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, PROTO_ROUTE_REGION_MAX, &s, &len))
        return false;
    if (!proto_route_valid_region(s))
        return s_fail(c, "invalid_value", "must be printable ASCII without spaces");
    *out = json_incref(value);
    return true;
}

// --------------------------------------------------------------------------
// Names

static bool
s_check_vhost(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, PROTO_ROUTE_VHOST_MAX, &s, &len))
        return false;
    char lower[PROTO_ROUTE_VHOST_MAX + 1];
    if (proto_route_vhost_normalize(s, lower, sizeof lower) != 0)
        return s_fail(c, "invalid_value",
                      "'%.253s' is not a valid vHost (a hostname, *.<hostname> or *)", s);
    if (c->path_vhost && strcmp(lower, c->path_vhost) != 0)
        return s_fail(c, "invalid_value", "'%.253s' differs from the vHost of the path, '%.253s'",
                      lower, c->path_vhost);
    *out = json_string(lower);
    return true;
}

static bool
s_check_route_id(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, PROTO_ROUTE_ID_MAX, &s, &len))
        return false;
    if (!proto_route_valid_route_id(s))
        return s_fail(c, "invalid_value", "must not contain control characters");
    *out = json_incref(value);
    return true;
}

// --------------------------------------------------------------------------
// Backends

enum { S_B_ID, S_B_HOSTNAME, S_B_PORT, S_B_WEIGHT, S_B_REGION, S_B_PROBE, S_B_COUNT };

static bool
s_check_backend_id(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (!json_is_string(value))
        return s_fail(c, "invalid_type", "expected a string, got %s", s_type_name(value));
    const char *s = json_string_value(value);
    if (!proto_route_valid_backend_id(s))
        return s_fail(
            c, "invalid_value",
            "must be 1 to %d bytes of printable ASCII without space, '/', '?', '#' or '%%'",
            PROTO_ROUTE_BACKEND_ID_MAX);
    for (size_t i = 0; c->backend_ids && i < json_array_size(c->backend_ids); i++)
        if (strcmp(json_string_value(json_array_get(c->backend_ids, i)), s) == 0)
            return s_fail(c, "duplicate_id", "backend id '%s' is used by backends[%zu] already", s,
                          i);
    *out = json_incref(value);
    return true;
}

static bool
s_check_hostname(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, PROTO_ROUTE_HOSTNAME_MAX, &s, &len))
        return false;
    // an IPv6 address, bare or in brackets, is stored bare
    char stored[PROTO_ROUTE_HOSTNAME_MAX + 1];
    if (proto_route_hostname_normalize(s, stored, sizeof stored) != 0)
        return s_fail(c, "invalid_value", "'%.253s' is not a valid hostname or IP address", s);
    *out = json_string(stored);
    return true;
}

static const s_field_t s_backend_fields[S_B_COUNT] = {
    [S_B_ID] = {"id", s_check_backend_id, 0, 0, NULL},
    [S_B_HOSTNAME] = {"hostname", s_check_hostname, 0, 0, NULL},
    [S_B_PORT] = {"port", s_check_int, PROTO_ROUTE_PORT_MIN, PROTO_ROUTE_PORT_MAX, NULL},
    [S_B_WEIGHT] = {"weight", s_check_int, PROTO_ROUTE_WEIGHT_MIN, PROTO_ROUTE_WEIGHT_MAX, NULL},
    [S_B_REGION] = {"region", s_check_region, 0, 0, NULL},
    [S_B_PROBE] = {"probe", s_check_probe, 0, 0, NULL},
};

static void
s_free_slots(json_t **slots, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        json_decref(slots[i]);
        slots[i] = NULL;
    }
}

//  Check one backend object at the context's path; on success *out is the
//  normalized backend (id, hostname, port, weight, region if given, probe).
static bool
s_backend(s_ctx_t *c, json_t *value, json_t **out)
{
    if (!s_expect_object(c, value, "a backend object"))
        return false;
    json_t *slots[S_B_COUNT] = {0};
    bool ok = s_walk_object(c, value, s_backend_fields, S_B_COUNT, slots, s_backend_readonly);
    if (ok && slots[S_B_HOSTNAME] == NULL)
        ok = s_fail_at(c, "hostname", "missing_field", "required");
    if (ok && slots[S_B_PORT] == NULL)
        ok = s_fail_at(c, "port", "missing_field", "required");
    if (ok && slots[S_B_ID] == NULL) {
        char id[PROTO_ROUTE_BACKEND_ID_MAX + 1];
        int rc = proto_route_default_backend_id(json_string_value(slots[S_B_HOSTNAME]),
                                                (unsigned) json_integer_value(slots[S_B_PORT]), id,
                                                sizeof id);
        slots[S_B_ID] = json_string(id);
        // the default must be a valid, unused id too; the error names "id"
        size_t old = s_enter_key(c, "id");
        if (rc != 0)
            ok = s_fail(c, "invalid_value",
                        "the default id hostname:port is longer than %d bytes: give an id",
                        PROTO_ROUTE_BACKEND_ID_MAX);
        for (size_t i = 0; ok && c->backend_ids && i < json_array_size(c->backend_ids); i++)
            if (strcmp(json_string_value(json_array_get(c->backend_ids, i)), id) == 0)
                ok = s_fail(c, "duplicate_id",
                            "the default id '%s' (hostname:port) is used by backends[%zu] already",
                            id, i);
        s_leave(c, old);
    }
    if (!ok) {
        s_free_slots(slots, S_B_COUNT);
        return false;
    }
    json_t *b = json_object();
    json_object_set_new(b, "id", slots[S_B_ID]);
    json_object_set_new(b, "hostname", slots[S_B_HOSTNAME]);
    json_object_set_new(b, "port", slots[S_B_PORT]);
    json_object_set_new(b, "weight",
                        slots[S_B_WEIGHT] ? slots[S_B_WEIGHT]
                                          : json_integer(PROTO_ROUTE_WEIGHT_DEFAULT));
    if (slots[S_B_REGION]) // else the router fills in its REGION
        json_object_set_new(b, "region", slots[S_B_REGION]);
    json_object_set_new(b, "probe",
                        slots[S_B_PROBE]
                            ? slots[S_B_PROBE]
                            : json_string(proto_route_probe_name(PROTO_ROUTE_PROBE_DEFAULT)));
    *out = b;
    return true;
}

static bool
s_check_backends(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (!json_is_array(value))
        return s_fail(c, "invalid_type", "expected an array, got %s", s_type_name(value));
    if (json_array_size(value) > PROTO_ROUTE_BACKENDS_MAX)
        return s_fail(c, "out_of_range", "at most %d backends, got %zu", PROTO_ROUTE_BACKENDS_MAX,
                      json_array_size(value));
    json_t *list = json_array();
    json_t *ids = json_array();
    c->backend_ids = ids;
    bool ok = true;
    size_t i;
    json_t *item;
    json_array_foreach(value, i, item)
    {
        size_t old = s_enter_index(c, i);
        json_t *b = NULL;
        ok = s_backend(c, item, &b);
        s_leave(c, old);
        if (!ok)
            break;
        json_array_append(ids, json_object_get(b, "id"));
        json_array_append_new(list, b);
    }
    c->backend_ids = NULL;
    json_decref(ids);
    if (!ok) {
        json_decref(list);
        return false;
    }
    *out = list;
    return true;
}

// --------------------------------------------------------------------------
// Headers, auth, rate limit, paths, ssl

static bool
s_check_headers(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (!s_expect_object(c, value, "an object of header names to values"))
        return false;
    if (json_object_size(value) > PROTO_ROUTE_HEADERS_MAX)
        return s_fail(c, "out_of_range", "at most %d headers, got %zu", PROTO_ROUTE_HEADERS_MAX,
                      json_object_size(value));
    json_t *headers = json_object();
    const char *name;
    json_t *v;
    bool ok = true;
    json_object_foreach(value, name, v)
    {
        size_t old = s_enter_key(c, name);
        if (!proto_route_valid_header_name(name))
            ok = s_fail(c, "invalid_value", "not a valid header name (1 to %d token characters)",
                        PROTO_ROUTE_HEADER_NAME_MAX);
        if (ok && proto_route_header_forbidden(name))
            ok = s_fail(c, "invalid_value", "a route may not set this header");
        const char *earlier;
        json_t *ev;
        json_object_foreach(headers, earlier, ev)
        {
            if (ok && strcasecmp(earlier, name) == 0)
                ok = s_fail(c, "duplicate_key",
                            "header given twice: '%s' and '%s' (names are case-insensitive)",
                            earlier, name);
        }
        const char *s = NULL;
        size_t len = 0;
        if (ok)
            ok = s_get_str(c, v, 0, PROTO_ROUTE_HEADER_VALUE_MAX, &s, &len);
        if (ok && !proto_route_valid_header_value(s))
            ok = s_fail(c, "invalid_value", "a header value may not hold CR, LF or controls");
        if (ok)
            json_object_set(headers, name, v);
        s_leave(c, old);
        if (!ok)
            break;
    }
    if (!ok) {
        json_decref(headers);
        return false;
    }
    *out = headers;
    return true;
}

//  A crypt(3) hash: "$id$..." or traditional DES (13 characters).
static bool
s_valid_crypt(const char *s, size_t len)
{
    if (len == 13) {
        for (size_t i = 0; i < len; i++)
            if (!isalnum((unsigned char) s[i]) && s[i] != '.' && s[i] != '/')
                return false;
        return true;
    }
    if (len < 4 || len > 512 || s[0] != '$')
        return false;
    size_t i = 1;
    while (i < len && (islower((unsigned char) s[i]) || isdigit((unsigned char) s[i])))
        i++;
    if (i == 1 || i >= len || s[i] != '$')
        return false;
    for (; i < len; i++)
        if (!isalnum((unsigned char) s[i]) && strchr("./$=,+-", s[i]) == NULL)
            return false;
    return true;
}

static bool
s_check_users(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (!s_expect_object(c, value, "an object of user names to crypt(3) hashes"))
        return false;
    size_t n = json_object_size(value);
    if (n == 0 || n > API_AUTH_ENTRIES_MAX)
        return s_fail(c, "out_of_range", "1 to %d users, got %zu", API_AUTH_ENTRIES_MAX, n);
    const char *name;
    json_t *v;
    json_object_foreach(value, name, v)
    {
        size_t old = s_enter_key(c, name);
        size_t nlen = strlen(name);
        const char *s = NULL;
        size_t len = 0;
        bool ok = true;
        if (nlen == 0 || nlen > 64 || strchr(name, ':') || !s_no_controls(name, nlen))
            ok = s_fail(c, "invalid_value", "a user name is 1 to 64 bytes, without ':'");
        if (ok)
            ok = s_get_str(c, v, 1, 512, &s, &len);
        if (ok && !s_valid_crypt(s, len))
            ok = s_fail(c, "invalid_value", "not a crypt(3) hash (e.g. $6$salt$...)");
        s_leave(c, old);
        if (!ok)
            return false;
    }
    *out = json_incref(value);
    return true;
}

static bool
s_check_tokens(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (!json_is_array(value))
        return s_fail(c, "invalid_type", "expected an array of SHA-256 hex digests, got %s",
                      s_type_name(value));
    size_t n = json_array_size(value);
    if (n == 0 || n > API_AUTH_ENTRIES_MAX)
        return s_fail(c, "out_of_range", "1 to %d tokens, got %zu", API_AUTH_ENTRIES_MAX, n);
    json_t *tokens = json_array();
    size_t i;
    json_t *v;
    json_array_foreach(value, i, v)
    {
        size_t old = s_enter_index(c, i);
        const char *s = NULL;
        size_t len = 0;
        bool ok = s_get_str(c, v, 0, 128, &s, &len);
        char hex[65];
        for (size_t k = 0; ok && k < len; k++) {
            if (len != 64 || !isxdigit((unsigned char) s[k]))
                ok = s_fail(c, "invalid_value", "expected the SHA-256 of a token: 64 hex digits");
            else
                hex[k] = (char) tolower((unsigned char) s[k]);
        }
        if (ok && len != 64)
            ok = s_fail(c, "invalid_value", "expected the SHA-256 of a token: 64 hex digits");
        s_leave(c, old);
        if (!ok) {
            json_decref(tokens);
            return false;
        }
        hex[64] = '\0';
        json_array_append_new(tokens, json_string(hex));
    }
    *out = tokens;
    return true;
}

static bool
s_check_auth(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (json_is_null(value)) {
        *out = json_null();
        return true;
    }
    if (!s_expect_object(c, value, "null or an object"))
        return false;
    // the type decides which other member belongs; it may come after them
    static const char *const types[] = {"basic", "bearer", NULL};
    const char *type = json_string_value(json_object_get(value, "type"));
    bool basic = type && strcmp(type, "basic") == 0;
    bool bearer = type && strcmp(type, "bearer") == 0;
    const s_field_t fields[] = {
        {"type", s_check_enum, 0, 0, types},
        {"users", s_check_users, 0, 0, NULL},
        {"tokens", s_check_tokens, 0, 0, NULL},
    };
    json_t *slots[3] = {0};
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach(value, key, v)
    {
        const s_field_t *fl = s_lookup(fields, 3, key);
        size_t old = s_enter_key(c, key);
        if (fl == NULL)
            ok = s_fail(c, "unknown_field", "unknown field");
        else if ((fl == &fields[1] && bearer) || (fl == &fields[2] && basic))
            ok = s_fail(c, "unknown_field", "not a field of auth type %s", type);
        else
            ok = fl->check(c, v, &slots[fl - fields], fl);
        s_leave(c, old);
        if (!ok)
            break;
    }
    if (ok && slots[0] == NULL)
        ok = s_fail_at(c, "type", "missing_field", "required: basic or bearer");
    if (ok && basic && slots[1] == NULL)
        ok = s_fail_at(c, "users", "missing_field", "required for type basic");
    if (ok && bearer && slots[2] == NULL)
        ok = s_fail_at(c, "tokens", "missing_field", "required for type bearer");
    if (!ok) {
        s_free_slots(slots, 3);
        return false;
    }
    json_t *auth = json_object();
    json_object_set_new(auth, "type", slots[0]);
    if (basic)
        json_object_set_new(auth, "users", slots[1]);
    else
        json_object_set_new(auth, "tokens", slots[2]);
    *out = auth;
    return true;
}

static bool
s_check_url(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (json_is_null(value)) {
        *out = json_null();
        return true;
    }
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, API_URL_MAX, &s, &len))
        return false;
    static const char *const schemes[] = {"http://", "https://"};
    size_t skip = 0;
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(schemes); i++)
        if (strncasecmp(s, schemes[i], strlen(schemes[i])) == 0)
            skip = strlen(schemes[i]);
    bool ok = skip > 0 && len > skip && s[skip] != '/' && s[skip] != ':' && s[skip] != '?';
    for (size_t i = 0; ok && i < len; i++)
        if ((unsigned char) s[i] <= 0x20 || (unsigned char) s[i] >= 0x7f)
            ok = false;
    if (!ok)
        return s_fail(c, "invalid_value", "expected an http:// or https:// URL with a host");
    *out = json_incref(value);
    return true;
}

static bool
s_check_path(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    if (json_is_null(value) && f->min == 0) { // chatPath may be null
        *out = json_null();
        return true;
    }
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, API_PATH_FIELD_MAX, &s, &len))
        return false;
    bool query_ok = f->max != 0; // healthPath may carry a query
    bool ok = s[0] == '/';
    for (size_t i = 0; ok && i < len; i++) {
        unsigned char ch = (unsigned char) s[i];
        if (ch <= 0x20 || ch >= 0x7f || ch == '#' || (ch == '?' && !query_ok))
            ok = false;
    }
    if (!ok)
        return s_fail(c, "invalid_value", "expected a path starting with '/', without spaces%s",
                      query_ok ? "" : " or a query");
    *out = json_incref(value);
    return true;
}

static bool
s_check_rate_limit(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (json_is_null(value)) {
        *out = json_null();
        return true;
    }
    if (!s_expect_object(c, value, "null or an object"))
        return false;
    static const char *const tiers[] = {"general", "strict", "auth", NULL};
    static const char *const keys[] = {"ip", "user", NULL};
    enum { T_TIER, T_REQUESTS, T_WINDOW, T_KEY, T_BURST, T_COUNT };
    static const s_field_t fields[T_COUNT] = {
        [T_TIER] = {"tier", s_check_enum, 0, 0, tiers},
        [T_REQUESTS] = {"requests", s_check_int, 1, 1000000000, NULL},
        [T_WINDOW] = {"windowSeconds", s_check_int, 1, 86400, NULL},
        [T_KEY] = {"key", s_check_enum, 0, 0, keys},
        [T_BURST] = {"burstPerSecond", s_check_int, 0, 1000000, NULL},
    };
    bool tiered = json_object_get(value, "tier") != NULL;
    json_t *slots[T_COUNT] = {0};
    const char *key;
    json_t *v;
    bool ok = true;
    json_object_foreach(value, key, v)
    {
        const s_field_t *fl = s_lookup(fields, T_COUNT, key);
        size_t old = s_enter_key(c, key);
        if (fl == NULL)
            ok = s_fail(c, "unknown_field", "unknown field");
        else if (tiered && fl != &fields[T_TIER])
            ok = s_fail(c, "unknown_field", "not allowed with tier: give a tier or the numbers");
        else
            ok = fl->check(c, v, &slots[fl - fields], fl);
        s_leave(c, old);
        if (!ok)
            break;
    }
    if (ok && !tiered && slots[T_REQUESTS] == NULL)
        ok = s_fail_at(c, "requests", "missing_field",
                       "required (or give a tier: general, strict or auth)");
    if (ok && !tiered && slots[T_WINDOW] == NULL)
        ok = s_fail_at(c, "windowSeconds", "missing_field", "required");
    if (!ok) {
        s_free_slots(slots, T_COUNT);
        return false;
    }
    json_t *rl = json_object();
    if (tiered) {
        json_object_set_new(rl, "tier", slots[T_TIER]);
    } else {
        json_object_set_new(rl, "requests", slots[T_REQUESTS]);
        json_object_set_new(rl, "windowSeconds", slots[T_WINDOW]);
        json_object_set_new(rl, "key", slots[T_KEY] ? slots[T_KEY] : json_string("ip"));
        json_object_set_new(rl, "burstPerSecond",
                            slots[T_BURST] ? slots[T_BURST] : json_integer(0));
    }
    *out = rl;
    return true;
}

//  A CORS origin: "*", or scheme://host[:port] (lower-case, no path).
static bool
s_valid_origin(const char *s, size_t len)
{
    if (len == 1 && s[0] == '*')
        return true;
    size_t skip = 0;
    if (strncmp(s, "https://", 8) == 0)
        skip = 8;
    else if (strncmp(s, "http://", 7) == 0)
        skip = 7;
    if (skip == 0 || len == skip)
        return false;
    for (size_t i = skip; i < len; i++)
        if (!(islower((unsigned char) s[i]) || isdigit((unsigned char) s[i])
              || strchr(".-:[]", s[i])))
            return false;
    return true;
}

//  An HTTP token (a method or a header name, RFC 9110 §5.6.2).
static bool
s_valid_token(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char) s[i]) && strchr("!#$%&'*+-.^_`|~", s[i]) == NULL)
            return false;
    return len > 0;
}

//  An array of 1..max strings, each origin or token (f->choices[0] says
//  which: "origin", "method", "header").
static bool
s_check_cors_list(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    const char *kind = f->choices[0];
    bool origin = strcmp(kind, "origin") == 0;
    if (!json_is_array(value))
        return s_fail(c, "invalid_type", "expected an array of %ss, got %s", kind,
                      s_type_name(value));
    size_t n = json_array_size(value);
    if ((long long) n < f->min || (long long) n > f->max)
        return s_fail(c, "out_of_range", "%lld to %lld %ss, got %zu", f->min, f->max, kind, n);
    json_t *list = json_array();
    size_t i;
    json_t *v;
    size_t total = 0;
    json_array_foreach(value, i, v)
    {
        size_t old = s_enter_index(c, i);
        const char *s = NULL;
        size_t len = 0;
        bool ok = s_get_str(c, v, 1, API_CORS_ITEM_MAX, &s, &len);
        if (ok && !(origin ? s_valid_origin(s, len) : s_valid_token(s, len)))
            ok = s_fail(c, "invalid_value",
                        origin ? "expected \"*\" or scheme://host[:port] in lower case, no path"
                               : "expected an HTTP token (no spaces or separators)");
        if (ok && origin && len == 1 && n > 1)
            ok = s_fail(c, "invalid_value", "\"*\" must be the only origin");
        total += len + 2;
        if (ok && total > API_CORS_LIST_BYTES)
            ok = s_fail(c, "out_of_range", "the list is longer than %d bytes", API_CORS_LIST_BYTES);
        s_leave(c, old);
        if (!ok) {
            json_decref(list);
            return false;
        }
        json_array_append(list, v);
    }
    *out = list;
    return true;
}

static bool
s_check_cors(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (json_is_null(value)) {
        *out = json_null();
        return true;
    }
    if (!s_expect_object(c, value, "null or an object"))
        return false;
    static const char *const origin[] = {"origin", NULL};
    static const char *const method[] = {"method", NULL};
    static const char *const header[] = {"header", NULL};
    enum { C_ORIGINS, C_METHODS, C_HEADERS, C_EXPOSE, C_CREDENTIALS, C_MAX_AGE, C_COUNT };
    static const s_field_t fields[C_COUNT] = {
        [C_ORIGINS] = {"origins", s_check_cors_list, 1, API_CORS_ITEMS_MAX, origin},
        [C_METHODS] = {"methods", s_check_cors_list, 1, API_CORS_ITEMS_MAX, method},
        [C_HEADERS] = {"headers", s_check_cors_list, 0, API_CORS_ITEMS_MAX, header},
        [C_EXPOSE] = {"exposeHeaders", s_check_cors_list, 0, API_CORS_ITEMS_MAX, header},
        [C_CREDENTIALS] = {"credentials", s_check_bool, 0, 0, NULL},
        [C_MAX_AGE] = {"maxAge", s_check_int, 0, 86400, NULL},
    };
    json_t *slots[C_COUNT] = {0};
    bool ok = s_walk_object(c, value, fields, C_COUNT, slots, NULL);
    if (ok && slots[C_ORIGINS] == NULL)
        ok = s_fail_at(c, "origins", "missing_field",
                       "required: the origins allowed, e.g. [\"https://app.example.com\"] or "
                       "[\"*\"]");
    if (ok && slots[C_CREDENTIALS] && json_is_true(slots[C_CREDENTIALS])
        && strcmp(json_string_value(json_array_get(slots[C_ORIGINS], 0)), "*") == 0)
        ok = s_fail_at(c, "credentials", "invalid_value",
                       "credentials need explicit origins (browsers refuse \"*\" with them)");
    if (!ok) {
        s_free_slots(slots, C_COUNT);
        return false;
    }
    json_t *cors = json_object();
    json_object_set_new(cors, "origins", slots[C_ORIGINS]);
    json_object_set_new(
        cors, "methods",
        slots[C_METHODS] ? slots[C_METHODS]
                         : json_pack("[ssssss]", "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"));
    json_object_set_new(cors, "headers", slots[C_HEADERS] ? slots[C_HEADERS] : json_array());
    json_object_set_new(cors, "exposeHeaders", slots[C_EXPOSE] ? slots[C_EXPOSE] : json_array());
    json_object_set_new(cors, "credentials",
                        slots[C_CREDENTIALS] ? slots[C_CREDENTIALS] : json_false());
    json_object_set_new(cors, "maxAge",
                        slots[C_MAX_AGE] ? slots[C_MAX_AGE] : json_integer(API_CORS_MAX_AGE));
    *out = cors;
    return true;
}

static bool
s_check_pem(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    const char *s = NULL;
    size_t len = 0;
    if (!s_get_str(c, value, 1, 1048576, &s, &len))
        return false;
    bool kept = strcmp(f->name, "key") == 0 && strcmp(s, API_ROUTE_KEY_REDACTED) == 0;
    if (!kept && strstr(s, "-----BEGIN ") == NULL)
        return s_fail(c, "invalid_value", "expected PEM text (-----BEGIN ...)");
    *out = json_incref(value);
    return true;
}

static bool
s_check_ssl(s_ctx_t *c, json_t *value, json_t **out, const s_field_t *f)
{
    (void) f;
    if (json_is_null(value)) {
        *out = json_null();
        return true;
    }
    if (!s_expect_object(c, value, "null or an object {key, cert}"))
        return false;
    static const s_field_t fields[] = {
        {"key", s_check_pem, 0, 0, NULL},
        {"cert", s_check_pem, 0, 0, NULL},
    };
    json_t *slots[2] = {0};
    bool ok = s_walk_object(c, value, fields, 2, slots, NULL);
    if (ok && slots[0] == NULL)
        ok = s_fail_at(c, "key", "missing_field", "required");
    if (ok && slots[1] == NULL)
        ok = s_fail_at(c, "cert", "missing_field", "required");
    if (ok) {
        // the pair as POST /certificates checks it; the key sent back
        // redacted from a GET means "keep the stored one" (the router's)
        const char *key = json_string_value(slots[0]);
        api_error_t perr = {0};
        if (api_cert_check_pair(strcmp(key, API_ROUTE_KEY_REDACTED) == 0 ? NULL : key,
                                json_string_value(slots[1]), &perr)
            != 0)
            ok = s_fail_at(c, perr.field, perr.code, "%s", perr.message);
    }
    if (!ok) {
        s_free_slots(slots, 2);
        return false;
    }
    json_t *ssl = json_object();
    json_object_set_new(ssl, "key", slots[0]);
    json_object_set_new(ssl, "cert", slots[1]);
    *out = ssl;
    return true;
}

// --------------------------------------------------------------------------
// The route

enum {
    S_R_ID,
    S_R_VHOST,
    S_R_STRATEGY,
    S_R_AUTOHTTPS,
    S_R_REQ_ACTIVE,
    S_R_REQ_QUEUE,
    S_R_RETRIES,
    S_R_TIMEOUT,
    S_R_QUEUE_TIMEOUT,
    S_R_MAX_BODY,
    S_R_HEADERS,
    S_R_AUTH,
    S_R_AUTH_PROVIDER,
    S_R_AUTH_CACHE,
    S_R_RATE_LIMIT,
    S_R_SECURITY_HEADERS,
    S_R_CORS,
    S_R_CHAT_PATH,
    S_R_HEALTH_PATH,
    S_R_BACKENDS,
    S_R_SSL,
    S_R_COUNT
};

//  In SPEC §4's order, which is the output's. For paths, min 0 allows null
//  (chatPath) and max 1 allows a query (healthPath).
static const s_field_t s_route_fields[S_R_COUNT] = {
    [S_R_ID] = {"id", s_check_route_id, 0, 0, NULL},
    [S_R_VHOST] = {"vHost", s_check_vhost, 0, 0, NULL},
    [S_R_STRATEGY] = {"strategy", s_check_strategy, 0, 0, NULL},
    [S_R_AUTOHTTPS] = {"autoHttps", s_check_bool, 0, 0, NULL},
    [S_R_REQ_ACTIVE] = {"reqActiveLength", s_check_int, PROTO_ROUTE_REQ_ACTIVE_MIN,
                        PROTO_ROUTE_REQ_ACTIVE_MAX, NULL},
    [S_R_REQ_QUEUE] = {"reqQueueLength", s_check_int, PROTO_ROUTE_REQ_QUEUE_MIN,
                       PROTO_ROUTE_REQ_QUEUE_MAX, NULL},
    [S_R_RETRIES] = {"retries", s_check_int, PROTO_ROUTE_RETRIES_MIN, PROTO_ROUTE_RETRIES_MAX,
                     NULL},
    [S_R_TIMEOUT] = {"timeoutMs", s_check_int, PROTO_ROUTE_TIMEOUT_MS_MIN,
                     PROTO_ROUTE_TIMEOUT_MS_MAX, NULL},
    [S_R_QUEUE_TIMEOUT] = {"queueTimeoutMs", s_check_int, PROTO_ROUTE_QUEUE_TIMEOUT_MS_MIN,
                           PROTO_ROUTE_QUEUE_TIMEOUT_MS_MAX, NULL},
    [S_R_MAX_BODY] = {"maxBodyBytes", s_check_int, PROTO_ROUTE_MAX_BODY_MIN,
                      PROTO_ROUTE_MAX_BODY_MAX, NULL},
    [S_R_HEADERS] = {"headers", s_check_headers, 0, 0, NULL},
    [S_R_AUTH] = {"auth", s_check_auth, 0, 0, NULL},
    [S_R_AUTH_PROVIDER] = {"authProvider", s_check_url, 0, 0, NULL},
    [S_R_AUTH_CACHE] = {"authCacheMs", s_check_int, PROTO_ROUTE_AUTH_CACHE_MS_MIN,
                        PROTO_ROUTE_AUTH_CACHE_MS_MAX, NULL},
    [S_R_RATE_LIMIT] = {"rateLimit", s_check_rate_limit, 0, 0, NULL},
    [S_R_SECURITY_HEADERS] = {"securityHeaders", s_check_bool, 0, 0, NULL},
    [S_R_CORS] = {"cors", s_check_cors, 0, 0, NULL},
    [S_R_CHAT_PATH] = {"chatPath", s_check_path, 0, 0, NULL},
    [S_R_HEALTH_PATH] = {"healthPath", s_check_path, 1, 1, NULL},
    [S_R_BACKENDS] = {"backends", s_check_backends, 0, 0, NULL},
    [S_R_SSL] = {"ssl", s_check_ssl, 0, 0, NULL},
};

static json_t *
s_check_route(json_t *doc, void *arg, api_error_t *err)
{
    s_ctx_t c = {.err = err, .path_vhost = arg};
    if (!s_expect_object(&c, doc, "a JSON object (a route)"))
        return NULL;
    json_t *slots[S_R_COUNT] = {0};
    bool ok = s_walk_object(&c, doc, s_route_fields, S_R_COUNT, slots, NULL);
    if (ok && slots[S_R_VHOST] == NULL) {
        if (c.path_vhost)
            slots[S_R_VHOST] = json_string(c.path_vhost);
        else
            ok = s_fail_at(&c, "vHost", "missing_field", "required");
    }
    if (ok && slots[S_R_BACKENDS] == NULL)
        ok = s_fail_at(&c, "backends", "missing_field", "required (it may be empty: [])");
    if (!ok) {
        s_free_slots(slots, S_R_COUNT);
        return NULL;
    }
    json_t *defaults[S_R_COUNT] = {
        [S_R_ID] = json_incref(slots[S_R_VHOST]),
        [S_R_STRATEGY] = json_string(proto_strategy_name(PROTO_ROUTE_STRATEGY_DEFAULT)),
        [S_R_AUTOHTTPS] = json_false(),
        [S_R_REQ_ACTIVE] = json_integer(PROTO_ROUTE_REQ_ACTIVE_DEFAULT),
        [S_R_REQ_QUEUE] = json_integer(PROTO_ROUTE_REQ_QUEUE_DEFAULT),
        [S_R_RETRIES] = json_integer(PROTO_ROUTE_RETRIES_DEFAULT),
        [S_R_TIMEOUT] = json_integer(PROTO_ROUTE_TIMEOUT_MS_DEFAULT),
        [S_R_MAX_BODY] = json_integer(PROTO_ROUTE_MAX_BODY_DEFAULT),
        [S_R_HEADERS] = json_object(),
        [S_R_AUTH] = json_null(),
        [S_R_AUTH_PROVIDER] = json_null(),
        [S_R_AUTH_CACHE] = json_integer(PROTO_ROUTE_AUTH_CACHE_MS_DEFAULT),
        [S_R_RATE_LIMIT] = json_null(),
        [S_R_SECURITY_HEADERS] = json_false(),
        [S_R_CORS] = json_null(),
        [S_R_CHAT_PATH] = json_null(),
        [S_R_HEALTH_PATH] = json_string(PROTO_ROUTE_HEALTH_PATH_DEFAULT),
        [S_R_SSL] = json_null(),
    };
    json_t *timeout = slots[S_R_TIMEOUT] ? slots[S_R_TIMEOUT] : defaults[S_R_TIMEOUT];
    defaults[S_R_QUEUE_TIMEOUT] = json_integer(json_integer_value(timeout));
    json_t *route = json_object();
    for (size_t i = 0; i < S_R_COUNT; i++) {
        if (slots[i]) {
            json_object_set_new(route, s_route_fields[i].name, slots[i]);
            json_decref(defaults[i]);
        } else {
            json_object_set_new(route, s_route_fields[i].name, defaults[i]);
        }
    }
    return route;
}

json_t *
api_route_parse(const char *text, size_t len, const char *path_vhost, api_error_t *err)
{
    return api_json_load_checked(text, len, s_check_route, (void *) path_vhost, err);
}

static json_t *
s_check_one_backend(json_t *doc, void *arg, api_error_t *err)
{
    (void) arg;
    s_ctx_t c = {.err = err};
    json_t *b = NULL;
    return s_backend(&c, doc, &b) ? b : NULL;
}

json_t *
api_backend_parse(const char *text, size_t len, api_error_t *err)
{
    return api_json_load_checked(text, len, s_check_one_backend, NULL, err);
}
