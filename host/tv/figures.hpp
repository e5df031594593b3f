// gmmdiff (private to host/tv/): the figures of one histogram against its target masses
// (docs/tv.md, "Figures" and "Bootstrap"): the plug-in TV, the noise floor, the bootstrap
// interval and the bias-corrected estimate.
#pragma once
#include <cstdint>
#include <vector>

#include "gmmdiff/tv.hpp"

namespace gmmdiff::tv_detail {

/// Bootstrap replicates allowed (TvOptions::bootstrap): fewer than kMinBootstrap cannot give a
/// 95% interval.
constexpr int kMinBootstrap = 20;
constexpr int kMaxBootstrap = 1000000;

/// The figures of one histogram (docs/tv.md): the sample's counts, the target masses p (exact
/// when reference_n == 0, else the frequencies of an exact reference sample, or of a second
/// sample, of that size), the bootstrap replicates and their seed, and the number of statistics
/// the joint lower end ci_lo_joint must hold for (Bonferroni). Fills every field of StatResult
/// but name and dims: the TV figures, then the KL figures (Miller-Madow, with the same bootstrap
/// draws, so the TV figures do not depend on them).
StatResult histogram_figures(const std::vector<uint64_t>& counts, const std::vector<double>& p,
                             uint64_t reference_n, int bootstrap, uint64_t seed, int joint = 1);

/// The standard normal quantile Phi^-1(q), q in (0, 1) (bisection on special::normal_cdf, to
/// ~1e-15 relative): the joint lower end's z = Phi^-1(1 - 0.025 / N).
double normal_quantile(double q);

}  // namespace gmmdiff::tv_detail
