/*  fuzz_prescan - libFuzzer target for gw_prescan.

    Feeds the input as one buffer and checks the contract: the return is -1, 0 or 1; on 1
    the head ends with CRLF CRLF inside the input and the framing fields agree; on -1 the
    status is 400, 414 or 431 with a reason; GW_PRESCAN_HEAD_MAX bytes always decide. Then
    it feeds two prefixes (cut where the input's first bytes say) and checks that the
    answer does not depend on how reads split a head: a prefix of a valid head needs more
    bytes, and a prefix that fails fails with the whole input's status. Build and run:
    tests/fuzz/README.md.
*/
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw_prescan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

//  Check one answer on its own.
static void
s_check(const char *buf, size_t len, int rc, const gw_prescan_t *out)
{
    switch (rc) {
        case 1:
            if (out->head_len < 4 || out->head_len > len || out->head_len > GW_PRESCAN_HEAD_MAX
                || memcmp(buf + out->head_len - 4, "\r\n\r\n", 4) != 0)
                abort();
            if (out->status != 0 || out->reason != NULL || out->nfields > GW_PRESCAN_FIELDS_MAX)
                abort();
            if (out->chunked ? !out->has_body || out->content_length != 0
                             : out->has_body != (out->content_length > 0))
                abort();
            if (out->content_length > INT64_MAX)
                abort();
            break;
        case 0:
            if (out->status != 0 || len >= GW_PRESCAN_HEAD_MAX)
                abort();
            break;
        case -1:
            if ((out->status != 400 && out->status != 414 && out->status != 431)
                || out->reason == NULL || out->reason[0] == '\0')
                abort();
            break;
        default:
            abort();
    }
}

//  Check the answer for the prefix buf[0..k) against the answer for the whole buffer.
static void
s_check_prefix(const char *buf, size_t k, int whole_rc, const gw_prescan_t *whole)
{
    gw_prescan_t out;
    int rc = gw_prescan(buf, k, &out);
    s_check(buf, k, rc, &out);
    if (whole_rc == 1 && k < whole->head_len && rc != 0)
        abort();
    if (whole_rc == 1 && k >= whole->head_len
        && (rc != 1 || out.head_len != whole->head_len || out.chunked != whole->chunked
            || out.content_length != whole->content_length || out.nfields != whole->nfields))
        abort();
    if (whole_rc == 0 && rc != 0)
        abort();
    if (rc == -1 && (whole_rc != -1 || out.status != whole->status))
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    //  A copy of exactly size bytes, so ASan catches any read past the end.
    char *buf = malloc(size ? size : 1);
    if (buf == NULL)
        return 0;
    if (size)
        memcpy(buf, data, size);

    gw_prescan_t whole;
    int rc = gw_prescan(size ? buf : NULL, size, &whole);
    s_check(buf, size, rc, &whole);
    if (size > 0) {
        size_t cut = size > 1 ? ((size_t) data[0] << 8 | data[1]) % size : 0;
        s_check_prefix(buf, cut, rc, &whole);
        s_check_prefix(buf, size - 1, rc, &whole);
    }
    free(buf);
    return 0;
}
