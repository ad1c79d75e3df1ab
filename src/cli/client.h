/* Shared by the authenticated clients (exec, put, get, ls). */
#ifndef SS_CLI_CLIENT_H
#define SS_CLI_CLIENT_H

/* Connect to HOST PORT (blocking socket), load the key and run the mutual
 * handshake. Returns the fd, or -1 after printing why. */
int cli_connect_auth(const char *host, const char *port, const char *keyfile);

#endif
