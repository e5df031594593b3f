// gmmdiff: the CPU implementation of the bounds' chunk kernels (gmmdiff/bounds_kernels.hpp), the
// oracle for any other. The chunk's rows (continuations of the path bound, particles of the flow)
// live in host memory in double; each step runs OpenMP over fixed tiles of kBoundsTileRows rows,
// with single-threaded OpenBLAS dgemm inside each tile for the logits' and the score's products
// (as the CPU backend does). A chunk starts at a multiple of the unit, so its tiles are fixed sets
// of rows of the whole run (rows i M + m of the path bound, particles i of the flow): each tile's
// arithmetic, and every figure, is bitwise the same for any thread count and any chunk size.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "gmmdiff/bounds_kernels.hpp"

namespace gmmdiff {

/// Rows (continuations or particles) per tile.
constexpr std::size_t kBoundsTileRows = 256;

class CpuBoundsKernels final : public BoundsKernels {
 public:
  explicit CpuBoundsKernels(int threads);
  ~CpuBoundsKernels() override;
  std::string name() const override { return "cpu"; }
  std::string device_name() const override;
  /// Rows whose state (d + 2 values) fits a quarter of MemAvailable and at most 256 MiB.
  uint64_t max_rows(int d, int K) const override;

  /// 256 / gcd(256, M) outer draws: a chunk starting at a multiple of it starts at a tile.
  uint64_t path_unit(int M) const override;
  void path_begin(const PathPlan& plan, uint64_t first, uint64_t count) override;
  void path_step(const PathStep& st) override;
  void path_end(double* log_rm) override;

  uint64_t flow_unit() const override { return kBoundsTileRows; }
  void flow_begin(const FlowPlan& plan, uint64_t first, uint64_t count) override;
  void flow_step(const FlowStep& st) override;
  int flow_end(double* log_ratio) override;

  int threads() const { return threads_; }

 private:
  struct Scratch;
  int threads_;
  PathPlan path_;
  FlowPlan flow_;
  uint64_t first_ = 0, count_ = 0, rows_ = 0;
  int fold_ = 0;
  std::vector<double> X_;     // [rows, d] the chunk's continuations or particles
  std::vector<double> acc_;   // [rows] their running log-weights (path) or log q (flow)
  std::vector<uint64_t> pid_; // [rows] Philox particle of each continuation (path)
  std::vector<std::unique_ptr<Scratch>> scratch_;  // one per thread
};

}  // namespace gmmdiff
