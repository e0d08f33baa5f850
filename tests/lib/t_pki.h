/*  t_pki - keys and certificates made at test time with OpenSSL, for the
    tests that need real PEM (certificates, a route's ssl pair, TLS later).
    Every function aborts on failure: a test helper, not product code.
*/
#ifndef T_PKI_H
#define T_PKI_H

#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

//  What was written into a memory BIO, as a new NUL-terminated string
//  (caller frees); frees bio.
char *t_pki_bio_text(BIO *bio);

//  key as unencrypted PEM (PKCS#8). Caller frees.
char *t_pki_key_pem(EVP_PKEY *key);

//  A certificate for key with subject CN=cn, O="Switchyard, Test", valid
//  from..to ("YYYYMMDDHHMMSSZ"), signed by ca (ca_key), or self-signed when
//  ca is NULL. Returns its PEM (caller frees); *out gets the X509 when out
//  is not NULL (caller frees with X509_free).
char *t_pki_cert(EVP_PKEY *key,
                 const char *cn,
                 const char *from,
                 const char *to,
                 X509 *ca,
                 EVP_PKEY *ca_key,
                 X509 **out);

#endif
