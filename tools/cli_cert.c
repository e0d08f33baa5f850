/*  cli_cert - a self-signed certificate for localhost (see cli_cert.h).

    Every OpenSSL call is checked; a failure names its step and OpenSSL's
    reason, and everything made so far is freed at the one fail: label. The
    key is written as unencrypted PKCS#8, the form apid stores (api_cert.h),
    so the text sent is already the canonical one. Extensions are added in
    OpenSSL's configuration syntax (as `openssl req -addext` takes them),
    with no configuration database: none of them refers to one.
*/
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli_cert.h"
#include "proto_util.h"

//  The extensions, in the order they are added.
static const struct {
    int nid;           // which
    const char *value; // its value in OpenSSL's configuration syntax
} s_extensions[] = {
    {NID_basic_constraints, "critical,CA:FALSE"},
    {NID_key_usage, "critical,digitalSignature"},
    {NID_ext_key_usage, "serverAuth"},
    {NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1,IP:::1"},
};

//  "what: OpenSSL's reason" into err, then empty the error queue.
static void
s_fail(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_peek_error();
    char reason[256] = "failed";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    snprintf(err, errlen, "self-signed certificate: %s: %s", what, reason);
    ERR_clear_error();
}

//  What was written into a memory BIO, as a new NUL-terminated string
//  (caller frees), or NULL when nothing was.
static char *
s_bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    if (n <= 0 || data == NULL)
        return NULL;
    char *text = proto_xmalloc((size_t) n + 1);
    memcpy(text, data, (size_t) n);
    text[n] = '\0';
    return text;
}

//  A random serial: positive (top bit clear) and always CLI_CERT_SERIAL_LEN
//  bytes long (the next bit set), so never 0. Returns 0 or -1.
static int
s_set_serial(X509 *x)
{
    unsigned char bytes[CLI_CERT_SERIAL_LEN];
    if (RAND_bytes(bytes, sizeof bytes) != 1)
        return -1;
    bytes[0] = (unsigned char) ((bytes[0] & 0x7f) | 0x40);
    BIGNUM *bn = BN_bin2bn(bytes, sizeof bytes, NULL);
    int rc = bn != NULL && BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL ? 0 : -1;
    BN_free(bn);
    return rc;
}

int
cli_cert_self_signed(cli_cert_t *out, char *err, size_t errlen)
{
    out->cert = NULL;
    out->key = NULL;
    EVP_PKEY *key = NULL;
    X509 *x = NULL;
    BIO *bio = NULL;
    X509_NAME *name = NULL;
    X509V3_CTX ctx;
    char what[64] = "EC P-256 key";

    key = EVP_EC_gen("P-256");
    if (key == NULL)
        goto fail;
    snprintf(what, sizeof what, "X509 certificate");
    x = X509_new();
    if (x == NULL || X509_set_version(x, X509_VERSION_3) != 1)
        goto fail;
    snprintf(what, sizeof what, "serial number");
    if (s_set_serial(x) != 0)
        goto fail;
    snprintf(what, sizeof what, "validity");
    if (X509_gmtime_adj(X509_getm_notBefore(x), -CLI_CERT_BACKDATE_S) == NULL
        || X509_time_adj_ex(X509_getm_notAfter(x), CLI_CERT_DAYS, -CLI_CERT_BACKDATE_S, NULL)
               == NULL)
        goto fail;
    snprintf(what, sizeof what, "subject");
    name = X509_get_subject_name(x);
    if (name == NULL
        || X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) CLI_CERT_CN,
                                      -1, -1, 0)
               != 1
        || X509_set_issuer_name(x, name) != 1 || X509_set_pubkey(x, key) != 1)
        goto fail;
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    for (size_t i = 0; i < PROTO_ARRAY_SIZE(s_extensions); i++) {
        snprintf(what, sizeof what, "extension %s", OBJ_nid2sn(s_extensions[i].nid));
        X509_EXTENSION *ext =
            X509V3_EXT_nconf_nid(NULL, &ctx, s_extensions[i].nid, s_extensions[i].value);
        int added = ext != NULL && X509_add_ext(x, ext, -1) == 1;
        X509_EXTENSION_free(ext);
        if (!added)
            goto fail;
    }
    snprintf(what, sizeof what, "SHA-256 signature");
    if (X509_sign(x, key, EVP_sha256()) <= 0)
        goto fail;

    snprintf(what, sizeof what, "certificate PEM");
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_X509(bio, x) != 1 || (out->cert = s_bio_text(bio)) == NULL)
        goto fail;
    BIO_free(bio);
    bio = NULL;
    snprintf(what, sizeof what, "key PEM");
    bio = BIO_new(BIO_s_mem());
    if (bio == NULL || PEM_write_bio_PKCS8PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) != 1
        || (out->key = s_bio_text(bio)) == NULL)
        goto fail;
    BIO_free(bio);
    bio = NULL;
    X509_free(x);
    x = NULL;
    EVP_PKEY_free(key);
    key = NULL;
    return 0;

fail:
    s_fail(err, errlen, what);
    cli_cert_free(out);
    BIO_free(bio);
    X509_free(x);
    EVP_PKEY_free(key);
    return -1;
}

void
cli_cert_free(cli_cert_t *cert)
{
    if (cert == NULL)
        return;
    free(cert->cert);
    cert->cert = NULL;
    // the key's bytes are cleared before they go back to the allocator
    if (cert->key)
        OPENSSL_cleanse(cert->key, strlen(cert->key));
    free(cert->key);
    cert->key = NULL;
}
