// The operating system's view (host/core/system.hpp): /proc/stat's CPU line parsed field by field,
// the steal percentage of an interval, and what is unknown said as unknown (NaN), not as 0.
#include <gtest/gtest.h>

#include <cmath>

#include "core/system.hpp"

using namespace gmmdiff;

TEST(System, ParsesTheCpuLineOfProcStat) {
  // user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user)
  const CpuTicks t = parse_cpu_ticks("cpu  7856433 47235 553491 777066 3751 0 1537 13231 50 7");
  ASSERT_TRUE(t.known);
  EXPECT_EQ(t.steal, 13231u);
  EXPECT_EQ(t.total, 7856433u + 47235 + 553491 + 777066 + 3751 + 0 + 1537 + 13231);
  // A kernel without the steal field, one CPU's line, and junk are not read as a zero steal.
  EXPECT_FALSE(parse_cpu_ticks("cpu  1 2 3 4 5 6 7").known);
  EXPECT_FALSE(parse_cpu_ticks("cpu0 1 2 3 4 5 6 7 8").known);
  EXPECT_FALSE(parse_cpu_ticks("intr 1 2 3 4 5 6 7 8").known);
  EXPECT_FALSE(parse_cpu_ticks("").known);
}

TEST(System, StealPercentOfAnInterval) {
  CpuTicks a, b;
  a.known = b.known = true;
  a.total = 1000;
  a.steal = 10;
  b.total = 1400;  // 400 ticks of all CPUs, 30 of them stolen
  b.steal = 40;
  EXPECT_DOUBLE_EQ(steal_percent(a, b), 7.5);
  EXPECT_TRUE(std::isnan(steal_percent(a, a))) << "no tick passed";
  EXPECT_TRUE(std::isnan(steal_percent(b, a))) << "time went backwards";
  CpuTicks unknown;
  EXPECT_TRUE(std::isnan(steal_percent(unknown, b)));
  EXPECT_TRUE(std::isnan(steal_percent(a, unknown)));
}

TEST(System, ThisMachineSaysItsTicksAndMemory) {
  const CpuTicks t = cpu_ticks();
  if (!t.known) GTEST_SKIP() << "no /proc/stat here";
  EXPECT_GT(t.total, 0u);
  EXPECT_LE(t.steal, t.total);
  EXPECT_GT(mem_available_bytes(), 0u) << "a Linux with /proc/stat has /proc/meminfo";
  EXPECT_EQ(mem_budget_bytes(), mem_available_bytes());
}
