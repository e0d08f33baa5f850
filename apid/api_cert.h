/*  api_cert - validation and normalization of a certificate body (SPEC §5, §11).

    POST /api/v1/certificates takes {"domain", "key", "cert"}, all three
    required strings, and "ocsp", optional:
      domain  the name the certificate serves: a host name, a wildcard
              "*.example.com", or "*" (the default certificate, served when
              no other name matches); the vHost rule of proto_route.h, at
              most PROTO_ROUTE_VHOST_MAX (253) bytes; stored lower-case.
      cert    PEM: one or more CERTIFICATE blocks, the leaf first and then
              its chain, at most API_CERT_CHAIN_MAX of them, with nothing but
              whitespace around and between the blocks; each must parse.
      key     PEM: one private key (RSA, EC, Ed25519...), unencrypted: an
              encrypted key is refused (apid never asks for a passphrase).
              An "EC PARAMETERS" block before it (openssl ecparam -genkey)
              is accepted and dropped.
      ocsp    an OCSP response for the leaf, to staple (null: none, as when
              left out): base64 (standard alphabet, "=" padding; whitespace
              anywhere is skipped) of one DER OCSPResponse, at most
              API_CERT_OCSP_MAX bytes decoded (API_CERT_OCSP_TEXT_MAX of
              text). Its status must be successful, with a basic response
              that has an answer for the leaf and its issuer - the second
              certificate of cert, which must be there and have issued the
              leaf - signed by that issuer or by a responder it delegated
              (the issuer is trusted as such: no path to a root is needed),
              saying "good" (a revoked or unknown status is refused), with
              a nextUpdate (required) after now and a thisUpdate at most
              API_CERT_OCSP_SKEW_S ahead of now. An expired response is
              refused: the gateway would not staple it anyway.
    Each PEM text is at most API_CERT_PEM_MAX bytes. The key must be the leaf's
    (X509_check_private_key), else invalid_value on "key". Validity dates
    are NOT checked: an expired (or not yet valid) certificate is accepted,
    so an operator can store one before fixing it; notAfter says when.

    Why here and not only in the router: a bad PEM or a key of another
    certificate is the client's mistake and gets a 400 naming the field
    before anything reaches the store; the router may check again.

    The normalized body is {"domain", "cert", "key", "issuer", "subject",
    "notBefore", "notAfter"}: cert and key re-encoded by OpenSSL (canonical
    PEM, the key as unencrypted PKCS#8), issuer and subject of the leaf as
    one-line RFC 2253 strings (ASCII: other bytes escaped), notBefore and
    notAfter as ISO-8601 UTC ("2026-12-05T10:00:00Z"); with an OCSP
    response, also "ocsp" (its DER as given, in base64 on one line with
    padding) and "ocspNextUpdate" (ISO-8601 UTC), after notAfter.
    Normalizing the same domain, key, cert and ocsp again gives the same
    text.

    Errors are api_route's (api_route.h), all 400, with the first bad field
    in document order: invalid_json, duplicate_key, unknown_field,
    invalid_type, missing_field (in the order domain, key, cert, after every
    member written), out_of_range (a PEM over API_CERT_PEM_MAX bytes, a chain
    over API_CERT_CHAIN_MAX, an ocsp over its bounds), invalid_value (a bad
    domain; a PEM that does not parse, on "cert" or "key", with OpenSSL's
    reason; a key that does not match the certificate, on "key", checked as
    soon as both were read; an ocsp that is not base64, not a DER OCSP
    response, not successful or not basic, on "ocsp" when it is read; one
    that does not fit the chain as above, on "ocsp", checked as soon as
    cert and ocsp were read, after the key).
    Messages are ASCII and never quote the input. Nothing is left on
    OpenSSL's error queue.
*/
#ifndef API_CERT_H
#define API_CERT_H

#include <stddef.h>

#include <jansson.h>

#include "proto_route.h"
#include "api_json.h"

#define API_CERT_PEM_MAX       65536 // bytes of the cert text, and of the key text
#define API_CERT_CHAIN_MAX     10    // certificates in cert, the leaf included
#define API_CERT_OCSP_MAX      16384 // bytes of the DER OCSP response (certs.reply's bound)
#define API_CERT_OCSP_TEXT_MAX 32768 // bytes of its base64 text, whitespace included
#define API_CERT_OCSP_SKEW_S   300   // a thisUpdate this far ahead of our clock is accepted

//  Validate and normalize a certificate body of len bytes (need not end in
//  NUL). Returns a new JSON object the caller owns (json_decref), or NULL
//  with err filled.
json_t *api_cert_parse(const char *text, size_t len, api_error_t *err);

//  Check a route's "ssl" pair (SPEC §4: the same rules as a certificate
//  body, without ocsp): cert a PEM chain, key one unencrypted private key matching the
//  leaf; key NULL checks cert alone (a GET -> edit -> PUT sends the key
//  back redacted: the router keeps the stored one). Returns 0, or -1 with
//  err on "cert" or "key".
int api_cert_check_pair(const char *key, const char *cert, api_error_t *err);

//  Write the stored form of a certificate domain (lower-case) into out, of
//  cap bytes (PROTO_ROUTE_VHOST_MAX + 1 is enough). Returns 0, or -1 if
//  text is not a valid domain (out is then "").
int api_cert_domain_normalize(const char *text, char *out, size_t cap);

#endif
