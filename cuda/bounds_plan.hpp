// gmmdiff: the CUDA bounds kernels' memory plan (docs/cuda.md, "The bounds on the device"), with
// no CUDA types, so the tests check it on any machine: what a chunk row costs on each kind of work,
// what is fixed, and so how many rows a chunk may hold. Everything is double (8 bytes a value).
#pragma once
#include <algorithm>
#include <climits>
#include <cstddef>
#include <cmath>
#include <cstdint>
#include <vector>

#include "cuda/step_plan.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/model.hpp"

namespace gmmdiff::gpu {

/// Device memory for the dense d x d fallback of diagonal components (one matrix a slot).
constexpr std::size_t kDenseFallbackBytes = std::size_t{64} << 20;
constexpr int kMaxDenseFallbackSlots = 256;
/// The largest prefix table (M <= 2^20 ints) the path bound uploads.
constexpr std::size_t kMaxPrefixBytes = (std::size_t{1} << 20) * sizeof(int);

/// Dense fallback slots for diagonal components of dimension d: as many d x d matrices as fit
/// kDenseFallbackBytes, at least 1 and at most kMaxDenseFallbackSlots; 0 beyond
/// detail::kMaxDenseLogDetD (the figure then stops with an error, as on the CPU).
inline int dense_fallback_slots(int d) {
  if (d < 1 || d > detail::kMaxDenseLogDetD) return 0;
  const std::size_t per = std::size_t(d) * std::size_t(d) * sizeof(double);
  return static_cast<int>(std::clamp<std::size_t>(kDenseFallbackBytes / per, 1, kMaxDenseFallbackSlots));
}

/// Bytes a row of the path bound holds: the continuation X, its forward noise Z, S1 = W P (d each),
/// the logits/weights G (K), s2, the log-weight, and up to one value of the per-outer-draw output;
/// diagonal components also X*X, then S2 = W Q (d), and G2 (K).
inline std::size_t path_row_bytes(int d, int K, bool diagonal) {
  const std::size_t D = std::size_t(d), k = std::size_t(K);
  return (3 * D + k + 3 + (diagonal ? D + k : 0)) * sizeof(double);
}

/// Bytes a particle of the flow holds: Y, S1 (d each), the weights G and, isotropic, the logits'
/// products kept for the Gram (K each), s2, log q, |y|^2, its fallback slot (a 4-byte index,
/// counted as 8); the determinant's scratch: isotropic M and A (K x K each) and v (K); diagonal
/// Y*Y then S2 (d), G2 (K), U (K x d) and A (K x K).
inline std::size_t flow_row_bytes(int d, int K, bool diagonal) {
  const std::size_t D = std::size_t(d), k = std::size_t(K);
  const std::size_t common = 2 * D + k + 4;
  if (!diagonal) return (common + k + 2 * k * k + k) * sizeof(double);
  return (common + D + k + k * D + k * k) * sizeof(double);
}

/// The most a row costs, whatever the work: max_rows(d, K) does not know which one it plans for.
inline std::size_t bounds_row_bytes(int d, int K) {
  return std::max({path_row_bytes(d, K, false), path_row_bytes(d, K, true), flow_row_bytes(d, K, false),
                   flow_row_bytes(d, K, true)});
}

/// Bytes whatever the rows: a step's coefficients on the device (P, Q up to K x d, bias, bias_dir,
/// P P^T) and twice on the pinned host (double-buffered, not device memory but counted for
/// simplicity), a mixture's tables (cum, means, sd, 1/var up to K x d, log c), the prefix table,
/// the dense fallback slots, and kReserveBytes for cuBLAS's workspace and the runtime.
inline std::size_t bounds_fixed_bytes(int d, int K) {
  const std::size_t D = std::size_t(d), k = std::size_t(K);
  const std::size_t coeffs = (2 * k * D + k + D + k * k) * sizeof(double);
  const std::size_t tables = (3 * k * D + 2 * k) * sizeof(double);
  const std::size_t dense = std::size_t(dense_fallback_slots(d)) * D * D * sizeof(double);
  return coeffs + tables + kMaxPrefixBytes + dense + kReserveBytes + 64;
}

/// Rows one chunk may hold with free_bytes of device memory free: kMemoryFraction of them less the
/// fixed bytes, over bounds_row_bytes; at most INT_MAX (cuBLAS's and the fallback list's indices);
/// 0 when not even one row fits.
inline uint64_t bounds_rows_for(std::size_t free_bytes, int d, int K) {
  const double budget = double(free_bytes) * kMemoryFraction - double(bounds_fixed_bytes(d, K));
  const double per = double(bounds_row_bytes(d, K));
  if (budget < per) return 0;
  return static_cast<uint64_t>(std::min(budget / per, double(INT_MAX)));
}

/// A mixture's tables for detail::mixture_draw and detail::mixture_log_density_no2pi (as the CPU
/// kernels build them), packed in one array: cum [K] | means [K, d] | sd | inv_var ([K] or [K, d])
/// | logc [K], so that one copy puts them on the device.
struct PackedMixtureTables {
  int K = 0, d = 0;
  bool diagonal = false;
  std::vector<double> values;
  std::size_t cum = 0, means = 0, sd = 0, inv_var = 0, logc = 0;  ///< offsets into values
};
inline PackedMixtureTables pack_mixture_tables(const Mixture& m) {
  PackedMixtureTables t;
  t.K = m.K;
  t.d = m.d;
  t.diagonal = m.cov == Covariance::Diagonal;
  const std::size_t K = std::size_t(m.K), d = std::size_t(m.d), nv = t.diagonal ? K * d : K;
  t.cum = 0;
  t.means = K;
  t.sd = t.means + K * d;
  t.inv_var = t.sd + nv;
  t.logc = t.inv_var + nv;
  t.values.assign(t.logc + K, 0.0);
  double c = 0;
  for (std::size_t k = 0; k < K; ++k) t.values[t.cum + k] = (c += m.weights[k]);
  t.values[t.cum + K - 1] = 1.0;
  std::copy(m.means.begin(), m.means.end(), t.values.begin() + static_cast<std::ptrdiff_t>(t.means));
  for (std::size_t k = 0; k < K; ++k) {
    double ld = 0;
    if (t.diagonal) {
      for (std::size_t j = 0; j < d; ++j) {
        const double v = m.var_diag[k * d + j];
        t.values[t.sd + k * d + j] = std::sqrt(v);
        t.values[t.inv_var + k * d + j] = 1.0 / v;
        ld += std::log(v);
      }
    } else {
      const double v = m.sd[k] * m.sd[k];
      t.values[t.sd + k] = m.sd[k];
      t.values[t.inv_var + k] = 1.0 / v;
      ld = double(d) * std::log(v);
    }
    t.values[t.logc + k] = std::log(m.weights[k]) - 0.5 * ld;
  }
  return t;
}

}  // namespace gmmdiff::gpu
