// gmmdiff Python module: sweeps and their reports (gmmdiff/sweep.hpp run_sweep, gmmdiff/report.hpp),
// as `gmmdiff sweep` and `gmmdiff report`: the same output directory (spec.json, results.jsonl,
// results.csv, report.md/json), resumable, and rows as the dicts of results.jsonl.
#include <filesystem>

#include "common.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"
#include "gmmdiff/sweep.hpp"

namespace gmmdiff::python {

namespace {

namespace fs = std::filesystem;

/// The backend kind the embedded default sweep is sized for (as `gmmdiff sweep --backend`).
std::string default_kind(const std::string& backend) {
  if (backend == "cpu" || backend == "cuda") return backend;
  return cuda_compiled() && !cuda_devices().empty() ? "cuda" : "cpu";
}

void check_backend(const std::string& b) {
  if (!b.empty() && b != "auto" && b != "cpu" && b != "cuda")
    throw Error("--backend \"" + b + "\" (allowed: auto, cpu, cuda)");
}

py::object row_dict(const SweepRow& r) { return json_loads(row_to_json(r)); }

void check_report_options(double level, double growth_tol) {
  if (!(level > 0 && level < 1)) throw Error("--level must lie in (0, 1)");
  if (!(growth_tol > 0)) throw Error("--growth-tol must be positive");
}

py::list sweep(py::object spec_arg, py::object out_arg, py::object backend_arg, int threads, bool report,
               py::object on_row, py::object progress, py::object info) {
  if (!on_row.is_none() && !PyCallable_Check(on_row.ptr()))
    throw py::type_error("on_row must be a callable on_row(row, i, total) or None");
  if (!info.is_none() && !py::isinstance<py::dict>(info)) fill_info(info, py::dict());
  const std::string backend = backend_arg.is_none() ? "" : backend_arg.cast<std::string>();
  check_backend(backend);
  std::string out = as_path(out_arg, "out", true);
  SweepSpec spec;
  if (spec_arg.is_none()) {
    const std::string kind = default_kind(backend);
    spec = parse_sweep(default_sweep_json(kind), "default sweep (" + kind + ")", ".");
    if (out.empty()) out = "runs/default-" + kind;
  } else if (py::isinstance<py::dict>(spec_arg)) {
    if (!backend.empty()) throw Error("backend applies to the embedded default; set \"backend\" in the sweep instead");
    spec = parse_sweep(json_dumps(spec_arg), "sweep dict", fs::current_path().string());
    if (out.empty()) out = "runs/" + spec.name;
  } else {
    const std::string file = as_path(spec_arg, "spec");
    if (!backend.empty())
      throw Error("--backend applies to the embedded default; set \"backend\" in " + file + " instead");
    {
      py::gil_scoped_release nogil;
      spec = load_sweep_file(file);
    }
    if (out.empty()) out = "runs/" + spec.name;
  }

  Interrupter interrupter(progress);
  std::vector<std::string> notes;
  SweepCallbacks cb;
  cb.on_note = [&](const std::string& s) { notes.push_back(s); };
  cb.on_progress = interrupter.callback();
  cb.on_start = [&](const RunParams&, std::size_t, std::size_t) { interrupter.check_signals(); };
  cb.on_row = [&](const SweepRow& r, std::size_t i, std::size_t total) {
    if (on_row.is_none()) return;
    py::gil_scoped_acquire gil;
    on_row(row_dict(r), i, total);
  };
  SweepRunOptions ro;
  ro.out_dir = out;
  ro.threads = threads;
  SweepOutcome o;
  std::string report_path;
  {
    // run_sweep owns its backends: sweeps in two threads are independent, and two on one output
    // directory are refused by its lock (a ValueError), as two processes would be.
    py::gil_scoped_release nogil;
    o = run_sweep(spec, ro, cb);
    if (report) {
      write_report(out, ReportOptions{});
      report_path = (fs::path(out) / "report.md").string();
    }
  }
  py::list rows;
  for (const auto& r : o.rows) rows.append(row_dict(r));
  py::dict d;
  d["out"] = out;
  d["total"] = o.total;
  d["done_before"] = o.done_before;
  d["ran"] = o.ran;
  d["notes"] = py::cast(notes);
  d["report"] = report_path.empty() ? py::object(py::none()) : py::object(py::str(report_path));
  fill_info(info, d);
  return rows;
}

}  // namespace

void init_sweep(py::module_& m) {
  m.def("sweep", &sweep, py::arg("spec") = py::none(), py::kw_only(), py::arg("out") = py::none(),
        py::arg("backend") = py::none(), py::arg("threads") = 0, py::arg("report") = true,
        py::arg("on_row") = py::none(), py::arg("progress") = py::none(), py::arg("info") = py::none(), R"doc(
Runs a sweep (docs/sweeps.md) as `gmmdiff sweep`: every run of the T x d x K x ... product whose
row is not yet in <out>/results.jsonl, appending one row per finished run, so that a sweep that was
interrupted (Ctrl-C: KeyboardInterrupt, within about a step) resumes where it stopped when called
again. Returns every row of the sweep, in run order, as the dicts of results.jsonl: the
parameters under "params", the run's figure ("tv": the largest bias-corrected TV lower bound of a
resolved statistic, "tv_stat", "ci_lo", "ci_hi", "floor", "resolved"), every statistic under
"stats", and eps_score, timings, backend, version.

spec: the path of a sweep file, a dict with the same content (relative files from the current
directory), or None for the embedded default sized for `backend` (cpu, cuda, auto: only with the
default). out: the output directory (default runs/<name>, runs/default-<kind> for the default).
threads: CPU threads (results do not depend on it). report: also write report.md, report.json
and results.csv (the CLI's report, without its PNG plots: plot rows with Matplotlib).
on_row(row, i, total): called after each finished run. progress(done, total): particle-steps of
the current run, about every 0.1 s. info: a dict that receives out, total, done_before, ran, notes
(what the CLI prints on stderr: resuming, dropped partial lines) and report (the report's path).)doc");

  m.def(
      "report",
      [](py::object dir_arg, double level, double growth_tol) {
        const std::string dir = as_path(dir_arg, "dir");
        check_report_options(level, growth_tol);
        if (!fs::exists(dir)) throw Error(dir + ": no such directory (give a sweep's --out directory)");
        if (!fs::is_directory(dir))
          throw Error(dir + ": not a directory (give a sweep's --out directory, which holds results.jsonl)");
        ReportOptions opt;
        opt.level = level;
        opt.growth_tol = growth_tol;
        std::string text;
        {
          py::gil_scoped_release nogil;
          text = report_json(write_report(dir, opt));
        }
        return json_loads(text);
      },
      py::arg("dir"), py::kw_only(), py::arg("level") = 0.95, py::arg("growth_tol") = 0.25, R"doc(
The analysis of a sweep's output directory, as `gmmdiff report DIR` (without the PNG plots):
writes report.md, report.json and results.csv there and returns report.json as a dict (fitted
log-log slopes of TV against T with CIs, TV across d and K at fixed T, the verdicts).)doc");

  m.def(
      "load_results",
      [](py::object dir_arg) {
        std::string path = as_path(dir_arg, "dir");
        if (fs::is_directory(path)) path = (fs::path(path) / "results.jsonl").string();
        std::vector<SweepRow> rows;
        {
          py::gil_scoped_release nogil;
          rows = read_results(path);
        }
        py::list l;
        for (const auto& r : rows) l.append(row_dict(r));
        return l;
      },
      py::arg("dir"), "The rows of a sweep's results.jsonl (a directory or the file), as sweep() returns them; read only.");

  m.def(
      "default_sweep",
      [](const std::string& backend) {
        check_backend(backend);
        return json_loads(default_sweep_json(default_kind(backend)));
      },
      py::arg("backend") = "cpu", R"doc(
The embedded default sweep ("is DDPM dimension-free on mixtures?") sized for a backend kind, as a
dict (`gmmdiff sweep --print-default`): edit it and pass it to sweep().)doc");
}

}  // namespace gmmdiff::python
