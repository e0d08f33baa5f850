/*  t_pki - keys and certificates for tests (see t_pki.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "t_pki.h"

static void
s_check(int ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "t_pki: %s failed\n", what);
        abort();
    }
}

char *
t_pki_bio_text(BIO *bio)
{
    char *data = NULL;
    long n = BIO_get_mem_data(bio, &data);
    s_check(n > 0, "BIO_get_mem_data");
    char *s = malloc((size_t) n + 1);
    s_check(s != NULL, "malloc");
    memcpy(s, data, (size_t) n);
    s[n] = '\0';
    BIO_free(bio);
    return s;
}

char *
t_pki_key_pem(EVP_PKEY *key)
{
    BIO *bio = BIO_new(BIO_s_mem());
    s_check(PEM_write_bio_PrivateKey(bio, key, NULL, NULL, 0, NULL, NULL) == 1,
            "PEM_write_bio_PrivateKey");
    return t_pki_bio_text(bio);
}

char *
t_pki_cert(EVP_PKEY *key,
           const char *cn,
           const char *from,
           const char *to,
           X509 *ca,
           EVP_PKEY *ca_key,
           X509 **out)
{
    return t_pki_cert_ex(key, cn, 4242, from, to, ca, ca_key, NULL, out);
}

char *
t_pki_cert_ex(EVP_PKEY *key,
              const char *cn,
              long serial,
              const char *from,
              const char *to,
              X509 *ca,
              EVP_PKEY *ca_key,
              const char *const *exts,
              X509 **out)
{
    X509 *x = X509_new();
    s_check(x != NULL, "X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), serial);
    s_check(ASN1_TIME_set_string(X509_getm_notBefore(x), from) == 1, "notBefore");
    s_check(ASN1_TIME_set_string(X509_getm_notAfter(x), to) == 1, "notAfter");
    s_check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) "Switchyard, Test",
                               -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
    for (size_t i = 0; exts && exts[i]; i += 2) {
        X509V3_CTX v3;
        X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
        X509_EXTENSION *ext = X509V3_EXT_nconf(NULL, &v3, exts[i], exts[i + 1]);
        s_check(ext != NULL && X509_add_ext(x, ext, -1) == 1, exts[i]);
        X509_EXTENSION_free(ext);
    }
    EVP_PKEY *signer = ca ? ca_key : key;
    const EVP_MD *md = EVP_PKEY_get_id(signer) == EVP_PKEY_ED25519 ? NULL : EVP_sha256();
    s_check(X509_sign(x, signer, md) > 0, "X509_sign");
    BIO *bio = BIO_new(BIO_s_mem());
    s_check(PEM_write_bio_X509(bio, x) == 1, "PEM_write_bio_X509");
    char *pem = t_pki_bio_text(bio);
    if (out)
        *out = x;
    else
        X509_free(x);
    return pem;
}

//  The DER of resp (freed).
static unsigned char *
s_ocsp_der(OCSP_RESPONSE *resp, size_t *len)
{
    unsigned char *der = NULL;
    int n = i2d_OCSP_RESPONSE(resp, &der);
    s_check(n > 0, "i2d_OCSP_RESPONSE");
    OCSP_RESPONSE_free(resp);
    unsigned char *copy = malloc((size_t) n);
    s_check(copy != NULL, "malloc");
    memcpy(copy, der, (size_t) n);
    OPENSSL_free(der);
    *len = (size_t) n;
    return copy;
}

unsigned char *
t_pki_ocsp(X509 *leaf,
           X509 *issuer,
           const EVP_MD *md,
           int status,
           time_t this_update,
           time_t next_update,
           X509 *signer,
           EVP_PKEY *signer_key,
           size_t *len)
{
    OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
    OCSP_CERTID *id = OCSP_cert_to_id(md, leaf, issuer);
    ASN1_TIME *thisupd = ASN1_TIME_set(NULL, this_update);
    ASN1_TIME *nextupd = next_update ? ASN1_TIME_set(NULL, next_update) : NULL;
    ASN1_TIME *revoked =
        status == V_OCSP_CERTSTATUS_REVOKED ? ASN1_TIME_set(NULL, this_update - 3600) : NULL;
    s_check(bs && id && thisupd && (nextupd || !next_update), "OCSP response parts");
    s_check(OCSP_basic_add1_status(bs, id, status, OCSP_REVOKED_STATUS_KEYCOMPROMISE, revoked,
                                   thisupd, nextupd)
                != NULL,
            "OCSP_basic_add1_status");
    s_check(OCSP_basic_sign(bs, signer, signer_key, EVP_sha256(), NULL, 0) == 1, "OCSP_basic_sign");
    OCSP_RESPONSE *resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
    s_check(resp != NULL, "OCSP_response_create");
    ASN1_TIME_free(revoked);
    ASN1_TIME_free(nextupd);
    ASN1_TIME_free(thisupd);
    OCSP_CERTID_free(id);
    OCSP_BASICRESP_free(bs);
    return s_ocsp_der(resp, len);
}

unsigned char *
t_pki_ocsp_status(int resp_status, size_t *len)
{
    OCSP_RESPONSE *resp = OCSP_response_create(resp_status, NULL);
    s_check(resp != NULL, "OCSP_response_create");
    return s_ocsp_der(resp, len);
}

char *
t_pki_base64(const unsigned char *data, size_t len)
{
    char *text = malloc(4 * ((len + 2) / 3) + 1);
    s_check(text != NULL, "malloc");
    EVP_EncodeBlock((unsigned char *) text, data, (int) len);
    return text;
}
