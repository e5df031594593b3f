// gmmdiff: the throughput benchmark (include/gmmdiff/bench.hpp, docs/bench.md). Each configuration
// is validated against the CPU oracle before it is timed (llm.c's rule: no timing of a kernel that
// has not been checked), and every figure is printed beside the limit it is compared with.
#include "gmmdiff/bench.hpp"


#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "bench/bench_testing.hpp"
#include "core/system.hpp"
#include "cpu/cpu_backend.hpp"
#include "gmmdiff/bounds.hpp"
#include "io/text.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/version.hpp"

namespace gmmdiff {

namespace {

/// Timed (and warm-up) passes at most: the median of 1000 is as good as of more, and a typo such as
/// --repeats 1000000000 would otherwise run for days.
constexpr int kMaxPasses = 1000;

using text::utc_now;

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof buf - 1) != 0) return "unknown";
  return buf;
}

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("model name", 0) == 0) {
      const auto c = line.find(':');
      if (c != std::string::npos) return line.substr(line.find_first_not_of(" \t", c + 1));
    }
  return "unknown";
}

Mixture bench_model(int d, int K, uint64_t seed) {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = d;
  pp.K = K;
  pp.radius = kBenchRadius;
  pp.sd = {1.0};
  pp.seed = seed;
  return make_preset(pp);
}

/// The computed steps of one pass, t = T..2 (a stop-1 DDPM run with sigma_t^2 = 1 - alpha_t), without
/// its identity steps (is_identity_step), whose number goes to *identity.
std::vector<StepCoeffs> bench_steps(const Mixture& m, int T, int* identity = nullptr) {
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = T;
  sp.c0 = kBenchC0;
  sp.c1 = kBenchC1;
  const Schedule s = make_schedule(sp);
  SampleOptions o;
  o.sampler = SamplerKind::DDPM;
  o.variance = Variance::Beta;
  std::vector<StepCoeffs> cs;
  for (int t = T; t > 1; --t) {
    StepCoeffs c = step_coeffs(m, s, t, o, {});
    if (is_identity_step(c)) {  // skipped, as the sampler skips it, and not counted
      if (identity) ++*identity;
      continue;
    }
    cs.push_back(std::move(c));
  }
  return cs;
}

/// Runs one pass on the first `rows` particles and returns them in double.
/// The steps as the sampler runs them: several per backend call (Backend::step_many) where the
/// backend has a multi-step form, so the check and the timing cover the path a run takes.
void run_steps(Backend& be, const std::vector<StepCoeffs>& cs) {
  if (cs.empty() || be.step_many(cs.data(), cs.size())) return;
  for (const StepCoeffs& c : cs) be.step(c);
}

std::vector<double> run_rows(Backend& be, const Mixture& m, const std::vector<StepCoeffs>& cs, Precision p,
                             uint64_t seed, uint64_t rows) {
  const RunShape sh = run_shape(m, p, seed, static_cast<std::size_t>(rows));
  be.begin(sh, m);
  be.init_chunk(0, sh.chunk_rows);
  run_steps(be, cs);
  be.synchronize();
  const std::size_t count = sh.chunk_rows * static_cast<std::size_t>(m.d);
  std::vector<double> out(count);
  if (p == Precision::FP32) {
    std::vector<float> buf(count);
    be.download(buf.data());
    std::copy(buf.begin(), buf.end(), out.begin());
  } else {
    be.download(out.data());
  }
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

nlohmann::json num_or_null(double x, bool have) { return have && std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

/// The bounds' rows of rep (BenchOptions::bounds_outer, bounds_M), on the kernels of be's kind.
void run_bounds_bench(Backend& be, const BenchOptions& opt, BenchReport& rep);

void check_bench_options(const BenchOptions& opt) {
  GMMDIFF_EXPECTS(!opt.n.empty() && !opt.d.empty() && !opt.K.empty() && !opt.precision.empty() && !opt.path.empty(),
                  "bench: every list (--n, --d, --K, --precision, --path) needs at least one value");
  GMMDIFF_EXPECTS(opt.T >= 2, "bench: --T = ", opt.T, " (need T >= 2: a pass times the steps t = T..2)");
  GMMDIFF_EXPECTS(opt.repeats >= 1 && opt.repeats <= kMaxPasses, "bench: --repeats = ", opt.repeats,
                  " (need 1 <= repeats <= ", kMaxPasses, ")");
  GMMDIFF_EXPECTS(opt.warmup >= 0 && opt.warmup <= kMaxPasses, "bench: --warmup = ", opt.warmup,
                  " (need 0 <= warmup <= ", kMaxPasses, ")");
  GMMDIFF_EXPECTS(opt.check_rows >= 1, "bench: --check-rows = ", opt.check_rows, " (need >= 1)");
  for (uint64_t n : opt.n) GMMDIFF_EXPECTS(n >= 1 && n < (uint64_t(1) << 48), "bench: --n ", n, " (need 1 <= n < 2^48)");
  for (int d : opt.d) GMMDIFF_EXPECTS(d >= 1, "bench: --d ", d, " (need d >= 1)");
  for (int K : opt.K) GMMDIFF_EXPECTS(K >= 1, "bench: --K ", K, " (need K >= 1)");
  GMMDIFF_EXPECTS(opt.bounds_M >= 1, "bench: --bounds-M = ", opt.bounds_M, " (need >= 1)");
}

}  // namespace

BenchReport run_bench(const BenchOptions& opt,
                      const std::function<void(const BenchReport&, const BenchResult&)>& on_result) {
  return bench_testing::run_bench(opt, {}, on_result);
}

BenchReport bench_testing::run_bench(const BenchOptions& opt, const CheckHook& check_hook,
                                     const std::function<void(const BenchReport&, const BenchResult&)>& on_result) {
  check_bench_options(opt);  // bad options are reported before a backend is made
  auto be = make_backend(opt.backend, opt.threads);
  return run_bench_on(*be, opt, check_hook, on_result);
}

BenchReport bench_testing::run_bench_on(Backend& backend, const BenchOptions& opt, const CheckHook& check_hook,
                                        const std::function<void(const BenchReport&, const BenchResult&)>& on_result) {
  check_bench_options(opt);
  Backend* be = &backend;
  for (const std::string& p : opt.path) be->set_step_path(p);  // throws for a path it does not have
  CpuBackend oracle(opt.threads);
  oracle.set_step_path("products");

  BenchReport rep;
  rep.version = version();
  rep.date = utc_now();
  rep.host = host_name();
  rep.backend = be->name();
  rep.device = be->device_name();
  rep.cpu_model = cpu_model();
  rep.threads = opt.threads;
  rep.T = opt.T;
  {
    int identity = 0;
    bench_steps(bench_model(1, 1, opt.seed), opt.T, &identity);  // identity steps depend on the schedule only
    rep.steps = opt.T - 1 - identity;
    rep.identity_steps = identity;
  }
  rep.repeats = opt.repeats;
  rep.warmup = opt.warmup;
  // A backend that cannot measure a limit leaves it 0: its % columns then read "-" (null in JSON).
  const CpuTicks limits_start = cpu_ticks();
  try {
    rep.copy_bandwidth = be->copy_bandwidth(opt.copy_bytes);
  } catch (const Error&) {
    rep.copy_bandwidth = 0;
  }
  rep.flop_unit = be->flop_unit();
  // The FLOP limit, the noise and the softmax of one precision, each kept at the best of every
  // measurement so far: before the first configuration and after each configuration's timed
  // passes. A limit measured while another process shared the cores would otherwise lower the
  // roofline of every row after it (on a shared 2-core VM the noise alone read 0.73-1.07 ns per
  // normal in three runs of one minute), and a row could read more than 100% of it.
  auto measure_limits = [&](Precision p) {
    const bool f32 = p == Precision::FP32;
    double& lim = f32 ? rep.flop_limit_fp32 : rep.flop_limit_fp64;
    try {
      lim = std::max(lim, be->flop_limit(p));
    } catch (const Error&) {
    }
    auto best = [](double& kept, double now) {
      if (now > 0 && (!(kept > 0) || now < kept)) kept = now;
    };
    best(f32 ? rep.normal_seconds_fp32 : rep.normal_seconds_fp64, be->normal_seconds(p));
    best(f32 ? rep.weight_seconds_fp32 : rep.weight_seconds_fp64, be->weight_seconds(p));
    ++(f32 ? rep.limit_measurements_fp32 : rep.limit_measurements_fp64);
  };
  for (Precision p : opt.precision)
    if ((p == Precision::FP32 ? rep.limit_measurements_fp32 : rep.limit_measurements_fp64) == 0) measure_limits(p);
  rep.limits_pct_steal = steal_percent(limits_start, cpu_ticks());

  for (uint64_t n : opt.n)
    for (int d : opt.d)
      for (int K : opt.K) {
        const Mixture m = bench_model(d, K, opt.seed);
        int identity = 0;
        const std::vector<StepCoeffs> cs = bench_steps(m, opt.T, &identity);
        for (Precision prec : opt.precision)
          for (const std::string& path : opt.path) {
            BenchResult r;
            r.config = BenchConfig{n, d, K, prec, path};
            r.steps = static_cast<int>(cs.size());
            r.identity_steps = identity;
            try {
              // 0. the timed chunk must fit: said before the check spends time on it.
              const RunShape sh = run_shape(m, prec, opt.seed, static_cast<std::size_t>(n));
              if (be->max_chunk_rows(sh) < n)
                throw ResourceError("n = " + std::to_string(n) + " rows of d = " + std::to_string(d) +
                                    " do not fit in one chunk of the " + be->name() + " backend");
              // 1. correctness against the oracle, on the first check_rows particles.
              be->set_step_path(path);
              r.check_rows = std::min(opt.check_rows, n);
              r.check_tolerance = bench_check_tolerance(prec, d);
              std::vector<double> got = run_rows(*be, m, cs, prec, opt.seed, r.check_rows);
              r.path_taken = be->step_path();
              const std::vector<double> want = run_rows(oracle, m, cs, Precision::FP64, opt.seed, r.check_rows);
              if (check_hook) check_hook(r.config, got);
              double mx = 0;
              bool finite = true;
              for (std::size_t i = 0; i < got.size(); ++i) {
                if (!std::isfinite(got[i])) finite = false;
                mx = std::max(mx, std::abs(got[i] - want[i]));
              }
              r.check_max_abs_diff = finite ? mx : INFINITY;
              if (!finite || !(mx <= r.check_tolerance)) {
                r.failure = "check: max |y - y_oracle| = " + std::to_string(r.check_max_abs_diff) + " over " +
                            std::to_string(r.check_rows) + " rows exceeds " + std::to_string(r.check_tolerance);
              } else {
                // 2. timing: one chunk of n rows, warm-up passes, then the timed passes.
                be->begin(sh, m);
                be->init_chunk(0, sh.chunk_rows);
                auto pass = [&] { run_steps(*be, cs); };
                for (int w = 0; w < opt.warmup; ++w) pass();
                const CpuTicks timed_start = cpu_ticks();
                for (int rpt = 0; rpt < opt.repeats; ++rpt) r.seconds.push_back(be->time_seconds(pass));
                r.pct_steal = steal_percent(timed_start, cpu_ticks());
                measure_limits(prec);
                r.path_taken = be->step_path();
                if (be->count_nonfinite_rows() > 0) {
                  r.failure = "non-finite values after the timed passes";
                } else {
                  r.ok = true;
                  r.seconds_median = median(r.seconds);
                  r.elt_steps_per_s = double(n) * d * r.steps / r.seconds_median;
                  r.gb_per_s = r.elt_steps_per_s * bench_bytes_per_elt_step(prec) / 1e9;
                  r.gflop_per_s = r.elt_steps_per_s * bench_flop_per_elt_step(K) / 1e9;
                  const double mem_lim = rep.memory_limit_elt_steps(prec);
                  const double flop_lim = prec == Precision::FP32 ? rep.flop_limit_fp32 : rep.flop_limit_fp64;
                  r.pct_memory_limit = mem_lim > 0 ? 100.0 * r.elt_steps_per_s / mem_lim : NAN;
                  r.pct_flop_limit = flop_lim > 0 ? 100.0 * r.gflop_per_s * 1e9 / flop_lim : NAN;
                  const bool f32 = prec == Precision::FP32;
                  r.roofline_elt_steps_per_s = bench_roofline_elt_steps(
                      d, K, prec, rep.copy_bandwidth, flop_lim, f32 ? rep.normal_seconds_fp32 : rep.normal_seconds_fp64,
                      f32 ? rep.weight_seconds_fp32 : rep.weight_seconds_fp64);
                  r.pct_roofline =
                      r.roofline_elt_steps_per_s > 0 ? 100.0 * r.elt_steps_per_s / r.roofline_elt_steps_per_s : NAN;
                }
              }
            } catch (const ResourceError& e) {
              r.failure = std::string("resources: ") + e.what();
            } catch (const std::bad_alloc&) {
              r.failure = "resources: out of memory";
            }
            rep.results.push_back(r);
            if (on_result) on_result(rep, rep.results.back());
          }
      }
  if (opt.bounds_outer > 0) run_bounds_bench(*be, opt, rep);
  return rep;
}

namespace {
// The check of bounds kernels other than the CPU's: their per-particle sums against the CPU
// kernels' (docs/cuda.md: the two differ by rounding, at most a few 1e-12 on a log-weight).
constexpr uint64_t kBoundsCheckOuter = 8;        // outer draws (x M continuations) of the path check
constexpr uint64_t kBoundsCheckParticles = 256;  // particles of the flow check
constexpr double kBoundsCheckTol = 1e-8;         // absolute, x max(1, |value|)

/// max |a - b| / max(1, |a|) over the values (inf where one is NaN and the other not).
double max_rel_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double mx = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (std::isnan(a[i]) || std::isnan(b[i])) {
      if (std::isnan(a[i]) != std::isnan(b[i])) return INFINITY;
      continue;
    }
    mx = std::max(mx, std::abs(a[i] - b[i]) / std::max(1.0, std::abs(a[i])));
  }
  return mx;
}

/// The per-particle sums of one chunk of n outer draws (path, prefixes M/4 and M) or particles
/// (flow) of the stop-1 run of the bounds rows, on kr.
std::vector<double> bounds_sums(const Mixture& m, const Schedule& s, const SampleOptions& o, uint64_t n, int M,
                                BoundsKernels& kr) {
  if (o.sampler == SamplerKind::DDPM) {
    const std::vector<int> prefixes = std::max(1, M / 4) < M ? std::vector<int>{std::max(1, M / 4), M} : std::vector<int>{M};
    std::vector<double> out(n * prefixes.size());
    kr.path_begin(make_path_plan(m, s, o, n, M, prefixes), 0, n);
    for (int t = o.stop + 1; t <= s.T; ++t)
      if (one_minus_alpha(s, t) > 0) kr.path_step(make_path_step(m, s, t, o, {}));
    kr.path_end(out.data());
    return out;
  }
  std::vector<double> out(n);
  kr.flow_begin(make_flow_plan(m, s, o, n), 0, n);
  for (int t = s.T; t > o.stop; --t)
    if (one_minus_alpha(s, t) > 0) kr.flow_step(make_flow_step(m, s, t, o, {}));
  if (kr.flow_end(out.data()) != 0) out.assign(n, NAN);
  return out;
}

void run_bounds_bench(Backend& be, const BenchOptions& opt, BenchReport& rep) {
  GMMDIFF_EXPECTS(opt.bounds_M >= 1, "bench: --bounds-M = ", opt.bounds_M, " (need >= 1)");
  // The bounds run in fp64 on the kernels of the bench's backend, compared with that backend's fp64
  // FLOP limit (the CPU kernels: the CPU's own).
  const bool on_cuda = be.name() == "cuda";
  rep.cpu_flop_limit_fp64 = 0;
  if (!on_cuda)
    rep.cpu_flop_limit_fp64 = rep.backend == "cpu" && rep.flop_limit_fp64 > 0 ? rep.flop_limit_fp64
                                                                               : CpuBackend(opt.threads).flop_limit(Precision::FP64);
  try {
    rep.bounds_flop_limit_fp64 = on_cuda ? be.flop_limit(Precision::FP64) : rep.cpu_flop_limit_fp64;
  } catch (const Error&) {
    rep.bounds_flop_limit_fp64 = 0;
  }
  auto kr = make_bounds_kernels(on_cuda ? "cuda" : "cpu", opt.threads);
  std::unique_ptr<BoundsKernels> oracle;
  if (on_cuda) oracle = make_bounds_kernels("cpu", opt.threads);
  rep.bounds_backend = kr->name();
  rep.bounds_device = kr->device_name();
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = opt.T;
  sp.c0 = kBenchC0;
  sp.c1 = kBenchC1;
  const Schedule s = make_schedule(sp);
  for (int d : opt.d)
    for (int K : opt.K) {
      const Mixture m = bench_model(d, K, opt.seed);
      for (const SamplerKind smp : {SamplerKind::DDPM, SamplerKind::DDIM}) {
        BoundsBenchResult r;
        r.kind = smp == SamplerKind::DDPM ? "path (ddpm)" : "exact (ddim)";
        r.d = d;
        r.K = K;
        SampleOptions o;
        o.sampler = smp;
        o.seed = opt.seed;
        BoundsOptions bo;
        try {
          // 1. kernels other than the oracle: their per-particle sums against the CPU's, before any timing.
          if (oracle) {
            const uint64_t n = smp == SamplerKind::DDPM ? kBoundsCheckOuter : kBoundsCheckParticles;
            r.check_rows = smp == SamplerKind::DDPM ? n * static_cast<uint64_t>(opt.bounds_M) : n;
            r.check_tolerance = kBoundsCheckTol;
            r.check_max_abs_diff = max_rel_diff(bounds_sums(m, s, o, n, opt.bounds_M, *oracle),
                                                bounds_sums(m, s, o, n, opt.bounds_M, *kr));
            if (!(r.check_max_abs_diff <= r.check_tolerance))
              throw NumericalError("check: max |sum - sum_cpu| / max(1, |sum_cpu|) = " +
                                   std::to_string(r.check_max_abs_diff) + " over " + std::to_string(n) +
                                   (smp == SamplerKind::DDPM ? " outer draws" : " particles") + " exceeds " +
                                   std::to_string(r.check_tolerance));
          }
          // 2. the timed run.
          if (smp == SamplerKind::DDPM) {
            bo.n = std::max<uint64_t>(2, opt.bounds_outer);
            bo.M = opt.bounds_M;
            const PathBound pb = path_bound(m, s, o, bo, *kr);
            r.outer = pb.n;
            r.M = pb.M;
            r.rows = pb.n * static_cast<uint64_t>(pb.M);
            r.steps = pb.steps;
            r.seconds = pb.seconds;
            r.rate = pb.rate();
          } else {
            bo.n = std::max<uint64_t>(2, opt.bounds_outer * static_cast<uint64_t>(opt.bounds_M));
            const ExactDensity ex = exact_density(m, s, o, bo, *kr);
            r.rows = ex.n;
            r.steps = ex.steps;
            r.seconds = ex.seconds;
            r.rate = ex.rate();
          }
          r.gflop_per_s = r.rate * bench_flop_per_elt_step(K) / 1e9;
          r.pct_flop_limit =
              rep.bounds_flop_limit_fp64 > 0 ? 100.0 * r.gflop_per_s * 1e9 / rep.bounds_flop_limit_fp64 : NAN;
          r.ok = true;
        } catch (const ResourceError& e) {
          r.failure = std::string("resources: ") + e.what();
        } catch (const NumericalError& e) {
          r.failure = e.what();
        }
        rep.bounds.push_back(r);
      }
    }
}
}  // namespace

std::string BenchReport::bounds_table() const {
  if (bounds.empty()) return "";
  std::string out = "bounds (bounds.hpp; " + bounds_backend + " kernels (" + bounds_device + "), fp64, " +
                    std::to_string(steps) +
                    " steps of a stop-1 lcw run): rows = outer draws x M (path) or particles (exact); rate = rows "
                    "x steps x d per second; GFLOP/s counts 4K FLOP per elt-step; %flop of the " + bounds_backend +
                    " fp64 limit" + (bounds_backend == "cpu" ? "" : "; checked against the cpu kernels first") + "\n";
  char buf[256];
  std::snprintf(buf, sizeof buf, "%-13s %6s %6s %10s %6s %10s %12s %9s %6s", "kind", "d", "K", "rows", "M",
                "seconds", "rate", "GFLOP/s", "%flop");
  out += buf;
  for (const BoundsBenchResult& r : bounds) {
    if (!r.ok) {
      std::snprintf(buf, sizeof buf, "\n%-13s %6d %6d  FAILED: %s", r.kind.c_str(), r.d, r.K, r.failure.c_str());
    } else {
      std::snprintf(buf, sizeof buf, "\n%-13s %6d %6d %10llu %6s %10.4g %12.4g %9.4g %6.1f", r.kind.c_str(), r.d, r.K,
                    static_cast<unsigned long long>(r.rows), r.M > 0 ? std::to_string(r.M).c_str() : "-", r.seconds,
                    r.rate, r.gflop_per_s, r.pct_flop_limit);
    }
    out += buf;
  }
  return out;
}

std::string BenchReport::table_header() {
  char buf[256];
  std::snprintf(buf, sizeof buf, "%10s %6s %6s %5s %-9s %-10s %9s %10s %12s %8s %6s %9s %6s %12s %6s %6s", "n", "d",
                "K", "prec", "path", "taken", "check", "median_s", "elt-steps/s", "GB/s", "%mem", "GFLOP/s", "%flop",
                "roofline", "%roof", "%steal");
  return buf;
}

std::string BenchReport::table_row(const BenchResult& r) const {
  char buf[512];
  const BenchConfig& c = r.config;
  if (!r.ok) {
    std::snprintf(buf, sizeof buf, "%10llu %6d %6d %5s %-9s %-10s %9s  FAILED (not timed): %s",
                  static_cast<unsigned long long>(c.n), c.d, c.K, to_string(c.precision), c.path.c_str(),
                  r.path_taken.c_str(), r.check_rows ? std::to_string(r.check_max_abs_diff).substr(0, 9).c_str() : "-",
                  r.failure.c_str());
    return buf;
  }
  std::snprintf(buf, sizeof buf,
                "%10llu %6d %6d %5s %-9s %-10s %9.1e %10.4g %12.4g %8.3g %6s %9.4g %6s %12.4g %6s %6s",
                static_cast<unsigned long long>(c.n), c.d, c.K, to_string(c.precision), c.path.c_str(),
                r.path_taken.c_str(), r.check_max_abs_diff, r.seconds_median, r.elt_steps_per_s, r.gb_per_s,
                percent(r.pct_memory_limit).c_str(), r.gflop_per_s, percent(r.pct_flop_limit).c_str(),
                r.roofline_elt_steps_per_s, percent(r.pct_roofline).c_str(), percent(r.pct_steal).c_str());
  return buf;
}

std::string BenchReport::percent(double x) {
  if (!std::isfinite(x)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", x);
  return b;
}

std::string BenchReport::to_json() const {
  using nlohmann::json;
  json j;
  j["tool"] = "gmmdiff bench";
  j["version"] = version;
  j["date"] = date;
  j["host"] = host;
  j["backend"] = backend;
  j["device"] = device;
  j["cpu_model"] = cpu_model;
  j["threads"] = threads;
  j["model"] = {{"preset", "random-sphere"}, {"radius", kBenchRadius}, {"sd", 1.0}, {"weights", "uniform"}};
  j["schedule"] = {{"name", "lcw"}, {"c0", kBenchC0}, {"c1", kBenchC1}, {"T", T}};
  j["sampler"] = "ddpm/beta, stop 1";
  j["steps_per_pass"] = steps;
  j["identity_steps_per_pass"] = identity_steps;
  j["repeats"] = repeats;
  j["warmup"] = warmup;
  j["conventions"] = {
      {"elt_steps", "n * d * steps_per_pass per pass; the figure is the median pass"},
      {"bytes_per_elt_step", {{"fp32", 8}, {"fp64", 16}}},
      {"flop_per_elt_step", "4K (the logits' and the score's products with the K means)"},
      {"memory_limit", "copy_bandwidth / bytes_per_elt_step"},
      {"flop_limit", "FMA peak of the widest vector unit (CPU: a microbenchmark on all threads)"},
      {"roofline", "1 / max(bytes_per_elt_step / copy_bandwidth, 4K / flop_limit + normal_seconds + (K/d) weight_seconds)"},
      {"identity_steps", "steps with 1 - alpha_t = 0, skipped and not counted"},
      {"oracle", "cpu backend, products path, fp64, same model, seed and steps"}};
  j["copy_bandwidth_bytes_per_s"] = num_or_null(copy_bandwidth, copy_bandwidth > 0);
  j["memory_limit_elt_steps_per_s"] = {
      {"fp32", num_or_null(memory_limit_elt_steps(Precision::FP32), copy_bandwidth > 0)},
      {"fp64", num_or_null(memory_limit_elt_steps(Precision::FP64), copy_bandwidth > 0)}};
  j["flop_limit_flop_per_s"] = {{"fp32", num_or_null(flop_limit_fp32, flop_limit_fp32 > 0)},
                                {"fp64", num_or_null(flop_limit_fp64, flop_limit_fp64 > 0)}};
  j["bounds"] = json::array();
  for (const BoundsBenchResult& r : bounds)
    j["bounds"].push_back({{"kind", r.kind},
                           {"d", r.d},
                           {"K", r.K},
                           {"rows", r.rows},
                           {"outer", r.outer},
                           {"M", r.M},
                           {"steps", r.steps},
                           {"status", r.ok ? "ok" : "FAILED"},
                           {"failure", r.failure},
                           {"seconds", num_or_null(r.seconds, r.ok)},
                           {"rate", num_or_null(r.rate, r.ok)},
                           {"rate_unit", "rows x steps x d per second (path: outer draws x M x steps x d)"},
                           {"gflop_per_s", num_or_null(r.gflop_per_s, r.ok)},
                           {"pct_flop_limit", num_or_null(r.pct_flop_limit, r.ok)},
                           {"check", {{"rows", r.check_rows},
                                      {"max_abs_diff", num_or_null(r.check_max_abs_diff, r.check_rows > 0)},
                                      {"tolerance", num_or_null(r.check_tolerance, r.check_rows > 0)}}}});
  j["cpu_flop_limit_fp64"] = num_or_null(cpu_flop_limit_fp64, cpu_flop_limit_fp64 > 0);
  j["flop_unit"] = flop_unit;
  j["limits_pct_steal"] = num_or_null(limits_pct_steal, true);
  j["limit_measurements"] = {{"fp32", limit_measurements_fp32}, {"fp64", limit_measurements_fp64}};
  j["normal_seconds"] = {{"fp32", num_or_null(normal_seconds_fp32, normal_seconds_fp32 > 0)},
                         {"fp64", num_or_null(normal_seconds_fp64, normal_seconds_fp64 > 0)}};
  j["weight_seconds"] = {{"fp32", num_or_null(weight_seconds_fp32, weight_seconds_fp32 > 0)},
                         {"fp64", num_or_null(weight_seconds_fp64, weight_seconds_fp64 > 0)}};
  j["bounds_backend"] = bounds_backend.empty() ? json() : json(bounds_backend);
  j["bounds_device"] = bounds_device.empty() ? json() : json(bounds_device);
  j["bounds_flop_limit_fp64"] = num_or_null(bounds_flop_limit_fp64, bounds_flop_limit_fp64 > 0);
  j["results"] = json::array();
  for (const BenchResult& r : results) {
    json x;
    x["n"] = r.config.n;
    x["d"] = r.config.d;
    x["K"] = r.config.K;
    x["precision"] = to_string(r.config.precision);
    x["path"] = r.config.path;
    x["path_taken"] = r.path_taken;
    x["status"] = r.ok ? "ok" : "FAILED";
    x["failure"] = r.failure;
    x["check"] = {{"rows", r.check_rows},
                  {"max_abs_diff", num_or_null(r.check_max_abs_diff, r.check_rows > 0)},
                  {"tolerance", r.check_tolerance}};
    x["steps_per_pass"] = r.steps;
    x["seconds"] = r.seconds;
    x["seconds_median"] = num_or_null(r.seconds_median, r.ok);
    x["elt_steps_per_s"] = num_or_null(r.elt_steps_per_s, r.ok);
    x["gb_per_s"] = num_or_null(r.gb_per_s, r.ok);
    x["gflop_per_s"] = num_or_null(r.gflop_per_s, r.ok);
    x["pct_memory_limit"] = num_or_null(r.pct_memory_limit, r.ok);
    x["pct_flop_limit"] = num_or_null(r.pct_flop_limit, r.ok);
    x["identity_steps"] = r.identity_steps;
    x["roofline_elt_steps_per_s"] = num_or_null(r.roofline_elt_steps_per_s, r.ok && r.roofline_elt_steps_per_s > 0);
    x["pct_roofline"] = num_or_null(r.pct_roofline, r.ok);
    x["pct_steal"] = num_or_null(r.pct_steal, r.ok);
    j["results"].push_back(x);
  }
  return j.dump(1) + "\n";
}

}  // namespace gmmdiff
