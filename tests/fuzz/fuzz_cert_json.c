/*  fuzz_cert_json - libFuzzer target for the certificate body (api_cert).

    Feeds the input to api_cert_parse, as POST /api/v1/certificates does, and checks what
    apid/api_cert.h and api_json.h promise:
    - on failure: status 400, a code from the header's list, a non-empty message, all three
      strings NUL-terminated inside their arrays; invalid_json has the empty field ""; field
      and message are valid UTF-8 and the error body built from them (api_error_body)
      carries code, message and field unchanged (fuzz_json_common.h); an invalid_value is
      on "domain", "key", "cert" or "ocsp", and the messages of those fields are printable
      ASCII;
    - on success: exactly {"domain", "cert", "key", "issuer", "subject", "notBefore",
      "notAfter"} in this order, then "ocsp" and "ocspNextUpdate" when a response was
      given, all strings; the domain lower-case and valid
      (api_cert_domain_normalize gives it back unchanged); the dates "YYYY-MM-DDTHH:MM:SSZ";
      issuer and subject printable ASCII; normalization is idempotent: the output's domain,
      key, cert (and ocsp) sent again give the same text;
    - the same input gives the same answer twice, and OpenSSL's error queue is empty after
      each call (nothing leaks into the next request).
    Everything is freed (ASan's leak check). Build and run: tests/fuzz/README.md.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/err.h>

#include "api_cert.h"
#include "api_json.h"
#include "fuzz_json_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const s_codes[] = {FUZZ_JSON_CODES, NULL};

static const char *const s_keys[] = {"domain",    "cert",     "key",  "issuer",         "subject",
                                     "notBefore", "notAfter", "ocsp", "ocspNextUpdate", NULL};
#define S_KEYS_REQUIRED 7 // the first 7 always, the OCSP pair only together

//  The shared contract, and api_cert's own: its errors name one of its three fields and
//  never quote the input (the PEM), so their messages are printable ASCII.
static void
s_check_error(const api_error_t *err)
{
    fuzz_json_check_error(err, s_codes);
    bool own = strcmp(err->field, "domain") == 0 || strcmp(err->field, "key") == 0
               || strcmp(err->field, "cert") == 0 || strcmp(err->field, "ocsp") == 0;
    if (own && strcmp(err->code, "duplicate_key") != 0 && !fuzz_json_ascii(err->message))
        abort();
    if (strcmp(err->code, "invalid_value") == 0 && !own)
        abort();
}

static bool
s_date(const char *s)
{
    static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";
    if (strlen(s) != sizeof pattern - 1)
        return false;
    for (size_t i = 0; pattern[i]; i++)
        if (pattern[i] == 'd' ? s[i] < '0' || s[i] > '9' : s[i] != pattern[i])
            return false;
    return true;
}

static void
s_check_shape(const json_t *out)
{
    if (!json_is_object(out))
        abort();
    const char *key;
    json_t *value;
    size_t i = 0;
    json_object_foreach((json_t *) out, key, value)
    {
        if (s_keys[i] == NULL || strcmp(key, s_keys[i]) != 0 || !json_is_string(value))
            abort();
        i++;
    }
    if (i != S_KEYS_REQUIRED && s_keys[i] != NULL)
        abort();
    if (i > S_KEYS_REQUIRED && !s_date(json_string_value(json_object_get(out, "ocspNextUpdate"))))
        abort();
    const char *domain = json_string_value(json_object_get(out, "domain"));
    char again[PROTO_ROUTE_VHOST_MAX + 1];
    if (api_cert_domain_normalize(domain, again, sizeof again) != 0 || strcmp(again, domain) != 0)
        abort();
    if (!fuzz_json_ascii(json_string_value(json_object_get(out, "issuer")))
        || !fuzz_json_ascii(json_string_value(json_object_get(out, "subject")))
        || !s_date(json_string_value(json_object_get(out, "notBefore")))
        || !s_date(json_string_value(json_object_get(out, "notAfter"))))
        abort();
    if (strncmp(json_string_value(json_object_get(out, "cert")), "-----BEGIN CERTIFICATE-----\n",
                28)
        != 0)
        abort();
}

//  One parse, checked; returns the result (caller frees) or NULL.
static json_t *
s_run(const char *buf, size_t len)
{
    api_error_t err, err_b;
    memset(&err, 0xa5, sizeof err); // so an unfilled field shows
    memset(&err_b, 0xa5, sizeof err_b);
    json_t *out = api_cert_parse(buf, len, &err);
    if (ERR_peek_error() != 0)
        abort();
    json_t *out_b = api_cert_parse(buf, len, &err_b);
    if (ERR_peek_error() != 0)
        abort();
    if ((out == NULL) != (out_b == NULL))
        abort();
    if (out == NULL) {
        s_check_error(&err);
        fuzz_json_check_same_error(&err, &err_b);
        return NULL;
    }
    if (!json_equal(out, out_b))
        abort();
    json_decref(out_b);
    s_check_shape(out);
    return out;
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
    json_t *out = s_run(buf, size);
    if (out) {
        char *text = json_dumps(out, JSON_COMPACT);
        json_t *body = json_pack("{s:O, s:O, s:O}", "domain", json_object_get(out, "domain"), "key",
                                 json_object_get(out, "key"), "cert", json_object_get(out, "cert"));
        if (json_object_get(out, "ocsp"))
            json_object_set(body, "ocsp", json_object_get(out, "ocsp"));
        char *body_text = json_dumps(body, JSON_COMPACT);
        json_t *again = s_run(body_text, strlen(body_text));
        char *text2 = again ? json_dumps(again, JSON_COMPACT) : NULL;
        if (text == NULL || text2 == NULL || strcmp(text, text2) != 0)
            abort();
        free(text2);
        json_decref(again);
        free(body_text);
        json_decref(body);
        free(text);
        json_decref(out);
    }
    free(buf);
    return 0;
}
