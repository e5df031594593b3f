// gmmdiff inspect: the quantities the proofs use, per step t, over exact forward draws X_t ~ p_t
// and over the sampler's own Y_t (gmmdiff/quantities.hpp; docs/claims.md, "inspect"):
// tr(I + J_t) (the key lemma: <~ log(KT) for sd 1), ||J_t||_op (the score's Lipschitz constant) and
// |x|^2 (the second moment), each as mean, 99th / 99.9th percentiles and max, beside log(KT).
// Optional JSON (one row per t) and a PNG plot against t (tools/plot_inspect.py).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.hpp"
#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/quantities.hpp"
#include "gmmdiff/report.hpp"
#include "gmmdiff/sampler.hpp"
#include "io/atomic_file.hpp"

namespace gmmdiff::cli {
namespace {

struct InspectState {
  ModelArgs model;
  ScheduleArgs schedule;
  SamplerArgs sampler;
  std::string steps, json, plot;
  bool no_sampler = false;
  CLI::App* app = nullptr;  ///< the subcommand: its options looked up by name (given)
};

std::string f4(double x) {
  if (std::isnan(x)) return "-";
  char b[32];
  std::snprintf(b, sizeof b, std::abs(x) >= 1e5 || (x != 0 && std::abs(x) < 1e-3) ? "%.3e" : "%.4g", x);
  return b;
}

nlohmann::json num(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

nlohmann::json population_json(const InspectPopulation& p) {
  if (p.trace.n == 0) return nlohmann::json();
  return {{"n", p.trace.n},
          {"trace_IJ_mean", num(p.trace.mean)},
          {"trace_IJ_se", num(p.trace.se)},
          {"trace_IJ_p99", num(p.trace.p99)},
          {"trace_IJ_p999", num(p.trace.p999)},
          {"trace_IJ_max", num(p.trace.max)},
          {"jac_opnorm_mean", num(p.opnorm.mean)},
          {"jac_opnorm_se", num(p.opnorm.se)},
          {"jac_opnorm_p99", num(p.opnorm.p99)},
          {"jac_opnorm_p999", num(p.opnorm.p999)},
          {"jac_opnorm_max", num(p.opnorm.max)},
          {"second_moment", num(p.sq.mean)},
          {"second_moment_se", num(p.sq.se)},
          {"sq_norm_p99", num(p.sq.p99)},
          {"sq_norm_p999", num(p.sq.p999)},
          {"sq_norm_max", num(p.sq.max)}};
}

/// tools/plot_inspect.py: $GMMDIFF_INSPECT_PLOT_SCRIPT, else the source tree's, else the installed one.
std::string plot_script() {
  if (const char* e = std::getenv("GMMDIFF_INSPECT_PLOT_SCRIPT"); e && *e) return e;
  for (const char* p : {GMMDIFF_INSPECT_PLOT_SCRIPT_SOURCE, GMMDIFF_INSPECT_PLOT_SCRIPT_INSTALLED})
    if (std::filesystem::exists(p)) return p;
  return "";
}

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<InspectState>();
  st->model.add(sub);
  st->schedule.add(sub);
  st->sampler.add(sub);
  sub.add_option("--steps", st->steps,
                 "The steps t to measure, e.g. 256,128,64 (default: at most 32, evenly spaced over stop+1..T)");
  sub.add_flag("--no-sampler", st->no_sampler, "Measure over X_t ~ p_t only (do not run the sampler)");
  sub.add_option("--json", st->json, "Also write one row per t as JSON (atomically)");
  sub.add_option("--plot", st->plot, "Also draw the quantities against t into this PNG (needs --json; Matplotlib)");
  st->app = &sub;
  return [st]() -> int {
    std::vector<std::string> inputs;  // the files the run reads: --json and --plot may replace none
    SampleOptions opt = st->sampler.build(&inputs);
    const Mixture target = st->model.build(opt.seed, &inputs);
    const Schedule sched = st->schedule.build();
    if (st->schedule.p.name == "file") inputs.push_back(st->schedule.p.file);
    if (st->no_sampler)  // over X_t ~ p_t only: what drives the sampler is not used
      for (const char* o : {"--sampler", "--eta", "--variance", "--precision", "--chunk", "--backend", "--score-error",
                            "--eps", "--eps-samples", "--error-profile", "--error-factors", "--bias-direction"})
        GMMDIFF_EXPECTS(!given(st->app, o), o, " does not apply with --no-sampler (only the exact X_t ~ p_t are "
                                               "measured; the sampler is not run)");
    InspectOptions io;
    io.n = opt.n;
    io.steps = parse_int_list(st->steps, "--steps");
    io.sampler = !st->no_sampler;
    if (!st->plot.empty() && st->json.empty()) throw Error("--plot needs --json (the plot is drawn from it)");
    if (!st->json.empty()) check_output_file(st->json, "--json", inputs);
    if (!st->plot.empty()) {
      // The plot is drawn from the --json file, written first: the two must be different files.
      std::error_code e1, e2;
      const auto pj = std::filesystem::weakly_canonical(st->json, e1), pp = std::filesystem::weakly_canonical(st->plot, e2);
      if (!e1 && !e2 && pj == pp)
        throw Error("--plot " + st->plot + ": is the --json file (the plot is drawn from it); give another name");
      check_output_file(st->plot, "--plot", inputs);
    }
    std::unique_ptr<Backend> be;
    if (io.sampler) be = make_backend(st->sampler.backend, st->sampler.threads);
    else be = make_backend("cpu", st->sampler.threads);
    Inspection r;
    {
      Progress progress("inspect");
      io.progress = progress.callback();
      r = inspect_quantities(target, sched, opt, io, *be);
    }
    const double logKT = std::log(double(target.K) * sched.T);
    std::ostringstream os;
    os << "gmmdiff inspect: d = " << target.d << ", K = " << target.K << ", " << sched.name << " T = " << sched.T
       << ", n = " << io.n << " points per step and population, log(KT) = " << f4(logKT) << "\n";
    os << "J_t = d s_t/dx of the exact score; tr = tr(I + J_t); |J| = ||J_t||_op; |x|^2 its mean is the second "
          "moment (exact: E|X_t|^2 in closed form)\n";
    if (io.sampler)
      os << "sampler: " << r.sampler.sampler << " " << r.sampler.precision << " on " << r.sampler.backend
         << ", score error " << to_string(opt.score_error.kind) << "\n";
    char line[512];
    std::snprintf(line, sizeof line, "%6s %10s | %-42s | %-42s\n", "t", "abar", "forward X_t ~ p_t: tr mean/p99.9/max, |J| mean/max, E|x|^2 (exact)",
                  io.sampler ? "sampler Y_t: tr mean/p99.9/max, |J| mean/max, E|y|^2" : "sampler: not run");
    os << line;
    for (const InspectRow& row : r.rows) {
      auto pop = [&](const InspectPopulation& p, bool exact) {
        if (p.trace.n == 0) return std::string("-");
        std::string s = f4(p.trace.mean) + "/" + f4(p.trace.p999) + "/" + f4(p.trace.max) + "  " + f4(p.opnorm.mean) +
                        "/" + f4(p.opnorm.max) + "  " + f4(p.sq.mean);
        if (exact) s += " (" + f4(row.second_moment_exact) + ")";
        return s;
      };
      std::snprintf(line, sizeof line, "%6d %10.4g | %-42s | %-42s\n", row.t, row.abar, pop(row.forward, true).c_str(),
                    pop(row.sampler, false).c_str());
      os << line;
    }
    double tr_max = 0, op_max = 0;
    for (const InspectRow& row : r.rows) {
      tr_max = std::max({tr_max, row.forward.trace.max, io.sampler ? row.sampler.trace.max : 0.0});
      op_max = std::max({op_max, row.forward.opnorm.max, io.sampler ? row.sampler.opnorm.max : 0.0});
    }
    os << "over all steps: max tr(I + J_t) = " << f4(tr_max) << " (" << f4(tr_max / logKT)
       << " x log(KT)), max ||J_t||_op = " << f4(op_max) << " (a lower bound on the score's Lipschitz constant); "
       << f4(r.seconds) << " s\n";

    if (!st->json.empty()) {
      nlohmann::json j;
      j["tool"] = "gmmdiff inspect";
      j["d"] = target.d;
      j["K"] = target.K;
      j["T"] = sched.T;
      j["schedule"] = sched.name;
      j["n"] = io.n;
      j["log_KT"] = logKT;
      j["sampler"] = io.sampler ? nlohmann::json(r.sampler.sampler) : nlohmann::json();
      j["precision"] = to_string(opt.precision);
      j["score_error"] = to_string(opt.score_error.kind);
      j["eps"] = opt.score_error.eps;
      j["seed"] = opt.seed;
      j["preset"] = st->model.preset;
      j["model"] = st->model.model_file;
      j["seconds"] = r.seconds;
      j["meaning"] = {{"trace_IJ", "tr(I + J_t(x)), J_t the Jacobian of the exact score s_t of p_t"},
                      {"jac_opnorm", "||J_t(x)||_op; its max over points is a lower bound on the Lipschitz constant of s_t"},
                      {"second_moment", "mean of |x|^2 over the points (Monte Carlo); second_moment_exact: E|X_t|^2"},
                      {"forward", "over exact draws X_t ~ p_t"},
                      {"sampler", "over the sampler's own Y_t (its snapshots)"}};
      nlohmann::json rows = nlohmann::json::array();
      for (const InspectRow& row : r.rows)
        rows.push_back({{"t", row.t},
                        {"abar", row.abar},
                        {"log_KT", row.log_KT},
                        {"second_moment_exact", row.second_moment_exact},
                        {"forward", population_json(row.forward)},
                        {"sampler", population_json(row.sampler)}});
      j["rows"] = rows;
      write_file_atomic(st->json, j.dump(2) + "\n");
      os << "json: " << st->json << "\n";
      if (!st->plot.empty()) {
        const std::string msg = run_plot_script(plot_script(), {st->json, st->plot});
        if (msg.empty()) os << "plot: " << st->plot << "\n";
        else std::cerr << "gmmdiff inspect: " << msg << "\n";
      }
    }
    std::cout << os.str() << std::flush;
    return kOk;
  };
}

const Registrar reg("inspect",
                    "The proofs' quantities per step t: tr(I + J_t), ||J_t||_op, E|X_t|^2 over X_t ~ p_t and the "
                    "sampler's Y_t",
                    27, setup);

}  // namespace
}  // namespace gmmdiff::cli
