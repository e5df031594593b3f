// gmmdiff: sweep files, their expansion into runs, running them, and the resumable output
// directory (include/gmmdiff/sweep.hpp, docs/sweeps.md).
#include "gmmdiff/sweep.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.hpp"
#include "io/text.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/version.hpp"


namespace gmmdiff {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

using text::edit_distance;
using text::fnv1a;
using text::hex16;
using text::join;
using text::num;
using text::read_text;
using text::utc_now;

// ---------------------------------------------------------------- sweep parsing

constexpr std::size_t kMaxRuns = 1000000;  // runs in one sweep

const std::vector<std::string> kTopOnly = {"name", "description", "grids", "chunk"};
const std::vector<std::string> kAxes = {
    "family",   "d", "K",    "radius",    "sd", "model_seed", "score_error", "eps",         "sampler", "variance",
    "schedule", "T", "stop", "precision", "n",  "seeds",      "backend",     "eps_samples", "tv"};
const std::vector<std::string> kFamilyKeys = {"name", "model", "K", "radius", "full_rank", "label"};
const std::vector<std::string> kScheduleKeys = {"name", "c0", "c1", "file", "kind"};
const std::vector<std::string> kTvKeys = {"stats", "bins", "bootstrap", "reference_n"};

struct Ctx {
  std::string origin;    // the file (or "default sweep")
  std::string base_dir;  // for relative paths
  [[noreturn]] void fail(const std::string& where, const std::string& msg) const {
    throw Error(origin + ": " + (where.empty() ? "" : "\"" + where + "\": ") + msg);
  }
};

void check_keys(const Ctx& c, const json& obj, const std::vector<std::string>& allowed, const std::string& where) {
  for (auto it = obj.begin(); it != obj.end(); ++it) {
    if (std::find(allowed.begin(), allowed.end(), it.key()) != allowed.end()) continue;
    std::string hint;
    std::size_t best = 3;
    for (const auto& a : allowed) {
      const std::size_t e = edit_distance(it.key(), a);
      if (e < best) {
        best = e;
        hint = a;
      }
    }
    std::string msg = "unknown key \"" + it.key() + "\"" + (where.empty() ? "" : " in " + where);
    if (!hint.empty()) msg += " (did you mean \"" + hint + "\"?)";
    msg += "; allowed: " + join(allowed);
    c.fail("", msg);
  }
}

/// Every axis is a scalar or a non-empty list.
std::vector<json> items(const Ctx& c, const json& v, const std::string& key) {
  if (!v.is_array()) return {v};
  if (v.empty()) c.fail(key, "empty list (give at least one value)");
  return std::vector<json>(v.begin(), v.end());
}

double as_double(const Ctx& c, const json& v, const std::string& key) {
  if (!v.is_number()) c.fail(key, "expected a number, got " + v.dump());
  const double x = v.get<double>();
  if (!std::isfinite(x)) c.fail(key, "expected a finite number, got " + v.dump());
  return x;
}

int64_t as_int(const Ctx& c, const json& v, const std::string& key, int64_t lo, int64_t hi) {
  if (!v.is_number()) c.fail(key, "expected an integer, got " + v.dump());
  const double x = v.get<double>();
  if (!(x == std::floor(x)) || !std::isfinite(x)) c.fail(key, "expected an integer, got " + v.dump());
  if (x < static_cast<double>(lo) || x > static_cast<double>(hi))
    c.fail(key, v.dump() + " is out of range (allowed: " + std::to_string(lo) + " .. " + std::to_string(hi) + ")");
  return static_cast<int64_t>(x);
}

std::string as_string(const Ctx& c, const json& v, const std::string& key) {
  if (!v.is_string()) c.fail(key, "expected a string, got " + v.dump());
  return v.get<std::string>();
}

std::string resolve_path(const Ctx& c, const std::string& p) {
  fs::path q(p);
  if (q.is_relative()) q = fs::path(c.base_dir) / q;
  std::error_code ec;
  fs::path a = fs::absolute(q, ec);
  return (ec ? q : a).lexically_normal().string();
}

struct FamilyEntry {
  std::string label, preset, model_file, model_hash;
  std::vector<KSpec> K;        // family override (empty: the sweep's K axis)
  std::vector<double> radius;  // family override
  bool full_rank = false;
  // model files: fixed shape
  int model_d = 0, model_K = 0;
  double model_sd = 0, model_radius = 0;
};

uint64_t hash_mixture(const Mixture& m) {
  uint64_t h = fnv1a(&m.K, sizeof m.K);
  h = fnv1a(&m.d, sizeof m.d, h);
  auto vec = [&](const std::vector<double>& v) { h = fnv1a(v.data(), v.size() * sizeof(double), h); };
  vec(m.weights);
  vec(m.means);
  const int cov = m.cov == Covariance::Isotropic ? 0 : 1;
  h = fnv1a(&cov, sizeof cov, h);
  vec(m.sd);
  vec(m.var_diag);
  return h;
}

std::vector<FamilyEntry> parse_families(const Ctx& c, const json& v) {
  std::vector<FamilyEntry> out;
  const auto& names = preset_names();
  for (const json& e : items(c, v, "family")) {
    FamilyEntry f;
    if (e.is_string()) {
      f.preset = e.get<std::string>();
    } else if (e.is_object()) {
      check_keys(c, e, kFamilyKeys, "a \"family\" object");
      if (e.contains("name") == e.contains("model"))
        c.fail("family", "an object needs exactly one of \"name\" (a preset) or \"model\" (a model JSON file)");
      if (e.contains("name")) f.preset = as_string(c, e["name"], "family.name");
      if (e.contains("K")) {
        for (const json& k : items(c, e["K"], "family.K"))
          f.K.push_back(k.is_string() ? KSpec::parse(k.get<std::string>(), c.origin + ": \"family.K\"")
                                      : KSpec::constant(static_cast<int>(as_int(c, k, "family.K", 1, 1 << 24))));
      }
      if (e.contains("radius"))
        for (const json& r : items(c, e["radius"], "family.radius"))
          f.radius.push_back(as_double(c, r, "family.radius"));
      if (e.contains("full_rank")) {
        if (!e["full_rank"].is_boolean()) c.fail("family.full_rank", "expected true or false");
        f.full_rank = e["full_rank"].get<bool>();
      }
      if (e.contains("label")) f.label = as_string(c, e["label"], "family.label");
      if (e.contains("model")) {
        f.model_file = resolve_path(c, as_string(c, e["model"], "family.model"));
        Mixture m;
        try {
          m = load_model_json(f.model_file);
        } catch (const Error& err) {
          c.fail("family.model", err.what());
        }
        if (!f.K.empty() || !f.radius.empty())
          c.fail("family", "a model file fixes K and the means: \"K\" and \"radius\" do not apply");
        f.model_d = m.d;
        f.model_K = m.K;
        f.model_hash = hex16(hash_mixture(m));
        bool same_sd = m.cov == Covariance::Isotropic;
        for (int k = 1; same_sd && k < m.K; ++k) same_sd = m.sd[k] == m.sd[0];
        f.model_sd = same_sd ? m.sd[0] : 0.0;
        f.model_radius = m.max_mean_norm();
        if (f.label.empty()) f.label = "model:" + fs::path(f.model_file).stem().string();
      }
    } else {
      c.fail("family", "expected a preset name or an object, got " + e.dump());
    }
    if (!f.preset.empty()) {
      if (std::find(names.begin(), names.end(), f.preset) == names.end())
        c.fail("family",
               "unknown family \"" + f.preset + "\" (allowed: " + join(names) + ", or {\"model\": \"file.json\"})");
      if (f.label.empty()) f.label = f.preset;
    }
    out.push_back(std::move(f));
  }
  return out;
}

struct ScheduleEntry {
  std::string name, file, kind = "auto";
  double c0 = 2.0, c1 = 10.0;
};

std::vector<ScheduleEntry> parse_schedules(const Ctx& c, const json& v) {
  std::vector<ScheduleEntry> out;
  const auto& names = schedule_names();
  for (const json& e : items(c, v, "schedule")) {
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
    if (std::find(names.begin(), names.end(), s.name) == names.end())
      c.fail("schedule", "unknown schedule \"" + s.name + "\" (allowed: " + join(names) + ")");
    if (s.name == "file") {
      if (s.file.empty()) c.fail("schedule", "schedule \"file\" needs {\"file\": \"path\"}");
    } else if (!s.file.empty()) {
      c.fail("schedule", "\"file\" only applies to the schedule \"file\"");
    }
    if (s.kind != "auto" && s.kind != "alpha" && s.kind != "abar")
      c.fail("schedule.kind", "\"" + s.kind + "\" (allowed: auto, alpha, abar)");
    if (s.c0 <= 0 || s.c1 <= 0) c.fail("schedule", "c0 and c1 must be positive");
    out.push_back(s);
  }
  return out;
}

template <typename F>
auto parse_enum_list(const Ctx& c, const json& v, const std::string& key, F parse) {
  std::vector<decltype(parse(std::string()))> out;
  for (const json& e : items(c, v, key)) {
    const std::string s = as_string(c, e, key);
    try {
      out.push_back(parse(s));
    } catch (const Error& err) {
      c.fail(key, err.what());
    }
  }
  return out;
}

TvOptions parse_tv(const Ctx& c, const json& v) {
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

const json& get_or(const json& obj, const std::string& key, const json& dflt) {
  auto it = obj.find(key);
  return it == obj.end() ? dflt : *it;
}

PresetParams preset_params(const RunParams& p) {
  PresetParams pp;
  pp.name = p.preset;
  pp.d = p.d;
  pp.K = p.K;
  pp.radius = p.radius;
  pp.sd = {p.sd};
  pp.seed = p.model_seed;
  return pp;
}

ScheduleParams schedule_params(const RunParams& p) {
  ScheduleParams sp;
  sp.name = p.schedule;
  sp.T = p.T;
  sp.c0 = p.c0;
  sp.c1 = p.c1;
  sp.file = p.schedule_file;
  sp.file_kind = p.schedule_kind;
  return sp;
}

Mixture build_target(const RunParams& p) {
  if (!p.model_file.empty()) return load_model_json(p.model_file);
  return make_preset(preset_params(p));
}

/// Validates one run's values (those that the axes alone cannot: combinations).
void check_run(const Ctx& c, const RunParams& p) {
  if (p.stop == 1 && p.T < 2) c.fail("T", "T = " + std::to_string(p.T) + " with stop 1 takes no step (T >= 2)");
  if (p.K < 1)
    c.fail("K",
           "K = " + p.K_spec + " gives K = " + std::to_string(p.K) + " at d = " + std::to_string(p.d) + " (K >= 1)");
  if (p.preset == "simplex" && p.K > p.d + 1)
    c.fail("K", "simplex with K = " + std::to_string(p.K) + " > d + 1 = " + std::to_string(p.d + 1) +
                    " (at most d + 1 equidistant means; write K as \"d+1\" to follow d)");
  if (p.full_rank && p.K < p.d)
    c.fail("K", p.family + " asks for full rank but K = " + std::to_string(p.K) + " < d = " + std::to_string(p.d) +
                    " (write K as \"d\" or larger)");
  if (p.score_error == ScoreErrorKind::Scale ? !(p.eps > -1) : !(p.eps >= 0))
    c.fail("eps", num(p.eps) + " for score error " + to_string(p.score_error) +
                      (p.score_error == ScoreErrorKind::Scale ? " (eps > -1)" : " (eps >= 0)"));
}

}  // namespace

// ---------------------------------------------------------------- KSpec

KSpec KSpec::constant(int k) {
  KSpec s;
  s.add = k;
  s.text = std::to_string(k);
  return s;
}

KSpec KSpec::parse(const std::string& in, const std::string& where) {
  std::string s;
  for (char ch : in)
    if (!std::isspace(static_cast<unsigned char>(ch))) s += ch;
  auto bad = [&]() -> KSpec {
    throw Error(where + ": K \"" + in +
                "\" is not an integer or a linear expression in d (e.g. 8, \"d\", \"d+1\", \"4d\")");
  };
  if (s.empty()) return bad();
  KSpec k;
  const auto dpos = s.find('d');
  auto parse_int = [&](const std::string& t, int& out) {
    if (t.empty()) return false;
    std::size_t used = 0;
    try {
      out = std::stoi(t, &used);
    } catch (...) {
      return false;
    }
    return used == t.size();
  };
  if (dpos == std::string::npos) {
    if (!parse_int(s, k.add)) return bad();
  } else {
    std::string m = s.substr(0, dpos), rest = s.substr(dpos + 1);
    if (!m.empty() && m.back() == '*') m.pop_back();
    if (m.empty())
      k.mult = 1;
    else if (!parse_int(m, k.mult) || k.mult < 1)
      return bad();
    if (!rest.empty()) {
      if (rest[0] != '+' && rest[0] != '-') return bad();
      if (!parse_int(rest, k.add)) return bad();
    }
  }
  if (k.mult == 0) {
    k.text = std::to_string(k.add);
  } else {
    k.text = (k.mult == 1 ? "" : std::to_string(k.mult)) + "d";
    if (k.add > 0) k.text += "+" + std::to_string(k.add);
    if (k.add < 0) k.text += std::to_string(k.add);
  }
  return k;
}

// ---------------------------------------------------------------- RunParams

std::string RunParams::canonical() const {
  std::ostringstream os;
  os << "family=" << family << ";preset=" << preset << ";model=" << model_hash << ";d=" << d << ";K=" << K
     << ";K_spec=" << K_spec << ";radius=" << num(radius) << ";sd=" << num(sd) << ";model_seed=" << model_seed
     << ";score_error=" << to_string(score_error) << ";eps=" << num(eps) << ";sampler=" << to_string(sampler)
     << ";variance=" << to_string(variance) << ";schedule=" << schedule << ";c0=" << num(c0) << ";c1=" << num(c1)
     << ";schedule_file=" << (schedule_file.empty() ? "" : hex16(fnv1a(schedule_file))) << ";T=" << T
     << ";stop=" << stop << ";precision=" << to_string(precision) << ";n=" << n << ";seed=" << seed
     << ";eps_samples=" << eps_samples << ";backend=" << backend << ";tv.stats=" << tv.stats << ";tv.bins=" << tv.bins
     << ";tv.bootstrap=" << tv.bootstrap << ";tv.reference_n=" << tv.reference_n;
  if (schedule_kind != "auto") os << ";schedule_kind=" << schedule_kind;  // "auto" keeps the keys of older rows
  return os.str();
}

std::string RunParams::key() const { return hex16(fnv1a(canonical())); }

std::string RunParams::label() const {
  std::ostringstream os;
  os << "T=" << T << " d=" << d << " K=" << K << " " << family << " sd=" << num(sd);
  if (preset != "gaussian" && preset != "two-point" && !preset.empty()) os << " r=" << num(radius);
  os << " " << to_string(sampler);
  if (sampler == SamplerKind::DDPM && variance != Variance::Beta) os << "/" << to_string(variance);
  if (schedule != "lcw") os << " " << schedule;
  if (score_error != ScoreErrorKind::None) os << " " << to_string(score_error) << "=" << num(eps);
  os << " n=" << n << " seed=" << seed;
  return os.str();
}

// ---------------------------------------------------------------- parse_sweep

const std::vector<std::string>& sweep_keys() {
  static const std::vector<std::string> keys = [] {
    std::vector<std::string> k = kTopOnly;
    k.insert(k.end(), kAxes.begin(), kAxes.end());
    return k;
  }();
  return keys;
}

SweepSpec parse_sweep(const std::string& text, const std::string& origin, const std::string& base_dir) {
  Ctx c{origin, base_dir};
  json j;
  try {
    j = json::parse(text);
  } catch (const json::parse_error& e) {
    std::string what = e.what();
    const auto p = what.find("parse error");
    c.fail("", "not valid JSON: " + (p == std::string::npos ? what : what.substr(p)));
  } catch (const json::exception&) {  // out_of_range.406: a number such as 1e999
    c.fail("", "a number does not fit in a double (it must be finite)");
  }
  if (!j.is_object()) c.fail("", "a sweep is a JSON object of axes (see docs/sweeps.md)");
  check_keys(c, j, sweep_keys(), "the sweep");

  SweepSpec spec;
  spec.source = j.dump(2);
  spec.name = j.contains("name") ? as_string(c, j["name"], "name") : fs::path(origin).stem().string();
  if (spec.name.empty()) spec.name = "sweep";
  if (j.contains("description")) spec.description = as_string(c, j["description"], "description");
  if (j.contains("chunk")) spec.chunk = static_cast<std::size_t>(as_int(c, j["chunk"], "chunk", 0, int64_t(1) << 40));

  std::vector<json> grids;
  json top = j;
  for (const auto& k : kTopOnly) top.erase(k);
  if (j.contains("grids")) {
    if (!j["grids"].is_array() || j["grids"].empty())
      c.fail("grids", "expected a non-empty list of objects, each overriding some axes");
    for (std::size_t g = 0; g < j["grids"].size(); ++g) {
      const json& o = j["grids"][g];
      if (!o.is_object()) c.fail("grids", "entry " + std::to_string(g) + " is not an object");
      check_keys(c, o, kAxes, "grids[" + std::to_string(g) + "]");
      json merged = top;
      for (auto it = o.begin(); it != o.end(); ++it) merged[it.key()] = it.value();
      grids.push_back(merged);
    }
  } else {
    grids.push_back(top);
  }

  std::set<std::string> seen;
  std::map<std::string, bool> checked_targets, checked_schedules;
  for (std::size_t g = 0; g < grids.size(); ++g) {
    const json& a = grids[g];
    if (!a.contains("T")) c.fail("T", "missing: every sweep needs the axis \"T\" (e.g. [16, 32, 64, 128])");
    const auto families = parse_families(c, get_or(a, "family", json("two-point")));
    std::vector<double> sds, radii, epss;
    for (const json& v : items(c, get_or(a, "sd", json(1.0)), "sd")) {
      const double x = as_double(c, v, "sd");
      if (!(x > 0)) c.fail("sd", num(x) + " (sd > 0)");
      sds.push_back(x);
    }
    for (const json& v : items(c, get_or(a, "radius", json(2.0)), "radius")) {
      const double x = as_double(c, v, "radius");
      if (!(x >= 0)) c.fail("radius", num(x) + " (radius >= 0)");
      radii.push_back(x);
    }
    for (const json& v : items(c, get_or(a, "eps", json(0.0)), "eps")) epss.push_back(as_double(c, v, "eps"));
    std::vector<uint64_t> model_seeds, ns, seeds;
    for (const json& v : items(c, get_or(a, "model_seed", json(0)), "model_seed"))
      model_seeds.push_back(static_cast<uint64_t>(as_int(c, v, "model_seed", 0, int64_t(1) << 53)));
    for (const json& v : items(c, get_or(a, "n", json(10000)), "n"))
      ns.push_back(static_cast<uint64_t>(as_int(c, v, "n", 16, int64_t(1) << 40)));
    const json sv = get_or(a, "seeds", json(1));  // a copy: get_or may return a temporary
    if (sv.is_array()) {
      for (const json& v : items(c, sv, "seeds"))
        seeds.push_back(static_cast<uint64_t>(as_int(c, v, "seeds", 0, int64_t(1) << 53)));
    } else {
      const auto m = as_int(c, sv, "seeds", 1, 100000);
      for (int64_t s = 0; s < m; ++s) seeds.push_back(static_cast<uint64_t>(s));
    }
    std::vector<int> ds, Ts, stops;
    for (const json& v : items(c, get_or(a, "d", json(2)), "d"))
      ds.push_back(static_cast<int>(as_int(c, v, "d", 1, 1 << 20)));
    for (const json& v : items(c, a["T"], "T")) Ts.push_back(static_cast<int>(as_int(c, v, "T", 1, kMaxSteps)));
    for (const json& v : items(c, get_or(a, "stop", json(1)), "stop"))
      stops.push_back(static_cast<int>(as_int(c, v, "stop", 0, 1)));
    std::vector<KSpec> Ks;
    if (a.contains("K"))
      for (const json& v : items(c, a["K"], "K"))
        Ks.push_back(v.is_string() ? KSpec::parse(v.get<std::string>(), origin + ": \"K\"")
                                   : KSpec::constant(static_cast<int>(as_int(c, v, "K", 1, 1 << 24))));
    const auto errs = parse_enum_list(c, get_or(a, "score_error", json("none")), "score_error", parse_score_error);
    const auto samplers = parse_enum_list(c, get_or(a, "sampler", json("ddpm")), "sampler", parse_sampler);
    const auto variances = parse_enum_list(c, get_or(a, "variance", json("beta")), "variance", parse_variance);
    const auto precisions = parse_enum_list(c, get_or(a, "precision", json("fp32")), "precision", parse_precision);
    const auto schedules = parse_schedules(c, get_or(a, "schedule", json("lcw")));
    std::vector<std::string> backends;
    for (const json& v : items(c, get_or(a, "backend", json("auto")), "backend")) {
      const std::string b = as_string(c, v, "backend");
      if (b != "auto" && b != "cpu" && b != "cuda") c.fail("backend", "\"" + b + "\" (allowed: auto, cpu, cuda)");
      backends.push_back(b);
    }
    const int eps_samples =
        static_cast<int>(as_int(c, get_or(a, "eps_samples", json(1024)), "eps_samples", 1, 1 << 24));
    const TvOptions tv = a.contains("tv") ? parse_tv(c, a["tv"]) : TvOptions{};

    for (const auto& f : families) {
      const bool is_model = !f.model_file.empty();
      const bool fixed_K = f.preset == "two-point" || f.preset == "gaussian";
      std::vector<KSpec> fK = f.K;
      if (fixed_K) {
        const int k = f.preset == "two-point" ? 2 : 1;
        for (const auto& ks : fK)
          if (ks.mult != 0 || ks.add != k)
            c.fail("family.K", f.preset + " has K = " + std::to_string(k) + " (K = " + ks.text + " does not apply)");
        fK = {KSpec::constant(k)};  // the sweep's K axis does not apply
      } else if (fK.empty()) {
        fK = Ks.empty() ? std::vector<KSpec>{KSpec::parse(f.preset == "simplex" ? "d+1" : "d", "")} : Ks;
      }
      const std::vector<double> f_sds = is_model ? std::vector<double>{f.model_sd} : sds;
      const std::vector<double> f_radii =
          is_model ? std::vector<double>{f.model_radius} : (f.radius.empty() ? radii : f.radius);
      const std::vector<int> f_ds = is_model ? std::vector<int>{f.model_d} : ds;
      if (is_model) fK = {KSpec::constant(f.model_K)};
      const std::vector<uint64_t> f_mseeds = f.preset == "random-sphere" ? model_seeds : std::vector<uint64_t>{0};

      // The product in a fixed order, the last axis fastest (an odometer over the axes).
      // clang-format off
      enum Axis { kSd, kRadius, kModelSeed, kD, kK, kErr, kEps, kSampler, kVariance, kSchedule, kStop, kPrecision,
                  kN, kBackend, kT, kSeed, kAxes };
      // clang-format on
      const std::size_t sizes[kAxes] = {f_sds.size(),     f_radii.size(),   f_mseeds.size(), f_ds.size(),
                                        fK.size(),        errs.size(),      epss.size(),     samplers.size(),
                                        variances.size(), schedules.size(), stops.size(),    precisions.size(),
                                        ns.size(),        backends.size(),  Ts.size(),       seeds.size()};
      // Runs that differ on an axis other than eps and variance (which collapse) are distinct, so
      // the product of the distinct values on those axes is a lower bound on this family's runs:
      // a sweep far over the limit stops here, before seconds of expanding it (issue 5).
      {
        auto distinct = [](const auto& v, auto text) {
          std::set<std::string> u;
          for (const auto& x : v) u.insert(text(x));
          return static_cast<double>(u.size());
        };
        auto as_num = [](double x) { return num(x); };
        auto as_dec = [](auto x) { return std::to_string(x); };
        auto as_enum = [](auto x) { return to_string(x); };
        const double at_least =
            distinct(f_sds, as_num) * distinct(f_radii, as_num) * distinct(f_mseeds, as_dec) *
            distinct(f_ds, as_dec) * distinct(fK, [](const KSpec& k) { return k.text; }) * distinct(errs, as_enum) *
            distinct(samplers, as_enum) *
            distinct(schedules,
                     [](const ScheduleEntry& e) { return e.name + "|" + num(e.c0) + "|" + num(e.c1) + "|" + e.file; }) *
            distinct(stops, as_dec) * distinct(precisions, as_enum) * distinct(ns, as_dec) *
            distinct(backends, [](const std::string& b) { return b; }) * distinct(Ts, as_dec) * distinct(seeds, as_dec);
        if (at_least > static_cast<double>(kMaxRuns))
          c.fail("", "at least " + (at_least < 1e18 ? std::to_string(static_cast<uint64_t>(at_least)) : num(at_least)) +
                         " runs (family " + f.label + "): too many (at most " +
                         std::to_string(kMaxRuns) + ")");
      }
      std::size_t at[kAxes] = {};
      for (bool more = true; more;) {
        const KSpec& ks = fK[at[kK]];
        const ScheduleEntry& sch = schedules[at[kSchedule]];
        const ScoreErrorKind err = errs[at[kErr]];
        const SamplerKind smp = samplers[at[kSampler]];
        const uint64_t seed = seeds[at[kSeed]];
        RunParams p;
        p.family = f.label;
        p.preset = f.preset;
        p.model_file = f.model_file;
        p.model_hash = f.model_hash;
        p.d = f_ds[at[kD]];
        p.K = ks.resolve(p.d);
        p.K_spec = ks.text;
        p.full_rank = f.full_rank;
        p.radius = f_radii[at[kRadius]];
        p.sd = f_sds[at[kSd]];
        p.model_seed = f_mseeds[at[kModelSeed]];
        p.score_error = err;
        p.eps = err == ScoreErrorKind::None ? 0.0 : epss[at[kEps]];  // eps does not apply without an error
        p.sampler = smp;
        p.variance = smp == SamplerKind::DDIM ? Variance::Beta : variances[at[kVariance]];  // ddim: no noise
        p.schedule = sch.name;
        p.c0 = sch.c0;
        p.c1 = sch.c1;
        p.schedule_file = sch.file;
        p.schedule_kind = sch.kind;
        p.T = Ts[at[kT]];
        p.stop = stops[at[kStop]];
        p.precision = precisions[at[kPrecision]];
        p.n = ns[at[kN]];
        p.seed = seed;
        p.eps_samples = eps_samples;
        p.backend = backends[at[kBackend]];
        p.tv = tv;
        p.tv.seed = seed;
        check_run(c, p);
        if (seen.insert(p.key()).second) spec.runs.push_back(p);
        if (spec.runs.size() > kMaxRuns)
          c.fail("", "more than " + std::to_string(kMaxRuns) + " runs: too many (at most " + std::to_string(kMaxRuns) +
                         ")");
        more = false;
        for (int ax = kAxes - 1; ax >= 0 && !more; --ax) {
          if (++at[ax] < sizes[ax])
            more = true;
          else
            at[ax] = 0;
        }
      }
    }
  }

  // Build each distinct target and schedule once, so that what make_preset or make_schedule
  // would refuse stops the sweep before anything is written.
  for (const auto& p : spec.runs) {
    if (p.model_file.empty()) {
      const std::string tkey = p.preset + "|" + std::to_string(p.d) + "|" + std::to_string(p.K) + "|" + num(p.radius) +
                               "|" + num(p.sd) + "|" + std::to_string(p.model_seed);
      if (!checked_targets.count(tkey) && static_cast<double>(p.K) * p.d <= 16.0e6) {
        checked_targets[tkey] = true;
        try {
          (void)make_preset(preset_params(p));
        } catch (const Error& e) {
          c.fail("family",
                 p.family + " at d = " + std::to_string(p.d) + ", K = " + std::to_string(p.K) + ": " + e.what());
        }
      }
    }
    const std::string skey = p.schedule + "|" + num(p.c0) + "|" + num(p.c1) + "|" + p.schedule_file + "|" +
                             p.schedule_kind + "|" + std::to_string(p.T);
    if (!checked_schedules.count(skey)) {
      checked_schedules[skey] = true;
      try {
        (void)make_schedule(schedule_params(p));
      } catch (const Error& e) {
        c.fail("schedule", p.schedule + " at T = " + std::to_string(p.T) + ": " + e.what());
      }
    }
  }
  // The TV options (statistics, bins, bootstrap) on the smallest target of the sweep: a plan is
  // cheap there, and what it refuses would otherwise stop the sweep at its first run.
  if (!spec.runs.empty()) {
    const RunParams* small = &spec.runs.front();
    for (const auto& p : spec.runs)
      if (static_cast<double>(p.K) * p.d < static_cast<double>(small->K) * small->d) small = &p;
    try {
      const Mixture m = build_target(*small);
      TvPlan plan(m, small->tv, small->n);
    } catch (const Error& e) {
      c.fail("tv", e.what());
    }
  }
  return spec;
}

SweepSpec load_sweep_file(const std::string& path) {
  const std::string text = read_text(path, "sweep file");
  fs::path p(path);
  const std::string base = p.has_parent_path() ? p.parent_path().string() : ".";
  return parse_sweep(text, path, base);
}

// ---------------------------------------------------------------- rows

std::size_t SweepRow::figure_index() const {
  if (stats.empty()) throw Error("row " + key + " has no statistics" + (error.empty() ? "" : " (" + error + ")"));
  std::size_t best_any = 0, best_res = stats.size();
  for (std::size_t i = 0; i < stats.size(); ++i) {
    if (stats[i].tv_corrected > stats[best_any].tv_corrected) best_any = i;
    if (stats[i].resolved && (best_res == stats.size() || stats[i].tv_corrected > stats[best_res].tv_corrected))
      best_res = i;
  }
  return best_res < stats.size() ? best_res : best_any;
}

namespace {

nlohmann::ordered_json params_json(const RunParams& p) {
  nlohmann::ordered_json j;
  j["family"] = p.family;
  j["preset"] = p.preset;
  j["model"] = p.model_file;
  j["model_hash"] = p.model_hash;
  j["d"] = p.d;
  j["K"] = p.K;
  j["K_spec"] = p.K_spec;
  j["full_rank"] = p.full_rank;
  j["radius"] = p.radius;
  j["sd"] = p.sd;
  j["model_seed"] = p.model_seed;
  j["score_error"] = to_string(p.score_error);
  j["eps"] = p.eps;
  j["sampler"] = to_string(p.sampler);
  j["variance"] = to_string(p.variance);
  j["schedule"] = p.schedule;
  j["c0"] = p.c0;
  j["c1"] = p.c1;
  j["schedule_file"] = p.schedule_file;
  j["schedule_kind"] = p.schedule_kind;
  j["T"] = p.T;
  j["stop"] = p.stop;
  j["precision"] = to_string(p.precision);
  j["n"] = p.n;
  j["seed"] = p.seed;
  j["eps_samples"] = p.eps_samples;
  j["backend_spec"] = p.backend;
  j["tv_stats"] = p.tv.stats;
  j["tv_bins"] = p.tv.bins;
  j["tv_bootstrap"] = p.tv.bootstrap;
  j["tv_reference_n"] = p.tv.reference_n;
  return j;
}

double jnum(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end()) throw Error(std::string("missing \"") + k + "\"");
  if (it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!it->is_number()) throw Error(std::string("\"") + k + "\" is not a number");
  return it->get<double>();
}
template <typename T>
T jget(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end()) throw Error(std::string("missing \"") + k + "\"");
  if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
    // get<int>() on 1e300 would be an undefined float-to-int conversion.
    if (!it->is_number()) throw Error(std::string("\"") + k + "\" is not a number");
    const double v = it->get<double>();
    if (!(v >= double(std::numeric_limits<T>::min()) && v <= double(std::numeric_limits<T>::max())) ||
        v != std::floor(v))
      throw Error(std::string("\"") + k + "\" is not an integer in range");
  }
  return it->get<T>();
}

}  // namespace

std::string row_to_json(const SweepRow& r) {
  nlohmann::ordered_json j;  // keys in this order: the key and parameters first, for people reading the file
  j["key"] = r.key;
  j["sweep"] = r.sweep;
  j["index"] = r.index;
  j["params"] = params_json(r.p);
  if (!r.error.empty()) j["error"] = r.error;
  if (!r.stats.empty()) {
    const StatResult& f = r.figure();
    j["tv"] = f.tv_corrected;
    j["tv_stat"] = f.name;
    j["tv_raw"] = f.tv;
    j["floor"] = f.floor;
    j["ci_lo"] = f.ci_lo;
    j["ci_hi"] = f.ci_hi;
    j["resolved"] = f.resolved;
  }
  nlohmann::ordered_json st = nlohmann::ordered_json::array();
  for (const auto& s : r.stats) {
    st.push_back({{"name", s.name},
                  {"dims", s.dims},
                  {"bins", s.bins},
                  {"exact", s.exact_target},
                  {"tv", s.tv},
                  {"tv_corrected", s.tv_corrected},
                  {"floor", s.floor},
                  {"ci_lo", s.ci_lo},
                  {"ci_hi", s.ci_hi},
                  {"resolved", s.resolved}});
  }
  j["stats"] = st;
  j["best"] = r.best;
  if (!r.notes.empty()) j["notes"] = r.notes;
  j["nonfinite"] = r.nonfinite;
  j["eps_score"] = r.eps_score;
  j["seconds"] = r.seconds;
  j["eps_seconds"] = r.eps_seconds;
  j["wall_seconds"] = r.wall_seconds;
  j["elt_steps_per_s"] = r.elt_steps_per_s;
  j["steps"] = r.steps;
  j["chunks"] = r.chunks;
  j["backend"] = r.backend;
  j["device"] = r.device;
  j["version"] = r.version;
  j["finished_at"] = r.finished_at;
  return j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

SweepRow parse_row(const std::string& line) {
  json j;
  try {
    j = json::parse(line);
  } catch (const json::exception&) {
    throw Error("not valid JSON");
  }
  SweepRow r;
  try {
    r.key = jget<std::string>(j, "key");
    r.sweep = j.value("sweep", std::string());
    r.index = j.value("index", std::size_t{0});
    const json& p = j.at("params");
    RunParams& q = r.p;
    q.family = jget<std::string>(p, "family");
    q.preset = p.value("preset", std::string());
    q.model_file = p.value("model", std::string());
    q.model_hash = p.value("model_hash", std::string());
    q.d = jget<int>(p, "d");
    q.K = jget<int>(p, "K");
    q.K_spec = p.value("K_spec", std::to_string(q.K));
    q.full_rank = p.value("full_rank", false);
    q.radius = jnum(p, "radius");
    q.sd = jnum(p, "sd");
    q.model_seed = p.value("model_seed", uint64_t{0});
    q.score_error = parse_score_error(jget<std::string>(p, "score_error"));
    q.eps = jnum(p, "eps");
    q.sampler = parse_sampler(jget<std::string>(p, "sampler"));
    q.variance = parse_variance(jget<std::string>(p, "variance"));
    q.schedule = jget<std::string>(p, "schedule");
    q.c0 = p.value("c0", 2.0);
    q.c1 = p.value("c1", 10.0);
    q.schedule_file = p.value("schedule_file", std::string());
    q.schedule_kind = p.value("schedule_kind", std::string("auto"));
    q.T = jget<int>(p, "T");
    q.stop = p.value("stop", 1);
    q.precision = parse_precision(p.value("precision", std::string("fp32")));
    q.n = jget<uint64_t>(p, "n");
    q.seed = jget<uint64_t>(p, "seed");
    q.eps_samples = p.value("eps_samples", 1024);
    q.backend = p.value("backend_spec", std::string("auto"));
    q.tv.stats = p.value("tv_stats", std::string());
    q.tv.bins = p.value("tv_bins", 0);
    q.tv.bootstrap = p.value("tv_bootstrap", 0);
    q.tv.reference_n = p.value("tv_reference_n", uint64_t{0});
    q.tv.seed = q.seed;
    r.error = j.value("error", std::string());
    for (const json& s : j.at("stats")) {
      StatResult t;
      t.name = jget<std::string>(s, "name");
      t.dims = s.value("dims", 1);
      t.bins = s.value("bins", 0);
      t.exact_target = s.value("exact", true);
      t.tv = jnum(s, "tv");
      t.tv_corrected = jnum(s, "tv_corrected");
      t.floor = jnum(s, "floor");
      t.ci_lo = jnum(s, "ci_lo");
      t.ci_hi = jnum(s, "ci_hi");
      t.resolved = jget<bool>(s, "resolved");
      r.stats.push_back(t);
    }
    r.best = j.value("best", std::size_t{0});
    if (j.contains("notes")) r.notes = j["notes"].get<std::vector<std::string>>();
    r.nonfinite = j.value("nonfinite", uint64_t{0});
    r.eps_score = jnum(j, "eps_score");
    r.seconds = j.value("seconds", 0.0);
    r.eps_seconds = j.value("eps_seconds", 0.0);
    r.wall_seconds = j.value("wall_seconds", 0.0);
    r.elt_steps_per_s = j.value("elt_steps_per_s", 0.0);
    r.steps = j.value("steps", 0);
    r.chunks = j.value("chunks", std::size_t{0});
    r.backend = j.value("backend", std::string());
    r.device = j.value("device", std::string());
    r.version = j.value("version", std::string());
    r.finished_at = j.value("finished_at", std::string());
  } catch (const json::exception& e) {
    throw Error(std::string("malformed row: ") + e.what());
  } catch (const Error& e) {
    throw Error(std::string("malformed row: ") + e.what());
  }
  if (r.error.empty() && r.stats.empty()) throw Error("malformed row: no statistics and no error");
  return r;
}

namespace {
std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}
}  // namespace

std::string rows_to_csv(const std::vector<SweepRow>& rows) {
  std::ostringstream os;
  os << "key,index,family,preset,d,K,K_spec,radius,sd,model_seed,score_error,eps,sampler,variance,schedule,c0,c1,"
        "T,stop,precision,n,seed,tv,tv_stat,tv_raw,floor,ci_lo,ci_hi,resolved,eps_score,nonfinite,seconds,"
        "wall_seconds,elt_steps_per_s,backend,device,version,error\n";
  for (const auto& r : rows) {
    const auto& p = r.p;
    os << r.key << ',' << r.index << ',' << csv_field(p.family) << ',' << p.preset << ',' << p.d << ',' << p.K << ','
       << p.K_spec << ',' << num(p.radius) << ',' << num(p.sd) << ',' << p.model_seed << ',' << to_string(p.score_error)
       << ',' << num(p.eps) << ',' << to_string(p.sampler) << ',' << to_string(p.variance) << ',' << p.schedule << ','
       << num(p.c0) << ',' << num(p.c1) << ',' << p.T << ',' << p.stop << ',' << to_string(p.precision) << ',' << p.n
       << ',' << p.seed << ',';
    if (r.stats.empty()) {
      os << ",,,,,,,";
    } else {
      const auto& f = r.figure();
      os << num(f.tv_corrected) << ',' << csv_field(f.name) << ',' << num(f.tv) << ',' << num(f.floor) << ','
         << num(f.ci_lo) << ',' << num(f.ci_hi) << ',' << (f.resolved ? 1 : 0) << ',';
    }
    os << num(r.eps_score) << ',' << r.nonfinite << ',' << num(r.seconds) << ',' << num(r.wall_seconds) << ','
       << num(r.elt_steps_per_s) << ',' << r.backend << ',' << csv_field(r.device) << ',' << r.version << ','
       << csv_field(r.error) << '\n';
  }
  return os.str();
}

// ---------------------------------------------------------------- output directory

DirLock::DirLock(const std::string& dir) {
  const std::string path = (fs::path(dir) / "lock").string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot open the lock file (" + std::strerror(errno) + ")");
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    char buf[32] = {0};
    const ssize_t got = ::pread(fd_, buf, sizeof buf - 1, 0);
    ::close(fd_);
    fd_ = -1;
    std::string pid = got > 0 ? std::string(buf, static_cast<std::size_t>(got)) : "";
    while (!pid.empty() && std::isspace(static_cast<unsigned char>(pid.back()))) pid.pop_back();
    if (e == EWOULDBLOCK)
      throw Error("another gmmdiff sweep is writing " + dir + (pid.empty() ? "" : " (pid " + pid + ")") +
                  "; wait for it to finish or stop it");
    throw Error(path + ": cannot lock (" + std::strerror(e) + ")");
  }
  const std::string me = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) == 0) {
    const ssize_t w = ::pwrite(fd_, me.data(), me.size(), 0);
    (void)w;
  }
}

DirLock::~DirLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock; the file stays (unlinking it would race)
}

namespace {
std::vector<std::string> split_complete_lines(const std::string& content, std::size_t& complete_bytes) {
  std::vector<std::string> lines;
  const auto last = content.rfind('\n');
  complete_bytes = last == std::string::npos ? 0 : last + 1;
  std::size_t start = 0;
  while (start < complete_bytes) {
    const auto nl = content.find('\n', start);
    lines.push_back(content.substr(start, nl - start));
    start = nl + 1;
  }
  return lines;
}

std::string read_fd_all(int fd, const std::string& path) {
  std::string content;
  char buf[1 << 16];
  off_t off = 0;
  for (;;) {
    const ssize_t got = ::pread(fd, buf, sizeof buf, off);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(path + ": read failed (" + std::strerror(errno) + ")");
    }
    if (got == 0) break;
    content.append(buf, static_cast<std::size_t>(got));
    off += got;
  }
  return content;
}

std::vector<SweepRow> parse_lines(const std::vector<std::string>& lines, const std::string& path) {
  std::vector<SweepRow> rows;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (lines[i].find_first_not_of(" \t\r") == std::string::npos) continue;
    try {
      rows.push_back(parse_row(lines[i]));
    } catch (const Error& e) {
      throw Error(path + ":" + std::to_string(i + 1) + ": " + e.what() +
                  " (only a partial last line is repaired automatically; fix or delete this line)");
    }
  }
  return rows;
}
}  // namespace

ResultsLog::ResultsLog(const std::string& path) : path_(path) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  try {
    const std::string content = read_fd_all(fd_, path);
    std::size_t complete = 0;
    const auto lines = split_complete_lines(content, complete);
    auto rows = parse_lines(lines, path);
    if (complete < content.size()) {
      // A kill during the last append left a partial line: that run did not finish.
      if (::ftruncate(fd_, static_cast<off_t>(complete)) != 0)
        throw Error(path + ": cannot drop the partial last line (" + std::strerror(errno) + ")");
      ::fsync(fd_);
      dropped_ = content.size() - complete;
    }
    std::set<std::string> keys;
    for (auto& r : rows) {
      if (!keys.insert(r.key).second) {
        ++duplicates_;
        continue;
      }
      rows_.push_back(std::move(r));
    }
    keys_.assign(keys.begin(), keys.end());
  } catch (...) {
    ::close(fd_);
    fd_ = -1;
    throw;
  }
}

ResultsLog::~ResultsLog() {
  if (fd_ >= 0) ::close(fd_);
}

bool ResultsLog::has(const std::string& key) const { return std::binary_search(keys_.begin(), keys_.end(), key); }

void ResultsLog::append(const SweepRow& row) {
  if (has(row.key)) throw Error(path_ + ": run " + row.key + " is already recorded");
  const std::string line = row_to_json(row) + "\n";
  // One write(2) with O_APPEND: a kill leaves either nothing, the whole line, or a partial line
  // without its newline, which the next open drops.
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t w = ::write(fd_, line.data() + off, line.size() - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw Error(path_ + ": write failed (" + std::strerror(errno) + ")");
    }
    off += static_cast<std::size_t>(w);
  }
  if (::fsync(fd_) != 0) throw Error(path_ + ": fsync failed (" + std::strerror(errno) + ")");
  keys_.insert(std::upper_bound(keys_.begin(), keys_.end(), row.key), row.key);
  rows_.push_back(row);
}

std::vector<SweepRow> read_results(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  std::string content;
  try {
    content = read_fd_all(fd, path);
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  std::size_t complete = 0;
  const auto lines = split_complete_lines(content, complete);
  auto rows = parse_lines(lines, path);
  std::set<std::string> keys;
  std::vector<SweepRow> out;
  for (auto& r : rows)
    if (keys.insert(r.key).second) out.push_back(std::move(r));
  return out;
}

// ---------------------------------------------------------------- running

namespace {
std::mutex g_backend_mutex;
std::map<std::string, std::unique_ptr<Backend>>& backend_cache() {
  static std::map<std::string, std::unique_ptr<Backend>> cache;
  return cache;
}

Backend& backend_for(const std::string& name, int threads) {
  std::lock_guard<std::mutex> lock(g_backend_mutex);
  auto& cache = backend_cache();
  const std::string k = name + "/" + std::to_string(threads);
  auto it = cache.find(k);
  if (it == cache.end()) it = cache.emplace(k, make_backend(name, threads)).first;
  return *it->second;
}
}  // namespace

SweepRow run_one(const RunParams& p, std::size_t chunk, int threads,
                 const std::function<void(uint64_t, uint64_t)>& on_progress) {
  const auto t0 = std::chrono::steady_clock::now();
  SweepRow row;
  row.key = p.key();
  row.p = p;
  row.version = version();

  const Mixture target = build_target(p);
  if (target.d != p.d || target.K != p.K)
    throw Error("model " + p.model_file + " changed since the sweep was parsed (d, K)");
  const Schedule schedule = make_schedule(schedule_params(p));

  SampleOptions opt;
  opt.n = p.n;
  opt.sampler = p.sampler;
  opt.variance = p.variance;
  opt.stop = p.stop;
  opt.seed = p.seed;
  opt.precision = p.precision;
  opt.chunk = chunk;
  opt.score_error.kind = p.score_error;
  opt.score_error.eps = p.eps;
  opt.eps_samples = p.eps_samples;
  opt.progress = on_progress;

  Backend& be = backend_for(p.backend, threads);
  row.backend = be.name();
  row.device = be.device_name();

  TvOptions to = p.tv;
  to.seed = p.seed;
  TvPlan plan(target, to, p.n);
  plan.prepare_reference(be, p.precision);
  TvSink sink(plan);
  RunSummary s;
  try {
    s = run_sampler(target, schedule, opt, be, sink);
  } catch (const NumericalError& e) {
    // The run itself diverged (particles turned non-finite): record it, keep the sweep going.
    row.error = e.what();
  }
  if (row.error.empty()) {
    const TvReport r = sink.report();
    row.stats = r.stats;
    row.best = r.best;
    row.nonfinite = r.nonfinite;
    row.notes = r.notes;
    row.eps_score = s.eps_score;
    row.seconds = s.seconds;
    row.eps_seconds = s.eps_seconds;
    row.elt_steps_per_s = s.elt_steps_per_s;
    row.steps = s.steps;
    row.chunks = s.chunks;
    if (!s.backend.empty()) row.backend = s.backend;
    if (!s.device.empty()) row.device = s.device;
  }
  row.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  row.finished_at = utc_now();
  return row;
}

SweepOutcome run_sweep(const SweepSpec& spec, const SweepRunOptions& opt, const SweepCallbacks& cb) {
  if (opt.out_dir.empty()) throw Error("sweep: no output directory");
  // Every backend the sweep names must exist here (e.g. cuda without a device) before anything
  // is written; they are created once and reused by every run.
  {
    std::set<std::string> names;
    for (const auto& p : spec.runs) names.insert(p.backend);
    for (const auto& b : names) (void)backend_for(b, opt.threads);
  }
  std::error_code ec;
  fs::create_directories(opt.out_dir, ec);
  if (ec) throw Error(opt.out_dir + ": cannot create the output directory (" + ec.message() + ")");
  DirLock lock(opt.out_dir);

  const std::string spec_path = (fs::path(opt.out_dir) / "spec.json").string();
  if (fs::exists(spec_path)) {
    json have;
    try {
      have = json::parse(read_text(spec_path, "spec"));
    } catch (const json::exception&) {
      throw Error(spec_path + ": not valid JSON (delete it only if results.jsonl is empty)");
    }
    if (have.dump(2) != spec.source)
      throw Error(opt.out_dir + " holds a different sweep (spec.json \"" + have.value("name", std::string("?")) +
                  "\" differs from this one); use another --out directory, or delete " + opt.out_dir +
                  " to start over");
  } else {
    write_file_atomic(spec_path, spec.source + "\n");
  }

  ResultsLog log((fs::path(opt.out_dir) / "results.jsonl").string());
  auto note = [&](const std::string& s) {
    if (cb.on_note) cb.on_note(s);
  };
  note(spec.name + ": " + std::to_string(spec.runs.size()) + " runs -> " + opt.out_dir);
  if (log.dropped_bytes())
    note("dropped a partial last line of results.jsonl (" + std::to_string(log.dropped_bytes()) +
         " bytes, a run interrupted while writing); that run is done again");
  if (log.duplicates()) note(std::to_string(log.duplicates()) + " duplicate rows in results.jsonl ignored");

  SweepOutcome out;
  out.total = spec.runs.size();
  std::set<std::string> spec_keys;
  for (const auto& p : spec.runs) spec_keys.insert(p.key());
  std::size_t foreign = 0;
  for (const auto& r : log.rows())
    if (!spec_keys.count(r.key)) ++foreign;
  if (foreign)
    note(std::to_string(foreign) +
         " rows of results.jsonl belong to no run of this sweep (a model or schedule "
         "file changed?); they are kept but not reported");
  for (const auto& p : spec.runs)
    if (log.has(p.key())) ++out.done_before;
  if (out.done_before) {
    note("resuming: " + std::to_string(out.done_before) + " of " + std::to_string(out.total) + " runs already in " +
         (fs::path(opt.out_dir) / "results.jsonl").string());
    // Rows from another build would be mixed with this one's: say which, so the reader can decide.
    std::map<std::string, std::size_t> other;
    for (const auto& r : log.rows())
      if (spec_keys.count(r.key) && r.version != version()) ++other[r.version.empty() ? "unknown" : r.version];
    for (const auto& [v, count] : other)
      note(std::to_string(count) + " finished runs were made by gmmdiff " + v + ", not this build (" + version() +
           "); their rows are kept");
  }

  const std::string csv_path = (fs::path(opt.out_dir) / "results.csv").string();
  auto rows_in_order = [&]() {
    std::map<std::string, const SweepRow*> by_key;
    for (const auto& r : log.rows()) by_key[r.key] = &r;
    std::vector<SweepRow> v;
    for (const auto& p : spec.runs) {
      auto it = by_key.find(p.key());
      if (it != by_key.end()) v.push_back(*it->second);
    }
    return v;
  };
  write_file_atomic(csv_path, rows_to_csv(rows_in_order()));

  std::size_t finished = out.done_before;
  for (std::size_t i = 0; i < spec.runs.size(); ++i) {
    const RunParams& p = spec.runs[i];
    if (log.has(p.key())) continue;
    if (cb.on_start) cb.on_start(p, finished, out.total);
    SweepRow row = run_one(p, spec.chunk, opt.threads, cb.on_progress);
    row.sweep = spec.name;
    row.index = i;
    log.append(row);
    ++finished;
    ++out.ran;
    // The CSV is rewritten whole: after every row for sweeps of up to a few thousand runs, every
    // 1% beyond (rewriting it costs O(rows)), and always at the end.
    const std::size_t every = std::max<std::size_t>(1, spec.runs.size() / 100);
    if (spec.runs.size() <= 2000 || out.ran % every == 0 || finished == out.total)
      write_file_atomic(csv_path, rows_to_csv(rows_in_order()));
    if (cb.on_row) cb.on_row(row, finished, out.total);
  }
  out.rows = rows_in_order();
  if (out.ran) write_file_atomic(csv_path, rows_to_csv(out.rows));
  return out;
}

}  // namespace gmmdiff
