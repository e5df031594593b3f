// Numerics at the edges (issue 5): huge means, tiny and huge sd, many components, high dimension,
// tiny weights. No NaN/Inf, and the K = 1 closed form still holds where it applies.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "sink_util.hpp"

using namespace gmmdiff;
using gmmdiff::test::CollectSink;

namespace {
constexpr double kMomentSigmas = 5.0;

std::vector<double> run(const Mixture& m, int T, uint64_t n, Precision p, int stop = 1) {
  ScheduleParams sp;
  sp.T = T;
  SampleOptions o;
  o.n = n;
  o.precision = p;
  o.stop = stop;
  o.seed = 17;
  auto be = make_backend("cpu");
  CollectSink sink(m.d, p);
  run_sampler(m, make_schedule(sp), o, *be, sink);
  return sink.data;
}

void expect_finite(const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_TRUE(std::isfinite(v[i])) << "value " << i << " = " << v[i];
}
}  // namespace

TEST(Edges, GaussianWithExtremeMeanAndSdMatchesClosedForm) {
  // K = 1, |mu| = 1e4 and sd from 1e-3 to 1e3 (fp64: in fp32 a spread of 1e-3 around 1e4 is below
  // the format's resolution, so only finiteness is asserted there).
  for (double sd : {1e-3, 1.0, 1e3})
    for (Precision p : {Precision::FP64, Precision::FP32}) {
      SCOPED_TRACE(testing::Message() << "sd=" << sd << " " << to_string(p));
      PresetParams pp;
      pp.name = "gaussian";
      pp.d = 2;
      pp.radius = 1e4;
      pp.sd = {sd};
      const Mixture m = make_preset(pp);
      const int T = 200;
      const uint64_t n = 20000;
      const std::vector<double> y = run(m, T, n, p, 0);
      expect_finite(y);
      if (p == Precision::FP32) continue;
      // closed form (THEORY.md): V_{t-1} = c_t^2 V_t + sigma_t^2, m_{t-1} = c_t m_t + kappa sqrt(abar) mu / (v sqrt(alpha))
      ScheduleParams sp;
      sp.T = T;
      const Schedule s = make_schedule(sp);
      double mean = 0, var = 1;
      SampleOptions o;
      o.stop = 0;
      for (int t = T; t >= 1; --t) {
        const StepCoeffs c = step_coeffs(m, s, t, o, {});
        const double v = s.abar[t] * sd * sd + s.one_minus_abar[t];
        const double ct = (1 - c.kappa / v) * c.inv_sqrt_alpha;
        mean = ct * mean + c.kappa * std::sqrt(s.abar[t]) * 1e4 / v * c.inv_sqrt_alpha;
        var = ct * ct * var + c.sigma * c.sigma;
      }
      double em = 0, ev = 0;
      for (uint64_t i = 0; i < n; ++i) em += y[2 * i];
      em /= n;
      for (uint64_t i = 0; i < n; ++i) ev += (y[2 * i] - em) * (y[2 * i] - em);
      ev /= n - 1;
      EXPECT_NEAR(em, mean, kMomentSigmas * std::sqrt(var / n) + 1e-9 * std::fabs(mean));
      EXPECT_NEAR(ev, var, kMomentSigmas * var * std::sqrt(2.0 / n));
    }
}

TEST(Edges, ManyComponentsHighDimensionTinyWeights) {
  {  // K = 10^5 in d = 2
    PresetParams pp;
    pp.name = "random-sphere";
    pp.d = 2;
    pp.K = 100000;
    pp.radius = 5;
    expect_finite(run(make_preset(pp), 6, 256, Precision::FP32));
  }
  {  // d = 10^4, K = 2
    PresetParams pp;
    pp.name = "two-point";
    pp.d = 10000;
    pp.radius = 3;
    expect_finite(run(make_preset(pp), 6, 256, Precision::FP32));
  }
  {  // d = 1
    PresetParams pp;
    pp.name = "two-point";
    pp.d = 1;
    expect_finite(run(make_preset(pp), 50, 1000, Precision::FP32));
  }
  {  // weights down to 1e-12: the tiny component gets (almost) no particles
    PresetParams pp;
    pp.name = "two-point";
    pp.d = 2;
    pp.radius = 8;
    pp.weights = {1e-12, 1 - 1e-12};
    const std::vector<double> y = run(make_preset(pp), 200, 20000, Precision::FP32);
    expect_finite(y);
    int near_tiny = 0;
    for (std::size_t i = 0; i < y.size(); i += 2) near_tiny += y[i] > 4;
    EXPECT_LE(near_tiny, 2);
  }
  {  // |mu| = 1e4 with K = 64 and abar_T = T^-c0 far from covering it: still finite
    PresetParams pp;
    pp.name = "random-sphere";
    pp.d = 8;
    pp.K = 64;
    pp.radius = 1e4;
    expect_finite(run(make_preset(pp), 100, 512, Precision::FP32));
  }
}

TEST(Edges, NonFiniteParticleStopsTheRunNamingTheStep) {
  // A diverging schedule in fp32: alpha_t tiny makes 1/sqrt(alpha) overflow float.
  const std::string path = testing::TempDir() + "/diverge.json";
  { std::ofstream(path) << "{\"alpha\": [0.5, 1e-30, 1e-30, 1e-30, 1e-30]}"; }
  ScheduleParams sp;
  sp.name = "file";
  sp.file = path;
  PresetParams pp;
  const Mixture m = make_preset(pp);
  SampleOptions o;
  o.n = 300;
  auto be = make_backend("cpu");
  CollectSink sink(m.d, o.precision);
  try {
    run_sampler(m, make_schedule(sp), o, *be, sink);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step t = "), std::string::npos) << e.what();
  }
  EXPECT_EQ(sink.chunks, 0);  // nothing reached the sink
}
