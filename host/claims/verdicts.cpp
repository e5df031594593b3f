// gmmdiff (claims): each claim's figures and verdict from its sweep's rows, and the main job's one
// table (include/gmmdiff/claims.hpp, docs/claims.md "Verdicts"). The fits are the report's
// (host/report/stats_fit.hpp: weighted least squares with pooled intercepts, CIs on the slope);
// the sides are the sweep rows': the TV lower bound of the statistics (below the truth), the
// bracket's upper side (RowBracket: tv_upper_mean with its se for ddpm, tv_exact with its CLT
// interval for ddim, kl_upper), and the proofs' quantities (RowQuantities).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "gmmdiff/claims.hpp"
#include "gmmdiff/error.hpp"
#include "io/atomic_file.hpp"
#include "io/text.hpp"
#include "report/stats_fit.hpp"

namespace gmmdiff {
namespace {

using text::num;

/// Point intervals of the rows are 95% (StatResult, RowBracket), as in the report.
constexpr double kPointLevel = 0.95;
/// Smallest log-scale standard error a point gets (as the report: no point dominates a fit).
constexpr double kMinLogSigma = 1e-3;
/// Exact figures (closed forms) compare with the claimed exponent to this tolerance: their fits'
/// intervals shrink to rounding.
constexpr double kExactTol = 1e-9;
/// The Pinsker inequality: KL >= 2 TV^2.
constexpr double kPinsker = 2.0;

/// Three significant digits, for the why lines and the table.
std::string short_num(double x) {
  std::ostringstream os;
  os.precision(3);
  os << x;
  return os.str();
}

double z95() { return normal_quantile(0.5 * (1 + kPointLevel)); }

/// The points of one side of one figure: x, y = log figure, its log-scale sigma (NaN: unweighted),
/// and the group (pooled intercepts).
struct Side {
  std::vector<double> x, y, sigma;
  std::vector<int> group;
  bool weighted = true;
  std::map<std::string, int> ids;
  void add(double xv, double yv, double sig, const std::string& key) {
    if (!std::isfinite(xv) || !std::isfinite(yv)) return;
    const auto it = ids.emplace(key, static_cast<int>(ids.size())).first;
    x.push_back(xv);
    y.push_back(yv);
    sigma.push_back(std::isfinite(sig) ? std::max(kMinLogSigma, sig) : 1.0);
    if (!std::isfinite(sig)) weighted = false;
    group.push_back(it->second);
  }
  /// Drops groups with a single point (they carry no slope) and fits.
  LineFit fit(double level) const {
    std::map<int, int> count;
    for (int g : group) ++count[g];
    std::vector<double> xx, yy, ss;
    std::vector<int> gg;
    std::map<int, int> renum;
    for (std::size_t i = 0; i < x.size(); ++i) {
      if (count[group[i]] < 2) continue;
      const int g = renum.emplace(group[i], static_cast<int>(renum.size())).first->second;
      xx.push_back(x[i]);
      yy.push_back(y[i]);
      ss.push_back(sigma[i]);
      gg.push_back(g);
    }
    if (xx.size() < 2) return LineFit{};
    return fit_pooled(xx, yy, gg, level, weighted ? ss : std::vector<double>{});
  }
};

/// The lower side of a row: its TV figure when resolved, with the log-scale sigma of its 95% CI.
bool lower_tv(const SweepRow& r, double& v, double& sig) {
  if (!r.error.empty() || r.stats.empty()) return false;
  const StatResult& f = r.figure();
  if (!f.resolved || !(f.tv_corrected > 0) || !(f.ci_lo > 0)) return false;
  v = f.tv_corrected;
  sig = (std::log(f.ci_hi) - std::log(f.ci_lo)) / (2 * z95());
  return true;
}

/// The upper side of a row (the bracket): tv_upper_mean with its se (ddpm), tv_exact with its CLT
/// interval (ddim); sigma on the log scale. `bound`: the conservative top instead (tv_upper, the
/// exact CI's high end), for differences.
bool upper_tv(const SweepRow& r, double& v, double& sig, bool bound = false) {
  const RowBracket& b = r.bracket;
  if (!r.error.empty() || !b.present || !b.error.empty()) return false;
  const bool ddpm = std::isfinite(b.tv_upper_mean) && std::isfinite(b.tv_upper);
  const bool ddim = std::isfinite(b.tv_exact);
  if (!ddpm && !ddim) return false;
  v = bound ? (ddpm ? b.tv_upper : b.tv_exact_hi) : (ddpm ? b.tv_upper_mean : b.tv_exact);
  const double se = ddpm ? b.tv_upper_se : (b.tv_exact_hi - b.tv_exact_lo) / (2 * z95());
  if (!(v > 0) || !std::isfinite(se)) return false;
  sig = se / v;
  return true;
}

/// A row's parameters with some zeroed: the key of the group it is pooled in.
std::string key_without(const SweepRow& r, const std::function<void(RunParams&)>& clear) {
  RunParams q = r.p;
  q.seed = 0;
  clear(q);
  return q.canonical();
}

bool exact_ddpm(const SweepRow& r) {
  return r.p.score_error == ScoreErrorKind::None && r.p.sampler == SamplerKind::DDPM;
}

/// The verdict of one figure from its fits (the rule in ClaimFigure's comment). both: one fit is
/// both sides, the figure itself ("exact": a closed form, compared to kExactTol; "measured": the
/// quantity measured directly, its CI the fit's); "" for a lower and an upper side.
void decide(ClaimFigure& f, const std::string& both = "") {
  const double tol = both == "exact" ? kExactTol : 0.0;
  const bool up = f.upper.has_ci(), lo = f.lower.has_ci();
  bool confirm = false, refute = false;
  if (f.at_most) {
    confirm = up && f.upper.ci_hi <= f.bound + tol;
    refute = lo && f.lower.ci_lo > f.bound + tol;
  } else {
    confirm = up && f.upper.ci_lo >= f.bound - tol;
    refute = lo && f.lower.ci_hi < f.bound - tol;
  }
  auto ci = [](const LineFit& l) { return "[" + short_num(l.ci_lo) + ", " + short_num(l.ci_hi) + "]"; };
  const std::string rel = f.at_most ? "<=" : ">=";
  if (confirm && refute) {
    f.verdict = "inconclusive";
    f.side = "upper";
    f.why = "the sides contradict each other (upper " + ci(f.upper) + " inside the claim, lower " + ci(f.lower) +
            " outside): check the bounds' sizes";
  } else if (confirm) {
    f.verdict = "confirmed";
    f.side = both.empty() ? "upper" : both;
    f.why = (both.empty() ? "the upper side's (" + f.upper_from + ")" : "the " + both + " figure's") +
            " exponent has its CI " + ci(f.upper) + " " + rel + " " + short_num(f.bound);
  } else if (refute) {
    f.verdict = "refuted";
    f.side = both.empty() ? "lower" : both;
    f.why = (both.empty() ? "the lower side's (" + f.lower_from + ")" : "the " + both + " figure's") +
            " exponent has its CI " + ci(f.lower) + " beyond " + short_num(f.bound);
  } else {
    f.verdict = "inconclusive";
    f.side = up ? (both.empty() ? "upper" : both) : (lo ? (both.empty() ? "lower" : both) : "");
    if (!up && !lo)
      f.why = "no side has a fit with a CI (too few resolved points or values of the axis)";
    else if (!up && f.upper_from.empty())
      f.why = "no upper-side figure in the rows (a lower side can only refute): its CI " + ci(f.lower) +
              " does not exclude the claim";
    else
      f.why = "the CIs do not decide (" + (up ? "upper " + ci(f.upper) : std::string("no upper fit")) + ", " +
              (lo ? "lower " + ci(f.lower) : std::string("no lower fit")) + " against " + rel + " " + short_num(f.bound) + ")";
  }
}

ClaimFigure make_figure(const std::string& what, bool at_most, double bound) {
  ClaimFigure f;
  f.what = what;
  f.at_most = at_most;
  f.bound = bound;
  return f;
}

/// A figure of TV (or a function of it) against an axis, both sides from the rows.
/// x: the axis' log; y_of: log figure from a TV value; dy: the figure's log derivative in log TV.
ClaimFigure tv_figure(const std::string& what, bool at_most, double bound, const std::vector<SweepRow>& rows,
                      const std::function<bool(const SweepRow&)>& keep,
                      const std::function<double(const SweepRow&)>& x,
                      const std::function<double(const SweepRow&, double)>& y_of, double dy,
                      const std::function<void(RunParams&)>& clear, double level) {
  ClaimFigure f = make_figure(what, at_most, bound);
  Side lo, up;
  bool any_bracket = false;
  for (const SweepRow& r : rows) {
    if (!keep(r)) continue;
    const std::string key = key_without(r, clear);
    double v = 0, s = 0;
    if (lower_tv(r, v, s)) lo.add(x(r), y_of(r, v), dy * s, key);
    if (r.bracket.present) any_bracket = true;
    if (upper_tv(r, v, s)) up.add(x(r), y_of(r, v), dy * s, key);
  }
  f.lower_from = "TV lower bound (statistics)";
  if (any_bracket) f.upper_from = "TV upper side (bracket: ddpm tv_upper_mean, ddim tv_exact)";
  f.lower = lo.fit(level);
  f.upper = up.fit(level);
  decide(f);
  return f;
}

double log_T(const SweepRow& r) { return std::log(static_cast<double>(r.p.T)); }
double log_d(const SweepRow& r) { return std::log(static_cast<double>(r.p.d)); }
double log_K(const SweepRow& r) { return std::log(static_cast<double>(r.p.K)); }

// ---- the claims ----

std::vector<ClaimFigure> theorem1(const std::vector<SweepRow>& rows, double level) {
  std::vector<ClaimFigure> out;
  out.push_back(tv_figure(
      "T-exponent of TV / f(K, T)", true, 0.0, rows, exact_ddpm, log_T,
      [](const SweepRow& r, double v) { return std::log(v / theorem1_shape(r.p.K, r.p.T)); }, 1.0,
      [](RunParams& q) { q.T = 0; }, level));
  // K may follow d (K = d, 4d): f carries K's log^2 growth, the theorem's d-freedom is TV / f's.
  out.push_back(tv_figure(
      "d-exponent of TV / f(K, T) at fixed T", true, 0.0, rows, exact_ddpm, log_d,
      [](const SweepRow& r, double v) { return std::log(v / theorem1_shape(r.p.K, r.p.T)); }, 1.0,
      [](RunParams& q) {
        q.d = 0;
        q.K = 0;
      },
      level));
  return out;
}

std::vector<ClaimFigure> kl_rate(const std::vector<SweepRow>& rows, double level) {
  // Lower side: KL >= 2 TV^2 (Pinsker) from the TV lower bound; upper side: the bracket's U_KL(M),
  // kl_upper_mean with its se (rows written before those fields: none).
  ClaimFigure f = make_figure("T-exponent of KL", true, -2.0);
  Side lo, up;
  bool any_bracket = false;
  for (const SweepRow& r : rows) {
    if (!exact_ddpm(r)) continue;
    const std::string key = key_without(r, [](RunParams& q) { q.T = 0; });
    double v = 0, s = 0;
    if (lower_tv(r, v, s)) lo.add(log_T(r), std::log(kPinsker * v * v), 2 * s, key);
    if (r.bracket.present) any_bracket = true;
    const RowBracket& b = r.bracket;
    if (r.error.empty() && b.present && b.error.empty() && b.kl_upper_mean > 0 && std::isfinite(b.kl_upper_se))
      up.add(log_T(r), std::log(b.kl_upper_mean), b.kl_upper_se / b.kl_upper_mean, key);
  }
  f.lower_from = "2 TV^2 (Pinsker) from the TV lower bound";
  if (any_bracket) f.upper_from = "kl_upper_mean (bracket: U_KL(M))";
  f.lower = lo.fit(level);
  f.upper = up.fit(level);
  decide(f);
  return {f};
}

std::vector<ClaimFigure> quantity_figure(const std::vector<SweepRow>& rows, double level, const std::string& what,
                                         double bound, const std::string& both, const std::string& from,
                                         const std::function<double(const SweepRow&)>& x,
                                         const std::function<double(const RowQuantities&)>& y,
                                         const std::function<void(RunParams&)>& clear) {
  ClaimFigure f = make_figure(what, true, bound);
  Side s;
  for (const SweepRow& r : rows) {
    if (!r.error.empty() || !r.quantities.present) continue;
    const double v = y(r.quantities);
    if (v > 0) s.add(x(r), std::log(v), std::numeric_limits<double>::quiet_NaN(), key_without(r, clear));
  }
  f.lower_from = from;
  f.lower = s.fit(level);
  if (!both.empty()) {
    f.upper_from = from;
    f.upper = f.lower;
  }
  decide(f, both);
  return {f};
}

std::vector<ClaimFigure> key_lemma(const std::vector<SweepRow>& rows, double level) {
  // The quantity itself, measured (exact draws X_t ~ p_t, exact Jacobians): one fit is both
  // sides, its CI the fit's (the p99.9 of 2048 draws scatters; no rounding tolerance).
  return quantity_figure(
      rows, level, "exponent of max_t p99.9 tr(I + J_t) in log(KT)", 1.0, "measured",
      "max_t p99.9 tr(I + J_t), measured",
      [](const SweepRow& r) { return std::log(r.quantities.log_KT); },
      [](const RowQuantities& q) { return q.trace_p999; },
      [](RunParams& q) {
        q.K = 0;
        q.K_spec.clear();
        q.T = 0;
        q.n = 0;
      });
}

std::vector<ClaimFigure> smoothness(const std::vector<SweepRow>& rows, double level) {
  auto clear = [](RunParams& q) {
    q.K = 0;
    q.K_spec.clear();
    q.n = 0;
  };
  auto out = quantity_figure(rows, level, "K-exponent of max ||J_t||_op", 0.0, "",
                             "max over t and draws of ||J_t||_op (below the Lipschitz constant)", log_K,
                             [](const RowQuantities& q) { return q.opnorm_max; }, clear);
  auto m = quantity_figure(rows, level, "K-exponent of max_t E|X_t|^2", 0.0, "exact", "max_t E|X_t|^2, closed form",
                           log_K, [](const RowQuantities& q) { return q.second_moment; }, clear);
  out.insert(out.end(), m.begin(), m.end());
  return out;
}

std::vector<ClaimFigure> ddim_vs_ddpm(const std::vector<SweepRow>& rows, double level) {
  auto clear = [](RunParams& q) {
    q.d = 0;
    q.K = 0;
  };
  auto y = [](const SweepRow&, double v) { return std::log(v); };
  std::vector<ClaimFigure> out;
  out.push_back(tv_figure(
      "d-exponent of ddim's TV", true, 1.0, rows,
      [](const SweepRow& r) { return r.p.score_error == ScoreErrorKind::None && r.p.sampler == SamplerKind::DDIM; },
      log_d, y, 1.0, clear, level));
  out.push_back(tv_figure("d-exponent of ddpm's TV", true, 0.0, rows, exact_ddpm, log_d, y, 1.0, clear, level));
  return out;
}

std::vector<ClaimFigure> robustness(const std::vector<SweepRow>& rows, double level) {
  // The increase over the exact-score run of the same parameters: a lower side needs the base's
  // upper side (L(eps) - U(0) <= TV(eps) - TV(0)), an upper side the base's lower one
  // (U(eps) - L(0) >= TV(eps) - TV(0); L(0) = 0 where unresolved: still an upper side).
  ClaimFigure f = make_figure("exponent of TV - TV(eps = 0) in eps_score", false, 1.0);
  auto base_key = [](const SweepRow& r) {
    return key_without(r, [](RunParams& q) {
      q.score_error = ScoreErrorKind::None;
      q.eps = 0;
      q.error_profile = ErrorProfile::Uniform;
      q.bias_direction = "random";
      q.seed = 0;
    });
  };
  std::map<std::string, const SweepRow*> base;
  for (const SweepRow& r : rows)
    if (r.error.empty() && r.p.score_error == ScoreErrorKind::None) base.emplace(base_key(r) + ";seed=" + std::to_string(r.p.seed), &r);
  Side lo, up;
  bool any_bracket = false;
  const double z = z95();
  for (const SweepRow& r : rows) {
    if (!r.error.empty() || r.p.score_error == ScoreErrorKind::None || !(r.eps_score > 0)) continue;
    const auto it = base.find(base_key(r) + ";seed=" + std::to_string(r.p.seed));
    if (it == base.end()) continue;
    const SweepRow& b = *it->second;
    const std::string key = key_without(r, [](RunParams& q) { q.eps = 0; });
    if (r.bracket.present) any_bracket = true;
    double l = 0, ls = 0, u0 = 0, us0 = 0;
    if (lower_tv(r, l, ls) && upper_tv(b, u0, us0, true)) {
      const double d = l - u0;
      const double sd = l * ls;  // the base's top is a bound, not an estimate: no variance of its own
      if (d > 0) lo.add(std::log(r.eps_score), std::log(d), sd / d, key);
    }
    double u = 0, us = 0, l0 = 0, ls0 = 0;
    if (upper_tv(r, u, us)) {
      const bool base_lo = lower_tv(b, l0, ls0);
      const double d = u - (base_lo ? l0 : 0.0);
      const double sd = std::hypot(u * us, base_lo ? (b.figure().ci_hi - b.figure().ci_lo) / (2 * z) : 0.0);
      if (d > 0) up.add(std::log(r.eps_score), std::log(d), sd / d, key);
    }
  }
  f.lower_from = "TV lower bound minus the exact-score run's upper bound";
  if (any_bracket) f.upper_from = "TV upper side minus the exact-score run's lower bound";
  f.lower = lo.fit(level);
  f.upper = up.fit(level);
  decide(f);
  return {f};
}

std::string ci_text(const LineFit& f) {
  if (!f.ok()) return "-";
  std::ostringstream os;
  os.precision(3);
  os << f.b;
  if (f.has_ci()) {
    std::ostringstream a, b;
    a.precision(3);
    b.precision(3);
    a << f.ci_lo;
    b << f.ci_hi;
    return os.str() + " [" + a.str() + ", " + b.str() + "]";
  }
  return os.str() + " [no CI]";
}

nlohmann::json fit_json(const LineFit& f) {
  auto nn = [](double x) { return std::isfinite(x) ? nlohmann::json(x) : nlohmann::json(nullptr); };
  return {{"n", f.n}, {"groups", f.groups}, {"slope", nn(f.b)}, {"se", nn(f.se_b)}, {"ci_lo", nn(f.ci_lo)},
          {"ci_hi", nn(f.ci_hi)}};
}

}  // namespace

std::string ClaimFigure::claimed() const { return std::string(at_most ? "<= " : ">= ") + num(bound); }

std::string claim_of_sweep(const std::string& sweep_name) {
  for (const Claim& c : claims()) {
    if (sweep_name == c.name) return c.name;
    for (const char* s : {"-cpu", "-gpu", "-tiny"})
      if (sweep_name == c.name + s) return c.name;
  }
  return "";
}

ClaimVerdict judge_claim(const std::string& claim, const std::vector<SweepRow>& rows, double level) {
  const Claim& c = find_claim(claim);
  ClaimVerdict v;
  v.claim = c.name;
  v.rows = rows.size();
  if (!rows.empty()) v.sweep = rows.front().sweep;
  if (c.name == "theorem1") v.figures = theorem1(rows, level);
  else if (c.name == "key-lemma") v.figures = key_lemma(rows, level);
  else if (c.name == "smoothness") v.figures = smoothness(rows, level);
  else if (c.name == "kl-rate") v.figures = kl_rate(rows, level);
  else if (c.name == "ddim-vs-ddpm") v.figures = ddim_vs_ddpm(rows, level);
  else if (c.name == "robustness") v.figures = robustness(rows, level);
  else throw Error("claim \"" + c.name + "\" has no verdict rule");
  bool all = !v.figures.empty(), any_refuted = false;
  for (const ClaimFigure& f : v.figures) {
    all = all && f.verdict == "confirmed";
    any_refuted = any_refuted || f.verdict == "refuted";
  }
  v.verdict = any_refuted ? "refuted" : all ? "confirmed" : "inconclusive";
  return v;
}

std::string claim_markdown(const ClaimVerdict& v) {
  const Claim& c = find_claim(v.claim);
  std::ostringstream os;
  os << "# Claim " << c.name << ": " << v.verdict << "\n\n"
     << "- Paper: " << c.paper << "\n- Statement: " << c.statement << "\n- Measured: " << c.measured
     << "\n- Sweep: " << v.sweep << " (" << v.rows << " rows)\n\n"
     << "Rule (docs/claims.md): confirmed only from the upper side's CI inside the claim, refuted only from the "
        "lower side's CI outside it, inconclusive otherwise; an exact figure is both sides.\n\n"
     << "figure | claimed | lower side: exponent [95% CI] (points) | upper side: exponent [95% CI] (points) | verdict | "
        "why\n--- | --- | --- | --- | --- | ---\n";
  for (const ClaimFigure& f : v.figures) {
    auto side = [](const std::string& from, const LineFit& l) {
      if (from.empty()) return std::string("none in the rows");
      return ci_text(l) + " (" + std::to_string(l.n) + "; " + from + ")";
    };
    os << f.what << " | " << f.claimed() << " | " << side(f.lower_from, f.lower) << " | " << side(f.upper_from, f.upper)
       << " | " << f.verdict << " | " << f.why << "\n";
  }
  return os.str();
}

std::string claim_json(const ClaimVerdict& v) {
  nlohmann::json j;
  j["claim"] = v.claim;
  j["sweep"] = v.sweep;
  j["rows"] = v.rows;
  j["verdict"] = v.verdict;
  j["figures"] = nlohmann::json::array();
  for (const ClaimFigure& f : v.figures)
    j["figures"].push_back({{"what", f.what},
                            {"claimed", f.claimed()},
                            {"at_most", f.at_most},
                            {"bound", f.bound},
                            {"lower_from", f.lower_from},
                            {"upper_from", f.upper_from},
                            {"lower", fit_json(f.lower)},
                            {"upper", fit_json(f.upper)},
                            {"side", f.side},
                            {"verdict", f.verdict},
                            {"why", f.why}});
  return j.dump(2) + "\n";
}

ClaimVerdict write_claim_verdict(const std::string& dir, double level) {
  namespace fs = std::filesystem;
  // Exactly the rows the report reports (keys.txt): rows results.jsonl keeps for runs of another
  // version of the sweep would otherwise enter the claim's fit.
  const std::vector<SweepRow> rows = sweep_rows(dir);
  ClaimVerdict v;
  const std::string claim = claim_of_sweep(rows.front().sweep);
  if (claim.empty()) return v;
  v = judge_claim(claim, rows, level);
  write_file_atomic((fs::path(dir) / "claim.md").string(), claim_markdown(v));
  write_file_atomic((fs::path(dir) / "claim.json").string(), claim_json(v));
  return v;
}

std::string claims_table(const std::vector<ClaimVerdict>& verdicts, const std::vector<std::string>& details) {
  std::ostringstream os;
  os << "claim | measured [95% CI] | claimed | verdict | details\n--- | --- | --- | --- | ---\n";
  for (std::size_t i = 0; i < verdicts.size(); ++i) {
    const ClaimVerdict& v = verdicts[i];
    for (const ClaimFigure& f : v.figures) {
      std::string m = f.what + ": ";
      if (f.side.empty()) m += "no fit";
      else m += ci_text(f.shown()) + " (" + f.side + ")";
      os << v.claim << " | " << m << " | " << f.claimed() << " | " << f.verdict << " | "
         << (i < details.size() ? details[i] : std::string("-")) << "\n";
    }
  }
  return os.str();
}

}  // namespace gmmdiff
