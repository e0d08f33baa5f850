/*  api_json - JSON parsing with field paths (see api_json.h).

    The scanner walks the raw text as far as it is well-formed, keeping the
    path of the value it is in, and calls a visitor for every token: a key, a
    scalar value, and the opening and closing bracket of each container. It
    never allocates except to decode a key that has escapes, and it stops at
    the first byte that is not JSON (a parse error is jansson's to report).
*/
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_util.h"
#include "api_json.h"

#define S_WALK_DEPTH 2048 // jansson's own nesting limit
#define S_PATH_MAX   1024 // bytes of a path while scanning
#define S_ROUNDS     16   // re-parses after blanking a number too big

//  Length of the valid UTF-8 sequence at s (RFC 3629: no overlongs, no
//  surrogates, nothing above U+10FFFF), or 0.
static size_t
s_utf8_len(const unsigned char *s)
{
    unsigned char c = s[0];
    if (c < 0x80)
        return 1;
    size_t n;
    unsigned char lo = 0x80, hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        lo = c == 0xe0 ? 0xa0 : 0x80;
        hi = c == 0xed ? 0x9f : 0xbf;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        lo = c == 0xf0 ? 0x90 : 0x80;
        hi = c == 0xf4 ? 0x8f : 0xbf;
    } else
        return 0;
    if (s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

//  Replace every byte that does not start a valid UTF-8 sequence by '?': a
//  message that quotes input with "%.64s" may cut a character in two, and
//  the error body must still carry it (fuzz_region_json).
static void
s_utf8_repair(char *s)
{
    unsigned char *p = (unsigned char *) s;
    while (*p) {
        size_t n = s_utf8_len(p);
        if (n == 0) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
}

void
api_error_set(api_error_t *err, const char *code, const char *field, const char *fmt, ...)
{
    err->status = 400;
    proto_strlcpy(err->code, code, sizeof err->code);
    proto_strlcpy(err->field, field ? field : "", sizeof err->field);
    s_utf8_repair(err->field);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    s_utf8_repair(err->message);
}

char *
api_error_body(const char *code, const char *message, const char *field)
{
    json_t *inner = json_object();
    json_object_set_new(inner, "code", json_string(code));
    json_object_set_new(inner, "message", json_string(message ? message : ""));
    json_object_set_new(inner, "field", field && *field ? json_string(field) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", inner);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL) // only when a string was not UTF-8: say so without it
        text = proto_xstrdup("{\"error\":{\"code\":\"internal\",\"message\":\"unprintable error\","
                             "\"field\":null}}");
    return text;
}

// --------------------------------------------------------------------------
// The scanner

typedef enum {
    S_TOK_KEY,   // an object key; path is the member's
    S_TOK_VALUE, // a string, number or literal
    S_TOK_OPEN,  // '{' or '['; path is the container's
    S_TOK_CLOSE, // '}' or ']'; path is the container's
} s_tok_t;

typedef struct s_walk s_walk_t;

//  Called for every token; returns false to stop the walk.
typedef bool(s_visit_fn)(s_walk_t *w, s_tok_t kind, size_t start, size_t end);

struct s_walk {
    const char *text;      // the document
    size_t len;            // its length
    size_t i;              // read offset
    int depth;             // containers open
    bool stopped;          // the visitor asked to stop
    char path[S_PATH_MAX]; // path of the current value
    size_t plen;           // its length
    s_visit_fn *visit;     // the visitor
    size_t target;         // visitor input: an offset
    const char *want;      // visitor input: a path
    bool want_close;       // visitor input: look for the container's end
    size_t found;          // visitor output: an offset
    size_t found_end;      // visitor output: the end of that token
    s_tok_t found_kind;    // visitor output: the kind of that token
    bool hit;              // visitor output: found is set
    char *out;             // visitor output: a path
    size_t out_cap;        // its capacity
};

static void
s_ws(s_walk_t *w)
{
    while (w->i < w->len) {
        char c = w->text[w->i];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        w->i++;
    }
}

static bool
s_emit(s_walk_t *w, s_tok_t kind, size_t start, size_t end)
{
    if (!w->visit(w, kind, start, end))
        w->stopped = true;
    return !w->stopped;
}

//  w->i is at '"': move past the closing quote.
static bool
s_skip_string(s_walk_t *w)
{
    size_t i = w->i + 1;
    while (i < w->len) {
        char c = w->text[i];
        if (c == '"') {
            w->i = i + 1;
            return true;
        }
        i += c == '\\' ? 2 : 1;
    }
    return false;
}

//  Append a segment to the path, cut at the buffer's end. Returns the old
//  length, to restore.
static size_t
s_push(s_walk_t *w, const char *seg, size_t seglen, bool dot)
{
    size_t old = w->plen;
    size_t room = sizeof w->path - 1 - w->plen;
    if (dot && w->plen > 0 && room > 0) {
        w->path[w->plen++] = '.';
        room--;
    }
    size_t n = seglen < room ? seglen : room;
    memcpy(w->path + w->plen, seg, n);
    w->plen += n;
    w->path[w->plen] = '\0';
    return old;
}

static void
s_pop(s_walk_t *w, size_t old)
{
    w->plen = old;
    w->path[old] = '\0';
}

//  Push the key token text[start, end) (with its quotes), decoded.
static size_t
s_push_key(s_walk_t *w, size_t start, size_t end)
{
    const char *raw = w->text + start + 1;
    size_t rawlen = end - start - 2;
    if (memchr(raw, '\\', rawlen) == NULL)
        return s_push(w, raw, rawlen, true);
    json_error_t je;
    json_t *s = json_loadb(w->text + start, end - start, JSON_DECODE_ANY, &je);
    size_t old = s && json_is_string(s)
                     ? s_push(w, json_string_value(s), json_string_length(s), true)
                     : s_push(w, raw, rawlen, true);
    json_decref(s);
    return old;
}

static bool s_value(s_walk_t *w);

static bool
s_close(s_walk_t *w)
{
    w->i++;
    w->depth--;
    return s_emit(w, S_TOK_CLOSE, w->i - 1, w->i);
}

static bool
s_object(s_walk_t *w)
{
    if (++w->depth > S_WALK_DEPTH || !s_emit(w, S_TOK_OPEN, w->i, w->i + 1))
        return false;
    w->i++;
    s_ws(w);
    if (w->i < w->len && w->text[w->i] == '}')
        return s_close(w);
    for (;;) {
        s_ws(w);
        if (w->i >= w->len || w->text[w->i] != '"')
            return false;
        size_t start = w->i;
        if (!s_skip_string(w))
            return false;
        size_t old = s_push_key(w, start, w->i);
        bool ok = s_emit(w, S_TOK_KEY, start, w->i);
        if (ok) {
            s_ws(w);
            ok = w->i < w->len && w->text[w->i] == ':';
        }
        if (ok) {
            w->i++;
            ok = s_value(w);
        }
        s_pop(w, old);
        if (!ok)
            return false;
        s_ws(w);
        if (w->i >= w->len)
            return false;
        if (w->text[w->i] == '}')
            return s_close(w);
        if (w->text[w->i] != ',')
            return false;
        w->i++;
    }
}

static bool
s_array(s_walk_t *w)
{
    if (++w->depth > S_WALK_DEPTH || !s_emit(w, S_TOK_OPEN, w->i, w->i + 1))
        return false;
    w->i++;
    s_ws(w);
    if (w->i < w->len && w->text[w->i] == ']')
        return s_close(w);
    for (size_t index = 0;; index++) {
        char seg[32];
        int n = snprintf(seg, sizeof seg, "[%zu]", index);
        size_t old = s_push(w, seg, (size_t) n, false);
        bool ok = s_value(w);
        s_pop(w, old);
        if (!ok)
            return false;
        s_ws(w);
        if (w->i >= w->len)
            return false;
        if (w->text[w->i] == ']')
            return s_close(w);
        if (w->text[w->i] != ',')
            return false;
        w->i++;
    }
}

static bool
s_value(s_walk_t *w)
{
    s_ws(w);
    if (w->i >= w->len)
        return false;
    size_t start = w->i;
    char c = w->text[start];
    if (c == '{')
        return s_object(w);
    if (c == '[')
        return s_array(w);
    if (c == '"') {
        if (!s_skip_string(w))
            return false;
        return s_emit(w, S_TOK_VALUE, start, w->i);
    }
    // a number or a literal: its characters, whatever they are worth
    while (w->i < w->len) {
        c = w->text[w->i];
        bool word = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
                    || c == '+' || c == '-' || c == '.';
        if (!word)
            break;
        w->i++;
    }
    return w->i > start && s_emit(w, S_TOK_VALUE, start, w->i);
}

static void
s_walk(s_walk_t *w, const char *text, size_t len, s_visit_fn *visit)
{
    w->text = text;
    w->len = len;
    w->visit = visit;
    (void) s_value(w);
}

// --------------------------------------------------------------------------
// Visitors

//  The start of the last token before w->target.
static bool
s_visit_last_before(s_walk_t *w, s_tok_t kind, size_t start, size_t end)
{
    if (start >= w->target)
        return false;
    w->found = start;
    w->found_end = end;
    w->found_kind = kind;
    w->hit = true;
    return true;
}

//  The path of the token starting at w->target.
static bool
s_visit_path_of(s_walk_t *w, s_tok_t kind, size_t start, size_t end)
{
    (void) kind;
    (void) end;
    if (start != w->target)
        return start < w->target;
    proto_strlcpy(w->out, w->path, w->out_cap);
    w->hit = true;
    return false;
}

//  The first token of w->want (or the end of that container).
static bool
s_visit_position(s_walk_t *w, s_tok_t kind, size_t start, size_t end)
{
    (void) end;
    if ((kind == S_TOK_CLOSE) != w->want_close || strcmp(w->path, w->want) != 0)
        return true;
    w->found = start;
    w->hit = true;
    return false;
}

int
api_json_path_at(const char *text, size_t len, size_t pos, char *out, size_t cap)
{
    if (cap > 0)
        out[0] = '\0';
    s_walk_t w = {.target = pos};
    s_walk(&w, text, len, s_visit_last_before);
    if (!w.hit)
        return -1;
    s_walk_t p = {.target = w.found, .out = out, .out_cap = cap};
    s_walk(&p, text, len, s_visit_path_of);
    return p.hit ? 0 : -1;
}

//  The path without its last segment ("a.b[2]" -> "a.b", "a" -> "").
//  Returns false for the document itself.
static bool
s_parent(char *path)
{
    size_t len = strlen(path);
    if (len == 0)
        return false;
    if (path[len - 1] == ']') {
        char *open = strrchr(path, '[');
        if (open) {
            *open = '\0';
            return true;
        }
    }
    char *dot = strrchr(path, '.');
    if (dot)
        *dot = '\0';
    else
        path[0] = '\0';
    return true;
}

size_t
api_json_position(const char *text, size_t len, const char *path)
{
    char cur[S_PATH_MAX];
    proto_strlcpy(cur, path, sizeof cur);
    bool want_close = false;
    for (;;) {
        s_walk_t w = {.want = cur, .want_close = want_close};
        s_walk(&w, text, len, s_visit_position);
        if (w.hit)
            return w.found;
        if (!s_parent(cur))
            return len;
        want_close = true;
    }
}

// --------------------------------------------------------------------------
// Parsing

//  True if path is field or inside it.
static bool
s_within(const char *path, const char *field)
{
    size_t n = strlen(field);
    return strncmp(path, field, n) == 0 && (path[n] == '\0' || path[n] == '.' || path[n] == '[');
}

static bool
s_blank(const char *text, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (text[i] != ' ' && text[i] != '\t' && text[i] != '\n' && text[i] != '\r')
            return false;
    return true;
}

json_t *
api_json_load_checked(
    const char *text, size_t len, api_json_check_fn *check, void *arg, api_error_t *err)
{
    // A duplicate key or a number too big stops jansson; the first one is
    // kept (first) and parsing goes on without it, so that a bad field
    // written before it can still be found and reported instead.
    api_error_t first = {0};
    size_t first_pos = 0;
    bool have_first = false;
    char *work = NULL; // a copy of text, made when a number must be blanked
    const char *doc = text;
    size_t flags = JSON_REJECT_DUPLICATES | JSON_DECODE_ANY;
    json_t *root = NULL;
    for (int round = 0; root == NULL; round++) {
        json_error_t je;
        root = json_loadb(doc, len, flags, &je);
        if (root)
            break;
        enum json_error_code code = json_error_code(&je);
        bool dup = code == json_error_duplicate_key;
        bool big = code == json_error_numeric_overflow;
        size_t pos = (size_t) je.position;
        char path[API_FIELD_MAX + 1];
        s_walk_t w = {.target = pos};
        if ((dup || big) && round < S_ROUNDS)
            s_walk(&w, doc, len, s_visit_last_before);
        if (w.hit && w.found_kind == (dup ? S_TOK_KEY : S_TOK_VALUE)
            && api_json_path_at(doc, len, pos, path, sizeof path) == 0) {
            if (!have_first) {
                have_first = true;
                if (dup) {
                    api_error_set(&first, "duplicate_key", path, "duplicate key: %s is given twice",
                                  path);
                    first_pos = w.found;
                } else {
                    api_error_set(&first, "out_of_range", path,
                                  "%s: number too large (beyond a 64-bit integer or a double)",
                                  path);
                    first_pos = api_json_position(doc, len, path);
                }
            }
            if (dup) {
                flags = JSON_DECODE_ANY;
                continue;
            }
            // blank the number in place ("0" and spaces) so offsets stay put
            if (work == NULL) {
                work = proto_xmalloc(len);
                memcpy(work, text, len);
                doc = work;
            }
            work[w.found] = '0';
            memset(work + w.found + 1, ' ', w.found_end - w.found - 1);
            continue;
        }
        free(work);
        if ((dup || big) && have_first)
            *err = first; // only after S_ROUNDS of them
        else if (s_blank(text, len))
            api_error_set(err, "invalid_json", NULL, "the body is empty: a JSON object is needed");
        else {
            // jansson quotes the raw bytes near the error, which may be a
            // piece of a UTF-8 character: keep printable ASCII only
            char near[sizeof je.text];
            size_t n = 0;
            for (const char *c = je.text; *c && n + 1 < sizeof near; c++)
                near[n++] = (*c >= 0x20 && *c < 0x7f) ? *c : '?';
            near[n] = '\0';
            api_error_set(err, "invalid_json", NULL, "invalid JSON at line %d, column %d: %s",
                          je.line, je.column, near);
        }
        return NULL;
    }
    api_error_t checked = {0};
    json_t *out = check(root, arg, &checked);
    json_decref(root);
    if (have_first) {
        bool earlier = out == NULL && !s_within(checked.field, first.field)
                       && api_json_position(doc, len, checked.field) < first_pos;
        *err = earlier ? checked : first;
        json_decref(out);
        out = NULL;
    } else if (out == NULL) {
        *err = checked;
    }
    free(work);
    return out;
}
