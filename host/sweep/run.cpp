// gmmdiff (sweep): running one run (run_one) and a whole sweep into its resumable output directory
// (run_sweep; include/gmmdiff/sweep.hpp, docs/sweeps.md). run_sweep makes the backends its runs
// name, once each, and hands them to run_one: no state outlives the call.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/quantities.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/sweep.hpp"
#include "gmmdiff/tv.hpp"
#include "gmmdiff/version.hpp"
#include "io/atomic_file.hpp"
#include "io/input.hpp"
#include "io/text.hpp"
#include "sweep/dir_lock.hpp"
#include "sweep/results_log.hpp"
#include "sweep/run_params.hpp"
#include "sweep/sweep_dir.hpp"

namespace gmmdiff {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// ---------------------------------------------------------------- one run

SampleOptions sample_options(const RunParams& p, std::size_t chunk,
                             const std::function<void(uint64_t, uint64_t)>& on_progress) {
  SampleOptions opt = sample_options_of(p);
  opt.chunk = chunk;
  opt.progress = on_progress;
  return opt;
}

/// The bracket of a run with bounds (docs/sweeps.md, "Bounds"), as `gmmdiff bracket` computes it
/// through host/bounds: ddpm's path upper bound or ddim's exact density, and the exact reference
/// when the model is reducible. What the bounds refuse at run time (a ddim step map that folds, a
/// reference whose line map folds) is recorded in bracket.error; the row keeps its lower bound.
RowBracket run_bracket(const RunParams& p, const Mixture& target, const Schedule& schedule, BoundsKernels& kr) {
  const auto t0 = std::chrono::steady_clock::now();
  RowBracket b;
  b.present = true;
  const SampleOptions opt = sample_options_of(p);
  const BoundsOptions bo = bounds_options_of(p);
  try {
    if (p.sampler == SamplerKind::DDPM || (p.sampler == SamplerKind::DDIMSong && p.eta > 0)) {
      const PathBound pb = path_bound(target, schedule, opt, bo, kr);
      b.tv_upper = pb.tv_upper();
      b.tv_upper_mean = pb.tv_upper_mean();
      b.tv_upper_se = pb.tv.se;
      b.tv_upper_quarter_M = pb.tv_upper_quarter();
      b.kl_upper = pb.kl.upper95();
      b.kl_upper_mean = pb.kl.mean;
      b.kl_upper_se = pb.kl.se;
      b.M = pb.M;
      b.n = pb.n;
    } else {
      const ExactDensity ex = exact_density(target, schedule, opt, bo, kr);
      b.tv_exact = ex.tv.mean;
      b.tv_exact_lo = ex.tv.lo95();
      b.tv_exact_hi = ex.tv.hi95();
      b.kl_exact = ex.kl.mean;
      b.n = ex.n;
    }
    if (reducible_reason(target, opt).empty()) {
      const Reference ref = exact_reference(target, schedule, opt);
      b.tv_reference = ref.tv;
      b.kl_reference = ref.kl_yx;
    }
  } catch (const ResourceError&) {
    throw;  // memory or a device: the sweep stops (exit 3), as for the sampler
  } catch (const Error& e) {
    b.error = e.what();
  }
  b.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return b;
}

/// The figures of a finished run: the TV report and the sampler's summary.
void record_figures(SweepRow& row, const TvReport& r, const RunSummary& s) {
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

// ---------------------------------------------------------------- the output directory

void create_out_dir(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(dir + ": cannot create the output directory (" + ec.message() + ")");
}

std::string spec_path_of(const std::string& out_dir) { return (fs::path(out_dir) / "spec.json").string(); }

/// Checks that the spec.json of out_dir, if there is one, is this sweep's; returns whether there is one.
bool check_spec(const std::string& out_dir, const SweepSpec& spec) {
  const std::string spec_path = spec_path_of(out_dir);
  std::error_code ec;
  if (!fs::exists(spec_path, ec)) return false;
  json have;
  try {
    have = parse_json(read_input_file(spec_path, "sweep's spec.json"), spec_path);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; delete it only if results.jsonl is empty");
  }
  if (have.dump(2) != spec.source)
    throw Error(out_dir + " holds a different sweep (spec.json \"" +
                (have.is_object() ? have.value("name", std::string("?")) : "?") +
                "\" differs from this one); use another --out directory, or delete " + out_dir + " to start over");
  return true;
}

/// Writes <out>/spec.json, or checks that the one there is this sweep's.
void check_or_write_spec(const std::string& out_dir, const SweepSpec& spec) {
  if (!check_spec(out_dir, spec)) write_file_atomic(spec_path_of(out_dir), spec.source + "\n");
}

/// Refuses to resume when a row was made from another version of an input file the sweep names
/// (a model, a schedule, a direction file): its figures belong to the old contents, and resuming
/// would mix them with runs of the new. Rows of gmmdiff versions that keyed schedule files by their
/// path carry no schedule hash; their keys are not this sweep's, so their runs are done again.
void check_inputs_unchanged(const std::vector<SweepRow>& rows, const SweepSpec& spec, const std::string& out_dir) {
  std::map<std::string, std::string> models, schedules, tv_files;  // path (or stats) -> hash now
  for (const auto& p : spec.runs) {
    if (!p.model_file.empty()) models[p.model_file] = p.model_hash;
    if (!p.schedule_file.empty() && !p.schedule_hash.empty()) schedules[p.schedule_file] = p.schedule_hash;
    if (!p.tv_files_hash.empty()) tv_files[p.tv.stats] = p.tv_files_hash;
  }
  auto refuse = [&](const std::string& what, const std::string& had, const std::string& now) {
    throw Error(out_dir + "/results.jsonl holds runs made with another version of " + what + " (hash " + had +
                ", now " + now + "): resuming would mix results of both. Restore it, or run the edited sweep in a "
                "new directory (--out NEW_DIR)");
  };
  for (const auto& r : rows) {
    if (!r.p.model_file.empty()) {
      const auto it = models.find(r.p.model_file);
      if (it != models.end() && it->second != r.p.model_hash)
        refuse("the model file " + r.p.model_file, r.p.model_hash, it->second);
    }
    if (!r.p.schedule_file.empty() && !r.p.schedule_hash.empty()) {
      const auto it = schedules.find(r.p.schedule_file);
      if (it != schedules.end() && it->second != r.p.schedule_hash)
        refuse("the schedule file " + r.p.schedule_file, r.p.schedule_hash, it->second);
    }
    if (!r.p.tv_files_hash.empty()) {
      const auto it = tv_files.find(r.p.tv.stats);
      if (it != tv_files.end() && it->second != r.p.tv_files_hash)
        refuse("the direction files of the statistics \"" + r.p.tv.stats + "\"", r.p.tv_files_hash, it->second);
    }
  }
}

/// The files a sweep writes in its directory must not be files it reads (a model saved there as
/// results.csv would be replaced by the first row's CSV).
void check_outputs_are_not_inputs(const std::string& out_dir, const SweepSpec& spec) {
  std::set<std::string> seen;
  std::vector<std::string> inputs;
  for (const auto& p : spec.runs)
    for (const std::string& f : {p.model_file, p.schedule_file})
      if (!f.empty() && seen.insert(f).second) inputs.push_back(f);
  for (const char* name :
       {"spec.json", "results.jsonl", "results.csv", kSweepKeysFile, "lock", "report.md", "report.json", "claim.md",
        "claim.json"})  // claim.*: the report of a claim's sweep (docs/claims.md)
    check_not_an_input((fs::path(out_dir) / name).string(), "sweep --out", inputs);
}

/// <out>/keys.txt: the keys of the sweep's runs, in run order. `gmmdiff report` reports exactly
/// the rows of these keys (rows of other sweeps' runs in results.jsonl are kept, not reported).
void write_keys(const std::string& out_dir, const SweepSpec& spec) {
  std::string keys;
  for (const auto& p : spec.runs) keys += p.key() + "\n";
  write_file_atomic((fs::path(out_dir) / kSweepKeysFile).string(), keys);
}

/// Says what run_sweep found: the sweep, repairs of results.jsonl, rows of other sweeps, and
/// (when resuming) how many runs are done and which of them another build made.
class Notes {
 public:
  explicit Notes(const SweepCallbacks& cb) : cb_(cb) {}
  void operator()(const std::string& s) const {
    if (cb_.on_note) cb_.on_note(s);
  }

  void repairs(const ResultsLog& log) const {
    if (log.completed_last_line())
      (*this)("the last line of results.jsonl was a whole row without its newline; the newline was added");
    if (log.dropped_bytes())
      (*this)("dropped a partial last line of results.jsonl (" + std::to_string(log.dropped_bytes()) +
              " bytes, a run interrupted while writing); that run is done again");
    if (log.duplicates()) (*this)(std::to_string(log.duplicates()) + " duplicate rows in results.jsonl ignored");
  }

  void foreign_rows(const ResultsLog& log, const std::set<std::string>& spec_keys) const {
    std::size_t foreign = 0;
    for (const auto& r : log.rows())
      if (!spec_keys.count(r.key)) ++foreign;
    if (foreign)
      (*this)(std::to_string(foreign) +
              " rows of results.jsonl belong to no run of this sweep (written by a gmmdiff that keyed "
              "runs differently?); they are kept in results.jsonl but not reported (keys.txt lists the runs reported)");
  }

  /// Rows from another build would be mixed with this one's: say which, so the reader can decide.
  void resuming(const ResultsLog& log, const std::set<std::string>& spec_keys, std::size_t done,
                std::size_t total, const std::string& log_path) const {
    (*this)("resuming: " + std::to_string(done) + " of " + std::to_string(total) + " runs already in " + log_path);
    std::map<std::string, std::size_t> other;
    for (const auto& r : log.rows())
      if (spec_keys.count(r.key) && r.version != version()) ++other[r.version.empty() ? "unknown" : r.version];
    for (const auto& [v, count] : other)
      (*this)(std::to_string(count) + " finished runs were made by gmmdiff " + v + ", not this build (" + version() +
              "); their rows are kept");
  }

 private:
  const SweepCallbacks& cb_;
};

/// The rows of the sweep's runs that the log holds, in run order.
std::vector<SweepRow> rows_in_run_order(const ResultsLog& log, const SweepSpec& spec) {
  std::map<std::string, const SweepRow*> by_key;
  for (const auto& r : log.rows()) by_key[r.key] = &r;
  std::vector<SweepRow> v;
  for (const auto& p : spec.runs) {
    auto it = by_key.find(p.key());
    if (it != by_key.end()) v.push_back(*it->second);
  }
  return v;
}

/// The CSV is rewritten whole: after every row for sweeps of up to a few thousand runs, every 1%
/// beyond (rewriting it costs O(rows)), and always at the end.
bool csv_due(std::size_t runs, std::size_t ran, std::size_t finished, std::size_t total) {
  const std::size_t every = std::max<std::size_t>(1, runs / 100);
  return runs <= 2000 || ran % every == 0 || finished == total;
}

}  // namespace

std::map<std::string, std::unique_ptr<Backend>> make_backends(const SweepSpec& spec, int threads) {
  std::set<std::string> names;
  for (const auto& p : spec.runs) names.insert(p.backend);
  std::map<std::string, std::unique_ptr<Backend>> backends;
  for (const auto& b : names) backends.emplace(b, make_backend(b, threads));
  return backends;
}

SweepRow run_one(const RunParams& p, std::size_t chunk, Backend& be,
                 const std::function<void(uint64_t, uint64_t)>& on_progress, BoundsKernels* bounds_kernels) {
  const auto t0 = std::chrono::steady_clock::now();
  SweepRow row;
  row.key = p.key();
  row.p = p;
  row.version = version();

  const Mixture target = build_target(p);  // the copy parse_sweep loaded, or a file checked against its hash
  const Schedule schedule = build_schedule(p);
  const SampleOptions opt = sample_options(p, chunk, on_progress);
  row.backend = be.name();
  row.device = be.device_name();

  TvOptions to = p.tv;
  to.seed = p.seed;
  TvPlan plan(target, to, p.n);
  plan.prepare_reference(be, p.precision);
  TvSink sink(plan, p.precision);
  RunSummary s;
  try {
    s = run_sampler(target, schedule, opt, be, sink);
  } catch (const NumericalError& e) {
    // The run itself diverged (particles turned non-finite): record it, keep the sweep going.
    row.error = e.what();
  }
  if (row.error.empty()) {
    record_figures(row, sink.report(), s);
    if (p.score_error != ScoreErrorKind::None) {
      const EpsJacobi ej = measure_eps_jacobi(target, schedule, opt);
      row.eps_jacobi = ej.defined ? ej.value : std::numeric_limits<double>::quiet_NaN();
      row.eps_jacobi_se = ej.defined ? ej.se : std::numeric_limits<double>::quiet_NaN();
    }
    if (p.quantities) {
      InspectOptions io;
      io.n = kRowQuantityPoints;
      io.sampler = false;  // over X_t ~ p_t; `gmmdiff inspect` measures the sampler's Y_t too
      const Inspection ins = inspect_quantities(target, schedule, opt, io, be);
      RowQuantities& q = row.quantities;
      q.present = true;
      q.log_KT = std::log(double(target.K) * schedule.T);
      q.steps = static_cast<int>(ins.rows.size());
      q.points = io.n;
      for (const InspectRow& ir : ins.rows) {
        q.trace_mean = std::max(q.trace_mean, ir.forward.trace.mean);
        q.trace_p999 = std::max(q.trace_p999, ir.forward.trace.p999);
        q.trace_max = std::max(q.trace_max, ir.forward.trace.max);
        q.opnorm_mean = std::max(q.opnorm_mean, ir.forward.opnorm.mean);
        q.opnorm_max = std::max(q.opnorm_max, ir.forward.opnorm.max);
        q.second_moment = std::max(q.second_moment, ir.second_moment_exact);
      }
    }
  }
  if (row.error.empty() && p.bounds.on) {
    std::unique_ptr<BoundsKernels> own;
    if (!bounds_kernels) own = make_bounds_kernels(p.backend, 0);
    row.bracket = run_bracket(p, target, schedule, bounds_kernels ? *bounds_kernels : *own);
  }
  row.wall_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  row.finished_at = text::utc_now();
  return row;
}

SweepDir::SweepDir(const SweepSpec& spec, const std::string& out_dir, const SweepCallbacks& cb)
    : spec_(spec), cb_(cb), out_dir_(out_dir) {
  if (out_dir.empty()) throw Error("sweep: no output directory");
  create_out_dir(out_dir);
  check_outputs_are_not_inputs(out_dir, spec);
  lock_ = std::make_unique<DirLock>(out_dir);
  check_or_write_spec(out_dir, spec);

  log_path_ = (fs::path(out_dir) / "results.jsonl").string();
  log_ = std::make_unique<ResultsLog>(log_path_);
  check_inputs_unchanged(log_->rows(), spec, out_dir);
  write_keys(out_dir, spec);
  const Notes note(cb);
  note(spec.name + ": " + std::to_string(spec.runs.size()) + " runs -> " + out_dir);
  note.repairs(*log_);

  out_.total = spec.runs.size();
  std::set<std::string> spec_keys;
  for (const auto& p : spec.runs) spec_keys.insert(p.key());
  note.foreign_rows(*log_, spec_keys);
  for (const auto& p : spec.runs)
    if (log_->has(p.key())) ++out_.done_before;
  if (out_.done_before) note.resuming(*log_, spec_keys, out_.done_before, out_.total, log_path_);

  csv_path_ = (fs::path(out_dir) / "results.csv").string();
  write_file_atomic(csv_path_, rows_to_csv(rows_in_run_order(*log_, spec)));
  finished_ = out_.done_before;
}

SweepDir::~SweepDir() = default;

bool SweepDir::done(std::size_t i) const { return log_->has(spec_.runs.at(i).key()); }

void SweepDir::record(SweepRow row, std::size_t i) {
  row.sweep = spec_.name;
  row.index = i;
  log_->append(row);
  ++finished_;
  ++out_.ran;
  if (csv_due(spec_.runs.size(), out_.ran, finished_, out_.total))
    write_file_atomic(csv_path_, rows_to_csv(rows_in_run_order(*log_, spec_)));
  if (cb_.on_row) cb_.on_row(row, finished_, out_.total);
}

SweepOutcome SweepDir::finish() {
  out_.rows = rows_in_run_order(*log_, spec_);
  if (out_.ran) write_file_atomic(csv_path_, rows_to_csv(out_.rows));
  return out_;
}

SweepDirStatus inspect_sweep_dir(const SweepSpec& spec, const std::string& out_dir) {
  SweepDirStatus st;
  std::error_code ec;
  if (!fs::exists(out_dir, ec)) return st;
  if (!fs::is_directory(out_dir, ec)) throw Error(out_dir + ": cannot create the output directory (Not a directory)");
  st.exists = true;
  check_spec(out_dir, spec);
  const std::string log_path = (fs::path(out_dir) / "results.jsonl").string();
  if (!fs::exists(log_path, ec)) return st;
  const std::vector<SweepRow> rows = read_results(log_path);
  check_inputs_unchanged(rows, spec, out_dir);
  std::set<std::string> spec_keys;
  for (const auto& p : spec.runs) spec_keys.insert(p.key());
  for (const auto& r : rows) {
    if (spec_keys.count(r.key)) st.done.insert(r.key);
    else ++st.foreign;
  }
  return st;
}

SweepOutcome run_sweep(const SweepSpec& spec, const SweepRunOptions& opt, const SweepCallbacks& cb) {
  if (opt.out_dir.empty()) throw Error("sweep: no output directory");
  const auto backends = make_backends(spec, opt.threads);
  // The bounds' kernels for each backend that runs bounds (the CPU's, or the CUDA kernels: the
  // CPU's figures to rounding), made once each, like the backends.
  std::map<std::string, std::unique_ptr<BoundsKernels>> bounds_kernels;
  for (const auto& p : spec.runs)
    if (p.bounds.on && !bounds_kernels.count(p.backend))
      bounds_kernels.emplace(p.backend, make_bounds_kernels(p.backend, opt.threads));
  SweepDir dir(spec, opt.out_dir, cb);
  for (std::size_t i = 0; i < spec.runs.size(); ++i) {
    const RunParams& p = spec.runs[i];
    if (dir.done(i)) continue;
    if (cb.on_start) cb.on_start(p, dir.finished(), spec.runs.size());
    auto kr = bounds_kernels.find(p.backend);
    dir.record(run_one(p, spec.chunk, *backends.at(p.backend), cb.on_progress,
                       kr == bounds_kernels.end() ? nullptr : kr->second.get()),
               i);
  }
  return dir.finish();
}

}  // namespace gmmdiff
