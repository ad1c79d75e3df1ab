/* Helpers of the chat protocol shared by the room, the client and the tests:
 * UTF-8 validation, nickname rules, timestamps, SHA-256 of a file, and
 * password hashing (PBKDF2-HMAC-SHA256 from OpenSSL). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "apps/chat_store.h"
#include "sockstack/chat.h"
#include "sockstack/config.h"

bool ss_utf8_valid(const void *buf, size_t len)
{
    const unsigned char *s = buf;
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp, min;
        if ((c & 0xe0) == 0xc0) {
            n = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            n = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            n = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false; /* stray continuation byte or 0xf8..0xff */
        }
        if (len - i <= n)
            return false;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false; /* overlong, out of range, or a UTF-16 surrogate */
        i += n + 1;
    }
    return true;
}

bool ss_chat_nick_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > SS_CHAT_NICK_MAX || !isalpha((unsigned char)s[0]))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x80 || !(isalnum(c) || c == '_' || c == '-'))
            return false;
    }
    return true;
}

void ss_chat_format_ts(int64_t ms, char *buf, size_t cap)
{
    /* Every line of a busy room is stamped: the date and time of the last
     * second formatted are kept (per thread), only the milliseconds are
     * written each time. */
    static _Thread_local int64_t last_secs = INT64_MIN;
    static _Thread_local char base[24];
    int64_t secs = ms / 1000, frac = ms % 1000;
    if (frac < 0) {
        secs--;
        frac += 1000;
    }
    if (secs != last_secs) {
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
        last_secs = secs;
    }
    size_t n = strlen(base);
    if (cap < n + 6) { /* callers pass 32 */
        if (cap)
            buf[0] = '\0';
        return;
    }
    memcpy(buf, base, n);
    buf[n] = '.';
    buf[n + 1] = (char)('0' + frac / 100);
    buf[n + 2] = (char)('0' + frac / 10 % 10);
    buf[n + 3] = (char)('0' + frac % 10);
    buf[n + 4] = 'Z';
    buf[n + 5] = '\0';
}

int64_t ss_chat_parse_ts(const char *s)
{
    struct tm tm = {0};
    const char *end = strptime(s, "%Y-%m-%dT%H:%M:%S", &tm);
    int ms = 0;
    if (!end)
        return -1;
    if (*end == '.') {
        if (!isdigit((unsigned char)end[1]) || !isdigit((unsigned char)end[2]) ||
            !isdigit((unsigned char)end[3]))
            return -1;
        ms = (end[1] - '0') * 100 + (end[2] - '0') * 10 + (end[3] - '0');
        end += 4;
    }
    if (strcmp(end, "Z"))
        return -1;
    time_t t = timegm(&tm);
    return t < 0 ? -1 : (int64_t)t * 1000 + ms;
}

void ss__chat_sha256_hex(EVP_MD_CTX *md, char hex[65])
{
    unsigned char d[32];
    EVP_DigestFinal_ex(md, d, NULL);
    for (int i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

int ss_chat_file_sha256(const char *path, char hex[65], uint64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        close(fd);
        return -ENOMEM;
    }
    unsigned char buf[65536];
    uint64_t total = 0;
    ssize_t n;
    while ((n = read(fd, buf, sizeof buf)) > 0) {
        EVP_DigestUpdate(md, buf, (size_t)n);
        total += (uint64_t)n;
    }
    int err = n < 0 ? -errno : 0;
    close(fd);
    ss__chat_sha256_hex(md, hex);
    EVP_MD_CTX_free(md);
    if (err)
        return err;
    *size = total;
    return 0;
}

int ss_chat_pw_hash(const char *pw, int iter, uint8_t salt[16], uint8_t hash[32])
{
    if (RAND_bytes(salt, 16) != 1)
        return -EIO;
    if (PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, 16, iter, EVP_sha256(), 32,
                          hash) != 1)
        return -EIO;
    return 0;
}

bool ss_chat_pw_check(const char *pw, int iter, const uint8_t salt[16],
                      const uint8_t hash[32])
{
    uint8_t h[32];
    if (PKCS5_PBKDF2_HMAC(pw, (int)strlen(pw), salt, 16, iter, EVP_sha256(), 32,
                          h) != 1)
        return false;
    return CRYPTO_memcmp(h, hash, 32) == 0;
}

void ss_chat_p2p_udp_mac(const char *key, const char *text, char out[33])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), key, (int)strnlen(key, 32), (const unsigned char *)text,
              strlen(text), md, &n) || n < 16)
        memset(md, 0, 16);
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}
