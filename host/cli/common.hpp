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
  /// The validated mixture (throws gmmdiff::Error on bad input, and on an option that does not
  /// apply: --d, --K, --radius, --sd, --weights or --model-seed with --model, --model-seed with a
  /// preset other than random-sphere). Random-sphere means come from --model-seed when given, else
  /// from default_seed (the run's --seed). files_read, when set, receives the files read.
  Mixture build(uint64_t default_seed = 0, std::vector<std::string>* files_read = nullptr) const;
  /// For a command that adds the model options itself (exact: --d a list): build() then looks
  /// them up in app to refuse those that do not apply.
  void bind(CLI::App& app) { app_ = &app; }
  bool model_seed_set = false;

 private:
  CLI::App* app_ = nullptr;  ///< where add() put the options (they are looked up by name when built)
};

/// --T --schedule --c0 --c1 --schedule-file --schedule-kind.
struct ScheduleArgs {
  ScheduleParams p;
  void add(CLI::App& app);
  /// The schedule; an option the schedule does not use is refused (--T with --schedule file, which
  /// fixes T; --c0 and --c1 with linear, cosine or a file; --schedule-file and --schedule-kind
  /// without --schedule file), as a sweep refuses an axis that applies to no run.
  Schedule build() const;

 private:
  CLI::App* app_ = nullptr;  ///< where add() put the options (a command may replace one, e.g. --T)
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
  /// Parses the strings and reads --error-factors (throws gmmdiff::Error); refuses what does not
  /// apply: --eps, --eps-samples, --error-profile, --error-factors and --bias-direction without a
  /// score error, --bias-direction with another kind than bias, --variance with a sampler other
  /// than ddpm, --eta with a sampler other than ddim-song. files_read, when set, receives the
  /// files read (the --error-factors file).
  SampleOptions build(std::vector<std::string>* files_read = nullptr) const;

 private:
  CLI::App* app_ = nullptr;
};

/// Whether option `name` of app was given on the command line (false for a null app or no such option).
bool given(const CLI::App* app, const std::string& name);

/// Refuses the score error's options that do not apply to kind: --error-profile, --error-factors
/// and --bias-direction without a score error, --bias-direction with a kind other than bias.
void check_score_error_options(const CLI::App* app, ScoreErrorKind kind);

/// Parses a comma-separated list of integers, e.g. "100,50,10" (each must fit in an int).
std::vector<int> parse_int_list(const std::string& s, const char* what);

/// Checks, before any work, that an output file can be created at path: a non-empty name, not an
/// existing directory or non-regular file (a device, a FIFO), in a directory that exists, and none
/// of the run's inputs (it would replace what the run reads). Throws gmmdiff::Error naming `what`
/// (e.g. "--out") otherwise.
void check_output_file(const std::string& path, const char* what, const std::vector<std::string>& inputs = {});

/// Adds to every option of app and its subcommands that takes an unsigned integer a check that
/// refuses a negative value ("--n: -5 is negative"): CLI11 would read it modulo 2^64.
void refuse_negative_unsigned(CLI::App& app);

}  // namespace gmmdiff::cli
