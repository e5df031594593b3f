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
/// when reference_n == 0, else the frequencies of an exact reference sample of that size), the
/// bootstrap replicates and their seed. Fills every field of StatResult but name and dims.
StatResult histogram_figures(const std::vector<uint64_t>& counts, const std::vector<double>& p,
                             uint64_t reference_n, int bootstrap, uint64_t seed);

}  // namespace gmmdiff::tv_detail
