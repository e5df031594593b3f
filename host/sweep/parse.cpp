// gmmdiff (sweep): parse_sweep and load_sweep_file (include/gmmdiff/sweep.hpp, docs/sweeps.md):
// the JSON, the header keys, the grids, the expansion of each grid into runs, and the checks that
// every target, schedule and TV plan of the sweep can be built, all before anything is written.
#include <filesystem>
#include <map>
#include <set>

#include "gmmdiff/bounds.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/sweep.hpp"
#include "gmmdiff/tv.hpp"
#include "io/input.hpp"
#include "io/text.hpp"
#include "sweep/axes.hpp"
#include "sweep/expand.hpp"
#include "sweep/parse_context.hpp"
#include "sweep/run_params.hpp"

namespace gmmdiff {
namespace {

using namespace sweep_parse;
namespace fs = std::filesystem;

/// Keys only the top level holds; every other key is an axis, which a grid may override.
const std::vector<std::string> kTopOnly = {"name", "description", "grids", "chunk"};
const std::vector<std::string> kAxes = {
    "family",   "d", "K",    "radius",    "sd", "model_seed", "score_error", "eps",         "sampler", "variance",
    "schedule", "T", "stop", "precision", "n",  "seeds",      "backend",     "eps_samples", "tv",
    "bounds",   "eta",           "error_profile",  "quantities",  "bias_direction"};

/// The keys a sweep file may hold at the top level.
const std::vector<std::string>& top_level_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = kTopOnly;
    k.insert(k.end(), kAxes.begin(), kAxes.end());
    return k;
  }();
  return keys;
}

/// The text as a JSON object with known keys only.
json read_sweep_json(const ParseContext& c, const std::string& text) {
  const json j = parse_json(text, c.origin);
  if (!j.is_object()) c.fail("", "a sweep is a JSON object of axes (see docs/sweeps.md)");
  check_keys(c, j, top_level_keys(), "the sweep");
  return j;
}

/// name (default: the origin's stem, or "sweep"), description, chunk and the normalised source.
void read_header(const ParseContext& c, const json& j, SweepSpec& spec) {
  spec.source = j.dump(2);
  spec.name = j.contains("name") ? as_string(c, j["name"], "name") : fs::path(c.origin).stem().string();
  if (spec.name.empty()) spec.name = "sweep";
  if (j.contains("description")) spec.description = as_string(c, j["description"], "description");
  if (j.contains("chunk")) spec.chunk = static_cast<std::size_t>(as_int(c, j["chunk"], "chunk", 0, int64_t(1) << 40));
}

/// The grids as axis objects: each entry of "grids" merged over the top-level axes, or the top
/// level alone when there is no "grids".
std::vector<json> grids_of(const ParseContext& c, const json& j) {
  json top = j;
  for (const auto& k : kTopOnly) top.erase(k);
  if (!j.contains("grids")) return {top};
  if (!j["grids"].is_array() || j["grids"].empty())
    c.fail("grids", "expected a non-empty list of objects, each overriding some axes");
  std::vector<json> grids;
  for (std::size_t g = 0; g < j["grids"].size(); ++g) {
    const json& o = j["grids"][g];
    if (!o.is_object()) c.fail("grids", "entry " + std::to_string(g) + " is not an object");
    check_keys(c, o, kAxes, "grids[" + std::to_string(g) + "]");
    json merged = top;
    for (auto it = o.begin(); it != o.end(); ++it) merged[it.key()] = it.value();
    grids.push_back(merged);
  }
  return grids;
}

/// Builds the preset of p once per distinct target (up to K d = 16e6; larger ones are built by
/// the run): what make_preset refuses is an error naming the family here.
void check_target_builds(const ParseContext& c, const RunParams& p, std::map<std::string, double>& norms,
                         std::set<std::string>& errors) {
  const std::string tkey = p.preset + "|" + p.model_hash + "|" + std::to_string(p.d) + "|" + std::to_string(p.K) +
                           "|" + text::num(p.radius) + "|" + text::num(p.sd) + "|" + std::to_string(p.model_seed);
  if (static_cast<double>(p.K) * p.d > 16.0e6) return;
  auto it = norms.find(tkey);
  if (it == norms.end()) {
    double norm = 0;
    try {
      norm = p.model ? p.model->max_mean_norm() : make_preset(preset_params(p)).max_mean_norm();
    } catch (const Error& e) {
      c.fail("family", p.family + " at d = " + std::to_string(p.d) + ", K = " + std::to_string(p.K) + ": " + e.what());
    }
    it = norms.emplace(tkey, norm).first;
  }
  // The score error on this target (e.g. means moved so far that |mu|^2 overflows, at the step
  // where its profile's factor is largest).
  if (!errors.insert(tkey + "|" + to_string(p.score_error) + "|" + text::num(p.eps) + "|" +
                     to_string(p.error_profile) + "|" + p.bias_direction + "|" + std::to_string(p.T) + "|" +
                     std::to_string(p.stop))
           .second)
    return;
  try {
    check_score_error(it->second, score_error_of(p), p.T, p.stop);
  } catch (const Error& e) {
    c.fail("eps", p.family + ": " + e.what());
  }
  // max |mu_k| = 0: every mean is 0, so "the direction of the means" is none.
  if (p.score_error == ScoreErrorKind::Bias && p.bias_direction == "means" && it->second == 0)
    c.fail("bias_direction", p.family + ": \"means\" but every mean is 0, so the means have no direction");
}

/// Builds the schedule of p once per distinct schedule: what make_schedule refuses is an error here.
void check_schedule_builds(const ParseContext& c, const RunParams& p, std::set<std::string>& checked) {
  if (p.schedule_loaded) return;  // a file: built when it was read
  const std::string skey = p.schedule + "|" + text::num(p.c0) + "|" + text::num(p.c1) + "|" + p.schedule_file + "|" +
                           p.schedule_kind + "|" + std::to_string(p.T);
  if (!checked.insert(skey).second) return;
  try {
    (void)make_schedule(schedule_params(p));
  } catch (const Error& e) {
    c.fail("schedule", p.schedule + " at T = " + std::to_string(p.T) + ": " + e.what());
  }
}

/// Build each distinct target and schedule once, so that what make_preset or make_schedule
/// would refuse stops the sweep before anything is written.
void check_runs_build(const ParseContext& c, const std::vector<RunParams>& runs) {
  std::map<std::string, double> targets;
  std::set<std::string> errors, schedules;
  for (const auto& p : runs) {
    check_target_builds(c, p, targets, errors);
    check_schedule_builds(c, p, schedules);
  }
}

/// The TV options (statistics, bins, bootstrap) on the smallest target of the sweep: a plan is
/// cheap there, and what it refuses would otherwise stop the sweep at its first run.
void check_tv_plan(const ParseContext& c, const std::vector<RunParams>& runs) {
  if (runs.empty()) return;
  const RunParams* small = &runs.front();
  for (const auto& p : runs)
    if (static_cast<double>(p.K) * p.d < static_cast<double>(small->K) * small->d) small = &p;
  try {
    const Mixture m = build_target(*small);
    TvPlan plan(m, small->tv, small->n);
  } catch (const Error& e) {
    c.fail("tv", e.what());
  }
}

/// Runs with bounds: the checks `gmmdiff bracket` makes before any work (ddpm: n, M, a step
/// without noise; ddim: no gaussian score error, K <= kMaxFlowK), once per distinct target,
/// schedule and options, so that a refusal stops the sweep before anything is written.
void check_bounds(const ParseContext& c, const std::vector<RunParams>& runs) {
  std::set<std::string> checked;
  for (const auto& p : runs) {
    if (!p.bounds.on) continue;
    RunParams q = p;  // what the check depends on: all but the seed, the sample's n and the TV options
    q.seed = 0;
    q.n = 16;
    q.tv = TvOptions{};
    if (!checked.insert(q.canonical()).second || static_cast<double>(p.K) * p.d > 16.0e6) continue;
    try {
      const Mixture m = build_target(p);
      const Schedule s = build_schedule(p);
      const SampleOptions opt = sample_options_of(p);
      const BoundsOptions bo = bounds_options_of(p);
      // As run_bracket: the stochastic samplers get the path bound, the deterministic ones the flow.
      if (p.sampler == SamplerKind::DDPM || (p.sampler == SamplerKind::DDIMSong && p.eta > 0))
        check_path_options(m, s, opt, bo);
      else check_flow_options(m, s, opt, bo);
    } catch (const Error& e) {
      c.fail("bounds", p.label() + ": " + e.what());
    }
  }
}

}  // namespace

SweepSpec parse_sweep(const std::string& text, const std::string& origin, const std::string& base_dir) {
  const ParseContext c{origin, base_dir};
  const json j = read_sweep_json(c, text);
  SweepSpec spec;
  read_header(c, j, spec);
  std::set<std::string> seen;
  AxisUse use;
  for (const json& grid : grids_of(c, j)) expand_grid(c, read_grid_axes(c, grid), seen, spec.runs, use);
  check_axes_apply(c, use);
  check_runs_build(c, spec.runs);
  check_tv_plan(c, spec.runs);
  check_bounds(c, spec.runs);
  return spec;
}

SweepSpec load_sweep_file(const std::string& path) {
  const std::string text = text::read_text(path, "sweep file");
  fs::path p(path);
  const std::string base = p.has_parent_path() ? p.parent_path().string() : ".";
  return parse_sweep(text, path, base);
}

}  // namespace gmmdiff
