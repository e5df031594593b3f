// Test helpers that build small models and schedules: a preset, a named schedule of length T, an
// isotropic mixture from its parts, the K = 2, d = 3 diagonal mixture the bounds tests share, and
// the two-point model (means +-radius e_1). Every mixture is validated.
#pragma once
#include <string>
#include <vector>

#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff::test {

/// The preset `name` in d dimensions with K components and the given radius, its other parameters
/// at their defaults.
inline Mixture preset(const std::string& name, int d, int K, double radius) {
  PresetParams p;
  p.name = name;
  p.d = d;
  p.K = K;
  p.radius = radius;
  return make_preset(p);
}

/// The built-in schedule `name` with T steps and its default parameters.
inline Schedule schedule(const std::string& name, int T) {
  ScheduleParams p;
  p.name = name;
  p.T = T;
  return make_schedule(p);
}

/// An isotropic mixture from its means, per-component sds and weights.
inline Mixture isotropic(int d, const std::vector<std::vector<double>>& means, const std::vector<double>& sd,
                         const std::vector<double>& weights) {
  Mixture m;
  m.K = static_cast<int>(means.size());
  m.d = d;
  m.means.reserve(means.size() * static_cast<std::size_t>(d));
  for (const auto& mu : means) m.means.insert(m.means.end(), mu.begin(), mu.end());
  m.sd = sd;
  m.weights = weights;
  validate(m);
  return m;
}

/// K = 2, d = 3, diagonal covariances (unequal across coordinates and components).
inline Mixture diag3() {
  Mixture m;
  m.K = 2;
  m.d = 3;
  m.means = {1.0, -0.5, 0.2, -1.0, 0.4, 0.0};
  m.cov = Covariance::Diagonal;
  m.var_diag = {0.5, 1.2, 0.8, 0.3, 0.9, 1.5};
  m.weights = {0.4, 0.6};
  validate(m);
  return m;
}

/// The two-point model: means +-radius e_1, one shared sd, equal weights.
inline Mixture two_point(int d, double radius, double sd) {
  std::vector<double> a(d, 0.0), b(d, 0.0);
  a[0] = radius;
  b[0] = -radius;
  return isotropic(d, {a, b}, {sd, sd}, {0.5, 0.5});
}

}  // namespace gmmdiff::test
