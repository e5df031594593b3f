// gmmdiff: the TV plan (include/gmmdiff/tv.hpp, tv/plan_detail.hpp; docs/tv.md): the statistics
// a run is measured with, their histogram spec (directions, radial centre, equal-mass edges,
// 2-D pairs) and target masses, the exact reference sample where a target law is not known in
// closed form, and the evaluation of accumulated counts into figures.
#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <omp.h>

#include "gmmdiff/error.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/tv.hpp"
#include "tv/figures.hpp"
#include "tv/plan_detail.hpp"
#include "tv/statistics.hpp"
#include "tv/target_law.hpp"

namespace gmmdiff {

namespace tv_detail {
namespace {

constexpr int kMaxBins = 100000;

uint64_t splitmix64(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

/// Seed of the exact reference sample: derived from the TV seed, so that it never coincides with
/// an exact sample drawn with the same --seed by `gmmdiff sample`.
uint64_t reference_seed(uint64_t seed) { return splitmix64(seed ^ 0x7265666572656e63ull); }
uint64_t bootstrap_seed(uint64_t seed, std::size_t stat) {
  return splitmix64(seed ^ splitmix64(0xB0075742A9ull + stat));
}

// ---- building a plan, step by step ----------------------------------------------------------

/// Step 1: refuses a sample size, model or options a plan cannot be made for.
void check_plan_inputs(const Mixture& target, const TvOptions& opt, uint64_t n) {
  GMMDIFF_EXPECTS(n > 0, "empty sample: there are no rows to estimate TV from");
  GMMDIFF_EXPECTS(target.K >= 1 && target.d >= 1 && static_cast<int>(target.weights.size()) == target.K &&
                      target.means.size() == static_cast<std::size_t>(target.K) * target.d,
                  "TV: the model is not a validated mixture (K = ", target.K, ", d = ", target.d, ")");
  GMMDIFF_EXPECTS(opt.bins == 0 || (opt.bins >= 2 && opt.bins <= kMaxBins), "--bins ", opt.bins,
                  ": must be 0 (from n) or in [2, ", kMaxBins, "]");
  GMMDIFF_EXPECTS(opt.bootstrap >= kMinBootstrap && opt.bootstrap <= kMaxBootstrap, "--bootstrap ",
                  opt.bootstrap, ": must be in [", kMinBootstrap, ", ", kMaxBootstrap, "]");
  GMMDIFF_EXPECTS(opt.reference_n < (uint64_t(1) << 48), "--reference-n ", opt.reference_n,
                  ": at most 2^48 rows (as --n)");
}

/// Step 2: bins per 1-D histogram and per axis of a 2-D histogram: --bins, or from n
/// (clamp(ceil(n^(1/3)), 8, 1000) and clamp(ceil(n^(1/6)), 4, 64); docs/tv.md).
void choose_bins(const TvOptions& opt, uint64_t n, Plan& plan) {
  const double dn = static_cast<double>(n);
  if (opt.bins > 0) {
    plan.bins1 = opt.bins;
    plan.bins2 = std::clamp(static_cast<int>(std::ceil(std::sqrt(static_cast<double>(opt.bins)))), 2, 64);
  } else {
    plan.bins1 = std::clamp(static_cast<int>(std::ceil(std::cbrt(dn) - 1e-9)), 8, 1000);
    plan.bins2 = std::clamp(static_cast<int>(std::ceil(std::pow(dn, 1.0 / 6.0) - 1e-9)), 4, 64);
  }
}

/// The statistics chosen from the requests (step 3): the directions they project on (the
/// values 0..m-1 of the spec) with the bins of each, the statistics, the notes on what was
/// skipped, and the radial statistic's centre.
struct Selection {
  int d = 0;
  int bins1 = 0, bins2 = 0;
  std::vector<std::vector<double>> dirs;
  std::vector<int> dir_bins;
  std::vector<PlanStat> stats;  ///< the radial statistic has a = -1 until its value is known
  std::vector<std::string> notes;
  int radial = -1;              ///< -1 none, 0 centred at the weighted mean of the means, 1 at the origin
  int random_used = 0;          ///< random directions taken so far (random:M tokens continue the stream)

  int add_dir(const double* u, int B) {
    dirs.emplace_back(u, u + d);
    dir_bins.push_back(B);
    return static_cast<int>(dirs.size()) - 1;
  }
  /// A 1-D statistic on direction u with bins1 bins.
  void add_projection(const std::string& name, const double* u) {
    PlanStat s;
    s.name = name;
    s.a = add_dir(u, bins1);
    stats.push_back(s);
  }
};

/// The number of principal directions of the means that the requests use (0: none).
int principal_directions_needed(const std::vector<StatRequest>& reqs) {
  int r_needed = 0;
  for (const auto& q : reqs) {
    if (q.kind == StatRequest::Means) r_needed = std::max(r_needed, q.count > 0 ? q.count : 4);
    if (q.kind == StatRequest::Means2d) r_needed = std::max(r_needed, 2);
  }
  return r_needed;
}

/// means[:r]: the top r (default 4) principal directions of the means.
void select_means(Selection& sel, const StatRequest& q, const Principal& pr) {
  const int want = q.count > 0 ? q.count : 4;
  const int r = std::min(want, pr.rank);
  if (pr.rank == 0) {
    sel.notes.push_back(q.token + ": skipped, the means span no direction (all means are zero)");
    return;
  }
  if (q.count > 0 && q.count > pr.rank)
    sel.notes.push_back(detail::cat(q.token, ": the means have rank ", pr.rank, ", so ", pr.rank, " direction(s)"));
  for (int i = 0; i < r; ++i)
    sel.add_projection(detail::cat("means[", i, "]"), pr.dirs.data() + static_cast<std::size_t>(i) * sel.d);
}

/// means2d: the 2-D histogram on the top two principal directions (the second a fixed orthogonal
/// direction when the means have rank 1).
void select_means2d(Selection& sel, const StatRequest& q, const Principal& pr) {
  const int d = sel.d;
  if (d < 2) {
    sel.notes.push_back(q.token + ": skipped, d = 1 has no 2-D projection");
    return;
  }
  if (pr.rank == 0) {
    sel.notes.push_back(q.token + ": skipped, the means span no direction (all means are zero)");
    return;
  }
  std::vector<double> u1(pr.dirs.begin(), pr.dirs.begin() + d), u2;
  if (pr.rank >= 2) u2.assign(pr.dirs.begin() + d, pr.dirs.begin() + 2 * d);
  else {
    u2 = orthogonal_unit(u1);
    sel.notes.push_back(q.token + ": the means have rank 1; the second axis is a fixed direction orthogonal to them");
  }
  PlanStat s;
  s.name = "means2d";
  s.dims = 2;
  s.a = sel.add_dir(u1.data(), sel.bins2);
  s.b = sel.add_dir(u2.data(), sel.bins2);
  sel.stats.push_back(s);
}

/// random:M: the next M random directions of the seed's stream.
void select_random(Selection& sel, const StatRequest& q, uint64_t seed) {
  const std::vector<double> all = random_directions(sel.d, sel.random_used + q.count, seed);
  for (int i = sel.random_used; i < sel.random_used + q.count; ++i)
    sel.add_projection(detail::cat("random[", i, "]"), all.data() + static_cast<std::size_t>(i) * sel.d);
  sel.random_used += q.count;
}

/// axes[:m]: the first m (default min(d, 4)) coordinate axes.
void select_axes(Selection& sel, const StatRequest& q) {
  const int d = sel.d;
  const int mm = q.count > 0 ? q.count : std::min(d, 4);
  GMMDIFF_EXPECTS(mm <= d, "--stat ", q.token, ": there are only d = ", d, " coordinate axes");
  std::vector<double> e(d, 0.0);
  for (int j = 0; j < mm; ++j) {
    std::fill(e.begin(), e.end(), 0.0);
    e[j] = 1.0;
    sel.add_projection(detail::cat("axis[", j, "]"), e.data());
  }
}

/// file:PATH.npy: the rows of the file as directions.
void select_file(Selection& sel, const StatRequest& q, const TvOptions& opt) {
  const auto it = opt.files.find(q.path);
  const std::vector<double> u = it != opt.files.end() && it->second ? file_directions(*it->second, q.path, sel.d)
                                                                    : file_directions(q.path, sel.d);
  const std::size_t rows = u.size() / sel.d;
  for (std::size_t i = 0; i < rows; ++i) sel.add_projection(detail::cat("file[", i, "]"), u.data() + i * sel.d);
}

/// radial[:0]: |y - c|^2; one radial statistic per plan (a repeat of the same one is ignored).
void select_radial(Selection& sel, const StatRequest& q) {
  const int want = q.origin ? 1 : 0;
  GMMDIFF_EXPECTS(sel.radial < 0 || sel.radial == want, "--stat: 'radial' and 'radial:0' cannot be ",
                  "combined (one radial statistic per run)");
  if (sel.radial >= 0) return;  // a repeat of the same radial statistic
  sel.radial = want;
  PlanStat s;
  s.name = q.origin ? "radial0" : "radial";
  s.a = -1;  // set by set_target_masses, once the number of directions is known
  sel.stats.push_back(s);
}

/// Step 3: the statistics of TvOptions::stats, in the order written. Throws when none is left.
Selection select_statistics(const Mixture& target, const TvOptions& opt, const Plan& plan) {
  const std::vector<StatRequest> reqs = parse_stats(opt.stats);
  Selection sel;
  sel.d = target.d;
  sel.bins1 = plan.bins1;
  sel.bins2 = plan.bins2;
  const int r_needed = principal_directions_needed(reqs);
  Principal pr;
  if (r_needed > 0) pr = principal_directions(target, r_needed);
  for (const auto& q : reqs) {
    switch (q.kind) {
      case StatRequest::Means: select_means(sel, q, pr); break;
      case StatRequest::Means2d: select_means2d(sel, q, pr); break;
      case StatRequest::Random: select_random(sel, q, opt.seed); break;
      case StatRequest::Axes: select_axes(sel, q); break;
      case StatRequest::File: select_file(sel, q, opt); break;
      case StatRequest::Radial: select_radial(sel, q); break;
    }
  }
  if (sel.stats.empty()) {
    std::string why;
    for (const auto& s : sel.notes) why += (why.empty() ? "" : "; ") + s;
    throw Error(detail::cat("--stat '", opt.stats, "': no statistic to evaluate (", why,
                            "); use random:M, axes or radial"));
  }
  return sel;
}

/// The target laws of the spec's values: one per direction, and the radial one (when there is one).
struct ValueLaws {
  std::vector<Law1D> projections;
  RadialLaw radial;
};

/// Step 4: the spec: the directions, the radial centre, and equal-mass edges of every value under
/// the target (the radial value, when there is one, comes after the directions).
HistogramSpec make_spec(const Mixture& target, const Selection& sel, int bins1, ValueLaws& laws) {
  const int d = target.d;
  const int mdirs = static_cast<int>(sel.dirs.size());
  HistogramSpec spec;
  spec.d = d;
  spec.directions.resize(static_cast<std::size_t>(mdirs) * d);
  for (int v = 0; v < mdirs; ++v)
    std::copy(sel.dirs[v].begin(), sel.dirs[v].end(), spec.directions.begin() + static_cast<std::size_t>(v) * d);
  spec.radial = sel.radial >= 0;
  if (spec.radial) spec.center = radial_center(target, sel.radial == 1);
  spec.edges.resize(mdirs + (spec.radial ? 1 : 0));
  laws.projections.resize(mdirs);
  for (int v = 0; v < mdirs; ++v) {
    laws.projections[v] = projected_law(target, sel.dirs[v].data());
    spec.edges[v] = projection_edges(target, laws.projections[v], sel.dir_bins[v]);
  }
  if (spec.radial) {
    laws.radial = radial_law(target, spec.center);
    spec.edges[mdirs] = radial_edges(target, laws.radial, bins1);
  }
  return spec;
}

/// Step 5: each statistic's target masses where its law is exact (projections always; the radial
/// statistic for isotropic components; 2-D pairs whose projections are independent under every
/// component), and the spec's 2-D pairs. The others wait for prepare_reference.
void set_target_masses(const Mixture& target, const ValueLaws& laws, HistogramSpec& spec,
                       std::vector<PlanStat>& stats) {
  const int d = spec.d;
  const int mdirs = static_cast<int>(laws.projections.size());
  for (auto& s : stats) {
    if (s.a < 0) {  // the radial statistic
      s.a = mdirs;
      s.exact = laws.radial.exact;
      if (s.exact) s.target_mass = radial_masses(target, laws.radial, spec.edges[mdirs]);
    } else if (s.dims == 1) {
      s.target_mass = projection_masses(target, laws.projections[s.a], spec.edges[s.a]);
    } else {
      s.pair = static_cast<int>(spec.pairs.size());
      spec.pairs.emplace_back(s.a, s.b);
      const double* ua = spec.directions.data() + static_cast<std::size_t>(s.a) * d;
      const double* ub = spec.directions.data() + static_cast<std::size_t>(s.b) * d;
      s.exact = projections_independent(target, ua, ub, laws.projections[s.a], laws.projections[s.b]);
      if (s.exact)
        s.target_mass = pair_masses(target, laws.projections[s.a], spec.edges[s.a], laws.projections[s.b],
                                    spec.edges[s.b]);
    }
  }
}

// ---- the reference sample -------------------------------------------------------------------

/// A spec with only the values (and pairs) of the statistics in `need`, and where each of their
/// values and pairs lies in it.
struct ReferenceSpec {
  HistogramSpec spec;
  std::vector<int> value;  ///< plan value -> reference value (-1: not binned)
  std::vector<int> pair;   ///< plan statistic -> reference pair (-1: none)
};

ReferenceSpec reference_spec(const Plan& plan, const std::vector<int>& need) {
  const HistogramSpec& spec = plan.spec;
  const int d = spec.d;
  const int mdirs = static_cast<int>(spec.directions.size() / std::max(d, 1));
  ReferenceSpec r;
  HistogramSpec& ref = r.spec;
  ref.d = d;
  std::vector<int>& remap = r.value;
  remap.assign(spec.edges.size(), -1);
  auto use_value = [&](int v) {
    if (remap[v] >= 0) return;
    if (v < mdirs) {
      int nd = 0;
      for (int w = 0; w < static_cast<int>(remap.size()); ++w)
        if (remap[w] >= 0 && w < mdirs) ++nd;
      remap[v] = nd;
      ref.directions.insert(ref.directions.end(), spec.directions.begin() + static_cast<std::size_t>(v) * d,
                            spec.directions.begin() + static_cast<std::size_t>(v + 1) * d);
    } else {
      ref.radial = true;
      ref.center = spec.center;
    }
  };
  for (int i : need) {
    use_value(plan.stats[i].a);
    if (plan.stats[i].dims == 2) use_value(plan.stats[i].b);
  }
  const int ref_dirs = static_cast<int>(ref.directions.size() / d);
  if (ref.radial) remap[mdirs] = ref_dirs;
  ref.edges.resize(ref_dirs + (ref.radial ? 1 : 0));
  for (int v = 0; v < static_cast<int>(remap.size()); ++v)
    if (remap[v] >= 0) ref.edges[remap[v]] = spec.edges[v];
  r.pair.assign(plan.stats.size(), -1);
  for (int i : need)
    if (plan.stats[i].dims == 2) {
      r.pair[i] = static_cast<int>(ref.pairs.size());
      ref.pairs.emplace_back(remap[plan.stats[i].a], remap[plan.stats[i].b]);
    }
  return r;
}

/// The counts of rows first .. first + m - 1 of the exact sample of the plan's target in the bins
/// of `ref`, drawn by be (fill_target: each row a function of its index) in chunks of at most
/// 64 MiB of doubles.
HistogramCounts reference_counts(const Plan& plan, const HistogramSpec& ref, uint64_t first, uint64_t m, Backend& be,
                                 Precision precision) {
  const int d = plan.spec.d;
  HistogramCounts counts = HistogramCounts::zeros(ref);
  if (m == 0) return counts;
  RunShape shape = run_shape(plan.target, precision, reference_seed(plan.opt.seed));
  shape.steps = false;  // filled and binned only
  const std::size_t max_rows = be.max_chunk_rows(shape);
  if (max_rows == 0) throw ResourceError("TV reference sample: not even one row fits the backend's memory");
  const std::size_t cap = std::max<std::size_t>(kChunkAlign, (std::size_t(64) << 20) / (8 * static_cast<std::size_t>(d)));
  std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(m, std::min(max_rows, cap)));
  if (chunk < m && chunk >= kChunkAlign) chunk -= chunk % kChunkAlign;
  shape.chunk_rows = chunk;
  be.begin(shape, plan.target);
  for (uint64_t at = first; at < first + m; at += chunk) {
    const std::size_t rows = static_cast<std::size_t>(std::min<uint64_t>(chunk, first + m - at));
    be.fill_target(at, rows);
    be.accumulate_histograms(ref, counts);
  }
  GMMDIFF_EXPECTS(counts.nonfinite_rows == 0, "TV reference sample: ", counts.nonfinite_rows,
                  " non-finite rows in an exact sample of the target (internal error)");
  return counts;
}

/// The statistics that wait for a reference sample.
std::vector<int> stats_needing_reference(const Plan& plan) {
  std::vector<int> need;
  for (std::size_t i = 0; i < plan.stats.size(); ++i)
    if (!plan.stats[i].exact && plan.stats[i].reference_n == 0) need.push_back(static_cast<int>(i));
  return need;
}

}  // namespace

Plan build_plan(const Mixture& target, const TvOptions& opt, uint64_t n) {
  check_plan_inputs(target, opt, n);
  Plan plan;
  plan.opt = opt;
  plan.n = n;
  choose_bins(opt, n, plan);
  Selection sel = select_statistics(target, opt, plan);
  ValueLaws laws;
  plan.spec = make_spec(target, sel, plan.bins1, laws);
  plan.stats = std::move(sel.stats);
  plan.notes = std::move(sel.notes);
  set_target_masses(target, laws, plan.spec, plan.stats);
  for (const auto& s : plan.stats) plan.names.push_back(s.name);
  // Step 6: the model is kept only when a reference sample will be drawn from it.
  for (const auto& s : plan.stats)
    if (!s.exact) {
      plan.target = target;
      break;
    }
  return plan;
}

}  // namespace tv_detail

std::vector<std::string> stat_files(const std::string& stats) {
  std::vector<std::string> out;
  for (const auto& q : tv_detail::parse_stats(stats))
    if (q.kind == tv_detail::StatRequest::File) out.push_back(q.path);
  return out;
}

// ---- TvPlan ---------------------------------------------------------------------------------

struct TvPlan::Impl {
  tv_detail::Plan plan;
};

TvPlan::TvPlan(const Mixture& target, const TvOptions& opt, uint64_t n)
    : impl_(std::make_unique<Impl>(Impl{tv_detail::build_plan(target, opt, n)})) {}
TvPlan::TvPlan(const TvPlan& other) : impl_(std::make_unique<Impl>(*other.impl_)) {}
TvPlan::TvPlan(TvPlan&&) noexcept = default;
TvPlan& TvPlan::operator=(const TvPlan& other) {
  if (this != &other) impl_ = std::make_unique<Impl>(*other.impl_);
  return *this;
}
TvPlan& TvPlan::operator=(TvPlan&&) noexcept = default;
TvPlan::~TvPlan() = default;

const HistogramSpec& TvPlan::spec() const { return impl_->plan.spec; }
const std::vector<std::string>& TvPlan::names() const { return impl_->plan.names; }
const std::vector<std::string>& TvPlan::notes() const { return impl_->plan.notes; }
int TvPlan::bins_1d() const { return impl_->plan.bins1; }
int TvPlan::bins_2d_axis() const { return impl_->plan.bins2; }

void TvPlan::prepare_reference(Backend& be, Precision precision) {
  const uint64_t m = reference_rows();
  if (m == 0) return;
  set_reference(reference_counts(be, precision, 0, m));
}

uint64_t TvPlan::reference_rows() const {
  const tv_detail::Plan& plan = impl_->plan;
  if (tv_detail::stats_needing_reference(plan).empty()) return 0;
  return plan.opt.reference_n > 0 ? plan.opt.reference_n : plan.n;
}

HistogramCounts TvPlan::reference_counts(Backend& be, Precision precision, uint64_t first, uint64_t count) const {
  const tv_detail::Plan& plan = impl_->plan;
  const uint64_t m = reference_rows();
  GMMDIFF_EXPECTS(first <= m && count <= m - first, "TV reference sample: rows ", first, " + ", count,
                  " are outside its ", m, " rows");
  const std::vector<int> need = tv_detail::stats_needing_reference(plan);
  if (need.empty()) return HistogramCounts{};
  const tv_detail::ReferenceSpec ref = tv_detail::reference_spec(plan, need);
  return tv_detail::reference_counts(plan, ref.spec, first, count, be, precision);
}

void TvPlan::set_reference(const HistogramCounts& counts) {
  tv_detail::Plan& plan = impl_->plan;
  const std::vector<int> need = tv_detail::stats_needing_reference(plan);
  if (need.empty()) return;
  const uint64_t m = reference_rows();
  const tv_detail::ReferenceSpec ref = tv_detail::reference_spec(plan, need);
  GMMDIFF_EXPECTS(counts.rows == m && counts.one_d.size() == ref.spec.edges.size() &&
                      counts.two_d.size() == ref.spec.pairs.size(),
                  "TV reference sample: counts of ", counts.rows, " rows where the plan needs ", m);
  const double dm = static_cast<double>(m);
  for (int i : need) {
    tv_detail::PlanStat& s = plan.stats[i];
    const std::vector<uint64_t>& c = s.dims == 2 ? counts.two_d[ref.pair[i]] : counts.one_d[ref.value[s.a]];
    s.target_mass.resize(c.size());
    for (std::size_t b = 0; b < c.size(); ++b) s.target_mass[b] = c[b] / dm;
    s.reference_n = m;
  }
}

TvReport TvPlan::evaluate(const HistogramCounts& counts) const {
  const tv_detail::Plan& plan = impl_->plan;
  const HistogramSpec& spec = plan.spec;
  GMMDIFF_EXPECTS(counts.one_d.size() == spec.edges.size() && counts.two_d.size() == spec.pairs.size(),
                  "TV: histogram counts do not match the plan (", counts.one_d.size(), " values, ",
                  counts.two_d.size(), " pairs; the plan has ", spec.edges.size(), " and ", spec.pairs.size(), ")");
  GMMDIFF_EXPECTS(counts.rows > 0, "empty sample: there are no rows to estimate TV from");
  GMMDIFF_EXPECTS(counts.nonfinite_rows < counts.rows, "all ", counts.rows,
                  " rows of the sample hold NaN or Inf: no finite rows to estimate TV from");
  for (const auto& s : plan.stats)
    GMMDIFF_EXPECTS(!s.target_mass.empty(), "TV statistic ", s.name,
                    " needs an exact reference sample: call TvPlan::prepare_reference first");
  TvReport rep;
  rep.n = counts.rows;
  rep.nonfinite = counts.nonfinite_rows;
  rep.notes = plan.notes;
  rep.stats.resize(plan.stats.size());
  std::vector<std::string> errors(plan.stats.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int i = 0; i < static_cast<int>(plan.stats.size()); ++i) {
    const tv_detail::PlanStat& s = plan.stats[i];
    try {
      const std::vector<uint64_t>& c = s.dims == 2 ? counts.two_d.at(s.pair) : counts.one_d.at(s.a);
      StatResult r = tv_detail::histogram_figures(c, s.target_mass, s.reference_n, plan.opt.bootstrap,
                                                  tv_detail::bootstrap_seed(plan.opt.seed, i));
      r.name = s.name;
      r.dims = s.dims;
      rep.stats[i] = r;
    } catch (const std::exception& e) {
      errors[i] = e.what();
    }
  }
  for (const auto& e : errors)
    if (!e.empty()) throw Error(e);
  rep.best = 0;
  for (std::size_t i = 1; i < rep.stats.size(); ++i)
    if (rep.stats[i].tv_corrected > rep.stats[rep.best].tv_corrected) rep.best = i;
  return rep;
}

}  // namespace gmmdiff
