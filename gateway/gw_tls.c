/*  gw_tls - the HTTPS listener's TLS: server contexts and SNI (SPEC §11).

    See gw_tls.h. The table is an array sorted by domain (lower-case), so an
    SNI lookup is at most three binary searches: the name, "*." and the name
    without its first label, "*".

    An OCSP response hangs on its context as ex_data (s_staple_t, freed
    with the context): the status callback reads it from the SSL's current
    context, which is the certificate's after the SNI switch, or base for
    the default certificate (s_rebase copies it there too).
*/
#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>

#include "gw_tls.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_DOMAIN_MAX 255 // bytes of a domain (SNI host names are at most 255)

//  TLS 1.2: forward secrecy and AEAD only (Mozilla's "intermediate" list);
//  TLS 1.3 keeps OpenSSL's default suites (all AEAD).
#define S_CIPHERS                                                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:"     \
    "ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

//  ALPN: http/1.1 only (h2 once HTTP/2 lands).
static const unsigned char s_alpn[] = "\x08http/1.1";

//  A ticket key: its name (sent in the ticket), AES-256 and HMAC-SHA256 keys.
typedef struct {
    unsigned char name[16]; // key name
    unsigned char aes[32];  // encryption key
    unsigned char hmac[32]; // MAC key
    time_t made;            // monotonic seconds when it was made
    bool set;               // holds a key
} s_ticket_key_t;

//  A context's OCSP response to staple.
typedef struct {
    unsigned char *der;            // the response, DER
    size_t len;                    // its bytes
    time_t next_update;            // its nextUpdate (UTC): not stapled from then on
    bool warned;                   // "past its nextUpdate" logged
    char domain[S_DOMAIN_MAX + 1]; // for the log
} s_staple_t;

//  One certificate's context.
typedef struct {
    char domain[S_DOMAIN_MAX + 1]; // lower-case
    size_t order;                  // insertion order (the first of a domain wins)
    SSL_CTX *ctx;                  // one reference
} s_entry_t;

struct gw_tls_table {
    s_entry_t *entries; // sorted by domain once installed
    size_t count;       // how many
    size_t cap;         // allocated
};

struct gw_tls {
    SSL_CTX *base;            // handshakes start here (with the default certificate, if any)
    SSL_CTX *base_default;    // the table's context for "*" that base copies, or NULL
    gw_tls_table_t *table;    // installed certificates
    s_ticket_key_t ticket[2]; // current, previous
    uint64_t unrecognized;    // handshakes refused: no certificate for the name
    int staple_index;         // SSL_CTX ex_data index of a context's s_staple_t
    uint64_t ocsp_stapled;    // handshakes answered with an OCSP response
    uint64_t ocsp_stale;      // ... not, the response being past its nextUpdate
};

static time_t
s_mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec;
}

//  OpenSSL's last error as text, and the queue emptied.
static void
s_ssl_err(char *err, size_t errlen, const char *what)
{
    unsigned long e = ERR_get_error();
    char buf[256] = "";
    if (e)
        ERR_error_string_n(e, buf, sizeof buf);
    snprintf(err, errlen, "%s%s%s", what, e ? ": " : "", buf);
    ERR_clear_error();
}

static int
s_entry_cmp(const void *a, const void *b)
{
    const s_entry_t *x = a, *y = b;
    int c = strcmp(x->domain, y->domain);
    if (c != 0)
        return c;
    return x->order < y->order ? -1 : x->order > y->order;
}

static SSL_CTX *
s_lookup(const gw_tls_table_t *table, const char *domain)
{
    if (table == NULL || table->count == 0)
        return NULL;
    size_t lo = 0, hi = table->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(table->entries[mid].domain, domain);
        if (c == 0)
            return table->entries[mid].ctx;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

// --------------------------------------------------------------------------
// Callbacks (every context has them)

//  SNI: exact, one-label wildcard, "*", else unrecognized_name.
static int
s_on_servername(SSL *ssl, int *alert, void *arg)
{
    gw_tls_t *self = arg;
    const char *name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
    char lower[S_DOMAIN_MAX + 1] = "";
    SSL_CTX *ctx = NULL;
    if (name && *name) {
        size_t len = strlen(name);
        if (len > S_DOMAIN_MAX)
            len = S_DOMAIN_MAX;
        for (size_t i = 0; i < len; i++)
            lower[i] = (char) tolower((unsigned char) name[i]);
        lower[len] = '\0';
        ctx = s_lookup(self->table, lower);
        const char *dot = strchr(lower, '.');
        if (ctx == NULL && dot && dot[1]) {
            char wild[S_DOMAIN_MAX + 2];
            snprintf(wild, sizeof wild, "*%s", dot);
            ctx = s_lookup(self->table, wild);
        }
    }
    if (ctx == NULL)
        ctx = s_lookup(self->table, "*");
    if (ctx == NULL) {
        self->unrecognized++;
        log_debug("TLS handshake refused: no certificate for the name", LOG_S("sni", lower));
        *alert = SSL_AD_UNRECOGNIZED_NAME;
        return SSL_TLSEXT_ERR_ALERT_FATAL;
    }
    // the default certificate is base's own: no switch (SSL_set_SSL_CTX
    // copies the certificate state, a few percent of a full handshake);
    // an SSL made from an earlier base switches, so it gets today's
    if (ctx != self->base_default || SSL_get_SSL_CTX(ssl) != self->base)
        SSL_set_SSL_CTX(ssl, ctx); // the SSL takes a reference on it
    return SSL_TLSEXT_ERR_OK;
}

//  status_request (OpenSSL calls this only when the client sent it): a
//  copy of the context's response (the SSL frees what it is given), unless
//  there is none or it is past its nextUpdate.
static int
s_on_status(SSL *ssl, void *arg)
{
    gw_tls_t *self = arg;
    s_staple_t *staple = SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), self->staple_index);
    if (staple == NULL || SSL_get_tlsext_status_type(ssl) != TLSEXT_STATUSTYPE_ocsp)
        return SSL_TLSEXT_ERR_NOACK;
    if (time(NULL) >= staple->next_update) {
        self->ocsp_stale++;
        if (!staple->warned) {
            staple->warned = true;
            log_warn("OCSP response past its nextUpdate: not stapled (store a new one)",
                     LOG_S("domain", staple->domain));
        }
        return SSL_TLSEXT_ERR_NOACK;
    }
    unsigned char *copy = OPENSSL_malloc(staple->len);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK;
    memcpy(copy, staple->der, staple->len);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long) staple->len) != 1) {
        OPENSSL_free(copy);
        ERR_clear_error();
        return SSL_TLSEXT_ERR_NOACK;
    }
    self->ocsp_stapled++;
    return SSL_TLSEXT_ERR_OK;
}

static int
s_on_alpn(SSL *ssl,
          const unsigned char **out,
          unsigned char *outlen,
          const unsigned char *in,
          unsigned int inlen,
          void *arg)
{
    (void) ssl;
    (void) arg;
    unsigned char *sel = NULL;
    if (SSL_select_next_proto(&sel, outlen, s_alpn, sizeof s_alpn - 1, in, inlen)
        != OPENSSL_NPN_NEGOTIATED)
        return SSL_TLSEXT_ERR_NOACK; // no http/1.1 offered: no ALPN, as nginx does
    *out = sel;
    return SSL_TLSEXT_ERR_OK;
}

static void
s_ticket_make(s_ticket_key_t *key)
{
    if (RAND_bytes(key->name, sizeof key->name) != 1 || RAND_bytes(key->aes, sizeof key->aes) != 1
        || RAND_bytes(key->hmac, sizeof key->hmac) != 1) {
        fprintf(stderr, "gw_tls: no random bytes for a ticket key\n");
        abort();
    }
    key->made = s_mono_s();
    key->set = true;
}

static int
s_ticket_init(
    s_ticket_key_t *key, unsigned char *iv, EVP_CIPHER_CTX *cctx, EVP_MAC_CTX *hctx, int enc)
{
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, key->hmac, sizeof key->hmac),
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *) "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (EVP_MAC_CTX_set_params(hctx, params) != 1)
        return -1;
    int ok = enc ? EVP_EncryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv)
                 : EVP_DecryptInit_ex(cctx, EVP_aes_256_cbc(), NULL, key->aes, iv);
    return ok == 1 ? 0 : -1;
}

//  Session tickets: one key set for every context. enc: a new ticket with
//  the current key (made again once it is GW_TLS_TICKET_ROTATE_S old).
//  Else: which key made it; the previous one's tickets are renewed (2).
static int
s_on_ticket(SSL *ssl,
            unsigned char key_name[16],
            unsigned char *iv,
            EVP_CIPHER_CTX *cctx,
            EVP_MAC_CTX *hctx,
            int enc)
{
    gw_tls_t *self = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    if (enc) {
        if (s_mono_s() - self->ticket[0].made >= GW_TLS_TICKET_ROTATE_S)
            gw_tls_rotate_tickets(self);
        s_ticket_key_t *key = &self->ticket[0];
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        memcpy(key_name, key->name, sizeof key->name);
        return s_ticket_init(key, iv, cctx, hctx, 1) == 0 ? 1 : -1;
    }
    for (int i = 0; i < 2; i++) {
        s_ticket_key_t *key = &self->ticket[i];
        if (key->set && memcmp(key_name, key->name, sizeof key->name) == 0)
            return s_ticket_init(key, iv, cctx, hctx, 0) == 0 ? (i == 0 ? 1 : 2) : -1;
    }
    return 0; // unknown key: a full handshake
}

//  What every context shares: versions, ciphers, options, callbacks.
static int
s_ctx_setup(gw_tls_t *self, SSL_CTX *ctx)
{
    SSL_CTX_set_app_data(ctx, self);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1
        || SSL_CTX_set_cipher_list(ctx, S_CIPHERS) != 1)
        return -1;
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION
                                 | SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_IGNORE_UNEXPECTED_EOF);
    // partial writes out of a buffer that may move between tries; buffers
    // freed while idle (an idle keep-alive connection costs less)
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER
                              | SSL_MODE_RELEASE_BUFFERS);
    // read what the socket has (up to a record's worth) in one read, not a
    // record header then its body: a TLS 1.3 handshake took 8 reads, now 4
    // (nginx does the same); decrypted bytes left inside OpenSSL are found
    // with SSL_has_pending wherever the socket would not announce them
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_SERVER | SSL_SESS_CACHE_NO_INTERNAL);
    SSL_CTX_set_session_id_context(ctx, (const unsigned char *) "switchyard", 10);
    SSL_CTX_set_tlsext_servername_callback(ctx, s_on_servername);
    SSL_CTX_set_tlsext_servername_arg(ctx, self);
    SSL_CTX_set_alpn_select_cb(ctx, s_on_alpn, self);
    if (SSL_CTX_set_tlsext_status_cb(ctx, s_on_status) != 1
        || SSL_CTX_set_tlsext_status_arg(ctx, self) != 1)
        return -1;
    if (SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, s_on_ticket) != 1)
        return -1;
    return 0;
}

// --------------------------------------------------------------------------
// OCSP responses

static void
s_staple_free(s_staple_t *staple)
{
    if (staple == NULL)
        return;
    free(staple->der);
    free(staple);
}

//  ex_data's destructor: the context is being freed.
static void
s_on_staple_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
    (void) parent;
    (void) ad;
    (void) idx;
    (void) argl;
    (void) argp;
    s_staple_free(ptr);
}

static s_staple_t *
s_staple_new(const char *domain, const uint8_t *der, size_t len, time_t next_update)
{
    s_staple_t *staple = proto_xcalloc(1, sizeof *staple);
    staple->der = proto_xmalloc(len);
    memcpy(staple->der, der, len);
    staple->len = len;
    staple->next_update = next_update;
    snprintf(staple->domain, sizeof staple->domain, "%s", domain);
    return staple;
}

//  Hang staple (taken) on ctx. Returns 0, or -1 (staple freed).
static int
s_staple_set(gw_tls_t *self, SSL_CTX *ctx, s_staple_t *staple)
{
    if (SSL_CTX_set_ex_data(ctx, self->staple_index, staple) != 1) {
        s_staple_free(staple);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

//  The nextUpdate of der's answer for ctx's certificate (and its issuer,
//  the chain's first certificate), into *next_update. Returns NULL, or
//  why it cannot be stapled. A CertID is made with the hash the response
//  used (OCSP_resp_find compares the hash algorithm too).
static const char *
s_staple_check(SSL_CTX *ctx, const uint8_t *der, size_t len, time_t *next_update)
{
    STACK_OF(X509) *chain = NULL;
    X509 *leaf = SSL_CTX_get0_certificate(ctx);
    if (SSL_CTX_get0_chain_certs(ctx, &chain) != 1 || sk_X509_num(chain) < 1 || leaf == NULL)
        return "no issuer certificate in the chain";
    X509 *issuer = sk_X509_value(chain, 0);
    const unsigned char *p = der;
    OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long) len);
    OCSP_BASICRESP *bs = NULL;
    const char *why = NULL;
    if (resp == NULL || p != der + len)
        why = "not a DER OCSP response";
    else if (OCSP_response_status(resp) != OCSP_RESPONSE_STATUS_SUCCESSFUL)
        why = "the response status is not successful";
    else if ((bs = OCSP_response_get1_basic(resp)) == NULL)
        why = "not a basic OCSP response";
    OCSP_SINGLERESP *single = NULL;
    for (int i = 0; why == NULL && single == NULL && i < OCSP_resp_count(bs); i++) {
        OCSP_SINGLERESP *one = OCSP_resp_get0(bs, i);
        const OCSP_CERTID *id = OCSP_SINGLERESP_get0_id(one);
        ASN1_OBJECT *md_oid = NULL;
        if (OCSP_id_get0_info(NULL, &md_oid, NULL, NULL, (OCSP_CERTID *) id) != 1)
            continue;
        const EVP_MD *md = EVP_get_digestbyobj(md_oid);
        OCSP_CERTID *mine = md ? OCSP_cert_to_id(md, leaf, issuer) : NULL;
        if (mine && OCSP_id_cmp(mine, id) == 0)
            single = one;
        OCSP_CERTID_free(mine);
    }
    ASN1_GENERALIZEDTIME *next = NULL;
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (why == NULL && single == NULL)
        why = "no answer for this certificate";
    else if (why == NULL
             && OCSP_single_get0_status(single, NULL, NULL, NULL, &next) != V_OCSP_CERTSTATUS_GOOD)
        why = "the certificate status is not good";
    else if (why == NULL && (next == NULL || ASN1_TIME_to_tm(next, &tm) != 1))
        why = "no nextUpdate";
    else if (why == NULL)
        *next_update = timegm(&tm);
    OCSP_BASICRESP_free(bs);
    OCSP_RESPONSE_free(resp);
    ERR_clear_error();
    return why;
}

// --------------------------------------------------------------------------

gw_tls_t *
gw_tls_new(char *err, size_t errlen)
{
    gw_tls_t *self = proto_xcalloc(1, sizeof *self);
    self->base = SSL_CTX_new(TLS_server_method());
    if (self->base == NULL || s_ctx_setup(self, self->base) != 0) {
        s_ssl_err(err, errlen, "cannot make the TLS context");
        goto fail;
    }
    s_ticket_make(&self->ticket[0]);
    // an index per gw_tls (no state at file scope); never freed: a context
    // still held by a handshake would then leak its response
    self->staple_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, s_on_staple_free);
    if (self->staple_index < 0) {
        s_ssl_err(err, errlen, "cannot make the OCSP ex_data index");
        goto fail;
    }
    self->table = gw_tls_table_new();
    return self;
fail:
    gw_tls_destroy(&self);
    return NULL;
}

void
gw_tls_destroy(gw_tls_t **self_p)
{
    assert(self_p);
    gw_tls_t *self = *self_p;
    if (self == NULL)
        return;
    gw_tls_table_free(&self->table);
    SSL_CTX_free(self->base);
    OPENSSL_cleanse(self->ticket, sizeof self->ticket);
    free(self);
    *self_p = NULL;
}

gw_tls_table_t *
gw_tls_table_new(void)
{
    return proto_xcalloc(1, sizeof(gw_tls_table_t));
}

void
gw_tls_table_free(gw_tls_table_t **table_p)
{
    assert(table_p);
    gw_tls_table_t *table = *table_p;
    if (table == NULL)
        return;
    for (size_t i = 0; i < table->count; i++)
        SSL_CTX_free(table->entries[i].ctx); // in-flight handshakes keep their reference
    free(table->entries);
    free(table);
    *table_p = NULL;
}

//  The chain (leaf first) and key into ctx.
static int
s_load(SSL_CTX *ctx, const char *chain_pem, const char *key_pem, char *err, size_t errlen)
{
    int rc = -1;
    BIO *bio = BIO_new_mem_buf(chain_pem, -1);
    X509 *leaf = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    EVP_PKEY *key = NULL;
    BIO *kbio = NULL;
    if (leaf == NULL || SSL_CTX_use_certificate(ctx, leaf) != 1) {
        s_ssl_err(err, errlen, "bad certificate");
        goto done;
    }
    X509 *ca;
    while ((ca = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) { // taken on success
            X509_free(ca);
            s_ssl_err(err, errlen, "bad chain certificate");
            goto done;
        }
    }
    ERR_clear_error(); // the end of the PEM
    kbio = BIO_new_mem_buf(key_pem, -1);
    key = kbio ? PEM_read_bio_PrivateKey(kbio, NULL, NULL, NULL) : NULL;
    if (key == NULL || SSL_CTX_use_PrivateKey(ctx, key) != 1) {
        s_ssl_err(err, errlen, "bad key");
        goto done;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        s_ssl_err(err, errlen, "the key does not match the certificate");
        goto done;
    }
    rc = 0;
done:
    EVP_PKEY_free(key);
    BIO_free(kbio);
    X509_free(leaf);
    BIO_free(bio);
    return rc;
}

int
gw_tls_table_add(gw_tls_t *self,
                 gw_tls_table_t *table,
                 const char *domain,
                 const char *chain_pem,
                 const char *key_pem,
                 char *err,
                 size_t errlen)
{
    return gw_tls_table_add_ocsp(self, table, domain, chain_pem, key_pem, NULL, 0, err, errlen);
}

int
gw_tls_table_add_ocsp(gw_tls_t *self,
                      gw_tls_table_t *table,
                      const char *domain,
                      const char *chain_pem,
                      const char *key_pem,
                      const uint8_t *ocsp,
                      size_t ocsp_len,
                      char *err,
                      size_t errlen)
{
    size_t len = strlen(domain);
    if (len == 0 || len > S_DOMAIN_MAX) {
        snprintf(err, errlen, "bad domain");
        return -1;
    }
    char lower[S_DOMAIN_MAX + 1];
    for (size_t i = 0; i <= len; i++)
        lower[i] = (char) tolower((unsigned char) domain[i]);
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL || s_ctx_setup(self, ctx) != 0) {
        s_ssl_err(err, errlen, "cannot make the TLS context");
        SSL_CTX_free(ctx);
        return -1;
    }
    if (s_load(ctx, chain_pem, key_pem, err, errlen) != 0) {
        SSL_CTX_free(ctx);
        return -1;
    }
    if (ocsp_len > 0) {
        time_t next_update = 0;
        const char *why = s_staple_check(ctx, ocsp, ocsp_len, &next_update);
        if (why == NULL
            && s_staple_set(self, ctx, s_staple_new(lower, ocsp, ocsp_len, next_update)) != 0)
            why = "out of memory";
        if (why)
            log_warn("OCSP response not stapled", LOG_S("domain", lower), LOG_S("why", why));
    }
    if (table->count == table->cap) {
        table->cap = table->cap ? table->cap * 2 : 16;
        s_entry_t *grown = realloc(table->entries, table->cap * sizeof *grown);
        if (grown == NULL) {
            fprintf(stderr, "gw_tls: out of memory\n");
            abort();
        }
        table->entries = grown;
    }
    s_entry_t *e = &table->entries[table->count];
    memcpy(e->domain, lower, len + 1);
    e->order = table->count;
    e->ctx = ctx;
    table->count++;
    return 0;
}

//  A new base context holding the table's default certificate (domain "*"),
//  so that a handshake without a better match needs no context switch.
//  Keeps the current base when that cannot be made.
static void
s_rebase(gw_tls_t *self)
{
    SSL_CTX *def = s_lookup(self->table, "*");
    SSL_CTX *nb = SSL_CTX_new(TLS_server_method());
    bool ok = nb != NULL && s_ctx_setup(self, nb) == 0;
    if (ok && def) {
        STACK_OF(X509) *chain = NULL;
        ok = SSL_CTX_use_certificate(nb, SSL_CTX_get0_certificate(def)) == 1
             && SSL_CTX_use_PrivateKey(nb, SSL_CTX_get0_privatekey(def)) == 1
             && SSL_CTX_get0_chain_certs(def, &chain) == 1
             && (chain == NULL || SSL_CTX_set1_chain(nb, chain) == 1);
        const s_staple_t *staple = SSL_CTX_get_ex_data(def, self->staple_index);
        if (ok && staple)
            ok = s_staple_set(
                     self, nb,
                     s_staple_new(staple->domain, staple->der, staple->len, staple->next_update))
                 == 0;
    }
    if (!ok) {
        char err[256];
        s_ssl_err(err, sizeof err, "cannot make the base TLS context");
        log_warn("the default certificate is served through a switch", LOG_S("error", err));
        SSL_CTX_free(nb);
        self->base_default = NULL; // every handshake switches to its certificate's context
        return;
    }
    SSL_CTX_free(self->base); // handshakes in flight keep their reference
    self->base = nb;
    self->base_default = def;
}

void
gw_tls_swap(gw_tls_t *self, gw_tls_table_t **table_p)
{
    gw_tls_table_t *table = *table_p;
    *table_p = NULL;
    if (table->count > 1)
        qsort(table->entries, table->count, sizeof *table->entries, s_entry_cmp);
    // a domain given twice: the first added is kept (it sorts first)
    size_t kept = 0;
    for (size_t i = 0; i < table->count; i++) {
        if (kept > 0 && strcmp(table->entries[kept - 1].domain, table->entries[i].domain) == 0) {
            SSL_CTX_free(table->entries[i].ctx);
            continue;
        }
        table->entries[kept++] = table->entries[i];
    }
    table->count = kept;
    gw_tls_table_free(&self->table);
    self->table = table;
    s_rebase(self);
}

size_t
gw_tls_count(const gw_tls_t *self)
{
    return self->table ? self->table->count : 0;
}

SSL *
gw_tls_ssl_new(gw_tls_t *self, int fd)
{
    SSL *ssl = SSL_new(self->base);
    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

void
gw_tls_rotate_tickets(gw_tls_t *self)
{
    self->ticket[1] = self->ticket[0];
    s_ticket_make(&self->ticket[0]);
}

//  The shared tail of gw_tls_read/gw_tls_write after n <= 0.
static ssize_t
s_io_error(SSL *ssl, int n, bool reading, bool *other)
{
    int e = SSL_get_error(ssl, n);
    ERR_clear_error();
    *other = false;
    if (reading && e == SSL_ERROR_ZERO_RETURN)
        return 0; // close_notify, or EOF (SSL_OP_IGNORE_UNEXPECTED_EOF)
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        *other = e == (reading ? SSL_ERROR_WANT_WRITE : SSL_ERROR_WANT_READ);
        errno = EAGAIN;
        return -1;
    }
    SSL_set_quiet_shutdown(ssl, 1); // after a fatal error no close_notify may be sent
    errno = reading ? ECONNRESET : EPIPE;
    return -1;
}

ssize_t
gw_tls_read(SSL *ssl, void *buf, size_t len, bool *other)
{
    ERR_clear_error();
    int n = SSL_read(ssl, buf, len > INT_MAX ? INT_MAX : (int) len);
    return n > 0 ? n : s_io_error(ssl, n, true, other);
}

ssize_t
gw_tls_write(SSL *ssl, const void *buf, size_t len, bool *other)
{
    *other = false;
    if (len == 0)
        return 0;
    ERR_clear_error();
    int n = SSL_write(ssl, buf, len > INT_MAX ? INT_MAX : (int) len);
    return n > 0 ? n : s_io_error(ssl, n, false, other);
}

uint64_t *
gw_tls_unrecognized(gw_tls_t *self)
{
    return &self->unrecognized;
}

uint64_t *
gw_tls_ocsp_stapled(gw_tls_t *self)
{
    return &self->ocsp_stapled;
}

uint64_t *
gw_tls_ocsp_stale(gw_tls_t *self)
{
    return &self->ocsp_stale;
}
