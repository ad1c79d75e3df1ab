/* sockstack error codes.
 *
 * Every library call returns 0 (or a count) on success and a negative
 * errno-style code on failure. System errors are the negated errno value
 * (-ECONNREFUSED); failures that errno has no name for use the SS_E* codes
 * below, which lie far outside errno's range. ss_strerror() and
 * ss_err_name() turn any of them into text; only the CLI prints it.
 */
#ifndef SOCKSTACK_ERR_H
#define SOCKSTACK_ERR_H

#include "sockstack/api.h"
SS_API_BEGIN

/* X(name, value, message): the one table of sockstack's own codes. */
#define SS_ERR_TABLE(X)                                                          \
    X(SS_EAUTH,      -10001, "authentication failed")                           \
    X(SS_EKEYPERM,   -10002, "key file is readable or writable by group or others") \
    X(SS_EKEYFMT,    -10003, "key file has no key on its first line")           \
    X(SS_EKEYOWNER,  -10040, "key file is not owned by this user")              \
    X(SS_EFRAMESIZE, -10004, "message length exceeds the configured maximum")   \
    X(SS_EFRAMEFMT,  -10005, "unknown length-field layout")                     \
    X(SS_EDIGEST,    -10006, "SHA-256 digest mismatch")                         \
    X(SS_EBADPKT,    -10007, "malformed packet")                                \
    X(SS_EPEERPROTO, -10008, "peer broke the protocol")                         \
    X(SS_EDENIED,    -10009, "address is not allowed by the access list")       \
    X(SS_ELIMIT,     -10010, "connection limit reached")                        \
    X(SS_ETRUNC,     -10011, "datagram was truncated")                          \
    X(SS_EPATH,      -10012, "path leaves the served root")                     \
    X(SS_ENOTSUP,    -10013, "not supported by this backend")                   \
    X(SS_ENOHOST,    -10014, "name or service not known")                       \
    X(SS_ELISTENING, -10015, "another server is listening on this address")     \
    X(SS_EREMOTE,    -10030, "the server refused the request")             \
    X(SS_ETLS,       -10050, "TLS handshake or record failed")                 \
    X(SS_ETLSVERIFY, -10051, "the peer's certificate did not verify")          \
    X(SS_ETLSCONF,   -10052, "TLS configuration error")

enum ss_err {
#define SS_ERR_ENUM(name, value, msg) name = value,
    SS_ERR_TABLE(SS_ERR_ENUM)
#undef SS_ERR_ENUM
};

/* Human-readable message for any code (negative errno or SS_E*); never NULL. */
const char *ss_strerror(int err);

/* Symbolic name ("ECONNREFUSED", "SS_EAUTH"); never NULL. */
const char *ss_err_name(int err);

SS_API_END

#endif
