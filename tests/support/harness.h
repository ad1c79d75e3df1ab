/* Test helpers shared by all test executables. */
#ifndef SS_TEST_HARNESS_H
#define SS_TEST_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Path of the sockstack CLI under test ($SOCKSTACK). */
const char *th_sockstack(void);

/* A child process with pipes to its stdin, stdout and stderr. */
struct th_proc {
    pid_t pid;
    int in, out, err; /* our ends; -1 when closed */
};

/* Start argv (argv[0] searched in PATH) with all three stdio piped. */
int th_spawn(struct th_proc *p, char *const argv[]);
/* Start `sockstack ARGS...` (NULL-terminated). */
int th_spawn_cli(struct th_proc *p, ...);
/* Read stderr until a line containing "listening on ", return its port
 * (>0), or -1 after timeout_ms. The full line goes to line (if not NULL). */
int th_wait_listening(struct th_proc *p, int timeout_ms, char *line, size_t cap);
/* Read fd until EOF or timeout; returns bytes read (malloc'd in *out). */
ssize_t th_read_all(int fd, char **out, int timeout_ms);
/* The whole file, malloc'd and NUL-terminated (its length in *len if not
 * NULL), or NULL when it cannot be opened. */
char *th_read_file(const char *path, size_t *len);
/* Send sig, then wait up to timeout_ms; returns the wait status or -1. */
int th_stop(struct th_proc *p, int sig, int timeout_ms);
/* Wait for exit up to timeout_ms; returns wait status or -1 (then kills). */
int th_wait(struct th_proc *p, int timeout_ms);
void th_close_fds(struct th_proc *p);
/* Feed len bytes of in to p's stdin (then close it) while collecting p's
 * stdout until EOF or timeout; both at once, so a process that echoes can
 * never deadlock against us. Returns bytes collected (malloc'd in *out). */
ssize_t th_exchange(struct th_proc *p, const void *in, size_t len, char **out,
                    int timeout_ms);
/* Read fd until the collected text contains needle (true) or timeout /
 * EOF (false). What was read goes to buf (NUL-terminated, cut at cap). */
bool th_read_until(int fd, const char *needle, char *buf, size_t cap,
                   int timeout_ms);
/* Write all of buf to fd (blocking; sockets with MSG_NOSIGNAL, so a gone
 * peer is -EPIPE rather than SIGPIPE). Returns 0 or -errno. */
int th_write_all(int fd, const void *buf, size_t len);
/* True when running as root (namespace/TUN tests need it). */
bool th_is_root(void);
/* rm -rf DIR when DIR is set (a test's scratch directory, at teardown). */
void th_rm_rf(const char *dir);
/* $SS_SOURCE_ROOT/rel (else ./rel): a script of the source tree, e.g. a
 * python3 peer. Static buffer, valid until the next call. */
const char *th_source_path(const char *rel);
/* Move this test's worker process into a private network namespace
 * (unshare(CLONE_NEWNET)): its devices and routes vanish with the process,
 * also when an assertion fails. Skips the test unless root; asserts the
 * unshare worked. */
void th_enter_netns(void);
/* Kill p (SIGKILL), reap it and close our ends: for a teardown that runs
 * also after a failed assertion. Safe when p never started (pid -1). */
void th_reap(struct th_proc *p);

/* One run of `sockstack ARGS...` with stdin closed. */
struct th_result {
    int status;      /* exit code, or -1 (killed, timed out) */
    char *out, *err; /* all of stdout and stderr, NUL-terminated */
};
/* args NULL-terminated; each read and the wait get up to timeout_ms. */
struct th_result th_run_cli(const char *const args[], int timeout_ms);
void th_result_free(struct th_result *r);

#endif
