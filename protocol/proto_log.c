/*  proto_log - structured, non-blocking logging for every actor.

    Builds each event in a stack buffer of PROTO_LOG_LINE_MAX bytes (JSON or
    pretty), redacting secrets as it goes, and hands it to the kernel with one
    write or send. The output is made non-blocking without touching the
    caller's file description: a pipe or terminal is reopened through
    /proc/self/fd, a socket is written with MSG_DONTWAIT. A line that would
    block is dropped and counted, so a slow reader of stdout never stalls the
    event loop. Because a line never exceeds PIPE_BUF (4096 on Linux), one
    write on a pipe is atomic: lines from several processes never interleave.

    Held output (proto_log_hold): an actor's loop keeps the info and debug
    lines of one loop iteration in a buffer and writes them with one write
    before it waits again (proto_log_flush from an ev_prepare watcher), the
    way nginx's `access_log ... buffer=` does but bounded by one iteration
    rather than a timer. A warn or error line is written at once, after what
    was held before it, so the order is kept. Pipes get pieces of at most
    PIPE_BUF bytes that end at line ends, so they stay atomic; what the kernel
    does not take now stays held for the next flush, and only a line that
    finds the buffer full is dropped (and counted).
*/
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "proto_log.h"
#include "proto_util.h"

//  Longest actor or instance name kept by proto_log_setup (longer ones are cut).
#define S_NAME_MAX 128

//  Line endings: normal, and after fields were left out or cut.
#define S_JSON_TAIL             "}\n"
#define S_JSON_TRUNCATED_TAIL   ",\"truncated\":true}\n"
#define S_PRETTY_TAIL           "\n"
#define S_PRETTY_TRUNCATED_TAIL " truncated=true\n"

#define S_REDACTED "[REDACTED]"

//  Bytes of lines held between flushes (proto_log_hold).
#define S_HELD_MAX (64 * 1024)

//  How lines reach the output fd.
typedef enum {
    S_OUT_WRITE = 0, // write(2): regular file, reopened pipe or terminal, fallback
    S_OUT_SEND = 1,  // send(2) with MSG_DONTWAIT | MSG_NOSIGNAL: socket
} s_out_mode_t;

//  Result of appending one item (the msg or a field) to a line.
typedef enum {
    S_PUT_NONE = -1, // nothing fits; the line is as it was
    S_PUT_CUT = 0,   // written with its string value shortened
    S_PUT_WHOLE = 1, // written whole (or skipped on purpose)
} s_put_result_t;

//  A line being built.
typedef struct {
    char data[PROTO_LOG_LINE_MAX + 1]; // the bytes of the line (no NUL needed)
    size_t len;                        // bytes used
    size_t limit;                      // bytes that may be used at this stage
} s_line_t;

//  A field value reduced to text, after redaction.
typedef struct {
    const char *text; // the value's text (not NUL-terminated)
    size_t len;       // its length
    bool quoted;      // a string (quoted in JSON) rather than a number or literal
} s_value_t;

//  The log settings: the one documented exception to "no mutable file-scope
//  state". main() sets them once, through proto_log_setup, before its loop.
proto_log_level_t proto_log_level_current = PROTO_LOG_INFO;
static char s_actor[S_NAME_MAX];                     // actor name, e.g. "router"
static char s_instance[S_NAME_MAX];                  // instance name, e.g. "h-1"
static proto_log_format_t s_format = PROTO_LOG_JSON; // JSON or pretty lines
static int s_out_fd = 1;                             // where lines are written
static bool s_out_reopened = false;                  // s_out_fd is ours to close
static s_out_mode_t s_out_mode = S_OUT_WRITE;        // write or send
static bool s_out_torn = false;                      // the last line was written in part
static uint64_t s_dropped = 0;                       // lines dropped (would block)
static bool s_out_pipe = false;                      // the output is a pipe (PIPE_BUF pieces)
static bool s_hold = false;                          // lines are held until proto_log_flush
static char s_held[S_HELD_MAX];                      // the held lines
static size_t s_held_len = 0;                        // bytes of s_held in use

static const char *const s_level_names[] = {"error", "warn", "info", "debug"};
static const char *const s_level_labels[] = {"ERROR", "WARN ", "INFO ", "DEBUG"};

//  --------------------------------------------------------------------------
//  Names and redaction

//  ASCII lower case without the locale machinery of tolower(3), which
//  costs a call per byte of every field name of every log line.
static inline unsigned char
s_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char) (c | 0x20) : c;
}

static bool
s_span_equals(const char *s, size_t len, const char *word)
{
    size_t wlen = strlen(word);
    if (len != wlen) {
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (s_lower((unsigned char) s[i]) != word[i]) {
            return false;
        }
    }
    return true;
}

//  True if word (lower case) starts at s[i] (compared case-insensitively).
static bool
s_word_at(const char *s, size_t len, size_t i, const char *word, size_t wlen)
{
    if (i + wlen > len) {
        return false;
    }
    for (size_t k = 1; k < wlen; k++) {
        if (s_lower((unsigned char) s[i + k]) != word[k]) {
            return false;
        }
    }
    return true;
}

//  One pass over the name (this runs for every field of every log line):
//  each position is compared only with the words that start with its letter.
static bool
s_is_secret_span(const char *name, size_t len)
{
    if ((len == 13 && s_span_equals(name, len, "authorization"))
        || (len == 6 && s_span_equals(name, len, "cookie"))
        || (len == 10 && s_span_equals(name, len, "set-cookie"))) {
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        switch (s_lower((unsigned char) name[i])) {
            case 'p':
                if (s_word_at(name, len, i, PROTO_LIT("password"))) {
                    return true;
                }
                break;
            case 't':
                if (s_word_at(name, len, i, PROTO_LIT("token"))) {
                    return true;
                }
                break;
            case 's':
                if (s_word_at(name, len, i, PROTO_LIT("secret"))) {
                    return true;
                }
                break;
            case 'k':
                if (s_word_at(name, len, i, PROTO_LIT("key"))) {
                    return true;
                }
                break;
            default:
                break;
        }
    }
    return false;
}

//  A query parameter name may be percent-encoded ("api%5Fkey"), so it is
//  checked both as written and decoded.
static bool
s_is_secret_param(const char *name, size_t len)
{
    if (s_is_secret_span(name, len)) {
        return true;
    }
    if (!memchr(name, '%', len) && !memchr(name, '+', len)) {
        return false;
    }
    char decoded[256];
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (n == sizeof(decoded)) {
            return true; // too long to check; a name like this is suspect anyway
        }
        char c = name[i];
        if (c == '%' && i + 2 < len && proto_hex_digit(name[i + 1]) >= 0
            && proto_hex_digit(name[i + 2]) >= 0) {
            c = (char) (proto_hex_digit(name[i + 1]) * 16 + proto_hex_digit(name[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        decoded[n++] = c;
    }
    return s_is_secret_span(decoded, n);
}

bool
proto_log_is_secret_key(const char *key)
{
    if (!key) {
        return false;
    }
    return s_is_secret_span(key, strlen(key));
}

//  Appends n bytes to out, keeping room for the NUL; what does not fit is lost.
static void
s_copy_span(char *out, size_t cap, size_t *o, const char *s, size_t n)
{
    size_t room = cap - 1 - *o;
    if (n > room) {
        n = room;
    }
    memcpy(out + *o, s, n);
    *o += n;
}

size_t
proto_log_redact_query(const char *path, char *out, size_t cap)
{
    if (!out || cap == 0) {
        return 0;
    }
    size_t o = 0;
    if (!path) {
        out[0] = '\0';
        return 0;
    }
    const char *query = strchr(path, '?');
    if (!query) {
        s_copy_span(out, cap, &o, path, strlen(path));
        out[o] = '\0';
        return o;
    }
    s_copy_span(out, cap, &o, path, (size_t) (query - path) + 1);
    //  The decision to redact is made on the input, so a value is either
    //  copied or replaced, never partly copied because out ran short.
    const char *param = query + 1;
    while (*param) {
        const char *end = strchr(param, '&');
        if (!end) {
            end = param + strlen(param);
        }
        const char *equals = memchr(param, '=', (size_t) (end - param));
        if (equals && s_is_secret_param(param, (size_t) (equals - param))) {
            s_copy_span(out, cap, &o, param, (size_t) (equals - param) + 1);
            s_copy_span(out, cap, &o, S_REDACTED, strlen(S_REDACTED));
        } else {
            s_copy_span(out, cap, &o, param, (size_t) (end - param));
        }
        if (*end != '&') {
            break;
        }
        s_copy_span(out, cap, &o, "&", 1);
        param = end + 1;
    }
    out[o] = '\0';
    return o;
}

//  --------------------------------------------------------------------------
//  JSON escaping

//  Length of the well-formed UTF-8 sequence at p (avail bytes left), or 0 if
//  the sequence is invalid (overlong, surrogate, above U+10FFFF, cut short).
static size_t
s_utf8_length(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    unsigned char low = 0x80;
    unsigned char high = 0xBF;
    size_t n;
    if (c < 0x80) {
        return 1;
    } else if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        if (c == 0xE0) {
            low = 0xA0;
        } else if (c == 0xED) {
            high = 0x9F;
        }
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        if (c == 0xF0) {
            low = 0x90;
        } else if (c == 0xF4) {
            high = 0x8F;
        }
    } else {
        return 0;
    }
    if (avail < n || p[1] < low || p[1] > high) {
        return 0;
    }
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF) {
            return 0;
        }
    }
    return n;
}

//  Bytes a JSON string holds as they are: printable ASCII but '"' and '\\'.
static const bool s_plain[256] = {
    [0x20] = 1,
    [0x21] = 1,
    [0x23 ... 0x5b] = 1,
    [0x5d ... 0x7e] = 1,
};

//  Writes the escaped form of s (len bytes), without quotes, to out (room
//  bytes, no NUL). Only whole units are written (a UTF-8 sequence or an
//  escape), so a cut never leaves half an escape. Sets *used to the input
//  bytes consumed and returns the bytes written.
static size_t
s_escape(char *out, size_t room, const char *s, size_t len, size_t *used)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    size_t o = 0;
    while (i < len) {
        // a run of bytes that need no escape (most of a line) is copied at
        // once: every byte is a whole unit, so the run may be cut anywhere
        size_t run = i;
        while (run < len && s_plain[p[run]])
            run++;
        if (run > i) {
            size_t n = run - i < room - o ? run - i : room - o;
            memcpy(out + o, s + i, n);
            o += n;
            i += n;
            if (i < run)
                break; // out of room
            continue;
        }
        unsigned char c = p[i];
        char unit[6];
        const char *src = unit;
        size_t in = 1;
        size_t n = 2;
        unit[0] = '\\';
        if (c == '"' || c == '\\') {
            unit[1] = (char) c;
        } else if (c == '\n') {
            unit[1] = 'n';
        } else if (c == '\r') {
            unit[1] = 'r';
        } else if (c == '\t') {
            unit[1] = 't';
        } else if (c >= 0x20 && c < 0x7f) {
            src = s + i;
            n = 1;
        } else if (c >= 0x80 && (in = s_utf8_length(p + i, len - i)) > 0) {
            src = s + i;
            n = in;
        } else {
            //  Control byte, DEL, or a byte that is not valid UTF-8.
            in = 1;
            unit[1] = 'u';
            unit[2] = '0';
            unit[3] = '0';
            unit[4] = hex[c >> 4];
            unit[5] = hex[c & 0x0f];
            n = 6;
        }
        if (n > room - o) {
            break;
        }
        memcpy(out + o, src, n);
        o += n;
        i += in;
    }
    *used = i;
    return o;
}

size_t
proto_log_json_string(char *out, size_t cap, const char *s, size_t len)
{
    if (!out || cap == 0) {
        return 0;
    }
    size_t start = strnlen(out, cap);
    if (start == cap) {
        return 0; // not a string: there is nowhere to append
    }
    if (!s) {
        len = 0;
    }
    size_t room = cap - start - 1; // keep one byte for the NUL
    if (room < 2) {
        return 0;
    }
    size_t used = 0;
    size_t n = len ? s_escape(out + start + 1, room - 2, s, len, &used) : 0;
    if (used < len) {
        out[start] = '\0';
        return 0;
    }
    out[start] = '"';
    out[start + 1 + n] = '"';
    out[start + 2 + n] = '\0';
    return n + 2;
}

//  --------------------------------------------------------------------------
//  Building a line

static bool
s_put(s_line_t *line, const char *data, size_t n)
{
    if (n > line->limit - line->len) {
        return false;
    }
    memcpy(line->data + line->len, data, n);
    line->len += n;
    return true;
}

static bool
s_put_cstr(s_line_t *line, const char *s)
{
    return s_put(line, s, strlen(s));
}

//  Appends s escaped (no quotes). If it does not fit: with cut, what fits is
//  kept; without, the line is left as it was. Returns true if written whole.
static bool
s_put_escaped(s_line_t *line, const char *s, size_t len, bool cut)
{
    size_t used = 0;
    size_t n = s_escape(line->data + line->len, line->limit - line->len, s, len, &used);
    if (used == len || cut) {
        line->len += n;
    }
    return used == len;
}

//  Appends s as a quoted JSON string. If it does not fit: with cut, the
//  string is shortened (both quotes always written); without, or if not even
//  the quotes fit, the line is left as it was.
static s_put_result_t
s_put_quoted(s_line_t *line, const char *s, size_t len, bool cut)
{
    size_t start = line->len;
    if (line->limit - line->len < 2) {
        return S_PUT_NONE;
    }
    line->limit--; // room for the closing quote
    s_put(line, "\"", 1);
    bool whole = s_put_escaped(line, s, len, cut);
    line->limit++;
    if (!whole && !cut) {
        line->len = start;
        return S_PUT_NONE;
    }
    s_put(line, "\"", 1);
    return whole ? S_PUT_WHOLE : S_PUT_CUT;
}

//  Decimal digits of v at the end of buf[0..cap); returns where they start.
static char *
s_u64_text(uint64_t v, char *buf, size_t cap)
{
    char *p = buf + cap;
    *--p = '\0';
    do {
        *--p = (char) ('0' + v % 10);
        v /= 10;
    } while (v);
    return p;
}

static void
s_format_int(int64_t v, char *buf, size_t cap)
{
    char tmp[24];
    uint64_t u = v < 0 ? (uint64_t) 0 - (uint64_t) v : (uint64_t) v;
    char *p = s_u64_text(u, tmp, sizeof(tmp));
    if (v < 0)
        *--p = '-';
    size_t len = strlen(p);
    if (len >= cap)
        len = cap - 1;
    memcpy(buf, p, len);
    buf[len] = '\0';
}

static void
s_format_double(double d, char *buf, size_t cap)
{
    //  A value with at most three decimals below a billion (durations in
    //  milliseconds, most figures) is written by hand: the same text as
    //  %.15g, without printf.
    double a = fabs(d);
    if (a < 1e9 && cap >= 24) {
        uint64_t milli = (uint64_t) llround(a * 1000.0);
        if ((double) milli / 1000.0 == a) {
            char tmp[24];
            char *p = s_u64_text(milli / 1000, tmp, sizeof(tmp));
            size_t n = 0;
            if (signbit(d))
                buf[n++] = '-';
            size_t len = strlen(p);
            memcpy(buf + n, p, len);
            n += len;
            unsigned frac = (unsigned) (milli % 1000);
            if (frac) {
                buf[n++] = '.';
                char f[3] = {(char) ('0' + frac / 100), (char) ('0' + frac / 10 % 10),
                             (char) ('0' + frac % 10)};
                size_t fl = f[2] != '0' ? 3 : f[1] != '0' ? 2 : 1;
                memcpy(buf + n, f, fl);
                n += fl;
            }
            buf[n] = '\0';
            return;
        }
    }
    //  Shortest of %.15g and %.17g that reads back as the same double.
    snprintf(buf, cap, "%.15g", d);
    if (strtod(buf, NULL) != d) {
        snprintf(buf, cap, "%.17g", d);
    }
}

//  Reduces a field to text: redacted, or with its query redacted, or the
//  number printed into scratch (cap bytes).
static s_value_t
s_field_value(const proto_log_field_t *field, char *scratch, size_t cap)
{
    s_value_t value = {.text = scratch, .len = 0, .quoted = false};
    if (proto_log_is_secret_key(field->key)) {
        value.text = S_REDACTED;
        value.len = strlen(S_REDACTED);
        value.quoted = true;
        return value;
    }
    switch (field->type) {
        case PROTO_LF_STR:
            if (!field->s) {
                value.text = "null";
                break;
            }
            value.quoted = true;
            value.text = field->s;
            size_t key_len = strlen(field->key);
            if (s_span_equals(field->key, key_len, "path")
                || s_span_equals(field->key, key_len, "url")
                || s_span_equals(field->key, key_len, "uri")) {
                value.len = proto_log_redact_query(field->s, scratch, cap);
                value.text = scratch;
                return value;
            }
            break;
        case PROTO_LF_INT:
            s_format_int(field->i, scratch, cap);
            break;
        case PROTO_LF_UINT:
            value.text = s_u64_text(field->u, scratch, cap);
            break;
        case PROTO_LF_DOUBLE:
            if (isfinite(field->d)) {
                s_format_double(field->d, scratch, cap);
            } else if (s_format == PROTO_LOG_PRETTY) {
                value.text = isnan(field->d) ? "nan" : field->d > 0 ? "inf" : "-inf";
            } else {
                value.text = "null"; // JSON has no NaN or infinity
            }
            break;
        case PROTO_LF_BOOL:
            value.text = field->b ? "true" : "false";
            break;
        case PROTO_LF_NONE:
        default:
            value.text = "null";
            break;
    }
    value.len = strlen(value.text);
    return value;
}

//  In pretty lines a string is written bare when that is unambiguous.
static bool
s_pretty_needs_quotes(const char *s, size_t len)
{
    if (len == 0) {
        return true;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c <= 0x20 || c == 0x7f || c == '"' || c == '\\' || c == '=') {
            return true;
        }
    }
    return false;
}

//  Appends one field (',"key":value' or ' key=value'). With cut, a string
//  value may be shortened so that the field fits; a number never is.
static s_put_result_t
s_put_field(s_line_t *line, const proto_log_field_t *field, char *scratch, size_t cap, bool cut)
{
    if (!field->key || field->type == PROTO_LF_NONE) {
        return S_PUT_WHOLE;
    }
    size_t start = line->len;
    s_value_t value = s_field_value(field, scratch, cap);
    size_t key_len = strlen(field->key);
    bool json = s_format == PROTO_LOG_JSON;
    bool ok = json ? s_put(line, ",", 1)
                         && s_put_quoted(line, field->key, key_len, false) == S_PUT_WHOLE
                         && s_put(line, ":", 1)
                   : s_put(line, " ", 1) && s_put_escaped(line, field->key, key_len, false)
                         && s_put(line, "=", 1);
    if (!ok) {
        line->len = start;
        return S_PUT_NONE;
    }
    size_t value_start = line->len;
    s_put_result_t result;
    if (value.quoted && (json || s_pretty_needs_quotes(value.text, value.len))) {
        result = s_put_quoted(line, value.text, value.len, cut);
    } else if (value.quoted) {
        result = s_put_escaped(line, value.text, value.len, cut) ? S_PUT_WHOLE : S_PUT_CUT;
    } else {
        result = s_put(line, value.text, value.len) ? S_PUT_WHOLE : S_PUT_NONE;
    }
    //  A cut that kept nothing of the value is not worth the key.
    bool empty_cut = result == S_PUT_CUT && line->len - value_start <= (json ? 2u : 0u);
    if (result == S_PUT_NONE || (result == S_PUT_CUT && (!cut || empty_cut))) {
        line->len = start;
        return S_PUT_NONE;
    }
    return result;
}

//  Appends the message (',"msg":"..."' or the bare text); NULL is written
//  as an empty message, so that msg is always a string.
static s_put_result_t
s_put_msg(s_line_t *line, const char *msg, bool cut)
{
    size_t start = line->len;
    const char *text = msg ? msg : "";
    size_t len = strlen(text);
    if (s_format == PROTO_LOG_PRETTY) {
        bool whole = s_put_escaped(line, text, len, cut);
        return whole ? S_PUT_WHOLE : cut ? S_PUT_CUT : S_PUT_NONE;
    }
    if (!s_put_cstr(line, ",\"msg\":")) {
        return S_PUT_NONE;
    }
    s_put_result_t result = s_put_quoted(line, text, len, cut);
    if (result == S_PUT_NONE) {
        line->len = start;
    }
    return result;
}

//  The part of a line's prefix that changes once a second ("{\"ts\":\"
//  2026-12-06T03:26:06." or "03:26:06."), formatted when the second changes:
//  a line costs no gmtime_r and no printf.
static time_t s_ts_second = -1;        // the second s_ts_text is for
static char s_ts_text[48];             // its text, up to the milliseconds
static size_t s_ts_len;                // bytes
static proto_log_format_t s_ts_format; // the format it was made for

static void
s_put_digits(s_line_t *line, unsigned v, int width)
{
    char d[10];
    for (int i = width - 1; i >= 0; i--) {
        d[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    s_put(line, d, (size_t) width);
}

//  Writes the timestamp, level, actor and instance. These are bounded
//  (S_NAME_MAX), so they always fit.
static void
s_put_prefix(s_line_t *line, proto_log_level_t level)
{
    struct timespec now;
    if (clock_gettime(CLOCK_REALTIME, &now) != 0) {
        now.tv_sec = 0;
        now.tv_nsec = 0;
    }
    if (now.tv_sec != s_ts_second || s_ts_format != s_format) {
        struct tm tm;
        gmtime_r(&now.tv_sec, &tm);
        int n = s_format == PROTO_LOG_JSON
                    ? snprintf(s_ts_text, sizeof(s_ts_text),
                               "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.", tm.tm_year + 1900,
                               tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec)
                    : snprintf(s_ts_text, sizeof(s_ts_text), "%02d:%02d:%02d.", tm.tm_hour,
                               tm.tm_min, tm.tm_sec);
        s_ts_len = n > 0 && (size_t) n < sizeof(s_ts_text) ? (size_t) n : 0;
        s_ts_second = now.tv_sec;
        s_ts_format = s_format;
    }
    s_put(line, s_ts_text, s_ts_len);
    s_put_digits(line, (unsigned) (now.tv_nsec / 1000000), 3);
    if (s_format == PROTO_LOG_JSON) {
        s_put_cstr(line, "Z\",\"level\":\"");
        s_put_cstr(line, s_level_names[level]);
        s_put_cstr(line, "\",\"actor\":");
        s_put_quoted(line, s_actor, strlen(s_actor), true);
        s_put_cstr(line, ",\"instance\":");
        s_put_quoted(line, s_instance, strlen(s_instance), true);
    } else {
        s_put_cstr(line, " ");
        s_put_cstr(line, s_level_labels[level]);
        s_put_cstr(line, " ");
        s_put_escaped(line, s_actor, strlen(s_actor), true);
        s_put_cstr(line, " ");
    }
}

//  One write or send; EINTR is retried once. Nothing is ever waited for.
//  Returns the bytes written, or -1 (errno set).
static ssize_t
s_write_once(const char *data, size_t len)
{
    ssize_t n = -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        n = s_out_mode == S_OUT_SEND ? send(s_out_fd, data, len, MSG_DONTWAIT | MSG_NOSIGNAL)
                                     : write(s_out_fd, data, len);
        if (n >= 0 || errno != EINTR) {
            break;
        }
    }
    return n;
}

static void
s_output(const char *data, size_t len)
{
    //  After a partial write (a stream socket, a full disk, a terminal) the
    //  line's rest is lost; end the fragment before writing anything else so
    //  that the next line is not glued to it. Pipes never get here: a write of
    //  at most PIPE_BUF bytes on a pipe is all or nothing.
    if (s_out_torn) {
        if (s_write_once("\n", 1) != 1) {
            s_dropped++;
            return;
        }
        s_out_torn = false;
    }
    ssize_t n = s_write_once(data, len);
    if (n > 0) {
        //  Written, perhaps only in part: what went out cannot be taken back,
        //  and the line is not counted as dropped.
        s_out_torn = (size_t) n < len;
        return;
    }
    if (n == 0 || errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
        s_dropped++;
    }
    //  Other errors (EPIPE, EBADF, ENOSPC) have nowhere to be reported.
}

static uint64_t
s_count_lines(const char *data, size_t len)
{
    uint64_t n = 0;
    for (const char *p = data; (p = memchr(p, '\n', (size_t) (data + len - p))) != NULL; p++) {
        n++;
    }
    return n;
}

//  Writes what is held: on a pipe in pieces of at most PIPE_BUF bytes that
//  end at a line end. What would block stays held; after an error (a full
//  disk, a closed reader) the rest is dropped and counted.
static void
s_flush_held(void)
{
    size_t off = 0;
    while (off < s_held_len) {
        size_t n = s_held_len - off;
        if (s_out_pipe && n > PIPE_BUF) {
            const char *nl = memrchr(s_held + off, '\n', PIPE_BUF);
            n = nl ? (size_t) (nl - (s_held + off)) + 1 : PIPE_BUF;
        }
        ssize_t written = s_write_once(s_held + off, n);
        if (written > 0) {
            off += (size_t) written; // a regular file or terminal may take part of it
            continue;
        }
        if (written < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
            break;
        }
        s_dropped += s_count_lines(s_held + off, s_held_len - off);
        off = s_held_len;
    }
    memmove(s_held, s_held + off, s_held_len - off);
    s_held_len -= off;
}

static void
s_hold_line(proto_log_level_t level, const char *data, size_t len)
{
    if (s_held_len + len > sizeof(s_held)) {
        s_flush_held();
    }
    if (s_held_len + len > sizeof(s_held)) {
        s_dropped++;
    } else {
        memcpy(s_held + s_held_len, data, len);
        s_held_len += len;
    }
    if (level <= PROTO_LOG_WARN) {
        s_flush_held();
    }
}

//  --------------------------------------------------------------------------
//  Public API

void
proto_log_setup(const char *actor,
                const char *instance,
                proto_log_level_t level,
                proto_log_format_t format,
                int fd)
{
    proto_log_shutdown();
    snprintf(s_actor, sizeof(s_actor), "%s", actor ? actor : "");
    snprintf(s_instance, sizeof(s_instance), "%s", instance ? instance : "");
    proto_log_level_current = level;
    s_format = format == PROTO_LOG_PRETTY ? PROTO_LOG_PRETTY : PROTO_LOG_JSON;
    s_out_fd = fd;
    s_out_mode = S_OUT_WRITE;
    s_out_pipe = false;

    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        return;
    }
    if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) {
        //  A new open file description of the same pipe or terminal, so that
        //  O_NONBLOCK does not leak into the fd the caller (and its parent and
        //  children) share. O_NOCTTY: opening a terminal must never make it
        //  our controlling terminal.
        char proc_path[64];
        snprintf(proc_path, sizeof(proc_path), "/proc/self/fd/%d", fd);
        int reopened = open(proc_path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
        if (reopened >= 0) {
            s_out_fd = reopened;
            s_out_reopened = true;
        }
        s_out_pipe = S_ISFIFO(st.st_mode);
    } else if (S_ISSOCK(st.st_mode)) {
        s_out_mode = S_OUT_SEND;
    }
}

void
proto_log_shutdown(void)
{
    proto_log_hold(false);
    if (s_out_reopened) {
        close(s_out_fd);
        s_out_reopened = false;
    }
    s_out_fd = 1;
    s_out_mode = S_OUT_WRITE;
    s_out_torn = false;
}

void
proto_log_emit(proto_log_level_t level,
               const char *msg,
               const proto_log_field_t *fields,
               size_t nfields)
{
    if ((unsigned) level > PROTO_LOG_DEBUG || level > proto_log_level_current) {
        return;
    }
    int saved_errno = errno; // callers log, then return -1 with errno set
    bool json = s_format == PROTO_LOG_JSON;
    const char *tail = json ? S_JSON_TAIL : S_PRETTY_TAIL;
    const char *truncated_tail = json ? S_JSON_TRUNCATED_TAIL : S_PRETTY_TRUNCATED_TAIL;
    //  Items fill up to full_limit when everything fits; once something does
    //  not, the line ends at a field boundary (or a cut string) at most
    //  cut_limit long, so that the longer truncated tail still fits.
    const size_t full_limit = PROTO_LOG_LINE_MAX - strlen(tail);
    const size_t cut_limit = PROTO_LOG_LINE_MAX - strlen(truncated_tail);
    s_line_t line;
    char scratch[PROTO_LOG_LINE_MAX + 1];
    line.len = 0;
    line.limit = cut_limit;
    s_put_prefix(&line, level);

    //  safe is the last item boundary within cut_limit, and safe_next the
    //  item that starts there: the one to cut if the line has to end early.
    size_t safe = line.len;
    size_t safe_next = 0;
    bool truncated = false;
    for (size_t i = 0; i <= nfields; i++) {
        line.limit = full_limit;
        s_put_result_t result =
            i == 0 ? s_put_msg(&line, msg, false)
                   : s_put_field(&line, &fields[i - 1], scratch, sizeof(scratch), false);
        if (result == S_PUT_WHOLE) {
            if (line.len <= cut_limit) {
                safe = line.len;
                safe_next = i + 1;
            }
            continue;
        }
        truncated = true;
        line.len = safe;
        line.limit = cut_limit;
        if (safe_next == 0) {
            s_put_msg(&line, msg, true);
        } else {
            s_put_field(&line, &fields[safe_next - 1], scratch, sizeof(scratch), true);
        }
        break;
    }
    line.limit = PROTO_LOG_LINE_MAX;
    s_put_cstr(&line, truncated ? truncated_tail : tail);
    if (s_hold && s_out_mode == S_OUT_WRITE) {
        s_hold_line(level, line.data, line.len);
    } else {
        s_output(line.data, line.len);
    }
    errno = saved_errno;
}

void
proto_log_hold(bool on)
{
    int saved_errno = errno;
    s_flush_held();
    if (!on && s_held_len > 0) {
        s_dropped += s_count_lines(s_held, s_held_len); // could not be written now
        s_held_len = 0;
    }
    s_hold = on;
    errno = saved_errno;
}

void
proto_log_flush(void)
{
    if (s_held_len > 0) {
        int saved_errno = errno;
        s_flush_held();
        errno = saved_errno;
    }
}

uint64_t
proto_log_dropped(void)
{
    return s_dropped;
}

int
proto_log_level_parse(const char *text, proto_log_level_t *level)
{
    if (!text || !level) {
        return -1;
    }
    for (size_t i = 0; i < sizeof(s_level_names) / sizeof(s_level_names[0]); i++) {
        if (strcasecmp(text, s_level_names[i]) == 0) {
            *level = (proto_log_level_t) i;
            return 0;
        }
    }
    return -1;
}
