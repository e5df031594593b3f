// gmmdiff (sweep): a finished run's row: its figure, its line of results.jsonl and back, and the
// CSV of a sweep's rows (include/gmmdiff/sweep.hpp; the fields: docs/sweeps.md).
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>
#include <type_traits>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sweep.hpp"
#include "io/input.hpp"
#include "io/text.hpp"

namespace gmmdiff {
namespace {

using json = nlohmann::json;
using ojson = nlohmann::ordered_json;
using text::num;

// ---------------------------------------------------------------- to JSON

ojson params_json(const RunParams& p) {
  ojson j;
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
  // Issue 11's parameters only where they are not the defaults (rows of older sweeps unchanged).
  if (p.sampler == SamplerKind::DDIMSong) j["eta"] = p.eta;
  if (p.error_profile != ErrorProfile::Uniform) j["error_profile"] = to_string(p.error_profile);
  if (p.score_error == ScoreErrorKind::Bias && p.bias_direction != "random") j["bias_direction"] = p.bias_direction;
  j["schedule"] = p.schedule;
  j["c0"] = p.c0;
  j["c1"] = p.c1;
  j["schedule_file"] = p.schedule_file;
  j["schedule_kind"] = p.schedule_kind;
  if (!p.schedule_hash.empty()) j["schedule_hash"] = p.schedule_hash;  // only where there is a file: older rows
  if (!p.tv_files_hash.empty()) j["tv_files_hash"] = p.tv_files_hash;  // and other sweeps keep their lines
  j["T"] = p.T;
  j["stop"] = p.stop;
  j["precision"] = to_string(p.precision);
  j["n"] = p.n;
  j["seed"] = p.seed;
  j["eps_samples"] = p.eps_samples;
  j["backend_spec"] = p.backend;
  if (p.quantities) j["quantities"] = true;
  j["tv_stats"] = p.tv.stats;
  j["tv_bins"] = p.tv.bins;
  j["tv_bootstrap"] = p.tv.bootstrap;
  j["tv_reference_n"] = p.tv.reference_n;
  if (p.bounds.on) j["bounds"] = {{"M", p.bounds.M}, {"n", p.bounds.n}};  // absent: as rows before bounds
  return j;
}

/// A figure, or null where it does not apply (NaN).
ojson num_or_null(double x) { return std::isfinite(x) ? ojson(x) : ojson(); }

/// The bracket's keys, as `gmmdiff bracket --json` names them (docs/sweeps.md, "Bounds").
void add_bracket(ojson& j, const RowBracket& b) {
  j["tv_upper"] = num_or_null(b.tv_upper);
  j["tv_upper_mean"] = num_or_null(b.tv_upper_mean);
  j["tv_upper_se"] = num_or_null(b.tv_upper_se);
  j["tv_upper_quarter_M"] = num_or_null(b.tv_upper_quarter_M);
  j["kl_upper"] = num_or_null(b.kl_upper);
  j["kl_upper_mean"] = num_or_null(b.kl_upper_mean);
  j["kl_upper_se"] = num_or_null(b.kl_upper_se);
  j["M"] = b.M > 0 ? ojson(b.M) : ojson();
  j["bounds_n"] = b.n;
  j["tv_exact"] = num_or_null(b.tv_exact);
  j["tv_exact_ci95"] = std::isfinite(b.tv_exact) ? ojson::array({b.tv_exact_lo, b.tv_exact_hi}) : ojson();
  j["kl_exact"] = num_or_null(b.kl_exact);
  j["tv_reference"] = num_or_null(b.tv_reference);
  j["kl_reference"] = num_or_null(b.kl_reference);
  j["bounds_seconds"] = b.seconds;
  if (!b.error.empty()) j["bounds_error"] = b.error;
}

/// The run's figure at the top level of its line: tv, tv_stat, tv_raw, floor, CI, resolved.
void add_figure(ojson& j, const StatResult& f) {
  j["tv"] = f.tv_corrected;
  j["tv_stat"] = f.name;
  j["tv_raw"] = f.tv;
  j["floor"] = f.floor;
  j["ci_lo"] = f.ci_lo;
  j["ci_hi"] = f.ci_hi;
  j["resolved"] = f.resolved;
}

ojson stats_json(const std::vector<StatResult>& stats) {
  ojson st = ojson::array();
  for (const auto& s : stats) {
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
  return st;
}

/// What the run measured and where: nonfinite, eps_score, timings, steps, backend, version, time.
void add_run_facts(ojson& j, const SweepRow& r) {
  j["nonfinite"] = r.nonfinite;
  j["eps_score"] = r.eps_score;
  if (r.quantities.present) {
    const RowQuantities& q = r.quantities;
    j["quantities"] = {{"log_KT", q.log_KT},           {"trace_IJ_mean", q.trace_mean},
                       {"trace_IJ_p999", q.trace_p999}, {"trace_IJ_max", q.trace_max},
                       {"jac_opnorm_mean", q.opnorm_mean}, {"jac_opnorm_max", q.opnorm_max},
                       {"second_moment", q.second_moment}, {"steps", q.steps},
                       {"points", q.points}};
  }
  if (r.p.score_error != ScoreErrorKind::None) {  // none: exactly 0, left out so older rows are unchanged
    j["eps_jacobi"] = std::isfinite(r.eps_jacobi) ? ojson(r.eps_jacobi) : ojson();  // null: undefined (gaussian)
    j["eps_jacobi_se"] = std::isfinite(r.eps_jacobi_se) ? ojson(r.eps_jacobi_se) : ojson();
  }
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
}

// ---------------------------------------------------------------- from JSON

/// A number (null reads as NaN, as nlohmann writes NaN); missing or not a number is an error.
double jnum(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end()) throw Error(std::string("missing \"") + k + "\"");
  if (it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!it->is_number()) throw Error(std::string("\"") + k + "\" is not a number");
  return it->get<double>();
}

/// A required field; integers must be whole and in T's range.
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

RunParams parse_params(const json& p) {
  RunParams q;
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
  q.eta = p.value("eta", 0.0);
  q.error_profile = parse_error_profile(p.value("error_profile", std::string("uniform")));
  q.bias_direction = p.value("bias_direction", std::string("random"));
  q.schedule = jget<std::string>(p, "schedule");
  q.c0 = p.value("c0", 2.0);
  q.c1 = p.value("c1", 10.0);
  q.schedule_file = p.value("schedule_file", std::string());
  q.schedule_kind = p.value("schedule_kind", std::string("auto"));
  q.schedule_hash = p.value("schedule_hash", std::string());
  q.tv_files_hash = p.value("tv_files_hash", std::string());
  q.T = jget<int>(p, "T");
  q.stop = p.value("stop", 1);
  q.precision = parse_precision(p.value("precision", std::string("fp32")));
  q.n = jget<uint64_t>(p, "n");
  q.seed = jget<uint64_t>(p, "seed");
  q.eps_samples = p.value("eps_samples", 1024);
  q.backend = p.value("backend_spec", std::string("auto"));
  q.quantities = p.value("quantities", false);
  q.tv.stats = p.value("tv_stats", std::string());
  q.tv.bins = p.value("tv_bins", 0);
  q.tv.bootstrap = p.value("tv_bootstrap", 0);
  q.tv.reference_n = p.value("tv_reference_n", uint64_t{0});
  q.tv.seed = q.seed;
  if (p.contains("bounds")) {
    const json& b = p["bounds"];
    q.bounds.on = true;
    q.bounds.M = jget<int>(b, "M");
    q.bounds.n = jget<uint64_t>(b, "n");
  }
  return q;
}

/// A figure that may be null (NaN) or absent (NaN).
double jnum_or_nan(const json& j, const char* k) {
  auto it = j.find(k);
  if (it == j.end() || it->is_null()) return std::numeric_limits<double>::quiet_NaN();
  if (!it->is_number()) throw Error(std::string("\"") + k + "\" is not a number");
  return it->get<double>();
}

RowBracket parse_bracket(const json& j) {
  RowBracket b;
  b.present = true;
  b.tv_upper = jnum_or_nan(j, "tv_upper");
  b.tv_upper_mean = jnum_or_nan(j, "tv_upper_mean");
  b.tv_upper_se = jnum_or_nan(j, "tv_upper_se");
  b.tv_upper_quarter_M = jnum_or_nan(j, "tv_upper_quarter_M");
  b.kl_upper = jnum_or_nan(j, "kl_upper");
  b.kl_upper_mean = jnum_or_nan(j, "kl_upper_mean");  // absent in rows written before it: NaN
  b.kl_upper_se = jnum_or_nan(j, "kl_upper_se");
  b.M = j.contains("M") && !j["M"].is_null() ? jget<int>(j, "M") : 0;
  b.n = j.value("bounds_n", uint64_t{0});
  b.tv_exact = jnum_or_nan(j, "tv_exact");
  if (j.contains("tv_exact_ci95") && j["tv_exact_ci95"].is_array() && j["tv_exact_ci95"].size() == 2) {
    b.tv_exact_lo = j["tv_exact_ci95"][0].get<double>();
    b.tv_exact_hi = j["tv_exact_ci95"][1].get<double>();
  }
  b.kl_exact = jnum_or_nan(j, "kl_exact");
  b.tv_reference = jnum_or_nan(j, "tv_reference");
  b.kl_reference = jnum_or_nan(j, "kl_reference");
  b.seconds = j.value("bounds_seconds", 0.0);
  b.error = j.value("bounds_error", std::string());
  return b;
}

StatResult parse_stat(const json& s) {
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
  return t;
}

/// The fields after the statistics (add_run_facts, and best and notes); all but eps_score optional.
void parse_run_facts(const json& j, SweepRow& r) {
  r.best = j.value("best", std::size_t{0});
  if (j.contains("notes")) r.notes = j["notes"].get<std::vector<std::string>>();
  r.nonfinite = j.value("nonfinite", uint64_t{0});
  r.eps_score = jnum(j, "eps_score");
  if (j.contains("quantities") && j["quantities"].is_object()) {
    const json& q = j["quantities"];
    RowQuantities& o = r.quantities;
    o.present = true;
    o.log_KT = jnum(q, "log_KT");
    o.trace_mean = jnum(q, "trace_IJ_mean");
    o.trace_p999 = jnum(q, "trace_IJ_p999");
    o.trace_max = jnum(q, "trace_IJ_max");
    o.opnorm_mean = jnum(q, "jac_opnorm_mean");
    o.opnorm_max = jnum(q, "jac_opnorm_max");
    o.second_moment = jnum(q, "second_moment");
    o.steps = q.value("steps", 0);
    o.points = q.value("points", uint64_t{0});
  }
  r.eps_jacobi = j.contains("eps_jacobi") ? jnum(j, "eps_jacobi") : 0.0;
  r.eps_jacobi_se = j.contains("eps_jacobi_se") ? jnum(j, "eps_jacobi_se") : 0.0;
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
}

/// The row of a parsed line; any missing or mistyped field throws (json::exception or Error).
SweepRow row_of(const json& j) {
  SweepRow r;
  r.key = jget<std::string>(j, "key");
  r.sweep = j.value("sweep", std::string());
  r.index = j.value("index", std::size_t{0});
  r.p = parse_params(j.at("params"));
  r.error = j.value("error", std::string());
  for (const json& s : j.at("stats")) r.stats.push_back(parse_stat(s));
  parse_run_facts(j, r);
  if (j.contains("tv_upper") || j.contains("tv_exact")) r.bracket = parse_bracket(j);
  return r;
}

// ---------------------------------------------------------------- CSV

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n") == std::string::npos) return s;
  std::string q = "\"";
  for (char ch : s) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
  return q + "\"";
}

constexpr const char* kCsvHeader =
    "key,index,family,preset,d,K,K_spec,radius,sd,model_seed,score_error,eps,sampler,variance,schedule,c0,c1,"
    "T,stop,precision,n,seed,tv,tv_stat,tv_raw,floor,ci_lo,ci_hi,resolved,eps_score,nonfinite,seconds,"
    "wall_seconds,elt_steps_per_s,backend,device,version,error,tv_upper,tv_upper_mean,kl_upper,tv_exact,tv_reference\n";

/// A CSV number, empty where the figure does not apply (NaN).
std::string csv_num(double x) { return std::isfinite(x) ? num(x) : std::string(); }

void write_csv_row(std::ostream& os, const SweepRow& r) {
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
     << csv_field(r.error) << ',' << csv_num(r.bracket.tv_upper) << ',' << csv_num(r.bracket.tv_upper_mean) << ','
     << csv_num(r.bracket.kl_upper) << ',' << csv_num(r.bracket.tv_exact) << ',' << csv_num(r.bracket.tv_reference)
     << '\n';
}

}  // namespace

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

std::string row_to_json(const SweepRow& r) {
  ojson j;  // keys in this order: the key and parameters first, for people reading the file
  j["key"] = r.key;
  j["sweep"] = r.sweep;
  j["index"] = r.index;
  j["params"] = params_json(r.p);
  if (!r.error.empty()) j["error"] = r.error;
  if (!r.stats.empty()) add_figure(j, r.figure());
  if (r.bracket.present) add_bracket(j, r.bracket);
  j["stats"] = stats_json(r.stats);
  j["best"] = r.best;
  if (!r.notes.empty()) j["notes"] = r.notes;
  add_run_facts(j, r);
  return j.dump(-1, ' ', false, ojson::error_handler_t::replace);
}

SweepRow parse_row(const std::string& line) {
  json j;
  try {
    j = parse_json(line, "row");
  } catch (const Error& e) {
    const std::string what = e.what();
    throw Error(what.substr(what.find(": ") + 2));  // the caller names the file and line
  }
  SweepRow r;
  try {
    r = row_of(j);
  } catch (const json::exception& e) {
    throw Error(std::string("malformed row: ") + e.what());
  } catch (const Error& e) {
    throw Error(std::string("malformed row: ") + e.what());
  }
  if (r.error.empty() && r.stats.empty()) throw Error("malformed row: no statistics and no error");
  // The key is what resuming and reporting go by: a row whose params are not the run its key
  // names (an edited line, a line of another sweep's file) would be taken for that run.
  const std::string key = r.p.key();
  if (key != r.key)
    throw Error("malformed row: its key " + r.key + " is not the key of its params (" + key +
                "): the line was edited or does not come from gmmdiff");
  return r;
}

std::string rows_to_csv(const std::vector<SweepRow>& rows) {
  std::ostringstream os;
  os << kCsvHeader;
  for (const auto& r : rows) write_csv_row(os, r);
  return os.str();
}

}  // namespace gmmdiff
