// gmmdiff: the version of this build, with the commit it was built from.
#pragma once
#include <string>

namespace gmmdiff {

/// "0.1.0+g<12-hex commit>" when built from a git checkout ("...+g<commit>.dirty" when tracked files
/// differed from that commit), or "0.1.0" otherwise. Sweep rows, bench reports and `gmmdiff info`
/// record it, so results from different builds can be told apart.
std::string version();

/// The commit alone ("<12 hex>[.dirty]"), or "" when the build did not come from a git checkout.
std::string build_commit();

}  // namespace gmmdiff
