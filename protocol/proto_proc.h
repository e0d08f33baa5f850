/*  proto_proc - this process's CPU time, resident memory and open fds, read
    from /proc for the proc.stats message and the process metrics.
*/
#ifndef PROTO_PROC_H
#define PROTO_PROC_H

#include <stdint.h>

typedef struct {
    double cpu_seconds; // user + system CPU time
    uint64_t rss_bytes; // resident set size
    uint32_t open_fds;  // entries in /proc/self/fd
} proto_proc_sample_t;

//  Read the current figures. Returns 0, or -1 if /proc could not be read
//  (fields that could be read are still filled).
int proto_proc_sample(proto_proc_sample_t *out);

#endif
