// Schedules: the recursions that define them, monotonicity, ranges, files, bad input.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/schedule.hpp"

using namespace gmmdiff;

namespace {
constexpr double kRecursionRelTol = 1e-13;  // double rounding over a few operations
constexpr double kOneMinusAbarAbsTol = 1e-14;  // a few ulps of 1 after T products

Schedule sched(const std::string& name, int T, double c0 = 2, double c1 = 10) {
  ScheduleParams p;
  p.name = name;
  p.T = T;
  p.c0 = c0;
  p.c1 = c1;
  return make_schedule(p);
}
}  // namespace

TEST(Schedule, LcwMatchesItsRecursionAndEndpoint) {
  for (int T : {50, 100, 256, 1000, 4096})
    for (double c0 : {1.0, 2.0}) {
      SCOPED_TRACE(testing::Message() << "T=" << T << " c0=" << c0);
      const Schedule s = sched("lcw", T, c0, 10);
      EXPECT_NEAR(s.abar[T], std::pow(double(T), -c0), kRecursionRelTol * s.abar[T]);
      const double c = 10 * std::log(double(T)) / T;
      for (int t = T; t >= 2; --t) {
        const double want = s.abar[t] + c * s.abar[t] * (1 - s.abar[t]);
        if (c * s.abar[t] >= 1) break;  // clipped region (documented)
        ASSERT_NEAR(s.abar[t - 1], want, kRecursionRelTol * want) << "t=" << t;
      }
      EXPECT_EQ(s.abar[0], 1.0);
    }
}

TEST(Schedule, LiYanMatchesItsRecursion) {
  const int T = 1000;
  const Schedule s = sched("li-yan", T);
  const double c = 10 * std::log(double(T)) / T, b1 = std::pow(double(T), -2.0);
  EXPECT_NEAR(1 - s.alpha[1], b1, 1e-15);
  for (int t = 1; t < T; ++t) {
    const double beta = c * std::min(b1 * std::pow(1 + c, t), 1.0);
    ASSERT_NEAR(1 - s.alpha[t + 1], std::min(beta, 0.999), 1e-14) << "t=" << t;
  }
}

TEST(Schedule, LinearAndCosineEndpoints) {
  const Schedule l = sched("linear", 1000);
  EXPECT_NEAR(1 - l.alpha[1], 1e-4, 1e-15);
  EXPECT_NEAR(1 - l.alpha[1000], 0.02, 1e-15);
  const Schedule c = sched("cosine", 1000);
  auto f = [](double t) { double x = std::cos((t / 1000 + 0.008) / 1.008 * M_PI / 2); return x * x; };
  EXPECT_NEAR(c.abar[500], f(500) / f(0), 1e-12);
}

TEST(Schedule, AllAreMonotoneWithAlphaInRange) {
  for (const std::string name : {"lcw", "li-yan", "linear", "cosine"})
    for (int T : {1, 2, 3, 5, 10, 64, 1000, 10000}) {
      SCOPED_TRACE(testing::Message() << name << " T=" << T);
      const Schedule s = sched(name, T);
      ASSERT_EQ(static_cast<int>(s.alpha.size()), T + 1);
      for (int t = 1; t <= T; ++t) {
        ASSERT_GT(s.alpha[t], 0.0);
        ASSERT_LE(s.alpha[t], 1.0);
        ASSERT_LE(s.abar[t], s.abar[t - 1]);
        ASSERT_GT(s.abar[t], 0.0);
        ASSERT_NEAR(s.one_minus_abar[t], 1 - s.abar[t], kOneMinusAbarAbsTol) << "t=" << t;
        ASSERT_GE(s.one_minus_abar[t], 0.0);
      }
    }
}

TEST(Schedule, OneMinusAbarKeepsDigitsNearOne) {
  // With c0 large the first abar is within ~1e-16 of 1; 1 - abar_1 must stay relatively accurate.
  const Schedule s = sched("li-yan", 1000, 5.3);
  const double b1 = std::pow(1000.0, -5.3);  // 1.2e-16
  EXPECT_NEAR(s.one_minus_abar[1], b1, 1e-3 * b1);
}

TEST(Schedule, OneMinusAlphaKeepsDigitsAtBothEnds) {
  // Near abar = 1 (lcw's first steps, 1 - alpha_t near 1e-21) against lcw's own recursion, and
  // where abar is tiny (li-yan and linear at small T reach abar < 1e-16, where 1 - abar_{t-1} and
  // 1 - abar_t both round to 1) against the family's beta.
  constexpr double kBetaRelTol = 1e-12;
  const Schedule l = sched("lcw", 256);
  const double c = 10 * std::log(256.0) / 256;
  for (int t = 2; t <= 256; ++t) {
    const double want = c * l.abar[t] * l.one_minus_abar[t] / l.abar[t - 1];  // abar_{t-1} - abar_t = c abar_t (1 - abar_t)
    EXPECT_NEAR(one_minus_alpha(l, t), want, kBetaRelTol * want) << "lcw t=" << t;
  }
  for (const auto& [name, T] : std::vector<std::pair<std::string, int>>{{"li-yan", 64}, {"linear", 12}}) {
    const Schedule s = sched(name, T);
    EXPECT_LT(s.abar[T], 1e-12) << name;
    for (int t = 1; t <= T; ++t) {
      const double want = 1.0 - s.alpha[t];
      EXPECT_NEAR(one_minus_alpha(s, t), want, kBetaRelTol * std::max(want, 1e-4)) << name << " t=" << t;
      EXPECT_GT(one_minus_alpha(s, t), 0.0) << name << " t=" << t;
    }
  }
}

TEST(Schedule, FromFiles) {
  const std::string js = testing::TempDir() + "/sched_alpha.json";
  std::ofstream(js) << "{\"alpha\": [0.9, 0.8, 0.5]}";
  ScheduleParams p;
  p.name = "file";
  p.file = js;
  Schedule s = make_schedule(p);
  ASSERT_EQ(s.T, 3);
  EXPECT_NEAR(s.abar[3], 0.36, 1e-15);
  const std::string txt = testing::TempDir() + "/sched_abar.txt";
  std::ofstream(txt) << "0.9\n0.72 0.36\n";
  p.file = txt;
  EXPECT_THROW(make_schedule(p), Error);  // text needs --schedule-kind
  p.file_kind = "abar";
  s = make_schedule(p);
  EXPECT_NEAR(s.alpha[2], 0.8, 1e-15);
  EXPECT_NEAR(s.alpha[3], 0.5, 1e-15);
  std::ofstream(txt) << "0.9 0.95\n";  // increasing abar
  EXPECT_THROW(make_schedule(p), Error);
  std::ofstream(js) << "{\"alpha\": [0.9, 1.5]}";
  p.file = js;
  EXPECT_THROW(make_schedule(p), Error);
}

TEST(Schedule, BadInput) {
  EXPECT_THROW(sched("lcw", 0), Error);
  EXPECT_THROW(sched("nope", 10), Error);
  EXPECT_THROW(sched("lcw", 10, -1), Error);
  try {
    sched("quadratic", 10);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("allowed"), std::string::npos) << e.what();
  }
}

namespace {
std::string schedule_error(const ScheduleParams& p) {
  try {
    make_schedule(p);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// Issue 15: a schedule file is read like every other input: a repeated key, a --schedule-kind
// that contradicts the file's key, and a FIFO (which would block) are each one clear error.
TEST(Schedule, FileInputIsCheckedLikeEveryOther) {
  const std::string dir = testing::TempDir();
  ScheduleParams p;
  p.name = "file";
  p.file = dir + "/sched_dup.json";
  std::ofstream(p.file) << R"({"alpha": [0.9, 0.8], "alpha": [0.5]})";
  EXPECT_NE(schedule_error(p).find("duplicate key \"alpha\""), std::string::npos) << schedule_error(p);
  std::ofstream(p.file) << R"({"abar": [0.9, 0.8]})";
  p.file_kind = "alpha";
  EXPECT_NE(schedule_error(p).find("--schedule-kind alpha but the file's key is 'abar'"), std::string::npos)
      << schedule_error(p);
  p.file_kind = "auto";
  EXPECT_EQ(schedule_error(p), "");
  p.file = dir + "/sched_fifo.txt";
  ::unlink(p.file.c_str());
  ASSERT_EQ(::mkfifo(p.file.c_str(), 0644), 0);
  p.file_kind = "alpha";
  EXPECT_NE(schedule_error(p).find("is a FIFO, not a schedule file"), std::string::npos) << schedule_error(p);
  ::unlink(p.file.c_str());
}

// Issue 15: an abar that underflows a double says so (it said "alpha[1] = 0 is outside (0, 1]").
TEST(Schedule, UnderflowingAbarIsNamedAsSuch) {
  ScheduleParams p;
  p.name = "lcw";
  p.T = 1000;
  p.c0 = 2000;  // abar_T = 1000^-2000 = e^-13816
  const std::string e = schedule_error(p);
  EXPECT_NE(e.find("abar_T = T^-c0 = 1000^-2000"), std::string::npos) << e;
  EXPECT_NE(e.find("underflows a double"), std::string::npos) << e;
  EXPECT_EQ(e.find("alpha[1] = 0"), std::string::npos) << e;
  p.c0 = 100;  // e^-691: still a normal double
  EXPECT_EQ(schedule_error(p), "");
  const std::string f = testing::TempDir() + "/sched_underflow.json";
  std::ofstream(f) << R"({"alpha": [1e-200, 1e-200, 0.5]})";
  ScheduleParams q;
  q.name = "file";
  q.file = f;
  const std::string e2 = schedule_error(q);
  EXPECT_NE(e2.find("abar_2 = alpha_1 x ... x alpha_2 = 0 underflows a double"), std::string::npos) << e2;
}
