/*  demo-backend - the small, fast HTTP/1.1 server behind the demo and the benchmarks.

    `make run` starts two of these (Server A, region 1, port 4001 and Server
    B, region 2, port 4002), as seed 000's Express servers did; `make bench`
    puts one behind nginx, HAProxy and Switchyard alike, with --body-bytes
    1024. Proxy tests use /echo, /chunked, /slow and /status/NNN to see
    exactly what reached the upstream. One thread, one libev loop, no bus.

    Settings come from flags, the environment and .env (DEMO_*, LOG_LEVEL,
    LOG_FORMAT); `demo-backend --help` lists them. A bad value exits 2 with
    one line on stderr.
*/
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "demo_server.h"
#include "proto_config.h"
#include "proto_log.h"
#include "proto_util.h"

#define DEMO_PROG           "demo-backend"
#define DEMO_BODY_BYTES_MAX (16 * 1024 * 1024)

typedef struct {
    int64_t port;       // DEMO_PORT, 0 when not given
    char *addr;         // DEMO_ADDR
    char *name;         // DEMO_NAME
    char *region;       // DEMO_REGION
    char *service;      // DEMO_SERVICE
    int64_t body_bytes; // DEMO_BODY_BYTES
    char *static_dir;   // DEMO_STATIC_DIR, or NULL
    int log_level;      // LOG_LEVEL, index of error|warn|info|debug
    int log_format;     // LOG_FORMAT, index of json|pretty, -1 = by isatty
} demo_config_t;

#define S_OPT(env, flag, type, def, help, field, min, max, choices)                                \
    {                                                                                              \
        env, flag, type, def, help, offsetof(demo_config_t, field), min, max, choices, 0           \
    }

static const proto_cfg_opt_t s_opts[] = {
    S_OPT("DEMO_PORT",
          "port",
          PROTO_CFG_INT,
          NULL,
          "TCP port to listen on (required)",
          port,
          1,
          65535,
          NULL),
    S_OPT("DEMO_ADDR",
          "addr",
          PROTO_CFG_STR,
          "127.0.0.1",
          "host or address to listen on",
          addr,
          0,
          0,
          NULL),
    S_OPT("DEMO_NAME",
          "name",
          PROTO_CFG_STR,
          "Server A",
          "server name in the hello text",
          name,
          0,
          0,
          NULL),
    S_OPT("DEMO_REGION",
          "region",
          PROTO_CFG_STR,
          "1",
          "region in the hello text and /health",
          region,
          0,
          0,
          NULL),
    S_OPT("DEMO_SERVICE",
          "service",
          PROTO_CFG_STR,
          "server-a",
          "service name in /health",
          service,
          0,
          0,
          NULL),
    S_OPT("DEMO_BODY_BYTES",
          "body-bytes",
          PROTO_CFG_INT,
          "0",
          "GET / answers exactly this many bytes of 'x' (0: the hello text)",
          body_bytes,
          0,
          DEMO_BODY_BYTES_MAX,
          NULL),
    S_OPT("DEMO_STATIC_DIR",
          "static-dir",
          PROTO_CFG_STR,
          NULL,
          "serve the files directly inside this directory as GET /NAME",
          static_dir,
          0,
          0,
          NULL),
    S_OPT("LOG_LEVEL",
          "log-level",
          PROTO_CFG_ENUM,
          "info",
          "error < warn < info < debug (debug: one line per request)",
          log_level,
          0,
          0,
          "error|warn|info|debug"),
    S_OPT("LOG_FORMAT",
          "log-format",
          PROTO_CFG_ENUM,
          NULL,
          "json or pretty (default: pretty on a terminal, else json)",
          log_format,
          0,
          0,
          "json|pretty"),
};

//  True if s is 1..max bytes with no control characters (and no spaces
//  unless spaces_ok).
static bool
s_valid_text(const char *s, size_t max, bool spaces_ok)
{
    size_t len = strlen(s);
    if (len == 0 || len > max)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c < 0x20 || c == 0x7f || (c == ' ' && !spaces_ok))
            return false;
    }
    return true;
}

static int
s_bad(const char *name, const char *value, const char *expect)
{
    fprintf(stderr, DEMO_PROG ": bad value for %s: '%s' (%s)\n", name, value, expect);
    return 2;
}

static int
s_validate(const demo_config_t *cfg)
{
    if (cfg->port == 0) {
        fprintf(stderr, DEMO_PROG ": DEMO_PORT is required (--port N, 1-65535)\n");
        return 2;
    }
    if (!s_valid_text(cfg->addr, 255, false) || demo_server_check_addr(cfg->addr) != 0)
        return s_bad("DEMO_ADDR", cfg->addr, "expected a host name or an IPv4/IPv6 address");
    if (!s_valid_text(cfg->name, 128, true))
        return s_bad("DEMO_NAME", cfg->name, "expected 1-128 characters, no control characters");
    if (!s_valid_text(cfg->region, 64, false))
        return s_bad("DEMO_REGION", cfg->region, "expected 1-64 printable characters, no spaces");
    if (!s_valid_text(cfg->service, 64, false))
        return s_bad("DEMO_SERVICE", cfg->service, "expected 1-64 printable characters, no spaces");
    struct stat st;
    if (cfg->static_dir && (stat(cfg->static_dir, &st) != 0 || !S_ISDIR(st.st_mode)))
        return s_bad("DEMO_STATIC_DIR", cfg->static_dir, "expected an existing directory");
    return 0;
}

int
main(int argc, char **argv)
{
    extern char **environ;
    demo_config_t cfg = {0};
    proto_cfg_table_t table = {s_opts, PROTO_ARRAY_SIZE(s_opts), &cfg};
    char err[512];
    int rc = proto_config_load(&table, 1, argc, argv, environ, ".env", DEMO_PROG, err, sizeof err);
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, DEMO_PROG ": %s\n", err);
        proto_config_free(&table, 1);
        return rc == 1 ? 0 : 2;
    }
    rc = s_validate(&cfg);
    if (rc != 0) {
        proto_config_free(&table, 1);
        return rc;
    }
    int format = cfg.log_format;
    if (format < 0)
        format = isatty(STDOUT_FILENO) ? PROTO_LOG_PRETTY : PROTO_LOG_JSON;
    proto_log_setup(DEMO_PROG, cfg.service, (proto_log_level_t) cfg.log_level,
                    (proto_log_format_t) format, STDOUT_FILENO);
    proto_config_log(&table, 1);

    demo_server_config_t server_cfg = {
        .addr = cfg.addr,
        .port = (uint16_t) cfg.port,
        .routes =
            {
                .name = cfg.name,
                .region = cfg.region,
                .service = cfg.service,
                .body_bytes = (size_t) cfg.body_bytes,
                .static_dir = cfg.static_dir,
            },
    };
    demo_server_t *server = demo_server_new(&server_cfg, err, sizeof err);
    if (server == NULL) {
        log_error("cannot start", LOG_S("error", err));
        proto_config_free(&table, 1);
        proto_log_shutdown();
        return 1;
    }
    log_info("listening", LOG_S("addr", cfg.addr), LOG_I("port", cfg.port), LOG_S("name", cfg.name),
             LOG_S("region", cfg.region), LOG_I("pid", getpid()));
    rc = demo_server_run(server);
    demo_server_destroy(&server);
    log_info("stopped");
    proto_config_free(&table, 1);
    proto_log_shutdown();
    return rc;
}
