/*  proto_config - settings from flags, environment, .env and defaults.

    proto_config_load gathers, for every option of every table, the text given
    by a flag, by the environment and by the .env file, picks the first
    non-empty one in that order (or the default), then parses it into the
    actor's config struct. Flag and environment texts are borrowed from argv
    and envp; .env values are copied and freed before load returns, so only
    the parsed values outlive the call.

    The caller zeroes the config struct before the first load: load frees
    nothing at start (it cannot tell a stale pointer from garbage). On
    failure load frees the strings it stored itself, so a failed load leaves
    nothing to free; proto_config_free is still safe to call afterwards.
    To load again, call proto_config_free first.

    An explicit empty value (flag, environment or .env) of a STR option with
    PROTO_CFG_EMPTY_OK is kept as "" and stops the search; for every other
    option an empty value counts as unset.
*/
#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto_config.h"
#include "proto_log.h"
#include "proto_url.h"
#include "proto_util.h"

#define PROTO_CFG_LINE_MAX     65536                         // longest .env line, newline excluded
#define PROTO_CFG_DURATION_MAX (365LL * 24 * 60 * 60 * 1000) // ms; longer is not a sane setting
#define PROTO_CFG_SHOWN_MAX    200                           // bytes of a bad value quoted in err
#define PROTO_CFG_REDACTED     "[REDACTED]"

//  One option of one table, with the texts the sources gave it during a load.
typedef struct {
    const proto_cfg_opt_t *opt; // the option
    void *base;                 // the struct its offset points into
    const char *flag_text;      // from argv (borrowed), NULL if not given
    const char *env_text;       // from envp (borrowed), NULL if not set
    char *dotenv_text;          // from the .env file (owned), NULL if not set
    bool stored;                // a STR copy was stored by this load
} proto_cfg_slot_t;

static void s_fail(char *err, size_t errlen, const char *format, ...)
    __attribute__((format(printf, 3, 4)));

static void
s_fail(char *err, size_t errlen, const char *format, ...)
{
    if (!err || errlen == 0) {
        return;
    }
    va_list args;
    va_start(args, format);
    vsnprintf(err, errlen, format, args);
    va_end(args);
}

static char *
s_strdup(const char *text)
{
    char *copy = strdup(text);
    if (!copy) {
        fputs("proto_config: out of memory\n", stderr);
        abort();
    }
    return copy;
}

static void *
s_field(void *base, const proto_cfg_opt_t *opt)
{
    return (char *) base + opt->offset;
}

//  Copy text for quoting in an error line: control bytes become '?' so the
//  error stays one line, and a long value is cut with "...".
static void
s_shown(const char *text, char *out, size_t cap)
{
    size_t len = 0;
    const char *p = text;
    for (; *p && len < PROTO_CFG_SHOWN_MAX && len + 1 < cap; p++) {
        unsigned char c = (unsigned char) *p;
        out[len++] = (c < 0x20 || c == 0x7f) ? '?' : (char) c;
    }
    if (*p && len + sizeof "..." <= cap) {
        memcpy(out + len, PROTO_LIT("..."));
        len += strlen("...");
    }
    out[len] = '\0';
}

static void
s_bad_value(
    char *err, size_t errlen, const proto_cfg_opt_t *opt, const char *text, const char *expected)
{
    char shown[PROTO_CFG_SHOWN_MAX + 4];
    if (opt->flags & PROTO_CFG_SECRET) {
        snprintf(shown, sizeof shown, "%s", PROTO_CFG_REDACTED);
    } else if (opt->flags & PROTO_CFG_URL) {
        char redacted[PROTO_CFG_SHOWN_MAX + sizeof PROTO_CFG_REDACTED];
        proto_url_redact(text, redacted, sizeof redacted);
        s_shown(redacted, shown, sizeof shown);
    } else {
        s_shown(text, shown, sizeof shown);
    }
    s_fail(err, errlen, "bad value for %s: '%s' (%s)", opt->env, shown, expected);
}

static bool
s_is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool
s_is_hex_digit(char c)
{
    return s_is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool
s_is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
s_is_host_char(char c)
{
    return s_is_alpha(c) || s_is_digit(c) || c == '.' || c == '-' || c == '_';
}

static bool
s_is_blank(char c)
{
    return c == ' ' || c == '\t';
}

int
proto_config_parse_duration(const char *text, bool zero_ok, int64_t *ms)
{
    if (!text || !ms) {
        return -1;
    }
    if (strcmp(text, "0") == 0) {
        if (!zero_ok) {
            return -1;
        }
        *ms = 0;
        return 0;
    }
    const char *p = text;
    uint64_t whole = 0;
    size_t whole_digits = 0;
    for (; s_is_digit(*p); p++, whole_digits++) {
        //  Saturates: once above the maximum the value only has to stay above it.
        if (whole <= (uint64_t) PROTO_CFG_DURATION_MAX) {
            whole = whole * 10 + (uint64_t) (*p - '0');
        }
    }
    if (whole_digits == 0) {
        return -1;
    }
    uint64_t fraction = 0;
    uint64_t scale = 1;
    if (*p == '.') {
        const char *start = ++p;
        while (s_is_digit(*p)) {
            p++;
        }
        if (p == start) {
            return -1;
        }
        //  Without trailing zeros, a fraction of more than 5 digits can never
        //  come out a whole number of ms (60000 = 2^5 * 3 * 5^4).
        const char *end = p;
        while (end > start && end[-1] == '0') {
            end--;
        }
        if (end - start > 5) {
            return -1;
        }
        for (const char *q = start; q < end; q++) {
            fraction = fraction * 10 + (uint64_t) (*q - '0');
            scale *= 10;
        }
    }
    uint64_t unit;
    if (strcmp(p, "ms") == 0) {
        unit = 1;
    } else if (strcmp(p, "s") == 0) {
        unit = 1000;
    } else if (strcmp(p, "m") == 0) {
        unit = 60000;
    } else {
        return -1;
    }
    if (whole > (uint64_t) PROTO_CFG_DURATION_MAX / unit) {
        return -1;
    }
    if ((fraction * unit) % scale != 0) {
        return -1;
    }
    uint64_t total = whole * unit + fraction * unit / scale;
    if (total > (uint64_t) PROTO_CFG_DURATION_MAX || (total == 0 && !zero_ok)) {
        return -1;
    }
    *ms = (int64_t) total;
    return 0;
}

int
proto_config_parse_addr(const char *text, proto_addr_t *addr)
{
    if (!text || !addr) {
        return -1;
    }
    proto_addr_t parsed;
    memset(&parsed, 0, sizeof parsed);
    const char *port_text;
    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (!close) {
            return -1;
        }
        size_t len = (size_t) (close - text - 1);
        if (len == 0 || len >= sizeof parsed.host) {
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            char c = text[1 + i];
            if (!s_is_hex_digit(c) && c != ':' && c != '.') {
                return -1;
            }
        }
        memcpy(parsed.host, text + 1, len);
        parsed.host[len] = '\0';
        struct in6_addr in6;
        if (inet_pton(AF_INET6, parsed.host, &in6) != 1) {
            return -1;
        }
        if (close[1] != ':') {
            return -1;
        }
        port_text = close + 2;
    } else {
        const char *colon = strchr(text, ':');
        if (!colon) {
            return -1;
        }
        size_t len = (size_t) (colon - text);
        if (len >= sizeof parsed.host) {
            return -1;
        }
        for (size_t i = 0; i < len; i++) {
            if (!s_is_host_char(text[i])) {
                return -1;
            }
        }
        memcpy(parsed.host, text, len);
        parsed.host[len] = '\0';
        port_text = colon + 1;
    }
    if (*port_text == '\0') {
        return -1;
    }
    uint32_t port = 0;
    for (const char *p = port_text; *p; p++) {
        if (!s_is_digit(*p)) {
            return -1;
        }
        if (port <= 65535) {
            port = port * 10 + (uint32_t) (*p - '0');
        }
    }
    if (port < 1 || port > 65535) {
        return -1;
    }
    parsed.port = (uint16_t) port;
    *addr = parsed;
    return 0;
}

static int
s_parse_int(const char *text, int64_t *value)
{
    const char *digits = text[0] == '-' ? text + 1 : text;
    if (!s_is_digit(digits[0])) {
        return -1; // also rules out the spaces and '+' strtoll would accept
    }
    errno = 0;
    char *end = NULL;
    long long parsed = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return -1;
    }
    *value = (int64_t) parsed;
    return 0;
}

static int
s_parse_bool(const char *text, bool *value)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *value = true;
            return 0;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *value = false;
            return 0;
        }
    }
    return -1;
}

//  Index of text among the '|'-separated choices, or -1.
static int
s_find_choice(const char *choices, const char *text)
{
    size_t text_len = strlen(text);
    const char *p = choices;
    for (int index = 0;; index++) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t) (bar - p) : strlen(p);
        if (len == text_len && strncmp(p, text, len) == 0) {
            return index;
        }
        if (!bar) {
            return -1;
        }
        p = bar + 1;
    }
}

//  "a|b|c" as "a, b, c" (cut to fit cap).
static void
s_list_choices(const char *choices, char *out, size_t cap)
{
    size_t len = 0;
    for (const char *p = choices; *p && len + 2 < cap; p++) {
        if (*p == '|') {
            out[len++] = ',';
            out[len++] = ' ';
        } else {
            out[len++] = *p;
        }
    }
    out[len] = '\0';
}

//  The text an option takes: the first non-empty of flag, environment and
//  .env, else the default. An empty text is a value only for EMPTY_OK strings.
static const char *
s_pick_text(const proto_cfg_slot_t *slot)
{
    const proto_cfg_opt_t *opt = slot->opt;
    bool empty_ok = opt->type == PROTO_CFG_STR && (opt->flags & PROTO_CFG_EMPTY_OK);
    const char *texts[] = {slot->flag_text, slot->env_text, slot->dotenv_text};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        if (texts[i] && (texts[i][0] != '\0' || empty_ok)) {
            return texts[i];
        }
    }
    return opt->def;
}

//  Parse text (NULL or "" = unset, except for STR) and store it in the
//  slot's field. The field is written only when the text is valid.
static int
s_store(proto_cfg_slot_t *slot, const char *text, char *err, size_t errlen)
{
    const proto_cfg_opt_t *opt = slot->opt;
    void *field = s_field(slot->base, opt);
    bool unset = !text || text[0] == '\0';
    switch (opt->type) {
        case PROTO_CFG_STR:
            if (!unset && opt->min > 0 && strlen(text) < (size_t) opt->min) {
                char expected[64];
                snprintf(expected, sizeof expected, "expected at least %" PRId64 " bytes",
                         opt->min);
                s_bad_value(err, errlen, opt, text, expected);
                return -1;
            }
            *(char **) field = text ? s_strdup(text) : NULL;
            slot->stored = text != NULL;
            return 0;
        case PROTO_CFG_ADDR: {
            proto_addr_t addr;
            memset(&addr, 0, sizeof addr);
            if (!unset && proto_config_parse_addr(text, &addr) != 0) {
                s_bad_value(err, errlen, opt, text, "expected host:port with port 1-65535");
                return -1;
            }
            memcpy(field, &addr, sizeof addr);
            return 0;
        }
        case PROTO_CFG_DURATION:
        case PROTO_CFG_DURATION0: {
            bool zero_ok = opt->type == PROTO_CFG_DURATION0;
            int64_t ms = 0;
            if (!unset && proto_config_parse_duration(text, zero_ok, &ms) != 0) {
                s_bad_value(err, errlen, opt, text,
                            zero_ok ? "expected 0 or a duration such as 500ms, 2s, 1m"
                                    : "expected a duration > 0 such as 500ms, 2s, 1m");
                return -1;
            }
            memcpy(field, &ms, sizeof ms);
            return 0;
        }
        case PROTO_CFG_INT: {
            int64_t value = 0;
            if (!unset
                && (s_parse_int(text, &value) != 0 || value < opt->min || value > opt->max)) {
                char expected[96];
                snprintf(expected, sizeof expected,
                         "expected an integer from %" PRId64 " to %" PRId64, opt->min, opt->max);
                s_bad_value(err, errlen, opt, text, expected);
                return -1;
            }
            memcpy(field, &value, sizeof value);
            return 0;
        }
        case PROTO_CFG_ENUM: {
            assert(opt->choices);
            int index = unset ? -1 : s_find_choice(opt->choices, text);
            if (!unset && index < 0) {
                char choices[256];
                char expected[sizeof choices + 32];
                s_list_choices(opt->choices, choices, sizeof choices);
                snprintf(expected, sizeof expected, "expected one of: %s", choices);
                s_bad_value(err, errlen, opt, text, expected);
                return -1;
            }
            memcpy(field, &index, sizeof index);
            return 0;
        }
        case PROTO_CFG_BOOL: {
            bool value = false;
            if (!unset && s_parse_bool(text, &value) != 0) {
                s_bad_value(err, errlen, opt, text, "expected true or false");
                return -1;
            }
            memcpy(field, &value, sizeof value);
            return 0;
        }
    }
    assert(false && "unknown proto_cfg_type_t");
    return -1;
}

//  Apply one command-line argument (and its value, which may be the next
//  one). Returns 0, 1 for --help, or -1 with err set.
static int
s_apply_argument(proto_cfg_slot_t *slots,
                 size_t nslots,
                 int argc,
                 char **argv,
                 int *index_p,
                 char *err,
                 size_t errlen)
{
    const char *arg = argv[*index_p];
    char shown[PROTO_CFG_SHOWN_MAX + 4];
    if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
        return 1;
    }
    if (arg[0] != '-') {
        s_shown(arg, shown, sizeof shown);
        s_fail(err, errlen, "unexpected argument '%s'", shown);
        return -1;
    }
    //  Never quote what follows '=': it may be a secret.
    const char *equals = strchr(arg, '=');
    size_t name_len = equals ? (size_t) (equals - arg) : strlen(arg);
    if (name_len > PROTO_CFG_SHOWN_MAX) {
        name_len = PROTO_CFG_SHOWN_MAX;
    }
    bool found = false, is_bool = false;
    if (name_len > 2 && arg[1] == '-') {
        for (size_t i = 0; i < nslots; i++) {
            const char *flag = slots[i].opt->flag;
            if (flag && strlen(flag) == name_len - 2 && strncmp(flag, arg + 2, name_len - 2) == 0) {
                found = true;
                is_bool = slots[i].opt->type == PROTO_CFG_BOOL;
            }
        }
    }
    s_shown(arg, shown, sizeof shown);
    if (name_len < strlen(shown)) {
        shown[name_len] = '\0';
    }
    if (!found) {
        s_fail(err, errlen, "unknown option %s", shown);
        return -1;
    }
    const char *value;
    if (equals) {
        value = equals + 1;
    } else if (is_bool) {
        //  A boolean flag takes the next argument only when it is a boolean
        //  word (--verbose false); a bare one (--verbose) switches it on.
        bool ignored;
        if (*index_p + 1 < argc && s_parse_bool(argv[*index_p + 1], &ignored) == 0) {
            *index_p += 1;
            value = argv[*index_p];
        } else {
            value = "true";
        }
    } else if (*index_p + 1 < argc && !proto_starts_with(argv[*index_p + 1], "--")) {
        //  A next argument starting with "--" is taken as the next flag, not
        //  a value; one starting with a single '-' (a negative number) is a value.
        *index_p += 1;
        value = argv[*index_p];
    } else {
        s_fail(err, errlen, "option %s needs a value", shown);
        return -1;
    }
    for (size_t i = 0; i < nslots; i++) {
        const char *flag = slots[i].opt->flag;
        if (flag && strlen(flag) == name_len - 2 && strncmp(flag, arg + 2, name_len - 2) == 0) {
            slots[i].flag_text = value; // the last occurrence wins
        }
    }
    return 0;
}

//  The value of name in envp ("NAME=value"), first match as getenv does.
static const char *
s_lookup_env(char **envp, const char *name)
{
    if (!envp) {
        return NULL;
    }
    size_t len = strlen(name);
    for (char **entry = envp; *entry; entry++) {
        if (strncmp(*entry, name, len) == 0 && (*entry)[len] == '=') {
            return *entry + len + 1;
        }
    }
    return NULL;
}

//  Read one line into buf (without the newline and a trailing '\r').
//  Returns 1 with a line, 0 at end of file, -1 if longer than max bytes,
//  -2 on a NUL byte, -3 on a read error.
static int
s_read_line(FILE *file, char *buf, size_t max)
{
    size_t len = 0;
    bool any = false;
    int c;
    while ((c = getc(file)) != EOF) {
        any = true;
        if (c == '\n') {
            break;
        }
        if (c == '\0') {
            return -2;
        }
        if (len == max) {
            return -1;
        }
        buf[len++] = (char) c;
    }
    if (c == EOF && ferror(file)) {
        return -3;
    }
    if (!any) {
        return 0;
    }
    if (len > 0 && buf[len - 1] == '\r') {
        len--;
    }
    buf[len] = '\0';
    return 1;
}

//  Split a .env line in place. Returns 1 with *key_p and *value_p set, 0 for
//  a blank or comment line, -1 with *why set for a malformed line.
static int
s_parse_dotenv_line(char *line, char **key_p, char **value_p, const char **why)
{
    char *p = line;
    while (s_is_blank(*p)) {
        p++;
    }
    if (*p == '\0' || *p == '#') {
        return 0;
    }
    if (proto_starts_with(p, "export") && s_is_blank(p[strlen("export")])) {
        p += strlen("export");
        while (s_is_blank(*p)) {
            p++;
        }
    }
    *why = "expected KEY=VALUE";
    char *key = p;
    if (!s_is_alpha(*p) && *p != '_') {
        return -1;
    }
    while (s_is_alpha(*p) || s_is_digit(*p) || *p == '_') {
        p++;
    }
    char *key_end = p;
    while (s_is_blank(*p)) {
        p++;
    }
    if (*p != '=') {
        return -1;
    }
    *key_end = '\0';
    p++;
    while (s_is_blank(*p)) {
        p++;
    }
    char *value = p;
    if (*p == '"' || *p == '\'') {
        char quote = *p++;
        char *out = value;
        while (*p != quote) {
            if (*p == '\0') {
                *why = "unterminated quoted value";
                return -1;
            }
            if (quote == '"' && *p == '\\' && (p[1] == '"' || p[1] == '\\')) {
                p++;
            }
            *out++ = *p++;
        }
        char *rest = p + 1;
        *out = '\0';
        while (s_is_blank(*rest)) {
            rest++;
        }
        if (*rest != '\0' && *rest != '#') {
            *why = "unexpected text after the closing quote";
            return -1;
        }
    } else {
        //  A '#' starts a comment only after a blank, so "a#b" keeps its '#'
        //  (value[-1] exists: it is the '=' or a blank).
        for (char *q = value; *q; q++) {
            if (*q == '#' && s_is_blank(q[-1])) {
                *q = '\0';
                break;
            }
        }
        size_t len = strlen(value);
        while (len > 0 && s_is_blank(value[len - 1])) {
            value[--len] = '\0';
        }
    }
    *key_p = key;
    *value_p = value;
    return 1;
}

static int
s_read_dotenv(proto_cfg_slot_t *slots, size_t nslots, const char *path, char *err, size_t errlen)
{
    FILE *file = fopen(path, "r");
    if (!file) {
        if (errno == ENOENT) {
            return 0;
        }
        s_fail(err, errlen, "cannot open %s: %s", path, strerror(errno));
        return -1;
    }
    char *line = malloc(PROTO_CFG_LINE_MAX + 1);
    if (!line) {
        fputs("proto_config: out of memory\n", stderr);
        abort();
    }
    int rc = 0;
    for (size_t line_no = 1;; line_no++) {
        int got = s_read_line(file, line, PROTO_CFG_LINE_MAX);
        if (got == 0) {
            break;
        }
        if (got == -1) {
            s_fail(err, errlen, "%s line %zu: longer than %d bytes", path, line_no,
                   PROTO_CFG_LINE_MAX);
            rc = -1;
            break;
        }
        if (got == -2) {
            s_fail(err, errlen, "%s line %zu: contains a NUL byte", path, line_no);
            rc = -1;
            break;
        }
        if (got == -3) {
            s_fail(err, errlen, "cannot read %s: %s", path, strerror(errno));
            rc = -1;
            break;
        }
        char *key = NULL;
        char *value = NULL;
        const char *why = NULL;
        int parsed = s_parse_dotenv_line(line, &key, &value, &why);
        if (parsed < 0) {
            s_fail(err, errlen, "%s line %zu: %s", path, line_no, why);
            rc = -1;
            break;
        }
        if (parsed == 0) {
            continue;
        }
        //  Keys of other actors are ignored: the file is shared. The last line wins.
        for (size_t i = 0; i < nslots; i++) {
            if (strcmp(slots[i].opt->env, key) == 0) {
                free(slots[i].dotenv_text);
                slots[i].dotenv_text = s_strdup(value);
            }
        }
    }
    free(line);
    line = NULL;
    fclose(file);
    return rc;
}

int
proto_config_load(const proto_cfg_table_t *tables,
                  size_t ntables,
                  int argc,
                  char **argv,
                  char **envp,
                  const char *dotenv,
                  const char *prog,
                  char *err,
                  size_t errlen)
{
    assert(tables || ntables == 0);
    if (err && errlen > 0) {
        err[0] = '\0';
    }
    size_t nslots = 0;
    for (size_t t = 0; t < ntables; t++) {
        nslots += tables[t].count;
    }
    proto_cfg_slot_t *slots = calloc(nslots + 1, sizeof *slots);
    if (!slots) {
        fputs("proto_config: out of memory\n", stderr);
        abort();
    }
    size_t n = 0;
    for (size_t t = 0; t < ntables; t++) {
        assert(tables[t].base);
        for (size_t i = 0; i < tables[t].count; i++) {
            assert(tables[t].opts[i].env);
            slots[n].opt = &tables[t].opts[i];
            slots[n].base = tables[t].base;
            n++;
        }
    }
    int rc = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        rc = s_apply_argument(slots, nslots, argc, argv, &i, err, errlen);
    }
    if (rc == 1) {
        proto_config_help(stdout, prog ? prog : (argc > 0 ? argv[0] : NULL), tables, ntables);
        goto done;
    }
    if (rc == 0) {
        for (size_t i = 0; i < nslots; i++) {
            slots[i].env_text = s_lookup_env(envp, slots[i].opt->env);
        }
        if (dotenv) {
            rc = s_read_dotenv(slots, nslots, dotenv, err, errlen);
        }
    }
    for (size_t i = 0; i < nslots && rc == 0; i++) {
        rc = s_store(&slots[i], s_pick_text(&slots[i]), err, errlen);
    }
    if (rc != 0) {
        //  Leave nothing allocated behind a failed load.
        for (size_t i = 0; i < nslots; i++) {
            if (slots[i].stored) {
                char **field = s_field(slots[i].base, slots[i].opt);
                free(*field);
                *field = NULL;
            }
        }
    }
done:
    for (size_t i = 0; i < nslots; i++) {
        free(slots[i].dotenv_text);
        slots[i].dotenv_text = NULL;
    }
    free(slots);
    slots = NULL;
    return rc;
}

static const char *
s_metavar(const proto_cfg_opt_t *opt)
{
    switch (opt->type) {
        case PROTO_CFG_STR:
            return "TEXT";
        case PROTO_CFG_ADDR:
            return "ADDR";
        case PROTO_CFG_DURATION:
        case PROTO_CFG_DURATION0:
            return "DURATION";
        case PROTO_CFG_INT:
            return "N";
        case PROTO_CFG_ENUM:
            return opt->choices ? opt->choices : "CHOICE";
        case PROTO_CFG_BOOL:
            return "BOOL";
    }
    return "VALUE";
}

static const char *
s_help_default(const proto_cfg_opt_t *opt)
{
    if (!opt->def) {
        return "unset";
    }
    if (opt->flags & PROTO_CFG_SECRET) {
        return PROTO_CFG_REDACTED;
    }
    return opt->def[0] ? opt->def : "\"\"";
}

static size_t
s_help_flag_width(const proto_cfg_opt_t *opt)
{
    return opt->flag ? 2 + strlen(opt->flag) + 1 + strlen(s_metavar(opt)) : 0;
}

void
proto_config_help(FILE *out, const char *prog, const proto_cfg_table_t *tables, size_t ntables)
{
    assert(out);
    fprintf(out, "usage: %s [--flag value]...\n\n", prog ? prog : "switchyard");
    size_t flag_width = strlen("-h, --help");
    size_t env_width = 0;
    size_t default_width = 0;
    for (size_t t = 0; t < ntables; t++) {
        for (size_t i = 0; i < tables[t].count; i++) {
            const proto_cfg_opt_t *opt = &tables[t].opts[i];
            size_t width = s_help_flag_width(opt);
            flag_width = width > flag_width ? width : flag_width;
            width = strlen(opt->env);
            env_width = width > env_width ? width : env_width;
            width = strlen("(default: )") + strlen(s_help_default(opt));
            default_width = width > default_width ? width : default_width;
        }
    }
    for (size_t t = 0; t < ntables; t++) {
        for (size_t i = 0; i < tables[t].count; i++) {
            const proto_cfg_opt_t *opt = &tables[t].opts[i];
            if (opt->flag) {
                fprintf(out, "  --%s %s", opt->flag, s_metavar(opt));
            } else {
                fprintf(out, "  ");
            }
            const char *def = s_help_default(opt);
            int pad = (int) (flag_width - s_help_flag_width(opt));
            fprintf(out, "%*s   %-*s  (default: %s)", pad, "", (int) env_width, opt->env, def);
            if (opt->help && opt->help[0]) {
                pad = (int) (default_width - strlen("(default: )") - strlen(def));
                fprintf(out, "%*s  %s", pad, "", opt->help);
            }
            fprintf(out, "\n");
        }
    }
    fprintf(out, "  %-*s   print this help and exit\n", (int) flag_width, "-h, --help");
}

static void
s_format_duration(int64_t ms, char *out, size_t cap)
{
    if (ms != 0 && ms % 60000 == 0) {
        snprintf(out, cap, "%" PRId64 "m", ms / 60000);
    } else if (ms != 0 && ms % 1000 == 0) {
        snprintf(out, cap, "%" PRId64 "s", ms / 1000);
    } else if (ms != 0) {
        snprintf(out, cap, "%" PRId64 "ms", ms);
    } else {
        snprintf(out, cap, "0");
    }
}

//  The effective value of an option as text for the log.
static void
s_format_value(const proto_cfg_opt_t *opt, void *base, char *out, size_t cap)
{
    const void *field = s_field(base, opt);
    bool secret = opt->flags & PROTO_CFG_SECRET;
    switch (opt->type) {
        case PROTO_CFG_STR: {
            const char *value = *(char *const *) field;
            if (value && !secret && (opt->flags & PROTO_CFG_URL)) {
                proto_url_redact(value, out, cap);
            } else {
                snprintf(out, cap, "%s", !value ? "unset" : secret ? PROTO_CFG_REDACTED : value);
            }
            return;
        }
        case PROTO_CFG_ADDR: {
            const proto_addr_t *addr = field;
            if (addr->port == 0 || secret) {
                snprintf(out, cap, "%s", addr->port == 0 ? "unset" : PROTO_CFG_REDACTED);
            } else if (strchr(addr->host, ':')) {
                snprintf(out, cap, "[%s]:%u", addr->host, (unsigned) addr->port);
            } else {
                snprintf(out, cap, "%s:%u", addr->host, (unsigned) addr->port);
            }
            return;
        }
        case PROTO_CFG_DURATION:
        case PROTO_CFG_DURATION0: {
            int64_t ms;
            memcpy(&ms, field, sizeof ms);
            if (secret) {
                snprintf(out, cap, "%s", PROTO_CFG_REDACTED);
            } else {
                s_format_duration(ms, out, cap);
            }
            return;
        }
        case PROTO_CFG_INT: {
            int64_t value;
            memcpy(&value, field, sizeof value);
            if (secret) {
                snprintf(out, cap, "%s", PROTO_CFG_REDACTED);
            } else {
                snprintf(out, cap, "%" PRId64, value);
            }
            return;
        }
        case PROTO_CFG_ENUM: {
            int index;
            memcpy(&index, field, sizeof index);
            const char *p = opt->choices ? opt->choices : "";
            for (int i = 0; i < index && p; i++) {
                p = strchr(p, '|');
                p = p ? p + 1 : NULL;
            }
            if (index < 0 || !p) {
                snprintf(out, cap, "unset");
            } else if (secret) {
                snprintf(out, cap, "%s", PROTO_CFG_REDACTED);
            } else {
                const char *bar = strchr(p, '|');
                int len = (int) (bar ? (size_t) (bar - p) : strlen(p));
                snprintf(out, cap, "%.*s", len, p);
            }
            return;
        }
        case PROTO_CFG_BOOL: {
            bool value;
            memcpy(&value, field, sizeof value);
            snprintf(out, cap, "%s", secret ? PROTO_CFG_REDACTED : value ? "true" : "false");
            return;
        }
    }
    snprintf(out, cap, "?");
}

void
proto_config_log(const proto_cfg_table_t *tables, size_t ntables)
{
    //  One line: every setting a field named by its variable.
    if (PROTO_LOG_INFO > proto_log_level_current) {
        return;
    }
    size_t total = 0;
    for (size_t t = 0; t < ntables; t++) {
        total += tables[t].count;
    }
    proto_log_field_t *fields = proto_xcalloc(total ? total : 1, sizeof *fields);
    char(*texts)[320] = proto_xcalloc(total ? total : 1, sizeof *texts);
    size_t n = 0;
    for (size_t t = 0; t < ntables; t++) {
        for (size_t i = 0; i < tables[t].count; i++) {
            const proto_cfg_opt_t *opt = &tables[t].opts[i];
            s_format_value(opt, tables[t].base, texts[n], sizeof texts[n]);
            fields[n] = LOG_S(opt->env, texts[n]);
            n++;
        }
    }
    proto_log_emit(PROTO_LOG_INFO, "config", fields, n);
    free(texts);
    free(fields);
}

void
proto_config_free(const proto_cfg_table_t *tables, size_t ntables)
{
    for (size_t t = 0; t < ntables; t++) {
        for (size_t i = 0; i < tables[t].count; i++) {
            const proto_cfg_opt_t *opt = &tables[t].opts[i];
            if (opt->type == PROTO_CFG_STR) {
                char **field = s_field(tables[t].base, opt);
                free(*field);
                *field = NULL;
            }
        }
    }
}
