// gmmdiff: the analysis of a sweep's rows (docs/sweeps.md): log-log slopes of TV against T with
// confidence intervals, TV across d and K at fixed T, TV against the realised eps_score, the
// Theorem-1 shape log^2(KT) log^2(T) / T (arXiv 2504.05300) and a verdict per family.
#pragma once
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "gmmdiff/sweep.hpp"

namespace gmmdiff {

// ---- fitted lines and the Theorem-1 shape ----

/// A least-squares line y = a + b x, or with pooled intercepts y = a_g + b x (one per group), as
/// the report fits them (docs/sweeps.md): by weighted least squares when the points have standard
/// errors, with a CI on the slope at the report's level (Student t, or normal with two points).
struct LineFit {
  static constexpr double nan = std::numeric_limits<double>::quiet_NaN();
  int n = 0;       ///< points used
  int groups = 1;  ///< intercepts fitted
  double a = nan;  ///< intercept (first group's when pooled)
  double b = nan;  ///< slope
  double se_b = nan;
  double ci_lo = nan, ci_hi = nan;  ///< NaN when there is no interval
  double r2 = nan;
  double chi2_dof = nan;  ///< weighted fits: chi^2 / dof of the residuals (1: scatter as the sigmas say)
  int dof() const { return n - groups - 1; }
  bool ok() const { return n >= groups + 1 && b == b; }
  bool has_ci() const { return ok() && ci_lo == ci_lo; }
};

/// The Theorem-1 shape f(K, T) = log^2(K T) log^2(T) / T (natural logarithms).
double theorem1_shape(double K, double T);

// ---- the analysis ----

struct ReportOptions {
  double level = 0.95;       ///< confidence level of every interval
  double growth_tol = 0.25;  ///< gamma: growth exponents of TV/f below it count as "bounded"
};

/// One group at one T (and one value of d, K or eps), averaged over seeds.
struct ReportPoint {
  int T = 0, d = 0, K = 0;
  double eps = 0;
  double tv = 0;                ///< mean over seeds of the run's figure (max tv_corrected)
  double ci_lo = 0, ci_hi = 0;  ///< see docs/sweeps.md (per-run CIs, or the seeds' t interval if wider)
  double floor = 0;             ///< mean noise floor of the statistic that gave the figure
  double eps_score = 0;         ///< mean realised eps_score
  double shape = 0;             ///< theorem1_shape(K, T)
  int seeds = 0;
  bool resolved = false;  ///< CI lower end above 0 (the figure is resolved from the floor)
  std::string stat;       ///< statistic(s) that gave the figure
  // The other side (rows with bounds, docs/sweeps.md "Bounds"), means over seeds; NaN where absent.
  bool bounded = false;                   ///< every row of the point has the upper side (tv_upper or tv_exact)
  double upper = LineFit::nan;            ///< top of the band: ddpm's one-sided 95% tv_upper, ddim's exact CI high end
  double upper_fit = LineFit::nan;        ///< the upper side's estimate that the fits use (tv_upper_mean, tv_exact)
  double upper_sigma_log = LineFit::nan;  ///< its standard error on the log scale
  double exact = LineFit::nan, exact_lo = LineFit::nan, exact_hi = LineFit::nan;  ///< ddim: exact TV, CLT 95%
  double reference = LineFit::nan;        ///< reducible models: TV by quadrature (noise-free)
};

/// All runs that differ only in T (and seed): TV against T.
struct TGroup {
  std::string id;                     ///< "g1", "g2", ... in the order of the rows
  std::string label;                  ///< the parameters that vary across the sweep
  RunParams p;                        ///< representative (T and seed are those of the first row)
  std::vector<ReportPoint> points;    ///< by increasing T
  int excluded = 0;                   ///< unresolved points left out of every fit
  LineFit slope;                      ///< log TV = a + b log T over resolved points
  LineFit upper_slope;                ///< log upper_fit = a + b log T over bounded points
  double shape_slope = LineFit::nan;  ///< slope of log f against log T over the same T
  double shape_C = LineFit::nan;      ///< median(TV / f) over resolved points
  double shape_worst = LineFit::nan;  ///< max |log(TV / (C f))|
};

/// TV at fixed T across one axis ("d" or "K"): all runs that differ only in T, that axis, seed.
struct AcrossGroup {
  std::string axis;  ///< "d" or "K"
  std::string label;
  RunParams p;                       ///< representative
  std::vector<int> values;           ///< the axis' values, increasing
  std::vector<std::string> members;  ///< TGroup id per value
  struct AtT {
    int T = 0;
    std::vector<double> tv;       ///< per value; NaN where missing
    std::vector<char> resolved;   ///< per value
    double ratio = LineFit::nan;  ///< max/min TV over the values present
    bool all_resolved = false;
  };
  std::vector<AtT> at;          ///< by increasing T
  int ratio_T = 0;              ///< largest T with every value resolved (0: none)
  double ratio = LineFit::nan;  ///< max/min TV at ratio_T
  LineFit t_slope;              ///< log TV = a_value + b log T (pooled over values)
  double shape_t_slope = LineFit::nan;
  LineFit t_growth;            ///< log(TV/f) = a_value + b log T: growth in T beyond the shape
  LineFit axis_growth;         ///< log(TV/f) = a_T + g log value: growth along the axis
  /// Every point of every member has the upper side: the verdict is two-sided (confirmed |
  /// refuted | inconclusive); otherwise it reads the lower bound alone, as before bounds
  /// (consistent | inconclusive | inconsistent).
  bool bounded = false;
  LineFit upper_t_growth;      ///< log(upper_fit/f) = a_value + b log T
  LineFit upper_axis_growth;   ///< log(upper_fit/f) = a_T + g log value
  std::string verdict;         ///< confirmed | refuted | inconclusive (bounded); consistent | inconclusive | inconsistent
  std::string why;             ///< one line
  bool theorem_domain = true;  ///< sd = 1: the setting of Theorem 1
  bool exact_score = true;     ///< no injected score error (the verdict's TV/f rule applies)
  /// In the verdict table: exact score and at least two values of T.
  bool in_verdict() const { return exact_score && at.size() >= 2; }
};

/// TV against the realised eps_score: runs that differ only in the score error and seed, at one T.
struct EpsGroup {
  std::string label;
  RunParams p;
  int T = 0;
  std::vector<ReportPoint> points;       ///< by increasing eps (eps = 0 / none first)
  LineFit fit;                           ///< TV = a + b eps_score (resolved points)
  double per_sqrt_log_T = LineFit::nan;  ///< b / sqrt(log T): the constant of the eps term
};

struct Report {
  std::string sweep;
  std::size_t rows = 0;
  ReportOptions opt;
  std::vector<std::string> varying;  ///< parameters that take more than one value in the rows
  std::vector<TGroup> t_groups;
  std::vector<AcrossGroup> across_d, across_K;
  std::vector<EpsGroup> eps_groups;
  std::vector<std::string> notes;  ///< e.g. "7 unresolved points excluded from the fits"
};

/// Groups the rows and computes every fit. Rows with the same key count once.
Report analyze_rows(const std::vector<SweepRow>& rows, const ReportOptions& opt = {});

/// report.md (the tables), report.json (everything, read by tools/plot_sweep.py), and the
/// verdict table printed at the end of a sweep.
std::string report_markdown(const Report& r);
std::string report_json(const Report& r);
std::string verdict_table(const Report& r);
/// The per-group table of TV against T (slope, the shape's slope, C, worst residual) for a terminal.
std::string slope_table(const Report& r);

/// The rows of the sweep last run in dir: those of dir/results.jsonl whose keys dir/keys.txt lists
/// (all of them where there is no keys.txt, as in directories of older builds), in run order.
/// others, when set, receives how many rows belong to no run of that sweep (kept in
/// results.jsonl, never reported). Throws gmmdiff::Error for a directory without results.jsonl,
/// without a complete row, or without a row of its sweep.
std::vector<SweepRow> sweep_rows(const std::string& dir, std::size_t* others = nullptr);

/// Writes report.md, report.json and results.csv into dir (atomically), from sweep_rows(dir).
/// Returns the report.
Report write_report(const std::string& dir, const ReportOptions& opt = {});

/// Runs `python script dir` (the interpreter: $GMMDIFF_PYTHON, else /usr/bin/python3 when it
/// exists, else python3 on PATH). Returns "" on success or one line saying why there are no plots.
std::string run_plot_script(const std::string& script, const std::string& dir);
/// The same with any arguments after the script (e.g. `gmmdiff inspect`'s JSON and PNG).
std::string run_plot_script(const std::string& script, const std::vector<std::string>& script_args);

}  // namespace gmmdiff
