// The practitioners' DDIM (`ddim-song`, Song et al. 2021 with eta; sampler.hpp, step_scalars):
// eta = 0 with K = 1 against the closed-form output computed the way DDIM schedulers compute it
// (x0 prediction, predicted noise, sqrt(1 - abar_{t-1}) direction), particle by particle; eta = 1
// against ddpm with the posterior variance (the same update: docs/cli.md, "Two DDIMs"); and the
// kappa_t of the factored form against the libraries' direct formula where that does not cancel.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "util/sink_util.hpp"
#include "util/model_util.hpp"

using namespace gmmdiff;
using gmmdiff::test::PlacedSink;

namespace {

constexpr double kClosedFormRelTol = 1e-10;  // fp64 sampler against the closed form, per particle
constexpr double kCoincideRelTol = 1e-11;    // eta = 1 against ddpm/posterior, per particle
constexpr double kKappaRelTol = 1e-12;       // the stable kappa against the direct formula

using test::schedule;

/// Y_T of particle i, coordinate j, as the backends draw it (Philox stream kStreamInit).
double y_T(uint64_t seed, uint64_t i, int j) {
  double z[4];
  detail::philox_normal4<double>(seed, kStreamInit, i, 0, static_cast<uint32_t>(j / 4), z);
  return z[j % 4];
}

}  // namespace

TEST(DdimSong, EtaZeroGaussianTargetMatchesTheSchedulersClosedForm) {
  // K = 1, N(mu, s^2 I): with the exact score, x0(x) = mu + (s^2 sqrt(abar)/v)(x - sqrt(abar) mu) and
  // eps(x) = (x - sqrt(abar) x0(x)) / sqrt(1 - abar); the step y' = sqrt(abar') x0 + sqrt(1 - abar') eps
  // is affine in y, so each output coordinate is an affine function of the particle's own Y_T.
  for (const std::string sched : {"linear", "cosine", "lcw"}) {
    for (const double sd : {1.0, 0.6}) {
      PresetParams pp;
      pp.name = "gaussian";
      pp.d = 3;
      pp.sd = {sd};
      pp.radius = 1.5;
      const Mixture m = make_preset(pp);
      const Schedule s = schedule(sched, 40);
      SampleOptions o;
      o.n = 300;
      o.sampler = SamplerKind::DDIMSong;
      o.eta = 0.0;
      o.precision = Precision::FP64;
      o.seed = 7;
      o.stop = sched == "lcw" ? 1 : 0;
      auto be = make_backend("cpu", 2);
      PlacedSink sink(o.n, m.d, o.precision);
      run_sampler(m, s, o, *be, sink);
      for (int j = 0; j < m.d; ++j) {
        const double mu = m.mean(0)[j], s2 = sd * sd;
        for (uint64_t i = 0; i < o.n; ++i) {
          double y = y_T(o.seed, i, j);
          for (int t = s.T; t > o.stop; --t) {
            const double abar = s.abar[t], abar_prev = s.abar[t - 1];
            const double v = abar * s2 + s.one_minus_abar[t];
            const double x0 = mu + s2 * std::sqrt(abar) / v * (y - std::sqrt(abar) * mu);
            const double eps = (y - std::sqrt(abar) * x0) / std::sqrt(s.one_minus_abar[t]);
            y = std::sqrt(abar_prev) * x0 + std::sqrt(s.one_minus_abar[t - 1]) * eps;
          }
          const double got = sink.y[i * m.d + j];
          ASSERT_NEAR(got, y, kClosedFormRelTol * std::max(1.0, std::abs(y)))
              << sched << " sd " << sd << " particle " << i << " coordinate " << j;
        }
      }
    }
  }
}

TEST(DdimSong, EtaOneIsDdpmWithThePosteriorVariance) {
  // kappa_t = 1 - alpha_t and sigma_t^2 = (1 - abar_{t-1})/(1 - abar_t) (1 - alpha_t) when eta = 1:
  // the same update as ddpm/posterior, with the same noise, so the same particles up to rounding.
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = 4;
  pp.K = 5;
  pp.radius = 2.0;
  const Mixture m = make_preset(pp);
  for (const std::string sched : {"linear", "lcw"}) {
    const Schedule s = schedule(sched, 50);
    SampleOptions a;
    a.n = 512;
    a.precision = Precision::FP64;
    a.seed = 3;
    a.sampler = SamplerKind::DDIMSong;
    a.eta = 1.0;
    SampleOptions b = a;
    b.sampler = SamplerKind::DDPM;
    b.variance = Variance::Posterior;
    b.eta = 0.0;
    for (int t = 2; t <= s.T; ++t) {
      const StepCoeffs ca = step_coeffs(m, s, t, a, {}), cb = step_coeffs(m, s, t, b, {});
      EXPECT_NEAR(ca.kappa, cb.kappa, kKappaRelTol * cb.kappa) << sched << " t " << t;
      EXPECT_EQ(ca.sigma, cb.sigma) << sched << " t " << t;
    }
    auto be = make_backend("cpu", 2);
    PlacedSink sa(a.n, m.d, a.precision), sb(b.n, m.d, b.precision);
    run_sampler(m, s, a, *be, sa);
    run_sampler(m, s, b, *be, sb);
    for (std::size_t i = 0; i < sa.y.size(); ++i)
      ASSERT_NEAR(sa.y[i], sb.y[i], kCoincideRelTol * std::max(1.0, std::abs(sb.y[i]))) << sched << " value " << i;
  }
}

TEST(DdimSong, KappaMatchesTheLibrariesFormulaAndEulerDiffers) {
  // Where 1 - alpha_t is not tiny, the libraries' direct form
  // kappa = sqrt(alpha) [sqrt(abar_{t-1}) (1 - abar_t)/sqrt(abar_t) - sqrt((1 - abar_{t-1} - sigma^2)(1 - abar_t))]
  // loses no digits; the factored form must agree. The theory's Euler ddim has kappa = (1 - alpha_t)/2.
  const Schedule s = schedule("linear", 20);
  SampleOptions o;
  o.sampler = SamplerKind::DDIMSong;
  for (const double eta : {0.0, 0.3, 0.7, 1.0}) {
    o.eta = eta;
    for (int t = 2; t <= s.T; ++t) {
      double kappa = 0, isa = 0, sigma = 0;
      step_scalars(s, t, o, kappa, isa, sigma);
      const double abar = s.abar[t], abar_prev = s.abar[t - 1], alpha = s.alpha[t];
      const double sig2 = eta * eta * (1 - abar_prev) / (1 - abar) * (1 - alpha);
      const double direct = std::sqrt(alpha) * (std::sqrt(abar_prev) * (1 - abar) / std::sqrt(abar) -
                                                std::sqrt((1 - abar_prev - sig2) * (1 - abar)));
      std::ostringstream what;
      what << "eta " << eta << " t " << t;
      EXPECT_NEAR(kappa, direct, 1e-9 * direct) << what.str();
      EXPECT_NEAR(sigma * sigma, sig2, 1e-14) << what.str();
      EXPECT_NEAR(isa, 1 / std::sqrt(alpha), 1e-15) << what.str();
      if (eta == 0) {
        EXPECT_GT(std::abs(kappa - 0.5 * (1 - alpha)), 1e-6 * kappa) << what.str();
      }
    }
  }
  // lcw's first steps: 1 - alpha_t near 1e-21, where the direct form cancels to 0 or worse; the
  // factored form keeps kappa of the order of 1 - alpha_t.
  const Schedule l = schedule("lcw", 256);
  o.eta = 0.0;
  double kappa = 0, isa = 0, sigma = 0;
  step_scalars(l, 2, o, kappa, isa, sigma);
  const double beta = one_minus_alpha(l, 2);
  EXPECT_GT(kappa, 0.0);
  EXPECT_LT(kappa, beta);
  EXPECT_GT(kappa, 0.1 * beta) << "beta " << beta;
}

TEST(DdimSong, EtaIsCheckedAndBelongsToDdimSongOnly) {
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = 2;
  const Mixture m = make_preset(pp);
  const Schedule s = schedule("linear", 10);
  SampleOptions o;
  o.sampler = SamplerKind::DDIMSong;
  for (const double bad : {-0.1, 1.5, std::nan("")}) {
    o.eta = bad;
    EXPECT_THROW(check_sample_options(m, s, o), Error) << bad;
  }
  o.eta = 0.5;
  EXPECT_NO_THROW(check_sample_options(m, s, o));
  o.sampler = SamplerKind::DDPM;
  EXPECT_THROW(check_sample_options(m, s, o), Error);
  EXPECT_EQ(parse_sampler("ddim-song"), SamplerKind::DDIMSong);
  EXPECT_STREQ(to_string(SamplerKind::DDIMSong), "ddim-song");
  o.sampler = SamplerKind::DDIMSong;
  EXPECT_EQ(sampler_label(o), "ddim-song/eta=0.5");
}
