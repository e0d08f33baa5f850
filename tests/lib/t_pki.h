/*  t_pki - keys and certificates made at test time with OpenSSL, for the
    tests that need real PEM (certificates, a route's ssl pair, TLS later)
    and OCSP responses to staple.
    Every function aborts on failure: a test helper, not product code.
*/
#ifndef T_PKI_H
#define T_PKI_H

#include <stddef.h>
#include <time.h>

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

//  As t_pki_cert, with the serial number given and extensions as
//  openssl.cnf writes them, in name/value pairs ending in NULL ({
//  "basicConstraints", "critical,CA:TRUE", "extendedKeyUsage",
//  "OCSPSigning", NULL }), or none when exts is NULL.
char *t_pki_cert_ex(EVP_PKEY *key,
                    const char *cn,
                    long serial,
                    const char *from,
                    const char *to,
                    X509 *ca,
                    EVP_PKEY *ca_key,
                    const char *const *exts,
                    X509 **out);

//  An OCSP response (DER; caller frees; *len its bytes) with one answer:
//  status (V_OCSP_CERTSTATUS_GOOD, _REVOKED, _UNKNOWN) for leaf issued by
//  issuer, its CertID hashed with md (EVP_sha1() as most responders do),
//  thisUpdate and nextUpdate (0: none) as given, signed by signer
//  (signer_key) with SHA-256, the signer's certificate included.
unsigned char *t_pki_ocsp(X509 *leaf,
                          X509 *issuer,
                          const EVP_MD *md,
                          int status,
                          time_t this_update,
                          time_t next_update,
                          X509 *signer,
                          EVP_PKEY *signer_key,
                          size_t *len);

//  An OCSP response without a body: resp_status is not successful
//  (OCSP_RESPONSE_STATUS_TRYLATER...). DER, caller frees.
unsigned char *t_pki_ocsp_status(int resp_status, size_t *len);

//  data in base64 (standard alphabet, padded, one line). Caller frees.
char *t_pki_base64(const unsigned char *data, size_t len);

#endif
