// gmmdiff: the throughput benchmark behind `gmmdiff bench` (docs/bench.md).
//
// A grid over n, d, K, precision and step path. Each configuration is first checked against the
// CPU oracle (the CPU backend's BLAS "products" path in fp64, same model, seed and steps, on a few
// hundred rows); a configuration that fails the check is reported FAILED and is not timed. Then
// the steps are timed with Backend::time_seconds (events on the GPU), after warm-up, and the
// median of the repeats is reported with the limits beside it:
//   elt-steps/s   particle-dimension-steps per second, n d steps / seconds, counting computed steps
//                 only (identity steps, 1 - alpha_t = 0, are skipped as the sampler skips them;
//                 the default T has none);
//   GB/s          elt-steps/s x 8 bytes (fp32) or 16 (fp64): a fused step reads and writes each
//                 coordinate once (DESIGN.md, Performance vocabulary), whatever the path moves;
//   GFLOP/s       elt-steps/s x 4K FLOP: the two products with the K means (logits and score),
//                 counted as exactly 4K, whatever else a step does;
//   % of memory   elt-steps/s / (copy bandwidth / bytes per elt-step), the copy bandwidth
//                 measured once per run on the same backend;
//   % of FLOP     GFLOP/s / the backend's FLOP limit (Backend::flop_limit: on the CPU the FMA peak
//                 of its widest vector unit, measured by a microbenchmark, not a BLAS call);
//   % of roofline elt-steps/s / the configuration's roofline (bench_roofline_elt_steps): the time
//                 of an elt-step's 4K FLOP at the FMA peak, plus its normal (Philox + Box-Muller)
//                 and its K/d posterior weights (softmax) at their measured costs
//                 (Backend::normal_seconds, weight_seconds), or the memory time if larger.
#pragma once
#include <cmath>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "gmmdiff/types.hpp"

namespace gmmdiff {

/// The model and schedule every configuration uses (the peers in bench/peers/ use the same):
/// random-sphere means of radius 2, sd 1, uniform weights; the lcw schedule, c0 = 2, c1 = 10;
/// DDPM with sigma_t^2 = 1 - alpha_t; stop 1, so a pass is the T - 1 steps t = T..2.
constexpr double kBenchRadius = 2.0;
constexpr double kBenchC0 = 2.0, kBenchC1 = 10.0;

/// The correctness check accepts max |y_test - y_oracle| <= tol * sqrt(d) (values of order 1-10).
/// fp32 against the fp64 oracle differs by rounding that grows with d (the logits' sums, and the
/// largest of more coordinates): measured 1.4e-5 at d = 2, 3.4e-4 at d = 64, 2.2e-3 at d = 1024
/// (T = 100), about 1e-3 sqrt(d) / 20; a wrong score or noise term is off by 0.01 to 1.
constexpr double kBenchCheckTolF32 = 1e-3;
constexpr double kBenchCheckTolF64 = 1e-9;
inline double bench_check_tolerance(Precision p, int d) {
  return (p == Precision::FP32 ? kBenchCheckTolF32 : kBenchCheckTolF64) * std::sqrt(double(d > 1 ? d : 1));
}

/// Bytes and FLOP one elt-step is charged (the conventions above).
inline double bench_bytes_per_elt_step(Precision p) { return p == Precision::FP32 ? 8.0 : 16.0; }
inline double bench_flop_per_elt_step(int K) { return 4.0 * K; }

/// The roofline of a configuration in elt-steps/s: 1 / max(bytes / bandwidth, 4K / flop_limit +
/// normals x normal_seconds + (K / d) x weight_seconds), normals = the normals one elt-step draws
/// (1 for DDPM). A limit given as 0 (unknown) is left out; 0 when neither FLOP nor memory is known.
inline double bench_roofline_elt_steps(int d, int K, Precision p, double copy_bandwidth, double flop_limit,
                                       double normal_seconds, double weight_seconds, double normals = 1.0) {
  const double mem = copy_bandwidth > 0 ? bench_bytes_per_elt_step(p) / copy_bandwidth : 0.0;
  double compute = flop_limit > 0 ? bench_flop_per_elt_step(K) / flop_limit : 0.0;
  if (compute > 0) compute += normals * normal_seconds + double(K) / double(d) * weight_seconds;
  const double t = mem > compute ? mem : compute;
  return t > 0 ? 1.0 / t : 0.0;
}

/// One point of the grid.
struct BenchConfig {
  uint64_t n = 0;
  int d = 0, K = 0;
  Precision precision = Precision::FP32;
  std::string path = "auto";  ///< requested: auto | products | fused (Backend::set_step_path)
};

struct BenchOptions {
  std::string backend = "auto";
  int threads = 0;                          ///< CPU threads (0: all)
  std::vector<uint64_t> n = {100000};
  std::vector<int> d = {64};
  std::vector<int> K = {8, 64};
  std::vector<Precision> precision = {Precision::FP32};
  std::vector<std::string> path = {"auto"};
  int T = 64;          ///< schedule length: a pass times its T - 1 steps (lcw: none is an identity step from T = 48)
  int repeats = 5;     ///< timed passes (1..1000); the median is reported
  int warmup = 1;      ///< untimed passes before them (0..1000)
  uint64_t seed = 0;
  uint64_t check_rows = 512;               ///< rows of the correctness check (at most n)
  std::size_t copy_bytes = std::size_t(256) << 20;  ///< buffer size of the copy-bandwidth measurement
  /// The bounds' throughput (bounds.hpp, fp64, on the bench's backend: the CPU kernels, or the CUDA
  /// kernels for a cuda backend, checked against the CPU's first), for each d and K of the grid: the ddpm
  /// path bound over bounds_outer outer draws x bounds_M continuations, and the ddim exact density
  /// over as many particles, each through the T - 1 steps of a stop-1 run. 0: not measured.
  uint64_t bounds_outer = 256;
  int bounds_M = 32;
};

/// One bounds measurement.
struct BoundsBenchResult {
  std::string kind;          ///< "path (ddpm)" or "exact (ddim)"
  int d = 0, K = 0;
  uint64_t rows = 0;         ///< outer draws x M (path) or particles (exact)
  uint64_t outer = 0;
  int M = 0;
  int steps = 0;
  double seconds = 0;
  double rate = 0;           ///< rows x steps x d per second (path: outer x M x steps x d per second)
  double gflop_per_s = 0;    ///< rate x 4K FLOP (the logits' and the score's products, as for the sampler)
  double pct_flop_limit = 0; ///< of the fp64 FLOP limit of the backend the bounds ran on
  /// Kernels other than the CPU's (the oracle): the per-particle sums (log R_m, log p - log q) of
  /// check_rows outer draws or particles against the CPU kernels', before the timing; 0 rows: none.
  uint64_t check_rows = 0;
  double check_max_abs_diff = 0, check_tolerance = 0;
  bool ok = false;
  std::string failure;
};

struct BenchResult {
  BenchConfig config;
  std::string path_taken;   ///< Backend::step_path() after the steps, e.g. "cpu-fused"
  bool ok = false;          ///< passed the check and was timed
  std::string failure;      ///< why not (check, non-finite values, resources)
  uint64_t check_rows = 0;
  double check_max_abs_diff = 0, check_tolerance = 0;
  int steps = 0;            ///< computed steps per pass (T - 1 less the identity steps)
  int identity_steps = 0;   ///< identity steps of the pass, skipped and not counted
  std::vector<double> seconds;  ///< each timed pass (empty when not timed)
  double seconds_median = 0;
  double elt_steps_per_s = 0, gb_per_s = 0, gflop_per_s = 0;
  double pct_memory_limit = 0, pct_flop_limit = 0;
  double roofline_elt_steps_per_s = 0;  ///< bench_roofline_elt_steps (0: a limit is unknown)
  double pct_roofline = 0;
  /// Of all CPUs' time during the timed passes, the percentage a hypervisor took (steal, from
  /// /proc/stat): above about 1% the passes shared the machine's cores. NaN: unknown.
  double pct_steal = NAN;
};

struct BenchReport {
  std::string version, date, host, backend, device, cpu_model;
  int threads = 0;
  int T = 0, steps = 0, repeats = 0, warmup = 0;  ///< steps: computed steps per pass
  int identity_steps = 0;  ///< identity steps per pass (skipped, not counted)
  double copy_bandwidth = 0;               ///< bytes/s, read + write counted
  double flop_limit_fp32 = 0, flop_limit_fp64 = 0;  ///< FLOP/s (0: precision not in the grid)
  std::string flop_unit;                   ///< what the FLOP limit is (Backend::flop_unit)
  double normal_seconds_fp32 = 0, normal_seconds_fp64 = 0;  ///< per normal, whole backend (0: unknown)
  double weight_seconds_fp32 = 0, weight_seconds_fp64 = 0;  ///< per posterior weight, whole backend
  double limits_pct_steal = NAN;           ///< steal (as BenchResult::pct_steal) while the limits were measured
  /// The FLOP limit, noise and softmax figures above are the best of this many measurements of
  /// each precision: one before the first configuration and one after each configuration's timed
  /// passes (each row's roofline uses the best up to its own).
  int limit_measurements_fp32 = 0, limit_measurements_fp64 = 0;
  std::vector<BenchResult> results;
  std::vector<BoundsBenchResult> bounds;   ///< empty when BenchOptions::bounds_outer is 0
  double cpu_flop_limit_fp64 = 0;          ///< the CPU's fp64 FLOP limit (bounds rows on the cpu kernels)
  std::string bounds_backend, bounds_device;  ///< where the bounds rows ran: "cpu" or "cuda", and on what
  double bounds_flop_limit_fp64 = 0;       ///< the fp64 FLOP limit the bounds rows are compared with

  double memory_limit_elt_steps(Precision p) const { return copy_bandwidth / bench_bytes_per_elt_step(p); }
  /// The whole report as JSON (field names in docs/bench.md).
  std::string to_json() const;
  /// The header of the table and one row per result (also what `gmmdiff bench` prints).
  static std::string table_header();
  std::string table_row(const BenchResult& r) const;
  /// The bounds' rows (empty when there are none), with their header.
  std::string bounds_table() const;
  /// A percentage as the table prints it: one decimal, or "-" when unknown (not finite).
  static std::string percent(double x);
};

/// Runs the grid (n x d x K x precision x path, in that nesting). on_result, when set, is called
/// after each configuration (the CLI prints its row). Throws gmmdiff::Error for bad options
/// (empty lists, T < 2, a path the backend does not have).
BenchReport run_bench(const BenchOptions& opt, const std::function<void(const BenchReport&, const BenchResult&)>& on_result = {});

}  // namespace gmmdiff
