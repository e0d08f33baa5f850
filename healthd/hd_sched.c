/*  hd_sched - probe timing with jitter (see hd_sched.h). */
#include "hd_sched.h"

int64_t
hd_sched_first_ms(int64_t interval_ms, uint64_t random)
{
    if (interval_ms <= 0)
        return 0;
    return (int64_t) (random % (uint64_t) interval_ms);
}

int64_t
hd_sched_next_ms(int64_t interval_ms, uint64_t random)
{
    if (interval_ms <= 0)
        return 0;
    int64_t spread = interval_ms / 10;
    return interval_ms - spread + (int64_t) (random % (uint64_t) (2 * spread + 1));
}

uint64_t
hd_sched_random(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    return x * 0x2545F4914F6CDD1Dull;
}
