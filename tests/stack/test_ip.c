#include "fixture.h"
TestSuite(xip, .init = fx_setup, .fini = fx_teardown);
Test(xip, placeholder) { cr_assert(1); }
