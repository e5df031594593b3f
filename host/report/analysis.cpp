// gmmdiff: the analysis of a sweep's rows (include/gmmdiff/report.hpp; docs/sweeps.md says how
// to read it): groups of rows, seeds averaged into points, slopes with CIs, TV across d and K,
// the Theorem-1 shape, TV against eps_score, and a verdict per family.
#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gmmdiff/report.hpp"
#include "gmmdiff/sweep.hpp"
#include "report/format.hpp"
#include "report/stats_fit.hpp"

namespace gmmdiff {

double theorem1_shape(double K, double T) {
  const double lkt = std::log(K * T), lt = std::log(T);
  return lkt * lkt * lt * lt / T;
}

namespace {

using report_format::fit_text;
using report_format::fmt;
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
/// Distinct values an axis needs (resolved) before the verdict reads a trend along it.
constexpr std::size_t kMinValues = 3;

using Fields = std::vector<std::pair<std::string, std::string>>;

Fields fields_of(const RunParams& p) {
  Fields f;
  const std::string c = p.canonical();
  std::size_t start = 0;
  while (start <= c.size()) {
    std::size_t end = c.find(';', start);
    if (end == std::string::npos) end = c.size();
    const std::string kv = c.substr(start, end - start);
    const auto eq = kv.find('=');
    if (eq != std::string::npos) f.emplace_back(kv.substr(0, eq), kv.substr(eq + 1));
    start = end + 1;
  }
  return f;
}

std::string key_without(const RunParams& p, const std::set<std::string>& drop) {
  std::string k;
  for (const auto& [name, value] : fields_of(p))
    if (!drop.count(name)) k += name + "=" + value + ";";
  return k;
}

/// Names shown in labels, in this order (K is shown resolved, or as written when it follows d).
const std::vector<std::string> kShown = {
    "family",    "sd",      "radius",      "model_seed", "d",        "K",       "score_error",
    "eps",       "sampler", "variance",    "schedule",   "c0",       "c1",      "stop",
    "precision", "n",       "eps_samples", "backend",    "tv.stats", "tv.bins", "tv.bootstrap"};

std::string label_of(const RunParams& p, const std::set<std::string>& varying, const std::set<std::string>& drop) {
  std::map<std::string, std::string> f;
  for (const auto& kv : fields_of(p)) f.insert(kv);
  std::string s = p.family;
  for (const auto& name : kShown) {
    if (name == "K") {  // before the drop check: across d, K is dropped but K_spec ("d", "4d") is not
      if (drop.count("K_spec")) continue;
      const bool spec_varies = varying.count("K_spec") > 0;
      const bool k_follows_d = p.K_spec.find('d') != std::string::npos;
      if (drop.count("d") && k_follows_d) {
        if (spec_varies || varying.count("K")) s += " K=" + p.K_spec;
      } else if (varying.count("K") || spec_varies) {
        s += " K=" + std::to_string(p.K);
      }
      continue;
    }
    if (name == "family" || drop.count(name)) continue;
    const bool always = name == "sd";
    if (!always && !varying.count(name)) continue;
    if ((name == "eps" || name == "score_error") && p.score_error == ScoreErrorKind::None) continue;
    s += " " + name + "=" + f[name];
  }
  return s;
}

/// Point intervals are 95%, like every StatResult's; the report's level applies to the fits.
constexpr double kPointLevel = 0.95;

/// Standard error of log TV implied by a point's 95% interval (resolved points: ci_lo > 0).
double log_sigma(const ReportPoint& p) {
  const double z = normal_quantile(0.5 * (1 + kPointLevel));
  return std::max(1e-3, (std::log(p.ci_hi) - std::log(p.ci_lo)) / (2 * z));
}
double lin_sigma(const ReportPoint& p) {
  const double z = normal_quantile(0.5 * (1 + kPointLevel));
  return std::max(1e-6, (p.ci_hi - p.ci_lo) / (2 * z));
}

/// The upper side of a point (rows with bounds): means over seeds of the band's top, of the figure
/// the fits use and of the exact and reference values; the fitted figure's log-scale standard error
/// from the rows' standard errors (ddpm: se of U_TV(M); ddim: the CLT interval's half-width / 1.96).
void average_bracket(const std::vector<const SweepRow*>& rs, ReportPoint& pt) {
  const double z = normal_quantile(0.5 * (1 + kPointLevel));
  const double m = static_cast<double>(rs.size());
  double upper = 0, fit = 0, var = 0, ex = 0, ex_lo = 0, ex_hi = 0, ref = 0;
  bool all = true, exact = true, reference = true;
  for (const SweepRow* r : rs) {
    const RowBracket& b = r->bracket;
    const bool ddpm = std::isfinite(b.tv_upper) && std::isfinite(b.tv_upper_mean);
    const bool ddim = std::isfinite(b.tv_exact);
    all = all && b.present && b.error.empty() && (ddpm || ddim);
    exact = exact && ddim;
    reference = reference && std::isfinite(b.tv_reference);
    if (!all) continue;
    upper += (ddpm ? b.tv_upper : b.tv_exact_hi) / m;
    fit += (ddpm ? b.tv_upper_mean : b.tv_exact) / m;
    const double se = ddpm ? b.tv_upper_se : (b.tv_exact_hi - b.tv_exact_lo) / (2 * z);
    var += se * se / (m * m);
    if (ddim) {
      ex += b.tv_exact / m;
      ex_lo += b.tv_exact_lo / m;
      ex_hi += b.tv_exact_hi / m;
    }
    ref += b.tv_reference / m;
  }
  if (reference) pt.reference = ref;
  if (!all) return;
  pt.bounded = true;
  pt.upper = upper;
  pt.upper_fit = fit;
  pt.upper_sigma_log = fit > 0 ? std::max(1e-3, std::sqrt(var) / fit) : LineFit::nan;
  if (exact) {
    pt.exact = ex;
    pt.exact_lo = ex_lo;
    pt.exact_hi = ex_hi;
  }
}

ReportPoint average(const std::vector<const SweepRow*>& rs) {
  const double level = kPointLevel;
  ReportPoint pt;
  const SweepRow& r0 = *rs.front();
  pt.T = r0.p.T;
  pt.d = r0.p.d;
  pt.K = r0.p.K;
  pt.eps = r0.p.eps;
  pt.seeds = static_cast<int>(rs.size());
  pt.shape = theorem1_shape(pt.K, pt.T);
  const double m = static_cast<double>(rs.size());
  double lo = 0, hi = 0;
  std::set<std::string> stats;
  std::vector<double> tvs;
  for (const SweepRow* r : rs) {
    const StatResult& f = r->figure();
    tvs.push_back(f.tv_corrected);
    pt.tv += f.tv_corrected / m;
    pt.floor += f.floor / m;
    pt.eps_score += r->eps_score / m;
    lo += f.ci_lo / m;
    hi += f.ci_hi / m;
    stats.insert(f.name);
  }
  for (const auto& s : stats) pt.stat += (pt.stat.empty() ? "" : "|") + s;
  average_bracket(rs, pt);
  if (rs.size() == 1) {
    pt.ci_lo = lo;
    pt.ci_hi = hi;
    pt.resolved = r0.figure().resolved;
    return pt;
  }
  // Several seeds: the per-run intervals shrink by sqrt(m) when averaged; the spread between
  // seeds gives a t interval. Keep the wider of the two on each side.
  double var = 0;
  for (double v : tvs) var += (v - pt.tv) * (v - pt.tv);
  var /= (m - 1);
  const double h_seed = student_t_quantile(0.5 * (1 + level), m - 1) * std::sqrt(var / m);
  const double h_lo = std::max(h_seed, (pt.tv - lo) / std::sqrt(m));
  const double h_hi = std::max(h_seed, (hi - pt.tv) / std::sqrt(m));
  pt.ci_lo = pt.tv - h_lo;
  pt.ci_hi = pt.tv + h_hi;
  pt.resolved = pt.ci_lo > 0;
  return pt;
}

bool usable(const ReportPoint& p) { return p.resolved && p.tv > 0; }
/// The upper side of a point can enter a fit on the log scale.
bool usable_upper(const ReportPoint& p) { return p.bounded && p.upper_fit > 0 && std::isfinite(p.upper_sigma_log); }

/// The verdict of a group across d or K (docs/sweeps.md): TV/f must stay bounded along T and
/// along the axis. Growth exponents whose CI lies above gamma make it inconsistent, both below
/// gamma consistent; a trend needs kMinValues resolved values of the axis (two points always lie
/// on a line) and of T (log_T and log_values: the logs of the resolved points' T and axis values).
/// Distinct values (rounded) of the exp of logs.
std::size_t distinct(const std::vector<double>& logs) {
  std::set<long> v;
  for (double x : logs) v.insert(std::lround(std::exp(x)));
  return v.size();
}

/// The two-sided verdict of a bounded group (docs/sweeps.md, "Bounds"): refuted when the lower
/// bound's growth exponents have a 95% CI above gamma (TV itself grows at least that fast),
/// confirmed when the upper side's have both CIs below gamma (TV can grow no faster), inconclusive
/// otherwise. lower_refutes: the lower bound's test, as judge() reads it; log_T_u, log_values_u:
/// the upper side's points.
void judge_two_sided(AcrossGroup& a, bool lower_refutes, const std::string& lower_why, const std::vector<double>& log_T_u,
                     const std::vector<double>& log_values_u, double g) {
  const bool t_ci = a.upper_t_growth.has_ci() && distinct(log_T_u) >= kMinValues;
  const bool x_ci = a.upper_axis_growth.has_ci() && distinct(log_values_u) >= kMinValues;
  const bool confirms = t_ci && x_ci && a.upper_t_growth.ci_hi < g && a.upper_axis_growth.ci_hi < g;
  std::ostringstream why;
  if (lower_refutes && confirms) {
    a.verdict = "inconclusive";
    why << "the sides disagree: the lower bound grows (" << lower_why << ") while the upper side's exponents are "
        << "below " << g << " (in T " << fit_text(a.upper_t_growth) << ", along " << a.axis << " "
        << fit_text(a.upper_axis_growth) << ")";
  } else if (lower_refutes) {
    a.verdict = "refuted";
    why << "from the lower bound: " << lower_why;
  } else if (confirms) {
    a.verdict = "confirmed";
    why << "from the upper side: TV/f bounded in T and " << a.axis << " (95% CIs of the upper side's growth exponents "
        << fit_text(a.upper_t_growth) << " and " << fit_text(a.upper_axis_growth) << " below " << g << ")";
  } else {
    a.verdict = "inconclusive";
    if (!t_ci || !x_ci)
      why << "too few upper-side points for the growth " << (!x_ci ? "along " + a.axis : std::string("in T"))
          << " (need >= " << kMinValues << " values of each)";
    else
      why << "the upper side's CIs reach " << g << ": growth in T " << fit_text(a.upper_t_growth) << ", along "
          << a.axis << " " << fit_text(a.upper_axis_growth) << "; the lower bound does not refute";
  }
  a.why = why.str();
}

void judge(AcrossGroup& a, const std::vector<double>& log_T, const std::vector<double>& log_values, double g) {
  const bool t_ci = a.t_growth.has_ci() && distinct(log_T) >= kMinValues;
  const bool x_ci = a.axis_growth.has_ci() && distinct(log_values) >= kMinValues;
  std::ostringstream why;
  if ((t_ci && a.t_growth.ci_lo > g) || (x_ci && a.axis_growth.ci_lo > g)) {
    a.verdict = "inconsistent";
    if (x_ci && a.axis_growth.ci_lo > g)
      why << "TV/f grows with " << a.axis << " at least like " << a.axis << "^" << fmt(a.axis_growth.ci_lo, 2)
          << " (95% CI above " << g << ")";
    else
      why << "TV/f grows with T at least like T^" << fmt(a.t_growth.ci_lo, 2) << " (95% CI above " << g << ")";
  } else if (t_ci && x_ci && a.t_growth.ci_hi < g && a.axis_growth.ci_hi < g) {
    a.verdict = "consistent";
    why << "TV/f bounded in T and " << a.axis << " (both 95% CIs of the growth exponents below " << g << ")";
  } else {
    a.verdict = "inconclusive";
    if (!t_ci || !x_ci)
      why << "too few resolved points for the growth " << (!x_ci ? "along " + a.axis : std::string("in T"))
          << " (need >= " << kMinValues << " values of " << a.axis << " resolved at common T, and >= " << kMinValues
          << " resolved T)";
    else
      why << "CI too wide: growth in T " << fit_text(a.t_growth) << ", along " << a.axis << " "
          << fit_text(a.axis_growth);
  }
  a.why = why.str();
}

void across(const std::string& axis, const std::vector<TGroup>& tg, const std::set<std::string>& varying,
            const ReportOptions& opt, std::vector<AcrossGroup>& out) {
  const std::set<std::string> drop =
      axis == "d" ? std::set<std::string>{"T", "seed", "d", "K"} : std::set<std::string>{"T", "seed", "K", "K_spec"};
  std::map<std::string, std::vector<const TGroup*>> by;
  std::vector<std::string> order;
  for (const auto& g : tg) {
    const std::string k = key_without(g.p, drop);
    if (!by.count(k)) order.push_back(k);
    by[k].push_back(&g);
  }
  for (const auto& k : order) {
    auto members = by[k];
    if (members.size() < 2) continue;
    std::sort(members.begin(), members.end(),
              [&](const TGroup* a, const TGroup* b) { return axis == "d" ? a->p.d < b->p.d : a->p.K < b->p.K; });
    AcrossGroup a;
    a.axis = axis;
    a.p = members.front()->p;
    a.label = label_of(a.p, varying, drop);
    a.theorem_domain = a.p.sd == 1.0;
    a.exact_score = a.p.score_error == ScoreErrorKind::None;
    std::set<int> Ts;
    for (const TGroup* g : members) {
      a.values.push_back(axis == "d" ? g->p.d : g->p.K);
      a.members.push_back(g->id);
      for (const auto& pt : g->points) Ts.insert(pt.T);
    }
    std::vector<double> tx, ty, tf, tsig, gx, gy, gsig;
    std::vector<int> tgrp, ggrp;
    std::vector<double> utx, utf, utsig, ugx, ugy, ugsig;  // the upper side
    std::vector<int> utgrp, uggrp;
    a.bounded = true;
    int ti = 0;
    for (int T : Ts) {
      AcrossGroup::AtT at;
      at.T = T;
      double mx = -1, mn = -1;
      int present = 0, resolved = 0;
      std::vector<double> sig(members.size(), kNaN);
      for (std::size_t v = 0; v < members.size(); ++v) {
        const ReportPoint* pt = nullptr;
        for (const auto& q : members[v]->points)
          if (q.T == T) pt = &q;
        at.tv.push_back(pt ? pt->tv : kNaN);
        at.resolved.push_back(pt && usable(*pt));
        if (!pt) continue;
        ++present;
        a.bounded = a.bounded && usable_upper(*pt);
        if (usable_upper(*pt)) {
          const double f = theorem1_shape(pt->K, T);
          utx.push_back(std::log(T));
          utf.push_back(std::log(pt->upper_fit / f));
          utsig.push_back(pt->upper_sigma_log);
          utgrp.push_back(static_cast<int>(v));
          ugx.push_back(std::log(axis == "d" ? members[v]->p.d : members[v]->p.K));
          ugy.push_back(utf.back());
          ugsig.push_back(pt->upper_sigma_log);
          uggrp.push_back(ti);
        }
        if (usable(*pt)) {
          ++resolved;
          mx = mx < 0 ? pt->tv : std::max(mx, pt->tv);
          mn = mn < 0 ? pt->tv : std::min(mn, pt->tv);
          const double f = theorem1_shape(pt->K, T);
          tx.push_back(std::log(T));
          ty.push_back(std::log(pt->tv));
          tf.push_back(std::log(pt->tv / f));
          sig[v] = log_sigma(*pt);
          tsig.push_back(sig[v]);
          tgrp.push_back(static_cast<int>(v));
        }
      }
      at.all_resolved = present == static_cast<int>(members.size()) && resolved == present;
      if (resolved >= 2) at.ratio = mx / mn;
      if (at.all_resolved) {
        a.ratio_T = T;
        a.ratio = at.ratio;
      }
      if (resolved >= 2) {
        for (std::size_t v = 0; v < members.size(); ++v) {
          if (!at.resolved[v]) continue;
          const double f = theorem1_shape(axis == "d" ? members[v]->p.K : a.values[v], T);
          gx.push_back(std::log(a.values[v]));
          gy.push_back(std::log(at.tv[v] / f));
          gsig.push_back(sig[v]);
          ggrp.push_back(ti);
        }
      }
      a.at.push_back(at);
      ++ti;
    }
    a.t_slope = fit_pooled(tx, ty, tgrp, opt.level, tsig);
    {
      std::vector<double> sy;
      for (std::size_t i = 0; i < tx.size(); ++i) sy.push_back(ty[i] - tf[i]);  // log f
      const LineFit s = fit_pooled(tx, sy, tgrp, opt.level, tsig);
      a.shape_t_slope = s.b;
    }
    a.t_growth = fit_pooled(tx, tf, tgrp, opt.level, tsig);
    a.axis_growth = fit_pooled(gx, gy, ggrp, opt.level, gsig);
    judge(a, tx, gx, opt.growth_tol);
    if (a.bounded) {
      a.upper_t_growth = fit_pooled(utx, utf, utgrp, opt.level, utsig);
      a.upper_axis_growth = fit_pooled(ugx, ugy, uggrp, opt.level, ugsig);
      judge_two_sided(a, a.verdict == "inconsistent", a.why, utx, ugx, opt.growth_tol);
    }
    out.push_back(std::move(a));
  }
}

/// TV against the realised eps_score at fixed T: the rows that differ only in the score error
/// and seed, one group per kind of score error (with the exact-score rows as eps = 0).
std::vector<EpsGroup> eps_groups(const std::vector<const SweepRow*>& rows, const std::set<std::string>& varying,
                                 const ReportOptions& opt) {
  std::vector<EpsGroup> out;
  const std::set<std::string> drop_e = {"seed", "score_error", "eps"};
  std::map<std::string, std::vector<const SweepRow*>> eg;
  std::vector<std::string> eorder;
  for (const SweepRow* r : rows) {
    const std::string k = key_without(r->p, drop_e);
    if (!eg.count(k)) eorder.push_back(k);
    eg[k].push_back(r);
  }
  for (const auto& k : eorder) {
    const auto& rs = eg[k];
    std::set<ScoreErrorKind> kinds;
    for (const SweepRow* r : rs)
      if (r->p.score_error != ScoreErrorKind::None) kinds.insert(r->p.score_error);
    for (ScoreErrorKind kind : kinds) {
      std::map<double, std::vector<const SweepRow*>> by_eps;
      for (const SweepRow* r : rs)
        if (r->p.score_error == kind || r->p.score_error == ScoreErrorKind::None)
          by_eps[r->p.score_error == ScoreErrorKind::None ? 0.0 : r->p.eps].push_back(r);
      if (by_eps.size() < 2) continue;
      EpsGroup e;
      e.p = rs.front()->p;
      e.p.score_error = kind;
      e.T = e.p.T;
      e.label = label_of(e.p, varying, {"seed", "eps"});
      std::vector<double> x, y, sig;
      for (const auto& [eps, v] : by_eps) {
        e.points.push_back(average(v));
        if (usable(e.points.back())) {
          x.push_back(e.points.back().eps_score);
          y.push_back(e.points.back().tv);
          sig.push_back(lin_sigma(e.points.back()));
        }
      }
      e.fit = fit_line(x, y, opt.level, sig);
      if (e.T > 1) e.per_sqrt_log_T = e.fit.b / std::sqrt(std::log(static_cast<double>(e.T)));
      out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace

Report analyze_rows(const std::vector<SweepRow>& rows_in, const ReportOptions& opt) {
  Report rep;
  rep.opt = opt;
  std::set<std::string> keys;
  std::vector<const SweepRow*> rows;
  std::size_t errors = 0;
  for (const auto& r : rows_in) {
    if (!keys.insert(r.key).second) continue;
    if (!r.error.empty() || r.stats.empty()) {
      ++errors;
      continue;
    }
    rows.push_back(&r);
    if (rep.sweep.empty()) rep.sweep = r.sweep;
  }
  rep.rows = rows.size();
  if (errors) rep.notes.push_back(std::to_string(errors) + " failed runs (rows with \"error\") left out");
  std::map<std::string, std::size_t> builds;  // a sweep resumed after a rebuild mixes them
  for (const SweepRow* r : rows) ++builds[r->version.empty() ? "unknown" : r->version];
  if (builds.size() > 1) {
    std::string list;
    for (const auto& [v, count] : builds) list += (list.empty() ? "" : ", ") + v + " (" + std::to_string(count) + ")";
    rep.notes.push_back("the rows come from " + std::to_string(builds.size()) + " builds of gmmdiff: " + list);
  }
  std::sort(rows.begin(), rows.end(), [](const SweepRow* a, const SweepRow* b) { return a->index < b->index; });

  // Which parameters vary across the rows.
  std::map<std::string, std::set<std::string>> values;
  for (const SweepRow* r : rows)
    for (const auto& [k, v] : fields_of(r->p)) values[k].insert(v);
  std::set<std::string> varying;
  for (const auto& [k, v] : values)
    if (v.size() > 1) {
      varying.insert(k);
      if (k != "seed" && k != "T" && k != "K_spec" && k != "preset" && k != "model") rep.varying.push_back(k);
    }

  // T groups: everything but T and seed; points average the seeds.
  const std::set<std::string> drop_t = {"T", "seed"};
  std::map<std::string, std::size_t> gindex;
  std::vector<std::map<int, std::vector<const SweepRow*>>> gpoints;
  for (const SweepRow* r : rows) {
    const std::string k = key_without(r->p, drop_t);
    auto it = gindex.find(k);
    if (it == gindex.end()) {
      it = gindex.emplace(k, rep.t_groups.size()).first;
      TGroup g;
      g.id = "g" + std::to_string(rep.t_groups.size() + 1);
      g.p = r->p;
      g.label = label_of(r->p, varying, drop_t);
      rep.t_groups.push_back(g);
      gpoints.emplace_back();
    }
    gpoints[it->second][r->p.T].push_back(r);
  }
  int excluded = 0;
  for (std::size_t i = 0; i < rep.t_groups.size(); ++i) {
    TGroup& g = rep.t_groups[i];
    std::vector<double> x, y, ys, sig, ratio, ux, uy, usig;
    for (const auto& [T, rs] : gpoints[i]) {
      g.points.push_back(average(rs));
      const ReportPoint& pt = g.points.back();
      if (usable_upper(pt)) {
        ux.push_back(std::log(T));
        uy.push_back(std::log(pt.upper_fit));
        usig.push_back(pt.upper_sigma_log);
      }
      if (!usable(pt)) {
        ++g.excluded;
        continue;
      }
      x.push_back(std::log(T));
      y.push_back(std::log(pt.tv));
      ys.push_back(std::log(pt.shape));
      sig.push_back(log_sigma(pt));
      ratio.push_back(pt.tv / pt.shape);
    }
    excluded += g.excluded;
    g.slope = fit_line(x, y, opt.level, sig);
    g.upper_slope = fit_line(ux, uy, opt.level, usig);
    if (x.size() >= 2) g.shape_slope = fit_line(x, ys, opt.level, sig).b;
    if (!ratio.empty()) {
      g.shape_C = median_of(ratio);
      g.shape_worst = 0;
      for (double q : ratio) g.shape_worst = std::max(g.shape_worst, std::fabs(std::log(q / g.shape_C)));
    }
  }
  if (excluded)
    rep.notes.push_back(std::to_string(excluded) +
                        " points not resolved from the noise floor (CI reaches 0) are left out of every fit");

  across("d", rep.t_groups, varying, opt, rep.across_d);
  across("K", rep.t_groups, varying, opt, rep.across_K);

  rep.eps_groups = eps_groups(rows, varying, opt);
  return rep;
}

}  // namespace gmmdiff
