// The exact reference of reducible models (bounds.hpp, exact_reference): K = 1 against the closed
// form, the closed-form Gaussian TV against quadrature, what "reducible" means, and the two-point
// models where the reference must sit inside the bracket: the ddim exact TV's interval and the
// ddpm path bound above, the projected lower bound below.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <sstream>

#include "gmmdiff/bounds.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/tv.hpp"
#include "util/quadrature_util.hpp"
#include "util/model_util.hpp"

using namespace gmmdiff;

namespace {

constexpr double kRefClosedTol = 1e-6;     // reference vs closed form (K = 1)
constexpr double kQuadTol = 1e-12;         // closed-form Gaussian TV vs quadrature (d = 1)
constexpr double kSigmas = 4.0;            // Monte Carlo figures within 4 standard errors
constexpr double kUpperOverRefMax = 1.5;   // U_TV(64) <= 1.5 x reference
constexpr int kPathM = 64;

using test::schedule;

Mixture preset(const std::string& name, int d, double radius, double sd) {
  PresetParams p;
  p.name = name;
  p.d = d;
  p.radius = radius;
  p.sd = {sd};
  return make_preset(p);
}

std::string describe(const Mixture& m, const Schedule& s, const SampleOptions& o) {
  std::ostringstream os;
  os << "d=" << m.d << " K=" << m.K << " sd=" << m.sd[0] << " " << s.name << " T=" << s.T << " "
     << to_string(o.sampler) << "/" << to_string(o.variance) << " stop=" << o.stop
     << " err=" << to_string(o.score_error.kind) << " eps=" << o.score_error.eps;
  return os.str();
}

/// K = 1, isotropic: Y_s ~ N(b, V I) (THEORY.md, Exact facts; the sampler's score errors folded in).
void closed_form(const Mixture& m, const Schedule& s, const SampleOptions& o, std::vector<double>& b, double& V) {
  b.assign(m.d, 0.0);
  V = 1;
  const double s2 = m.sd[0] * m.sd[0];
  for (int t = s.T; t > o.stop; --t) {
    const StepCoeffs c = step_coeffs(m, s, t, o, {});
    const double v = s.abar[t] * s2 + s.one_minus_abar[t], kap = c.kappa * c.score_scale;
    const double ct = (1 - kap / v) * c.inv_sqrt_alpha;
    for (int j = 0; j < m.d; ++j) b[j] = ct * b[j] + kap * std::sqrt(s.abar[t]) * m.mean(0)[j] / v * c.inv_sqrt_alpha;
    const double nb = c.kappa * c.noise_sd * c.inv_sqrt_alpha;
    V = ct * ct * V + c.sigma * c.sigma + nb * nb;
  }
}

}  // namespace

TEST(Reference, GaussianTargetMatchesTheClosedForm) {
  struct C {
    int d;
    double sd;
    SamplerKind sampler;
    Variance var;
    int stop;
    ScoreErrorKind err;
    double eps;
    std::string sched;
    int T;
  };
  const std::vector<C> cases = {
      {1, 0.5, SamplerKind::DDPM, Variance::Beta, 1, ScoreErrorKind::None, 0, "lcw", 256},
      {1, 1.0, SamplerKind::DDIM, Variance::Beta, 0, ScoreErrorKind::None, 0, "lcw", 64},
      {16, 0.5, SamplerKind::DDPM, Variance::Posterior, 1, ScoreErrorKind::Scale, 0.2, "linear", 50},
      {16, 0.5, SamplerKind::DDIM, Variance::Beta, 1, ScoreErrorKind::None, 0, "cosine", 40},
      {16, 1.5, SamplerKind::DDPM, Variance::Inside, 0, ScoreErrorKind::Gaussian, 0.5, "lcw", 32},
  };
  for (const C& c : cases) {
    const Mixture m = preset("gaussian", c.d, 2.0, c.sd);
    const Schedule s = schedule(c.sched, c.T);
    SampleOptions o;
    o.sampler = c.sampler;
    o.variance = c.var;
    o.stop = c.stop;
    o.score_error = {c.err, c.eps};
    const Reference r = exact_reference(m, s, o);
    std::vector<double> b;
    double V;
    closed_form(m, s, o, b, V);
    double dist2 = 0;
    for (int j = 0; j < m.d; ++j) dist2 += (b[j] - m.mean(0)[j]) * (b[j] - m.mean(0)[j]);
    const double a = c.sd * c.sd;
    const double tv = gaussian_tv_isotropic(dist2, a, V, a - V, m.d);
    // KL(N(b, V I) || N(mu, a I)).
    const double kl = 0.5 * (m.d * (V / a - 1 - std::log(V / a)) + dist2 / a);
    EXPECT_TRUE(r.converged) << describe(m, s, o) << ": last change " << r.change;
    EXPECT_NEAR(r.tv, tv, kRefClosedTol) << describe(m, s, o) << " (grid of " << r.points << ")";
    EXPECT_NEAR(r.kl_yx, kl, kRefClosedTol * std::max(1.0, kl)) << describe(m, s, o);
    EXPECT_NEAR(r.perp_var, V, 1e-12 * V) << describe(m, s, o);
  }
}

TEST(Reference, GaussianTvClosedFormAgainstQuadrature) {
  using test::LD;
  for (double a : {0.25, 1.0, 2.0})
    for (double b : {0.25, 0.7, 1.0})
      for (double delta : {0.0, 0.3, 2.0}) {
        if (a == b && delta == 0) continue;
        const LD sa = std::sqrt(LD(a)), sb = std::sqrt(LD(b));
        const LD pi = 3.141592653589793238462643383279502884L;
        auto f = [&](LD x) {
          const LD p = std::exp(-x * x / (2 * a)) / (sa * std::sqrt(2 * pi));
          const LD q = std::exp(-(x - delta) * (x - delta) / (2 * b)) / (sb * std::sqrt(2 * pi));
          return std::fabs(p - q) / 2;
        };
        // The integrand has kinks where p = q (the roots of a quadratic): integrate between them.
        const LD A = (1 / LD(b) - 1 / LD(a)) / 2, B = -LD(delta) / b, C = LD(delta) * delta / (2 * b) + std::log(LD(b) / a) / 2;
        std::vector<LD> cuts = {-30};
        if (A == 0) {
          if (B != 0) cuts.push_back(-C / B);
        } else if (B * B - 4 * A * C > 0) {
          const LD r = std::sqrt(B * B - 4 * A * C);
          cuts.push_back(std::min((-B - r) / (2 * A), (-B + r) / (2 * A)));
          cuts.push_back(std::max((-B - r) / (2 * A), (-B + r) / (2 * A)));
        }
        cuts.push_back(30);
        LD acc = 0;
        for (std::size_t c = 0; c + 1 < cuts.size(); ++c) acc += test::integrate(f, cuts[c], cuts[c + 1], 400);
        const double want = static_cast<double>(acc);
        EXPECT_NEAR(gaussian_tv_isotropic(delta * delta, a, b, a - b, 1), want, kQuadTol)
            << "a=" << a << " b=" << b << " delta=" << delta;
      }
}

TEST(Reference, GaussianTvClosedFormAgainstMonteCarloInFiveDimensions) {
  // TV = E_p[(1 - q/p)_+] with exact draws of p = N(0, a I), q = N(delta e_1, b I).
  constexpr int kDraws = 400000;
  const int d = 5;
  std::mt19937_64 g(7);
  std::normal_distribution<double> N01;
  for (const auto& [a, b, delta] : std::vector<std::tuple<double, double, double>>{{1.0, 0.6, 0.5}, {0.5, 0.9, 1.0}}) {
    double sum = 0, sq = 0;
    for (int i = 0; i < kDraws; ++i) {
      double lp = 0, lq = 0;
      for (int j = 0; j < d; ++j) {
        const double x = std::sqrt(a) * N01(g);
        lp += -0.5 * std::log(a) - x * x / (2 * a);
        const double y = x - (j == 0 ? delta : 0.0);
        lq += -0.5 * std::log(b) - y * y / (2 * b);
      }
      const double v = lq >= lp ? 0.0 : -std::expm1(lq - lp);
      sum += v;
      sq += v * v;
    }
    const double mean = sum / kDraws, se = std::sqrt((sq / kDraws - mean * mean) / kDraws);
    EXPECT_NEAR(gaussian_tv_isotropic(delta * delta, a, b, a - b, d), mean, kSigmas * se)
        << "a=" << a << " b=" << b << " delta=" << delta;
  }
}

TEST(Reference, TvX0X1ClosedFormIsBelowPinsker) {
  const Schedule s = schedule("linear", 10);  // 1 - abar_1 = 5e-3: a term of order 1e-3
  const Mixture m = preset("two-point", 3, 2.0, 0.5);
  const TvX0X1 r = tv_x0_x1_bound(m, s);
  EXPECT_EQ(r.method, "closed form");
  // Against the 1-D closed form of one component: the means differ along e_1 only.
  const double abar = s.abar[1], oma = s.one_minus_abar[1], a = 0.25, b = abar * a + oma;
  const double delta = (1 - std::sqrt(abar)) * 2.0;
  EXPECT_NEAR(r.bound, gaussian_tv_isotropic(delta * delta, a, b, oma * (a - 1), 3), 1e-14);
  const double kl = 0.5 * (3 * (b / a - 1 - std::log(b / a)) + delta * delta / a);
  EXPECT_LE(r.bound, std::sqrt(kl / 2));
  const TvX0X1 lcw = tv_x0_x1_bound(m, schedule("lcw", 256));  // 1 - abar_1 ~ 1e-21
  EXPECT_EQ(lcw.method, "Pinsker");
  EXPECT_LT(lcw.bound, 1e-15);
}

TEST(Reference, ReducibleMeansOneLineAndOneSd) {
  SampleOptions o;
  EXPECT_EQ(reducible_reason(preset("two-point", 8, 2, 0.5), o), "");
  EXPECT_EQ(reducible_reason(preset("gaussian", 8, 0, 0.5), o), "");
  EXPECT_NE(reducible_reason(preset("random-sphere", 3, 2, 1), o).find("off the line"), std::string::npos);
  PresetParams p;
  p.name = "two-point";
  p.d = 2;
  p.sd = {0.5, 1.0};
  EXPECT_NE(reducible_reason(make_preset(p), o).find("variances differ"), std::string::npos);
  o.score_error = {ScoreErrorKind::Means, 0.1};
  EXPECT_NE(reducible_reason(preset("two-point", 4, 2, 1), o), "");
  EXPECT_EQ(reducible_reason(preset("two-point", 1, 2, 1), o), "");
  o.score_error = {ScoreErrorKind::Bias, 0.1};
  EXPECT_NE(reducible_reason(preset("two-point", 4, 2, 1), o), "");
  EXPECT_EQ(reducible_reason(preset("two-point", 1, 2, 1), o), "");
  o.score_error = {ScoreErrorKind::Weights, 0.3};
  EXPECT_EQ(reducible_reason(preset("two-point", 4, 2, 1), o), "");
  EXPECT_THROW(exact_reference(preset("random-sphere", 3, 2, 1), schedule("lcw", 8), SampleOptions()), Error);
}

TEST(Reference, TwoPointModelsSitInsideTheBracket) {
  // Two-point, radius 2, lcw T = 64: d = 1 and 16, sd 1 and 0.5, ddpm and ddim. The reference is
  // grid-converged; the ddim exact TV lies within 4 standard errors of it (its 95% interval misses
  // 5% of the time); the ddpm path bound lies above it (one-sided 95%) and U_TV(64) <= 1.5 x
  // reference; the projected lower bound's 95% interval starts below it. The lower bound's sample
  // has its own seed: with the bounds' seed, a ddim sample would be the exact figure's particles.
  constexpr uint64_t kOuter = 2048, kFlow = 100000, kLowerN = 20000;
  const Schedule s = schedule("lcw", 64);
  auto kr = make_bounds_kernels("cpu", 0);
  auto be = make_backend("cpu");
  for (int d : {1, 16})
    for (double sd : {1.0, 0.5})
      for (SamplerKind smp : {SamplerKind::DDPM, SamplerKind::DDIM}) {
        const Mixture m = preset("two-point", d, 2.0, sd);
        SampleOptions o;
        o.sampler = smp;
        o.seed = 21;
        const Reference ref = exact_reference(m, s, o);
        const std::string what = describe(m, s, o);
        EXPECT_TRUE(ref.converged) << what << ": change " << ref.change;
        BoundsOptions bo;
        if (smp == SamplerKind::DDIM) {
          bo.n = kFlow;
          const ExactDensity ex = exact_density(m, s, o, bo, *kr);
          EXPECT_NEAR(ex.tv.mean, ref.tv, kSigmas * ex.tv.se)
              << what << ": exact " << ex.tv.mean << " +- " << ex.tv.se << ", ref " << ref.tv;
        } else {
          bo.n = kOuter;
          bo.M = kPathM;
          const PathBound pb = path_bound(m, s, o, bo, *kr);
          EXPECT_GE(pb.tv_upper(), ref.tv) << what << ": U_TV " << pb.tv.mean << " +- " << pb.tv.se << ", ref " << ref.tv;
          EXPECT_LE(pb.tv_upper_mean(), kUpperOverRefMax * ref.tv)
              << what << ": U_TV(64) " << pb.tv.mean << " vs ref " << ref.tv;
        }
        SampleOptions lo = o;
        lo.seed = o.seed + 1;
        lo.n = kLowerN;
        lo.precision = Precision::FP64;
        TvOptions to;
        to.seed = lo.seed;
        TvPlan plan(m, to, lo.n);
        plan.prepare_reference(*be, lo.precision);
        TvSink sink(plan, lo.precision);
        run_sampler(m, s, lo, *be, sink);
        const StatResult best = sink.report().max();
        EXPECT_LE(best.ci_lo, ref.tv) << what << ": lower " << best.name << " CI [" << best.ci_lo << ", " << best.ci_hi
                                      << "], ref " << ref.tv;
      }
}
