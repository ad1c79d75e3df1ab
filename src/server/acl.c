/* Allow/deny lists: the check made before a handler sees a byte. */
#include <sys/socket.h>

#include "server/server_int.h"
#include "sockstack/err.h"

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
