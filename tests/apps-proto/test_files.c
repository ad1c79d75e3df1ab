/* End to end: sockstack serve files with put/get/ls. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "harness.h"
#include "prun.h"

TestSuite(files, .init = prun_setup, .fini = prun_teardown, .timeout = 180);

static char root[256];

/* A served root under the test dir, and a server on it. */
static void files_server(struct th_proc *srv, char port[8], const char *rootdir, bool verbose)
{
    if (!rootdir) {
        snprintf(root, sizeof root, "%s/root", dir);
        cr_assert_eq(mkdir(root, 0755), 0);
        rootdir = root;
    }
    if (verbose)
        serve(srv, port, (char *[]){"files", "--root", (char *)rootdir, "--key-file", keyf,
                                    "--verbose", NULL});
    else
        serve(srv, port, (char *[]){"files", "--root", (char *)rootdir, "--key-file", keyf, NULL});
}

static void sha_file(const char *path, uint8_t md[32])
{
    int fd = open(path, O_RDONLY);
    cr_assert_geq(fd, 0, "%s: %s", path, strerror(errno));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_DigestInit_ex(c, EVP_sha256(), NULL);
    static uint8_t buf[1 << 20];
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0)
        EVP_DigestUpdate(c, buf, (size_t)n);
    unsigned l = 32;
    EVP_DigestFinal_ex(c, md, &l);
    EVP_MD_CTX_free(c);
    close(fd);
}

static void assert_same(const char *a, const char *b)
{
    uint8_t x[32], y[32];
    struct stat sa, sb;
    cr_assert_eq(stat(a, &sa), 0, "%s missing", a);
    cr_assert_eq(stat(b, &sb), 0, "%s missing", b);
    cr_assert_eq(sa.st_size, sb.st_size, "%s and %s sizes differ", a, b);
    sha_file(a, x);
    sha_file(b, y);
    cr_assert_eq(memcmp(x, y, 32), 0, "%s and %s differ", a, b);
}

static void make_random(const char *path, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0640);
    cr_assert_geq(fd, 0);
    unsigned seed = (unsigned)len;
    static uint8_t buf[65536];
    while (len) {
        size_t k = len < sizeof buf ? len : sizeof buf;
        for (size_t i = 0; i < k; i++)
            buf[i] = (uint8_t)(rand_r(&seed) >> 7);
        cr_assert_eq(write(fd, buf, k), (ssize_t)k);
        len -= k;
    }
    close(fd);
}

static void xfer(struct result *r, const char *cmd, const char *port, const char *a,
                 const char *b, bool resume)
{
    if (resume)
        run_cli(r, 120000, cmd, "127.0.0.1", port, a, b, "--key-file", keyf, "--resume", NULL);
    else
        run_cli(r, 120000, cmd, "127.0.0.1", port, a, b, "--key-file", keyf, NULL);
}

/* xfer that must succeed. */
static void xfer_ok(const char *cmd, const char *port, const char *a, const char *b, bool resume)
{
    struct result r;
    xfer(&r, cmd, port, a, b, resume);
    cr_assert_eq(r.status, 0, "%s %s: %s", cmd, a, r.err);
    result_free(&r);
}

Test(files, empty_small_and_mode_round_trip_and_ls)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL, false);
    char src[300], back[300], there[300];
    struct result r;
    const size_t sizes[] = {0, 1, 5000, 262144, 262145};
    for (size_t i = 0; i < 5; i++) {
        snprintf(src, sizeof src, "%s/src%zu", dir, i);
        snprintf(there, sizeof there, "%s/f%zu", root, i);
        snprintf(back, sizeof back, "%s/back%zu", dir, i);
        make_random(src, sizes[i]);
        char name[16];
        snprintf(name, sizeof name, "f%zu", i);
        xfer(&r, "put", port, src, name, false);
        cr_assert_eq(r.status, 0, "put %zu: %s", sizes[i], r.err);
        result_free(&r);
        assert_same(src, there);
        struct stat st;
        stat(there, &st);
        cr_assert_eq(st.st_mode & 0777, 0640, "mode carried over");
        xfer(&r, "get", port, name, back, false);
        cr_assert_eq(r.status, 0, "get %zu: %s", sizes[i], r.err);
        result_free(&r);
        assert_same(src, back);
    }
    run_cli(&r, 20000, "ls", "127.0.0.1", port, "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    cr_assert(strstr(r.out, "f 0640       262145 ") != NULL, "%s", r.out);
    cr_assert(strstr(r.out, "f 0640            0 ") != NULL, "%s", r.out);
    result_free(&r);
    /* No temporary files left behind anywhere. */
    run_argv((char *[]){"sh", "-c", "find \"$0\" -name '*.sockstack-part' | wc -l", dir, NULL},
             NULL, 0, 10000, &r, NULL);
    cr_assert_str_eq(r.out, "0\n");
    result_free(&r);
    stop(&srv);
}

Test(files, one_gib_sparse_file_put_and_get_with_equal_sha256)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL, false);
    char src[300], there[300], back[300];
    snprintf(src, sizeof src, "%s/sparse", dir);
    snprintf(there, sizeof there, "%s/sparse", root);
    snprintf(back, sizeof back, "%s/sparse.back", dir);
    /* 1 GiB with data at the start, the middle and the end, holes between. */
    int fd = open(src, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_eq(ftruncate(fd, 1L << 30), 0);
    const char *marks[] = {"start", "middle", "end"};
    off_t at[] = {0, 1L << 29, (1L << 30) - 3};
    for (int i = 0; i < 3; i++)
        cr_assert_eq(pwrite(fd, marks[i], i == 2 ? 3 : strlen(marks[i]), at[i]),
                     (ssize_t)(i == 2 ? 3 : strlen(marks[i])));
    close(fd);
    xfer_ok("put", port, src, "sparse", false);
    xfer_ok("get", port, "sparse", back, false);
    assert_same(src, there);
    assert_same(src, back);
    struct stat st;
    stat(there, &st);
    cr_assert_lt(st.st_blocks * 512, 1L << 24, "the copy stayed sparse (%ld blocks)",
                 (long)st.st_blocks);
    stop(&srv);
}

Test(files, resume_after_a_killed_put_completes_and_verifies)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL, true);
    char src[300], part[300], there[300];
    snprintf(src, sizeof src, "%s/big", dir);
    snprintf(part, sizeof part, "%s/.big.sockstack-part", root);
    snprintf(there, sizeof there, "%s/big", root);
    make_random(src, 96u << 20);
    struct th_proc cl;
    char *argv[] = {(char *)th_sockstack(), "put", "127.0.0.1", port, src, "big",
                    "--key-file", keyf, NULL};
    cr_assert_eq(th_spawn(&cl, argv), 0);
    /* Kill the client once part of the file has arrived. */
    struct stat st = {0};
    long end = now_ms() + 30000;
    while (now_ms() < end && (stat(part, &st) < 0 || st.st_size < (1 << 20)))
        usleep(1000);
    cr_assert_geq(st.st_size, 1 << 20, "transfer never started");
    th_stop(&cl, SIGKILL, 5000);
    th_close_fds(&cl);
    cr_assert_neq(access(there, F_OK), 0, "no file under the final name after a kill");
    /* Wait until the server noticed, so the part file is final. */
    char buf[4096];
    size_t got = 0;
    end = now_ms() + 10000;
    while (now_ms() < end && got < sizeof buf - 1) {
        struct pollfd pf = {srv.err, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = read(srv.err, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
        if (strstr(buf, "kept for --resume"))
            break;
    }
    cr_assert(strstr(buf, "kept for --resume") != NULL, "%s", buf);
    struct stat ps;
    cr_assert_eq(stat(part, &ps), 0);
    cr_assert_lt(ps.st_size, 96 << 20, "the kill came before the end");
    xfer_ok("put", port, src, "big", true);
    assert_same(src, there);
    cr_assert_neq(access(part, F_OK), 0, "part file renamed away");
    /* The server's log says where it resumed: not from 0. */
    got = 0;
    end = now_ms() + 5000;
    buf[0] = '\0';
    while (now_ms() < end && !strstr(buf, "stored big")) {
        struct pollfd pf = {srv.err, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = read(srv.err, buf + got, sizeof buf - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        buf[got] = '\0';
    }
    char *from = strstr(buf, "put big (");
    cr_assert_not_null(from, "%s", buf);
    unsigned long long total, off;
    cr_assert_eq(sscanf(from, "put big (%llu bytes, from %llu)", &total, &off), 2);
    cr_assert_eq(off, (unsigned long long)ps.st_size, "resumed where the part file ended");
    stop(&srv);
}

Test(files, traversal_attempts_are_refused)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL, false);
    char outside[300], link[300], src[300];
    snprintf(outside, sizeof outside, "%s/outside", dir);
    snprintf(src, sizeof src, "%s/src", dir);
    make_random(outside, 100);
    make_random(src, 100);
    snprintf(link, sizeof link, "%s/escape", root);
    cr_assert_eq(symlink(dir, link), 0);
    const char *names[] = {"../outside", "/etc/passwd", "escape/outside", "a/../../outside",
                           "escape/new"};
    struct result r;
    for (int i = 0; i < 5; i++) {
        if (i < 4) {
            char back[300];
            snprintf(back, sizeof back, "%s/back%d", dir, i);
            xfer(&r, "get", port, names[i], back, false);
            cr_assert_eq(r.status, 1, "get %s", names[i]);
            cr_assert(strstr(r.err, "path leaves the served root") != NULL, "%s", r.err);
            cr_assert_neq(access(back, F_OK), 0);
            result_free(&r);
        }
        xfer(&r, "put", port, src, names[i], false);
        cr_assert_eq(r.status, 1, "put %s", names[i]);
        cr_assert(strstr(r.err, "path leaves the served root") != NULL, "%s", r.err);
        result_free(&r);
    }
    char newf[300];
    snprintf(newf, sizeof newf, "%s/new", dir);
    cr_assert_neq(access(newf, F_OK), 0, "nothing written outside the root");
    run_cli(&r, 20000, "ls", "127.0.0.1", port, "escape", "--key-file", keyf, NULL);
    cr_assert_eq(r.status, 1);
    result_free(&r);
    stop(&srv);
}

Test(files, full_filesystem_is_reported_and_leaves_no_partial_file)
{
    if (!th_is_root())
        cr_skip_test("needs root: mounts a small tmpfs");
    char mnt[300];
    snprintf(mnt, sizeof mnt, "%s/small", dir);
    cr_assert_eq(mkdir(mnt, 0755), 0);
    cr_assert_eq(mount("tmpfs", mnt, "tmpfs", 0, "size=1m"), 0, "%s", strerror(errno));
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, mnt, false);
    char src[300];
    snprintf(src, sizeof src, "%s/tobig", dir);
    make_random(src, 4u << 20);
    struct result r;
    xfer(&r, "put", port, src, "tobig", false);
    int status = r.status;
    char err[1024];
    snprintf(err, sizeof err, "%s", r.err);
    result_free(&r);
    run_argv((char *[]){"sh", "-c", "ls -A \"$0\" | wc -l", mnt, NULL}, NULL, 0, 10000, &r, NULL);
    char left[64];
    snprintf(left, sizeof left, "%s", r.out);
    result_free(&r);
    stop(&srv);
    umount2(mnt, MNT_DETACH);
    cr_assert_eq(status, 1);
    cr_assert(strstr(err, "No space left on device") != NULL, "%s", err);
    cr_assert_str_eq(left, "0\n", "nothing left on the full filesystem");
}

/* get --resume: the client's partial file is continued, and a partial file
 * with wrong bytes is caught by the end-to-end SHA-256 and not kept. */
Test(files, get_resume_continues_and_a_corrupt_prefix_is_detected)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL, true);
    char there[300], back[300], part[300];
    snprintf(there, sizeof there, "%s/data", root);
    snprintf(back, sizeof back, "%s/data.back", dir);
    snprintf(part, sizeof part, "%s/.data.back.sockstack-part", dir);
    make_random(there, 3000000);
    /* A genuine prefix of 1000000 bytes. */
    int in = open(there, O_RDONLY), out = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    static uint8_t buf[1000000];
    cr_assert_eq(read(in, buf, sizeof buf), (ssize_t)sizeof buf);
    cr_assert_eq(write(out, buf, sizeof buf), (ssize_t)sizeof buf);
    close(out);
    struct result r;
    run_cli(&r, 120000, "get", "127.0.0.1", port, "data", back, "--key-file", keyf, "--resume",
            "--progress", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    /* Where it resumes, and a bar with the total that ends at 100%. */
    cr_assert(strstr(r.err, " get: resuming at 33% (1000000 of 3000000 bytes)\n"), "%s", r.err);
    cr_assert(strstr(r.err, "] 100% 3000000 of 3000000 bytes "), "%s", r.err);
    cr_assert(strstr(r.err, " MB/s done in "), "%s", r.err);
    result_free(&r);
    assert_same(there, back);
    cr_assert_neq(access(part, F_OK), 0);
    size_t got = 0;
    char text[8192] = "";
    long end = now_ms() + 5000;
    while (now_ms() < end && !strstr(text, "get data from ")) {
        struct pollfd pf = {srv.err, POLLIN, 0};
        if (poll(&pf, 1, 200) <= 0)
            continue;
        ssize_t n = read(srv.err, text + got, sizeof text - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        text[got] = '\0';
    }
    cr_assert(strstr(text, "get data from 1000000") != NULL, "only the rest was sent: %s", text);

    /* A corrupt prefix: same length, one byte flipped. */
    unlink(back);
    buf[12345] ^= 0xff;
    out = open(part, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_eq(write(out, buf, sizeof buf), (ssize_t)sizeof buf);
    close(out);
    close(in);
    xfer(&r, "get", port, "data", back, true);
    cr_assert_eq(r.status, 1);
    cr_assert(strstr(r.err, "SHA-256") != NULL, "%s", r.err);
    result_free(&r);
    cr_assert_neq(access(back, F_OK), 0, "a file that fails the digest is not kept");
    cr_assert_neq(access(part, F_OK), 0, "nor its partial data");
    stop(&srv);
}

/* put and get keep an existing file unless --force: exit 3, one line, the
 * file untouched; with --force it is replaced and verified. */
Test(files, put_and_get_refuse_to_replace_without_force)
{
    struct th_proc srv;
    char port[8];
    files_server(&srv, port, NULL, false);
    char a[300], b[300], there[300], back[300];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    snprintf(there, sizeof there, "%s/x", root);
    snprintf(back, sizeof back, "%s/back", dir);
    make_random(a, 5000);
    make_random(b, 7000);
    xfer_ok("put", port, a, "x", false);
    struct result r;
    xfer(&r, "put", port, b, "x", false);
    cr_assert_eq(r.status, 3, "%s", r.err);
    cr_assert_str_eq(r.err, "sockstack: put: x exists on the server; --force replaces it\n");
    result_free(&r);
    assert_same(a, there);
    xfer(&r, "put", port, b, "x", true); /* --resume alone replaces nothing either */
    cr_assert_eq(r.status, 3, "%s", r.err);
    result_free(&r);
    assert_same(a, there);
    run_cli(&r, 20000, "put", "127.0.0.1", port, b, "x", "--key-file", keyf, "--force", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    assert_same(b, there);

    /* get: the local file stays as it was. */
    xfer_ok("get", port, "x", back, false);
    assert_same(b, back);
    run_cli(&r, 20000, "put", "127.0.0.1", port, a, "x", "--key-file", keyf, "-f", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    xfer(&r, "get", port, "x", back, false);
    cr_assert_eq(r.status, 3, "%s", r.err);
    char want[400];
    snprintf(want, sizeof want, "sockstack: get: %s exists; --force replaces it\n", back);
    cr_assert_str_eq(r.err, want);
    result_free(&r);
    assert_same(b, back);
    run_cli(&r, 20000, "get", "127.0.0.1", port, "x", back, "--key-file", keyf, "--force", NULL);
    cr_assert_eq(r.status, 0, "%s", r.err);
    result_free(&r);
    assert_same(a, back);
    stop(&srv);
}
