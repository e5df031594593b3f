// The analysis of a sweep's rows (host/report/analysis.cpp): synthetic rows whose slope,
// d-dependence, Theorem-1 constant and eps dependence are known, unresolved and failed runs, seeds
// and builds (the command and the files it writes: tests/cli/test_cmd_report.cpp).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gmmdiff/report.hpp"
#include "gmmdiff/sweep.hpp"

using namespace gmmdiff;

namespace {

constexpr double kExactFitTol = 1e-10;
constexpr double kSlopeTol = 0.05;  // a fit that lost one point of a jittered line

/// Deterministic log-scale jitter, orthogonal to log T over 6 equally log-spaced T and to log d
/// over 3 equally log-spaced d: the fits have residuals (so a CI of non-zero width) but the true
/// slopes stay exactly the least-squares ones.
double jitter(std::size_t t_index, std::size_t d_index) {
  constexpr double kT[6] = {1, -2, 1, 1, -2, 1}, kD[3] = {1, -2, 1};
  return 0.5 * kT[t_index % 6] + 0.5 * kD[d_index % 3];
}

struct Synth {
  std::string family = "two-point";
  double sd = 1.0;
  std::vector<int> Ts = {16, 32, 64, 128, 256, 512};
  std::vector<int> ds = {4, 16, 64};
  int seeds = 1;
  double rel_ci = 0.05;  // half-width of each run's CI, relative
  double floor = 1e-3;
  double jitter = 0.03;
};

/// Rows whose figure is tv(T, d, K, seed); unresolved where tv <= floor.
template <typename F>
std::vector<SweepRow> make_rows(const Synth& s, F tv) {
  std::vector<SweepRow> rows;
  const RunParams base = parse_sweep(R"({"T": 16, "n": 1000})", "synthetic").runs.at(0);
  std::size_t index = 0;
  for (std::size_t k = 0; k < s.ds.size(); ++k)
    for (std::size_t j = 0; j < s.Ts.size(); ++j)
      for (int seed = 0; seed < s.seeds; ++seed) {
        const int d = s.ds[k], T = s.Ts[j];
        SweepRow r;
        r.p = base;
        r.p.family = s.family;
        r.p.preset = s.family;
        r.p.sd = s.sd;
        r.p.d = d;
        r.p.K = s.family == "two-point" ? 2 : d;
        r.p.K_spec = s.family == "two-point" ? "2" : "d";
        r.p.T = T;
        r.p.seed = static_cast<uint64_t>(seed);
        r.key = r.p.key();
        r.sweep = "synthetic";
        r.index = index++;
        StatResult st;
        st.name = "means[0]";
        const double v = tv(T, d, r.p.K, seed) * std::exp(s.jitter * jitter(j, k));
        st.tv_corrected = v;
        st.tv = v + s.floor;
        st.floor = s.floor;
        st.ci_lo = v * (1 - s.rel_ci) - (v > s.floor ? 0 : 2 * s.floor);
        st.ci_hi = v * (1 + s.rel_ci);
        st.resolved = st.ci_lo > 0;
        r.stats = {st};
        r.eps_score = 0;
        rows.push_back(r);
      }
  return rows;
}

}  // namespace

TEST(ReportAnalyze, RecoversAKnownSlopeAndCallsDimensionFreeConsistent) {
  Synth s;
  const auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  const Report r = analyze_rows(rows);
  ASSERT_EQ(r.t_groups.size(), s.ds.size());
  for (const auto& g : r.t_groups) {
    SCOPED_TRACE(g.label);
    EXPECT_NEAR(g.slope.b, -1.0, kExactFitTol);
    ASSERT_TRUE(g.slope.has_ci());
    EXPECT_GT(g.slope.ci_hi - g.slope.ci_lo, 0.01);
    EXPECT_LT(g.slope.ci_lo, -1.0);
    EXPECT_GT(g.slope.ci_hi, -1.0);
    EXPECT_EQ(g.excluded, 0);
    EXPECT_EQ(g.points.size(), s.Ts.size());
  }
  ASSERT_EQ(r.across_d.size(), 1u);
  const AcrossGroup& a = r.across_d[0];
  EXPECT_EQ(a.values, s.ds);
  EXPECT_EQ(a.ratio_T, s.Ts.back());
  EXPECT_NEAR(a.ratio, std::exp(1.5 * s.jitter), 1e-9);  // the d jitter: exp(eps (1 - (-2)) / 2)
  EXPECT_NEAR(a.t_slope.b, -1.0, kExactFitTol);
  EXPECT_NEAR(a.axis_growth.b, 0.0, kExactFitTol);
  EXPECT_EQ(a.verdict, "consistent") << a.why;
  EXPECT_TRUE(a.in_verdict());
  EXPECT_NE(verdict_table(r).find("consistent"), std::string::npos);
}

TEST(ReportAnalyze, GrowthLikeSqrtDIsInconsistent) {
  Synth s;
  s.floor = 1e-5;  // every point resolved
  const auto rows = make_rows(s, [](int T, int d, int, int) { return 0.05 * std::sqrt(d) / T; });
  const Report r = analyze_rows(rows);
  ASSERT_EQ(r.across_d.size(), 1u);
  const AcrossGroup& a = r.across_d[0];
  EXPECT_NEAR(a.axis_growth.b, 0.5, kExactFitTol);
  EXPECT_NEAR(a.ratio, 4.0, 1e-9);  // sqrt(64 / 4): d = 4 and d = 64 share their jitter
  EXPECT_EQ(a.verdict, "inconsistent") << a.why;
}

TEST(ReportAnalyze, UnresolvedPointsAreLeftOutOfTheFitsAndSaidSo) {
  Synth s;
  s.floor = 2e-3;
  // 0.8 / T falls below the floor from T = 512 on: those points must not bend the slope.
  const auto rows = make_rows(s, [](int T, int, int, int) { return T >= 512 ? 1e-4 : 0.8 / T; });
  const Report r = analyze_rows(rows);
  for (const auto& g : r.t_groups) {
    SCOPED_TRACE(g.label);
    EXPECT_EQ(g.excluded, 1);
    EXPECT_NEAR(g.slope.b, -1.0, kSlopeTol);
    EXPECT_FALSE(g.points.back().resolved);
  }
  ASSERT_FALSE(r.notes.empty());
  EXPECT_NE(r.notes[0].find("not resolved"), std::string::npos) << r.notes[0];
  EXPECT_EQ(r.across_d[0].ratio_T, 256);  // the largest T with every d resolved
}

TEST(ReportAnalyze, Theorem1ShapeConstantAndResidual) {
  Synth s;
  s.jitter = 0;
  s.family = "random-sphere";
  constexpr double kC = 2.5e-3;
  const auto rows = make_rows(s, [&](int T, int, int K, int) { return kC * theorem1_shape(K, T); });
  const Report r = analyze_rows(rows);
  for (const auto& g : r.t_groups) {
    SCOPED_TRACE(g.label);
    EXPECT_NEAR(g.shape_C, kC, 1e-12);
    EXPECT_NEAR(g.shape_worst, 0.0, 1e-9);
    EXPECT_NEAR(g.slope.b, g.shape_slope, 1e-9);
  }
  // TV = C f exactly: TV/f is constant along T and along d (K = d grows f's log^2(KT)).
  EXPECT_NEAR(r.across_d[0].t_growth.b, 0.0, 1e-9);
  EXPECT_NEAR(r.across_d[0].axis_growth.b, 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(theorem1_shape(2, 64), std::pow(std::log(128.0), 2) * std::pow(std::log(64.0), 2) / 64);
}

TEST(ReportAnalyze, SeedsAreAveraged) {
  Synth s;
  s.seeds = 3;
  s.jitter = 0;
  s.ds = {4, 16, 64};
  const auto rows = make_rows(s, [](int T, int, int, int seed) { return (0.7 + 0.1 * seed) / T; });
  const Report r = analyze_rows(rows);
  ASSERT_EQ(r.t_groups.size(), 3u);
  for (const auto& p : r.t_groups[0].points) {
    SCOPED_TRACE("T = " + std::to_string(p.T));
    EXPECT_EQ(p.seeds, 3);
    EXPECT_NEAR(p.tv, 0.8 / p.T, 1e-12);
    EXPECT_LT(p.ci_lo, p.tv);
    EXPECT_GT(p.ci_hi, p.tv);
  }
  EXPECT_NEAR(r.t_groups[0].slope.b, -1.0, 1e-9);
}

TEST(ReportAnalyze, TvAgainstEpsScore) {
  Synth s;
  s.Ts = {64};
  s.ds = {4};
  s.jitter = 0;
  auto rows = make_rows(s, [](int, int, int, int) { return 0.02; });
  const SweepRow base = rows[0];
  constexpr double kB = 0.4;  // TV = 0.02 + kB eps_score
  for (double eps : {0.1, 0.2, 0.4}) {
    SweepRow r = base;
    r.p.score_error = ScoreErrorKind::Means;
    r.p.eps = eps;
    r.key = r.p.key();
    r.eps_score = 0.5 * eps;
    r.stats[0].tv_corrected = 0.02 + kB * r.eps_score;
    r.stats[0].ci_lo = r.stats[0].tv_corrected * 0.9;
    r.stats[0].ci_hi = r.stats[0].tv_corrected * 1.1;
    rows.push_back(r);
  }
  const Report rep = analyze_rows(rows);
  ASSERT_EQ(rep.eps_groups.size(), 1u);
  const EpsGroup& e = rep.eps_groups[0];
  EXPECT_EQ(e.T, 64);
  ASSERT_EQ(e.points.size(), 4u);
  EXPECT_EQ(e.points[0].eps, 0.0);
  EXPECT_NEAR(e.fit.b, kB, 1e-9);
  EXPECT_NEAR(e.per_sqrt_log_T, kB / std::sqrt(std::log(64.0)), 1e-9);
}

TEST(ReportAnalyze, FailedRunsAreLeftOutAndNoted) {
  Synth s;
  auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  rows[0].stats.clear();
  rows[0].error = "step 3: non-finite particles";
  const Report r = analyze_rows(rows);
  EXPECT_EQ(r.rows, rows.size() - 1);
  bool said = false;
  for (const auto& n : r.notes) said = said || n.find("failed runs") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(ReportAnalyze, RowsFromSeveralBuildsAreNoted) {
  Synth s;
  auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  for (auto& r : rows) r.version = "0.1.0+gaaaaaaaaaaaa";
  const Report one = analyze_rows(rows);
  for (const auto& n : one.notes) EXPECT_EQ(n.find("builds of gmmdiff"), std::string::npos) << n;
  rows[0].version = "0.1.0+gbbbbbbbbbbbb";
  const Report two = analyze_rows(rows);
  bool said = false;
  for (const auto& n : two.notes)
    said = said || n.find("2 builds of gmmdiff: 0.1.0+gaaaaaaaaaaaa (" + std::to_string(rows.size() - 1) +
                          "), 0.1.0+gbbbbbbbbbbbb (1)") != std::string::npos;
  EXPECT_TRUE(said);
}

namespace {

/// Adds the upper side to rows (ddpm: tv_upper_mean = upper(T, d, K), se = rel_se of it, with the
/// same jitter as the lower side).
template <typename F>
void add_upper(std::vector<SweepRow>& rows, double rel_se, F upper) {
  for (auto& r : rows) {
    RowBracket& b = r.bracket;
    b.present = true;
    const double u = upper(r.p.T, r.p.d, r.p.K);
    b.tv_upper_mean = u;
    b.tv_upper_se = rel_se * u;
    b.tv_upper = u + kZ95OneSided * b.tv_upper_se;
    b.M = 32;
    b.n = 4096;
  }
}

}  // namespace

TEST(ReportAnalyze, TwoSidedVerdictConfirmsOnlyFromTheUpperSide) {
  // The lower bound is flat in d and decays like 1/T (one-sided: consistent). With an upper side
  // that is C f(K, T) (its exponents 0 within tight CIs): confirmed. With an upper side that grows
  // like d: inconclusive (the lower bound does not refute, the upper side does not confirm).
  Synth s;
  s.floor = 1e-5;
  auto rows = make_rows(s, [](int T, int, int, int) { return 0.8 / T; });
  ASSERT_EQ(analyze_rows(rows).across_d.at(0).verdict, "consistent");
  auto flat = rows;
  add_upper(flat, 0.01, [](int T, int, int K) { return 0.3 * theorem1_shape(K, T); });
  Report r = analyze_rows(flat);
  ASSERT_EQ(r.across_d.size(), 1u);
  const AcrossGroup& a = r.across_d[0];
  EXPECT_TRUE(a.bounded);
  EXPECT_NEAR(a.upper_t_growth.b, 0.0, kExactFitTol);
  EXPECT_NEAR(a.upper_axis_growth.b, 0.0, kExactFitTol);
  EXPECT_EQ(a.verdict, "confirmed") << a.why;
  for (const auto& g : r.t_groups)
    for (const auto& p : g.points) {
      EXPECT_TRUE(p.bounded);
      EXPECT_NEAR(p.upper_sigma_log, 0.01, 1e-12);
      EXPECT_GT(p.upper, p.upper_fit);
    }
  EXPECT_NE(verdict_table(r).find("confirmed"), std::string::npos);
  EXPECT_NE(report_markdown(r).find("| upper | exact [CI] | reference |"), std::string::npos);

  auto growing = rows;
  add_upper(growing, 0.01, [](int T, int d, int K) { return 0.01 * d * theorem1_shape(K, T); });
  const AcrossGroup g = analyze_rows(growing).across_d.at(0);
  EXPECT_NEAR(g.upper_axis_growth.b, 1.0, kExactFitTol);
  EXPECT_EQ(g.verdict, "inconclusive") << g.why;

  // One run without its upper side (e.g. a bounds_error): the group is judged one-sided, as before.
  auto partial = flat;
  partial[3].bracket.error = "step 7 folds";
  EXPECT_EQ(analyze_rows(partial).across_d.at(0).verdict, "consistent");
  EXPECT_FALSE(analyze_rows(partial).across_d.at(0).bounded);
}

TEST(ReportAnalyze, TwoSidedVerdictRefutesOnlyFromTheLowerSide) {
  // The lower bound grows like sqrt(d) (one-sided: inconsistent): refuted, whatever the upper side.
  Synth s;
  s.floor = 1e-5;
  auto rows = make_rows(s, [](int T, int d, int, int) { return 0.05 * std::sqrt(d) / T; });
  add_upper(rows, 0.01, [](int T, int d, int K) { return 0.2 * d * theorem1_shape(K, T); });
  const AcrossGroup a = analyze_rows(rows).across_d.at(0);
  EXPECT_TRUE(a.bounded);
  EXPECT_EQ(a.verdict, "refuted") << a.why;
  EXPECT_NE(a.why.find("lower bound"), std::string::npos) << a.why;
}
