/* Fuzz ss_hexdump_line: any bytes, offset and buffer size. The line must fit
 * the buffer or be refused, and its hex column must read back as the input. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sockstack/nc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 9)
        return 0;
    uint64_t off;
    memcpy(&off, data, 8);
    size_t cap = data[8]; /* 0..255: too small and big enough */
    data += 9;
    size -= 9;
    char *buf = malloc(cap ? cap : 1);
    int n = ss_hexdump_line(data, size, off, buf, cap);
    if (n == -ENOSPC) {
        free(buf);
        return 0;
    }
    size_t len = size > 16 ? 16 : size;
    if (n <= 0 || (size_t)n >= cap || strlen(buf) != (size_t)n || buf[n - 1] != '\n')
        abort();
    /* Offset, two spaces, then 16 columns of "xx " (a gap after eight). */
    char *p = buf;
    unsigned long long o = strtoull(p, &p, 16);
    if (o != off || p[0] != ' ' || p[1] != ' ')
        abort();
    p += 2;
    for (size_t i = 0; i < 16; i++) {
        if (i < len) {
            unsigned v;
            if (sscanf(p, "%2x", &v) != 1 || v != data[i])
                abort();
        } else if (memcmp(p, "   ", 3) != 0) {
            abort();
        }
        p += 3 + (i == 7);
    }
    if (p[0] != ' ' || p[1] != '|' || p[2 + len] != '|' || p[3 + len] != '\n')
        abort();
    for (size_t i = 0; i < len; i++) {
        char want = data[i] >= 0x20 && data[i] < 0x7f ? (char)data[i] : '.';
        if (p[2 + i] != want)
            abort();
    }
    free(buf);
    return 0;
}
