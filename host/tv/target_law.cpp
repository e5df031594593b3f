// gmmdiff: the target laws of the TV statistics (tv/target_law.hpp): equal-mass bin edges, and
// the exact bin masses of projections (1-D Gaussian mixtures) and of the radial statistic
// (scaled non-central chi-squares), THEORY.md, Measuring TV in high dimension; docs/tv.md.
#include "tv/target_law.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include <omp.h>

#include "gmmdiff/error.hpp"
#include "core/special_functions.hpp"

namespace gmmdiff::tv_detail {

namespace {

using special::ncx2_cdf;
using special::normal_cdf;
using special::normal_interval;

/// Squared-distance edges (radial, meansperp's radius) come from the exact non-central chi-square
/// mixture when K is at most this; beyond, from its moment-matched gamma (Patnaik) approximation.
/// Masses are exact either way.
constexpr int kSquaredDistanceExactEdgesMaxK = 64;
/// A variance or squared distance beyond this (or below its inverse): the moments of a squared
/// distance are taken in scaled units.
constexpr double kUnscaledMoment = 1e150;
/// Relative tolerance of a "zero" covariance between two projections (independence check).
constexpr double kIndependenceTol = 1e-12;

/// Per-component isotropic variances when every component is isotropic (Isotropic, or Diagonal
/// with all coordinates of a component equal); empty otherwise.
std::vector<double> isotropic_variances(const Mixture& m) {
  std::vector<double> v(m.K);
  for (int k = 0; k < m.K; ++k) {
    v[k] = m.var(k, 0);
    if (m.cov == Covariance::Diagonal)
      for (int j = 1; j < m.d; ++j)
        if (m.var(k, j) != v[k]) return {};
  }
  return v;
}

double mixture_normal_cdf(const Mixture& m, const Law1D& L, double x) {
  double F = 0;
  for (int k = 0; k < m.K; ++k) F += m.weights[k] * normal_cdf((x - L.mean[k]) / L.sd[k]);
  return F;
}

/// Per-component masses of the bins of `edges` under the projected law: [K][B].
std::vector<double> component_masses(const Law1D& L, const std::vector<double>& edges) {
  const int K = static_cast<int>(L.mean.size());
  const int B = static_cast<int>(edges.size()) - 1;
  std::vector<double> P(static_cast<std::size_t>(K) * B);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < K; ++k)
    for (int b = 0; b < B; ++b)
      P[static_cast<std::size_t>(k) * B + b] =
          normal_interval((edges[b] - L.mean[k]) / L.sd[k], (edges[b + 1] - L.mean[k]) / L.sd[k]);
  return P;
}

/// Gamma shapes above which the approximate edges use the Wilson-Hilferty form: gamma_p's series
/// takes O(sqrt(shape)) terms, and a shape of R^2 / 4 sd^2 reaches 1e17 at radius 1e9.
constexpr double kWilsonHilfertyMinShape = 1e5;

double squared_distance_cdf_exact(const Mixture& m, const SquaredDistanceLaw& L, double x) {
  double F = 0;
  for (int k = 0; k < m.K; ++k) F += m.weights[k] * ncx2_cdf(x / L.s2[k], L.dof, L.lambda[k]);
  return F;
}

double squared_distance_cdf_approx(const Mixture& m, const SquaredDistanceLaw& L, double x) {
  double F = 0;
  for (int k = 0; k < m.K; ++k)
    F += m.weights[k] * (L.shape[k] > kWilsonHilfertyMinShape
                             ? special::gamma_p_wilson_hilferty(L.shape[k], x / L.scale[k])
                             : special::gamma_p(L.shape[k], x / L.scale[k]));
  return F;
}

}  // namespace

std::vector<double> equal_mass_edges(const std::function<double(double)>& F, int B, double lo,
                                     double hi, double ftol_rel) {
  GMMDIFF_EXPECTS(B >= 1, "equal_mass_edges: B = ", B, " (must be >= 1)");
  std::vector<double> edges(B + 1);
  edges[0] = -std::numeric_limits<double>::infinity();
  edges[B] = std::numeric_limits<double>::infinity();
  if (B == 1) return edges;
  const double tail = 0.1 / B;
  if (!(hi > lo)) hi = lo + 1.0;
  double flo = F(lo), fhi = F(hi);
  for (int i = 0; i < 200 && flo > tail; ++i) {
    lo -= (hi - lo);
    flo = F(lo);
  }
  for (int i = 0; i < 200 && fhi < 1.0 - tail; ++i) {
    hi += (hi - lo);
    fhi = F(hi);
  }
  const int G = 2 * B + 1;
  std::vector<double> xs(G), Fs(G);
  for (int g = 0; g < G; ++g) xs[g] = lo + (hi - lo) * static_cast<double>(g) / (G - 1);
#pragma omp parallel for schedule(dynamic, 4)
  for (int g = 0; g < G; ++g) Fs[g] = g == 0 ? flo : (g == G - 1 ? fhi : F(xs[g]));
  for (int g = 1; g < G; ++g) Fs[g] = std::max(Fs[g], Fs[g - 1]);  // rounding: keep monotone
  const double ftol = ftol_rel / B;
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 1; i < B; ++i) {
    const double q = static_cast<double>(i) / B;
    const int g = static_cast<int>(std::upper_bound(Fs.begin(), Fs.end(), q) - Fs.begin()) - 1;
    if (g < 0) edges[i] = lo;
    else if (g >= G - 1) edges[i] = hi;
    else edges[i] = special::invert_monotone(F, q, xs[g], xs[g + 1], Fs[g], Fs[g + 1], ftol, 1e-13, 80);
  }
  for (int i = 2; i < B; ++i)
    if (!(edges[i] > edges[i - 1])) edges[i] = std::nextafter(edges[i - 1], edges[B]);
  return edges;
}

// ---- projections ----------------------------------------------------------------------------

Law1D projected_law(const Mixture& m, const double* u) {
  Law1D L;
  L.mean.resize(m.K);
  L.sd.resize(m.K);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < m.K; ++k) {
    const double* mu = m.mean(k);
    double s = 0, v = 0;
    for (int j = 0; j < m.d; ++j) {
      s += u[j] * mu[j];
      v += u[j] * u[j] * m.var(k, j);
    }
    L.mean[k] = s;
    L.sd[k] = std::sqrt(v);
  }
  return L;
}

std::vector<double> projection_edges(const Mixture& m, const Law1D& L, int B) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (int k = 0; k < m.K; ++k) {
    lo = std::min(lo, L.mean[k] - 8.5 * L.sd[k]);
    hi = std::max(hi, L.mean[k] + 8.5 * L.sd[k]);
  }
  return equal_mass_edges([&](double x) { return mixture_normal_cdf(m, L, x); }, B, lo, hi);
}

std::vector<double> projection_masses(const Mixture& m, const Law1D& L, const std::vector<double>& edges) {
  const int B = static_cast<int>(edges.size()) - 1;
  std::vector<double> p(B, 0.0);
#pragma omp parallel for schedule(static)
  for (int b = 0; b < B; ++b) {
    double s = 0;
    for (int k = 0; k < m.K; ++k)
      s += m.weights[k] * normal_interval((edges[b] - L.mean[k]) / L.sd[k], (edges[b + 1] - L.mean[k]) / L.sd[k]);
    p[b] = s;
  }
  return p;
}

bool projections_independent(const Mixture& m, const double* ua, const double* ub, const Law1D& La,
                             const Law1D& Lb) {
  bool independent = true;
  if (m.cov != Covariance::Isotropic) {
    for (int k = 0; k < m.K && independent; ++k) {
      double cov = 0;
      for (int j = 0; j < m.d; ++j) cov += ua[j] * ub[j] * m.var(k, j);
      independent = std::fabs(cov) <= kIndependenceTol * La.sd[k] * Lb.sd[k];
    }
  }
  return independent;
}

std::vector<double> pair_masses(const Mixture& m, const Law1D& La, const std::vector<double>& edges_a,
                                const Law1D& Lb, const std::vector<double>& edges_b) {
  const int Ba = static_cast<int>(edges_a.size()) - 1, Bb = static_cast<int>(edges_b.size()) - 1;
  const std::vector<double> A = component_masses(La, edges_a);
  const std::vector<double> Bm = component_masses(Lb, edges_b);
  std::vector<double> mass(static_cast<std::size_t>(Ba) * Bb, 0.0);
#pragma omp parallel for schedule(static)
  for (int i = 0; i < Ba; ++i)
    for (int k = 0; k < m.K; ++k) {
      const double wa = m.weights[k] * A[static_cast<std::size_t>(k) * Ba + i];
      for (int j = 0; j < Bb; ++j)
        mass[static_cast<std::size_t>(i) * Bb + j] += wa * Bm[static_cast<std::size_t>(k) * Bb + j];
    }
  return mass;
}

// ---- squared distances ----------------------------------------------------------------------

SquaredDistanceLaw squared_distance_law(const Mixture& m, double dof,
                                        const std::function<SquaredDistanceMoments(int, double)>& moments) {
  SquaredDistanceLaw L;
  const std::vector<double> iso = isotropic_variances(m);
  L.exact = !iso.empty();
  L.dof = dof;
  L.s2.resize(m.K);
  L.lambda.resize(m.K);
  L.shape.resize(m.K);
  L.scale.resize(m.K);
  L.mean.resize(m.K);
  L.sd.resize(m.K);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < m.K; ++k) {
    const SquaredDistanceMoments M = moments(k, 1.0);
    const double mean = M.mean, var = M.var;
    L.mean[k] = mean;
    if (M.big <= kUnscaledMoment && M.big >= 1 / kUnscaledMoment) {
      L.sd[k] = std::sqrt(var);
      L.shape[k] = var > 0 ? mean * mean / var : 1.0;
      L.scale[k] = mean > 0 && var > 0 ? var / mean : 1.0;
    } else {
      // Variances or squared distances so large that their squares (the variance of the squared
      // distance) overflow, or so small that they underflow: the same moments in units of `big`.
      const double vs = moments(k, M.big).var;
      L.sd[k] = M.big * std::sqrt(vs);
      L.shape[k] = vs > 0 ? (mean / L.sd[k]) * (mean / L.sd[k]) : 1.0;
      L.scale[k] = mean > 0 && vs > 0 ? L.sd[k] * (L.sd[k] / mean) : 1.0;
    }
    if (L.exact) {
      L.s2[k] = iso[k];
      L.lambda[k] = M.delta2 / iso[k];
    }
  }
  return L;
}

std::vector<double> squared_distance_edges(const Mixture& m, const SquaredDistanceLaw& L, int B, const char* stat,
                                           const char* value) {
  double hi = 0, lo = std::numeric_limits<double>::infinity();
  for (int k = 0; k < m.K; ++k) {
    GMMDIFF_EXPECTS(std::isfinite(L.mean[k]) && std::isfinite(L.sd[k]), "--stat ", stat, ": ", value,
                    " of component ", k, " overflows a double (the model's scale is too large for the ", stat,
                    " statistic)");
    GMMDIFF_EXPECTS(!L.exact || std::isfinite(L.lambda[k]), "--stat ", stat, ": ", value, " of component ", k,
                    ": its non-centrality (squared distance of its mean / variance ", L.s2[k],
                    ") overflows a double (the sd is too small for the ", stat, " statistic at this distance)");
    hi = std::max(hi, L.mean[k] + 10 * L.sd[k]);
    lo = std::min(lo, L.mean[k] - 10 * L.sd[k]);
  }
  // The search starts at 0, unless the mass lies in a small part of [0, hi] (a radius far larger
  // than the sd: at radius 1e9 it is 1e18 +- 1e11): a grid from 0 would then hold all of it
  // between two points. Where the grid from 0 resolves the mass, 0 stays (the edges of existing
  // sweeps do not move).
  const double start = (lo > 0 && hi - lo < 0.25 * hi) ? lo : 0.0;
  if (L.exact && m.K <= kSquaredDistanceExactEdgesMaxK)
    return equal_mass_edges([&](double x) { return squared_distance_cdf_exact(m, L, x); }, B, start, hi);
  return equal_mass_edges([&](double x) { return squared_distance_cdf_approx(m, L, x); }, B, start, hi);
}

double squared_distance_component_cdf(const SquaredDistanceLaw& L, int k, double x) {
  return ncx2_cdf(x / L.s2[k], L.dof, L.lambda[k]);
}

std::vector<double> squared_distance_masses(const Mixture& m, const SquaredDistanceLaw& L,
                                            const std::vector<double>& edges) {
  const int B = static_cast<int>(edges.size()) - 1;
  std::vector<double> C(B + 1);
  C[0] = 0;
  C[B] = 1;
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 1; i < B; ++i) C[i] = squared_distance_cdf_exact(m, L, edges[i]);
  std::vector<double> p(B);
  for (int b = 0; b < B; ++b) p[b] = std::max(0.0, C[b + 1] - C[b]);
  return p;
}

// ---- the radial statistic -------------------------------------------------------------------

std::vector<double> radial_center(const Mixture& m, bool origin) {
  std::vector<double> center(m.d, 0.0);
  if (!origin)
    for (int k = 0; k < m.K; ++k)
      for (int j = 0; j < m.d; ++j) center[j] += m.weights[k] * m.mean(k)[j];
  return center;
}

RadialLaw radial_law(const Mixture& m, const std::vector<double>& center) {
  // E|X - c|^2 = sum_j v_j + dl_j^2, Var = sum_j 2 v_j^2 + 4 v_j dl_j^2, dl = mu_k - c.
  return squared_distance_law(m, m.d, [&](int k, double unit) {
    const double* mu = m.mean(k);
    const double root = std::sqrt(unit);
    SquaredDistanceMoments M;
    for (int j = 0; j < m.d; ++j) {
      const double dl = mu[j] - center[j];
      const double v = m.var(k, j);
      const double vu = v / unit, dlu = dl / root;
      M.delta2 += dl * dl;
      M.mean += v + dl * dl;
      M.var += 2 * vu * vu + 4 * vu * dlu * dlu;
      M.big = std::max({M.big, v, dl * dl});
    }
    return M;
  });
}

}  // namespace gmmdiff::tv_detail
