/*  it_settings - every setting of SPEC §2 belongs to an actor, and keeps to
    the contract there: the owner's --help lists it with its default, and a
    bad value stops the owner at start with exit code 2 and one line on
    stderr naming the variable and the value (a secret never shown).

    One row per setting: its owners, its default as --help prints it and one
    bad value. The actors' own settings that SPEC does not list have rows
    too, so that every variable any --help prints is covered. When
    ../shared/SPEC.md is there (beside the checkout, as in CI; or
    $SWITCHYARD_SPEC), its §2 table is parsed: each variable must have a row
    marked as SPEC's, with the default SPEC gives. Ownership is written down
    in docs/architecture.md ("Settings").

    A bad value must stop the actor before it binds the bus: a process whose
    bus files appear started happily and fails the row at once; one that
    neither exits nor binds fails at the deadline.
*/
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "it.h"

#define S_DEADLINE_MS 15000 // for one actor to exit on a bad value (sanitizer build, busy CI)
#define S_ALL         "*"   // owners: every actor

static const char *const s_actors[] = {"gateway", "router", "balancer", "healthd",
                                       "statsd",  "chatd",  "apid"};
#define S_NACTORS (sizeof s_actors / sizeof s_actors[0])

typedef struct {
    const char *name;   // variable; "<KIND>" stands for each actor kind
    const char *owners; // space-separated actors, or S_ALL
    const char *def;    // the default as --help prints it ("(default: <def>")
    const char *bad;    // one bad value
    const char *secret; // part of bad that must never be printed; NULL: the line quotes bad
    bool spec;          // a row of SPEC §2's table
} s_row_t;

static const s_row_t s_rows[] = {
    //  SPEC §2, in its order
    {"REGION", S_ALL, "1", "has space", NULL, true},
    {"LOG_LEVEL", S_ALL, "info", "loud", NULL, true},
    {"LOG_FORMAT", S_ALL, "pretty on a terminal", "xml", NULL, true},
    {"REDIS_URL", "gateway chatd", "unset", "redis://:hunter2@cache:notaport", "hunter2", true},
    {"DATABASE_URL", "router", "unset", "mysql://sy:hunter2@db/switchyard", "hunter2", true},
    {"ROUTER_STATE_FILE", "router", "var/state.json", "var/", NULL, true},
    {"BUS_DIR", S_ALL, "run/bus",
     "/tmp/a-bus-directory-path-far-too-long-for-a-unix-socket-name-to-fit-in-sun_path-at-all",
     NULL, true},
    {"GATEWAY_HTTP_ADDR", "gateway", "0.0.0.0:8080", "localhost:99999", NULL, true},
    {"GATEWAY_HTTPS_ADDR", "gateway", "unset", "8443", NULL, true},
    {"GATEWAY_ADMIN_ADDR", "gateway", "127.0.0.1:9000", "localhost", NULL, true},
    {"GATEWAY_TRUSTED_PROXIES", "gateway", "unset", "10.0.0.0/33", NULL, true},
    {"ADMIN_TOKEN", "gateway", "unset", "two s3cret words", "s3cret", true},
    {"GATEWAY_LEASE_TTL", "gateway", "1s", "-1s", NULL, true},
    {"ROUTER_REFRESH_INTERVAL", "router", "10s", "0", NULL, true},
    {"ROUTER_EDGE_SCHEMA", "router", "off", "sometimes", NULL, true},
    {"HEALTHD_INTERVAL", "healthd", "5s", "-5s", NULL, true},
    {"HEALTHD_TIMEOUT", "healthd", "2s", "2", NULL, true},
    {"HEALTHD_RECOVERY_INTERVAL", "healthd", "10s", "0", NULL, true},
    {"CHAT_JWT_SECRET", "gateway chatd", "unset", "short-s3cret", "s3cret", true},
    {"INSTANCE_ID", S_ALL, "<hostname>-<pid>", "has space", NULL, true},
    {"BUS_BIND", S_ALL, "unset", "udp://127.0.0.1:7100", NULL, true},
    {"BUS_PEERS_<KIND>", S_ALL, "unset", "udp://x", NULL, true},
    {"GATEWAY_DECISION_TIMEOUT", "gateway", "200ms", "0", NULL, true},
    {"GATEWAY_CONNECT_TIMEOUT", "gateway", "2s", "2", NULL, true},
    {"GATEWAY_HEADER_TIMEOUT", "gateway", "10s", "-10s", NULL, true},
    {"GATEWAY_BODY_TIMEOUT", "gateway", "30s", "30", NULL, true},
    {"GATEWAY_IDLE_TIMEOUT", "gateway", "65s", "soon", NULL, true},
    {"GATEWAY_UPSTREAM_IDLE_TIMEOUT", "gateway", "4s", "-4s", NULL, true},
    {"GATEWAY_DRAIN_TIMEOUT", "gateway", "10s", "-1s", NULL, true},
    {"GATEWAY_MAX_CONNECTIONS", "gateway", "100000", "0", NULL, true},
    {"GATEWAY_PUBLIC_HEALTH_PATH", "gateway", "/health", "health", NULL, true},
    {"CHAT_PING_INTERVAL", "gateway", "30s", "0", NULL, true},
    {"CHAT_IDLE_TIMEOUT", "gateway", "60s", "-60s", NULL, true},
    //  the actors' own, beyond SPEC
    {"BUS_INSECURE", S_ALL, "false", "maybe", NULL, false},
    {"BUS_CURVE_SERVER_SECRET", S_ALL, "unset", "s3cret-too-short", "s3cret", false},
    {"BUS_CURVE_SERVER_PUBLIC", S_ALL, "unset", "tooshort", NULL, false},
    {"BUS_CURVE_CLIENT_SECRET", S_ALL, "unset", "s3cret-too-short", "s3cret", false},
    {"BUS_CURVE_CLIENT_PUBLIC", S_ALL, "unset", "tooshort", NULL, false},
    {"BUS_CURVE_CLIENTS", S_ALL, "unset", "notakey", NULL, false},
    {"PROC_STATS_INTERVAL", S_ALL, "5s", "5", NULL, false},
    {"DNS_SERVERS", S_ALL, "unset", "10.0.0.1:notaport", NULL, false},
    {"GATEWAY_ADMIN_TIMEOUT", "gateway", "5s", "0", NULL, false},
    {"GATEWAY_ACCESS_LOG", "gateway", "true", "sometimes", NULL, false},
    {"APID_ROUTER_TIMEOUT", "apid", "3s", "-3s", NULL, false},
    {"APID_WEB_DIR", "apid", "unset", "/nonexistent/web", NULL, false},
    {"BALANCER_MAX_ROUTES", "balancer", "10000", "0", NULL, false},
};
#define S_NROWS (sizeof s_rows / sizeof s_rows[0])

//  The --help output of every actor, read once for the group.
typedef struct {
    it_env_t env;          // where the actors ran
    char *help[S_NACTORS]; // their --help output
} s_group_t;

static bool
s_owns(const s_row_t *row, const char *actor)
{
    if (strcmp(row->owners, S_ALL) == 0)
        return true;
    size_t len = strlen(actor);
    for (const char *p = row->owners; (p = strstr(p, actor)) != NULL; p += len)
        if ((p == row->owners || p[-1] == ' ') && (p[len] == '\0' || p[len] == ' '))
            return true;
    return false;
}

//  The variable of name with "<KIND>" replaced by kind (upper case).
static void
s_expand(const char *name, const char *kind, char *out, size_t cap)
{
    const char *mark = strstr(name, "<KIND>");
    if (mark == NULL) {
        snprintf(out, cap, "%s", name);
        return;
    }
    snprintf(out, cap, "%.*s%s%s", (int) (mark - name), name, kind, mark + strlen("<KIND>"));
    for (char *p = out + (mark - name); *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char) (*p - 'a' + 'A');
}

//  The help line (copied into line) whose variable is exactly name; false
//  if there is none. A line reads "  --flag META   VARIABLE  (default: ...)".
static bool
s_help_line(const char *help, const char *name, char *line, size_t cap)
{
    for (const char *p = help; *p;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t) (end - p) : strlen(p);
        const char *def = memmem(p, len, "(default: ", strlen("(default: "));
        if (def) {
            const char *var_end = def;
            while (var_end > p && var_end[-1] == ' ')
                var_end--;
            const char *var = var_end;
            while (var > p && var[-1] != ' ')
                var--;
            if ((size_t) (var_end - var) == strlen(name) && strncmp(var, name, strlen(name)) == 0) {
                snprintf(line, cap, "%.*s", (int) len, p);
                return true;
            }
        }
        p += len + (end ? 1 : 0);
    }
    return false;
}

static int
s_group_setup(void **state)
{
    s_group_t *group = calloc(1, sizeof *group);
    assert_non_null(group);
    assert_int_equal(it_env_init(&group->env), 0);
    for (size_t a = 0; a < S_NACTORS; a++) {
        char name[64];
        snprintf(name, sizeof name, "help-%s", s_actors[a]);
        const char *args[] = {"--help", NULL};
        int rc = it_run(&group->env, s_actors[a], name, NULL, args, S_DEADLINE_MS);
        if (rc != 0) {
            it_dump(&group->env, name);
            fail_msg("%s --help: exit %d", s_actors[a], rc);
        }
        group->help[a] = it_read_file(&group->env, name, "out");
        assert_non_null(group->help[a]);
    }
    *state = group;
    return 0;
}

static int
s_group_teardown(void **state)
{
    s_group_t *group = *state;
    for (size_t a = 0; a < S_NACTORS; a++)
        free(group->help[a]);
    it_env_fini(&group->env);
    free(group);
    return 0;
}

//  Every owner's --help lists the setting with its default; no other
//  actor's --help lists it.
static void
test_help_lists_owned_settings(void **state)
{
    s_group_t *group = *state;
    int failures = 0;
    for (size_t r = 0; r < S_NROWS; r++) {
        const s_row_t *row = &s_rows[r];
        for (size_t a = 0; a < S_NACTORS; a++) {
            for (size_t k = 0; k < S_NACTORS; k++) {
                char name[96], line[1024], want[128];
                s_expand(row->name, s_actors[k], name, sizeof name);
                bool listed = s_help_line(group->help[a], name, line, sizeof line);
                if (!s_owns(row, s_actors[a])) {
                    if (listed) {
                        fprintf(stderr, "%s --help lists %s, which it does not own\n", s_actors[a],
                                name);
                        failures++;
                    }
                } else if (!listed) {
                    fprintf(stderr, "%s --help does not list %s\n", s_actors[a], name);
                    failures++;
                } else {
                    snprintf(want, sizeof want, "(default: %s", row->def);
                    if (strstr(line, want) == NULL) {
                        fprintf(stderr, "%s --help: %s without '%s': %s\n", s_actors[a], name, want,
                                line);
                        failures++;
                    }
                }
                if (strstr(row->name, "<KIND>") == NULL)
                    break;
            }
        }
    }
    assert_int_equal(failures, 0);
}

//  Every variable an actor's --help prints has a row (a new setting needs one).
static void
test_every_listed_setting_has_a_row(void **state)
{
    s_group_t *group = *state;
    int failures = 0;
    for (size_t a = 0; a < S_NACTORS; a++) {
        for (const char *p = group->help[a]; *p;) {
            const char *end = strchr(p, '\n');
            size_t len = end ? (size_t) (end - p) : strlen(p);
            const char *def = memmem(p, len, "(default: ", strlen("(default: "));
            if (def) {
                const char *var_end = def;
                while (var_end > p && var_end[-1] == ' ')
                    var_end--;
                const char *var = var_end;
                while (var > p && var[-1] != ' ')
                    var--;
                char name[96];
                snprintf(name, sizeof name, "%.*s", (int) (var_end - var), var);
                bool found = false;
                for (size_t r = 0; r < S_NROWS && !found; r++)
                    for (size_t k = 0; k < S_NACTORS && !found; k++) {
                        char expanded[96];
                        s_expand(s_rows[r].name, s_actors[k], expanded, sizeof expanded);
                        found = strcmp(expanded, name) == 0;
                    }
                if (!found) {
                    fprintf(stderr, "%s --help lists %s, which has no row here\n", s_actors[a],
                            name);
                    failures++;
                }
            }
            p += len + (end ? 1 : 0);
        }
    }
    assert_int_equal(failures, 0);
}

//  One started process of a row.
typedef struct {
    const char *kind; // the actor
    char name[64];    // its log file stem
    pid_t pid;        // its pid, 0 once finished
    int rc;           // exit status; -1: deadline; -2: bound the bus (started)
} s_run_t;

//  True if kind/pid has bound its bus files in env.
static bool
s_bound(it_env_t *env, const char *kind, pid_t pid)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s.%d.req", env->bus_dir, kind, (int) pid);
    return access(path, F_OK) == 0;
}

//  Wait for every run: an exit (reaped by it_wait_exit), a bound bus (it
//  started happily: killed), or the deadline (killed).
static void
s_wait_runs(it_env_t *env, s_run_t *runs, size_t nruns)
{
    uint64_t deadline = it_now_ms() + S_DEADLINE_MS;
    size_t left = nruns;
    while (left > 0) {
        for (size_t i = 0; i < nruns; i++) {
            s_run_t *run = &runs[i];
            if (run->pid <= 0)
                continue;
            siginfo_t info;
            memset(&info, 0, sizeof info);
            int rc = waitid(P_PID, (id_t) run->pid, &info, WEXITED | WNOHANG | WNOWAIT);
            if (rc == 0 && info.si_pid == run->pid) {
                run->rc = it_wait_exit(env, run->pid, S_DEADLINE_MS);
            } else if (s_bound(env, run->kind, run->pid)) {
                it_kill(env, run->pid);
                run->rc = -2;
            } else if (it_now_ms() >= deadline) {
                it_kill(env, run->pid);
                run->rc = -1;
            } else {
                continue;
            }
            run->pid = 0;
            left--;
        }
        if (left > 0)
            it_pause(5);
    }
}

//  The row's bad value, given to each owner: exit 2 with one line naming it.
static int
s_check_bad(it_env_t *env, const s_row_t *row, const char *name, int *checked)
{
    s_run_t runs[S_NACTORS];
    size_t nruns = 0;
    char assignment[256], http[64], admin[64];
    snprintf(assignment, sizeof assignment, "%s=%s", name, row->bad);
    it_gateway_ports(http, admin);
    //  the first of a name in the environment wins: the row's value
    const char *envs[] = {assignment, http, admin, NULL};
    for (size_t a = 0; a < S_NACTORS; a++) {
        if (!s_owns(row, s_actors[a]))
            continue;
        s_run_t *run = &runs[nruns++];
        memset(run, 0, sizeof *run);
        run->kind = s_actors[a];
        snprintf(run->name, sizeof run->name, "bad-%s-%s", name, s_actors[a]);
        run->pid = it_spawn(env, run->kind, run->name, envs, NULL);
        assert_true(run->pid > 0);
    }
    s_wait_runs(env, runs, nruns);
    int failures = 0;
    for (size_t i = 0; i < nruns; i++) {
        s_run_t *run = &runs[i];
        char *err = it_read_file(env, run->name, "err");
        const char *text = err ? err : "";
        char quoted[256];
        snprintf(quoted, sizeof quoted, "'%s'", row->bad);
        const char *newline = strchr(text, '\n');
        const char *why = NULL;
        if (run->rc == -2)
            why = "started with it (bound the bus)";
        else if (run->rc == -1)
            why = "neither exited nor bound the bus before the deadline";
        else if (run->rc != 2)
            why = "exit code is not 2";
        else if (newline == NULL || newline[1] != '\0')
            why = "stderr is not exactly one line";
        else if (strstr(text, name) == NULL)
            why = "the line does not name the variable";
        else if (row->secret && strstr(text, row->secret))
            why = "the line shows the secret";
        else if (!row->secret && strstr(text, quoted) == NULL)
            why = "the line does not quote the value";
        if (why) {
            fprintf(stderr, "%s with %s: %s (exit %d), stderr: %s\n", run->kind, assignment, why,
                    run->rc, text);
            failures++;
        }
        free(err);
    }
    *checked += nruns;
    return failures;
}

static void
test_bad_value_stops_each_owner(void **state)
{
    s_group_t *group = *state;
    int failures = 0, checked = 0;
    uint64_t start = it_now_ms();
    for (size_t r = 0; r < S_NROWS; r++) {
        for (size_t k = 0; k < S_NACTORS; k++) {
            char name[96];
            s_expand(s_rows[r].name, s_actors[k], name, sizeof name);
            failures += s_check_bad(&group->env, &s_rows[r], name, &checked);
            if (strstr(s_rows[r].name, "<KIND>") == NULL)
                break;
        }
    }
    printf("  %d (setting, owner) pairs with a bad value: %d stopped with exit 2 and one line, "
           "in %llu ms\n",
           checked, checked - failures, (unsigned long long) (it_now_ms() - start));
    assert_int_equal(failures, 0);
}

//  Cross-setting checks and secrets of the config-load functions.
static void
test_checks_across_settings(void **state)
{
    s_group_t *group = *state;
    it_env_t *env = &group->env;
    const char *edge[] = {"ROUTER_EDGE_SCHEMA=on", NULL};
    assert_int_equal(it_run(env, "router", "edge", edge, NULL, S_DEADLINE_MS), 2);
    char *err = it_read_file(env, "edge", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "ROUTER_EDGE_SCHEMA: 'on'"));
    assert_non_null(strstr(err, "DATABASE_URL"));
    free(err);

    //  a libpq password is not printed either
    const char *pg[] = {"DATABASE_URL=host=db password=hunter2 user", NULL};
    assert_int_equal(it_run(env, "router", "pg", pg, NULL, S_DEADLINE_MS), 2);
    err = it_read_file(env, "pg", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "DATABASE_URL: 'host=db password=[REDACTED] user'"));
    assert_null(strstr(err, "hunter2"));
    free(err);

    //  a flag is checked the same way
    const char *args[] = {"--interval", "-5s", NULL};
    assert_int_equal(it_run(env, "healthd", "flag", NULL, args, S_DEADLINE_MS), 2);
    err = it_read_file(env, "flag", "err");
    assert_non_null(err);
    assert_non_null(strstr(err, "HEALTHD_INTERVAL: '-5s'"));
    free(err);
}

//  ---------------------------------------------------------------------
//  SPEC §2's table

static char *
s_read_spec(void)
{
    const char *path = getenv("SWITCHYARD_SPEC");
    if (path == NULL)
        path = "../shared/SPEC.md";
    FILE *file = fopen(path, "r");
    if (file == NULL)
        return NULL;
    size_t cap = 1 << 16, len = 0, n;
    char *text = malloc(cap);
    assert_non_null(text);
    while ((n = fread(text + len, 1, cap - len - 1, file)) > 0) {
        len += n;
        if (len + 1 == cap) {
            cap *= 2;
            text = realloc(text, cap);
            assert_non_null(text);
        }
    }
    text[len] = '\0';
    fclose(file);
    return text;
}

//  The n-th `backticked` token of cell [p, end) into out; false if none.
static bool
s_token(const char *p, const char *end, size_t n, char *out, size_t cap)
{
    for (size_t i = 0;; i++) {
        const char *open = memchr(p, '`', (size_t) (end - p));
        if (open == NULL)
            return false;
        const char *close = memchr(open + 1, '`', (size_t) (end - open - 1));
        if (close == NULL)
            return false;
        if (i == n) {
            snprintf(out, cap, "%.*s", (int) (close - open - 1), open + 1);
            return true;
        }
        p = close + 1;
    }
}

//  Each variable of SPEC §2 has a SPEC row here, with SPEC's default; each
//  SPEC row here is in SPEC.
static void
test_spec_table_covered(void **state)
{
    (void) state;
    char *spec = s_read_spec();
    if (spec == NULL) {
        printf("  ../shared/SPEC.md not found: SPEC coverage not checked\n");
        return;
    }
    const char *section = strstr(spec, "\n## 2.");
    assert_non_null(section);
    const char *section_end = strstr(section + 1, "\n## ");
    if (section_end == NULL)
        section_end = section + strlen(section);
    bool seen[S_NROWS] = {false};
    int names = 0, failures = 0;
    for (const char *line = section; line && line < section_end;) {
        line = strchr(line, '\n');
        if (line == NULL || line >= section_end)
            break;
        line++;
        if (strncmp(line, "| `", 3) != 0)
            continue;
        const char *cell = line + 1;
        const char *cell_end = strchr(cell, '|');
        const char *def_end = cell_end ? strchr(cell_end + 1, '|') : NULL;
        assert_non_null(def_end);
        char name[96];
        for (size_t i = 0; s_token(cell, cell_end, i, name, sizeof name); i++) {
            names++;
            size_t r = 0;
            while (r < S_NROWS && strcmp(s_rows[r].name, name) != 0)
                r++;
            if (r == S_NROWS || !s_rows[r].spec) {
                fprintf(stderr, "SPEC §2 lists %s: no SPEC row for it here\n", name);
                failures++;
                continue;
            }
            seen[r] = true;
            //  SPEC's default, when it is a value: the i-th token of the cell
            //  (`30s`, `60s` for two names), matched against --help's
            char def[96];
            const char *def_cell = cell_end + 1;
            while (*def_cell == ' ')
                def_cell++;
            if (*def_cell == '`' && s_token(def_cell, def_end, i, def, sizeof def)) {
                const char *help_def = s_rows[r].def;
                size_t len = strlen(def);
                if (strncmp(help_def, def, len) != 0
                    || (help_def[len] != '\0' && help_def[len] != ' ')) {
                    fprintf(stderr, "%s: SPEC's default is %s, --help's %s\n", name, def, help_def);
                    failures++;
                }
            }
        }
    }
    for (size_t r = 0; r < S_NROWS; r++)
        if (s_rows[r].spec && !seen[r]) {
            fprintf(stderr, "%s is marked as SPEC's here but SPEC §2 does not list it\n",
                    s_rows[r].name);
            failures++;
        }
    printf("  SPEC §2: %d variables, %d not covered\n", names, failures);
    //  the table was found and read (a format change must not pass silently)
    assert_true(names >= 30);
    free(spec);
    assert_int_equal(failures, 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_table_covered),
        cmocka_unit_test(test_help_lists_owned_settings),
        cmocka_unit_test(test_every_listed_setting_has_a_row),
        cmocka_unit_test(test_bad_value_stops_each_owner),
        cmocka_unit_test(test_checks_across_settings),
    };
    return cmocka_run_group_tests_name("it_settings", tests, s_group_setup, s_group_teardown);
}
