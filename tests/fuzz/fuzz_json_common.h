/*  fuzz_json_common - the error contract every control-API body parser shares.

    fuzz_route_json, fuzz_cert_json and fuzz_region_json check the same promise of
    apid/api_json.h on a refused body: status 400, a code from the parser's list, a
    non-empty message, the three strings NUL-terminated inside their arrays, invalid_json
    with the empty field, and the SPEC §5 error body (api_error_body) carrying code,
    message and field unchanged. Every error is filled by api_error_set, which replaces
    each byte that does not start a valid UTF-8 sequence by '?' (s_utf8_repair, after the
    cut at the array's bound), so field and message are always valid UTF-8: the check is
    strict, with no exception for a string cut at its bound.

    Header only (static inline): the Makefile takes every tests/fuzz/fuzz_*.c for a target,
    so a fuzz_json_common.c would be built as one. Each check abort()s on a violation.
*/
#ifndef FUZZ_JSON_COMMON_H
#define FUZZ_JSON_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_json.h"

//  The codes of api_json.h and of most parsers; api_route adds duplicate_id.
#define FUZZ_JSON_CODES                                                                            \
    "invalid_json", "duplicate_key", "unknown_field", "invalid_type", "out_of_range",              \
        "invalid_value", "missing_field"

//  True if s has a NUL within its cap bytes.
static inline bool
fuzz_json_terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

//  True if s is printable ASCII.
static inline bool
fuzz_json_ascii(const char *s)
{
    for (; *s; s++)
        if (*s < 0x20 || *s > 0x7e)
            return false;
    return true;
}

//  True if s is valid UTF-8 (jansson's check: RFC 3629, as api_json.c's repair).
static inline bool
fuzz_json_utf8(const char *s)
{
    json_t *j = json_stringn(s, strlen(s));
    json_decref(j);
    return j != NULL;
}

//  Check a refused body's error: the contract above. codes: the parser's codes, NULL last.
static inline void
fuzz_json_check_error(const api_error_t *err, const char *const *codes)
{
    if (err->status != 400 || !fuzz_json_terminated(err->code, sizeof err->code)
        || !fuzz_json_terminated(err->field, sizeof err->field)
        || !fuzz_json_terminated(err->message, sizeof err->message) || err->message[0] == '\0')
        abort();
    size_t i = 0;
    while (codes[i] && strcmp(codes[i], err->code) != 0)
        i++;
    if (codes[i] == NULL)
        abort();
    //  invalid_json has no field (the header's promise). Other codes may have "" too: the
    //  document itself (invalid_type for a non-object, out_of_range for a bare too-big
    //  number) and, ambiguously, a member whose key is "" (tests/fuzz/README.md).
    if (strcmp(err->code, "invalid_json") == 0 && err->field[0] != '\0')
        abort();
    if (!fuzz_json_utf8(err->field) || !fuzz_json_utf8(err->message))
        abort();
    char *body = api_error_body(err->code, err->message, err->field);
    json_t *doc = json_loads(body, 0, NULL);
    json_t *inner = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(inner, "code"));
    const char *message = json_string_value(json_object_get(inner, "message"));
    json_t *field = json_object_get(inner, "field");
    if (!json_is_object(doc) || json_object_size(doc) != 1 || json_object_size(inner) != 3)
        abort();
    if (code == NULL || strcmp(code, err->code) != 0)
        abort();
    if (message == NULL || strcmp(message, err->message) != 0)
        abort();
    if (err->field[0] == '\0'
            ? !json_is_null(field)
            : !json_is_string(field) || strcmp(json_string_value(field), err->field) != 0)
        abort();
    json_decref(doc);
    free(body);
}

//  Two answers to the same input: the same error.
static inline void
fuzz_json_check_same_error(const api_error_t *a, const api_error_t *b)
{
    if (a->status != b->status || strcmp(a->code, b->code) != 0 || strcmp(a->field, b->field) != 0
        || strcmp(a->message, b->message) != 0)
        abort();
}

#endif
