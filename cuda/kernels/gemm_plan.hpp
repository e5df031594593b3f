// gmmdiff: the host-side planning of the products' cuBLAS calls (gemm.cpp), with no CUDA types, so
// the tests run it on any machine: which tensor-core modes a device has, and how a chunk's
// products are split so that no single call sees an operand of 2^31 elements or more.
#pragma once
#include <algorithm>
#include <cstddef>

namespace gmmdiff::gpu {

/// How a float product is computed (double products are always exact DGEMMs).
enum class GemmMath {
  Exact,   ///< cublasSgemm, FP32 FMA
  TF32,    ///< cublasGemmEx, CUBLAS_COMPUTE_32F_FAST_TF32: inputs rounded to TF32 (10-bit mantissa)
  BF16,    ///< cublasGemmEx, CUBLAS_COMPUTE_32F_FAST_16BF: inputs rounded to BF16 (7-bit mantissa)
  BF16x9,  ///< cublasGemmEx, CUBLAS_COMPUTE_32F_EMULATED_16BFX9 (eager): FP32 from 3 x BF16 terms
};

/// Whether cuBLAS's BF16x9 emulation of FP32 products runs on a device of compute capability
/// major.minor. NVIDIA describes it as a Blackwell feature (the BF16 tensor cores of compute
/// capability 10.0 and later); on older parts cuBLAS refuses the compute type or computes native
/// FP32 while the run would report `-bf16x9`. So the backend allows it from 10.0 on only and
/// refuses the request elsewhere (docs/cuda.md). TF32 and BF16 run on 8.0 and later.
inline bool bf16x9_supported(int cc_major, int /*cc_minor*/) { return cc_major >= 10; }
inline bool tensor_core_supported(int cc_major, int /*cc_minor*/) { return cc_major >= 8; }

/// The largest operand, in elements, that one cuBLAS call is given: the 32-bit API takes int
/// dimensions and leading dimensions, and a matrix of 2^31 elements or more (n = 1e8 rows of
/// d = 64) can overflow a 32-bit offset inside a call. Products over more are split by rows.
constexpr std::size_t kMaxGemmElements = 2147483647;  // 2^31 - 1

/// Rows per call of a product whose row-major operands have K and d columns ([rows, d] and
/// [rows, K], the other operand [K, d]): the most rows with rows x max(K, d) <= max_elements
/// (at least 1).
inline std::size_t gemm_block_rows(int K, int d, std::size_t max_elements = kMaxGemmElements) {
  const std::size_t width = static_cast<std::size_t>(std::max(std::max(K, d), 1));
  return std::max<std::size_t>(1, max_elements / width);
}

/// Calls fn(row0, rows_in_block) for consecutive row blocks covering 0 .. rows - 1, in order, each
/// of at most gemm_block_rows(K, d, max_elements) rows. Every row of a product depends only on the
/// same row of its row-major operand, so the blocks compute exactly the unsplit product.
template <typename Fn>
void for_each_gemm_block(std::size_t rows, int K, int d, Fn&& fn, std::size_t max_elements = kMaxGemmElements) {
  const std::size_t block = gemm_block_rows(K, d, max_elements);
  for (std::size_t r0 = 0; r0 < rows; r0 += block) fn(r0, std::min(block, rows - r0));
}

}  // namespace gmmdiff::gpu
