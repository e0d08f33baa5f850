/*  proto_disc - find every live instance of a peer kind.

    A kind resolves to a set of instances, each a pair of endpoints (its
    ROUTER for requests, its XPUB for events), from one of three sources:

      ipc (default)   files <kind>.<pid>.req / .pub in BUS_DIR; a file whose
                      pid is not alive is stale: ignored and removed; an
                      instance counts once both files exist. BUS_DIR is
                      created if missing and watched with inotify (an event
                      naming a bus file rescans at once: a peer that binds
                      after us is found within milliseconds), and rescanned
                      every second as a safety net.
      dns:NAME:PORT   every address NAME resolves to (c-ares, off the loop),
                      re-resolved every PROTO_DISC_DNS_INTERVAL; each address
                      is tcp://ADDR:PORT (ROUTER) and PORT+1 (XPUB).
      list            tcp://host:port[,tcp://host:port...]: a fixed set.

    The callback hears of every instance that appears or disappears, so the
    caller can connect and disconnect its sockets one address at a time.
*/
#ifndef PROTO_DISC_H
#define PROTO_DISC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <ev.h>

#define PROTO_DISC_ENDPOINT_MAX  272  // bytes of an endpoint string
#define PROTO_DISC_MAX_INSTANCES 128  // per kind
#define PROTO_DISC_SCAN_MS       1000 // ipc rescan interval
#define PROTO_DISC_DNS_MS        2000 // dns re-resolve interval

typedef struct proto_disc proto_disc_t;

//  An instance of kind appeared (added) or disappeared.
typedef void(proto_disc_fn)(
    void *arg, const char *kind, const char *req_endpoint, const char *pub_endpoint, bool added);

//  Create a discovery for one bus directory. skip_pid: our own pid, whose
//  files are never reported. Returns NULL on failure.
proto_disc_t *proto_disc_new(
    struct ev_loop *loop, const char *bus_dir, pid_t skip_pid, proto_disc_fn *fn, void *arg);

//  Watch a kind. spec is NULL or "" for ipc in the bus directory, else a
//  dns: or list spec. Returns 0, or -1 with a one-line reason in err.
int
proto_disc_watch(proto_disc_t *self, const char *kind, const char *spec, char *err, size_t errlen);

//  Check a BUS_PEERS_<KIND> value without watching it. Returns 0 or -1 with err.
int proto_disc_check_spec(const char *spec, char *err, size_t errlen);

//  Rescan the directory now (also done on a timer).
void proto_disc_rescan(proto_disc_t *self);

//  Number of live instances of a kind currently known.
size_t proto_disc_count(proto_disc_t *self, const char *kind);

//  Stop watching and free. Reports nothing. Sets *self_p to NULL.
void proto_disc_destroy(proto_disc_t **self_p);

//  Create dir and its missing parents (mkdir -p, mode 0755). Returns 0, or -1
//  with errno set.
int proto_disc_mkdirs(const char *dir);

//  Parse a bus file name "<kind>.<pid>.req" or ".pub". Returns 0, or -1 if the
//  name is not a bus file. kind receives at most kind_cap-1 bytes.
int proto_disc_parse_name(const char *name, char *kind, size_t kind_cap, pid_t *pid, bool *is_req);

//  True if a process with this pid exists (kill(pid, 0) is not ESRCH).
bool proto_disc_pid_alive(pid_t pid);

//  The XPUB endpoint of a tcp ROUTER endpoint (port + 1). Returns 0 or -1.
int proto_disc_pub_of(const char *req_endpoint, char *out, size_t cap);

#endif
