/*  proto_curve - CURVE keys, socket options and the ZAP handler of the bus.

    Keys are kept as Z85 text (what libzmq's options take) and, for the
    allowlist, as 32 bytes. The ZAP handler is a ZMQ_REP: libzmq's sessions
    send [""][version][request id][domain][address][identity][mechanism]
    [credentials...] and REP strips the envelope; each request is answered
    at once, in the same callback, so REP's strict recv/send turn holds.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ev.h>
#include <zmq.h>

#include "proto_curve.h"
#include "proto_log.h"
#include "proto_util.h"
#include "proto_zwatch.h"

#define S_SHOWN_MAX   120 // bytes of a bad value quoted in an error
#define S_ZAP_FRAMES  8   // frames of a ZAP request we look at
#define S_ZAP_BATCH   32  // requests answered per wake-up
#define S_LIMITS      64  // peers whose last log line time is remembered
#define S_ADDRESS_MAX 64  // bytes of a peer address kept

struct proto_curve {
    char server_public[PROTO_CURVE_Z85_LEN + 1]; // Z85
    char server_secret[PROTO_CURVE_Z85_LEN + 1]; // Z85, "" for a client-only process
    char client_public[PROTO_CURVE_Z85_LEN + 1]; // Z85, ours
    char client_secret[PROTO_CURVE_Z85_LEN + 1]; // Z85, ours
    uint8_t (*allowed)[PROTO_CURVE_KEY_BYTES];   // clients ZAP lets in: ours first
    size_t nallowed;                             // how many
};

static const char s_z85[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

// --------------------------------------------------------------------------
// Keys

static int
s_z85_digit(char c)
{
    const char *p = c ? strchr(s_z85, c) : NULL;
    return p ? (int) (p - s_z85) : -1;
}

int
proto_curve_z85_decode(const char *text, uint8_t *key)
{
    if (text == NULL || strnlen(text, PROTO_CURVE_Z85_LEN + 1) != PROTO_CURVE_Z85_LEN)
        return -1;
    for (size_t g = 0; g < PROTO_CURVE_Z85_LEN / 5; g++) {
        uint64_t value = 0;
        for (size_t i = 0; i < 5; i++) {
            int digit = s_z85_digit(text[g * 5 + i]);
            if (digit < 0)
                return -1;
            value = value * 85 + (uint64_t) digit;
        }
        if (value > UINT32_MAX)
            return -1;
        for (size_t i = 0; i < 4; i++)
            key[g * 4 + i] = (uint8_t) (value >> (24 - 8 * i));
    }
    return 0;
}

//  A value as an error line may quote it: bounded, control bytes as '?'.
static void
s_shown(const char *text, char *out, size_t cap)
{
    size_t len = 0;
    const char *p = text;
    for (; *p && len + 1 < cap && len < S_SHOWN_MAX; p++)
        out[len++] = ((unsigned char) *p < 0x20 || *p == 0x7f) ? '?' : *p;
    out[len] = '\0';
    if (*p && len + sizeof "..." <= cap)
        memcpy(out + len, "...", sizeof "...");
}

//  Read a whole file (at most PROTO_CURVE_FILE_MAX bytes) into a
//  NUL-terminated malloc'd string. Returns it, or NULL with errno set.
static char *
s_read_file(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    char *text = proto_xmalloc(PROTO_CURVE_FILE_MAX + 1);
    size_t len = 0;
    for (;;) {
        ssize_t n = read(fd, text + len, PROTO_CURVE_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            free(text);
            errno = e;
            return NULL;
        }
        if (n == 0)
            break;
        len += (size_t) n;
        if (len > PROTO_CURVE_FILE_MAX) {
            close(fd);
            free(text);
            errno = EFBIG;
            return NULL;
        }
    }
    close(fd);
    text[len] = '\0';
    if (strlen(text) != len) { // a NUL inside: not text
        free(text);
        errno = EINVAL;
        return NULL;
    }
    return text;
}

static void
s_trim_trailing(char *text)
{
    size_t len = strlen(text);
    while (len > 0
           && (text[len - 1] == ' ' || text[len - 1] == '\t' || text[len - 1] == '\n'
               || text[len - 1] == '\r'))
        text[--len] = '\0';
}

//  Wipe and free a buffer that held a secret.
static void
s_free_secret(char **text_p)
{
    if (*text_p) {
        explicit_bzero(*text_p, strlen(*text_p));
        free(*text_p);
    }
    *text_p = NULL;
}

#define S_EXPECTED "expected a CURVE key: 40 Z85 characters, or file:PATH holding one"

int
proto_curve_key_read(const char *name,
                     const char *value,
                     bool secret,
                     char *z85,
                     uint8_t *key,
                     char *err,
                     size_t errlen)
{
    uint8_t scratch[PROTO_CURVE_KEY_BYTES];
    char shown[S_SHOWN_MAX + 4];
    if (key == NULL)
        key = scratch;
    if (value == NULL || *value == '\0') {
        snprintf(err, errlen, "missing %s (%s)", name, S_EXPECTED);
        return -1;
    }
    if (proto_starts_with(value, "file:")) {
        s_shown(value, shown, sizeof shown); // a path is no secret
        char *text = s_read_file(value + strlen("file:"));
        if (text == NULL) {
            snprintf(err, errlen, "bad value for %s: '%s' (cannot read the file: %s)", name, shown,
                     strerror(errno));
            return -1;
        }
        s_trim_trailing(text);
        int rc = proto_curve_z85_decode(text, key);
        if (rc == 0)
            memcpy(z85, text, PROTO_CURVE_Z85_LEN + 1);
        s_free_secret(&text);
        if (rc != 0) {
            snprintf(err, errlen,
                     "bad value for %s: '%s' (the file does not hold a CURVE key: 40 Z85 "
                     "characters, trailing whitespace ignored)",
                     name, shown);
            return -1;
        }
        return 0;
    }
    if (proto_curve_z85_decode(value, key) != 0) {
        if (secret) {
            snprintf(err, errlen, "bad value for %s: (secret) (%s)", name, S_EXPECTED);
        } else {
            s_shown(value, shown, sizeof shown);
            snprintf(err, errlen, "bad value for %s: '%s' (%s)", name, shown, S_EXPECTED);
        }
        return -1;
    }
    memcpy(z85, value, PROTO_CURVE_Z85_LEN + 1);
    return 0;
}

static bool
s_set(const char *value)
{
    return value != NULL && *value != '\0';
}

static void
s_allow(proto_curve_t *self, const uint8_t *key)
{
    self->allowed = proto_xrealloc(self->allowed, (self->nallowed + 1) * sizeof *self->allowed);
    memcpy(self->allowed[self->nallowed++], key, PROTO_CURVE_KEY_BYTES);
}

static bool
s_separator(char c)
{
    return c == ',' || c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

//  Add the keys of a list (comma or whitespace separated); an item
//  "file:PATH" (only when files is true) names a file holding more keys.
//  On a bad item, err names the variable and quotes the whole value.
static int
s_allow_list(proto_curve_t *self,
             const char *name,
             const char *whole,
             const char *text,
             bool files,
             char *err,
             size_t errlen)
{
    char shown[S_SHOWN_MAX + 4];
    size_t item = 0;
    for (const char *p = text; *p;) {
        while (*p && s_separator(*p))
            p++;
        if (*p == '\0')
            break;
        const char *end = p;
        while (*end && !s_separator(*end))
            end++;
        char token[4096 + sizeof "file:"];
        size_t len = (size_t) (end - p);
        item++;
        if (len >= sizeof token)
            len = sizeof token - 1;
        memcpy(token, p, len);
        token[len] = '\0';
        p = end;
        if (self->nallowed >= PROTO_CURVE_CLIENTS_MAX) {
            s_shown(whole, shown, sizeof shown);
            snprintf(err, errlen, "bad value for %s: '%s' (more than %d keys)", name, shown,
                     PROTO_CURVE_CLIENTS_MAX);
            return -1;
        }
        if (files && proto_starts_with(token, "file:")) {
            char *content = s_read_file(token + strlen("file:"));
            if (content == NULL) {
                s_shown(whole, shown, sizeof shown);
                snprintf(err, errlen, "bad value for %s: '%s' (item %zu: cannot read the file: %s)",
                         name, shown, item, strerror(errno));
                return -1;
            }
            int rc = s_allow_list(self, name, whole, content, false, err, errlen);
            free(content);
            if (rc != 0)
                return -1;
            continue;
        }
        uint8_t key[PROTO_CURVE_KEY_BYTES];
        if (proto_curve_z85_decode(token, key) != 0) {
            s_shown(whole, shown, sizeof shown);
            snprintf(err, errlen,
                     "bad value for %s: '%s' (item %zu%s is not a CURVE public key: expected "
                     "40 Z85 characters%s, separated by commas)",
                     name, shown, item, files ? "" : " of a file", files ? " or file:PATH" : "");
            return -1;
        }
        s_allow(self, key);
    }
    return 0;
}

//  The public key of secret into self's public (or a given public checked
//  against it). Returns 0, or -1 with err naming public_name.
static int
s_pair(const char *secret,
       const char *given,
       const char *public_name,
       const char *secret_name,
       char *public,
       char *err,
       size_t errlen)
{
    char derived[PROTO_CURVE_Z85_LEN + 1];
    if (zmq_curve_public(derived, secret) != 0) {
        snprintf(err, errlen,
                 "bad value for %s: (secret) (no CURVE public key derives from it: %s)",
                 secret_name, zmq_strerror(zmq_errno()));
        return -1;
    }
    if (given[0] && strcmp(given, derived) != 0) {
        snprintf(err, errlen, "bad value for %s: '%s' (not the public key of %s)", public_name,
                 given, secret_name);
        return -1;
    }
    memcpy(public, derived, sizeof derived);
    return 0;
}

//  The line for a missing key of a pair, or NULL when all are there.
static const char *
s_missing(const proto_curve_settings_t *s, bool server)
{
    if (server && !s_set(s->server_secret))
        return "missing BUS_CURVE_SERVER_SECRET (once a BUS_CURVE_* setting is given, the tcp bus "
               "uses CURVE and needs the fleet's server secret key too; switchyard keygen makes "
               "the keys)";
    if (!server && !s_set(s->server_secret) && !s_set(s->server_public))
        return "missing BUS_CURVE_SERVER_PUBLIC (once a BUS_CURVE_* setting is given, the tcp bus "
               "uses CURVE and needs the fleet's server public key too)";
    if (!s_set(s->client_secret))
        return "missing BUS_CURVE_CLIENT_SECRET (once a BUS_CURVE_* setting is given, the tcp bus "
               "uses CURVE and needs this process's client secret key too; switchyard keygen "
               "makes the keys)";
    return NULL;
}

int
proto_curve_new(
    const proto_curve_settings_t *s, bool server, proto_curve_t **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!s_set(s->server_secret) && !s_set(s->server_public) && !s_set(s->client_secret)
        && !s_set(s->client_public) && !s_set(s->clients))
        return 0; // plain
    if (!zmq_has("curve")) {
        snprintf(err, errlen, "BUS_CURVE_* is set but this libzmq has no CURVE support");
        return -1;
    }
    proto_curve_t *self = proto_xcalloc(1, sizeof *self);
    proto_curve_t list = {0}; // BUS_CURVE_CLIENTS, to follow our own key
    char server_public[PROTO_CURVE_Z85_LEN + 1] = "", client_public[PROTO_CURVE_Z85_LEN + 1] = "";
    //  every value given is read first: a bad one is named before a missing one
    if (s_set(s->server_secret)
        && proto_curve_key_read("BUS_CURVE_SERVER_SECRET", s->server_secret, true,
                                self->server_secret, NULL, err, errlen)
               != 0)
        goto fail;
    if (s_set(s->server_public)
        && proto_curve_key_read("BUS_CURVE_SERVER_PUBLIC", s->server_public, false, server_public,
                                NULL, err, errlen)
               != 0)
        goto fail;
    if (s_set(s->client_secret)
        && proto_curve_key_read("BUS_CURVE_CLIENT_SECRET", s->client_secret, true,
                                self->client_secret, NULL, err, errlen)
               != 0)
        goto fail;
    if (s_set(s->client_public)
        && proto_curve_key_read("BUS_CURVE_CLIENT_PUBLIC", s->client_public, false, client_public,
                                NULL, err, errlen)
               != 0)
        goto fail;
    if (s_set(s->clients)
        && s_allow_list(&list, "BUS_CURVE_CLIENTS", s->clients, s->clients, true, err, errlen) != 0)
        goto fail;
    const char *missing = s_missing(s, server);
    if (missing) {
        snprintf(err, errlen, "%s", missing);
        goto fail;
    }
    if (s_set(s->server_secret)) {
        if (s_pair(self->server_secret, server_public, "BUS_CURVE_SERVER_PUBLIC",
                   "BUS_CURVE_SERVER_SECRET", self->server_public, err, errlen)
            != 0)
            goto fail;
    } else {
        memcpy(self->server_public, server_public, sizeof server_public);
    }
    if (s_pair(self->client_secret, client_public, "BUS_CURVE_CLIENT_PUBLIC",
               "BUS_CURVE_CLIENT_SECRET", self->client_public, err, errlen)
        != 0)
        goto fail;
    uint8_t own[PROTO_CURVE_KEY_BYTES];
    proto_curve_z85_decode(self->client_public, own);
    s_allow(self, own);
    for (size_t i = 0; i < list.nallowed; i++)
        s_allow(self, list.allowed[i]);
    free(list.allowed);
    *out = self;
    return 0;
fail:
    free(list.allowed);
    proto_curve_destroy(&self);
    return -1;
}

proto_curve_t *
proto_curve_dup(const proto_curve_t *self)
{
    if (self == NULL)
        return NULL;
    proto_curve_t *copy = proto_xmalloc(sizeof *copy);
    memcpy(copy, self, sizeof *copy);
    copy->allowed = proto_xmalloc((self->nallowed ? self->nallowed : 1) * sizeof *copy->allowed);
    memcpy(copy->allowed, self->allowed, self->nallowed * sizeof *copy->allowed);
    return copy;
}

void
proto_curve_destroy(proto_curve_t **self_p)
{
    proto_curve_t *self = *self_p;
    if (self == NULL)
        return;
    free(self->allowed);
    self->allowed = NULL;
    explicit_bzero(self, sizeof *self);
    free(self);
    *self_p = NULL;
}

bool
proto_curve_is_server(const proto_curve_t *self)
{
    return self != NULL && self->server_secret[0] != '\0';
}

const char *
proto_curve_server_public(const proto_curve_t *self)
{
    return self->server_public;
}

const char *
proto_curve_client_public(const proto_curve_t *self)
{
    return self->client_public;
}

bool
proto_curve_allows(const proto_curve_t *self, const uint8_t *key)
{
    for (size_t i = 0; i < self->nallowed; i++)
        if (memcmp(self->allowed[i], key, PROTO_CURVE_KEY_BYTES) == 0)
            return true;
    return false;
}

size_t
proto_curve_allowed_count(const proto_curve_t *self)
{
    return self->nallowed;
}

// --------------------------------------------------------------------------
// Socket options

static bool
s_tcp(const char *endpoint)
{
    return endpoint != NULL && proto_starts_with(endpoint, "tcp://");
}

int
proto_curve_bind_opts(const proto_curve_t *self, void *sock, const char *endpoint)
{
    if (self == NULL || !s_tcp(endpoint))
        return 0;
    if (!proto_curve_is_server(self)) {
        errno = EINVAL;
        return -1;
    }
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0
        || zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->server_secret,
                          sizeof self->server_secret)
               != 0
        || zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, PROTO_CURVE_DOMAIN, strlen(PROTO_CURVE_DOMAIN))
               != 0)
        return -1;
    return 0;
}

int
proto_curve_connect_opts(const proto_curve_t *self, void *sock, const char *endpoint)
{
    if (self == NULL)
        return 0;
    if (!s_tcp(endpoint)) {
        int zero = 0; // back to the NULL mechanism (libzmq: CURVE_SERVER 0 means NULL)
        return zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &zero, sizeof zero);
    }
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, self->server_public, sizeof self->server_public)
            != 0
        || zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, self->client_public,
                          sizeof self->client_public)
               != 0
        || zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, self->client_secret,
                          sizeof self->client_secret)
               != 0)
        return -1;
    return 0;
}

// --------------------------------------------------------------------------
// The guard: ZAP handler, counters, rate-limited lines

//  When a peer's last line was written, and what happened since.
typedef struct {
    char peer[160]; // address, or "socket endpoint"
    ev_tstamp last; // ev_now of its last line
    uint64_t quiet; // events since then not logged
    bool used;      // slot taken
} s_limit_t;

struct proto_curve_guard {
    struct ev_loop *loop;       // the actor's loop
    const proto_curve_t *curve; // the allowlist (borrowed), NULL without a handler
    void *zap;                  // REP at PROTO_CURVE_ZAP_ENDPOINT, or NULL
    proto_zwatch_t *zap_w;      // its watcher
    uint64_t refused;           // ZAP said 400
    uint64_t failed;            // other failed handshakes
    s_limit_t limits[S_LIMITS]; // last line per peer
};

//  True if a line about peer may be written now (then *quiet is the number
//  of events about it not logged since its last line).
static bool
s_may_log(proto_curve_guard_t *self, const char *peer, uint64_t *quiet)
{
    ev_tstamp now = ev_now(self->loop);
    s_limit_t *victim = NULL;
    for (size_t i = 0; i < S_LIMITS; i++) {
        s_limit_t *l = &self->limits[i];
        if (l->used && strcmp(l->peer, peer) == 0) {
            if (now - l->last < PROTO_CURVE_LOG_EVERY) {
                l->quiet++;
                return false;
            }
            *quiet = l->quiet;
            l->quiet = 0;
            l->last = now;
            return true;
        }
        if (victim == NULL || (victim->used && (!l->used || l->last < victim->last)))
            victim = l;
    }
    proto_strlcpy(victim->peer, peer, sizeof victim->peer);
    victim->used = true;
    victim->last = now;
    victim->quiet = 0;
    *quiet = 0;
    return true;
}

static bool
s_frame_is(zmq_msg_t *frame, const char *text)
{
    size_t len = strlen(text);
    return zmq_msg_size(frame) == len && memcmp(zmq_msg_data(frame), text, len) == 0;
}

static void
s_frame_text(zmq_msg_t *frame, char *out, size_t cap)
{
    size_t len = zmq_msg_size(frame) < cap - 1 ? zmq_msg_size(frame) : cap - 1;
    memcpy(out, zmq_msg_data(frame), len);
    out[len] = '\0';
    for (size_t i = 0; i < len; i++)
        if ((unsigned char) out[i] < 0x20 || out[i] == 0x7f || out[i] == '"')
            out[i] = '?';
}

//  Send the reply to one request: version, request id, status code and
//  text, user id, metadata. Returns 0 or -1.
static int
s_zap_reply(void *sock, zmq_msg_t *request_id, const char *code, const char *text, const char *user)
{
    int more = ZMQ_SNDMORE | ZMQ_DONTWAIT;
    if (zmq_send(sock, "1.0", 3, more) < 0)
        return -1;
    const void *rid = request_id ? zmq_msg_data(request_id) : "";
    size_t rid_len = request_id ? zmq_msg_size(request_id) : 0;
    if (zmq_send(sock, rid, rid_len, more) < 0 || zmq_send(sock, code, strlen(code), more) < 0
        || zmq_send(sock, text, strlen(text), more) < 0
        || zmq_send(sock, user, strlen(user), more) < 0 || zmq_send(sock, "", 0, ZMQ_DONTWAIT) < 0)
        return -1;
    return 0;
}

//  Decide one request (frames[0..n), n counting frames past S_ZAP_FRAMES) and reply.
static void
s_zap_answer(proto_curve_guard_t *self, void *sock, zmq_msg_t *f, int n)
{
    // 0 version, 1 request id, 2 domain, 3 address, 4 identity, 5 mechanism, 6 credentials
    if (n < 6 || !s_frame_is(&f[0], "1.0")) {
        log_error("malformed ZAP request: refused", LOG_I("frames", n));
        if (s_zap_reply(sock, n >= 2 ? &f[1] : NULL, "500", "malformed request", "") != 0)
            log_error("ZAP reply not sent", LOG_S("error", zmq_strerror(zmq_errno())));
        return;
    }
    char address[S_ADDRESS_MAX], client[PROTO_CURVE_PREFIX_LEN + 1] = "-";
    s_frame_text(&f[3], address, sizeof address);
    if (proto_starts_with(address, "::ffff:") && strchr(address, '.')) // IPv4 on a v6 socket
        memmove(address, address + strlen("::ffff:"), strlen(address) - strlen("::ffff:") + 1);
    bool curve = s_frame_is(&f[5], "CURVE") && n >= 7 && n <= S_ZAP_FRAMES
                 && zmq_msg_size(&f[6]) == PROTO_CURVE_KEY_BYTES;
    char user[PROTO_CURVE_Z85_LEN + 1] = "";
    const uint8_t *key = curve ? zmq_msg_data(&f[6]) : NULL;
    if (key) {
        zmq_z85_encode(user, key, PROTO_CURVE_KEY_BYTES);
        memcpy(client, user, PROTO_CURVE_PREFIX_LEN);
        client[PROTO_CURVE_PREFIX_LEN] = '\0';
    }
    const char *why = NULL;
    if (!s_frame_is(&f[2], PROTO_CURVE_DOMAIN))
        why = "not a bus socket (ZAP domain)";
    else if (!curve)
        why = "not CURVE";
    else if (!proto_curve_allows(self->curve, key))
        why = "client key not allowed";
    if (why == NULL) {
        log_debug("bus peer allowed", LOG_S("address", address), LOG_S("client", client));
        if (s_zap_reply(sock, &f[1], "200", "OK", user) != 0)
            log_error("ZAP reply not sent", LOG_S("error", zmq_strerror(zmq_errno())));
        return;
    }
    self->refused++;
    uint64_t quiet = 0;
    if (s_may_log(self, address, &quiet))
        log_warn("bus peer refused", LOG_S("address", address), LOG_S("client", client),
                 LOG_S("reason", why), LOG_U("suppressed", quiet));
    if (s_zap_reply(sock, &f[1], "400", why, "") != 0)
        log_error("ZAP reply not sent", LOG_S("error", zmq_strerror(zmq_errno())));
}

static void
s_on_zap(proto_zwatch_t *w, void *sock, int revents, void *arg)
{
    (void) w;
    (void) revents;
    proto_curve_guard_t *self = arg;
    for (int i = 0; i < S_ZAP_BATCH; i++) {
        zmq_msg_t f[S_ZAP_FRAMES];
        int n = 0, more;
        do {
            zmq_msg_t scratch;
            zmq_msg_t *part = n < S_ZAP_FRAMES ? &f[n] : &scratch;
            zmq_msg_init(part);
            if (zmq_msg_recv(part, sock, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(part);
                for (int k = 0; k < n && k < S_ZAP_FRAMES; k++)
                    zmq_msg_close(&f[k]);
                return; // nothing (more) waiting
            }
            more = zmq_msg_more(part);
            if (part == &scratch)
                zmq_msg_close(&scratch);
            n++;
        } while (more);
        s_zap_answer(self, sock, f, n);
        for (int k = 0; k < n && k < S_ZAP_FRAMES; k++)
            zmq_msg_close(&f[k]);
    }
}

proto_curve_guard_t *
proto_curve_guard_new(
    struct ev_loop *loop, void *ctx, const proto_curve_t *zap, char *err, size_t errlen)
{
    proto_curve_guard_t *self = proto_xcalloc(1, sizeof *self);
    self->loop = loop;
    if (zap == NULL)
        return self;
    self->curve = zap;
    self->zap = zmq_socket(ctx, ZMQ_REP);
    int zero = 0;
    if (self->zap == NULL || zmq_setsockopt(self->zap, ZMQ_LINGER, &zero, sizeof zero) != 0
        || zmq_bind(self->zap, PROTO_CURVE_ZAP_ENDPOINT) != 0) {
        snprintf(err, errlen, "cannot bind the ZAP handler at %s: %s", PROTO_CURVE_ZAP_ENDPOINT,
                 zmq_strerror(zmq_errno()));
        goto fail;
    }
    self->zap_w = proto_zwatch_new(loop, self->zap, ZMQ_POLLIN, s_on_zap, self);
    if (self->zap_w == NULL) {
        snprintf(err, errlen, "cannot watch the ZAP handler: %s", zmq_strerror(zmq_errno()));
        goto fail;
    }
    proto_zwatch_start(self->zap_w);
    return self;
fail:
    proto_curve_guard_destroy(&self);
    return NULL;
}

//  Why a handshake failed, from its monitor event.
static const char *
s_reason(bool auth, uint32_t value)
{
    if (auth)
        return "refused by the peer: our client key is not allowed there";
    switch (value) {
        case ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH:
            return "security mechanism mismatch: one side uses CURVE, the other not";
        case ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC:
            return "CURVE cryptographic error: the sides do not share the server key";
        default:
            break;
    }
    if (value >= ZMQ_PROTOCOL_ERROR_ZAP_UNSPECIFIED && value < ZMQ_PROTOCOL_ERROR_WS_UNSPECIFIED)
        return "ZAP handler error";
    if (value >= ZMQ_PROTOCOL_ERROR_ZMTP_UNSPECIFIED)
        return "ZMTP protocol error (not a ZeroMQ peer, or a broken one)";
    return "the connection ended during the handshake (as a peer without CURVE or with other "
           "keys ends it; so does a bare tcp probe)";
}

void
proto_curve_guard_event(proto_curve_guard_t *self,
                        const char *socket,
                        bool bound,
                        const char *event,
                        const char *endpoint,
                        uint32_t value)
{
    if (!proto_starts_with(event, "handshake_failed"))
        return;
    bool auth = strcmp(event, "handshake_failed_auth") == 0;
    if (bound && auth)
        return; // our ZAP handler's refusal: counted and logged as refused
    self->failed++;
    char peer[sizeof self->limits[0].peer];
    snprintf(peer, sizeof peer, "%s %s", socket, endpoint);
    uint64_t quiet = 0;
    if (!s_may_log(self, peer, &quiet))
        return;
    const char *reason = s_reason(auth, value);
    if (bound)
        log_warn("bus peer failed its handshake", LOG_S("socket", socket),
                 LOG_S("endpoint", endpoint), LOG_S("reason", reason), LOG_U("code", value),
                 LOG_U("suppressed", quiet));
    else
        log_warn("bus handshake with a peer failed", LOG_S("socket", socket),
                 LOG_S("endpoint", endpoint), LOG_S("reason", reason), LOG_U("code", value),
                 LOG_U("suppressed", quiet));
}

const uint64_t *
proto_curve_guard_refused(const proto_curve_guard_t *self)
{
    return &self->refused;
}

const uint64_t *
proto_curve_guard_failed(const proto_curve_guard_t *self)
{
    return &self->failed;
}

void
proto_curve_guard_destroy(proto_curve_guard_t **self_p)
{
    proto_curve_guard_t *self = *self_p;
    if (self == NULL)
        return;
    proto_zwatch_destroy(&self->zap_w);
    if (self->zap) {
        zmq_close(self->zap);
        self->zap = NULL;
    }
    free(self);
    *self_p = NULL;
}
