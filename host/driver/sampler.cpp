// gmmdiff: the host driver. It computes each step's coefficients in double (THEORY.md), and
// steps one chunk of particles at a time through the backend, handing finished chunks to a sink.
#include "gmmdiff/sampler.hpp"

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <mutex>
#include <sstream>

#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

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

// kappa, 1/sqrt(alpha_t) and sigma of step t (THEORY.md, Samplers).
void set_step_scalars(StepCoeffs& c, const Schedule& s, int t, const SampleOptions& opt) {
  const double oma = s.one_minus_abar[t];
  const double oma_t = one_minus_alpha(s, t), alpha = s.alpha[t];
  c.kappa = opt.sampler == SamplerKind::DDPM ? oma_t : 0.5 * oma_t;
  c.inv_sqrt_alpha = 1.0 / std::sqrt(alpha);
  double var = 0;
  if (opt.sampler == SamplerKind::DDPM) {
    switch (opt.variance) {
      case Variance::Beta: var = oma_t; break;
      case Variance::Posterior: var = oma > 0 ? s.one_minus_abar[t - 1] / oma * oma_t : 0.0; break;
      case Variance::Inside: var = oma_t / alpha; break;
    }
  }
  c.sigma = std::sqrt(var);
}

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

}  // namespace

bool is_identity_step(const StepCoeffs& c) { return c.kappa == 0 && c.sigma == 0 && c.inv_sqrt_alpha == 1; }

std::vector<bool> identity_steps(const Schedule& s, const SampleOptions& opt) {
  std::vector<bool> id(static_cast<std::size_t>(s.T) + 1, false);
  for (int t = 1; t <= s.T; ++t) {
    StepCoeffs c;
    set_step_scalars(c, s, t, opt);
    id[t] = is_identity_step(c);
  }
  return id;
}

std::vector<double> bias_direction(int d, uint64_t seed) { return aux_unit_vector(d, seed, kAuxBias); }

void check_score_error(const Mixture& target, const ScoreError& err) {
  check_score_error(target.K > 0 ? target.max_mean_norm() : 0.0, err);
}

void check_score_error(double max_mean_norm, const ScoreError& err) {
  const double eps = err.eps;
  if (err.kind == ScoreErrorKind::Scale)
    GMMDIFF_EXPECTS(std::isfinite(eps) && eps > -1, "eps = ", eps,
                    " for score error scale (need a finite eps > -1: the score times 1 + eps)");
  else
    GMMDIFF_EXPECTS(std::isfinite(eps) && eps >= 0, "eps = ", eps, " (need a finite eps >= 0)");
  if (err.kind == ScoreErrorKind::Means) {
    // Every mean moves by eps: the perturbed model must be as representable as a model (validate).
    const double r = max_mean_norm + eps;
    GMMDIFF_EXPECTS(std::isfinite(r * r), "eps = ", eps, " for score error means moves the means to |mu| up to ",
                    r, ", whose square overflows a double (take a smaller eps)");
  }
}

Mixture score_model(const Mixture& target, const ScoreError& err, uint64_t seed) {
  check_score_error(target, err);
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
      m.weights[k] = target.weights[k] * std::exp(err.eps * g[k]);
      sum += m.weights[k];
      direct = direct && std::isfinite(m.weights[k]) && m.weights[k] >= std::numeric_limits<double>::min();
    }
    if (direct && std::isfinite(sum)) {
      for (double& w : m.weights) w /= sum;
    } else {
      std::vector<double> lw(m.K);
      double top = -std::numeric_limits<double>::infinity();
      for (int k = 0; k < m.K; ++k) top = std::max(top, lw[k] = std::log(target.weights[k]) + err.eps * g[k]);
      sum = 0;
      for (int k = 0; k < m.K; ++k) sum += (m.weights[k] = std::exp(lw[k] - top));
      // A weight below the smallest normal double is held there: its component keeps a finite log
      // weight (its mass, below 1e-300, is what the perturbation gives it to every printed digit).
      for (double& w : m.weights) w = std::max(w / sum, std::numeric_limits<double>::min());
    }
  } else if (err.kind == ScoreErrorKind::Means) {
    // mu'_k = mu_k + eps u_k, u_k a random unit vector: every mean moves by exactly eps.
    for (int k = 0; k < m.K; ++k) {
      const std::vector<double> u = aux_unit_vector(m.d, seed, kAuxPerturbMeans + static_cast<uint64_t>(k));
      for (int j = 0; j < m.d; ++j) m.means[std::size_t(k) * m.d + j] += err.eps * u[j];
    }
  }
  return m;
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
  set_step_scalars(c, s, t, opt);
  switch (opt.score_error.kind) {
    case ScoreErrorKind::Scale: c.score_scale = 1.0 + opt.score_error.eps; break;
    case ScoreErrorKind::Bias:
      c.bias_dir.resize(d);
      for (int j = 0; j < d; ++j) c.bias_dir[j] = opt.score_error.eps * bias_unit[j];
      break;
    case ScoreErrorKind::Gaussian: c.noise_sd = opt.score_error.eps / std::sqrt(double(d)); break;
    default: break;
  }
  return c;
}

namespace {

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
    logdet_.resize(K_);
    logw_.resize(K_);
    for (int k = 0; k < K_; ++k) {
      const double* mu = m.mean(k);
      double logdet = 0;
      for (int j = 0; j < d_; ++j) {
        const double v = abar * m.var(k, j) + oma;
        v_[std::size_t(k) * d_ + j] = v;
        smu_[std::size_t(k) * d_ + j] = sa * mu[j];
        logdet += std::log(v);
      }
      logdet_[k] = logdet;
      logw_[k] = std::log(m.weights[k]);
    }
  }
  /// out[d] = the score at x; l[K] is scratch.
  void operator()(const double* x, double* out, double* l) const {
    constexpr double kLog2Pi = 1.8378770664093454836;  // as component_logits
    for (int k = 0; k < K_; ++k) {
      const double* v = v_.data() + std::size_t(k) * d_;
      const double* smu = smu_.data() + std::size_t(k) * d_;
      double q = 0;
      for (int j = 0; j < d_; ++j) {
        const double r = x[j] - smu[j];
        q += r * r / v[j];
      }
      l[k] = logw_[k] - 0.5 * (q + logdet_[k] + m_.d * kLog2Pi);
    }
    double mx = l[0];  // logsumexp: the first largest, then the sum in order
    for (int k = 1; k < K_; ++k)
      if (mx < l[k]) mx = l[k];
    double s = 0;
    for (int k = 0; k < K_; ++k) s += std::exp(l[k] - mx);
    const double lse = mx + std::log(s);
    std::fill(out, out + d_, 0.0);
    for (int k = 0; k < K_; ++k) {
      const double w = std::exp(l[k] - lse);
      const double* v = v_.data() + std::size_t(k) * d_;
      const double* smu = smu_.data() + std::size_t(k) * d_;
      for (int j = 0; j < d_; ++j) out[j] += w * (smu[j] - x[j]) / v[j];
    }
  }

 private:
  const Mixture& m_;
  int K_, d_;
  std::vector<double> v_, smu_, logdet_, logw_;
};

}  // namespace

double measure_eps_score(const Mixture& target, const Schedule& s, const SampleOptions& opt) {
  const ScoreError& err = opt.score_error;
  if (err.kind == ScoreErrorKind::None || opt.eps_samples <= 0) return 0.0;
  const int first_t = opt.stop + 1, steps = s.T - opt.stop;
  if (steps <= 0) return 0.0;
  const Mixture sm = score_model(target, err, opt.seed);
  const std::vector<double> bias_unit = err.kind == ScoreErrorKind::Bias ? bias_direction(target.d, opt.seed)
                                                                         : std::vector<double>();
  std::vector<int> ts;
  const int evals = std::min(steps, kMaxEpsSteps);
  for (int e = 0; e < evals; ++e)
    ts.push_back(first_t + static_cast<int>((static_cast<long long>(e) * steps) / evals));
  std::vector<double> cum(target.K);
  double c = 0;
  for (int k = 0; k < target.K; ++k) cum[k] = (c += target.weights[k]);
  cum[target.K - 1] = 1.0;
  const int d = target.d, m = opt.eps_samples;
  const bool need_true = err.kind != ScoreErrorKind::Bias && err.kind != ScoreErrorKind::Gaussian;
  // scale, bias and gaussian errors are eps times something: |e|^2 holds eps^2, which overflows for
  // eps > 1e154. There eps is factored out of |e|^2 (eps_score = |eps| x the root of a finite mean);
  // below, w = eps and the sums are the ones every earlier build computed, bit for bit.
  const bool scaled = (err.kind == ScoreErrorKind::Scale || err.kind == ScoreErrorKind::Bias ||
                       err.kind == ScoreErrorKind::Gaussian) &&
                      !(std::fabs(err.eps) <= kUnscaledEps);
  const double w = scaled ? 1.0 : err.eps;
  const bool need_model = need_true && err.kind != ScoreErrorKind::Scale;
  const int threads = opt.threads > 0 ? opt.threads : omp_get_max_threads();
  // Each sample's squared error goes to its own slot, on all threads; the slots are then summed in
  // the order (step, sample), so the figure is the same for any thread count.
  std::vector<double> e2s(static_cast<std::size_t>(m));
  double total = 0;
  for (int t : ts) {
    const MarginalScore score_true(target, s.abar[t]);
    const MarginalScore score_model_t(sm, s.abar[t]);
    const uint32_t st = static_cast<uint32_t>(3 * t);
    const double sa = std::sqrt(s.abar[t]), sw = std::sqrt(s.one_minus_abar[t]);
#pragma omp parallel num_threads(threads)
    {
      std::vector<double> x(d), s_true(d), s_err(d), l(std::max(target.K, sm.K));
#pragma omp for schedule(static)
      for (int i = 0; i < m; ++i) {
        const int k = detail::pick_component(
            detail::philox_uniform(opt.seed, kStreamForward, i, st, detail::kTargetComponentBlock), cum.data(),
            target.K);
        for (int b = 0; 4 * b < d; ++b) {
          double z0[4], w[4];
          detail::philox_normal4<double>(opt.seed, kStreamForward, i, st + 1, static_cast<uint32_t>(b), z0);
          detail::philox_normal4<double>(opt.seed, kStreamForward, i, st + 2, static_cast<uint32_t>(b), w);
          for (int cc = 0; cc < 4 && 4 * b + cc < d; ++cc) {
            const int j = 4 * b + cc;
            x[j] = sa * (target.mean(k)[j] + std::sqrt(target.var(k, j)) * z0[cc]) + sw * w[cc];
          }
        }
        if (need_true) score_true(x.data(), s_true.data(), l.data());
        double e2 = 0;
        switch (err.kind) {
          case ScoreErrorKind::Scale:
            for (int j = 0; j < d; ++j) e2 += w * w * s_true[j] * s_true[j];
            break;
          case ScoreErrorKind::Bias:
            for (int j = 0; j < d; ++j) e2 += w * w * bias_unit[j] * bias_unit[j];
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
            (void)need_model;
            score_model_t(x.data(), s_err.data(), l.data());
            for (int j = 0; j < d; ++j) e2 += (s_err[j] - s_true[j]) * (s_err[j] - s_true[j]);
        }
        e2s[static_cast<std::size_t>(i)] = e2;
      }
    }
    for (int i = 0; i < m; ++i) total += e2s[static_cast<std::size_t>(i)];
  }
  const double rms = std::sqrt(total / (double(m) * ts.size()));
  return scaled ? std::fabs(err.eps) * rms : rms;
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

std::string RunSummary::one_line() const {
  char buf[512];
  std::snprintf(buf, sizeof buf,
                "gmmdiff: n=%llu d=%d K=%d T=%d %s %s on %s (%s, path %s): %.3f s, %.3g elt-steps/s, %zu chunk%s of %zu, "
                "eps_score=%.4g%s",
                static_cast<unsigned long long>(n), d, K, T, sampler.c_str(), precision.c_str(), backend.c_str(),
                device.c_str(), path.c_str(), seconds, elt_steps_per_s, chunks, chunks == 1 ? "" : "s", chunk_rows, eps_score,
                score_error == ScoreErrorKind::None ? " (exact score)" : " (realised, measured)");
  if (ranks > 1) return std::string(buf) + ", over " + std::to_string(ranks) + " ranks (the slowest rank's time)";
  return buf;
}

void check_sample_options(const Mixture& target, const Schedule& s, const SampleOptions& opt) {
  GMMDIFF_EXPECTS(opt.n >= 1, "--n = ", opt.n, " (need at least one particle)");
  GMMDIFF_EXPECTS(opt.n < (uint64_t(1) << 48), "--n = ", opt.n, " (at most 2^48 particles)");
  GMMDIFF_EXPECTS(opt.stop == 0 || opt.stop == 1, "--stop = ", opt.stop, " (allowed: 0 or 1)");
  GMMDIFF_EXPECTS(s.T >= 1, "T = ", s.T, " (need T >= 1)");
  check_score_error(target, opt.score_error);
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
  sum.sampler = opt.sampler == SamplerKind::DDPM ? std::string("ddpm/") + to_string(opt.variance) : "ddim";
  sum.precision = to_string(opt.precision);
  sum.score_error = opt.score_error.kind;
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

  const Mixture sm = score_model(target, opt.score_error, opt.seed);
  const std::vector<double> bias_unit =
      opt.score_error.kind == ScoreErrorKind::Bias ? bias_direction(target.d, opt.seed) : std::vector<double>();
  // Coefficients are the same for every chunk: compute them once when they are small.
  constexpr double kCoeffCacheBytes = 256.0 * (1 << 20);
  const bool cache = double(sum.steps) * double(target.K) * target.d * 16.0 <= kCoeffCacheBytes;
  std::vector<StepCoeffs> cached;
  if (cache)
    for (int t = s.T; t > opt.stop; --t) cached.push_back(step_coeffs(sm, s, t, opt, bias_unit));
  auto coeffs = [&](int t) { return cache ? cached[s.T - t] : step_coeffs(sm, s, t, opt, bias_unit); };
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
