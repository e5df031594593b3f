// gmmdiff: the fused reverse step (fused_step.hpp).
//
// Layout. One group of G lanes per particle (fused_lane.hpp: lane l owns Philox blocks
// l, l + G, ..., coordinates 4 at a time), 256 threads per block, so 256 / G particles per
// block. The particle's 4 NB coordinates per lane stay in registers for all the steps of the
// launch. Per step, the block stages the step's packed coefficients (P, Q, bias, bias_dir) in
// shared memory when they fit (kFusedSmemBytes), then each group runs fused_particle_step: per
// component k, a vector load of the lane's P_k (and Q_k) values, a partial dot product, a
// butterfly sum over the group's lanes (__shfl_xor_sync of width G: every lane ends with the
// same bits, since IEEE addition commutes, so every lane takes the same branches of the online
// log-sum-exp), and the rescaled accumulation of the score's sums; then the update with the
// Philox normals drawn in registers.
//
// Napkin maths per elt-step (float32, isotropic; docs/cuda.md): 8/S bytes of particle traffic
// for S steps per launch; about 4K FLOP (the dot product and the accumulation, 2 FMA per
// (k, coordinate)) plus, per (particle, k), log2(G) shuffles and one exp, shared by d/G
// coordinates per lane; plus one shared-memory load of P per (k, coordinate), i.e. one LDS per
// 2 FFMA, which bounds it near half of the FP32 peak (an H100: ~67 TFLOP/s) unless register
// tiling over several particles per thread is added later. Staging costs stride x sizeof(Real)
// bytes of L2 traffic per block per step, i.e. about K/(256/G) x 4 bytes per elt-step: small for
// G <= 8 (d <= 32), comparable to the particle traffic for G = 32.
#include "cuda/kernels/fused_step.hpp"

#include <climits>

#include "cuda/rt/cuda_error.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::gpu {

namespace {

/// Sum over the G lanes of a group by a butterfly of shuffles (every lane gets the same bits).
/// All 32 lanes of the warp always execute it: inactive particles (past the last row) compute on
/// zeros rather than branch around the shuffles.
template <int G>
struct ShuffleSum {
  template <typename Real>
  __host__ __device__ __forceinline__ Real operator()(Real v) const {
#if defined(__CUDA_ARCH__)
#pragma unroll
    for (int o = G / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o, G);
#endif
    return v;
  }
};

/// One 16-byte (float) or two 16-byte (double) loads of an aligned block of 4 values.
struct VectorLoad4 {
  __host__ __device__ __forceinline__ void operator()(const float* p, float* o) const {
#if defined(__CUDA_ARCH__)
    const float4 v = *reinterpret_cast<const float4*>(p);
    o[0] = v.x;
    o[1] = v.y;
    o[2] = v.z;
    o[3] = v.w;
#else
    ScalarLoad4{}(p, o);
#endif
  }
  __host__ __device__ __forceinline__ void operator()(const double* p, double* o) const {
#if defined(__CUDA_ARCH__)
    const double2 a = *reinterpret_cast<const double2*>(p);
    const double2 b = *reinterpret_cast<const double2*>(p + 2);
    o[0] = a.x;
    o[1] = a.y;
    o[2] = b.x;
    o[3] = b.y;
#else
    ScalarLoad4{}(p, o);
#endif
  }
};

/// Blocks of kFusedThreads an SM should hold at least: __launch_bounds__'s second argument, which
/// caps a thread's registers at 65536 / (256 x it): 128 for 2, 80 for 3, 64 for 4. Chosen from the
/// ptxas table (sm_90, docs/cuda.md "Registers") as the most blocks at which every G of the
/// instantiation still compiles without spills, except fp64 NB = 2 diagonal (12-16 bytes of spill
/// stores at 2 blocks, against 148-156 registers and 1 block an SM uncapped); fp64 NB = 4 stays
/// uncapped (196-234 registers, 1 block: at 2 blocks it spills 190-760 bytes).
template <typename Real, int NB, bool kDiag, bool kStaged>
struct FusedMinBlocks {
  static constexpr bool kFloat = sizeof(Real) == 4;
  // fp32 NB = 1: 64 registers, except diagonal with coefficients in global memory (64 spills 8-12
  // bytes there): 80.
  static constexpr int kFloatNb1 = (kDiag && !kStaged) ? 3 : 4;
  static constexpr int value = kFloat ? (NB == 1 ? kFloatNb1 : NB == 2 ? 3 : 2) : (NB == 4 ? 1 : 2);
};

template <typename Real, int G, int NB, bool kDiag, bool kStaged>
__global__ void __launch_bounds__(kFusedThreads, (FusedMinBlocks<Real, NB, kDiag, kStaged>::value))
    fused_steps_kernel(Real* __restrict__ Y,                           // [rows, L.d]
                       const Real* __restrict__ coeffs,                // [steps, L.stride]
                       const FusedStepInfo<Real>* __restrict__ info,   // [steps]
                       FusedLayout L, int steps, std::size_t rows, uint64_t first) {
  extern __shared__ __align__(16) unsigned char fused_smem[];  // [L.stride] Real when kStaged
  constexpr int V = 4 * NB;
  const int lane = static_cast<int>(threadIdx.x) % G;
  const std::size_t i =
      static_cast<std::size_t>(blockIdx.x) * (kFusedThreads / G) + threadIdx.x / G;
  const bool active = i < rows;
  const std::size_t d = static_cast<std::size_t>(L.d);
  const int lanes[1] = {lane};

  Real y[1][V];
#pragma unroll
  for (int c = 0; c < NB; ++c) {
    const int j0 = fused_block_coord(lane, G, c);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int j = j0 + q;
      y[0][4 * c + q] = (active && j < L.d) ? Y[i * d + j] : Real(0);
    }
  }

  for (int s = 0; s < steps; ++s) {
    const Real* cs = coeffs + static_cast<std::size_t>(s) * L.stride;
    if constexpr (kStaged) {
      __syncthreads();  // every group is done with the previous step's copy
      const uint4* src = reinterpret_cast<const uint4*>(cs);
      uint4* dst = reinterpret_cast<uint4*>(fused_smem);
      const int n16 = static_cast<int>(L.stride * sizeof(Real) / 16);  // stride: 4k values
      for (int x = static_cast<int>(threadIdx.x); x < n16; x += kFusedThreads) dst[x] = src[x];
      __syncthreads();
      cs = reinterpret_cast<const Real*>(fused_smem);
    }
    const FusedStepInfo<Real> inf = info[s];
    fused_particle_step<Real, NB, 1, kDiag>(y, cs, L, inf, lanes, G, first + i, ShuffleSum<G>{},
                                            VectorLoad4{});
  }

  if (!active) return;
#pragma unroll
  for (int c = 0; c < NB; ++c) {
    const int j0 = fused_block_coord(lane, G, c);
#pragma unroll
    for (int q = 0; q < 4; ++q) {
      const int j = j0 + q;
      if (j < L.d) Y[i * d + j] = y[0][4 * c + q];
    }
  }
}

template <typename Real, int G, int NB, bool kDiag>
void launch_plan(Real* d_Y, const Real* d_coeffs, const FusedStepInfo<Real>* d_info,
                 const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                 cudaStream_t stream) {
  constexpr std::size_t per_block = kFusedThreads / G;
  const std::size_t blocks = (rows + per_block - 1) / per_block;
  GMMDIFF_EXPECTS(blocks <= static_cast<std::size_t>(INT_MAX), "cuda fused step: ", rows,
                  " rows need ", blocks, " blocks, more than a grid holds");
  const dim3 grid(static_cast<unsigned int>(blocks));
  if (fused_staged(L, sizeof(Real))) {
    const std::size_t smem = L.stride * sizeof(Real);
    fused_steps_kernel<Real, G, NB, kDiag, true>
        <<<grid, kFusedThreads, smem, stream>>>(d_Y, d_coeffs, d_info, L, steps, rows, first);
  } else {
    fused_steps_kernel<Real, G, NB, kDiag, false>
        <<<grid, kFusedThreads, 0, stream>>>(d_Y, d_coeffs, d_info, L, steps, rows, first);
  }
  CUDA_CHECK_LAUNCH("fused_steps_kernel");
}

template <typename Real, int G, int NB>
void launch_plan(Real* d_Y, const Real* d_coeffs, const FusedStepInfo<Real>* d_info,
                 const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                 cudaStream_t stream) {
  if (L.diag) launch_plan<Real, G, NB, true>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
  else launch_plan<Real, G, NB, false>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
}

template <typename Real>
void fused_steps_impl(Real* d_Y, const Real* d_coeffs, const FusedStepInfo<Real>* d_info,
                      const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                      cudaStream_t stream) {
  if (rows == 0 || steps <= 0) return;
  const FusedPlan p = fused_plan(L.d);
  GMMDIFF_EXPECTS(p.G != 0, "cuda fused step: d = ", L.d, " outside 1..", kFusedMaxD);
  GMMDIFF_EXPECTS(L.K >= 1, "cuda fused step: K = ", L.K, " (need K >= 1)");
  if (p.NB == 1) {
    switch (p.G) {
      case 1: return launch_plan<Real, 1, 1>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
      case 2: return launch_plan<Real, 2, 1>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
      case 4: return launch_plan<Real, 4, 1>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
      case 8: return launch_plan<Real, 8, 1>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
      case 16: return launch_plan<Real, 16, 1>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
      case 32: return launch_plan<Real, 32, 1>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
      default: break;
    }
  } else if (p.G == 32 && p.NB == 2) {
    return launch_plan<Real, 32, 2>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
  } else if (p.G == 32 && p.NB == 4) {
    return launch_plan<Real, 32, 4>(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
  }
  throw Error(detail::cat("cuda fused step: internal: no kernel for G = ", p.G, ", NB = ", p.NB));
}

}  // namespace

void launch_fused_steps(float* d_Y, const float* d_coeffs, const FusedStepInfo<float>* d_info,
                        const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                        cudaStream_t stream) {
  fused_steps_impl(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
}
void launch_fused_steps(double* d_Y, const double* d_coeffs, const FusedStepInfo<double>* d_info,
                        const FusedLayout& L, int steps, std::size_t rows, uint64_t first,
                        cudaStream_t stream) {
  fused_steps_impl(d_Y, d_coeffs, d_info, L, steps, rows, first, stream);
}

}  // namespace gmmdiff::gpu
