// gmmdiff: the per-row arithmetic of the products path's weights kernel (step_kernels.cu,
// posterior_weights_kernel), written so that the host runs it lane by lane too
// (tests/cuda/test_cuda_weights.cpp emulates the kernel with it on a machine without a GPU): no
// CUDA types here, only GMMDIFF_HD functions.
//
// A row (one particle's K logits) is handled by a group of W lanes (W a power of two, at most 32,
// so a group never straddles a warp): lane l owns the components k = l, l + W, l + 2W, ..., so the
// W lanes read W consecutive values of the row at a time (coalesced loads), and the row is read
// twice in all, where detail::posterior_weights_row (the CPU's, one thread per row) makes three
// passes that each read and write it:
//   1. scan: each lane forms its logits (detail::fused_logit, the expression posterior_weights_row
//      forms) and folds them into an online log-sum-exp state (running max, sum of exp(l - max));
//      the W states are merged by a butterfly (lse_merge), after which every lane holds the same
//      bits: the row's max and sum;
//   2. write: each lane forms its logits again and writes w_k = exp(l_k - max) / sum over them (in
//      place of G1), and its share of sum_k w_k Q_k (isotropic), summed over the group.
// For isotropic components with unequal variances |y|^2 is a group sum of the lanes' shares of the
// coordinates j = l, l + W, ... Like posterior_weights_row, nothing exponentiates a positive number,
// and a NaN logit makes the row's weights NaN.
#pragma once
#include "gmmdiff/detail/step_math.hpp"

namespace gmmdiff::gpu {

constexpr int kWeightsMaxLanes = 32;

/// Lanes per row for K components: the smallest power of two >= K, at most 32 (a warp).
inline int weights_lanes(int K) {
  int W = 1;
  while (W < K && W < kWeightsMaxLanes) W *= 2;
  return W;
}

/// An online log-sum-exp state with nothing in it (a lane that owns no component).
template <typename Real>
GMMDIFF_HD detail::OnlineLse<Real> lse_empty() {
  return detail::OnlineLse<Real>{Real(0), Real(0)};
}

/// The state of the union of two disjoint sets of logits. Symmetric to the bit (merge(a, b) and
/// merge(b, a) give the same result, FMA contraction or not: the larger max's sum is the addend
/// in both orders), so the two lanes of a butterfly exchange end with equal states. An empty state
/// (sum 0) is the identity. One exp, of a number <= 0. A NaN logit makes the sum NaN (the maxima
/// may then differ between lanes; every weight is NaN whichever).
template <typename Real>
GMMDIFF_HD detail::OnlineLse<Real> lse_merge(const detail::OnlineLse<Real>& a, const detail::OnlineLse<Real>& b) {
  if (b.sum == Real(0)) return a;
  if (a.sum == Real(0)) return b;
  if (a.mx >= b.mx) return detail::OnlineLse<Real>{a.mx, a.sum + b.sum * detail::dexp(b.mx - a.mx)};
  return detail::OnlineLse<Real>{b.mx, b.sum + a.sum * detail::dexp(a.mx - b.mx)};
}

/// A lane's share of |y|^2: sum of y_j^2 over j = lane, lane + W, ... < d.
template <typename Real>
GMMDIFF_HD Real weights_lane_rsq(const Real* y, int d, int lane, int W) {
  Real r = 0;
  for (int j = lane; j < d; j += W) r += y[j] * y[j];
  return r;
}

/// Pass 1 of one lane: its logits (g1 = the row's G1 = <y, P_k>, g2 the row's G2 (Diagonal), rsq =
/// |y|^2 (Isotropic)) folded into an online log-sum-exp state; lse_empty() when it owns none.
template <typename Real>
GMMDIFF_HD detail::OnlineLse<Real> weights_lane_scan(const Real* g1, const Real* g2, Real rsq, const Real* bias,
                                                     const Real* Q, int K, detail::QMode mode, int lane, int W) {
  detail::OnlineLse<Real> s = lse_empty<Real>();
  int n = 0;
  for (int k = lane; k < K; k += W, ++n) {
    const Real l = detail::fused_logit<Real>(bias[k], g1[k], mode == detail::QMode::Diagonal ? g2[k] : Real(0),
                                             rsq, mode == detail::QMode::Isotropic ? Q[k] : Real(0), mode);
    Real scale, e;
    detail::online_lse_push<Real>(s, l, n, scale, e);
  }
  return s;
}

/// Pass 2 of one lane, given the row's merged state: row[k] (G1 on entry) becomes the weight
/// exp(l_k - max) * (1 / sum) for the lane's components, as posterior_weights_row computes it
/// (exp, then times the reciprocal). Returns the lane's share of sum_k w_k Q_k for Isotropic, else 0.
template <typename Real>
GMMDIFF_HD Real weights_lane_write(Real* row, const Real* g2, Real rsq, const Real* bias, const Real* Q, int K,
                                   detail::QMode mode, int lane, int W, const detail::OnlineLse<Real>& total) {
  const Real inv = Real(1) / total.sum;
  Real wq = 0;
  for (int k = lane; k < K; k += W) {
    const Real l = detail::fused_logit<Real>(bias[k], row[k], mode == detail::QMode::Diagonal ? g2[k] : Real(0),
                                             rsq, mode == detail::QMode::Isotropic ? Q[k] : Real(0), mode);
    const Real w = detail::dexp(l - total.mx) * inv;
    row[k] = w;
    if (mode == detail::QMode::Isotropic) wq += w * Q[k];
  }
  return wq;
}

/// The score's coefficient of -y for the row (s2), from the group's sum of weights_lane_write's
/// returns: sum_k w_k Q_k (Isotropic), Q[0] (Uniform), 0 (Diagonal: the product W Q gives it).
template <typename Real>
GMMDIFF_HD Real weights_row_s2(Real wq_sum, const Real* Q, detail::QMode mode) {
  return mode == detail::QMode::Isotropic ? wq_sum : (mode == detail::QMode::Uniform ? Q[0] : Real(0));
}

}  // namespace gmmdiff::gpu
