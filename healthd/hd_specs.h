/*  hd_specs - what to probe, as the router tells it (config.get
    what=health): one spec per (route, backend). Parsing is strict about
    types and lenient about unknown keys (the router may add some).
*/
#ifndef HD_SPECS_H
#define HD_SPECS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *route;   // route id
    char *vhost;   // the route's vHost
    char *path;    // healthPath ("/" when absent)
    char *backend; // backend id
    char *host;    // hostname or address
    uint16_t port; // port
    char *region;  // backend region ("" when absent)
    bool tcp;      // "probe": "tcp"
    bool maint;    // "maintenance": true
} hd_spec_t;

//  Parse the body of config.reply: [{"route","vHost","healthPath","backends":
//  [{"id","hostname","port","region","probe","maintenance"}]}]. On success
//  returns 0 with *specs (caller frees with hd_specs_free) and *count; a
//  backend entry without id, hostname or a valid port is skipped and counted
//  in *skipped. Returns -1 with a reason in err when the body is not such an
//  array.
int hd_specs_parse(
    const char *json, hd_spec_t **specs, size_t *count, size_t *skipped, char *err, size_t errlen);

//  The same for one page of a long list: the body is either the whole list
//  (an array: *next = -1) or {"routes": [...], "next": N | null}, where N is
//  the offset to ask for next (-1 for null: the last page).
int hd_specs_parse_page(const char *json,
                        hd_spec_t **specs,
                        size_t *count,
                        size_t *skipped,
                        int64_t *next,
                        char *err,
                        size_t errlen);

//  Move count specs from *from to the end of *to (*to_count grows); *from,
//  emptied, is freed and set to NULL.
void hd_specs_move(hd_spec_t **to, size_t *to_count, hd_spec_t **from, size_t count);

void hd_specs_free(hd_spec_t **specs_p, size_t count);

//  The Host header of a probe: the vHost, unless it is a wildcard or a
//  catch-all ("*", "*.x", "", "_"), then host or host:port (port not 80).
//  Returns false if it does not fit.
bool hd_specs_host_header(const hd_spec_t *spec, char *out, size_t cap);

#endif
