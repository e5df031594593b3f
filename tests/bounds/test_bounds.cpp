// The ddpm path bound and the ddim exact density (include/gmmdiff/bounds.hpp): the kernels' log-
// weights against a direct computation (full Gaussian log-densities, scalar Philox), K = 1 against
// the closed-form Gaussian output law, monotonicity in M with common random numbers, bitwise
// invariance across thread counts and chunk sizes, and the refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <sstream>

#include "bounds/bounds_cpu.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "util/model_util.hpp"

using namespace gmmdiff;

namespace {

constexpr double kLogWeightTol = 1e-8;   // kernels vs direct log-densities (libmvec vs libm normals)
constexpr double kLogQTol = 1e-9;        // ddim log q vs the closed-form Gaussian output law (fp64)
constexpr double kSigmas = 4.0;          // Monte Carlo figures within 4 standard errors
constexpr double kLog2Pi = 1.8378770664093454836;

using test::schedule;
using test::isotropic;
using test::diag3;

std::string describe(const SampleOptions& o, const std::string& sched) {
  std::ostringstream os;
  os << sched << " " << to_string(o.sampler) << "/" << to_string(o.variance) << " stop=" << o.stop
     << " err=" << to_string(o.score_error.kind) << " eps=" << o.score_error.eps << " seed=" << o.seed;
  return os.str();
}

double log_normal(const std::vector<double>& x, const std::vector<double>& mean, double var) {
  double q = 0;
  for (std::size_t j = 0; j < x.size(); ++j) q += (x[j] - mean[j]) * (x[j] - mean[j]);
  return -0.5 * x.size() * (kLog2Pi + std::log(var)) - 0.5 * q / var;
}

/// log of the weight of continuation (i, m), from full Gaussian log-densities (no cancellation
/// care: for schedules with 1 - alpha_t well above 1e-8).
double direct_log_weight(const Mixture& target, const Schedule& s, const SampleOptions& o, uint64_t i, uint64_t m) {
  const int d = target.d;
  // p_s and x_s(i), as the plan lays them out.
  Mixture ps = target;
  if (o.stop == 1) ps = forward_marginal(target, s.abar[1]);
  std::vector<double> cum(ps.K), sd(ps.cov == Covariance::Diagonal ? ps.K * d : ps.K);
  double c = 0;
  for (int k = 0; k < ps.K; ++k) cum[k] = (c += ps.weights[k]);
  cum[ps.K - 1] = 1;
  for (std::size_t k = 0; k < sd.size(); ++k) sd[k] = ps.cov == Covariance::Diagonal ? std::sqrt(ps.var_diag[k]) : ps.sd[k];
  std::vector<double> x(d);
  detail::mixture_draw(o.seed, kStreamBoundOuter, i, ps.K, d, ps.cov == Covariance::Diagonal, cum.data(),
                       ps.means.data(), sd.data(), x.data());
  double lw = -log_density(ps, x.data());
  const Mixture sm = score_model(target, o.score_error, o.seed);
  const std::vector<double> bu = o.score_error.kind == ScoreErrorKind::Bias ? bias_direction(d, o.seed) : std::vector<double>();
  for (int t = o.stop + 1; t <= s.T; ++t) {
    const StepCoeffs cf = step_coeffs(sm, s, t, o, bu);
    const double beta = cf.kappa, alpha = s.alpha[t];
    if (beta == 0) continue;
    std::vector<double> w(d), xt(d), e(d), mean(d);
    for (int j = 0; j < d; ++j)
      w[j] = detail::philox_normal<double>(o.seed, kStreamBoundForward, detail::continuation_particle(i, m), t, j);
    for (int j = 0; j < d; ++j) xt[j] = std::sqrt(alpha) * x[j] + std::sqrt(beta) * w[j];
    exact_score(sm, s.abar[t], xt.data(), e.data());
    for (int j = 0; j < d; ++j) {
      e[j] = cf.score_scale * e[j] + (cf.bias_dir.empty() ? 0.0 : cf.bias_dir[j]);
      mean[j] = (xt[j] + cf.kappa * e[j]) / std::sqrt(alpha);
    }
    const double nb = cf.kappa * cf.noise_sd;
    const double var = cf.sigma * cf.sigma + nb * nb / alpha;
    std::vector<double> fmean(d);
    for (int j = 0; j < d; ++j) fmean[j] = std::sqrt(alpha) * x[j];
    lw += log_normal(x, mean, var) - log_normal(xt, fmean, beta);
    x = xt;
  }
  lw += log_normal(x, std::vector<double>(d, 0.0), 1.0);
  return lw;
}

/// Runs the path kernels over all n outer draws (one chunk) and returns log R per draw and prefix.
std::vector<double> path_log_weights(const Mixture& target, const Schedule& s, const SampleOptions& o, uint64_t n,
                                     int M, const std::vector<int>& prefixes, BoundsKernels& kr) {
  const PathPlan plan = make_path_plan(target, s, o, n, M, prefixes);
  const Mixture sm = score_model(target, o.score_error, o.seed);
  const std::vector<double> bu =
      o.score_error.kind == ScoreErrorKind::Bias ? bias_direction(target.d, o.seed) : std::vector<double>();
  std::vector<double> out(n * prefixes.size());
  kr.path_begin(plan, 0, n);
  for (int t = o.stop + 1; t <= s.T; ++t)
    if (one_minus_alpha(s, t) > 0) kr.path_step(make_path_step(sm, s, t, o, bu));
  kr.path_end(out.data());
  return out;
}

/// K = 1: the ddpm/ddim output per coordinate is y_s = a y_T + b_j (ddim) with variance V (ddpm),
/// THEORY.md, Exact facts (score errors folded in as the sampler applies them).
struct Gaussian1 {
  double a = 1, V = 1;
  std::vector<double> b;
};
Gaussian1 closed_form(const Mixture& m, const Schedule& s, const SampleOptions& o) {
  Gaussian1 g;
  g.b.assign(m.d, 0.0);
  const std::vector<double> bu = o.score_error.kind == ScoreErrorKind::Bias ? bias_direction(m.d, o.seed) : std::vector<double>();
  const double s2 = m.sd[0] * m.sd[0];
  for (int t = s.T; t > o.stop; --t) {
    const StepCoeffs c = step_coeffs(m, s, t, o, bu);
    const double v = s.abar[t] * s2 + s.one_minus_abar[t], kap = c.kappa * c.score_scale;
    const double ct = (1 - kap / v) * c.inv_sqrt_alpha;
    g.a *= ct;
    for (int j = 0; j < m.d; ++j)
      g.b[j] = ct * g.b[j] + kap * std::sqrt(s.abar[t]) * m.mean(0)[j] / v * c.inv_sqrt_alpha +
               (c.bias_dir.empty() ? 0.0 : c.kappa * c.bias_dir[j] * c.inv_sqrt_alpha);
    const double nb = c.kappa * c.noise_sd * c.inv_sqrt_alpha;
    g.V = ct * ct * g.V + c.sigma * c.sigma + nb * nb;
  }
  return g;
}

/// TV(N(mu, s^2 I), N(b, V I)) in closed form.
double closed_tv(const Mixture& m, const std::vector<double>& b, double V) {
  double dist2 = 0;
  for (int j = 0; j < m.d; ++j) dist2 += (m.mean(0)[j] - b[j]) * (m.mean(0)[j] - b[j]);
  const double a = m.sd[0] * m.sd[0];
  return gaussian_tv_isotropic(dist2, a, V, a - V, m.d);
}

}  // namespace

TEST(PathBound, LogWeightsMatchDirectLogDensities) {
  const Schedule s = schedule("linear", 12);
  const std::vector<Mixture> models = {isotropic(3, {{1.0, 0.0, -0.5}, {-0.8, 0.6, 0.1}, {0.0, -1.2, 0.9}}, {0.7, 1.1, 0.5}, {0.2, 0.3, 0.5}),
                                       diag3()};
  struct C {
    Variance v;
    int stop;
    ScoreErrorKind err;
    double eps;
  };
  const std::vector<C> cases = {{Variance::Beta, 1, ScoreErrorKind::None, 0},      {Variance::Beta, 0, ScoreErrorKind::Bias, 0.4},
                                {Variance::Posterior, 1, ScoreErrorKind::Scale, 0.2}, {Variance::Inside, 0, ScoreErrorKind::Weights, 0.5},
                                {Variance::Inside, 1, ScoreErrorKind::Means, 0.3},   {Variance::Beta, 1, ScoreErrorKind::Gaussian, 0.7},
                                {Variance::Posterior, 0, ScoreErrorKind::Gaussian, 0.5}};
  auto kr = make_bounds_kernels("cpu", 2);
  for (const Mixture& m : models)
    for (const C& c : cases) {
      SampleOptions o;
      o.variance = c.v;
      o.stop = c.stop;
      o.score_error = {c.err, c.eps};
      o.seed = 11;
      const int M = 3;
      const uint64_t n = 5;
      const std::vector<double> lr = path_log_weights(m, s, o, n, M, {1, 2, 3}, *kr);
      for (uint64_t i = 0; i < n; ++i) {
        detail::LogSumExpAcc acc;
        for (int mm = 0; mm < M; ++mm) {
          acc.push(direct_log_weight(m, s, o, i, mm));
          const double want = acc.value() - std::log(mm + 1.0);
          EXPECT_NEAR(lr[i * 3 + mm], want, kLogWeightTol * std::max(1.0, std::abs(want)))
              << describe(o, "linear T=12") << " d=" << m.d << " draw " << i << " prefix " << mm + 1;
        }
      }
    }
}

TEST(PathBound, GaussianTargetAboveTheClosedFormAndTightening) {
  // d = 1, mean 2, sd 0.5, lcw, T = 256, ddpm: U_TV(M) >= TV for every M, non-increasing in M (common
  // continuations), within 10% of TV at M = 256.
  constexpr uint64_t kOuter = 4096;
  constexpr double kTightAt256 = 0.10;
  const Mixture m = isotropic(1, {{2.0}}, {0.5}, {1.0});
  const Schedule s = schedule("lcw", 256);
  SampleOptions o;
  o.seed = 3;
  const Gaussian1 g = closed_form(m, s, o);
  const double tv = closed_tv(m, g.b, g.V);
  ASSERT_GT(tv, 0.01);
  const std::vector<int> prefixes = {1, 4, 16, 64, 256};
  auto kr = make_bounds_kernels("cpu", 0);
  const std::vector<double> lr = path_log_weights(m, s, o, kOuter, 256, prefixes, *kr);
  const double x0x1 = tv_x0_x1_bound(m, s).bound;
  const std::size_t P = prefixes.size();
  std::vector<double> mean(P, 0.0), sq(P, 0.0), dmean(P, 0.0), dsq(P, 0.0);
  for (uint64_t i = 0; i < kOuter; ++i)
    for (std::size_t p = 0; p < P; ++p) {
      const double v = lr[i * P + p] >= 0 ? 0.0 : -std::expm1(lr[i * P + p]);
      mean[p] += v;
      sq[p] += v * v;
      if (p > 0) {
        const double prev = lr[i * P + p - 1] >= 0 ? 0.0 : -std::expm1(lr[i * P + p - 1]);
        dmean[p] += v - prev;
        dsq[p] += (v - prev) * (v - prev);
      }
    }
  for (std::size_t p = 0; p < P; ++p) {
    const double mu = mean[p] / kOuter, se = std::sqrt((sq[p] / kOuter - mu * mu) / (kOuter - 1));
    EXPECT_GE(mu + x0x1 + kSigmas * se, tv) << "U_TV(M = " << prefixes[p] << ") = " << mu << " +- " << se
                                            << " below the closed-form TV " << tv;
    if (p > 0) {
      const double dm = dmean[p] / kOuter, dse = std::sqrt((dsq[p] / kOuter - dm * dm) / (kOuter - 1));
      EXPECT_LE(dm, kSigmas * dse) << "U_TV(" << prefixes[p] << ") - U_TV(" << prefixes[p - 1] << ") = " << dm << " +- "
                                   << dse << " (should not increase)";
    }
    if (prefixes[p] == 256) {
      EXPECT_LE(std::abs(mu + x0x1 - tv), kTightAt256 * tv) << "U_TV(256) = " << mu << " +- " << se << ", TV = " << tv;
    }
  }
}

TEST(PathBound, BitwiseAcrossThreadsAndChunks) {
  const Schedule s = schedule("lcw", 12);
  const std::vector<Mixture> models = {isotropic(5, {{1, 0, 0, 0, 0}, {0, -1, 0.5, 0, 0}, {0, 0, 0, 1.5, -1}}, {0.6, 1.0, 0.8},
                                           {0.5, 0.3, 0.2}),
                                       diag3()};
  for (const Mixture& m : models) {
    SampleOptions o;
    o.seed = 5;
    o.score_error = {ScoreErrorKind::Bias, 0.3};
    BoundsOptions bo;
    bo.n = 300;
    bo.M = 6;
    std::vector<PathBound> r;
    for (int threads : {1, 2, 3})
      for (uint64_t chunk : {uint64_t(0), uint64_t(128), uint64_t(1)}) {
        CpuBoundsKernels kr(threads);
        bo.chunk = chunk;
        r.push_back(path_bound(m, s, o, bo, kr));
      }
    for (std::size_t i = 1; i < r.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(&r[i].tv, &r[0].tv, sizeof(MeanSe))) << "d=" << m.d << " run " << i;
      EXPECT_EQ(0, std::memcmp(&r[i].kl, &r[0].kl, sizeof(MeanSe))) << "d=" << m.d << " run " << i;
      EXPECT_EQ(0, std::memcmp(&r[i].tv_quarter, &r[0].tv_quarter, sizeof(MeanSe))) << "d=" << m.d << " run " << i;
    }
    // Progress: after each step of each chunk, ending at (total, total).
    uint64_t last_done = 0, last_total = 0, calls = 0;
    bo.chunk = 128;
    bo.progress = [&](uint64_t done, uint64_t total) {
      EXPECT_GT(done, last_done);
      last_done = done;
      last_total = total;
      ++calls;
    };
    CpuBoundsKernels kr(2);
    path_bound(m, s, o, bo, kr);
    EXPECT_EQ(last_done, last_total);
    EXPECT_EQ(last_total, bo.n * static_cast<uint64_t>(r[0].steps));
    EXPECT_EQ(calls, 3u * r[0].steps);  // 300 outer draws in chunks of 128: 3 chunks
  }
}

TEST(PathBound, RefusesWhatItCannotBound) {
  const Mixture m = isotropic(2, {{1, 0}, {-1, 0}}, {1, 1}, {0.5, 0.5});
  const Schedule s = schedule("lcw", 8);
  auto kr = make_bounds_kernels("cpu", 1);
  SampleOptions o;
  BoundsOptions bo;
  bo.n = 1;
  EXPECT_THROW(path_bound(m, s, o, bo, *kr), Error);
  bo.n = 16;
  bo.M = 0;
  EXPECT_THROW(path_bound(m, s, o, bo, *kr), Error);
  bo.M = 4;
  o.variance = Variance::Posterior;
  o.stop = 0;
  try {  // lcw at T = 8 reaches abar = 1 at t = 4: step 5 is the first with noise in the forward process
    path_bound(m, s, o, bo, *kr);
    ADD_FAILURE() << "posterior variance with stop 0 has a step without noise";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("step t = 5 has no noise"), std::string::npos) << e.what();
  }
  o = SampleOptions();
  o.sampler = SamplerKind::DDIM;
  EXPECT_THROW(path_bound(m, s, o, bo, *kr), Error);
  // The factory: an unknown name; "cuda" without a device (or without CUDA in the build) is one
  // clear error, and "auto" then falls back to the CPU kernels.
  EXPECT_THROW(make_bounds_kernels("tpu"), Error);
  EXPECT_THROW(make_bounds_kernels("cpu", -1), Error);
  if (cuda_devices().empty()) {
    EXPECT_THROW(make_bounds_kernels("cuda"), Error);
    EXPECT_EQ(make_bounds_kernels("auto", 1)->name(), "cpu");
  } else {
    EXPECT_EQ(make_bounds_kernels("cuda")->name(), "cuda");
    EXPECT_EQ(make_bounds_kernels("auto")->name(), "cuda");
  }
}

TEST(ExactDensity, GaussianLogDensityMatchesTheClosedForm) {
  const Mixture m = isotropic(3, {{1.5, -0.5, 0.25}}, {0.6}, {1.0});
  struct C {
    std::string sched;
    int stop;
    ScoreErrorKind err;
    double eps;
  };
  const std::vector<C> cases = {{"lcw", 1, ScoreErrorKind::None, 0},   {"lcw", 0, ScoreErrorKind::Scale, 0.3},
                                {"linear", 0, ScoreErrorKind::Bias, 0.5}, {"cosine", 1, ScoreErrorKind::None, 0},
                                {"li-yan", 0, ScoreErrorKind::Scale, 0.2}};
  auto kr = make_bounds_kernels("cpu", 2);
  constexpr uint64_t kN = 300;
  for (const C& c : cases) {
    const Schedule s = schedule(c.sched, 64);
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    o.stop = c.stop;
    o.score_error = {c.err, c.eps};
    o.seed = 17;
    const Gaussian1 g = closed_form(m, s, o);
    const FlowPlan plan = make_flow_plan(m, s, o, kN);
    const Mixture sm = score_model(m, o.score_error, o.seed);
    const std::vector<double> bu = c.err == ScoreErrorKind::Bias ? bias_direction(m.d, o.seed) : std::vector<double>();
    kr->flow_begin(plan, 0, kN);
    for (int t = s.T; t > o.stop; --t)
      if (one_minus_alpha(s, t) > 0) kr->flow_step(make_flow_step(sm, s, t, o, bu));
    std::vector<double> lr(kN);
    ASSERT_EQ(kr->flow_end(lr.data()), 0) << describe(o, c.sched);
    for (uint64_t i = 0; i < kN; ++i) {
      std::vector<double> yT(m.d), ys(m.d);
      double q = 0;
      for (int j = 0; j < m.d; ++j) {
        yT[j] = detail::philox_normal<double>(o.seed, kStreamInit, i, 0, j);
        ys[j] = g.a * yT[j] + g.b[j];
        q += yT[j] * yT[j];
      }
      // log q_s(y_s) = log N(y_T; 0, I) - d log a.
      const double log_q = -0.5 * m.d * kLog2Pi - 0.5 * q - m.d * std::log(g.a);
      const double want = log_density(m, ys.data()) - log_q;
      ASSERT_NEAR(lr[i], want, kLogQTol * std::max(1.0, std::abs(want))) << describe(o, c.sched) << " particle " << i;
    }
  }
}

TEST(ExactDensity, GaussianTvMatchesTheClosedForm) {
  const Mixture m = isotropic(2, {{2.0, 0.0}}, {0.5}, {1.0});
  auto kr = make_bounds_kernels("cpu", 0);
  for (int T : {16, 64}) {
    const Schedule s = schedule("lcw", T);
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    o.seed = 2;
    BoundsOptions bo;
    bo.n = 20000;
    const ExactDensity ex = exact_density(m, s, o, bo, *kr);
    const Gaussian1 g = closed_form(m, s, o);
    const double tv = closed_tv(m, g.b, g.a * g.a);
    EXPECT_NEAR(ex.tv.mean, tv, kSigmas * ex.tv.se) << "T = " << T << ": exact " << ex.tv.mean << " +- " << ex.tv.se;
  }
}

TEST(ExactDensity, BitwiseAcrossThreadsAndChunks) {
  const Schedule s = schedule("lcw", 10);
  const std::vector<Mixture> models = {isotropic(5, {{1, 0, 0, 0, 0}, {0, -1, 0.5, 0, 0}, {0, 0, 0, 1.5, -1}}, {0.6, 1.0, 0.8},
                                           {0.5, 0.3, 0.2}),
                                       diag3()};
  for (const Mixture& m : models) {
    SampleOptions o;
    o.sampler = SamplerKind::DDIM;
    o.seed = 8;
    o.score_error = {ScoreErrorKind::Means, 0.2};
    BoundsOptions bo;
    bo.n = 700;
    std::vector<ExactDensity> r;
    for (int threads : {1, 2, 3})
      for (uint64_t chunk : {uint64_t(0), uint64_t(256), uint64_t(512)}) {
        CpuBoundsKernels kr(threads);
        bo.chunk = chunk;
        r.push_back(exact_density(m, s, o, bo, kr));
      }
    for (std::size_t i = 1; i < r.size(); ++i) {
      EXPECT_EQ(0, std::memcmp(&r[i].tv, &r[0].tv, sizeof(MeanSe))) << "d=" << m.d << " run " << i;
      EXPECT_EQ(0, std::memcmp(&r[i].kl, &r[0].kl, sizeof(MeanSe))) << "d=" << m.d << " run " << i;
    }
  }
}

TEST(ExactDensity, AFoldingStepIsNamedNeverANumber) {
  const Mixture m = isotropic(2, {{1, 0}, {-1, 0}}, {0.5, 0.5}, {0.5, 0.5});
  const Schedule s = schedule("lcw", 4);
  SampleOptions o;
  o.sampler = SamplerKind::DDIM;
  o.score_error = {ScoreErrorKind::Scale, 3.0};  // I + 4 kappa J has 1 - 4 kappa a < 0 at the first steps
  BoundsOptions bo;
  bo.n = 64;
  auto kr = make_bounds_kernels("cpu", 2);
  try {
    exact_density(m, s, o, bo, *kr);
    ADD_FAILURE() << "a folding ddim step gave a number";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("at step t = 4"), std::string::npos) << e.what();
  }
  o.score_error = {ScoreErrorKind::Gaussian, 0.1};
  EXPECT_THROW(exact_density(m, s, o, bo, *kr), Error);
  o.score_error = {};
  bo.n = 1;
  EXPECT_THROW(exact_density(m, s, o, bo, *kr), Error);
}
