/*  t_pki - keys and certificates for tests (see t_pki.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/pem.h>

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
    X509 *x = X509_new();
    s_check(x != NULL, "X509_new");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
    s_check(ASN1_TIME_set_string(X509_getm_notBefore(x), from) == 1, "notBefore");
    s_check(ASN1_TIME_set_string(X509_getm_notAfter(x), to) == 1, "notAfter");
    s_check(X509_set_pubkey(x, key) == 1, "X509_set_pubkey");
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *) cn, -1, -1, 0);
    X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8, (const unsigned char *) "Switchyard, Test",
                               -1, -1, 0);
    X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name);
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
