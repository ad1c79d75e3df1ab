/* tcp_flags: the TCP header's flag bits and their one notation ("SYN,ACK").
 *
 * One table of names serves every place that shows or reads flags: the
 * stack's trace (text and JSON lines), the analyser and sniff, the
 * diagrams, the viewer, and the reader of --trace-json files. It lives in
 * core (src/core/tcp_flags.c), below both the stack and viz, so that
 * neither has to reach into the other for it (DESIGN.md's layering).
 */
#ifndef SOCKSTACK_TCP_FLAGS_H
#define SOCKSTACK_TCP_FLAGS_H

#include <stddef.h>
#include <stdint.h>

#include "sockstack/api.h"
SS_API_BEGIN

/* TCP header flag bits, as on the wire. */
enum {
    SS_TCP_FIN = 0x01, SS_TCP_SYN = 0x02, SS_TCP_RST = 0x04,
    SS_TCP_PSH = 0x08, SS_TCP_ACK = 0x10, SS_TCP_URG = 0x20,
    SS_TCP_ECE = 0x40, SS_TCP_CWR = 0x80
};

/* Flag bits as "SYN,ACK" (in the order SYN FIN RST PSH ACK URG ECE CWR;
 * "none" for 0) into buf of len bytes (32 hold any value); a name that
 * does not fit is left out whole. Returns buf. */
char *ss_tcp_flags_str(uint8_t flags, char *buf, size_t len);

/* The inverse: "SYN,ACK" (names in any order, comma-separated) or "none"
 * into *flags. Returns 0, or -EINVAL for an empty text, an unknown name
 * or a stray comma (*flags is then 0). */
int ss_tcp_flags_parse(const char *s, uint8_t *flags);

SS_API_END

#endif
