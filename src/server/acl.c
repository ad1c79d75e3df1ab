/* Admission: the allow/deny lists and the per-address cap, the checks
 * made before a handler sees a byte. */
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/server_int.h"
#include "sockstack/err.h"

#include <errno.h>

int ss__acl_check(const ss_cidr *allow, size_t n_allow, const ss_cidr *deny,
                  size_t n_deny, const ss_addr *peer)
{
    int fam = peer->sa.ss_family;
    if (fam != AF_INET && fam != AF_INET6)
        return 0; /* Unix peers have no address to match */
    for (size_t i = 0; i < n_deny; i++)
        if (ss_cidr_match(&deny[i], peer))
            return SS_EDENIED;
    if (n_allow == 0)
        return 0;
    for (size_t i = 0; i < n_allow; i++)
        if (ss_cidr_match(&allow[i], peer))
            return 0;
    return SS_EDENIED;
}

/* (family, 16 bytes) of an IP peer; false for Unix and other peers. */
static bool peer_key(const ss_addr *peer, uint8_t key[17])
{
    memset(key, 0, 17);
    if (peer->sa.ss_family == AF_INET) {
        key[0] = AF_INET;
        memcpy(key + 1, &((const struct sockaddr_in *)(const void *)&peer->sa)->sin_addr, 4);
        return true;
    }
    if (peer->sa.ss_family == AF_INET6) {
        const struct in6_addr *a =
            &((const struct sockaddr_in6 *)(const void *)&peer->sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a)) {
            key[0] = AF_INET;
            memcpy(key + 1, a->s6_addr + 12, 4);
        } else {
            key[0] = AF_INET6;
            memcpy(key + 1, a->s6_addr, 16);
        }
        return true;
    }
    return false;
}

static size_t peer_hash(const uint8_t key[17])
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (int i = 0; i < 17; i++)
        h = (h ^ key[i]) * 16777619u;
    return h % SS__PEER_BUCKETS;
}

int ss__peer_take(ss_server *srv, const ss_addr *peer, size_t *open)
{
    uint8_t key[17];
    *open = 0;
    if (!srv->o.max_per_addr || !peer_key(peer, key))
        return 0;
    int rc = 0;
    pthread_mutex_lock(&srv->peer_mu);
    struct peer_count **pp = &srv->peer_tab[peer_hash(key)], *p = *pp;
    while (p && memcmp(p->key, key, 17))
        p = p->next;
    if (!p && (p = calloc(1, sizeof *p)) != NULL) {
        memcpy(p->key, key, 17);
        p->next = *pp;
        *pp = p;
    }
    if (!p) {
        rc = -ENOMEM;
    } else if (p->n >= srv->o.max_per_addr) {
        *open = p->n;
        rc = SS_ELIMIT;
    } else {
        *open = p->n++;
    }
    pthread_mutex_unlock(&srv->peer_mu);
    return rc;
}

void ss__peer_put(ss_server *srv, const ss_addr *peer)
{
    uint8_t key[17];
    if (!srv->o.max_per_addr || !peer_key(peer, key))
        return;
    pthread_mutex_lock(&srv->peer_mu);
    struct peer_count **pp = &srv->peer_tab[peer_hash(key)];
    while (*pp && memcmp((*pp)->key, key, 17))
        pp = &(*pp)->next;
    if (*pp && --(*pp)->n == 0) {
        struct peer_count *gone = *pp;
        *pp = gone->next;
        free(gone);
    }
    pthread_mutex_unlock(&srv->peer_mu);
}

void ss__peer_free(ss_server *srv)
{
    for (size_t i = 0; i < SS__PEER_BUCKETS; i++)
        while (srv->peer_tab[i]) {
            struct peer_count *p = srv->peer_tab[i];
            srv->peer_tab[i] = p->next;
            free(p);
        }
}
