/*  fuzz_region_json - libFuzzer target for the region body (api_region).

    Feeds the input to api_region_parse for two path ids ("2" and "eu-west/1", as
    PUT /api/v1/regions/2 and PUT /api/v1/regions/eu-west%2F1 do) and checks what
    apid/api_region.h and api_json.h promise:
    - on failure: status 400, a code from the header's list, a non-empty message, all three
      strings NUL-terminated inside their arrays; invalid_json has the empty field ""; field
      and message are valid UTF-8 and the error body built from them (api_error_body)
      carries code, message and field unchanged (fuzz_json_common.h);
    - on success: exactly {"id": <path id>, "publicAddress": "host:port"}, the address as
      proto_route_address_normalize leaves it (normalizing it again changes nothing), with an
      explicit port; json_dumps of it parses again to the same text (GET -> edit -> PUT);
    - the same input gives the same answer twice.
    Everything is freed (ASan's leak check). Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "proto_route.h"
#include "api_json.h"
#include "api_region.h"
#include "fuzz_json_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const s_codes[] = {FUZZ_JSON_CODES, NULL};

static void
s_check_shape(const json_t *out, const char *path_id)
{
    if (!json_is_object(out) || json_object_size(out) != 2)
        abort();
    void *it = json_object_iter((json_t *) out);
    if (strcmp(json_object_iter_key(it), "id") != 0)
        abort();
    it = json_object_iter_next((json_t *) out, it);
    if (strcmp(json_object_iter_key(it), "publicAddress") != 0)
        abort();
    const char *id = json_string_value(json_object_get(out, "id"));
    const char *address = json_string_value(json_object_get(out, "publicAddress"));
    if (id == NULL || strcmp(id, path_id) != 0 || address == NULL)
        abort();
    char again[PROTO_ROUTE_ADDRESS_MAX + 1];
    if (proto_route_address_normalize(address, again, sizeof again) != 0
        || strcmp(again, address) != 0)
        abort();
    const char *colon = strrchr(address, ':');
    if (colon == NULL || colon[1] == '\0' || (address[0] == '[' && colon[-1] != ']'))
        abort(); // the port is written out
}

static void
s_run(const char *buf, size_t len, const char *path_id)
{
    api_error_t err, err_b;
    memset(&err, 0xa5, sizeof err); // so an unfilled field shows
    memset(&err_b, 0xa5, sizeof err_b);
    json_t *out = api_region_parse(buf, len, path_id, &err);
    json_t *out_b = api_region_parse(buf, len, path_id, &err_b);
    if ((out == NULL) != (out_b == NULL))
        abort();
    if (out == NULL) {
        fuzz_json_check_error(&err, s_codes);
        fuzz_json_check_same_error(&err, &err_b);
        return;
    }
    if (!json_equal(out, out_b))
        abort();
    json_decref(out_b);
    s_check_shape(out, path_id);
    char *text = json_dumps(out, JSON_COMPACT);
    if (text == NULL)
        abort();
    api_error_t err2;
    json_t *again = api_region_parse(text, strlen(text), path_id, &err2);
    char *text2 = again ? json_dumps(again, JSON_COMPACT) : NULL;
    if (text2 == NULL || strcmp(text, text2) != 0)
        abort();
    free(text2);
    json_decref(again);
    free(text);
    json_decref(out);
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
    s_run(buf, size, "2");
    s_run(buf, size, "eu-west/1");
    free(buf);
    return 0;
}
