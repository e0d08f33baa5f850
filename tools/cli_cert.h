/*  cli_cert - a self-signed certificate for localhost, made with OpenSSL, for
    the HTTPS listener of `switchyard run` (SPEC §1: `make run` serves HTTPS
    on 8443 with a generated self-signed certificate).

    The certificate: X509v3, an EC P-256 key, subject and issuer CN=localhost,
    subjectAltName DNS:localhost, IP:127.0.0.1, IP:::1, basicConstraints
    CA:FALSE, keyUsage digitalSignature, extendedKeyUsage serverAuth, valid
    from one hour ago (clocks that differ a little) for CLI_CERT_DAYS days, a
    random positive 16-byte serial, signed with ECDSA SHA-256. It is made in
    memory and never written to disk here: the caller stores it (through the
    control API, POST /api/v1/certificates).
*/
#ifndef CLI_CERT_H
#define CLI_CERT_H

#include <stddef.h>

#define CLI_CERT_CN         "localhost" // subject and issuer common name
#define CLI_CERT_DAYS       365         // validity, from notBefore
#define CLI_CERT_BACKDATE_S 3600        // notBefore is this long before now
#define CLI_CERT_SERIAL_LEN 16          // bytes of the random serial

//  A certificate and its key, as PEM text.
typedef struct {
    char *cert; // one CERTIFICATE block, NUL-terminated
    char *key;  // the private key, unencrypted PKCS#8 (PRIVATE KEY block), NUL-terminated
} cli_cert_t;

//  Make a new key and self-signed certificate for localhost into *out (whose
//  strings the caller frees with cli_cert_free). Returns 0; or -1 with out's
//  strings NULL and one line in err (the step that failed and OpenSSL's
//  reason). Leaves nothing on OpenSSL's error queue.
int cli_cert_self_signed(cli_cert_t *out, char *err, size_t errlen);

//  Free the strings of cert and set them to NULL. Safe to call twice.
void cli_cert_free(cli_cert_t *cert);

#endif
