/*  hd_sched - when to probe: the first probe of a backend anywhere in its
    first interval, every next one an interval later give or take 10%, so
    that hundreds of backends added at once (a start, a reload) never probe
    in one burst and never fall into step again. At most HD_SCHED_INFLIGHT
    probes run at once; a probe due while that many run waits its turn.
*/
#ifndef HD_SCHED_H
#define HD_SCHED_H

#include <stdint.h>

#define HD_SCHED_INFLIGHT 256 // probes in flight at most

//  Delay of a backend's first probe: in [0, interval_ms) (0 if interval_ms <= 0).
int64_t hd_sched_first_ms(int64_t interval_ms, uint64_t random);

//  Delay between two probes: in [interval_ms - interval_ms/10, interval_ms + interval_ms/10].
int64_t hd_sched_next_ms(int64_t interval_ms, uint64_t random);

//  A fast non-cryptographic generator (xorshift64*); *state must not be 0.
uint64_t hd_sched_random(uint64_t *state);

#endif
