/*  fuzz_authp_response - gw_authp_resp, an authProvider's answer as the
    gateway reads it (status, X-User-Id, body drained with a bound).

    The input is what a provider sends. It is fed once whole, then in pieces
    of random sizes (seeded from the input) as reads split it, each run
    ended with the end of the stream (a length of 0). Checks, for every
    input: the two runs agree (same verdict, status and user: the answer
    never depends on how reads split it); a complete answer has a final
    status of 100..999 that is not an interim 1xx (101 aside) and a user
    that is "" or 1..GW_AUTHP_USER_MAX visible ASCII bytes; the end of the
    stream always settles it; once complete or malformed, feeding more
    changes nothing.
*/
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_authp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Feed data in pieces (seed 0: whole), then the end. Returns the last rc.
static int
s_run(const char *data, size_t len, uint64_t seed, gw_authp_resp_t *r)
{
    gw_authp_resp_init(r);
    size_t off = 0;
    int rc = 0;
    while (off < len && rc == 0) {
        size_t n = len - off;
        if (seed) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            n = 1 + (size_t) (seed >> 33) % 97;
            if (n > len - off)
                n = len - off;
        }
        rc = gw_authp_resp_feed(r, data + off, n);
        off += n;
    }
    if (rc == 0)
        rc = gw_authp_resp_feed(r, NULL, 0);
    if (rc == 0)
        abort(); // the end of the stream always decides
    return rc;
}

static void
s_check_answer(const gw_authp_resp_t *r)
{
    if (r->status < 100 || r->status > 999)
        abort();
    if (r->status < 200 && r->status != 101)
        abort();
    size_t n = strnlen(r->user, sizeof r->user);
    if (n > GW_AUTHP_USER_MAX)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char) r->user[i] <= 0x20 || (unsigned char) r->user[i] >= 0x7f)
            abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *bytes, size_t len)
{
    const char *data = (const char *) bytes;
    static gw_authp_resp_t whole, cut;
    int a = s_run(data, len, 0, &whole);
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ len;
    for (size_t i = 0; i < len && i < 16; i++)
        seed = seed * 31 + bytes[i];
    int b = s_run(data, len, seed | 1, &cut);
    if (a != b)
        abort();
    if (a == 1) {
        s_check_answer(&whole);
        s_check_answer(&cut);
        if (whole.status != cut.status || strcmp(whole.user, cut.user) != 0)
            abort();
    }
    // settled: more bytes, or another end, change nothing
    int again = gw_authp_resp_feed(&whole, "HTTP/1.1 200 OK\r\n\r\n", 19);
    if (again != a || gw_authp_resp_feed(&whole, NULL, 0) != a)
        abort();
    return 0;
}
