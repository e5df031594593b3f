// gmmdiff sweep: run a sweep file (or the embedded default), resumably, printing one line per
// finished run, then the report and the verdict table (docs/sweeps.md).
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>

#include "cli/command.hpp"
#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
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
  std::string file, out, backend;
  int threads = 0;
  bool print_default = false, dry_run = false, no_report = false, no_plots = false;
};

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
  s += "  eps_score " + fmt(r.eps_score, "%.3g") + "  " + fmt(r.wall_seconds, r.wall_seconds < 10 ? "%.2f" : "%.1f") +
       " s";
  if (r.nonfinite) s += "  nonfinite " + std::to_string(r.nonfinite);
  return s;
}

void dry_run(const SweepSpec& spec, const std::string& out);
int run(const SweepArgs& a, const SweepSpec& spec, const std::string& out, dist::Comm& comm);

Runner setup(CLI::App& sub) {
  auto a = std::make_shared<SweepArgs>();
  sub.add_option("file", a->file, "Sweep file (JSON, docs/sweeps.md); none: the embedded default");
  sub.add_option("--out,-o", a->out,
                 "Output directory (default: runs/<sweep name>, runs/default-<backend> for the default)");
  sub.add_option("--backend", a->backend,
                 "Embedded default only: size it for and run it on cpu | cuda | auto (a file sets \"backend\")");
  sub.add_option("--threads", a->threads, "CPU threads (0: all); results do not depend on it");
  sub.add_flag("--print-default", a->print_default, "Print the embedded default sweep (to copy and edit) and exit");
  sub.add_flag("--dry-run", a->dry_run, "List the runs (and which are done in --out) without running them");
  sub.add_flag("--no-report", a->no_report, "Do not write the report and plots at the end");
  sub.add_flag("--no-plots", a->no_plots, "Write the report's tables but no PNG plots");
  return [a]() -> int {
    // Under MPI every rank parses the sweep (errors reported once, by rank 0); the runs are spread
    // over the ranks and rank 0 alone writes and prints (docs/scale.md).
    dist::Comm& comm = dist::world();
    SweepSpec spec;
    std::string out = a->out;
    dist::collective(comm, [&] {
      if (!a->backend.empty() && a->backend != "auto" && a->backend != "cpu" && a->backend != "cuda")
        throw Error("--backend \"" + a->backend + "\" (allowed: auto, cpu, cuda)");
      if (a->print_default) {
        if (!a->file.empty()) throw Error("--print-default takes no sweep file");
        return;
      }
      if (a->file.empty()) {
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
      if (comm.root()) std::cout << default_text(*a) << "\n";
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
