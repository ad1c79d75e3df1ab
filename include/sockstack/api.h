/* api: what the shared library exports.
 *
 * The library is built with -fvisibility=hidden: only declarations between
 * SS_API_BEGIN and SS_API_END (every public header wraps its own) and
 * those marked SS_API are exported; internal ss__ functions stay inside.
 * Tests that reach internals link the static library instead.
 */
#ifndef SOCKSTACK_API_H
#define SOCKSTACK_API_H

#define SS_API __attribute__((visibility("default")))
#define SS_API_BEGIN _Pragma("GCC visibility push(default)")
#define SS_API_END _Pragma("GCC visibility pop")

#endif
