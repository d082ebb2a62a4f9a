// Named crash points for the reliability suite (tests/reliability): the process SIGKILLs itself
// at a chosen point so a test can check that restarting loses and duplicates nothing.
//
// Compiled in only with the CMake option CIVISHARE_CRASH_POINTS (the test build, see
// deploy/setup.sh --test); otherwise crash_point() is an empty inline function. Even when
// compiled in, nothing happens unless the environment names a point:
//   CIVISHARE_CRASH_AT=<name>[:<n>]   die at the n-th time (default 1st) `name` is reached.
// The names are listed in docs/RELIABILITY.md.
#pragma once

namespace civishare {

#ifdef CIVISHARE_CRASH_POINTS
void crash_point(const char* name);
#else
inline void crash_point(const char*) {}
#endif

}  // namespace civishare
