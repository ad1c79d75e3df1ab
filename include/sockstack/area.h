/* area: a UDP service. A datagram holding a radius as decimal text gets
 * back the area of that circle, pi * r^2, as decimal text with full double
 * precision ("%.17g") and a newline. Anything else gets one datagram that
 * starts with "error: " and says why. Exact formats: docs/protocols.md.
 */
#ifndef SOCKSTACK_AREA_H
#define SOCKSTACK_AREA_H

#include <stdbool.h>
#include <stddef.h>

#include "sockstack/server.h"

#include "sockstack/api.h"
SS_API_BEGIN

/* Longest request accepted, in bytes (surrounding whitespace included). */
#define SS_AREA_MAX_REQUEST 64

const ss_service *ss_area_service(void);

/* The reply text for one request, NUL-terminated in out (cap >= 128).
 * Returns its length. Pure: the service and the tests use it. */
int ss_area_reply(const void *req, size_t len, bool truncated, char *out,
                  size_t cap);

SS_API_END

#endif
