// Test helpers shared by the tests that hold a backend against its oracle, the CPU backend.
#pragma once
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <sstream>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/model.hpp"
#include "util/sink_util.hpp"

namespace gmmdiff::test {

inline bool have_gpu() { return cuda_compiled() && !cuda_devices().empty(); }

#define GMMDIFF_REQUIRE_GPU()                                                                     \
  do {                                                                                            \
    if (!::gmmdiff::test::have_gpu()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)"; \
  } while (0)

/// Row-wise comparison: every value within tol * scale, scale = max(1, max |cpu value|) (NaN only
/// where the other is NaN too). A failure prints the worst row (its first 16 values).
inline void expect_rows_close(const std::vector<double>& cpu, const std::vector<double>& other, int d, double tol,
                              const char* other_name = "cuda") {
  ASSERT_EQ(cpu.size(), other.size());
  ASSERT_FALSE(cpu.empty());
  double scale = 1.0;
  for (double v : cpu) scale = std::max(scale, std::abs(v));
  const std::size_t rows = cpu.size() / static_cast<std::size_t>(d);
  std::size_t outliers = 0, worst = 0;
  double worst_err = -1;
  for (std::size_t i = 0; i < rows; ++i) {
    double row_err = 0;
    for (int j = 0; j < d; ++j) {
      const std::size_t at = i * d + j;
      const double e = std::isnan(cpu[at]) != std::isnan(other[at]) ? std::numeric_limits<double>::infinity()
                       : std::isnan(cpu[at])                        ? 0.0
                                                                    : std::abs(cpu[at] - other[at]);
      row_err = std::max(row_err, e);
    }
    if (row_err > worst_err) {
      worst_err = row_err;
      worst = i;
    }
    if (row_err > tol * scale) ++outliers;
  }
  std::ostringstream worst_row;
  for (int j = 0; j < std::min(d, 16); ++j)
    worst_row << "\n  j=" << j << " cpu " << cpu[worst * d + j] << " " << other_name << " " << other[worst * d + j];
  EXPECT_EQ(outliers, 0u) << outliers << " of " << rows << " rows differ by more than " << tol << " x scale "
                          << scale << "; worst row " << worst << " (max abs diff " << worst_err
                          << "):" << worst_row.str();
}

}  // namespace gmmdiff::test
