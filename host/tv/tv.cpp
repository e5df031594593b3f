// gmmdiff: TV estimates through statistics (THEORY.md, Measuring TV in high dimension; docs/tv.md):
// the plan (statistics, equal-mass edges, exact target masses), the reference sample where a
// target law is not known in closed form, and the figures (floor, bootstrap CI, bias correction).
#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <new>
#include <random>
#include <string>
#include <vector>

#include <omp.h>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/tv.hpp"
#include "core/special_functions.hpp"

namespace gmmdiff {

HistogramCounts HistogramCounts::zeros(const HistogramSpec& spec) {
  HistogramCounts c;
  c.one_d.resize(spec.edges.size());
  for (std::size_t v = 0; v < spec.edges.size(); ++v)
    c.one_d[v].assign(spec.edges[v].size() >= 1 ? spec.edges[v].size() - 1 : 0, 0);
  c.two_d.resize(spec.pairs.size());
  for (std::size_t p = 0; p < spec.pairs.size(); ++p) {
    const auto [a, b] = spec.pairs[p];
    c.two_d[p].assign((spec.edges.at(a).size() - 1) * (spec.edges.at(b).size() - 1), 0);
  }
  return c;
}

namespace {

using special::ncx2_cdf;
using special::normal_cdf;
using special::normal_interval;

constexpr int kMaxBins = 100000;
constexpr int kMinBootstrap = 20;
constexpr int kMaxBootstrap = 1000000;
/// Radial edges come from the exact non-central chi-square mixture when K is at most this;
/// beyond, from its moment-matched gamma (Patnaik) approximation. Masses are exact either way.
constexpr int kRadialExactEdgesMaxK = 64;
constexpr double kZ975 = 1.959963984540054;  ///< the standard normal's 97.5% point
/// Relative tolerance of a "zero" covariance between two projections (independence check).
constexpr double kIndependenceTol = 1e-12;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Seed of the exact reference sample: derived from the TV seed, so that it never coincides with
/// an exact sample drawn with the same --seed by `gmmdiff sample`.
uint64_t reference_seed(uint64_t seed) { return splitmix64(seed ^ 0x7265666572656e63ull); }
uint64_t bootstrap_seed(uint64_t seed, std::size_t stat) {
  return splitmix64(seed ^ splitmix64(0xB0075742A9ull + stat));
}

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

/// The 1-D law of <u, X_0>: component means and sds.
struct Law1D {
  std::vector<double> mean, sd;
};

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

double mixture_normal_cdf(const Mixture& m, const Law1D& L, double x) {
  double F = 0;
  for (int k = 0; k < m.K; ++k) F += m.weights[k] * normal_cdf((x - L.mean[k]) / L.sd[k]);
  return F;
}

std::vector<double> projection_edges(const Mixture& m, const Law1D& L, int B) {
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (int k = 0; k < m.K; ++k) {
    lo = std::min(lo, L.mean[k] - 8.5 * L.sd[k]);
    hi = std::max(hi, L.mean[k] + 8.5 * L.sd[k]);
  }
  return tv_detail::equal_mass_edges([&](double x) { return mixture_normal_cdf(m, L, x); }, B, lo, hi);
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

/// The law of |X_0 - c|^2: exact (isotropic) as a scaled non-central chi-square per component,
/// plus a moment-matched gamma per component (always available) for the edges.
struct RadialLaw {
  bool exact = false;
  std::vector<double> s2, lambda;        // exact: |x-c|^2 / s2_k ~ chi'^2(d, lambda_k)
  std::vector<double> shape, scale;      // gamma approximation
  std::vector<double> mean, sd;          // moments
};

RadialLaw radial_law(const Mixture& m, const std::vector<double>& center) {
  RadialLaw R;
  const std::vector<double> iso = isotropic_variances(m);
  R.exact = !iso.empty();
  R.s2.resize(m.K);
  R.lambda.resize(m.K);
  R.shape.resize(m.K);
  R.scale.resize(m.K);
  R.mean.resize(m.K);
  R.sd.resize(m.K);
#pragma omp parallel for schedule(static)
  for (int k = 0; k < m.K; ++k) {
    const double* mu = m.mean(k);
    double mean = 0, var = 0, delta2 = 0;
    for (int j = 0; j < m.d; ++j) {
      const double dl = mu[j] - center[j];
      const double v = m.var(k, j);
      delta2 += dl * dl;
      mean += v + dl * dl;
      var += 2 * v * v + 4 * v * dl * dl;
    }
    R.mean[k] = mean;
    R.sd[k] = std::sqrt(var);
    R.shape[k] = mean * mean / var;
    R.scale[k] = var / mean;
    if (R.exact) {
      R.s2[k] = iso[k];
      R.lambda[k] = delta2 / iso[k];
    }
  }
  return R;
}

double radial_cdf_exact(const Mixture& m, const RadialLaw& R, double x) {
  double F = 0;
  for (int k = 0; k < m.K; ++k) F += m.weights[k] * ncx2_cdf(x / R.s2[k], m.d, R.lambda[k]);
  return F;
}

double radial_cdf_approx(const Mixture& m, const RadialLaw& R, double x) {
  double F = 0;
  for (int k = 0; k < m.K; ++k) F += m.weights[k] * special::gamma_p(R.shape[k], x / R.scale[k]);
  return F;
}

std::vector<double> radial_edges(const Mixture& m, const RadialLaw& R, int B) {
  double hi = 0;
  for (int k = 0; k < m.K; ++k) hi = std::max(hi, R.mean[k] + 10 * R.sd[k]);
  if (R.exact && m.K <= kRadialExactEdgesMaxK)
    return tv_detail::equal_mass_edges([&](double x) { return radial_cdf_exact(m, R, x); }, B, 0.0, hi);
  return tv_detail::equal_mass_edges([&](double x) { return radial_cdf_approx(m, R, x); }, B, 0.0, hi);
}

std::vector<double> radial_masses(const Mixture& m, const RadialLaw& R, const std::vector<double>& edges) {
  const int B = static_cast<int>(edges.size()) - 1;
  std::vector<double> C(B + 1);
  C[0] = 0;
  C[B] = 1;
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 1; i < B; ++i) C[i] = radial_cdf_exact(m, R, edges[i]);
  std::vector<double> p(B);
  for (int b = 0; b < B; ++b) p[b] = std::max(0.0, C[b + 1] - C[b]);
  return p;
}

// ---- figures --------------------------------------------------------------------------------

}  // namespace

namespace tv_detail {

StatResult histogram_figures(const std::vector<uint64_t>& counts, const std::vector<double>& p,
                             uint64_t reference_n, int bootstrap, uint64_t seed) {
  GMMDIFF_EXPECTS(counts.size() == p.size() && !p.empty(), "histogram_figures: ", counts.size(),
                  " counts for ", p.size(), " target masses");
  GMMDIFF_EXPECTS(bootstrap >= kMinBootstrap, "--bootstrap ", bootstrap, ": at least ", kMinBootstrap,
                  " replicates are needed for a 95% interval");
  const std::size_t C = p.size();
  uint64_t n = 0;
  for (uint64_t c : counts) n += c;
  GMMDIFF_EXPECTS(n > 0, "no finite rows to estimate TV from");
  const double dn = static_cast<double>(n);
  const uint64_t m = reference_n;
  const double dm = static_cast<double>(m);
  constexpr double kSqrt2OverPi = 0.79788456080286535588;

  StatResult r;
  r.bins = static_cast<int>(C);
  r.exact_target = m == 0;
  r.reference_n = m;
  std::vector<double> yhat(C);
  double tv = 0, floor = 0;
  for (std::size_t b = 0; b < C; ++b) {
    yhat[b] = counts[b] / dn;
    tv += std::fabs(yhat[b] - p[b]);
    if (m == 0) floor += special::binomial_mad(dn, p[b]) / dn;
    else floor += kSqrt2OverPi * std::sqrt(p[b] * (1 - p[b]) * (1 / dn + 1 / dm));
  }
  tv *= 0.5;
  floor *= 0.5;
  r.tv = tv;
  r.floor = floor;

  // The worlds of the parametric bootstrap: a path from the null (alpha = 0: the sample's bins
  // equal the target's, at their pooled centre) to the observed histograms (alpha = 1), along
  // which the true binned TV is alpha * tv. For each alpha, `bootstrap` replicates of the plug-in
  // TV are drawn with common random numbers (the multinomial's normal approximation), so that
  // their mean and quantiles are smooth in alpha. docs/tv.md, "Bootstrap".
  std::vector<double> centre(C), dvec(C);
  for (std::size_t b = 0; b < C; ++b) {
    centre[b] = m == 0 ? p[b] : (dn * yhat[b] + dm * p[b]) / (dn + dm);
    dvec[b] = yhat[b] - p[b];
  }
  const int R = bootstrap;
  std::vector<double> Z(static_cast<std::size_t>(R) * C), W;
  {
    std::mt19937_64 g(seed);
    std::normal_distribution<double> N01;
    for (double& z : Z) z = N01(g);
    if (m > 0) {
      W.resize(Z.size());
      for (double& w : W) w = N01(g);
    }
  }
  struct Summary {
    double mean, q_lo, q_hi;
  };
  std::vector<double> pY(C), pX(C), sY(C), sX(C), reps(R);
  const double rn = 1 / std::sqrt(dn), rm = m > 0 ? 1 / std::sqrt(dm) : 0;
  auto replicates = [&](double alpha) {
    for (std::size_t b = 0; b < C; ++b) {
      pY[b] = std::max(0.0, centre[b] + alpha * (yhat[b] - centre[b]));
      pX[b] = m == 0 ? p[b] : std::max(0.0, centre[b] + alpha * (p[b] - centre[b]));
      sY[b] = std::sqrt(pY[b]);
      sX[b] = std::sqrt(pX[b]);
    }
    for (int r = 0; r < R; ++r) {
      const double* z = Z.data() + static_cast<std::size_t>(r) * C;
      const double* w = m > 0 ? W.data() + static_cast<std::size_t>(r) * C : nullptr;
      // e = (diag(s) z - p (s . z)) / sqrt(n) has the multinomial's covariance (diag(p) - p p^T) / n.
      double zs = 0, ws = 0;
      for (std::size_t b = 0; b < C; ++b) zs += sY[b] * z[b];
      if (w)
        for (std::size_t b = 0; b < C; ++b) ws += sX[b] * w[b];
      double t = 0;
      for (std::size_t b = 0; b < C; ++b) {
        double e = alpha * dvec[b] + rn * (sY[b] * z[b] - pY[b] * zs);
        if (w) e -= rm * (sX[b] * w[b] - pX[b] * ws);
        t += std::fabs(e);
      }
      reps[r] = 0.5 * t;
    }
    // The 2.5% and 97.5% points as mean -+ 1.96 sd of the replicates: far less Monte Carlo noise
    // than the extreme order statistics of 200 replicates (the replicates are sums of many
    // independent-ish terms, close to normal; docs/tv.md).
    double mean = 0, var = 0;
    for (double x : reps) mean += x;
    mean /= R;
    for (double x : reps) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / (R - 1));
    return Summary{mean, mean - kZ975 * sd, mean + kZ975 * sd};
  };
  const Summary at0 = replicates(0.0), at1 = replicates(1.0);
  // The alpha where a summary of the replicates equals the observed tv, as a TV (alpha * tv);
  // beyond alpha = 1 the basic bootstrap continues it (2 tv - summary at 1), which is continuous
  // at alpha = 1 and is the plain basic bootstrap far from the floor.
  auto solve = [&](double Summary::*field) {
    if (at0.*field >= tv) return 0.0;
    if (at1.*field <= tv) return 2 * tv - at1.*field;
    double lo = 0, hi = 1;
    for (int it = 0; it < 30; ++it) {
      const double mid = 0.5 * (lo + hi);
      (replicates(mid).*field < tv ? lo : hi) = mid;
    }
    return 0.5 * (lo + hi) * tv;
  };
  r.tv_corrected = std::clamp(solve(&Summary::mean), 0.0, 1.0);
  r.ci_lo = std::clamp(solve(&Summary::q_hi), 0.0, 1.0);
  r.ci_hi = std::clamp(solve(&Summary::q_lo), 0.0, 1.0);
  if (r.ci_hi < r.ci_lo) r.ci_hi = r.ci_lo;
  r.resolved = r.ci_lo > 0 && tv > floor;
  return r;
}

}  // namespace tv_detail

// ---- the plan -------------------------------------------------------------------------------

TvPlan::TvPlan(const Mixture& target, const TvOptions& opt, uint64_t n) : opt_(opt), n_(n) {
  GMMDIFF_EXPECTS(n > 0, "empty sample: there are no rows to estimate TV from");
  GMMDIFF_EXPECTS(target.K >= 1 && target.d >= 1 && static_cast<int>(target.weights.size()) == target.K &&
                      target.means.size() == static_cast<std::size_t>(target.K) * target.d,
                  "TV: the model is not a validated mixture (K = ", target.K, ", d = ", target.d, ")");
  GMMDIFF_EXPECTS(opt.bins == 0 || (opt.bins >= 2 && opt.bins <= kMaxBins), "--bins ", opt.bins,
                  ": must be 0 (from n) or in [2, ", kMaxBins, "]");
  GMMDIFF_EXPECTS(opt.bootstrap >= kMinBootstrap && opt.bootstrap <= kMaxBootstrap, "--bootstrap ",
                  opt.bootstrap, ": must be in [", kMinBootstrap, ", ", kMaxBootstrap, "]");
  GMMDIFF_EXPECTS(opt.reference_n < (uint64_t(1) << 48), "--reference-n ", opt.reference_n,
                  ": at most 2^48 rows (as --n)");
  const int d = target.d;
  const double dn = static_cast<double>(n);
  if (opt.bins > 0) {
    bins1_ = opt.bins;
    bins2_ = std::clamp(static_cast<int>(std::ceil(std::sqrt(static_cast<double>(opt.bins)))), 2, 64);
  } else {
    bins1_ = std::clamp(static_cast<int>(std::ceil(std::cbrt(dn) - 1e-9)), 8, 1000);
    bins2_ = std::clamp(static_cast<int>(std::ceil(std::pow(dn, 1.0 / 6.0) - 1e-9)), 4, 64);
  }

  const std::vector<tv_detail::StatRequest> reqs = tv_detail::parse_stats(opt.stats);

  // Directions (values 0..m-1) and what each statistic uses.
  std::vector<std::vector<double>> dirs;
  std::vector<int> dir_bins;
  auto add_dir = [&](const double* u, int B) {
    dirs.emplace_back(u, u + d);
    dir_bins.push_back(B);
    return static_cast<int>(dirs.size()) - 1;
  };
  int r_needed = 0;
  for (const auto& q : reqs) {
    if (q.kind == tv_detail::StatRequest::Means) r_needed = std::max(r_needed, q.count > 0 ? q.count : 4);
    if (q.kind == tv_detail::StatRequest::Means2d) r_needed = std::max(r_needed, 2);
  }
  tv_detail::Principal pr;
  if (r_needed > 0) pr = tv_detail::principal_directions(target, r_needed);
  int random_used = 0;
  int radial_state = -1;  // -1 none, 0 weighted mean of the means, 1 origin
  for (const auto& q : reqs) {
    switch (q.kind) {
      case tv_detail::StatRequest::Means: {
        const int want = q.count > 0 ? q.count : 4;
        const int r = std::min(want, pr.rank);
        if (pr.rank == 0) {
          notes_.push_back(q.token + ": skipped, the means span no direction (all means are zero)");
          break;
        }
        if (q.count > 0 && q.count > pr.rank)
          notes_.push_back(detail::cat(q.token, ": the means have rank ", pr.rank, ", so ", pr.rank,
                                       " direction(s)"));
        for (int i = 0; i < r; ++i) {
          Stat s;
          s.name = detail::cat("means[", i, "]");
          s.a = add_dir(pr.dirs.data() + static_cast<std::size_t>(i) * d, bins1_);
          stats_.push_back(s);
        }
        break;
      }
      case tv_detail::StatRequest::Means2d: {
        if (d < 2) {
          notes_.push_back(q.token + ": skipped, d = 1 has no 2-D projection");
          break;
        }
        if (pr.rank == 0) {
          notes_.push_back(q.token + ": skipped, the means span no direction (all means are zero)");
          break;
        }
        std::vector<double> u1(pr.dirs.begin(), pr.dirs.begin() + d), u2;
        if (pr.rank >= 2) u2.assign(pr.dirs.begin() + d, pr.dirs.begin() + 2 * d);
        else {
          u2 = tv_detail::orthogonal_unit(u1);
          notes_.push_back(q.token + ": the means have rank 1; the second axis is a fixed direction orthogonal to them");
        }
        Stat s;
        s.name = "means2d";
        s.dims = 2;
        s.a = add_dir(u1.data(), bins2_);
        s.b = add_dir(u2.data(), bins2_);
        stats_.push_back(s);
        break;
      }
      case tv_detail::StatRequest::Random: {
        const std::vector<double> all = tv_detail::random_directions(d, random_used + q.count, opt.seed);
        for (int i = random_used; i < random_used + q.count; ++i) {
          Stat s;
          s.name = detail::cat("random[", i, "]");
          s.a = add_dir(all.data() + static_cast<std::size_t>(i) * d, bins1_);
          stats_.push_back(s);
        }
        random_used += q.count;
        break;
      }
      case tv_detail::StatRequest::Axes: {
        const int mm = q.count > 0 ? q.count : std::min(d, 4);
        GMMDIFF_EXPECTS(mm <= d, "--stat ", q.token, ": there are only d = ", d, " coordinate axes");
        std::vector<double> e(d, 0.0);
        for (int j = 0; j < mm; ++j) {
          std::fill(e.begin(), e.end(), 0.0);
          e[j] = 1.0;
          Stat s;
          s.name = detail::cat("axis[", j, "]");
          s.a = add_dir(e.data(), bins1_);
          stats_.push_back(s);
        }
        break;
      }
      case tv_detail::StatRequest::File: {
        const std::vector<double> u = tv_detail::file_directions(q.path, d);
        const std::size_t rows = u.size() / d;
        for (std::size_t i = 0; i < rows; ++i) {
          Stat s;
          s.name = detail::cat("file[", i, "]");
          s.a = add_dir(u.data() + i * d, bins1_);
          stats_.push_back(s);
        }
        break;
      }
      case tv_detail::StatRequest::Radial: {
        const int want = q.origin ? 1 : 0;
        GMMDIFF_EXPECTS(radial_state < 0 || radial_state == want, "--stat: 'radial' and 'radial:0' cannot be ",
                        "combined (one radial statistic per run)");
        if (radial_state >= 0) break;  // a repeat of the same radial statistic
        radial_state = want;
        Stat s;
        s.name = q.origin ? "radial0" : "radial";
        s.a = -1;  // set below, once the number of directions is known
        stats_.push_back(s);
        break;
      }
    }
  }
  if (stats_.empty()) {
    std::string why;
    for (const auto& s : notes_) why += (why.empty() ? "" : "; ") + s;
    throw Error(detail::cat("--stat '", opt.stats, "': no statistic to evaluate (", why,
                            "); use random:M, axes or radial"));
  }

  // The spec: directions, the radial value, edges.
  const int mdirs = static_cast<int>(dirs.size());
  spec_.d = d;
  spec_.directions.resize(static_cast<std::size_t>(mdirs) * d);
  for (int v = 0; v < mdirs; ++v) std::copy(dirs[v].begin(), dirs[v].end(), spec_.directions.begin() + static_cast<std::size_t>(v) * d);
  spec_.radial = radial_state >= 0;
  if (spec_.radial) {
    spec_.center.assign(d, 0.0);
    if (radial_state == 0)
      for (int k = 0; k < target.K; ++k)
        for (int j = 0; j < d; ++j) spec_.center[j] += target.weights[k] * target.mean(k)[j];
  }
  spec_.edges.resize(mdirs + (spec_.radial ? 1 : 0));
  std::vector<Law1D> laws(mdirs);
  for (int v = 0; v < mdirs; ++v) {
    laws[v] = projected_law(target, dirs[v].data());
    spec_.edges[v] = projection_edges(target, laws[v], dir_bins[v]);
  }
  RadialLaw rlaw;
  if (spec_.radial) {
    rlaw = radial_law(target, spec_.center);
    spec_.edges[mdirs] = radial_edges(target, rlaw, bins1_);
  }

  // Target masses, and the 2-D pairs.
  for (auto& s : stats_) {
    if (s.a < 0) {  // the radial statistic
      s.a = mdirs;
      s.exact = rlaw.exact;
      if (s.exact) s.target_mass = radial_masses(target, rlaw, spec_.edges[mdirs]);
    } else if (s.dims == 1) {
      s.target_mass = projection_masses(target, laws[s.a], spec_.edges[s.a]);
    } else {
      s.pair = static_cast<int>(spec_.pairs.size());
      spec_.pairs.emplace_back(s.a, s.b);
      // Independent coordinates under every component: cov_k(a, b) = sum_j u_aj u_bj var(k, j) = 0.
      bool independent = true;
      if (target.cov != Covariance::Isotropic) {
        for (int k = 0; k < target.K && independent; ++k) {
          double cov = 0;
          for (int j = 0; j < d; ++j) cov += dirs[s.a][j] * dirs[s.b][j] * target.var(k, j);
          independent = std::fabs(cov) <= kIndependenceTol * laws[s.a].sd[k] * laws[s.b].sd[k];
        }
      }
      s.exact = independent;
      if (independent) {
        const int Ba = dir_bins[s.a], Bb = dir_bins[s.b];
        const std::vector<double> A = component_masses(laws[s.a], spec_.edges[s.a]);
        const std::vector<double> Bm = component_masses(laws[s.b], spec_.edges[s.b]);
        s.target_mass.assign(static_cast<std::size_t>(Ba) * Bb, 0.0);
#pragma omp parallel for schedule(static)
        for (int i = 0; i < Ba; ++i)
          for (int k = 0; k < target.K; ++k) {
            const double wa = target.weights[k] * A[static_cast<std::size_t>(k) * Ba + i];
            for (int j = 0; j < Bb; ++j)
              s.target_mass[static_cast<std::size_t>(i) * Bb + j] += wa * Bm[static_cast<std::size_t>(k) * Bb + j];
          }
      }
    }
    names_.push_back(s.name);
  }
  // The model is kept only when a reference sample will be drawn from it (K x d can be large).
  for (const auto& s : stats_)
    if (!s.exact) {
      target_ = target;
      break;
    }
}

void TvPlan::prepare_reference(Backend& be, Precision precision) {
  std::vector<int> need;
  for (std::size_t i = 0; i < stats_.size(); ++i)
    if (!stats_[i].exact && stats_[i].reference_n == 0) need.push_back(static_cast<int>(i));
  if (need.empty()) return;
  const uint64_t m = opt_.reference_n > 0 ? opt_.reference_n : n_;
  const int d = spec_.d;
  const int mdirs = static_cast<int>(spec_.directions.size() / std::max(d, 1));

  // A spec with only the values the reference is needed for.
  HistogramSpec ref;
  ref.d = d;
  std::vector<int> remap(spec_.edges.size(), -1);
  auto use_value = [&](int v) {
    if (remap[v] >= 0) return;
    if (v < mdirs) {
      int nd = 0;
      for (int w = 0; w < static_cast<int>(remap.size()); ++w)
        if (remap[w] >= 0 && w < mdirs) ++nd;
      remap[v] = nd;
      ref.directions.insert(ref.directions.end(), spec_.directions.begin() + static_cast<std::size_t>(v) * d,
                            spec_.directions.begin() + static_cast<std::size_t>(v + 1) * d);
    } else {
      ref.radial = true;
      ref.center = spec_.center;
    }
  };
  for (int i : need) {
    use_value(stats_[i].a);
    if (stats_[i].dims == 2) use_value(stats_[i].b);
  }
  const int ref_dirs = static_cast<int>(ref.directions.size() / d);
  if (ref.radial) remap[mdirs] = ref_dirs;
  ref.edges.resize(ref_dirs + (ref.radial ? 1 : 0));
  for (int v = 0; v < static_cast<int>(remap.size()); ++v)
    if (remap[v] >= 0) ref.edges[remap[v]] = spec_.edges[v];
  std::vector<int> ref_pair(stats_.size(), -1);
  for (int i : need)
    if (stats_[i].dims == 2) {
      ref_pair[i] = static_cast<int>(ref.pairs.size());
      ref.pairs.emplace_back(remap[stats_[i].a], remap[stats_[i].b]);
    }

  RunShape shape = run_shape(target_, precision, reference_seed(opt_.seed));
  const std::size_t max_rows = be.max_chunk_rows(shape);
  if (max_rows == 0) throw ResourceError("TV reference sample: not even one row fits the backend's memory");
  const std::size_t cap = std::max<std::size_t>(kChunkAlign, (std::size_t(64) << 20) / (8 * static_cast<std::size_t>(d)));
  std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(m, std::min(max_rows, cap)));
  if (chunk < m && chunk >= kChunkAlign) chunk -= chunk % kChunkAlign;
  shape.chunk_rows = chunk;
  be.begin(shape, target_);
  HistogramCounts counts = HistogramCounts::zeros(ref);
  for (uint64_t first = 0; first < m; first += chunk) {
    const std::size_t rows = static_cast<std::size_t>(std::min<uint64_t>(chunk, m - first));
    be.fill_target(first, rows);
    be.accumulate_histograms(ref, counts);
  }
  GMMDIFF_EXPECTS(counts.nonfinite_rows == 0, "TV reference sample: ", counts.nonfinite_rows,
                  " non-finite rows in an exact sample of the target (internal error)");
  const double dm = static_cast<double>(m);
  for (int i : need) {
    Stat& s = stats_[i];
    const std::vector<uint64_t>& c = s.dims == 2 ? counts.two_d[ref_pair[i]] : counts.one_d[remap[s.a]];
    s.target_mass.resize(c.size());
    for (std::size_t b = 0; b < c.size(); ++b) s.target_mass[b] = c[b] / dm;
    s.reference_n = m;
  }
}

TvReport TvPlan::evaluate(const HistogramCounts& counts) const {
  GMMDIFF_EXPECTS(counts.one_d.size() == spec_.edges.size() && counts.two_d.size() == spec_.pairs.size(),
                  "TV: histogram counts do not match the plan (", counts.one_d.size(), " values, ",
                  counts.two_d.size(), " pairs; the plan has ", spec_.edges.size(), " and ", spec_.pairs.size(), ")");
  GMMDIFF_EXPECTS(counts.rows > 0, "empty sample: there are no rows to estimate TV from");
  GMMDIFF_EXPECTS(counts.nonfinite_rows < counts.rows, "all ", counts.rows,
                  " rows of the sample hold NaN or Inf: no finite rows to estimate TV from");
  for (const auto& s : stats_)
    GMMDIFF_EXPECTS(!s.target_mass.empty(), "TV statistic ", s.name,
                    " needs an exact reference sample: call TvPlan::prepare_reference first");
  TvReport rep;
  rep.n = counts.rows;
  rep.nonfinite = counts.nonfinite_rows;
  rep.notes = notes_;
  rep.stats.resize(stats_.size());
  std::vector<std::string> errors(stats_.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < static_cast<int>(stats_.size()); ++i) {
    const Stat& s = stats_[i];
    try {
      const std::vector<uint64_t>& c = s.dims == 2 ? counts.two_d.at(s.pair) : counts.one_d.at(s.a);
      StatResult r = tv_detail::histogram_figures(c, s.target_mass, s.reference_n, opt_.bootstrap,
                                                  bootstrap_seed(opt_.seed, i));
      r.name = s.name;
      r.dims = s.dims;
      rep.stats[i] = r;
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  rep.best = 0;
  for (std::size_t i = 1; i < rep.stats.size(); ++i)
    if (rep.stats[i].tv_corrected > rep.stats[rep.best].tv_corrected) rep.best = i;
  return rep;
}

std::size_t tv_chunk_rows(const Backend& be, const RunShape& shape, uint64_t rows, std::size_t requested) {
  GMMDIFF_EXPECTS(rows > 0, "empty sample: there are no rows to estimate TV from");
  GMMDIFF_EXPECTS(shape.d >= 1, "TV: d = ", shape.d, " (need d >= 1)");
  const std::size_t max_rows = be.max_chunk_rows(shape);
  if (max_rows == 0) throw ResourceError("TV: not even one row of the sample fits the backend's memory");
  if (requested > 0) {
    const std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(requested, rows));
    if (chunk > max_rows)
      throw ResourceError(detail::cat("--chunk ", requested, " does not fit in the memory of the ", be.name(),
                                      " backend (at most ", max_rows, " rows of d = ", shape.d, ")"));
    return chunk;
  }
  const std::size_t cap = std::max<std::size_t>(1, kTvChunkBytes / (sizeof(double) * static_cast<std::size_t>(shape.d)));
  std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(rows, std::min(max_rows, cap)));
  if (chunk < rows && chunk >= kChunkAlign) chunk -= chunk % kChunkAlign;
  return chunk;
}

namespace {

/// Hands over rows first .. first + rows - 1 of the sample (rows x d doubles, row-major); the
/// pointer stays valid until the next call. Called in order, each chunk once.
using ChunkSource = std::function<const double*(uint64_t first, std::size_t rows)>;

/// The one path of tv_of_sample and tv_of_npy: the plan for n = rows, its reference sample, then
/// every chunk uploaded and binned in order. Only the counts are kept, and integer counts do not
/// depend on how the rows are cut into chunks.
/// `label` (e.g. "y.npy: ") starts the messages about the sample's values.
TvReport tv_of_chunks(const Mixture& target, uint64_t rows, const TvOptions& opt, Backend& be,
                      std::size_t chunk_rows, const ChunkSource& next, const std::string& label = "") {
  GMMDIFF_EXPECTS(rows > 0, "empty sample: there are no rows to estimate TV from");
  TvPlan plan(target, opt, rows);
  RunShape shape = run_shape(target, Precision::FP64, opt.seed);
  // Chosen before the reference sample is drawn, so that a --chunk that does not fit fails at once.
  const std::size_t chunk = tv_chunk_rows(be, shape, rows, chunk_rows);
  plan.prepare_reference(be, Precision::FP64);
  shape.chunk_rows = chunk;
  be.begin(shape, target);
  HistogramCounts counts = HistogramCounts::zeros(plan.spec());
  for (uint64_t first = 0; first < rows; first += chunk) {
    const std::size_t r = static_cast<std::size_t>(std::min<uint64_t>(chunk, rows - first));
    be.upload_chunk(next(first, r), first, r);
    be.accumulate_histograms(plan.spec(), counts);
  }
  GMMDIFF_EXPECTS(counts.nonfinite_rows < counts.rows, label, "all ", counts.rows,
                  " rows of the sample hold NaN or Inf: no finite rows to estimate TV from");
  return plan.evaluate(counts);
}

}  // namespace

TvReport tv_of_sample(const Mixture& target, const double* y, uint64_t rows, const TvOptions& opt, Backend& be,
                      std::size_t chunk_rows) {
  const std::size_t d = static_cast<std::size_t>(target.d);
  return tv_of_chunks(target, rows, opt, be, chunk_rows,
                      [&](uint64_t first, std::size_t) { return y + first * d; });
}

void check_tv_sample(const NpyReader& sample, int target_d) {
  const std::vector<uint64_t>& shape = sample.shape();
  GMMDIFF_EXPECTS(shape.size() == 1 || shape.size() == 2, sample.path(), ": a sample must be an (n, d) array, got ",
                  shape.size(), " dimensions");
  GMMDIFF_EXPECTS(sample.rows() > 0, sample.path(), ": empty sample (0 rows)");
  GMMDIFF_EXPECTS(sample.cols() == static_cast<uint64_t>(target_d), sample.path(), ": the sample has d = ",
                  sample.cols(), " columns but the model has d = ", target_d);
}

TvReport tv_of_npy(const Mixture& target, NpyReader& sample, const TvOptions& opt, Backend& be,
                   std::size_t chunk_rows) {
  check_tv_sample(sample, target.d);
  GMMDIFF_EXPECTS(sample.rows_read() == 0, sample.path(), ": ", sample.rows_read(),
                  " rows were already read; the TV needs the sample from its first row");
  const std::size_t d = static_cast<std::size_t>(target.d);
  std::vector<double> buf;  // one chunk of doubles: the only memory that holds sample values
  auto read_chunk = [&](uint64_t first, std::size_t r) {
    if (buf.size() < r * d) {  // the first chunk is the largest: one allocation
      try {
        buf.resize(r * d);
      } catch (const std::bad_alloc&) {
        throw ResourceError(detail::cat(sample.path(), ": cannot allocate a chunk of ", r, " rows x d = ", d,
                                        " doubles (", (r * d * sizeof(double)) >> 20, " MiB); try a smaller --chunk"));
      }
    }
    const uint64_t got = sample.read_rows(buf.data(), r);
    GMMDIFF_EXPECTS(got == r, sample.path(), ": read ", got, " rows at row ", first, " where ", r, " were due");
    return static_cast<const double*>(buf.data());
  };
  return tv_of_chunks(target, sample.rows(), opt, be, chunk_rows, read_chunk, sample.path() + ": ");
}

}  // namespace gmmdiff
