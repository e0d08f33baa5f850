/*  proto_proc - process figures from /proc/self. */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "proto_proc.h"

int
proto_proc_sample(proto_proc_sample_t *out)
{
    int rc = 0;
    memset(out, 0, sizeof *out);
    long tick = sysconf(_SC_CLK_TCK);
    long page = sysconf(_SC_PAGESIZE);

    // /proc/self/stat: utime and stime are fields 14 and 15, after "pid (comm)"
    char buf[1024];
    FILE *f = fopen("/proc/self/stat", "re");
    if (f && fgets(buf, sizeof buf, f)) {
        const char *p = strrchr(buf, ')');
        unsigned long utime = 0, stime = 0;
        if (p
            && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime, &stime)
                   == 2
            && tick > 0)
            out->cpu_seconds = (double) (utime + stime) / (double) tick;
        else
            rc = -1;
    } else {
        rc = -1;
    }
    if (f)
        fclose(f);

    f = fopen("/proc/self/statm", "re");
    unsigned long size = 0, resident = 0;
    if (f && fscanf(f, "%lu %lu", &size, &resident) == 2 && page > 0)
        out->rss_bytes = (uint64_t) resident * (uint64_t) page;
    else
        rc = -1;
    if (f)
        fclose(f);

    DIR *dir = opendir("/proc/self/fd");
    if (dir) {
        struct dirent *de;
        uint32_t n = 0;
        while ((de = readdir(dir)) != NULL)
            if (de->d_name[0] != '.')
                n++;
        closedir(dir);
        out->open_fds = n > 0 ? n - 1 : 0; // the directory's own fd
    } else {
        rc = -1;
    }
    return rc;
}
