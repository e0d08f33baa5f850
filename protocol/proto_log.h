/*  proto_log - structured, non-blocking logging for every actor.

    One event per line on stdout: a JSON object (`ts`, `level`, `actor`,
    `instance`, `msg`, then the fields) or, with LOG_FORMAT=pretty, a readable
    line. Redaction of secrets happens here, once: a field whose key is
    `authorization`, `cookie` or `set-cookie`, or contains `password`, `token`,
    `secret` or `key` (case-insensitive) is written as "[REDACTED]"; a field
    named `path`, `url` or `uri` has the values of such query parameters
    redacted. A line never exceeds PROTO_LOG_LINE_MAX bytes (so one write on a
    pipe is atomic), and a write that would block is dropped and counted: the
    event loop never waits on a full stdout.

    The log settings are the one piece of process-wide mutable state: main()
    calls proto_log_setup() once before the loop starts.
*/
#ifndef PROTO_LOG_H
#define PROTO_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PROTO_LOG_LINE_MAX 4096

typedef enum {
    PROTO_LOG_ERROR = 0,
    PROTO_LOG_WARN = 1,
    PROTO_LOG_INFO = 2,
    PROTO_LOG_DEBUG = 3,
} proto_log_level_t;

typedef enum {
    PROTO_LOG_JSON = 0,
    PROTO_LOG_PRETTY = 1,
} proto_log_format_t;

typedef enum {
    PROTO_LF_NONE = 0, // sentinel / skipped
    PROTO_LF_STR,      // s (NULL is written as null)
    PROTO_LF_INT,      // i
    PROTO_LF_UINT,     // u
    PROTO_LF_DOUBLE,   // d
    PROTO_LF_BOOL,     // b
} proto_log_ftype_t;

typedef struct {
    const char *key;        // field name
    proto_log_ftype_t type; // which member of the union holds the value
    union {
        const char *s;
        int64_t i;
        uint64_t u;
        double d;
        bool b;
    };
} proto_log_field_t;

//  Typed field constructors for the log macros.
#define LOG_S(k, v) ((proto_log_field_t){.key = (k), .type = PROTO_LF_STR, .s = (v)})
#define LOG_I(k, v) ((proto_log_field_t){.key = (k), .type = PROTO_LF_INT, .i = (int64_t) (v)})
#define LOG_U(k, v) ((proto_log_field_t){.key = (k), .type = PROTO_LF_UINT, .u = (uint64_t) (v)})
#define LOG_F(k, v) ((proto_log_field_t){.key = (k), .type = PROTO_LF_DOUBLE, .d = (double) (v)})
#define LOG_B(k, v) ((proto_log_field_t){.key = (k), .type = PROTO_LF_BOOL, .b = (v)})
//  The error text of an errno value, as field "error".
#define LOG_ERRNO(e) LOG_S("error", strerror(e))

//  Current level; read by the macros so that arguments below the level are
//  never evaluated.
extern proto_log_level_t proto_log_level_current;

#define PROTO_LOG_AT(lvl, msg, ...)                                                                \
    do {                                                                                           \
        if ((lvl) <= proto_log_level_current) {                                                    \
            const proto_log_field_t proto_log_f_[] = {{.key = NULL}, ##__VA_ARGS__};               \
            proto_log_emit((lvl), (msg), proto_log_f_ + 1,                                         \
                           sizeof(proto_log_f_) / sizeof(proto_log_f_[0]) - 1);                    \
        }                                                                                          \
    } while (0)

#define log_error(msg, ...) PROTO_LOG_AT(PROTO_LOG_ERROR, msg, ##__VA_ARGS__)
#define log_warn(msg, ...)  PROTO_LOG_AT(PROTO_LOG_WARN, msg, ##__VA_ARGS__)
#define log_info(msg, ...)  PROTO_LOG_AT(PROTO_LOG_INFO, msg, ##__VA_ARGS__)
#define log_debug(msg, ...) PROTO_LOG_AT(PROTO_LOG_DEBUG, msg, ##__VA_ARGS__)

//  Configure the logger. actor and instance are copied. fd is where lines go
//  (normally 1): a pipe or terminal is reopened non-blocking through
//  /proc/self/fd so that the shared file description is left as it was; a
//  socket is written with MSG_DONTWAIT; a regular file is written as is.
//  Safe to call again (tests); the previous output is closed if it was reopened.
void proto_log_setup(const char *actor,
                     const char *instance,
                     proto_log_level_t level,
                     proto_log_format_t format,
                     int fd);

//  Close what proto_log_setup opened. Safe to call twice.
void proto_log_shutdown(void);

//  Write one event. Never blocks; a line that cannot be written whole at once
//  is dropped and counted.
void proto_log_emit(proto_log_level_t level,
                    const char *msg,
                    const proto_log_field_t *fields,
                    size_t nfields);

//  Hold info and debug lines in a buffer (64 KiB) until proto_log_flush
//  instead of one write each; warn and error lines flush at once (after the
//  held ones). Sockets are always written a line at a time. Turning it off
//  flushes (lines that still cannot be written are dropped and counted).
//  proto_actor holds during its loop and flushes before each wait.
void proto_log_hold(bool on);

//  Write what is held (never blocks; what would block stays held).
void proto_log_flush(void);

//  Number of lines dropped because the output would have blocked.
uint64_t proto_log_dropped(void);

//  Parse "error|warn|info|debug". Returns 0, or -1 if unknown.
int proto_log_level_parse(const char *text, proto_log_level_t *level);

//  True if a field or header of this name holds a secret (see above).
bool proto_log_is_secret_key(const char *key);

//  Copy path to out (capacity cap, always NUL-terminated), with the value of
//  every query parameter whose name is a secret replaced by [REDACTED].
//  Returns the length written.
size_t proto_log_redact_query(const char *path, char *out, size_t cap);

//  Append s (len bytes) to out as a JSON string with quotes, escaping as RFC
//  8259 requires (control bytes as \u00XX, invalid UTF-8 bytes as \u00XX of
//  the byte). Returns the number of bytes written, or 0 if cap is too small
//  (out is then left NUL-terminated at its original length).
size_t proto_log_json_string(char *out, size_t cap, const char *s, size_t len);

#endif
