// gmmdiff: row-major products through cuBLAS (gemm.hpp), exact or in an explicit tensor-core mode.
#include "cuda/kernels/gemm.hpp"

#include <cstddef>

#include "cuda/rt/cuda_error.hpp"

namespace gmmdiff::gpu {

namespace {

/// The product's other operand ([K, d]) is one call's whole; it is never split.
void check_params(int K, int d) {
  GMMDIFF_EXPECTS(static_cast<std::size_t>(K) * static_cast<std::size_t>(d) <= kMaxGemmElements,
                  "cuda backend: K x d = ", static_cast<std::size_t>(K) * static_cast<std::size_t>(d),
                  " coefficients exceed one cuBLAS operand (at most ", kMaxGemmElements, " elements)");
}

cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const float* A, int lda, const float* B, int ldb, float* C, int ldc,
                    GemmMath math) {
  const float one = 1.0f, zero = 0.0f;
  if (math == GemmMath::Exact) return cublasSgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F_FAST_TF32;
  if (math == GemmMath::BF16) compute = CUBLAS_COMPUTE_32F_FAST_16BF;
  if (math == GemmMath::BF16x9) {
    compute = CUBLAS_COMPUTE_32F_EMULATED_16BFX9;
    // Eager: emulate even where cuBLAS would not expect a gain, so the mode means what it says.
    const cublasStatus_t st = cublasSetEmulationStrategy(h, CUBLAS_EMULATION_STRATEGY_EAGER);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
  }
  return cublasGemmEx(h, ta, tb, m, n, k, &one, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, &zero, C,
                      CUDA_R_32F, ldc, compute, CUBLAS_GEMM_DEFAULT);
}
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const double* A, int lda, const double* B, int ldb, double* C, int ldc,
                    GemmMath /*math: double products are always exact*/) {
  const double one = 1.0, zero = 0.0;
  return cublasDgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
}

// Column-major C^T [K, rows] = B [K, d] (stored as column-major B^T [d, K], transposed)
//                              x A^T [d, rows] (row-major A as is); in row blocks (gemm_plan.hpp):
// block [r0, r0 + nr) reads A from row r0 and writes C from row r0, with the same leading
// dimensions.
template <typename Real>
void abt(cublasHandle_t h, std::size_t rows, int K, int d, const Real* A, const Real* B, Real* C,
         GemmMath math) {
  check_params(K, d);
  for_each_gemm_block(rows, K, d, [&](std::size_t r0, std::size_t nr) {
    CUBLAS_CHECK(gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, K, static_cast<int>(nr), d, B, d, A + r0 * d, d,
                      C + r0 * K, K, math));
  });
}

// Column-major C^T [d, rows] = B^T [d, K] (row-major B as is) x A^T [K, rows] (row-major A as is);
// in row blocks as abt.
template <typename Real>
void ab(cublasHandle_t h, std::size_t rows, int K, int d, const Real* A, const Real* B, Real* C,
        GemmMath math) {
  check_params(K, d);
  for_each_gemm_block(rows, K, d, [&](std::size_t r0, std::size_t nr) {
    CUBLAS_CHECK(gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, d, static_cast<int>(nr), K, B, d, A + r0 * K, K,
                      C + r0 * d, d, math));
  });
}

}  // namespace

void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
              float* d_C, GemmMath math) {
  abt(h, rows, K, d, d_A, d_B, d_C, math);
}
void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
              const double* d_B, double* d_C, GemmMath math) {
  abt(h, rows, K, d, d_A, d_B, d_C, math);
}
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
             float* d_C, GemmMath math) {
  ab(h, rows, K, d, d_A, d_B, d_C, math);
}
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
             const double* d_B, double* d_C, GemmMath math) {
  ab(h, rows, K, d, d_A, d_B, d_C, math);
}

}  // namespace gmmdiff::gpu
