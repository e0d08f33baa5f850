/*  hd_specs - parse config.get what=health (see hd_specs.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_util.h"
#include "hd_specs.h"

static char *
s_str(json_t *obj, const char *key, const char *dflt)
{
    const char *v = json_string_value(json_object_get(obj, key));
    return v ? proto_xstrdup(v) : dflt ? proto_xstrdup(dflt) : NULL;
}

int
hd_specs_parse(const char *text,
               hd_spec_t **specs_out,
               size_t *count_out,
               size_t *skipped,
               char *err,
               size_t errlen)
{
    int64_t next;
    if (hd_specs_parse_page(text, specs_out, count_out, skipped, &next, err, errlen) != 0)
        return -1;
    if (next >= 0) {
        hd_specs_free(specs_out, *count_out);
        *count_out = 0;
        snprintf(err, errlen, "not an array");
        return -1;
    }
    return 0;
}

int
hd_specs_parse_page(const char *text,
                    hd_spec_t **specs_out,
                    size_t *count_out,
                    size_t *skipped,
                    int64_t *next,
                    char *err,
                    size_t errlen)
{
    *specs_out = NULL;
    *count_out = 0;
    *skipped = 0;
    *next = -1;
    json_error_t jerr;
    json_t *doc = json_loads(text ? text : "", 0, &jerr);
    json_t *root = doc;
    if (json_is_object(doc)) {
        root = json_object_get(doc, "routes");
        json_t *n = json_object_get(doc, "next");
        if (json_is_integer(n) && json_integer_value(n) >= 0)
            *next = json_integer_value(n);
        else if (n != NULL && !json_is_null(n))
            root = NULL;
    }
    if (root == NULL || !json_is_array(root)) {
        snprintf(err, errlen, "%s",
                 doc ? "not an array or a {\"routes\": [...], \"next\"} page" : jerr.text);
        json_decref(doc);
        return -1;
    }
    size_t cap = 0, count = 0;
    hd_spec_t *specs = NULL;
    size_t i;
    json_t *route;
    json_array_foreach(root, i, route)
    {
        const char *id = json_string_value(json_object_get(route, "route"));
        json_t *backends = json_object_get(route, "backends");
        if (id == NULL || *id == '\0' || !json_is_array(backends)) {
            (*skipped)++;
            continue;
        }
        size_t b;
        json_t *be;
        json_array_foreach(backends, b, be)
        {
            const char *bid = json_string_value(json_object_get(be, "id"));
            const char *host = json_string_value(json_object_get(be, "hostname"));
            json_int_t port = json_integer_value(json_object_get(be, "port"));
            if (bid == NULL || *bid == '\0' || host == NULL || *host == '\0' || port < 1
                || port > 65535) {
                (*skipped)++;
                continue;
            }
            if (count == cap) {
                cap = cap ? cap * 2 : 16;
                specs = proto_xrealloc(specs, cap * sizeof *specs);
            }
            hd_spec_t *s = &specs[count++];
            memset(s, 0, sizeof *s);
            s->route = proto_xstrdup(id);
            s->vhost = s_str(route, "vHost", "");
            s->path = s_str(route, "healthPath", "/");
            if (s->path[0] != '/') {
                free(s->path);
                s->path = proto_xstrdup("/");
            }
            s->backend = proto_xstrdup(bid);
            s->host = proto_xstrdup(host);
            s->port = (uint16_t) port;
            s->region = s_str(be, "region", "");
            const char *probe = json_string_value(json_object_get(be, "probe"));
            s->tcp = probe && strcmp(probe, "tcp") == 0;
            s->maint = json_is_true(json_object_get(be, "maintenance"));
        }
    }
    json_decref(doc);
    *specs_out = specs;
    *count_out = count;
    return 0;
}

void
hd_specs_move(hd_spec_t **to, size_t *to_count, hd_spec_t **from, size_t count)
{
    if (count > 0) {
        *to = proto_xrealloc(*to, (*to_count + count) * sizeof **to);
        memcpy(*to + *to_count, *from, count * sizeof **from);
        *to_count += count;
    }
    free(*from);
    *from = NULL;
}

void
hd_specs_free(hd_spec_t **specs_p, size_t count)
{
    hd_spec_t *specs = *specs_p;
    if (specs == NULL)
        return;
    for (size_t i = 0; i < count; i++) {
        free(specs[i].route);
        free(specs[i].vhost);
        free(specs[i].path);
        free(specs[i].backend);
        free(specs[i].host);
        free(specs[i].region);
    }
    free(specs);
    *specs_p = NULL;
}

bool
hd_specs_host_header(const hd_spec_t *spec, char *out, size_t cap)
{
    const char *v = spec->vhost ? spec->vhost : "";
    bool catch_all = *v == '\0' || strchr(v, '*') != NULL || strcmp(v, "_") == 0;
    int n;
    if (!catch_all)
        n = snprintf(out, cap, "%s", v);
    else if (spec->port == 80)
        n = snprintf(out, cap, strchr(spec->host, ':') ? "[%s]" : "%s", spec->host);
    else
        n = snprintf(out, cap, strchr(spec->host, ':') ? "[%s]:%u" : "%s:%u", spec->host,
                     (unsigned) spec->port);
    return n > 0 && (size_t) n < cap;
}
