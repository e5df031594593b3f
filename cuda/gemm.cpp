// gmmdiff: row-major products through cuBLAS (gemm.hpp).
#include "cuda/gemm.hpp"

#include <climits>

#include "cuda/cuda_error.hpp"

namespace gmmdiff::gpu {

namespace {

int rows_as_int(std::size_t rows) {
  GMMDIFF_EXPECTS(rows <= static_cast<std::size_t>(INT_MAX), "cuda backend: a chunk of ", rows,
                  " rows exceeds cuBLAS's int dimension (at most ", INT_MAX, ")");
  return static_cast<int>(rows);
}

cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  const float one = 1.0f, zero = 0.0f;
  return cublasSgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
}
cublasStatus_t gemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n,
                    int k, const double* A, int lda, const double* B, int ldb, double* C, int ldc) {
  const double one = 1.0, zero = 0.0;
  return cublasDgemm(h, ta, tb, m, n, k, &one, A, lda, B, ldb, &zero, C, ldc);
}

// Column-major C^T [K, rows] = B [K, d] (stored as column-major B^T [d, K], transposed)
//                              x A^T [d, rows] (row-major A as is).
template <typename Real>
void abt(cublasHandle_t h, std::size_t rows, int K, int d, const Real* A, const Real* B, Real* C) {
  if (rows == 0) return;
  CUBLAS_CHECK(gemm(h, CUBLAS_OP_T, CUBLAS_OP_N, K, rows_as_int(rows), d, B, d, A, d, C, K));
}

// Column-major C^T [d, rows] = B^T [d, K] (row-major B as is) x A^T [K, rows] (row-major A as is).
template <typename Real>
void ab(cublasHandle_t h, std::size_t rows, int K, int d, const Real* A, const Real* B, Real* C) {
  if (rows == 0) return;
  CUBLAS_CHECK(gemm(h, CUBLAS_OP_N, CUBLAS_OP_N, d, rows_as_int(rows), K, B, d, A, K, C, d));
}

}  // namespace

void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
              float* d_C) {
  abt(h, rows, K, d, d_A, d_B, d_C);
}
void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
              const double* d_B, double* d_C) {
  abt(h, rows, K, d, d_A, d_B, d_C);
}
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
             float* d_C) {
  ab(h, rows, K, d, d_A, d_B, d_C);
}
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
             const double* d_B, double* d_C) {
  ab(h, rows, K, d, d_A, d_B, d_C);
}

}  // namespace gmmdiff::gpu
