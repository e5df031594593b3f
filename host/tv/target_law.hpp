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

// ---- squared distances: the radial statistic |X_0 - c|^2 and meansperp's |P_u (X_0 - c)|^2 ----

/// The law of a squared distance |P (X_0 - c)|^2 (P the identity for radial, the projection
/// orthogonal to a direction u for meansperp's radius): per component a scaled non-central
/// chi-square with `dof` degrees of freedom when every component is isotropic (exact), and a
/// moment-matched gamma per component (always available) for the edges. One implementation for
/// every such statistic: its moments are taken in scaled units where squares would overflow, and
/// its edges refuse moments that overflow and start at the mass when it is a sliver of [0, hi].
struct SquaredDistanceLaw {
  bool exact = false;
  double dof = 0;                        // d for radial, d - 1 for meansperp's radius
  std::vector<double> s2, lambda;        // exact: value / s2_k ~ chi'^2(dof, lambda_k)
  std::vector<double> shape, scale;      // gamma approximation
  std::vector<double> mean, sd;          // moments
};

/// One component's moments of the squared distance, as a statistic computes them with its terms
/// in units of `unit` (unit = 1: unscaled): `mean` (unscaled, whatever the unit), `var` in units of
/// unit^2 (each variance divided by unit and each coordinate distance by sqrt(unit) before they
/// are squared), `delta2` the squared distance of the component's mean (unscaled) and `big` the
/// largest variance or squared coordinate distance that entered (unscaled).
struct SquaredDistanceMoments {
  double mean = 0, var = 0, delta2 = 0, big = 0;
};

/// The law from per-component moments: moments(k, 1.0) for each component, and moments(k, big)
/// again when big passes 1e150 (the variance of the squared distance is then formed from scaled
/// terms, so it cannot overflow). Exact when every component is isotropic (s2_k its variance,
/// lambda_k = delta2_k / s2_k).
SquaredDistanceLaw squared_distance_law(const Mixture& m, double dof,
                                        const std::function<SquaredDistanceMoments(int, double)>& moments);
/// B equal-mass bins: under the exact law when K is small enough to invert it cheaply, else under
/// the gamma approximation (the masses are exact either way). A component whose mean or sd (or
/// non-centrality) overflows a double is one gmmdiff::Error: "--stat <stat>: <value> of component k
/// overflows a double ...", e.g. stat "radial", value "|X - c|^2".
std::vector<double> squared_distance_edges(const Mixture& m, const SquaredDistanceLaw& L, int B, const char* stat,
                                           const char* value);
/// P(value <= x) under component k's exact law (L.exact must hold).
double squared_distance_component_cdf(const SquaredDistanceLaw& L, int k, double x);
/// Exact masses of the bins of `edges` under the mixture (L.exact must hold).
std::vector<double> squared_distance_masses(const Mixture& m, const SquaredDistanceLaw& L,
                                            const std::vector<double>& edges);

/// The centre of the radial statistic: the origin, or the weighted mean of the means.
std::vector<double> radial_center(const Mixture& m, bool origin);
/// The law of |X_0 - c|^2 (dof = d).
using RadialLaw = SquaredDistanceLaw;
RadialLaw radial_law(const Mixture& m, const std::vector<double>& center);

}  // namespace gmmdiff::tv_detail
