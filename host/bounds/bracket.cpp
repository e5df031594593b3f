// gmmdiff: TV(X_0, Y_s) from both sides in one process (gmmdiff/bracket.hpp), for the Python
// package's gmmdiff.bracket: the calls `gmmdiff bracket` makes (host/cli/cmd_bracket.cpp, which
// also splits the work over MPI ranks), so that both give the same figures, bit for bit (the
// Python tests compare them).
#include "gmmdiff/bracket.hpp"

#include <cmath>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "dist/comm.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "tv/distributed.hpp"

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

Bracket bracket(const Mixture& target, const Schedule& s, const SampleOptions& opt, const BoundsOptions& bo_in,
                const BracketOptions& br) {
  Bracket b;
  b.stop = opt.stop;
  b.ddpm = opt.sampler == SamplerKind::DDPM;
  // Every check before any work or output.
  if (b.ddpm) check_path_options(target, s, opt, bo_in);
  else check_flow_options(target, s, opt, bo_in);
  SampleOptions lower = lower_options(opt, br);
  check_sample_options(target, s, lower);
  TvPlan plan(target, lower_tv_options(opt, br), lower.n);
  if (br.checked) br.checked();
  b.reducible_reason = reducible_reason(target, opt);
  b.n_lower = lower.n;

  // 1. The upper bound (ddpm) or the exact value (ddim): first, since it can refuse the sampler
  // (a ddim step map that folds).
  auto kr = make_bounds_kernels(br.backend, br.threads);
  b.bounds_backend = kr->name();
  b.bounds_device = kr->device_name();
  BoundsOptions bo = bo_in;
  const std::string phase = b.ddpm ? "upper bound" : "exact density";
  bo.progress = nullptr;
  if (br.progress) bo.progress = [&](uint64_t done, uint64_t total) { br.progress(phase, done, total); };
  if (b.ddpm) b.upper = path_bound(target, s, opt, bo, *kr);
  else b.exact = exact_density(target, s, opt, bo, *kr);
  kr.reset();  // its chunk's memory (device memory for cuda) goes before the sample's is planned

  // 2. The lower bound: a fresh sample binned where it lies, as `gmmdiff tv` does (the same call
  // as `gmmdiff bracket` in one process).
  auto be = make_backend(br.backend, br.threads);
  lower.chunk = dist::rank_chunk_rows(*be, run_shape(target, lower.precision, lower.seed), lower.chunk);
  if (br.progress) lower.progress = [&](uint64_t done, uint64_t total) { br.progress("lower bound", done, total); };
  b.lower = tv_of_run(target, s, lower, plan, *be, dist::serial(), &b.lower_run);

  // 3. The exact reference of a reducible model.
  if (b.reducible_reason.empty() && br.reference) b.reference = exact_reference(target, s, opt);

  // 4. lower <= exact <= upper, each figure at its confidence bound.
  const double L = b.lower.max().ci_lo;
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
  for (const BracketCheck& c : b.checks) b.consistent = b.consistent && c.ok;
  return b;
}

std::string bracket_json(const Bracket& b) {
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
  j["seconds"] = {{"lower", b.lower_run.seconds},
                  {"upper", pb ? num(pb->seconds) : nlohmann::json()},
                  {"exact", ex ? num(ex->seconds) : nlohmann::json()},
                  {"reference", ref ? num(ref->seconds) : nlohmann::json()}};
  j["rate"] = pb ? num(pb->rate()) : (ex ? num(ex->rate()) : nlohmann::json());
  j["rate_unit"] = pb ? "outer draws x M x steps x d per second" : "particles x steps x d per second";
  return j.dump(2);
}

}  // namespace gmmdiff
