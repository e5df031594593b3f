// gmmdiff: sweeps that check convergence bounds (THEORY.md, The bound to verify; docs/sweeps.md).
//
// A sweep file (JSON) gives every parameter as a scalar or a list; the runs are the Cartesian
// product in a fixed order (family, sd, radius, model_seed, d, K, score_error, eps, error_profile,
// bias_direction, sampler, eta, variance, schedule, stop, precision, n, T, seed), optionally a union of several "grids" that
// override the top-level axes. Each run has a stable key (a hash of its canonical parameters).
// Results go to an output directory, one JSON line per finished run, so that a killed sweep
// resumes without lost or duplicated rows.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/schedule.hpp"
#include "gmmdiff/tv.hpp"
#include "gmmdiff/types.hpp"

namespace gmmdiff {

/// A sweep's "bounds": {"M": .., "n": ..} (docs/sweeps.md, "Bounds"): each run also gets the
/// bracket of `gmmdiff bracket`, through host/bounds (ddpm: the importance-weighted upper bound
/// with M continuations per outer draw; ddim: the exact density; a reducible model: the exact
/// reference too). Off, a run's key and row are what they were before bounds existed.
struct RunBounds {
  bool on = false;
  int M = kDefaultPathM;  ///< continuations per outer draw (ddpm)
  uint64_t n = 0;         ///< outer draws (ddpm) or particles (ddim); 0: kDefaultPathOuter / kDefaultFlowParticles
};

/// All that determines one run's result (chunk size and thread count do not, by design).
struct RunParams {
  // target
  std::string family;      ///< label: the preset name or "model:<file stem>"
  std::string preset;      ///< gaussian | two-point | random-sphere | simplex; "" for a model file
  std::string model_file;  ///< absolute path of a model JSON ("" for presets)
  std::string model_hash;  ///< FNV-1a of the loaded model's shape and values (its contents: a changed
                           ///< file, or a changed .npy it names, is a new run)
  /// The model file's mixture as parse_sweep loaded it (once per sweep; every run uses this copy,
  /// so an edit of the file while the sweep runs changes nothing). Null: run_one loads model_file
  /// and refuses it unless its hash is model_hash.
  std::shared_ptr<const Mixture> model;
  int d = 2;
  int K = 2;               ///< resolved
  std::string K_spec;      ///< as written ("d", "4d", "2"): what groups across d keep fixed
  bool full_rank = false;  ///< the family asked for K >= d
  double radius = 2.0;
  double sd = 1.0;
  uint64_t model_seed = 0;  ///< random-sphere means
  // score error
  ScoreErrorKind score_error = ScoreErrorKind::None;
  double eps = 0.0;
  ErrorProfile error_profile = ErrorProfile::Uniform;  ///< uniform | front-loaded | back-loaded (no files in sweeps)
  std::string bias_direction = "random";  ///< the bias error's direction: random | means | "v1,...,vd"
  // sampler and schedule
  SamplerKind sampler = SamplerKind::DDPM;
  Variance variance = Variance::Beta;
  double eta = 0.0;  ///< ddim-song's eta (0 for the other samplers)
  std::string schedule = "lcw";
  double c0 = 2.0, c1 = 10.0;
  std::string schedule_file;  ///< absolute, for schedule "file"
  std::string schedule_kind = "auto";  ///< what a schedule file's values are: alpha | abar | auto
  /// FNV-1a of the schedule file's schedule (T and every alpha_t): its contents key the run. Empty
  /// in rows written before schedule files were keyed by their contents (their keys hash the path).
  std::string schedule_hash;
  /// The schedule file's schedule as parse_sweep loaded it (once per sweep). Null: run_one loads
  /// schedule_file and refuses it unless its hash is schedule_hash.
  std::shared_ptr<const Schedule> schedule_loaded;
  int T = 64;  ///< for a schedule file: its length (what ran), whatever the sweep's T axis says
  int stop = 1;
  Precision precision = Precision::FP32;
  uint64_t n = 10000;
  uint64_t seed = 0;
  int eps_samples = 1024;
  /// Also measure the proofs' quantities over X_t ~ p_t (quantities.hpp: inspect_quantities at its
  /// default steps, kRowQuantityPoints draws each): the key-lemma and smoothness sweeps.
  bool quantities = false;
  std::string backend = "auto";  ///< as written in the sweep (the row records the one used)
  TvOptions tv;                  ///< tv.seed is the run seed; tv.files the file:PATH statistics, loaded once
  RunBounds bounds;              ///< in canonical() only when on (older rows keep their keys)
  /// FNV-1a of the arrays of tv's file:PATH statistics (empty when it has none): their contents
  /// key the run.
  std::string tv_files_hash;

  /// "T=64;d=8;..." every field above in a fixed order with round-trip number formatting.
  std::string canonical() const;
  /// 16 hex digits: FNV-1a 64 of canonical().
  std::string key() const;
  /// One-line description for tables and progress: "T=64 d=8 K=8 random-sphere sd=1 ...".
  std::string label() const;
};

/// A parsed, validated and expanded sweep.
struct SweepSpec {
  std::string name;  ///< "name" in the file (or the file's stem)
  std::string description;
  std::string source;           ///< the sweep's JSON, normalised (keys sorted): copied to spec.json
  std::size_t chunk = 0;        ///< rows per chunk (0: automatic); does not change results
  std::vector<RunParams> runs;  ///< deduplicated by key, in the product's order
};

/// Parses and validates a sweep given as JSON text. Relative model and schedule files are taken
/// relative to base_dir. Throws gmmdiff::Error with one line naming `origin`, the key and what is
/// allowed. Model files are loaded (and validated) here, so that a bad file stops the sweep before
/// anything is written.
SweepSpec parse_sweep(const std::string& json_text, const std::string& origin, const std::string& base_dir = ".");
/// Reads and parses a sweep file.
SweepSpec load_sweep_file(const std::string& path);

/// The embedded default sweep for a backend kind ("cpu" or "cuda"): "is DDPM dimension-free on
/// mixtures?", sized to run in a few minutes on 2 CPU cores, or at full scale on one GPU.
std::string default_sweep_json(const std::string& backend_kind);

/// The bracket of a run with bounds (RunBounds), with the keys `gmmdiff bracket --json` uses; a
/// figure that does not apply is NaN (null in the row).
struct RowBracket {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  bool present = false;
  double tv_upper = nan;            ///< ddpm: one-sided 95% upper bound on TV(X_0, Y_s) (U_TV(M) + 1.645 se + TV(X_0, X_1) for stop 1)
  double tv_upper_mean = nan;       ///< the same with the mean of U_TV(M)
  double tv_upper_se = nan;         ///< standard error of U_TV(M)
  double tv_upper_quarter_M = nan;  ///< the one-sided bound with M/4 (diagnostic)
  double kl_upper = nan;            ///< one-sided 95% upper bound on KL(X_s || Y_s)
  double kl_upper_mean = nan;       ///< its estimate, the mean of U_KL(M) (bracket --json's kl_upper_mean)
  double kl_upper_se = nan;         ///< standard error of U_KL(M)
  int M = 0;                        ///< continuations used (ddpm; 0 otherwise)
  uint64_t n = 0;                   ///< outer draws or particles
  double tv_exact = nan, tv_exact_lo = nan, tv_exact_hi = nan;  ///< ddim: TV(X_0, Y_s) and its CLT 95% interval
  double kl_exact = nan;            ///< ddim: KL(Y_s || X_0)
  double tv_reference = nan;        ///< reducible models: TV(X_0, Y_s) by quadrature
  double kl_reference = nan;        ///< reducible models: KL(Y_s || X_0)
  double seconds = 0;               ///< the bounds' time
  std::string error;                ///< the bounds refused the run (e.g. a ddim step map that folds): no figures
  /// The figure the report fits on the upper side: tv_upper_mean (ddpm) or tv_exact (ddim); NaN if none.
  double upper_figure() const { return tv_upper_mean == tv_upper_mean ? tv_upper_mean : tv_exact; }
};

/// Draws per step of a row's quantities (RunParams::quantities).
constexpr uint64_t kRowQuantityPoints = 2048;

/// The proofs' quantities of a run, each the maximum over the measured steps t of a per-step
/// figure over X_t ~ p_t (present only when RunParams::quantities).
struct RowQuantities {
  bool present = false;
  double log_KT = 0;
  double trace_mean = 0;    ///< max_t of the mean of tr(I + J_t)
  double trace_p999 = 0;    ///< max_t of its 99.9th percentile
  double trace_max = 0;     ///< max_t of its maximum
  double opnorm_mean = 0;   ///< max_t of the mean of ||J_t||_op
  double opnorm_max = 0;    ///< max over t and points of ||J_t||_op (a lower bound on max_t Lip(s_t))
  double second_moment = 0; ///< max_t of E|X_t|^2 (closed form)
  int steps = 0;
  uint64_t points = 0;      ///< draws per step
};

/// One finished run: its parameters and every figure, as one JSON line of results.jsonl.
struct SweepRow {
  std::string key;
  std::string sweep;
  std::size_t index = 0;  ///< position of the run in the expanded sweep
  RunParams p;
  std::vector<StatResult> stats;
  std::size_t best = 0;  ///< TvReport::best: the statistic with the largest tv_corrected
  uint64_t nonfinite = 0;
  double eps_score = 0;  ///< realised (RunSummary::eps_score)
  /// eps_Jacobi of the score error (quantities.hpp: measure_eps_jacobi), NaN where undefined
  /// (gaussian). Written to the row only when there is a score error (none: exactly 0).
  double eps_jacobi = 0;
  double eps_jacobi_se = 0;
  RowQuantities quantities;
  double seconds = 0;    ///< sampling time
  double eps_seconds = 0;
  double wall_seconds = 0;  ///< the whole run: reference, sampling, TV
  double elt_steps_per_s = 0;
  int steps = 0;
  std::size_t chunks = 0;
  std::string backend, device, version, finished_at;

  std::vector<std::string> notes;  ///< TvReport::notes (statistics skipped and why)
  RowBracket bracket;              ///< present when p.bounds.on (and the run did not fail)
  std::string error;               ///< non-empty: the run failed (e.g. non-finite particles); no figures

  /// The statistic that gives the run's figure: the largest bias-corrected TV among the resolved
  /// statistics, or among all of them when none is resolved.
  std::size_t figure_index() const;
  const StatResult& figure() const { return stats.at(figure_index()); }
  double tv() const { return stats.empty() ? 0.0 : figure().tv_corrected; }
};

/// One line of results.jsonl (no trailing newline) and back. parse_row throws gmmdiff::Error.
std::string row_to_json(const SweepRow& r);
SweepRow parse_row(const std::string& line);
/// The CSV header and one line per row (the max statistic's figures; all parameters).
std::string rows_to_csv(const std::vector<SweepRow>& rows);

// ---- the output directory: <out>/spec.json, results.jsonl, results.csv, lock (docs/sweeps.md) ----

/// Reads the rows of a results.jsonl without modifying it (a partial last line is ignored; a whole
/// row without its newline is read). Every row is checked against its key (parse_row).
std::vector<SweepRow> read_results(const std::string& path);

/// <out>/keys.txt: the keys of the runs of the sweep last run in the directory, in run order.
constexpr const char* kSweepKeysFile = "keys.txt";

/// What a sweep's output directory holds for spec, found by the checks run_sweep makes before it
/// runs anything (spec.json is this sweep's, results.jsonl reads, no row was made from another
/// version of an input file), without writing anything: `gmmdiff sweep --dry-run`.
struct SweepDirStatus {
  bool exists = false;              ///< out_dir exists
  std::set<std::string> done;       ///< keys of spec's runs that have a row
  std::size_t foreign = 0;          ///< rows of runs that are not spec's
};
/// Throws the gmmdiff::Error run_sweep would throw for out_dir before running anything.
SweepDirStatus inspect_sweep_dir(const SweepSpec& spec, const std::string& out_dir);

/// How run_sweep reports what it does (all optional; the library itself prints nothing).
struct SweepCallbacks {
  /// A run finished and its row is on disk. i: runs finished so far (resumed ones included).
  std::function<void(const SweepRow& row, std::size_t i, std::size_t total)> on_row;
  /// A run starts (for progress).
  std::function<void(const RunParams& p, std::size_t i, std::size_t total)> on_start;
  /// Progress within the current run (particle-steps done, in all).
  std::function<void(uint64_t done, uint64_t total)> on_progress;
  /// A note for stderr ("resuming: 12 of 40 runs done", "dropped a partial line").
  std::function<void(const std::string&)> on_note;
};

struct SweepRunOptions {
  std::string out_dir;
  int threads = 0;  ///< CPU threads (0: OpenMP's default)
};

/// What run_sweep did.
struct SweepOutcome {
  std::size_t total = 0, done_before = 0, ran = 0;
  std::vector<SweepRow> rows;  ///< all rows of the sweep, in run order
};

/// Runs every run of spec whose key is not yet in <out>/results.jsonl. Makes the backends the
/// runs name (once each, for this call only: an unavailable one is an error before anything is
/// written), creates out_dir, checks or writes spec.json (a different sweep in the same directory
/// is an error), holds the directory's lock (a second writer gets gmmdiff::Error), refuses rows
/// made from another version of an input file (inspect_sweep_dir), writes keys.txt, and
/// regenerates results.csv (atomically) after each row.
SweepOutcome run_sweep(const SweepSpec& spec, const SweepRunOptions& opt, const SweepCallbacks& cb = {});

/// Runs one run on backend and returns its row (no files): the row records the backend that ran
/// it (p.backend is what the sweep asked for; run_sweep passes the backend made from it).
/// on_progress reaches the sampler as SampleOptions::progress. With p.bounds.on, the bracket is
/// computed on bounds_kernels (when null: made here for p.backend, all threads).
SweepRow run_one(const RunParams& p, std::size_t chunk, Backend& backend,
                 const std::function<void(uint64_t, uint64_t)>& on_progress = {},
                 BoundsKernels* bounds_kernels = nullptr);

}  // namespace gmmdiff
