// gmmdiff: the outputs of a sweep's report (include/gmmdiff/report.hpp; docs/sweeps.md):
// report.md, report.json (read by tools/plot_sweep.py), the verdict and slope tables printed on a
// terminal, write_report (the files of a results directory) and the plot script.
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "io/atomic_file.hpp"
#include "io/input.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"
#include "gmmdiff/sweep.hpp"
#include "report/format.hpp"

extern char** environ;

namespace gmmdiff {
namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;
using report_format::fit_text;
using report_format::fmt;
using report_format::fmt_fixed;

json fit_json(const LineFit& f) {
  return {{"n", f.n},         {"groups", f.groups}, {"a", f.a},
          {"b", f.b},         {"se_b", f.se_b},     {"ci_lo", f.ci_lo},
          {"ci_hi", f.ci_hi}, {"r2", f.r2},         {"chi2_dof", f.chi2_dof}};
}

/// A figure, or null where it does not apply (NaN).
json num_or_null(double x) { return std::isfinite(x) ? json(x) : json(); }

json point_json(const ReportPoint& p) {
  json j = {{"T", p.T},         {"d", p.d},         {"K", p.K},
            {"eps", p.eps},     {"tv", p.tv},       {"ci_lo", p.ci_lo},
            {"ci_hi", p.ci_hi}, {"floor", p.floor}, {"eps_score", p.eps_score},
            {"shape", p.shape}, {"seeds", p.seeds}, {"resolved", p.resolved},
            {"stat", p.stat}};
  if (p.bounded || std::isfinite(p.reference)) {  // points without bounds keep the keys they had
    j["bounded"] = p.bounded;
    j["upper"] = num_or_null(p.upper);
    j["upper_fit"] = num_or_null(p.upper_fit);
    j["upper_sigma_log"] = num_or_null(p.upper_sigma_log);
    j["exact"] = num_or_null(p.exact);
    j["exact_ci"] = std::isfinite(p.exact) ? json::array({p.exact_lo, p.exact_hi}) : json();
    j["reference"] = num_or_null(p.reference);
  }
  return j;
}

/// Whether any point of the report has the upper side (the tables then show it).
bool any_bounded(const Report& r) {
  for (const auto& g : r.t_groups)
    for (const auto& p : g.points)
      if (p.bounded) return true;
  return false;
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
  const bool two_sided = any_bounded(r);
  if (two_sided)
    os << "Two-sided where the rows have bounds: confirmed from the upper side's exponents (both CIs below gamma), "
          "refuted from the lower bound's (a CI above gamma), inconclusive otherwise.\n";
  std::vector<std::vector<std::string>> rows = {
      {"group", "d", "slope TV~T [95% CI]", "f", "d-exponent of TV/f [CI]", "TV ratio over d", "verdict"}};
  if (two_sided) rows[0].insert(rows[0].end() - 1, {"upper: T-exp. of U/f [CI]", "upper: d-exp. of U/f [CI]"});
  for (const auto& a : r.across_d) {
    if (!a.in_verdict()) continue;
    std::string ds;
    for (std::size_t i = 0; i < a.values.size(); ++i) ds += (i ? "," : "") + std::to_string(a.values[i]);
    const std::string ratio = a.ratio_T ? fmt(a.ratio, 3) + " at T=" + std::to_string(a.ratio_T) : "-";
    std::vector<std::string> row = {a.label, ds, fit_text(a.t_slope), fmt_fixed(a.shape_t_slope),
                                    fit_text(a.axis_growth), ratio};
    if (two_sided) {
      row.push_back(a.bounded ? fit_text(a.upper_t_growth) : "-");
      row.push_back(a.bounded ? fit_text(a.upper_axis_growth) : "-");
    }
    row.push_back(a.verdict + (a.theorem_domain ? "" : " (sd != 1: outside Thm 1)"));
    rows.push_back(row);
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
  const bool two_sided = any_bounded(r);
  if (two_sided) {
    os << "\nThe band (rows with bounds): from the lower bound's CI low end to the upper side (ddpm: the one-sided 95% "
          "upper bound U_TV(M) + 1.645 se (+ TV(X_0, X_1) for stop 1); ddim: the exact TV's CI high end). Slope of the "
          "upper side against T:\n\n| group | slope of log U vs log T [CI] |\n|---|---|\n";
    for (const auto& g : r.t_groups)
      if (g.upper_slope.ok()) os << "| " << g.id << " | " << fit_text(g.upper_slope) << " |\n";
  }
  os << "\n<details><summary>Points</summary>\n\n";
  os << "| group | T | TV | CI | floor | resolved | statistic | eps_score | seeds |";
  if (two_sided) os << " upper | exact [CI] | reference |";
  os << "\n|---|---|---|---|---|---|---|---|---|" << (two_sided ? "---|---|---|" : "") << "\n";
  for (const auto& g : r.t_groups)
    for (const auto& p : g.points) {
      os << "| " << g.id << " | " << p.T << " | " << fmt(p.tv) << " | [" << fmt(p.ci_lo) << ", " << fmt(p.ci_hi)
         << "] | " << fmt(p.floor) << " | " << (p.resolved ? "yes" : "no") << " | " << p.stat << " | "
         << fmt(p.eps_score) << " | " << p.seeds << " |";
      if (two_sided)
        os << " " << (p.bounded ? fmt(p.upper) : "-") << " | "
           << (std::isfinite(p.exact) ? fmt(p.exact) + " [" + fmt(p.exact_lo) + ", " + fmt(p.exact_hi) + "]" : "-")
           << " | " << (std::isfinite(p.reference) ? fmt(p.reference) : "-") << " |";
      os << "\n";
    }
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
         << ". ";
      if (a.bounded)
        os << "Upper side's growth of U/f: in T " << fit_text(a.upper_t_growth) << ", along " << axis << " "
           << fit_text(a.upper_axis_growth) << ". ";
      os << "Verdict: **" << a.verdict << "** (" << a.why << ").\n\n";
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
                             {"upper_slope", fit_json(g.upper_slope)},
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
                     {"bounded", a.bounded},
                     {"upper_t_growth", fit_json(a.upper_t_growth)},
                     {"upper_axis_growth", fit_json(a.upper_axis_growth)},
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

std::vector<SweepRow> sweep_rows(const std::string& dir, std::size_t* others_out) {
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
  // keys.txt (written by the sweep) names the sweep's runs: rows of other runs that results.jsonl
  // keeps (a gmmdiff that keyed runs differently) are not reported, as the sweep says.
  std::size_t others = 0;
  const std::string keys_path = (fs::path(dir) / kSweepKeysFile).string();
  if (fs::exists(keys_path)) {
    std::set<std::string> keys;
    std::istringstream in(read_input_file(keys_path, "keys.txt"));
    for (std::string k; in >> k;) keys.insert(k);
    const auto before = rows.size();
    rows.erase(std::remove_if(rows.begin(), rows.end(), [&](const SweepRow& r) { return !keys.count(r.key); }),
               rows.end());
    others = before - rows.size();
    if (rows.empty())
      throw Error(results + ": no finished runs of this sweep yet (its " + std::to_string(before) +
                  " rows belong to runs that keys.txt does not list)");
  }
  std::stable_sort(rows.begin(), rows.end(), [](const SweepRow& a, const SweepRow& b) { return a.index < b.index; });
  if (others_out) *others_out = others;
  return rows;
}

Report write_report(const std::string& dir, const ReportOptions& opt) {
  std::size_t others = 0;
  const std::vector<SweepRow> rows = sweep_rows(dir, &others);
  Report r = analyze_rows(rows, opt);
  if (others)
    r.notes.push_back(std::to_string(others) + " rows of results.jsonl belong to no run of this sweep (keys.txt); they "
                      "are kept there but not reported");
  write_file_atomic((fs::path(dir) / "report.md").string(), report_markdown(r));
  write_file_atomic((fs::path(dir) / "report.json").string(), report_json(r));
  write_file_atomic((fs::path(dir) / "results.csv").string(), rows_to_csv(rows));
  return r;
}

std::string run_plot_script(const std::string& script, const std::string& dir) {
  if (script.empty() || !fs::exists(script))
    return "plots skipped: tools/plot_sweep.py not found (set GMMDIFF_PLOT_SCRIPT); tables written";
  return run_plot_script(script, std::vector<std::string>{dir});
}

std::string run_plot_script(const std::string& script, const std::vector<std::string>& script_args) {
  if (script.empty() || !fs::exists(script)) return "plots skipped: the plot script is not found; tables written";
  std::string python;
  if (const char* e = std::getenv("GMMDIFF_PYTHON"); e && *e)
    python = e;
  else if (::access("/usr/bin/python3", X_OK) == 0)
    python = "/usr/bin/python3";
  else
    python = "python3";
  std::vector<std::string> args = {python, script};
  args.insert(args.end(), script_args.begin(), script_args.end());
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
