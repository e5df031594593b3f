// gmmdiff bracket: TV(X_0, Y_s) of one configuration from both sides (docs/tv.md, "Upper bounds and
// exact densities"): the best projected lower bound from a fresh sample (as `gmmdiff tv`), the
// importance-weighted upper bound (ddpm, ddim-song with eta > 0) or the exact value (ddim,
// ddim-song with eta = 0), the exact reference when the model is reducible, eps_Jacobi, and whether
// lower <= exact <= upper holds. --json writes every figure and parameter atomically. The work is
// the library's bracket (host/bounds/bracket.cpp, as Python's gmmdiff.bracket); this file has the
// options and the printing.
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
#include "gmmdiff/bracket.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/tv.hpp"
#include "io/atomic_file.hpp"
#include "tv/distributed.hpp"

namespace gmmdiff::cli {
namespace {

struct BracketState {
  ModelArgs model;
  ScheduleArgs schedule;
  std::string sampler = "ddpm", variance = "beta", precision = "fp32", score_error = "none", backend = "auto";
  int stop = 1, threads = 0;
  uint64_t seed = 0;
  double eps = 0, eta = 0;
  std::string error_profile = "uniform", error_factors, bias_direction = "random";
  uint64_t n = 0, n_lower = kDefaultBracketLowerN, chunk = 0;
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

void report(const BracketState& st, const SampleOptions& opt, const Mixture& target, const Schedule& sched,
            const Bracket& b);

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
    BracketOptions br;
    std::vector<std::string> inputs;  // the files the run reads
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
      check_bracket_sampler(opt, st->opt_M->count() > 0, st->opt_variance->count() > 0);
      // What bracket's sampler options cannot mean here (the rules of sample: cli/common.cpp).
      if (opt.sampler != SamplerKind::DDIMSong && given(st->app, "--eta"))  // also --eta 0: check_bracket_sampler's words
        throw Error("--eta applies to ddim-song only");
      if (opt.score_error.kind == ScoreErrorKind::None && st->opt_eps->count() > 0)
        throw Error("--eps does not apply without a score error (add --score-error bias|scale|weights|means|gaussian)");
      check_score_error_options(st->app, opt.score_error.kind);
      if (!st->error_factors.empty()) inputs.push_back(st->error_factors);
      target = st->model.build(opt.seed, &inputs);
      sched = st->schedule.build();
      if (st->schedule.p.name == "file") inputs.push_back(st->schedule.p.file);
      for (const std::string& f : stat_files(st->tv.stats)) inputs.push_back(f);
    });
    bo.n = st->n;
    bo.M = st->M;
    bo.chunk = st->chunk;
    br.n_lower = st->n_lower;
    br.backend = st->backend;
    br.threads = st->threads;
    br.tv = st->tv;
    br.reference = !st->no_reference;
    // --json may replace none of the files the run reads (model, schedule, factors, direction files).
    if (!st->json.empty()) br.checked = [&] { check_output_file(st->json, "--json", inputs); };
    // One progress line per phase of the library's bracket (host/bounds/bracket.cpp).
    std::optional<Progress> progress;
    std::string phase;
    br.progress = [&](const std::string& ph, uint64_t done, uint64_t total) {
      if (!progress || ph != phase) {
        progress.reset();
        phase = ph;
        progress.emplace("bracket: " + ph);
      }
      progress->update(done, total);
    };
    const Bracket b = bracket(target, sched, opt, bo, br, comm);
    progress.reset();
    dist::on_root(comm, [&] { report(*st, opt, target, sched, b); });
    return 0;
  };
}

/// Rank 0: the table on stdout and --json (the figures' keys from bracket_json_object, the
/// parameters from the command line).
void report(const BracketState& st, const SampleOptions& opt, const Mixture& target, const Schedule& sched,
            const Bracket& b) {
  const TvReport& rep = b.lower;
  const StatResult& best = rep.max();
  const StatResult& best_kl = rep.max_kl();
  const RunSummary& sum = b.lower_run;
  const auto& pb = b.upper;
  const auto& ex = b.exact;
  const auto& ref = b.reference;
  const auto& checks = b.checks;
  const bool consistent = b.consistent;
  const std::string& reducible = b.reducible_reason;
  const std::string &bounds_backend = b.bounds_backend, &bounds_device = b.bounds_device;
  const uint64_t n_lower = b.n_lower;

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
  os << "score error: eps_score " << fmt(sum.eps_score, "%.4g") << " (realised), eps_Jacobi " << b.eps_jacobi.text()
     << "\n";
  os << "TV(X_0, " << ys << "):\n";
  os << "  lower      " << fmt(best.tv_corrected) << "  CI95 [" << fmt(best.ci_lo) << ", " << fmt(best.ci_hi)
     << "]  a lower bound: best of " << rep.stats.size() << " statistics (" << best.name << ", floor "
     << fmt(best.floor) << (best.resolved ? "" : ", NOT resolved from the floor") << "), fresh sample n = "
     << n_lower << " (" << sum.precision << ", " << sum.backend << ")\n";
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
    nlohmann::json j = bracket_json_object(b);
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
                       {"n_lower", n_lower},
                       {"precision_lower", st.precision},
                       {"backend_lower", sum.backend},
                       {"bounds_backend", bounds_backend},
                       {"bounds_device", bounds_device},
                       {"threads", st.threads},
                       {"stats", st.tv.stats},
                       {"bins", st.tv.bins},
                       {"bootstrap", st.tv.bootstrap}};
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
