/* Redis for tests: real redis-server processes on loopback ports, each in
 * its own temporary directory with `appendonly yes`, started and stopped by
 * PID; and a Redis Cluster of 3 masters built with `redis-cli --cluster
 * create`. Tests call th_redis_require() first: it skips the test with a
 * message when redis-server or redis-cli is not installed.
 *
 * Every server is started with PR_SET_PDEATHSIG, so one left behind by a
 * crashed test worker dies with it; th_redis_cleanup() (in a .fini, which
 * Criterion runs also after a failed assertion) kills it by PID and removes
 * its directory. */
#ifndef SS_TEST_REDIS_HARNESS_H
#define SS_TEST_REDIS_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct th_redis {
    pid_t pid;        /* -1 when not running */
    int port;         /* 127.0.0.1:port (cluster bus on port + 10000) */
    bool cluster;     /* started with cluster-enabled yes */
    char dir[64];     /* temp dir: appendonly files, nodes.conf, log */
};

#define TH_REDIS_CLUSTER_N 3
struct th_redis_cluster {
    struct th_redis node[TH_REDIS_CLUSTER_N];
};

/* True when redis-server and redis-cli are on PATH. */
bool th_redis_available(void);
/* Skip the calling test (cr_skip_test) unless th_redis_available(). */
void th_redis_require(void);

/* Start redis-server on a free loopback port, in a fresh temp dir, with
 * appendonly yes (and cluster-enabled yes when cluster); returns 0 once it
 * answers PING with PONG, or -errno (the server is then stopped). */
int th_redis_start(struct th_redis *r, bool cluster);
/* Send sig (SIGTERM: clean shutdown; SIGKILL: crash) to the server's PID
 * and reap it. Returns the wait status, or -1. The dir stays. */
int th_redis_stop(struct th_redis *r, int sig);
/* Start the server again on the same port and dir (its AOF and nodes.conf
 * are reloaded); returns 0 once it answers PONG (not LOADING), or -errno. */
int th_redis_restart(struct th_redis *r);
/* Kill (SIGKILL) if running, reap, and rm -rf the dir. Safe to call twice
 * and on a zeroed struct whose pid is 0 or -1. */
void th_redis_cleanup(struct th_redis *r);

/* One command on r, argv NULL-terminated, through a plain socket. The reply
 * goes to buf (NUL-terminated): "+OK" -> "OK", "-ERR x" -> "-ERR x",
 * ":5" -> "5", bulk -> its bytes, nil -> "(nil)"; arrays are not decoded
 * (use th_redis_cli). Returns the reply's length, or -errno. */
int th_redis_query(const struct th_redis *r, char *buf, size_t cap, ...);
/* `redis-cli -p PORT ARGS...` (NULL-terminated); returns its exit status,
 * its stdout in *out (malloc'd, NUL-terminated; caller frees). */
int th_redis_cli(const struct th_redis *r, char **out, ...);

/* Three cluster-enabled servers joined by `redis-cli --cluster create
 * ... --cluster-replicas 0 --cluster-yes`; returns 0 once every node says
 * cluster_state:ok, or -errno (the servers are then cleaned up). */
int th_redis_cluster_start(struct th_redis_cluster *c);
/* Wait until every running node of c says cluster_state:ok (after a
 * restart, a reshard, ...). Returns 0 or -ETIMEDOUT. */
int th_redis_cluster_wait_ok(struct th_redis_cluster *c, int timeout_ms);
void th_redis_cluster_cleanup(struct th_redis_cluster *c);
/* Start replica (cluster-enabled) and make it a replica of c's node
 * `master` (`redis-cli --cluster add-node --cluster-slave`); returns 0 once
 * its link to the master is up, or -errno. Clean it up with
 * th_redis_cleanup. */
int th_redis_cluster_add_replica(struct th_redis_cluster *c, int master,
                                 struct th_redis *replica);

/* "redis://127.0.0.1:P" for one server, or every node of a cluster joined
 * by commas: the --cluster spec of the chat server. Writes to buf. */
const char *th_redis_spec(const struct th_redis *r, char *buf, size_t cap);
const char *th_redis_cluster_spec(const struct th_redis_cluster *c, char *buf,
                                  size_t cap);
/* The store of a chat suite that runs against both: a 3-master cluster in
 * c (cluster) or one server in r, and its spec in buf. 0 or -errno. */
int th_redis_start_store(bool cluster, struct th_redis *r, struct th_redis_cluster *c,
                         char *buf, size_t cap);

#endif
