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

/// Appends the runs of one grid, family by family, to runs, skipping those whose key is in seen
/// (and adding the new keys to it). Each run is checked (combinations the axes alone cannot rule
/// out); a grid that would give more than kMaxRuns runs stops before it is expanded.
void expand_grid(const ParseContext& c, const GridAxes& a, std::set<std::string>& seen, std::vector<RunParams>& runs);

}  // namespace gmmdiff::sweep_parse
