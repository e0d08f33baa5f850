/*  st_render - statsd's answers: the stats JSON of SPEC §10 and the
    Prometheus text exposition (format 0.0.4) of /metrics.

    Metrics (every family has HELP and TYPE lines, even without samples):

      switchyard_requests_total{vhost,code}               counter
      switchyard_request_duration_seconds{vhost}          histogram (le 1 ms .. 10 s, +Inf)
      switchyard_backend_requests_total{vhost,backend}    counter
      switchyard_backend_errors_total{vhost,backend,class} counter (class 4xx or 5xx)
      switchyard_backend_latency_seconds{vhost,backend,quantile} gauge (last 5 minutes)
      switchyard_upstream_failures_total{backend}         counter
      switchyard_backend_up{vhost,backend,route}          gauge (1 unless healthd reported it down)
      switchyard_ws_connections, switchyard_chat_sessions, switchyard_chat_rooms  gauge (0 until chat exists)
      switchyard_chat_messages_total                      counter (0 until chat exists)
      switchyard_process_cpu_seconds_total{actor,instance}      counter
      switchyard_process_resident_memory_bytes{actor,instance}  gauge
      switchyard_process_open_fds{actor,instance}               gauge
      switchyard_process_start_time_seconds{actor,instance}     gauge
      switchyard_actor_counter{actor,instance,name}       gauge (each pong counter; some only grow)
      switchyard_stats_folded_total                       counter (requests counted in "(other)")

    The vhost label is the matched route's vHost ("" when none matched).
    Samples are sorted by their labels, so two statsd instances holding the
    same figures write the same text.
*/
#ifndef ST_RENDER_H
#define ST_RENDER_H

#include <stdint.h>

#include "st_agg.h"
#include "st_text.h"

#define ST_RENDER_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

//  Append the stats JSON of every request (vhost NULL) or of one vHost with
//  its backends. Returns 0, or -1 (nothing written) when vhost is unknown.
int st_render_stats(const st_agg_t *agg, const char *vhost, uint64_t now_ms, st_text_t *out);

//  Append the whole exposition.
void st_render_metrics(const st_agg_t *agg, uint64_t now_ms, st_text_t *out);

#endif
