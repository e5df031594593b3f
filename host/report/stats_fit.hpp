// gmmdiff: internal helpers of the sweep report beside the public fits of report.hpp.
#pragma once
#include <vector>

namespace gmmdiff {

/// Median (linear interpolation between the middle order statistics); NaN when x is empty.
double median_of(const std::vector<double>& x);

}  // namespace gmmdiff
