/* exec: run a command on a server after mutual authentication.
 *
 * Wire (after the auth handshake, docs/protocols.md "exec"): be32-framed
 * messages whose first payload byte is the type:
 *
 *   client -> server
 *     0x10 REQUEST    flags u8 (bit 0: run ARG with the shell), then the
 *                     arguments, each NUL-terminated
 *     0x11 STDIN      bytes for the command's stdin
 *     0x12 STDIN_EOF  (empty) close the command's stdin
 *   server -> client
 *     0x01 STDOUT     bytes the command wrote to stdout
 *     0x02 STDERR     bytes it wrote to stderr (each in order as produced)
 *     0x03 EXIT       be32 exit status; last message
 *     0x04 SIGNAL     be32 signal number that ended it; last message
 *     0x05 ERROR      text (cannot run, timed out); EXIT/SIGNAL follows
 *
 * The command runs in its own process group; when the client goes away or
 * the timeout fires, the whole group is killed (SIGKILL).
 *
 * --compat tutorial (ss_exec_compat_service): the classic tutorial's
 * unauthenticated protocol: the client sends a command line (one recv of at
 * most 1024 bytes); the server runs it with the shell and replies with a
 * little-endian 32-bit length and stderr if non-empty, else stdout; repeat
 * until the client closes.
 */
#ifndef SOCKSTACK_EXEC_H
#define SOCKSTACK_EXEC_H

#include <stdbool.h>

#include "sockstack/auth.h"
#include "sockstack/dial.h"
#include "sockstack/server.h"

#include "sockstack/api.h"
SS_API_BEGIN

enum ss_exec_msg {
    SS_EXEC_STDOUT = 0x01,
    SS_EXEC_STDERR = 0x02,
    SS_EXEC_EXIT = 0x03,
    SS_EXEC_SIGNAL = 0x04,
    SS_EXEC_ERROR = 0x05,
    SS_EXEC_REQUEST = 0x10,
    SS_EXEC_STDIN = 0x11,
    SS_EXEC_STDIN_EOF = 0x12,
};

enum { SS_EXEC_FLAG_SHELL = 1 };

/* Service settings: pass as ss_server_opts.svc_ctx. */
typedef struct ss_exec_opts {
    const char *shell;     /* default "/bin/sh" */
    unsigned timeout_ms;   /* 0: no limit */
} ss_exec_opts;

/* The framed exec service (event style; wrap it with ss_authsvc, mutual). */
const ss_service *ss_exec_service(void);
/* The tutorial-compatible service (event style, no authentication): a
 * command runs on the connection's loop like the framed service's, so
 * other connections are served meanwhile. */
const ss_service *ss_exec_compat_service(void);

/* Client: on a connected, authenticated stream (any backend, TLS or not;
 * it waits only in st's loop), run argv (argc == 1: by the shell, like
 * ssh), forward in_fd (until EOF; -1: none) as stdin, write the command's
 * stdout/stderr to out_fd/err_fd as they arrive. *status gets the exit
 * code, or 128+N for signal N. The server's ERROR text, if any, goes into
 * err_msg (the caller's buffer, err_cap bytes; "" when none).
 * Returns 0, SS_EPEERPROTO, SS_EFRAMESIZE, -ECONNRESET or a negative errno. */
int ss_exec_client_run(ss_stream *st, int argc, char *const argv[], int in_fd,
                       int out_fd, int err_fd, int *status, char *err_msg,
                       size_t err_cap);

SS_API_END

#endif
