/*  gw_report - every finished request's metadata to the bus, in batches.

    Items are copied into a pending request.done message and published every
    GW_REPORT_FLUSH_MS or when GW_REPORT_BATCH items are waiting, so the hot
    path never waits on the bus and one message carries many requests.
*/
#ifndef GW_REPORT_H
#define GW_REPORT_H

#include <ev.h>

#include "proto.h"
#include "proto_bus.h"

#define GW_REPORT_BATCH    256
#define GW_REPORT_FLUSH_MS 100

typedef struct gw_report gw_report_t;

gw_report_t *gw_report_new(struct ev_loop *loop, proto_bus_t *bus);

//  Queue one request's metadata (strings are copied).
void gw_report_add(gw_report_t *self, const proto_reqinfo_t *info);

//  Publish what is queued now.
void gw_report_flush(gw_report_t *self);

//  Requests reported so far.
uint64_t gw_report_count(gw_report_t *self);

//  Flush and free. Sets *self_p to NULL.
void gw_report_destroy(gw_report_t **self_p);

#endif
