// gmmdiff: the analysis of a sweep's rows and its tables (include/gmmdiff/report.hpp,
// docs/sweeps.md says how to read them).
#include "gmmdiff/report.hpp"

#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "io/atomic_file.hpp"
#include "gmmdiff/error.hpp"
#include "report/stats_fit.hpp"

extern char** environ;

namespace gmmdiff {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
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

std::string fmt(double x, int prec = 3) {
  if (std::isnan(x)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%.*g", prec, x);
  return buf;
}
std::string fmt_fixed(double x, int prec = 2) {
  if (std::isnan(x)) return "-";
  char buf[48];
  std::snprintf(buf, sizeof buf, "%+.*f", prec, x);
  return buf;
}
std::string fit_text(const LineFit& f) {
  if (!f.ok()) return "-";
  if (!f.has_ci()) return fmt_fixed(f.b) + " [no CI]";
  return fmt_fixed(f.b) + " [" + fmt_fixed(f.ci_lo) + ", " + fmt_fixed(f.ci_hi) + "]";
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

struct PointAcc {
  std::vector<const SweepRow*> rows;
};

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

json fit_json(const LineFit& f) {
  return {{"n", f.n},         {"groups", f.groups}, {"a", f.a},
          {"b", f.b},         {"se_b", f.se_b},     {"ci_lo", f.ci_lo},
          {"ci_hi", f.ci_hi}, {"r2", f.r2},         {"chi2_dof", f.chi2_dof}};
}

json point_json(const ReportPoint& p) {
  return {{"T", p.T},         {"d", p.d},         {"K", p.K},
          {"eps", p.eps},     {"tv", p.tv},       {"ci_lo", p.ci_lo},
          {"ci_hi", p.ci_hi}, {"floor", p.floor}, {"eps_score", p.eps_score},
          {"shape", p.shape}, {"seeds", p.seeds}, {"resolved", p.resolved},
          {"stat", p.stat}};
}

json params_brief(const RunParams& p) {
  return {{"family", p.family},
          {"preset", p.preset},
          {"d", p.d},
          {"K", p.K},
          {"K_spec", p.K_spec},
          {"sd", p.sd},
          {"radius", p.radius},
          {"score_error", to_string(p.score_error)},
          {"eps", p.eps},
          {"sampler", to_string(p.sampler)},
          {"variance", to_string(p.variance)},
          {"schedule", p.schedule},
          {"n", p.n},
          {"precision", to_string(p.precision)}};
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
    // The verdict (docs/sweeps.md): TV/f must stay bounded along T and along the axis.
    const double g = opt.growth_tol;
    // A trend needs three values of the axis (two points always lie on a line) and three T.
    std::set<int> axis_resolved;
    for (std::size_t i = 0; i < gx.size(); ++i) axis_resolved.insert(static_cast<int>(std::lround(std::exp(gx[i]))));
    std::set<int> t_resolved;
    for (double x : tx) t_resolved.insert(static_cast<int>(std::lround(std::exp(x))));
    const bool t_ci = a.t_growth.has_ci() && t_resolved.size() >= kMinValues;
    const bool x_ci = a.axis_growth.has_ci() && axis_resolved.size() >= kMinValues;
    std::ostringstream why;
    if ((t_ci && a.t_growth.ci_lo > g) || (x_ci && a.axis_growth.ci_lo > g)) {
      a.verdict = "inconsistent";
      if (x_ci && a.axis_growth.ci_lo > g)
        why << "TV/f grows with " << axis << " at least like " << axis << "^" << fmt(a.axis_growth.ci_lo, 2)
            << " (95% CI above " << g << ")";
      else
        why << "TV/f grows with T at least like T^" << fmt(a.t_growth.ci_lo, 2) << " (95% CI above " << g << ")";
    } else if (t_ci && x_ci && a.t_growth.ci_hi < g && a.axis_growth.ci_hi < g) {
      a.verdict = "consistent";
      why << "TV/f bounded in T and " << axis << " (both 95% CIs of the growth exponents below " << g << ")";
    } else {
      a.verdict = "inconclusive";
      if (!t_ci || !x_ci)
        why << "too few resolved points for the growth " << (!x_ci ? "along " + axis : std::string("in T"))
            << " (need >= " << kMinValues << " values of " << axis << " resolved at common T, and >= " << kMinValues
            << " resolved T)";
      else
        why << "CI too wide: growth in T " << fit_text(a.t_growth) << ", along " << axis << " "
            << fit_text(a.axis_growth);
    }
    a.why = why.str();
    out.push_back(std::move(a));
  }
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
    std::vector<double> x, y, ys, sig, ratio;
    for (const auto& [T, rs] : gpoints[i]) {
      g.points.push_back(average(rs));
      const ReportPoint& pt = g.points.back();
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

  // TV against the realised eps_score at fixed T: everything but the score error and seed.
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
      rep.eps_groups.push_back(std::move(e));
    }
  }
  return rep;
}

// ---------------------------------------------------------------- outputs

namespace {
/// A plain-text table: columns as wide as their widest cell, two spaces apart.
std::string text_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::size_t> w;
  for (const auto& r : rows)
    for (std::size_t i = 0; i < r.size(); ++i) {
      if (w.size() <= i) w.push_back(0);
      w[i] = std::max(w[i], r[i].size());
    }
  std::ostringstream os;
  for (const auto& r : rows) {
    std::string line;
    for (std::size_t i = 0; i < r.size(); ++i)
      line += r[i] + (i + 1 < r.size() ? std::string(w[i] - r[i].size() + 2, ' ') : "");
    os << line << "\n";
  }
  return os.str();
}
}  // namespace

std::string verdict_table(const Report& r) {
  std::ostringstream os;
  std::size_t shown = 0;
  for (const auto& a : r.across_d) shown += a.in_verdict();
  if (shown == 0) {
    os << "No group varies d over several T with the exact score: no dimension verdict. TV against T per group:\n";
    std::vector<std::vector<std::string>> rows = {{"group", "slope of TV vs T [95% CI]", "slope of f"}};
    for (const auto& g : r.t_groups) rows.push_back({g.label, fit_text(g.slope), fmt_fixed(g.shape_slope)});
    return os.str() + text_table(rows);
  }
  os << "Is DDPM dimension-free here? TV/f, f = log^2(KT) log^2(T)/T, must stay bounded: growth exponents of TV/f "
        "against gamma = "
     << r.opt.growth_tol << " (docs/sweeps.md)\n";
  std::vector<std::vector<std::string>> rows = {
      {"group", "d", "slope TV~T [95% CI]", "f", "d-exponent of TV/f [CI]", "TV ratio over d", "verdict"}};
  for (const auto& a : r.across_d) {
    if (!a.in_verdict()) continue;
    std::string ds;
    for (std::size_t i = 0; i < a.values.size(); ++i) ds += (i ? "," : "") + std::to_string(a.values[i]);
    const std::string ratio = a.ratio_T ? fmt(a.ratio, 3) + " at T=" + std::to_string(a.ratio_T) : "-";
    rows.push_back({a.label, ds, fit_text(a.t_slope), fmt_fixed(a.shape_t_slope), fit_text(a.axis_growth), ratio,
                    a.verdict + (a.theorem_domain ? "" : " (sd != 1: outside Thm 1)")});
  }
  return os.str() + text_table(rows);
}

std::string slope_table(const Report& r) {
  std::vector<std::vector<std::string>> rows = {
      {"id", "group (TV against T)", "resolved", "slope [95% CI]", "slope of f", "C", "worst"}};
  std::size_t single = 0;
  for (const auto& g : r.t_groups) {
    if (g.points.size() < 2) {  // one T (e.g. a score-error run): nothing to fit; report.md lists it
      ++single;
      continue;
    }
    rows.push_back({g.id, g.label, std::to_string(g.points.size() - g.excluded) + "/" + std::to_string(g.points.size()),
                    fit_text(g.slope), fmt_fixed(g.shape_slope), fmt(g.shape_C), fmt(g.shape_worst, 2)});
  }
  std::string out = text_table(rows);
  if (single) out += "(" + std::to_string(single) + " groups with a single T not shown: see report.md)\n";
  return out;
}

std::string report_markdown(const Report& r) {
  std::ostringstream os;
  os << "# Sweep report: " << (r.sweep.empty() ? "(unnamed)" : r.sweep) << "\n\n";
  std::string varying;
  for (std::size_t i = 0; i < r.varying.size(); ++i) varying += (i ? ", " : "") + r.varying[i];
  os << r.rows << " runs. A run's figure is the largest bias-corrected TV among its resolved statistics (a lower "
        "bound on the full TV), with its 95% interval; the fitted slopes' intervals are "
     << static_cast<int>(std::lround(r.opt.level * 100))
     << "% (weighted least squares, docs/sweeps.md). Varying: " << (varying.empty() ? "nothing" : varying)
     << ". How to read this: docs/sweeps.md.\n\n";
  for (const auto& n : r.notes) os << "- Note: " << n << "\n";
  if (!r.notes.empty()) os << "\n";

  os << "## Verdict\n\n```\n" << verdict_table(r) << "```\n\n";
  for (const auto& a : r.across_d)
    if (a.in_verdict()) os << "- " << a.label << ": **" << a.verdict << "**: " << a.why << "\n";
  if (!r.across_d.empty()) os << "\n";

  os << "## TV against T\n\nf(T) = log^2(KT) log^2(T) / T (Theorem 1 of arXiv 2504.05300). C = median(TV / f), "
        "worst = max |log(TV / (C f))| over resolved points.\n\n";
  os << "| group | parameters | resolved | slope of log TV vs log T [CI] | slope of f | C | worst residual |\n";
  os << "|---|---|---|---|---|---|---|\n";
  for (const auto& g : r.t_groups)
    os << "| " << g.id << " | " << g.label << " | " << (g.points.size() - g.excluded) << "/" << g.points.size() << " | "
       << fit_text(g.slope) << " | " << fmt_fixed(g.shape_slope) << " | " << fmt(g.shape_C) << " | "
       << fmt(g.shape_worst, 2) << " |\n";
  os << "\n<details><summary>Points</summary>\n\n";
  os << "| group | T | TV | CI | floor | resolved | statistic | eps_score | seeds "
        "|\n|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& g : r.t_groups)
    for (const auto& p : g.points)
      os << "| " << g.id << " | " << p.T << " | " << fmt(p.tv) << " | [" << fmt(p.ci_lo) << ", " << fmt(p.ci_hi)
         << "] | " << fmt(p.floor) << " | " << (p.resolved ? "yes" : "no") << " | " << p.stat << " | "
         << fmt(p.eps_score) << " | " << p.seeds << " |\n";
  os << "\n</details>\n\n";

  auto across_md = [&](const std::vector<AcrossGroup>& v, const std::string& axis) {
    if (v.empty()) return;
    os << "## TV at fixed T across " << axis << "\n\n";
    for (const auto& a : v) {
      os << "### " << a.label << "\n\n";
      os << "| T |";
      for (int x : a.values) os << " " << axis << "=" << x << " |";
      os << " max/min |\n|---|";
      for (std::size_t i = 0; i <= a.values.size(); ++i) os << "---|";
      os << "\n";
      for (const auto& at : a.at) {
        os << "| " << at.T << " |";
        for (std::size_t i = 0; i < at.tv.size(); ++i)
          os << " " << fmt(at.tv[i]) << (at.resolved[i] || std::isnan(at.tv[i]) ? "" : " (unresolved)") << " |";
        os << " " << fmt(at.ratio) << (at.all_resolved ? "" : " *") << " |\n";
      }
      bool starred = false;
      for (const auto& at : a.at) starred = starred || !at.all_resolved;
      os << "\n"
         << (starred ? "* not every value resolved at this T. " : "")
         << "Pooled slope of log TV vs log T: " << fit_text(a.t_slope) << " (f: " << fmt_fixed(a.shape_t_slope)
         << "). Growth of TV/f: in T " << fit_text(a.t_growth) << ", along " << axis << " " << fit_text(a.axis_growth)
         << ". Verdict: **" << a.verdict << "** (" << a.why << ").\n\n";
    }
  };
  across_md(r.across_d, "d");
  across_md(r.across_K, "K");

  if (!r.eps_groups.empty()) {
    os << "## TV against the realised eps_score\n\nTheorem 1's score term is eps_score sqrt(log T): b / sqrt(log T) "
          "is its constant.\n\n";
    for (const auto& e : r.eps_groups) {
      os << "### " << e.label << " (T = " << e.T
         << ")\n\n| eps | eps_score | TV | CI | floor |\n|---|---|---|---|---|\n";
      for (const auto& p : e.points)
        os << "| " << fmt(p.eps) << " | " << fmt(p.eps_score) << " | " << fmt(p.tv) << " | [" << fmt(p.ci_lo) << ", "
           << fmt(p.ci_hi) << "] | " << fmt(p.floor) << " |\n";
      os << "\nTV = a + b eps_score: b = " << fit_text(e.fit) << ", b / sqrt(log T) = " << fmt(e.per_sqrt_log_T)
         << ".\n\n";
    }
  }
  return os.str();
}

std::string report_json(const Report& r) {
  json j;
  j["sweep"] = r.sweep;
  j["rows"] = r.rows;
  j["level"] = r.opt.level;
  j["growth_tol"] = r.opt.growth_tol;
  j["varying"] = r.varying;
  j["notes"] = r.notes;
  j["t_groups"] = json::array();
  for (const auto& g : r.t_groups) {
    json pts = json::array();
    for (const auto& p : g.points) pts.push_back(point_json(p));
    j["t_groups"].push_back({{"id", g.id},
                             {"label", g.label},
                             {"params", params_brief(g.p)},
                             {"points", pts},
                             {"excluded", g.excluded},
                             {"slope", fit_json(g.slope)},
                             {"shape_slope", g.shape_slope},
                             {"shape_C", g.shape_C},
                             {"shape_worst", g.shape_worst}});
  }
  auto across_json = [&](const std::vector<AcrossGroup>& v) {
    json arr = json::array();
    for (const auto& a : v) {
      json at = json::array();
      for (const auto& x : a.at) {
        std::vector<bool> res(x.resolved.begin(), x.resolved.end());
        at.push_back(
            {{"T", x.T}, {"tv", x.tv}, {"resolved", res}, {"ratio", x.ratio}, {"all_resolved", x.all_resolved}});
      }
      arr.push_back({{"axis", a.axis},
                     {"label", a.label},
                     {"params", params_brief(a.p)},
                     {"values", a.values},
                     {"members", a.members},
                     {"at", at},
                     {"ratio_T", a.ratio_T},
                     {"ratio", a.ratio},
                     {"t_slope", fit_json(a.t_slope)},
                     {"shape_t_slope", a.shape_t_slope},
                     {"t_growth", fit_json(a.t_growth)},
                     {"axis_growth", fit_json(a.axis_growth)},
                     {"verdict", a.verdict},
                     {"why", a.why},
                     {"theorem_domain", a.theorem_domain}});
    }
    return arr;
  };
  j["across_d"] = across_json(r.across_d);
  j["across_K"] = across_json(r.across_K);
  j["eps_groups"] = json::array();
  for (const auto& e : r.eps_groups) {
    json pts = json::array();
    for (const auto& p : e.points) pts.push_back(point_json(p));
    j["eps_groups"].push_back({{"label", e.label},
                               {"params", params_brief(e.p)},
                               {"T", e.T},
                               {"points", pts},
                               {"fit", fit_json(e.fit)},
                               {"per_sqrt_log_T", e.per_sqrt_log_T}});
  }
  return j.dump(1, ' ', false, json::error_handler_t::replace) + "\n";
}

Report write_report(const std::string& dir, const ReportOptions& opt) {
  const std::string results = (fs::path(dir) / "results.jsonl").string();
  if (!fs::exists(results))
    throw Error(dir + ": no results.jsonl here (run `gmmdiff sweep FILE --out " + dir + "` first)");
  std::vector<SweepRow> rows = read_results(results);
  if (rows.empty()) {
    std::error_code ec;
    const auto size = fs::file_size(results, ec);
    throw Error(results + ": no finished runs yet" +
                (!ec && size > 0 ? " (its " + std::to_string(size) +
                                       " bytes hold no complete row; a partial last line is a run interrupted while "
                                       "its row was written)"
                                 : ""));
  }
  std::stable_sort(rows.begin(), rows.end(), [](const SweepRow& a, const SweepRow& b) { return a.index < b.index; });
  Report r = analyze_rows(rows, opt);
  write_file_atomic((fs::path(dir) / "report.md").string(), report_markdown(r));
  write_file_atomic((fs::path(dir) / "report.json").string(), report_json(r));
  write_file_atomic((fs::path(dir) / "results.csv").string(), rows_to_csv(rows));
  return r;
}

std::string run_plot_script(const std::string& script, const std::string& dir) {
  if (script.empty() || !fs::exists(script))
    return "plots skipped: tools/plot_sweep.py not found (set GMMDIFF_PLOT_SCRIPT); tables written";
  std::string python;
  if (const char* e = std::getenv("GMMDIFF_PYTHON"); e && *e)
    python = e;
  else if (::access("/usr/bin/python3", X_OK) == 0)
    python = "/usr/bin/python3";
  else
    python = "python3";
  std::vector<std::string> args = {python, script, dir};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  const int rc = ::posix_spawnp(&pid, python.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0) return "plots skipped: cannot run " + python + " (" + std::strerror(rc) + "); tables written";
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return "plots skipped: waiting for " + python + " failed; tables written";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return "";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 3)
    return "plots skipped: Matplotlib is not installed for " + python +
           " (apt-get install python3-matplotlib, or set GMMDIFF_PYTHON); tables written";
  if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
    return "plots skipped: " + python + " not found (set GMMDIFF_PYTHON); tables written";
  return "plots failed: " + python + " " + script + " exited with status " +
         std::to_string(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)) + "; tables written";
}

}  // namespace gmmdiff
