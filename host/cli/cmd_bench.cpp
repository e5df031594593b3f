// gmmdiff bench: throughput over a grid of n, d, K, precision and step path, each configuration
// checked against the CPU oracle before it is timed; a table on stdout (one row per
// configuration as it finishes) and, with --json, the whole report written atomically.
// docs/bench.md says how to run and read it.
#include <cstdio>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <sstream>

#include "io/atomic_file.hpp"
#include "cli/command.hpp"
#include "cli/common.hpp"
#include "gmmdiff/bench.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff::cli {
namespace {

struct BenchState {
  BenchOptions o;
  std::string n = "100000", d = "64", K = "8,64", precision = "fp32", path = "auto";
  std::string json;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ','))
    if (!tok.empty()) out.push_back(tok);
  return out;
}

/// Positive integers, also written as 1e5 (exact integers only).
std::vector<uint64_t> parse_counts(const std::string& s, const char* what) {
  std::vector<uint64_t> out;
  for (const std::string& tok : split(s)) {
    char* end = nullptr;
    const double v = std::strtod(tok.c_str(), &end);
    GMMDIFF_EXPECTS(end && *end == '\0' && std::isfinite(v) && v >= 1 && v == std::floor(v) && v < 9.0e15, what,
                    ": '", tok, "' is not a positive integer (e.g. 100000 or 1e5)");
    out.push_back(static_cast<uint64_t>(v));
  }
  GMMDIFF_EXPECTS(!out.empty(), what, ": give at least one value");
  return out;
}

std::vector<int> parse_ints(const std::string& s, const char* what) {
  std::vector<int> out;
  for (uint64_t v : parse_counts(s, what)) {
    GMMDIFF_EXPECTS(v <= (uint64_t(1) << 30), what, ": ", v, " is too large (at most 2^30)");
    out.push_back(static_cast<int>(v));
  }
  return out;
}

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<BenchState>();
  sub.add_option("--backend", st->o.backend, "cpu | cuda | auto")->capture_default_str();
  sub.add_option("--threads", st->o.threads, "CPU threads (0: all)");
  sub.add_option("--n", st->n, "Particles, a list: 100000,1e6")->capture_default_str();
  sub.add_option("--d", st->d, "Dimensions, a list")->capture_default_str();
  sub.add_option("--K", st->K, "Components, a list")->capture_default_str();
  sub.add_option("--precision", st->precision, "A list of fp32, fp64")->capture_default_str();
  sub.add_option("--path", st->path, "Step paths, a list of auto, fused, products (cpu also fused-rows, fused-tiles)")->capture_default_str();
  sub.add_option("--T", st->o.T, "Schedule length: a pass times the steps t = T..2 but identity steps (none from T = 48)")->capture_default_str();
  sub.add_option("--repeats", st->o.repeats, "Timed passes (the median is reported)")->capture_default_str();
  sub.add_option("--warmup", st->o.warmup, "Untimed passes before them")->capture_default_str();
  sub.add_option("--seed", st->o.seed, "Seed of the model and the particles")->capture_default_str();
  sub.add_option("--check-rows", st->o.check_rows, "Rows compared with the CPU oracle before timing")
      ->capture_default_str();
  sub.add_option("--bounds-outer", st->o.bounds_outer,
                 "Outer draws of the bounds' throughput rows (path bound; the ddim exact density takes outer x M "
                 "particles); 0: none")
      ->capture_default_str();
  sub.add_option("--bounds-M", st->o.bounds_M, "Continuations per outer draw of the bounds' rows")->capture_default_str();
  sub.add_option("--json", st->json, "Write the report as JSON to this file (atomically)");
  return [st]() {
    BenchOptions o = st->o;
    o.n = parse_counts(st->n, "--n");
    o.d = parse_ints(st->d, "--d");
    o.K = parse_ints(st->K, "--K");
    o.precision.clear();
    for (const std::string& p : split(st->precision)) o.precision.push_back(parse_precision(p));
    o.path = split(st->path);
    // Checked before the copy-bandwidth measurement and the grid, which take seconds to minutes.
    GMMDIFF_EXPECTS(o.T >= 2 && o.T <= kMaxSteps, "bench: --T = ", o.T, " (need 2 <= T <= ", kMaxSteps, ")");
    GMMDIFF_EXPECTS(o.bounds_M >= 1, "bench: --bounds-M = ", o.bounds_M, " (need >= 1)");
    if (!st->json.empty()) check_output_file(st->json, "--json");
    bool header = false;
    auto gflops = [](double flops) { return flops > 0 ? std::to_string(flops / 1e9) : std::string("-"); };
    auto ns = [](double sec) {
      if (!(sec > 0)) return std::string("-");
      char b[32];
      std::snprintf(b, sizeof b, "%.3g ns", sec * 1e9);
      return std::string(b);
    };
    const BenchReport rep = run_bench(o, [&](const BenchReport& r, const BenchResult& res) {
      if (!header) {
        std::cout << "gmmdiff bench: " << r.backend << " (" << r.device << "; " << r.cpu_model << "), " << r.date
                  << "\n"
                  << "  model: random-sphere, radius 2, sd 1, uniform weights; lcw schedule c0 = 2, c1 = 10, T = "
                  << r.T << "; ddpm; " << r.steps << " steps per pass, median of " << r.repeats << " after "
                  << r.warmup << " warm-up\n"
                  << "  GB/s counts 8 bytes per elt-step (fp32), 16 (fp64); GFLOP/s counts exactly 4K FLOP per "
                     "elt-step\n"
                  << "  memory limit: copy bandwidth " << r.copy_bandwidth / 1e9 << " GB/s measured now -> "
                  << r.memory_limit_elt_steps(Precision::FP32) << " elt-steps/s fp32, "
                  << r.memory_limit_elt_steps(Precision::FP64) << " fp64\n"
                  << "  FLOP limit: " << gflops(r.flop_limit_fp32) << " GFLOP/s fp32, " << gflops(r.flop_limit_fp64)
                  << " fp64 (" << (r.flop_unit.empty() ? "the device's peak" : r.flop_unit) << ", measured now)\n"
                  << "  noise: " << ns(r.normal_seconds_fp32) << " fp32, " << ns(r.normal_seconds_fp64)
                  << " fp64 per normal; softmax: " << ns(r.weight_seconds_fp32) << " fp32, "
                  << ns(r.weight_seconds_fp64) << " fp64 per posterior weight (whole backend, measured now)\n"
                  << "  the FLOP limit, noise and softmax: the best of a measurement before the first row and one "
                     "after each row's timed passes (so far: the first row's); each row's roofline uses the best "
                     "up to its own\n"
                  << "  roofline: 1 / max(bytes / bandwidth, 4K / FLOP limit + 1 normal + K/d weights) per "
                     "elt-step; identity steps (1 - alpha_t = 0) are skipped and not counted\n"
                  << "  %steal: of all CPUs' time during the timed passes, what the hypervisor took (/proc/stat); "
                     "above ~1% a figure shared its cores (" << BenchReport::percent(r.limits_pct_steal)
                  << "% while the limits were measured)\n"
                  << "  check: max |y - y_oracle| over " << o.check_rows
                  << " rows against the cpu products path in fp64 (a FAILED row is not timed)\n"
                  << BenchReport::table_header() << "\n";
        header = true;
      }
      std::cout << r.table_row(res) << std::endl;
    });
    if (!rep.results.empty())
      std::cout << "  limits after the last row (best of " << rep.limit_measurements_fp32 << " fp32, "
                << rep.limit_measurements_fp64 << " fp64 measurements): FLOP "
                << gflops(rep.flop_limit_fp32) << " GFLOP/s fp32, " << gflops(rep.flop_limit_fp64) << " fp64; noise "
                << ns(rep.normal_seconds_fp32) << " fp32, " << ns(rep.normal_seconds_fp64) << " fp64; softmax "
                << ns(rep.weight_seconds_fp32) << " fp32, " << ns(rep.weight_seconds_fp64) << " fp64\n";
    if (!rep.bounds.empty()) std::cout << rep.bounds_table() << std::endl;
    if (!st->json.empty()) write_file_atomic(st->json, rep.to_json());
    int failed = 0, resources = 0;
    std::string first;
    for (const BenchResult& r : rep.results) {
      if (r.ok) continue;
      ++failed;
      resources += r.failure.rfind("resources", 0) == 0 ? 1 : 0;
      if (first.empty()) first = r.failure;
    }
    if (failed > 0) {
      // Configurations that do not fit are a resource limit (exit 3, as elsewhere); a failed check
      // or non-finite values are an internal error (exit 1).
      std::cerr << "gmmdiff: error: " << failed << " of " << rep.results.size()
                << " configurations FAILED, the first: " << first << " (see the table)\n";
      return static_cast<int>(resources == failed ? kResource : kInternal);
    }
    return 0;
  };
}

const Registrar reg("bench", "Throughput (elt-steps/s, GB/s, GFLOP/s) against the memory and FLOP limits", 60, setup);

}  // namespace
}  // namespace gmmdiff::cli
