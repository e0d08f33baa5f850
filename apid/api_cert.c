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
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "proto_route.h"
#include "proto_util.h"
#include "api_cert.h"

#define S_REASON_MAX 128 // bytes of OpenSSL's reason quoted in a message

//  What the walk of one body has read so far.
typedef struct {
    char domain[PROTO_ROUTE_VHOST_MAX + 1]; // lower-case
    bool have_domain;                       // domain read and valid
    X509 *chain[API_CERT_CHAIN_MAX];        // cert: the leaf first
    int nchain;                             // how many
    EVP_PKEY *key;                          // key, or NULL
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
        bool pem = false;
        if (strcmp(name, "domain") == 0)
            ok = s_check_domain(value, &c, err);
        else if (strcmp(name, "key") == 0)
            ok = pem = s_check_key(value, &c, err);
        else if (strcmp(name, "cert") == 0)
            ok = pem = s_check_chain(value, &c, err);
        else {
            char shown[201];
            s_utf8_cut(name, shown, sizeof shown);
            api_error_set(err, "unknown_field", name, "%s: unknown field", shown);
            ok = false;
        }
        // the pair is checked once both are read, at the later of the two
        if (pem && c.key && c.nchain > 0)
            ok = s_check_match(&c, err);
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
