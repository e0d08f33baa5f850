/*  api_cert - validation and normalization of a certificate body (see
    api_cert.h).

    The PEM texts are cut into blocks here, not by OpenSSL: PEM_read_bio
    skips any text before a BEGIN line and stops after the first block,
    so it alone would take "junk + certificate + junk" for a certificate.
    Each block is then handed to OpenSSL alone, over a memory BIO. The
    password callback always fails: with none, OpenSSL would prompt on the
    terminal for an encrypted key.

    OpenSSL keeps errors on a per-thread queue; it is emptied after each
    call, so a reason never leaks into the next request.

    The OCSP response (optional) is decoded and parsed as soon as it is
    read; whether it is the leaf's, signed for it and current needs the
    chain (the issuer is its second certificate), so that is checked once
    both are read, at the later of the two, as the key. A CertID is made
    again with the hash the response used (SHA-1 or SHA-256), because
    OCSP_resp_find compares the hash algorithm too. The DER is kept as
    given, not re-encoded: the signature covers its bytes.
*/
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "proto.h"
#include "proto_route.h"
#include "proto_util.h"
#include "api_cert.h"

#define S_REASON_MAX 128 // bytes of OpenSSL's reason quoted in a message

// the gateways get the DER over the bus (certs.reply's ocsp)
_Static_assert(API_CERT_OCSP_MAX <= PROTO_CERT_OCSP_MAX, "OCSP response over the bus bound");

//  What the walk of one body has read so far.
typedef struct {
    char domain[PROTO_ROUTE_VHOST_MAX + 1]; // lower-case
    bool have_domain;                       // domain read and valid
    X509 *chain[API_CERT_CHAIN_MAX];        // cert: the leaf first
    int nchain;                             // how many
    EVP_PKEY *key;                          // key, or NULL
    unsigned char *ocsp;                    // ocsp decoded (DER), or NULL
    size_t ocsp_len;                        // its bytes
    OCSP_BASICRESP *ocsp_basic;             // its basic response, once parsed
    time_t ocsp_next_update;                // its nextUpdate, once checked against the chain
} s_cert_t;

//  One PEM block: "-----BEGIN <label>-----" ... "-----END <label>-----".
typedef struct {
    const char *label; // the label, in the text (not NUL-terminated)
    size_t label_len;  // its length
    size_t start;      // offset of the BEGIN line
    size_t end;        // offset just past the END line's last dash
} s_block_t;

static bool
s_fail(api_error_t *err, const char *code, const char *field, const char *message)
{
    api_error_set(err, code, field, "%s: %s", field, message);
    return false;
}

//  OpenSSL's reason for the last failure, printable ASCII only, into out;
//  then empty the error queue.
static void
s_reason(char *out, size_t cap)
{
    unsigned long e = ERR_peek_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(out, cap, "%s", r ? r : "no reason given");
    for (char *p = out; *p; p++)
        if (*p < 0x20 || *p > 0x7e)
            *p = '?';
    ERR_clear_error();
}

//  Copy s into out (cap bytes), cut before a character that does not fit.
static void
s_utf8_cut(const char *s, char *out, size_t cap)
{
    size_t n = strlen(s);
    if (n >= cap) {
        n = cap - 1;
        while (n > 0 && ((unsigned char) s[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out, s, n);
    out[n] = '\0';
}

static int
s_no_password(char *buf, int size, int rwflag, void *arg)
{
    (void) buf;
    (void) size;
    (void) rwflag;
    (void) arg;
    return -1;
}

static bool
s_space(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\f' || ch == '\v';
}

//  The next block of text at *pos. Returns 1 (b filled, *pos past it), 0 when
//  nothing but whitespace is left, -1 when something else is there.
static int
s_next_block(const char *text, size_t len, size_t *pos, s_block_t *b)
{
    static const char begin[] = "-----BEGIN ";
    static const char end[] = "-----END ";
    size_t i = *pos;
    while (i < len && s_space(text[i]))
        i++;
    *pos = i;
    if (i == len)
        return 0;
    if (len - i < sizeof begin - 1 || memcmp(text + i, begin, sizeof begin - 1) != 0)
        return -1;
    size_t l = i + sizeof begin - 1, j = l;
    while (j < len && text[j] != '-' && text[j] != '\n' && text[j] != '\r')
        j++;
    if (j == l || len - j < 5 || memcmp(text + j, "-----", 5) != 0)
        return -1;
    b->label = text + l;
    b->label_len = j - l;
    b->start = i;
    // the END line with the same label
    for (size_t k = j + 5; k + sizeof end - 1 <= len; k++) {
        const char *e = memmem(text + k, len - k, end, sizeof end - 1);
        if (e == NULL)
            return -1;
        k = (size_t) (e - text);
        size_t m = k + sizeof end - 1;
        if (len - m >= b->label_len + 5 && memcmp(text + m, b->label, b->label_len) == 0
            && memcmp(text + m + b->label_len, "-----", 5) == 0) {
            b->end = m + b->label_len + 5;
            *pos = b->end;
            return 1;
        }
    }
    return -1;
}

static bool
s_label_is(const s_block_t *b, const char *label)
{
    return b->label_len == strlen(label) && memcmp(b->label, label, b->label_len) == 0;
}

//  A memory BIO over one block, ending in a newline.
static BIO *
s_block_bio(const char *text, const s_block_t *b, char **copy_p)
{
    size_t n = b->end - b->start;
    char *copy = proto_xmalloc(n + 1);
    memcpy(copy, text + b->start, n);
    copy[n] = '\n';
    *copy_p = copy;
    BIO *bio = BIO_new_mem_buf(copy, (int) (n + 1));
    if (bio == NULL)
        abort(); // out of memory, as proto_xmalloc
    return bio;
}

//  A string member: NUL-free, at most max bytes.
static bool
s_get_text(const json_t *value, const char *field, size_t max, const char **s, api_error_t *err)
{
    if (!json_is_string(value))
        return s_fail(err, "invalid_type", field, "expected a string");
    size_t len = json_string_length(value);
    *s = json_string_value(value);
    if (len > max) {
        api_error_set(err, "out_of_range", field, "%s: %zu bytes, over the limit of %zu", field,
                      len, max);
        return false;
    }
    if (strlen(*s) != len)
        return s_fail(err, "invalid_value", field, "must not contain a NUL character");
    return true;
}

static bool
s_check_domain(const json_t *value, s_cert_t *c, api_error_t *err)
{
    if (!json_is_string(value))
        return s_fail(err, "invalid_type", "domain", "expected a string");
    const char *s = json_string_value(value);
    if (strlen(s) != json_string_length(value)
        || api_cert_domain_normalize(s, c->domain, sizeof c->domain) != 0)
        return s_fail(err, "invalid_value", "domain",
                      "must be a host name, *.<host name> or * (the default certificate), at "
                      "most 253 bytes");
    c->have_domain = true;
    return true;
}

static bool
s_check_chain(const json_t *value, s_cert_t *c, api_error_t *err)
{
    const char *s;
    if (!s_get_text(value, "cert", API_CERT_PEM_MAX, &s, err))
        return false;
    size_t len = strlen(s), pos = 0;
    s_block_t b;
    int rc;
    while ((rc = s_next_block(s, len, &pos, &b)) == 1) {
        if (!s_label_is(&b, "CERTIFICATE"))
            return s_fail(
                err, "invalid_value", "cert",
                "not a PEM certificate (a block that is not -----BEGIN CERTIFICATE-----)");
        if (c->nchain == API_CERT_CHAIN_MAX) {
            api_error_set(err, "out_of_range", "cert",
                          "cert: more than %d certificates (the leaf and its chain)",
                          API_CERT_CHAIN_MAX);
            return false;
        }
        char *copy;
        BIO *bio = s_block_bio(s, &b, &copy);
        X509 *x = PEM_read_bio_X509(bio, NULL, s_no_password, NULL);
        BIO_free(bio);
        free(copy);
        if (x == NULL) {
            char reason[S_REASON_MAX];
            s_reason(reason, sizeof reason);
            api_error_set(err, "invalid_value", "cert",
                          "cert: not a PEM certificate (certificate %d: %s)", c->nchain + 1,
                          reason);
            return false;
        }
        c->chain[c->nchain++] = x;
    }
    if (rc < 0)
        return s_fail(err, "invalid_value", "cert",
                      "not a PEM certificate (text outside the -----BEGIN CERTIFICATE----- / "
                      "-----END CERTIFICATE----- blocks, or a block without its END line)");
    if (c->nchain == 0)
        return s_fail(err, "invalid_value", "cert",
                      "not a PEM certificate (no -----BEGIN CERTIFICATE----- block)");
    return true;
}

//  A private key block's label: "PRIVATE KEY", "RSA PRIVATE KEY", ...
static bool
s_key_label(const s_block_t *b)
{
    static const char suffix[] = "PRIVATE KEY";
    size_t n = sizeof suffix - 1;
    return b->label_len >= n && memcmp(b->label + b->label_len - n, suffix, n) == 0
           && (b->label_len == n || b->label[b->label_len - n - 1] == ' ');
}

static bool
s_check_key(const json_t *value, s_cert_t *c, api_error_t *err)
{
    const char *s;
    if (!s_get_text(value, "key", API_CERT_PEM_MAX, &s, err))
        return false;
    size_t len = strlen(s), pos = 0;
    s_block_t b, key_block;
    bool have_block = false;
    int rc;
    while ((rc = s_next_block(s, len, &pos, &b)) == 1) {
        if (!have_block && s_label_is(&b, "EC PARAMETERS"))
            continue; // openssl ecparam -genkey writes the curve first
        if (have_block)
            return s_fail(err, "invalid_value", "key",
                          "not one PEM private key (more than one block)");
        if (!s_key_label(&b))
            return s_fail(
                err, "invalid_value", "key",
                "not a PEM private key (a block that is not -----BEGIN PRIVATE KEY-----)");
        key_block = b;
        have_block = true;
    }
    if (rc < 0)
        return s_fail(err, "invalid_value", "key",
                      "not a PEM private key (text outside the -----BEGIN / -----END block, or a "
                      "block without its END line)");
    if (!have_block)
        return s_fail(err, "invalid_value", "key",
                      "not a PEM private key (no -----BEGIN PRIVATE KEY----- block)");
    size_t n = key_block.end - key_block.start;
    if (s_label_is(&key_block, "ENCRYPTED PRIVATE KEY")
        || memmem(s + key_block.start, n, "Proc-Type:", 10) != NULL) // 4,ENCRYPTED
        return s_fail(err, "invalid_value", "key",
                      "the key is encrypted: give it without a passphrase");
    char *copy;
    BIO *bio = s_block_bio(s, &key_block, &copy);
    EVP_PKEY_free(c->key);
    c->key = PEM_read_bio_PrivateKey(bio, NULL, s_no_password, NULL);
    BIO_free(bio);
    free(copy);
    if (c->key == NULL) {
        char reason[S_REASON_MAX];
        s_reason(reason, sizeof reason);
        api_error_set(err, "invalid_value", "key", "key: not a PEM private key (%s)", reason);
        return false;
    }
    return true;
}

static bool
s_check_match(s_cert_t *c, api_error_t *err)
{
    int ok = X509_check_private_key(c->chain[0], c->key);
    ERR_clear_error();
    if (ok != 1)
        return s_fail(err, "invalid_value", "key", "the key does not match the certificate");
    return true;
}

// --------------------------------------------------------------------------
// The OCSP response

//  How many bytes the base64 text s (len bytes) holds: whitespace anywhere
//  is skipped (base64(1) wraps its lines), "=" only as the one or two last
//  digits of the last quantum. Returns -1 if s is not that.
static long
s_b64_size(const char *s, size_t len)
{
    size_t digits = 0, pads = 0;
    for (size_t i = 0; i < len; i++) {
        if (s_space(s[i]))
            continue;
        if (s[i] == '=')
            pads++;
        else if (pads > 0 || proto_b64_digit(s[i]) < 0)
            return -1;
        else
            digits++;
    }
    if (digits == 0 || pads > 2 || (digits + pads) % 4 != 0)
        return -1;
    return (long) ((digits + pads) / 4 * 3 - pads);
}

//  Decode s (checked by s_b64_size) into out.
static void
s_b64_decode(const char *s, size_t len, unsigned char *out)
{
    unsigned long acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int d = proto_b64_digit(s[i]);
        if (d < 0)
            continue; // whitespace, or the padding
        acc = (acc << 6 | (unsigned long) d) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char) (acc >> bits);
        }
    }
}

//  An ASN1_TIME as time_t (UTC), or -1.
static time_t
s_asn1_time(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
        return (time_t) -1;
    return timegm(&tm);
}

//  "YYYY-MM-DDTHH:MM:SSZ" of t into out (at least 21 bytes).
static void
s_iso(time_t t, char *out, size_t cap)
{
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, cap, "?");
}

//  The ocsp member alone: base64 of one DER OCSPResponse whose status is
//  successful and that holds a basic response. null: none.
static bool
s_check_ocsp(const json_t *value, s_cert_t *c, api_error_t *err)
{
    if (json_is_null(value))
        return true;
    const char *s;
    if (!s_get_text(value, "ocsp", API_CERT_OCSP_TEXT_MAX, &s, err))
        return false;
    size_t len = strlen(s);
    long size = s_b64_size(s, len);
    if (size < 0)
        return s_fail(err, "invalid_value", "ocsp",
                      "not base64 (the standard alphabet A-Z a-z 0-9 + /, with = padding) of a "
                      "DER OCSP response");
    if (size > API_CERT_OCSP_MAX) {
        api_error_set(err, "out_of_range", "ocsp",
                      "ocsp: %ld bytes once decoded, over the limit of %d", size,
                      API_CERT_OCSP_MAX);
        return false;
    }
    c->ocsp = proto_xmalloc((size_t) size);
    c->ocsp_len = (size_t) size;
    s_b64_decode(s, len, c->ocsp);
    const unsigned char *p = c->ocsp;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, size);
    if (resp == NULL || p != c->ocsp + size) {
        char reason[S_REASON_MAX];
        if (resp == NULL)
            s_reason(reason, sizeof reason);
        else
            snprintf(reason, sizeof reason, "bytes after the response");
        OCSP_RESPONSE_free(resp);
        api_error_set(err, "invalid_value", "ocsp", "ocsp: not a DER OCSP response (%s)", reason);
        return false;
    }
    int status = OCSP_response_status(resp);
    if (status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        OCSP_RESPONSE_free(resp);
        api_error_set(err, "invalid_value", "ocsp",
                      "ocsp: the response status is %s, not successful: nothing to staple",
                      OCSP_response_status_str(status));
        return false;
    }
    c->ocsp_basic = OCSP_response_get1_basic(resp);
    OCSP_RESPONSE_free(resp);
    if (c->ocsp_basic == NULL) {
        ERR_clear_error();
        return s_fail(err, "invalid_value", "ocsp", "not a basic OCSP response");
    }
    return true;
}

//  The single response for leaf (issued by issuer), or NULL.
static OCSP_SINGLERESP *
s_ocsp_single(OCSP_BASICRESP *bs, X509 *leaf, X509 *issuer)
{
    for (int i = 0; i < OCSP_resp_count(bs); i++) {
        OCSP_SINGLERESP *single = OCSP_resp_get0(bs, i);
        const OCSP_CERTID *id = OCSP_SINGLERESP_get0_id(single);
        ASN1_OBJECT *md_oid = NULL;
        if (OCSP_id_get0_info(NULL, &md_oid, NULL, NULL, (OCSP_CERTID *) id) != 1)
            continue;
        const EVP_MD *md = EVP_get_digestbyobj(md_oid);
        OCSP_CERTID *mine = md ? OCSP_cert_to_id(md, leaf, issuer) : NULL;
        bool same = mine && OCSP_id_cmp(mine, id) == 0;
        OCSP_CERTID_free(mine);
        if (same)
            return single;
    }
    ERR_clear_error();
    return NULL;
}

//  The response's signature: by the issuer itself, or by a responder the
//  issuer delegated (its certificate in the response, with the OCSP
//  signing usage). The issuer is the trust anchor (a partial chain);
//  certificate dates are not checked (the response's own are).
static bool
s_ocsp_verify(OCSP_BASICRESP *bs, X509 *issuer, char *reason, size_t cap)
{
    X509_STORE *store = X509_STORE_new();
    STACK_OF(X509) *certs = sk_X509_new_null();
    bool ok = false;
    if (store && certs && X509_STORE_add_cert(store, issuer) == 1
        && X509_STORE_set_flags(store, X509_V_FLAG_PARTIAL_CHAIN | X509_V_FLAG_NO_CHECK_TIME) == 1
        && sk_X509_push(certs, issuer) > 0)
        ok = OCSP_basic_verify(bs, certs, store, 0) == 1;
    if (!ok)
        s_reason(reason, cap);
    sk_X509_free(certs); // issuer is the chain's
    X509_STORE_free(store);
    ERR_clear_error();
    return ok;
}

//  The response against the chain: for the leaf and its issuer (the
//  second certificate), signed for it, saying "good", current now.
static bool
s_check_ocsp_match(s_cert_t *c, api_error_t *err)
{
    if (c->nchain < 2)
        return s_fail(err, "invalid_value", "ocsp",
                      "the response cannot be checked: cert has no issuer certificate (give the "
                      "chain: the leaf, then the certificate that issued it)");
    X509 *leaf = c->chain[0], *issuer = c->chain[1];
    int issued = X509_check_issued(issuer, leaf);
    ERR_clear_error();
    if (issued != X509_V_OK)
        return s_fail(err, "invalid_value", "ocsp",
                      "the response cannot be checked: the second certificate of cert is not "
                      "the leaf's issuer");
    OCSP_SINGLERESP *single = s_ocsp_single(c->ocsp_basic, leaf, issuer);
    if (single == NULL)
        return s_fail(err, "invalid_value", "ocsp",
                      "the response is not for this certificate (none of its answers names the "
                      "leaf's serial number and issuer)");
    char reason[S_REASON_MAX];
    if (!s_ocsp_verify(c->ocsp_basic, issuer, reason, sizeof reason)) {
        api_error_set(err, "invalid_value", "ocsp",
                      "ocsp: the response is not signed by the leaf's issuer or a responder it "
                      "delegated (%s)",
                      reason);
        return false;
    }
    int reason_code;
    ASN1_GENERALIZEDTIME *revoked, *this_update, *next_update;
    int status =
        OCSP_single_get0_status(single, &reason_code, &revoked, &this_update, &next_update);
    if (status != V_OCSP_CERTSTATUS_GOOD) {
        api_error_set(err, "invalid_value", "ocsp",
                      "ocsp: the response says the certificate is %s: only a good status is "
                      "stapled",
                      OCSP_cert_status_str(status));
        return false;
    }
    if (next_update == NULL)
        return s_fail(err, "invalid_value", "ocsp",
                      "the response has no nextUpdate: a stapled response must say until when "
                      "it is valid");
    time_t now = time(NULL), from = s_asn1_time(this_update), to = s_asn1_time(next_update);
    char at[32];
    if (from == (time_t) -1 || to == (time_t) -1 || to <= from)
        return s_fail(err, "invalid_value", "ocsp",
                      "the response's thisUpdate and nextUpdate are not a valid period");
    if (from > now + API_CERT_OCSP_SKEW_S) {
        s_iso(from, at, sizeof at);
        api_error_set(err, "invalid_value", "ocsp",
                      "ocsp: the response is not valid yet (thisUpdate %s)", at);
        return false;
    }
    if (to <= now) {
        s_iso(to, at, sizeof at);
        api_error_set(err, "invalid_value", "ocsp", "ocsp: the response expired (nextUpdate %s)",
                      at);
        return false;
    }
    c->ocsp_next_update = to;
    return true;
}

// --------------------------------------------------------------------------
// The normalized form

//  What was written into a memory BIO, as a new JSON string.
static json_t *
s_bio_string(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    return n >= 0 ? json_stringn(data ? data : "", (size_t) n) : NULL;
}

static json_t *
s_name(const X509_NAME *name)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return NULL;
    json_t *out = NULL;
    if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253) >= 0)
        out = s_bio_string(bio);
    BIO_free(bio);
    return out;
}

static json_t *
s_time(const ASN1_TIME *t)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char text[32];
    if (ASN1_TIME_to_tm(t, &tm) != 1 || strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        return NULL;
    return json_string(text);
}

static json_t *
s_chain_pem(s_cert_t *c)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return NULL;
    json_t *out = NULL;
    int i = 0;
    while (i < c->nchain && PEM_write_bio_X509(bio, c->chain[i]) == 1)
        i++;
    if (i == c->nchain)
        out = s_bio_string(bio);
    BIO_free(bio);
    return out;
}

static json_t *
s_key_pem(s_cert_t *c)
{
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL)
        return NULL;
    json_t *out = NULL;
    if (PEM_write_bio_PrivateKey(bio, c->key, NULL, NULL, 0, NULL, NULL) == 1)
        out = s_bio_string(bio);
    BIO_free(bio);
    return out;
}

static json_t *
s_normalize(s_cert_t *c, api_error_t *err)
{
    X509 *leaf = c->chain[0];
    json_t *cert = s_chain_pem(c);
    json_t *key = s_key_pem(c);
    json_t *issuer = s_name(X509_get_issuer_name(leaf));
    json_t *subject = s_name(X509_get_subject_name(leaf));
    json_t *not_before = s_time(X509_get0_notBefore(leaf));
    json_t *not_after = s_time(X509_get0_notAfter(leaf));
    json_t *out = NULL;
    if (cert == NULL || key == NULL || issuer == NULL || subject == NULL)
        s_fail(err, "invalid_value", "cert", "the certificate cannot be encoded again");
    else if (not_before == NULL || not_after == NULL)
        s_fail(err, "invalid_value", "cert", "the validity dates of the certificate are not valid");
    else
        out = json_pack("{s:s, s:O, s:O, s:O, s:O, s:O, s:O}", "domain", c->domain, "cert", cert,
                        "key", key, "issuer", issuer, "subject", subject, "notBefore", not_before,
                        "notAfter", not_after);
    if (out && c->ocsp) {
        // canonical: one line, padded; the bytes as given
        char *text = proto_xmalloc(4 * ((c->ocsp_len + 2) / 3) + 1);
        EVP_EncodeBlock((unsigned char *) text, c->ocsp, (int) c->ocsp_len);
        char at[32];
        s_iso(c->ocsp_next_update, at, sizeof at);
        json_object_set_new(out, "ocsp", json_string(text));
        json_object_set_new(out, "ocspNextUpdate", json_string(at));
        free(text);
    }
    json_decref(cert);
    json_decref(key);
    json_decref(issuer);
    json_decref(subject);
    json_decref(not_before);
    json_decref(not_after);
    return out;
}

// --------------------------------------------------------------------------

static json_t *
s_check_cert(json_t *doc, void *arg, api_error_t *err)
{
    (void) arg;
    if (!json_is_object(doc)) {
        api_error_set(err, "invalid_type", "", "expected a JSON object (a certificate)");
        return NULL;
    }
    s_cert_t c;
    memset(&c, 0, sizeof c);
    json_t *out = NULL;
    const char *name;
    json_t *value;
    json_object_foreach(doc, name, value)
    {
        bool ok;
        bool pem = false, chained = false; // chained: cert or ocsp, read and valid alone
        if (strcmp(name, "domain") == 0)
            ok = s_check_domain(value, &c, err);
        else if (strcmp(name, "key") == 0)
            ok = pem = s_check_key(value, &c, err);
        else if (strcmp(name, "cert") == 0)
            ok = pem = chained = s_check_chain(value, &c, err);
        else if (strcmp(name, "ocsp") == 0)
            ok = chained = s_check_ocsp(value, &c, err);
        else {
            char shown[201];
            s_utf8_cut(name, shown, sizeof shown);
            api_error_set(err, "unknown_field", name, "%s: unknown field", shown);
            ok = false;
        }
        // the pair is checked once both are read, at the later of the two
        if (pem && c.key && c.nchain > 0)
            ok = s_check_match(&c, err);
        // and the OCSP response against the chain (after the key: a key of
        // another certificate is the more basic mistake)
        if (ok && chained && c.ocsp_basic && c.nchain > 0)
            ok = s_check_ocsp_match(&c, err);
        if (!ok)
            goto done;
    }
    if (!c.have_domain)
        s_fail(err, "missing_field", "domain", "required");
    else if (c.key == NULL)
        s_fail(err, "missing_field", "key", "required");
    else if (c.nchain == 0)
        s_fail(err, "missing_field", "cert", "required");
    else
        out = s_normalize(&c, err);
done:
    for (int i = 0; i < c.nchain; i++)
        X509_free(c.chain[i]);
    EVP_PKEY_free(c.key);
    OCSP_BASICRESP_free(c.ocsp_basic);
    free(c.ocsp);
    ERR_clear_error();
    return out;
}

json_t *
api_cert_parse(const char *text, size_t len, api_error_t *err)
{
    ERR_clear_error();
    return api_json_load_checked(text, len, s_check_cert, NULL, err);
}

int
api_cert_check_pair(const char *key, const char *cert, api_error_t *err)
{
    ERR_clear_error();
    s_cert_t c;
    memset(&c, 0, sizeof c);
    json_t *jcert = json_string(cert);
    json_t *jkey = key ? json_string(key) : NULL;
    bool ok = jcert != NULL && (key == NULL || jkey != NULL);
    if (!ok)
        api_error_set(err, "invalid_value", jcert ? "key" : "cert", "not UTF-8 text");
    ok = ok && s_check_chain(jcert, &c, err);
    ok = ok && (jkey == NULL || s_check_key(jkey, &c, err));
    ok = ok && (jkey == NULL || s_check_match(&c, err));
    for (int i = 0; i < c.nchain; i++)
        X509_free(c.chain[i]);
    EVP_PKEY_free(c.key);
    json_decref(jcert);
    json_decref(jkey);
    ERR_clear_error();
    return ok ? 0 : -1;
}

int
api_cert_domain_normalize(const char *text, char *out, size_t cap)
{
    return proto_route_vhost_normalize(text, out, cap);
}
