/* Connect and authenticate for the exec/put/get/ls clients. */
#include "cli/client.h"

#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/serve_proto.h"
#include "sockstack/auth.h"
#include "sockstack/err.h"
#include "sockstack/sock.h"

int cli_connect_auth(const char *host, const char *port, const char *keyfile)
{
    ss_auth_key key;
    if (cli_load_key(keyfile, &key) < 0)
        return -1;
    ss_addr addrs[8];
    int n = ss_addr_resolve(host, port, AF_UNSPEC, SS_STREAM, false, addrs, 8);
    if (n < 0) {
        cli_error("%s port %s: %s", host, port, ss_strerror(n));
        return -1;
    }
    int fd = -1, err = 0;
    for (int i = 0; i < n && fd < 0; i++) {
        fd = socket(addrs[i].sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = -errno;
            continue;
        }
        if (connect(fd, (struct sockaddr *)&addrs[i].sa, addrs[i].len) < 0) {
            err = -errno;
            close(fd);
            fd = -1;
        }
    }
    if (fd < 0) {
        cli_error("cannot connect to %s port %s: %s", host, port, ss_strerror(err));
        ss_auth_key_clear(&key);
        return -1;
    }
    ss_auth a;
    int rc = ss_auth_init(&a, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &key, NULL);
    if (!rc)
        rc = ss_auth_run_fd(&a, fd, SS_AUTH_TIMEOUT_SECS * 1000);
    ss_auth_key_clear(&key);
    if (rc == SS_EAUTH)
        cli_error("%s port %s did not prove it knows the key: not the real server "
                  "(or a different key); nothing was sent", host, port);
    else if (rc == -ECONNRESET)
        cli_error("%s port %s closed the connection during authentication "
                  "(wrong key, or not a sockstack service)", host, port);
    else if (rc == -ETIMEDOUT)
        cli_error("%s port %s: authentication timed out", host, port);
    else if (rc < 0)
        cli_error("%s port %s: authentication: %s", host, port, ss_strerror(rc));
    if (rc < 0) {
        close(fd);
        return -1;
    }
    cli_debug("authenticated %s port %s (mutual)", host, port);
    return fd;
}
