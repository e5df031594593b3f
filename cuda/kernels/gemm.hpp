// gmmdiff: the two row-major products of a step through cuBLAS (column-major), in the run's
// precision. Full-precision math by default (cublas_handle.hpp: no TF32); the float products take
// an explicit tensor-core mode as an option (GemmMath, gemm_plan.hpp), never a default. A chunk
// whose operands reach 2^31 elements is computed in row blocks (for_each_gemm_block).
// Row-major X [r, c] is column-major X^T [c, r], so a row-major C = A B^T is computed as the
// column-major C^T = B A^T, and C = A B as C^T = B^T A^T.
#pragma once
#include <cstddef>

#include <cublas_v2.h>

#include "cuda/kernels/gemm_plan.hpp"

namespace gmmdiff::gpu {

/// C = A B^T: d_A [rows, d], d_B [K, d], d_C [rows, K] (e.g. G1 = Y P^T, G2 = Ysq Q^T).
void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
              float* d_C, GemmMath math = GemmMath::Exact);
void gemm_abt(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
              const double* d_B, double* d_C, GemmMath math = GemmMath::Exact);

/// C = A B: d_A [rows, K], d_B [K, d], d_C [rows, d] (e.g. S1 = W P, S2 = W Q).
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const float* d_A, const float* d_B,
             float* d_C, GemmMath math = GemmMath::Exact);
void gemm_ab(cublasHandle_t h, std::size_t rows, int K, int d, const double* d_A,
             const double* d_B, double* d_C, GemmMath math = GemmMath::Exact);

}  // namespace gmmdiff::gpu
