/* TCP flag names: one table, its formatter and its parser (see
 * sockstack/tcp_flags.h). */
#include "sockstack/tcp_flags.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

static const struct {
    uint8_t bit;
    char name[4];
} names[] = {
    {SS_TCP_SYN, "SYN"}, {SS_TCP_FIN, "FIN"}, {SS_TCP_RST, "RST"}, {SS_TCP_PSH, "PSH"},
    {SS_TCP_ACK, "ACK"}, {SS_TCP_URG, "URG"}, {SS_TCP_ECE, "ECE"}, {SS_TCP_CWR, "CWR"},
};

#define NNAMES (sizeof names / sizeof names[0])

char *ss_tcp_flags_str(uint8_t flags, char *buf, size_t len)
{
    size_t n = 0;
    if (len == 0)
        return buf;
    buf[0] = '\0';
    for (size_t i = 0; i < NNAMES; i++) {
        if (!(flags & names[i].bit))
            continue;
        int w = snprintf(buf + n, len - n, "%s%s", n ? "," : "", names[i].name);
        if (w < 0 || (size_t)w >= len - n) {
            buf[n] = '\0';   /* a name that does not fit is left out whole */
            break;
        }
        n += (size_t)w;
    }
    if (n == 0 && flags == 0)
        snprintf(buf, len, "none");
    return buf;
}

int ss_tcp_flags_parse(const char *s, uint8_t *flags)
{
    *flags = 0;
    if (!s || !*s)
        return -EINVAL;
    if (!strcmp(s, "none"))
        return 0;
    uint8_t f = 0;
    for (;;) {
        size_t k = strcspn(s, ","), i;
        for (i = 0; i < NNAMES; i++)
            if (k == strlen(names[i].name) && !strncmp(s, names[i].name, k))
                break;
        if (i == NNAMES)
            return -EINVAL;   /* unknown, empty (",,"), or lower case */
        f |= names[i].bit;
        if (!s[k])
            break;
        s += k + 1;
    }
    *flags = f;
    return 0;
}
