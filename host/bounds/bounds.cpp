// gmmdiff: the ddpm path bound and the ddim exact density (bounds.hpp): plans in double from the
// schedule and the sampler's own step coefficients (step_coeffs, score_model, bias_direction of
// host/driver/sampler.cpp), chunks handed to a BoundsKernels, and the figures from the per-particle
// sums. Also the TV(X_0, X_1) term of stop 1.
#include "gmmdiff/bounds.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "bounds/bounds_cpu.hpp"
#include "bounds/distributed.hpp"
#include "bounds/score_jacobian.hpp"
#include "core/special_functions.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/error.hpp"
#if defined(GMMDIFF_HAVE_CUDA)
#include "cuda/cuda_api.hpp"
#endif

namespace gmmdiff {

namespace {

constexpr double kCoeffCacheBytes = 256.0 * (1 << 20);  // step coefficients kept for all chunks
constexpr uint64_t kAutoChunkRows = uint64_t(1) << 17;  // rows per automatic chunk (progress granularity)
// tv_x0_x1_bound: a component's closed form is used when its Pinsker bound is at least this (below
// it the term is negligible and Pinsker is exact arithmetic) and the non-central chi-square
// arguments stay in the range where special::ncx2_cdf is accurate.
constexpr double kClosedFormMinTv = 1e-6;
constexpr double kClosedFormMaxNoncentrality = 1e4;

/// Mean and standard error accumulated in a fixed order (Welford), in blocks of draws that are
/// merged in block order (Chan, Golub and LeVeque): the blocks are fixed by n and the kernels'
/// unit alone, so one process and any number of MPI ranks (each a contiguous range of blocks,
/// docs/scale.md) add the same numbers in the same order.
struct Welford {
  double n = 0, mean = 0, m2 = 0;
  static constexpr std::size_t kValues = 3;  ///< what a block sends: n, mean, m2
  void push(double x) {
    n += 1;
    const double delta = x - mean;
    mean += delta / n;
    m2 += delta * (x - mean);
  }
  void merge(const Welford& b) {
    if (b.n == 0) return;
    if (n == 0) {
      *this = b;
      return;
    }
    const double total = n + b.n, delta = b.mean - mean;
    mean += delta * (b.n / total);
    m2 += b.m2 + delta * delta * (n * b.n / total);
    n = total;
  }
  void save(double* v) const {
    v[0] = n;
    v[1] = mean;
    v[2] = m2;
  }
  static Welford load(const double* v) {
    Welford w;
    w.n = v[0];
    w.mean = v[1];
    w.m2 = v[2];
    return w;
  }
  MeanSe result() const {
    MeanSe r;
    r.mean = mean;
    r.se = n > 1 ? std::sqrt(m2 / (n - 1) / n) : 0.0;
    return r;
  }
};

// Blocks of the reduction: at least kMinBlock draws (or particles), a multiple of the kernels'
// unit (so that a rank's range starts where a chunk may), and at most kMaxBlocks of them.
constexpr uint64_t kMinBlockDraws = 64, kMinBlockParticles = 256, kMaxBlocks = 65536;
uint64_t block_size(uint64_t n, uint64_t unit, uint64_t min_block) {
  const uint64_t b = std::max(min_block, (n + kMaxBlocks - 1) / kMaxBlocks);
  return (b + unit - 1) / unit * unit;
}

/// (1 - exp(l))_+ without cancellation near l = 0.
double one_minus_exp_plus(double l) { return l >= 0 ? 0.0 : -std::expm1(l); }

/// The law of X_s: the target (s = 0) or its forward marginal at step 1, with the variances from
/// the schedule's accurate 1 - abar_1 (forward_marginal forms 1 - abar, which is 0 in double when
/// 1 - abar_1 is below 1e-16).
Mixture marginal_at(const Mixture& target, const Schedule& s, int stop) {
  if (stop == 0) return target;
  Mixture m = target;
  const double abar = s.abar[stop], oma = s.one_minus_abar[stop], sa = std::sqrt(abar);
  for (double& x : m.means) x *= sa;
  if (m.cov == Covariance::Isotropic)
    for (double& sd : m.sd) sd = std::sqrt(abar * sd * sd + oma);
  else
    for (double& v : m.var_diag) v = abar * v + oma;
  return m;
}

/// Step coefficients are computed once when they are small, else per chunk and step.
template <typename Step>
class StepSource {
 public:
  StepSource(std::vector<int> ts, double bytes_per_step, std::function<Step(int)> make)
      : ts_(std::move(ts)), make_(std::move(make)) {
    if (double(ts_.size()) * bytes_per_step <= kCoeffCacheBytes)
      for (int t : ts_) cache_.push_back(make_(t));
  }
  template <typename F>
  void for_each(F f) const {
    if (!cache_.empty() || ts_.empty()) {
      for (const Step& st : cache_) f(st);
    } else {
      for (int t : ts_) f(make_(t));
    }
  }
  std::size_t size() const { return ts_.size(); }

 private:
  std::vector<int> ts_;
  std::function<Step(int)> make_;
  std::vector<Step> cache_;
};

/// Chunk size (outer draws or particles) for unit, rows per item and the kernels' memory.
uint64_t choose_chunk(uint64_t requested, uint64_t unit, uint64_t rows_per_item, uint64_t max_rows, uint64_t n,
                      const std::string& what, int d) {
  if (unit * rows_per_item > max_rows)
    throw ResourceError("bounds: one chunk of " + std::to_string(unit * rows_per_item) + " " + what + " of d = " +
                        std::to_string(d) + " does not fit in memory (at most " + std::to_string(max_rows) + ")");
  uint64_t chunk;
  if (requested > 0) {
    chunk = (requested + unit - 1) / unit * unit;
    if (chunk * rows_per_item > max_rows)
      throw ResourceError("bounds: --chunk " + std::to_string(requested) + " needs " +
                          std::to_string(chunk * rows_per_item) + " " + what + " of d = " + std::to_string(d) +
                          " at once, more than fit in memory (" + std::to_string(max_rows) + ")");
  } else {
    const uint64_t rows = std::min(max_rows, kAutoChunkRows);
    chunk = std::max<uint64_t>(1, rows / rows_per_item / unit) * unit;
  }
  return std::min(chunk, n);
}

double u_minus_log1p(double u) {
  // u - log(1 + u) >= 0, by its series where the difference would cancel.
  if (std::abs(u) < 1e-3) return u * u * (0.5 - u * (1.0 / 3 - u * (0.25 - u * 0.2)));
  return u - std::log1p(u);
}

}  // namespace

std::unique_ptr<BoundsKernels> make_bounds_kernels(const std::string& backend, int threads) {
  GMMDIFF_EXPECTS(threads >= 0, "--threads = ", threads, " (need >= 0; 0 means all cores)");
  if (backend == "cpu") return std::make_unique<CpuBoundsKernels>(threads);
  if (backend == "cuda" || backend == "auto") {
#if defined(GMMDIFF_HAVE_CUDA)
    if (cuda_api::device_count() > 0) return cuda_api::make_cuda_bounds_kernels();
    GMMDIFF_EXPECTS(backend == "auto", "--backend cuda: no CUDA device is available on this machine "
                                       "(use --backend cpu or auto)");
#else
    GMMDIFF_EXPECTS(backend == "auto", "--backend cuda: this build of gmmdiff has no CUDA backend "
                                       "(rebuild with nvcc available, or use --backend cpu)");
#endif
    return std::make_unique<CpuBoundsKernels>(threads);
  }
  throw Error("unknown backend '" + backend + "' (allowed: cpu, cuda, auto)");
}

// ---- TV(X_0, X_1) ----

double gaussian_tv_isotropic(double dist2, double a, double b, double a_minus_b, int d) {
  if (a_minus_b == 0) {
    const double h = std::sqrt(dist2) / (2.0 * std::sqrt(a));
    return special::normal_interval(-h, h);
  }
  // {p1 > p2} is the outside (a > b) or the inside (a < b) of the ball |x - c|^2 <= R^2,
  // c = (a m2 - b m1) / (a - b), R^2 = a b (|m1 - m2|^2 / |a - b| + d |log(a / b)|) / |a - b|; under
  // p_i, |X - c|^2 / a_i is chi'^2(d, a_i |m1 - m2|^2 / (a - b)^2).
  const double D = std::abs(a_minus_b), L = std::abs(std::log1p(a_minus_b / b));
  const double R2 = a * b * (dist2 / D + d * L) / D;
  const double P1 = special::ncx2_cdf(R2 / a, d, a * dist2 / (D * D));
  const double P2 = special::ncx2_cdf(R2 / b, d, b * dist2 / (D * D));
  const double tv = a < b ? P1 - P2 : P2 - P1;
  return std::min(1.0, std::max(0.0, tv));
}

TvX0X1 tv_x0_x1_bound(const Mixture& target, const Schedule& s) {
  TvX0X1 r;
  const double abar = s.abar[1], oma = s.one_minus_abar[1];
  const double one_minus_sqrt = oma / (1.0 + std::sqrt(abar));  // 1 - sqrt(abar_1) without cancellation
  const int d = target.d;
  bool any_closed = false, any_pinsker = false;
  for (int k = 0; k < target.K; ++k) {
    double mu2 = 0;
    for (int j = 0; j < d; ++j) mu2 += target.mean(k)[j] * target.mean(k)[j];
    const double dist2 = one_minus_sqrt * one_minus_sqrt * mu2;
    double term;
    bool closed = false;
    if (target.cov == Covariance::Isotropic) {
      // a = s^2 (X_0), b = abar s^2 + 1 - abar (X_1): a - b = (1 - abar)(s^2 - 1), exactly 0 for s = 1.
      const double a = target.sd[k] * target.sd[k], diff = oma * (a - 1.0), b = a - diff;
      const double kl12 = 0.5 * (d * u_minus_log1p(diff / b) + dist2 / b);
      const double kl21 = 0.5 * (d * u_minus_log1p(-diff / a) + dist2 / a);
      const double pinsker = std::sqrt(0.5 * std::min(kl12, kl21));
      term = pinsker;
      const double lam = diff == 0 ? 0.0 : std::max(a, b) * dist2 / (diff * diff);
      if (pinsker >= kClosedFormMinTv && lam <= kClosedFormMaxNoncentrality) {
        term = std::min(pinsker, gaussian_tv_isotropic(dist2, a, b, diff, d));
        closed = true;
      }
    } else {
      double kl12 = 0, kl21 = 0;
      for (int j = 0; j < d; ++j) {
        const double a = target.var(k, j), diff = oma * (a - 1.0), b = a - diff;
        const double dm2 = one_minus_sqrt * one_minus_sqrt * target.mean(k)[j] * target.mean(k)[j];
        kl12 += 0.5 * (u_minus_log1p(diff / b) + dm2 / b);
        kl21 += 0.5 * (u_minus_log1p(-diff / a) + dm2 / a);
      }
      term = std::sqrt(0.5 * std::min(kl12, kl21));
    }
    (closed ? any_closed : any_pinsker) = true;
    r.bound += target.weights[k] * std::min(1.0, term);
  }
  r.bound = std::min(1.0, r.bound);
  r.method = any_closed && any_pinsker ? "closed form and Pinsker" : (any_closed ? "closed form" : "Pinsker");
  return r;
}

// ---- the ddpm path bound ----

void check_path_options(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo) {
  GMMDIFF_EXPECTS(opt.sampler == SamplerKind::DDPM || (opt.sampler == SamplerKind::DDIMSong && opt.eta > 0),
                  "the path bound is for the stochastic samplers (ddpm, ddim-song with eta > 0); ddim and ddim-song "
                  "with eta = 0 have the exact density instead");
  GMMDIFF_EXPECTS(std::isfinite(opt.eta) && opt.eta <= 1, "--eta = ", opt.eta, " (allowed: 0 to 1)");
  const uint64_t n = bo.n ? bo.n : kDefaultPathOuter;
  GMMDIFF_EXPECTS(n >= 2, "--n = ", n, " (need at least 2 outer draws: the upper bound needs a standard error)");
  GMMDIFF_EXPECTS(n < detail::kMaxOuterDraws, "--n = ", n, " (at most 2^28 - 1 outer draws)");
  GMMDIFF_EXPECTS(bo.M >= 1, "--M = ", bo.M, " (need at least 1 continuation per outer draw)");
  GMMDIFF_EXPECTS(static_cast<uint64_t>(bo.M) <= detail::kMaxContinuations, "--M = ", bo.M,
                  " (at most 2^20 continuations per outer draw)");
  GMMDIFF_EXPECTS(opt.stop == 0 || opt.stop == 1, "--stop = ", opt.stop, " (allowed: 0 or 1)");
  GMMDIFF_EXPECTS(s.T >= 1, "T = ", s.T, " (need T >= 1)");
  GMMDIFF_EXPECTS(std::isfinite(opt.score_error.eps) && opt.score_error.eps >= 0, "--eps = ", opt.score_error.eps,
                  " (need a finite eps >= 0)");
  // Every step with 1 - alpha_t > 0 needs a reverse kernel with noise: decided from the schedule
  // alone (make_path_step says the same with the coefficients).
  const double noise_sd =
      opt.score_error.kind == ScoreErrorKind::Gaussian ? opt.score_error.eps / std::sqrt(double(target.d)) : 0.0;
  const bool posterior_form = opt.sampler == SamplerKind::DDIMSong || opt.variance == Variance::Posterior;
  for (int t = opt.stop + 1; t <= s.T; ++t) {
    const double beta = one_minus_alpha(s, t);
    if (beta == 0 || !posterior_form || noise_sd > 0) continue;
    GMMDIFF_EXPECTS(s.one_minus_abar[t - 1] > 0, opt.sampler == SamplerKind::DDPM ? "ddpm --variance posterior" : "ddim-song",
                    ": step t = ", t, " has no noise (sigma_t = 0, since 1 - abar_", t - 1,
                    " = 0), so the path bound does not apply to it; use --stop 1",
                    opt.sampler == SamplerKind::DDPM ? " or --variance beta or inside" : "");
  }
  check_score_error(target, s, opt.score_error, opt.stop);
}

PathStep make_path_step(const Mixture& sm, const Schedule& s, int t, const SampleOptions& opt,
                        const std::vector<double>& bias_unit) {
  PathStep st;
  st.c = step_coeffs(sm, s, t, opt, bias_unit);
  const double beta = one_minus_alpha(s, t);
  const double kappa = st.c.kappa;  // ddpm: 1 - alpha_t; ddim-song: step_scalars
  GMMDIFF_EXPECTS(beta > 0, "path bound: step t = ", t, " is an identity (1 - alpha_t = 0) and is skipped");
  const double alpha = s.alpha[t];
  // Delta = alpha sigma_tot^2 - beta, formed exactly for each variance choice (THEORY.md):
  // beta: -beta^2; posterior: -beta^2 / (1 - abar_t); inside: 0; ddim-song with eta:
  // beta ((eta^2 - 1)(1 - abar_t) - eta^2 beta) / (1 - abar_t) (eta = 1: the posterior's); plus
  // kappa^2 noise_sd^2 (gaussian).
  double delta = 0;
  if (opt.sampler == SamplerKind::DDIMSong) {
    const double e2 = opt.eta * opt.eta, A = s.one_minus_abar[t];
    delta = beta * ((e2 - 1.0) * A - e2 * beta) / A;
  } else {
    switch (opt.variance) {
      case Variance::Beta: delta = -beta * beta; break;
      case Variance::Posterior: delta = -beta * beta / s.one_minus_abar[t]; break;
      case Variance::Inside: delta = 0; break;
    }
  }
  delta += (kappa * st.c.noise_sd) * (kappa * st.c.noise_sd);
  const double a_sig2 = beta + delta;  // alpha sigma_tot^2
  GMMDIFF_EXPECTS(a_sig2 > 0, "ddpm: step t = ", t,
                  " has no noise (sigma_t = 0), so the path bound does not apply to it; use --stop 1 or another "
                  "--variance");
  detail::PathStepTerms& tm = st.terms;
  tm.sqrt_alpha = std::sqrt(alpha);
  tm.sqrt_beta = std::sqrt(beta);
  tm.rho = beta / a_sig2;
  tm.one_minus_rho = delta / a_sig2;
  tm.gamma = kappa / tm.sqrt_beta;
  tm.half_d_log_ratio = 0.5 * sm.d * std::log1p((delta + beta * beta) / (alpha * beta));
  return st;
}

PathPlan make_path_plan(const Mixture& target, const Schedule& s, const SampleOptions& opt, uint64_t n, int M,
                        const std::vector<int>& prefixes) {
  PathPlan p;
  p.d = target.d;
  p.K = target.K;
  p.seed = opt.seed;
  p.n = n;
  p.M = M;
  p.prefixes = prefixes;
  p.outer = marginal_at(target, s, opt.stop);
  return p;
}

PathBound path_bound(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                     BoundsKernels& kr) {
  return path_bound(target, s, opt, bo, kr, dist::serial());
}

PathBound path_bound(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                     BoundsKernels& kr, dist::Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  PathBound r;
  std::unique_ptr<PathPlan> plan;
  std::unique_ptr<StepSource<PathStep>> steps;
  std::unique_ptr<ScorePlan> score;
  uint64_t chunk = 0, block = 0;
  int P = 0;
  dist::collective(comm, [&] {  // every rank checks; a refusal is reported once
    check_path_options(target, s, opt, bo);
    r.n = bo.n ? bo.n : kDefaultPathOuter;
    r.d = target.d;
    r.M = bo.M;
    r.M_quarter = std::max(1, bo.M / 4);
    r.stop = opt.stop;
    const std::vector<int> prefixes =
        r.M_quarter < r.M ? std::vector<int>{r.M_quarter, r.M} : std::vector<int>{r.M};
    P = static_cast<int>(prefixes.size());
    plan = std::make_unique<PathPlan>(make_path_plan(target, s, opt, r.n, r.M, prefixes));
    score = std::make_unique<ScorePlan>(target, s, opt);
    std::vector<int> ts;
    for (int t = opt.stop + 1; t <= s.T; ++t)
      if (one_minus_alpha(s, t) > 0) ts.push_back(t);
    r.steps = static_cast<int>(ts.size());
    steps = std::make_unique<StepSource<PathStep>>(ts, 16.0 * target.K * target.d, [&](int t) {
      return score->per_step() ? make_path_step(score->model(t), s, t, opt, score->bias_unit())
                               : make_path_step(score->fixed_model(), s, t, opt, score->bias_unit());
    });
    const uint64_t unit = kr.path_unit(r.M);
    chunk = choose_chunk(bo.chunk, unit, static_cast<uint64_t>(r.M), kr.max_rows(target.d, target.K), r.n,
                         "continuations", target.d);
    block = block_size(r.n, unit, kMinBlockDraws);
  });
  // This rank's blocks of outer draws; per block the four figures' Welford states and the first
  // draw whose weight is not a number (-1: none).
  constexpr std::size_t kPer = 4 * Welford::kValues + 1;
  const uint64_t nblocks = (r.n + block - 1) / block;
  const dist::Range mine = dist::split_range(nblocks, comm.rank(), comm.size());
  const uint64_t begin = mine.first * block, end = std::min(r.n, (mine.first + mine.count) * block);
  std::vector<double> parts(mine.count * kPer, 0.0);
  dist::collective(comm, [&] {
    std::vector<Welford> tv(mine.count), tvq(mine.count), kl(mine.count), klq(mine.count);
    std::vector<double> nan(mine.count, -1.0);
    std::vector<double> out;
    const uint64_t total = (end - begin) * std::max<uint64_t>(1, steps->size());
    for (uint64_t first = begin; first < end; first += chunk) {
      const uint64_t count = std::min(chunk, end - first);
      out.assign(count * P, 0.0);
      kr.path_begin(*plan, first, count);
      uint64_t done = (first - begin) * std::max<uint64_t>(1, steps->size());
      steps->for_each([&](const PathStep& st) {
        kr.path_step(st);
        done += count;
        if (bo.progress) bo.progress(done, total);
      });
      kr.path_end(out.data());
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t b = (first + i) / block - mine.first;
        const double lq = out[i * P], lm = out[i * P + P - 1];
        if (std::isnan(lq) || std::isnan(lm)) {
          if (nan[b] < 0) nan[b] = double(first + i);
          continue;
        }
        tv[b].push(one_minus_exp_plus(lm));
        kl[b].push(-lm);
        tvq[b].push(one_minus_exp_plus(lq));
        klq[b].push(-lq);
      }
    }
    for (uint64_t b = 0; b < mine.count; ++b) {
      double* v = parts.data() + b * kPer;
      tv[b].save(v);
      kl[b].save(v + 3);
      tvq[b].save(v + 6);
      klq[b].save(v + 9);
      v[12] = nan[b];
    }
  });
  // Every block's states, merged in block order on every rank.
  const std::vector<double> all = dist::gather_blocks(comm, parts, nblocks, kPer);
  Welford tv, kl, tvq, klq;
  double nan = -1;
  for (uint64_t b = 0; b < nblocks; ++b) {
    const double* v = all.data() + b * kPer;
    tv.merge(Welford::load(v));
    kl.merge(Welford::load(v + 3));
    tvq.merge(Welford::load(v + 6));
    klq.merge(Welford::load(v + 9));
    if (nan < 0 && v[12] >= 0) nan = v[12];
  }
  dist::collective(comm, [&] {
    if (nan >= 0)
      throw NumericalError("path bound: the importance weight of outer draw " + std::to_string(uint64_t(nan)) +
                           " is not a number (a continuation overflowed); nothing was reported");
  });
  r.tv = tv.result();
  r.kl = kl.result();
  r.tv_quarter = tvq.result();
  r.kl_quarter = klq.result();
  if (opt.stop == 1) r.x0x1 = tv_x0_x1_bound(target, s);
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

// ---- the ddim exact density ----

void check_flow_options(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo) {
  GMMDIFF_EXPECTS(opt.sampler == SamplerKind::DDIM || (opt.sampler == SamplerKind::DDIMSong && opt.eta == 0),
                  "the exact density is for the deterministic samplers (ddim, ddim-song with eta = 0); ddpm and "
                  "ddim-song with eta > 0 have the path bound instead");
  GMMDIFF_EXPECTS(opt.score_error.kind != ScoreErrorKind::Gaussian,
                  "ddim with the gaussian score error is stochastic: it has no exact density (and its kernel noise, "
                  "kappa eps / sqrt(d alpha), is too small for a useful path bound); use another --score-error or ddpm");
  const uint64_t n = bo.n ? bo.n : kDefaultFlowParticles;
  GMMDIFF_EXPECTS(n >= 2, "--n = ", n, " (need at least 2 particles: the exact figures need a standard error)");
  GMMDIFF_EXPECTS(n < (uint64_t(1) << 48), "--n = ", n, " (at most 2^48 particles)");
  GMMDIFF_EXPECTS(target.K <= kMaxFlowK, "ddim exact density: K = ", target.K, " exceeds ", kMaxFlowK,
                  " (its determinant costs O(K^3) per particle and step)");
  GMMDIFF_EXPECTS(opt.stop == 0 || opt.stop == 1, "--stop = ", opt.stop, " (allowed: 0 or 1)");
  GMMDIFF_EXPECTS(s.T >= 1, "T = ", s.T, " (need T >= 1)");
  check_score_error(target, s, opt.score_error, opt.stop);
}

FlowStep make_flow_step(const Mixture& sm, const Schedule& s, int t, const SampleOptions& opt,
                        const std::vector<double>& bias_unit) {
  FlowStep st;
  st.c = step_coeffs(sm, s, t, opt, bias_unit);
  st.kappa_j = st.c.kappa * st.c.score_scale;
  st.d_log_inv_sqrt_alpha = sm.d * std::log(st.c.inv_sqrt_alpha);
  if (!st.c.diagonal) st.PP = bounds::gram_of_rows(st.c.P, sm.K, sm.d);
  return st;
}

FlowPlan make_flow_plan(const Mixture& target, const Schedule& s, const SampleOptions& opt, uint64_t n) {
  (void)s;
  FlowPlan p;
  p.d = target.d;
  p.K = target.K;
  p.seed = opt.seed;
  p.n = n;
  p.reference = target;
  return p;
}

ExactDensity exact_density(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                           BoundsKernels& kr) {
  return exact_density(target, s, opt, bo, kr, dist::serial());
}

ExactDensity exact_density(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                           BoundsKernels& kr, dist::Comm& comm) {
  const auto t0 = std::chrono::steady_clock::now();
  ExactDensity r;
  std::unique_ptr<FlowPlan> plan;
  std::unique_ptr<StepSource<FlowStep>> steps;
  std::unique_ptr<ScorePlan> score;
  uint64_t chunk = 0, block = 0;
  dist::collective(comm, [&] {  // every rank checks; a refusal is reported once
    check_flow_options(target, s, opt, bo);
    r.n = bo.n ? bo.n : kDefaultFlowParticles;
    r.d = target.d;
    r.stop = opt.stop;
    plan = std::make_unique<FlowPlan>(make_flow_plan(target, s, opt, r.n));
    score = std::make_unique<ScorePlan>(target, s, opt);
    std::vector<int> ts;
    for (int t = s.T; t > opt.stop; --t)
      if (one_minus_alpha(s, t) > 0) ts.push_back(t);
    r.steps = static_cast<int>(ts.size());
    steps = std::make_unique<StepSource<FlowStep>>(
        ts, 16.0 * target.K * target.d + 8.0 * target.K * target.K, [&](int t) {
          return score->per_step() ? make_flow_step(score->model(t), s, t, opt, score->bias_unit())
                                   : make_flow_step(score->fixed_model(), s, t, opt, score->bias_unit());
        });
    chunk = choose_chunk(bo.chunk, kr.flow_unit(), 1, kr.max_rows(target.d, target.K), r.n, "particles", target.d);
    block = block_size(r.n, kr.flow_unit(), kMinBlockParticles);
  });
  // This rank's blocks of particles; per block the two figures' Welford states, the first particle
  // whose ratio is not a number (-1: none) and the largest folding step of the chunks over it.
  constexpr std::size_t kPer = 2 * Welford::kValues + 2;
  const uint64_t nblocks = (r.n + block - 1) / block;
  const dist::Range mine = dist::split_range(nblocks, comm.rank(), comm.size());
  const uint64_t begin = mine.first * block, end = std::min(r.n, (mine.first + mine.count) * block);
  std::vector<double> parts(mine.count * kPer, 0.0);
  dist::collective(comm, [&] {
    std::vector<Welford> tv(mine.count), kl(mine.count);
    std::vector<double> nan(mine.count, -1.0), fold(mine.count, 0.0);
    std::vector<double> out;
    const uint64_t total = (end - begin) * std::max<uint64_t>(1, steps->size());
    for (uint64_t first = begin; first < end; first += chunk) {
      const uint64_t count = std::min(chunk, end - first);
      out.assign(count, 0.0);
      kr.flow_begin(*plan, first, count);
      uint64_t done = (first - begin) * std::max<uint64_t>(1, steps->size());
      steps->for_each([&](const FlowStep& st) {
        kr.flow_step(st);
        done += count;
        if (bo.progress) bo.progress(done, total);
      });
      const int f = kr.flow_end(out.data());
      for (uint64_t b = first / block; b <= (first + count - 1) / block; ++b)
        fold[b - mine.first] = std::max(fold[b - mine.first], double(f));
      for (uint64_t i = 0; i < count; ++i) {
        const uint64_t b = (first + i) / block - mine.first;
        if (std::isnan(out[i])) {
          if (nan[b] < 0) nan[b] = double(first + i);
          continue;
        }
        tv[b].push(one_minus_exp_plus(out[i]));
        kl[b].push(-out[i]);
      }
    }
    for (uint64_t b = 0; b < mine.count; ++b) {
      double* v = parts.data() + b * kPer;
      tv[b].save(v);
      kl[b].save(v + 3);
      v[6] = nan[b];
      v[7] = fold[b];
    }
  });
  const std::vector<double> all = dist::gather_blocks(comm, parts, nblocks, kPer);
  Welford tv, kl;
  double nan = -1;
  int fold = 0;  // the largest folding step over all particles (the same whatever the chunks and ranks)
  for (uint64_t b = 0; b < nblocks; ++b) {
    const double* v = all.data() + b * kPer;
    tv.merge(Welford::load(v));
    kl.merge(Welford::load(v + 3));
    if (nan < 0 && v[6] >= 0) nan = v[6];
    fold = std::max(fold, static_cast<int>(v[7]));
  }
  dist::collective(comm, [&] {
    if (fold > 0)
      throw Error("ddim exact density: at step t = " + std::to_string(fold) +
                  " the step map is not invertible at some particles (I + kappa J_t is not positive definite "
                  "there: det <= 0 or a fold), so the change of variables does not hold and no exact TV or KL is "
                  "reported (a scale score error with eps >= 1 can do this)");
    if (nan >= 0)
      throw NumericalError("ddim exact density: the log-density ratio of particle " + std::to_string(uint64_t(nan)) +
                           " is not a number; nothing was reported");
  });
  r.tv = tv.result();
  r.kl = kl.result();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

}  // namespace gmmdiff
