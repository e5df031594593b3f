// gmmdiff exact: the exact TV(X_0, Y_s) (and KL both ways) of a reducible model, noise-free, for
// each T (and each d of a preset), with its grid-convergence check (docs/tv.md, "Upper bounds and
// exact densities"). A model that is not reducible is refused with what reducible needs.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "cli/command.hpp"
#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "io/atomic_file.hpp"

namespace gmmdiff::cli {
namespace {

struct ExactState {
  // The model options of ModelArgs, with --d a list for presets.
  ModelArgs model;
  std::string d_list = "2";
  ScheduleArgs schedule;
  std::string T_list = "1000";
  std::string sampler = "ddpm", variance = "beta", score_error = "none";
  int stop = 1;
  uint64_t seed = 0;
  double eps = 0;
  ReferenceOptions ro;
  std::string json;
  CLI::Option *opt_d = nullptr, *opt_variance = nullptr, *opt_eps = nullptr;
};

std::string fmt(double x, const char* f) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char b[64];
  std::snprintf(b, sizeof b, f, x);
  return b;
}

nlohmann::json num(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<ExactState>();
  ModelArgs& m = st->model;
  auto* mf = sub.add_option("--model", m.model_file, "Model JSON file (weights, means | means_npy, sd | var_diag)");
  auto* pr = sub.add_option("--preset", m.preset, "Built-in family: gaussian, two-point, random-sphere, simplex");
  mf->excludes(pr);
  st->opt_d = sub.add_option("--d", st->d_list, "Dimensions of a preset, a list: 1,16,256")->capture_default_str();
  sub.add_option("--K", m.K, "Number of components (presets; 0: the family's default)")->check(CLI::Range(0, 1 << 30));
  sub.add_option("--radius", m.radius, "Radius of the means (presets)");
  sub.add_option("--sd", m.sd, "Component sd: one value or K values (presets)")->delimiter(',');
  sub.add_option("--weights", m.weights, "Component weights, K values (presets; default uniform)")->delimiter(',');
  sub.add_option("--model-seed", m.model_seed, "Seed of random-sphere means (default: --seed)")
      ->each([&m](const std::string&) { m.model_seed_set = true; });
  sub.add_flag("--normalize-weights", m.normalize_weights, "Accept weights that do not sum to 1 and rescale them");
  m.bind(sub);
  // ScheduleArgs looks its options up by name when it builds: the --T list below is the one it sees.
  st->schedule.add(sub);
  sub.remove_option(sub.get_option("--T"));
  sub.add_option("--T", st->T_list, "Numbers of steps, a list: 64,128,256")->capture_default_str();
  sub.add_option("--sampler", st->sampler, "ddpm | ddim")->capture_default_str();
  st->opt_variance = sub.add_option("--variance", st->variance, "ddpm noise: beta | posterior | inside (ddpm only)")
                         ->capture_default_str();
  sub.add_option("--stop", st->stop, "Compare Y_1 (1, Theorem 1) or Y_0 (0) with X_0")->capture_default_str();
  sub.add_option("--seed", st->seed, "Seed of the score error's perturbation (and random-sphere means)")
      ->capture_default_str();
  sub.add_option("--score-error", st->score_error, "none | scale | weights | gaussian (bias, means: d = 1 only)")
      ->capture_default_str();
  st->opt_eps = sub.add_option("--eps", st->eps, "Score-error size");
  sub.add_option("--tol", st->ro.tol, "Refine the grid until TV changes by less than this")->capture_default_str();
  sub.add_option("--max-points", st->ro.max_points, "Largest grid on the line")->capture_default_str();
  sub.add_option("--json", st->json, "Also write the table as JSON (atomically)");
  return [st]() {
    SampleOptions opt;
    opt.sampler = parse_sampler(st->sampler);
    opt.variance = parse_variance(st->variance);
    opt.score_error.kind = parse_score_error(st->score_error);
    opt.score_error.eps = st->eps;
    opt.stop = st->stop;
    opt.seed = st->seed;
    GMMDIFF_EXPECTS(opt.stop == 0 || opt.stop == 1, "--stop = ", opt.stop, " (allowed: 0 or 1)");
    GMMDIFF_EXPECTS(std::isfinite(opt.score_error.eps) && opt.score_error.eps >= 0, "--eps = ", opt.score_error.eps,
                    " (need a finite eps >= 0)");
    if (opt.sampler == SamplerKind::DDIM && st->opt_variance->count() > 0)
      throw Error("--variance applies to ddpm only (ddim has no noise)");
    if (opt.score_error.kind == ScoreErrorKind::None && st->opt_eps->count() > 0)
      throw Error("--eps does not apply without a score error (add --score-error bias|scale|weights|means|gaussian)");
    GMMDIFF_EXPECTS(st->ro.tol > 0 && std::isfinite(st->ro.tol), "--tol = ", st->ro.tol, " (need a positive tolerance)");
    GMMDIFF_EXPECTS(st->ro.max_points >= st->ro.min_points, "--max-points = ", st->ro.max_points, " (need at least ",
                    st->ro.min_points, ")");
    const std::vector<int> Ts = parse_int_list(st->T_list, "--T");
    GMMDIFF_EXPECTS(!Ts.empty(), "--T: give at least one value");
    for (int T : Ts) GMMDIFF_EXPECTS(T >= 1 && T <= kMaxSteps, "--T = ", T, " (need 1 <= T <= ", kMaxSteps, ")");
    std::vector<int> ds;
    if (!st->model.model_file.empty()) {
      if (st->opt_d->count() > 0) throw Error("--d is for presets (a model file fixes d)");
      ds.push_back(0);
    } else {
      ds = parse_int_list(st->d_list, "--d");
      GMMDIFF_EXPECTS(!ds.empty(), "--d: give at least one value");
      for (int d : ds) GMMDIFF_EXPECTS(d >= 1, "--d = ", d, " (need d >= 1)");
    }
    // Every model and schedule is built and checked (reducible) before the first computation.
    std::vector<std::string> inputs;  // the files the run reads: --json may replace none
    std::vector<Mixture> models;
    for (int d : ds) {
      ModelArgs ma = st->model;
      if (d > 0) ma.d = d;
      models.push_back(ma.build(opt.seed, &inputs));
      const std::string why = reducible_reason(models.back(), opt);
      if (!why.empty()) throw Error("exact: " + why);
    }
    std::vector<Schedule> scheds;
    for (int T : Ts) {
      ScheduleArgs sa = st->schedule;  // refuses --T with a file, --c0 with linear, ...
      sa.p.T = T;
      scheds.push_back(sa.build());
    }
    if (st->schedule.p.name == "file") inputs.push_back(st->schedule.p.file);
    if (!st->json.empty()) check_output_file(st->json, "--json", inputs);

    const std::string ys = "Y_" + std::to_string(opt.stop), xs = "X_" + std::to_string(opt.stop);
    std::ostringstream head;
    head << "gmmdiff exact: " << (st->model.model_file.empty() ? st->model.preset : st->model.model_file) << ", K = "
         << models[0].K << ", " << scheds[0].name << ", "
         << (opt.sampler == SamplerKind::DDPM ? "ddpm/" + st->variance : std::string("ddim")) << ", stop " << opt.stop
         << ", score error " << st->score_error << ": the exact TV(X_0, " << ys
         << ") of a reducible model by quadrature (noise-free; the grid on the line is refined until TV changes by < "
         << fmt(st->ro.tol, "%.0e") << ")\n";
    char line[256];
    std::snprintf(line, sizeof line, "%8s %8s  %-13s %-13s %-13s %-9s %8s %-9s %s\n", "d", "T", "tv",
                  ("kl(" + ys + "||X_0)").c_str(), ("kl(" + xs + "||" + ys + ")").c_str(), "change", "points",
                  "converged", "seconds");
    std::cout << head.str() << line << std::flush;
    nlohmann::json rows = nlohmann::json::array();
    for (const Mixture& target : models)
      for (const Schedule& s : scheds) {
        const Reference r = exact_reference(target, s, opt, st->ro);
        std::snprintf(line, sizeof line, "%8d %8d  %-13s %-13s %-13s %-9s %8d %-9s %.2f\n", target.d, s.T,
                      fmt(r.tv, "%.9f").c_str(), fmt(r.kl_yx, "%.6e").c_str(), fmt(r.kl_xy, "%.6e").c_str(),
                      fmt(r.change, "%.1e").c_str(), r.points, r.converged ? "yes" : "NO", r.seconds);
        std::cout << line << std::flush;
        rows.push_back({{"d", target.d},
                        {"T", s.T},
                        {"tv_reference", num(r.tv)},
                        {"kl_reference", num(r.kl_yx)},
                        {"kl_reference_forward", num(r.kl_xy)},
                        {"change", num(r.change)},
                        {"converged", r.converged},
                        {"points", r.points},
                        {"h", r.h},
                        {"range", {r.lo, r.hi}},
                        {"levels", r.levels},
                        {"perp_var", r.perp_var},
                        {"steps", r.steps},
                        {"seconds", r.seconds}});
      }
    if (!st->json.empty()) {
      nlohmann::json j;
      j["tool"] = "gmmdiff exact";
      j["meaning"] = {{"tv_reference", "TV(X_0, " + ys + "), exact to quadrature accuracy"},
                      {"kl_reference", "KL(" + ys + " || X_0)"},
                      {"kl_reference_forward", "KL(" + xs + " || " + ys + ") (null: infinite on the grid)"},
                      {"change", "|TV - TV on the grid half as fine|"}};
      j["parameters"] = {{"model", st->model.model_file}, {"preset", st->model.preset}, {"K", models[0].K},
                         {"radius", st->model.radius},     {"sd", st->model.sd},         {"schedule", scheds[0].name},
                         {"c0", st->schedule.p.c0},        {"c1", st->schedule.p.c1},    {"sampler", st->sampler},
                         {"variance", st->variance},       {"stop", opt.stop},           {"seed", opt.seed},
                         {"score_error", st->score_error}, {"eps", opt.score_error.eps}, {"tol", st->ro.tol},
                         {"max_points", st->ro.max_points}};
      j["rows"] = rows;
      write_file_atomic(st->json, j.dump(2) + "\n");
    }
    return 0;
  };
}

const Registrar reg("exact", "The exact TV and KL of a reducible model (means on a line, one shared sd), noise-free, per T and d",
                    27, setup);

}  // namespace
}  // namespace gmmdiff::cli
