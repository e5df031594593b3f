// gmmdiff CLI: options shared by several subcommands (model, schedule, sampler).
#pragma once
#include <CLI/CLI.hpp>

#include <string>
#include <vector>

#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"

namespace gmmdiff::cli {

/// --model FILE | --preset NAME with --d --K --radius --sd --weights --model-seed, --normalize-weights.
/// The statistics `gmmdiff tv` and `gmmdiff bracket` use unless --stat says otherwise (docs/tv.md):
/// the library's default (TvOptions, which sweeps keep so that their rows do not change) plus the
/// meansperp pair and the log-density.
constexpr const char* kCliStats = "means,meansperp,random:8,radial,logp";

struct ModelArgs {
  std::string model_file;
  std::string preset;
  int d = 2, K = 0;
  double radius = 2.0;
  std::vector<double> sd;
  std::vector<double> weights;
  uint64_t model_seed = 0;
  bool normalize_weights = false;
  void add(CLI::App& app, bool required = true);
  /// The validated mixture (throws gmmdiff::Error on bad input). Random-sphere means come from
  /// --model-seed when given, else from default_seed (the run's --seed).
  Mixture build(uint64_t default_seed = 0) const;
  bool model_seed_set = false;
};

/// --T --schedule --c0 --c1 --schedule-file --schedule-kind.
struct ScheduleArgs {
  ScheduleParams p;
  void add(CLI::App& app);
  Schedule build() const { return make_schedule(p); }
};

/// --n --sampler --eta --variance --stop --seed --precision --chunk --score-error --eps --error-profile
/// --error-factors --bias-direction --eps-samples --backend --threads.
struct SamplerArgs {
  std::string sampler = "ddpm", variance = "beta", precision = "fp32", score_error = "none";
  std::string backend = "auto";
  std::string error_profile = "uniform", error_factors, bias_direction = "random";
  int threads = 0;
  SampleOptions o;
  void add(CLI::App& app);
  SampleOptions build() const;  ///< parses the strings (throws gmmdiff::Error)
};

/// Parses a comma-separated list of integers, e.g. "100,50,10" (each must fit in an int).
std::vector<int> parse_int_list(const std::string& s, const char* what);

/// Checks, before any work, that an output file can be created at path: a non-empty name, not an
/// existing directory or non-regular file (a device, a FIFO), in a directory that exists.
/// Throws gmmdiff::Error naming `what` (e.g. "--out") otherwise.
void check_output_file(const std::string& path, const char* what);

}  // namespace gmmdiff::cli
