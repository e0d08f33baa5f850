/*  api_static - the dashboard's static files (SPEC §14, docs/dashboard.md).

    GET /dashboard on the admin listener is one page: HTML, CSS and
    JavaScript modules under <APID_WEB_DIR>/dashboard, no build step. This
    module loads those files into memory once, at start, each with its
    content type and a strong ETag, and answers a GET or HEAD for a path
    under /dashboard from memory: no file system access per request, so
    nothing a request says can reach a file that was not loaded.

    What is loaded: every regular file directly in <dir>/dashboard and in
    its direct subfolders (one level: "views/routes.js", never deeper),
    sorted by name, at most API_STATIC_FILES_MAX files of at most
    API_STATIC_FILE_MAX bytes each. Names are [A-Za-z0-9._-] and do not
    start with a dot (no hidden files). Symbolic links, other file types,
    bad names, deeper folders, files too large and files beyond the bound
    are skipped and logged at warn. A NULL dir or a missing folder gives an
    empty set (every GET answers 404), logged once, here.

    Answers (docs/dashboard.md, "The page"):
    - /dashboard        301, location: /dashboard/ (the page's relative URLs
                        then resolve under /dashboard/; one URL per file)
    - /dashboard/       index.html
    - /dashboard/<file> the file; 404 when it is not in the set
    - 200: content-type (by extension: .html, .css, .js and .mjs
      text/javascript, .svg, .png, .ico, .json, .txt, others
      application/octet-stream), etag ("<32 hex digits>": SHA-256 of the
      bytes, truncated to 128 bits), cache-control: no-cache (the browser
      revalidates every time; an unchanged file is a bodiless 304),
      x-content-type-options: nosniff; an HTML file also gets a
      content-security-policy (same origin only, no inline script, no
      framing).
    - 304 when If-None-Match names the file's ETag (weak comparison, a list,
      or "*"): the same headers, no body.
    - 404 for a path with "%", "..", an empty or hidden segment, more than
      two segments below /dashboard, or anything not loaded (text/plain).
    - 405 for a method other than GET and HEAD, with allow: GET, HEAD.
    - HEAD: the answer GET would get, without the body (body NULL, len 0).
      The gateway hands HEAD over as HEAD, drops the body itself and takes
      Content-Length from the body it is sent: a caller behind it should
      ask with "GET" for a HEAD request to keep Content-Length right.
    Header names are lower-case, as in every admin.response.
*/
#ifndef API_STATIC_H
#define API_STATIC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define API_STATIC_FILES_MAX 64            // files loaded at most
#define API_STATIC_FILE_MAX  (1024 * 1024) // bytes per file at most (1 MiB)
#define API_STATIC_HEADERS   6             // headers of an answer at most
#define API_STATIC_PREFIX    "/dashboard"  // the path the page lives under

typedef struct api_static api_static_t;

//  Load the files of <dir>/dashboard (see above). dir may be NULL (an
//  empty set). Never returns NULL: an unreadable folder is an empty set.
api_static_t *api_static_new(const char *dir);

//  Destroy the set and every file it holds; answers given before are no
//  longer valid. Sets *self_p to NULL. Safe to call twice.
void api_static_destroy(api_static_t **self_p);

//  How many files were loaded.
size_t api_static_size(const api_static_t *self);

//  An answer. Every string and the body are borrowed: static, or owned by
//  the set, valid until api_static_destroy.
typedef struct {
    uint16_t status;                        // 200, 301, 304, 404 or 405
    proto_kv_t headers[API_STATIC_HEADERS]; // lower-case names (content-type, etag, ...)
    uint32_t nheaders;                      // headers used
    const uint8_t *body;                    // NULL when there is none (HEAD, 304)
    size_t len;                             // bytes of body (0 when body is NULL)
} api_static_answer_t;

//  Answer method (e.g. "GET") for path (the request's path, without its
//  query; a "?..." left on it is ignored) when path is /dashboard or under
//  /dashboard/: fills *out and returns true. Returns false, leaving *out
//  untouched, for any other path (/dashboards, /api/..., /): not the
//  dashboard's. if_none_match is the request's If-None-Match or NULL.
bool api_static_get(const api_static_t *self,
                    const char *method,
                    const char *path,
                    const char *if_none_match,
                    api_static_answer_t *out);

#endif
