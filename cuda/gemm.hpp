// gmmdiff: the two row-major products of a step through cuBLAS (column-major), in the run's
// precision with full-precision math (cublas_handle.hpp: no TF32).
// Row-major X [r, c] is column-major X^T [c, r], so a row-major C = A B^T is computed as the
// column-major C^T = B A^T, and C = A B as C^T = B^T A^T.
#pragma once
#include <cstddef>

#include <cublas_v2.h>

namespace gmmdiff::gpu {

/// C = A B^T: d_A [rows, d], d_B [K, d], d_C [rows, K] (e.g. G1 = Y P^T, G2 = Ysq Q^T).
void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
              float* d_C);
void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
              const double* d_B, double* d_C);

/// C = A B: d_A [rows, K], d_B [K, d], d_C [rows, d] (e.g. S1 = W P, S2 = W Q).
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
             float* d_C);
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
             const double* d_B, double* d_C);

}  // namespace gmmdiff::gpu
