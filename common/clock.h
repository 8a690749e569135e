/*
 * clock — the one monotonic clock every module measures time with.
 *
 * Owns reading CLOCK_MONOTONIC in milliseconds and short sleeps. Never reads
 * the wall clock: timestamps a person reads come from time(2) where they are
 * written, and durations never do.
 */
#ifndef BOTTLE_COMMON_CLOCK_H
#define BOTTLE_COMMON_CLOCK_H

#include <stdint.h>

/* Milliseconds on CLOCK_MONOTONIC; only differences mean anything. */
int64_t clock_mono_ms(void);
/* Microseconds on the same clock, for measuring short steps. */
int64_t clock_mono_us(void);
/* Milliseconds (with fractions) since a clock_mono_us() reading. */
double clock_ms_since(int64_t start_us);

/* Sleeps ms milliseconds, resuming after signals until the time is over. */
void clock_sleep_ms(long ms);

#endif
