/* Helpers for the proto end-to-end tests: a temp dir with a key, running
 * the CLI and collecting its output, starting and stopping servers. */
#ifndef SS_TEST_PRUN_H
#define SS_TEST_PRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include <openssl/evp.h>

#include "harness.h"

extern char dir[128], keyf[160];

/* What a finished process left. */
struct result {
    int status; /* exit code, or 128+N for a signal, -1 on timeout */
    char *out, *err;
    size_t out_len, err_len;
};

/* mkdtemp + `sockstack keygen`; rm -rf. */
void prun_setup(void);
void prun_teardown(void);
void result_free(struct result *r);
long now_ms(void);
/* Run argv with `in` on stdin; collect stdout/stderr (stdout hashed instead
 * of kept when sha is not NULL). */
void run_argv(char *const argv[], const char *in, size_t in_len, int timeout_ms,
              struct result *r, EVP_MD_CTX *sha);
/* python3 -c SCRIPT ARG1 ARG2 (arg2 may be NULL), no stdin, 20 s at most. */
void python(struct result *r, const char *script, const char *arg1, const char *arg2);
/* sockstack ARGS... (NULL-terminated), no stdin. */
void run_cli(struct result *r, int timeout_ms, ...);
/* Start `sockstack serve ARGS --bind 127.0.0.1 --port 0`; port as text. */
void serve(struct th_proc *p, char port[8], char *const args[]);
/* SIGTERM and check a clean exit. */
void stop(struct th_proc *p);
/* SIGTERM and return the wait status (the caller reads its stderr). */
int stop_status(struct th_proc *p);
/* Process pid no longer exists within ms (polled every 20 ms). */
bool gone_within(pid_t pid, int ms);
/* Everything until EOF or timeout, NUL-terminated (free it). */
char *read_text(int fd, int timeout_ms);

#endif
