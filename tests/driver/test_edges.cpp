// Numerics at the edges (issue 5): huge means, tiny and huge sd, many components, high dimension,
// tiny weights. No NaN/Inf, and the K = 1 closed form still holds where it applies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <limits>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "util/sink_util.hpp"

using namespace gmmdiff;
using gmmdiff::test::CollectSink;

namespace {
constexpr double kMomentSigmas = 5.0;

std::vector<double> run(const Mixture& m, const ScheduleParams& sp, uint64_t n, Precision p, int stop = 1) {
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

std::vector<double> run(const Mixture& m, int T, uint64_t n, Precision p, int stop = 1) {
  ScheduleParams sp;
  sp.T = T;
  return run(m, sp, n, p, stop);
}

void expect_finite(const std::vector<double>& v) {
  for (std::size_t i = 0; i < v.size(); ++i) ASSERT_TRUE(std::isfinite(v[i])) << "value " << i << " = " << v[i];
}

/// K = 1 in d = 2: mean radius * e_1, sd the same in every coordinate.
Mixture gaussian2(double radius, double sd) {
  PresetParams pp;
  pp.name = "gaussian";
  pp.d = 2;
  pp.radius = radius;
  pp.sd = {sd};
  return make_preset(pp);
}

/// Sample mean and (n - 1) variance of the first of 2 coordinates.
std::pair<double, double> first_coordinate_moments(const std::vector<double>& y) {
  const std::size_t n = y.size() / 2;
  double em = 0, ev = 0;
  for (std::size_t i = 0; i < n; ++i) em += y[2 * i];
  em /= n;
  for (std::size_t i = 0; i < n; ++i) ev += (y[2 * i] - em) * (y[2 * i] - em);
  return {em, ev / (n - 1)};
}

/// Mean and variance of the first coordinate of a K = 1 run, by the recursion of THEORY.md
/// ("Exact facts": V_{t-1} = c_t^2 V_t + sigma_t^2, m_{t-1} = c_t m_t + kappa_t sqrt(abar_t) mu / (v_t sqrt(alpha_t))).
std::pair<double, double> gaussian_closed_form(const Mixture& m, const Schedule& s, int stop, double mu, double sd) {
  SampleOptions o;
  o.stop = stop;
  double mean = 0, var = 1;
  for (int t = s.T; t > stop; --t) {
    const StepCoeffs c = step_coeffs(m, s, t, o, {});
    const double v = s.abar[t] * sd * sd + s.one_minus_abar[t];
    const double ct = (1 - c.kappa / v) * c.inv_sqrt_alpha;
    mean = ct * mean + c.kappa * std::sqrt(s.abar[t]) * mu / v * c.inv_sqrt_alpha;
    var = ct * ct * var + c.sigma * c.sigma;
  }
  return {mean, var};
}
}  // namespace

TEST(Edges, GaussianWithExtremeMeanAndSdMatchesClosedForm) {
  // K = 1, |mu| = 1e4 and sd from 1e-3 to 1e3 (fp64: in fp32 a spread of 1e-3 around 1e4 is below
  // the format's resolution, so only finiteness is asserted there).
  for (double sd : {1e-3, 1.0, 1e3})
    for (Precision p : {Precision::FP64, Precision::FP32}) {
      SCOPED_TRACE(testing::Message() << "sd=" << sd << " " << to_string(p));
      const Mixture m = gaussian2(1e4, sd);
      const int T = 200;
      const uint64_t n = 20000;
      const std::vector<double> y = run(m, T, n, p, 0);
      expect_finite(y);
      if (p == Precision::FP32) continue;
      // closed form (THEORY.md): V_{t-1} = c_t^2 V_t + sigma_t^2, m_{t-1} = c_t m_t + kappa sqrt(abar) mu / (v sqrt(alpha))
      ScheduleParams sp;
      sp.T = T;
      const auto [mean, var] = gaussian_closed_form(m, make_schedule(sp), 0, 1e4, sd);
      const auto [em, ev] = first_coordinate_moments(y);
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
  // A diverging schedule in fp32: alpha_t = 1e-80 makes 1/sqrt(alpha) = 1e40 overflow float.
  // (1e-30, 1/sqrt = 1e15, diverged only while 1 - alpha_t was computed as 0 there: the step is in
  // fact a contraction to the target, kappa = 1 - alpha_t cancelling y.)
  const std::string path = testing::TempDir() + "/diverge.json";
  { std::ofstream(path) << "{\"alpha\": [0.5, 1e-80, 1e-80]}"; }
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


TEST(Edges, AbarWithin1e16Of1MatchesClosedForm) {
  // lcw at T = 64 has 1 - abar_1 far below 1e-16, where 1 - abar in double would be 0: the step
  // t = 1 (stop = 0) divides by v_1 = abar_1 sd^2 + (1 - abar_1). With sd = 1e-3 the last step
  // contracts the spread by 1e6 and the output must still be the closed-form Gaussian.
  ScheduleParams sp;
  sp.T = 64;
  const Schedule s = make_schedule(sp);
  ASSERT_LT(s.one_minus_abar[1], 1e-16) << "the schedule no longer reaches the edge this test is about";
  ASSERT_GT(s.one_minus_abar[1], 0.0);
  for (double sd : {1e-3, 1.0})
    for (int stop : {0, 1}) {
      SCOPED_TRACE(testing::Message() << "sd=" << sd << " stop=" << stop << " 1-abar_1=" << s.one_minus_abar[1]);
      const Mixture m = gaussian2(3, sd);
      const uint64_t n = 20000;
      const std::vector<double> y = run(m, sp.T, n, Precision::FP64, stop);
      expect_finite(y);
      const auto [mean, var] = gaussian_closed_form(m, s, stop, 3.0, sd);
      const auto [em, ev] = first_coordinate_moments(y);
      EXPECT_NEAR(em, mean, kMomentSigmas * std::sqrt(var / n) + 1e-12);
      EXPECT_NEAR(ev, var, kMomentSigmas * var * std::sqrt(2.0 / n));
    }
}

TEST(Edges, MeansAtTheTheoremsRadiusTPowCR) {
  // Theorem 1 allows max_k |mu_k| <= T^{c_R} when abar_T = T^{-c0} makes sqrt(abar_T) |mu| small,
  // i.e. c0 > 2 c_R. With T = 256, c_R = 1, |mu| = 256 and c0 = 4 (c1 = 20 keeps c1/c0 > 4):
  // the particles must end at the two means (sd = 1) in proportion to the weights, none between.
  // (With the default c0 = 2, sqrt(abar_T) |mu| = 1: N(0, I) is then not close to X_T and the
  // weights come out 0.34/0.66, not 0.25/0.75; that is the initialisation term, not a bug.)
  ScheduleParams sp;
  sp.T = 256;
  sp.c0 = 4;
  sp.c1 = 20;
  const double c_R = 1;
  const double radius = std::pow(double(sp.T), c_R);
  for (Precision p : {Precision::FP64, Precision::FP32}) {
    SCOPED_TRACE(testing::Message() << to_string(p) << " radius=" << radius);
    PresetParams pp;
    pp.name = "two-point";
    pp.d = 4;
    pp.radius = radius;
    pp.weights = {0.25, 0.75};
    const Mixture m = make_preset(pp);
    const uint64_t n = 8000;
    const std::vector<double> y = run(m, sp, n, p);
    expect_finite(y);
    uint64_t at_plus = 0, stray = 0;
    for (uint64_t i = 0; i < n; ++i) {
      const double x = y[4 * i];
      if (std::fabs(x - radius) < 8) ++at_plus;
      else if (std::fabs(x + radius) >= 8) ++stray;
    }
    EXPECT_EQ(stray, 0u);
    // means are +radius e_1 (weight 0.25) and -radius e_1 (weight 0.75): a binomial count
    const double expect = 0.25 * n, sdev = std::sqrt(n * 0.75 * 0.25);
    EXPECT_NEAR(double(at_plus), expect, kMomentSigmas * sdev);
  }
}

// Issue 15: the score-error models at large eps. The weights are perturbed in log space: at
// eps = 1e5, pi_k e^{eps g_k} overflowed (inf / inf = NaN weights) and the run sampled something
// else with eps_score = NaN and exit 0.
TEST(Edges, ScoreErrorModelsStayFiniteOrAreRefused) {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = 3;
  pp.K = 5;
  const Mixture m = make_preset(pp);
  for (double eps : {0.3, 50.0, 1e5, 1e300}) {
    SCOPED_TRACE(testing::Message() << "weights eps=" << eps);
    const Mixture w = score_model(m, {ScoreErrorKind::Weights, eps}, 7);
    double sum = 0;
    for (double x : w.weights) {
      ASSERT_TRUE(std::isfinite(x) && x > 0) << x;
      sum += x;
    }
    EXPECT_NEAR(sum, 1.0, 1e-12);
  }
  // At small eps the log-space form is the direct one, pi_k e^{eps g_k} / sum, to rounding.
  const Mixture small = score_model(m, {ScoreErrorKind::Weights, 0.3}, 7);
  const Mixture big = score_model(m, {ScoreErrorKind::Weights, 1e5}, 7);
  constexpr uint64_t kAuxPerturbWeights = 4000;  // the Philox purpose of the log-weight normals (sampler.cpp)
  std::vector<double> direct(m.K);
  double s = 0;
  for (int k = 0; k < m.K; ++k) {
    const double g = detail::philox_normal<double>(7, kStreamAux, kAuxPerturbWeights, 0, static_cast<uint32_t>(k));
    s += (direct[k] = m.weights[k] * std::exp(0.3 * g));
  }
  for (int k = 0; k < m.K; ++k) EXPECT_NEAR(small.weights[k], direct[k] / s, 1e-15);
  // At eps = 1e5 one component takes all the mass.
  EXPECT_NEAR(*std::max_element(big.weights.begin(), big.weights.end()), 1.0, 1e-15);

  ScheduleParams sp;
  sp.T = 16;
  const Schedule sched = make_schedule(sp);
  SampleOptions o;
  o.n = 256;
  o.eps_samples = 64;
  o.score_error = {ScoreErrorKind::Weights, 1e5};
  EXPECT_TRUE(std::isfinite(measure_eps_score(m, sched, o)));
  // bias, scale, gaussian: eps is factored out of |e|^2 (eps^2 overflowed at eps > 1e154).
  o.score_error = {ScoreErrorKind::Bias, 1e200};
  EXPECT_NEAR(measure_eps_score(m, sched, o), 1e200, 1e188);
  // means that move so far that |mu|^2 overflows: refused before the run, as for the model itself.
  o.score_error = {ScoreErrorKind::Means, 1e300};
  auto be = make_backend("cpu");
  CollectSink sink(m.d, Precision::FP32);
  EXPECT_THROW(check_sample_options(m, sched, o), Error);
  EXPECT_THROW(run_sampler(m, sched, o, *be, sink), Error);
  EXPECT_EQ(sink.chunks, 0);
}

// Issue 15: the same rules for the command line and sweeps: a scale error's eps > -1 (the score
// times 1 + eps; sample refused any negative eps that sweeps accepted), eps_samples bounded, and a
// snapshot step given twice refused before any output exists.
TEST(Edges, SampleOptionsFollowOneRule) {
  PresetParams pp;
  const Mixture m = make_preset(pp);
  ScheduleParams sp;
  sp.T = 8;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.n = 16;
  o.score_error = {ScoreErrorKind::Scale, -0.5};
  EXPECT_NO_THROW(check_sample_options(m, s, o));
  o.score_error = {ScoreErrorKind::Scale, -1.0};
  EXPECT_THROW(check_sample_options(m, s, o), Error);
  o.score_error = {ScoreErrorKind::Bias, -0.5};
  EXPECT_THROW(check_sample_options(m, s, o), Error);
  o.score_error = {ScoreErrorKind::Bias, 0.5};
  o.eps_samples = (1 << 24) + 1;
  EXPECT_THROW(check_sample_options(m, s, o), Error);
  o.eps_samples = 1024;
  o.snapshot_steps = {4, 2, 4};
  EXPECT_THROW(check_sample_options(m, s, o), Error);
}

// Issue 15: --chunk 2^64 - 1 was rounded up to a multiple of 256, wrapped around to 0 and ended in
// SIGFPE (a division by the chunk); now it is a chunk that does not fit.
TEST(Edges, AChunkThatWrapsAroundIsAResourceError) {
  PresetParams pp;
  const Mixture m = make_preset(pp);
  auto be = make_backend("cpu");
  const RunShape shape = run_shape(m, Precision::FP32, 0);
  for (std::size_t chunk : {std::numeric_limits<std::size_t>::max(), std::numeric_limits<std::size_t>::max() - 100})
    EXPECT_THROW(choose_chunk_rows(*be, shape, 1000, chunk), ResourceError) << chunk;
  EXPECT_EQ(choose_chunk_rows(*be, shape, 1000, 300), 512u);
}

// Issue 15: the advice after a non-finite particle names only what differs from the run: no
// "--precision fp64" for a run in fp64.
TEST(Edges, NonFiniteAdviceNamesOnlyWhatCanHelp) {
  PresetParams pp;
  const Mixture m = make_preset(pp);
  ScheduleParams sp;
  sp.T = 8;
  SampleOptions o;
  o.n = 64;
  o.precision = Precision::FP64;
  o.score_error = {ScoreErrorKind::Scale, 1e300};
  o.eps_samples = 16;
  auto be = make_backend("cpu");
  CollectSink sink(m.d, o.precision);
  try {
    run_sampler(m, make_schedule(sp), o, *be, sink);
    FAIL() << "expected a non-finite particle";
  } catch (const NumericalError& e) {
    const std::string w = e.what();
    EXPECT_EQ(w.find("--precision fp64"), std::string::npos) << w;
    EXPECT_NE(w.find("a smaller --eps"), std::string::npos) << w;
  }
}

// Issue 15 with issue 11's profiles: the overflow fixes hold for every step's eps_t = eps f(t), so
// a profile whose factor pushes one step into the overflow regime gets the same log-space weights,
// the same scaled eps_score and the same refusals as a uniform eps that large.
TEST(Edges, AProfileFactorThatReachesTheOverflowRegimeIsHandledAtThatStep) {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = 3;
  pp.K = 5;
  const Mixture m = make_preset(pp);
  ScheduleParams sp;
  sp.T = 16;
  const Schedule sched = make_schedule(sp);
  constexpr uint64_t kSeed = 7;
  constexpr uint64_t kAuxPerturbWeights = 4000;  // the Philox purpose of the log-weight normals (sampler.cpp)
  constexpr double kSoftmaxTol = 1e-12;

  // weights: eps 1 with a factor 1e4 at t = T: e^{1e4 g} overflows there (and only there).
  SampleOptions o;
  o.n = 256;
  o.eps_samples = 64;
  o.precision = Precision::FP64;
  o.seed = kSeed;
  o.score_error.kind = ScoreErrorKind::Weights;
  o.score_error.eps = 1.0;
  o.score_error.profile = ErrorProfile::File;
  o.score_error.factors.assign(sched.T, 1.0);
  o.score_error.factors[sched.T - 1] = 1e4;
  EXPECT_NO_THROW(check_sample_options(m, sched, o));
  const ScorePlan plan(m, sched, o);
  ASSERT_TRUE(plan.per_step());
  const Mixture top = plan.model(sched.T);
  // An independent softmax of log pi_k + eps_t g_k, in long double.
  std::vector<long double> lw(m.K);
  long double mx = -INFINITY;
  for (int k = 0; k < m.K; ++k) {
    const double g = detail::philox_normal<double>(kSeed, kStreamAux, kAuxPerturbWeights, 0, static_cast<uint32_t>(k));
    lw[k] = std::log(static_cast<long double>(m.weights[k])) + 1e4L * g;
    mx = std::max(mx, lw[k]);
  }
  long double z = 0;
  for (int k = 0; k < m.K; ++k) z += std::exp(lw[k] - mx);
  for (int k = 0; k < m.K; ++k) {
    const double expect = std::max(static_cast<double>(std::exp(lw[k] - mx) / z), std::numeric_limits<double>::min());
    ASSERT_TRUE(std::isfinite(top.weights[k]) && top.weights[k] > 0) << "k " << k << ": " << top.weights[k];
    EXPECT_NEAR(top.weights[k], expect, kSoftmaxTol) << "k " << k;
  }
  // The other steps keep the direct form (factor 1), bit for bit.
  const Mixture direct = score_model(m, {ScoreErrorKind::Weights, 1.0}, kSeed);
  EXPECT_EQ(plan.model(sched.T - 1).weights, direct.weights);
  const double es = measure_eps_score(m, sched, o);
  EXPECT_TRUE(std::isfinite(es)) << es;
  auto be = make_backend("cpu");
  CollectSink sink(m.d, o.precision);
  const RunSummary sum = run_sampler(m, sched, o, *be, sink);
  EXPECT_EQ(sum.eps_score, es);

  // eps x factor near the largest double: eps g_k itself overflows; the weights stay a distribution.
  o.score_error.eps = 1e307;
  o.score_error.factors[sched.T - 1] = 10.0;
  const Mixture huge = ScorePlan(m, sched, o).model(sched.T);
  double sum_w = 0;
  for (double w : huge.weights) {
    ASSERT_TRUE(std::isfinite(w) && w > 0) << w;
    sum_w += w;
  }
  EXPECT_NEAR(sum_w, 1.0, kSoftmaxTol);
  EXPECT_NEAR(*std::max_element(huge.weights.begin(), huge.weights.end()), 1.0, kSoftmaxTol);

  // bias: eps 1e100 and a factor 1e60 at t = T, so eps_t^2 = 1e320 overflows at that step only. The
  // realised eps_score is eps sqrt(mean over the evaluated steps t = 2..16 of f(t)^2), |u| = 1.
  o.score_error.kind = ScoreErrorKind::Bias;
  o.score_error.eps = 1e100;
  o.score_error.factors.assign(sched.T, 1.0);
  o.score_error.factors[sched.T - 1] = 1e60;
  const int steps = sched.T - o.stop;
  const double expect_bias = 1e160 * std::sqrt((1.0 + (steps - 1) * 1e-120) / steps);
  EXPECT_NEAR(measure_eps_score(m, sched, o), expect_bias, 1e-12 * expect_bias);

  // means: a factor that moves the means so far at one step that |mu|^2 overflows is refused before
  // the run, as a uniform eps that large; so is eps x factor beyond the largest double.
  o.score_error.kind = ScoreErrorKind::Means;
  o.score_error.eps = 1.0;
  o.score_error.factors[sched.T - 1] = 1e300;
  EXPECT_THROW(check_sample_options(m, sched, o), Error);
  o.score_error.factors[sched.T - 1] = 1.0;
  EXPECT_NO_THROW(check_sample_options(m, sched, o));
  o.score_error.kind = ScoreErrorKind::Scale;
  o.score_error.eps = 1e300;
  o.score_error.factors[sched.T - 1] = 1e10;
  EXPECT_THROW(check_sample_options(m, sched, o), Error);
  CollectSink none(m.d, o.precision);
  EXPECT_THROW(run_sampler(m, sched, o, *be, none), Error);
  EXPECT_EQ(none.chunks, 0);

  // scale: eps > -1 with the factor: eps f(t) > -1 at every step (front-loaded reaches
  // sqrt(2 steps / (steps + 1)) at t = T).
  o.score_error = {ScoreErrorKind::Scale, -0.8};
  EXPECT_NO_THROW(check_sample_options(m, sched, o));
  o.score_error.profile = ErrorProfile::FrontLoaded;
  EXPECT_THROW(check_sample_options(m, sched, o), Error);
  o.score_error.eps = -0.7;  // -0.7 x sqrt(30/16) = -0.96
  EXPECT_NO_THROW(check_sample_options(m, sched, o));
}
