/* machine_cpu.h: the whole machine's busy CPU time, for the benchmark
 * tools in bench/ (loadgen, chatload): read it before and after a run and
 * divide by the work done. Header-only; not library code. */
#ifndef BENCH_MACHINE_CPU_H
#define BENCH_MACHINE_CPU_H

#include <stdint.h>
#include <stdio.h>
#include <unistd.h>

/* Busy and total CPU time of the whole machine so far, in clock ticks
 * (/proc/stat's first line; idle and iowait are not busy). */
static inline void machine_ticks(uint64_t *busy, uint64_t *total)
{
    unsigned long long v[10] = {0};
    *busy = *total = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
                   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    for (int i = 0; i < n && i < 8; i++) /* guest time is already in user */
        *total += v[i];
    *busy = *total - v[3] - v[4];
}

/* Microseconds per clock tick of /proc/stat. */
static inline double machine_tick_us(void) { return 1e6 / (double)sysconf(_SC_CLK_TCK); }

#endif
