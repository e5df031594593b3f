// gmmdiff: the fused reverse step (fused_step.cu): logits, online log-sum-exp weights, score,
// update and the Philox noise of every particle in one pass, several steps per launch with the
// particle held in registers between them, so a launch of S steps reads and writes each
// coordinate once (8/S bytes per elt-step in float32) and never stores the N x K weights.
// The per-particle arithmetic is fused_lane.hpp (shared with a host emulation in the tests);
// docs/cuda.md has the napkin maths and when the backend picks this path.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

#include "cuda/kernels/fused_lane.hpp"

namespace gmmdiff::gpu {

constexpr int kFusedThreads = 256;  ///< threads per block: 256 / G particles

/// `steps` consecutive reverse steps on rows particles (particle index first + i for row i).
/// d_Y: [rows, L.d] in place; d_coeffs: [steps, L.stride] packed as pack_fused_step does;
/// d_info: [steps]. L.d must be at most kFusedMaxD. Checks its launch.
void launch_fused_steps(float* d_Y, const float* d_coeffs, const FusedStepInfo<float>* d_info,
                        const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                        cudaStream_t stream);
void launch_fused_steps(double* d_Y, const double* d_coeffs, const FusedStepInfo<double>* d_info,
                        const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                        cudaStream_t stream);

}  // namespace gmmdiff::gpu
