// gmmdiff (sweep): the runs of one grid, the Cartesian product of its axes in a fixed order
// (docs/sweeps.md, "Expansion"), with the axes that do not apply collapsed and the run-count limit.
#pragma once
#include <set>
#include <string>
#include <vector>

#include "gmmdiff/sweep.hpp"
#include "sweep/axes.hpp"
#include "sweep/parse_context.hpp"

namespace gmmdiff::sweep_parse {

/// Runs in one sweep, at most.
constexpr std::size_t kMaxRuns = 1000000;

/// Which axes a sweep names, and which of them some run uses: an axis that applies to no run of
/// the sweep (eps without a score error, T with schedule files only, ...) is refused, as the
/// command line refuses an option that does not apply; an axis that applies to some runs
/// collapses for the others, whose rows record what ran (eps 0, T the file's length, ...).
struct AxisUse {
  std::set<std::string> given;    ///< named in the JSON (top level or a grid)
  std::set<std::string> applied;  ///< used by at least one run
};

/// Appends the runs of one grid, family by family, to runs, skipping those whose key is in seen
/// (and adding the new keys to it). Each run is checked (combinations the axes alone cannot rule
/// out); a grid that would give more than kMaxRuns runs stops before it is expanded. Records in
/// use which axes the grid names and which its runs use.
void expand_grid(const ParseContext& c, const GridAxes& a, std::set<std::string>& seen, std::vector<RunParams>& runs,
                 AxisUse& use);
/// Refuses an axis that use says no run applies to, saying why.
void check_axes_apply(const ParseContext& c, const AxisUse& use);

}  // namespace gmmdiff::sweep_parse
