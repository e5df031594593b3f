// gmmdiff (sweep): the runs of one grid (host/sweep/expand.hpp).
#include "sweep/expand.hpp"

#include <algorithm>
#include <array>
#include <cstdint>

#include "gmmdiff/sampler.hpp"
#include "io/text.hpp"
#include "sweep/run_params.hpp"

namespace gmmdiff::sweep_parse {
namespace {

/// The axes of one family: the grid's, with what the family fixes (a model file: d, K, sd,
/// radius; two-point and gaussian: K) or overrides (K, radius).
struct FamilyAxes {
  bool sweep_K = false;  ///< Ks is the grid's K axis
  std::vector<KSpec> Ks;
  std::vector<double> sds, radii;
  std::vector<int> ds;
  std::vector<uint64_t> model_seeds;
};

/// The K values of family f: fixed by a model file or by the preset (two-point 2, gaussian 1;
/// a different K for them is an error), else the family's own, else the sweep's K axis, else
/// "d" ("d+1" for simplex).
std::vector<KSpec> family_ks(const ParseContext& c, const FamilyEntry& f, const std::vector<KSpec>& sweep_ks) {
  if (!f.model_file.empty()) return {KSpec::constant(f.model_K)};
  if (f.preset == "two-point" || f.preset == "gaussian") {
    const int k = f.preset == "two-point" ? 2 : 1;
    for (const auto& ks : f.K)
      if (ks.mult != 0 || ks.add != k)
        c.fail("family.K", f.preset + " has K = " + std::to_string(k) + " (K = " + ks.text + " does not apply)");
    return {KSpec::constant(k)};  // the sweep's K axis does not apply
  }
  if (!f.K.empty()) return f.K;
  if (!sweep_ks.empty()) return sweep_ks;
  return {KSpec::parse(f.preset == "simplex" ? "d+1" : "d", "")};
}

FamilyAxes family_axes(const ParseContext& c, const FamilyEntry& f, const GridAxes& a) {
  const bool is_model = !f.model_file.empty();
  FamilyAxes fa;
  fa.Ks = family_ks(c, f, a.Ks);
  fa.sweep_K = !is_model && f.preset != "two-point" && f.preset != "gaussian" && f.K.empty() && !a.Ks.empty();
  fa.sds = is_model ? std::vector<double>{f.model_sd} : a.sds;
  fa.radii = is_model ? std::vector<double>{f.model_radius} : (f.radius.empty() ? a.radii : f.radius);
  fa.ds = is_model ? std::vector<int>{f.model_d} : a.ds;
  fa.model_seeds = f.preset == "random-sphere" ? a.model_seeds : std::vector<uint64_t>{0};
  return fa;
}

// The product in a fixed order, the last axis fastest (an odometer over the axes).
// clang-format off
enum Axis { kSd, kRadius, kModelSeed, kD, kK, kErr, kEps, kProfile, kDirection, kSampler, kEta, kVariance,
            kSchedule, kStop, kPrecision, kN, kBackend, kT, kSeed, kAxisCount };
// clang-format on
using Position = std::array<std::size_t, kAxisCount>;

Position axis_sizes(const FamilyAxes& fa, const GridAxes& a) {
  return {fa.sds.size(),      fa.radii.size(),    fa.model_seeds.size(), fa.ds.size(),
          fa.Ks.size(),       a.errs.size(),      a.epss.size(),         a.profiles.size(),
          a.bias_directions.size(), a.samplers.size(), a.etas.size(),    a.variances.size(),
          a.schedules.size(), a.stops.size(),     a.precisions.size(),   a.ns.size(),
          a.backends.size(),  a.Ts.size(),        a.seeds.size()};
}

/// The next position, the last axis fastest; false after the last one.
bool advance(Position& at, const Position& sizes) {
  for (int ax = kAxisCount - 1; ax >= 0; --ax) {
    if (++at[ax] < sizes[ax]) return true;
    at[ax] = 0;
  }
  return false;
}

/// The number of distinct values of v, each told apart by text(x).
template <typename V, typename Text>
double distinct(const V& v, Text text) {
  std::set<std::string> u;
  for (const auto& x : v) u.insert(text(x));
  return static_cast<double>(u.size());
}

/// Runs that differ on an axis other than eps and variance (which collapse) are distinct, so the
/// product of the distinct values on those axes is a lower bound on this family's runs: a sweep
/// far over the limit stops here, before seconds of expanding it (issue 5).
void check_run_count_bound(const ParseContext& c, const FamilyEntry& f, const FamilyAxes& fa, const GridAxes& a) {
  auto as_num = [](double x) { return text::num(x); };
  auto as_dec = [](auto x) { return std::to_string(x); };
  auto as_enum = [](auto x) { return to_string(x); };
  const double at_least =
      distinct(fa.sds, as_num) * distinct(fa.radii, as_num) * distinct(fa.model_seeds, as_dec) *
      distinct(fa.ds, as_dec) * distinct(fa.Ks, [](const KSpec& k) { return k.text; }) * distinct(a.errs, as_enum) *
      distinct(a.samplers, as_enum) *
      distinct(a.schedules,
               [](const ScheduleEntry& e) {
                 return e.name + "|" + text::num(e.c0) + "|" + text::num(e.c1) + "|" + e.file;
               }) *
      distinct(a.stops, as_dec) * distinct(a.precisions, as_enum) * distinct(a.ns, as_dec) *
      distinct(a.backends, [](const std::string& b) { return b; }) * distinct(a.Ts, as_dec) *
      distinct(a.seeds, as_dec);
  if (at_least > static_cast<double>(kMaxRuns))
    c.fail("", "at least " +
                   (at_least < 1e18 ? std::to_string(static_cast<uint64_t>(at_least)) : text::num(at_least)) +
                   " runs (family " + f.label + "): too many (at most " + std::to_string(kMaxRuns) + ")");
}

/// The run at one position of the product. eps does not apply without a score error, nor the
/// variance to ddim (no noise): they collapse to 0 and beta.
RunParams run_at(const FamilyEntry& f, const FamilyAxes& fa, const GridAxes& a, const Position& at) {
  const KSpec& ks = fa.Ks[at[kK]];
  const ScheduleEntry& sch = a.schedules[at[kSchedule]];
  const ScoreErrorKind err = a.errs[at[kErr]];
  const SamplerKind smp = a.samplers[at[kSampler]];
  const uint64_t seed = a.seeds[at[kSeed]];
  RunParams p;
  p.family = f.label;
  p.preset = f.preset;
  p.model_file = f.model_file;
  p.model_hash = f.model_hash;
  p.model = f.model;
  p.d = fa.ds[at[kD]];
  p.K = ks.resolve(p.d);
  p.K_spec = ks.text;
  p.full_rank = f.full_rank;
  p.radius = fa.radii[at[kRadius]];
  p.sd = fa.sds[at[kSd]];
  p.model_seed = fa.model_seeds[at[kModelSeed]];
  p.score_error = err;
  p.eps = err == ScoreErrorKind::None ? 0.0 : a.epss[at[kEps]];
  p.sampler = smp;
  // ddim and ddim-song have no variance choice, eta is ddim-song's, a profile needs an error and a
  // direction the bias error: the others collapse to the defaults (deduplicated by key).
  p.variance = smp == SamplerKind::DDPM ? a.variances[at[kVariance]] : Variance::Beta;
  p.eta = smp == SamplerKind::DDIMSong ? a.etas[at[kEta]] : 0.0;
  p.error_profile = err == ScoreErrorKind::None ? ErrorProfile::Uniform : a.profiles[at[kProfile]];
  p.bias_direction = err == ScoreErrorKind::Bias ? a.bias_directions[at[kDirection]] : std::string("random");
  p.schedule = sch.name;
  p.c0 = sch.c0;
  p.c1 = sch.c1;
  p.schedule_file = sch.file;
  p.schedule_kind = sch.kind;
  p.schedule_hash = sch.hash;
  p.schedule_loaded = sch.loaded;
  p.T = sch.loaded ? sch.loaded->T : a.Ts[at[kT]];  // a schedule file fixes T: the row records what ran
  p.stop = a.stops[at[kStop]];
  p.precision = a.precisions[at[kPrecision]];
  p.n = a.ns[at[kN]];
  p.seed = seed;
  p.eps_samples = a.eps_samples;
  p.quantities = a.quantities;
  p.backend = a.backends[at[kBackend]];
  p.tv = a.tv;
  p.tv.seed = seed;
  p.bounds = a.bounds;
  p.tv_files_hash = a.tv_files_hash;
  return p;
}

/// Validates one run's values (those that the axes alone cannot: combinations).
void check_run(const ParseContext& c, const RunParams& p) {
  if (p.stop == 1 && p.T < 2) c.fail("T", "T = " + std::to_string(p.T) + " with stop 1 takes no step (T >= 2)");
  if (p.K < 1)
    c.fail("K",
           "K = " + p.K_spec + " gives K = " + std::to_string(p.K) + " at d = " + std::to_string(p.d) + " (K >= 1)");
  if (p.preset == "simplex" && p.K > p.d + 1)
    c.fail("K", "simplex with K = " + std::to_string(p.K) + " > d + 1 = " + std::to_string(p.d + 1) +
                    " (at most d + 1 equidistant means; write K as \"d+1\" to follow d)");
  if (p.full_rank && p.K < p.d)
    c.fail("K", p.family + " asks for full rank but K = " + std::to_string(p.K) + " < d = " + std::to_string(p.d) +
                    " (write K as \"d\" or larger)");
  try {
    // The rule of `gmmdiff sample`, with the run's profile over its steps (the target's means are
    // checked once per target: parse.cpp).
    check_score_error(0.0, score_error_of(p), p.T, p.stop);
  } catch (const Error& e) {
    c.fail("eps", e.what());
  }
  if (p.score_error == ScoreErrorKind::Bias && p.bias_direction != "random" && p.bias_direction != "means") {
    const auto values = 1 + std::count(p.bias_direction.begin(), p.bias_direction.end(), ',');
    if (values != p.d)
      c.fail("bias_direction", "a vector of " + std::to_string(values) + " values for d = " + std::to_string(p.d) +
                                   " (" + p.family + ")");
  }
}

/// The axes run p of family f uses (those that do not apply to every run).
void mark_applied(const FamilyEntry& f, const FamilyAxes& fa, const RunParams& p, std::set<std::string>& applied) {
  const bool preset = f.model_file.empty();
  if (p.schedule != "file") applied.insert("T");
  if (p.score_error != ScoreErrorKind::None) applied.insert({"eps", "eps_samples"});
  if (p.sampler == SamplerKind::DDPM) applied.insert("variance");
  if (p.sampler == SamplerKind::DDIMSong) applied.insert("eta");
  if (p.score_error != ScoreErrorKind::None) applied.insert("error_profile");
  if (p.score_error == ScoreErrorKind::Bias) applied.insert("bias_direction");
  if (fa.sweep_K) applied.insert("K");
  if (preset && f.radius.empty()) applied.insert("radius");
  if (preset) applied.insert({"sd", "d"});
  if (p.preset == "random-sphere") applied.insert("model_seed");
}

void expand_family(const ParseContext& c, const FamilyEntry& f, const GridAxes& a, std::set<std::string>& seen,
                   std::vector<RunParams>& runs, AxisUse& use) {
  const FamilyAxes fa = family_axes(c, f, a);
  const Position sizes = axis_sizes(fa, a);
  check_run_count_bound(c, f, fa, a);
  Position at{};
  do {
    const RunParams p = run_at(f, fa, a, at);
    check_run(c, p);
    mark_applied(f, fa, p, use.applied);
    if (seen.insert(p.key()).second) runs.push_back(p);
    if (runs.size() > kMaxRuns)
      c.fail("", "more than " + std::to_string(kMaxRuns) + " runs: too many (at most " + std::to_string(kMaxRuns) +
                     ")");
  } while (advance(at, sizes));
}

}  // namespace

void expand_grid(const ParseContext& c, const GridAxes& a, std::set<std::string>& seen, std::vector<RunParams>& runs,
                 AxisUse& use) {
  use.given.insert(a.given.begin(), a.given.end());
  for (const auto& f : a.families) expand_family(c, f, a, seen, runs, use);
}

void check_axes_apply(const ParseContext& c, const AxisUse& use) {
  static const std::vector<std::pair<std::string, std::string>> kWhy = {
      {"T", "every schedule is a file, which fixes T (its length); remove \"T\""},
      {"eps", "every run has score_error \"none\"; remove it, or add a score error"},
      {"eps_samples", "every run has score_error \"none\" (nothing to measure); remove it"},
      {"variance", "no run uses the ddpm sampler (ddim adds no noise; ddim-song's noise is \"eta\"); remove it"},
      {"eta", "no run uses the ddim-song sampler (the only one with a noise fraction eta); remove it"},
      {"error_profile", "every run has score_error \"none\"; remove it, or add a score error"},
      {"bias_direction", "no run has score_error \"bias\" (the only one with a direction); remove it"},
      {"K", "every family fixes K (two-point, gaussian, a model file, or a family's own \"K\"); remove it"},
      {"radius", "every family fixes the radius (a model file, or a family's own \"radius\"); remove it"},
      {"sd", "every family is a model file, which fixes the sd; remove it"},
      {"d", "every family is a model file, which fixes d; remove it"},
      {"model_seed", "no family is random-sphere (the only one with random means); remove it"},
  };
  for (const auto& [axis, why] : kWhy)
    if (use.given.count(axis) && !use.applied.count(axis)) c.fail(axis, "applies to no run of this sweep: " + why);
}

}  // namespace gmmdiff::sweep_parse
