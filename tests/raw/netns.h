/* Named network namespaces for the raw-socket tests: a host, two routers
 * and a second host in a line, deleted in the suite's teardown (which also
 * runs after a failed assertion).
 *
 *   h1 10.81.1.2 --- 10.81.1.1 r1 10.81.2.1 --- 10.81.2.2 r2 10.81.3.1 --- 10.81.3.2 h2
 *                                                          (r2 also routes 10.81.4.0/24,
 *                                                           where `stack up` may sit)
 * IPv6 beside it: h1 fd81:1::2 --- fd81:1::1 r1 fd81:2::1 --- fd81:2::2 r2 ... h2 fd81:3::2. */
#ifndef SS_TEST_NETNS_H
#define SS_TEST_NETNS_H

#include <stdbool.h>

enum { NS_H1, NS_R1, NS_R2, NS_H2, NS_COUNT };
extern char ns_name[NS_COUNT][32];

/* Skips the test unless root; builds the line above. */
void ns_make_line(void);
/* Deletes whatever ns_make_line made. */
void ns_teardown(void);
/* Run a shell command; assert exit 0. */
void ns_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Run a shell command (stderr to stdout), collect its output (malloc'd,
 * NUL-terminated); returns the exit status or -1. */
int ns_capture(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
