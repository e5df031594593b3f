// gmmdiff: the host driver. It computes each step's coefficients in double (THEORY.md), and
// steps one chunk of particles at a time through the backend, handing finished chunks to a sink.
#include "gmmdiff/sampler.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <sstream>

#include "cpu/cpu_normals.hpp"  // GMMDIFF_CPU_CLONES
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"
#include "io/input.hpp"

namespace gmmdiff {

namespace {

// Unit vector from Philox stream kStreamAux; `purpose` keeps different uses apart.
std::vector<double> aux_unit_vector(int d, uint64_t seed, uint64_t purpose) {
  std::vector<double> u(d);
  double n2 = 0;
  for (int b = 0; 4 * b < d; ++b) {
    double z[4];
    detail::philox_normal4<double>(seed, kStreamAux, purpose, 0, static_cast<uint32_t>(b), z);
    for (int c = 0; c < 4 && 4 * b + c < d; ++c) {
      u[4 * b + c] = z[c];
      n2 += z[c] * z[c];
    }
  }
  for (double& x : u) x /= std::sqrt(n2);
  return u;
}

constexpr uint64_t kAuxBias = 3000;          // bias direction
constexpr uint64_t kAuxPerturbWeights = 4000;  // + 0: the log-weight perturbation normals
constexpr uint64_t kAuxPerturbMeans = 5000;  // + k: component k's mean displacement
constexpr int kMaxEpsSteps = 256;            // steps at which eps_score is evaluated (evenly spaced)
constexpr uint64_t kAuxBiasMeansStart = 3001;  // the start of the power iteration of BiasDirection::Means
constexpr int kMeansDirectionIterations = 300;  // its iterations (a fixed number: the same vector on every machine)

constexpr int kMaxEpsSamples = 1 << 24;  // as a sweep's "eps_samples": 256 steps x 2^24 points at most
constexpr double kUnscaledEps = 1e150;    // |eps| beyond: eps is factored out of eps_score's sums

/// What may help when a particle turns non-finite: only what differs from this run (fp64 when it is
/// fp32; a smaller eps when there is a score error; more steps when a step is large).
std::string nonfinite_advice(const Mixture& target, const Schedule& s, const SampleOptions& opt) {
  std::vector<std::string> tips;
  if (opt.precision == Precision::FP32) tips.push_back("--precision fp64");
  if (opt.score_error.kind != ScoreErrorKind::None) tips.push_back("a smaller --eps");
  double max_beta = 0;
  for (int t = opt.stop + 1; t <= s.T; ++t) max_beta = std::max(max_beta, one_minus_alpha(s, t));
  if (max_beta > 0.5)
    tips.push_back("a schedule with smaller steps (its largest 1 - alpha_t is " + std::to_string(max_beta) + ")");
  if (tips.empty())
    return "The model's scale (|mu| up to " + std::to_string(target.max_mean_norm()) +
           ") is beyond what the step arithmetic holds in double; rescale the model";
  std::string out = "Try ";
  for (std::size_t i = 0; i < tips.size(); ++i) out += (i ? (i + 1 == tips.size() ? " or " : ", ") : "") + tips[i];
  return out;
}

/// " (x f = F at a step of its profile: E)" when the profile scales eps there, else "".
std::string factor_text(double factor, double eps_t) {
  if (factor == 1.0) return "";
  std::ostringstream os;
  os << " (x the profile's factor " << factor << " at a step: " << eps_t << ")";
  return os.str();
}

/// eps_t = eps x factor, the error's size at one step: finite, and for `means` means that stay
/// representable (|mu| + |eps_t| squared finite, as validate asks of a model).
void check_effective_eps(double max_mean_norm, ScoreErrorKind kind, double eps_t, double eps, double factor) {
  GMMDIFF_EXPECTS(std::isfinite(eps_t), "eps = ", eps, factor_text(factor, eps_t),
                  " is not a finite size at every step (take a smaller eps)");
  if (kind == ScoreErrorKind::Means) {
    // Every mean moves by eps_t: the perturbed model must be as representable as a model (validate).
    const double r = max_mean_norm + std::fabs(eps_t);
    GMMDIFF_EXPECTS(std::isfinite(r * r), "eps = ", eps, factor_text(factor, eps_t),
                    " for score error means moves the means to |mu| up to ", r,
                    ", whose square overflows a double (take a smaller eps)");
  }
}

}  // namespace

bool is_identity_step(const StepCoeffs& c) { return c.kappa == 0 && c.sigma == 0 && c.inv_sqrt_alpha == 1; }

std::vector<bool> identity_steps(const Schedule& s, const SampleOptions& opt) {
  std::vector<bool> id(static_cast<std::size_t>(s.T) + 1, false);
  for (int t = 1; t <= s.T; ++t) {
    StepCoeffs c;
    step_scalars(s, t, opt, c.kappa, c.inv_sqrt_alpha, c.sigma);
    id[t] = is_identity_step(c);
  }
  return id;
}

std::vector<double> bias_direction(int d, uint64_t seed) { return aux_unit_vector(d, seed, kAuxBias); }

Mixture score_model(const Mixture& target, const ScoreError& err, uint64_t seed, double factor) {
  const double eps = err.eps * factor;
  // The step's own eps (eps x factor) must hold what check_score_error holds for the run: a finite
  // size, and for `means` means whose squares a double holds.
  check_effective_eps(target.K > 0 ? target.max_mean_norm() : 0.0, err.kind, eps, err.eps, factor);
  Mixture m = target;
  if (err.kind == ScoreErrorKind::Weights) {
    // log pi'_k = log pi_k + eps g_k, g_k ~ N(0, 1), renormalised. Directly, pi_k e^{eps g_k} / sum,
    // where every term is a positive normal double (the form every earlier build used: the same
    // bits); where one overflows (inf / inf = NaN weights, at eps ~ 1e3) or underflows, in log
    // space: the log-weights minus their maximum, so the largest term is 1.
    std::vector<double> g(m.K);
    for (int k = 0; k < m.K; ++k)
      g[k] = detail::philox_normal<double>(seed, kStreamAux, kAuxPerturbWeights, 0, static_cast<uint32_t>(k));
    double sum = 0;
    bool direct = true;
    for (int k = 0; k < m.K; ++k) {
      m.weights[k] = target.weights[k] * std::exp(eps * g[k]);
      sum += m.weights[k];
      direct = direct && std::isfinite(m.weights[k]) && m.weights[k] >= std::numeric_limits<double>::min();
    }
    if (direct && std::isfinite(sum)) {
      for (double& w : m.weights) w /= sum;
    } else {
      std::vector<double> lw(m.K);
      double top = -std::numeric_limits<double>::infinity();
      bool finite = true;
      for (int k = 0; k < m.K; ++k) {
        top = std::max(top, lw[k] = std::log(target.weights[k]) + eps * g[k]);
        finite = finite && std::isfinite(lw[k]);
      }
      if (finite) {
        sum = 0;
        for (int k = 0; k < m.K; ++k) sum += (m.weights[k] = std::exp(lw[k] - top));
      } else {
        // eps g_k itself overflows (|eps| near the largest double, as a profile's factor can make
        // it): the log-weights over eps, a_k = log(pi_k)/eps + g_k, are finite; the weights are
        // e^{eps (a_k - max a)}, each exponent <= 0 (-inf: the weight 0, then held below).
        double atop = -std::numeric_limits<double>::infinity();
        for (int k = 0; k < m.K; ++k) atop = std::max(atop, lw[k] = std::log(target.weights[k]) / eps + g[k]);
        sum = 0;
        for (int k = 0; k < m.K; ++k) sum += (m.weights[k] = std::exp(eps * (lw[k] - atop)));
      }
      // A weight below the smallest normal double is held there: its component keeps a finite log
      // weight (its mass, below 1e-300, is what the perturbation gives it to every printed digit).
      for (double& w : m.weights) w = std::max(w / sum, std::numeric_limits<double>::min());
    }
  } else if (err.kind == ScoreErrorKind::Means) {
    // mu'_k = mu_k + eps u_k, u_k a random unit vector: every mean moves by exactly eps.
    for (int k = 0; k < m.K; ++k) {
      const std::vector<double> u = aux_unit_vector(m.d, seed, kAuxPerturbMeans + static_cast<uint64_t>(k));
      for (int j = 0; j < m.d; ++j) m.means[std::size_t(k) * m.d + j] += eps * u[j];
    }
  }
  return m;
}

void step_scalars(const Schedule& s, int t, const SampleOptions& opt, double& kappa, double& inv_sqrt_alpha,
                  double& sigma) {
  const double oma = s.one_minus_abar[t];
  const double oma_t = one_minus_alpha(s, t), alpha = s.alpha[t];
  inv_sqrt_alpha = 1.0 / std::sqrt(alpha);
  double var = 0;
  switch (opt.sampler) {
    case SamplerKind::DDPM:
      kappa = oma_t;
      switch (opt.variance) {
        case Variance::Beta: var = oma_t; break;
        case Variance::Posterior: var = oma > 0 ? s.one_minus_abar[t - 1] / oma * oma_t : 0.0; break;
        case Variance::Inside: var = oma_t / alpha; break;
      }
      break;
    case SamplerKind::DDIM: kappa = 0.5 * oma_t; break;
    case SamplerKind::DDIMSong: {
      // With A = 1 - abar_t, beta = 1 - alpha_t and alpha (1 - abar_{t-1}) = A - beta:
      // B = alpha (1 - abar_{t-1} - sigma^2) A = (A - beta)(A - eta^2 beta) and
      // kappa = A - sqrt(B) = (A^2 - B) / (A + sqrt(B)), A^2 - B = beta ((1 + eta^2) A - eta^2 beta):
      // no difference of nearly equal numbers when beta is tiny (lcw's first steps: 1e-21).
      const double e2 = opt.eta * opt.eta, A = oma, beta = oma_t;
      var = A > 0 ? e2 * s.one_minus_abar[t - 1] / A * beta : 0.0;  // ddpm's posterior form for eta = 1
      if (beta == 0) {
        kappa = 0;
      } else {
        const double B = alpha * s.one_minus_abar[t - 1] * (A - e2 * beta);
        kappa = beta * ((1 + e2) * A - e2 * beta) / (A + std::sqrt(std::max(0.0, B)));
      }
      break;
    }
  }
  sigma = std::sqrt(var);
}

StepCoeffs step_coeffs(const Mixture& m, const Schedule& s, int t, const SampleOptions& opt,
                       const std::vector<double>& bias_unit) {
  GMMDIFF_EXPECTS(t >= 1 && t <= s.T, "step ", t, " outside 1..", s.T);
  StepCoeffs c;
  c.t = t;
  const int K = m.K, d = m.d;
  const double abar = s.abar[t], oma = s.one_minus_abar[t], sa = std::sqrt(abar);
  c.diagonal = m.cov == Covariance::Diagonal;
  c.P.resize(std::size_t(K) * d);
  c.Q.resize(c.diagonal ? std::size_t(K) * d : std::size_t(K));
  c.bias.resize(K);
  bool uniform = !c.diagonal;
  for (int k = 0; k < K; ++k) {
    const double* mu = m.mean(k);
    double logdet = 0, quad = 0;
    for (int j = 0; j < d; ++j) {
      const double v = abar * m.var(k, j) + oma;
      c.P[std::size_t(k) * d + j] = sa * mu[j] / v;
      if (c.diagonal) c.Q[std::size_t(k) * d + j] = 1.0 / v;
      if (c.diagonal || j == 0) logdet += c.diagonal ? std::log(v) : d * std::log(v);
      quad += mu[j] * mu[j] / v;
    }
    if (!c.diagonal) c.Q[k] = 1.0 / (abar * m.var(k, 0) + oma);
    if (!c.diagonal && c.Q[k] != c.Q[0]) uniform = false;
    c.bias[k] = std::log(m.weights[k]) - 0.5 * logdet - 0.5 * abar * quad;
  }
  c.uniform_q = uniform;
  step_scalars(s, t, opt, c.kappa, c.inv_sqrt_alpha, c.sigma);
  const double eps_t = opt.score_error.eps * score_error_factor(opt.score_error, t, s.T, opt.stop);
  switch (opt.score_error.kind) {
    case ScoreErrorKind::Scale: c.score_scale = 1.0 + eps_t; break;
    case ScoreErrorKind::Bias:
      c.bias_dir.resize(d);
      for (int j = 0; j < d; ++j) c.bias_dir[j] = eps_t * bias_unit[j];
      break;
    case ScoreErrorKind::Gaussian: c.noise_sd = eps_t / std::sqrt(double(d)); break;
    default: break;
  }
  return c;
}

namespace {

// MarginalScore's two O(K d) loops, cloned for the widest vector unit. Neither holds an a * b + c
// that a compiler could fuse (each sum's term ends in a division), so every clone gives the bits of
// the scalar loops, operation for operation: the realised eps_score is pinned
// (tests/driver/test_stream_pins.cpp).

/// q[k] = sum_j (x_j - smu_kj)^2 / V_kj, each sum in order j = 0, 1, ...; component k across the
/// vector lanes (smuT, vT: [d, K], j-major).
GMMDIFF_CPU_CLONES void quadratic_forms(const double* x, const double* smuT, const double* vT, int K, int d,
                                        double* q) {
  std::fill(q, q + K, 0.0);
  for (int j = 0; j < d; ++j) {
    const double xj = x[j];
    const double* sm = smuT + std::size_t(j) * K;
    const double* v = vT + std::size_t(j) * K;
#pragma omp simd
    for (int k = 0; k < K; ++k) {
      const double r = xj - sm[k];
      q[k] += r * r / v[k];
    }
  }
}

/// out[j] += w (smu_j - x_j) / V_j over one component's row, coordinate j across the lanes.
GMMDIFF_CPU_CLONES void add_component_score(double w, const double* smu, const double* v, const double* x, int d,
                                            double* out) {
#pragma omp simd
  for (int j = 0; j < d; ++j) out[j] += w * (smu[j] - x[j]) / v[j];
}

/// The exact score of a mixture's forward marginal at one abar (THEORY.md, Exact score), with what
/// does not depend on x computed once: V_kj, sqrt(abar) mu_kj, sum_j log V_kj and log pi_k. The same
/// operations in the same order as exact_score (core/model.cpp), so the same bits; it only stops
/// recomputing log(V) and V for every (k, j) pair of every sample.
class MarginalScore {
 public:
  MarginalScore(const Mixture& m, double abar) : m_(m), K_(m.K), d_(m.d) {
    const double sa = std::sqrt(abar), oma = 1.0 - abar;
    v_.resize(std::size_t(K_) * d_);
    smu_.resize(v_.size());
    vT_.resize(v_.size());
    smuT_.resize(v_.size());
    logdet_.resize(K_);
    logw_.resize(K_);
    for (int k = 0; k < K_; ++k) {
      const double* mu = m.mean(k);
      double logdet = 0;
      for (int j = 0; j < d_; ++j) {
        const double v = abar * m.var(k, j) + oma;
        v_[std::size_t(k) * d_ + j] = vT_[std::size_t(j) * K_ + k] = v;
        smu_[std::size_t(k) * d_ + j] = smuT_[std::size_t(j) * K_ + k] = sa * mu[j];
        logdet += std::log(v);
      }
      logdet_[k] = logdet;
      logw_[k] = std::log(m.weights[k]);
    }
  }
  /// out[d] = the score at x; l[K] is scratch.
  void operator()(const double* x, double* out, double* l) const {
    constexpr double kLog2Pi = 1.8378770664093454836;  // as component_logits
    quadratic_forms(x, smuT_.data(), vT_.data(), K_, d_, l);
    for (int k = 0; k < K_; ++k) l[k] = logw_[k] - 0.5 * (l[k] + logdet_[k] + m_.d * kLog2Pi);
    double mx = l[0];  // logsumexp: the first largest, then the sum in order
    for (int k = 1; k < K_; ++k)
      if (mx < l[k]) mx = l[k];
    double s = 0;
    for (int k = 0; k < K_; ++k) s += std::exp(l[k] - mx);
    const double lse = mx + std::log(s);
    std::fill(out, out + d_, 0.0);
    for (int k = 0; k < K_; ++k)
      add_component_score(std::exp(l[k] - lse), smu_.data() + std::size_t(k) * d_, v_.data() + std::size_t(k) * d_, x,
                          d_, out);
  }

 private:
  const Mixture& m_;
  int K_, d_;
  std::vector<double> v_, smu_, vT_, smuT_, logdet_, logw_;  // vT_, smuT_: [d, K]
};

}  // namespace

double score_error_factor(const ScoreError& err, int t, int T, int stop) {
  const int steps = T - stop;
  switch (err.profile) {
    case ErrorProfile::Uniform: return 1.0;
    case ErrorProfile::FrontLoaded: return steps > 0 ? std::sqrt(2.0 * (t - stop) / (steps + 1.0)) : 1.0;
    case ErrorProfile::BackLoaded: return steps > 0 ? std::sqrt(2.0 * (T + 1.0 - t) / (steps + 1.0)) : 1.0;
    case ErrorProfile::File:
      GMMDIFF_EXPECTS(t >= 1 && static_cast<std::size_t>(t) <= err.factors.size(), "score-error profile file: no factor for step ",
                      t, " (it holds ", err.factors.size(), " values; one per step t = 1..T is needed)");
      return err.factors[t - 1];
  }
  return 1.0;
}

std::vector<double> bias_unit_vector(const Mixture& target, const ScoreError& err, uint64_t seed) {
  const int d = target.d;
  switch (err.direction) {
    case BiasDirection::Random: return bias_direction(d, seed);
    case BiasDirection::Vector: {
      GMMDIFF_EXPECTS(err.direction_vector.size() == static_cast<std::size_t>(d), "--bias-direction: a vector of ",
                      err.direction_vector.size(), " values for d = ", d);
      // Scaled by its largest |v_j| before squaring: a direction of huge norm (|v|^2 overflows) or
      // tiny norm (it underflows to 0) is still a direction.
      double top = 0;
      for (double x : err.direction_vector) {
        GMMDIFF_EXPECTS(std::isfinite(x), "--bias-direction: a value is not finite");
        top = std::max(top, std::fabs(x));
      }
      GMMDIFF_EXPECTS(top > 0, "--bias-direction: the vector is 0 (it needs a direction)");
      std::vector<double> u = err.direction_vector;
      double n2 = 0;
      for (double& x : u) {
        x /= top;
        n2 += x * x;
      }
      for (double& x : u) x /= std::sqrt(n2);
      return u;
    }
    case BiasDirection::Means: {
      // The top eigenvector of S = sum_k pi_k mu_k mu_k^T by power iteration (x -> S x costs 2 K d),
      // from a fixed start: the direction depends on the mixture only, not on the run's seed.
      double total = 0;
      for (double x : target.means) total += x * x;
      GMMDIFF_EXPECTS(total > 0, "--bias-direction means: every mean is 0, so the means have no direction");
      std::vector<double> u = aux_unit_vector(d, 0, kAuxBiasMeansStart), v(d);
      for (int it = 0; it < kMeansDirectionIterations; ++it) {
        std::fill(v.begin(), v.end(), 0.0);
        for (int k = 0; k < target.K; ++k) {
          const double* mu = target.mean(k);
          double dot = 0;
          for (int j = 0; j < d; ++j) dot += mu[j] * u[j];
          for (int j = 0; j < d; ++j) v[j] += target.weights[k] * dot * mu[j];
        }
        double n2 = 0;
        for (double x : v) n2 += x * x;
        if (!(n2 > 0)) break;  // the start is orthogonal to every mean (measure zero): keep it
        for (int j = 0; j < d; ++j) u[j] = v[j] / std::sqrt(n2);
      }
      int big = 0;
      for (int j = 1; j < d; ++j)
        if (std::abs(u[j]) > std::abs(u[big])) big = j;
      if (u[big] < 0)
        for (double& x : u) x = -x;
      return u;
    }
  }
  return bias_direction(d, seed);
}

ScorePlan::ScorePlan(const Mixture& target, const Schedule& s, const SampleOptions& opt)
    : target_(target), s_(s), opt_(opt) {
  opt_.progress = nullptr;
  const ScoreError& e = opt.score_error;
  per_step_ = (e.kind == ScoreErrorKind::Weights || e.kind == ScoreErrorKind::Means) &&
              e.profile != ErrorProfile::Uniform && e.eps != 0;
  if (!per_step_) fixed_ = score_model(target, e, opt.seed);
  if (e.kind == ScoreErrorKind::Bias) bias_unit_ = bias_unit_vector(target, e, opt.seed);
}

Mixture ScorePlan::model(int t) const {
  return per_step_ ? score_model(target_, opt_.score_error, opt_.seed, factor(t)) : fixed_;
}

double ScorePlan::factor(int t) const { return score_error_factor(opt_.score_error, t, s_.T, opt_.stop); }

StepCoeffs ScorePlan::coeffs(int t) const {
  return per_step_ ? step_coeffs(model(t), s_, t, opt_, bias_unit_) : step_coeffs(fixed_, s_, t, opt_, bias_unit_);
}

void forward_draw(const Mixture& target, const Schedule& s, int t, uint64_t seed, uint64_t i,
                  const std::vector<double>& cum, double* x) {
  const int d = target.d;
  const uint32_t st = static_cast<uint32_t>(3 * t);
  const int k = detail::pick_component(detail::philox_uniform(seed, kStreamForward, i, st, detail::kTargetComponentBlock),
                                       cum.data(), target.K);
  const double sa = std::sqrt(s.abar[t]), sw = std::sqrt(s.one_minus_abar[t]);
  for (int b = 0; 4 * b < d; ++b) {
    double z0[4], w[4];
    detail::philox_normal4<double>(seed, kStreamForward, i, st + 1, static_cast<uint32_t>(b), z0);
    detail::philox_normal4<double>(seed, kStreamForward, i, st + 2, static_cast<uint32_t>(b), w);
    for (int cc = 0; cc < 4 && 4 * b + cc < d; ++cc) {
      const int j = 4 * b + cc;
      x[j] = sa * (target.mean(k)[j] + std::sqrt(target.var(k, j)) * z0[cc]) + sw * w[cc];
    }
  }
}

std::vector<int> eps_steps(const Schedule& s, int stop, int max_steps) {
  const int first_t = stop + 1, steps = s.T - stop;
  std::vector<int> ts;
  if (steps <= 0) return ts;
  const int evals = std::min(steps, max_steps);
  for (int e = 0; e < evals; ++e)
    ts.push_back(first_t + static_cast<int>((static_cast<long long>(e) * steps) / evals));
  return ts;
}

double measure_eps_score(const Mixture& target, const Schedule& s, const SampleOptions& opt) {
  const ScoreError& err = opt.score_error;
  if (err.kind == ScoreErrorKind::None || opt.eps_samples <= 0) return 0.0;
  const std::vector<int> ts = eps_steps(s, opt.stop, kMaxEpsSteps);
  if (ts.empty()) return 0.0;
  const ScorePlan plan(target, s, opt);
  std::vector<double> cum(target.K);
  double c = 0;
  for (int k = 0; k < target.K; ++k) cum[k] = (c += target.weights[k]);
  cum[target.K - 1] = 1.0;
  const int d = target.d, m = opt.eps_samples;
  const bool need_true = err.kind != ScoreErrorKind::Bias && err.kind != ScoreErrorKind::Gaussian;
  // scale, bias and gaussian errors are eps_t = eps f(t) times something: |e|^2 holds eps_t^2, which
  // overflows for eps_t > 1e154, at any step a profile's factor takes there. Then the largest
  // |eps_t| of the evaluated steps, top, is factored out of |e|^2 (eps_score = top x the root of a
  // finite mean, w_t = eps_t / top <= 1); below kUnscaledEps, w_t = eps_t and the sums are the ones
  // every earlier build computed, bit for bit.
  double top = 0;
  for (int t : ts) top = std::max(top, std::fabs(err.eps * plan.factor(t)));
  const bool scaled = (err.kind == ScoreErrorKind::Scale || err.kind == ScoreErrorKind::Bias ||
                       err.kind == ScoreErrorKind::Gaussian) &&
                      !(top <= kUnscaledEps);
  const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  // One step at a time (the model may change with t under a profile). Each sample's squared error
  // goes to its own slot, on all threads; the slots are then summed in the order (step, sample), so
  // the figure is the same for any thread count.
  std::vector<double> e2s(static_cast<std::size_t>(m));
  double total = 0;
  for (int t : ts) {
    const double eps_t = err.eps * plan.factor(t);
    const double w = scaled ? eps_t / top : eps_t;
    const Mixture sm_t = plan.per_step() ? plan.model(t) : Mixture();
    const Mixture& sm = plan.per_step() ? sm_t : plan.fixed_model();
    const MarginalScore score_true(target, s.abar[t]);
    const MarginalScore score_model_t(sm, s.abar[t]);
#pragma omp parallel num_threads(threads)
    {
      std::vector<double> x(d), s_true(d), s_err(d), l(std::max(target.K, sm.K));
#pragma omp for schedule(static)
      for (int i = 0; i < m; ++i) {
        forward_draw(target, s, t, opt.seed, static_cast<uint64_t>(i), cum, x.data());
        if (need_true) score_true(x.data(), s_true.data(), l.data());
        double e2 = 0;
        switch (err.kind) {
          case ScoreErrorKind::Scale:
            for (int j = 0; j < d; ++j) e2 += w * w * s_true[j] * s_true[j];
            break;
          case ScoreErrorKind::Bias:
            for (int j = 0; j < d; ++j) e2 += w * w * plan.bias_unit()[j] * plan.bias_unit()[j];
            break;
          case ScoreErrorKind::Gaussian: {
            const double sd = w / std::sqrt(double(d));
            for (int b = 0; 4 * b < d; ++b) {
              double xi[4];
              detail::philox_normal4<double>(opt.seed, kStreamScoreNoise, i, static_cast<uint32_t>(t),
                                             static_cast<uint32_t>(b), xi);
              for (int cc = 0; cc < 4 && 4 * b + cc < d; ++cc) e2 += sd * sd * xi[cc] * xi[cc];
            }
            break;
          }
          default:
            score_model_t(x.data(), s_err.data(), l.data());
            for (int j = 0; j < d; ++j) e2 += (s_err[j] - s_true[j]) * (s_err[j] - s_true[j]);
        }
        e2s[static_cast<std::size_t>(i)] = e2;
      }
    }
    for (int i = 0; i < m; ++i) total += e2s[static_cast<std::size_t>(i)];
  }
  const double rms = std::sqrt(total / (double(m) * ts.size()));
  return scaled ? top * rms : rms;
}

std::size_t choose_chunk_rows(const Backend& be, const RunShape& shape, uint64_t n, std::size_t requested) {
  GMMDIFF_EXPECTS(n >= 1, "--n = ", n, " (need at least one particle)");
  const std::size_t max_rows = be.max_chunk_rows(shape);
  if (max_rows == 0)
    throw ResourceError("a chunk of " + std::to_string(kChunkAlign) + " particles of d = " + std::to_string(shape.d) +
                        " with K = " + std::to_string(shape.K) + " (" + to_string(shape.precision) +
                        ") does not fit in the memory of the " + be.name() + " backend");
  // requested is compared before it is rounded up: 2^64 - 1 rounded up would wrap around to 0.
  const std::size_t rows_asked =
      requested > max_rows ? requested : (requested + kChunkAlign - 1) / kChunkAlign * kChunkAlign;
  std::size_t rows = requested > 0 ? rows_asked : max_rows;
  if (requested > 0 && rows > max_rows)
    throw ResourceError("--chunk " + std::to_string(requested) + " does not fit in the memory of the " + be.name() +
                        " backend (at most " + std::to_string(max_rows) + " rows of d = " + std::to_string(shape.d) +
                        ")");
  if (rows >= n) rows = static_cast<std::size_t>(n);
  return rows;
}

std::string sampler_label(const SampleOptions& opt) {
  switch (opt.sampler) {
    case SamplerKind::DDPM: return std::string("ddpm/") + to_string(opt.variance);
    case SamplerKind::DDIM: return "ddim";
    default: {
      std::ostringstream os;
      os << "ddim-song/eta=" << opt.eta;
      return os.str();
    }
  }
}

std::string RunSummary::eps_jacobi_text() const {
  if (!eps_jacobi_defined) return ", eps_Jacobi undefined (the gaussian score error is not differentiable)";
  if (std::isnan(eps_jacobi)) return "";
  char buf[96];
  std::snprintf(buf, sizeof buf, ", eps_Jacobi=%.4g", eps_jacobi);
  return buf;
}

std::string RunSummary::one_line() const {
  char buf[640];
  std::snprintf(buf, sizeof buf,
                "gmmdiff: n=%llu d=%d K=%d T=%d %s %s on %s (%s, path %s): %.3f s, %.3g elt-steps/s, %zu chunk%s of %zu, "
                "eps_score=%.4g%s%s",
                static_cast<unsigned long long>(n), d, K, T, sampler.c_str(), precision.c_str(), backend.c_str(),
                device.c_str(), path.c_str(), seconds, elt_steps_per_s, chunks, chunks == 1 ? "" : "s", chunk_rows, eps_score,
                score_error == ScoreErrorKind::None ? " (exact score)" : " (realised, measured)",
                eps_jacobi_text().c_str());
  if (ranks > 1) return std::string(buf) + ", over " + std::to_string(ranks) + " ranks (the slowest rank's time)";
  return buf;
}

std::vector<double> load_error_factors(const std::string& path) {
  // A regular file only (a FIFO or /dev/zero would block or read without end), as every input.
  std::istringstream in(read_input_file(path, "score-error profile file"));
  std::vector<double> v;
  std::string line;
  int lineno = 0;
  while (std::getline(in, line)) {
    ++lineno;
    const auto hash = line.find('#');
    if (hash != std::string::npos) line.erase(hash);
    for (char& c : line)
      if (c == ',') c = ' ';
    std::istringstream is(line);
    std::string tok;
    while (is >> tok) {
      char* end = nullptr;
      const double x = std::strtod(tok.c_str(), &end);
      GMMDIFF_EXPECTS(end && *end == '\0', path, ":", lineno, ": '", tok, "' is not a number");
      GMMDIFF_EXPECTS(std::isfinite(x) && x >= 0, path, ":", lineno, ": the factor ", tok,
                      " is not a finite number >= 0");
      v.push_back(x);
    }
  }
  GMMDIFF_EXPECTS(!v.empty(), path, ": no factors (need one per step t = 1..T)");
  return v;
}

std::vector<double> parse_bias_direction(const std::string& text, BiasDirection& kind) {
  if (text == "random") {
    kind = BiasDirection::Random;
    return {};
  }
  if (text == "means") {
    kind = BiasDirection::Means;
    return {};
  }
  kind = BiasDirection::Vector;
  std::vector<double> v;
  std::string t = text;
  for (char& c : t)
    if (c == ',') c = ' ';
  std::istringstream is(t);
  std::string tok;
  while (is >> tok) {
    char* end = nullptr;
    const double x = std::strtod(tok.c_str(), &end);
    GMMDIFF_EXPECTS(end && *end == '\0' && std::isfinite(x), "--bias-direction: '", tok,
                    "' is not a finite number (allowed: random, means, or d comma-separated numbers)");
    v.push_back(x);
  }
  GMMDIFF_EXPECTS(!v.empty(), "--bias-direction: empty (allowed: random, means, or d comma-separated numbers)");
  return v;
}

double max_score_error_factor(const ScoreError& err, int T, int stop) {
  if (err.profile == ErrorProfile::Uniform) return 1.0;  // eps itself (also where no step is taken)
  double top = 0;
  for (int t = stop + 1; t <= T; ++t) top = std::max(top, score_error_factor(err, t, T, stop));
  return top;
}

void check_score_error(double max_mean_norm, const ScoreError& err, int T, int stop) {
  const double eps = err.eps;
  if (err.profile == ErrorProfile::File) {
    GMMDIFF_EXPECTS(err.factors.size() == static_cast<std::size_t>(T), "score-error profile file: ",
                    err.factors.size(), " factors for T = ", T, " (one per step t = 1..T)");
    for (std::size_t i = 0; i < err.factors.size(); ++i)
      GMMDIFF_EXPECTS(std::isfinite(err.factors[i]) && err.factors[i] >= 0, "score-error profile file: the factor of step ",
                      i + 1, " is ", err.factors[i], " (need a finite factor >= 0)");
  }
  const double f = max_score_error_factor(err, T, stop);
  if (err.kind == ScoreErrorKind::Scale) {
    // The score times 1 + eps f(t) at step t: it keeps its sign at every step.
    GMMDIFF_EXPECTS(std::isfinite(eps) && eps > -1, "eps = ", eps,
                    " for score error scale (need a finite eps > -1: the score times 1 + eps)");
    GMMDIFF_EXPECTS(eps >= 0 || eps * f > -1, "eps = ", eps, " for score error scale with the ",
                    to_string(err.profile), " profile, whose largest factor is ", f, ": the score times 1 + eps f(t) = ",
                    1 + eps * f, " at that step (need eps f(t) > -1 at every step)");
  } else {
    GMMDIFF_EXPECTS(std::isfinite(eps) && eps >= 0, "eps = ", eps, " (need a finite eps >= 0)");
  }
  // The largest step's size, eps f: finite, and for `means` within what a model may hold.
  check_effective_eps(max_mean_norm, err.kind, eps * f, eps, f);
}

void check_score_error(const Mixture& target, const Schedule& s, const ScoreError& err, int stop) {
  check_score_error(target.K > 0 ? target.max_mean_norm() : 0.0, err, s.T, stop);
  if (err.kind == ScoreErrorKind::Bias && err.direction != BiasDirection::Random)
    (void)bias_unit_vector(target, err, 0);  // throws for a vector that cannot be a direction
}

void check_sample_options(const Mixture& target, const Schedule& s, const SampleOptions& opt) {
  GMMDIFF_EXPECTS(opt.n >= 1, "--n = ", opt.n, " (need at least one particle)");
  GMMDIFF_EXPECTS(opt.n < (uint64_t(1) << 48), "--n = ", opt.n, " (at most 2^48 particles)");
  GMMDIFF_EXPECTS(opt.stop == 0 || opt.stop == 1, "--stop = ", opt.stop, " (allowed: 0 or 1)");
  GMMDIFF_EXPECTS(s.T >= 1, "T = ", s.T, " (need T >= 1)");
  GMMDIFF_EXPECTS(std::isfinite(opt.eta) && opt.eta >= 0 && opt.eta <= 1, "--eta = ", opt.eta, " (allowed: 0 to 1)");
  GMMDIFF_EXPECTS(opt.eta == 0 || opt.sampler == SamplerKind::DDIMSong, "--eta = ", opt.eta,
                  " applies to the sampler ddim-song only (", to_string(opt.sampler), " has no eta)");
  check_score_error(target, s, opt.score_error, opt.stop);
  // 0: eps_score not measured (the ranks other than 0 of an MPI run); the CLI refuses --eps-samples 0.
  GMMDIFF_EXPECTS(opt.eps_samples >= 0 && opt.eps_samples <= kMaxEpsSamples, "--eps-samples = ", opt.eps_samples,
                  " (need 1 <= eps-samples <= ", kMaxEpsSamples, ")");
  for (std::size_t i = 0; i < opt.snapshot_steps.size(); ++i) {
    const int t = opt.snapshot_steps[i];
    GMMDIFF_EXPECTS(t >= opt.stop && t <= s.T, "--snapshot ", t, " is outside ", opt.stop, "..", s.T);
    for (std::size_t j = 0; j < i; ++j)
      GMMDIFF_EXPECTS(opt.snapshot_steps[j] != t, "--snapshot ", t, " is given twice (each step has one file)");
  }
  GMMDIFF_EXPECTS(opt.first <= opt.n, "particle range from ", opt.first, " is past the run's n = ", opt.n);
  GMMDIFF_EXPECTS(opt.count == UINT64_MAX || opt.count <= opt.n - opt.first, "particle range ", opt.first, " + ",
                  opt.count, " is past the run's n = ", opt.n);
}

uint64_t range_count(const SampleOptions& opt) {
  return opt.count == UINT64_MAX ? opt.n - std::min(opt.first, opt.n) : opt.count;
}

RunSummary run_sampler(const Mixture& target, const Schedule& s, const SampleOptions& opt, Backend& be,
                       ChunkSink& sink) {
  check_sample_options(target, s, opt);
  const uint64_t count = range_count(opt), end = opt.first + count;
  RunShape shape = run_shape(target, opt.precision, opt.seed);
  shape.chunk_rows = count > 0 ? choose_chunk_rows(be, shape, count, opt.chunk) : 0;

  RunSummary sum;
  sum.n = count;
  sum.d = target.d;
  sum.K = target.K;
  sum.T = s.T;
  sum.sampler = sampler_label(opt);
  sum.precision = to_string(opt.precision);
  sum.score_error = opt.score_error.kind;
  // eps_Jacobi where it is known without differentiating the score (measure_eps_jacobi does the rest).
  sum.eps_jacobi_defined = opt.score_error.kind != ScoreErrorKind::Gaussian;
  if (opt.score_error.kind == ScoreErrorKind::None || opt.score_error.kind == ScoreErrorKind::Bias) sum.eps_jacobi = 0;
  sum.backend = be.name();
  sum.device = be.device_name();
  sum.chunk_rows = shape.chunk_rows;
  sum.steps = s.T - opt.stop;
  sum.chunks = count > 0 ? static_cast<std::size_t>((count + shape.chunk_rows - 1) / shape.chunk_rows) : 0;

  const auto e0 = std::chrono::steady_clock::now();
  sum.eps_score = measure_eps_score(target, s, opt);
  // Never a figure: a non-finite eps_score means the error model itself did not compute.
  GMMDIFF_EXPECTS(std::isfinite(sum.eps_score), "the realised eps_score of --score-error ",
                  to_string(opt.score_error.kind), " --eps ", opt.score_error.eps, " is ", sum.eps_score,
                  " (the error model overflows a double at this eps: take a smaller one)");
  sum.eps_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - e0).count();

  const ScorePlan score(target, s, opt);
  // Coefficients are the same for every chunk: compute them once when they are small.
  constexpr double kCoeffCacheBytes = 256.0 * (1 << 20);
  const bool cache = double(sum.steps) * double(target.K) * target.d * 16.0 <= kCoeffCacheBytes;
  std::vector<StepCoeffs> cached;
  if (cache)
    for (int t = s.T; t > opt.stop; --t) cached.push_back(score.coeffs(t));
  auto coeffs = [&](int t) { return cache ? cached[s.T - t] : score.coeffs(t); };
  auto is_snapshot = [&](int t) {
    return std::find(opt.snapshot_steps.begin(), opt.snapshot_steps.end(), t) != opt.snapshot_steps.end();
  };

  const bool interior_snapshot = std::any_of(opt.snapshot_steps.begin(), opt.snapshot_steps.end(),
                                             [&](int t) { return t > opt.stop && t < s.T; });
  const int many_slice = std::max(16, (sum.steps + 15) / 16);  // about 16 progress updates a chunk
  const std::vector<bool> identity = identity_steps(s, opt);
  for (int t = s.T; t > opt.stop; --t) sum.identity_steps += identity[t] ? 1 : 0;
  if (count == 0) {  // an empty range (a rank with no particles): nothing to allocate or run
    sum.path = be.step_path();
    return sum;
  }

  // An allocation that fails becomes smaller chunks (results do not depend on the chunk size),
  // unless the user fixed --chunk.
  for (;;) {
    try {
      be.begin(shape, target);
      break;
    } catch (const ResourceError&) {
      if (opt.chunk != 0 || shape.chunk_rows <= kChunkAlign) throw;
      shape.chunk_rows = std::max(kChunkAlign, shape.chunk_rows / 2 / kChunkAlign * kChunkAlign);
    }
  }
  sum.chunk_rows = shape.chunk_rows;
  sum.chunks = static_cast<std::size_t>((count + shape.chunk_rows - 1) / shape.chunk_rows);
  const uint64_t total_units = count * static_cast<uint64_t>(std::max(sum.steps, 1));
  uint64_t done_units = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t first = opt.first; first < end; first += shape.chunk_rows) {
    const std::size_t rows = static_cast<std::size_t>(std::min<uint64_t>(shape.chunk_rows, end - first));
    be.init_chunk(first, rows);
    if (is_snapshot(s.T)) sink.on_snapshot(be, s.T);
    int t_at = s.T;  // the chunk holds Y_{t_at}
    // Several steps per backend call (Backend::step_many) when no snapshot falls between them,
    // in slices that keep the progress callback moving; step() for whatever it declines.
    // Identity steps are skipped (is_identity_step: they leave every finite particle as it is).
    if (cache && !interior_snapshot) {
      while (t_at > opt.stop) {
        int n = 0;  // identity steps first, then up to many_slice computed ones
        while (t_at - n > opt.stop && identity[t_at - n]) ++n;
        const bool skip = n > 0;
        if (!skip) {
          while (n < many_slice && t_at - n > opt.stop && !identity[t_at - n]) ++n;
          if (!be.step_many(&cached[s.T - t_at], static_cast<std::size_t>(n))) break;
        }
        t_at -= n;
        if (is_snapshot(t_at)) sink.on_snapshot(be, t_at);
        done_units += rows * static_cast<uint64_t>(n);
        if (opt.progress) opt.progress(done_units, total_units);
      }
    }
    for (int t = t_at; t > opt.stop; --t) {
      if (!identity[t]) be.step(coeffs(t));
      if (is_snapshot(t - 1)) sink.on_snapshot(be, t - 1);
      done_units += rows;
      if (opt.progress) opt.progress(done_units, total_units);
    }
    if (opt.check_finite && be.count_nonfinite_rows() > 0) {
      // Replay the chunk (deterministic) with a check after every step to name the first bad step.
      be.init_chunk(first, rows);
      int bad_t = s.T;
      for (int t = s.T; t > opt.stop; --t) {
        if (identity[t]) continue;
        be.step(coeffs(t));
        if (be.count_nonfinite_rows() > 0) {
          bad_t = t;
          break;
        }
      }
      throw NumericalError("a particle became NaN or Inf at step t = " + std::to_string(bad_t) + " (particles " +
                           std::to_string(first) + ".." + std::to_string(first + rows - 1) +
                           "); nothing was written. " + nonfinite_advice(target, s, opt));
    }
    sink.on_chunk(be);
  }
  be.synchronize();
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sum.path = be.step_path();
  sum.elt_steps_per_s = sum.seconds > 0
                            ? double(count) * target.d * std::max(sum.steps - sum.identity_steps, 0) / sum.seconds
                            : 0.0;
  return sum;
}

}  // namespace gmmdiff
