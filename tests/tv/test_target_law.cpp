// The target laws of the TV statistics (host/tv/target_law.cpp), as a plan uses them: equal-mass
// edges, exact bin masses of projections and of the radial statistic against long double
// quadrature, and 2-D masses as per-component products.
#include "tv/target_law.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/tv.hpp"
#include "core/special_functions.hpp"
#include "tv/plan_detail.hpp"
#include "util/model_util.hpp"
#include "util/quadrature_util.hpp"
#include "util/sample_util.hpp"
#include "util/tv_util.hpp"

namespace gmmdiff {
namespace {

using gmmdiff::test::integrate;
using gmmdiff::test::LD;
using test::isotropic;
using test::normal_masses;
using tv_detail::build_plan;

constexpr double kMassQuadratureTol = 1e-11;   // exact bin masses against long double quadrature
constexpr double kEqualMassRelTol = 3e-3;      // bins hold 1/B to within this fraction of 1/B

TEST(TvTargetLaw, EdgesHoldEqualTargetMass) {
  const Mixture m = isotropic(3, {{2, 0, 1}, {-1, 0.5, 0}}, {0.5, 1.5}, {0.3, 0.7});
  TvOptions o;
  o.stats = "means,random:2,radial";
  const tv_detail::Plan plan = build_plan(m, o, 100000);
  for (const auto& s : plan.stats) {
    SCOPED_TRACE(s.name);
    const double B = static_cast<double>(s.target_mass.size());
    double total = 0;
    for (double p : s.target_mass) {
      EXPECT_NEAR(p * B, 1.0, kEqualMassRelTol);
      total += p;
    }
    EXPECT_NEAR(total, 1.0, 1e-13);
    const auto& e = plan.spec.edges[s.a];
    EXPECT_TRUE(std::isinf(e.front()) && e.front() < 0 && std::isinf(e.back()));
    for (std::size_t i = 1; i < e.size(); ++i) EXPECT_LT(e[i - 1], e[i]);
  }
}

TEST(TvTargetLaw, ProjectionMassesMatchQuadrature) {
  const Mixture m = isotropic(2, {{2, 0}, {-1, 0.5}}, {0.5, 1.5}, {0.3, 0.7});
  TvOptions o;
  o.stats = "means,random:2";
  o.bins = 16;
  const tv_detail::Plan plan = build_plan(m, o, 1000);
  for (const auto& s : plan.stats) {
    SCOPED_TRACE(s.name);
    const double* u = plan.spec.directions.data() + s.a * 2;
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
    const auto& e = plan.spec.edges[s.a];
    for (std::size_t b = 0; b + 1 < e.size(); ++b) {
      const LD lo = std::isinf(e[b]) ? -40.0L : e[b], hi = std::isinf(e[b + 1]) ? 40.0L : e[b + 1];
      const LD ref = integrate(pdf, lo, hi, 400);
      EXPECT_NEAR(s.target_mass[b], static_cast<double>(ref), kMassQuadratureTol) << "bin " << b;
    }
  }
}

TEST(TvTargetLaw, RadialMassesMatchQuadrature) {
  // |x - c|^2 / s_k^2 ~ chi'^2(d, |mu_k - c|^2 / s_k^2); the reference CDF conditions on the
  // coordinate along mu_k - c: (Z + sqrt(lambda))^2 + chi^2_{d-1}, integrated in long double.
  const int d = 5;
  const Mixture m = isotropic(d, {{2, 0, 1, 0, 0}, {-1, 0.5, 0, 0, 3}}, {0.7, 1.3}, {0.4, 0.6});
  TvOptions o;
  o.stats = "radial";
  o.bins = 12;
  const tv_detail::Plan plan = build_plan(m, o, 1000);
  const auto& s = plan.stats[0];
  ASSERT_TRUE(s.exact);
  const auto& c = plan.spec.center;
  const auto& e = plan.spec.edges[s.a];
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

TEST(TvTargetLaw, PairMassesAreProductsPerComponent) {
  const Mixture m = isotropic(3, {{2, 0, 0}, {-1, 0.5, 0}, {0, 1, 1}}, {0.5, 1.5, 1.0}, {0.3, 0.3, 0.4});
  TvOptions o;
  o.stats = "means2d";
  const tv_detail::Plan plan = build_plan(m, o, 1000000);
  const auto& s = plan.stats[0];
  ASSERT_EQ(s.dims, 2);
  ASSERT_TRUE(s.exact);
  const auto& ea = plan.spec.edges[s.a];
  const auto& eb = plan.spec.edges[s.b];
  const double* ua = plan.spec.directions.data() + s.a * 3;
  const double* ub = plan.spec.directions.data() + s.b * 3;
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

}  // namespace
}  // namespace gmmdiff

namespace gmmdiff {
namespace {

/// P(|X|^2 <= x), X ~ N(a e_1, s^2 I_3): the closed form of the 3-D non-central chi (independent of
/// the library's special functions), with r - a formed from x - a^2 in long double.
LD radial3_cdf(double x, double a, double s) {
  const LD A = static_cast<LD>(a) / s, r = std::sqrt(static_cast<LD>(x)) / s;
  const LD rma = (static_cast<LD>(x) - static_cast<LD>(a) * a) / (static_cast<LD>(s) * s) / (r + A);
  const LD c = 1 / std::sqrt(2 * 3.141592653589793238462643383279502884L);
  auto Phi = [](LD z) { return 0.5L * std::erfc(-z / std::sqrt(2.0L)); };
  return Phi(rma) - Phi(-r - A) - c * (std::exp(-rma * rma / 2) - std::exp(-(r + A) * (r + A) / 2)) / A;
}

// Issue 15: the radial statistic's plan takes work independent of radius / sd (it took minutes at
// radius 1e6 and never ended at 1e9: a sweep builds it while parsing). At radius 1e9 the bins still
// hold equal masses and the masses are the closed form's. two-point centres the statistic at 0.
TEST(TvTargetLaw, RadialPlanAtRadius1e9IsFastAndExact) {
  for (double radius : {1e6, 1e9}) {
    SCOPED_TRACE(testing::Message() << "radius " << radius);
    PresetParams pp;
    pp.name = "two-point";
    pp.d = 3;
    pp.radius = radius;
    pp.sd = {0.5};
    const Mixture m = make_preset(pp);
    TvOptions o;
    o.stats = "radial";
    const auto t0 = std::chrono::steady_clock::now();
    const tv_detail::Plan plan = build_plan(m, o, 1000000);  // 100 bins
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_LT(seconds, 20.0) << "the plan took " << seconds << " s";
    const auto& s = plan.stats[0];
    ASSERT_TRUE(s.exact);
    const auto& e = plan.spec.edges[s.a];
    const double B = static_cast<double>(s.target_mass.size());
    LD prev = 0;
    double total = 0;
    for (std::size_t b = 0; b + 1 < e.size(); ++b) {
      const LD next = std::isinf(e[b + 1]) ? 1.0L : radial3_cdf(e[b + 1], radius, 0.5);
      EXPECT_NEAR(s.target_mass[b], static_cast<double>(next - prev), 1e-10) << "bin " << b;
      EXPECT_NEAR(s.target_mass[b] * B, 1.0, kEqualMassRelTol) << "bin " << b;
      total += s.target_mass[b];
      prev = next;
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

// The same with K > 64 components (their edges come from the moment-matched gamma, whose shape is
// R^2 / 4 s^2 = 1e17 here) and in d = 1000: the plan is quick, the bins close to equal mass.
TEST(TvTargetLaw, RadialPlanOfManyComponentsAtALargeRadiusIsFast) {
  const Mixture m = test::preset("random-sphere", 1000, 100, 1e9);
  TvOptions o;
  o.stats = "radial";
  o.bins = 32;
  const auto t0 = std::chrono::steady_clock::now();
  const tv_detail::Plan plan = build_plan(m, o, 100000);
  EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 20.0);
  double total = 0;
  for (double p : plan.stats[0].target_mass) {
    EXPECT_NEAR(p * 32, 1.0, 0.2);  // approximate edges, exact masses
    total += p;
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
}

}  // namespace
}  // namespace gmmdiff

namespace gmmdiff {
namespace {

constexpr double kPerpMassTol = 1e-10;        // perp bin masses against the 3-D closed form (as radial's)
constexpr double kScaleInvarianceTol = 1e-9;  // masses of a model and of the same model x 1e150

/// Two isotropic components in d = 4 whose means (R, +-h, 0, 0) lie off their top principal
/// direction e_1: meansperp's radius |P_u (X - c)|^2 has, per component, the law of |N(h e_1, s^2 I_3)|^2.
Mixture off_line_pair(double R, double h, double s) {
  return isotropic(4, {{R, h, 0, 0}, {R, -h, 0, 0}}, {s, s}, {0.5, 0.5});
}

/// The radius axis' marginal masses of the meansperp pair (summed over the line bins).
std::vector<double> perp_marginal(const tv_detail::Plan& plan) {
  const std::size_t Bb = plan.host.edges_perp.size() - 1;
  const std::vector<double>& p = plan.stats[0].target_mass;
  std::vector<double> q(Bb, 0.0);
  for (std::size_t i = 0; i < p.size(); ++i) q[i % Bb] += p[i];
  return q;
}

// meansperp's radius at radius 1e9 (h = 1e9, sd 0.5: 1e18 +- 1e9): its edge search started at 0,
// where a grid of 2B + 1 points over [0, 1e18] holds all the mass between two points. The search
// now starts at the mass (one implementation with radial's, SquaredDistanceLaw): the bins hold
// equal masses, and the masses are the 3-D closed form's (independent of ncx2_cdf).
TEST(TvTargetLaw, MeansPerpRadiusAtRadius1e9ResolvesTheMass) {
  for (double h : {1e3, 1e6, 1e9}) {
    const double R = 2 * h, s = 0.5;
    SCOPED_TRACE(testing::Message() << "means (" << R << ", +-" << h << ", 0, 0), sd " << s);
    const Mixture m = off_line_pair(R, h, s);
    TvOptions o;
    o.stats = "meansperp";
    const tv_detail::Plan plan = build_plan(m, o, 1000000);  // 10 bins per axis
    ASSERT_EQ(plan.stats.size(), 1u);
    ASSERT_TRUE(plan.stats[0].exact);
    const std::vector<double>& e = plan.host.edges_perp;
    const std::vector<double> q = perp_marginal(plan);
    const double B = static_cast<double>(q.size());
    LD prev = 0;
    double total = 0;
    for (std::size_t b = 0; b < q.size(); ++b) {
      const LD next = std::isinf(e[b + 1]) ? 1.0L : radial3_cdf(e[b + 1], h, s);
      EXPECT_NEAR(q[b], static_cast<double>(next - prev), kPerpMassTol) << "bin " << b << " [" << e[b] << ", " << e[b + 1] << "]";
      EXPECT_NEAR(q[b] * B, 1.0, kEqualMassRelTol) << "bin " << b << " [" << e[b] << ", " << e[b + 1] << "]";
      total += q[b];
      prev = next;
    }
    EXPECT_NEAR(total, 1.0, 1e-12);
  }
}

// The same with K > 64 components at radius 1e9 (edges from the moment-matched gamma, shape ~ 1e17):
// meansperp's approximate CDF used the incomplete gamma's series at any shape, O(sqrt(shape)) terms
// per call (it did not end); it now shares radial's Wilson-Hilferty form. Quick, near equal-mass.
TEST(TvTargetLaw, MeansPerpPlanOfManyComponentsAtALargeRadiusIsFast) {
  constexpr double kApproxEqualMassTol = 0.2;  // approximate edges, exact masses (as radial's test)
  const Mixture m = test::preset("random-sphere", 200, 100, 1e9);
  TvOptions o;
  o.stats = "meansperp";
  o.bins = 64;  // 8 per axis
  const auto t0 = std::chrono::steady_clock::now();
  const tv_detail::Plan plan = build_plan(m, o, 100000);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_LT(seconds, 20.0) << "the plan took " << seconds << " s";
  ASSERT_EQ(plan.stats.size(), 1u);
  const std::vector<double> q = perp_marginal(plan);
  double total = 0;
  for (std::size_t b = 0; b < q.size(); ++b) {
    EXPECT_NEAR(q[b] * static_cast<double>(q.size()), 1.0, kApproxEqualMassTol) << "bin " << b;
    total += q[b];
  }
  EXPECT_NEAR(total, 1.0, 1e-12);
}

// Variances so large that their squares overflow (sd 1e150): meansperp's moments are taken in
// units of the largest variance, as radial's (the variance of the radius was inf, its edges NaN or
// meaningless). The model x 1e150 has the same bin masses as the model itself, radial and
// meansperp alike, with edges 1e300 times as large.
TEST(TvTargetLaw, SquaredDistanceLawsOfHugeVariancesAreScaleInvariant) {
  constexpr double kScale = 1e150;
  const Mixture m1 = off_line_pair(2, 1, 0.7);
  const Mixture mb = off_line_pair(2 * kScale, kScale, 0.7 * kScale);
  TvOptions o;
  o.stats = "meansperp,radial";
  const tv_detail::Plan p1 = build_plan(m1, o, 100000), pb = build_plan(mb, o, 100000);
  ASSERT_EQ(p1.stats.size(), 2u);
  ASSERT_EQ(pb.stats.size(), 2u);
  for (std::size_t i = 0; i < 2; ++i) {
    SCOPED_TRACE(p1.stats[i].name);
    const std::vector<double>&a = p1.stats[i].target_mass, &b = pb.stats[i].target_mass;
    ASSERT_EQ(a.size(), b.size());
    for (std::size_t c = 0; c < a.size(); ++c) EXPECT_NEAR(a[c], b[c], kScaleInvarianceTol) << "cell " << c;
  }
  const std::vector<double>&e1 = p1.host.edges_perp, &eb = pb.host.edges_perp;
  ASSERT_EQ(e1.size(), eb.size());
  for (std::size_t i = 1; i + 1 < e1.size(); ++i)
    EXPECT_NEAR(eb[i] / (kScale * kScale), e1[i], kScaleInvarianceTol * e1[i]) << "edge " << i;
  const std::vector<double> q = perp_marginal(pb);
  for (std::size_t b = 0; b < q.size(); ++b)
    EXPECT_NEAR(q[b] * static_cast<double>(q.size()), 1.0, kEqualMassRelTol) << "bin " << b;
}

/// The message of the Error that building a plan of `stats` throws ("" if none).
std::string plan_error(const Mixture& m, const std::string& stats) {
  TvOptions o;
  o.stats = stats;
  try {
    (void)build_plan(m, o, 10000);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// A squared distance that overflows a double although the model is valid (E|X|^2 of each component
// fits; |mu_k - c|^2 is 3.9 times as large here): one line naming the statistic, radial and
// meansperp alike (meansperp had no check: inf moments, NaN edges).
TEST(TvTargetLaw, SquaredDistancesThatOverflowAreOneError) {
  const Mixture m = isotropic(3, {{8e153, -7e153, 0}, {8e153, 7e153, 0}}, {1.0, 1.0}, {0.99, 0.01});
  const struct {
    const char* stats;
    const char* want;
  } cases[] = {
      {"meansperp", "--stat meansperp: |P_u (X - c)|^2 of component 1 overflows a double"},
      {"radial", "--stat radial: |X - c|^2 of component 1 overflows a double"},
      {"means,meansperp,random:8,radial,logp", "|X - c|^2 of component 1 overflows a double"},
  };
  for (const auto& c : cases) {
    const std::string e = plan_error(m, c.stats);
    EXPECT_NE(e.find(c.want), std::string::npos) << "--stat " << c.stats << ": " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << "--stat " << c.stats << ": " << e;
  }
  // A tiny sd at an ordinary distance: the non-centrality |mu - c|^2 / s^2 overflows.
  const Mixture tiny = isotropic(3, {{1e5, 1e4, 0}, {1e5, -1e4, 0}}, {1e-152, 1e-152}, {0.5, 0.5});
  for (const char* stats : {"meansperp", "radial"}) {
    const std::string e = plan_error(tiny, stats);
    EXPECT_NE(e.find("non-centrality"), std::string::npos) << "--stat " << stats << ": " << e;
  }
}

}  // namespace
}  // namespace gmmdiff
