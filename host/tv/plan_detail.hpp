// gmmdiff (private to host/tv/): what a TvPlan holds, and build_plan, the constructor's work
// (tv/plan.cpp). The tests build plans with it to check their statistics, edges and target
// masses; users see only TvPlan (include/gmmdiff/tv.hpp).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/tv.hpp"
#include "tv/host_statistics.hpp"

namespace gmmdiff::tv_detail {

/// One statistic of a plan: the values of the HistogramSpec it bins and the target's masses of
/// its cells.
struct PlanStat {
  std::string name;
  int dims = 1;
  int a = 0, b = -1;                 ///< value indices (b >= 0 for 2-D)
  std::vector<double> target_mass;   ///< per cell (empty until the reference sample when !exact)
  bool exact = true;                 ///< masses in closed form (else from an exact reference sample)
  uint64_t reference_n = 0;          ///< > 0 when the masses come from a reference sample
  int pair = -1;                     ///< index into spec.pairs (2-D)
  bool host = false;                 ///< binned on the host (meansperp, logp; HostSpec): a and pair
                                     ///< then index the counts after the spec's values and pairs
};

/// Everything a TvPlan holds.
struct Plan {
  TvOptions opt;
  uint64_t n = 0;                    ///< the sample size the bins are chosen for
  int bins1 = 0;                     ///< bins per 1-D histogram
  int bins2 = 0;                     ///< bins per axis of a 2-D histogram
  HistogramSpec spec;                ///< directions, radial centre, edges per value, pairs
  HostSpec host;                     ///< the statistics binned on the host (meansperp, logp)
  std::vector<PlanStat> stats;
  std::vector<std::string> names;    ///< the statistics' names, in order
  std::vector<std::string> notes;    ///< statistics that were requested but skipped, and why
  Mixture target;                    ///< kept only when a reference sample will be drawn from it
                                     ///< (K x d can be large); empty otherwise
};

/// The plan for a model, options and sample size: checks the options, chooses the bins, selects
/// the statistics, builds the spec (directions, centre, equal-mass edges) and the exact target
/// masses where the law is known in closed form. Throws gmmdiff::Error (the messages of
/// `gmmdiff tv`).
Plan build_plan(const Mixture& target, const TvOptions& opt, uint64_t n);

}  // namespace gmmdiff::tv_detail
