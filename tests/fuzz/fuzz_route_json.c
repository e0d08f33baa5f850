/*  fuzz_route_json - libFuzzer target for the control API's body validation (api_route).

    Feeds the input to api_route_parse (path vHost NULL, as POST /routes does, and
    "api.example.com", as PUT /routes/api.example.com does) and to api_backend_parse, and
    checks what apid/api_route.h and api_json.h promise:
    - on failure: status 400, a code from the header's list, a non-empty message, all three
      strings NUL-terminated inside their arrays; invalid_json has the empty field ""; field
      and message are valid UTF-8 and the error body built from them (api_error_body)
      carries code, message and field unchanged (fuzz_json_common.h);
    - on success: a JSON object in the normalized form (a route has every field of SPEC §4
      in its order, a backend hostname, port, weight, probe and id), with the path's vHost
      when one was given; json_dumps of it parses again to the same text (normalization is
      idempotent), each of a route's backends re-parses alone to itself
      (GET -> edit -> POST .../backends), and a route accepted without a path vHost is
      accepted the same under its own vHost (GET -> edit -> PUT);
    - the same input gives the same answer twice.
    Everything is freed (ASan's leak check). Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_json.h"
#include "api_route.h"
#include "fuzz_json_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define S_PATH_VHOST "api.example.com"

typedef enum { S_ROUTE, S_BACKEND } s_kind_t;

static const char *const s_codes[] = {FUZZ_JSON_CODES, "duplicate_id", NULL};

//  SPEC §4's order, which a normalized route follows exactly.
static const char *const s_route_keys[] = {"id",
                                           "vHost",
                                           "strategy",
                                           "autoHttps",
                                           "reqActiveLength",
                                           "reqQueueLength",
                                           "retries",
                                           "timeoutMs",
                                           "queueTimeoutMs",
                                           "maxBodyBytes",
                                           "headers",
                                           "auth",
                                           "authProvider",
                                           "authCacheMs",
                                           "rateLimit",
                                           "chatPath",
                                           "healthPath",
                                           "backends",
                                           "ssl",
                                           NULL};

static json_t *
s_parse(s_kind_t kind, const char *text, size_t len, const char *path_vhost, api_error_t *err)
{
    return kind == S_ROUTE ? api_route_parse(text, len, path_vhost, err)
                           : api_backend_parse(text, len, err);
}

static void
s_check_backend_shape(const json_t *b)
{
    if (!json_is_object(b) || !json_is_string(json_object_get(b, "id"))
        || !json_is_string(json_object_get(b, "hostname"))
        || !json_is_integer(json_object_get(b, "port"))
        || !json_is_integer(json_object_get(b, "weight"))
        || !json_is_string(json_object_get(b, "probe")))
        abort();
    json_t *region = json_object_get(b, "region");
    if (json_object_size(b) != (region ? 6u : 5u) || (region && !json_is_string(region)))
        abort();
}

static void
s_check_route_shape(const json_t *r, const char *path_vhost)
{
    if (!json_is_object(r))
        abort();
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach((json_t *) r, key, value)
    {
        if (s_route_keys[i] == NULL || strcmp(key, s_route_keys[i]) != 0)
            abort();
        i++;
    }
    if (s_route_keys[i] != NULL)
        abort();
    const char *vhost = json_string_value(json_object_get(r, "vHost"));
    if (vhost == NULL || (path_vhost && strcmp(vhost, path_vhost) != 0))
        abort();
    json_t *backends = json_object_get(r, "backends");
    if (!json_is_array(backends))
        abort();
    size_t j;
    json_array_foreach(backends, j, value) s_check_backend_shape(value);
}

//  Parse the serialized result again: it must come back as the same text.
static void
s_check_idempotent(s_kind_t kind, const json_t *out, const char *path_vhost, const char *text)
{
    api_error_t err2;
    json_t *again = s_parse(kind, text, strlen(text), path_vhost, &err2);
    if (again == NULL)
        abort();
    char *text2 = json_dumps(again, JSON_COMPACT);
    if (text2 == NULL || strcmp(text, text2) != 0 || !json_equal((json_t *) out, again))
        abort();
    free(text2);
    json_decref(again);
}

//  One parse, checked; returns the serialized result (caller frees) or NULL.
static char *
s_run(s_kind_t kind, const char *buf, size_t len, const char *path_vhost)
{
    api_error_t err;
    memset(&err, 0xa5, sizeof err); // so an unfilled field shows
    json_t *out = s_parse(kind, buf, len, path_vhost, &err);
    api_error_t err_b;
    memset(&err_b, 0xa5, sizeof err_b);
    json_t *out_b = s_parse(kind, buf, len, path_vhost, &err_b);
    if ((out == NULL) != (out_b == NULL))
        abort();
    if (out == NULL) {
        fuzz_json_check_error(&err, s_codes);
        fuzz_json_check_same_error(&err, &err_b);
        return NULL;
    }
    if (!json_equal(out, out_b))
        abort();
    json_decref(out_b);
    if (kind == S_ROUTE)
        s_check_route_shape(out, path_vhost);
    else
        s_check_backend_shape(out);
    char *text = json_dumps(out, JSON_COMPACT);
    if (text == NULL)
        abort();
    s_check_idempotent(kind, out, path_vhost, text);
    if (kind == S_ROUTE) {
        size_t i;
        json_t *b;
        json_array_foreach(json_object_get(out, "backends"), i, b)
        {
            char *btext = json_dumps(b, JSON_COMPACT);
            if (btext == NULL)
                abort();
            s_check_idempotent(S_BACKEND, b, NULL, btext);
            free(btext);
        }
    }
    json_decref(out);
    return text;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, not NUL-terminated, so ASan catches any read past the end.
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);

    char *route = s_run(S_ROUTE, buf, size, NULL);
    if (route) {
        //  The same body PUT under its own vHost is accepted unchanged.
        json_t *doc = json_loads(route, 0, NULL);
        const char *vhost = json_string_value(json_object_get(doc, "vHost"));
        if (vhost == NULL)
            abort();
        api_error_t err;
        json_t *put = api_route_parse(buf, size, vhost, &err);
        char *put_text = put ? json_dumps(put, JSON_COMPACT) : NULL;
        if (put_text == NULL || strcmp(put_text, route) != 0)
            abort();
        free(put_text);
        json_decref(put);
        json_decref(doc);
        free(route);
    }
    free(s_run(S_ROUTE, buf, size, S_PATH_VHOST));
    free(s_run(S_BACKEND, buf, size, NULL));
    free(buf);
    return 0;
}
