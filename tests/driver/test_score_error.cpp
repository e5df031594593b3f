// Score errors' time profiles and bias directions (sampler.hpp: ScoreError, score_error_factor,
// bias_unit_vector, ScorePlan): the profiles' normalisation, that step coefficients and the realised
// eps_score follow the same profile, the direction "along the means", and bad profiles and vectors.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "util/model_util.hpp"

using namespace gmmdiff;

namespace {

constexpr double kExactTol = 1e-12;

}  // namespace

TEST(ScoreErrorProfile, BuiltInProfilesHaveUnitMeanSquareOverTheStepsTaken) {
  for (const int T : {2, 3, 64, 257})
    for (const int stop : {0, 1})
      for (const ErrorProfile p : {ErrorProfile::Uniform, ErrorProfile::FrontLoaded, ErrorProfile::BackLoaded}) {
        if (T - stop < 1) continue;
        ScoreError e;
        e.profile = p;
        double mean_sq = 0, first = 0, last = 0;
        for (int t = stop + 1; t <= T; ++t) {
          const double f = score_error_factor(e, t, T, stop);
          mean_sq += f * f / (T - stop);
          if (t == T) first = f;
          if (t == stop + 1) last = f;
        }
        std::ostringstream what;
        what << to_string(p) << " T " << T << " stop " << stop;
        EXPECT_NEAR(mean_sq, 1.0, kExactTol) << what.str();
        if (p == ErrorProfile::FrontLoaded && T - stop > 1) {
          EXPECT_GT(first, last) << what.str();
        }
        if (p == ErrorProfile::BackLoaded && T - stop > 1) {
          EXPECT_LT(first, last) << what.str();
        }
      }
}

TEST(ScoreErrorProfile, StepCoefficientsAndEpsScoreFollowTheProfile) {
  const Mixture m = test::preset("two-point", 3, 2, 2.0);
  const Schedule s = test::schedule("lcw", 40);
  SampleOptions o;
  o.eps_samples = 64;
  o.score_error.kind = ScoreErrorKind::Bias;
  o.score_error.eps = 0.3;
  for (const ErrorProfile p : {ErrorProfile::Uniform, ErrorProfile::FrontLoaded, ErrorProfile::BackLoaded}) {
    o.score_error.profile = p;
    const ScorePlan plan(m, s, o);
    for (int t = 2; t <= s.T; ++t) {
      const StepCoeffs c = plan.coeffs(t);
      double n2 = 0;
      for (double b : c.bias_dir) n2 += b * b;
      EXPECT_NEAR(std::sqrt(n2), 0.3 * score_error_factor(o.score_error, t, s.T, 1), kExactTol) << to_string(p) << t;
    }
    // |e_t| = eps f(t) exactly and the mean of f^2 over the steps is 1: eps_score = eps for every
    // built-in profile (all 39 steps are evaluated).
    EXPECT_NEAR(measure_eps_score(m, s, o), 0.3, kExactTol) << to_string(p);
  }
  // A file profile: eps_score = eps sqrt(mean of f^2 over the steps taken).
  o.score_error.profile = ErrorProfile::File;
  o.score_error.factors.assign(40, 0.0);
  double ms = 0;
  for (int t = 1; t <= 40; ++t) {
    o.score_error.factors[t - 1] = t % 3 == 0 ? 2.0 : 0.5;
    if (t >= 2) ms += o.score_error.factors[t - 1] * o.score_error.factors[t - 1] / 39;
  }
  EXPECT_NEAR(measure_eps_score(m, s, o), 0.3 * std::sqrt(ms), kExactTol);
  // scale and gaussian take the factor in step_coeffs
  o.score_error.kind = ScoreErrorKind::Scale;
  EXPECT_NEAR(step_coeffs(m, s, 3, o, {}).score_scale, 1.0 + 0.3 * 2.0, kExactTol);
  o.score_error.kind = ScoreErrorKind::Gaussian;
  EXPECT_NEAR(step_coeffs(m, s, 4, o, {}).noise_sd, 0.3 * 0.5 / std::sqrt(3.0), kExactTol);
}

TEST(ScoreErrorProfile, PerturbedMixturesScaleWithTheFactorOfTheirStep) {
  const Mixture m = test::preset("random-sphere", 4, 3, 2.0);
  const Schedule s = test::schedule("lcw", 30);
  SampleOptions o;
  o.score_error.kind = ScoreErrorKind::Means;
  o.score_error.eps = 0.4;
  o.score_error.profile = ErrorProfile::BackLoaded;
  const ScorePlan plan(m, s, o);
  ASSERT_TRUE(plan.per_step());
  for (const int t : {2, 15, 30}) {
    const Mixture mt = plan.model(t);
    const double f = plan.factor(t);
    for (int k = 0; k < m.K; ++k) {
      double n2 = 0;
      for (int j = 0; j < m.d; ++j) n2 += (mt.mean(k)[j] - m.mean(k)[j]) * (mt.mean(k)[j] - m.mean(k)[j]);
      EXPECT_NEAR(std::sqrt(n2), 0.4 * f, kExactTol) << "t " << t << " k " << k;  // every mean moves by eps f(t)
    }
  }
  o.score_error.profile = ErrorProfile::Uniform;
  EXPECT_FALSE(ScorePlan(m, s, o).per_step());
}

TEST(BiasDirection, AlongTheMeansRandomAndGiven) {
  // two-point: means +-r e along one line: "means" is that line, its largest coordinate positive.
  Mixture m = test::preset("two-point", 5, 2, 3.0);
  ScoreError e;
  e.kind = ScoreErrorKind::Bias;
  e.eps = 0.1;
  e.direction = BiasDirection::Means;
  const std::vector<double> u = bias_unit_vector(m, e, 11);
  double dot = 0, nm = 0;
  for (int j = 0; j < m.d; ++j) {
    dot += u[j] * m.mean(0)[j];
    nm += m.mean(0)[j] * m.mean(0)[j];
  }
  EXPECT_NEAR(std::abs(dot), std::sqrt(nm), 1e-9);
  EXPECT_EQ(u, bias_unit_vector(m, e, 12)) << "the means' direction does not depend on the run's seed";
  // Unequal axes: the top eigenvector of sum_k pi_k mu_k mu_k^T is the longer axis.
  Mixture a;
  a.d = 3;
  a.K = 4;
  a.means = {2, 0, 0, -2, 0, 0, 0, 1, 0, 0, -1, 0};
  a.sd = {1, 1, 1, 1};
  a.weights = {0.25, 0.25, 0.25, 0.25};
  validate(a);
  const std::vector<double> ua = bias_unit_vector(a, e, 0);
  EXPECT_NEAR(ua[0], 1.0, 1e-12);
  // random: bias_direction; vector: normalised
  e.direction = BiasDirection::Random;
  EXPECT_EQ(bias_unit_vector(m, e, 11), bias_direction(5, 11));
  e.direction = BiasDirection::Vector;
  e.direction_vector = {0, 3, 0, 4, 0};
  const std::vector<double> uv = bias_unit_vector(m, e, 0);
  EXPECT_NEAR(uv[1], 0.6, kExactTol);
  EXPECT_NEAR(uv[3], 0.8, kExactTol);
}

TEST(ScoreErrorProfile, BadProfilesAndDirectionsAreErrors) {
  const Mixture m = test::preset("two-point", 3, 2, 2.0);
  const Schedule s = test::schedule("lcw", 10);
  ScoreError e;
  e.kind = ScoreErrorKind::Bias;
  e.eps = 0.1;
  e.profile = ErrorProfile::File;
  e.factors.assign(9, 1.0);  // T = 10 needs 10
  EXPECT_THROW(check_score_error(m, s, e), Error);
  e.factors.assign(10, 1.0);
  EXPECT_NO_THROW(check_score_error(m, s, e));
  e.factors[4] = -1;
  EXPECT_THROW(check_score_error(m, s, e), Error);
  e.factors[4] = std::nan("");
  EXPECT_THROW(check_score_error(m, s, e), Error);
  e.profile = ErrorProfile::Uniform;
  e.direction = BiasDirection::Vector;
  e.direction_vector = {0, 0, 0};
  EXPECT_THROW(check_score_error(m, s, e), Error);
  e.direction_vector = {1, 0};
  EXPECT_THROW(check_score_error(m, s, e), Error);
  e.direction = BiasDirection::Means;
  const Mixture g = test::preset("gaussian", 3, 1, 0.0);  // its one mean is 0
  EXPECT_THROW(check_score_error(g, s, e), Error);
  EXPECT_EQ(parse_error_profile("front-loaded"), ErrorProfile::FrontLoaded);
  EXPECT_THROW(parse_error_profile("middle"), Error);
}

// Issue 15's "scale before squaring" for issue 11's --bias-direction: a direction whose |v|^2
// overflows (1e308, 1e308) was normalised to the zero vector (no bias at all, silently), and one
// whose |v|^2 underflows (1e-200, 0) was refused as "the vector is 0".
TEST(ScoreErrorProfile, BiasDirectionsOfExtremeNormAreStillDirections) {
  const Mixture m = test::preset("two-point", 2, 2, 2.0);
  ScoreError e;
  e.kind = ScoreErrorKind::Bias;
  e.eps = 0.1;
  e.direction = BiasDirection::Vector;
  e.direction_vector = {1e308, 1e308};
  std::vector<double> u = bias_unit_vector(m, e, 0);
  EXPECT_NEAR(u[0], std::sqrt(0.5), kExactTol);
  EXPECT_NEAR(u[1], std::sqrt(0.5), kExactTol);
  e.direction_vector = {-1e-200, 0};
  u = bias_unit_vector(m, e, 0);
  EXPECT_EQ(u[0], -1.0);
  EXPECT_EQ(u[1], 0.0);
  EXPECT_NO_THROW(check_score_error(m, test::schedule("lcw", 8), e));
  e.direction_vector = {0, -0.0};
  EXPECT_THROW(check_score_error(m, test::schedule("lcw", 8), e), Error);
}
