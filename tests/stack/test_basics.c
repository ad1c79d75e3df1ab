#include "fixture.h"
TestSuite(xbasics, .init = fx_setup, .fini = fx_teardown);
Test(xbasics, placeholder) { cr_assert(1); }
