#include "gmmdiff/version.hpp"

// gmmdiff_build_info.h is generated at build time (cmake/build_info.cmake); builds that compile
// these sources without it (the fuzz library) report the bare version.
#if __has_include("gmmdiff_build_info.h")
#include "gmmdiff_build_info.h"
#endif
#ifndef GMMDIFF_BUILD_COMMIT
#define GMMDIFF_BUILD_COMMIT ""
#endif
#ifndef GMMDIFF_VERSION
#define GMMDIFF_VERSION "unknown"
#endif

namespace gmmdiff {

std::string build_commit() { return GMMDIFF_BUILD_COMMIT; }

std::string version() {
  const std::string commit = build_commit();
  return commit.empty() ? std::string(GMMDIFF_VERSION) : std::string(GMMDIFF_VERSION) + "+g" + commit;
}

}  // namespace gmmdiff
