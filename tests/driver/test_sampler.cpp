// The sampler on the CPU backend: K = 1 against the closed-form recursions (THEORY.md), bitwise
// reproducibility across threads and chunk sizes, the realised eps_score, edge cases of T.
#include <gtest/gtest.h>

#include <cmath>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "util/sink_util.hpp"

using namespace gmmdiff;
using gmmdiff::test::CollectSink;

namespace {

constexpr double kMomentSigmas = 5.0;  // empirical moments within 5 standard errors

struct Case {
  std::string schedule;
  SamplerKind sampler;
  Variance variance;
  int stop;
  ScoreErrorKind err;
  double eps;
};

std::string describe(const Case& c) {
  std::ostringstream os;
  os << c.schedule << " " << to_string(c.sampler) << "/" << to_string(c.variance) << " stop=" << c.stop
     << " err=" << to_string(c.err) << " eps=" << c.eps;
  return os.str();
}

// Mean and variance of coordinate j of the output for K = 1 target N(mu, s^2 I) (THEORY.md,
// Exact facts), with the injected errors folded in: scale multiplies kappa, bias shifts the mean,
// gaussian adds variance.
void closed_form(const Mixture& m, const Schedule& s, const SampleOptions& o, const std::vector<double>& bias_unit,
                 int j, double& mean, double& var) {
  mean = 0;
  var = 1;
  const double mu = m.mean(0)[j], s2 = m.sd[0] * m.sd[0];
  for (int t = s.T; t > o.stop; --t) {
    const StepCoeffs c = step_coeffs(m, s, t, o, bias_unit);
    const double abar = s.abar[t], v = abar * s2 + s.one_minus_abar[t];
    const double kappa = c.kappa * c.score_scale;
    const double ct = (1 - kappa / v) * c.inv_sqrt_alpha;
    mean = ct * mean + kappa * std::sqrt(abar) * mu / v * c.inv_sqrt_alpha +
           (c.bias_dir.empty() ? 0.0 : c.kappa * c.bias_dir[j] * c.inv_sqrt_alpha);
    const double noise_in_bracket = c.kappa * c.noise_sd * c.inv_sqrt_alpha;
    var = ct * ct * var + c.sigma * c.sigma + noise_in_bracket * noise_in_bracket;
  }
}

}  // namespace

TEST(Sampler, GaussianTargetMatchesClosedForm) {
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = 3;
  pp.radius = 1.5;
  pp.sd = {0.6};
  const Mixture m = make_preset(pp);
  const std::vector<Case> cases = {
      {"lcw", SamplerKind::DDPM, Variance::Beta, 1, ScoreErrorKind::None, 0},
      {"lcw", SamplerKind::DDPM, Variance::Posterior, 0, ScoreErrorKind::None, 0},
      {"lcw", SamplerKind::DDPM, Variance::Inside, 1, ScoreErrorKind::None, 0},
      {"lcw", SamplerKind::DDIM, Variance::Beta, 1, ScoreErrorKind::None, 0},
      {"linear", SamplerKind::DDPM, Variance::Beta, 0, ScoreErrorKind::None, 0},
      {"linear", SamplerKind::DDIM, Variance::Beta, 0, ScoreErrorKind::None, 0},
      {"cosine", SamplerKind::DDPM, Variance::Posterior, 1, ScoreErrorKind::None, 0},
      {"cosine", SamplerKind::DDIM, Variance::Beta, 1, ScoreErrorKind::None, 0},
      {"li-yan", SamplerKind::DDPM, Variance::Beta, 1, ScoreErrorKind::None, 0},
      {"li-yan", SamplerKind::DDIM, Variance::Beta, 0, ScoreErrorKind::None, 0},
      {"lcw", SamplerKind::DDPM, Variance::Beta, 1, ScoreErrorKind::Scale, 0.2},
      {"lcw", SamplerKind::DDPM, Variance::Beta, 1, ScoreErrorKind::Bias, 0.5},
      {"lcw", SamplerKind::DDPM, Variance::Beta, 1, ScoreErrorKind::Gaussian, 0.5},
  };
  auto be = make_backend("cpu");
  for (Precision prec : {Precision::FP64, Precision::FP32})
    for (const Case& c : cases) {
      SCOPED_TRACE(describe(c) + " " + to_string(prec));
      ScheduleParams sp;
      sp.name = c.schedule;
      sp.T = 40;
      const Schedule s = make_schedule(sp);
      SampleOptions o;
      o.n = 100000;
      o.seed = 12345;
      o.sampler = c.sampler;
      o.variance = c.variance;
      o.stop = c.stop;
      o.precision = prec;
      o.score_error = {c.err, c.eps};
      o.eps_samples = 16;
      CollectSink sink(m.d, prec);
      run_sampler(m, s, o, *be, sink);
      const std::vector<double> bu = c.err == ScoreErrorKind::Bias ? bias_direction(m.d, o.seed) : std::vector<double>();
      for (int j = 0; j < m.d; ++j) {
        double mean, var;
        closed_form(m, s, o, bu, j, mean, var);
        double em = 0, ev = 0;
        for (uint64_t i = 0; i < o.n; ++i) em += sink.data[i * m.d + j];
        em /= o.n;
        for (uint64_t i = 0; i < o.n; ++i) ev += (sink.data[i * m.d + j] - em) * (sink.data[i * m.d + j] - em);
        ev /= (o.n - 1);
        EXPECT_NEAR(em, mean, kMomentSigmas * std::sqrt(var / o.n)) << "j=" << j;
        EXPECT_NEAR(ev, var, kMomentSigmas * var * std::sqrt(2.0 / o.n)) << "j=" << j;
      }
    }
}

TEST(Sampler, BitwiseReproducibleAcrossThreadsAndChunks) {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = 10;
  pp.K = 12;
  pp.seed = 2;
  pp.sd = {0.5};
  Mixture iso = make_preset(pp);
  Mixture diag = iso;
  diag.cov = Covariance::Diagonal;
  for (int k = 0; k < diag.K; ++k)
    for (int j = 0; j < diag.d; ++j) diag.var_diag.push_back(0.2 + 0.05 * ((k + j) % 7));
  validate(diag);
  ScheduleParams sp;
  sp.T = 25;
  const Schedule s = make_schedule(sp);
  for (const Mixture* m : {&iso, &diag})
    for (Precision prec : {Precision::FP32, Precision::FP64}) {
      SCOPED_TRACE(testing::Message() << (m == &iso ? "iso" : "diag") << " " << to_string(prec));
      SampleOptions o;
      o.n = 1500;
      o.seed = 99;
      o.precision = prec;
      o.score_error = {ScoreErrorKind::Gaussian, 0.3};
      o.eps_samples = 8;
      std::vector<double> ref;
      for (int threads : {1, 2})
        for (std::size_t chunk : {std::size_t(0), std::size_t(256), std::size_t(700)}) {
          SCOPED_TRACE(testing::Message() << "threads=" << threads << " chunk=" << chunk);
          auto be = make_backend("cpu", threads);
          o.chunk = chunk;
          CollectSink sink(m->d, prec);
          run_sampler(*m, s, o, *be, sink);
          if (ref.empty()) ref = sink.data;
          else ASSERT_TRUE(ref == sink.data);
          if (chunk == 256) {
            EXPECT_EQ(sink.chunks, 6);
          }
        }
    }
}

TEST(Sampler, RealisedEpsScore) {
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = 4;
  pp.sd = {0.7};
  const Mixture m = make_preset(pp);
  ScheduleParams sp;
  sp.T = 30;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.eps_samples = 4000;
  // bias: |e| = eps exactly
  o.score_error = {ScoreErrorKind::Bias, 0.25};
  EXPECT_NEAR(measure_eps_score(m, s, o), 0.25, 1e-12);
  // scale: E|e|^2 = eps^2 E|s*|^2 = eps^2 d / v_t for K = 1
  o.score_error = {ScoreErrorKind::Scale, 0.1};
  double want = 0;
  for (int t = 2; t <= 30; ++t) want += 4.0 / (s.abar[t] * 0.49 + s.one_minus_abar[t]);
  want = 0.1 * std::sqrt(want / 29);
  EXPECT_NEAR(measure_eps_score(m, s, o), want, 0.03 * want);  // Monte Carlo, 4000 x 29 samples
  o.score_error = {ScoreErrorKind::Gaussian, 0.5};
  EXPECT_NEAR(measure_eps_score(m, s, o), 0.5, 0.02);
  o.score_error = {ScoreErrorKind::Means, 0.3};
  const double em = measure_eps_score(m, s, o);
  EXPECT_GT(em, 0.0);
  o.score_error = {ScoreErrorKind::Means, 0.6};
  EXPECT_NEAR(measure_eps_score(m, s, o), 2 * em, 0.05 * em);  // linear in eps for K = 1
  o.score_error = {ScoreErrorKind::None, 0.0};
  EXPECT_EQ(measure_eps_score(m, s, o), 0.0);
}

TEST(Sampler, SmallTAndStops) {
  PresetParams pp;
  pp.name = "two-point";
  pp.d = 2;
  const Mixture m = make_preset(pp);
  auto be = make_backend("cpu");
  for (const std::string name : {"lcw", "li-yan", "linear", "cosine"})
    for (int T : {1, 2, 3})
      for (int stop : {0, 1}) {
        SCOPED_TRACE(testing::Message() << name << " T=" << T << " stop=" << stop);
        ScheduleParams sp;
        sp.name = name;
        sp.T = T;
        SampleOptions o;
        o.n = 300;
        o.stop = stop;
        CollectSink sink(2, o.precision);
        const RunSummary r = run_sampler(m, make_schedule(sp), o, *be, sink);
        EXPECT_EQ(r.steps, T - stop);
        ASSERT_EQ(sink.data.size(), 600u);
        for (double v : sink.data) ASSERT_TRUE(std::isfinite(v));
      }
}

TEST(Sampler, BadOptions) {
  PresetParams pp;
  const Mixture m = make_preset(pp);
  const Schedule s = make_schedule(ScheduleParams{});
  auto be = make_backend("cpu");
  CollectSink sink(m.d, Precision::FP32);
  SampleOptions o;
  o.n = 0;
  EXPECT_THROW(run_sampler(m, s, o, *be, sink), Error);
  o.n = 10;
  o.stop = 2;
  EXPECT_THROW(run_sampler(m, s, o, *be, sink), Error);
  o.stop = 1;
  o.snapshot_steps = {5000};
  EXPECT_THROW(run_sampler(m, s, o, *be, sink), Error);
  EXPECT_THROW(make_backend("tpu"), Error);
}
