/*  gw_tls - the HTTPS listener's TLS: server contexts and SNI (SPEC §11).

    One SSL_CTX per certificate, built from its PEMs (the chain, leaf first,
    and the key), in a table sorted by domain. A handshake starts on a base
    context that has no certificate; its SNI callback picks the exact
    domain, else the wildcard one label up (a.example.com -> *.example.com,
    never a.b.example.com), else the default certificate of domain "*", else
    fails the handshake with the unrecognized_name alert. A table is
    replaced whole (gw_tls_swap): an SSL holds a reference on the context it
    was switched to, so handshakes in flight keep theirs.

    Every context is configured alike: TLS 1.2 and 1.3 only, ECDHE with AEAD
    ciphers for TLS 1.2, ALPN http/1.1, no compression, no renegotiation, no
    session cache (stateless tickets only). Ticket keys are shared by every
    context, so a ticket from any certificate's handshake resumes: a key
    made at start, replaced every GW_TLS_TICKET_ROTATE_S (lazily, by the
    next handshake that issues a ticket), the previous one kept for
    decryption (its tickets are renewed).

    OCSP stapling: a certificate may come with a DER OCSP response (apid
    checked it against the chain). Its context keeps a copy and the
    response's nextUpdate (ex_data, so it lives as long as the context,
    in-flight handshakes included); the status callback, which OpenSSL
    calls only when the client sent status_request, answers with a copy
    of it until nextUpdate, and with no OCSP response (NOACK) past it or
    without one. A response that does not parse or has no answer for the
    leaf and its issuer (the chain's first certificate) is not stapled
    (logged); the certificate is served all the same.

    Single-threaded: the gateway's loop only.
*/
#ifndef GW_TLS_H
#define GW_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#define GW_TLS_TICKET_ROTATE_S (12 * 3600) // a ticket key encrypts this long, then decrypts

typedef struct gw_tls gw_tls_t;
typedef struct gw_tls_table gw_tls_table_t;

//  Create the TLS server (base context, ticket keys) with an empty table.
//  Returns NULL with a reason in err.
gw_tls_t *gw_tls_new(char *err, size_t errlen);

//  Free it and its table. Sets *self_p to NULL. Safe to call twice.
void gw_tls_destroy(gw_tls_t **self_p);

//  A new empty table, to fill with gw_tls_table_add and install with
//  gw_tls_swap.
gw_tls_table_t *gw_tls_table_new(void);

//  Add a certificate for domain (exact, "*.suffix" or "*"; case-insensitive;
//  a domain added twice: the first is kept). Returns 0, or -1 with a reason
//  in err (bad PEM, key not matching the certificate).
int gw_tls_table_add(gw_tls_t *self,
                     gw_tls_table_t *table,
                     const char *domain,
                     const char *chain_pem,
                     const char *key_pem,
                     char *err,
                     size_t errlen);

//  gw_tls_table_add with an OCSP response to staple: ocsp_len bytes of DER
//  (copied; 0: none). A response that cannot be stapled is logged and
//  left out: the certificate is added all the same.
int gw_tls_table_add_ocsp(gw_tls_t *self,
                          gw_tls_table_t *table,
                          const char *domain,
                          const char *chain_pem,
                          const char *key_pem,
                          const uint8_t *ocsp,
                          size_t ocsp_len,
                          char *err,
                          size_t errlen);

//  Free a table not installed. Safe to call twice.
void gw_tls_table_free(gw_tls_table_t **table_p);

//  Install table (taken; *table_p is set to NULL) and free the previous one.
void gw_tls_swap(gw_tls_t *self, gw_tls_table_t **table_p);

//  Certificates in the installed table.
size_t gw_tls_count(const gw_tls_t *self);

//  A server SSL for an accepted socket (accept state), or NULL.
SSL *gw_tls_ssl_new(gw_tls_t *self, int fd);

//  Replace the ticket key now (the previous one still decrypts).
void gw_tls_rotate_tickets(gw_tls_t *self);

//  SSL_read and SSL_write on a non-blocking socket with a socket's results,
//  the one mapping every TLS user of the gateway shares (connections, chat
//  sessions, tunnels): n > 0 bytes; 0 at close_notify or EOF (read only);
//  -1 with errno EAGAIN and *other set when the retry waits for the other
//  readiness (a read that must write first, a write that must read), or
//  errno ECONNRESET (read) / EPIPE (write) after a fatal error, which also
//  sets quiet shutdown (no close_notify may follow). OpenSSL's error queue
//  is left empty. A write that returned EAGAIN must be repeated with the
//  same bytes (they may have moved: SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER).
ssize_t gw_tls_read(SSL *ssl, void *buf, size_t len, bool *other);
ssize_t gw_tls_write(SSL *ssl, const void *buf, size_t len, bool *other);

//  Handshakes refused for an unknown name (no certificate matched).
uint64_t *gw_tls_unrecognized(gw_tls_t *self);

//  Handshakes that asked for the certificate status: answered with an
//  OCSP response (stapled), and not because the stored one was past its
//  nextUpdate (stale). Counters to register on the bus.
uint64_t *gw_tls_ocsp_stapled(gw_tls_t *self);
uint64_t *gw_tls_ocsp_stale(gw_tls_t *self);

#endif
