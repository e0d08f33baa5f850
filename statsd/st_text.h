/*  st_text - a growable text buffer and the escapes statsd's answers need:
    Prometheus text exposition 0.0.4 (label values, HELP text, sample values)
    and JSON strings.

    The buffer grows with realloc while an answer is built (once per query,
    never per request); proto_xrealloc aborts when memory is out.
*/
#ifndef ST_TEXT_H
#define ST_TEXT_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *data; // NUL-terminated text, or NULL when empty
    size_t len; // bytes used
    size_t cap; // bytes allocated
} st_text_t;

//  Append bytes, a string, a formatted string.
void st_text_add(st_text_t *self, const char *data, size_t len);
void st_text_puts(st_text_t *self, const char *s);
void st_text_printf(st_text_t *self, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

//  Append a label value escaped as the exposition format says: \ as \\,
//  " as \" and a line feed as \n.
void st_text_label(st_text_t *self, const char *value);

//  Append HELP text: \ as \\ and a line feed as \n.
void st_text_help(st_text_t *self, const char *text);

//  Append a sample value: integers as integers, NaN and infinities as NaN,
//  +Inf and -Inf, other numbers with up to 15 significant digits.
void st_text_value(st_text_t *self, double value);

//  Append a JSON string (with its quotes), escaping ", \ and controls.
void st_text_json(st_text_t *self, const char *s);

//  Free the buffer. Safe to call twice.
void st_text_free(st_text_t *self);

#endif
