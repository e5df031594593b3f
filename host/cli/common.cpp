// gmmdiff CLI: options shared by the subcommands.
#include "cli/common.hpp"

#include <algorithm>
#include <cerrno>
#include <limits>
#include <sstream>

#include "io/atomic_file.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::cli {

void ModelArgs::add(CLI::App& app, bool required) {
  auto* m = app.add_option("--model", model_file, "Model JSON file (weights, means | means_npy, sd | var_diag)");
  auto* p = app.add_option("--preset", preset, "Built-in family: gaussian, two-point, random-sphere, simplex");
  m->excludes(p);
  app_ = &app;
  app.add_option("--d", d, "Dimension (presets)")->check(CLI::Range(1, 1 << 30));
  app.add_option("--K", K, "Number of components (presets; 0: the family's default)")->check(CLI::Range(0, 1 << 30));
  app.add_option("--radius", radius, "Radius of the means (presets)");
  app.add_option("--sd", sd, "Component sd: one value or K values (presets)")->delimiter(',');
  app.add_option("--weights", weights, "Component weights, K values (presets; default uniform)")->delimiter(',');
  app.add_option("--model-seed", model_seed, "Seed of random-sphere means (default: --seed)")
      ->each([this](const std::string&) { model_seed_set = true; });
  app.add_flag("--normalize-weights", normalize_weights, "Accept weights that do not sum to 1 and rescale them");
  (void)required;
}

Mixture ModelArgs::build(uint64_t default_seed, std::vector<std::string>* files_read) const {
  ModelOptions mo;
  mo.normalize_weights = normalize_weights;
  mo.files_read = files_read;
  if (!model_file.empty()) {
    for (const char* o : {"--d", "--K", "--radius", "--sd", "--weights", "--model-seed"})
      GMMDIFF_EXPECTS(!given(app_, o), o, " does not apply to --model (the model file fixes d, K, the weights, the "
                                          "means and the covariances)");
    return load_model_json(model_file, mo);
  }
  GMMDIFF_EXPECTS(!preset.empty(), "give a target: --model FILE or --preset NAME (gaussian, two-point, "
                                   "random-sphere, simplex)");
  GMMDIFF_EXPECTS(!model_seed_set || preset == "random-sphere", "--model-seed does not apply to --preset ", preset,
                  " (only random-sphere has random means)");
  PresetParams p;
  p.name = preset;
  p.d = d;
  p.K = K;
  p.radius = radius;
  if (!sd.empty()) p.sd = sd;
  p.weights = weights;
  p.seed = model_seed_set ? model_seed : default_seed;
  return make_preset(p, mo);
}

void ScheduleArgs::add(CLI::App& app) {
  app_ = &app;
  app.add_option("--T", p.T, "Number of steps T (>= 1; a schedule file fixes it)")->capture_default_str();
  app.add_option("--schedule", p.name, "lcw (default), li-yan, linear, cosine, file")->capture_default_str();
  app.add_option("--c0", p.c0, "lcw/li-yan: abar_T = T^-c0 (default 2)");
  app.add_option("--c1", p.c1, "lcw/li-yan: step constant (default 10)");
  app.add_option("--schedule-file", p.file, "--schedule file: JSON {\"alpha\"|\"abar\": [...]}, .npy or text");
  app.add_option("--schedule-kind", p.file_kind, "alpha | abar, for .npy/text schedule files");
}

Schedule ScheduleArgs::build() const {
  const auto& names = schedule_names();
  if (std::find(names.begin(), names.end(), p.name) != names.end()) {
    const bool file = p.name == "file", constants = p.name == "lcw" || p.name == "li-yan";
    GMMDIFF_EXPECTS(!(file && given(app_, "--T")), "--T does not apply to --schedule file: the file fixes T (its "
                                                    "number of values); drop --T");
    for (const char* o : {"--c0", "--c1"})
      GMMDIFF_EXPECTS(constants || !given(app_, o), o, " does not apply to --schedule ", p.name,
                      " (only lcw and li-yan have the constants c0 and c1)");
    for (const char* o : {"--schedule-file", "--schedule-kind"})
      GMMDIFF_EXPECTS(file || !given(app_, o), o, " does not apply to --schedule ", p.name,
                      " (add --schedule file to read the schedule from a file)");
  }
  return make_schedule(p);
}

void SamplerArgs::add(CLI::App& app) {
  app.add_option("--n", o.n, "Number of particles")->capture_default_str();
  app.add_option("--sampler", sampler,
                 "ddpm | ddim (the theory's Euler step) | ddim-song (Song et al. 2021, as libraries compute it; "
                 "see --eta)")
      ->capture_default_str();
  app_ = &app;
  app.add_option("--eta", o.eta, "ddim-song: noise fraction eta in [0, 1] (0: deterministic; 1: ddpm's posterior law)")
      ->capture_default_str();
  app.add_option("--variance", variance, "ddpm noise: beta | posterior | inside")->capture_default_str();
  app.add_option("--stop", o.stop, "Output Y_1 (1, Theorem 1) or Y_0 (0)")->capture_default_str();
  app.add_option("--seed", o.seed, "Seed: the particles are a pure function of it")->capture_default_str();
  app.add_option("--precision", precision, "fp32 | fp64")->capture_default_str();
  app.add_option("--chunk", o.chunk, "Particles per chunk (0: as many as memory allows; rounded up to 256)");
  app.add_option("--score-error", score_error, "none | bias | scale | weights | means | gaussian")->capture_default_str();
  app.add_option("--eps", o.score_error.eps, "Score-error size (see docs/cli.md)");
  app.add_option("--error-profile", error_profile,
                 "Where over t the score error sits: uniform | front-loaded | back-loaded | file (--error-factors)")
      ->capture_default_str();
  app.add_option("--error-factors", error_factors,
                 "Text file of T per-step factors f(1..T) of eps (implies --error-profile file)");
  app.add_option("--bias-direction", bias_direction,
                 "The bias error's direction: random | means (principal direction of the means) | v1,v2,...,vd")
      ->capture_default_str();
  app.add_option("--eps-samples", o.eps_samples, "Monte Carlo size per step for the realised eps_score")
      ->capture_default_str();
  app.add_option("--backend", backend, "cpu | cuda | auto")->capture_default_str();
  app.add_option("--threads", threads, "CPU threads (0: all)");
}

SampleOptions SamplerArgs::build(std::vector<std::string>* files_read) const {
  SampleOptions s = o;
  s.sampler = parse_sampler(sampler);
  s.variance = parse_variance(variance);
  s.precision = parse_precision(precision);
  s.score_error.kind = parse_score_error(score_error);
  s.score_error.profile = parse_error_profile(error_profile);
  if (!error_factors.empty()) {
    GMMDIFF_EXPECTS(error_profile == "uniform" || error_profile == "file", "--error-factors goes with --error-profile file, not ",
                    error_profile);
    s.score_error.profile = ErrorProfile::File;
    s.score_error.factors = load_error_factors(error_factors);
    if (files_read) files_read->push_back(error_factors);
  }
  GMMDIFF_EXPECTS(s.score_error.profile != ErrorProfile::File || !error_factors.empty(),
                  "--error-profile file needs --error-factors FILE");
  s.score_error.direction_vector = parse_bias_direction(bias_direction, s.score_error.direction);
  s.threads = threads;
  GMMDIFF_EXPECTS(s.eps_samples >= 1, "--eps-samples = ", s.eps_samples, " (need 1 <= eps-samples <= 16777216)");
  for (const char* o : {"--eps", "--eps-samples"})
    GMMDIFF_EXPECTS(s.score_error.kind != ScoreErrorKind::None || !given(app_, o), o,
                    " does not apply without a score error (add --score-error bias|scale|weights|means|gaussian)");
  check_score_error_options(app_, s.score_error.kind);
  GMMDIFF_EXPECTS(s.sampler == SamplerKind::DDPM || !given(app_, "--variance"), "--variance does not apply to --sampler ",
                  to_string(s.sampler),
                  s.sampler == SamplerKind::DDIM ? " (ddim adds no noise)" : " (its noise is set by --eta)");
  // Also --eta 0, which check_sample_options lets pass: the same message (and Python's) for any eta.
  GMMDIFF_EXPECTS(s.sampler == SamplerKind::DDIMSong || !given(app_, "--eta"), "--eta = ", s.eta,
                  " applies to the sampler ddim-song only (", to_string(s.sampler), " has no eta)");
  return s;
}

bool given(const CLI::App* app, const std::string& name) {
  if (!app) return false;
  const CLI::Option* o = app->get_option_no_throw(name);
  return o != nullptr && o->count() > 0;
}

void check_score_error_options(const CLI::App* app, ScoreErrorKind kind) {
  for (const char* o : {"--error-profile", "--error-factors", "--bias-direction"})
    GMMDIFF_EXPECTS(kind != ScoreErrorKind::None || !given(app, o), o,
                    " does not apply without a score error (add --score-error bias|scale|weights|means|gaussian)");
  GMMDIFF_EXPECTS(kind == ScoreErrorKind::None || kind == ScoreErrorKind::Bias || !given(app, "--bias-direction"),
                  "--bias-direction does not apply to --score-error ", to_string(kind), " (only bias has a direction)");
}

std::vector<int> parse_int_list(const std::string& s, const char* what) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) {
    if (tok.empty()) continue;
    char* end = nullptr;
    errno = 0;
    const long v = std::strtol(tok.c_str(), &end, 10);
    GMMDIFF_EXPECTS(end && *end == '\0', what, ": '", tok, "' is not an integer");
    GMMDIFF_EXPECTS(errno != ERANGE && v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(),
                    what, ": ", tok, " is out of range");
    out.push_back(static_cast<int>(v));
  }
  return out;
}

void check_output_file(const std::string& path, const char* what, const std::vector<std::string>& inputs) {
  check_output_path(path, what);
  check_not_an_input(path, what, inputs);
}

void refuse_negative_unsigned(CLI::App& app) {
  for (CLI::Option* o : app.get_options())
    if (o->get_type_name().rfind("UINT", 0) == 0)
      o->check(CLI::Validator(
          [](std::string& v) -> std::string {
            const auto p = v.find_first_not_of(" \t");
            return p != std::string::npos && v[p] == '-' ? v + " is negative (a count or a seed: 0 or more)" : "";
          },
          "", "NonNegative"));
  for (CLI::App* sub : app.get_subcommands({})) refuse_negative_unsigned(*sub);
}

}  // namespace gmmdiff::cli
