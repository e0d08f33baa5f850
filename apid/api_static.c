/*  api_static - the dashboard's static files (see api_static.h).

    Loaded once, answered from memory. A request path is only ever compared
    with the names loaded, never joined to a folder: a path that names
    nothing loaded is a 404 whatever it holds, and the checks of its shape
    ("%", "..", hidden or empty segments) only make that explicit.
*/
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "api_static.h"
#include "proto_log.h"
#include "proto_util.h"

#define S_NAME_MAX    128                  // bytes of one file or folder name
#define S_REL_MAX     (2 * S_NAME_MAX + 1) // "folder/name"
#define S_ETAG_DIGITS 32                   // hex digits of an ETag (128 bits of SHA-256)
#define S_INDEX       "index.html"         // what /dashboard/ answers
#define S_TEXT        "text/plain; charset=utf-8"
#define S_CSP                                                                                      \
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "                    \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

//  One file loaded.
typedef struct {
    char name[S_REL_MAX + 1];     // path below dashboard/: "app.js", "views/routes.js"
    const char *type;             // content type (static)
    bool html;                    // an HTML file (gets the content-security-policy)
    char etag[S_ETAG_DIGITS + 3]; // "\"<hex>\""
    uint8_t *data;                // the bytes (owned)
    size_t len;                   // how many
} s_file_t;

struct api_static {
    s_file_t files[API_STATIC_FILES_MAX]; // loaded files, sorted by name
    size_t count;                         // files used
    bool full_logged;                     // the bound was logged once already
};

//  Content types by extension (compared ignoring case).
static const struct {
    const char *ext;  // with the dot
    const char *type; // the content-type header
} s_types[] = {
    {".html", "text/html; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},
    {".js", "text/javascript; charset=utf-8"},
    {".mjs", "text/javascript; charset=utf-8"},
    {".svg", "image/svg+xml"},
    {".png", "image/png"},
    {".ico", "image/x-icon"},
    {".json", "application/json"},
    {".txt", S_TEXT},
};

static const char *
s_type_of(const char *name, bool *html)
{
    const char *dot = strrchr(name, '.');
    *html = false;
    if (dot == NULL)
        return "application/octet-stream";
    for (size_t i = 0; i < sizeof s_types / sizeof s_types[0]; i++) {
        if (strcasecmp(dot, s_types[i].ext) == 0) {
            *html = i == 0;
            return s_types[i].type;
        }
    }
    return "application/octet-stream";
}

//  A name the set may hold: [A-Za-z0-9._-], not hidden, not empty.
static bool
s_name_ok(const char *s, size_t len)
{
    if (len == 0 || len > S_NAME_MAX || s[0] == '.')
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
                  || c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

static void
s_etag(const uint8_t *data, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    static const char hex[] = "0123456789abcdef";
    if (EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < S_ETAG_DIGITS / 2)
        memset(md, 0, sizeof md); // cannot happen with libcrypto's built-in SHA-256
    out[0] = '"';
    for (size_t i = 0; i < S_ETAG_DIGITS / 2; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 15];
    }
    out[S_ETAG_DIGITS + 1] = '"';
    out[S_ETAG_DIGITS + 2] = '\0';
}

//  Read the regular file at path (a symbolic link is refused by O_NOFOLLOW)
//  into *file. Returns 0, or -1 with the reason logged.
static int
s_read_file(const char *path, const char *rel, s_file_t *file)
{
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        log_warn("dashboard file skipped: cannot open", LOG_S("file", path), LOG_ERRNO(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        log_warn("dashboard file skipped: not a regular file", LOG_S("file", path));
        close(fd);
        return -1;
    }
    if (st.st_size > API_STATIC_FILE_MAX) {
        log_warn("dashboard file skipped: over the size bound", LOG_S("file", path),
                 LOG_I("bytes", st.st_size), LOG_I("max", API_STATIC_FILE_MAX));
        close(fd);
        return -1;
    }
    size_t want = (size_t) st.st_size, have = 0;
    uint8_t *data = proto_xmalloc(want ? want : 1);
    while (have < want) {
        ssize_t n = read(fd, data + have, want - have);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            log_warn("dashboard file skipped: read failed", LOG_S("file", path), LOG_ERRNO(errno));
            free(data);
            data = NULL;
            close(fd);
            return -1;
        }
        if (n == 0)
            break; // shrank while read: keep what is there
        have += (size_t) n;
    }
    close(fd);
    proto_strlcpy(file->name, rel, sizeof file->name);
    file->type = s_type_of(rel, &file->html);
    file->data = data;
    file->len = have;
    s_etag(data, have, file->etag);
    return 0;
}

static int
s_by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

//  Load the files of folder (below root: "" for root itself), and of its
//  direct subfolders when folder is root. Returns false when the folder
//  cannot be read (logged).
static bool
s_load_folder(api_static_t *self, const char *root, const char *folder)
{
    char path[4096];
    snprintf(path, sizeof path, "%s%s%s", root, *folder ? "/" : "", folder);
    struct dirent **list = NULL;
    int n = scandir(path, &list, NULL, s_by_name);
    if (n < 0) {
        log_warn(*folder ? "dashboard folder skipped: cannot read it"
                         : "no dashboard files: every /dashboard answers 404",
                 LOG_S("dir", path), LOG_ERRNO(errno));
        return false;
    }
    for (int i = 0; i < n; i++) {
        const char *name = list[i]->d_name;
        char rel[S_REL_MAX + 1], file[4096 + 256 + 2]; // d_name is at most 255 bytes
        bool self_or_parent = strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
        if (!self_or_parent && !s_name_ok(name, strlen(name))) {
            log_warn("dashboard file skipped: a hidden name or one outside [A-Za-z0-9._-]",
                     LOG_S("dir", path), LOG_S("name", name));
        } else if (!self_or_parent) {
            snprintf(rel, sizeof rel, "%s%s%s", folder, *folder ? "/" : "", name);
            snprintf(file, sizeof file, "%s/%s", path, name);
            struct stat st;
            if (lstat(file, &st) != 0) {
                log_warn("dashboard file skipped: cannot stat", LOG_S("file", file),
                         LOG_ERRNO(errno));
            } else if (S_ISDIR(st.st_mode) && *folder == '\0') {
                s_load_folder(self, root, name);
            } else if (!S_ISREG(st.st_mode)) {
                log_warn("dashboard file skipped: not a regular file (a link, a deeper folder...)",
                         LOG_S("file", file));
            } else if (self->count == API_STATIC_FILES_MAX) {
                if (!self->full_logged)
                    log_warn("dashboard files skipped: over the bound of files",
                             LOG_S("from", file), LOG_I("max", API_STATIC_FILES_MAX));
                self->full_logged = true;
            } else if (s_read_file(file, rel, &self->files[self->count]) == 0) {
                self->count++;
            }
        }
        free(list[i]);
        list[i] = NULL;
    }
    free(list);
    list = NULL;
    return true;
}

api_static_t *
api_static_new(const char *dir)
{
    api_static_t *self = proto_xcalloc(1, sizeof *self);
    if (dir == NULL || *dir == '\0') {
        log_warn("no dashboard folder set: every /dashboard answers 404");
        return self;
    }
    char root[4096];
    if (snprintf(root, sizeof root, "%s/dashboard", dir) >= (int) sizeof root) {
        log_warn("dashboard folder name too long: every /dashboard answers 404");
        return self;
    }
    if (!s_load_folder(self, root, ""))
        return self;
    size_t bytes = 0;
    for (size_t i = 0; i < self->count; i++)
        bytes += self->files[i].len;
    if (self->count == 0)
        log_warn("the dashboard folder holds no file: every /dashboard answers 404",
                 LOG_S("dir", root));
    else
        log_info("dashboard files loaded", LOG_S("dir", root), LOG_U("files", self->count),
                 LOG_U("bytes", bytes));
    return self;
}

void
api_static_destroy(api_static_t **self_p)
{
    assert(self_p);
    api_static_t *self = *self_p;
    if (self == NULL)
        return;
    for (size_t i = self->count; i-- > 0;) {
        free(self->files[i].data);
        self->files[i].data = NULL;
    }
    free(self);
    *self_p = NULL;
}

size_t
api_static_size(const api_static_t *self)
{
    assert(self);
    return self->count;
}

// --------------------------------------------------------------------------
// Answers

static void
s_header(api_static_answer_t *out, const char *key, const char *value)
{
    assert(out->nheaders < API_STATIC_HEADERS);
    out->headers[out->nheaders].key = key;
    out->headers[out->nheaders].value = value;
    out->nheaders++;
}

//  A short text answer (301, 404, 405); HEAD gets its headers only.
static void
s_text(api_static_answer_t *out, uint16_t status, const char *text, bool head)
{
    out->status = status;
    s_header(out, "content-type", S_TEXT);
    s_header(out, "x-content-type-options", "nosniff");
    s_header(out, "cache-control", "no-cache");
    if (!head) {
        out->body = (const uint8_t *) text;
        out->len = strlen(text);
    }
}

//  The path below /dashboard/ names a file the set may hold: at most two
//  segments, each a good name (s_name_ok: no "%", no "..", nothing hidden).
static bool
s_rel_ok(const char *rel, size_t len)
{
    const char *slash = memchr(rel, '/', len);
    if (slash == NULL)
        return s_name_ok(rel, len);
    size_t first = (size_t) (slash - rel);
    return s_name_ok(rel, first) && s_name_ok(slash + 1, len - first - 1);
}

static const s_file_t *
s_find(const api_static_t *self, const char *rel, size_t len)
{
    for (size_t i = 0; i < self->count; i++)
        if (strlen(self->files[i].name) == len && memcmp(self->files[i].name, rel, len) == 0)
            return &self->files[i];
    return NULL;
}

//  If-None-Match (RFC 9110 §13.1.2): "*", or a list of entity tags compared
//  weakly (a W/ prefix does not matter).
static bool
s_none_match(const char *header, const char *etag)
{
    size_t etag_len = strlen(etag);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        size_t len = (size_t) (last - p);
        if (len == 1 && *p == '*')
            return true;
        if (len > 2 && p[0] == 'W' && p[1] == '/') {
            p += 2;
            len -= 2;
        }
        if (len == etag_len && memcmp(p, etag, len) == 0)
            return true;
        p = end;
    }
    return false;
}

bool
api_static_get(const api_static_t *self,
               const char *method,
               const char *path,
               const char *if_none_match,
               api_static_answer_t *out)
{
    assert(self);
    assert(method);
    assert(path);
    assert(out);
    size_t plen = strcspn(path, "?"), prefix = strlen(API_STATIC_PREFIX);
    if (plen < prefix || memcmp(path, API_STATIC_PREFIX, prefix) != 0
        || (plen > prefix && path[prefix] != '/'))
        return false;
    memset(out, 0, sizeof *out);
    bool head = strcmp(method, "HEAD") == 0;
    if (!head && strcmp(method, "GET") != 0) {
        s_text(out, 405, "Method Not Allowed", false);
        s_header(out, "allow", "GET, HEAD");
        return true;
    }
    if (plen == prefix) {
        s_text(out, 301, "Moved Permanently", head);
        s_header(out, "location", API_STATIC_PREFIX "/");
        return true;
    }
    const char *rel = path + prefix + 1;
    size_t rlen = plen - prefix - 1;
    if (rlen == 0) {
        rel = S_INDEX;
        rlen = strlen(S_INDEX);
    }
    const s_file_t *file = s_rel_ok(rel, rlen) ? s_find(self, rel, rlen) : NULL;
    if (file == NULL) {
        s_text(out, 404, "Not Found", head);
        return true;
    }
    s_header(out, "content-type", file->type);
    s_header(out, "etag", file->etag);
    s_header(out, "cache-control", "no-cache");
    s_header(out, "x-content-type-options", "nosniff");
    if (file->html)
        s_header(out, "content-security-policy", S_CSP);
    if (if_none_match && s_none_match(if_none_match, file->etag)) {
        out->status = 304;
        return true;
    }
    out->status = 200;
    if (!head) {
        out->body = file->data;
        out->len = file->len;
    }
    return true;
}
