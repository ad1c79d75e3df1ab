#include "fixture.h"
TestSuite(xtcp_timers, .init = fx_setup, .fini = fx_teardown);
Test(xtcp_timers, placeholder) { cr_assert(1); }
