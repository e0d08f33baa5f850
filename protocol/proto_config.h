/*  proto_config - settings from flags, environment, .env and defaults.

    Each actor describes its settings in tables of proto_cfg_opt_t (name, flag,
    type, default, help, where the parsed value goes). proto_config_load fills
    the actor's config struct with precedence flag > environment > .env >
    default, then parses and validates every value. A bad value is reported as
    one line naming the variable and the value; the caller prints it and exits
    with status 2. It never substitutes a default for a bad value.

    Types and where they are stored (offset into the table's base struct):
      STR        char *            copy (NULL when unset and no default); min > 0
                                   is the least length in bytes of a value set
      ADDR       proto_addr_t      "host:port", "[v6]:port" or ":port" (any host)
      DURATION   int64_t ms        "250ms", "2s", "1m"; must be > 0
      DURATION0  int64_t ms        as DURATION, and a bare "0" is allowed
      INT        int64_t           decimal, within [min, max]
      ENUM       int               index into choices ("a|b|c")
      BOOL       bool              1/0, true/false, yes/no, on/off
    An empty value counts as unset (it takes the next source down), except
    that an empty flag or environment value explicitly clears a STR whose
    default is not NULL and which has PROTO_CFG_EMPTY_OK.
*/
#ifndef PROTO_CONFIG_H
#define PROTO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef enum {
    PROTO_CFG_STR = 0,
    PROTO_CFG_ADDR,
    PROTO_CFG_DURATION,
    PROTO_CFG_DURATION0,
    PROTO_CFG_INT,
    PROTO_CFG_ENUM,
    PROTO_CFG_BOOL,
} proto_cfg_type_t;

//  Option flags.
#define PROTO_CFG_SECRET   0x1 // value is redacted in logs and --help defaults
#define PROTO_CFG_EMPTY_OK 0x2 // STR: an explicit empty value is kept (e.g. disables a path)
#define PROTO_CFG_URL      0x4 // STR: a URL or libpq string; its password is redacted in logs

//  Least length of an HS256 key (RFC 7518 §3.2: at least the hash's 256 bits),
//  the min of a STR option such as CHAT_JWT_SECRET.
#define PROTO_CFG_HS256_KEY_MIN 32

typedef struct {
    char host[256]; // host name or address, "" for any
    uint16_t port;  // 1..65535
} proto_addr_t;

typedef struct {
    const char *env;       // environment variable, e.g. "GATEWAY_HTTP_ADDR"
    const char *flag;      // long flag without dashes, e.g. "http-addr"
    proto_cfg_type_t type; // how the value is parsed
    const char *def;       // default as text; NULL = unset
    const char *help;      // one line for --help
    size_t offset;         // where the parsed value is stored in the base struct
    int64_t min, max;      // INT bounds (inclusive); STR: min = least length when set
    const char *choices;   // ENUM: "json|pretty"
    unsigned flags;        // PROTO_CFG_SECRET, PROTO_CFG_EMPTY_OK, PROTO_CFG_URL
} proto_cfg_opt_t;

typedef struct {
    const proto_cfg_opt_t *opts; // the options
    size_t count;                // how many
    void *base;                  // the struct the offsets point into
} proto_cfg_table_t;

//  Load every table. argv[0] is skipped; flags are "--flag value" or
//  "--flag=value"; "--help" and "-h" print the tables to stdout.
//  envp is the environment (normally environ); dotenv is a file path (normally
//  ".env"; a missing file is fine, an unreadable or malformed one is an error).
//  Returns 0 when loaded, 1 when help was printed (exit 0), -1 on a bad value,
//  an unknown flag or a bad .env line, with one line (no newline) in err.
int proto_config_load(const proto_cfg_table_t *tables,
                      size_t ntables,
                      int argc,
                      char **argv,
                      char **envp,
                      const char *dotenv,
                      const char *prog,
                      char *err,
                      size_t errlen);

//  Print the help text: usage line, then per option its flag, variable,
//  default and help.
void
proto_config_help(FILE *out, const char *prog, const proto_cfg_table_t *tables, size_t ntables);

//  Log the effective configuration (one info line per option, secrets redacted).
void proto_config_log(const proto_cfg_table_t *tables, size_t ntables);

//  Free the strings load allocated. Safe to call twice.
void proto_config_free(const proto_cfg_table_t *tables, size_t ntables);

//  Parsers, also used by actors for values from other sources (API fields).
//  Each returns 0, or -1 if the text is not valid.
int proto_config_parse_duration(const char *text, bool zero_ok, int64_t *ms);
int proto_config_parse_addr(const char *text, proto_addr_t *addr);

#endif
