// gmmdiff: launchers of the per-particle kernels of a chunk: initial noise, exact target samples,
// and the element-wise parts of one reverse step (the products are cuBLAS, gemm.hpp). All the
// arithmetic is that of include/gmmdiff/detail/step_math.hpp and philox.hpp, shared with the CPU
// backend. Device pointers are row-major; every launcher checks its launch.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "gmmdiff/detail/step_math.hpp"

namespace gmmdiff::gpu {

/// Y[i][j] = normal(seed, kStreamInit, first + i, step 0, block j/4)[j%4].
void launch_init_normal(float* d_Y, std::size_t rows, int d, uint64_t seed, uint64_t first,
                        cudaStream_t stream);
void launch_init_normal(double* d_Y, std::size_t rows, int d, uint64_t seed, uint64_t first,
                        cudaStream_t stream);

/// Exact target samples: component from (kStreamTarget, particle, 0, kTargetComponentBlock) and
/// cum; Y[i][j] = mu[k][j] + sd[k][j] z_j with z from (kStreamTarget, particle, kTargetNormalStep).
/// d_means, d_sd: [K, d]; d_cum: [K] (cum[K-1] = 1).
void launch_fill_target(float* d_Y, std::size_t rows, int d, int K, const double* d_means,
                        const double* d_sd, const double* d_cum, uint64_t seed, uint64_t first,
                        cudaStream_t stream);
void launch_fill_target(double* d_Y, std::size_t rows, int d, int K, const double* d_means,
                        const double* d_sd, const double* d_cum, uint64_t seed, uint64_t first,
                        cudaStream_t stream);

/// Ysq = Y * Y element-wise over n values.
void launch_square(const float* d_Y, float* d_Ysq, std::size_t n, cudaStream_t stream);
void launch_square(const double* d_Y, double* d_Ysq, std::size_t n, cudaStream_t stream);

/// Per row (a group of weights_lanes(K) lanes each, weights_lane.hpp): G row (in: G1 = Y P^T)
/// becomes the posterior weights (those of detail::posterior_weights_row, up to the order of the
/// sums), and s2[i] receives the score's coefficient of -y: sum_k w_k Q_k (Isotropic, with |y|^2
/// a group sum in Real), Q[0] (Uniform), 0 (Diagonal, where it comes from the product W Q).
/// d_G: [rows, K]; d_G2: [rows, K] (Diagonal) or null; d_Y: [rows, d]; d_bias: [K];
/// d_Q: [K] or [K, d]; d_s2: [rows].
void launch_posterior_weights(float* d_G, const float* d_G2, const float* d_Y, const float* d_bias,
                              const float* d_Q, float* d_s2, std::size_t rows, int d, int K,
                              detail::QMode mode, cudaStream_t stream);
void launch_posterior_weights(double* d_G, const double* d_G2, const double* d_Y,
                              const double* d_bias, const double* d_Q, double* d_s2,
                              std::size_t rows, int d, int K, detail::QMode mode,
                              cudaStream_t stream);

/// The update of every coordinate (detail::score_coord, detail::update_coord), one thread per
/// (row, block of 4 coordinates). S2 per coordinate when d_S2 is non-null (Diagonal), else the
/// per-row d_s2. z from (kStreamStep, first + i, t) when draw_z, xi from (kStreamScoreNoise,
/// first + i, t) when draw_xi, 0 otherwise. d_Y, d_S1, d_S2: [rows, d]; d_s2: [rows];
/// d_bias_dir: [d] or null.
void launch_update(float* d_Y, const float* d_S1, const float* d_S2, const float* d_s2,
                   const float* d_bias_dir, std::size_t rows, int d, uint64_t first,
                   const detail::StepScalars<float>& sc, bool draw_z, bool draw_xi,
                   cudaStream_t stream);
void launch_update(double* d_Y, const double* d_S1, const double* d_S2, const double* d_s2,
                   const double* d_bias_dir, std::size_t rows, int d, uint64_t first,
                   const detail::StepScalars<double>& sc, bool draw_z, bool draw_xi,
                   cudaStream_t stream);

}  // namespace gmmdiff::gpu
