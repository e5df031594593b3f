// The stronger lower side of issue 10, part 4 (host/tv/host_statistics.cpp, figures.cpp, plan.cpp,
// sample_driver.cpp; docs/tv.md): the plug-in KL with its Miller-Madow correction against closed
// forms and under the null, the meansperp pair (exact masses; it sees an orthogonal variance error
// no projection sees), the logp statistic, duplicate directions counted once, the joint lower end
// that accounts for picking the largest statistic, chunk invariance of the host binning, and the
// two-sample comparison (tv --against).
#include "tv/host_statistics.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/npy.hpp"
#include "gmmdiff/tv.hpp"
#include "tv/figures.hpp"
#include "tv/plan_detail.hpp"
#include "util/sample_util.hpp"
#include "util/tv_util.hpp"

namespace gmmdiff {
namespace {

using test::draw;
using test::isotropic;
using test::kNullFloorBand;
using test::normal_masses;
using test::temp_path;
using test::write_npy_raw;

constexpr double kMassSumTol = 1e-12;      // masses of a partition sum to 1 in double
constexpr double kMarginalTol = 1e-12;     // the pair's line marginal against the 1-D normal masses
constexpr double kQuantileTol = 1e-12;     // normal_quantile against tabulated points
constexpr double kNullBiasBand = 0.10;     // the null's mean plug-in KL within 10% of (C - 1)/(2n)
constexpr double kMaxMmNullFraction = 0.25;  // Miller-Madow (clipped at 0) keeps < 25% of that bias
constexpr double kMinNullCoverage = 0.90;  // the KL CI's low end is 0 under the null (nominal 97.5%)

/// The counts of n multinomial draws over masses p.
std::vector<uint64_t> multinomial(const std::vector<double>& p, uint64_t n, std::mt19937_64& g) {
  std::discrete_distribution<int> pick(p.begin(), p.end());
  std::vector<uint64_t> c(p.size(), 0);
  for (uint64_t i = 0; i < n; ++i) ++c[pick(g)];
  return c;
}

double binned_kl(const std::vector<double>& P, const std::vector<double>& p) {
  double k = 0;
  for (std::size_t b = 0; b < p.size(); ++b)
    if (P[b] > 0) k += P[b] * std::log(P[b] / p[b]);
  return k;
}

// ---- the plug-in KL ----------------------------------------------------------------------------

TEST(TvKl, PlugInAndMillerMadowOfGivenCounts) {
  // Exact target masses: kl is sum_b q_b log(q_b / p_b) of the observed frequencies, and kl_mm
  // subtracts (B_occupied - 1) / (2 n).
  const std::vector<double> p = {0.1, 0.2, 0.3, 0.4};
  const std::vector<uint64_t> c = {30, 0, 50, 20};  // n = 100, three occupied cells
  const StatResult r = tv_detail::histogram_figures(c, p, 0, 100, 7);
  const double want = 0.3 * std::log(0.3 / 0.1) + 0.5 * std::log(0.5 / 0.3) + 0.2 * std::log(0.2 / 0.4);
  EXPECT_NEAR(r.kl, want, 1e-14);
  EXPECT_NEAR(r.kl_mm, want - 2.0 / 200, 1e-14);
  EXPECT_LE(r.kl_ci_lo, r.kl_mm);
  EXPECT_GE(r.kl_ci_hi, r.kl_mm);
}

TEST(TvKl, NullBiasIsRemovedByMillerMadowAndTheCiReachesZero) {
  // A sample of the target itself: the plug-in KL is biased up by about (C - 1)/(2n); Miller-Madow
  // removes it (its clipped mean keeps a small fraction), and the CI's low end is 0 nearly always.
  const int C = 20;
  const uint64_t n = 2000;
  const int reps = 200;
  std::vector<double> p(C, 1.0 / C);
  std::mt19937_64 g(11);
  double raw = 0, mm = 0;
  int zero_lo = 0;
  for (int i = 0; i < reps; ++i) {
    const StatResult r = tv_detail::histogram_figures(multinomial(p, n, g), p, 0, 40, 100 + i);
    raw += r.kl;
    mm += r.kl_mm;
    zero_lo += r.kl_ci_lo == 0;
  }
  raw /= reps;
  mm /= reps;
  const double bias = (C - 1) / (2.0 * n);
  EXPECT_NEAR(raw / bias, 1.0, kNullBiasBand) << "mean plug-in KL " << raw << ", (C - 1)/(2n) " << bias;
  EXPECT_LT(mm, kMaxMmNullFraction * bias) << "mean Miller-Madow KL " << mm << ", (C - 1)/(2n) " << bias;
  EXPECT_GE(zero_lo, kMinNullCoverage * reps) << "CI low end 0 in " << zero_lo << " of " << reps;
}

TEST(TvKl, GaussianShiftCiContainsTheExactBinnedKl) {
  // Y ~ N(delta, 1), X_0 ~ N(0, 1) in d = 1: the binned KL(Y || X_0) is exact in the plan's edges;
  // it is at most the true KL delta^2 / 2 (data processing). 3 seeds of a 95% interval: at most one miss.
  const Mixture m = isotropic(1, {{0.0}}, {1.0}, {1.0});
  const double delta = 0.25;
  const uint64_t n = 40000;
  TvOptions o;
  o.stats = "axes";
  o.bootstrap = 100;
  auto be = make_backend("cpu", 1);
  int misses = 0;
  for (uint64_t seed = 1; seed <= 3; ++seed) {
    std::vector<double> y = draw(m, n, 50 + seed);
    for (double& v : y) v += delta;
    o.seed = seed;
    const TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
    ASSERT_EQ(rep.stats.size(), 1u);
    const StatResult& r = rep.stats[0];
    const std::vector<double> e = tv_detail::build_plan(m, o, n).spec.edges[0];
    const double truth = binned_kl(normal_masses(e, delta, 1), normal_masses(e, 0, 1));
    SCOPED_TRACE(testing::Message() << "seed " << seed << ": kl " << r.kl << ", kl_mm " << r.kl_mm << ", CI ["
                                    << r.kl_ci_lo << ", " << r.kl_ci_hi << "], binned truth " << truth);
    EXPECT_LT(truth, delta * delta / 2);
    EXPECT_GT(r.kl_ci_lo, 0.0);
    misses += !(r.kl_ci_lo <= truth && truth <= r.kl_ci_hi);
    EXPECT_EQ(rep.best_kl, 0u);
  }
  EXPECT_LE(misses, 1);
}

// ---- meansperp ----------------------------------------------------------------------------------

TEST(TvMeansPerp, MassesArePartitionAndTheLineMarginalIsTheProjection) {
  const Mixture m = isotropic(5, {{2, 0, 0, 0, 0}, {-1, 0, 0, 0, 0}, {0.5, 1, 0, 0, 0}}, {0.7, 1.3, 1.0},
                              {0.3, 0.3, 0.4});
  TvOptions o;
  o.stats = "meansperp";
  const tv_detail::Plan plan = tv_detail::build_plan(m, o, 100000);
  ASSERT_EQ(plan.stats.size(), 1u);
  const tv_detail::PlanStat& s = plan.stats[0];
  EXPECT_TRUE(s.exact);
  EXPECT_EQ(s.dims, 2);
  const std::vector<double>& el = plan.host.edges_line;
  const std::size_t Ba = el.size() - 1, Bb = plan.host.edges_perp.size() - 1;
  ASSERT_EQ(s.target_mass.size(), Ba * Bb);
  double sum = 0;
  for (double v : s.target_mass) sum += v;
  EXPECT_NEAR(sum, 1.0, kMassSumTol);
  // The line coordinate's marginal: the 1-D mixture of projections on u.
  const std::vector<double>& u = plan.host.u;
  std::vector<double> want(Ba, 0.0);
  for (int k = 0; k < m.K; ++k) {
    double mk = 0;
    for (int j = 0; j < m.d; ++j) mk += u[j] * m.mean(k)[j];
    const std::vector<double> P = normal_masses(el, mk, m.sd[k]);
    for (std::size_t i = 0; i < Ba; ++i) want[i] += m.weights[k] * P[i];
  }
  for (std::size_t i = 0; i < Ba; ++i) {
    double got = 0;
    for (std::size_t j = 0; j < Bb; ++j) got += s.target_mass[i * Bb + j];
    EXPECT_NEAR(got, want[i], kMarginalTol) << "line bin " << i;
  }
}

TEST(TvMeansPerp, ExactSampleStaysWithinTheFloorAndAnOrthogonalErrorIsResolved) {
  // Two-point means +-2 e_1, sd 1, d = 16. An exact sample: meansperp within the floor band. The
  // same sample with the 15 orthogonal coordinates scaled by 1.06: the projection on the means
  // has exactly the target's law (unresolved), meansperp resolves it.
  const int d = 16;
  std::vector<double> a(d, 0.0), b(d, 0.0);
  a[0] = 2;
  b[0] = -2;
  const Mixture m = isotropic(d, {a, b}, {1.0, 1.0}, {0.5, 0.5});
  const uint64_t n = 60000;
  TvOptions o;
  o.stats = "means,meansperp";
  o.seed = 4;
  o.bootstrap = 100;
  auto be = make_backend("cpu", 0);
  std::vector<double> y = draw(m, n, 21);
  TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  ASSERT_EQ(rep.stats.size(), 2u);
  const StatResult& perp0 = rep.stats[1];
  EXPECT_EQ(perp0.name, "meansperp");
  EXPECT_TRUE(perp0.exact_target);
  EXPECT_NEAR(perp0.tv / perp0.floor, 1.0, kNullFloorBand) << "tv " << perp0.tv << ", floor " << perp0.floor;
  for (uint64_t i = 0; i < n; ++i)
    for (int j = 1; j < d; ++j) y[i * d + j] *= 1.06;
  rep = tv_of_sample(m, y.data(), n, o, *be);
  SCOPED_TRACE(testing::Message() << "means[0] CI [" << rep.stats[0].ci_lo << ", " << rep.stats[0].ci_hi
                                  << "], meansperp CI [" << rep.stats[1].ci_lo << ", " << rep.stats[1].ci_hi << "]");
  EXPECT_FALSE(rep.stats[0].resolved);
  EXPECT_TRUE(rep.stats[1].resolved);
  EXPECT_EQ(rep.best, 1u);
  EXPECT_GT(rep.stats[1].kl_ci_lo, 0.0);
}

TEST(TvMeansPerp, SkippedWhereItCannotExist) {
  TvOptions o;
  o.stats = "axes,meansperp";
  const tv_detail::Plan p1 = tv_detail::build_plan(isotropic(1, {{1.0}}, {1.0}, {1.0}), o, 1000);
  ASSERT_EQ(p1.stats.size(), 1u);
  ASSERT_FALSE(p1.notes.empty());
  EXPECT_NE(p1.notes.back().find("d = 1"), std::string::npos) << p1.notes.back();
  const tv_detail::Plan p0 = tv_detail::build_plan(isotropic(3, {{0, 0, 0}}, {1.0}, {1.0}), o, 1000);
  ASSERT_EQ(p0.stats.size(), 3u);
  EXPECT_NE(p0.notes.back().find("span no direction"), std::string::npos) << p0.notes.back();
}

// ---- logp ---------------------------------------------------------------------------------------

TEST(TvLogp, ExactSampleStaysWithinTheFloorAndAVarianceErrorIsResolved) {
  const Mixture m = isotropic(8, {{2, 0, 0, 0, 0, 0, 0, 0}, {-1, 1, 0, 0, 0, 0, 0, 0}}, {1.0, 0.8}, {0.5, 0.5});
  const uint64_t n = 40000;
  TvOptions o;
  o.stats = "logp";
  o.seed = 6;
  o.bootstrap = 100;
  auto be = make_backend("cpu", 0);
  std::vector<double> y = draw(m, n, 31);
  TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  ASSERT_EQ(rep.stats.size(), 1u);
  const StatResult& r0 = rep.stats[0];
  EXPECT_FALSE(r0.exact_target);
  EXPECT_EQ(r0.reference_n, n);
  EXPECT_NEAR(r0.tv / r0.floor, 1.0, kNullFloorBand) << "tv " << r0.tv << ", floor " << r0.floor;
  EXPECT_FALSE(r0.resolved);
  for (double& v : y) v *= 1.05;  // every coordinate's spread 5% too wide (and the means moved out)
  rep = tv_of_sample(m, y.data(), n, o, *be);
  EXPECT_TRUE(rep.stats[0].resolved) << "CI [" << rep.stats[0].ci_lo << ", " << rep.stats[0].ci_hi << "]";
}

TEST(TvLogp, QuantileEdgesHoldEqualCountsAndIncrease) {
  std::vector<double> v(1000);
  for (int i = 0; i < 1000; ++i) v[i] = (i * 7919) % 1000;  // a permutation of 0..999
  const std::vector<double> e = tv_detail::quantile_edges(v, 4);
  ASSERT_EQ(e.size(), 5u);
  EXPECT_TRUE(std::isinf(e[0]) && e[0] < 0 && std::isinf(e[4]));
  EXPECT_DOUBLE_EQ(e[1], 249.5);
  EXPECT_DOUBLE_EQ(e[2], 499.5);
  EXPECT_DOUBLE_EQ(e[3], 749.5);
  std::vector<double> flat(100, 3.0);  // ties: the edges still increase strictly
  const std::vector<double> f = tv_detail::quantile_edges(flat, 5);
  for (int i = 1; i < 5; ++i) EXPECT_GT(f[i + 1], f[i]) << "edge " << i;
}

// ---- duplicates and selection ------------------------------------------------------------------

TEST(TvSelection, DuplicateDirectionsAreCountedOnce) {
  TvOptions o;
  o.stats = "means,random:8,axes";
  const tv_detail::Plan p1 = tv_detail::build_plan(isotropic(1, {{1.0}, {-1.0}}, {1.0, 1.0}, {0.5, 0.5}), o, 1000);
  EXPECT_EQ(p1.stats.size(), 1u) << "d = 1 has one direction up to sign";
  bool noted = false;
  for (const auto& s : p1.notes) noted = noted || s.find("counted once") != std::string::npos;
  EXPECT_TRUE(noted);
  o.stats = "axes:2,random:4";
  const tv_detail::Plan p2 = tv_detail::build_plan(isotropic(2, {{1, 0}}, {1.0}, {1.0}), o, 1000);
  EXPECT_EQ(p2.stats.size(), 6u);
}

TEST(TvSelection, JointLowerEndAccountsForTheChoice) {
  EXPECT_NEAR(tv_detail::normal_quantile(0.975), 1.959963984540054, kQuantileTol);
  EXPECT_NEAR(tv_detail::normal_quantile(1 - 0.025 / 10), 2.807033768343811, kQuantileTol);
  EXPECT_NEAR(tv_detail::normal_quantile(0.5), 0.0, kQuantileTol);
  // One shifted Gaussian, 6 statistics: each joint lower end is at most its own, strictly below
  // it for the resolved best; alone (one statistic) they are equal.
  const Mixture m = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  const uint64_t n = 30000;
  std::vector<double> y = draw(m, n, 41);
  for (uint64_t i = 0; i < n; ++i) y[2 * i] += 0.1;
  auto be = make_backend("cpu", 1);
  TvOptions o;
  o.stats = "axes:1,random:4,radial";
  o.seed = 2;
  o.bootstrap = 100;
  const TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  ASSERT_EQ(rep.stats.size(), 6u);
  for (const auto& s : rep.stats) EXPECT_LE(s.ci_lo_joint, s.ci_lo) << s.name;
  ASSERT_TRUE(rep.max().resolved);
  EXPECT_LT(rep.max().ci_lo_joint, rep.max().ci_lo);
  o.stats = "axes:1";
  const TvReport one = tv_of_sample(m, y.data(), n, o, *be);
  EXPECT_EQ(one.stats[0].ci_lo_joint, one.stats[0].ci_lo);
}

// ---- the host binning's invariance ------------------------------------------------------------

TEST(TvHostStats, FiguresDoNotDependOnChunkOrThreads) {
  const Mixture m = isotropic(3, {{1, 0, 0}, {-1, 1, 0}}, {1.0, 0.7}, {0.4, 0.6});
  const uint64_t n = 9000;
  const std::vector<double> y = draw(m, n, 5);
  TvOptions o;
  o.stats = "meansperp,logp,means";
  o.seed = 8;
  o.bootstrap = 40;
  auto be1 = make_backend("cpu", 1);
  auto be3 = make_backend("cpu", 3);
  const TvReport a = tv_of_sample(m, y.data(), n, o, *be1);
  const TvReport b = tv_of_sample(m, y.data(), n, o, *be3, 1000);
  const TvReport c = tv_of_sample(m, y.data(), n, o, *be3, 4097);
  ASSERT_EQ(a.stats.size(), 4u);  // meansperp, logp, means[0], means[1]
  for (std::size_t i = 0; i < a.stats.size(); ++i)
    for (const TvReport* r : {&b, &c}) {
      EXPECT_EQ(a.stats[i].tv, r->stats[i].tv) << a.stats[i].name;
      EXPECT_EQ(a.stats[i].kl, r->stats[i].kl) << a.stats[i].name;
      EXPECT_EQ(a.stats[i].ci_lo, r->stats[i].ci_lo) << a.stats[i].name;
    }
}

// ---- two samples -------------------------------------------------------------------------------

TEST(TvAgainst, ASampleAgainstItselfIsZeroAndBothNoisesAreInTheFloor) {
  const Mixture m = isotropic(4, {{2, 0, 0, 0}, {-2, 0, 0, 0}}, {1.0, 1.0}, {0.5, 0.5});
  const uint64_t n = 20000;
  const std::string pa = temp_path("against_a.npy"), pb = temp_path("against_b.npy"), pc = temp_path("against_c.npy");
  write_npy_raw(pa, draw(m, n, 61), n, 4);
  write_npy_raw(pb, draw(m, n, 62), n, 4);
  std::vector<double> shifted = draw(m, n, 63);
  for (uint64_t i = 0; i < n; ++i) shifted[4 * i] += 0.15;
  write_npy_raw(pc, shifted, n, 4);
  TvOptions o;
  o.stats = "means,meansperp,logp,radial";
  o.seed = 1;
  o.bootstrap = 60;
  auto be = make_backend("cpu", 0);
  {
    NpyReader a(pa), a2(pa);
    const TvReport r = tv_of_npy_against(m, a, a2, o, *be);
    EXPECT_EQ(r.against_n, n);
    for (const auto& s : r.stats) {
      EXPECT_EQ(s.tv, 0.0) << s.name;
      EXPECT_EQ(s.kl_mm, 0.0) << s.name;
      EXPECT_FALSE(s.exact_target) << s.name;
      EXPECT_EQ(s.reference_n, n) << s.name;
    }
  }
  {
    // Two exact samples: the floor holds both samples' noise, about sqrt(2) times one sample's.
    NpyReader a(pa), b(pb), a1(pa);
    const TvReport two = tv_of_npy_against(m, a, b, o, *be);
    const TvReport one = tv_of_npy(m, a1, o, *be);
    const StatResult& t = two.stats[0];
    const StatResult& s = one.stats[0];
    EXPECT_EQ(t.name, "means[0]");
    EXPECT_NEAR(t.floor / s.floor, std::sqrt(2.0), 0.25) << "floors " << t.floor << " and " << s.floor;
    EXPECT_FALSE(t.resolved) << "CI [" << t.ci_lo << ", " << t.ci_hi << "]";
  }
  {
    NpyReader c(pc), b(pb);
    const TvReport r = tv_of_npy_against(m, c, b, o, *be);
    EXPECT_TRUE(r.stats[0].resolved) << "CI [" << r.stats[0].ci_lo << ", " << r.stats[0].ci_hi << "]";
  }
  {
    // A second sample of another dimension is refused.
    const std::string bad = temp_path("against_bad.npy");
    write_npy_raw(bad, std::vector<double>(30, 0.0), 10, 3);
    NpyReader a(pa), x(bad);
    EXPECT_THROW(tv_of_npy_against(m, a, x, o, *be), Error);
  }
}

}  // namespace
}  // namespace gmmdiff
