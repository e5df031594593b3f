// gmmdiff (sweep): the axes of one grid of a sweep file (host/sweep/axes.hpp).
#include "sweep/axes.hpp"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"
#include "io/text.hpp"
#include "sweep/run_params.hpp"

namespace gmmdiff::sweep_parse {
namespace {

const std::vector<std::string> kFamilyKeys = {"name", "model", "K", "radius", "full_rank", "label"};
const std::vector<std::string> kScheduleKeys = {"name", "c0", "c1", "file", "kind"};
const std::vector<std::string> kTvKeys = {"stats", "bins", "bootstrap", "reference_n"};
const std::vector<std::string> kBoundsKeys = {"M", "n"};

// ---------------------------------------------------------------- family

/// Loads the model file of f and takes d, K, sd (0 when the components differ), radius and hash from it.
void take_shape_from_model(const ParseContext& c, FamilyEntry& f) {
  auto& cached = c.inputs->models[f.model_file];
  if (!cached) {
    try {
      cached = std::make_shared<const Mixture>(load_model_json(f.model_file));
    } catch (const Error& err) {
      c.inputs->models.erase(f.model_file);
      c.fail("family.model", err.what());
    }
  }
  f.model = cached;
  const Mixture& m = *cached;
  if (!f.K.empty() || !f.radius.empty())
    c.fail("family", "a model file fixes K and the means: \"K\" and \"radius\" do not apply");
  f.model_d = m.d;
  f.model_K = m.K;
  f.model_hash = hash_mixture(m);
  bool same_sd = m.cov == Covariance::Isotropic;
  for (int k = 1; same_sd && k < m.K; ++k) same_sd = m.sd[k] == m.sd[0];
  f.model_sd = same_sd ? m.sd[0] : 0.0;
  f.model_radius = m.max_mean_norm();
  if (f.label.empty()) f.label = "model:" + std::filesystem::path(f.model_file).stem().string();
}

/// {"name": preset, "K": ..., "radius": ..., "full_rank": ..., "label": ...} or {"model": file, ...}.
void read_family_object(const ParseContext& c, const json& e, FamilyEntry& f) {
  check_keys(c, e, kFamilyKeys, "a \"family\" object");
  if (e.contains("name") == e.contains("model"))
    c.fail("family", "an object needs exactly one of \"name\" (a preset) or \"model\" (a model JSON file)");
  if (e.contains("name")) f.preset = as_string(c, e["name"], "family.name");
  if (e.contains("K"))
    for (const json& k : items(c, e["K"], "family.K")) f.K.push_back(as_k(c, k, "family.K"));
  if (e.contains("radius"))
    for (const json& r : items(c, e["radius"], "family.radius")) f.radius.push_back(as_double(c, r, "family.radius"));
  if (e.contains("full_rank")) {
    if (!e["full_rank"].is_boolean()) c.fail("family.full_rank", "expected true or false");
    f.full_rank = e["full_rank"].get<bool>();
  }
  if (e.contains("label")) f.label = as_string(c, e["label"], "family.label");
  if (e.contains("model")) {
    f.model_file = resolve_path(c, as_string(c, e["model"], "family.model"));
    take_shape_from_model(c, f);
  }
}

FamilyEntry read_family(const ParseContext& c, const json& e) {
  FamilyEntry f;
  if (e.is_string()) {
    f.preset = e.get<std::string>();
  } else if (e.is_object()) {
    read_family_object(c, e, f);
  } else {
    c.fail("family", "expected a preset name or an object, got " + e.dump());
  }
  if (!f.preset.empty()) {
    const auto& names = preset_names();
    if (std::find(names.begin(), names.end(), f.preset) == names.end())
      c.fail("family",
             "unknown family \"" + f.preset + "\" (allowed: " + text::join(names) + ", or {\"model\": \"file.json\"})");
    if (f.label.empty()) f.label = f.preset;
  }
  return f;
}

std::vector<FamilyEntry> read_families(const ParseContext& c, const json& v) {
  std::vector<FamilyEntry> out;
  for (const json& e : items(c, v, "family")) out.push_back(read_family(c, e));
  return out;
}

// ---------------------------------------------------------------- schedule

/// The combinations a schedule entry may not hold: an unknown name, "file" without a file (or a
/// file without "file"), an unknown kind, c0 or c1 not positive.
void check_schedule(const ParseContext& c, const ScheduleEntry& s) {
  const auto& names = schedule_names();
  if (std::find(names.begin(), names.end(), s.name) == names.end())
    c.fail("schedule", "unknown schedule \"" + s.name + "\" (allowed: " + text::join(names) + ")");
  if (s.name == "file") {
    if (s.file.empty()) c.fail("schedule", "schedule \"file\" needs {\"file\": \"path\"}");
  } else if (!s.file.empty()) {
    c.fail("schedule", "\"file\" only applies to the schedule \"file\"");
  }
  if (s.kind != "auto" && s.kind != "alpha" && s.kind != "abar")
    c.fail("schedule.kind", "\"" + s.kind + "\" (allowed: auto, alpha, abar)");
  if (s.c0 <= 0 || s.c1 <= 0) c.fail("schedule", "c0 and c1 must be positive");
}

/// What a schedule object names that its schedule does not use is refused, as on the command line.
void check_schedule_object(const ParseContext& c, const json& e, const ScheduleEntry& s) {
  const bool constants = s.name == "lcw" || s.name == "li-yan";
  for (const char* k : {"c0", "c1"})
    if (e.contains(k) && !constants)
      c.fail(std::string("schedule.") + k, "does not apply to the schedule \"" + s.name +
                                               "\" (only lcw and li-yan have the constants c0 and c1)");
  if (e.contains("kind") && s.name != "file")
    c.fail("schedule.kind", "does not apply to the schedule \"" + s.name + "\" (only to a schedule file)");
}

/// The schedule of a file entry, read once per sweep (InputCache): it fixes T, and its contents
/// (hash_schedule) key the runs.
void load_schedule_file(const ParseContext& c, ScheduleEntry& s) {
  auto& cached = c.inputs->schedules[s.file + "|" + s.kind];
  if (!cached) {
    ScheduleParams sp;
    sp.name = "file";
    sp.file = s.file;
    sp.file_kind = s.kind;
    try {
      cached = std::make_shared<const Schedule>(make_schedule(sp));
    } catch (const Error& e) {
      c.inputs->schedules.erase(s.file + "|" + s.kind);
      c.fail("schedule", std::string("file: ") + e.what());
    }
  }
  s.loaded = cached;
  s.hash = hash_schedule(*cached);
}

ScheduleEntry read_schedule(const ParseContext& c, const json& e) {
  ScheduleEntry s;
  if (e.is_string()) {
    s.name = e.get<std::string>();
  } else if (e.is_object()) {
    check_keys(c, e, kScheduleKeys, "a \"schedule\" object");
    s.name = e.contains("name") ? as_string(c, e["name"], "schedule.name") : (e.contains("file") ? "file" : "lcw");
    if (e.contains("c0")) s.c0 = as_double(c, e["c0"], "schedule.c0");
    if (e.contains("c1")) s.c1 = as_double(c, e["c1"], "schedule.c1");
    if (e.contains("file")) s.file = resolve_path(c, as_string(c, e["file"], "schedule.file"));
    if (e.contains("kind")) s.kind = as_string(c, e["kind"], "schedule.kind");
  } else {
    c.fail("schedule", "expected a schedule name or an object, got " + e.dump());
  }
  check_schedule(c, s);
  if (e.is_object()) check_schedule_object(c, e, s);
  if (s.name == "file") load_schedule_file(c, s);
  return s;
}

std::vector<ScheduleEntry> read_schedules(const ParseContext& c, const json& v) {
  std::vector<ScheduleEntry> out;
  for (const json& e : items(c, v, "schedule")) out.push_back(read_schedule(c, e));
  return out;
}

// ---------------------------------------------------------------- numbers, seeds, backends, tv

std::vector<double> read_sds(const ParseContext& c, const json& v) {
  std::vector<double> out;
  for (const json& e : items(c, v, "sd")) {
    const double x = as_double(c, e, "sd");
    if (!(x > 0)) c.fail("sd", text::num(x) + " (sd > 0)");
    out.push_back(x);
  }
  return out;
}

std::vector<double> read_radii(const ParseContext& c, const json& v) {
  std::vector<double> out;
  for (const json& e : items(c, v, "radius")) {
    const double x = as_double(c, e, "radius");
    if (!(x >= 0)) c.fail("radius", text::num(x) + " (radius >= 0)");
    out.push_back(x);
  }
  return out;
}

std::vector<double> read_doubles(const ParseContext& c, const json& v, const std::string& key) {
  std::vector<double> out;
  for (const json& e : items(c, v, key)) out.push_back(as_double(c, e, key));
  return out;
}

/// The integers of an axis, each in [lo, hi], as T.
template <typename T>
std::vector<T> read_ints(const ParseContext& c, const json& v, const std::string& key, int64_t lo, int64_t hi) {
  std::vector<T> out;
  for (const json& e : items(c, v, key)) out.push_back(static_cast<T>(as_int(c, e, key, lo, hi)));
  return out;
}

/// "seeds": a count m (the seeds 0 .. m-1) or a list of seeds.
std::vector<uint64_t> read_seeds(const ParseContext& c, const json& v) {
  if (v.is_array()) return read_ints<uint64_t>(c, v, "seeds", 0, int64_t(1) << 53);
  std::vector<uint64_t> out;
  const auto m = as_int(c, v, "seeds", 1, 100000);
  for (int64_t s = 0; s < m; ++s) out.push_back(static_cast<uint64_t>(s));
  return out;
}

std::vector<KSpec> read_ks(const ParseContext& c, const json& v) {
  std::vector<KSpec> out;
  for (const json& e : items(c, v, "K")) out.push_back(as_k(c, e, "K"));
  return out;
}

std::vector<std::string> read_backends(const ParseContext& c, const json& v) {
  std::vector<std::string> out;
  for (const json& e : items(c, v, "backend")) {
    const std::string b = as_string(c, e, "backend");
    if (b != "auto" && b != "cpu" && b != "cuda") c.fail("backend", "\"" + b + "\" (allowed: auto, cpu, cuda)");
    out.push_back(b);
  }
  return out;
}

/// "bias_direction": "random", "means", or a vector of numbers (kept as "v1,...,vd"); or a list of those.
std::vector<std::string> read_bias_directions(const ParseContext& c, const json& v) {
  std::vector<std::string> out;
  auto one = [&](const json& e) {
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      if (s != "random" && s != "means")
        c.fail("bias_direction", "\"" + s + "\" (allowed: \"random\", \"means\", or a vector [v1, ..., vd])");
      out.push_back(s);
    } else if (e.is_array() && !e.empty() && e[0].is_number()) {
      std::string s;
      double top = 0;  // the largest |v_j|: a vector of tiny norm (|v|^2 underflows to 0) is still a direction
      for (const json& x : e) {
        const double y = as_double(c, x, "bias_direction");
        top = std::max(top, std::fabs(y));
        s += (s.empty() ? "" : ",") + text::num(y);
      }
      if (!(top > 0)) c.fail("bias_direction", "the vector is 0 (it needs a direction)");
      out.push_back(s);
    } else {
      c.fail("bias_direction", "expected \"random\", \"means\" or a vector of numbers, got " + e.dump());
    }
  };
  if (v.is_array() && !v.empty() && v[0].is_number()) one(v);
  else if (v.is_array()) for (const json& e : v) one(e);
  else one(v);
  if (out.empty()) c.fail("bias_direction", "empty");
  return out;
}

TvOptions read_tv(const ParseContext& c, const json& v) {
  TvOptions t;
  if (!v.is_object()) c.fail("tv", "expected an object {\"stats\": ..., \"bins\": ..., \"bootstrap\": ...}");
  check_keys(c, v, kTvKeys, "\"tv\"");
  if (v.contains("stats")) t.stats = as_string(c, v["stats"], "tv.stats");
  if (t.stats.empty()) c.fail("tv.stats", "empty (e.g. \"means,random:8,radial\")");
  if (v.contains("bins")) t.bins = static_cast<int>(as_int(c, v["bins"], "tv.bins", 0, 1 << 20));
  if (v.contains("bootstrap")) t.bootstrap = static_cast<int>(as_int(c, v["bootstrap"], "tv.bootstrap", 0, 100000));
  if (v.contains("reference_n"))
    t.reference_n = static_cast<uint64_t>(as_int(c, v["reference_n"], "tv.reference_n", 0, int64_t(1) << 40));
  return t;
}

/// "bounds": {"M": .., "n": ..} (either may be left out: the defaults of `gmmdiff bracket`), or
/// false / null for none.
RunBounds read_bounds(const ParseContext& c, const json& v) {
  RunBounds b;
  if (v.is_null() || (v.is_boolean() && !v.get<bool>())) return b;
  if (!v.is_object())
    c.fail("bounds", "expected an object {\"M\": continuations per outer draw, \"n\": outer draws or particles}, or false");
  check_keys(c, v, kBoundsKeys, "\"bounds\"");
  b.on = true;
  if (v.contains("M")) b.M = static_cast<int>(as_int(c, v["M"], "bounds.M", 1, 1 << 20));
  if (v.contains("n")) b.n = static_cast<uint64_t>(as_int(c, v["n"], "bounds.n", 2, int64_t(1) << 28));
  return b;
}

/// The direction files of tv's file:PATH statistics, read once per sweep (a relative PATH from the
/// sweep file's folder, as for models and schedules); returns the hash of their contents.
std::string load_tv_files(const ParseContext& c, TvOptions& t) {
  std::vector<std::string> paths;
  try {
    paths = stat_files(t.stats);
  } catch (const Error& e) {
    c.fail("tv.stats", e.what());
  }
  std::vector<const NpyArray*> arrays;
  for (const std::string& p : paths) {
    const std::string abs = resolve_path(c, p);
    auto& cached = c.inputs->arrays[abs];
    if (!cached) {
      try {
        cached = std::make_shared<const NpyArray>(read_npy(abs));
      } catch (const Error& e) {
        c.inputs->arrays.erase(abs);
        c.fail("tv.stats", e.what());
      }
    }
    t.files[p] = cached;
    arrays.push_back(cached.get());
  }
  return arrays.empty() ? "" : hash_arrays(arrays);
}

}  // namespace

GridAxes read_grid_axes(const ParseContext& c, const json& a) {
  GridAxes g;
  for (auto it = a.begin(); it != a.end(); ++it) g.given.insert(it.key());
  g.schedules = read_schedules(c, get_or(a, "schedule", json("lcw")));
  const bool all_files = std::all_of(g.schedules.begin(), g.schedules.end(),
                                     [](const ScheduleEntry& s) { return s.name == "file"; });
  if (!a.contains("T") && !all_files)
    c.fail("T", "missing: every sweep needs the axis \"T\" (e.g. [16, 32, 64, 128]) unless its schedules are files");
  g.families = read_families(c, get_or(a, "family", json("two-point")));
  g.sds = read_sds(c, get_or(a, "sd", json(1.0)));
  g.radii = read_radii(c, get_or(a, "radius", json(2.0)));
  g.epss = read_doubles(c, get_or(a, "eps", json(0.0)), "eps");
  g.model_seeds = read_ints<uint64_t>(c, get_or(a, "model_seed", json(0)), "model_seed", 0, int64_t(1) << 53);
  g.ns = read_ints<uint64_t>(c, get_or(a, "n", json(10000)), "n", 16, int64_t(1) << 40);
  g.seeds = read_seeds(c, get_or(a, "seeds", json(1)));
  g.ds = read_ints<int>(c, get_or(a, "d", json(2)), "d", 1, 1 << 20);
  // A schedule file fixes T (its length); without a T axis, a placeholder the files override.
  g.Ts = a.contains("T") ? read_ints<int>(c, a["T"], "T", 1, kMaxSteps) : std::vector<int>{0};
  g.stops = read_ints<int>(c, get_or(a, "stop", json(1)), "stop", 0, 1);
  if (a.contains("K")) g.Ks = read_ks(c, a["K"]);
  g.errs = parse_enum_list(c, get_or(a, "score_error", json("none")), "score_error", parse_score_error);
  g.samplers = parse_enum_list(c, get_or(a, "sampler", json("ddpm")), "sampler", parse_sampler);
  g.etas = read_doubles(c, get_or(a, "eta", json(0.0)), "eta");
  for (double e : g.etas)
    if (!(e >= 0 && e <= 1)) c.fail("eta", text::num(e) + " (allowed: 0 to 1)");
  g.profiles = parse_enum_list(c, get_or(a, "error_profile", json("uniform")), "error_profile", parse_error_profile);
  for (ErrorProfile p : g.profiles)
    if (p == ErrorProfile::File)
      c.fail("error_profile", "\"file\" is for the command line (--error-factors); a sweep takes uniform, "
                              "front-loaded or back-loaded");
  g.bias_directions = read_bias_directions(c, get_or(a, "bias_direction", json("random")));
  g.variances = parse_enum_list(c, get_or(a, "variance", json("beta")), "variance", parse_variance);
  g.precisions = parse_enum_list(c, get_or(a, "precision", json("fp32")), "precision", parse_precision);
  g.backends = read_backends(c, get_or(a, "backend", json("auto")));
  g.eps_samples = static_cast<int>(as_int(c, get_or(a, "eps_samples", json(1024)), "eps_samples", 1, 1 << 24));
  if (a.contains("quantities")) {
    if (!a["quantities"].is_boolean()) c.fail("quantities", "expected true or false");
    g.quantities = a["quantities"].get<bool>();
  }
  g.tv = a.contains("tv") ? read_tv(c, a["tv"]) : TvOptions{};
  g.bounds = a.contains("bounds") ? read_bounds(c, a["bounds"]) : RunBounds{};
  g.tv_files_hash = load_tv_files(c, g.tv);
  return g;
}

}  // namespace gmmdiff::sweep_parse
