/*  test_cert_json - unit tests for api_cert: the body of POST /api/v1/certificates
    (SPEC §5, §11).

    The keys and certificates are made here with OpenSSL (EC P-256, Ed25519, one RSA 2048
    key), once per run in the group setup: a self-signed certificate with fixed dates, a
    CA and a leaf it signed (a chain), one certificate per key type, an expired one.

    Decisions pinned here: the domain follows the vHost rule and is stored lower-case; the
    cert is the leaf first, then its chain, nothing but whitespace around the blocks; the
    key is one unencrypted private key (an EC PARAMETERS block before it is fine); the key
    must match the leaf (invalid_value on "key", checked as soon as both were read); the
    first bad field in document order wins; an expired certificate is accepted; the output
    is re-encoded PEM with the leaf's issuer and subject (RFC 2253) and dates (ISO-8601
    UTC), and sending it back gives the same output.

    OCSP (the optional "ocsp"): responses are made here with OpenSSL (OCSP_basic_sign,
    t_pki_ocsp) for a leaf of a CA with basicConstraints, around the clock of the run. Pinned:
    base64 with whitespace skipped, at most 16 KiB decoded; a successful basic response with
    an answer for the leaf and the chain's second certificate, signed by that issuer or its
    delegated responder, "good", with a nextUpdate after now; refused on "ocsp" otherwise
    (not base64, not DER, another certificate, no issuer in the chain, expired, revoked...);
    the output adds the canonical base64 and ocspNextUpdate.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "t_pki.h"
#include "../../apid/api_cert.h"

typedef struct {
    EVP_PKEY *ec, *ec2, *ed, *rsa, *ca_key, *leaf_key;                     // keys
    char *ec_key, *ec2_key, *ed_key, *rsa_key, *ca_key_pem, *leaf_key_pem; // their PEM
    char *ec_cert;   // self-signed for ec, CN=api.example.com, fixed dates
    char *ec2_cert;  // self-signed for ec2
    char *ed_cert;   // self-signed for ed
    char *rsa_cert;  // self-signed for rsa
    char *ca_cert;   // self-signed CA
    char *leaf_cert; // leaf_key's, signed by the CA
    char *old_cert;  // ec's, expired in 2020
    // OCSP: a CA with basicConstraints, its leaves and a delegated responder
    EVP_PKEY *oca_key, *oleaf_key, *resp_key; // keys (the other leaf uses oleaf_key)
    X509 *oca, *oleaf, *oleaf2, *resp, *ec_x; // the CA, its leaf, another leaf, the responder; ec's
    char *oleaf_key_pem;                      // the leaf's key, PEM
    char *ochain;                             // the leaf then the CA, PEM
    char *oleaf_pem;                          // the leaf alone
    char *ochain_wrong;                       // the leaf then another certificate (not its issuer)
} t_fix_t;

// --------------------------------------------------------------------------
// Making keys and certificates

static int
t_setup(void **state)
{
    t_fix_t *f = calloc(1, sizeof *f);
    f->ec = EVP_EC_gen("P-256");
    f->ec2 = EVP_EC_gen("P-256");
    f->ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    f->rsa = EVP_RSA_gen(2048);
    f->ca_key = EVP_EC_gen("P-256");
    f->leaf_key = EVP_EC_gen("P-256");
    if (!f->ec || !f->ec2 || !f->ed || !f->rsa || !f->ca_key || !f->leaf_key)
        return -1;
    f->ec_key = t_pki_key_pem(f->ec);
    f->ec2_key = t_pki_key_pem(f->ec2);
    f->ed_key = t_pki_key_pem(f->ed);
    f->rsa_key = t_pki_key_pem(f->rsa);
    f->ca_key_pem = t_pki_key_pem(f->ca_key);
    f->leaf_key_pem = t_pki_key_pem(f->leaf_key);
    const char *from = "20261205100000Z", *to = "20361205100000Z";
    f->ec_cert = t_pki_cert(f->ec, "api.example.com", from, to, NULL, NULL, NULL);
    f->ec2_cert = t_pki_cert(f->ec2, "other.example.com", from, to, NULL, NULL, NULL);
    f->ed_cert = t_pki_cert(f->ed, "default", from, to, NULL, NULL, NULL);
    f->rsa_cert = t_pki_cert(f->rsa, "rsa.example.com", from, to, NULL, NULL, NULL);
    X509 *ca;
    f->ca_cert = t_pki_cert(f->ca_key, "Test CA", from, to, NULL, NULL, &ca);
    f->leaf_cert = t_pki_cert(f->leaf_key, "*.example.com", from, to, ca, f->ca_key, NULL);
    X509_free(ca);
    f->old_cert = t_pki_cert(f->ec, "old.example.com", "20190101000000Z", "20200101000000Z", NULL,
                             NULL, NULL);
    // OCSP: certificates valid around the clock of the run (a week either side)
    f->oca_key = EVP_EC_gen("P-256");
    f->oleaf_key = EVP_EC_gen("P-256");
    f->resp_key = EVP_EC_gen("P-256");
    if (!f->oca_key || !f->oleaf_key || !f->resp_key)
        return -1;
    char ofrom[32], oto[32];
    time_t now = time(NULL);
    strftime(ofrom, sizeof ofrom, "%Y%m%d%H%M%SZ", gmtime(&(time_t){now - 7 * 86400}));
    strftime(oto, sizeof oto, "%Y%m%d%H%M%SZ", gmtime(&(time_t){now + 7 * 86400}));
    static const char *const ca_exts[] = {"basicConstraints", "critical,CA:TRUE", "keyUsage",
                                          "critical,keyCertSign,cRLSign", NULL};
    static const char *const resp_exts[] = {"extendedKeyUsage", "OCSPSigning", NULL};
    char *pem =
        t_pki_cert_ex(f->oca_key, "OCSP Test CA", 1, ofrom, oto, NULL, NULL, ca_exts, &f->oca);
    f->oleaf_pem = t_pki_cert_ex(f->oleaf_key, "ocsp.example.com", 1001, ofrom, oto, f->oca,
                                 f->oca_key, NULL, &f->oleaf);
    free(t_pki_cert_ex(f->oleaf_key, "other.example.com", 1002, ofrom, oto, f->oca, f->oca_key,
                       NULL, &f->oleaf2));
    free(t_pki_cert_ex(f->resp_key, "OCSP Responder", 7, ofrom, oto, f->oca, f->oca_key, resp_exts,
                       &f->resp));
    f->oleaf_key_pem = t_pki_key_pem(f->oleaf_key);
    size_t n = strlen(f->oleaf_pem) + strlen(pem) + 1;
    f->ochain = malloc(n);
    snprintf(f->ochain, n, "%s%s", f->oleaf_pem, pem);
    free(pem);
    n = strlen(f->oleaf_pem) + strlen(f->ec_cert) + 1;
    f->ochain_wrong = malloc(n);
    snprintf(f->ochain_wrong, n, "%s%s", f->oleaf_pem, f->ec_cert);
    BIO *bio = BIO_new_mem_buf(f->ec_cert, -1);
    f->ec_x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (f->ec_x == NULL)
        return -1;
    *state = f;
    return 0;
}

static int
t_teardown(void **state)
{
    t_fix_t *f = *state;
    EVP_PKEY *keys[] = {f->ec,       f->ec2,     f->ed,        f->rsa,     f->ca_key,
                        f->leaf_key, f->oca_key, f->oleaf_key, f->resp_key};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        EVP_PKEY_free(keys[i]);
    X509 *certs[] = {f->oca, f->oleaf, f->oleaf2, f->resp, f->ec_x};
    for (size_t i = 0; i < sizeof certs / sizeof certs[0]; i++)
        X509_free(certs[i]);
    char *texts[] = {f->ec_key,       f->ec2_key,     f->ed_key,   f->rsa_key,       f->ca_key_pem,
                     f->leaf_key_pem, f->ec_cert,     f->ec2_cert, f->ed_cert,       f->rsa_cert,
                     f->ca_cert,      f->leaf_cert,   f->old_cert, f->oleaf_key_pem, f->ochain,
                     f->oleaf_pem,    f->ochain_wrong};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        free(texts[i]);
    free(f);
    return 0;
}

// --------------------------------------------------------------------------
// Helpers

//  A body with members in the order given: pairs of name and string value, ending in NULL.
static char *
t_body(const char *name, ...)
{
    json_t *doc = json_object();
    va_list ap;
    va_start(ap, name);
    for (const char *n = name; n; n = va_arg(ap, const char *))
        json_object_set_new(doc, n, json_string(va_arg(ap, const char *)));
    va_end(ap);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return text;
}

//  text must fail with exactly this code and field; returns the message (static copy).
static const char *
t_expect(const char *text, const char *code, const char *field)
{
    static char message[API_MESSAGE_MAX + 1];
    api_error_t err;
    memset(&err, 0, sizeof err);
    json_t *out = api_cert_parse(text, strlen(text), &err);
    if (out != NULL) {
        json_decref(out);
        fail_msg("accepted: %.300s\n  expected %s on '%s'", text, code, field);
    }
    if (strcmp(err.code, code) != 0 || strcmp(err.field, field) != 0)
        fail_msg("%.300s\n  got      %s on '%s' (%s)\n  expected %s on '%s'", text, err.code,
                 err.field, err.message, code, field);
    assert_int_equal(err.status, 400);
    assert_true(err.message[0] != '\0');
    for (const char *p = err.message; *p; p++)
        assert_true(*p >= 0x20 && *p < 0x7f); // ASCII, no raw input
    assert_int_equal(ERR_peek_error(), 0);    // nothing left for the next call
    snprintf(message, sizeof message, "%s", err.message);
    return message;
}

//  The body, freed here, must fail with code on field.
static const char *
t_expect_free(char *body, const char *code, const char *field)
{
    const char *m = t_expect(body, code, field);
    free(body);
    return m;
}

//  text must be accepted; returns the output (caller json_decrefs).
static json_t *
t_accept(const char *text)
{
    api_error_t err;
    memset(&err, 0, sizeof err);
    json_t *out = api_cert_parse(text, strlen(text), &err);
    if (out == NULL)
        fail_msg("refused: %.300s\n  %s on '%s': %s", text, err.code, err.field, err.message);
    assert_int_equal(ERR_peek_error(), 0);
    return out;
}

static json_t *
t_accept_free(char *body)
{
    json_t *out = t_accept(body);
    free(body);
    return out;
}

static const char *
t_str(const json_t *out, const char *name)
{
    const char *s = json_string_value(json_object_get(out, name));
    assert_non_null(s);
    return s;
}

static int
t_count(const char *text, const char *what)
{
    int n = 0;
    for (const char *p = strstr(text, what); p; p = strstr(p + 1, what))
        n++;
    return n;
}

// --------------------------------------------------------------------------
// Accepted

static void
test_valid_shape(void **state)
{
    t_fix_t *f = *state;
    json_t *out = t_accept_free(
        t_body("domain", "api.example.com", "key", f->ec_key, "cert", f->ec_cert, NULL));
    static const char *const order[] = {"domain",  "cert",      "key",      "issuer",
                                        "subject", "notBefore", "notAfter", NULL};
    const char *name;
    json_t *value;
    size_t i = 0;
    json_object_foreach(out, name, value)
    {
        assert_non_null(order[i]);
        assert_string_equal(name, order[i]);
        assert_true(json_is_string(value));
        i++;
    }
    assert_null(order[i]);
    assert_string_equal(t_str(out, "domain"), "api.example.com");
    assert_string_equal(t_str(out, "cert"), f->ec_cert);
    assert_string_equal(t_str(out, "key"), f->ec_key);
    assert_string_equal(t_str(out, "subject"), "O=Switchyard\\, Test,CN=api.example.com");
    assert_string_equal(t_str(out, "issuer"), "O=Switchyard\\, Test,CN=api.example.com");
    assert_string_equal(t_str(out, "notBefore"), "2026-12-05T10:00:00Z");
    assert_string_equal(t_str(out, "notAfter"), "2036-12-05T10:00:00Z");
    json_decref(out);
}

static void
test_domains(void **state)
{
    t_fix_t *f = *state;
    // lower-cased
    json_t *out = t_accept_free(
        t_body("domain", "API.Example.COM", "key", f->ec_key, "cert", f->ec_cert, NULL));
    assert_string_equal(t_str(out, "domain"), "api.example.com");
    json_decref(out);
    // a wildcard, lower-cased
    out = t_accept_free(
        t_body("domain", "*.Example.com", "key", f->leaf_key_pem, "cert", f->leaf_cert, NULL));
    assert_string_equal(t_str(out, "domain"), "*.example.com");
    json_decref(out);
    // "*": the default certificate (Ed25519)
    out = t_accept_free(t_body("domain", "*", "key", f->ed_key, "cert", f->ed_cert, NULL));
    assert_string_equal(t_str(out, "domain"), "*");
    assert_string_equal(t_str(out, "subject"), "O=Switchyard\\, Test,CN=default");
    json_decref(out);
    // 253 bytes is the limit
    char domain[260];
    memset(domain, 'a', sizeof domain);
    for (int i = 63; i < 253; i += 64)
        domain[i] = '.';
    domain[253] = '\0';
    out = t_accept_free(t_body("domain", domain, "key", f->ec_key, "cert", f->ec_cert, NULL));
    json_decref(out);
    domain[253] = 'a';
    domain[254] = '\0';
    t_expect_free(t_body("domain", domain, "key", f->ec_key, "cert", f->ec_cert, NULL),
                  "invalid_value", "domain");
}

static void
test_bad_domains(void **state)
{
    t_fix_t *f = *state;
    const char *bad[] = {"a..b",      "*.",     "exa mple.com", "*.*.x",  "",
                         "a.com:443", "-a.com", "a.com.",       "*a.com", "a/b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        t_expect_free(t_body("domain", bad[i], "key", f->ec_key, "cert", f->ec_cert, NULL),
                      "invalid_value", "domain");
    // a NUL never gets this far: jansson refuses it
    t_expect("{\"domain\":\"a\\u0000.com\",\"key\":\"k\",\"cert\":\"c\"}", "invalid_json", "");
}

static void
test_key_types(void **state)
{
    t_fix_t *f = *state;
    json_t *out = t_accept_free(
        t_body("domain", "rsa.example.com", "key", f->rsa_key, "cert", f->rsa_cert, NULL));
    assert_string_equal(t_str(out, "subject"), "O=Switchyard\\, Test,CN=rsa.example.com");
    json_decref(out);
    // a traditional "EC PRIVATE KEY" with the "EC PARAMETERS" block openssl ecparam writes
    BIO *bio = BIO_new(BIO_s_mem());
    BIO_puts(bio, "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n");
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(bio, f->ec, NULL, NULL, 0, NULL, NULL),
                     1);
    char *traditional = t_pki_bio_text(bio);
    assert_non_null(strstr(traditional, "-----BEGIN EC PRIVATE KEY-----"));
    out = t_accept_free(t_body("domain", "a.com", "key", traditional, "cert", f->ec_cert, NULL));
    assert_string_equal(t_str(out, "key"), f->ec_key); // stored as PKCS#8
    json_decref(out);
    free(traditional);
}

static void
test_chain(void **state)
{
    t_fix_t *f = *state;
    char chain[8192];
    snprintf(chain, sizeof chain, "%s\n\r\n%s  \n", f->leaf_cert, f->ca_cert);
    json_t *out = t_accept_free(
        t_body("domain", "*.example.com", "cert", chain, "key", f->leaf_key_pem, NULL));
    assert_int_equal(t_count(t_str(out, "cert"), "-----BEGIN CERTIFICATE-----"), 2);
    assert_non_null(strstr(t_str(out, "cert"), f->ca_cert)); // the chain is kept, in order
    assert_true(strncmp(t_str(out, "cert"), f->leaf_cert, strlen(f->leaf_cert)) == 0);
    assert_string_equal(t_str(out, "subject"), "O=Switchyard\\, Test,CN=*.example.com");
    assert_string_equal(t_str(out, "issuer"), "O=Switchyard\\, Test,CN=Test CA");
    json_decref(out);
    // the leaf comes first: with the CA first, the key is checked against the CA
    snprintf(chain, sizeof chain, "%s%s", f->ca_cert, f->leaf_cert);
    t_expect_free(t_body("domain", "a.com", "cert", chain, "key", f->leaf_key_pem, NULL),
                  "invalid_value", "key");
}

static void
test_expired_accepted(void **state)
{
    t_fix_t *f = *state;
    json_t *out = t_accept_free(
        t_body("domain", "old.example.com", "key", f->ec_key, "cert", f->old_cert, NULL));
    assert_string_equal(t_str(out, "notAfter"), "2020-01-01T00:00:00Z");
    assert_string_equal(t_str(out, "notBefore"), "2019-01-01T00:00:00Z");
    json_decref(out);
}

static void
test_idempotent(void **state)
{
    t_fix_t *f = *state;
    char chain[8192];
    snprintf(chain, sizeof chain, "\n\n%s\n%s", f->leaf_cert, f->ca_cert);
    json_t *out = t_accept_free(
        t_body("domain", "*.EXAMPLE.com", "cert", chain, "key", f->leaf_key_pem, NULL));
    json_t *again = t_accept_free(t_body("domain", t_str(out, "domain"), "key", t_str(out, "key"),
                                         "cert", t_str(out, "cert"), NULL));
    assert_true(json_equal(out, again));
    // canonical: the blank lines are gone
    snprintf(chain, sizeof chain, "%s%s", f->leaf_cert, f->ca_cert);
    assert_string_equal(t_str(out, "cert"), chain);
    json_decref(again);
    json_decref(out);
}

// --------------------------------------------------------------------------
// Refused: the PEM texts

static void
test_key_mismatch(void **state)
{
    t_fix_t *f = *state;
    const char *m =
        t_expect_free(t_body("domain", "a.com", "key", f->ec2_key, "cert", f->ec_cert, NULL),
                      "invalid_value", "key");
    assert_non_null(strstr(m, "the key does not match the certificate"));
    // the key given after the cert: still on "key"
    t_expect_free(t_body("domain", "a.com", "cert", f->ec_cert, "key", f->ed_key, NULL),
                  "invalid_value", "key");
    // checked as soon as both are read: before a bad member after them
    char *body = t_body("key", f->rsa_key, "cert", f->ec_cert, "x", "1", NULL);
    t_expect_free(body, "invalid_value", "key");
}

static void
test_garbage_pem(void **state)
{
    t_fix_t *f = *state;
    const char *m =
        t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", "hello", NULL),
                      "invalid_value", "cert");
    assert_non_null(strstr(m, "cert: not a PEM certificate"));
    m = t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert",
                             "-----BEGIN CERTIFICATE-----\nAAAA!!!!\n-----END CERTIFICATE-----\n",
                             NULL),
                      "invalid_value", "cert");
    assert_non_null(strstr(m, "cert: not a PEM certificate ("));
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", "", NULL), "invalid_value",
                  "cert");
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert",
                         "-----BEGIN CERTIFICATE-----\nMIIB\n", NULL),
                  "invalid_value", "cert"); // no END line
    m = t_expect_free(t_body("domain", "a.com", "key",
                             "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                             "-----END PRIVATE KEY-----\n",
                             "cert", f->ec_cert, NULL),
                      "invalid_value", "key");
    assert_non_null(strstr(m, "key: not a PEM private key ("));
    t_expect_free(t_body("domain", "a.com", "key", "not a key", "cert", f->ec_cert, NULL),
                  "invalid_value", "key");
    // the wrong kind of block in each
    t_expect_free(t_body("domain", "a.com", "key", f->ec_cert, "cert", f->ec_cert, NULL),
                  "invalid_value", "key");
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", f->ec_key, NULL),
                  "invalid_value", "cert");
    // a NUL inside: refused by jansson already
    t_expect("{\"domain\":\"a.com\",\"cert\":\"-----BEGIN\\u0000\",\"key\":\"k\"}", "invalid_json",
             "");
}

static void
test_encrypted_key(void **state)
{
    t_fix_t *f = *state;
    BIO *bio = BIO_new(BIO_s_mem());
    assert_int_equal(
        PEM_write_bio_PKCS8PrivateKey(bio, f->ec, EVP_aes_256_cbc(), "secret", 6, NULL, NULL), 1);
    char *pkcs8 = t_pki_bio_text(bio);
    assert_non_null(strstr(pkcs8, "ENCRYPTED PRIVATE KEY"));
    const char *m = t_expect_free(t_body("domain", "a.com", "key", pkcs8, "cert", f->ec_cert, NULL),
                                  "invalid_value", "key");
    assert_non_null(strstr(m, "encrypted"));
    free(pkcs8);
    bio = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey_traditional(
                         bio, f->ec, EVP_aes_128_cbc(), (unsigned char *) "secret", 6, NULL, NULL),
                     1);
    char *traditional = t_pki_bio_text(bio);
    assert_non_null(strstr(traditional, "Proc-Type: 4,ENCRYPTED"));
    t_expect_free(t_body("domain", "a.com", "key", traditional, "cert", f->ec_cert, NULL),
                  "invalid_value", "key");
    free(traditional);
}

static void
test_extra_text(void **state)
{
    t_fix_t *f = *state;
    char text[8192];
    snprintf(text, sizeof text, "%sgarbage\n", f->ec_cert);
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", text, NULL), "invalid_value",
                  "cert");
    snprintf(text, sizeof text, "subject=CN = a.com\n%s", f->ec_cert);
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", text, NULL), "invalid_value",
                  "cert");
    snprintf(text, sizeof text, "%s%s", f->ec_key, f->ec2_key); // two keys
    t_expect_free(t_body("domain", "a.com", "key", text, "cert", f->ec_cert, NULL), "invalid_value",
                  "key");
    snprintf(text, sizeof text, "%s.", f->ec_key);
    t_expect_free(t_body("domain", "a.com", "key", text, "cert", f->ec_cert, NULL), "invalid_value",
                  "key");
    // whitespace around is fine
    snprintf(text, sizeof text, " \r\n\t%s\r\n\r\n", f->ec_cert);
    json_decref(t_accept_free(t_body("domain", "a.com", "key", f->ec_key, "cert", text, NULL)));
}

static void
test_bounds(void **state)
{
    t_fix_t *f = *state;
    size_t one = strlen(f->ec_cert);
    char *big = malloc(API_CERT_PEM_MAX + 2);
    // a PEM over 64 KiB: out_of_range, for cert and key
    memset(big, '\n', API_CERT_PEM_MAX + 1);
    memcpy(big, f->ec_cert, one);
    big[API_CERT_PEM_MAX + 1] = '\0';
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", big, NULL), "out_of_range",
                  "cert");
    t_expect_free(t_body("domain", "a.com", "key", big, "cert", f->ec_cert, NULL), "out_of_range",
                  "key");
    // exactly 64 KiB is fine
    big[API_CERT_PEM_MAX] = '\0';
    json_decref(t_accept_free(t_body("domain", "a.com", "key", f->ec_key, "cert", big, NULL)));
    // at most 10 certificates
    size_t n = 0;
    for (int i = 0; i < API_CERT_CHAIN_MAX; i++) {
        memcpy(big + n, f->ec_cert, one);
        n += one;
    }
    big[n] = '\0';
    json_decref(t_accept_free(t_body("domain", "a.com", "key", f->ec_key, "cert", big, NULL)));
    memcpy(big + n, f->ec_cert, one);
    big[n + one] = '\0';
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", big, NULL), "out_of_range",
                  "cert");
    free(big);
}

// --------------------------------------------------------------------------
// Refused: the JSON

static void
test_bad_json(void **state)
{
    t_fix_t *f = *state;
    t_expect("", "invalid_json", "");
    t_expect("{\"domain\":", "invalid_json", "");
    t_expect("[]", "invalid_type", "");
    t_expect("\"a.com\"", "invalid_type", "");
    // missing fields: in the order domain, key, cert, after every member written
    t_expect("{}", "missing_field", "domain");
    t_expect_free(t_body("key", f->ec_key, "cert", f->ec_cert, NULL), "missing_field", "domain");
    t_expect_free(t_body("domain", "a.com", "cert", f->ec_cert, NULL), "missing_field", "key");
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, NULL), "missing_field", "cert");
    // unknown fields
    t_expect_free(t_body("domain", "a.com", "key", f->ec_key, "cert", f->ec_cert, "ssl", "x", NULL),
                  "unknown_field", "ssl");
    t_expect("{\"Domain\":\"a.com\"}", "unknown_field", "Domain");
    // wrong types
    t_expect("{\"domain\":1,\"key\":\"k\",\"cert\":\"c\"}", "invalid_type", "domain");
    t_expect("{\"domain\":\"a.com\",\"key\":null,\"cert\":\"c\"}", "invalid_type", "key");
    t_expect("{\"domain\":\"a.com\",\"cert\":[\"c\"]}", "invalid_type", "cert");
    t_expect("{\"cert\":[\"c\"],\"domain\":\"a.com\"}", "invalid_type", "cert");
    // duplicate keys
    t_expect("{\"domain\":\"a.com\",\"domain\":\"b.com\"}", "duplicate_key", "domain");
    t_expect("{\"domain\":\"a.com\",\"key\":\"x\",\"key\":\"y\"}", "duplicate_key", "key");
}

static void
test_document_order(void **state)
{
    t_fix_t *f = *state;
    // the key given before the cert is fine
    json_t *out =
        t_accept_free(t_body("key", f->ec_key, "cert", f->ec_cert, "domain", "a.com", NULL));
    assert_string_equal(t_str(out, "domain"), "a.com");
    json_decref(out);
    // both bad: the first written wins
    t_expect_free(t_body("domain", "a.com", "key", "x", "cert", "y", NULL), "invalid_value", "key");
    t_expect_free(t_body("domain", "a.com", "cert", "y", "key", "x", NULL), "invalid_value",
                  "cert");
    t_expect_free(t_body("cert", "y", "domain", "a..b", NULL), "invalid_value", "cert");
    t_expect_free(t_body("domain", "a..b", "cert", "y", NULL), "invalid_value", "domain");
    t_expect_free(t_body("x", "1", "domain", "a..b", NULL), "unknown_field", "x");
    // a bad member before a duplicate key wins, after it loses
    char body[4096];
    snprintf(body, sizeof body, "{\"cert\":\"y\",\"domain\":\"a.com\",\"domain\":\"a.com\"}");
    t_expect(body, "invalid_value", "cert");
    snprintf(body, sizeof body, "{\"domain\":\"a.com\",\"domain\":\"a.com\",\"cert\":\"y\"}");
    t_expect(body, "duplicate_key", "domain");
}

// --------------------------------------------------------------------------
// OCSP

#define T_HOUR 3600

//  A good response for the OCSP leaf, signed by its CA, valid from an hour ago for
//  next_s seconds from now, in base64 (caller frees).
static char *
t_ocsp_b64(t_fix_t *f, X509 *leaf, int status, long this_s, long next_s)
{
    size_t len;
    time_t now = time(NULL);
    unsigned char *der = t_pki_ocsp(leaf, f->oca, EVP_sha1(), status, now + this_s,
                                    next_s ? now + next_s : 0, f->oca, f->oca_key, &len);
    char *b64 = t_pki_base64(der, len);
    free(der);
    return b64;
}

static char *
t_good_b64(t_fix_t *f)
{
    return t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_GOOD, -T_HOUR, 24 * T_HOUR);
}

//  The OCSP body: domain, key, cert (the chain), ocsp.
static char *
t_ocsp_body(t_fix_t *f, const char *cert, const char *ocsp)
{
    return t_body("domain", "ocsp.example.com", "key", f->oleaf_key_pem, "cert", cert, "ocsp", ocsp,
                  NULL);
}

static void
t_iso(time_t t, char *out, size_t cap)
{
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
}

static void
test_ocsp_accepted(void **state)
{
    t_fix_t *f = *state;
    size_t len;
    time_t now = time(NULL);
    unsigned char *der = t_pki_ocsp(f->oleaf, f->oca, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
                                    now - T_HOUR, now + 24 * T_HOUR, f->oca, f->oca_key, &len);
    char *b64 = t_pki_base64(der, len);
    json_t *out = t_accept_free(t_ocsp_body(f, f->ochain, b64));
    static const char *const order[] = {"domain",         "cert",      "key",      "issuer",
                                        "subject",        "notBefore", "notAfter", "ocsp",
                                        "ocspNextUpdate", NULL};
    const char *name;
    json_t *value;
    size_t i = 0;
    json_object_foreach(out, name, value)
    {
        assert_non_null(order[i]);
        assert_string_equal(name, order[i]);
        i++;
    }
    assert_null(order[i]);
    assert_string_equal(t_str(out, "ocsp"), b64);
    char at[32];
    t_iso(now + 24 * T_HOUR, at, sizeof at);
    assert_string_equal(t_str(out, "ocspNextUpdate"), at);
    assert_string_equal(t_str(out, "cert"), f->ochain);

    // the same fields sent again: the same output (idempotent)
    json_t *again =
        t_accept_free(t_body("domain", t_str(out, "domain"), "key", t_str(out, "key"), "cert",
                             t_str(out, "cert"), "ocsp", t_str(out, "ocsp"), NULL));
    assert_true(json_equal(out, again));
    json_decref(again);
    // ocspNextUpdate is an output, not an input
    t_expect_free(t_body("domain", "ocsp.example.com", "key", f->oleaf_key_pem, "cert", f->ochain,
                         "ocsp", b64, "ocspNextUpdate", at, NULL),
                  "unknown_field", "ocspNextUpdate");

    // wrapped at 76 columns with CRLF and spaces around (base64(1), a file): the same
    // canonical text out
    size_t n = strlen(b64);
    char *wrapped = malloc(n * 2 + 16);
    size_t w = 0;
    wrapped[w++] = ' ';
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && k % 76 == 0) {
            wrapped[w++] = '\r';
            wrapped[w++] = '\n';
        }
        wrapped[w++] = b64[k];
    }
    wrapped[w++] = '\n';
    wrapped[w] = '\0';
    json_t *out2 = t_accept_free(t_ocsp_body(f, f->ochain, wrapped));
    assert_true(json_equal(out, out2));
    json_decref(out2);
    free(wrapped);

    // ocsp before cert: checked once cert is read
    json_t *out3 = t_accept_free(t_body("ocsp", b64, "key", f->oleaf_key_pem, "cert", f->ochain,
                                        "domain", "ocsp.example.com", NULL));
    assert_string_equal(t_str(out3, "ocsp"), b64);
    json_decref(out3);
    json_decref(out);
    free(b64);
    free(der);

    // null: none, as when left out
    json_t *doc = json_pack("{s:s, s:n, s:s, s:s}", "domain", "ocsp.example.com", "ocsp", "key",
                            f->oleaf_key_pem, "cert", f->ochain);
    char *text = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    out = t_accept_free(text);
    assert_null(json_object_get(out, "ocsp"));
    assert_null(json_object_get(out, "ocspNextUpdate"));
    json_decref(out);
}

static void
test_ocsp_accepted_kinds(void **state)
{
    t_fix_t *f = *state;
    time_t now = time(NULL);
    size_t len;
    // a CertID hashed with SHA-256
    unsigned char *der = t_pki_ocsp(f->oleaf, f->oca, EVP_sha256(), V_OCSP_CERTSTATUS_GOOD,
                                    now - T_HOUR, now + T_HOUR, f->oca, f->oca_key, &len);
    char *b64 = t_pki_base64(der, len);
    json_decref(t_accept_free(t_ocsp_body(f, f->ochain, b64)));
    free(b64);
    free(der);
    // signed by a responder the CA delegated (OCSPSigning), its certificate in the response
    der = t_pki_ocsp(f->oleaf, f->oca, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD, now - T_HOUR,
                     now + T_HOUR, f->resp, f->resp_key, &len);
    b64 = t_pki_base64(der, len);
    json_decref(t_accept_free(t_ocsp_body(f, f->ochain, b64)));
    free(b64);
    free(der);
    // a thisUpdate a little ahead of our clock (skew)
    b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_GOOD, API_CERT_OCSP_SKEW_S - 60, T_HOUR);
    json_decref(t_accept_free(t_ocsp_body(f, f->ochain, b64)));
    free(b64);
}

static void
test_ocsp_not_base64_or_der(void **state)
{
    t_fix_t *f = *state;
    const char *bad[] = {
        "", "!!!!", "QUJD-_==", "QUJ", "====", "Q===", "QQ=A", "QUJD\x01", "Q Q = = x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *m = t_expect_free(t_ocsp_body(f, f->ochain, bad[i]), "invalid_value", "ocsp");
        assert_non_null(strstr(m, "ocsp: not base64"));
    }
    // base64, but not DER
    const char *m =
        t_expect_free(t_ocsp_body(f, f->ochain, "aGVsbG8gd29ybGQ="), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "ocsp: not a DER OCSP response ("));
    // a response followed by more bytes
    size_t len;
    time_t now = time(NULL);
    unsigned char *der = t_pki_ocsp(f->oleaf, f->oca, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
                                    now - T_HOUR, now + T_HOUR, f->oca, f->oca_key, &len);
    unsigned char *more = malloc(len + 1);
    memcpy(more, der, len);
    more[len] = 0;
    char *b64 = t_pki_base64(more, len + 1);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "bytes after the response"));
    free(b64);
    free(more);
    // truncated
    b64 = t_pki_base64(der, len - 1);
    t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    free(b64);
    free(der);
    // a DER certificate is not an OCSP response
    unsigned char *cder = NULL;
    int clen = i2d_X509(f->oleaf, &cder);
    b64 = t_pki_base64(cder, (size_t) clen);
    t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    free(b64);
    OPENSSL_free(cder);
    // not successful: nothing to staple
    der = t_pki_ocsp_status(OCSP_RESPONSE_STATUS_TRYLATER, &len);
    b64 = t_pki_base64(der, len);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "trylater, not successful"));
    free(b64);
    free(der);
    // wrong types
    t_expect("{\"ocsp\":1}", "invalid_type", "ocsp");
    t_expect("{\"ocsp\":[\"QUJD\"]}", "invalid_type", "ocsp");
    t_expect("{\"ocsp\":true}", "invalid_type", "ocsp");
}

static void
test_ocsp_bounds(void **state)
{
    t_fix_t *f = *state;
    // 16 KiB decoded is the limit: 16385 bytes are out_of_range, 16384 bytes of junk are
    // read (and refused as not DER)
    unsigned char *junk = calloc(1, API_CERT_OCSP_MAX + 1);
    char *b64 = t_pki_base64(junk, API_CERT_OCSP_MAX + 1);
    const char *m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "out_of_range", "ocsp");
    assert_non_null(strstr(m, "16385 bytes once decoded, over the limit of 16384"));
    free(b64);
    b64 = t_pki_base64(junk, API_CERT_OCSP_MAX);
    t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    free(b64);
    free(junk);
    // a text over 32 KiB (whitespace counts): out_of_range before decoding
    char *text = malloc(API_CERT_OCSP_TEXT_MAX + 2);
    memset(text, ' ', API_CERT_OCSP_TEXT_MAX + 1);
    memcpy(text, "QUJD", 4);
    text[API_CERT_OCSP_TEXT_MAX + 1] = '\0';
    t_expect_free(t_ocsp_body(f, f->ochain, text), "out_of_range", "ocsp");
    free(text);
}

static void
test_ocsp_wrong_certificate(void **state)
{
    t_fix_t *f = *state;
    // a response for another leaf of the same CA (another serial number)
    char *b64 = t_ocsp_b64(f, f->oleaf2, V_OCSP_CERTSTATUS_GOOD, -T_HOUR, T_HOUR);
    const char *m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "ocsp: the response is not for this certificate"));
    free(b64);
    // the right leaf, but the answer names another issuer
    size_t len;
    time_t now = time(NULL);
    unsigned char *der = t_pki_ocsp(f->oleaf, f->ec_x, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD,
                                    now - T_HOUR, now + T_HOUR, f->oca, f->oca_key, &len);
    b64 = t_pki_base64(der, len);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "ocsp: the response is not for this certificate"));
    free(b64);
    free(der);
    // for the right certificate, signed by a key that is neither the issuer's nor delegated
    der = t_pki_ocsp(f->oleaf, f->oca, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD, now - T_HOUR,
                     now + T_HOUR, f->ec_x, f->ec, &len);
    b64 = t_pki_base64(der, len);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "ocsp: the response is not signed by the leaf's issuer"));
    free(b64);
    free(der);
    // a responder certificate of the CA without OCSPSigning (the leaf itself) is no responder
    der = t_pki_ocsp(f->oleaf, f->oca, EVP_sha1(), V_OCSP_CERTSTATUS_GOOD, now - T_HOUR,
                     now + T_HOUR, f->oleaf2, f->oleaf_key, &len);
    b64 = t_pki_base64(der, len);
    t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    free(b64);
    free(der);
}

static void
test_ocsp_no_issuer(void **state)
{
    t_fix_t *f = *state;
    char *b64 = t_good_b64(f);
    // the leaf alone: nothing to check the response against
    const char *m = t_expect_free(t_ocsp_body(f, f->oleaf_pem, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "cert has no issuer certificate"));
    // the second certificate is not the leaf's issuer
    m = t_expect_free(t_ocsp_body(f, f->ochain_wrong, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "the second certificate of cert is not the leaf's issuer"));
    // ocsp before a cert without issuer: reported on ocsp once cert is read
    t_expect_free(t_body("ocsp", b64, "cert", f->oleaf_pem, "key", f->oleaf_key_pem, "domain",
                         "ocsp.example.com", NULL),
                  "invalid_value", "ocsp");
    free(b64);
}

static void
test_ocsp_times_and_status(void **state)
{
    t_fix_t *f = *state;
    // expired: nextUpdate a minute ago
    char *b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_GOOD, -2 * T_HOUR, -60);
    const char *m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "ocsp: the response expired (nextUpdate "));
    free(b64);
    // not valid yet: thisUpdate an hour ahead
    b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_GOOD, T_HOUR, 2 * T_HOUR);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "not valid yet"));
    free(b64);
    // no nextUpdate
    b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_GOOD, -T_HOUR, 0);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "no nextUpdate"));
    free(b64);
    // nextUpdate before thisUpdate
    b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_GOOD, 2 * T_HOUR - 60, T_HOUR);
    t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    free(b64);
    // revoked, unknown: not stapled
    b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_REVOKED, -T_HOUR, T_HOUR);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "the certificate is revoked"));
    free(b64);
    b64 = t_ocsp_b64(f, f->oleaf, V_OCSP_CERTSTATUS_UNKNOWN, -T_HOUR, T_HOUR);
    m = t_expect_free(t_ocsp_body(f, f->ochain, b64), "invalid_value", "ocsp");
    assert_non_null(strstr(m, "the certificate is unknown"));
    free(b64);
}

static void
test_ocsp_document_order(void **state)
{
    t_fix_t *f = *state;
    char *good = t_good_b64(f);
    char *other = t_ocsp_b64(f, f->oleaf2, V_OCSP_CERTSTATUS_GOOD, -T_HOUR, T_HOUR);
    // a bad ocsp alone is reported where it is written
    t_expect_free(t_body("ocsp", "!", "domain", "a..b", NULL), "invalid_value", "ocsp");
    t_expect_free(t_body("domain", "a..b", "ocsp", "!", NULL), "invalid_value", "domain");
    t_expect_free(t_body("domain", "a.com", "ocsp", "!", "cert", "x", NULL), "invalid_value",
                  "ocsp");
    // the response of another certificate: at the later of cert and ocsp, before what follows
    t_expect_free(t_body("ocsp", other, "cert", f->ochain, "domain", "a..b", NULL), "invalid_value",
                  "ocsp");
    t_expect_free(t_body("cert", f->ochain, "ocsp", other, "x", "1", NULL), "invalid_value",
                  "ocsp");
    // a bad cert written after ocsp is the cert's error
    t_expect_free(t_body("ocsp", other, "cert", "x", NULL), "invalid_value", "cert");
    // the key of another certificate first, then the response: the key is reported
    t_expect_free(t_body("key", f->ec_key, "ocsp", other, "cert", f->ochain, NULL), "invalid_value",
                  "key");
    t_expect_free(t_body("ocsp", other, "key", f->ec_key, "cert", f->ochain, NULL), "invalid_value",
                  "key");
    // missing fields still come after every member written
    t_expect_free(t_body("ocsp", good, NULL), "missing_field", "domain");
    t_expect_free(t_body("domain", "a.com", "ocsp", good, "key", f->oleaf_key_pem, NULL),
                  "missing_field", "cert");
    free(good);
    free(other);
}

static void
test_domain_normalize(void **state)
{
    (void) state;
    char out[PROTO_ROUTE_VHOST_MAX + 1];
    assert_int_equal(api_cert_domain_normalize("*.A.com", out, sizeof out), 0);
    assert_string_equal(out, "*.a.com");
    assert_int_equal(api_cert_domain_normalize("a..com", out, sizeof out), -1);
    assert_string_equal(out, "");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_shape),
        cmocka_unit_test(test_domains),
        cmocka_unit_test(test_bad_domains),
        cmocka_unit_test(test_key_types),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_expired_accepted),
        cmocka_unit_test(test_idempotent),
        cmocka_unit_test(test_key_mismatch),
        cmocka_unit_test(test_garbage_pem),
        cmocka_unit_test(test_encrypted_key),
        cmocka_unit_test(test_extra_text),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_bad_json),
        cmocka_unit_test(test_document_order),
        cmocka_unit_test(test_ocsp_accepted),
        cmocka_unit_test(test_ocsp_accepted_kinds),
        cmocka_unit_test(test_ocsp_not_base64_or_der),
        cmocka_unit_test(test_ocsp_bounds),
        cmocka_unit_test(test_ocsp_wrong_certificate),
        cmocka_unit_test(test_ocsp_no_issuer),
        cmocka_unit_test(test_ocsp_times_and_status),
        cmocka_unit_test(test_ocsp_document_order),
        cmocka_unit_test(test_domain_normalize),
    };
    return cmocka_run_group_tests_name("test_cert_json", tests, t_setup, t_teardown);
}
