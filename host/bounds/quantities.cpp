// gmmdiff: the proofs' quantities with exact scores (gmmdiff/quantities.hpp): `inspect` and
// eps_Jacobi. Per point: the factored Jacobian of the target's exact score (jacobian_at without
// the K x K Gram matrix: O(K d)), tr(I + J) from its rows, ||J||_op by Lanczos on J's product (O(K d) per iteration, at most
// min(d, K) + 1 iterations for isotropic components). Points are independent: OpenMP over them,
// each value into its own slot, so the figures do not depend on the thread count.
#include "gmmdiff/quantities.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>
#include <set>

#include "bounds/score_jacobian.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff {

namespace {

/// The cumulative weights forward_draw takes.
std::vector<double> cumulative(const Mixture& m) {
  std::vector<double> cum(m.K);
  double c = 0;
  for (int k = 0; k < m.K; ++k) cum[k] = (c += m.weights[k]);
  cum[m.K - 1] = 1.0;
  return cum;
}

/// The Jacobian's step data of the exact score of mixture m at step t (no score error).
bounds::JacobianStep exact_jacobian_step(const Mixture& m, const Schedule& s, int t) {
  SampleOptions exact;
  exact.score_error = ScoreError{};
  return bounds::jacobian_step(step_coeffs(m, s, t, exact, {}), m.d, m.K);
}

double second_moment_exact(const Mixture& m, const Schedule& s, int t) {
  const double abar = s.abar[t], oma = s.one_minus_abar[t];
  double e = 0;
  for (int k = 0; k < m.K; ++k) {
    double q = 0;
    for (int j = 0; j < m.d; ++j) q += abar * m.mean(k)[j] * m.mean(k)[j] + abar * m.var(k, j) + oma;
    e += m.weights[k] * q;
  }
  return e;
}

/// The per-point values of one population at one step.
struct PointValues {
  std::vector<double> trace, opnorm, sq;
  void resize(std::size_t n) {
    trace.assign(n, 0.0);
    opnorm.assign(n, 0.0);
    sq.assign(n, 0.0);
  }
  InspectPopulation summary() {
    InspectPopulation p;
    p.trace = QuantitySummary::of(trace);
    p.opnorm = QuantitySummary::of(opnorm);
    p.sq = QuantitySummary::of(sq);
    return p;
  }
};

/// tr(I + J), ||J||_op and |x|^2 at point x into slot i of v (ja: the caller's scratch).
void measure_point(const bounds::JacobianStep& js, const double* x, std::size_t i, bounds::JacobianAt& ja,
                   PointValues& v) {
  bounds::jacobian_at(js, x, ja, /*gram=*/false);
  v.trace[i] = bounds::trace_i_plus_j(ja);
  v.opnorm[i] = bounds::op_norm_lanczos(ja);
  double q = 0;
  for (int j = 0; j < js.d; ++j) q += x[j] * x[j];
  v.sq[i] = q;
}

/// Receives the sampler's snapshots and measures each row where the chunk comes back to the host.
class InspectSink : public ChunkSink {
 public:
  InspectSink(const std::vector<int>& steps, const std::vector<bounds::JacobianStep>& js, uint64_t n, int d,
              Precision precision, const std::function<void(uint64_t)>& done)
      : steps_(steps), js_(js), d_(d), fp64_(precision == Precision::FP64), done_(done) {
    values_.resize(steps.size());
    for (auto& v : values_) v.resize(static_cast<std::size_t>(n));
  }
  void on_chunk(Backend&) override {}
  void on_snapshot(Backend& be, int t) override {
    const auto it = std::find(steps_.begin(), steps_.end(), t);
    if (it == steps_.end()) return;
    const std::size_t si = static_cast<std::size_t>(it - steps_.begin());
    const std::size_t rows = be.rows();
    const uint64_t first = be.first();
    raw_.resize(rows * d_ * (fp64_ ? 8 : 4));
    be.download(raw_.data());
    host_.resize(rows * d_);
    for (std::size_t i = 0; i < rows * d_; ++i)
      host_[i] = fp64_ ? reinterpret_cast<const double*>(raw_.data())[i]
                       : static_cast<double>(reinterpret_cast<const float*>(raw_.data())[i]);
    PointValues& v = values_[si];
#pragma omp parallel
    {
      bounds::JacobianAt ja;
#pragma omp for schedule(dynamic, 16)
      for (std::ptrdiff_t r = 0; r < static_cast<std::ptrdiff_t>(rows); ++r)
        measure_point(js_[si], host_.data() + std::size_t(r) * d_, static_cast<std::size_t>(first + r), ja, v);
    }
    done_(rows);
  }
  std::vector<PointValues>& values() { return values_; }

 private:
  const std::vector<int>& steps_;
  const std::vector<bounds::JacobianStep>& js_;
  int d_;
  bool fp64_;
  std::function<void(uint64_t)> done_;
  std::vector<PointValues> values_;
  std::vector<unsigned char> raw_;
  std::vector<double> host_;
};

}  // namespace

QuantitySummary QuantitySummary::of(std::vector<double>& values) {
  QuantitySummary q;
  q.n = values.size();
  if (values.empty()) return q;
  const double n = static_cast<double>(values.size());
  double sum = 0;
  for (double x : values) sum += x;
  q.mean = sum / n;
  double var = 0;
  for (double x : values) var += (x - q.mean) * (x - q.mean);
  q.se = values.size() > 1 ? std::sqrt(var / (n - 1) / n) : 0.0;
  auto order = [&](double p) {  // the order statistic at ceil(p n) (1-based)
    const std::size_t r = std::min(values.size(), static_cast<std::size_t>(std::ceil(p * n)));
    const std::size_t idx = r == 0 ? 0 : r - 1;
    std::nth_element(values.begin(), values.begin() + static_cast<std::ptrdiff_t>(idx), values.end());
    return values[idx];
  };
  q.p99 = order(0.99);
  q.p999 = order(0.999);
  q.max = *std::max_element(values.begin(), values.end());
  return q;
}

std::vector<int> default_inspect_steps(int T, int stop, int max_steps) {
  const int first = stop + 1, steps = T - stop;
  std::vector<int> ts;
  if (steps <= 0) return ts;
  if (steps <= max_steps) {
    for (int t = T; t >= first; --t) ts.push_back(t);
    return ts;
  }
  std::set<int, std::greater<int>> u;
  for (int e = 0; e < max_steps; ++e)
    u.insert(first + static_cast<int>(std::llround(double(e) * (steps - 1) / (max_steps - 1))));
  return std::vector<int>(u.begin(), u.end());
}

Inspection inspect_quantities(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                              const InspectOptions& io, Backend& be) {
  GMMDIFF_EXPECTS(io.n >= 2, "inspect: --n = ", io.n, " (need at least 2 points per step)");
  GMMDIFF_EXPECTS(io.n < (uint64_t(1) << 40), "inspect: --n = ", io.n, " (at most 2^40)");
  std::vector<int> steps = io.steps.empty() ? default_inspect_steps(s.T, opt.stop) : io.steps;
  for (int t : steps)
    GMMDIFF_EXPECTS(t > opt.stop && t <= s.T, "inspect: step t = ", t, " is outside ", opt.stop + 1, "..", s.T,
                    " (the steps the sampler takes)");
  GMMDIFF_EXPECTS(!steps.empty(), "inspect: no step to measure (T = ", s.T, ", stop ", opt.stop, ")");
  std::sort(steps.begin(), steps.end(), std::greater<int>());
  steps.erase(std::unique(steps.begin(), steps.end()), steps.end());
  SampleOptions so = opt;
  so.n = io.n;
  so.snapshot_steps = steps;
  so.progress = nullptr;
  if (io.sampler) check_sample_options(target, s, so);

  const auto t0 = std::chrono::steady_clock::now();
  Inspection r;
  r.d = target.d;
  r.K = target.K;
  r.T = s.T;
  std::vector<bounds::JacobianStep> js;
  for (int t : steps) js.push_back(exact_jacobian_step(target, s, t));
  const uint64_t total = static_cast<uint64_t>(steps.size()) * io.n * (io.sampler ? 2 : 1);
  uint64_t done = 0;
  auto advance = [&](uint64_t k) {
    done += k;
    if (io.progress) io.progress(done, total);
  };

  // X_t ~ p_t: measure_eps_score's draws.
  const std::vector<double> cum = cumulative(target);
  std::vector<PointValues> fwd(steps.size());
  for (std::size_t si = 0; si < steps.size(); ++si) {
    PointValues& v = fwd[si];
    v.resize(static_cast<std::size_t>(io.n));
    const int t = steps[si];
#pragma omp parallel
    {
      bounds::JacobianAt ja;
      std::vector<double> x(target.d);
#pragma omp for schedule(dynamic, 16)
      for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(io.n); ++i) {
        forward_draw(target, s, t, opt.seed, static_cast<uint64_t>(i), cum, x.data());
        measure_point(js[si], x.data(), static_cast<std::size_t>(i), ja, v);
      }
    }
    advance(io.n);
  }

  // The sampler's Y_t: its snapshots, measured as they come back.
  InspectSink sink(steps, js, io.n, target.d, opt.precision, advance);
  if (io.sampler) r.sampler = run_sampler(target, s, so, be, sink);

  for (std::size_t si = 0; si < steps.size(); ++si) {
    InspectRow row;
    row.t = steps[si];
    row.abar = s.abar[row.t];
    row.log_KT = std::log(double(target.K) * s.T);
    row.second_moment_exact = second_moment_exact(target, s, row.t);
    row.forward = fwd[si].summary();
    if (io.sampler) row.sampler = sink.values()[si].summary();
    r.rows.push_back(std::move(row));
  }
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return r;
}

std::string EpsJacobi::text() const {
  if (!defined) return "undefined (the gaussian score error is not differentiable)";
  char b[96];
  if (exact) std::snprintf(b, sizeof b, "%.4g (exact)", value);
  else std::snprintf(b, sizeof b, "%.4g (se %.2g)", value, se);
  return b;
}

EpsJacobi measure_eps_jacobi(const Mixture& target, const Schedule& s, const SampleOptions& opt,
                             const EpsJacobiOptions& eo) {
  EpsJacobi r;
  const ScoreError& err = opt.score_error;
  switch (err.kind) {
    case ScoreErrorKind::Gaussian:
      r.defined = false;
      r.value = std::numeric_limits<double>::quiet_NaN();
      return r;
    case ScoreErrorKind::None:
    case ScoreErrorKind::Bias:  // a constant shift: J^err = J exactly
      return r;
    default: break;
  }
  GMMDIFF_EXPECTS(eo.max_steps >= 1 && eo.samples >= 2 && eo.lanczos_tol > 0 && eo.lanczos_tol < 1,
                  "eps_Jacobi: max_steps = ", eo.max_steps, ", samples = ", eo.samples, ", lanczos_tol = ",
                  eo.lanczos_tol, " (need >= 1, >= 2 and in (0, 1))");
  const std::vector<int> ts = eps_steps(s, opt.stop, eo.max_steps);
  if (ts.empty() || err.eps == 0) return r;
  check_score_error(target, s, err, opt.stop);
  r.exact = false;
  r.steps = static_cast<int>(ts.size());
  r.samples = static_cast<uint64_t>(eo.samples);
  const ScorePlan plan(target, s, opt);
  const std::vector<double> cum = cumulative(target);
  const int m = eo.samples;
  std::vector<double> vals(static_cast<std::size_t>(m));
  double sum = 0, var_sum = 0;  // sum over t of the step means and of their variances / m
  for (int t : ts) {
    const bounds::JacobianStep js = exact_jacobian_step(target, s, t);
    const double eps_t = err.eps * plan.factor(t);
    bounds::JacobianStep jm;
    if (err.kind != ScoreErrorKind::Scale)
      jm = exact_jacobian_step(plan.per_step() ? plan.model(t) : plan.fixed_model(), s, t);
#pragma omp parallel
    {
      bounds::JacobianAt ja, jb;
      std::vector<double> x(target.d);
#pragma omp for schedule(dynamic, 8)
      for (int i = 0; i < m; ++i) {
        forward_draw(target, s, t, opt.seed, static_cast<uint64_t>(i), cum, x.data());
        bounds::jacobian_at(js, x.data(), ja, /*gram=*/false);
        if (err.kind == ScoreErrorKind::Scale) {
          vals[static_cast<std::size_t>(i)] = std::abs(eps_t) * bounds::op_norm_lanczos(ja, eo.lanczos_tol);
        } else {
          bounds::jacobian_at(jm, x.data(), jb, /*gram=*/false);
          vals[static_cast<std::size_t>(i)] = bounds::op_norm_difference(jb, ja, eo.lanczos_tol);
        }
      }
    }
    double mean = 0;
    for (double v : vals) mean += v;
    mean /= m;
    double var = 0;
    for (double v : vals) var += (v - mean) * (v - mean);
    sum += mean;
    var_sum += var / (m - 1) / m;
  }
  r.value = sum / ts.size();
  r.se = std::sqrt(var_sum) / ts.size();
  // Never a figure: as for eps_score, a non-finite eps_Jacobi means the error model did not compute.
  GMMDIFF_EXPECTS(std::isfinite(r.value) && std::isfinite(r.se), "the measured eps_Jacobi of --score-error ",
                  to_string(err.kind), " --eps ", err.eps, " is ", r.value, " (se ", r.se,
                  "): the error model overflows a double at this eps; take a smaller one");
  return r;
}

}  // namespace gmmdiff
