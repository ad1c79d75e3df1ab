/* Authentication: key files, keygen, the handshake state machine on both
 * sides (one-way tutorial mode and mutual), impostors and reflection, the
 * failure throttle. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/hmac.h>

#include "sockstack/auth.h"
#include "sockstack/err.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/ss-auth-%d-XXXXXX", (int)getpid());
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(auth, .init = setup, .fini = teardown, .timeout = 30);

static void write_file(const char *path, const char *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, len), (ssize_t)len);
    cr_assert_eq(fchmod(fd, mode), 0);
    close(fd);
}

Test(auth, key_is_first_line_without_newline)
{
    char p[128];
    ss_auth_key k;
    snprintf(p, sizeof p, "%s/k", dir);
    write_file(p, "secret key\nsecond line\n", 23, 0600);
    cr_assert_eq(ss_auth_key_load(p, &k), 0);
    cr_assert_eq(k.len, 10);
    cr_assert_eq(memcmp(k.bytes, "secret key", 10), 0);
    write_file(p, "crlf\r\n", 6, 0400);
    cr_assert_eq(ss_auth_key_load(p, &k), 0);
    cr_assert_eq(k.len, 4);
    write_file(p, "no-newline", 10, 0600);
    cr_assert_eq(ss_auth_key_load(p, &k), 0);
    cr_assert_eq(k.len, 10);
    write_file(p, "\nkey on line two\n", 17, 0600);
    cr_assert_eq(ss_auth_key_load(p, &k), SS_EKEYFMT);
    static char longkey[SS_AUTH_KEY_MAX + 10];
    memset(longkey, 'a', sizeof longkey);
    write_file(p, longkey, sizeof longkey, 0600);
    cr_assert_eq(ss_auth_key_load(p, &k), SS_EKEYFMT);
    snprintf(p, sizeof p, "%s/missing", dir);
    cr_assert_eq(ss_auth_key_load(p, &k), -ENOENT);
}

Test(auth, key_readable_by_group_or_others_is_refused)
{
    char p[128];
    ss_auth_key k;
    snprintf(p, sizeof p, "%s/k", dir);
    write_file(p, "secret\n", 7, 0640);
    cr_assert_eq(ss_auth_key_load(p, &k), SS_EKEYPERM);
    write_file(p, "secret\n", 7, 0604);
    cr_assert_eq(ss_auth_key_load(p, &k), SS_EKEYPERM);
    cr_assert_str_eq(ss_strerror(SS_EKEYPERM),
                     "key file is readable or writable by group or others");
    write_file(p, "secret\n", 7, 0600);
    cr_assert_eq(ss_auth_key_load(p, &k), 0);
}

/* Issue 13 item 7: whoever can write the key file can replace the key. */
Test(auth, key_writable_by_group_or_others_is_refused)
{
    char p[128];
    ss_auth_key k;
    snprintf(p, sizeof p, "%s/k", dir);
    const mode_t modes[] = {0620, 0602, 0622, 0660, 0606, 0200 | 0020};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        write_file(p, "secret\n", 7, modes[i]);
        cr_assert_eq(ss_auth_key_load(p, &k), SS_EKEYPERM, "mode %04o was accepted",
                     (unsigned)modes[i]);
    }
    write_file(p, "secret\n", 7, 0400);
    cr_assert_eq(ss_auth_key_load(p, &k), 0, "read-only for the owner is fine");
}

Test(auth, key_owned_by_another_user_is_refused)
{
    if (geteuid() != 0)
        cr_skip_test("needs root to give the key file to another user");
    char p[128];
    ss_auth_key k;
    snprintf(p, sizeof p, "%s/k", dir);
    write_file(p, "secret\n", 7, 0600);
    cr_assert_eq(chown(p, 65534, 65534), 0);
    cr_assert_eq(ss_auth_key_load(p, &k), SS_EKEYOWNER);
    cr_assert_str_eq(ss_strerror(SS_EKEYOWNER), "key file is not owned by this user");
    cr_assert_eq(chown(p, 0, 0), 0);
    cr_assert_eq(ss_auth_key_load(p, &k), 0);
}

Test(auth, keygen_writes_64_hex_mode_0600_and_never_overwrites_unasked)
{
    char p[128];
    snprintf(p, sizeof p, "%s/new.key", dir);
    cr_assert_eq(ss_auth_keygen(p, false), 0);
    struct stat st;
    cr_assert_eq(stat(p, &st), 0);
    cr_assert_eq(st.st_mode & 0777, 0600);
    cr_assert_eq(st.st_size, 65);
    ss_auth_key k1, k2;
    cr_assert_eq(ss_auth_key_load(p, &k1), 0);
    cr_assert_eq(k1.len, 64);
    for (size_t i = 0; i < 64; i++)
        cr_assert(strchr("0123456789abcdef", k1.bytes[i]) != NULL);
    cr_assert_eq(ss_auth_keygen(p, false), -EEXIST);
    cr_assert_eq(ss_auth_key_load(p, &k2), 0);
    cr_assert_eq(memcmp(k1.bytes, k2.bytes, 64), 0, "refused keygen left the key alone");
    cr_assert_eq(ss_auth_keygen(p, true), 0);
    cr_assert_eq(ss_auth_key_load(p, &k2), 0);
    cr_assert_neq(memcmp(k1.bytes, k2.bytes, 64), 0, "--force wrote a new key");
}

/* RFC 4231 test case 2: HMAC-SHA256("Jefe", "what do ya want for nothing?"). */
Test(auth, hmac_matches_rfc4231)
{
    ss_auth_key k;
    ss_auth_key_set(&k, "Jefe", 4);
    uint8_t mac[32];
    cr_assert_eq(ss_auth_hmac(&k, "what do ya want for nothing?", 28, mac), 0);
    static const uint8_t want[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    cr_assert_eq(memcmp(mac, want, 32), 0);
}

/* Move bytes from one machine's output into the other's input, in pieces
 * of `chunk` bytes. Returns the first error or 0. */
static int pump(ss_auth *from, ss_auth *to, size_t chunk)
{
    const uint8_t *p;
    size_t n;
    while ((n = ss_auth_output(from, &p)) > 0) {
        if (n > chunk)
            n = chunk;
        ssize_t c = ss_auth_input(to, p, n);
        ss_auth_output_done(from, n);
        if (c < 0)
            return (int)c;
        cr_assert_eq((size_t)c, n);
    }
    return 0;
}

static const uint8_t CS[32] = "server-challenge-0123456789abcd";
static const uint8_t CC[32] = "client-challenge-0123456789abcd";

Test(auth, oneway_exchange_is_the_tutorial_bytes)
{
    ss_auth_key k;
    ss_auth_key_set(&k, "tutorial key", 12);
    ss_auth s, c;
    cr_assert_eq(ss_auth_init(&s, SS_AUTH_SERVER, SS_AUTH_ONEWAY, &k, CS), 0);
    cr_assert_eq(ss_auth_init(&c, SS_AUTH_CLIENT, SS_AUTH_ONEWAY, &k, NULL), 0);
    const uint8_t *p;
    cr_assert_eq(ss_auth_output(&s, &p), 32);
    cr_assert_eq(memcmp(p, CS, 32), 0, "the challenge goes out first, raw");
    cr_assert_eq(ss_auth_output(&c, &p), 0, "the client speaks only when asked");
    for (size_t chunk = 1; chunk <= 32; chunk++) {
        ss_auth_init(&s, SS_AUTH_SERVER, SS_AUTH_ONEWAY, &k, CS);
        ss_auth_init(&c, SS_AUTH_CLIENT, SS_AUTH_ONEWAY, &k, NULL);
        cr_assert_eq(pump(&s, &c, chunk), 0);
        uint8_t want[32];
        unsigned wl = 32;
        HMAC(EVP_sha256(), "tutorial key", 12, CS, 32, want, &wl);
        cr_assert_eq(ss_auth_output(&c, &p), 32);
        cr_assert_eq(memcmp(p, want, 32), 0, "answer is HMAC-SHA256(key, challenge)");
        cr_assert_eq(pump(&c, &s, chunk), 0);
        cr_assert(ss_auth_done(&s));
        cr_assert(ss_auth_done(&c));
        cr_assert_eq(ss_auth_output(&s, &p), 0, "nothing more from the server");
    }
}

Test(auth, wrong_key_fails_server_side_silently)
{
    ss_auth_key k, bad;
    ss_auth_key_set(&k, "right", 5);
    ss_auth_key_set(&bad, "wrong", 5);
    ss_auth s, c;
    ss_auth_init(&s, SS_AUTH_SERVER, SS_AUTH_ONEWAY, &k, CS);
    ss_auth_init(&c, SS_AUTH_CLIENT, SS_AUTH_ONEWAY, &bad, NULL);
    cr_assert_eq(pump(&s, &c, 32), 0);
    cr_assert_eq(pump(&c, &s, 7), SS_EAUTH);
    cr_assert(ss_auth_failed(&s));
    const uint8_t *p;
    cr_assert_eq(ss_auth_output(&s, &p), 0, "a failed server sends nothing");
    cr_assert_eq(ss_auth_input(&s, "x", 1), SS_EAUTH, "and stays failed");
}

Test(auth, mutual_exchange_and_application_bytes_left_alone)
{
    ss_auth_key k;
    ss_auth_key_set(&k, "mutual", 6);
    ss_auth s, c;
    ss_auth_init(&s, SS_AUTH_SERVER, SS_AUTH_MUTUAL, &k, CS);
    ss_auth_init(&c, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &k, CC);
    cr_assert_eq(pump(&s, &c, 32), 0);
    const uint8_t *p;
    cr_assert_eq(ss_auth_output(&c, &p), 64);
    cr_assert_eq(memcmp(p + 32, CC, 32), 0, "client's own challenge follows its answer");
    /* The answer plus application bytes in one read: only 64 consumed. */
    uint8_t buf[70];
    memcpy(buf, p, 64);
    memcpy(buf + 64, "hello!", 6);
    cr_assert_eq(ss_auth_input(&s, buf, 70), 64);
    ss_auth_output_done(&c, 64);
    cr_assert_eq(ss_auth_output(&s, &p), 32);
    uint8_t msg[24 + 64], want[32];
    memcpy(msg, "sockstack-auth-v1 server", 24);
    memcpy(msg + 24, CS, 32);
    memcpy(msg + 56, CC, 32);
    unsigned wl = 32;
    HMAC(EVP_sha256(), "mutual", 6, msg, sizeof msg, want, &wl);
    cr_assert_eq(memcmp(p, want, 32), 0, "proof = HMAC(key, label || cs || cc)");
    cr_assert_eq(pump(&s, &c, 5), 0);
    cr_assert(ss_auth_done(&s));
    cr_assert(ss_auth_done(&c));
}

/* A server without the key: it can send any challenge but not the proof. */
Test(auth, impostor_server_is_detected_by_the_client)
{
    ss_auth_key k, guess;
    ss_auth_key_set(&k, "real key", 8);
    ss_auth_key_set(&guess, "guessed", 7);
    ss_auth imp, c;
    ss_auth_init(&imp, SS_AUTH_SERVER, SS_AUTH_MUTUAL, &guess, CS);
    ss_auth_init(&c, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &k, CC);
    cr_assert_eq(pump(&imp, &c, 32), 0);
    /* The impostor does not check the answer; it just answers with junk. */
    const uint8_t *p;
    cr_assert_eq(ss_auth_output(&c, &p), 64);
    ss_auth_output_done(&c, 64);
    uint8_t junk[32] = {0};
    cr_assert_eq(ss_auth_input(&c, junk, 32), SS_EAUTH);
    cr_assert(ss_auth_failed(&c));
}

/* Reflection: the impostor takes the client's challenge cc and gets a
 * client (another connection) to answer it as if it were a server
 * challenge. That answer is HMAC(key, cc), not the labelled proof. */
Test(auth, reflected_client_answer_is_not_a_server_proof)
{
    ss_auth_key k;
    ss_auth_key_set(&k, "real key", 8);
    ss_auth victim, second;
    ss_auth_init(&victim, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &k, CC);
    cr_assert_eq(ss_auth_input(&victim, CS, 32), 32);
    const uint8_t *p;
    cr_assert_eq(ss_auth_output(&victim, &p), 64);
    uint8_t cc[32];
    memcpy(cc, p + 32, 32);
    ss_auth_output_done(&victim, 64);
    /* Second connection: the impostor sends cc as its challenge. */
    ss_auth_init(&second, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &k, NULL);
    cr_assert_eq(ss_auth_input(&second, cc, 32), 32);
    cr_assert_eq(ss_auth_output(&second, &p), 64);
    cr_assert_eq(ss_auth_input(&victim, p, 32), SS_EAUTH);
}

Test(auth, run_fd_over_a_socketpair_and_timeout)
{
    ss_auth_key k;
    ss_auth_key_set(&k, "pair", 4);
    int sv[2];
    cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    pid_t pid = fork();
    if (pid == 0) {
        ss_auth s;
        ss_auth_init(&s, SS_AUTH_SERVER, SS_AUTH_MUTUAL, &k, NULL);
        _exit(ss_auth_run_fd(&s, sv[1], 5000) == 0 ? 0 : 1);
    }
    ss_auth c;
    ss_auth_init(&c, SS_AUTH_CLIENT, SS_AUTH_MUTUAL, &k, NULL);
    cr_assert_eq(ss_auth_run_fd(&c, sv[0], 5000), 0);
    int st;
    waitpid(pid, &st, 0);
    cr_assert_eq(st, 0);
    /* A peer that never answers: the deadline ends it. */
    ss_auth s;
    ss_auth_init(&s, SS_AUTH_SERVER, SS_AUTH_ONEWAY, &k, NULL);
    cr_assert_eq(ss_auth_run_fd(&s, sv[1], 50), -ETIMEDOUT);
    close(sv[0]);
    close(sv[1]);
}

Test(auth, throttle_doubles_penalty_forgets_on_success_and_is_bounded)
{
    static ss_auth_throttle t;
    ss_auth_throttle_init(&t);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000005)};
    struct sockaddr_in6 m = {.sin6_family = AF_INET6};
    m.sin6_addr.s6_addr[10] = m.sin6_addr.s6_addr[11] = 0xff;
    memcpy(m.sin6_addr.s6_addr + 12, &a.sin_addr, 4);
    const struct sockaddr *sa = (const struct sockaddr *)&a;
    cr_assert_eq(ss_auth_throttle_delay(&t, sa, 1000), 0);
    cr_assert_eq(ss_auth_throttle_fail(&t, sa, 1000), 1);
    cr_assert_eq(ss_auth_throttle_delay(&t, sa, 1000), SS_AUTH_THROTTLE_BASE_MS);
    cr_assert_eq(ss_auth_throttle_delay(&t, (const struct sockaddr *)&m, 1000),
                 SS_AUTH_THROTTLE_BASE_MS, "IPv4-mapped is the same peer");
    cr_assert_eq(ss_auth_throttle_fail(&t, sa, 1000 + SS_AUTH_THROTTLE_BASE_MS), 2);
    cr_assert_eq(ss_auth_throttle_delay(&t, sa, 1000 + SS_AUTH_THROTTLE_BASE_MS),
                 2 * SS_AUTH_THROTTLE_BASE_MS);
    for (int i = 0; i < 20; i++)
        ss_auth_throttle_fail(&t, sa, 5000);
    cr_assert_eq(ss_auth_throttle_delay(&t, sa, 5000), SS_AUTH_THROTTLE_MAX_MS);
    ss_auth_throttle_ok(&t, sa);
    cr_assert_eq(ss_auth_throttle_delay(&t, sa, 5000), 0);
    /* More addresses than slots: the table stays bounded, newest kept. */
    for (uint32_t i = 0; i < SS_AUTH_THROTTLE_SLOTS + 10; i++) {
        struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000 + i)};
        ss_auth_throttle_fail(&t, (const struct sockaddr *)&b, 10000 + i);
    }
    struct sockaddr_in last = {.sin_family = AF_INET,
                               .sin_addr.s_addr = htonl(0x0a000000 + SS_AUTH_THROTTLE_SLOTS + 9)};
    struct sockaddr_in first = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x0a000000)};
    cr_assert_gt(ss_auth_throttle_delay(&t, (const struct sockaddr *)&last,
                                          10000 + SS_AUTH_THROTTLE_SLOTS + 9), 0);
    cr_assert_eq(ss_auth_throttle_delay(&t, (const struct sockaddr *)&first, 10000), 0,
                 "oldest entry evicted");
}

/* Issue 13 item 6: failures count against the key from every address. */
Test(auth, throttle_counts_the_key_across_addresses)
{
    static ss_auth_throttle t;
    ss_auth_throttle_init(&t);
    uint32_t n = 99;
    cr_assert_eq(ss_auth_throttle_key_delay(&t, 1000, &n), 0);
    cr_assert_eq(n, 0);
    for (uint32_t i = 1; i <= SS_AUTH_THROTTLE_KEY_FREE; i++) {
        cr_assert_eq(ss_auth_throttle_key_delay(&t, 1000, NULL), 0, "before failure %u", i);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001 + i)};
        cr_assert_eq(ss_auth_throttle_fail(&t, (const struct sockaddr *)&a, 1000), 1,
                     "each address failed once");
    }
    cr_assert_eq(ss_auth_throttle_key_delay(&t, 1000, &n), SS_AUTH_THROTTLE_BASE_MS);
    cr_assert_eq(n, SS_AUTH_THROTTLE_KEY_FREE);
    struct sockaddr_in b = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000101)};
    ss_auth_throttle_fail(&t, (const struct sockaddr *)&b, 1000);
    cr_assert_eq(ss_auth_throttle_key_delay(&t, 1000, NULL), 2 * SS_AUTH_THROTTLE_BASE_MS);
    for (int i = 0; i < 20; i++)
        ss_auth_throttle_fail(&t, (const struct sockaddr *)&b, 1000);
    cr_assert_eq(ss_auth_throttle_key_delay(&t, 1000, NULL), SS_AUTH_THROTTLE_MAX_MS);
    /* A success forgets the address, not the key's count. */
    ss_auth_throttle_ok(&t, (const struct sockaddr *)&b);
    cr_assert_eq(ss_auth_throttle_key_delay(&t, 1000, NULL), SS_AUTH_THROTTLE_MAX_MS);
    cr_assert_eq(ss_auth_throttle_key_delay(&t, 1001 + SS_AUTH_THROTTLE_FORGET_MS, &n), 0);
    cr_assert_eq(n, 0, "forgotten after the window");
}
