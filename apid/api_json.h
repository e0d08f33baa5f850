/*  api_json - JSON parsing with field paths, for the control API.

    jansson parses (JSON_REJECT_DUPLICATES; integers that do not fit 64 bits
    and reals beyond a double are errors, never rounded). What jansson does
    not say is *which field* a parse error concerns, or whether a field
    written earlier is bad too. A small scanner of the raw text supplies both:
    the path of the token at an error's offset ("backends[1].port") and the
    offset at which a path first appears. api_json_load_checked combines them
    so that the first bad field in document order is the one reported,
    whether it is a duplicate key, a number too big, or a value the checker
    refuses.

    Paths: members are joined with '.', array elements are "[i]"
    ("backends[0].port", "headers.X-Env"); the document itself is "".
*/
#ifndef API_JSON_H
#define API_JSON_H

#include <stddef.h>

#include <jansson.h>

#include "proto.h"

#define API_FIELD_MAX   PROTO_CONFIG_REPLY_FIELD_MAX // bytes of an error's field path
#define API_MESSAGE_MAX PROTO_CONFIG_REPLY_ERROR_MAX // bytes of an error message

//  Why a request was refused: SPEC §5's {"error": {"code", "message", "field"}}.
typedef struct {
    int status;                        // HTTP status
    char code[32];                     // machine-readable code
    char field[API_FIELD_MAX + 1];     // path of the bad field, "" for none
    char message[API_MESSAGE_MAX + 1]; // human-readable reason
} api_error_t;

//  Fill err (status 400 unless changed after). field may be NULL.
void api_error_set(api_error_t *err, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

//  The error body {"error":{"code","message","field"}} (field null when
//  NULL or ""). Returns a string the caller frees.
char *api_error_body(const char *code, const char *message, const char *field);

//  The path of the token being read at byte offset pos of text: the last
//  token (key or value) that starts before pos. out is always
//  NUL-terminated. Returns 0, or -1 if no token starts before pos.
int api_json_path_at(const char *text, size_t len, size_t pos, char *out, size_t cap);

//  Where path first appears in text: the offset of its key (member) or of
//  its value (array element). A path that is absent is placed at the end of
//  the nearest enclosing container that exists (where a missing field
//  would have been written). Returns len when nothing matches.
size_t api_json_position(const char *text, size_t len, const char *path);

//  Check a parsed document: return the normalized result (new reference), or
//  NULL with err filled (err->field names the bad field).
typedef json_t *(api_json_check_fn) (json_t *doc, void *arg, api_error_t *err);

//  Parse len bytes of text and run check on the document. On success
//  returns check's result. Otherwise NULL with err: invalid_json (field ""),
//  or the first bad field in document order among a duplicate key
//  (duplicate_key), a number too big (out_of_range) and check's own error.
json_t *api_json_load_checked(
    const char *text, size_t len, api_json_check_fn *check, void *arg, api_error_t *err);

#endif
