// gmmdiff: the per-particle arithmetic of the fused CUDA step (fused_step.hpp), written so that the
// host runs it too (tests/cuda/test_cuda_fused.cpp emulates the kernel with it on a machine without a
// GPU): no CUDA types here, only GMMDIFF_HD functions and the host-side packing of coefficients.
//
// Ownership. A particle's d coordinates are split over a group of G lanes (threads; G a power of
// two, at most 32, so a group never straddles a warp) in Philox blocks of 4: lane l owns blocks
// b = l + G c for c = 0..NB-1, i.e. coordinates 4b..4b+3. Coordinates >= d are padding: y = 0,
// P = Q = 0 there, never written. Each lane draws its own normals, one philox_normal4 per block,
// at the same (seed, stream, particle, t, block) counters as the CPU backend.
//
// A thread holds LPT lanes of its group: on the GPU LPT = 1 and the G lanes are G threads whose
// partial dot products are joined by warp shuffles; a host emulation holds all G lanes (LPT = G)
// in one thread and joins them with a plain sum. Either way the arithmetic per lane is the code
// below.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"

#if defined(__CUDA_ARCH__)  // device passes only: host compilers warn on an unknown pragma
#define GMMDIFF_UNROLL _Pragma("unroll")
#else
#define GMMDIFF_UNROLL
#endif

namespace gmmdiff::gpu {

/// Widest particle the fused step holds in registers: 32 lanes x 4 blocks x 4 coordinates.
constexpr int kFusedMaxD = 512;
constexpr int kFusedMaxLanes = 32;

/// Lanes per particle (G) and blocks of 4 coordinates per lane (NB) for d; G = 0 when d is
/// outside 1..kFusedMaxD. Small d: the fewest lanes that give each one block (d <= 4: one thread
/// per particle); d > 128: a whole warp, 2 or 4 blocks a lane.
struct FusedPlan {
  int G = 0;
  int NB = 0;
};

inline FusedPlan fused_plan(int d) {
  if (d < 1 || d > kFusedMaxD) return {};
  const int nb = (d + 3) / 4;
  if (nb <= kFusedMaxLanes) {
    int G = 1;
    while (G < nb) G *= 2;
    return {G, 1};
  }
  return {kFusedMaxLanes, nb <= 2 * kFusedMaxLanes ? 2 : 4};
}

/// Where one step's coefficients lie in a packed array of the run's precision (offsets in values).
/// Every segment starts at a multiple of 4 values (16-byte aligned in float, 32 in double), so a
/// lane reads its block of 4 with one vector load:
///   P [K, dp] | Q [K, dp] (diagonal) or [Kp] | bias [Kp] | bias_dir [dp]
/// dp = d rounded up to a multiple of 4, Kp = K likewise; the padding holds zeros.
struct FusedLayout {
  int K = 0;
  int d = 0;
  int dp = 0;
  int Kp = 0;
  bool diag = false;
  std::size_t P = 0, Q = 0, bias = 0, bias_dir = 0;
  std::size_t stride = 0;  ///< values per step
};

inline FusedLayout make_fused_layout(int K, int d, bool diag) {
  FusedLayout L;
  L.K = K;
  L.d = d;
  L.dp = (d + 3) / 4 * 4;
  L.Kp = (K + 3) / 4 * 4;
  L.diag = diag;
  const std::size_t kd = static_cast<std::size_t>(K) * static_cast<std::size_t>(L.dp);
  L.P = 0;
  L.Q = kd;
  L.bias = L.Q + (diag ? kd : static_cast<std::size_t>(L.Kp));
  L.bias_dir = L.bias + static_cast<std::size_t>(L.Kp);
  L.stride = L.bias_dir + static_cast<std::size_t>(L.dp);
  return L;
}

/// A step's coefficients are staged in shared memory when they fit in this (the default
/// per-block limit: no opt-in attribute, and at least 4 blocks fit an H100 SM's 228 KB);
/// otherwise lanes read them straight from global memory (L1/L2-cached, all blocks share them).
constexpr std::size_t kFusedSmemBytes = std::size_t{48} << 10;

/// Whether steps of layout L are staged in shared memory (values of real_bytes each).
inline bool fused_staged(const FusedLayout& L, std::size_t real_bytes) {
  return L.stride * real_bytes <= kFusedSmemBytes;
}

/// The scalars of one step and how its terms are formed.
template <typename Real>
struct FusedStepInfo {
  detail::StepScalars<Real> sc;
  int mode;     ///< detail::QMode
  int draw_z;   ///< sigma != 0 (as the CPU backend decides, in double)
  int draw_xi;  ///< noise_sd != 0
};

/// Host: the packed coefficients of step c (L.stride values at out), converted to Real as the
/// CPU backend converts them.
template <typename Real>
void pack_fused_step(const StepCoeffs& c, const FusedLayout& L, Real* out) {
  std::fill(out, out + L.stride, Real(0));
  const std::size_t d = static_cast<std::size_t>(L.d), dp = static_cast<std::size_t>(L.dp);
  for (std::size_t k = 0; k < static_cast<std::size_t>(L.K); ++k) {
    for (std::size_t j = 0; j < d; ++j) {
      out[L.P + k * dp + j] = static_cast<Real>(c.P[k * d + j]);
      if (L.diag) out[L.Q + k * dp + j] = static_cast<Real>(c.Q[k * d + j]);
    }
    if (!L.diag) out[L.Q + k] = static_cast<Real>(c.Q[k]);
    out[L.bias + k] = static_cast<Real>(c.bias[k]);
  }
  for (std::size_t j = 0; j < c.bias_dir.size() && j < d; ++j)
    out[L.bias_dir + j] = static_cast<Real>(c.bias_dir[j]);
}

/// Host: the scalars of step c in Real, as the CPU backend forms them.
template <typename Real>
FusedStepInfo<Real> make_fused_info(const StepCoeffs& c, uint64_t seed) {
  FusedStepInfo<Real> f;
  f.sc = detail::StepScalars<Real>{static_cast<Real>(c.kappa),       static_cast<Real>(c.inv_sqrt_alpha),
                                   static_cast<Real>(c.sigma),       static_cast<Real>(c.score_scale),
                                   static_cast<Real>(c.noise_sd),    static_cast<uint32_t>(c.t),
                                   seed};
  const detail::QMode mode = c.diagonal    ? detail::QMode::Diagonal
                             : c.uniform_q ? detail::QMode::Uniform
                                           : detail::QMode::Isotropic;
  f.mode = static_cast<int>(mode);
  f.draw_z = c.sigma != 0.0 ? 1 : 0;
  f.draw_xi = c.noise_sd != 0.0 ? 1 : 0;
  return f;
}

/// First coordinate of block c of `lane` in a group of G lanes.
GMMDIFF_HD int fused_block_coord(int lane, int G, int c) { return 4 * (lane + G * c); }

/// Loads 4 values at p (p 16-byte aligned) into o[0..3]: the host's version; the kernel passes a
/// vector-load one.
struct ScalarLoad4 {
  template <typename Real>
  GMMDIFF_HD void operator()(const Real* p, Real* o) const {
    o[0] = p[0];
    o[1] = p[1];
    o[2] = p[2];
    o[3] = p[3];
  }
};

/// Joins nothing: the host emulation's group sum (it has already summed all lanes).
struct IdentitySum {
  template <typename Real>
  GMMDIFF_HD Real operator()(Real v) const { return v; }
};

/// A lane's 4 NB values of a padded row (dp values): row[fused_block_coord(lane, G, c) + q];
/// zero for blocks at or past dp (lanes beyond the particle's last block).
template <typename Real, int NB, typename Load4>
GMMDIFF_HD void fused_load_lane(const Real* row, int dp, int lane, int G, Real (&out)[4 * NB],
                                Load4 load4) {
  GMMDIFF_UNROLL
  for (int c = 0; c < NB; ++c) {
    const int j0 = fused_block_coord(lane, G, c);
    if (j0 < dp) {
      load4(row + j0, &out[4 * c]);
    } else {
      GMMDIFF_UNROLL
      for (int q = 0; q < 4; ++q) out[4 * c + q] = Real(0);
    }
  }
}

/// One reverse step of one particle, in place on the lanes this thread holds (y[h] is lane
/// lanes[h]'s 4 NB coordinates). cs: the step's packed coefficients (layout L); group_sum(x)
/// returns the sum of x over the particle's group (identical in every lane); load4 as ScalarLoad4.
/// kDiag: the components are diagonal (L.diag, inf.mode == Diagonal). It is a template parameter,
/// not a runtime test, so that an isotropic instantiation holds no Q_k or S2 registers: they are
/// 8 NB values a lane (16 NB registers in double) that would stay live through the loop over k.
/// Isotropic against Uniform (whether the |y|^2 term is formed) stays a runtime choice per step.
///
/// Per component k: the partial products g1 = <y, P_k> (and g2 = <y*y, Q_k>, diagonal) over the
/// lane's coordinates, summed over the group; the logit as posterior_weights_row forms it
/// (detail::fused_logit); an online log-sum-exp step (detail::online_lse_push) and the score's
/// sums S1 += e P_k (S2 += e Q_k diagonal; wq += e Q_k isotropic), rescaled when the max grows.
/// Then S = sums / (sum of e), the score and the update (detail::score_coord, update_coord), with
/// z and xi from philox_normal4 at the CPU backend's counters.
template <typename Real, int NB, int LPT, bool kDiag, typename GroupSum, typename Load4>
GMMDIFF_HD void fused_particle_step(Real (&y)[LPT][4 * NB], const Real* cs, const FusedLayout& L,
                                    const FusedStepInfo<Real>& inf, const int (&lanes)[LPT], int G,
                                    uint64_t particle, GroupSum group_sum, Load4 load4) {
  using detail::QMode;
  constexpr int V = 4 * NB;
  constexpr int VD = kDiag ? V : 1;  // the diagonal-only arrays' length (1: unused)
  const QMode mode = kDiag ? QMode::Diagonal : static_cast<QMode>(inf.mode);
  const Real* P = cs + L.P;
  const Real* Q = cs + L.Q;
  const Real* bias = cs + L.bias;

  Real rsq = 0;  // |y|^2, isotropic components with unequal variances only
  if (!kDiag && mode == QMode::Isotropic) {
    GMMDIFF_UNROLL
    for (int h = 0; h < LPT; ++h) {
      GMMDIFF_UNROLL
      for (int i = 0; i < V; ++i) rsq += y[h][i] * y[h][i];
    }
    rsq = group_sum(rsq);
  }

  Real s1[LPT][V], s2[LPT][VD];
  GMMDIFF_UNROLL
  for (int h = 0; h < LPT; ++h) {
    GMMDIFF_UNROLL
    for (int i = 0; i < V; ++i) s1[h][i] = Real(0);
    GMMDIFF_UNROLL
    for (int i = 0; i < VD; ++i) s2[h][i] = Real(0);
  }
  Real wq = 0;
  detail::OnlineLse<Real> lse{Real(0), Real(0)};
  for (int k = 0; k < L.K; ++k) {
    Real pk[LPT][V], qk[LPT][VD];
    Real g1 = 0, g2 = 0;
    GMMDIFF_UNROLL
    for (int h = 0; h < LPT; ++h) {
      fused_load_lane<Real, NB>(P + static_cast<std::size_t>(k) * L.dp, L.dp, lanes[h], G, pk[h], load4);
      if constexpr (kDiag) fused_load_lane<Real, NB>(Q + static_cast<std::size_t>(k) * L.dp, L.dp, lanes[h], G, qk[h], load4);
      GMMDIFF_UNROLL
      for (int i = 0; i < V; ++i) {
        g1 += y[h][i] * pk[h][i];
        if constexpr (kDiag) g2 += (y[h][i] * y[h][i]) * qk[h][i];
      }
    }
    g1 = group_sum(g1);
    if constexpr (kDiag) g2 = group_sum(g2);
    const Real q_iso = kDiag ? Real(0) : Q[k];
    const Real l = detail::fused_logit<Real>(bias[k], g1, g2, rsq, q_iso, mode);
    Real scale, e;
    detail::online_lse_push<Real>(lse, l, k, scale, e);
    if (scale != Real(1)) {  // the max grew: rescale the sums over earlier components
      GMMDIFF_UNROLL
      for (int h = 0; h < LPT; ++h) {
        GMMDIFF_UNROLL
        for (int i = 0; i < V; ++i) s1[h][i] *= scale;
        if constexpr (kDiag) {
          GMMDIFF_UNROLL
          for (int i = 0; i < V; ++i) s2[h][i] *= scale;
        }
      }
      wq *= scale;
    }
    GMMDIFF_UNROLL
    for (int h = 0; h < LPT; ++h) {
      GMMDIFF_UNROLL
      for (int i = 0; i < V; ++i) s1[h][i] += e * pk[h][i];
      if constexpr (kDiag) {
        GMMDIFF_UNROLL
        for (int i = 0; i < V; ++i) s2[h][i] += e * qk[h][i];
      }
    }
    if (!kDiag && mode == QMode::Isotropic) wq += e * q_iso;
  }

  const Real inv = Real(1) / lse.sum;
  // Coefficient of -y in the score when it is one scalar per particle.
  const Real s2_row = kDiag ? Real(0) : (mode == QMode::Isotropic ? wq * inv : Q[0]);
  GMMDIFF_UNROLL
  for (int h = 0; h < LPT; ++h) {
    Real bdir[V];
    fused_load_lane<Real, NB>(cs + L.bias_dir, L.dp, lanes[h], G, bdir, load4);
    GMMDIFF_UNROLL
    for (int c = 0; c < NB; ++c) {
      const int j0 = fused_block_coord(lanes[h], G, c);
      if (j0 >= L.d) continue;
      const uint32_t block = static_cast<uint32_t>(j0 / 4);
      Real z[4] = {0, 0, 0, 0}, xi[4] = {0, 0, 0, 0};
      if (inf.draw_z) detail::philox_normal4<Real>(inf.sc.seed, kStreamStep, particle, inf.sc.t, block, z);
      if (inf.draw_xi)
        detail::philox_normal4<Real>(inf.sc.seed, kStreamScoreNoise, particle, inf.sc.t, block, xi);
      GMMDIFF_UNROLL
      for (int q = 0; q < 4; ++q) {
        if (j0 + q >= L.d) continue;
        const int i = 4 * c + q;
        Real S2 = s2_row;
        if constexpr (kDiag) S2 = s2[h][i] * inv;
        const Real s = detail::score_coord<Real>(y[h][i], s1[h][i] * inv, S2);
        y[h][i] = detail::update_coord<Real>(y[h][i], s, bdir[i], xi[q], z[q], inf.sc);
      }
    }
  }
}

}  // namespace gmmdiff::gpu
