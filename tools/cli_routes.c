/*  cli_routes - `switchyard routes list|get|apply|delete`: a thin client of
    the control API's routes (SPEC §5) for operators who prefer a terminal.

      list            GET    /api/v1/routes          a table, or --json the API's JSON
      get VHOST       GET    /api/v1/routes/VHOST    the route as JSON
      apply FILE|-    PUT    /api/v1/routes/VHOST    per route of the file, in order
      delete VHOST    DELETE /api/v1/routes/VHOST

    The admin listener is --admin URL, else http://GATEWAY_ADMIN_ADDR (an any
    address means loopback); ADMIN_TOKEN goes as Authorization: Bearer. vHosts
    are percent-encoded as path segments. Every call is one blocking libcurl
    request bounded by --timeout. Exit codes: 0 done, 1 the API refused or
    could not be reached (one line naming the URL and the reason, or the
    API's error code, field and message), 2 bad usage.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "cli_routes.h"
#include "proto_config.h"
#include "proto_util.h"

#define S_URL_MAX    2048 // the admin base URL, without the path
#define S_BODY_SHOWN 200  // bytes of a non-JSON error answer printed
#define S_API_PREFIX "/api/v1/routes"
#define S_EXIT_OK    0
#define S_EXIT_API   1
#define S_EXIT_USAGE 2

typedef struct {
    char *admin_url;         // SWITCHYARD_ADMIN_URL (--admin), NULL: from admin_addr
    proto_addr_t admin_addr; // GATEWAY_ADMIN_ADDR
    char *token;             // ADMIN_TOKEN, NULL or "" when unset
    int64_t timeout_ms;      // one API call, connect included
    bool json;               // list: the API's JSON instead of a table
} s_config_t;

static const proto_cfg_opt_t s_opts[] = {
    {"SWITCHYARD_ADMIN_URL", "admin", PROTO_CFG_STR, NULL,
     "the admin listener's URL, e.g. http://127.0.0.1:9000; unset: http://GATEWAY_ADMIN_ADDR",
     offsetof(s_config_t, admin_url), 1, 0, NULL, 0},
    {"GATEWAY_ADMIN_ADDR", "admin-addr", PROTO_CFG_ADDR, "127.0.0.1:9000",
     "the gateway's admin listener, used when --admin is not given",
     offsetof(s_config_t, admin_addr), 0, 0, NULL, 0},
    {"ADMIN_TOKEN", "token", PROTO_CFG_STR, NULL, "sent as Authorization: Bearer TOKEN",
     offsetof(s_config_t, token), 0, 0, NULL, PROTO_CFG_SECRET},
    {"SWITCHYARD_TIMEOUT", "timeout", PROTO_CFG_DURATION, "10s", "how long one API call may take",
     offsetof(s_config_t, timeout_ms), 0, 0, NULL, 0},
    {"SWITCHYARD_JSON", "json", PROTO_CFG_BOOL, "false",
     "list: print the API's JSON (pretty) instead of a table", offsetof(s_config_t, json), 0, 0,
     NULL, 0},
};

//  An answer being read.
typedef struct {
    char *data;    // the bytes so far, NUL-terminated once done
    size_t len;    // bytes in data
    size_t cap;    // allocated
    bool too_long; // over CLI_ROUTES_REPLY_MAX: the read was stopped
} s_reply_t;

//  What every command needs: the settings and one curl handle.
typedef struct {
    const s_config_t *cfg;          // settings
    CURL *curl;                     // reused for every call
    struct curl_slist *headers;     // Accept, Content-Type, Authorization
    char base[S_URL_MAX];           // "http://host:port", no trailing '/'
    char url[S_URL_MAX + 1024];     // of the current call, for messages
    char curl_err[CURL_ERROR_SIZE]; // libcurl's detail of a failed call
} s_client_t;

static void
s_usage(FILE *out)
{
    fprintf(
        out,
        "usage: switchyard routes COMMAND [ARG] [--admin URL] [--token TOKEN] [--timeout 10s]\n\n"
        "commands:\n"
        "  list [--json]      every route: vHost, strategy and backends (id=host:port state);\n"
        "                     --json: the API's JSON, pretty-printed\n"
        "  get VHOST          one route as JSON\n"
        "  apply FILE|-       create or replace the routes of FILE (- reads stdin): one route\n"
        "                     object or an array of them, each sent as PUT\n"
        "                     /api/v1/routes/VHOST in order; prints created/updated per route\n"
        "                     and stops at the first error\n"
        "  delete VHOST       remove a route\n\n"
        "The admin listener is --admin (SWITCHYARD_ADMIN_URL), else http://GATEWAY_ADMIN_ADDR\n"
        "(default 127.0.0.1:9000); --token defaults to ADMIN_TOKEN. Exit status: 0 done,\n"
        "1 the API refused or could not be reached, 2 bad usage.\n");
}

//  --------------------------------------------------------------------------
//  Arguments

static const proto_cfg_opt_t *
s_find_flag(const char *arg)
{
    if (!proto_starts_with(arg, "--"))
        return NULL;
    const char *name = arg + 2;
    const char *equals = strchr(name, '=');
    size_t len = equals ? (size_t) (equals - name) : strlen(name);
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_opts); i++)
        if (strlen(s_opts[i].flag) == len && strncmp(s_opts[i].flag, name, len) == 0)
            return &s_opts[i];
    return NULL;
}

//  Split argv (argv[0] = "routes") into flags (flags[0] = "routes", then
//  every flag with its value, for proto_config) and positional arguments.
//  A flag's value is the next argument unless the flag is boolean, has
//  "=value" or the next argument starts with "--" (as proto_config reads
//  them). "-" is positional (stdin); after "--" everything is.
static void
s_split(int argc, char **argv, char **flags, int *nflags, char **args, int *nargs)
{
    *nflags = 0;
    *nargs = 0;
    flags[(*nflags)++] = argv[0];
    bool options = true;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
        } else if (options && arg[0] == '-' && arg[1] != '\0') {
            flags[(*nflags)++] = argv[i];
            const proto_cfg_opt_t *opt = s_find_flag(arg);
            if (opt && opt->type != PROTO_CFG_BOOL && !strchr(arg, '=') && i + 1 < argc
                && !proto_starts_with(argv[i + 1], "--"))
                flags[(*nflags)++] = argv[++i];
        } else {
            args[(*nargs)++] = argv[i];
        }
    }
}

//  The base URL from the settings into client->base. Returns 0, or -1 after
//  printing why the URL is not usable.
static int
s_base_url(s_client_t *client)
{
    const s_config_t *cfg = client->cfg;
    int n;
    if (cfg->admin_url) {
        const char *url = cfg->admin_url;
        bool scheme = strstr(url, "://") != NULL;
        if (scheme && !proto_starts_with(url, "http://") && !proto_starts_with(url, "https://")) {
            fprintf(stderr,
                    "switchyard routes: bad value for --admin: '%s' (http:// or https://)\n", url);
            return -1;
        }
        n = snprintf(client->base, sizeof client->base, "%s%s", scheme ? "" : "http://", url);
    } else {
        const char *host = cfg->admin_addr.host;
        if (host[0] == '\0' || strcmp(host, "0.0.0.0") == 0)
            host = "127.0.0.1";
        else if (strcmp(host, "::") == 0)
            host = "::1";
        bool v6 = strchr(host, ':') != NULL;
        n = snprintf(client->base, sizeof client->base, "http://%s%s%s:%u", v6 ? "[" : "", host,
                     v6 ? "]" : "", (unsigned) cfg->admin_addr.port);
    }
    if (n < 0 || (size_t) n >= sizeof client->base) {
        fprintf(stderr, "switchyard routes: the admin URL is too long\n");
        return -1;
    }
    size_t len = (size_t) n;
    while (len > 0 && client->base[len - 1] == '/')
        client->base[--len] = '\0';
    for (const char *c = client->base; *c; c++) {
        if ((unsigned char) *c <= ' ' || *c == 0x7f) {
            fprintf(stderr, "switchyard routes: bad value for --admin: a space or control "
                            "character in the URL\n");
            return -1;
        }
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  HTTP

static size_t
s_on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    s_reply_t *reply = userdata;
    size_t n = size * nmemb;
    if (reply->len + n > CLI_ROUTES_REPLY_MAX) {
        reply->too_long = true;
        return 0; // stops the transfer
    }
    if (reply->len + n + 1 > reply->cap) {
        size_t cap = reply->cap ? reply->cap : 4096;
        while (cap < reply->len + n + 1)
            cap *= 2;
        reply->data = proto_xrealloc(reply->data, cap);
        reply->cap = cap;
    }
    memcpy(reply->data + reply->len, ptr, n);
    reply->len += n;
    reply->data[reply->len] = '\0';
    return n;
}

static void
s_reply_free(s_reply_t *reply)
{
    free(reply->data);
    reply->data = NULL;
    reply->len = reply->cap = 0;
}

//  Set up the handle and headers. Returns 0, or the exit code after
//  printing why: S_EXIT_USAGE for a bad setting, S_EXIT_API when libcurl fails.
static int
s_client_init(s_client_t *client, const s_config_t *cfg)
{
    client->cfg = cfg;
    if (s_base_url(client) != 0)
        return S_EXIT_USAGE;
    const char *token = cfg->token && *cfg->token ? cfg->token : NULL;
    for (const char *c = token; c && *c; c++) {
        if ((unsigned char) *c < ' ' || *c == 0x7f) {
            fprintf(stderr, "switchyard routes: bad value for ADMIN_TOKEN: a control character\n");
            return S_EXIT_USAGE;
        }
    }
    client->curl = curl_easy_init();
    if (client->curl == NULL) {
        fprintf(stderr, "switchyard routes: cannot start libcurl\n");
        return S_EXIT_API;
    }
    client->headers = curl_slist_append(client->headers, "Accept: application/json");
    client->headers = curl_slist_append(client->headers, "Content-Type: application/json");
    client->headers = curl_slist_append(client->headers, "Expect:"); // no 100-continue round trip
    if (token) {
        size_t cap = strlen("Authorization: Bearer ") + strlen(token) + 1;
        char *line = proto_xmalloc(cap);
        snprintf(line, cap, "Authorization: Bearer %s", token);
        client->headers = curl_slist_append(client->headers, line);
        free(line);
        line = NULL;
    }
    char agent[64];
    snprintf(agent, sizeof agent, "switchyard-routes/%s", SWITCHYARD_VERSION);
    curl_easy_setopt(client->curl, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(client->curl, CURLOPT_HTTPHEADER, client->headers);
    curl_easy_setopt(client->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(client->curl, CURLOPT_TIMEOUT_MS, (long) cfg->timeout_ms);
    curl_easy_setopt(client->curl, CURLOPT_CONNECTTIMEOUT_MS, (long) cfg->timeout_ms);
    curl_easy_setopt(client->curl, CURLOPT_ERRORBUFFER, client->curl_err);
    curl_easy_setopt(client->curl, CURLOPT_WRITEFUNCTION, s_on_data);
#if LIBCURL_VERSION_NUM >= 0x075500 // 7.85.0
    curl_easy_setopt(client->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(client->curl, CURLOPT_PROTOCOLS, (long) (CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    return 0;
}

static void
s_client_clear(s_client_t *client)
{
    curl_slist_free_all(client->headers);
    client->headers = NULL;
    if (client->curl)
        curl_easy_cleanup(client->curl);
    client->curl = NULL;
}

//  The path of one route, its vHost percent-encoded, into client->url.
//  Returns 0, or -1 after printing why.
static int
s_route_url(s_client_t *client, const char *vhost)
{
    char *segment = curl_easy_escape(client->curl, vhost, 0);
    if (segment == NULL) {
        fprintf(stderr, "switchyard routes: cannot encode vHost '%s'\n", vhost);
        return -1;
    }
    int n =
        snprintf(client->url, sizeof client->url, "%s" S_API_PREFIX "/%s", client->base, segment);
    curl_free(segment);
    segment = NULL;
    if (n < 0 || (size_t) n >= sizeof client->url) {
        fprintf(stderr, "switchyard routes: vHost too long: '%.64s...'\n", vhost);
        return -1;
    }
    return 0;
}

//  One call on client->url; body may be NULL. Returns the HTTP status with
//  the answer in *reply (caller frees with s_reply_free), or -1 after
//  printing one line naming the URL and the reason.
static long
s_call(s_client_t *client, const char *method, const char *body, s_reply_t *reply)
{
    CURL *curl = client->curl;
    memset(reply, 0, sizeof *reply);
    client->curl_err[0] = '\0';
    curl_easy_setopt(curl, CURLOPT_URL, client->url);
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(curl, CURLOPT_WRITEDATA, reply);
    if (body) {
        curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen(body));
    } else {
        curl_easy_setopt(curl, CURLOPT_HTTPGET,
                         1L); // no body; CUSTOMREQUEST still names the method
        curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
    }
    CURLcode rc = curl_easy_perform(curl);
    if (rc != CURLE_OK) {
        const char *detail = client->curl_err[0] ? client->curl_err : curl_easy_strerror(rc);
        if (reply->too_long)
            fprintf(stderr, "switchyard routes: %s %s: answer over %u bytes\n", method, client->url,
                    CLI_ROUTES_REPLY_MAX);
        else
            fprintf(stderr, "switchyard routes: %s %s: %s\n", method, client->url, detail);
        s_reply_free(reply);
        return -1;
    }
    long status = 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
    if (reply->data == NULL) {
        reply->data = proto_xcalloc(1, 1);
        reply->cap = 1;
    }
    return status;
}

//  One line for a refused call: the API's {"error": {code, field, message}}
//  when the answer has it, else the status and the start of the body.
static void
s_print_refusal(const s_client_t *client, const char *method, long status, const s_reply_t *reply)
{
    json_t *doc = json_loadb(reply->data, reply->len, 0, NULL);
    const json_t *error = json_object_get(doc, "error");
    const char *code = json_string_value(json_object_get(error, "code"));
    const char *field = json_string_value(json_object_get(error, "field"));
    const char *message = json_string_value(json_object_get(error, "message"));
    if (code || message) {
        fprintf(stderr, "switchyard routes: %s %s: %ld %s%s%s%s: %s\n", method, client->url, status,
                code ? code : "error", field && *field ? " (field " : "", field ? field : "",
                field && *field ? ")" : "", message ? message : "");
    } else {
        int shown = (int) (reply->len < S_BODY_SHOWN ? reply->len : S_BODY_SHOWN);
        while (shown > 0 && (reply->data[shown - 1] == '\n' || reply->data[shown - 1] == '\r'))
            shown--;
        fprintf(stderr, "switchyard routes: %s %s: HTTP %ld%s%.*s\n", method, client->url, status,
                shown > 0 ? ": " : "", shown, reply->data);
    }
    json_decref(doc);
}

//  The answer as JSON, or NULL after printing why.
static json_t *
s_parse_answer(const s_client_t *client, const char *method, const s_reply_t *reply)
{
    json_error_t err;
    json_t *doc = json_loadb(reply->data, reply->len, 0, &err);
    if (doc == NULL)
        fprintf(stderr, "switchyard routes: %s %s: the answer is not JSON (%s)\n", method,
                client->url, err.text);
    return doc;
}

static void
s_print_json(const json_t *doc)
{
    char *text = json_dumps(doc, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (text)
        printf("%s\n", text);
    free(text);
    text = NULL;
}

//  --------------------------------------------------------------------------
//  Commands

static const char *
s_backend_state(const json_t *backend)
{
    const json_t *dead = json_object_get(backend, "isDead");
    if (!json_is_boolean(dead))
        return "?";
    return json_is_true(dead) ? "dead" : "up";
}

//  "id=host:port state, ..." of one route (caller frees).
static char *
s_backends_text(const json_t *route)
{
    const json_t *backends = json_object_get(route, "backends");
    size_t cap = 64, len = 0;
    char *out = proto_xmalloc(cap);
    out[0] = '\0';
    size_t i;
    const json_t *be;
    json_array_foreach(backends, i, be)
    {
        const char *id = json_string_value(json_object_get(be, "id"));
        const char *host = json_string_value(json_object_get(be, "hostname"));
        json_int_t port = json_integer_value(json_object_get(be, "port"));
        bool v6 = host && strchr(host, ':');
        char item[600];
        int n = snprintf(item, sizeof item, "%s%s=%s%s%s:%lld %s", i > 0 ? ", " : "", id ? id : "?",
                         v6 ? "[" : "", host ? host : "?", v6 ? "]" : "", (long long) port,
                         s_backend_state(be));
        size_t add = n > 0 ? (size_t) n : 0;
        if (add >= sizeof item)
            add = sizeof item - 1;
        if (len + add + 1 > cap) {
            while (cap < len + add + 1)
                cap *= 2;
            out = proto_xrealloc(out, cap);
        }
        memcpy(out + len, item, add);
        len += add;
        out[len] = '\0';
    }
    if (len == 0)
        proto_strlcpy(out, "-", cap);
    return out;
}

static int
s_list(s_client_t *client)
{
    snprintf(client->url, sizeof client->url, "%s" S_API_PREFIX, client->base);
    s_reply_t reply;
    long status = s_call(client, "GET", NULL, &reply);
    if (status < 0)
        return S_EXIT_API;
    int rc = S_EXIT_API;
    json_t *doc = NULL;
    if (status != 200) {
        s_print_refusal(client, "GET", status, &reply);
        goto done;
    }
    doc = s_parse_answer(client, "GET", &reply);
    if (doc == NULL)
        goto done;
    if (!json_is_array(doc)) {
        fprintf(stderr, "switchyard routes: GET %s: the answer is not an array\n", client->url);
        goto done;
    }
    if (client->cfg->json) {
        s_print_json(doc);
        rc = S_EXIT_OK;
        goto done;
    }
    int width = (int) strlen("VHOST");
    size_t i;
    const json_t *route;
    json_array_foreach(doc, i, route)
    {
        const char *vhost = json_string_value(json_object_get(route, "vHost"));
        if (vhost && (int) strlen(vhost) > width)
            width = (int) strlen(vhost);
    }
    printf("%-*s  %-14s  %s\n", width, "VHOST", "STRATEGY", "BACKENDS");
    json_array_foreach(doc, i, route)
    {
        const char *vhost = json_string_value(json_object_get(route, "vHost"));
        const char *strategy = json_string_value(json_object_get(route, "strategy"));
        char *backends = s_backends_text(route);
        printf("%-*s  %-14s  %s\n", width, vhost ? vhost : "?", strategy ? strategy : "-",
               backends);
        free(backends);
        backends = NULL;
    }
    rc = S_EXIT_OK;
done:
    json_decref(doc);
    s_reply_free(&reply);
    return rc;
}

static int
s_get(s_client_t *client, const char *vhost)
{
    if (s_route_url(client, vhost) != 0)
        return S_EXIT_API;
    s_reply_t reply;
    long status = s_call(client, "GET", NULL, &reply);
    if (status < 0)
        return S_EXIT_API;
    int rc = S_EXIT_API;
    if (status == 200) {
        json_t *doc = s_parse_answer(client, "GET", &reply);
        if (doc) {
            s_print_json(doc);
            rc = S_EXIT_OK;
        }
        json_decref(doc);
    } else {
        s_print_refusal(client, "GET", status, &reply);
    }
    s_reply_free(&reply);
    return rc;
}

static int
s_delete(s_client_t *client, const char *vhost)
{
    if (s_route_url(client, vhost) != 0)
        return S_EXIT_API;
    s_reply_t reply;
    long status = s_call(client, "DELETE", NULL, &reply);
    if (status < 0)
        return S_EXIT_API;
    int rc = S_EXIT_API;
    if (status >= 200 && status < 300) {
        printf("deleted %s\n", vhost);
        rc = S_EXIT_OK;
    } else {
        s_print_refusal(client, "DELETE", status, &reply);
    }
    s_reply_free(&reply);
    return rc;
}

//  The routes of a file (or stdin for "-"): an array, or one object made
//  into an array of one. Every element must be an object with a non-empty
//  string vHost. Returns the array, or NULL after printing why.
static json_t *
s_load_routes(const char *path)
{
    json_error_t err;
    bool from_stdin = strcmp(path, "-") == 0;
    json_t *doc = from_stdin ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &err)
                             : json_load_file(path, JSON_REJECT_DUPLICATES, &err);
    const char *name = from_stdin ? "stdin" : path;
    if (doc == NULL) {
        if (err.line > 0)
            fprintf(stderr, "switchyard routes: %s: line %d column %d: %s\n", name, err.line,
                    err.column, err.text);
        else
            fprintf(stderr, "switchyard routes: %s: %s\n", name, err.text);
        return NULL;
    }
    if (json_is_object(doc)) {
        json_t *list = json_array();
        json_array_append_new(list, doc);
        doc = list;
    } else if (!json_is_array(doc)) {
        fprintf(stderr, "switchyard routes: %s: expected a route object or an array of them\n",
                name);
        json_decref(doc);
        return NULL;
    }
    size_t i;
    const json_t *route;
    json_array_foreach(doc, i, route)
    {
        const char *vhost = json_string_value(json_object_get(route, "vHost"));
        if (!json_is_object(route)) {
            fprintf(stderr, "switchyard routes: %s: route [%zu] is not an object\n", name, i);
        } else if (vhost == NULL || *vhost == '\0') {
            fprintf(stderr, "switchyard routes: %s: route [%zu] has no vHost\n", name, i);
        } else {
            continue;
        }
        json_decref(doc);
        return NULL;
    }
    return doc;
}

static int
s_apply(s_client_t *client, const char *path)
{
    json_t *routes = s_load_routes(path);
    if (routes == NULL)
        return S_EXIT_API;
    int rc = S_EXIT_OK;
    size_t i;
    const json_t *route;
    json_array_foreach(routes, i, route)
    {
        const char *vhost = json_string_value(json_object_get(route, "vHost"));
        if (s_route_url(client, vhost) != 0) {
            rc = S_EXIT_API;
            break;
        }
        char *body = json_dumps(route, JSON_COMPACT | JSON_PRESERVE_ORDER);
        s_reply_t reply;
        long status = body ? s_call(client, "PUT", body, &reply) : -1;
        free(body);
        body = NULL;
        if (status < 0) {
            rc = S_EXIT_API;
            break;
        }
        if (status == 201) {
            printf("created %s\n", vhost);
        } else if (status >= 200 && status < 300) {
            printf("updated %s\n", vhost);
        } else {
            s_print_refusal(client, "PUT", status, &reply);
            if (i > 0)
                fprintf(stderr,
                        "switchyard routes: stopped at route [%zu] (%s); the %zu before it "
                        "were applied\n",
                        i, vhost, i);
            rc = S_EXIT_API;
        }
        fflush(stdout);
        s_reply_free(&reply);
        if (rc != S_EXIT_OK)
            break;
    }
    json_decref(routes);
    return rc;
}

//  --------------------------------------------------------------------------

int
cli_routes(int argc, char **argv)
{
    extern char **environ;
    char **flags = proto_xcalloc((size_t) argc + 1, sizeof *flags);
    char **args = proto_xcalloc((size_t) argc + 1, sizeof *args);
    int nflags, nargs;
    s_split(argc, argv, flags, &nflags, args, &nargs);

    s_config_t cfg = {0};
    proto_cfg_table_t tables[] = {{s_opts, PROTO_ARRAY_SIZE(s_opts), &cfg}};
    s_client_t client = {0};
    int rc = S_EXIT_USAGE;
    for (int i = 1; i < nflags; i++) {
        if (strcmp(flags[i], "--help") == 0 || strcmp(flags[i], "-h") == 0) {
            s_usage(stdout);
            printf("\n");
            break;
        }
    }
    char err[512];
    int loaded = proto_config_load(tables, PROTO_ARRAY_SIZE(tables), nflags, flags, environ, ".env",
                                   "switchyard routes", err, sizeof err);
    if (loaded == 1) {
        rc = S_EXIT_OK;
        goto done;
    }
    if (loaded != 0) {
        fprintf(stderr, "switchyard routes: %s\n", err);
        goto done;
    }

    const char *command = nargs > 0 ? args[0] : NULL;
    int want = -1; // positional arguments after the command
    if (command == NULL) {
        fprintf(stderr, "switchyard routes: missing command (list, get, apply, delete)\n");
    } else if (strcmp(command, "list") == 0) {
        want = 0;
    } else if (strcmp(command, "get") == 0 || strcmp(command, "apply") == 0
               || strcmp(command, "delete") == 0) {
        want = 1;
    } else {
        fprintf(stderr, "switchyard routes: unknown command '%s' (list, get, apply, delete)\n",
                command);
    }
    if (want >= 0 && nargs - 1 != want) {
        fprintf(stderr, "switchyard routes %s: %s\n", command,
                nargs - 1 < want ? (strcmp(command, "apply") == 0 ? "missing FILE (or - for stdin)"
                                                                  : "missing VHOST")
                                 : "too many arguments");
        want = -1;
    } else if (want == 1 && strcmp(command, "apply") != 0 && args[1][0] == '\0') {
        fprintf(stderr, "switchyard routes %s: empty VHOST\n", command);
        want = -1;
    }
    if (want < 0) {
        fprintf(stderr, "usage: switchyard routes list|get VHOST|apply FILE|delete VHOST "
                        "[--admin URL] [--token TOKEN] (--help for more)\n");
        goto done;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        fprintf(stderr, "switchyard routes: cannot start libcurl\n");
        rc = S_EXIT_API;
        goto done;
    }
    rc = s_client_init(&client, &cfg);
    if (rc == S_EXIT_OK) {
        if (strcmp(command, "list") == 0)
            rc = s_list(&client);
        else if (strcmp(command, "get") == 0)
            rc = s_get(&client, args[1]);
        else if (strcmp(command, "apply") == 0)
            rc = s_apply(&client, args[1]);
        else
            rc = s_delete(&client, args[1]);
    }
    s_client_clear(&client);
    curl_global_cleanup();
done:
    proto_config_free(tables, PROTO_ARRAY_SIZE(tables));
    free(args);
    args = NULL;
    free(flags);
    flags = NULL;
    return rc;
}
