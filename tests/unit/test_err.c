#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "sockstack/err.h"

Test(err, errno_codes_use_the_system_text)
{
    cr_assert_str_eq(ss_strerror(-ECONNREFUSED), "Connection refused");
    cr_assert_str_eq(ss_err_name(-ECONNREFUSED), "ECONNREFUSED");
}

Test(err, own_codes_have_names_and_messages)
{
    cr_assert_str_eq(ss_strerror(SS_EAUTH), "authentication failed");
    cr_assert_str_eq(ss_err_name(SS_EFRAMESIZE), "SS_EFRAMESIZE");
}

Test(err, unknown_codes_are_not_null)
{
    cr_assert_str_eq(ss_strerror(-99999), "unknown error");
    cr_assert_str_eq(ss_err_name(-99999), "EUNKNOWN");
    cr_assert_str_eq(ss_err_name(0), "OK");
}

/* Two codes with one value would make ss_strerror name the wrong failure
 * (a TLS alert once read "key file is not owned by this user"). */
Test(err, every_own_code_is_unique_and_names_itself)
{
#define ROW(name, value, msg) {value, #name, msg},
    static const struct {
        int value;
        const char *name, *msg;
    } rows[] = {SS_ERR_TABLE(ROW)};
#undef ROW
    size_t n = sizeof rows / sizeof rows[0];
    for (size_t i = 0; i < n; i++) {
        for (size_t j = i + 1; j < n; j++)
            cr_assert_neq(rows[i].value, rows[j].value, "%s and %s share %d", rows[i].name,
                          rows[j].name, rows[i].value);
        cr_assert_str_eq(ss_err_name(rows[i].value), rows[i].name);
        cr_assert_str_eq(ss_strerror(rows[i].value), rows[i].msg);
    }
}
