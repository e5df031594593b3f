// gmmdiff: the CUDA backend's host-side planning, run on any machine (no CUDA types involved):
//  - step paths: what a request resolves to, refusals (BF16x9 before compute capability 10.0,
//    fused beyond d = 512), the names reported (cuda/step_plan.hpp);
//  - memory: what a chunk costs on each path and the rows a chunk may hold (chunk_cost,
//    chunk_rows_for), against the arithmetic written out by hand (docs/cuda.md, "Memory");
//  - the products split for operands of 2^31 elements or more (cuda/kernels/gemm_plan.hpp),
//    applied to a host GEMM with the same offsets as the cuBLAS calls, against the unsplit product;
//  - the order of the double-buffered staged copies (cuda/rt/stage_plan.hpp), with fakes that fail
//    if a slot is reused before its piece was handed on.
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <string>
#include <vector>

#include "cuda/kernels/gemm_plan.hpp"
#include "cuda/rt/stage_plan.hpp"
#include "cuda/step_plan.hpp"
#include "gmmdiff/backend.hpp"
#include "gmmdiff/error.hpp"

namespace {

using namespace gmmdiff;
using namespace gmmdiff::gpu;

RunShape shape_of(int d, int K, Covariance cov = Covariance::Isotropic, Precision p = Precision::FP32) {
  RunShape s;
  s.d = d;
  s.K = K;
  s.cov = cov;
  s.precision = p;
  return s;
}

// ---- step paths ----

TEST(CudaPlan, RequestsResolveToTheDocumentedPaths) {
  struct Case {
    std::string request;
    int d, K;
    Precision p;
    int cc_major;
    std::string want;
  };
  const std::vector<Case> cases = {
      {"auto", 7, 5, Precision::FP32, 9, "cuda-fused"},
      {"auto", 40, 100, Precision::FP32, 9, "cuda-gemm"},   // K > 64 and d > 32
      {"auto", 8, 200, Precision::FP32, 9, "cuda-fused"},   // d <= 32
      {"auto", 200, 64, Precision::FP32, 9, "cuda-gemm"},   // 51 KB of coefficients: no fit
      {"auto", 600, 4, Precision::FP32, 9, "cuda-gemm"},    // d > 512
      {"fused", 300, 100, Precision::FP64, 9, "cuda-fused"},
      {"products", 7, 5, Precision::FP32, 9, "cuda-gemm"},
      {"products-tf32", 7, 5, Precision::FP32, 9, "cuda-gemm-tf32"},
      {"products-tf32", 7, 5, Precision::FP64, 9, "cuda-gemm"},  // float64 keeps exact DGEMMs
      {"products-bf16", 7, 5, Precision::FP32, 8, "cuda-gemm-bf16"},
      {"products-bf16x9", 7, 5, Precision::FP32, 10, "cuda-gemm-bf16x9"},
      {"products-bf16x9", 7, 5, Precision::FP64, 10, "cuda-gemm"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.request + " d " + std::to_string(c.d) + " K " + std::to_string(c.K) + " " + to_string(c.p) +
                 " cc " + std::to_string(c.cc_major) + ".0");
    EXPECT_EQ(path_name(resolve_step_path(c.request, shape_of(c.d, c.K, Covariance::Isotropic, c.p), c.cc_major, 0)),
              c.want);
  }
}

TEST(CudaPlan, RefusesWhatTheDeviceOrShapeCannotRun) {
  struct Case {
    std::string request;
    int d;
    int cc_major, cc_minor;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"products-bf16x9", 7, 9, 0, "10.0"},   // H100, H200: never reported as -bf16x9
      {"products-bf16x9", 7, 8, 0, "10.0"},
      {"products-tf32", 7, 7, 5, "8.0"},
      {"products-bf16", 7, 7, 0, "8.0"},
      {"fused", 513, 9, 0, "d <= 512"},
      {"gemm", 7, 9, 0, "products-bf16x9"},  // unknown name: the list of names
      {"", 7, 9, 0, "auto, products, fused"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE("request '" + c.request + "' cc " + std::to_string(c.cc_major) + "." + std::to_string(c.cc_minor));
    try {
      resolve_step_path(c.request, shape_of(c.d, 5), c.cc_major, c.cc_minor);
      ADD_FAILURE() << "accepted";
    } catch (const Error& e) {
      const std::string msg = e.what();
      EXPECT_NE(msg.find(c.says), std::string::npos) << msg;
      EXPECT_NE(msg.find("--path"), std::string::npos) << msg;
      EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
  }
  EXPECT_FALSE(bf16x9_supported(9, 0));
  EXPECT_TRUE(bf16x9_supported(10, 0));
  EXPECT_TRUE(bf16x9_supported(12, 0));
}

// ---- memory ----

TEST(CudaPlan, ChunkCostIsTheDocumentedArithmetic) {
  constexpr std::size_t kHist = std::size_t{64} << 20, kRes = std::size_t{64} << 20;
  // Products, isotropic, fp32, d = K = 64: Y, S1 (d each), G (K), s2 (1) = 193 values a row;
  // fixed: P (K d), Q (K), bias (K), bias_dir (d) in float, the target (2 K d + K doubles).
  {
    const ChunkCost c = chunk_cost(shape_of(64, 64), StepPath::Products);
    EXPECT_EQ(c.per_row, 193u * 4);
    EXPECT_EQ(c.fixed, (64u * 64 + 64 + 64 + 64) * 4 + (2u * 64 * 64 + 64) * 8 + kHist + kRes);
  }
  // Products, diagonal, fp64, d = 10, K = 3: 2d + K + 1 + d + K = 37 values a row; Q is [K, d].
  {
    const ChunkCost c = chunk_cost(shape_of(10, 3, Covariance::Diagonal, Precision::FP64), StepPath::Products);
    EXPECT_EQ(c.per_row, 37u * 8);
    EXPECT_EQ(c.fixed, (30u + 30 + 3 + 10) * 8 + (2u * 30 + 3) * 8 + kHist + kRes);
  }
  // Fused: Y only, d values a row; fixed: a 16 MiB batch of whole steps and their scalars.
  {
    const RunShape s = shape_of(64, 64);
    const ChunkCost c = chunk_cost(s, StepPath::Fused);
    EXPECT_EQ(c.per_row, 64u * 4);
    const FusedLayout L = make_fused_layout(64, 64, false);
    const std::size_t steps = (std::size_t{16} << 20) / (L.stride * 4);
    EXPECT_EQ(c.fixed, (2u * 64 * 64 + 64) * 8 + kHist + kRes + steps * (L.stride * 4 + sizeof(FusedStepInfo<float>)));
  }
  // A step larger than the batch still gets one step's worth.
  {
    const FusedLayout L = make_fused_layout(4096, 512, true);
    ASSERT_GT(L.stride * 8, std::size_t{16} << 20);
    EXPECT_EQ(fused_batch_steps(L, 8), 1u);
  }
}

TEST(CudaPlan, FusedRunsNeedFewerChunks) {
  // The example: n = 1e8, d = K = 64, float32, on an 80 GB device with 79 GB free. The
  // products path needs 772 bytes a row (77 GB for all rows: 2 chunks); the fused path 256 bytes
  // (25.6 GB: 1 chunk). Before the split by path, the fused path was charged the products buffers.
  const std::size_t free_bytes = std::size_t{79} * 1000 * 1000 * 1000;
  const RunShape s = shape_of(64, 64);
  const std::uint64_t n = 100000000;
  const std::size_t products = chunk_rows_for(free_bytes, chunk_cost(s, StepPath::Products));
  const std::size_t fused = chunk_rows_for(free_bytes, chunk_cost(s, StepPath::Fused));
  EXPECT_EQ((n + products - 1) / products, 2u) << "products rows " << products;
  EXPECT_EQ((n + fused - 1) / fused, 1u) << "fused rows " << fused;
  // The rows themselves: floor((0.8 free - fixed) / per_row), aligned down to 256.
  const ChunkCost c = chunk_cost(s, StepPath::Products);
  const std::size_t want =
      static_cast<std::size_t>((0.8 * static_cast<double>(free_bytes) - static_cast<double>(c.fixed)) / 772.0) /
      kChunkAlign * kChunkAlign;
  EXPECT_EQ(products, want);
}

TEST(CudaPlan, ChunkRowsEdges) {
  const ChunkCost c{1000, 1000000};
  EXPECT_EQ(chunk_rows_for(0, c), 0u);
  EXPECT_EQ(chunk_rows_for(1250000, c), 0u);            // 0.8 x 1.25e6 = the fixed cost: no row
  EXPECT_EQ(chunk_rows_for(1250000 + 1250 * 255, c), 0u);  // 255 rows: less than kChunkAlign
  EXPECT_EQ(chunk_rows_for(1250000 + 1250 * 257, c), 256u);
  // Capped at INT_MAX rows (kernel grids and cuBLAS calls count rows in int), aligned down.
  EXPECT_EQ(chunk_rows_for(~std::size_t{0}, ChunkCost{1, 0}), std::size_t{INT_MAX} / kChunkAlign * kChunkAlign);
}

// ---- the products split ----

/// Row-major C = A B^T ([rows, d] x [K, d]^T) and C = A B ([rows, K] x [K, d]) by plain loops,
/// with the leading dimensions and offsets the cuBLAS calls of gemm.cpp use for a block.
void host_abt(std::size_t rows, int K, int d, const double* A, const double* B, double* C) {
  for (std::size_t i = 0; i < rows; ++i)
    for (int k = 0; k < K; ++k) {
      double s = 0;
      for (int j = 0; j < d; ++j) s += A[i * d + j] * B[static_cast<std::size_t>(k) * d + j];
      C[i * K + k] = s;
    }
}
void host_ab(std::size_t rows, int K, int d, const double* A, const double* B, double* C) {
  for (std::size_t i = 0; i < rows; ++i)
    for (int j = 0; j < d; ++j) {
      double s = 0;
      for (int k = 0; k < K; ++k) s += A[i * K + k] * B[static_cast<std::size_t>(k) * d + j];
      C[i * d + j] = s;
    }
}

TEST(CudaPlan, GemmBlocksCoverEveryRowOnceWithinTheLimit) {
  struct Case {
    std::size_t rows;
    int K, d;
    std::size_t limit;
  };
  for (const Case& c : {Case{1000, 7, 3, 50}, Case{1000, 3, 7, 50}, Case{17, 5, 5, 5}, Case{10, 64, 4, 10},
                        Case{5, 2, 2, 1000}, Case{0, 4, 4, 100}}) {
    SCOPED_TRACE("rows " + std::to_string(c.rows) + " K " + std::to_string(c.K) + " d " + std::to_string(c.d) +
                 " limit " + std::to_string(c.limit));
    std::size_t next = 0, calls = 0;
    for_each_gemm_block(c.rows, c.K, c.d, [&](std::size_t r0, std::size_t n) {
      EXPECT_EQ(r0, next);
      EXPECT_GE(n, 1u);
      // Both row-major operands of the call stay within the limit (a block of one row when even one
      // row is wider than it).
      if (n > 1) {
        EXPECT_LE(n * static_cast<std::size_t>(std::max(c.K, c.d)), c.limit);
      }
      next = r0 + n;
      ++calls;
    }, c.limit);
    EXPECT_EQ(next, c.rows);
    const std::size_t block = gemm_block_rows(c.K, c.d, c.limit);
    EXPECT_EQ(calls, (c.rows + block - 1) / block);
  }
  // The shape: n = 1e8 rows of d = K = 64 is 6.4e9 elements: 3 calls of at most
  // 33554431 rows (2^31 - 1 elements of 64 columns).
  EXPECT_EQ(gemm_block_rows(64, 64), 33554431u);
  std::size_t calls = 0;
  for_each_gemm_block(100000000, 64, 64, [&](std::size_t, std::size_t n) {
    EXPECT_LE(n * 64, kMaxGemmElements);
    ++calls;
  });
  EXPECT_EQ(calls, 3u);
}

TEST(CudaPlan, SplitProductsEqualTheUnsplitOnes) {
  const std::size_t rows = 103;
  const int K = 6, d = 5;
  std::vector<double> Y(rows * d), P(static_cast<std::size_t>(K) * d), W(rows * K);
  for (std::size_t i = 0; i < Y.size(); ++i) Y[i] = std::sin(0.37 * static_cast<double>(i)) * 3.0;
  for (std::size_t i = 0; i < P.size(); ++i) P[i] = std::cos(1.3 * static_cast<double>(i));
  for (std::size_t i = 0; i < W.size(); ++i) W[i] = 0.5 + 0.5 * std::sin(0.11 * static_cast<double>(i));
  std::vector<double> G_full(rows * K), S_full(rows * d);
  host_abt(rows, K, d, Y.data(), P.data(), G_full.data());
  host_ab(rows, K, d, W.data(), P.data(), S_full.data());
  for (std::size_t limit : {std::size_t{6}, std::size_t{7}, std::size_t{60}, std::size_t{1000}}) {
    SCOPED_TRACE("limit " + std::to_string(limit));
    std::vector<double> G(rows * K, -1.0), S(rows * d, -1.0);
    // The offsets of gemm.cpp's abt and ab: A + r0 * d (resp. K), C + r0 * K (resp. d).
    for_each_gemm_block(rows, K, d, [&](std::size_t r0, std::size_t n) {
      host_abt(n, K, d, Y.data() + r0 * d, P.data(), G.data() + r0 * K);
    }, limit);
    for_each_gemm_block(rows, K, d, [&](std::size_t r0, std::size_t n) {
      host_ab(n, K, d, W.data() + r0 * K, P.data(), S.data() + r0 * d);
    }, limit);
    for (std::size_t i = 0; i < G.size(); ++i) ASSERT_EQ(G[i], G_full[i]) << "G value " << i;
    for (std::size_t i = 0; i < S.size(); ++i) ASSERT_EQ(S[i], S_full[i]) << "S value " << i;
  }
}

// ---- staging order ----

TEST(CudaPlan, StagedDownloadNeverReusesASlotBeforeItsPieceIsHandedOn) {
  for (std::size_t rows : {std::size_t{0}, std::size_t{1}, std::size_t{5}, std::size_t{6}, std::size_t{1000}}) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{2}, std::size_t{7}, std::size_t{5000}}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " piece " + std::to_string(piece));
      // Each slot holds the piece copied into it, or nothing once handed on.
      long slot_row[2] = {-1, -1};
      std::size_t next = 0, issued = 0, in_flight = 0, max_in_flight = 0;
      staged_download(rows, piece,
                      [&](int slot, std::size_t r0, std::size_t n) {
                        ASSERT_TRUE(slot == 0 || slot == 1);
                        ASSERT_EQ(slot_row[slot], -1) << "slot " << slot << " reused before its piece was finished";
                        ASSERT_EQ(r0, issued);
                        slot_row[slot] = static_cast<long>(r0);
                        issued = r0 + n;
                        max_in_flight = std::max(max_in_flight, ++in_flight);
                      },
                      [&](int slot, std::size_t r0, std::size_t n) {
                        ASSERT_EQ(slot_row[slot], static_cast<long>(r0)) << "finished a slot that holds another piece";
                        ASSERT_EQ(r0, next) << "pieces out of order";
                        next = r0 + n;
                        slot_row[slot] = -1;
                        --in_flight;
                      });
      EXPECT_EQ(next, rows);
      EXPECT_EQ(in_flight, 0u);
      if (rows > piece) {
        EXPECT_EQ(max_in_flight, 2u) << "no overlap: the next piece was not copying while one was handed on";
      }
    }
  }
}

TEST(CudaPlan, StagedUploadWaitsForTheSlotBeforeFillingIt) {
  for (std::size_t rows : {std::size_t{0}, std::size_t{3}, std::size_t{1000}}) {
    for (std::size_t piece : {std::size_t{1}, std::size_t{4}, std::size_t{64}}) {
      SCOPED_TRACE("rows " + std::to_string(rows) + " piece " + std::to_string(piece));
      bool busy[2] = {false, false};  // a copy from the slot was issued and not waited for
      std::size_t next = 0;
      staged_upload(rows, piece, [&](int slot) { busy[slot] = false; },
                    [&](int slot, std::size_t r0, std::size_t n) {
                      ASSERT_FALSE(busy[slot]) << "slot " << slot << " written while its copy may run";
                      ASSERT_EQ(r0, next);
                      next = r0 + n;
                      busy[slot] = true;
                    });
      EXPECT_EQ(next, rows);
    }
  }
  EXPECT_EQ(stage_piece_rows(64 * 4), kStageBytes / 256);
  EXPECT_EQ(stage_piece_rows(kStageBytes + 1), 1u);  // a row wider than a slot: one row a piece
}

}  // namespace
