/* mesh: see mesh.h. */
#include "mesh.h"

#include <stdlib.h>
#include <string.h>

#define PKT_MAX 2048            /* the stacks here send at most MSS 1460 */
#define QUEUE_MAX (1u << 20)    /* packets in flight on the whole wire */

struct pkt {
    uint16_t len;
    uint8_t data[PKT_MAX];
};

struct mesh {
    int n;
    ss_stack *st[MESH_NODES_MAX];
    struct pkt *q;
    size_t head, len, cap;
    bool overflow;
    uint64_t now;
};

uint32_t mesh_addr(int node)
{
    return 0x0a000001u + (uint32_t)node;
}

static int out(void *ctx, const uint8_t *p, size_t len)
{
    struct mesh *m = ctx;
    if (len > PKT_MAX) {
        m->overflow = true;
        return -1;
    }
    if (m->len == m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 1024;
        if (cap > QUEUE_MAX) {
            m->overflow = true;
            return -1;
        }
        struct pkt *q = malloc(cap * sizeof *q);
        if (!q) {
            m->overflow = true;
            return -1;
        }
        for (size_t i = 0; i < m->len; i++)
            q[i] = m->q[(m->head + i) % m->cap];
        free(m->q);
        m->q = q;
        m->cap = cap;
        m->head = 0;
    }
    struct pkt *k = &m->q[(m->head + m->len++) % m->cap];
    k->len = (uint16_t)len;
    memcpy(k->data, p, len);
    return 0;
}

struct mesh *mesh_new(int nodes, void (*tweak)(int node, struct ss_stack_cfg *cfg))
{
    if (nodes < 1 || nodes > MESH_NODES_MAX)
        return NULL;
    struct mesh *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->n = nodes;
    for (int i = 0; i < nodes; i++) {
        struct ss_stack_cfg c;
        ss_stack_cfg_default(&c);
        c.local_addr = mesh_addr(i);
        for (size_t k = 0; k < sizeof c.isn_secret; k++)
            c.isn_secret[k] = (uint8_t)(k * 13 + (size_t)i + 1);
        c.output = out;
        c.output_ctx = m;
        if (tweak)
            tweak(i, &c);
        if (ss_stack_new(&c, &m->st[i]) < 0) {
            mesh_free(m);
            return NULL;
        }
    }
    return m;
}

void mesh_free(struct mesh *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++)
        ss_stack_free(m->st[i]);
    free(m->q);
    free(m);
}

ss_stack *mesh_stack(struct mesh *m, int node)
{
    return m->st[node];
}

void mesh_set_now(struct mesh *m, uint64_t now_us)
{
    m->now = now_us;
}

uint64_t mesh_now(const struct mesh *m)
{
    return m->now;
}

long mesh_run(struct mesh *m)
{
    long n = 0;
    static struct pkt cur;
    while (m->len && !m->overflow) {
        cur = m->q[m->head];
        m->head = (m->head + 1) % m->cap;
        m->len--;
        uint32_t dst = (uint32_t)cur.data[16] << 24 | (uint32_t)cur.data[17] << 16 |
                       (uint32_t)cur.data[18] << 8 | cur.data[19];
        int node = (int)(dst - mesh_addr(0));
        if (node >= 0 && node < m->n)
            ss_stack_input(m->st[node], m->now, cur.data, cur.len);
        n++;
    }
    return m->overflow ? -1 : n;
}
