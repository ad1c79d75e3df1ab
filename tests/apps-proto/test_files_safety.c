/* End to end: the files service against hostile or racing clients (issue
 * 13): two uploads to one name, links planted in the root, FIFOs, names and
 * sizes over the limits, stale partial files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "prun.h"

TestSuite(files_safety, .init = prun_setup, .fini = prun_teardown, .timeout = 120);

static char root[256];

static void files_server(struct th_proc *srv, char port[8], char *const extra[])
{
    snprintf(root, sizeof root, "%s/root", dir);
    cr_assert_eq(mkdir(root, 0755), 0);
    char *args[24] = {"files", "--root", root, "--key-file", keyf};
    int n = 5;
    for (int i = 0; extra && extra[i] && n < 22; i++)
        args[n++] = extra[i];
    args[n] = NULL;
    serve(srv, port, args);
}

static void write_file(const char *path, const void *p, size_t n)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    cr_assert_eq(write(fd, p, n), (ssize_t)n);
    close(fd);
}


static void fill(uint8_t *p, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rand_r(&seed) >> 5);
}

/* The start of a python files client: argv port keyfile name ...; the
 * mutual handshake (the server's proof is read, not checked: the server is
 * ours), then recvall(n). */
#define PY_FILES_CLIENT                                                               \
    "import socket, hmac, os, sys, struct, hashlib\n"                               \
    "port, keyfile, name = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n"            \
    "key = open(keyfile, 'rb').readline().rstrip(b'\\n')\n"                          \
    "s = socket.create_connection(('127.0.0.1', port))\n"                           \
    "def recvall(n):\n"                                                             \
    "    b = b''\n"                                                                 \
    "    while len(b) < n:\n"                                                       \
    "        d = s.recv(n - len(b))\n"                                              \
    "        if not d: raise SystemExit('closed')\n"                                \
    "        b += d\n"                                                              \
    "    return b\n"                                                                \
    "cs = recvall(32)\n"                                                            \
    "s.sendall(hmac.new(key, cs, 'sha256').digest() + os.urandom(32))\n"           \
    "recvall(32)\n"

/* A files client in python that stops half way through its upload until
 * told to go on: argv port keyfile name path. Prints "half" when half the
 * data is sent, then after a line on stdin "ok" or "error TEXT". */
static const char slow_put[] =
    PY_FILES_CLIENT
    "path = sys.argv[4]\n"
    "def send(t, body): s.sendall(struct.pack('>IB', len(body) + 1, t) + body)\n"
    "def recv():\n"
    "    m = recvall(struct.unpack('>I', recvall(4))[0])\n"
    "    return m[0], m[1:]\n"
    "data = open(path, 'rb').read()\n"
    "send(0x20, struct.pack('>BQI', 0, len(data), 0o644) + name.encode())\n"
    "t, b = recv()\n"
    "if t != 0x40: print('refused ' + b.decode(), flush=True); sys.exit(0)\n"
    "half = len(data) // 2\n"
    "send(0x30, data[:half])\n"
    "print('half', flush=True)\n"
    "sys.stdin.readline()\n"
    "send(0x30, data[half:])\n"
    "send(0x31, hashlib.sha256(data).digest())\n"
    "t, b = recv()\n"
    "print('ok' if t == 0x40 else 'error ' + b[:200].decode(), flush=True)\n";

/* Issue 13 item 1: two uploads to one name at once. The first owns the
 * name until it ends; the second gets a clear refusal. The stored file is
 * exactly one of the two, and what each client was told is true. */
Test(files_safety, two_uploads_to_one_name_store_one_file_whole_and_tell_the_truth)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL);
    enum { N = 65536 };
    static uint8_t a[N], b[N];
    fill(a, N, 1);
    fill(b, N, 2);
    char pa[300], pb[300], there[300];
    snprintf(pa, sizeof pa, "%s/a", dir);
    snprintf(pb, sizeof pb, "%s/b", dir);
    snprintf(there, sizeof there, "%s/same", root);
    write_file(pa, a, N);
    write_file(pb, b, N);

    struct th_proc py;
    char *argv[] = {"python3", "-c", (char *)slow_put, port, keyf, "same", pa, NULL};
    cr_assert_eq(th_spawn(&py, argv), 0);
    char line[512];
    cr_assert(th_read_until(py.out, "half\n", line, sizeof line, 20000), "python: %s", line);

    /* The second upload, while the first is half way. */
    struct result r;
    run_cli(&r, 20000, "put", "127.0.0.1", port, pb, "same", "--key-file", keyf, NULL);
    bool second_ok = r.status == 0;
    cr_assert_eq(r.status, 1, "the second upload must be refused while the first runs: %s",
                 r.err);
    cr_assert(strstr(r.err, "another upload to this name is in progress") != NULL, "%s", r.err);
    result_free(&r);

    cr_assert_eq(write(py.in, "\n", 1), 1);
    cr_assert(th_read_until(py.out, "\n", line, sizeof line, 20000));
    bool first_ok = strcmp(line, "ok\n") == 0;
    cr_assert(first_ok, "the first upload: %s", line);
    cr_assert_eq(th_wait(&py, 10000), 0);
    th_close_fds(&py);

    size_t len;
    char *got = th_read_file(there, &len);
    cr_assert_not_null(got);
    bool is_a = len == N && !memcmp(got, a, N), is_b = len == N && !memcmp(got, b, N);
    free(got);
    cr_assert(is_a || is_b, "the stored file is a mix of both uploads");
    cr_assert(is_a == first_ok && is_b == second_ok, "a client was told something untrue");
    /* Nothing left beside it: no partial file, no lock file. */
    char p[320];
    snprintf(p, sizeof p, "%s/.same.sockstack-part", root);
    cr_assert_neq(access(p, F_OK), 0);
    snprintf(p, sizeof p, "%s/.same.sockstack-lock", root);
    cr_assert_neq(access(p, F_OK), 0);
    /* And the name is free again (--force: it exists now). */
    run_cli(&r, 20000, "put", "127.0.0.1", port, pb, "same", "--key-file", keyf, "--force",
            NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    got = th_read_file(there, &len);
    cr_assert(len == N && !memcmp(got, b, N));
    free(got);
    stop(&srv);
}

/* Issue 13 item 4: opening a FIFO used to wait for a writer, and with it
 * the whole (single-threaded) server. */
Test(files_safety, get_of_a_fifo_is_refused_and_the_server_keeps_serving)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL);
    char fifo[300], back[300], src[300];
    snprintf(fifo, sizeof fifo, "%s/pipe", root);
    cr_assert_eq(mkfifo(fifo, 0644), 0);
    snprintf(back, sizeof back, "%s/back", dir);
    struct result r;
    run_cli(&r, 15000, "get", "127.0.0.1", port, "pipe", back, "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 1, "get of a FIFO: %s", r.err);
    cr_assert(strstr(r.err, "server: pipe: not a regular file") != NULL, "%s", r.err);
    result_free(&r);
    cr_assert_neq(access(back, F_OK), 0, "nothing kept for a refused get");
    /* Another client is served. */
    snprintf(src, sizeof src, "%s/small", dir);
    write_file(src, "hello\n", 6);
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "small", "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    run_cli(&r, 15000, "ls", "127.0.0.1", port, "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "small") != NULL, "%s", r.out);
    result_free(&r);
    stop(&srv);
}

/* Issue 13 item 5: a hard link planted under the partial file's name must
 * not let an upload write to the file it points at (outside the root). */
Test(files_safety, a_hard_linked_part_file_never_reaches_the_file_outside)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL);
    char outside[300], part[320], src[300], there[300];
    snprintf(outside, sizeof outside, "%s/precious", dir);
    snprintf(part, sizeof part, "%s/.h.sockstack-part", root);
    snprintf(src, sizeof src, "%s/upload", dir);
    snprintf(there, sizeof there, "%s/h", root);
    write_file(outside, "precious contents\n", 18);
    write_file(src, "the upload, which is longer than the precious file\n", 51);
    cr_assert_eq(link(outside, part), 0);
    struct result r;
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "h", "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    size_t len;
    char *got = th_read_file(outside, &len);
    cr_assert(len == 18 && !memcmp(got, "precious contents\n", 18),
              "the file outside the root was written through the link");
    free(got);
    got = th_read_file(there, &len);
    cr_assert(len == 51 && !memcmp(got, "the upload", 10));
    free(got);
    /* A resumed upload does not reuse a linked partial file either. */
    cr_assert_eq(link(outside, part), 0);
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "h", "--key-file", keyf, "--resume",
            "--force", NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "h: the partial file has other links: not used") != NULL, "%s",
              r.err);
    result_free(&r);
    got = th_read_file(outside, &len);
    cr_assert(len == 18 && !memcmp(got, "precious contents\n", 18));
    free(got);
    stop(&srv);
}

/* Issue 13 item 5: a name of 1,025 bytes whose first 1,023 spell "f"
 * ("./" 511 times, then "f") is refused, not stored as f. */
Test(files_safety, a_name_over_the_limit_is_refused_not_cut)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL);
    char name[1100] = "", src[300], f[300];
    for (int i = 0; i < 511; i++)
        strcat(name, "./");
    strcat(name, "fgh");
    cr_assert_eq(strlen(name), 1025);
    snprintf(src, sizeof src, "%s/small", dir);
    write_file(src, "x\n", 2);
    struct result r;
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, name, "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "(1025 bytes, more than 1023): refused: File name too long") != NULL,
              "%s", r.err);
    result_free(&r);
    snprintf(f, sizeof f, "%s/f", root);
    cr_assert_neq(access(f, F_OK), 0, "stored under a cut name");
    stop(&srv);
}

/* A PUT announcing `size` bytes; prints the reply's type and text. argv:
 * port keyfile name size. */
static const char announce_put[] =
    PY_FILES_CLIENT
    "size = int(sys.argv[4])\n"
    "s.sendall(struct.pack('>IBBQI', 14 + len(name), 0x20, 0, size, 0o644) + name.encode())\n"
    "m = recvall(struct.unpack('>I', recvall(4))[0])\n"
    "print('%02x %s' % (m[0], m[1:].decode(errors='replace')))\n";

static void announce(struct result *r, const char *port, const char *name, const char *size)
{
    char *argv[] = {"python3", "-c", (char *)announce_put, (char *)port, keyf, (char *)name,
                    (char *)size, NULL};
    run_argv(argv, NULL, 0, 20000, r, NULL);
    cr_assert_eq(r->status, 0, "%s", r->err);
}

/* Issue 13 item 5: 2^63 bytes is refused at once, by the size limit; the
 * quota counts what the root holds. */
Test(files_safety, size_limit_and_quota_refuse_before_any_data)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, (char *[]){"--quota", "100000", NULL});
    struct result r;
    announce(&r, port, "huge", "9223372036854775808");
    cr_assert_str_eq(r.out, "41 huge: larger than the server's limit of 1099511627776 bytes: "
                            "File too large\n");
    result_free(&r);
    char src[300];
    static uint8_t buf[60000];
    fill(buf, sizeof buf, 3);
    snprintf(src, sizeof src, "%s/60k", dir);
    write_file(src, buf, sizeof buf);
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "one", "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    /* Replacing it fits (the old copy is not counted twice) ... */
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "one", "--key-file", keyf, "--force",
            NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    /* ... a second one does not. */
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "two", "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 1, "%s", r.err);
    cr_assert(strstr(r.err, "two: over the quota of 100000 bytes (60000 in use): Disk quota "
                            "exceeded") != NULL, "%s", r.err);
    result_free(&r);
    char two[300];
    snprintf(two, sizeof two, "%s/two", root);
    cr_assert_neq(access(two, F_OK), 0);
    stop(&srv);
    /* The limit is an option. */
    char small[300];
    snprintf(small, sizeof small, "%s/root", dir);
    struct th_proc s2;
    char p2[8];
    serve(&s2, p2, (char *[]){"files", "--root", small, "--key-file", keyf, "--max-size", "1K",
                              NULL});
    announce(&r, p2, "k", "1025");
    cr_assert_str_eq(r.out, "41 k: larger than the server's limit of 1024 bytes: "
                            "File too large\n");
    result_free(&r);
    stop(&s2);
}

/* Issue 13 item 5: a partial file left unchanged longer than --part-expire
 * goes at the next upload to its directory; a recent one stays. */
Test(files_safety, stale_partial_files_expire)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, (char *[]){"--part-expire", "3600", NULL});
    char old[300], recent[300], src[300];
    snprintf(old, sizeof old, "%s/.old.sockstack-part", root);
    snprintf(recent, sizeof recent, "%s/.recent.sockstack-part", root);
    write_file(old, "stale", 5);
    write_file(recent, "fresh", 5);
    struct timespec two_hours_ago[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
    cr_assert_eq(utimensat(AT_FDCWD, old, two_hours_ago, 0), 0);
    snprintf(src, sizeof src, "%s/small", dir);
    write_file(src, "x\n", 2);
    struct result r;
    run_cli(&r, 15000, "put", "127.0.0.1", port, src, "new", "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    cr_assert_neq(access(old, F_OK), 0, "the stale partial file is still there");
    cr_assert_eq(access(recent, F_OK), 0, "a recent partial file was removed");
    stop(&srv);
}

/* Every name in directory d but . and .., sorted, one space apart. */
static void listing(const char *d, char *out, size_t cap)
{
    struct dirent **names;
    int n = scandir(d, &names, NULL, alphasort);
    cr_assert_geq(n, 0, "%s: %s", d, strerror(errno));
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (strcmp(names[i]->d_name, ".") && strcmp(names[i]->d_name, ".."))
            snprintf(out + strlen(out), cap - strlen(out), "%s%s", out[0] ? " " : "",
                     names[i]->d_name);
        free(names[i]);
    }
    free(names);
}

/* Issue 13 item 5: expiry runs on the server's own timer. An upload
 * interrupted half way keeps its partial file (for --resume); once it is
 * older than --part-expire it goes with no further request at all. */
Test(files_safety, an_interrupted_uploads_partial_file_expires_on_the_servers_timer)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, (char *[]){"--part-expire", "2", NULL});
    char src[300], sub[300], line[4096], names[512];
    snprintf(src, sizeof src, "%s/big", dir);
    snprintf(sub, sizeof sub, "%s/sub", root);
    cr_assert_eq(mkdir(sub, 0755), 0);
    enum { N = 65536 };
    static uint8_t data[N];
    fill(data, N, 3);
    write_file(src, data, N);
    struct th_proc py;
    char *argv[] = {"python3", "-c", (char *)slow_put, port, keyf, "sub/big", src, NULL};
    cr_assert_eq(th_spawn(&py, argv), 0);
    cr_assert(th_read_until(py.out, "half\n", line, sizeof line, 20000), "python: %s", line);
    th_stop(&py, SIGKILL, 5000);
    th_close_fds(&py);
    /* Nothing is asked of the server from here on. */
    bool removed = th_read_until(srv.err, "removed .big.sockstack-part: partial file "
                                 "unchanged for more than 2 s\n", line, sizeof line, 30000);
    cr_assert(removed, "server log: %s", line);
    listing(sub, names, sizeof names);
    cr_assert_str_eq(names, "");
    listing(root, names, sizeof names);
    cr_assert_str_eq(names, "sub");
    stop(&srv);
}
