/* Internals of the drawing module shared by its renderers (draw.c, html.c). */
#ifndef SS_VIZ_INT_H
#define SS_VIZ_INT_H

#include "sockstack/viz.h"

#define MAX_PTS 200000

struct vrec {
    struct ss_ana_rec r;
    uint64_t t_arr;
    bool arrived, lost;
};

enum { PT_CWND, PT_SSTHRESH, PT_SRTT, PT_RTT_SAMPLE, PT_N };

struct vpt {
    uint64_t t;
    double v;
    int series;
};

struct ss_viz {
    ss_ana *ana;
    struct vrec *recs;
    size_t n, cap;
    bool truncated;
    struct vpt *pts;
    size_t npts;
    int conn;
    uint64_t t_end;
};

#endif
