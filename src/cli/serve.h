/* `sockstack serve SERVICE [options]`: the table of services and the
 * contract a row fulfils.
 *
 * To add a service, add one row to serve_services[] in serve_services.c.
 * cmd_serve.c parses the options every service shares (address, model,
 * limits, ACLs, logging, socket options) into sc->opts, hands the row its
 * own options (longopts with val >= SERVE_OPT_SERVICE) through option(),
 * then calls setup() to choose sc->svc and fill what it needs (e.g.
 * sc->opts.svc_ctx), runs the server, and calls cleanup().
 */
#ifndef SS_CLI_SERVE_H
#define SS_CLI_SERVE_H

#include <getopt.h>
#include <stdbool.h>

#include "sockstack/server.h"

enum {
    SERVE_STREAM = 1u, /* TCP and Unix stream */
    SERVE_DGRAM = 2u,  /* UDP (--udp) */
};

/* getopt values for a service's own options start here (per row). */
#define SERVE_OPT_SERVICE 0x2000

struct serve_ctx;

struct serve_service {
    const char *name;
    const char *summary;           /* one line for `serve --help` */
    unsigned kinds;                /* SERVE_STREAM and/or SERVE_DGRAM */
    unsigned default_kind;         /* without --udp / --tcp */
    const struct option *longopts; /* {NULL} terminated, or NULL */
    const char *help;              /* lines for its options, or NULL */
    /* One of its options: 0, or CLI_USAGE after printing why. */
    int (*option)(struct serve_ctx *sc, int opt, const char *arg);
    /* Options parsed: set sc->svc (and sc->opts fields); 0 or an exit
     * code after printing why. */
    int (*setup)(struct serve_ctx *sc);
    void (*cleanup)(struct serve_ctx *sc); /* may be NULL */
    /* May be NULL. The server is bound: start what runs beside it on its
     * loop (chat's IRC listener); 0 or an exit code after printing why. */
    int (*attach)(struct serve_ctx *sc, ss_server *srv);
    /* May be NULL. The server stopped and is not yet freed: stop what
     * attach started, while the loop is still there. */
    void (*detach)(struct serve_ctx *sc);
};

struct serve_ctx {
    const struct serve_service *row;
    ss_server_opts opts; /* shared options applied; setup may change it */
    const ss_service *svc;
    bool udp;            /* datagram mode chosen */
    void *state;         /* the row's own; cleanup frees it */
};

extern const struct serve_service serve_services[];
extern const size_t serve_services_count;

#endif
