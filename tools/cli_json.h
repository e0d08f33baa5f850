/*  cli_json - msgpack to JSON text, with secrets redacted, for taps. */
#ifndef CLI_JSON_H
#define CLI_JSON_H

#include <stddef.h>

typedef struct {
    char *data;  // NUL-terminated JSON text
    size_t size; // bytes before the NUL
    size_t cap;  // allocated
} cli_json_t;

//  Convert one msgpack value (len bytes) to JSON in out (replacing its text).
//  Returns 0, or -2 if the input is not exactly one well-formed value.
int cli_json_from_msgpack(const void *buf, size_t len, cli_json_t *out);

//  Free the text. Safe to call twice.
void cli_json_free(cli_json_t *json);

#endif
