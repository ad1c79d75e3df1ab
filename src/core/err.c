/* The one table of error names and messages (see include/sockstack/err.h). */
#include <string.h>

#include "sockstack/err.h"

struct err_entry {
    int code;
    const char *name;
    const char *msg;
};

static const struct err_entry own_errors[] = {
#define SS_ERR_ROW(name, value, msg) {value, #name, msg},
    SS_ERR_TABLE(SS_ERR_ROW)
#undef SS_ERR_ROW
};

static const struct err_entry *find_own(int err)
{
    for (size_t i = 0; i < sizeof own_errors / sizeof own_errors[0]; i++)
        if (own_errors[i].code == err)
            return &own_errors[i];
    return NULL;
}

const char *ss_strerror(int err)
{
    const struct err_entry *e = find_own(err);
    if (e)
        return e->msg;
    if (err == 0)
        return "success";
    /* strerrordesc_np is thread-safe and never formats into a shared buffer. */
    const char *s = err < 0 ? strerrordesc_np(-err) : NULL;
    return s ? s : "unknown error";
}

const char *ss_err_name(int err)
{
    const struct err_entry *e = find_own(err);
    if (e)
        return e->name;
    if (err == 0)
        return "OK";
    const char *s = err < 0 ? strerrorname_np(-err) : NULL;
    return s ? s : "EUNKNOWN";
}
