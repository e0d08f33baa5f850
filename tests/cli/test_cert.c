/*  test_cert - unit tests for cli_cert: the self-signed certificate that
    `switchyard run` installs as the default for its HTTPS listener.

    The PEM texts are parsed back with OpenSSL and every promise of
    cli_cert.h is checked: the key is an unencrypted PKCS#8 EC P-256 key
    that matches the certificate; the certificate is X509v3, self-signed
    (issuer = subject = CN=localhost, its own signature verifies, ECDSA
    SHA-256), names localhost, 127.0.0.1 and ::1 in its subjectAltName and
    nothing else, is no CA, is for digital signatures and TLS servers only,
    is valid from an hour ago for 365 days, and has a positive 16-byte
    serial that differs from one certificate to the next.
*/
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli_cert.h"

//  One certificate made and parsed back.
typedef struct {
    cli_cert_t pem; // as made
    X509 *x;        // the certificate parsed
    EVP_PKEY *key;  // the key parsed
} t_made_t;

static void
s_make(t_made_t *made)
{
    char err[256] = "";
    int rc = cli_cert_self_signed(&made->pem, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    assert_int_equal(rc, 0);
    assert_non_null(made->pem.cert);
    assert_non_null(made->pem.key);
    assert_int_equal(ERR_peek_error(), 0);

    BIO *bio = BIO_new_mem_buf(made->pem.cert, -1);
    assert_non_null(bio);
    made->x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(made->x);
    bio = BIO_new_mem_buf(made->pem.key, -1);
    assert_non_null(bio);
    made->key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    assert_non_null(made->key);
}

static void
s_free(t_made_t *made)
{
    X509_free(made->x);
    made->x = NULL;
    EVP_PKEY_free(made->key);
    made->key = NULL;
    cli_cert_free(&made->pem);
}

//  A time of the certificate as seconds since the epoch.
static time_t
s_time(const ASN1_TIME *t)
{
    struct tm tm;
    assert_int_equal(ASN1_TIME_to_tm(t, &tm), 1);
    return timegm(&tm);
}

static void
test_pem_and_key(void **state)
{
    (void) state;
    t_made_t made = {0};
    s_make(&made);
    // one block each: the certificate, the key as unencrypted PKCS#8
    assert_true(strncmp(made.pem.cert, "-----BEGIN CERTIFICATE-----\n",
                        strlen("-----BEGIN CERTIFICATE-----\n"))
                == 0);
    assert_null(strstr(made.pem.cert + 1, "-----BEGIN"));
    assert_true(strncmp(made.pem.key, "-----BEGIN PRIVATE KEY-----\n",
                        strlen("-----BEGIN PRIVATE KEY-----\n"))
                == 0);
    assert_null(strstr(made.pem.key + 1, "-----BEGIN"));

    // EC P-256, and the certificate's
    assert_int_equal(EVP_PKEY_get_base_id(made.key), EVP_PKEY_EC);
    assert_int_equal(EVP_PKEY_get_bits(made.key), 256);
    char group[64] = "";
    assert_int_equal(EVP_PKEY_get_group_name(made.key, group, sizeof group, NULL), 1);
    assert_string_equal(group, "prime256v1");
    assert_int_equal(X509_check_private_key(made.x, made.key), 1);
    s_free(&made);
    assert_null(made.pem.cert);
    assert_null(made.pem.key);
    cli_cert_free(&made.pem); // twice is fine
}

static void
test_self_signed(void **state)
{
    (void) state;
    t_made_t made = {0};
    s_make(&made);
    assert_int_equal(X509_get_version(made.x), X509_VERSION_3);
    assert_int_equal(X509_get_signature_nid(made.x), NID_ecdsa_with_SHA256);
    assert_int_equal(X509_NAME_cmp(X509_get_subject_name(made.x), X509_get_issuer_name(made.x)), 0);
    assert_int_equal(X509_verify(made.x, made.key), 1);
    char cn[64] = "";
    assert_int_equal(
        X509_NAME_get_text_by_NID(X509_get_subject_name(made.x), NID_commonName, cn, sizeof cn),
        (int) strlen("localhost"));
    assert_string_equal(cn, "localhost");
    assert_int_equal(X509_NAME_entry_count(X509_get_subject_name(made.x)), 1);
    s_free(&made);
}

static void
test_subject_alt_name(void **state)
{
    (void) state;
    t_made_t made = {0};
    s_make(&made);
    int crit = -1;
    GENERAL_NAMES *names = X509_get_ext_d2i(made.x, NID_subject_alt_name, &crit, NULL);
    assert_non_null(names);
    assert_int_equal(crit, 0);
    assert_int_equal(sk_GENERAL_NAME_num(names), 3);
    static const unsigned char v4[] = {127, 0, 0, 1};
    static const unsigned char v6[] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    int dns = 0, ip4 = 0, ip6 = 0;
    for (int i = 0; i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type == GEN_DNS) {
            const ASN1_IA5STRING *s = gn->d.dNSName;
            dns += ASN1_STRING_length(s) == (int) strlen("localhost")
                   && memcmp(ASN1_STRING_get0_data(s), "localhost", strlen("localhost")) == 0;
        } else if (gn->type == GEN_IPADD) {
            const ASN1_OCTET_STRING *s = gn->d.iPAddress;
            int len = ASN1_STRING_length(s);
            ip4 += len == 4 && memcmp(ASN1_STRING_get0_data(s), v4, 4) == 0;
            ip6 += len == 16 && memcmp(ASN1_STRING_get0_data(s), v6, 16) == 0;
        }
    }
    GENERAL_NAMES_free(names);
    assert_int_equal(dns, 1);
    assert_int_equal(ip4, 1);
    assert_int_equal(ip6, 1);
    // as a TLS client checks them
    assert_int_equal(X509_check_host(made.x, "localhost", 0, 0, NULL), 1);
    assert_int_equal(X509_check_ip_asc(made.x, "127.0.0.1", 0), 1);
    assert_int_equal(X509_check_ip_asc(made.x, "::1", 0), 1);
    assert_int_equal(X509_check_host(made.x, "example.com", 0, 0, NULL), 0);
    assert_int_equal(X509_check_ip_asc(made.x, "10.0.0.1", 0), 0);
    s_free(&made);
}

static void
test_usage(void **state)
{
    (void) state;
    t_made_t made = {0};
    s_make(&made);
    int crit = -1;
    BASIC_CONSTRAINTS *bc = X509_get_ext_d2i(made.x, NID_basic_constraints, &crit, NULL);
    assert_non_null(bc);
    assert_int_equal(bc->ca, 0);
    assert_null(bc->pathlen);
    assert_int_equal(crit, 1);
    BASIC_CONSTRAINTS_free(bc);
    assert_int_equal(X509_check_ca(made.x), 0);

    ASN1_BIT_STRING *ku = X509_get_ext_d2i(made.x, NID_key_usage, &crit, NULL);
    assert_non_null(ku);
    assert_int_equal(crit, 1);
    ASN1_BIT_STRING_free(ku);
    assert_int_equal(X509_get_key_usage(made.x), KU_DIGITAL_SIGNATURE);
    assert_int_equal(X509_get_extended_key_usage(made.x), XKU_SSL_SERVER);
    assert_int_equal(X509_check_purpose(made.x, X509_PURPOSE_SSL_SERVER, 0), 1);
    assert_int_equal(X509_check_purpose(made.x, X509_PURPOSE_SSL_CLIENT, 0), 0);
    assert_int_equal(X509_get_ext_count(made.x), 4);
    s_free(&made);
}

static void
test_validity(void **state)
{
    (void) state;
    time_t before = time(NULL);
    t_made_t made = {0};
    s_make(&made);
    time_t after = time(NULL);
    time_t from = s_time(X509_get0_notBefore(made.x));
    time_t to = s_time(X509_get0_notAfter(made.x));
    assert_true(from >= before - CLI_CERT_BACKDATE_S);
    assert_true(from <= after - CLI_CERT_BACKDATE_S);
    assert_int_equal(to - from, (time_t) CLI_CERT_DAYS * 86400);
    assert_true(X509_cmp_current_time(X509_get0_notBefore(made.x)) < 0);
    assert_true(X509_cmp_current_time(X509_get0_notAfter(made.x)) > 0);
    s_free(&made);
}

static void
test_serial(void **state)
{
    (void) state;
    t_made_t one = {0}, two = {0};
    s_make(&one);
    s_make(&two);
    BIGNUM *a = ASN1_INTEGER_to_BN(X509_get0_serialNumber(one.x), NULL);
    BIGNUM *b = ASN1_INTEGER_to_BN(X509_get0_serialNumber(two.x), NULL);
    assert_non_null(a);
    assert_non_null(b);
    assert_false(BN_is_negative(a));
    assert_int_equal(BN_num_bytes(a), CLI_CERT_SERIAL_LEN);
    assert_int_equal(BN_num_bytes(b), CLI_CERT_SERIAL_LEN);
    assert_int_not_equal(BN_cmp(a, b), 0);
    BN_free(a);
    BN_free(b);
    // a new key each time
    assert_int_not_equal(EVP_PKEY_eq(one.key, two.key), 1);
    assert_int_equal(X509_check_private_key(one.x, two.key), 0);
    ERR_clear_error(); // the mismatch leaves its reason
    s_free(&one);
    s_free(&two);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pem_and_key),      cmocka_unit_test(test_self_signed),
        cmocka_unit_test(test_subject_alt_name), cmocka_unit_test(test_usage),
        cmocka_unit_test(test_validity),         cmocka_unit_test(test_serial),
    };
    return cmocka_run_group_tests_name("test_cert", tests, NULL, NULL);
}
