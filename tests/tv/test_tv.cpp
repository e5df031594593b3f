// Tests of the TV module (host/tv/, and the CPU histograms of host/cpu/cpu_histogram.cpp):
// statistics, bins, exact target masses against quadrature, the figures against
// closed-form binned TVs of K = 1 targets, the bootstrap's calibration, and bad input.
#include "gmmdiff/tv.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "util/cli_util.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "util/quadrature_util.hpp"
#include "util/sample_util.hpp"
#include "core/special_functions.hpp"

namespace gmmdiff {
namespace {

using gmmdiff::test::integrate;
using gmmdiff::test::LD;
using test::draw;
using test::isotropic;
using test::temp_path;
using test::write_npy_raw;

constexpr double kMassQuadratureTol = 1e-11;   // exact bin masses against long double quadrature
constexpr double kEqualMassRelTol = 3e-3;      // bins hold 1/B to within this fraction of 1/B
constexpr double kOrthoTol = 1e-12;            // orthonormality of directions
constexpr double kEigenResidualTol = 1e-9;     // |M^T M u - s^2 u| / s_1^2 for exact low rank
constexpr double kNullFloorBand = 0.5;         // an exact sample's tv lies within floor * (1 +- this)
constexpr double kMinCoverage = 0.85;          // nominal 95% CI; simulations give 0.88-0.97
constexpr double kMaxNullResolvedRate = 0.08;  // nominal 2.5% (one-sided test of the null)

// ---- helpers --------------------------------------------------------------------------------

/// Binned TV between masses P (sample law) and p (target).
double binned_tv(const std::vector<double>& P, const std::vector<double>& p) {
  double t = 0;
  for (std::size_t b = 0; b < p.size(); ++b) t += std::fabs(P[b] - p[b]);
  return 0.5 * t;
}

/// Masses of N(mean, sd^2) in the bins of edges.
std::vector<double> normal_masses(const std::vector<double>& e, double mean, double sd) {
  std::vector<double> P(e.size() - 1);
  for (std::size_t b = 0; b + 1 < e.size(); ++b)
    P[b] = special::normal_interval((e[b] - mean) / sd, (e[b + 1] - mean) / sd);
  return P;
}

/// Masses of v * chi'^2(k, lambda) in the bins of edges.
std::vector<double> scaled_ncx2_masses(const std::vector<double>& e, double v, double k, double lambda) {
  std::vector<double> P(e.size() - 1);
  for (std::size_t b = 0; b + 1 < e.size(); ++b) {
    const double hi = std::isinf(e[b + 1]) ? 1.0 : special::ncx2_cdf(e[b + 1] / v, k, lambda);
    const double lo = e[b] <= 0 ? 0.0 : special::ncx2_cdf(e[b] / v, k, lambda);
    P[b] = hi - lo;
  }
  return P;
}

// ---- statistics -----------------------------------------------------------------------------

TEST(TvStats, ParsesTheGrammar) {
  const auto r = tv_detail::parse_stats("means, means:2,means2d,random:32,axes,axes:3,file:a:b.npy,radial,radial:0");
  ASSERT_EQ(r.size(), 9u);
  EXPECT_EQ(r[0].kind, tv_detail::StatRequest::Means);
  EXPECT_EQ(r[0].count, 0);
  EXPECT_EQ(r[1].count, 2);
  EXPECT_EQ(r[2].kind, tv_detail::StatRequest::Means2d);
  EXPECT_EQ(r[3].kind, tv_detail::StatRequest::Random);
  EXPECT_EQ(r[3].count, 32);
  EXPECT_EQ(r[5].count, 3);
  EXPECT_EQ(r[6].path, "a:b.npy");
  EXPECT_FALSE(r[7].origin);
  EXPECT_TRUE(r[8].origin);
}

TEST(TvStats, BadTokensGiveOneLineListingWhatIsAllowed) {
  for (const std::string bad : {"foo", "means:x", "random", "random:0", "axes:-1", "radial:1", "means,,radial",
                                "file:", "means2d:3"}) {
    SCOPED_TRACE("spec = " + bad);
    try {
      tv_detail::parse_stats(bad);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      const std::string w = e.what();
      EXPECT_EQ(w.find('\n'), std::string::npos);
      EXPECT_NE(w.find("allowed: means[:r], means2d, random:M, axes[:m], file:PATH.npy, radial[:0]"),
                std::string::npos)
          << w;
    }
  }
}

TEST(TvStats, PrincipalDirectionsOfLowRankMeans) {
  // K = 5 means in a 3-D subspace of R^40: rank 3, directions orthonormal, in the span, and
  // eigenvectors of M^T M whose eigenvalues carry all of |M|_F^2.
  const int d = 40, K = 5;
  std::mt19937_64 g(11);
  std::normal_distribution<double> N01;
  std::vector<double> basis(3 * d), coef(K * 3);
  for (double& x : basis) x = N01(g);
  for (double& x : coef) x = 3 * N01(g);
  Mixture m;
  m.K = K;
  m.d = d;
  m.means.assign(K * d, 0.0);
  for (int k = 0; k < K; ++k)
    for (int a = 0; a < 3; ++a)
      for (int j = 0; j < d; ++j) m.means[k * d + j] += coef[k * 3 + a] * basis[a * d + j];
  m.sd = {1.0};
  m.weights.assign(K, 1.0 / K);
  validate(m);
  const tv_detail::Principal pr = tv_detail::principal_directions(m, 4);
  EXPECT_EQ(pr.rank, 3);
  ASSERT_EQ(pr.dirs.size(), 3u * d);
  double frob = 0, sum_s2 = 0;
  for (double x : m.means) frob += x * x;
  for (int a = 0; a < 3; ++a) {
    sum_s2 += pr.singular[a] * pr.singular[a];
    if (a > 0) {
      EXPECT_GE(pr.singular[a - 1], pr.singular[a]);
    }
    const double* u = pr.dirs.data() + a * d;
    for (int b = 0; b <= a; ++b) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += u[j] * pr.dirs[b * d + j];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, kOrthoTol) << "a = " << a << ", b = " << b;
    }
    // Eigen-equation: M^T (M u) = s^2 u.
    std::vector<double> Mu(K, 0.0), res(d, 0.0);
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) Mu[k] += m.means[k * d + j] * u[j];
    for (int k = 0; k < K; ++k)
      for (int j = 0; j < d; ++j) res[j] += m.means[k * d + j] * Mu[k];
    double r2 = 0;
    for (int j = 0; j < d; ++j) r2 += std::pow(res[j] - pr.singular[a] * pr.singular[a] * u[j], 2);
    EXPECT_LE(std::sqrt(r2), kEigenResidualTol * pr.singular[0] * pr.singular[0]) << "direction " << a;
  }
  EXPECT_NEAR(sum_s2 / frob, 1.0, 1e-12);
}

TEST(TvStats, PrincipalDirectionsOfLargeFullRankMeansAreFast) {
  const int d = 2000, K = 2000;
  PresetParams p;
  p.name = "random-sphere";
  p.d = d;
  p.K = K;
  p.radius = 5;
  const Mixture m = make_preset(p);
  const auto t0 = std::chrono::steady_clock::now();
  const tv_detail::Principal pr = tv_detail::principal_directions(m, 4);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  SCOPED_TRACE(testing::Message() << "K = d = " << d << ", " << pr.iterations << " iterations, " << s << " s");
  EXPECT_LT(s, 10.0);
  EXPECT_GE(pr.rank, 4);
  ASSERT_EQ(pr.dirs.size(), 4u * d);
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b <= a; ++b) {
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += pr.dirs[a * d + j] * pr.dirs[b * d + j];
      EXPECT_NEAR(dot, a == b ? 1.0 : 0.0, kOrthoTol);
    }
}

TEST(TvStats, RandomDirectionsAreUnitAndSeeded) {
  const auto a = tv_detail::random_directions(7, 3, 5), b = tv_detail::random_directions(7, 3, 5),
             c = tv_detail::random_directions(7, 3, 6);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  for (int i = 0; i < 3; ++i) {
    double n2 = 0;
    for (int j = 0; j < 7; ++j) n2 += a[i * 7 + j] * a[i * 7 + j];
    EXPECT_NEAR(n2, 1.0, kOrthoTol);
  }
}

TEST(TvPlan, BinsFromSampleSize) {
  const Mixture m = isotropic(2, {{1, 0}}, {1.0}, {1.0});
  TvOptions o;
  o.stats = "axes:1,means2d";
  struct Case {
    uint64_t n;
    int b1, b2;
  };
  for (const Case c : {Case{10, 8, 4}, Case{1000000, 100, 10}, Case{123456, 50, 8}, Case{uint64_t(1e12), 1000, 64}}) {
    SCOPED_TRACE(testing::Message() << "n = " << c.n);
    TvPlan plan(m, o, c.n);
    EXPECT_EQ(plan.bins_1d(), c.b1);
    EXPECT_EQ(plan.bins_2d_axis(), c.b2);
    EXPECT_EQ(plan.spec().edges[0].size(), static_cast<std::size_t>(c.b1 + 1));
    EXPECT_EQ(plan.stats()[1].target_mass.size(), static_cast<std::size_t>(c.b2 * c.b2));
  }
  o.bins = 30;
  TvPlan plan(m, o, 100);
  EXPECT_EQ(plan.bins_1d(), 30);
  EXPECT_EQ(plan.bins_2d_axis(), 6);
}

TEST(TvPlan, EdgesHoldEqualTargetMass) {
  const Mixture m = isotropic(3, {{2, 0, 1}, {-1, 0.5, 0}}, {0.5, 1.5}, {0.3, 0.7});
  TvOptions o;
  o.stats = "means,random:2,radial";
  TvPlan plan(m, o, 100000);
  for (const auto& s : plan.stats()) {
    SCOPED_TRACE(s.name);
    const double B = static_cast<double>(s.target_mass.size());
    double total = 0;
    for (double p : s.target_mass) {
      EXPECT_NEAR(p * B, 1.0, kEqualMassRelTol);
      total += p;
    }
    EXPECT_NEAR(total, 1.0, 1e-13);
    const auto& e = plan.spec().edges[s.a];
    EXPECT_TRUE(std::isinf(e.front()) && e.front() < 0 && std::isinf(e.back()));
    for (std::size_t i = 1; i < e.size(); ++i) EXPECT_LT(e[i - 1], e[i]);
  }
}

TEST(TvPlan, ProjectionMassesMatchQuadrature) {
  const Mixture m = isotropic(2, {{2, 0}, {-1, 0.5}}, {0.5, 1.5}, {0.3, 0.7});
  TvOptions o;
  o.stats = "means,random:2";
  o.bins = 16;
  TvPlan plan(m, o, 1000);
  for (const auto& s : plan.stats()) {
    SCOPED_TRACE(s.name);
    const double* u = plan.spec().directions.data() + s.a * 2;
    std::vector<double> mk(2), sk(2);
    for (int k = 0; k < 2; ++k) {
      mk[k] = u[0] * m.mean(k)[0] + u[1] * m.mean(k)[1];
      sk[k] = m.sd[k];
    }
    auto pdf = [&](LD x) {
      LD f = 0;
      for (int k = 0; k < 2; ++k)
        f += m.weights[k] * std::exp(-(x - mk[k]) * (x - mk[k]) / (2 * sk[k] * sk[k])) / (sk[k] * std::sqrt(2 * M_PIl));
      return f;
    };
    const auto& e = plan.spec().edges[s.a];
    for (std::size_t b = 0; b + 1 < e.size(); ++b) {
      const LD lo = std::isinf(e[b]) ? -40.0L : e[b], hi = std::isinf(e[b + 1]) ? 40.0L : e[b + 1];
      const LD ref = integrate(pdf, lo, hi, 400);
      EXPECT_NEAR(s.target_mass[b], static_cast<double>(ref), kMassQuadratureTol) << "bin " << b;
    }
  }
}

TEST(TvPlan, RadialMassesMatchQuadrature) {
  // |x - c|^2 / s_k^2 ~ chi'^2(d, |mu_k - c|^2 / s_k^2); the reference CDF conditions on the
  // coordinate along mu_k - c: (Z + sqrt(lambda))^2 + chi^2_{d-1}, integrated in long double.
  const int d = 5;
  const Mixture m = isotropic(d, {{2, 0, 1, 0, 0}, {-1, 0.5, 0, 0, 3}}, {0.7, 1.3}, {0.4, 0.6});
  TvOptions o;
  o.stats = "radial";
  o.bins = 12;
  TvPlan plan(m, o, 1000);
  const auto& s = plan.stats()[0];
  ASSERT_TRUE(s.exact);
  const auto& c = plan.spec().center;
  const auto& e = plan.spec().edges[s.a];
  auto cdf_ref = [&](double x) {
    LD F = 0;
    for (int k = 0; k < 2; ++k) {
      double lam = 0;
      for (int j = 0; j < d; ++j) lam += std::pow(m.mean(k)[j] - c[j], 2);
      lam /= m.sd[k] * m.sd[k];
      const LD t = x / (m.sd[k] * m.sd[k]), sl = std::sqrt(static_cast<LD>(lam));
      const LD cst = 1 / std::sqrt(2 * M_PIl);
      F += m.weights[k] * integrate(
                              [&](LD v) {
                                return cst * (std::exp(-(v - sl) * (v - sl) / 2) + std::exp(-(v + sl) * (v + sl) / 2)) *
                                       static_cast<LD>(special::gamma_p((d - 1) / 2.0, static_cast<double>((t - v * v) / 2)));
                              },
                              0, std::sqrt(t), 400);
    }
    return F;
  };
  LD prev = 0;
  for (std::size_t b = 0; b + 1 < e.size(); ++b) {
    const LD next = std::isinf(e[b + 1]) ? 1.0L : cdf_ref(e[b + 1]);
    EXPECT_NEAR(s.target_mass[b], static_cast<double>(next - prev), kMassQuadratureTol) << "bin " << b;
    prev = next;
  }
}

TEST(TvPlan, PairMassesAreProductsPerComponent) {
  const Mixture m = isotropic(3, {{2, 0, 0}, {-1, 0.5, 0}, {0, 1, 1}}, {0.5, 1.5, 1.0}, {0.3, 0.3, 0.4});
  TvOptions o;
  o.stats = "means2d";
  TvPlan plan(m, o, 1000000);
  const auto& s = plan.stats()[0];
  ASSERT_EQ(s.dims, 2);
  ASSERT_TRUE(s.exact);
  const auto& ea = plan.spec().edges[s.a];
  const auto& eb = plan.spec().edges[s.b];
  const double* ua = plan.spec().directions.data() + s.a * 3;
  const double* ub = plan.spec().directions.data() + s.b * 3;
  const int Ba = static_cast<int>(ea.size()) - 1, Bb = static_cast<int>(eb.size()) - 1;
  for (int i = 0; i < Ba; ++i)
    for (int j = 0; j < Bb; ++j) {
      double ref = 0;
      for (int k = 0; k < 3; ++k) {
        double ma = 0, mb = 0;
        for (int t = 0; t < 3; ++t) {
          ma += ua[t] * m.mean(k)[t];
          mb += ub[t] * m.mean(k)[t];
        }
        ref += m.weights[k] * normal_masses(ea, ma, m.sd[k])[i] * normal_masses(eb, mb, m.sd[k])[j];
      }
      EXPECT_NEAR(s.target_mass[i * Bb + j], ref, 1e-15) << "cell " << i << ", " << j;
    }
}

TEST(TvPlan, RankZeroMeansAreSkippedOrRefused) {
  const Mixture m = isotropic(3, {{0, 0, 0}, {0, 0, 0}}, {1.0, 2.0}, {0.5, 0.5});
  TvOptions o;
  o.stats = "means,means2d,radial";
  TvPlan plan(m, o, 1000);
  ASSERT_EQ(plan.stats().size(), 1u);
  EXPECT_EQ(plan.stats()[0].name, "radial");
  EXPECT_EQ(plan.notes().size(), 2u);
  o.stats = "means";
  EXPECT_THROW(TvPlan(m, o, 1000), Error);
}

TEST(TvPlan, BadOptionsAreRefused) {
  const Mixture m = isotropic(2, {{1, 0}}, {1.0}, {1.0});
  auto plan_with = [&](const std::string& stats, int bins, int boot, uint64_t n) {
    TvOptions o;
    o.stats = stats;
    o.bins = bins;
    o.bootstrap = boot;
    TvPlan p(m, o, n);
  };
  EXPECT_THROW(plan_with("axes", 1, 200, 100), Error);
  EXPECT_THROW(plan_with("axes", 0, 5, 100), Error);
  EXPECT_THROW(plan_with("axes:3", 0, 200, 100), Error);
  EXPECT_THROW(plan_with("radial,radial:0", 0, 200, 100), Error);
  EXPECT_THROW(plan_with("axes", 0, 200, 0), Error);
  EXPECT_NO_THROW(plan_with("radial,radial", 0, 200, 100));
}

// ---- the CPU histograms ---------------------------------------------------------------------

TEST(TvHistogram, CpuMatchesDirectBinningInBothPrecisions) {
  const int d = 5;
  const Mixture m = isotropic(d, {{2, 0, 1, 0, 0}, {-1, 0.5, 0, 0, 3}}, {0.7, 1.3}, {0.4, 0.6});
  TvOptions o;
  o.stats = "means,means2d,random:2,radial";
  const uint64_t n = 3000;
  TvPlan plan(m, o, n);
  const HistogramSpec& spec = plan.spec();
  std::vector<double> y = draw(m, n, 3);
  y[7 * d + 2] = NAN;
  y[100 * d] = INFINITY;
  for (Precision prec : {Precision::FP64, Precision::FP32}) {
    // Direct: the values from the data as the backend holds them (float for FP32).
    HistogramCounts ref = HistogramCounts::zeros(spec);
    const int mdirs = static_cast<int>(spec.directions.size() / d);
    for (uint64_t i = 0; i < n; ++i) {
      std::vector<double> row(d);
      bool finite = true;
      for (int j = 0; j < d; ++j) {
        row[j] = prec == Precision::FP32 ? static_cast<double>(static_cast<float>(y[i * d + j])) : y[i * d + j];
        finite = finite && std::isfinite(row[j]);
      }
      ++ref.rows;
      if (!finite) {
        ++ref.nonfinite_rows;
        continue;
      }
      std::vector<int> bins(spec.num_values());
      for (int v = 0; v < spec.num_values(); ++v) {
        double x = 0;
        for (int j = 0; j < d; ++j)
          x += v < mdirs ? row[j] * spec.directions[v * d + j] : std::pow(row[j] - spec.center[j], 2);
        const auto& e = spec.edges[v];
        bins[v] = static_cast<int>(std::upper_bound(e.begin() + 1, e.end() - 1, x) - (e.begin() + 1));
        ++ref.one_d[v][bins[v]];
      }
      for (std::size_t p = 0; p < spec.pairs.size(); ++p)
        ++ref.two_d[p][bins[spec.pairs[p].first] * (spec.edges[spec.pairs[p].second].size() - 1) +
                       bins[spec.pairs[p].second]];
    }
    for (int threads : {1, 2}) {
      SCOPED_TRACE(testing::Message() << "precision " << to_string(prec) << ", threads " << threads);
      auto be = make_backend("cpu", threads);
      RunShape shape;
      shape.d = d;
      shape.K = m.K;
      shape.precision = prec;
      shape.chunk_rows = 1024;
      be->begin(shape, m);
      HistogramCounts c = HistogramCounts::zeros(spec);
      for (uint64_t first = 0; first < n; first += 1024) {
        const std::size_t rows = std::min<uint64_t>(1024, n - first);
        be->upload_chunk(y.data() + first * d, first, rows);
        be->accumulate_histograms(spec, c);
      }
      EXPECT_EQ(c.rows, n);
      EXPECT_EQ(c.nonfinite_rows, 2u);
      EXPECT_EQ(c.one_d, ref.one_d);
      EXPECT_EQ(c.two_d, ref.two_d);
    }
  }
}

// ---- figures against closed forms -------------------------------------------------------------

TEST(TvClosedForm, GaussianSampleAgainstGaussianTargetCiContainsExactBinnedTv) {
  // Sample Y ~ N(m, v I) exactly; target X_0 ~ N(mu, s^2 I) (K = 1). Projections and the radial
  // statistic have closed-form laws under both, so the binned TV is exact for the plan's edges.
  // 12 checks of a 95% interval (4 statistics x 3 sizes; simulated coverage 0.90-0.97 each):
  // at most one may miss, and only by less than half the interval's width.
  const int d = 3;
  const std::vector<double> mu = {1.0, 0.0, 0.0}, ym = {1.08, 0.05, 0.0};
  const double s = 1.0, v = 1.1 * 1.1;
  const Mixture target = isotropic(d, {mu}, {s}, {1.0});
  Mixture law = isotropic(d, {ym}, {std::sqrt(v)}, {1.0});
  TvOptions o;
  o.stats = "means,axes:2,radial";
  o.seed = 7;
  auto be = make_backend("cpu", 0);
  int checks = 0, misses = 0;
  for (uint64_t n : {uint64_t(10000), uint64_t(100000), uint64_t(1000000)}) {
    const std::vector<double> y = draw(law, n, 100 + n);
    const TvReport rep = tv_of_sample(target, y.data(), n, o, *be);
    const TvPlan plan(target, o, n);
    ASSERT_EQ(rep.stats.size(), plan.stats().size());
    for (std::size_t i = 0; i < rep.stats.size(); ++i) {
      const auto& ps = plan.stats()[i];
      const auto& r = rep.stats[i];
      const auto& e = plan.spec().edges[ps.a];
      std::vector<double> P;
      if (ps.name == "radial") {
        double lam = 0;  // centre = mu (K = 1)
        for (int j = 0; j < d; ++j) lam += (ym[j] - mu[j]) * (ym[j] - mu[j]);
        P = scaled_ncx2_masses(e, v, d, lam / v);
      } else {
        const double* u = plan.spec().directions.data() + ps.a * d;
        double mean = 0;
        for (int j = 0; j < d; ++j) mean += u[j] * ym[j];
        P = normal_masses(e, mean, std::sqrt(v));
      }
      const double tau = binned_tv(P, ps.target_mass);
      SCOPED_TRACE(testing::Message() << "n = " << n << ", stat " << r.name << ", bins " << r.bins << ": exact binned TV "
                                      << tau << ", tv " << r.tv << ", tv_corrected " << r.tv_corrected << ", floor "
                                      << r.floor << ", CI [" << r.ci_lo << ", " << r.ci_hi << "]");
      ++checks;
      const double width = r.ci_hi - r.ci_lo;
      if (tau < r.ci_lo || tau > r.ci_hi) {
        ++misses;
        EXPECT_LT(std::max(r.ci_lo - tau, tau - r.ci_hi), 0.5 * width) << "a miss by more than half the width";
      }
      EXPECT_TRUE(r.exact_target);
      EXPECT_TRUE(r.resolved);  // tau is 4-20 floors here
      EXPECT_NEAR(r.tv_corrected, tau, width);
    }
  }
  EXPECT_LE(misses, 1) << "of " << checks << " checks";
}

TEST(TvClosedForm, ExactSampleAgainstItselfStaysWithinTheFloor) {
  const Mixture m = isotropic(4, {{2, 0, 1, 0}, {-1, 0.5, 0, 1}, {0, -2, 0, 0}}, {0.7, 1.3, 1.0}, {0.3, 0.3, 0.4});
  TvOptions o;
  o.stats = "means,means2d,random:3,axes:2,radial";
  o.seed = 3;
  const uint64_t n = 200000;
  const std::vector<double> y = draw(m, n, 99);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  int resolved = 0;
  for (const auto& r : rep.stats) {
    SCOPED_TRACE(testing::Message() << r.name << ": tv " << r.tv << ", floor " << r.floor << ", CI [" << r.ci_lo
                                    << ", " << r.ci_hi << "], tv_corrected " << r.tv_corrected);
    EXPECT_NEAR(r.tv / r.floor, 1.0, kNullFloorBand);
    EXPECT_LT(r.tv_corrected, r.floor);
    EXPECT_TRUE(r.exact_target);
    resolved += r.resolved;
  }
  EXPECT_LE(resolved, 1) << "of " << rep.stats.size() << " statistics (nominal rate 2.5% each)";
  EXPECT_EQ(rep.nonfinite, 0u);
  EXPECT_EQ(rep.n, n);
}

TEST(TvClosedForm, TwoShiftedGaussians) {
  // X_0 ~ N((2, 0), I), Y ~ N((2 + delta, 0), I): the projection on e_1 has TV 2 Phi(delta/2) - 1,
  // binned TV a little below; the orthogonal axis has TV 0.
  const double delta = 0.1;
  const Mixture target = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  const Mixture law = isotropic(2, {{2 + delta, 0}}, {1.0}, {1.0});
  TvOptions o;
  o.stats = "axes:2";
  const uint64_t n = 400000;
  const std::vector<double> y = draw(law, n, 5);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(target, y.data(), n, o, *be);
  const TvPlan plan(target, o, n);
  const double continuous = 2 * special::normal_cdf(delta / 2) - 1;
  const double tau = binned_tv(normal_masses(plan.spec().edges[0], 2 + delta, 1.0), plan.stats()[0].target_mass);
  const StatResult& a0 = rep.stats[0];
  const StatResult& a1 = rep.stats[1];
  SCOPED_TRACE(testing::Message() << "continuous TV " << continuous << ", binned " << tau << "; axis[0] tv " << a0.tv
                                  << " CI [" << a0.ci_lo << ", " << a0.ci_hi << "]; axis[1] tv " << a1.tv << " CI ["
                                  << a1.ci_lo << ", " << a1.ci_hi << "]");
  EXPECT_LE(tau, continuous);
  EXPECT_GE(tau, 0.95 * continuous);
  EXPECT_LE(a0.ci_lo, tau);
  EXPECT_GE(a0.ci_hi, tau);
  EXPECT_TRUE(a0.resolved);
  EXPECT_EQ(rep.best, 0u);
  EXPECT_EQ(a1.ci_lo, 0.0);
  EXPECT_FALSE(a1.resolved);
}

// ---- calibration of the bootstrap -------------------------------------------------------------

void multinomial(std::mt19937_64& g, uint64_t n, const std::vector<double>& p, std::vector<uint64_t>& out) {
  out.assign(p.size(), 0);
  double rest = 1;
  uint64_t left = n;
  for (std::size_t b = 0; b + 1 < p.size() && left > 0; ++b) {
    const double q = std::clamp(p[b] / rest, 0.0, 1.0);
    const uint64_t x = q >= 1 ? left : std::binomial_distribution<long long>(left, q)(g);
    out[b] = x;
    left -= x;
    rest -= p[b];
  }
  out.back() += left;
}

TEST(TvBootstrap, CoverageAndFalseResolutionRate) {
  const int B = 30, reps = 150;
  const uint64_t n = 20000;
  std::vector<double> p(B), pattern(B);
  double z = 0, spread = 0;
  for (int b = 0; b < B; ++b) z += (p[b] = 1 + 0.5 * std::cos(1.3 * b));
  for (int b = 0; b < B; ++b) {
    p[b] /= z;
    pattern[b] = std::sin(2 * M_PI * (b + 0.5) / B) * p[b];
    spread += std::fabs(pattern[b]);
  }
  for (uint64_t m : {uint64_t(0), uint64_t(20000)}) {
    double floor = 0;
    for (int b = 0; b < B; ++b)
      floor += m == 0 ? special::binomial_mad(n, p[b]) / n
                      : std::sqrt(2 / M_PI) * std::sqrt(p[b] * (1 - p[b]) * (1.0 / n + 1.0 / m));
    floor /= 2;
    for (double ratio : {0.0, 5.0}) {
      std::vector<double> P(B);
      for (int b = 0; b < B; ++b) P[b] = p[b] + ratio * floor / (0.5 * spread) * pattern[b];
      const double tau = binned_tv(P, p);
      std::mt19937_64 g(1234 + m + static_cast<uint64_t>(ratio));
      int covered = 0, resolved = 0;
      double mean_bc = 0;
      for (int r = 0; r < reps; ++r) {
        std::vector<uint64_t> c, rc;
        multinomial(g, n, P, c);
        std::vector<double> target = p;
        if (m > 0) {
          multinomial(g, m, p, rc);
          for (int b = 0; b < B; ++b) target[b] = rc[b] / static_cast<double>(m);
        }
        const StatResult f = tv_detail::histogram_figures(c, target, m, 200, 1000 + r);
        covered += f.ci_lo <= tau && tau <= f.ci_hi;
        resolved += f.resolved;
        mean_bc += f.tv_corrected / reps;
      }
      SCOPED_TRACE(testing::Message() << "reference n " << m << ", true binned TV " << tau << " (" << ratio
                                      << " floors): coverage " << covered / double(reps) << ", resolved "
                                      << resolved / double(reps) << ", mean tv_corrected " << mean_bc);
      EXPECT_GE(covered, kMinCoverage * reps);
      if (ratio == 0) {
        EXPECT_LE(resolved, kMaxNullResolvedRate * reps);
        EXPECT_LT(mean_bc, 0.5 * floor);
      } else {
        EXPECT_EQ(resolved, reps);
        EXPECT_NEAR(mean_bc / tau, 1.0, 0.05);
      }
    }
  }
}

// ---- non-finite rows, reference samples, reports ----------------------------------------------

TEST(TvSample, NonFiniteRowsAreCountedAndExcluded) {
  const Mixture m = isotropic(2, {{1, 0}, {-1, 0}}, {1.0, 1.0}, {0.5, 0.5});
  TvOptions o;
  o.stats = "means,radial";
  o.bins = 20;
  const uint64_t n = 5000;
  std::vector<double> y = draw(m, n, 8), clean;
  const std::vector<uint64_t> bad_rows = {0, 17, 4999};
  y[0] = NAN;
  y[17 * 2 + 1] = -INFINITY;
  y[4999 * 2] = INFINITY;
  for (uint64_t i = 0; i < n; ++i)
    if (std::find(bad_rows.begin(), bad_rows.end(), i) == bad_rows.end()) clean.insert(clean.end(), &y[2 * i], &y[2 * i + 2]);
  auto be = make_backend("cpu", 0);
  const TvReport with = tv_of_sample(m, y.data(), n, o, *be);
  const TvReport without = tv_of_sample(m, clean.data(), n - 3, o, *be);
  EXPECT_EQ(with.n, n);
  EXPECT_EQ(with.nonfinite, 3u);
  ASSERT_EQ(with.stats.size(), without.stats.size());
  for (std::size_t i = 0; i < with.stats.size(); ++i) {
    SCOPED_TRACE(with.stats[i].name);
    EXPECT_EQ(with.stats[i].tv, without.stats[i].tv);
    EXPECT_EQ(with.stats[i].floor, without.stats[i].floor);
  }
  std::vector<double> all_bad(4, NAN);
  EXPECT_THROW(tv_of_sample(m, all_bad.data(), 2, o, *be), Error);
  EXPECT_THROW(tv_of_sample(m, y.data(), 0, o, *be), Error);
}

namespace {
/// K = 2, d = 3, diagonal covariances: means2d and radial have no closed form (reference sample).
Mixture diagonal_mixture() {
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
}  // namespace

TEST(TvSample, DiagonalTargetUsesAFlaggedReferenceSample) {
  const Mixture m = diagonal_mixture();
  TvOptions o;
  o.stats = "means,means2d,radial";
  o.reference_n = 60000;
  const uint64_t n = 40000;
  TvPlan plan(m, o, n);
  for (const auto& s : plan.stats()) {
    SCOPED_TRACE(s.name);
    EXPECT_EQ(s.exact, s.dims == 1 && s.name != "radial");  // projections are exact 1-D GMMs
  }
  HistogramCounts zeros = HistogramCounts::zeros(plan.spec());
  zeros.rows = 1;
  EXPECT_THROW(plan.evaluate(zeros), Error);  // the reference has not been drawn
  const std::vector<double> y = draw(m, n, 21);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  for (const auto& r : rep.stats) {
    SCOPED_TRACE(testing::Message() << r.name << ": tv " << r.tv << ", floor " << r.floor << ", CI [" << r.ci_lo
                                    << ", " << r.ci_hi << "]");
    if (r.exact_target) {
      EXPECT_EQ(r.reference_n, 0u);
    } else {
      EXPECT_EQ(r.reference_n, 60000u);
    }
    EXPECT_NEAR(r.tv / r.floor, 1.0, kNullFloorBand);
    EXPECT_FALSE(r.resolved);
  }
  // A diagonal model whose components are isotropic in fact keeps the exact radial law.
  Mixture iso = m;
  iso.var_diag = {2, 2, 2, 0.5, 0.5, 0.5};
  o.stats = "radial";
  EXPECT_TRUE(TvPlan(iso, o, n).stats()[0].exact);
}

TEST(TvSample, BestIsTheLargestCorrectedTv) {
  const Mixture target = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  const Mixture law = isotropic(2, {{2, 0}}, {1.3}, {1.0});  // a variance error: seen by every stat
  TvOptions o;
  o.stats = "axes:2,radial";
  const uint64_t n = 50000;
  const std::vector<double> y = draw(law, n, 4);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(target, y.data(), n, o, *be);
  for (const auto& r : rep.stats) EXPECT_LE(r.tv_corrected, rep.max().tv_corrected) << r.name;
}

// ---- streaming a .npy sample (tv_of_npy) -------------------------------------------------------

/// Streamed and in-memory reports are compared for exact equality: the counts are integers and
/// do not depend on the chunk, so every figure is the same double.
constexpr double kStreamedVsInMemoryTol = 0.0;

/// Chunk sizes of the streaming tests: one row, a small odd number, one CPU block, more than n.
std::vector<std::size_t> stream_chunks(uint64_t n) { return {1, 7, 256, static_cast<std::size_t>(n) + 13}; }

void expect_same_report(const TvReport& a, const TvReport& b) {
  EXPECT_EQ(a.n, b.n);
  EXPECT_EQ(a.nonfinite, b.nonfinite);
  EXPECT_EQ(a.best, b.best);
  EXPECT_EQ(a.notes, b.notes);
  ASSERT_EQ(a.stats.size(), b.stats.size());
  for (std::size_t i = 0; i < a.stats.size(); ++i) {
    const StatResult &x = a.stats[i], &y = b.stats[i];
    SCOPED_TRACE(x.name);
    EXPECT_EQ(x.name, y.name);
    EXPECT_EQ(x.dims, y.dims);
    EXPECT_EQ(x.bins, y.bins);
    EXPECT_EQ(x.exact_target, y.exact_target);
    EXPECT_EQ(x.reference_n, y.reference_n);
    EXPECT_EQ(x.resolved, y.resolved);
    EXPECT_NEAR(x.tv, y.tv, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.tv_corrected, y.tv_corrected, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.floor, y.floor, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.ci_lo, y.ci_lo, kStreamedVsInMemoryTol);
    EXPECT_NEAR(x.ci_hi, y.ci_hi, kStreamedVsInMemoryTol);
  }
}

/// A backend that forwards to the CPU backend and records the chunk capacity given to begin()
/// and the largest upload: the streaming path must never hand the backend more rows than the
/// chunk it chose (and so never read more from the file at once). With max_rows > 0 it claims
/// exactly that capacity for any shape (machine-independent chunk tests).
class RecordingBackend : public Backend {
 public:
  explicit RecordingBackend(std::size_t max_rows = 0) : inner_(make_backend("cpu", 0)), max_rows_(max_rows) {}
  std::string name() const override { return inner_->name(); }
  std::string device_name() const override { return inner_->device_name(); }
  std::size_t max_chunk_rows(const RunShape& s) const override {
    return max_rows_ > 0 ? max_rows_ : inner_->max_chunk_rows(s);
  }
  void begin(const RunShape& s, const Mixture& t) override {
    capacity = s.chunk_rows;
    inner_->begin(s, t);
  }
  void init_chunk(uint64_t first, std::size_t rows) override { inner_->init_chunk(first, rows); }
  void fill_target(uint64_t first, std::size_t rows) override { inner_->fill_target(first, rows); }
  void upload_chunk(const double* host, uint64_t first, std::size_t rows) override {
    EXPECT_EQ(first, uploaded) << "chunks out of order";
    EXPECT_LE(rows, capacity);
    largest_upload = std::max(largest_upload, rows);
    uploaded += rows;
    ++uploads;
    inner_->upload_chunk(host, first, rows);
  }
  void step(const StepCoeffs& c) override { inner_->step(c); }
  void download(void* host) const override { inner_->download(host); }
  uint64_t count_nonfinite_rows() const override { return inner_->count_nonfinite_rows(); }
  void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) override {
    inner_->accumulate_histograms(spec, counts);
  }
  std::size_t capacity = 0, largest_upload = 0, uploads = 0;
  uint64_t uploaded = 0;

 private:
  std::unique_ptr<Backend> inner_;
  std::size_t max_rows_;
};

/// n draws of m with NaN/Inf in a few rows (fixed seed), as the in-memory array and as a file.
std::vector<double> sample_with_nonfinite_rows(const Mixture& m, uint64_t n, uint64_t seed) {
  std::vector<double> y = draw(m, n, seed);
  const std::size_t d = static_cast<std::size_t>(m.d);
  y[0] = NAN;                    // the first row
  y[6 * d + d - 1] = INFINITY;   // the last row of the first chunk of 7
  y[7 * d] = -INFINITY;          // the first row of the second
  y[(n - 1) * d] = NAN;          // the last row
  return y;
}

TEST(TvStream, StreamedReportEqualsInMemoryForAnyChunkFp32AndFp64) {
  const Mixture m = isotropic(3, {{1.5, 0, 0}, {-1, 1, 0.5}}, {1.0, 0.8}, {0.4, 0.6});
  const uint64_t n = 3001;  // a multiple of no chunk size
  TvOptions o;
  o.stats = "means,random:3,axes:2,radial,means2d";
  o.bins = 16;
  o.seed = 11;
  const std::vector<double> y = sample_with_nonfinite_rows(m, n, 31);
  const std::string p = temp_path("stream.npy");
  auto be = make_backend("cpu", 0);
  for (const bool fp32 : {false, true}) {
    write_npy(p, y.data(), n, m.d, fp32);
    const NpyArray whole = read_npy(p);  // the values as the stream sees them (fp32 rounded)
    const TvReport ref = tv_of_sample(m, whole.data.data(), n, o, *be);
    ASSERT_EQ(ref.nonfinite, 4u);
    for (const std::size_t chunk : stream_chunks(n)) {
      SCOPED_TRACE(testing::Message() << (fp32 ? "<f4" : "<f8") << ", n = " << n << ", chunk = " << chunk
                                      << " rows, stats " << o.stats << ", bins " << o.bins << ", seed " << o.seed);
      NpyReader r(p);
      RecordingBackend rec;
      expect_same_report(tv_of_npy(m, r, o, rec, chunk), ref);
      EXPECT_EQ(rec.capacity, std::min<std::size_t>(chunk, n));
      EXPECT_LE(rec.largest_upload, chunk);
      EXPECT_EQ(rec.uploaded, n);
      EXPECT_EQ(rec.uploads, (n + chunk - 1) / chunk);
      EXPECT_EQ(r.rows_left(), 0u);
      // the in-memory path cut into the same chunks
      expect_same_report(tv_of_sample(m, whole.data.data(), n, o, *be, chunk), ref);
    }
  }
}

TEST(TvStream, ReferenceSamplePathIsTheSameStreamed) {
  // Diagonal components: means2d and radial take their masses from an exact reference sample,
  // drawn by prepare_reference before the sample's begin(); streaming must not disturb it.
  const Mixture m = diagonal_mixture();
  TvOptions o;
  o.stats = "means,means2d,radial";
  o.reference_n = 4000;
  o.seed = 5;
  const uint64_t n = 1500;
  const std::vector<double> y = sample_with_nonfinite_rows(m, n, 23);
  const std::string p = temp_path("stream_ref.npy");
  auto be = make_backend("cpu", 0);
  for (const bool fp32 : {false, true}) {
    write_npy(p, y.data(), n, m.d, fp32);
    const NpyArray whole = read_npy(p);
    const TvReport ref = tv_of_sample(m, whole.data.data(), n, o, *be);
    std::size_t with_reference = 0;
    for (const auto& s : ref.stats) with_reference += s.reference_n == o.reference_n;
    ASSERT_EQ(with_reference, 2u);  // means2d and radial
    for (const std::size_t chunk : stream_chunks(n)) {
      SCOPED_TRACE(testing::Message() << (fp32 ? "<f4" : "<f8") << ", n = " << n << ", chunk = " << chunk
                                      << " rows, reference_n = " << o.reference_n << ", seed " << o.seed);
      NpyReader r(p);
      expect_same_report(tv_of_npy(m, r, o, *be, chunk), ref);
    }
  }
}

TEST(TvStream, AutomaticChunkIs64MiBOfDoublesAndAnOversizedChunkIsRefused) {
  const RecordingBackend cpu(std::size_t(1) << 30);  // room for any automatic chunk
  RunShape s;
  s.K = 1;
  s.precision = Precision::FP64;
  struct Case {
    int d;
    uint64_t rows;
    std::size_t requested, expect;
  };
  const std::vector<Case> cases = {
      {64, 100000000, 0, kTvChunkBytes / (8 * 64)},  // 131072 rows of d = 64: 64 MiB
      {3, 100000000, 0, kTvChunkBytes / (8 * 3) / kChunkAlign * kChunkAlign},
      {3, 1000, 0, 1000},                        // the whole sample when it is smaller
      {100000, 10000, 0, kTvChunkBytes / (8 * 100000)},  // 83 rows: below kChunkAlign, not rounded
      {10000000, 10, 0, 1},                      // at least one row
      {3, 1000, 7, 7},                           // as requested, exactly
      {3, 1000, 5000, 1000},                     // at most the sample
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::Message() << "d = " << c.d << ", rows = " << c.rows << ", requested = " << c.requested);
    s.d = c.d;
    const std::size_t rows = tv_chunk_rows(cpu, s, c.rows, c.requested);
    EXPECT_EQ(rows, c.expect);
    if (c.requested == 0 && rows > 1) {
      EXPECT_LE(rows * 8 * static_cast<std::size_t>(c.d), kTvChunkBytes);
    }
  }
  const RecordingBackend small(1024);
  s.d = 3;
  try {
    tv_chunk_rows(small, s, 5000, 2000);
    ADD_FAILURE() << "a chunk over max_chunk_rows was accepted";
  } catch (const ResourceError& e) {
    EXPECT_NE(std::string(e.what()).find("--chunk 2000 does not fit"), std::string::npos) << e.what();
  }
  EXPECT_EQ(tv_chunk_rows(small, s, 5000, 0), 1024u);
}

TEST(TvStream, ShapeErrorsAndAFileCutWhileStreamingAreErrors) {
  const Mixture m = isotropic(2, {{1, 0}}, {1.0}, {1.0});
  TvOptions o;
  o.stats = "axes";
  auto be = make_backend("cpu", 0);
  const std::string p = temp_path("stream_bad.npy");
  auto message = [&](const std::function<void()>& f) {
    try {
      f();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  write_npy_raw(p, draw(m, 10, 1), 5, 4);  // d = 4
  {
    NpyReader r(p);
    EXPECT_NE(message([&] { tv_of_npy(m, r, o, *be); }).find("the sample has d = 4 columns but the model has d = 2"),
              std::string::npos);
  }
  write_npy_raw(p, {}, 0, 2);
  {
    NpyReader r(p);
    EXPECT_NE(message([&] { tv_of_npy(m, r, o, *be); }).find("empty sample (0 rows)"), std::string::npos);
  }
  // cut after the reader checked the size: the chunk that reaches the cut fails, no report
  const uint64_t n = 4000;
  write_npy_raw(p, draw(m, n, 2), n, 2);
  for (const std::size_t chunk : stream_chunks(n)) {
    SCOPED_TRACE(testing::Message() << "chunk = " << chunk);
    write_npy_raw(p, draw(m, n, 2), n, 2);
    NpyReader r(p);
    ASSERT_EQ(::truncate(p.c_str(), static_cast<off_t>(r.header().data_offset + (n / 2) * 2 * 8)), 0);
    const std::string msg = message([&] { tv_of_npy(m, r, o, *be, chunk); });
    EXPECT_NE(msg.find("truncated .npy data"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(p), 0u) << msg;
  }
}

}  // namespace
}  // namespace gmmdiff
