// gmmdiff: the CUDA backend's plan for a run, with no CUDA types (the tests run it on any machine):
// which step path a request resolves to on a device, what the path reports, what a chunk costs in
// device memory on each path, and so how many rows a chunk may hold (docs/cuda.md, "Memory").
#pragma once
#include <algorithm>
#include <climits>
#include <cstddef>
#include <string>

#include "cuda/kernels/fused_lane.hpp"
#include "cuda/kernels/gemm_plan.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::gpu {

enum class StepPath { Products, Fused };

/// A resolved request: the path and, on the products path, how float products are computed.
struct PathChoice {
  StepPath path = StepPath::Products;
  GemmMath math = GemmMath::Exact;
};

/// Device memory for one batch of fused steps' coefficients (a batch is one launch).
constexpr std::size_t kFusedCoeffBatchBytes = std::size_t{16} << 20;
/// Device memory the histogram sub-batches may use for their bins (bounds the batch).
constexpr std::size_t kHistogramWorkspaceBytes = std::size_t{64} << 20;
/// Left free for cuBLAS's workspace and the runtime.
constexpr std::size_t kReserveBytes = std::size_t{64} << 20;
/// The share of the free device memory a run plans to use.
constexpr double kMemoryFraction = 0.8;
/// "auto" takes the fused path when the coefficients fit shared memory (fused_staged) and
/// K <= kAutoFusedMaxK or d <= kAutoFusedMaxSmallD (docs/cuda.md, "How auto chooses").
constexpr int kAutoFusedMaxK = 64;
constexpr int kAutoFusedMaxSmallD = 32;

/// The names set_step_path accepts.
inline bool is_step_path_name(const std::string& r) {
  return r == "auto" || r == "products" || r == "fused" || r == "products-tf32" || r == "products-bf16" ||
         r == "products-bf16x9";
}

inline std::size_t real_bytes(Precision p) { return p == Precision::FP32 ? 4 : 8; }

/// Whether "auto" takes the fused path for a run of this shape. Napkin maths (docs/cuda.md):
/// float32, per elt-step, the products path moves about 4 (6 + 4 K / d) bytes (Y, S1 and the
/// N x K logits/weights several times over) and does 4 K FLOP at cuBLAS's rate; the fused path
/// moves 8 / S bytes and does 4 K FLOP plus one exp and log2(G) shuffles per (particle, k) on
/// CUDA cores. The products path is memory-bound below K ~ 45 for any d and its N x K traffic
/// dominates whenever K / d is large: the fused path for K <= 64 at any d it holds, and for any K
/// when d <= 32. Both thresholds are to be measured (docs/cuda.md).
inline bool auto_picks_fused(const RunShape& shape) {
  if (fused_plan(shape.d).G == 0 || shape.K < 1) return false;
  const FusedLayout L = make_fused_layout(shape.K, shape.d, shape.cov == Covariance::Diagonal);
  if (!fused_staged(L, real_bytes(shape.precision))) return false;
  return shape.K <= kAutoFusedMaxK || shape.d <= kAutoFusedMaxSmallD;
}

/// The path and product mode a request (is_step_path_name) takes for a run of this shape on a
/// device of compute capability cc_major.minor. Throws gmmdiff::Error, naming what is possible,
/// for "fused" when d > kFusedMaxD and for a tensor-core mode the device does not have (a float64
/// run keeps exact DGEMMs whatever the mode: the mode is then not refused, it does not apply).
inline PathChoice resolve_step_path(const std::string& request, const RunShape& shape, int cc_major, int cc_minor) {
  GMMDIFF_EXPECTS(is_step_path_name(request), "--path ", request, ": the cuda backend has auto, products, fused, "
                  "products-tf32, products-bf16 and products-bf16x9");
  PathChoice c;
  if (request == "fused") {
    GMMDIFF_EXPECTS(fused_plan(shape.d).G != 0, "--path fused: the cuda backend's fused step holds d <= ",
                    kFusedMaxD, " coordinates per particle, the run has d = ", shape.d,
                    " (use --path auto or products)");
    c.path = StepPath::Fused;
    return c;
  }
  if (request == "auto") {
    c.path = auto_picks_fused(shape) ? StepPath::Fused : StepPath::Products;
    return c;
  }
  c.path = StepPath::Products;
  if (request == "products") return c;
  GMMDIFF_EXPECTS(request != "products-bf16x9" || bf16x9_supported(cc_major, cc_minor), "--path ", request,
                  ": cuBLAS's BF16x9 emulation needs a device of compute capability 10.0 or later (Blackwell); "
                  "this one is ", cc_major, ".", cc_minor, " (use products or products-tf32)");
  GMMDIFF_EXPECTS(tensor_core_supported(cc_major, cc_minor), "--path ", request,
                  ": TF32 and BF16 products need a device of compute capability 8.0 or later; this one is ",
                  cc_major, ".", cc_minor, " (use products)");
  if (shape.precision != Precision::FP32) return c;  // float64 runs keep exact DGEMMs
  if (request == "products-tf32") c.math = GemmMath::TF32;
  else if (request == "products-bf16") c.math = GemmMath::BF16;
  else c.math = GemmMath::BF16x9;
  return c;
}

/// What Backend::step_path() reports for a path that ran.
inline std::string path_name(const PathChoice& c) {
  if (c.path == StepPath::Fused) return "cuda-fused";
  switch (c.math) {
    case GemmMath::TF32: return "cuda-gemm-tf32";
    case GemmMath::BF16: return "cuda-gemm-bf16";
    case GemmMath::BF16x9: return "cuda-gemm-bf16x9";
    case GemmMath::Exact: break;
  }
  return "cuda-gemm";
}

/// Fused steps per coefficient batch (one launch) for layout L in values of R bytes.
inline std::size_t fused_batch_steps(const FusedLayout& L, std::size_t R) {
  return std::max<std::size_t>(1, kFusedCoeffBatchBytes / (L.stride * R));
}

/// Device memory of a run: `per_row` bytes for each chunk row and `fixed` bytes whatever the rows.
struct ChunkCost {
  std::size_t per_row = 0;
  std::size_t fixed = 0;
};

/// What a chunk costs on a path (docs/cuda.md, "Memory"), in the run's precision (R bytes a value):
///   both paths   per row: Y (d values); fixed: the target's means, sds and cumulative weights
///                (double), the histogram workspace and the reserve;
///   products     per row, also: S1 (d), the logits/weights G (K), s2 (1), and for diagonal
///                components Ysq/S2 (d) and G2 (K); fixed, also: P, Q, bias, bias_dir;
///   fused        fixed, also: one batch of packed coefficients (at least one step) and its scalars.
inline ChunkCost chunk_cost(const RunShape& shape, StepPath path) {
  const std::size_t d = static_cast<std::size_t>(shape.d), K = static_cast<std::size_t>(shape.K);
  const std::size_t R = real_bytes(shape.precision);
  const bool diag = shape.cov == Covariance::Diagonal;
  ChunkCost c;
  c.fixed = (2 * K * d + K) * sizeof(double) + kHistogramWorkspaceBytes + kReserveBytes;
  if (path == StepPath::Products) {
    c.per_row = (2 * d + K + 1 + (diag ? d + K : 0)) * R;
    c.fixed += (K * d + (diag ? K * d : K) + K + d) * R;
  } else {
    c.per_row = d * R;
    const FusedLayout L = make_fused_layout(shape.K, shape.d, diag);
    const std::size_t steps = fused_batch_steps(L, R);
    const std::size_t info = R == 4 ? sizeof(FusedStepInfo<float>) : sizeof(FusedStepInfo<double>);
    c.fixed += steps * (L.stride * R + info);
  }
  return c;
}

/// The rows a chunk may hold when `free_bytes` of device memory are free: kMemoryFraction of them,
/// less the fixed cost, over the cost of a row; at most INT_MAX (a kernel grid's and a cuBLAS
/// call's row count) and a multiple of kChunkAlign (0 when not even kChunkAlign rows fit).
inline std::size_t chunk_rows_for(std::size_t free_bytes, const ChunkCost& cost) {
  const double budget = static_cast<double>(free_bytes) * kMemoryFraction - static_cast<double>(cost.fixed);
  if (budget <= 0 || cost.per_row == 0) return 0;
  const double rows = budget / static_cast<double>(cost.per_row);
  const std::size_t capped = rows >= static_cast<double>(INT_MAX) ? static_cast<std::size_t>(INT_MAX)
                                                                  : static_cast<std::size_t>(rows);
  return capped / kChunkAlign * kChunkAlign;
}

}  // namespace gmmdiff::gpu
