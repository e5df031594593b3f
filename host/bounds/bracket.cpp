// gmmdiff: TV(X_0, Y_s) from both sides (gmmdiff/bracket.hpp; over MPI ranks: bounds/distributed.hpp).
// The one computation behind `gmmdiff bracket` (host/cli/cmd_bracket.cpp: options and printing
// only), the Python package's gmmdiff.bracket and their JSON (bracket_json), so that both give the
// same figures, bit for bit (the Python tests compare them).
#include "gmmdiff/bracket.hpp"

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "tv/distributed.hpp"
#include "bounds/distributed.hpp"

namespace gmmdiff {

namespace {

std::string fmt5(double x) {
  if (std::isnan(x)) return "nan";
  if (std::isinf(x)) return x > 0 ? "inf" : "-inf";
  char b[64];
  std::snprintf(b, sizeof b, "%.5f", x);
  return b;
}

nlohmann::json num(double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(); }

SampleOptions lower_options(const SampleOptions& opt, const BracketOptions& br) {
  SampleOptions lower = opt;
  lower.n = br.n_lower;
  lower.progress = nullptr;
  return lower;
}

TvOptions lower_tv_options(const SampleOptions& opt, const BracketOptions& br) {
  TvOptions to = br.tv;
  to.seed = opt.seed;
  return to;
}

}  // namespace

bool bracket_is_stochastic(const SampleOptions& opt) {
  return opt.sampler == SamplerKind::DDPM || (opt.sampler == SamplerKind::DDIMSong && opt.eta > 0);
}

void check_bracket_sampler(const SampleOptions& opt, bool M_given, bool variance_given) {
  GMMDIFF_EXPECTS(std::isfinite(opt.eta) && opt.eta >= 0 && opt.eta <= 1, "--eta = ", opt.eta, " (allowed: 0 to 1)");
  GMMDIFF_EXPECTS(opt.eta == 0 || opt.sampler == SamplerKind::DDIMSong, "--eta applies to ddim-song only");
  if (!bracket_is_stochastic(opt) && M_given)
    throw Error("--M applies to the stochastic samplers only (ddim has the exact density: no continuations)");
  if (opt.sampler != SamplerKind::DDPM && variance_given)
    throw Error("--variance applies to ddpm only (ddim has no noise); ddim-song's noise is set by --eta");
}

Bracket bracket(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo_in,
                const BracketOptions& br, dist::Comm& comm) {
  Bracket b;
  b.stop = opt.stop;
  // ddpm and ddim-song with eta > 0 are stochastic (the path bound); ddim and ddim-song with
  // eta = 0 are deterministic (the exact density).
  b.ddpm = bracket_is_stochastic(opt);
  SampleOptions lower = lower_options(opt, br);
  std::unique_ptr<TvPlan> plan;
  std::unique_ptr<BoundsKernels> kr;
  // Every check before any work or output; a refusal on any rank is every rank's (collective).
  dist::collective(comm, [&] {
    check_bracket_sampler(opt, false, false);
    if (b.ddpm) check_path_options(target, s, opt, bo_in);
    else check_flow_options(target, s, opt, bo_in);
    check_sample_options(target, s, lower);
    plan = std::make_unique<TvPlan>(target, lower_tv_options(opt, br), lower.n);  // statistics, bins, bootstrap
    if (br.checked) br.checked();
    b.reducible_reason = reducible_reason(target, opt);
    kr = make_bounds_kernels(br.backend, br.threads);
  });
  b.n_lower = lower.n;

  // 1. The upper bound (a stochastic sampler) or the exact value (a deterministic one): first,
  // since it can refuse the sampler (a ddim step map that folds). The outer draws or particles are split over the ranks.
  b.bounds_backend = kr->name();
  b.bounds_device = kr->device_name();
  BoundsOptions bo = bo_in;
  const std::string phase = b.ddpm ? "upper bound" : "exact density";
  bo.progress = nullptr;
  if (br.progress && comm.root())  // rank 0's share stands for the whole
    bo.progress = [&](uint64_t done, uint64_t total) { br.progress(phase, done, total); };
  if (b.ddpm) b.upper = path_bound(target, s, opt, bo, *kr, comm);
  else b.exact = exact_density(target, s, opt, bo, *kr, comm);
  kr.reset();  // its chunk's memory (device memory for cuda) goes before the sample's is planned

  // 2. The lower bound: a fresh sample binned where it lies, as `gmmdiff tv` does, its particles
  // split over the ranks.
  std::unique_ptr<Backend> be;
  dist::collective(comm, [&] {
    be = make_backend(br.backend, br.threads);
    lower.chunk = dist::rank_chunk_rows(*be, run_shape(target, lower.precision, lower.seed), lower.chunk);
  });
  if (br.progress) lower.progress = [&](uint64_t done, uint64_t total) { br.progress("lower bound", done, total); };
  b.lower = tv_of_run(target, s, lower, *plan, *be, comm, &b.lower_run);

  // 3. eps_Jacobi, the exact reference of a reducible model and 4. the checks: rank 0 alone.
  dist::on_root(comm, [&] {
    b.eps_jacobi = measure_eps_jacobi(target, s, opt);
    if (b.reducible_reason.empty() && br.reference) b.reference = exact_reference(target, s, opt);
    // lower <= exact <= upper, each figure at its confidence bound.
    const double L = b.lower.max().ci_lo;
    const StatResult& best_kl = b.lower.max_kl();
    auto add = [&](const std::string& what, double x, double y) {
      b.checks.push_back({what + ": " + fmt5(x) + " <= " + fmt5(y), x <= y});
    };
    const auto& pb = b.upper;
    const auto& ex = b.exact;
    const auto& ref = b.reference;
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
    for (const BracketCheck& c : b.checks) b.consistent = b.consistent && c.ok;
  });
  return b;
}

Bracket bracket(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo,
                const BracketOptions& br) {
  return bracket(target, s, opt, bo, br, dist::serial());
}

nlohmann::json bracket_json_object(const Bracket& b) {
  const auto& pb = b.upper;
  const auto& ex = b.exact;
  const auto& ref = b.reference;
  const StatResult& best = b.lower.max();
  const std::string ys = "Y_" + std::to_string(b.stop), xs = "X_" + std::to_string(b.stop);
  nlohmann::json j;
  j["tool"] = "gmmdiff bracket";
  j["tv_lower"] = best.tv_corrected;
  j["tv_lower_ci95"] = {best.ci_lo, best.ci_hi};
  j["tv_lower_stat"] = best.name;
  j["tv_lower_floor"] = best.floor;
  j["tv_lower_resolved"] = best.resolved;
  j["tv_lower_joint_lo"] = best.ci_lo_joint;
  const StatResult& best_kl = b.lower.max_kl();
  j["kl_lower"] = best_kl.kl_mm;
  j["kl_lower_ci95"] = {best_kl.kl_ci_lo, best_kl.kl_ci_hi};
  j["kl_lower_stat"] = best_kl.name;
  j["tv_upper"] = pb ? num(pb->tv_upper()) : nlohmann::json();
  j["tv_upper_mean"] = pb ? num(pb->tv_upper_mean()) : nlohmann::json();
  j["tv_upper_se"] = pb ? num(pb->tv.se) : nlohmann::json();
  j["tv_upper_quarter_M"] = pb ? num(pb->tv_upper_quarter()) : nlohmann::json();
  j["tv_x0_x1"] = pb && b.stop == 1 ? num(pb->x0x1.bound) : nlohmann::json();
  j["tv_x0_x1_method"] = pb && b.stop == 1 ? nlohmann::json(pb->x0x1.method) : nlohmann::json();
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
  j["reducible"] = b.reducible_reason.empty();
  j["reducible_reason"] = b.reducible_reason;
  j["consistent"] = b.consistent;
  nlohmann::json cj = nlohmann::json::array();
  for (const BracketCheck& c : b.checks) cj.push_back({{"check", c.what}, {"ok", c.ok}});
  j["checks"] = cj;
  j["meaning"] = {
      {"tv_lower", "lower bound on TV(X_0, " + ys + "): the best bias-corrected projected TV, CI95 in tv_lower_ci95"},
      {"tv_lower_joint_lo", "the low end of tv_lower's CI jointly over all the statistics (Bonferroni): it accounts "
                            "for taking the largest"},
      {"kl_lower", "lower bound on KL(" + ys + " || X_0): the largest Miller-Madow-corrected plug-in KL of a binned "
                   "statistic, CI95 in kl_lower_ci95"},
      {"tv_upper", "upper bound on TV(X_0, " + ys + "), one-sided 95%: U_TV(M) + 1.645 se" +
                       std::string(b.stop == 1 ? " + tv_x0_x1" : "")},
      {"tv_upper_quarter_M", "the same with M/4 continuations (diagnostic)"},
      {"kl_upper", "upper bound on KL(" + xs + " || " + ys + "), one-sided 95%"},
      {"tv_exact", "TV(X_0, " + ys + ") through the exact output density (ddim), CLT CI95 in tv_exact_ci95"},
      {"kl_exact", "KL(" + ys + " || X_0) through the exact output density (ddim)"},
      {"tv_reference", "TV(X_0, " + ys + ") of a reducible model by quadrature (noise-free)"},
      {"kl_reference", "KL(" + ys + " || X_0) of a reducible model by quadrature"},
      {"kl_reference_forward", "KL(" + xs + " || " + ys + ") of a reducible model by quadrature"}};
  j["eps_score"] = b.lower_run.eps_score;
  j["eps_jacobi"] = b.eps_jacobi.defined ? nlohmann::json(b.eps_jacobi.value) : nlohmann::json();
  j["eps_jacobi_se"] = b.eps_jacobi.defined ? nlohmann::json(b.eps_jacobi.se) : nlohmann::json();
  j["eps_jacobi_defined"] = b.eps_jacobi.defined;
  j["seconds"] = {{"lower", b.lower_run.seconds},
                  {"upper", pb ? num(pb->seconds) : nlohmann::json()},
                  {"exact", ex ? num(ex->seconds) : nlohmann::json()},
                  {"reference", ref ? num(ref->seconds) : nlohmann::json()}};
  j["rate"] = pb ? num(pb->rate()) : (ex ? num(ex->rate()) : nlohmann::json());
  j["rate_unit"] = pb ? "outer draws x M x steps x d per second" : "particles x steps x d per second";
  return j;
}

std::string bracket_json(const Bracket& b) { return bracket_json_object(b).dump(2); }

}  // namespace gmmdiff
