// The TV plan (host/tv/plan.cpp): bins from the sample size, statistics skipped or refused, bad
// options, the flagged exact reference sample where a target law has no closed form, and the
// choice of the best statistic.
#include "tv/plan_detail.hpp"

#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/tv.hpp"
#include "util/sample_util.hpp"
#include "util/tv_util.hpp"

namespace gmmdiff {
namespace {

using test::diagonal_mixture;
using test::draw;
using test::isotropic;
using test::kNullFloorBand;
using tv_detail::build_plan;

TEST(TvPlan, BinsFromSampleSize) {
  const Mixture m = isotropic(2, {{1, 0}}, {1.0}, {1.0});
  TvOptions o;
  o.stats = "axes:1,means2d";
  struct Case {
    uint64_t n;
    int b1, b2;
  };
  for (const Case c : {Case{10, 8, 4}, Case{1000000, 100, 10}, Case{123456, 50, 8}, Case{uint64_t(1e12), 1000, 64}}) {
    SCOPED_TRACE(testing::Message() << "n = " << c.n);
    TvPlan plan(m, o, c.n);
    EXPECT_EQ(plan.bins_1d(), c.b1);
    EXPECT_EQ(plan.bins_2d_axis(), c.b2);
    EXPECT_EQ(plan.spec().edges[0].size(), static_cast<std::size_t>(c.b1 + 1));
    EXPECT_EQ(build_plan(m, o, c.n).stats[1].target_mass.size(), static_cast<std::size_t>(c.b2 * c.b2));
  }
  o.bins = 30;
  TvPlan plan(m, o, 100);
  EXPECT_EQ(plan.bins_1d(), 30);
  EXPECT_EQ(plan.bins_2d_axis(), 6);
}

TEST(TvPlan, HoldsWhatBuildPlanBuildsAndCopiesAreIndependent) {
  // TvPlan is a handle on build_plan's result: the same spec, names, notes and bins. A copy holds
  // its own masses: preparing the reference of one leaves the other unprepared, and a copy of a
  // prepared plan gives the figures of tv_of_sample, bit for bit.
  const Mixture m = diagonal_mixture();
  TvOptions o;
  o.stats = "means,means2d,radial,random:2";
  o.reference_n = 5000;
  o.seed = 9;
  const uint64_t n = 3000;
  const tv_detail::Plan built = build_plan(m, o, n);
  TvPlan plan(m, o, n);
  EXPECT_EQ(plan.spec().d, built.spec.d);
  EXPECT_EQ(plan.spec().directions, built.spec.directions);
  EXPECT_EQ(plan.spec().radial, built.spec.radial);
  EXPECT_EQ(plan.spec().center, built.spec.center);
  EXPECT_EQ(plan.spec().edges, built.spec.edges);
  EXPECT_EQ(plan.spec().pairs, built.spec.pairs);
  EXPECT_EQ(plan.names(), built.names);
  EXPECT_EQ(plan.notes(), built.notes);
  EXPECT_EQ(plan.bins_1d(), built.bins1);
  EXPECT_EQ(plan.bins_2d_axis(), built.bins2);

  const TvPlan unprepared = plan;
  auto be = make_backend("cpu", 0);
  plan.prepare_reference(*be, Precision::FP64);
  const std::vector<double> y = draw(m, n, 5);
  be->begin(run_shape(m, Precision::FP64, o.seed, static_cast<std::size_t>(n)), m);
  be->upload_chunk(y.data(), 0, static_cast<std::size_t>(n));
  HistogramCounts counts = HistogramCounts::zeros(plan.spec());
  be->accumulate_histograms(plan.spec(), counts);
  EXPECT_THROW(unprepared.evaluate(counts), Error);  // its reference has not been drawn
  TvPlan prepared = unprepared;
  prepared = plan;
  const TvReport a = prepared.evaluate(counts), b = tv_of_sample(m, y.data(), n, o, *be);
  ASSERT_EQ(a.stats.size(), b.stats.size());
  for (std::size_t i = 0; i < a.stats.size(); ++i) {
    SCOPED_TRACE(a.stats[i].name);
    EXPECT_EQ(a.stats[i].name, b.stats[i].name);
    EXPECT_EQ(a.stats[i].reference_n, b.stats[i].reference_n);
    EXPECT_EQ(a.stats[i].tv, b.stats[i].tv);
    EXPECT_EQ(a.stats[i].tv_corrected, b.stats[i].tv_corrected);
    EXPECT_EQ(a.stats[i].ci_lo, b.stats[i].ci_lo);
    EXPECT_EQ(a.stats[i].ci_hi, b.stats[i].ci_hi);
  }
}

TEST(TvPlan, RankZeroMeansAreSkippedOrRefused) {
  const Mixture m = isotropic(3, {{0, 0, 0}, {0, 0, 0}}, {1.0, 2.0}, {0.5, 0.5});
  TvOptions o;
  o.stats = "means,means2d,radial";
  const tv_detail::Plan plan = build_plan(m, o, 1000);
  ASSERT_EQ(plan.stats.size(), 1u);
  EXPECT_EQ(plan.stats[0].name, "radial");
  EXPECT_EQ(plan.notes.size(), 2u);
  EXPECT_EQ(TvPlan(m, o, 1000).notes(), plan.notes);
  o.stats = "means";
  EXPECT_THROW(TvPlan(m, o, 1000), Error);
}

TEST(TvPlan, BadOptionsAreRefused) {
  const Mixture m = isotropic(2, {{1, 0}}, {1.0}, {1.0});
  auto plan_with = [&](const std::string& stats, int bins, int boot, uint64_t n) {
    TvOptions o;
    o.stats = stats;
    o.bins = bins;
    o.bootstrap = boot;
    TvPlan p(m, o, n);
  };
  EXPECT_THROW(plan_with("axes", 1, 200, 100), Error);
  EXPECT_THROW(plan_with("axes", 0, 5, 100), Error);
  EXPECT_THROW(plan_with("axes:3", 0, 200, 100), Error);
  EXPECT_THROW(plan_with("radial,radial:0", 0, 200, 100), Error);
  EXPECT_THROW(plan_with("axes", 0, 200, 0), Error);
  EXPECT_NO_THROW(plan_with("radial,radial", 0, 200, 100));
}

TEST(TvPlan, DiagonalTargetUsesAFlaggedReferenceSample) {
  const Mixture m = diagonal_mixture();
  TvOptions o;
  o.stats = "means,means2d,radial";
  o.reference_n = 60000;
  const uint64_t n = 40000;
  TvPlan plan(m, o, n);
  for (const auto& s : build_plan(m, o, n).stats) {
    SCOPED_TRACE(s.name);
    EXPECT_EQ(s.exact, s.dims == 1 && s.name != "radial");  // projections are exact 1-D GMMs
  }
  HistogramCounts zeros = HistogramCounts::zeros(plan.spec());
  zeros.rows = 1;
  EXPECT_THROW(plan.evaluate(zeros), Error);  // the reference has not been drawn
  const std::vector<double> y = draw(m, n, 21);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(m, y.data(), n, o, *be);
  for (const auto& r : rep.stats) {
    SCOPED_TRACE(testing::Message() << r.name << ": tv " << r.tv << ", floor " << r.floor << ", CI [" << r.ci_lo
                                    << ", " << r.ci_hi << "]");
    if (r.exact_target) {
      EXPECT_EQ(r.reference_n, 0u);
    } else {
      EXPECT_EQ(r.reference_n, 60000u);
    }
    EXPECT_NEAR(r.tv / r.floor, 1.0, kNullFloorBand);
    EXPECT_FALSE(r.resolved);
  }
  // A diagonal model whose components are isotropic in fact keeps the exact radial law.
  Mixture iso = m;
  iso.var_diag = {2, 2, 2, 0.5, 0.5, 0.5};
  o.stats = "radial";
  EXPECT_TRUE(build_plan(iso, o, n).stats[0].exact);
}

TEST(TvPlan, BestIsTheLargestCorrectedTv) {
  const Mixture target = isotropic(2, {{2, 0}}, {1.0}, {1.0});
  const Mixture law = isotropic(2, {{2, 0}}, {1.3}, {1.0});  // a variance error: seen by every stat
  TvOptions o;
  o.stats = "axes:2,radial";
  const uint64_t n = 50000;
  const std::vector<double> y = draw(law, n, 4);
  auto be = make_backend("cpu", 0);
  const TvReport rep = tv_of_sample(target, y.data(), n, o, *be);
  for (const auto& r : rep.stats) EXPECT_LE(r.tv_corrected, rep.max().tv_corrected) << r.name;
}

}  // namespace
}  // namespace gmmdiff
