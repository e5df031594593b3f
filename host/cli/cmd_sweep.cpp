// gmmdiff sweep: run a sweep file (or the embedded default), resumably, printing one line per
// finished run, then the report and the verdict table (docs/sweeps.md).
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <memory>

#include "cli/command.hpp"
#include "cli/common.hpp"
#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/claims.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"
#include "gmmdiff/sweep.hpp"
#include "sweep/distributed.hpp"
#include "cli/progress.hpp"

namespace gmmdiff::cli {

/// cmd_report.cpp: writes report.md/json, results.csv and the plots of dir; prints a summary.
void finish_report(const std::string& dir, bool plots, bool print_slopes, const ReportOptions& opt);

namespace {

struct SweepArgs {
  std::string file, out, backend, size;
  int threads = 0;
  bool print_default = false, dry_run = false, no_report = false, no_plots = false, list = false;
  CLI::App* app = nullptr;  ///< the subcommand: its options looked up by name (given)
};

/// Refuses an option that the command line's other options make meaningless (as every command
/// refuses an option that does not apply): --list and --print-default run nothing, so the options
/// of a run (--out, --threads, --dry-run, --no-report, --no-plots) do not apply to them, nor a
/// sweep file to --list; --no-plots does not apply without a report; a built-in sweep's --size
/// fixes its backend, so --backend beside it is ignored.
void check_options_apply(const SweepArgs& a) {
  const char* run_options[] = {"--out", "--threads", "--dry-run", "--no-report", "--no-plots"};
  if (a.list) {
    GMMDIFF_EXPECTS(a.file.empty(), "--list takes no sweep (it lists the built-in ones)");
    for (const char* o : {"--size", "--backend", "--print-default"})
      GMMDIFF_EXPECTS(!given(a.app, o), o, " does not apply to --list (it lists the built-in sweeps and exits)");
  }
  if (a.list || a.print_default)
    for (const char* o : run_options)
      GMMDIFF_EXPECTS(!given(a.app, o), o, " does not apply to ", a.list ? "--list" : "--print-default",
                      " (it prints and exits; nothing is run)");
  GMMDIFF_EXPECTS(!(a.no_plots && (a.no_report || a.dry_run)), "--no-plots does not apply with ",
                  a.no_report ? "--no-report" : "--dry-run", " (no report is written)");
  GMMDIFF_EXPECTS(!(a.dry_run && a.no_report), "--no-report does not apply with --dry-run (nothing is run)");
  GMMDIFF_EXPECTS(a.size.empty() || a.backend.empty(), "--backend does not apply with --size: a built-in sweep's "
                                                       "size fixes its backend (cpu and tiny: cpu; gpu: cuda)");
}

/// The backend kind the default sweep is sized for.
std::string default_kind(const std::string& backend) {
  if (backend == "cpu" || backend == "cuda") return backend;
  return cuda_compiled() && !cuda_devices().empty() ? "cuda" : "cpu";
}

/// The default sweep's JSON: sized for, and run on, the backend kind (its "backend" names it, so
/// that `gmmdiff sweep` and `gmmdiff sweep --backend cpu` on a CPU-only machine are one sweep).
std::string default_text(const SweepArgs& a) { return default_sweep_json(default_kind(a.backend)); }

std::string fmt(double x, const char* f = "%.3g") {
  if (std::isnan(x)) return "nan";
  char buf[48];
  std::snprintf(buf, sizeof buf, f, x);
  return buf;
}

std::string row_line(const SweepRow& r, std::size_t i, std::size_t total) {
  char head[32];
  std::snprintf(head, sizeof head, "[%*zu/%zu] ", static_cast<int>(std::to_string(total).size()), i, total);
  std::string s = head + r.p.label();
  if (!r.error.empty()) return s + "  FAILED: " + r.error;
  const StatResult& f = r.figure();
  s += "  TV " + fmt(f.tv_corrected, "%.4f") + " [" + fmt(f.ci_lo, "%.4f") + ", " + fmt(f.ci_hi, "%.4f") + "] (" +
       f.name + (f.resolved ? "" : ", unresolved") + ")  floor " + fmt(f.floor, "%.4f");
  const RowBracket& b = r.bracket;  // the other side, when the sweep has bounds
  if (b.present && !b.error.empty()) s += "  bounds FAILED: " + b.error;
  if (std::isfinite(b.tv_upper)) s += "  upper " + fmt(b.tv_upper, "%.4f");
  if (std::isfinite(b.tv_exact))
    s += "  exact " + fmt(b.tv_exact, "%.4f") + " [" + fmt(b.tv_exact_lo, "%.4f") + ", " + fmt(b.tv_exact_hi, "%.4f") + "]";
  if (std::isfinite(b.tv_reference)) s += "  ref " + fmt(b.tv_reference, "%.4f");
  s += "  eps_score " + fmt(r.eps_score, "%.3g") + "  " + fmt(r.wall_seconds, r.wall_seconds < 10 ? "%.2f" : "%.1f") +
       " s";
  if (r.p.score_error != ScoreErrorKind::None)
    s += "  eps_Jacobi " + (std::isnan(r.eps_jacobi) ? std::string("undefined") : fmt(r.eps_jacobi, "%.3g"));
  if (r.quantities.present) {
    const RowQuantities& q = r.quantities;
    s += "  max_t p99.9 tr(I+J) " + fmt(q.trace_p999, "%.3g") + " (log KT " + fmt(q.log_KT, "%.3g") + "), max ||J|| " +
         fmt(q.opnorm_max, "%.4g") + ", max E|X|^2 " + fmt(q.second_moment, "%.4g");
  }
  if (r.nonfinite) s += "  nonfinite " + std::to_string(r.nonfinite);
  return s;
}

void dry_run(const SweepSpec& spec, const std::string& out);
int run(const SweepArgs& a, const SweepSpec& spec, const std::string& out, dist::Comm& comm);

Runner setup(CLI::App& sub) {
  auto a = std::make_shared<SweepArgs>();
  sub.add_option("file", a->file,
                 "Sweep file (JSON, docs/sweeps.md), or a built-in sweep's name (--list); none: the embedded default");
  sub.add_option("--out,-o", a->out,
                 "Output directory (default: runs/<sweep name>, runs/default-<backend> for the default)");
  sub.add_option("--backend", a->backend,
                 "Embedded default only: size it for and run it on cpu | cuda | auto (a file sets \"backend\")");
  sub.add_option("--threads", a->threads, "CPU threads (0: all); results do not depend on it");
  sub.add_option("--size", a->size,
                 "Built-in sweeps: cpu | gpu | tiny (default: gpu when a CUDA device is present, else cpu)");
  sub.add_flag("--list", a->list, "List the built-in sweeps (the default and one per claim: gmmdiff claims) and exit");
  sub.add_flag("--print-default", a->print_default, "Print the embedded default sweep (to copy and edit) and exit");
  sub.add_flag("--dry-run", a->dry_run, "List the runs (and which are done in --out) without running them");
  sub.add_flag("--no-report", a->no_report, "Do not write the report and plots at the end");
  sub.add_flag("--no-plots", a->no_plots, "Write the report's tables but no PNG plots");
  a->app = &sub;
  return [a]() -> int {
    // Under MPI every rank parses the sweep (errors reported once, by rank 0); the runs are spread
    // over the ranks and rank 0 alone writes and prints (docs/scale.md).
    dist::Comm& comm = dist::world();
    dist::collective(comm, [&] { check_options_apply(*a); });
    if (a->list) {
      dist::on_root(comm, [&] {
        for (const BuiltinSweep& b : builtin_sweeps()) {
          char name[32];
          std::snprintf(name, sizeof name, "%-14s", b.name.c_str());
          std::cout << name << "  " << b.summary << "\n";
        }
        std::cout << "run one: gmmdiff sweep <name> [--size cpu|gpu|tiny] [--out DIR]; print it: gmmdiff sweep "
                     "<name> --print-default\n";
      });
      return kOk;
    }
    SweepSpec spec;
    std::string out = a->out, printed;
    dist::collective(comm, [&] {
      if (!a->backend.empty() && a->backend != "auto" && a->backend != "cpu" && a->backend != "cuda")
        throw Error("--backend \"" + a->backend + "\" (allowed: auto, cpu, cuda)");
      // A name that is not a file is a built-in sweep's (a file of that name wins: it is what was written).
      const bool builtin = !a->file.empty() && !std::filesystem::exists(a->file) && is_builtin_sweep(a->file);
      if (!a->size.empty() && !builtin && !(a->file.empty() && a->print_default))
        throw Error("--size applies to a built-in sweep's name (gmmdiff sweep --list)");
      const std::string size = !a->size.empty() ? a->size
                                                : (default_kind(a->backend.empty() ? "auto" : a->backend) == "cuda"
                                                       ? "gpu"
                                                       : "cpu");
      if (a->print_default) {
        if (!a->file.empty() && !builtin)
          throw Error("--print-default takes no sweep file (a built-in sweep's name: --list)");
        printed = builtin ? builtin_sweep_json(a->file, size)
                          : (a->size.empty() ? default_text(*a) : builtin_sweep_json("default", size));
        return;
      }
      if (builtin) {
        spec = parse_sweep(builtin_sweep_json(a->file, size), "built-in sweep " + a->file + " (" + size + ")", ".");
        if (out.empty()) out = "runs/" + spec.name;
      } else if (a->file.empty()) {
        const std::string kind = default_kind(a->backend);
        spec = parse_sweep(default_text(*a), "default sweep (" + kind + ")", ".");
        if (out.empty()) out = "runs/default-" + kind;
      } else {
        if (!a->backend.empty())
          throw Error("--backend applies to the embedded default; set \"backend\" in " + a->file + " instead");
        spec = load_sweep_file(a->file);
        if (out.empty()) out = "runs/" + spec.name;
      }
    });
    if (a->print_default) {
      if (comm.root()) std::cout << printed << "\n";
      return kOk;
    }
    if (a->dry_run) {
      dist::on_root(comm, [&] { dry_run(spec, out); });
      return kOk;
    }
    return run(*a, spec, out, comm);
  };
}

/// --dry-run: the runs, and which of them --out holds. The checks of the real run (spec.json,
/// results.jsonl, changed inputs), without writing: a dry run must not list as to do what the run
/// would refuse, nor as done what it would not take.
void dry_run(const SweepSpec& spec, const std::string& out) {
  const SweepDirStatus st = inspect_sweep_dir(spec, out);
  for (const auto& p : spec.runs) {
    const bool d = st.done.count(p.key()) > 0;
    std::cout << p.key() << "  " << (d ? "done " : "to do") << "  " << p.label() << "\n";
  }
  std::cout << spec.runs.size() << " runs (" << st.done.size() << " done in " << out << ")";
  if (st.foreign) std::cout << "; " << st.foreign << " rows there belong to no run of this sweep";
  std::cout << "\n";
}

/// Runs the sweep (over the ranks of comm), then writes its report.
int run(const SweepArgs& a, const SweepSpec& spec, const std::string& out, dist::Comm& comm) {
  std::unique_ptr<Progress> progress;
  SweepCallbacks cb;
  cb.on_note = [](const std::string& s) { std::cerr << "gmmdiff sweep: " << s << "\n"; };
  cb.on_start = [&](const RunParams& p, std::size_t i, std::size_t total) {
    progress =
        std::make_unique<Progress>("[" + std::to_string(i + 1) + "/" + std::to_string(total) + "] " + p.label());
    progress->update(0, 1);
  };
  cb.on_progress = [&](uint64_t done, uint64_t total) {
    if (progress) progress->update(done, total);
  };
  cb.on_row = [&](const SweepRow& r, std::size_t i, std::size_t total) {
    progress.reset();  // clears the progress line before the row is printed
    std::cout << row_line(r, i, total) << std::endl;
  };
  SweepRunOptions ro;
  ro.out_dir = out;
  ro.threads = a.threads;
  const SweepOutcome o = run_sweep(spec, ro, cb, comm);
  progress.reset();
  dist::on_root(comm, [&] {
    std::cerr << "gmmdiff sweep: " << o.ran << " runs done now, " << o.done_before << " before; results in "
              << out << "/results.jsonl\n";
    if (!a.no_report) finish_report(out, !a.no_plots, false, ReportOptions{});
  });
  return kOk;
}

const Registrar reg("sweep",
                    "Run a sweep of T x d x K x eps x sampler x seed (or the embedded default, \"is DDPM "
                    "dimension-free on mixtures?\"): resumable, one JSONL row per run, then the report",
                    40, setup, Ranks::kAll);

}  // namespace
}  // namespace gmmdiff::cli
