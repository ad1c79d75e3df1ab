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
