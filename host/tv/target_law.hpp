// gmmdiff (private to host/tv/): the target laws of the statistics (THEORY.md, Measuring TV in
// high dimension; docs/tv.md, "Bins" and "Target masses"): a projection <u, X_0> of the mixture
// is a 1-D Gaussian mixture, and |X_0 - c|^2 a mixture of scaled non-central chi-squares when
// every component is isotropic. Their equal-mass bin edges and the exact masses of the bins.
#pragma once
#include <functional>
#include <vector>

#include "gmmdiff/model.hpp"

namespace gmmdiff::tv_detail {

/// Edges e_0 = -inf < e_1 < ... < e_B = +inf with F(e_i) = i / B to within ftol_rel / B, for a
/// non-decreasing CDF F whose mass lies in [lo, hi] (widened until F(lo) < 0.1/B < 1 - 0.1/B < F(hi)).
std::vector<double> equal_mass_edges(const std::function<double(double)>& F, int B, double lo,
                                     double hi, double ftol_rel = 1e-3);

// ---- projections ----------------------------------------------------------------------------

/// The 1-D law of <u, X_0>: component means and sds.
struct Law1D {
  std::vector<double> mean, sd;
};
/// The law of <u, X_0> for a direction u of R^d (d = m.d values).
Law1D projected_law(const Mixture& m, const double* u);
/// B equal-mass bins of the projected law.
std::vector<double> projection_edges(const Mixture& m, const Law1D& L, int B);
/// Exact masses of the bins of `edges` under the projected law.
std::vector<double> projection_masses(const Mixture& m, const Law1D& L, const std::vector<double>& edges);

/// Whether the projections on unit directions ua and ub (laws La, Lb) are independent under every
/// component: cov_k(a, b) = sum_j ua_j ub_j var(k, j) = 0 to a relative tolerance (always true for
/// isotropic components and orthogonal directions).
bool projections_independent(const Mixture& m, const double* ua, const double* ub, const Law1D& La,
                             const Law1D& Lb);
/// Exact masses of the cells of the 2-D histogram of two projections that are independent under
/// every component: sum_k pi_k P_k(a-bin) P_k(b-bin), [Ba * Bb] with the b bin fastest.
std::vector<double> pair_masses(const Mixture& m, const Law1D& La, const std::vector<double>& edges_a,
                                const Law1D& Lb, const std::vector<double>& edges_b);

// ---- the radial statistic |X_0 - c|^2 -------------------------------------------------------

/// The centre of the radial statistic: the origin, or the weighted mean of the means.
std::vector<double> radial_center(const Mixture& m, bool origin);

/// The law of |X_0 - c|^2: exact (isotropic) as a scaled non-central chi-square per component,
/// plus a moment-matched gamma per component (always available) for the edges.
struct RadialLaw {
  bool exact = false;
  std::vector<double> s2, lambda;        // exact: |x-c|^2 / s2_k ~ chi'^2(d, lambda_k)
  std::vector<double> shape, scale;      // gamma approximation
  std::vector<double> mean, sd;          // moments
};
RadialLaw radial_law(const Mixture& m, const std::vector<double>& center);
/// B equal-mass bins: under the exact law when K is small enough to invert it cheaply, else under
/// the gamma approximation (the masses are exact either way).
std::vector<double> radial_edges(const Mixture& m, const RadialLaw& R, int B);
/// Exact masses of the bins of `edges` (R.exact must hold).
std::vector<double> radial_masses(const Mixture& m, const RadialLaw& R, const std::vector<double>& edges);

}  // namespace gmmdiff::tv_detail
