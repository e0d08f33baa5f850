/*  gw_http - the HTTP/1.1 vocabulary the gateway's modules share.

    One table of the header names the gateway treats specially, with what
    each one is (hop-by-hop, framing, set by us, believed only from a trusted
    peer, never handed to the bus); one parser of comma-separated lists
    (RFC 9110 §5.6.1: elements separated by commas with optional whitespace,
    empty elements ignored), used for every Connection field of a request or
    a response; and the request-target forms of RFC 9112 §3.2.
*/
#ifndef GW_HTTP_H
#define GW_HTTP_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    GW_H_OTHER = 0,
    GW_H_CONNECTION,
    GW_H_KEEP_ALIVE,
    GW_H_PROXY_CONNECTION,
    GW_H_TE,
    GW_H_TRAILER,
    GW_H_TRANSFER_ENCODING,
    GW_H_UPGRADE,
    GW_H_CONTENT_LENGTH,
    GW_H_EXPECT,
    GW_H_HOST,
    GW_H_X_REQUEST_ID,
    GW_H_X_CORRELATION_ID,
    GW_H_X_TENANT_ID,
    GW_H_X_FORWARDED_FOR,
    GW_H_X_REAL_IP,
    GW_H_X_FORWARDED_PROTO,
    GW_H_X_FORWARDED_HOST,
    GW_H_X_SWITCHYARD_HOP,
    GW_H_AUTHORIZATION,
    GW_H_PROXY_AUTHORIZATION,
    GW_H_COOKIE,
    GW_H_X_REGION,
    GW_H_X_USER_ID,
    GW_H_ORIGIN,
    GW_H_AC_REQUEST_METHOD,
    GW_H_AC_REQUEST_HEADERS,
    GW_H_COUNT
} gw_hdr_t;

#define GW_HF_HOP       0x01 // not sent upstream: hop-by-hop (RFC 9110 §7.6.1), or Expect (ours)
#define GW_HF_FRAMING   0x02 // message framing: the gateway writes its own
#define GW_HF_OURS      0x04 // the gateway sets it upstream (ids, tenant)
#define GW_HF_FORWARDED 0x08 // believed only from GATEWAY_TRUSTED_PROXIES
#define GW_HF_PROTECTED 0x10 // never removed because a Connection field names it
#define GW_HF_NO_BUS    0x20 // never handed to the bus: credentials, framing, hop-by-hop
#define GW_HF_RESP_DROP 0x40 // removed from responses (hop-by-hop, and ids we set)

//  The id of a header name (case-insensitive), GW_H_OTHER when not special.
gw_hdr_t gw_http_header(const char *name, size_t len);

//  The GW_HF_ flags of a header id (0 for GW_H_OTHER).
unsigned gw_http_flags(gw_hdr_t id);

//  The next element of a comma-separated list, from *pos on: sets tok and
//  toklen (optional whitespace trimmed) and advances *pos. Returns false
//  at the end of the list. Empty elements are skipped.
bool gw_http_list_next(const char *list, size_t len, size_t *pos, const char **tok, size_t *toklen);

//  True if the list holds the element (case-insensitive).
bool gw_http_list_has(const char *list, size_t len, const char *elem, size_t elen);

//  The authority of an absolute-form request-target (RFC 9112 §3.2.2,
//  "http://host[:port]/path?query"): Returns 1 and sets the host (with its
//  port, as a Host field would carry it) and the rest after the authority
//  (path and query; empty, or starting with '?', when the URI has no path:
//  the origin form is then "/" followed by it) as offsets into target; 0 when the target is not in
//  absolute form; -1 when it is but cannot be served: a scheme other than
//  http or https, userinfo ("user@host"), an empty or malformed authority.
int gw_http_absolute_form(const char *target,
                          size_t len,
                          size_t *host_off,
                          size_t *host_len,
                          size_t *path_off,
                          size_t *path_len);

#endif
