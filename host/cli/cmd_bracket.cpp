// gmmdiff bracket: TV(X_0, Y_s) of one configuration from both sides (docs/tv.md, "Upper bounds and
// exact densities"): the best projected lower bound from a fresh sample (as `gmmdiff tv`), the
// importance-weighted upper bound (ddpm) or the exact value (ddim), the exact reference when the
// model is reducible, and whether lower <= exact <= upper holds. --json writes every figure and
// parameter atomically.
#include <cmath>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "cli/command.hpp"
#include "cli/common.hpp"
#include "cli/progress.hpp"
#include "bounds/distributed.hpp"
#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/bounds.hpp"
#include "gmmdiff/quantities.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/tv.hpp"
#include "io/atomic_file.hpp"
#include "tv/distributed.hpp"

namespace gmmdiff::cli {
namespace {

constexpr uint64_t kDefaultLowerN = 65536;

struct BracketState {
  ModelArgs model;
  ScheduleArgs schedule;
  std::string sampler = "ddpm", variance = "beta", precision = "fp32", score_error = "none", backend = "auto";
  int stop = 1, threads = 0;
  uint64_t seed = 0;
  double eps = 0, eta = 0;
  std::string error_profile = "uniform", error_factors, bias_direction = "random";
  uint64_t n = 0, n_lower = kDefaultLowerN, chunk = 0;
  int M = kDefaultPathM;
  TvOptions tv;
  bool no_reference = false;
  std::string json;
  CLI::Option *opt_M = nullptr, *opt_variance = nullptr, *opt_eps = nullptr;
  CLI::App* app = nullptr;  ///< the subcommand: its options looked up by name (given)
};

std::string fmt(double x, const char* f = "%.5f") {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char b[64];
  std::snprintf(b, sizeof b, f, x);
  return b;
}

nlohmann::json num(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

struct Check {
  std::string what;
  bool ok;
};

void report(const BracketState& st, const SampleOptions& opt, const Mixture& target, const Schedule& sched,
            const SampleOptions& lower, const TvOptions& to, const std::string& reducible,
            const std::string& bounds_backend, const std::string& bounds_device, const std::optional<PathBound>& pb,
            const std::optional<ExactDensity>& ex, const TvReport& rep, const RunSummary& sum);

Runner setup(CLI::App& sub) {
  auto st = std::make_shared<BracketState>();
  st->tv.stats = kCliStats;
  st->model.add(sub);
  st->schedule.add(sub);
  sub.add_option("--sampler", st->sampler,
                 "ddpm (upper bound by paths) | ddim (exact density) | ddim-song (Song et al. 2021: exact density "
                 "for --eta 0, upper bound by paths for --eta > 0)")
      ->capture_default_str();
  sub.add_option("--eta", st->eta, "ddim-song: noise fraction eta in [0, 1]")->capture_default_str();
  st->opt_variance = sub.add_option("--variance", st->variance, "ddpm noise: beta | posterior | inside (ddpm only)")
                         ->capture_default_str();
  sub.add_option("--stop", st->stop, "Compare Y_1 (1, Theorem 1) or Y_0 (0) with X_0")->capture_default_str();
  sub.add_option("--seed", st->seed, "Seed of every random number (sample, outer draws, continuations)")
      ->capture_default_str();
  sub.add_option("--score-error", st->score_error, "none | bias | scale | weights | means | gaussian")
      ->capture_default_str();
  st->opt_eps = sub.add_option("--eps", st->eps, "Score-error size (docs/cli.md)");
  sub.add_option("--error-profile", st->error_profile, "uniform | front-loaded | back-loaded | file (--error-factors)")
      ->capture_default_str();
  sub.add_option("--error-factors", st->error_factors, "Text file of T per-step factors of eps (profile file)");
  sub.add_option("--bias-direction", st->bias_direction, "random | means | v1,...,vd")->capture_default_str();
  st->app = &sub;
  sub.add_option("--n", st->n,
                 "Outer draws (ddpm, default 4096) or particles (ddim, default 65536) of the upper/exact figure");
  st->opt_M = sub.add_option("--M", st->M, "Forward continuations per outer draw (ddpm only)")->capture_default_str();
  sub.add_option("--n-lower", st->n_lower, "Particles of the fresh sample for the lower bound")->capture_default_str();
  sub.add_option("--precision", st->precision, "Precision of the lower bound's sample (fp32 | fp64); the bounds are fp64")
      ->capture_default_str();
  sub.add_option("--backend", st->backend,
                 "Backend of the bounds and of the lower bound's sample: cpu | cuda | auto (cuda when there is a device)")
      ->capture_default_str();
  sub.add_option("--threads", st->threads, "CPU threads (0: all)");
  sub.add_option("--chunk", st->chunk, "Outer draws or particles per chunk of the bounds (0: automatic; figures do not depend on it)");
  sub.add_option("--stat", st->tv.stats, "Statistics of the lower bound (as gmmdiff tv --stat)")->capture_default_str();
  sub.add_option("--bins", st->tv.bins, "Bins per 1-D histogram of the lower bound (0: from n)");
  sub.add_option("--bootstrap", st->tv.bootstrap, "Bootstrap replicates of the lower bound's CI")->capture_default_str();
  sub.add_flag("--no-reference", st->no_reference, "Skip the exact reference even when the model is reducible");
  sub.add_option("--json", st->json, "Also write every figure and parameter as JSON (atomically)");
  return [st]() {
    // Under MPI (docs/scale.md) every rank checks the options (an error is reported once), the
    // upper bound's outer draws and the lower bound's particles are split over the ranks and their
    // sums reduced in a fixed order, and rank 0 alone computes the reference, prints and writes.
    dist::Comm& comm = dist::world();
    SampleOptions opt;
    Mixture target;
    Schedule sched;
    BoundsOptions bo;
    SampleOptions lower;
    TvOptions to;
    std::unique_ptr<TvPlan> plan_ptr;
    std::string reducible;
    std::unique_ptr<BoundsKernels> kr;
    std::unique_ptr<Backend> be;
    bool ddpm = true;
    dist::collective(comm, [&] {
      opt.sampler = parse_sampler(st->sampler);
      opt.variance = parse_variance(st->variance);
      opt.precision = parse_precision(st->precision);
      opt.score_error.kind = parse_score_error(st->score_error);
      opt.score_error.eps = st->eps;
      opt.score_error.profile = parse_error_profile(st->error_profile);
      if (!st->error_factors.empty()) {
        GMMDIFF_EXPECTS(st->error_profile == "uniform" || st->error_profile == "file",
                        "--error-factors goes with --error-profile file, not ", st->error_profile);
        opt.score_error.profile = ErrorProfile::File;
        opt.score_error.factors = load_error_factors(st->error_factors);
      }
      GMMDIFF_EXPECTS(opt.score_error.profile != ErrorProfile::File || !st->error_factors.empty(),
                      "--error-profile file needs --error-factors FILE");
      opt.score_error.direction_vector = parse_bias_direction(st->bias_direction, opt.score_error.direction);
      opt.eta = st->eta;
      opt.stop = st->stop;
      opt.seed = st->seed;
      GMMDIFF_EXPECTS(std::isfinite(opt.eta) && opt.eta >= 0 && opt.eta <= 1, "--eta = ", opt.eta,
                      " (allowed: 0 to 1)");
      GMMDIFF_EXPECTS(opt.eta == 0 || opt.sampler == SamplerKind::DDIMSong, "--eta applies to ddim-song only");
      // ddpm and ddim-song with eta > 0 are stochastic (the path bound); ddim and ddim-song with
      // eta = 0 are deterministic (the exact density).
      ddpm = opt.sampler == SamplerKind::DDPM || (opt.sampler == SamplerKind::DDIMSong && opt.eta > 0);
      if (!ddpm && st->opt_M->count() > 0)
        throw Error("--M applies to the stochastic samplers only (ddim has the exact density: no continuations)");
      if (opt.sampler != SamplerKind::DDPM && st->opt_variance->count() > 0)
        throw Error("--variance applies to ddpm only (ddim has no noise); ddim-song's noise is set by --eta");
      if (opt.sampler != SamplerKind::DDIMSong && given(st->app, "--eta"))
        throw Error("--eta does not apply to --sampler " + st->sampler + " (only ddim-song has a noise fraction eta)");
      if (opt.score_error.kind == ScoreErrorKind::None && st->opt_eps->count() > 0)
        throw Error("--eps does not apply without a score error (add --score-error bias|scale|weights|means|gaussian)");
      check_score_error_options(st->app, opt.score_error.kind);
      std::vector<std::string> inputs;  // the files the run reads: --json may replace none
      if (!st->error_factors.empty()) inputs.push_back(st->error_factors);
      target = st->model.build(opt.seed, &inputs);
      sched = st->schedule.build();
      if (st->schedule.p.name == "file") inputs.push_back(st->schedule.p.file);
      bo.n = st->n;
      bo.M = st->M;
      bo.chunk = st->chunk;
      // Every check before any work or output.
      if (ddpm) check_path_options(target, sched, opt, bo);
      else check_flow_options(target, sched, opt, bo);
      lower = opt;
      lower.n = st->n_lower;
      check_sample_options(target, sched, lower);
      to = st->tv;
      to.seed = opt.seed;
      plan_ptr = std::make_unique<TvPlan>(target, to, lower.n);  // checks the statistics, bins and bootstrap
      for (const std::string& f : stat_files(to.stats)) inputs.push_back(f);
      if (!st->json.empty()) check_output_file(st->json, "--json", inputs);
      reducible = reducible_reason(target, opt);
      kr = make_bounds_kernels(st->backend, st->threads);
    });
    TvPlan& plan = *plan_ptr;

    // 1. The upper bound (ddpm) or the exact value (ddim): first, since it can refuse the sampler
    // (a ddim step map that folds).
    std::optional<PathBound> pb;
    std::optional<ExactDensity> ex;
    {
      Progress progress(ddpm ? "bracket: upper bound" : "bracket: exact density");
      if (comm.root()) bo.progress = progress.callback();  // rank 0's share stands for the whole
      if (ddpm) pb = path_bound(target, sched, opt, bo, *kr, comm);
      else ex = exact_density(target, sched, opt, bo, *kr, comm);
    }
    const std::string bounds_backend = kr->name(), bounds_device = kr->device_name();
    kr.reset();  // its chunk's memory (device memory for cuda) goes before the sample's is planned
    dist::collective(comm, [&] {
      be = make_backend(st->backend, st->threads);
      lower.chunk = dist::rank_chunk_rows(*be, run_shape(target, lower.precision, lower.seed), lower.chunk);
    });

    // 2. The lower bound: a fresh sample binned where it lies, as `gmmdiff tv` does.
    RunSummary sum;
    TvReport rep;
    {
      Progress progress("bracket: lower bound");
      lower.progress = progress.callback();
      rep = tv_of_run(target, sched, lower, plan, *be, comm, &sum);
    }

    // 3. The exact reference of a reducible model (rank 0), and the report.
    dist::on_root(comm, [&] { report(*st, opt, target, sched, lower, to, reducible, bounds_backend, bounds_device, pb, ex, rep, sum); });
    return 0;
  };
}

/// Rank 0: the exact reference of a reducible model, the checks lower <= exact <= upper, the table
/// on stdout and --json.
void report(const BracketState& st, const SampleOptions& opt, const Mixture& target, const Schedule& sched,
            const SampleOptions& lower, const TvOptions& to, const std::string& reducible,
            const std::string& bounds_backend, const std::string& bounds_device, const std::optional<PathBound>& pb,
            const std::optional<ExactDensity>& ex, const TvReport& rep, const RunSummary& sum) {
  const StatResult& best = rep.max();
  const StatResult& best_kl = rep.max_kl();
  const EpsJacobi ej = measure_eps_jacobi(target, sched, opt);

  // 3. The exact reference of a reducible model.
  std::optional<Reference> ref;
  if (reducible.empty() && !st.no_reference) ref = exact_reference(target, sched, opt);

  // 4. lower <= exact <= upper, each figure at its confidence bound.
  const double L = best.ci_lo;
  std::vector<Check> checks;
  auto add = [&](const std::string& what, double a, double b) {
    checks.push_back({what + ": " + fmt(a) + " <= " + fmt(b), a <= b});
  };
  if (pb) add("lower CI low end <= upper bound", L, pb->tv_upper());
  if (ex) add("lower CI low end <= exact CI high end", L, ex->tv.hi95());
  if (ref) add("lower CI low end <= reference", L, ref->tv);
  if (ref && pb) add("reference <= upper bound", ref->tv, pb->tv_upper());
  if (ref && ex) {
    add("exact CI low end <= reference", ex->tv.lo95(), ref->tv);
    add("reference <= exact CI high end", ref->tv, ex->tv.hi95());
  }
  // KL(Y_s || X_0) from below (the binned plug-in KL) against its exact figures.
  if (ex) add("KL lower CI low end <= KL exact CI high end", best_kl.kl_ci_lo, ex->kl.hi95());
  if (ref) add("KL lower CI low end <= KL reference", best_kl.kl_ci_lo, ref->kl_yx);
  bool consistent = true;
  for (const Check& c : checks) consistent = consistent && c.ok;

  const std::string ys = "Y_" + std::to_string(opt.stop), xs = "X_" + std::to_string(opt.stop);
  std::ostringstream os;
  os << "gmmdiff bracket: d = " << target.d << ", K = " << target.K << ", " << sched.name << " T = " << sched.T
     << ", " << sampler_label(opt) << ", stop " << opt.stop << ", score error " << st.score_error;
  if (opt.score_error.kind != ScoreErrorKind::None) {
    os << " eps " << opt.score_error.eps;
    if (opt.score_error.profile != ErrorProfile::Uniform) os << " (" << to_string(opt.score_error.profile) << ")";
    if (opt.score_error.kind == ScoreErrorKind::Bias) os << " along " << to_string(opt.score_error.direction);
  }
  os << ", seed " << opt.seed << "\n";
  os << "score error: eps_score " << fmt(sum.eps_score, "%.4g") << " (realised), eps_Jacobi " << ej.text() << "\n";
  os << "TV(X_0, " << ys << "):\n";
  os << "  lower      " << fmt(best.tv_corrected) << "  CI95 [" << fmt(best.ci_lo) << ", " << fmt(best.ci_hi)
     << "]  a lower bound: best of " << rep.stats.size() << " statistics (" << best.name << ", floor "
     << fmt(best.floor) << (best.resolved ? "" : ", NOT resolved from the floor") << "), fresh sample n = "
     << lower.n << " (" << sum.precision << ", " << sum.backend << ")\n";
  if (rep.stats.size() > 1)
    os << "  selection  " << fmt(best.ci_lo_joint) << "  the lower CI's low end jointly over all " << rep.stats.size()
       << " statistics (Bonferroni): it accounts for taking the largest\n";
  if (pb) {
    os << "  upper      " << fmt(pb->tv_upper()) << "  one-sided 95% upper bound: U_TV(M = " << pb->M << ") mean "
       << fmt(pb->tv.mean) << " + 1.645 x se " << fmt(pb->tv.se, "%.2g") << " over n = " << pb->n
       << " outer draws";
    if (opt.stop == 1)
      os << ", + TV(X_0, X_1) <= " << fmt(pb->x0x1.bound, "%.3g") << " (" << pb->x0x1.method << ")";
    os << "\n";
    os << "  upper M/4  " << fmt(pb->tv_upper_quarter()) << "  the same with M = " << pb->M_quarter
       << " (diagnostic: far above the upper bound means a larger M would tighten it)\n";
  }
  if (ex)
    os << "  exact      " << fmt(ex->tv.mean) << "  CI95 [" << fmt(ex->tv.lo95()) << ", " << fmt(ex->tv.hi95())
       << "]  E_q[(1 - p_0/q)_+] over n = " << ex->n << " particles, exact density along each path\n";
  if (ref)
    os << "  reference  " << fmt(ref->tv, "%.7f") << "  exact for this reducible model, noise-free (grid of "
       << ref->points << " points, last change " << fmt(ref->change, "%.1e")
       << (ref->converged ? "" : ", NOT converged") << ")\n";
  else
    os << "  reference  -          " << (st.no_reference ? "skipped (--no-reference)" : reducible) << "\n";
  os << "KL:\n";
  os << "  lower      " << fmt(best_kl.kl_mm) << "  CI95 [" << fmt(best_kl.kl_ci_lo) << ", " << fmt(best_kl.kl_ci_hi)
     << "]  a lower bound on KL(" << ys << " || X_0): plug-in KL of the binned " << best_kl.name
     << ", Miller-Madow corrected (raw " << fmt(best_kl.kl) << "), the largest of " << rep.stats.size() << "\n";
  if (pb)
    os << "  upper      " << fmt(pb->kl.upper95()) << "  KL(" << xs << " || " << ys << ") <= U_KL(M = " << pb->M
       << "), one-sided 95% (mean " << fmt(pb->kl.mean) << ")\n";
  if (ex)
    os << "  exact      " << fmt(ex->kl.mean) << "  CI95 [" << fmt(ex->kl.lo95()) << ", " << fmt(ex->kl.hi95())
       << "]  KL(" << ys << " || X_0)\n";
  if (ref)
    os << "  reference  KL(" << ys << " || X_0) = " << fmt(ref->kl_yx, "%.7f") << ", KL(" << xs << " || " << ys
       << ") = " << fmt(ref->kl_xy, "%.7f") << "\n";
  os << "consistent: " << (consistent ? "yes" : "NO") << " (";
  for (std::size_t i = 0; i < checks.size(); ++i) os << (i ? "; " : "") << checks[i].what << (checks[i].ok ? "" : " FAILS");
  os << ")\n";
  os << "time: lower " << fmt(sum.seconds, "%.2f") << " s; ";
  if (pb)
    os << "upper " << fmt(pb->seconds, "%.2f") << " s (" << fmt(pb->rate(), "%.3g")
       << " outer x M x steps x d per s, " << bounds_backend << " " << bounds_device << ")";
  if (ex)
    os << "exact " << fmt(ex->seconds, "%.2f") << " s (" << fmt(ex->rate(), "%.3g")
       << " particles x steps x d per s, " << bounds_backend << " " << bounds_device << ")";
  if (ref) os << "; reference " << fmt(ref->seconds, "%.2f") << " s";
  os << "\n";

  if (!st.json.empty()) {
    nlohmann::json j;
    j["tool"] = "gmmdiff bracket";
    j["tv_lower"] = best.tv_corrected;
    j["tv_lower_ci95"] = {best.ci_lo, best.ci_hi};
    j["tv_lower_stat"] = best.name;
    j["tv_lower_floor"] = best.floor;
    j["tv_lower_resolved"] = best.resolved;
    j["tv_lower_joint_lo"] = best.ci_lo_joint;
    j["kl_lower"] = best_kl.kl_mm;
    j["kl_lower_ci95"] = {best_kl.kl_ci_lo, best_kl.kl_ci_hi};
    j["kl_lower_stat"] = best_kl.name;
    j["tv_upper"] = pb ? num(pb->tv_upper()) : nlohmann::json();
    j["tv_upper_mean"] = pb ? num(pb->tv_upper_mean()) : nlohmann::json();
    j["tv_upper_se"] = pb ? num(pb->tv.se) : nlohmann::json();
    j["tv_upper_quarter_M"] = pb ? num(pb->tv_upper_quarter()) : nlohmann::json();
    j["tv_x0_x1"] = pb && opt.stop == 1 ? num(pb->x0x1.bound) : nlohmann::json();
    j["tv_x0_x1_method"] = pb && opt.stop == 1 ? nlohmann::json(pb->x0x1.method) : nlohmann::json();
    j["kl_upper"] = pb ? num(pb->kl.upper95()) : nlohmann::json();
    j["kl_upper_mean"] = pb ? num(pb->kl.mean) : nlohmann::json();
    j["M"] = pb ? nlohmann::json(pb->M) : nlohmann::json();
    j["M_quarter"] = pb ? nlohmann::json(pb->M_quarter) : nlohmann::json();
    j["tv_exact"] = ex ? num(ex->tv.mean) : nlohmann::json();
    j["tv_exact_ci95"] = ex ? nlohmann::json({ex->tv.lo95(), ex->tv.hi95()}) : nlohmann::json();
    j["kl_exact"] = ex ? num(ex->kl.mean) : nlohmann::json();
    j["kl_exact_ci95"] = ex ? nlohmann::json({ex->kl.lo95(), ex->kl.hi95()}) : nlohmann::json();
    j["tv_reference"] = ref ? num(ref->tv) : nlohmann::json();
    j["tv_reference_change"] = ref ? num(ref->change) : nlohmann::json();
    j["tv_reference_converged"] = ref ? nlohmann::json(ref->converged) : nlohmann::json();
    j["kl_reference"] = ref ? num(ref->kl_yx) : nlohmann::json();
    j["kl_reference_forward"] = ref ? num(ref->kl_xy) : nlohmann::json();
    j["reducible"] = reducible.empty();
    j["reducible_reason"] = reducible;
    j["consistent"] = consistent;
    nlohmann::json cj = nlohmann::json::array();
    for (const Check& c : checks) cj.push_back({{"check", c.what}, {"ok", c.ok}});
    j["checks"] = cj;
    j["meaning"] = {
        {"tv_lower", "lower bound on TV(X_0, " + ys + "): the best bias-corrected projected TV, CI95 in tv_lower_ci95"},
        {"tv_lower_joint_lo", "the low end of tv_lower's CI jointly over all the statistics (Bonferroni): it accounts "
                              "for taking the largest"},
        {"kl_lower", "lower bound on KL(" + ys + " || X_0): the largest Miller-Madow-corrected plug-in KL of a binned "
                     "statistic, CI95 in kl_lower_ci95"},
        {"tv_upper", "upper bound on TV(X_0, " + ys + "), one-sided 95%: U_TV(M) + 1.645 se" +
                         std::string(opt.stop == 1 ? " + tv_x0_x1" : "")},
        {"tv_upper_quarter_M", "the same with M/4 continuations (diagnostic)"},
        {"kl_upper", "upper bound on KL(" + xs + " || " + ys + "), one-sided 95%"},
        {"tv_exact", "TV(X_0, " + ys + ") through the exact output density (ddim), CLT CI95 in tv_exact_ci95"},
        {"kl_exact", "KL(" + ys + " || X_0) through the exact output density (ddim)"},
        {"tv_reference", "TV(X_0, " + ys + ") of a reducible model by quadrature (noise-free)"},
        {"kl_reference", "KL(" + ys + " || X_0) of a reducible model by quadrature"},
        {"kl_reference_forward", "KL(" + xs + " || " + ys + ") of a reducible model by quadrature"}};
    j["parameters"] = {{"model", st.model.model_file},
                       {"preset", st.model.preset},
                       {"d", target.d},
                       {"K", target.K},
                       {"radius", st.model.radius},
                       {"sd", st.model.sd},
                       {"weights", target.weights},
                       {"schedule", sched.name},
                       {"T", sched.T},
                       {"c0", st.schedule.p.c0},
                       {"c1", st.schedule.p.c1},
                       {"sampler", st.sampler},
                       {"variance", opt.sampler == SamplerKind::DDPM ? nlohmann::json(st.variance) : nlohmann::json()},
                       {"eta", opt.sampler == SamplerKind::DDIMSong ? nlohmann::json(opt.eta) : nlohmann::json()},
                       {"error_profile", to_string(opt.score_error.profile)},
                       {"bias_direction", st.bias_direction},
                       {"stop", opt.stop},
                       {"seed", opt.seed},
                       {"score_error", st.score_error},
                       {"eps", opt.score_error.eps},
                       {"n", pb ? pb->n : ex->n},
                       {"n_lower", lower.n},
                       {"precision_lower", st.precision},
                       {"backend_lower", sum.backend},
                       {"bounds_backend", bounds_backend},
                       {"bounds_device", bounds_device},
                       {"threads", st.threads},
                       {"stats", to.stats},
                       {"bins", to.bins},
                       {"bootstrap", to.bootstrap}};
    j["eps_score"] = sum.eps_score;
    j["eps_jacobi"] = ej.defined ? nlohmann::json(ej.value) : nlohmann::json();
    j["eps_jacobi_se"] = ej.defined ? nlohmann::json(ej.se) : nlohmann::json();
    j["eps_jacobi_defined"] = ej.defined;
    j["seconds"] = {{"lower", sum.seconds},
                    {"upper", pb ? num(pb->seconds) : nlohmann::json()},
                    {"exact", ex ? num(ex->seconds) : nlohmann::json()},
                    {"reference", ref ? num(ref->seconds) : nlohmann::json()}};
    j["rate"] = pb ? num(pb->rate()) : (ex ? num(ex->rate()) : nlohmann::json());
    j["rate_unit"] = pb ? "outer draws x M x steps x d per second" : "particles x steps x d per second";
    write_file_atomic(st.json, j.dump(2) + "\n");
  }
  std::cout << os.str() << std::flush;
}

const Registrar reg("bracket",
                    "TV(X_0, Y) from both sides: projected lower bound, path upper bound (ddpm) or exact value (ddim), "
                    "exact reference (reducible models)",
                    25, setup, Ranks::kAll);

}  // namespace
}  // namespace gmmdiff::cli
