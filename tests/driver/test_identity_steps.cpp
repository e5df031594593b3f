// Identity steps (1 - alpha_t = 0) are skipped without changing any result, and the realised
// eps_score is the same figure on any number of threads.
#include <gtest/gtest.h>
#include <omp.h>

#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "gmmdiff/sampler.hpp"
#include "gmmdiff/schedule.hpp"
#include "util/sink_util.hpp"

using namespace gmmdiff;

namespace {

/// Forwards to a CPU backend and counts the steps it is asked to compute.
class CountingBackend : public Backend {
 public:
  explicit CountingBackend(const std::string& path) : be_(make_backend("cpu", 2)) { be_->set_step_path(path); }
  std::string name() const override { return be_->name(); }
  std::string device_name() const override { return be_->device_name(); }
  std::size_t max_chunk_rows(const RunShape& s) const override { return be_->max_chunk_rows(s); }
  void begin(const RunShape& s, const Mixture& m) override { be_->begin(s, m); }
  void init_chunk(uint64_t first, std::size_t rows) override {
    be_->init_chunk(first, rows);
    sync();
  }
  void fill_target(uint64_t first, std::size_t rows) override {
    be_->fill_target(first, rows);
    sync();
  }
  void upload_chunk(const double* h, uint64_t first, std::size_t rows) override {
    be_->upload_chunk(h, first, rows);
    sync();
  }
  void step(const StepCoeffs& c) override {
    ++steps;
    if (is_identity_step(c)) ++identity_computed;
    be_->step(c);
  }
  void download(void* host) const override { be_->download(host); }
  uint64_t count_nonfinite_rows() const override { return be_->count_nonfinite_rows(); }
  void accumulate_histograms(const HistogramSpec& s, HistogramCounts& c) override { be_->accumulate_histograms(s, c); }
  int steps = 0, identity_computed = 0;

 private:
  void sync() {
    rows_ = be_->rows();
    first_ = be_->first();
  }
  std::unique_ptr<Backend> be_;
};

Mixture two_blobs(int d) {
  PresetParams pp;
  pp.name = "random-sphere";
  pp.d = d;
  pp.K = 5;
  pp.radius = 2.0;
  pp.sd = {0.8, 1.0, 1.2, 0.9, 1.1};
  pp.seed = 3;
  return make_preset(pp);
}

}  // namespace

TEST(IdentitySteps, ScalarsSayWhichStepsLeaveParticlesAlone) {
  ScheduleParams sp;
  sp.name = "lcw";
  sp.T = 16;  // lcw with T = 16: 8 of the steps t = 16..2, and t = 1, have 1 - alpha_t = 0 in double
  const Schedule s = make_schedule(sp);
  for (SamplerKind sk : {SamplerKind::DDPM, SamplerKind::DDIM}) {
    SampleOptions o;
    o.sampler = sk;
    const std::vector<bool> id = identity_steps(s, o);
    const Mixture m = two_blobs(3);
    int n = 0;
    for (int t = 1; t <= s.T; ++t) {
      const StepCoeffs c = step_coeffs(m, s, t, o, {});
      EXPECT_EQ(id[t], is_identity_step(c)) << "t = " << t;
      const double oma_t = (s.one_minus_abar[t] - s.one_minus_abar[t - 1]) / s.abar[t - 1];
      EXPECT_EQ(id[t], oma_t == 0.0) << "t = " << t << ": 1 - alpha_t = " << oma_t;
      n += id[t] && t >= 2 ? 1 : 0;
    }
    EXPECT_EQ(n, 8) << to_string(sk);
  }
  StepCoeffs tiny;
  tiny.kappa = 1e-300;
  tiny.inv_sqrt_alpha = 1;
  EXPECT_FALSE(is_identity_step(tiny));
}

// The sampler with its identity steps skipped gives, bit for bit, what computing every step gives.
TEST(IdentitySteps, SkippedWithoutChangingAnyResult) {
  for (const char* path : {"fused", "products"})
    for (Precision prec : {Precision::FP32, Precision::FP64})
      for (ScoreErrorKind err : {ScoreErrorKind::None, ScoreErrorKind::Gaussian, ScoreErrorKind::Bias}) {
        const std::string what = std::string(path) + " " + to_string(prec) + " " + to_string(err);
        const Mixture m = two_blobs(7);
        ScheduleParams sp;
        sp.name = "lcw";
        sp.T = 16;
        const Schedule s = make_schedule(sp);
        SampleOptions o;
        o.n = 300;
        o.seed = 5;
        o.stop = 0;  // t = 1 is an identity step too
        o.precision = prec;
        o.score_error = ScoreError{err, 0.3};
        o.eps_samples = 8;
        CountingBackend be(path);
        test::PlacedSink sink(o.n, m.d, prec);
        const RunSummary r = run_sampler(m, s, o, be, sink);
        EXPECT_EQ(r.identity_steps, 9) << what;
        EXPECT_EQ(be.identity_computed, 0) << what;
        EXPECT_EQ(be.steps, 16 - 9) << what;

        // Every step computed, identity steps included.
        CountingBackend all(path);
        all.begin(run_shape(m, prec, o.seed, o.n), m);
        all.init_chunk(0, o.n);
        const std::vector<double> bias_unit =
            err == ScoreErrorKind::Bias ? bias_direction(m.d, o.seed) : std::vector<double>();
        for (int t = s.T; t > o.stop; --t) all.step(step_coeffs(m, s, t, o, bias_unit));
        EXPECT_EQ(all.identity_computed, 9) << what;
        const std::vector<double> want = test::download_double(all, m.d, prec);
        ASSERT_EQ(want.size(), sink.y.size());
        EXPECT_EQ(std::memcmp(want.data(), sink.y.data(), want.size() * sizeof(double)), 0)
            << what << ": skipping the identity steps changed the particles";
      }
}

// The eps_score measurement runs on opt.threads threads and sums in a fixed order.
TEST(EpsScore, SameFigureOnAnyNumberOfThreads) {
  const Mixture m = two_blobs(6);
  ScheduleParams sp;
  sp.T = 40;
  const Schedule s = make_schedule(sp);
  for (ScoreErrorKind err : {ScoreErrorKind::Scale, ScoreErrorKind::Means, ScoreErrorKind::Weights,
                             ScoreErrorKind::Gaussian, ScoreErrorKind::Bias}) {
    SampleOptions o;
    o.seed = 9;
    o.eps_samples = 301;
    o.score_error = ScoreError{err, 0.2};
    o.threads = 1;
    const double one = measure_eps_score(m, s, o);
    EXPECT_GT(one, 0.0) << to_string(err);
    for (int th : {2, 3, 7}) {
      o.threads = th;
      const double many = measure_eps_score(m, s, o);
      EXPECT_EQ(std::memcmp(&one, &many, sizeof one), 0)
          << to_string(err) << ": " << one << " on 1 thread, " << many << " on " << th;
    }
  }
}

// Making a CPU backend leaves OpenMP's default thread count as it was (OpenBLAS is told per task).
TEST(CpuBackendThreads, MakingOneLeavesOpenMPDefaultAlone) {
  const int before = omp_get_max_threads();
  auto be = make_backend("cpu", 1);
  EXPECT_EQ(omp_get_max_threads(), before);
  // and a products step (OpenBLAS inside our region) does not change it either
  const Mixture m = two_blobs(4);
  be->set_step_path("products");
  be->begin(run_shape(m, Precision::FP64, 1, 256), m);
  be->init_chunk(0, 256);
  ScheduleParams sp;
  sp.T = 50;
  const Schedule s = make_schedule(sp);
  be->step(step_coeffs(m, s, 30, SampleOptions(), {}));
  EXPECT_EQ(omp_get_max_threads(), before);
}
