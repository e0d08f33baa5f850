/*  st_text - text buffer and escapes for the exposition format and JSON. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_util.h"
#include "st_text.h"

static void
s_reserve(st_text_t *self, size_t more)
{
    if (self->len + more + 1 <= self->cap)
        return;
    size_t cap = self->cap ? self->cap : 4096;
    while (cap < self->len + more + 1)
        cap *= 2;
    self->data = proto_xrealloc(self->data, cap);
    self->cap = cap;
}

void
st_text_add(st_text_t *self, const char *data, size_t len)
{
    s_reserve(self, len);
    memcpy(self->data + self->len, data, len);
    self->len += len;
    self->data[self->len] = '\0';
}

void
st_text_puts(st_text_t *self, const char *s)
{
    st_text_add(self, s, strlen(s));
}

void
st_text_printf(st_text_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t) n < sizeof small) {
        st_text_add(self, small, (size_t) n);
        return;
    }
    s_reserve(self, (size_t) n);
    va_start(ap, fmt);
    vsnprintf(self->data + self->len, (size_t) n + 1, fmt, ap);
    va_end(ap);
    self->len += (size_t) n;
}

static void
s_escape(st_text_t *self, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        if (*p == '\\')
            st_text_add(self, "\\\\", 2);
        else if (*p == '\n')
            st_text_add(self, "\\n", 2);
        else if (quote && *p == '"')
            st_text_add(self, "\\\"", 2);
        else
            st_text_add(self, p, 1);
    }
}

void
st_text_label(st_text_t *self, const char *value)
{
    s_escape(self, value, 1);
}

void
st_text_help(st_text_t *self, const char *text)
{
    s_escape(self, text, 0);
}

void
st_text_value(st_text_t *self, double value)
{
    if (isnan(value))
        st_text_puts(self, "NaN");
    else if (isinf(value))
        st_text_puts(self, value > 0 ? "+Inf" : "-Inf");
    else if (value == floor(value) && fabs(value) < 9007199254740992.0)
        st_text_printf(self, "%.0f", value);
    else
        st_text_printf(self, "%.15g", value);
}

void
st_text_json(st_text_t *self, const char *s)
{
    st_text_add(self, "\"", 1);
    for (const unsigned char *p = (const unsigned char *) s; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char e[2] = {'\\', (char) *p};
            st_text_add(self, e, 2);
        } else if (*p < 0x20) {
            st_text_printf(self, "\\u%04x", *p);
        } else {
            st_text_add(self, (const char *) p, 1);
        }
    }
    st_text_add(self, "\"", 1);
}

void
st_text_free(st_text_t *self)
{
    free(self->data);
    self->data = NULL;
    self->len = self->cap = 0;
}
