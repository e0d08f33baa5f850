/*  rt_store - the file store (see rt_store.h).

    The file is parsed with duplicate keys refused, and every route goes
    through the same validation as a route from the API: a hand-edited file
    that the API would refuse is refused here too, at start, rather than
    served half-understood.
*/
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "proto_log.h"
#include "proto_util.h"
#include "rt_store.h"

static int
s_fail(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *
rt_store_history_entry(uint64_t version, uint64_t at_ms, const char *by, const char *summary)
{
    char at[40];
    proto_iso8601_ms(at_ms, at, sizeof at);
    return json_pack("{s:I, s:s, s:s, s:s}", "version", (json_int_t) version, "at", at, "by", by,
                     "summary", summary);
}

void
rt_store_data_clear(rt_store_data_t *data)
{
    rt_table_destroy(&data->table);
    json_decref(data->regions);
    data->regions = NULL;
    json_decref(data->certificates);
    data->certificates = NULL;
    json_decref(data->history);
    data->history = NULL;
    data->version = 0;
}

static int
s_parse_routes(
    const json_t *routes, const char *region, rt_store_data_t *data, char *err, size_t errlen)
{
    if (routes == NULL)
        return 0;
    if (!json_is_array(routes))
        return s_fail(err, errlen, "\"routes\" is not an array");
    size_t i;
    const json_t *obj;
    json_array_foreach(routes, i, obj)
    {
        rt_error_t rerr = {.message = ""};
        rt_route_t *route = rt_route_new(obj, region, &rerr);
        if (route == NULL)
            return s_fail(err, errlen, "routes[%zu]%s%s: %s", i, rerr.field[0] ? "." : "",
                          rerr.field, rerr.message);
        if (rt_table_get(data->table, route->vhost)) {
            s_fail(err, errlen, "routes[%zu]: vHost '%s' appears twice", i, route->vhost);
            rt_route_unref(&route);
            return -1;
        }
        const json_t *maint = json_object_get(obj, "maintenance");
        if (maint && !json_is_array(maint)) {
            rt_route_unref(&route);
            return s_fail(err, errlen, "routes[%zu].maintenance is not an array", i);
        }
        size_t j;
        const json_t *id;
        json_array_foreach(maint, j, id)
        {
            if (!json_is_string(id)) {
                rt_route_unref(&route);
                return s_fail(err, errlen, "routes[%zu].maintenance[%zu] is not a string", i, j);
            }
            // an id that is no longer a backend is harmless: nothing to mark
            int at = rt_route_find_backend(route, json_string_value(id));
            if (at >= 0)
                rt_route_set_maint(route, (size_t) at, true, 0);
        }
        rt_table_put(data->table, route);
        rt_route_unref(&route);
    }
    return 0;
}

static int
s_parse_regions(json_t *regions, rt_store_data_t *data, char *err, size_t errlen)
{
    if (regions == NULL)
        return 0;
    if (!json_is_array(regions))
        return s_fail(err, errlen, "\"regions\" is not an array");
    size_t i;
    const json_t *r;
    json_array_foreach(regions, i, r)
    {
        const json_t *id = json_object_get(r, "id");
        const json_t *addr = json_object_get(r, "publicAddress");
        if (!json_is_string(id) || json_string_length(id) == 0)
            return s_fail(err, errlen, "regions[%zu].id is not a string", i);
        if (addr && !json_is_string(addr) && !json_is_null(addr))
            return s_fail(err, errlen, "regions[%zu].publicAddress is not a string", i);
    }
    json_decref(data->regions);
    data->regions = json_incref(regions);
    return 0;
}

static int
s_parse_document(json_t *doc, const char *region, rt_store_data_t *data, char *err, size_t errlen);

//  Certificates were validated by apid (OpenSSL) before they were stored;
//  here only the shape is checked. Other members are kept as they are:
//  issuer, subject, the dates, and the optional OCSP response ("ocsp",
//  base64, decoded by rt_control for certs.reply) with its
//  "ocspNextUpdate".
static int
s_parse_certificates(json_t *certs, rt_store_data_t *data, char *err, size_t errlen)
{
    if (certs == NULL)
        return 0;
    if (!json_is_array(certs))
        return s_fail(err, errlen, "\"certificates\" is not an array");
    static const char *const fields[] = {"domain", "cert", "key"};
    static const char *const optional[] = {"ocsp", "ocspNextUpdate"};
    size_t i;
    const json_t *c;
    json_array_foreach(certs, i, c)
    {
        if (!json_is_object(c))
            return s_fail(err, errlen, "certificates[%zu] is not an object", i);
        for (size_t f = 0; f < PROTO_ARRAY_SIZE(fields); f++)
            if (!json_is_string(json_object_get(c, fields[f])))
                return s_fail(err, errlen, "certificates[%zu].%s is not a string", i, fields[f]);
        for (size_t f = 0; f < PROTO_ARRAY_SIZE(optional); f++) {
            const json_t *v = json_object_get(c, optional[f]);
            if (v && !json_is_string(v))
                return s_fail(err, errlen, "certificates[%zu].%s is not a string", i, optional[f]);
        }
    }
    json_decref(data->certificates);
    data->certificates = json_incref(certs);
    return 0;
}

static int
s_parse_history(json_t *history, rt_store_data_t *data, char *err, size_t errlen)
{
    if (history == NULL)
        return 0;
    if (!json_is_array(history))
        return s_fail(err, errlen, "\"history\" is not an array");
    size_t i;
    const json_t *h;
    json_array_foreach(history, i, h)
    {
        if (!json_is_object(h) || !json_is_integer(json_object_get(h, "version")))
            return s_fail(err, errlen, "history[%zu] is not a {\"version\", ...} object", i);
    }
    json_decref(data->history);
    data->history = json_copy(history);
    while (json_array_size(data->history) > RT_STORE_HISTORY_MAX)
        json_array_remove(data->history, 0);
    return 0;
}

int
rt_store_parse(
    const json_t *cdoc, const char *region, rt_store_data_t *data, char *err, size_t errlen)
{
    if (data->table == NULL)
        data->table = rt_table_new();
    if (data->regions == NULL)
        data->regions = json_array();
    if (data->certificates == NULL)
        data->certificates = json_array();
    if (data->history == NULL)
        data->history = json_array();
    json_t *doc = (json_t *) cdoc; // only read: jansson's getters are not const
    if (s_parse_document(doc, region, data, err, errlen) != 0) {
        rt_store_data_clear(data);
        return -1;
    }
    return 0;
}

static int
s_parse_document(json_t *doc, const char *region, rt_store_data_t *data, char *err, size_t errlen)
{
    if (!json_is_object(doc))
        return s_fail(err, errlen, "the document is not a JSON object");
    json_t *format = json_object_get(doc, "format");
    if (!json_is_integer(format) || json_integer_value(format) != RT_STORE_FORMAT)
        return s_fail(err, errlen, "\"format\" is not %d", RT_STORE_FORMAT);
    json_t *version = json_object_get(doc, "version");
    if (!json_is_integer(version) || json_integer_value(version) < 0)
        return s_fail(err, errlen, "\"version\" is not a non-negative integer");
    data->version = (uint64_t) json_integer_value(version);
    if (s_parse_routes(json_object_get(doc, "routes"), region, data, err, errlen) != 0)
        return -1;
    if (s_parse_regions(json_object_get(doc, "regions"), data, err, errlen) != 0)
        return -1;
    if (s_parse_certificates(json_object_get(doc, "certificates"), data, err, errlen) != 0)
        return -1;
    return s_parse_history(json_object_get(doc, "history"), data, err, errlen);
}

int
rt_store_load(const char *path, const char *region, rt_store_data_t *data, char *err, size_t errlen)
{
    data->version = 0;
    data->table = rt_table_new();
    data->regions = json_array();
    data->certificates = json_array();
    data->history = json_array();
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        if (errno == ENOENT)
            return 1;
        s_fail(err, errlen, "cannot open '%s': %s", path, strerror(errno));
        goto fail;
    }
    json_error_t jerr;
    json_t *doc = json_loadf(f, JSON_REJECT_DUPLICATES, &jerr);
    fclose(f);
    if (doc == NULL) {
        s_fail(err, errlen, "'%s' is not readable JSON: %s (line %d, column %d)", path, jerr.text,
               jerr.line, jerr.column);
        goto fail;
    }
    char why[400];
    int rc = s_parse_document(doc, region, data, why, sizeof why);
    json_decref(doc);
    if (rc != 0) {
        s_fail(err, errlen, "'%s' is malformed: %s", path, why);
        goto fail;
    }
    return 0;
fail:
    rt_store_data_clear(data);
    return -1;
}

json_t *
rt_store_document(const rt_store_data_t *data)
{
    json_t *routes = json_array();
    size_t n = data->table ? rt_table_size(data->table) : 0;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(routes, rt_route_to_store(rt_table_at(data->table, i)));
    json_t *doc = json_object();
    json_object_set_new(doc, "format", json_integer(RT_STORE_FORMAT));
    json_object_set_new(doc, "version", json_integer((json_int_t) data->version));
    json_object_set_new(doc, "routes", routes);
    json_object_set_new(doc, "regions", data->regions ? json_incref(data->regions) : json_array());
    json_object_set_new(doc, "certificates",
                        data->certificates ? json_incref(data->certificates) : json_array());
    json_object_set_new(doc, "history", data->history ? json_incref(data->history) : json_array());
    return doc;
}

//  mkdir -p. Returns 0 or -1 with errno.
static int
s_mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (!proto_strlcpy(path, dir, sizeof path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(path, 0755) != 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return mkdir(path, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

static int
s_write_all(int fd, const char *text, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, text, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            if (n == 0)
                errno = EIO; // no progress and no errno: never a stale one
            return -1;
        }
        text += n;
        len -= (size_t) n;
    }
    return 0;
}

//  On failure, errno is the cause (kept across the cleanup): s_file_commit
//  tells a full disk from another failure by it.
int
rt_store_save(const char *path, const rt_store_data_t *data, char *err, size_t errlen)
{
    int e;
    char dir[PATH_MAX], tmp[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (slash == NULL)
        proto_strlcpy(dir, ".", sizeof dir);
    else if (slash == path)
        proto_strlcpy(dir, "/", sizeof dir);
    else
        snprintf(dir, sizeof dir, "%.*s", (int) (slash - path), path);
    int n = snprintf(tmp, sizeof tmp, "%s/.%s.XXXXXX", dir, slash ? slash + 1 : path);
    if (n < 0 || (size_t) n >= sizeof tmp) {
        errno = ENAMETOOLONG;
        return s_fail(err, errlen, "state file path too long: '%s'", path);
    }
    if (s_mkdirs(dir) != 0)
        return s_fail(err, errlen, "cannot create directory '%s': %s", dir, strerror(errno));

    json_t *doc = rt_store_document(data);
    char *text = json_dumps(doc, JSON_INDENT(2));
    json_decref(doc);
    if (text == NULL) {
        errno = ENOMEM;
        return s_fail(err, errlen, "cannot encode the configuration as JSON");
    }
    int fd = mkstemp(tmp);
    if (fd < 0) {
        e = errno;
        s_fail(err, errlen, "cannot create a temp file in '%s': %s", dir, strerror(e));
        free(text);
        errno = e;
        return -1;
    }
    int rc = s_write_all(fd, text, strlen(text));
    if (rc == 0)
        rc = s_write_all(fd, PROTO_LIT("\n"));
    e = errno;
    free(text);
    if (rc != 0 || fsync(fd) != 0) {
        e = rc != 0 ? e : errno;
        s_fail(err, errlen, "cannot write '%s': %s", tmp, strerror(e));
        close(fd);
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (close(fd) != 0) {
        e = errno;
        s_fail(err, errlen, "cannot write '%s': %s", tmp, strerror(e));
        unlink(tmp);
        errno = e;
        return -1;
    }
    if (rename(tmp, path) != 0) {
        e = errno;
        s_fail(err, errlen, "cannot rename '%s' to '%s': %s", tmp, path, strerror(e));
        unlink(tmp);
        errno = e;
        return -1;
    }
    // the rename is done: the new file is the configuration now, so a
    // failed directory sync is reported, not undone
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) != 0)
        log_warn("cannot sync the state file's directory", LOG_S("dir", dir), LOG_ERRNO(errno));
    if (dfd >= 0)
        close(dfd);
    return 0;
}

// --------------------------------------------------------------------------
// Keyed form (rt_history) and the file store as rt_store_ops_t

//  {member of each element: element} of an array of objects.
static json_t *
s_keyed(const json_t *array, const char *member)
{
    json_t *out = json_object();
    size_t i;
    json_t *obj;
    json_array_foreach(array, i, obj)
    {
        const char *k = json_string_value(json_object_get(obj, member));
        if (k)
            json_object_set(out, k, obj);
    }
    return out;
}

json_t *
rt_store_cfg(const rt_store_data_t *data)
{
    json_t *routes = json_object();
    size_t n = data->table ? rt_table_size(data->table) : 0;
    for (size_t i = 0; i < n; i++) {
        const rt_route_t *route = rt_table_at(data->table, i);
        json_object_set_new(routes, route->vhost, rt_route_to_store(route));
    }
    return json_pack("{s:o, s:o, s:o}", "routes", routes, "regions", s_keyed(data->regions, "id"),
                     "certificates", s_keyed(data->certificates, "domain"));
}

static int
s_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *) a, *(const char *const *) b);
}

//  The values of a keyed object, as an array ordered by key.
static json_t *
s_unkeyed(const json_t *obj)
{
    json_t *out = json_array();
    const char *key;
    json_t *value;
    json_t *o = (json_t *) obj;
    if (!json_is_object(o))
        return out;
    // jansson keeps insertion order; sort by key for a stable document
    size_t n = json_object_size(o), i = 0;
    const char **keys = proto_xcalloc(n ? n : 1, sizeof *keys);
    json_object_foreach(o, key, value) keys[i++] = key;
    qsort(keys, n, sizeof *keys, s_cmp_str);
    for (i = 0; i < n; i++)
        json_array_append(out, json_object_get(o, keys[i]));
    free(keys);
    return out;
}

json_t *
rt_store_cfg_document(const json_t *cfg, uint64_t version, const json_t *history)
{
    json_t *c = (json_t *) cfg;
    return json_pack("{s:i, s:I, s:o, s:o, s:o, s:o}", "format", RT_STORE_FORMAT, "version",
                     (json_int_t) version, "routes", s_unkeyed(json_object_get(c, "routes")),
                     "regions", s_unkeyed(json_object_get(c, "regions")), "certificates",
                     s_unkeyed(json_object_get(c, "certificates")), "history",
                     history ? json_copy((json_t *) history) : json_array());
}

static void
s_file_commit(void *store,
              const rt_store_data_t *next,
              const json_t *entry,
              rt_store_done_fn *done,
              void *done_arg)
{
    (void) entry; // the whole document holds it
    char err[512] = "";
    int rc = rt_store_save(store, next, err, sizeof err);
    // a full disk (or quota) is the store being unavailable for now, not a
    // fault of the change: 503 (nothing changed, the old file intact), not 500
    if (rc != 0 && (errno == ENOSPC || errno == EDQUOT))
        rc = RT_STORE_UNAVAILABLE;
    else if (rc != 0)
        rc = RT_STORE_FAILED;
    done(done_arg, rc, err);
}

rt_store_ops_t
rt_store_file_ops(const char *path)
{
    return (rt_store_ops_t){.commit = s_file_commit, .reload = NULL, .store = (void *) path};
}
