/* scale: the user-space stack with many established connections.
 *
 * For each N (default 10, 1,000, 10,000, 100,000): clients on up to 15
 * addresses (16,000 connections each: the ephemeral ports of one address)
 * open N connections
 * to one server stack in waves of 1,000 over an in-memory wire (mesh.c);
 * each connection echoes one byte. Then:
 *   - memory the server holds per idle established connection: its TCB
 *     (and malloc's header on it), its share of the tables, and the
 *     buffers still held (0: every ring was given back);
 *   - the cost of a packet: 10 of the N connections ping-pong one byte
 *     20,000 times; wall time per packet delivered (both stacks' work).
 *     Flat from N = 10 to N = 100,000 is the goal (hash lookup, timer
 *     heap: nothing scans the sockets).
 * Prints one line per N. Exit status 1 if any connection failed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mesh.h"

#define WAVE 1000
#define PER_CLIENT 16000   /* one address has 16,384 ephemeral ports */
#define PORT 7

static uint32_t n_target;

static void tweak(int node, struct ss_stack_cfg *c)
{
    c->max_sockets = node == 0 ? n_target + 16 : PER_CLIENT + 16;
    c->syn_backlog = 2 * WAVE;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Let delayed ACKs and the like go out: 200 ms of virtual time. */
/* Let timers run out, past the second after which an empty ring is given
 * back (TRIM_US in stack.c), so that what is measured is idle. */
static void settle(struct mesh *m, int nodes)
{
    mesh_set_now(m, mesh_now(m) + 1200000);
    for (int i = 0; i < nodes; i++)
        ss_stack_poll(mesh_stack(m, i), mesh_now(m));
    mesh_run(m);
}

struct conn {
    int node, sd;
};

static int run(uint32_t n)
{
    n_target = n;
    int clients = (int)((n + PER_CLIENT - 1) / PER_CLIENT);
    if (clients < 1)
        clients = 1;
    if (clients > MESH_NODES_MAX - 1) {
        fprintf(stderr, "scale: at most %d connections\n", (MESH_NODES_MAX - 1) * PER_CLIENT);
        return 1;
    }
    struct mesh *m = mesh_new(1 + clients, tweak);
    struct conn *cc = calloc(n, sizeof *cc);
    int *ss = calloc(n, sizeof *ss);
    if (!m || !cc || !ss) {
        fprintf(stderr, "scale: out of memory\n");
        return 1;
    }
    ss_stack *srv = mesh_stack(m, 0);
    int lsd = ss_tcp_listen(srv, PORT, 2 * WAVE);
    uint32_t ok = 0, accepted = 0;
    char b;
    for (uint32_t base = 0; base < n; base += WAVE) {
        uint32_t end = base + WAVE < n ? base + WAVE : n;
        for (uint32_t i = base; i < end; i++) {
            cc[i].node = 1 + (int)(i % (uint32_t)clients);
            cc[i].sd = ss_tcp_connect(mesh_stack(m, cc[i].node), mesh_now(m), mesh_addr(0), PORT, 0);
        }
        mesh_run(m);
        int sd;
        while ((sd = ss_tcp_accept(srv, lsd, NULL, NULL)) >= 0 && accepted < n)
            ss[accepted++] = sd;
        for (uint32_t i = base; i < end; i++)
            if (cc[i].sd >= 0)
                ss_tcp_send(mesh_stack(m, cc[i].node), mesh_now(m), cc[i].sd, "x", 1);
        mesh_run(m);
        for (uint32_t i = base; i < accepted; i++)
            if (ss_tcp_recv(srv, mesh_now(m), ss[i], &b, 1) == 1)
                ss_tcp_send(srv, mesh_now(m), ss[i], &b, 1);
        mesh_run(m);
        for (uint32_t i = base; i < end; i++)
            if (cc[i].sd >= 0 && ss_tcp_recv(mesh_stack(m, cc[i].node), mesh_now(m), cc[i].sd, &b, 1) == 1 &&
                b == 'x')
                ok++;
        settle(m, 1 + clients);
    }
    settle(m, 1 + clients);
    struct ss_stack_mem mem;
    ss_stack_mem(srv, &mem);
    double per_conn = (double)(mem.socket_bytes + mem.table_bytes + mem.buffer_bytes) / n;

    /* Packet cost: 10 connections ping-pong 1 byte. */
    uint32_t k = n < 10 ? n : 10;
    long pkts = 0;
    double t0 = now_s();
    for (int r = 0; r < 20000; r++) {
        for (uint32_t i = 0; i < k; i++)
            ss_tcp_send(mesh_stack(m, cc[i].node), mesh_now(m), cc[i].sd, "y", 1);
        pkts += mesh_run(m);
        for (uint32_t i = 0; i < k; i++)
            if (ss_tcp_recv(srv, mesh_now(m), ss[i], &b, 1) == 1)
                ss_tcp_send(srv, mesh_now(m), ss[i], &b, 1);
        pkts += mesh_run(m);
        for (uint32_t i = 0; i < k; i++)
            ss_tcp_recv(mesh_stack(m, cc[i].node), mesh_now(m), cc[i].sd, &b, 1);
    }
    double dt = now_s() - t0;
    printf("%8u connections: %8u echoed, server holds %u sockets: TCB %zu B + tables %.1f B + "
           "buffers %.1f B = %.1f B per connection; %.0f ns per packet (%ld packets)\n",
           n, ok, mem.sockets, (size_t)(mem.socket_bytes / mem.sockets),
           (double)mem.table_bytes / n, (double)mem.buffer_bytes / n, per_conn, dt * 1e9 / (double)pkts,
           pkts);
    int rc = ok == n ? 0 : 1;
    free(cc);
    free(ss);
    mesh_free(m);
    return rc;
}

int main(int argc, char **argv)
{
    uint32_t def[] = {10, 1000, 10000, 100000};
    int rc = 0;
    if (argc > 1) {
        for (int i = 1; i < argc; i++)
            rc |= run((uint32_t)strtoul(argv[i], NULL, 10));
    } else {
        for (size_t i = 0; i < sizeof def / sizeof def[0]; i++)
            rc |= run(def[i]);
    }
    return rc;
}
