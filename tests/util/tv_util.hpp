// Test helpers shared by the TV tests (tests/tv/): Gaussian bin masses, a diagonal mixture whose
// 2-D and radial laws have no closed form, and the band an exact sample's plug-in TV lies in.
#pragma once
#include <cstddef>
#include <vector>

#include "gmmdiff/model.hpp"
#include "core/special_functions.hpp"

namespace gmmdiff::test {

/// An exact sample's plug-in tv lies within floor * (1 +- this).
constexpr double kNullFloorBand = 0.5;

/// Masses of N(mean, sd^2) in the bins of edges.
inline std::vector<double> normal_masses(const std::vector<double>& e, double mean, double sd) {
  std::vector<double> P(e.size() - 1);
  for (std::size_t b = 0; b + 1 < e.size(); ++b)
    P[b] = special::normal_interval((e[b] - mean) / sd, (e[b + 1] - mean) / sd);
  return P;
}

/// K = 2, d = 3, diagonal covariances: means2d and radial have no closed form (reference sample).
inline Mixture diagonal_mixture() {
  Mixture m;
  m.K = 2;
  m.d = 3;
  m.cov = Covariance::Diagonal;
  m.means = {1, 1, 0, -1, 0.5, 1};
  m.var_diag = {0.5, 2.0, 1.0, 1.0, 1.0, 3.0};
  m.weights = {0.4, 0.6};
  validate(m);
  return m;
}

}  // namespace gmmdiff::test
