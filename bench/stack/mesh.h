/* mesh: N user-space stacks joined by an in-memory wire with no delay and
 * no loss, routed by destination address (10.0.0.1 + node). Every packet
 * a stack outputs is queued and delivered in order by mesh_run(). For
 * tests and benchmarks of the stack at scale (many connections, several
 * client addresses); not library code. */
#ifndef SS_MESH_H
#define SS_MESH_H

#include <stddef.h>
#include <stdint.h>

#include "sockstack/stack.h"

#define MESH_NODES_MAX 16

struct mesh;

/* Nodes with the default stack configuration as tweak(cfg) leaves it;
 * NULL on failure. */
struct mesh *mesh_new(int nodes, void (*tweak)(int node, struct ss_stack_cfg *cfg));
void mesh_free(struct mesh *m);
ss_stack *mesh_stack(struct mesh *m, int node);
uint32_t mesh_addr(int node);
/* Deliver queued packets until none is left; packets delivered, or -1 if
 * the queue overflowed (a packet was lost: a harness failure). */
long mesh_run(struct mesh *m);
/* Virtual time passed to the stacks (µs); mesh_run does not advance it. */
void mesh_set_now(struct mesh *m, uint64_t now_us);
uint64_t mesh_now(const struct mesh *m);

#endif
