/*  gw_cidr - a list of address blocks (GATEWAY_TRUSTED_PROXIES), and whether
    a peer address falls in one of them.
*/
#ifndef GW_CIDR_H
#define GW_CIDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define GW_CIDR_MAX 64

typedef struct {
    int family;       // AF_INET or AF_INET6
    uint8_t addr[16]; // network address (4 or 16 bytes used)
    unsigned prefix;  // prefix length in bits
} gw_cidr_t;

typedef struct {
    gw_cidr_t blocks[GW_CIDR_MAX]; // the blocks
    size_t count;                  // how many
} gw_cidr_list_t;

//  Parse "10.0.0.0/8, 192.168.1.7, ::1/128" (empty or NULL: no blocks).
//  Returns 0, or -1 naming the bad entry in err.
int gw_cidr_parse(const char *text, gw_cidr_list_t *list, char *err, size_t errlen);

//  True if the address (AF_INET or AF_INET6, v4-mapped v6 compared as v4)
//  is in one of the blocks.
bool gw_cidr_match(const gw_cidr_list_t *list, const struct sockaddr *sa);

//  True if the text address (e.g. a region's public address host) is in a block.
bool gw_cidr_match_text(const gw_cidr_list_t *list, const char *ip);

#endif
