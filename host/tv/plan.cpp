// gmmdiff: the TV plan (include/gmmdiff/tv.hpp, tv/plan_detail.hpp; docs/tv.md): the statistics
// a run is measured with, their histogram spec (directions, radial centre, equal-mass edges,
// 2-D pairs) and target masses, the exact reference sample where a target law is not known in
// closed form, and the evaluation of accumulated counts into figures.
#include <algorithm>
#include <cmath>
#include <iterator>
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
/// Two unit directions are the same statistic when |<u, v>| >= 1 - this.
constexpr double kSameDirectionTol = 1e-12;

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
  std::vector<double> perp_u;   ///< meansperp: the line's direction (empty: no meansperp)
  bool logp = false;            ///< logp requested
  /// Duplicates of the current token: the first one's name and the earlier statistic it repeats.
  int repeats = 0;
  std::string repeat_example;

  int add_dir(const double* u, int B) {
    dirs.emplace_back(u, u + d);
    dir_bins.push_back(B);
    return static_cast<int>(dirs.size()) - 1;
  }
  /// The 1-D projection statistic whose direction is u up to sign (|<u, v>| >= 1 - 1e-12), or -1.
  int same_projection(const double* u) const {
    for (std::size_t i = 0; i < stats.size(); ++i) {
      const PlanStat& s = stats[i];
      if (s.host || s.dims != 1 || s.a < 0) continue;
      const std::vector<double>& v = dirs[s.a];
      double dot = 0;
      for (int j = 0; j < d; ++j) dot += u[j] * v[j];
      if (std::fabs(dot) >= 1 - kSameDirectionTol) return static_cast<int>(i);
    }
    return -1;
  }
  /// A 1-D statistic on direction u with bins1 bins, unless an earlier one projects on the same
  /// direction up to sign (random:M at d = 1, means and axes on a coordinate axis): the same
  /// statistic is counted once (it would add nothing but selection).
  void add_projection(const std::string& name, const double* u) {
    const int same = same_projection(u);
    if (same >= 0) {
      if (repeats++ == 0) repeat_example = name + " = " + stats[same].name;
      return;
    }
    PlanStat s;
    s.name = name;
    s.a = add_dir(u, bins1);
    stats.push_back(s);
  }
  /// After each token: a note on the directions it repeated.
  void note_repeats(const std::string& token) {
    if (repeats > 0)
      notes.push_back(detail::cat(token, ": ", repeats, " direction(s) repeat earlier ones up to sign (", repeat_example,
                                  repeats > 1 ? ", ..." : "", "): each counted once"));
    repeats = 0;
    repeat_example.clear();
  }
};

/// The number of principal directions of the means that the requests use (0: none).
int principal_directions_needed(const std::vector<StatRequest>& reqs) {
  int r_needed = 0;
  for (const auto& q : reqs) {
    if (q.kind == StatRequest::Means) r_needed = std::max(r_needed, q.count > 0 ? q.count : 4);
    if (q.kind == StatRequest::Means2d) r_needed = std::max(r_needed, 2);
    if (q.kind == StatRequest::MeansPerp) r_needed = std::max(r_needed, 1);
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

/// meansperp: the pair (<u, y>, |P_u (y - c)|^2) on the top principal direction u of the means
/// (tv/host_statistics.hpp); one per plan.
void select_meansperp(Selection& sel, const StatRequest& q, const Principal& pr) {
  if (!sel.perp_u.empty()) return;  // a repeat
  if (sel.d < 2) {
    sel.notes.push_back(q.token + ": skipped, d = 1 has no part orthogonal to the means");
    return;
  }
  if (pr.rank == 0) {
    sel.notes.push_back(q.token + ": skipped, the means span no direction (all means are zero; radial sees |y - c|^2)");
    return;
  }
  sel.perp_u.assign(pr.dirs.begin(), pr.dirs.begin() + sel.d);
  if (pr.rank > 1)
    sel.notes.push_back(detail::cat(q.token, ": the means have rank ", pr.rank,
                                    "; the line is their top principal direction and the radius is orthogonal to it"));
  PlanStat s;
  s.name = "meansperp";
  s.dims = 2;
  s.host = true;
  sel.stats.push_back(s);
}

/// logp: the target's log-density (tv/host_statistics.hpp); one per plan. Its masses always come
/// from the exact reference sample.
void select_logp(Selection& sel) {
  if (sel.logp) return;
  sel.logp = true;
  PlanStat s;
  s.name = "logp";
  s.host = true;
  s.exact = false;
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
      case StatRequest::MeansPerp: select_meansperp(sel, q, pr); break;
      case StatRequest::LogP: select_logp(sel); break;
    }
    sel.note_repeats(q.token);
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
    spec.edges[mdirs] = squared_distance_edges(target, laws.radial, bins1, sel.radial == 1 ? "radial:0" : "radial",
                                               "|X - c|^2");
  }
  return spec;
}

/// Step 4b: the statistics binned on the host: the meansperp pair's direction, centre and
/// equal-mass edges on each axis (bins2 per axis), and the logp model (its edges wait for the
/// pilot sample of prepare_reference).
HostSpec make_host_spec(const Mixture& target, const Selection& sel, int bins2, PerpLaw& perp) {
  HostSpec h;
  h.d = target.d;
  if (!sel.perp_u.empty()) {
    h.pair = true;
    h.u = sel.perp_u;
    h.center = radial_center(target, false);
    h.edges_line = projection_edges(target, projected_law(target, h.u.data()), bins2);
    perp = perp_law(target, h.u, h.center);
    h.edges_perp = squared_distance_edges(target, perp, bins2, "meansperp", "|P_u (X - c)|^2");
  }
  if (sel.logp) {
    h.logp = true;
    h.model = target;
  }
  return h;
}

/// Step 5: each statistic's target masses where its law is exact (projections always; the radial
/// statistic for isotropic components; 2-D pairs whose projections are independent under every
/// component), and the spec's 2-D pairs. The others wait for prepare_reference.
void set_target_masses(const Mixture& target, const ValueLaws& laws, HistogramSpec& spec,
                       std::vector<PlanStat>& stats) {
  const int d = spec.d;
  const int mdirs = static_cast<int>(laws.projections.size());
  for (auto& s : stats) {
    if (s.host) continue;  // set_host_masses, once the spec's pairs are known
    if (s.a < 0) {  // the radial statistic
      s.a = mdirs;
      s.exact = laws.radial.exact;
      if (s.exact) s.target_mass = squared_distance_masses(target, laws.radial, spec.edges[mdirs]);
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

/// Step 5b: where the host statistics' histograms lie in the counts (after the spec's values and
/// pairs), and the pair's exact masses under isotropic components.
void set_host_masses(const Mixture& target, const HostSpec& host, const PerpLaw& perp, const HistogramSpec& spec,
                     std::vector<PlanStat>& stats) {
  for (auto& s : stats) {
    if (!s.host) continue;
    if (s.dims == 2) {
      s.pair = static_cast<int>(spec.pairs.size());
      s.exact = perp.exact;
      if (s.exact) s.target_mass = perp_pair_masses(target, host.u, host.edges_line, perp, host.edges_perp);
    } else {
      s.a = static_cast<int>(spec.edges.size());
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

/// Bytes of one row of a chunk held in precision p.
std::size_t row_bytes(int d, Precision p) {
  return static_cast<std::size_t>(d) * (p == Precision::FP32 ? sizeof(float) : sizeof(double));
}

/// Hands the backend's current chunk to f(values, rows) as float or double rows, in pieces
/// (Backend::stream_chunk: one download on the CPU, pinned pieces on a GPU).
template <typename F>
void for_chunk_rows(const Backend& be, int d, Precision p, F f) {
  std::vector<unsigned char> scratch;
  be.stream_chunk(row_bytes(d, p), scratch, [&](const void* values, std::size_t, std::size_t rows) {
    if (p == Precision::FP32) f(static_cast<const float*>(values), rows);
    else f(static_cast<const double*>(values), rows);
  });
}

/// A backend shape for an exact sample of the plan's target with this seed, and its chunk: at most
/// 64 MiB of doubles, a multiple of kChunkAlign unless it covers all m rows.
RunShape exact_sample_shape(const Plan& plan, uint64_t seed, uint64_t m, Backend& be, Precision precision,
                            const char* what) {
  const int d = plan.spec.d;
  RunShape shape = run_shape(plan.target, precision, seed);
  const std::size_t max_rows = be.max_chunk_rows(shape);
  if (max_rows == 0) throw ResourceError(detail::cat(what, ": not even one row fits the backend's memory"));
  const std::size_t cap = std::max<std::size_t>(kChunkAlign, (std::size_t(64) << 20) / (8 * static_cast<std::size_t>(d)));
  std::size_t chunk = static_cast<std::size_t>(std::min<uint64_t>(m, std::min(max_rows, cap)));
  if (chunk < m && chunk >= kChunkAlign) chunk -= chunk % kChunkAlign;
  shape.chunk_rows = chunk;
  return shape;
}

/// The seed of the logp statistic's pilot sample: independent of the reference sample and of any
/// sample drawn with the same --seed.
uint64_t pilot_seed(uint64_t seed) { return splitmix64(seed ^ 0x6c6f677020706c74ull); }

/// The logp edges: the i/B quantiles of log p_0 over an exact pilot sample of logp_pilot_rows(B)
/// rows (its own seed), drawn by be. Independent of the reference sample, so that the reference
/// frequencies in these bins keep their binomial noise (the floor and the interval assume it).
void draw_logp_pilot(Plan& plan, Backend& be, Precision precision) {
  const uint64_t P = logp_pilot_rows(plan.bins1);
  RunShape shape = exact_sample_shape(plan, pilot_seed(plan.opt.seed), P, be, precision, "TV logp pilot sample");
  be.begin(shape, plan.target);
  std::vector<double> values;
  values.reserve(P);
  const int d = plan.spec.d;
  for (uint64_t first = 0; first < P; first += shape.chunk_rows) {
    const std::size_t rows = static_cast<std::size_t>(std::min<uint64_t>(shape.chunk_rows, P - first));
    be.fill_target(first, rows);
    for_chunk_rows(be, d, precision, [&](const auto* y, std::size_t r) {
      const std::size_t at = values.size();
      values.resize(at + r);
#pragma omp parallel for schedule(static)
      for (std::size_t i = 0; i < r; ++i) {
        std::vector<double> yd(y + i * d, y + (i + 1) * d);
        values[at + i] = log_density(plan.host.model, yd.data());
      }
    });
  }
  for (double v : values)
    GMMDIFF_EXPECTS(std::isfinite(v), "TV logp pilot sample: a non-finite log-density of an exact sample (internal error)");
  plan.host.edges_logp = quantile_edges(values, plan.bins1);
}

/// The host statistics' counts of rows first .. first + m - 1 of the exact reference sample (the
/// rows reference_counts draws: same seed, same indices): one_d[0] the logp histogram, two_d[0]
/// the pair's (empty where not needed).
HistogramCounts host_reference_counts(const Plan& plan, const HostWork& work, uint64_t first0, uint64_t m,
                                      Backend& be, Precision precision) {
  RunShape shape = exact_sample_shape(plan, reference_seed(plan.opt.seed), std::max<uint64_t>(m, 1), be, precision,
                                      "TV reference sample");
  be.begin(shape, plan.target);
  const HostSpec& h = plan.host;
  HistogramCounts counts;
  counts.one_d.emplace_back(h.logp ? std::max<std::size_t>(h.edges_logp.size(), 1) - 1 : 0, 0);
  counts.two_d.emplace_back(h.pair ? (h.edges_line.size() - 1) * (h.edges_perp.size() - 1) : 0, 0);
  uint64_t bad = 0;
  for (uint64_t first = first0; first < first0 + m; first += shape.chunk_rows) {
    const std::size_t rows = static_cast<std::size_t>(std::min<uint64_t>(shape.chunk_rows, first0 + m - first));
    be.fill_target(first, rows);
    for_chunk_rows(be, h.d, precision,
                   [&](const auto* y, std::size_t r) { bad += host_accumulate(h, work, y, r, counts, 0, 0); });
    counts.rows += rows;
  }
  GMMDIFF_EXPECTS(bad == 0, "TV reference sample: ", bad, " non-finite rows in an exact sample of the target (internal error)");
  return counts;
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
  PerpLaw perp;
  plan.host = make_host_spec(target, sel, plan.bins2, perp);
  set_host_masses(target, plan.host, perp, plan.spec, plan.stats);
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

void TvPlan::prepare_edges(Backend& be, Precision precision) {
  tv_detail::Plan& plan = impl_->plan;
  if (plan.host.logp && plan.host.edges_logp.empty()) tv_detail::draw_logp_pilot(plan, be, precision);
}

void TvPlan::prepare_reference(Backend& be, Precision precision) {
  prepare_edges(be, precision);
  const uint64_t m = reference_rows();
  if (m == 0) return;
  set_reference(reference_counts(be, precision, 0, m));
}

uint64_t TvPlan::reference_rows() const {
  const tv_detail::Plan& plan = impl_->plan;
  if (tv_detail::stats_needing_reference(plan).empty()) return 0;
  return plan.opt.reference_n > 0 ? plan.opt.reference_n : plan.n;
}

namespace {

/// The statistics that wait for the reference sample, split into those the backend bins (spec)
/// and those binned on the host (meansperp, logp), with what the host must bin.
struct NeedSplit {
  std::vector<int> spec, host;
  tv_detail::HostWork work{false, false};
};
NeedSplit split_need(const tv_detail::Plan& plan) {
  NeedSplit n;
  for (int i : tv_detail::stats_needing_reference(plan)) {
    const tv_detail::PlanStat& s = plan.stats[i];
    if (s.host) {
      n.host.push_back(i);
      (s.dims == 2 ? n.work.pair : n.work.logp) = true;
    } else {
      n.spec.push_back(i);
    }
  }
  return n;
}

}  // namespace

HistogramCounts TvPlan::reference_counts(Backend& be, Precision precision, uint64_t first, uint64_t count) const {
  const tv_detail::Plan& plan = impl_->plan;
  const uint64_t m = reference_rows();
  GMMDIFF_EXPECTS(first <= m && count <= m - first, "TV reference sample: rows ", first, " + ", count,
                  " are outside its ", m, " rows");
  const NeedSplit need = split_need(plan);
  if (need.spec.empty() && need.host.empty()) return HistogramCounts{};
  HistogramCounts counts;
  if (!need.spec.empty()) {
    const tv_detail::ReferenceSpec ref = tv_detail::reference_spec(plan, need.spec);
    counts = tv_detail::reference_counts(plan, ref.spec, first, count, be, precision);
  }
  if (!need.host.empty()) {
    // The host statistics' histograms go last: one_d gets logp's, two_d the pair's.
    GMMDIFF_EXPECTS(!need.work.logp || !plan.host.edges_logp.empty(),
                    "TV statistic logp: its edges are not set (call TvPlan::prepare_edges first)");
    const HistogramCounts h = tv_detail::host_reference_counts(plan, need.work, first, count, be, precision);
    counts.one_d.push_back(h.one_d.at(0));
    counts.two_d.push_back(h.two_d.at(0));
    if (need.spec.empty()) counts.rows = h.rows;
  }
  return counts;
}

void TvPlan::set_reference(const HistogramCounts& counts) {
  tv_detail::Plan& plan = impl_->plan;
  const NeedSplit need = split_need(plan);
  if (need.spec.empty() && need.host.empty()) return;
  const uint64_t m = reference_rows();
  tv_detail::ReferenceSpec ref;
  if (!need.spec.empty()) ref = tv_detail::reference_spec(plan, need.spec);
  const std::size_t host = need.host.empty() ? 0 : 1;
  GMMDIFF_EXPECTS(counts.rows == m && counts.one_d.size() == ref.spec.edges.size() + host &&
                      counts.two_d.size() == ref.spec.pairs.size() + host,
                  "TV reference sample: counts of ", counts.rows, " rows where the plan needs ", m);
  const double dm = static_cast<double>(m);
  auto set_masses = [&](tv_detail::PlanStat& s, const std::vector<uint64_t>& c) {
    s.target_mass.resize(c.size());
    for (std::size_t b = 0; b < c.size(); ++b) s.target_mass[b] = c[b] / dm;
    s.reference_n = m;
  };
  for (int i : need.spec) {
    tv_detail::PlanStat& s = plan.stats[i];
    set_masses(s, s.dims == 2 ? counts.two_d[ref.pair[i]] : counts.one_d[ref.value[s.a]]);
  }
  for (int i : need.host) {
    tv_detail::PlanStat& s = plan.stats[i];
    set_masses(s, s.dims == 2 ? counts.two_d.back() : counts.one_d.back());
  }
}

bool TvPlan::host_statistics() const { return !impl_->plan.host.empty(); }

HistogramCounts TvPlan::zeros() const {
  const tv_detail::Plan& plan = impl_->plan;
  HistogramCounts c = HistogramCounts::zeros(plan.spec);
  const tv_detail::HostSpec& h = plan.host;
  if (h.logp) c.one_d.emplace_back(static_cast<std::size_t>(plan.bins1), 0);
  if (h.pair) c.two_d.emplace_back((h.edges_line.size() - 1) * (h.edges_perp.size() - 1), 0);
  return c;
}

namespace {

/// Whether counts are shaped as TvPlan::zeros() shapes them.
bool shaped_for(const tv_detail::Plan& plan, const HistogramCounts& c) {
  return c.one_d.size() == plan.spec.edges.size() + plan.host.one_d() &&
         c.two_d.size() == plan.spec.pairs.size() + plan.host.two_d();
}

}  // namespace

void TvPlan::accumulate(Backend& be, Precision precision, HistogramCounts& counts, const double* host_rows) const {
  const tv_detail::Plan& plan = impl_->plan;
  const HistogramSpec& spec = plan.spec;
  GMMDIFF_EXPECTS(shaped_for(plan, counts), "TV: histogram counts are not shaped for the plan (use TvPlan::zeros)");
  if (plan.host.empty()) {
    be.accumulate_histograms(spec, counts);
    return;
  }
  const std::size_t nv = spec.edges.size(), np = spec.pairs.size();
  const bool on_backend = nv > 0 || np > 0;
  if (on_backend) {
    // The backend's histograms are the first nv and np: hand it counts shaped for its spec alone.
    std::vector<std::vector<uint64_t>> host1(std::make_move_iterator(counts.one_d.begin() + nv),
                                             std::make_move_iterator(counts.one_d.end()));
    std::vector<std::vector<uint64_t>> host2(std::make_move_iterator(counts.two_d.begin() + np),
                                             std::make_move_iterator(counts.two_d.end()));
    counts.one_d.resize(nv);
    counts.two_d.resize(np);
    be.accumulate_histograms(spec, counts);
    for (auto& v : host1) counts.one_d.push_back(std::move(v));
    for (auto& v : host2) counts.two_d.push_back(std::move(v));
  }
  const tv_detail::HostWork all;
  uint64_t bad = 0;
  if (host_rows) {
    bad = tv_detail::host_accumulate(plan.host, all, host_rows, be.rows(), counts, nv, np);
  } else {
    tv_detail::for_chunk_rows(be, spec.d, precision, [&](const auto* y, std::size_t r) {
      bad += tv_detail::host_accumulate(plan.host, all, y, r, counts, nv, np);
    });
  }
  if (!on_backend) {  // the backend did not see the chunk: count its rows here
    counts.rows += be.rows();
    counts.nonfinite_rows += bad;
  }
}

void TvPlan::set_against(const HistogramCounts& second) {
  tv_detail::Plan& plan = impl_->plan;
  GMMDIFF_EXPECTS(shaped_for(plan, second), "TV: the second sample's counts are not shaped for the plan");
  GMMDIFF_EXPECTS(second.nonfinite_rows < second.rows, "the second sample has no finite rows (all ", second.rows,
                  " hold NaN or Inf)");
  const uint64_t m = second.rows - second.nonfinite_rows;
  const double dm = static_cast<double>(m);
  for (auto& s : plan.stats) {
    const std::vector<uint64_t>& c = s.dims == 2 ? second.two_d.at(s.pair) : second.one_d.at(s.a);
    s.target_mass.resize(c.size());
    for (std::size_t b = 0; b < c.size(); ++b) s.target_mass[b] = c[b] / dm;
    s.exact = false;
    s.reference_n = m;
  }
}

TvReport TvPlan::evaluate(const HistogramCounts& counts) const {
  const tv_detail::Plan& plan = impl_->plan;
  const HistogramSpec& spec = plan.spec;
  GMMDIFF_EXPECTS(shaped_for(plan, counts), "TV: histogram counts do not match the plan (",
                  counts.one_d.size(), " values, ", counts.two_d.size(), " pairs; the plan has ",
                  spec.edges.size() + plan.host.one_d(), " and ", spec.pairs.size() + plan.host.two_d(), ")");
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
                                                  tv_detail::bootstrap_seed(plan.opt.seed, i),
                                                  static_cast<int>(plan.stats.size()));
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
  rep.best_kl = 0;
  for (std::size_t i = 1; i < rep.stats.size(); ++i) {
    if (rep.stats[i].tv_corrected > rep.stats[rep.best].tv_corrected) rep.best = i;
    if (rep.stats[i].kl_mm > rep.stats[rep.best_kl].kl_mm) rep.best_kl = i;
  }
  return rep;
}

}  // namespace gmmdiff
