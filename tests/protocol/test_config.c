/*  test_config - unit tests for proto_config.

    Loads a small config struct with one option of every type from argv,
    an envp array and .env files written under a mkdtemp directory, and
    checks precedence, every parser, the exact error lines, --help and the
    log output. Also the first example of how an actor uses proto_config.

    Decisions pinned here: duration units are case-sensitive ("2S" is bad);
    a fraction must come out a whole number of ms ("1.5s" is good, "1.5ms"
    bad); an error for a bad .env line names the path it was given.
*/
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto_config.h"
#include "proto_log.h"

//  The config struct of an imaginary actor.
typedef struct {
    char *name;          // STR with a default
    char *path;          // STR, EMPTY_OK: "" disables
    char *token;         // STR, SECRET, no default
    char *note;          // STR, no default
    proto_addr_t addr;   // ADDR
    proto_addr_t backup; // ADDR, no default
    int64_t interval;    // DURATION, ms
    int64_t ttl;         // DURATION0, ms
    int64_t count;       // INT in [1, 100]
    int64_t offset;      // INT in [-10, 10], no default
    int mode;            // ENUM json|pretty
    int level;           // ENUM, no default
    bool verbose;        // BOOL
    bool quiet;          // BOOL, no default
} t_cfg_t;

//  A second table, as shared settings would be.
typedef struct {
    char *region; // STR
} t_shared_t;

#define T_OPT(env, flag, type, def, field, min, max, choices, flags)                               \
    {                                                                                              \
        env, flag, type, def, "help for " flag, offsetof(t_cfg_t, field), min, max, choices, flags \
    }

static const proto_cfg_opt_t t_opts[] = {
    T_OPT("T_NAME", "name", PROTO_CFG_STR, "anon", name, 0, 0, NULL, 0),
    T_OPT("T_PATH", "path", PROTO_CFG_STR, "/health", path, 0, 0, NULL, PROTO_CFG_EMPTY_OK),
    T_OPT("T_TOKEN", "token", PROTO_CFG_STR, NULL, token, 0, 0, NULL, PROTO_CFG_SECRET),
    T_OPT("T_NOTE", "note", PROTO_CFG_STR, NULL, note, 0, 0, NULL, 0),
    T_OPT("T_ADDR", "addr", PROTO_CFG_ADDR, "0.0.0.0:8080", addr, 0, 0, NULL, 0),
    T_OPT("T_BACKUP", "backup", PROTO_CFG_ADDR, NULL, backup, 0, 0, NULL, 0),
    T_OPT("T_INTERVAL", "interval", PROTO_CFG_DURATION, "2s", interval, 0, 0, NULL, 0),
    T_OPT("T_TTL", "ttl", PROTO_CFG_DURATION0, "1s", ttl, 0, 0, NULL, 0),
    T_OPT("T_COUNT", "count", PROTO_CFG_INT, "10", count, 1, 100, NULL, 0),
    T_OPT("T_OFFSET", "offset", PROTO_CFG_INT, NULL, offset, -10, 10, NULL, 0),
    T_OPT("T_MODE", "mode", PROTO_CFG_ENUM, "json", mode, 0, 0, "json|pretty|csv", 0),
    T_OPT("T_LEVEL", "level", PROTO_CFG_ENUM, NULL, level, 0, 0, "low|high", 0),
    T_OPT("T_VERBOSE", "verbose", PROTO_CFG_BOOL, "false", verbose, 0, 0, NULL, 0),
    T_OPT("T_QUIET", "quiet", PROTO_CFG_BOOL, NULL, quiet, 0, 0, NULL, 0),
};

static const proto_cfg_opt_t t_shared_opts[] = {
    {"T_REGION", "region", PROTO_CFG_STR, "1", "region id", offsetof(t_shared_t, region), 0, 0,
     NULL, 0},
};

//  Everything one test loads into; zeroed before the first load.
typedef struct {
    t_cfg_t cfg;                 // the actor's settings
    t_shared_t shared;           // the shared settings
    proto_cfg_table_t tables[2]; // both tables
    char err[256];               // the error line
    char dir[64];                // mkdtemp directory for .env files
    char dotenv[96];             // dir/.env
} t_fixture_t;

static void
s_fixture_init(t_fixture_t *f)
{
    memset(f, 0, sizeof *f);
    f->tables[0] = (proto_cfg_table_t){t_opts, sizeof t_opts / sizeof t_opts[0], &f->cfg};
    f->tables[1] = (proto_cfg_table_t){t_shared_opts, 1, &f->shared};
    snprintf(f->dir, sizeof f->dir, "/tmp/test_config.XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->dotenv, sizeof f->dotenv, "%s/.env", f->dir);
}

static void
s_fixture_done(t_fixture_t *f)
{
    proto_config_free(f->tables, 2);
    unlink(f->dotenv);
    assert_int_equal(rmdir(f->dir), 0);
}

static void
s_write_dotenv(t_fixture_t *f, const char *text)
{
    FILE *file = fopen(f->dotenv, "w");
    assert_non_null(file);
    assert_int_equal(fputs(text, file) >= 0, 1);
    assert_int_equal(fclose(file), 0);
}

//  Load with a NULL-terminated argument list (after argv[0]) and envp.
static int
s_load(t_fixture_t *f, const char *const *args, const char *const *envp)
{
    char *argv[32] = {"test_config"};
    int argc = 1;
    for (; args && args[argc - 1]; argc++) {
        assert_true(argc < 31);
        argv[argc] = (char *) args[argc - 1];
    }
    char *env[32] = {NULL};
    for (size_t i = 0; envp && envp[i]; i++) {
        assert_true(i < 31);
        env[i] = (char *) envp[i];
    }
    return proto_config_load(f->tables, 2, argc, argv, env, f->dotenv, "test_config", f->err,
                             sizeof f->err);
}

//  Load with one variable set in the environment, expecting failure with err.
static void
s_expect_bad_env(const char *assignment, const char *err)
{
    t_fixture_t f;
    s_fixture_init(&f);
    const char *envp[] = {assignment, NULL};
    assert_int_equal(s_load(&f, NULL, envp), -1);
    assert_string_equal(f.err, err);
    //  A failed load leaves nothing allocated.
    assert_null(f.cfg.name);
    assert_null(f.cfg.path);
    assert_null(f.shared.region);
    s_fixture_done(&f);
}

static void
test_defaults_only(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    assert_int_equal(s_load(&f, NULL, NULL), 0);
    assert_string_equal(f.err, "");
    assert_string_equal(f.cfg.name, "anon");
    assert_string_equal(f.cfg.path, "/health");
    assert_null(f.cfg.token);
    assert_null(f.cfg.note);
    assert_string_equal(f.cfg.addr.host, "0.0.0.0");
    assert_int_equal(f.cfg.addr.port, 8080);
    assert_string_equal(f.cfg.backup.host, "");
    assert_int_equal(f.cfg.backup.port, 0);
    assert_int_equal(f.cfg.interval, 2000);
    assert_int_equal(f.cfg.ttl, 1000);
    assert_int_equal(f.cfg.count, 10);
    assert_int_equal(f.cfg.offset, 0);
    assert_int_equal(f.cfg.mode, 0);
    assert_int_equal(f.cfg.level, -1);
    assert_false(f.cfg.verbose);
    assert_false(f.cfg.quiet);
    assert_string_equal(f.shared.region, "1");
    proto_config_free(f.tables, 2);
    assert_null(f.cfg.name);
    assert_null(f.shared.region);
    proto_config_free(f.tables, 2); // safe twice
    s_fixture_done(&f);
}

static void
test_dotenv_overrides_default(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    s_write_dotenv(&f, "T_NAME=from-dotenv\nT_COUNT=42\nT_REGION=eu\nOTHER_ACTOR_KEY=x\n");
    assert_int_equal(s_load(&f, NULL, NULL), 0);
    assert_string_equal(f.cfg.name, "from-dotenv");
    assert_int_equal(f.cfg.count, 42);
    assert_string_equal(f.shared.region, "eu");
    s_fixture_done(&f);
}

static void
test_env_overrides_dotenv(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    s_write_dotenv(&f, "T_NAME=from-dotenv\nT_COUNT=42\n");
    const char *envp[] = {"T_NAMEX=no", "T_NAME=from-env", "T_NAME=second", NULL};
    assert_int_equal(s_load(&f, NULL, envp), 0);
    assert_string_equal(f.cfg.name, "from-env"); // first match, as getenv
    assert_int_equal(f.cfg.count, 42);
    s_fixture_done(&f);
}

static void
test_flag_overrides_env(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    s_write_dotenv(&f, "T_NAME=from-dotenv\nT_COUNT=42\nT_OFFSET=3\n");
    const char *envp[] = {"T_NAME=from-env", "T_COUNT=43", NULL};
    const char *args[] = {"--name", "from-flag", "--count=44", "--offset", "-5", NULL};
    assert_int_equal(s_load(&f, args, envp), 0);
    assert_string_equal(f.cfg.name, "from-flag");
    assert_int_equal(f.cfg.count, 44);
    assert_int_equal(f.cfg.offset, -5); // a value may start with a single '-'
    s_fixture_done(&f);
}

static void
test_flag_last_wins(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    const char *args[] = {"--mode", "csv", "--mode=pretty", "--region=us", NULL};
    assert_int_equal(s_load(&f, args, NULL), 0);
    assert_int_equal(f.cfg.mode, 1);
    assert_string_equal(f.shared.region, "us");
    s_fixture_done(&f);
}

static void
test_bare_bool_flag(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    //  a boolean flag without a value switches it on and takes no argument
    const char *args[] = {"--verbose", "--quiet=false", "--name", "x", NULL};
    assert_int_equal(s_load(&f, args, NULL), 0);
    assert_true(f.cfg.verbose);
    assert_false(f.cfg.quiet);
    assert_string_equal(f.cfg.name, "x");
    s_fixture_done(&f);
}

static void
test_empty_counts_as_unset(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    s_write_dotenv(&f, "T_COUNT=7\n");
    const char *envp[] = {"T_NAME=", "T_COUNT=", "T_ADDR=", NULL};
    const char *args[] = {"--interval=", NULL};
    assert_int_equal(s_load(&f, args, envp), 0);
    assert_string_equal(f.cfg.name, "anon");
    assert_int_equal(f.cfg.count, 7);
    assert_int_equal(f.cfg.addr.port, 8080);
    assert_int_equal(f.cfg.interval, 2000);
    s_fixture_done(&f);
}

static void
test_empty_ok_keeps_empty(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    const char *envp[] = {"T_PATH=", NULL};
    assert_int_equal(s_load(&f, NULL, envp), 0);
    assert_string_equal(f.cfg.path, "");
    s_fixture_done(&f);

    s_fixture_init(&f);
    s_write_dotenv(&f, "T_PATH=\n");
    assert_int_equal(s_load(&f, NULL, NULL), 0);
    assert_string_equal(f.cfg.path, "");
    s_fixture_done(&f);

    s_fixture_init(&f);
    const char *envp2[] = {"T_PATH=/env", NULL};
    const char *args[] = {"--path=", NULL};
    assert_int_equal(s_load(&f, args, envp2), 0);
    assert_string_equal(f.cfg.path, "");
    s_fixture_done(&f);
}

static void
test_help(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    //  --help prints to stdout: catch it in a file.
    char out_path[128];
    snprintf(out_path, sizeof out_path, "%s/help.txt", f.dir);
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    int fd = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    const char *args[] = {"--help", "--bogus", NULL};
    int rc = s_load(&f, args, NULL);
    const char *args_h[] = {"-h", NULL};
    int rc_h = s_load(&f, args_h, NULL);
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    assert_int_equal(rc, 1);
    assert_int_equal(rc_h, 1);

    char text[8192] = "";
    FILE *file = fopen(out_path, "r");
    assert_non_null(file);
    size_t len = fread(text, 1, sizeof text - 1, file);
    text[len] = '\0';
    fclose(file);
    unlink(out_path);
    const char *usage = "usage: test_config [--flag value]...\n\n";
    assert_int_equal(strncmp(text, usage, strlen(usage)), 0);
    assert_non_null(strstr(text, "--addr ADDR"));
    assert_non_null(strstr(text, "T_ADDR"));
    assert_non_null(strstr(text, "(default: 0.0.0.0:8080)"));
    assert_non_null(strstr(text, "help for addr"));
    assert_non_null(strstr(text, "--mode json|pretty|csv"));
    assert_non_null(strstr(text, "T_REGION"));
    assert_non_null(strstr(text, "(default: unset)"));
    s_fixture_done(&f);
}

static void
test_help_redacts_secret_default(void **state)
{
    (void) state;
    static const proto_cfg_opt_t opts[] = {
        {"T_PASSWORD", "password", PROTO_CFG_STR, "hunter2", "db password", 0, 0, 0, NULL,
         PROTO_CFG_SECRET},
    };
    proto_cfg_table_t table = {opts, 1, NULL};
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    assert_non_null(out);
    proto_config_help(out, "prog", &table, 1);
    fclose(out);
    assert_non_null(strstr(buf, "usage: prog [--flag value]...\n\n"));
    assert_non_null(strstr(buf, "--password TEXT"));
    assert_non_null(strstr(buf, "(default: [REDACTED])"));
    assert_null(strstr(buf, "hunter2"));
    free(buf);
}

static void
test_bad_values(void **state)
{
    (void) state;
    s_expect_bad_env("T_ADDR=nohost",
                     "bad value for T_ADDR: 'nohost' (expected host:port with port 1-65535)");
    s_expect_bad_env(
        "T_INTERVAL=10",
        "bad value for T_INTERVAL: '10' (expected a duration > 0 such as 500ms, 2s, 1m)");
    s_expect_bad_env("T_TTL=-1s",
                     "bad value for T_TTL: '-1s' (expected 0 or a duration such as 500ms, 2s, 1m)");
    s_expect_bad_env("T_COUNT=0", "bad value for T_COUNT: '0' (expected an integer from 1 to 100)");
    s_expect_bad_env("T_COUNT=101",
                     "bad value for T_COUNT: '101' (expected an integer from 1 to 100)");
    s_expect_bad_env("T_COUNT=1x",
                     "bad value for T_COUNT: '1x' (expected an integer from 1 to 100)");
    s_expect_bad_env("T_OFFSET=-11",
                     "bad value for T_OFFSET: '-11' (expected an integer from -10 to 10)");
    s_expect_bad_env("T_MODE=JSON",
                     "bad value for T_MODE: 'JSON' (expected one of: json, pretty, csv)");
    s_expect_bad_env("T_VERBOSE=maybe",
                     "bad value for T_VERBOSE: 'maybe' (expected true or false)");
    //  Control bytes never break the one error line.
    s_expect_bad_env("T_ADDR=a\nb",
                     "bad value for T_ADDR: 'a?b' (expected host:port with port 1-65535)");
}

static void
test_int_parsing(void **state)
{
    (void) state;
    static const char *const bad[] = {"+5", " 5", "5 ", "--5", "-", "0x10", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        t_fixture_t f;
        s_fixture_init(&f);
        char assignment[64];
        snprintf(assignment, sizeof assignment, "T_COUNT=%s", bad[i]);
        const char *envp[] = {assignment, NULL};
        assert_int_equal(s_load(&f, NULL, envp), -1);
        assert_non_null(strstr(f.err, "expected an integer from 1 to 100"));
        s_fixture_done(&f);
    }
    t_fixture_t f;
    s_fixture_init(&f);
    const char *args[] = {"--count", "0100", "--offset=-10", NULL};
    assert_int_equal(s_load(&f, args, NULL), 0);
    assert_int_equal(f.cfg.count, 100);
    assert_int_equal(f.cfg.offset, -10);
    s_fixture_done(&f);
}

static void
test_secret_never_in_error(void **state)
{
    (void) state;
    static const proto_cfg_opt_t opts[] = {
        {"T_SECRET_PORT", "secret-port", PROTO_CFG_INT, NULL, "", 0, 1, 10, NULL, PROTO_CFG_SECRET},
    };
    int64_t value = 0;
    proto_cfg_table_t table = {opts, 1, &value};
    char err[256];
    char *envp[] = {"T_SECRET_PORT=s3cr3t", NULL};
    char *argv[] = {"prog", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, envp, NULL, "prog", err, sizeof err),
                     -1);
    assert_string_equal(
        err, "bad value for T_SECRET_PORT: '[REDACTED]' (expected an integer from 1 to 10)");
    assert_null(strstr(err, "s3cr3t"));

    //  Nor in the error for a flag: only the name before '=' is quoted.
    char *argv2[] = {"prog", "--secret=s3cr3t", NULL};
    assert_int_equal(proto_config_load(&table, 1, 2, argv2, NULL, NULL, "prog", err, sizeof err),
                     -1);
    assert_string_equal(err, "unknown option --secret");
}

//  A STR with min > 0: a value set shorter than min bytes is bad (a secret
//  stays hidden); unset, empty and long enough values load.
static void
test_str_min_length(void **state)
{
    (void) state;
    static const proto_cfg_opt_t opts[] = {
        {"T_KEY", "key", PROTO_CFG_STR, NULL, "", 0, 4, 0, NULL, PROTO_CFG_SECRET},
    };
    char *value = NULL;
    proto_cfg_table_t table = {opts, 1, &value};
    char err[256];
    char *argv[] = {"prog", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, NULL, NULL, "prog", err, sizeof err), 0);
    assert_null(value);
    char *empty[] = {"T_KEY=", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, empty, NULL, "prog", err, sizeof err),
                     0);
    assert_null(value);
    char *good[] = {"T_KEY=abcd", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, good, NULL, "prog", err, sizeof err), 0);
    assert_string_equal(value, "abcd");
    proto_config_free(&table, 1);
    char *bad[] = {"T_KEY=abc", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, bad, NULL, "prog", err, sizeof err), -1);
    assert_string_equal(err, "bad value for T_KEY: '[REDACTED]' (expected at least 4 bytes)");
    assert_null(value);
}

//  PROTO_CFG_URL: the password of a URL is redacted in errors and in the
//  log, the rest stays readable.
static void
test_url_password_redacted(void **state)
{
    (void) state;
    static const proto_cfg_opt_t opts[] = {
        {"T_URL", "url", PROTO_CFG_STR, NULL, "", 0, 0, 0, NULL, PROTO_CFG_URL},
        {"T_LONG_URL", "long-url", PROTO_CFG_STR, NULL, "", sizeof(char *), 64, 0, NULL,
         PROTO_CFG_URL},
    };
    char *values[2] = {NULL, NULL};
    proto_cfg_table_t table = {opts, 2, values};
    char err[256];
    char *argv[] = {"prog", NULL};
    char *bad[] = {"T_LONG_URL=redis://:hunter2@cache", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, bad, NULL, "prog", err, sizeof err), -1);
    assert_string_equal(
        err, "bad value for T_LONG_URL: 'redis://:[REDACTED]@cache' (expected at least 64 bytes)");

    char *good[] = {"T_URL=redis://alice:hunter2@cache:6379/1", NULL};
    assert_int_equal(proto_config_load(&table, 1, 1, argv, good, NULL, "prog", err, sizeof err), 0);
    assert_string_equal(values[0], "redis://alice:hunter2@cache:6379/1");
    char dir[] = "/tmp/test_config.XXXXXX";
    assert_non_null(mkdtemp(dir));
    char log_path[64];
    snprintf(log_path, sizeof log_path, "%s/log.txt", dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    proto_log_setup("test", "test-1", PROTO_LOG_INFO, PROTO_LOG_JSON, fd);
    proto_config_log(&table, 1);
    proto_log_shutdown();
    close(fd);
    char text[4096] = "";
    FILE *file = fopen(log_path, "r");
    assert_non_null(file);
    size_t len = fread(text, 1, sizeof text - 1, file);
    text[len] = '\0';
    fclose(file);
    unlink(log_path);
    rmdir(dir);
    assert_non_null(strstr(text, "\"T_URL\":\"redis://alice:[REDACTED]@cache:6379/1\""));
    assert_null(strstr(text, "hunter2"));
    proto_config_free(&table, 1);
}

static void
test_arguments(void **state)
{
    (void) state;
    struct {
        const char *args[4];
        const char *err;
    } cases[] = {
        {{"--foo", NULL}, "unknown option --foo"},
        {{"--foo=bar", NULL}, "unknown option --foo"},
        {{"-x", NULL}, "unknown option -x"},
        {{"--", NULL}, "unknown option --"},
        {{"--addr", NULL}, "option --addr needs a value"},
        {{"--addr", "--name", "x", NULL}, "option --addr needs a value"},
        {{"x", NULL}, "unexpected argument 'x'"},
        {{"--name", "a", "b", NULL}, "unexpected argument 'b'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_fixture_t f;
        s_fixture_init(&f);
        assert_int_equal(s_load(&f, cases[i].args, NULL), -1);
        assert_string_equal(f.err, cases[i].err);
        assert_null(f.cfg.name);
        s_fixture_done(&f);
    }
}

static void
test_durations(void **state)
{
    (void) state;
    struct {
        const char *text;
        bool zero_ok;
        int64_t ms;
    } good[] = {
        {"250ms", false, 250},
        {"2s", false, 2000},
        {"1m", false, 60000},
        {"1.5s", false, 1500},
        {"0.001s", false, 1},
        {"0.25m", false, 15000},
        {"1.500000000s", false, 1500},
        {"007s", false, 7000},
        {"0", true, 0},
        {"0ms", true, 0},
        {"0s", true, 0},
        {"525600m", false, 31536000000},
        {"31536000000ms", false, 31536000000},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t ms = -1;
        assert_int_equal(proto_config_parse_duration(good[i].text, good[i].zero_ok, &ms), 0);
        assert_int_equal(ms, good[i].ms);
    }
    struct {
        const char *text;
        bool zero_ok;
    } bad[] = {
        {"10", false},
        {"10", true},
        {"-1s", true},
        {"+1s", false},
        {"0", false},
        {"0s", false},
        {"0ms", false},
        {"5h", false},
        {"1.5", false},
        {"1.5ms", false}, // not a whole number of ms
        {"0.0001s", true},
        {"1.s", false},
        {".5s", false},
        {"", true},
        {" 2s", false},
        {"2s ", false},
        {"2 s", false},
        {"2S", false}, // units are case-sensitive
        {"2MS", false},
        {"2sec", false},
        {"1s500ms", false},
        {"00", true}, // only a bare "0" is unitless
        {"525601m", false},
        {"31536000001ms", false},
        {"99999999999999999999999s", false},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t ms = -7;
        assert_int_equal(proto_config_parse_duration(bad[i].text, bad[i].zero_ok, &ms), -1);
        assert_int_equal(ms, -7);
    }
    assert_int_equal(proto_config_parse_duration(NULL, true, &(int64_t){0}), -1);

    //  Through load: DURATION0 takes a bare 0, DURATION does not.
    t_fixture_t f;
    s_fixture_init(&f);
    const char *args[] = {"--ttl", "0", "--interval", "250ms", NULL};
    assert_int_equal(s_load(&f, args, NULL), 0);
    assert_int_equal(f.cfg.ttl, 0);
    assert_int_equal(f.cfg.interval, 250);
    s_fixture_done(&f);
    s_expect_bad_env(
        "T_INTERVAL=0",
        "bad value for T_INTERVAL: '0' (expected a duration > 0 such as 500ms, 2s, 1m)");
}

static void
test_addresses(void **state)
{
    (void) state;
    struct {
        const char *text;
        const char *host;
        uint16_t port;
    } good[] = {
        {"0.0.0.0:8080", "0.0.0.0", 8080},
        {":9000", "", 9000},
        {"[::1]:9000", "::1", 9000},
        {"[::ffff:10.0.0.1]:80", "::ffff:10.0.0.1", 80},
        {"localhost:1", "localhost", 1},
        {"my-host_1.example.com:65535", "my-host_1.example.com", 65535},
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        proto_addr_t addr;
        memset(&addr, 0, sizeof addr);
        assert_int_equal(proto_config_parse_addr(good[i].text, &addr), 0);
        assert_string_equal(addr.host, good[i].host);
        assert_int_equal(addr.port, good[i].port);
    }
    char long_host[300];
    memset(long_host, 'a', 256);
    snprintf(long_host + 256, sizeof long_host - 256, ":80");
    char max_host[300];
    memset(max_host, 'a', 255);
    snprintf(max_host + 255, sizeof max_host - 255, ":80");
    proto_addr_t addr;
    assert_int_equal(proto_config_parse_addr(max_host, &addr), 0);
    assert_int_equal(strlen(addr.host), 255);

    const char *bad[] = {
        "8080",     "host:",    "host:0",   "host:65536", "host:99999999999", "[::1]9000",
        "[::1]:",   "[]:80",    "[::1:80",  "[zz::1]:80", "[1.2.3.4]:80",     "::1:80",
        "a b:1",    "host: 80", "host:+80", "host:-1",    "host:80 ",         "host:80:81",
        "ho/st:80", "",         ":",        long_host,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&addr, 0x5a, sizeof addr);
        assert_int_equal(proto_config_parse_addr(bad[i], &addr), -1);
        assert_int_equal(addr.port, 0x5a5a); // untouched on failure
    }
}

static void
test_enum_and_bool(void **state)
{
    (void) state;
    static const char *const truths[] = {"1", "true", "TRUE", "yes", "Yes", "on", "ON"};
    static const char *const lies[] = {"0", "false", "False", "no", "NO", "off", "Off"};
    for (size_t i = 0; i < sizeof truths / sizeof truths[0]; i++) {
        t_fixture_t f;
        s_fixture_init(&f);
        const char *args[] = {"--verbose", truths[i], "--quiet", lies[i], NULL};
        assert_int_equal(s_load(&f, args, NULL), 0);
        assert_true(f.cfg.verbose);
        assert_false(f.cfg.quiet);
        s_fixture_done(&f);
    }
    t_fixture_t f;
    s_fixture_init(&f);
    const char *args[] = {"--mode", "csv", "--level", "high", NULL};
    assert_int_equal(s_load(&f, args, NULL), 0);
    assert_int_equal(f.cfg.mode, 2);
    assert_int_equal(f.cfg.level, 1);
    s_fixture_done(&f);

    s_expect_bad_env("T_LEVEL=lo", "bad value for T_LEVEL: 'lo' (expected one of: low, high)");
    s_expect_bad_env("T_LEVEL=low|high",
                     "bad value for T_LEVEL: 'low|high' (expected one of: low, high)");
    s_expect_bad_env("T_QUIET=2", "bad value for T_QUIET: '2' (expected true or false)");
}

static void
test_dotenv_parsing(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    s_write_dotenv(&f, "# a comment\n"
                       "\n"
                       "   # an indented comment\n"
                       "export T_NAME=exported\n"
                       "T_NOTE=\"two words # not a comment \\\"quoted\\\" back\\\\slash \\n\"\n"
                       "T_TOKEN='single $quoted \\\" raw'   # comment after quotes\n"
                       "T_REGION=  plain value   # inline comment\n"
                       "T_PATH=/a#b\n"
                       "T_MODE=pretty\r\n"
                       "  T_COUNT = 12\n"
                       "T_COUNT=13\n"
                       "lower_case_other=ignored\n"
                       "T_ADDR=[::1]:9000");
    assert_int_equal(s_load(&f, NULL, NULL), 0);
    assert_string_equal(f.cfg.name, "exported");
    assert_string_equal(f.cfg.note, "two words # not a comment \"quoted\" back\\slash \\n");
    assert_string_equal(f.cfg.token, "single $quoted \\\" raw");
    assert_string_equal(f.shared.region, "plain value");
    assert_string_equal(f.cfg.path, "/a#b");
    assert_int_equal(f.cfg.mode, 1);
    assert_int_equal(f.cfg.count, 13); // the last line wins
    assert_string_equal(f.cfg.addr.host, "::1");
    assert_int_equal(f.cfg.addr.port, 9000);
    s_fixture_done(&f);
}

static void
test_dotenv_errors(void **state)
{
    (void) state;
    struct {
        const char *text;
        const char *suffix;
    } cases[] = {
        {"T_NAME=ok\n# fine\nno equals sign\n", " line 3: expected KEY=VALUE"},
        {"1BAD=x\n", " line 1: expected KEY=VALUE"},
        {"BAD-KEY=x\n", " line 1: expected KEY=VALUE"},
        {"=x\n", " line 1: expected KEY=VALUE"},
        {"export T_NAME\n", " line 1: expected KEY=VALUE"},
        {"\n\nOTHER=\"unterminated\n", " line 3: unterminated quoted value"},
        {"OTHER='a' b\n", " line 1: unexpected text after the closing quote"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t_fixture_t f;
        s_fixture_init(&f);
        s_write_dotenv(&f, cases[i].text);
        assert_int_equal(s_load(&f, NULL, NULL), -1);
        char expected[256];
        snprintf(expected, sizeof expected, "%s%s", f.dotenv, cases[i].suffix);
        assert_string_equal(f.err, expected);
        assert_null(f.cfg.name);
        s_fixture_done(&f);
    }
}

static void
test_dotenv_long_line(void **state)
{
    (void) state;
    //  A value of 64 KiB less the "T_NOTE=" fits; one byte more does not.
    size_t cap = 65536 + 64;
    char *text = malloc(cap);
    assert_non_null(text);
    for (int extra = 0; extra <= 1; extra++) {
        t_fixture_t f;
        s_fixture_init(&f);
        size_t len = 65536 + (size_t) extra;
        memcpy(text, "T_NOTE=", 7);
        memset(text + 7, 'v', len - 7);
        snprintf(text + len, cap - len, "\nT_NAME=after\n");
        s_write_dotenv(&f, text);
        if (extra == 0) {
            assert_int_equal(s_load(&f, NULL, NULL), 0);
            assert_int_equal(strlen(f.cfg.note), 65536 - 7);
            assert_string_equal(f.cfg.name, "after");
        } else {
            assert_int_equal(s_load(&f, NULL, NULL), -1);
            char expected[256];
            snprintf(expected, sizeof expected, "%s line 1: longer than 65536 bytes", f.dotenv);
            assert_string_equal(f.err, expected);
        }
        s_fixture_done(&f);
    }
    free(text);
}

static void
test_dotenv_missing_and_unreadable(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    //  Missing: fine.
    assert_int_equal(s_load(&f, NULL, NULL), 0);
    assert_string_equal(f.cfg.name, "anon");
    proto_config_free(f.tables, 2);

    //  A path through a regular file: an error naming the file and the reason.
    s_write_dotenv(&f, "T_NAME=x\n");
    char path[160];
    snprintf(path, sizeof path, "%s/sub", f.dotenv);
    char *argv[] = {"prog", NULL};
    assert_int_equal(
        proto_config_load(f.tables, 2, 1, argv, NULL, path, "prog", f.err, sizeof f.err), -1);
    char expected[256];
    snprintf(expected, sizeof expected, "cannot open %s: Not a directory", path);
    assert_string_equal(f.err, expected);

    //  No .env at all (NULL path): defaults.
    assert_int_equal(
        proto_config_load(f.tables, 2, 1, argv, NULL, NULL, "prog", f.err, sizeof f.err), 0);
    assert_string_equal(f.cfg.name, "anon");
    s_fixture_done(&f);
}

static void
test_log(void **state)
{
    (void) state;
    t_fixture_t f;
    s_fixture_init(&f);
    const char *envp[] = {"T_TOKEN=s3cr3t-value", "T_NOTE=visible-note", NULL};
    const char *args[] = {"--interval", "1.5s", "--ttl", "0", NULL};
    assert_int_equal(s_load(&f, args, envp), 0);

    char log_path[128];
    snprintf(log_path, sizeof log_path, "%s/log.txt", f.dir);
    int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    proto_log_setup("test", "test-1", PROTO_LOG_INFO, PROTO_LOG_JSON, fd);
    proto_config_log(f.tables, 2);
    proto_log_shutdown();
    close(fd);

    char text[16384] = "";
    FILE *file = fopen(log_path, "r");
    assert_non_null(file);
    size_t len = fread(text, 1, sizeof text - 1, file);
    text[len] = '\0';
    fclose(file);
    unlink(log_path);
    size_t lines = 0;
    for (const char *p = text; *p; p++) {
        lines += *p == '\n';
    }
    //  one line holding every setting as a field named by its variable
    assert_int_equal(lines, 1);
    assert_non_null(strstr(text, "\"msg\":\"config\""));
    assert_null(strstr(text, "s3cr3t"));
    assert_non_null(strstr(text, "T_TOKEN"));
    assert_non_null(strstr(text, "[REDACTED]"));
    assert_non_null(strstr(text, "visible-note"));
    assert_non_null(strstr(text, "0.0.0.0:8080"));
    assert_non_null(strstr(text, "1500ms"));
    s_fixture_done(&f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_only),
        cmocka_unit_test(test_dotenv_overrides_default),
        cmocka_unit_test(test_env_overrides_dotenv),
        cmocka_unit_test(test_flag_overrides_env),
        cmocka_unit_test(test_flag_last_wins),
        cmocka_unit_test(test_bare_bool_flag),
        cmocka_unit_test(test_empty_counts_as_unset),
        cmocka_unit_test(test_empty_ok_keeps_empty),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_help_redacts_secret_default),
        cmocka_unit_test(test_bad_values),
        cmocka_unit_test(test_int_parsing),
        cmocka_unit_test(test_secret_never_in_error),
        cmocka_unit_test(test_str_min_length),
        cmocka_unit_test(test_url_password_redacted),
        cmocka_unit_test(test_arguments),
        cmocka_unit_test(test_durations),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_enum_and_bool),
        cmocka_unit_test(test_dotenv_parsing),
        cmocka_unit_test(test_dotenv_errors),
        cmocka_unit_test(test_dotenv_long_line),
        cmocka_unit_test(test_dotenv_missing_and_unreadable),
        cmocka_unit_test(test_log),
    };
    return cmocka_run_group_tests_name("proto_config", tests, NULL, NULL);
}
