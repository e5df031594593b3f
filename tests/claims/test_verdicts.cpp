// Per-claim verdicts (include/gmmdiff/claims.hpp, docs/claims.md "Verdicts") on synthetic rows with
// a known exponent inside and outside each claim: confirmed only from an upper-side figure (or an
// exact one), refuted only from a lower-side one, inconclusive otherwise; rows without upper-side
// fields are never confirmed.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gmmdiff/claims.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/report.hpp"

using namespace gmmdiff;

namespace {

/// Relative half-width of a synthetic lower bound's 95% CI, and the relative se of an upper side.
constexpr double kLowerRelHalf = 0.05;
constexpr double kUpperRelSe = 0.02;
/// How close a fitted exponent must come to the one the rows were built with (their jitter is
/// +/- 1%, so the fit is within a few hundredths).
constexpr double kSlopeTol = 0.05;
/// A deterministic +/- 1% wobble, so unweighted fits have residuals (and a CI of nonzero width).
double jitter(int i) { return 1.0 + 0.01 * ((i * 7919) % 5 - 2) / 2.0; }

RunParams params(int d, int K, int T) {
  RunParams p;
  p.family = "random-sphere";
  p.d = d;
  p.K = K;
  p.T = T;
  p.sampler = SamplerKind::DDPM;
  return p;
}

SweepRow row(const RunParams& p, double lower, bool with_upper, double upper, const std::string& sweep = "x") {
  SweepRow r;
  r.p = p;
  r.key = p.key();
  r.sweep = sweep;
  StatResult s;
  s.name = "means";
  s.tv_corrected = lower;
  s.tv = lower;
  s.ci_lo = lower * (1 - kLowerRelHalf);
  s.ci_hi = lower * (1 + kLowerRelHalf);
  s.resolved = true;
  r.stats.push_back(s);
  if (with_upper) {
    r.bracket.present = true;
    r.bracket.tv_upper_mean = upper;
    r.bracket.tv_upper_se = kUpperRelSe * upper;
    r.bracket.tv_upper = upper * (1 + 1.645 * kUpperRelSe);
    r.bracket.kl_upper_mean = 2 * upper * upper;
    r.bracket.kl_upper_se = 2 * kUpperRelSe * r.bracket.kl_upper_mean;
    r.bracket.kl_upper = r.bracket.kl_upper_mean + 1.645 * r.bracket.kl_upper_se;
  }
  return r;
}

/// theorem1's rows: TV = c f(K, T) T^g d^h, K = d, on each side (the upper side's c twice the lower's).
std::vector<SweepRow> theorem1_rows(double g_lower, double g_upper, double h_lower, double h_upper, bool with_upper) {
  std::vector<SweepRow> rows;
  int i = 0;
  for (int d : {2, 4, 8})
    for (int T : {64, 128, 256, 512}) {
      const double f = theorem1_shape(d, T);
      const double lower = 1e-3 * f * std::pow(T, g_lower) * std::pow(d, h_lower) * jitter(i);
      const double upper = 2e-3 * f * std::pow(T, g_upper) * std::pow(d, h_upper) * jitter(i + 1);
      rows.push_back(row(params(d, d, T), lower, with_upper, upper, "theorem1-tiny"));
      ++i;
    }
  return rows;
}

const ClaimFigure& figure(const ClaimVerdict& v, const std::string& what) {
  for (const ClaimFigure& f : v.figures)
    if (f.what == what) return f;
  throw Error("no figure " + what);
}

}  // namespace

TEST(ClaimVerdicts, SweepNamesMapToTheirClaims) {
  EXPECT_EQ(claim_of_sweep("kl-rate-tiny"), "kl-rate");
  EXPECT_EQ(claim_of_sweep("theorem1-gpu"), "theorem1");
  EXPECT_EQ(claim_of_sweep("smoothness"), "smoothness");
  EXPECT_EQ(claim_of_sweep("default-cpu"), "");
  EXPECT_EQ(claim_of_sweep("kl-rate-huge"), "");
  EXPECT_THROW(judge_claim("nope", {}), Error);
}

TEST(ClaimVerdicts, Theorem1ConfirmedFromTheUpperSide) {
  // Both sides fall faster than f in T (exponent -0.3 of TV / f) and with d (-0.2): inside the claim.
  const ClaimVerdict v = judge_claim("theorem1", theorem1_rows(-0.3, -0.3, -0.2, -0.2, true));
  const ClaimFigure& t = figure(v, "T-exponent of TV / f(K, T)");
  EXPECT_EQ(t.verdict, "confirmed") << t.why;
  EXPECT_EQ(t.side, "upper");
  EXPECT_NEAR(t.upper.b, -0.3, kSlopeTol);
  EXPECT_LE(t.upper.ci_hi, 0.0);
  const ClaimFigure& d = figure(v, "d-exponent of TV / f(K, T) at fixed T");
  EXPECT_EQ(d.verdict, "confirmed") << d.why;
  EXPECT_NEAR(d.upper.b, -0.2, kSlopeTol);
  EXPECT_EQ(v.verdict, "confirmed");
}

TEST(ClaimVerdicts, Theorem1RefutedFromTheLowerSide) {
  // The lower bound grows faster than f in T (exponent +0.5 of TV / f): outside the claim.
  const ClaimVerdict v = judge_claim("theorem1", theorem1_rows(0.5, 0.6, 0.5, 0.6, true));
  const ClaimFigure& t = figure(v, "T-exponent of TV / f(K, T)");
  EXPECT_EQ(t.verdict, "refuted") << t.why;
  EXPECT_EQ(t.side, "lower");
  EXPECT_NEAR(t.lower.b, 0.5, kSlopeTol);
  EXPECT_GT(t.lower.ci_lo, 0.0);
  EXPECT_EQ(figure(v, "d-exponent of TV / f(K, T) at fixed T").verdict, "refuted");
  EXPECT_EQ(v.verdict, "refuted");
}

TEST(ClaimVerdicts, Theorem1InconclusiveWhenTheSidesStraddleTheClaim) {
  // Lower side inside the claim (cannot refute), upper side outside it (cannot confirm).
  const ClaimVerdict v = judge_claim("theorem1", theorem1_rows(-0.5, 0.5, -0.5, 0.5, true));
  const ClaimFigure& t = figure(v, "T-exponent of TV / f(K, T)");
  EXPECT_EQ(t.verdict, "inconclusive") << t.why;
  EXPECT_NEAR(t.upper.b, 0.5, kSlopeTol);
  EXPECT_NEAR(t.lower.b, -0.5, kSlopeTol);
  EXPECT_EQ(v.verdict, "inconclusive");
}

TEST(ClaimVerdicts, RowsWithoutUpperSideAreInconclusiveNeverConfirmed) {
  // The lower bound well inside the claim: without an upper side that proves nothing.
  const ClaimVerdict v = judge_claim("theorem1", theorem1_rows(-0.5, -0.5, -0.2, -0.2, false));
  for (const ClaimFigure& f : v.figures) {
    EXPECT_EQ(f.verdict, "inconclusive") << f.what << ": " << f.why;
    EXPECT_TRUE(f.upper_from.empty()) << f.what;
    EXPECT_FALSE(f.upper.ok()) << f.what;
    EXPECT_EQ(f.side, "lower") << f.what;
  }
  EXPECT_EQ(v.verdict, "inconclusive");
  // A bracket that failed on every row (bounds_error) is no upper side either.
  auto rows = theorem1_rows(-0.5, -0.5, -0.2, -0.2, true);
  for (SweepRow& r : rows) r.bracket.error = "the step map folds";
  EXPECT_EQ(judge_claim("theorem1", rows).verdict, "inconclusive");
}

TEST(ClaimVerdicts, KlRateFromPinskerBelowAndKlUpperAbove) {
  // kl_upper = 2 U^2 with U ~ T^-1.25: KL exponent -2.5 <= -2: confirmed from the upper side;
  // the lower side 2 L^2 with L ~ T^-1.5 has exponent -3: no refutation.
  std::vector<SweepRow> rows;
  int i = 0;
  for (int T : {64, 128, 256, 512}) {
    rows.push_back(row(params(2, 2, T), 0.5 * std::pow(T, -1.5) * jitter(i), true, std::pow(T, -1.25) * jitter(i + 3)));
    ++i;
  }
  ClaimVerdict v = judge_claim("kl-rate", rows);
  ASSERT_EQ(v.figures.size(), 1u);
  EXPECT_EQ(v.figures[0].verdict, "confirmed") << v.figures[0].why;
  EXPECT_NEAR(v.figures[0].upper.b, -2.5, kSlopeTol);
  EXPECT_NEAR(v.figures[0].lower.b, -3.0, kSlopeTol);
  // A TV lower bound falling as T^-0.25: KL >= 2 TV^2 falls as T^-0.5, slower than T^-2: refuted.
  rows.clear();
  for (int T : {64, 128, 256, 512}) rows.push_back(row(params(2, 2, T), 0.2 * std::pow(T, -0.25), false, 0));
  v = judge_claim("kl-rate", rows);
  EXPECT_EQ(v.figures[0].verdict, "refuted") << v.figures[0].why;
  EXPECT_NEAR(v.figures[0].lower.b, -0.5, kSlopeTol);
  // The same rows falling as T^-1.5 without kl_upper: inconclusive (the lower side cannot confirm).
  rows.clear();
  for (int T : {64, 128, 256, 512}) rows.push_back(row(params(2, 2, T), 0.5 * std::pow(T, -1.5), false, 0));
  v = judge_claim("kl-rate", rows);
  EXPECT_EQ(v.figures[0].verdict, "inconclusive") << v.figures[0].why;
}

TEST(ClaimVerdicts, DdimVsDdpmPerSampler) {
  // ddim's TV ~ d^0.8 on both sides (<= 1: confirmed); ddpm's lower bound ~ d^0.4 (> 0: refuted).
  std::vector<SweepRow> rows;
  int i = 0;
  for (int d : {2, 4, 8, 16}) {
    RunParams q = params(d, d, 128);
    q.sampler = SamplerKind::DDIM;
    rows.push_back(row(q, 0.01 * std::pow(d, 0.8) * jitter(i), true, 0.012 * std::pow(d, 0.8) * jitter(i + 1)));
    rows.push_back(row(params(d, d, 128), 0.01 * std::pow(d, 0.4) * jitter(i + 2), true, 0.03 * std::pow(d, 0.4)));
    ++i;
  }
  const ClaimVerdict v = judge_claim("ddim-vs-ddpm", rows);
  EXPECT_EQ(figure(v, "d-exponent of ddim's TV").verdict, "confirmed") << figure(v, "d-exponent of ddim's TV").why;
  EXPECT_EQ(figure(v, "d-exponent of ddpm's TV").verdict, "refuted") << figure(v, "d-exponent of ddpm's TV").why;
  EXPECT_NEAR(figure(v, "d-exponent of ddpm's TV").lower.b, 0.4, kSlopeTol);
  EXPECT_EQ(v.verdict, "refuted");
}

TEST(ClaimVerdicts, RobustnessIsAnAtLeastRule) {
  // TV(eps) - TV(0) as eps_score^a: a = 1.5 on the upper side confirms (>= 1), a lower side growing
  // as eps^0.5 beyond the exact-score run's upper bound refutes.
  auto rows_with = [](double a_lower, double a_upper, bool with_upper) {
    std::vector<SweepRow> rows;
    RunParams b = params(2, 2, 64);
    rows.push_back(row(b, 0.09, with_upper, 0.1));
    int i = 0;
    for (double e : {0.05, 0.1, 0.2, 0.4}) {
      RunParams q = b;
      q.score_error = ScoreErrorKind::Bias;
      q.eps = e;
      const double up0 = 0.1 * (1 + 1.645 * kUpperRelSe);  // the base's one-sided bound
      SweepRow r = row(q, up0 + 0.5 * std::pow(e, a_lower) * jitter(i), with_upper,
                       0.09 + 2.0 * std::pow(e, a_upper) * jitter(i + 1));
      r.eps_score = e;
      rows.push_back(r);
      ++i;
    }
    return rows;
  };
  ClaimVerdict v = judge_claim("robustness", rows_with(1.5, 1.5, true));
  EXPECT_EQ(v.verdict, "confirmed") << v.figures[0].why;
  EXPECT_NEAR(v.figures[0].upper.b, 1.5, kSlopeTol);
  v = judge_claim("robustness", rows_with(0.5, 0.5, true));
  EXPECT_EQ(v.verdict, "refuted") << v.figures[0].why;
  EXPECT_NEAR(v.figures[0].lower.b, 0.5, kSlopeTol);
  // Without bounds neither side exists (the lower side needs the exact-score run's upper bound).
  v = judge_claim("robustness", rows_with(1.5, 1.5, false));
  EXPECT_EQ(v.verdict, "inconclusive") << v.figures[0].why;
  EXPECT_FALSE(v.figures[0].lower.ok());
}

TEST(ClaimVerdicts, QuantitiesKeyLemmaAndSmoothness) {
  auto qrows = [](double trace_exp, double opnorm_exp, double moment) {
    std::vector<SweepRow> rows;
    int i = 0;
    for (int K : {2, 8, 32, 128}) {
      SweepRow r = row(params(8, K, 64), 0.01, false, 0);
      r.quantities.present = true;
      r.quantities.log_KT = std::log(64.0 * K);
      r.quantities.trace_p999 = 0.5 * std::pow(r.quantities.log_KT, trace_exp) * jitter(i);
      r.quantities.opnorm_max = std::pow(K, opnorm_exp) * jitter(i + 1);
      r.quantities.second_moment = moment;
      rows.push_back(r);
      ++i;
    }
    return rows;
  };
  // tr(I + J_t) ~ log(KT)^0.5: measured, inside the claim's exponent 1: confirmed.
  ClaimVerdict v = judge_claim("key-lemma", qrows(0.5, 0, 12));
  EXPECT_EQ(v.verdict, "confirmed") << v.figures[0].why;
  EXPECT_EQ(v.figures[0].side, "measured");
  EXPECT_NEAR(v.figures[0].upper.b, 0.5, kSlopeTol);
  v = judge_claim("key-lemma", qrows(2.0, 0, 12));
  EXPECT_EQ(v.verdict, "refuted") << v.figures[0].why;
  // ||J_t||_op over draws is only a lower side: flat in K is inconclusive, growing as K^0.3 refutes;
  // the closed-form second moment, constant in K, is exact: confirmed.
  v = judge_claim("smoothness", qrows(0.5, 0.0, 12));
  EXPECT_EQ(figure(v, "K-exponent of max ||J_t||_op").verdict, "inconclusive");
  EXPECT_EQ(figure(v, "K-exponent of max_t E|X_t|^2").verdict, "confirmed")
      << figure(v, "K-exponent of max_t E|X_t|^2").why;
  EXPECT_EQ(v.verdict, "inconclusive");
  v = judge_claim("smoothness", qrows(0.5, 0.3, 12));
  EXPECT_EQ(figure(v, "K-exponent of max ||J_t||_op").verdict, "refuted");
  EXPECT_NEAR(figure(v, "K-exponent of max ||J_t||_op").lower.b, 0.3, kSlopeTol);
  EXPECT_EQ(v.verdict, "refuted");
}

TEST(ClaimVerdicts, TheTableHasOneLinePerFigureAndTheClaimedColumn) {
  const ClaimVerdict v = judge_claim("theorem1", theorem1_rows(-0.3, -0.3, -0.2, -0.2, true));
  const std::string t = claims_table({v}, {"runs/claims/theorem1/claim.md"});
  EXPECT_EQ(t.rfind("claim | measured [95% CI] | claimed | verdict | details\n--- | --- | --- | --- | ---\n", 0), 0u) << t;
  std::size_t lines = 0;
  for (char c : t) lines += c == '\n';
  EXPECT_EQ(lines, 2u + v.figures.size()) << t;
  const std::string head = "theorem1 | T-exponent of TV / f(K, T): ";
  const std::size_t at = t.find(head);
  ASSERT_NE(at, std::string::npos) << t;
  EXPECT_NEAR(std::stod(t.substr(at + head.size())), -0.3, kSlopeTol) << t;
  EXPECT_NE(t.find("(upper) | <= 0 | confirmed | runs/claims/theorem1/claim.md"), std::string::npos) << t;
  EXPECT_NE(claim_markdown(v).find("# Claim theorem1: confirmed"), std::string::npos);
}

// Issue 15's "what is reported is exactly what the note says" for the claim verdicts: claim.md and
// claims --verdicts judge the rows the report reports (those keys.txt lists), not rows that
// results.jsonl keeps for runs of another version of the sweep. Here the kept rows would refute
// the claim (a lower bound growing as T^0.5 relative to f) and the sweep's own rows confirm it.
TEST(ClaimVerdicts, OnlyTheSweepsOwnRowsAreJudged) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(testing::TempDir()) / ("verdict_keys_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::vector<SweepRow> own = theorem1_rows(-0.3, -0.3, -0.2, -0.2, true);
  std::vector<SweepRow> other = theorem1_rows(0.5, 0.5, -0.2, -0.2, true);
  std::ofstream log(dir / "results.jsonl"), keys(dir / kSweepKeysFile);
  for (SweepRow r : other) {
    r.p.seed = 99;  // another run: another key
    r.key = r.p.key();
    log << row_to_json(r) << "\n";
  }
  for (const SweepRow& r : own) {
    log << row_to_json(r) << "\n";
    keys << r.key << "\n";
  }
  log.close();
  keys.close();
  const ClaimVerdict v = write_claim_verdict(dir.string(), 0.95);
  EXPECT_EQ(v.claim, "theorem1");
  EXPECT_EQ(v.rows, own.size());
  EXPECT_EQ(v.verdict, "confirmed");
  // Without keys.txt (a directory of an older build) every row counts, as in the report.
  fs::remove(dir / kSweepKeysFile);
  EXPECT_EQ(write_claim_verdict(dir.string(), 0.95).rows, own.size() + other.size());
  fs::remove_all(dir);
}
