/*  cli_keygen - `switchyard keygen [--client] [--out DIR]`: new CURVE keys
    for the bus (zmq_curve_keypair), see docs/bus-security.md.

    Without --out it prints a ready .env: the fleet's server pair and a
    client pair as BUS_CURVE_SERVER_SECRET/_PUBLIC and
    BUS_CURVE_CLIENT_SECRET/_PUBLIC, each value in single quotes (Z85 has
    '#', '$' and '=', which .env readers would otherwise take as a comment
    or a variable; no Z85 character is a quote). --client makes only the
    client pair (an operator's key, its public half for the actors'
    BUS_CURVE_CLIENTS). --out DIR writes the keys as files server.secret,
    server.public, client.secret, client.public (secrets 0600, publics
    0644; the directory is made 0700 if missing) for file:PATH values, e.g.
    `kubectl create secret generic bus-curve --from-file=DIR`; an existing
    file is never overwritten.
*/
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zmq.h>

#include "cli.h"
#include "proto_curve.h"

typedef struct {
    char public[PROTO_CURVE_Z85_LEN + 1]; // Z85
    char secret[PROTO_CURVE_Z85_LEN + 1]; // Z85
} s_pair_t;

static void
s_usage(FILE *out)
{
    fprintf(out, "usage: switchyard keygen [--client] [--out DIR]\n\n"
                 "  (no flag)    print a .env with new fleet keys: BUS_CURVE_SERVER_SECRET,\n"
                 "               BUS_CURVE_SERVER_PUBLIC, BUS_CURVE_CLIENT_SECRET,\n"
                 "               BUS_CURVE_CLIENT_PUBLIC\n"
                 "  --client     only a client pair (an operator's key: its public half goes\n"
                 "               into the actors' BUS_CURVE_CLIENTS)\n"
                 "  --out DIR    write the keys as files server.secret, server.public,\n"
                 "               client.secret, client.public (secrets mode 0600) for\n"
                 "               BUS_CURVE_*=file:DIR/NAME; existing files are kept\n"
                 "  -h, --help   print this help and exit\n");
}

//  Write one key file (NAME in dir) that must not exist yet. Returns 0 or -1 (printed).
static int
s_write(const char *dir, const char *name, const char *key, mode_t mode)
{
    char path[4096];
    int n = snprintf(path, sizeof path, "%s/%s", dir, name);
    if (n <= 0 || (size_t) n >= sizeof path) {
        fprintf(stderr, "switchyard keygen: path too long: %s/%s\n", dir, name);
        return -1;
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) {
        fprintf(stderr, "switchyard keygen: cannot create %s: %s%s\n", path, strerror(errno),
                errno == EEXIST ? " (keys are never overwritten)" : "");
        return -1;
    }
    char line[PROTO_CURVE_Z85_LEN + 2];
    snprintf(line, sizeof line, "%s\n", key);
    size_t len = strlen(line);
    bool ok = fchmod(fd, mode) == 0 && write(fd, line, len) == (ssize_t) len;
    int e = errno;
    ok = close(fd) == 0 && ok;
    if (!ok) {
        fprintf(stderr, "switchyard keygen: cannot write %s: %s\n", path, strerror(e));
        return -1;
    }
    printf("%s\n", path);
    return 0;
}

static int
s_pair(s_pair_t *pair)
{
    if (zmq_curve_keypair(pair->public, pair->secret) != 0) {
        fprintf(stderr, "switchyard keygen: no CURVE keys: %s\n", zmq_strerror(zmq_errno()));
        return -1;
    }
    return 0;
}

int
cli_keygen(int argc, char **argv)
{
    bool client_only = false;
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            s_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--client") == 0) {
            client_only = true;
        } else if (strcmp(argv[i], "--out") == 0 && i + 1 < argc && argv[i + 1][0]) {
            out = argv[++i];
        } else if (strncmp(argv[i], "--out=", 6) == 0 && argv[i][6]) {
            out = argv[i] + 6;
        } else {
            fprintf(stderr, "switchyard keygen: unknown or incomplete option %s\n", argv[i]);
            s_usage(stderr);
            return 2;
        }
    }
    s_pair_t server = {0}, client = {0};
    if ((!client_only && s_pair(&server) != 0) || s_pair(&client) != 0)
        return 1;
    int rc = 0;
    if (out == NULL) {
        if (!client_only)
            printf("BUS_CURVE_SERVER_SECRET='%s'\nBUS_CURVE_SERVER_PUBLIC='%s'\n", server.secret,
                   server.public);
        printf("BUS_CURVE_CLIENT_SECRET='%s'\nBUS_CURVE_CLIENT_PUBLIC='%s'\n", client.secret,
               client.public);
    } else if (mkdir(out, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "switchyard keygen: cannot create %s: %s\n", out, strerror(errno));
        rc = 1;
    } else {
        if (!client_only
            && (s_write(out, "server.secret", server.secret, 0600) != 0
                || s_write(out, "server.public", server.public, 0644) != 0))
            rc = 1;
        if (rc == 0
            && (s_write(out, "client.secret", client.secret, 0600) != 0
                || s_write(out, "client.public", client.public, 0644) != 0))
            rc = 1;
    }
    explicit_bzero(&server, sizeof server);
    explicit_bzero(&client, sizeof client);
    return rc;
}
