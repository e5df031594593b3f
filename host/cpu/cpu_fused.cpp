// gmmdiff: the CPU backend's fused step (path "cpu-fused"), for small K.
//
// One pass per step over each fixed block of kCpuBlock rows, on one thread, while the block sits
// in L1/L2:
//   1. the block's Philox normals (z, and xi for the `gaussian` score error), 4 per Philox call,
//      vectorised across (row, coordinate block) pairs into a per-thread buffer; Box-Muller's
//      log/cos/sin are glibc's libmvec vector variants;
//   2. for each tile of kTileRows rows: the logits by register-blocked dot products with P (and Q,
//      diagonal), vectorised across k; the posterior weights (posterior_weights_row_v of
//      detail/step_math.hpp, its exp vectorised); the score by products with P (and Q) vectorised
//      across coordinates, and the update (detail::score_coord, detail::update_coord) in the same
//      loop, so each coordinate is read and written once. Where all K columns fit one vector the
//      logits take 8 rows per tile, and with one shared variance in fp32 the weights of 16 rows are
//      computed with the rows across the lanes (rows_tile_lanes), the same bits.
// Napkin maths per elt-step (one coordinate of one particle, one step): 8 (fp32) or 16 (fp64)
// bytes of memory traffic when the chunk exceeds the caches, 4K FLOP of products (2K logits, 2K
// score; twice that diagonal), one Box-Muller normal (half a log, a cos or sin) and a quarter of a
// Philox call (10 rounds of two 32x32->64 multiplies).
//
// Reproducibility: a row's arithmetic depends only on the row (the tiles and the noise loop are
// fixed functions of the block, which is a fixed set of particles whatever the chunk size, since
// chunks are multiples of kCpuBlock), so results are bitwise the same for any thread count and
// chunk size. They are not bitwise equal to the BLAS path's (other summation orders, libmvec's
// rounding): they agree to float rounding (tests/cpu/test_cpu_fused.cpp).
//
// This file is compiled with -fno-math-errno, -fno-trapping-math and -ffp-contract=fast
// (CMakeLists.txt, the block at the end): sqrt must not set errno to vectorise, the softmax's
// selects must be if-converted, and the products' multiply-adds become FMAs.
// On x86-64 with GCC the block function is cloned for x86-64-v4 (AVX-512), v3 (AVX2, FMA) and the
// baseline; the loader picks one for the machine (results can differ between machines in the last
// bits, never between runs or thread counts on one machine).
#if defined(__clang__)
// Clang (the fuzz build) has neither the clones nor the libmvec aliases below, and reports each
// `omp simd` loop it leaves scalar; those are expected there.
#pragma clang diagnostic ignored "-Wpass-failed"
#endif
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#include "cpu/cpu_backend.hpp"
#include "cpu/cpu_noise.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

#include "cpu/cpu_normals.hpp"

namespace gmmdiff {

void* AlignedBuffer::reserve(std::size_t bytes) {
  if (bytes > bytes_ || !p_) {
    const std::size_t rounded = (std::max<std::size_t>(bytes, 64) + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded);
    if (p == nullptr) throw ResourceError("cpu backend: cannot allocate " + std::to_string(rounded >> 10) +
                                          " KiB of scratch for the fused step");
    p_.reset(p);
    bytes_ = rounded;
  }
  return p_.get();
}

namespace {

using cpu_simd::block_normals;
using cpu_simd::ContiguousParticles;

namespace vm {
/// exp of a shifted logit (x <= 0). Below the cut the weight is taken as exactly 0: libmvec hands
/// every lane outside its fast range to the scalar function, which would make a row with one far
/// component (and the padding columns) many times slower, and a weight below e^-80 (float) or
/// e^-700 (double) cannot change a sum that holds the largest weight, 1. NaN stays NaN.
struct Exp {
  static constexpr float kCutF = -80.0f;
  static constexpr double kCutD = -700.0;
  // The result is used on both sides (times 1 or 0; exp(cut) is finite, NaN * 0 stays NaN):
  // with a plain select GCC sinks the call into a branch and the loop no longer vectorises.
  GMMDIFF_INLINE float operator()(float x) const {
    return gmmdiff_vexpf(x > kCutF ? x : kCutF) * (x < kCutF ? 0.0f : 1.0f);
  }
  GMMDIFF_INLINE double operator()(double x) const {
    return gmmdiff_vexp(x > kCutD ? x : kCutD) * (x < kCutD ? 0.0 : 1.0);
  }
};
}  // namespace vm

// Rows per register tile of the products: 4 x 16 fp32 accumulators fit AVX2's 16 registers
// (8 rows measured no faster with AVX-512 at d = 64, K = 64).
constexpr int kTileRows = 4;
constexpr int kNoiseLanes = 16;  // the noise loop's length is padded to a multiple of this
// The row-parallel kernel (rows_group): particles per group, one per lane of a zmm of floats.
constexpr int kRowLanes = 16;
template <typename Real>
constexpr int kLanes = 64 / sizeof(Real);  // columns per register tile: one 64-byte vector
// Rows of logits a tile keeps at once: rows_tile_narrow's 2 kTileRows, rows_tile_lanes's kRowLanes.
constexpr int kG1Rows = kRowLanes;
static_assert(kG1Rows >= 2 * kTileRows, "rows_tile_narrow's logits must fit");

constexpr int round_up(int x, int m) { return (x + m - 1) / m * m; }

/// The bias of the padding columns k = K..Kp-1: exp(kPadLogit - max) is exactly 0 in both
/// precisions, for any real logit max (|logits| stay far below 1e30).
constexpr double kPadLogit = -1e30;

/// Step coefficients laid out for the fused loops, in the run's precision (zero-padded).
template <typename Real>
struct FusedPlan {
  int d = 0, K = 0;
  int Kp = 0;  ///< K rounded up to kLanes: columns of PT, QT and the logit tiles
  int dp = 0;  ///< d rounded up to kLanes: columns of P, Q
  int dz = 0;  ///< d rounded up to 4: row stride of the noise buffers
  int nblk = 0;  ///< Philox blocks per row, dz / 4
  detail::QMode mode = detail::QMode::Uniform;
  bool noise = false, score_noise = false;
  bool rows = false;  ///< the row-parallel block kernel (rows_group) instead of the register tiles
  bool wide = false;  ///< tiles of kWide vectors (AVX-512's 32 registers), where K or d allows
  bool lanes = false; ///< rows_tile_lanes: uniform Q, fp32, wide, K <= 16
  detail::StepScalars<Real> sc{};
  const Real* PT = nullptr;    // [d, Kp]   P transposed (logits)
  const Real* QT = nullptr;    // [d, Kp]   Q transposed (logits, diagonal)
  const Real* P = nullptr;     // [K, dp]   (score)
  const Real* Q = nullptr;     // [K, dp] (diagonal) or [K]
  const Real* bias = nullptr;  // [K]
  const Real* bdir = nullptr;  // [dp]      zeros without a bias error
  const Real* zeros = nullptr; // [dz]      the noise of a step without noise
};

/// Per-thread scratch of one block, carved from an AlignedBuffer.
template <typename Real>
struct Scratch {
  Real* z;        // [kCpuBlock, dz]  normals of the step
  Real* xi;       // [kCpuBlock, dz]  normals of the score error
  Real* G1;       // [kG1Rows, Kp]  logits, then weights
  Real* G2;       // [kG1Rows, Kp]  diagonal: (y*y) Q^T
  uint32_t* erow; // [E]  the noise loop's (row, coordinate block) pairs
  uint32_t* eblk; // [E]
  Real* work;     // [(2 d + Kp + kRowLanes) * kRowLanes]  the row-parallel kernel's group
  int E;          // kCpuBlock * nblk rounded up to kNoiseLanes

  static std::size_t work_values(const FusedPlan<Real>& p) {
    return std::size_t(2 * p.d + p.Kp + kRowLanes) * kRowLanes;
  }
  static std::size_t bytes(const FusedPlan<Real>& p) {
    const std::size_t E = round_up(static_cast<int>(kCpuBlock) * p.nblk, kNoiseLanes);
    return (2 * kCpuBlock * p.dz + 2 * std::size_t(kG1Rows) * p.Kp + work_values(p)) * sizeof(Real) +
           2 * E * sizeof(uint32_t) + 7 * 64;
  }
  Scratch(void* mem, const FusedPlan<Real>& p) {
    E = round_up(static_cast<int>(kCpuBlock) * p.nblk, kNoiseLanes);
    char* c = static_cast<char*>(mem);
    auto take = [&](std::size_t n) {
      char* r = c;
      c += (n + 63) / 64 * 64;
      return r;
    };
    z = reinterpret_cast<Real*>(take(kCpuBlock * p.dz * sizeof(Real)));
    xi = reinterpret_cast<Real*>(take(kCpuBlock * p.dz * sizeof(Real)));
    G1 = reinterpret_cast<Real*>(take(std::size_t(kG1Rows) * p.Kp * sizeof(Real)));
    G2 = reinterpret_cast<Real*>(take(std::size_t(kG1Rows) * p.Kp * sizeof(Real)));
    erow = reinterpret_cast<uint32_t*>(take(E * sizeof(uint32_t)));
    eblk = reinterpret_cast<uint32_t*>(take(E * sizeof(uint32_t)));
    work = reinterpret_cast<Real*>(take(work_values(p) * sizeof(Real)));
  }
  /// Pair e = row * nblk + block, so that normal 4e + c is coordinate 4 block + c of the row: the
  /// noise buffers come out row-major with stride dz. Pairs past the block are harmless padding.
  /// Once per step and thread (the divisions would cost a few cycles per coordinate per block).
  void fill_pairs(const FusedPlan<Real>& p) {
    for (int e = 0; e < E; ++e) {
      erow[e] = static_cast<uint32_t>(e / p.nblk);
      eblk[e] = static_cast<uint32_t>(e % p.nblk);
    }
  }
};

/// Logits' products of R rows (row stride d), columns k0 .. k0 + C kLanes - 1: G1[r, k] = <y_r, P_k>,
/// and for Diagonal G2[r, k] = <y_r * y_r, Q_k> (padding columns are 0). A register tile of
/// R x C vectors: each P^T vector loaded serves R rows, each broadcast y serves C vectors.
template <typename Real, int R, int C, bool kDiag>
GMMDIFF_INLINE void logits_cols(const FusedPlan<Real>& p, const Real* __restrict__ Y, Real* __restrict__ G1,
                                Real* __restrict__ G2, int k0) {
  constexpr int V = kLanes<Real>;
  const int d = p.d, Kp = p.Kp;
  Real acc[R][C][V], acc2[R][C][V];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      for (int v = 0; v < V; ++v) acc[r][c][v] = acc2[r][c][v] = Real(0);
  const Real* __restrict__ pt = p.PT + k0;
  const Real* __restrict__ qt = kDiag ? p.QT + k0 : nullptr;
  for (int j = 0; j < d; ++j) {
    for (int r = 0; r < R; ++r) {
      const Real y = Y[std::size_t(r) * d + j];
      for (int c = 0; c < C; ++c) {
#pragma omp simd
        for (int v = 0; v < V; ++v) acc[r][c][v] += y * pt[std::size_t(j) * Kp + c * V + v];
        if (kDiag) {
          const Real yy = y * y;
#pragma omp simd
          for (int v = 0; v < V; ++v) acc2[r][c][v] += yy * qt[std::size_t(j) * Kp + c * V + v];
        }
      }
    }
  }
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      for (int v = 0; v < V; ++v) {
        G1[r * Kp + k0 + c * V + v] = acc[r][c][v];
        if (kDiag) G2[r * Kp + k0 + c * V + v] = acc2[r][c][v];
      }
}

/// All Kp columns: kWide vectors at a time where the plan says so (AVX-512: 32 registers hold
/// R x kWide accumulators), then one. Each G1[r, k] is the same sum over j in the same order
/// whatever the tile, so the tiles change no bit.
constexpr int kWide = 4;
template <typename Real, int R, bool kDiag>
GMMDIFF_INLINE void logits_tile(const FusedPlan<Real>& p, const Real* __restrict__ Y, Real* __restrict__ G1,
                                Real* __restrict__ G2) {
  constexpr int V = kLanes<Real>;
  int k0 = 0;
  if (!kDiag && p.wide)
    for (; k0 + kWide * V <= p.Kp; k0 += kWide * V) logits_cols<Real, R, kWide, kDiag>(p, Y, G1, G2, k0);
  for (; k0 < p.Kp; k0 += V) logits_cols<Real, R, 1, kDiag>(p, Y, G1, G2, k0);
}

/// Score's products and the update of R rows, coordinates j0 .. j0 + C kLanes - 1 (the last vector
/// may be partial when C = 1): s = W P - (W Q) * y (diagonal) or W P - s2row * y, then y' by
/// detail::update_coord. Row r's weight k is W[r wr + k wk].
template <typename Real, int R, int C, bool kDiag>
GMMDIFF_INLINE void score_update_cols(const FusedPlan<Real>& p, Real* __restrict__ Y, const Real* __restrict__ W,
                                      int wr, int wk, const Real* s2row, const Real* __restrict__ z,
                                      std::size_t z_stride, const Real* __restrict__ xi, std::size_t xi_stride,
                                      int j0) {
  constexpr int V = kLanes<Real>;
  const int d = p.d, dp = p.dp, K = p.K;
  const detail::StepScalars<Real> sc = p.sc;
  Real acc[R][C][V], acc2[R][C][V];
  for (int r = 0; r < R; ++r)
    for (int c = 0; c < C; ++c)
      for (int v = 0; v < V; ++v) acc[r][c][v] = acc2[r][c][v] = Real(0);
  const Real* __restrict__ pk = p.P + j0;
  const Real* __restrict__ qk = kDiag ? p.Q + j0 : nullptr;
  for (int k = 0; k < K; ++k) {
    for (int r = 0; r < R; ++r) {
      const Real w = W[r * wr + k * wk];
      for (int c = 0; c < C; ++c) {
#pragma omp simd
        for (int v = 0; v < V; ++v) acc[r][c][v] += w * pk[std::size_t(k) * dp + c * V + v];
        if (kDiag) {
#pragma omp simd
          for (int v = 0; v < V; ++v) acc2[r][c][v] += w * qk[std::size_t(k) * dp + c * V + v];
        }
      }
    }
  }
  for (int c = 0; c < C; ++c) {
    const int jc = j0 + c * V;
    const int jn = C > 1 ? V : std::min(V, d - jc);
    for (int r = 0; r < R; ++r) {
      Real* __restrict__ y = Y + std::size_t(r) * d + jc;
      const Real* __restrict__ zr = z + r * z_stride + jc;
      const Real* __restrict__ xr = xi + r * xi_stride + jc;
      const Real* __restrict__ bj = p.bdir + jc;
      const Real s2 = s2row[r];
      if (jn == V) {  // always where C > 1: a whole vector, a loop of constant length
#pragma omp simd
        for (int v = 0; v < V; ++v) {
          const Real s = detail::score_coord<Real>(y[v], acc[r][c][v], kDiag ? acc2[r][c][v] : s2);
          y[v] = detail::update_coord<Real>(y[v], s, bj[v], xr[v], zr[v], sc);
        }
      } else {
#pragma omp simd
        for (int v = 0; v < jn; ++v) {
          const Real s = detail::score_coord<Real>(y[v], acc[r][c][v], kDiag ? acc2[r][c][v] : s2);
          y[v] = detail::update_coord<Real>(y[v], s, bj[v], xr[v], zr[v], sc);
        }
      }
    }
  }
}

/// All d coordinates: kWide whole vectors at a time where the plan says so, then one (the same
/// sums over k in the same order whatever the tile).
template <typename Real, int R, bool kDiag>
GMMDIFF_INLINE void score_update_tile(const FusedPlan<Real>& p, Real* __restrict__ Y, const Real* __restrict__ W,
                                      int wr, int wk, const Real* s2row, const Real* __restrict__ z,
                                      std::size_t z_stride, const Real* __restrict__ xi, std::size_t xi_stride) {
  constexpr int V = kLanes<Real>;
  int j0 = 0;
  if (!kDiag && p.wide)
    for (; j0 + kWide * V <= p.d; j0 += kWide * V)
      score_update_cols<Real, R, kWide, kDiag>(p, Y, W, wr, wk, s2row, z, z_stride, xi, xi_stride, j0);
  for (; j0 < p.d; j0 += V)
    score_update_cols<Real, R, 1, kDiag>(p, Y, W, wr, wk, s2row, z, z_stride, xi, xi_stride, j0);
}

/// posterior_weights_row_v for the R rows of a tile at once, as the x86-64-v4 clone computes it,
/// bit for bit: its sums are vectorised over V = kLanes lanes (partial sums over k mod V, each from
/// 0), then folded from 0 in lane order, a chain of V dependent adds per row; here the R rows'
/// folds are interleaved, so that they overlap instead of following each other. Only where
/// p.wide (that clone runs; the AVX2 and baseline clones vectorise over fewer lanes, so their
/// folds are other sums): tests/driver/test_stream_pins.cpp holds the bits.
template <typename Real, int R, bool kDiag>
GMMDIFF_INLINE void softmax_tile(const FusedPlan<Real>& p, Real* __restrict__ G1, const Real* __restrict__ G2,
                                 const Real* rsq, Real* s2row) {
  constexpr int V = kLanes<Real>;
  const int Kp = p.Kp;
  const Real half = Real(0.5);
  const vm::Exp exp_fn;
  Real part[R][V];
  for (int r = 0; r < R; ++r) {
    Real* __restrict__ row = G1 + r * Kp;
    if (kDiag) {
      const Real* __restrict__ g2 = G2 + r * Kp;
#pragma omp simd
      for (int k = 0; k < Kp; ++k) row[k] = p.bias[k] + row[k] - half * g2[k];
    } else if (p.mode == detail::QMode::Isotropic) {
      const Real hr = half * rsq[r];
#pragma omp simd
      for (int k = 0; k < Kp; ++k) row[k] = p.bias[k] + row[k] - hr * p.Q[k];
    } else {
#pragma omp simd
      for (int k = 0; k < Kp; ++k) row[k] = p.bias[k] + row[k];
    }
    Real mx = row[0];
#pragma omp simd reduction(max : mx)
    for (int k = 0; k < Kp; ++k) mx = row[k] > mx ? row[k] : mx;
    for (int v = 0; v < V; ++v) part[r][v] = Real(0);
    for (int k0 = 0; k0 < Kp; k0 += V) {
#pragma omp simd
      for (int v = 0; v < V; ++v) {
        const Real e = exp_fn(row[k0 + v] - mx);
        row[k0 + v] = e;
        part[r][v] += e;
      }
    }
  }
  Real inv[R];
  {
    Real sum[R];
    for (int r = 0; r < R; ++r) sum[r] = Real(0);
    for (int v = 0; v < V; ++v)
      for (int r = 0; r < R; ++r) sum[r] += part[r][v];
    for (int r = 0; r < R; ++r) inv[r] = Real(1) / sum[r];
  }
  if (!kDiag && p.mode == detail::QMode::Isotropic) {
    for (int r = 0; r < R; ++r) {
      Real* __restrict__ row = G1 + r * Kp;
      for (int v = 0; v < V; ++v) part[r][v] = Real(0);
      for (int k0 = 0; k0 < Kp; k0 += V) {
#pragma omp simd
        for (int v = 0; v < V; ++v) {
          row[k0 + v] *= inv[r];
          part[r][v] += row[k0 + v] * p.Q[k0 + v];
        }
      }
    }
    Real wq[R];
    for (int r = 0; r < R; ++r) wq[r] = Real(0);
    for (int v = 0; v < V; ++v)
      for (int r = 0; r < R; ++r) wq[r] += part[r][v];
    for (int r = 0; r < R; ++r) s2row[r] = wq[r];
  } else {
    for (int r = 0; r < R; ++r) {
      Real* __restrict__ row = G1 + r * Kp;
#pragma omp simd
      for (int k = 0; k < Kp; ++k) row[k] *= inv[r];
      s2row[r] = kDiag ? Real(0) : p.Q[0];
    }
  }
}

/// R rows of the block (row i0 of it onwards) whose logits' products are in G1 (and G2): the
/// weights, the score and the update.
template <typename Real, int R, bool kDiag>
GMMDIFF_INLINE void rows_tile_rest(const FusedPlan<Real>& p, Real* Yb, int i0, const Scratch<Real>& s, Real* G1,
                                   Real* G2) {
  Real* Y = Yb + std::size_t(i0) * p.d;
  Real s2row[R], rsq[R];
  for (int r = 0; r < R; ++r) {
    rsq[r] = 0;
    if (p.mode == detail::QMode::Isotropic) {
      const Real* __restrict__ y = Y + std::size_t(r) * p.d;
      Real q = 0;
#pragma omp simd reduction(+ : q)
      for (int j = 0; j < p.d; ++j) q += y[j] * y[j];
      rsq[r] = q;
    }
  }
  // Over all Kp columns: the padding columns have logit kPadLogit, so weight exactly 0, and the
  // loops run whole vectors (with K = 8 and 16 lanes, a K-long loop would be all remainder).
  if (p.wide) {
    softmax_tile<Real, R, kDiag>(p, G1, G2, rsq, s2row);
  } else {
    for (int r = 0; r < R; ++r) {
      const Real wq = detail::posterior_weights_row_v<Real>(G1 + r * p.Kp, kDiag ? G2 + r * p.Kp : nullptr,
                                                            rsq[r], p.bias, p.Q, p.Kp, p.mode, vm::Exp());
      s2row[r] = p.mode == detail::QMode::Uniform ? p.Q[0] : wq;
    }
  }
  // Without noise the tile reads the zero row (stride 0) instead of a buffer.
  const std::size_t dz = static_cast<std::size_t>(p.dz);
  const Real* z = p.noise ? s.z + i0 * dz : p.zeros;
  const Real* xi = p.score_noise ? s.xi + i0 * dz : p.zeros;
  score_update_tile<Real, R, kDiag>(p, Y, G1, p.Kp, 1, s2row, z, p.noise ? dz : 0, xi, p.score_noise ? dz : 0);
}

/// R rows of the block (row i0 of it onwards), all three phases.
template <typename Real, int R, bool kDiag>
GMMDIFF_INLINE void rows_tile(const FusedPlan<Real>& p, Real* Yb, int i0, const Scratch<Real>& s) {
  logits_tile<Real, R, kDiag>(p, Yb + std::size_t(i0) * p.d, s.G1, s.G2);
  rows_tile_rest<Real, R, kDiag>(p, Yb, i0, s, s.G1, s.G2);
}

/// 2 kTileRows rows where all K columns fit one vector (K <= 16 in fp32, 8 in fp64): one register
/// tile of logits' products for all of them (a tile of kTileRows rows would be kTileRows chains of
/// d dependent FMAs, bound by the FMA's latency), then the rest by tiles of kTileRows. Each G1[r, k]
/// is the same sum over j in the same order as logits_tile's: the same bits.
template <typename Real, bool kDiag>
GMMDIFF_INLINE void rows_tile_narrow(const FusedPlan<Real>& p, Real* Yb, int i0, const Scratch<Real>& s) {
  constexpr int R = kTileRows;
  logits_cols<Real, 2 * R, 1, kDiag>(p, Yb + std::size_t(i0) * p.d, s.G1, s.G2, 0);
  rows_tile_rest<Real, R, kDiag>(p, Yb, i0, s, s.G1, s.G2);
  rows_tile_rest<Real, R, kDiag>(p, Yb, i0 + R, s, s.G1 + R * p.Kp, s.G2 + R * p.Kp);
}

/// The weights of kRowLanes rows with the rows across the lanes: et[k L + l] (k < K) holds row l's
/// logits bias_k + G1[l, k]. On return et holds the weights, as softmax_tile and
/// posterior_weights_row_v compute them for each row, bit for bit (see rows_group). part: [16][L].
template <typename Real>
GMMDIFF_INLINE void softmax_lanes(const FusedPlan<Real>& p, Real* __restrict__ et, Real* __restrict__ part) {
  constexpr int L = kRowLanes;
  const int K = p.K, Kp = p.Kp;
  Real mx[L];  // the first logit, then the larger of it and each next one (as the scalar loop)
  for (int l = 0; l < L; ++l) mx[l] = et[l];
  for (int k = 1; k < K; ++k)
#pragma omp simd
    for (int l = 0; l < L; ++l) mx[l] = et[k * L + l] > mx[l] ? et[k * L + l] : mx[l];
  // The padding columns k = K..Kp-1 take part in the max and the sum as there: their G1 is +0,
  // their logit bias[k] + 0 = kPadLogit.
  const Real lpad = K < Kp ? p.bias[K] + Real(0) : Real(0);
  if (K < Kp)
    for (int l = 0; l < L; ++l) mx[l] = lpad > mx[l] ? lpad : mx[l];
  const vm::Exp exp_fn;
  // The padding's weight exp(lpad - max) is exactly +0 in every lane where lpad - max is below
  // the exp's cut (always, unless a row's logits are near kPadLogit, or NaN): adding it changes no
  // partial sum, and the partial sums only it feeds (k mod 16 >= K) stay +0, which adds nothing
  // to the fold either. Then those are neither computed nor folded: the same bits.
  bool pad_zero = K < Kp;
  const Real cut = sizeof(Real) == sizeof(float) ? Real(vm::Exp::kCutF) : Real(vm::Exp::kCutD);
  for (int l = 0; l < L; ++l) pad_zero &= lpad - mx[l] < cut;
  const int live = pad_zero ? std::min(K, 16) : 16;  // partial sums that can be nonzero
  for (int i = 0; i < live * L; ++i) part[i] = Real(0);
  for (int k = 0; k < K; ++k) {
    Real* __restrict__ pv = part + (k & 15) * L;
#pragma omp simd
    for (int l = 0; l < L; ++l) {
      const Real e = exp_fn(et[k * L + l] - mx[l]);
      et[k * L + l] = e;
      pv[l] += e;
    }
  }
  if (K < Kp && !pad_zero) {
    Real epad[L];
#pragma omp simd
    for (int l = 0; l < L; ++l) epad[l] = exp_fn(lpad - mx[l]);
    for (int k = K; k < Kp; ++k) {
      Real* __restrict__ pv = part + (k & 15) * L;
      for (int l = 0; l < L; ++l) pv[l] += epad[l];
    }
  }
  Real inv[L];
  for (int l = 0; l < L; ++l) inv[l] = Real(0);
  for (int v = 0; v < live; ++v)
    for (int l = 0; l < L; ++l) inv[l] += part[v * L + l];
  for (int l = 0; l < L; ++l) inv[l] = Real(1) / inv[l];
  for (int k = 0; k < K; ++k)
#pragma omp simd
    for (int l = 0; l < L; ++l) et[k * L + l] *= inv[l];
}

/// kRowLanes rows where all K columns fit one vector, with one shared variance (uniform Q, fp32,
/// x86-64-v4): the logits' products by one register tile of the 16 rows (16 independent chains of
/// FMAs), the weights with the rows across the lanes (softmax_lanes: the tiles' bits), then the
/// score and the update by tiles of kTileRows rows reading the weights in that layout. With
/// K <= 16 a tile's softmax spends a whole 16-lane vector, a horizontal max, an exp call and a fold
/// of 16 dependent adds on each row; here each vector operation and exp call serves 16 rows.
template <typename Real>
GMMDIFF_INLINE void rows_tile_lanes(const FusedPlan<Real>& p, Real* Yb, int i0, int nb, const Scratch<Real>& s) {
  constexpr int L = kRowLanes, R = kTileRows;
  const int d = p.d, K = p.K, Kp = p.Kp;
  Real* Y = Yb + std::size_t(i0) * d;
  logits_cols<Real, L, 1, false>(p, Y, s.G1, s.G2, 0);
  Real* __restrict__ et = s.work;                           // [K][L] logits, then weights
  Real* __restrict__ part = s.work + std::size_t(Kp) * L;   // [16][L]
  const Real* __restrict__ g1 = s.G1;
  for (int k = 0; k < K; ++k) {
    const Real b = p.bias[k];
    for (int l = 0; l < L; ++l) et[k * L + l] = b + g1[l * Kp + k];
  }
  softmax_lanes<Real>(p, et, part);
  Real s2row[R];
  for (int r = 0; r < R; ++r) s2row[r] = p.Q[0];
  const std::size_t dz = static_cast<std::size_t>(p.dz);
  // The next tile's rows, a quarter before each of the R-row tiles below: the logits read them
  // first, a float at a time from L rows at once, which the hardware prefetchers do not follow
  // (measured at d = 64, K = 8: the logits' products took half as long again with the rows in
  // memory as in L2). A few lines at a time, so that the prefetches do not wait for fill buffers.
  const char* next = reinterpret_cast<const char*>(Y + std::size_t(L) * d);
  const std::size_t next_bytes = std::size_t(std::max(0, std::min(L, nb - i0 - L))) * d * sizeof(Real);
  const std::size_t quarter = (next_bytes / (L / R) + 63) / 64 * 64;
  for (int r0 = 0; r0 < L; r0 += R) {
    for (std::size_t b = quarter * (r0 / R); b < std::min(next_bytes, quarter * (r0 / R + 1)); b += 64)
      __builtin_prefetch(next + b, 1, 3);
    const Real* z = p.noise ? s.z + (i0 + r0) * dz : p.zeros;
    const Real* xi = p.score_noise ? s.xi + (i0 + r0) * dz : p.zeros;
    score_update_tile<Real, R, false>(p, Y + std::size_t(r0) * d, et + r0, 1, L, s2row, z, p.noise ? dz : 0, xi,
                                      p.score_noise ? dz : 0);
  }
}

/// The row-parallel kernel for small d (uniform Q, fp32, x86-64-v4): kRowLanes particles of the
/// block, one per vector lane, through a whole step, with loops over the components and the
/// coordinates. It computes what logits_tile, posterior_weights_row_v and score_update_tile compute
/// for each row, with the same operations in the same order, so the same bits (the pins of
/// tests/driver/test_stream_pins.cpp hold): the logits' and the score's sums run over j and k in
/// order as there; the softmax's sum reproduces that loop's vectorisation in the x86-64-v4 clone
/// (kRowLanes partial sums over k mod 16, each from 0, then added from 0 in lane order); the exp
/// is the same vm::Exp and the update the same detail::score_coord and detail::update_coord.
/// What it saves: the tiles pad K to 16 columns and reduce each row across lanes (max, sum), and
/// they spend a 16-lane vector on d < 16 coordinates; here every lane is a particle.
/// Y: the group's first row (stride d); nr <= kRowLanes rows (the other lanes compute on zeros and
/// are not stored); z, xi: their rows' noise (stride 0: the zero row).
/// kD: d known at compile time (0: p.d at run time); the loops over coordinates, the transposes
/// among them, then have fixed trip counts. The arithmetic is the same either way.
template <typename Real, int kD = 0>
GMMDIFF_INLINE void rows_group(const FusedPlan<Real>& p, Real* __restrict__ Y, int nr, const Real* __restrict__ z,
                               std::size_t z_stride, const Real* __restrict__ xi, std::size_t xi_stride,
                               Real* __restrict__ work) {
  constexpr int L = kRowLanes;
  const int d = kD > 0 ? kD : p.d, K = p.K, Kp = p.Kp, dp = p.dp;
  Real* __restrict__ yt = work;                             // [d][L] the coordinates, transposed
  Real* __restrict__ et = work + std::size_t(d) * L;        // [K][L] logits, then exp, then weights
  Real* __restrict__ part = et + std::size_t(Kp) * L;       // [16][L] the softmax's partial sums
  Real* __restrict__ zt = part + std::size_t(16) * L;       // [d][L] the step's noise, transposed
  if (nr == L) {
    for (int l = 0; l < L; ++l)
      for (int j = 0; j < d; ++j) yt[j * L + l] = Y[std::size_t(l) * d + j];
  } else {
    for (int j = 0; j < d; ++j)
      for (int l = 0; l < L; ++l) yt[j * L + l] = l < nr ? Y[std::size_t(l) * d + j] : Real(0);
  }
  // The noise rows likewise (stride 0: the zero row), so that the update reads whole vectors.
  if (z_stride == 0) {
    for (int i = 0; i < d * L; ++i) zt[i] = Real(0);
  } else if (nr == L && kD > 0) {
    // A noise row's stride is dz = d rounded up to 4: known here, so GCC vectorises the transpose
    // (with the stride a run-time value it loaded the 16 x d values one by one).
    constexpr int kDz = (kD + 3) / 4 * 4;
    for (int l = 0; l < L; ++l)
      for (int j = 0; j < kD; ++j) zt[j * L + l] = z[l * kDz + j];
  } else if (nr == L) {
    for (int l = 0; l < L; ++l)
      for (int j = 0; j < d; ++j) zt[j * L + l] = z[l * z_stride + j];
  } else {
    for (int j = 0; j < d; ++j)
      for (int l = 0; l < L; ++l) zt[j * L + l] = l < nr ? z[l * z_stride + j] : Real(0);
  }
  // Logits: G1 = sum_j y_j P_kj from 0 in order (logits_tile), l = bias + G1 (posterior_weights_row_v).
  for (int k = 0; k < K; ++k) {
    Real acc[L];
    for (int l = 0; l < L; ++l) acc[l] = Real(0);
    for (int j = 0; j < d; ++j) {
      const Real pt = p.PT[std::size_t(j) * Kp + k];
#pragma omp simd
      for (int l = 0; l < L; ++l) acc[l] += yt[j * L + l] * pt;
    }
    const Real b = p.bias[k];
#pragma omp simd
    for (int l = 0; l < L; ++l) {
      const Real lg = b + acc[l];
      et[k * L + l] = lg;
    }
  }
  softmax_lanes<Real>(p, et, part);
  // Score and update, coordinate by coordinate: S1 = sum_k w_k P_kj from 0 in order (score_update_tile).
  const Real s2 = p.Q[0];
  const detail::StepScalars<Real> sc = p.sc;
  for (int j = 0; j < d; ++j) {
    Real acc[L];
    for (int l = 0; l < L; ++l) acc[l] = Real(0);
    for (int k = 0; k < K; ++k) {
      const Real pk = p.P[std::size_t(k) * dp + j];
#pragma omp simd
      for (int l = 0; l < L; ++l) acc[l] += et[k * L + l] * pk;
    }
    const Real bj = p.bdir[j];
#pragma omp simd
    for (int l = 0; l < L; ++l) {
      const Real y = yt[j * L + l];
      const Real sco = detail::score_coord<Real>(y, acc[l], s2);
      // Without the score error's noise its row is the zero row: +0, as the tiles read it.
      const Real x = xi_stride == 0 ? Real(0) : xi[l * xi_stride + j];
      yt[j * L + l] = detail::update_coord<Real>(y, sco, bj, x, zt[j * L + l], sc);
    }
  }
  for (int l = 0; l < nr; ++l)
    for (int j = 0; j < d; ++j) Y[std::size_t(l) * d + j] = yt[j * L + l];
}

template <typename Real, int kD>
GMMDIFF_INLINE void block_rows_parallel_d(const FusedPlan<Real>& p, Real* Yb, int nb, const Scratch<Real>& s) {
  const std::size_t dz = static_cast<std::size_t>(p.dz);
  for (int i0 = 0; i0 < nb; i0 += kRowLanes) {
    const Real* z = p.noise ? s.z + i0 * dz : p.zeros;
    const Real* xi = p.score_noise ? s.xi + i0 * dz : p.zeros;
    rows_group<Real, kD>(p, Yb + std::size_t(i0) * p.d, std::min(kRowLanes, nb - i0), z, p.noise ? dz : 0, xi,
                         p.score_noise ? dz : 0, s.work);
  }
}

template <typename Real>
GMMDIFF_INLINE void block_rows_parallel(const FusedPlan<Real>& p, Real* Yb, int nb, const Scratch<Real>& s) {
  switch (p.d) {  // the small d the default sweep runs, at compile time
    case 1: return block_rows_parallel_d<Real, 1>(p, Yb, nb, s);
    case 2: return block_rows_parallel_d<Real, 2>(p, Yb, nb, s);
    case 4: return block_rows_parallel_d<Real, 4>(p, Yb, nb, s);
    case 8: return block_rows_parallel_d<Real, 8>(p, Yb, nb, s);
    default: return block_rows_parallel_d<Real, 0>(p, Yb, nb, s);
  }
}

template <typename Real, bool kDiag>
GMMDIFF_INLINE void block_rows(const FusedPlan<Real>& p, Real* Yb, int nb, const Scratch<Real>& s) {
  int i = 0;
  if (!kDiag && p.lanes)
    for (; i + kRowLanes <= nb; i += kRowLanes) rows_tile_lanes<Real>(p, Yb, i, nb, s);
  if (p.wide && p.Kp == kLanes<Real>)
    for (; i + 2 * kTileRows <= nb; i += 2 * kTileRows) rows_tile_narrow<Real, kDiag>(p, Yb, i, s);
  for (; i + kTileRows <= nb; i += kTileRows) rows_tile<Real, kTileRows, kDiag>(p, Yb, i, s);
  for (; i < nb; ++i) rows_tile<Real, 1, kDiag>(p, Yb, i, s);
}

template <typename Real>
GMMDIFF_INLINE void fused_block_impl(const FusedPlan<Real>& p, Real* Yb, int nb, uint64_t first_particle,
                                     void* scratch) {
  const Scratch<Real> s(scratch, p);
  const uint32_t t = p.sc.t;
  // On x86-64-v4 the normals come from cpu_noise (16-lane Philox in registers, the same libmvec
  // calls: the same bits as this clone's loop); elsewhere from the loop below, vectorised by GCC.
  auto normals = [&](uint32_t stream, Real* out) {
    if (cpu_noise::have_avx512()) cpu_noise::block_normals_avx512(p.sc.seed, stream, first_particle, t, s.E, s.erow, s.eblk, out);
    else block_normals<Real>(p.sc.seed, stream, ContiguousParticles{first_particle}, t, s.E, s.erow, s.eblk, out);
  };
  if (p.noise) normals(kStreamStep, s.z);
  if (p.score_noise) normals(kStreamScoreNoise, s.xi);
  if (p.rows) block_rows_parallel<Real>(p, Yb, nb, s);
  else if (p.mode == detail::QMode::Diagonal) block_rows<Real, true>(p, Yb, nb, s);
  else block_rows<Real, false>(p, Yb, nb, s);
}

// The entry points the OpenMP loop calls, one per precision (cloned per ISA on x86-64/GCC), with
// everything they call inlined into them (flatten): the shared step_math functions too, so that
// they are compiled for the clone's ISA and their loops call the SIMD exp.
GMMDIFF_CPU_CLONES void fused_block_f32(const FusedPlan<float>& p, float* Yb, int nb, uint64_t first, void* scratch) {
  fused_block_impl<float>(p, Yb, nb, first, scratch);
}
GMMDIFF_CPU_CLONES void fused_block_f64(const FusedPlan<double>& p, double* Yb, int nb, uint64_t first,
                                        void* scratch) {
  fused_block_impl<double>(p, Yb, nb, first, scratch);
}
void fused_block(const FusedPlan<float>& p, float* Yb, int nb, uint64_t first, void* scratch) {
  fused_block_f32(p, Yb, nb, first, scratch);
}
void fused_block(const FusedPlan<double>& p, double* Yb, int nb, uint64_t first, void* scratch) {
  fused_block_f64(p, Yb, nb, first, scratch);
}

// ---- bench's limits: the noise and the softmax alone, as a step runs them ----
GMMDIFF_CPU_CLONES void draw_normals_f32(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E,
                                         const uint32_t* erow, const uint32_t* eblk, float* out) {
  if (cpu_noise::have_avx512()) cpu_noise::block_normals_avx512(seed, stream, first, step, E, erow, eblk, out);
  else block_normals<float>(seed, stream, ContiguousParticles{first}, step, E, erow, eblk, out);
}
GMMDIFF_CPU_CLONES void draw_normals_f64(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E,
                                         const uint32_t* erow, const uint32_t* eblk, double* out) {
  if (cpu_noise::have_avx512()) cpu_noise::block_normals_avx512(seed, stream, first, step, E, erow, eblk, out);
  else block_normals<double>(seed, stream, ContiguousParticles{first}, step, E, erow, eblk, out);
}
void draw_normals(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E, const uint32_t* erow,
                  const uint32_t* eblk, float* out) {
  draw_normals_f32(seed, stream, first, step, E, erow, eblk, out);
}
void draw_normals(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E, const uint32_t* erow,
                  const uint32_t* eblk, double* out) {
  draw_normals_f64(seed, stream, first, step, E, erow, eblk, out);
}
GMMDIFF_CPU_CLONES float softmax_rows_f32(float* rows, int nrows, int Kp, const float* bias, const float* Q) {
  for (int r = 0; r < nrows; ++r)
    detail::posterior_weights_row_v<float>(rows + std::size_t(r) * Kp, nullptr, 0.0f, bias, Q, Kp,
                                           detail::QMode::Uniform, vm::Exp());
  return rows[0];
}
GMMDIFF_CPU_CLONES double softmax_rows_f64(double* rows, int nrows, int Kp, const double* bias, const double* Q) {
  for (int r = 0; r < nrows; ++r)
    detail::posterior_weights_row_v<double>(rows + std::size_t(r) * Kp, nullptr, 0.0, bias, Q, Kp,
                                            detail::QMode::Uniform, vm::Exp());
  return rows[0];
}
float softmax_rows(float* rows, int nrows, int Kp, const float* bias, const float* Q) {
  return softmax_rows_f32(rows, nrows, Kp, bias, Q);
}
double softmax_rows(double* rows, int nrows, int Kp, const double* bias, const double* Q) {
  return softmax_rows_f64(rows, nrows, Kp, bias, Q);
}

/// Seconds per item of work(thread buffer) run on all threads at once, the best of kRepeats runs.
template <typename Work>
double per_item_seconds(int threads, double items_per_thread, Work work) {
  constexpr int kRepeats = 5;
  double best = 1e300;
  for (int r = 0; r < kRepeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads)
    work();
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return best / (items_per_thread * threads);
}

template <typename Real>
double normal_seconds_impl(int threads) {
  // A d = 64 block as a step draws it: 256 rows x 16 Philox blocks, 16384 normals, kReps times.
  constexpr int kRows = static_cast<int>(kCpuBlock), kBlocks = 16, E = kRows * kBlocks, kReps = 64;
  return per_item_seconds(threads, double(kReps) * 4 * E, [&] {
    AlignedBuffer buf;
    char* mem = static_cast<char*>(buf.reserve(2 * E * sizeof(uint32_t) + 4 * E * sizeof(Real)));
    uint32_t* erow = reinterpret_cast<uint32_t*>(mem);
    uint32_t* eblk = erow + E;
    Real* out = reinterpret_cast<Real*>(eblk + E);
    for (int e = 0; e < E; ++e) {
      erow[e] = static_cast<uint32_t>(e / kBlocks);
      eblk[e] = static_cast<uint32_t>(e % kBlocks);
    }
    Real keep = 0;
    for (int r = 0; r < kReps; ++r) {
      draw_normals(12345, kStreamStep, uint64_t(r) * kRows, 7, E, erow, eblk, out);
      keep += out[r];
    }
    if (keep == Real(-1e30)) std::abort();  // keeps the draws
  });
}

template <typename Real>
double weight_seconds_impl(int threads) {
  // 256 rows of K = 64 logits (the softmax of a block at K = 64), kReps times.
  constexpr int kRows = static_cast<int>(kCpuBlock), Kp = 64, kReps = 64;
  return per_item_seconds(threads, double(kReps) * kRows * Kp, [&] {
    std::vector<Real> rows(std::size_t(kRows) * Kp), bias(Kp), Q(Kp, Real(1));
    for (std::size_t i = 0; i < rows.size(); ++i) rows[i] = Real(-0.15) * Real(i % 67);
    for (int k = 0; k < Kp; ++k) bias[k] = Real(-0.1) * Real(k % 7);
    Real keep = 0;
    for (int r = 0; r < kReps; ++r) keep += softmax_rows(rows.data(), kRows, Kp, bias.data(), Q.data());
    if (keep == Real(-1e30)) std::abort();
  });
}

}  // namespace

double CpuBackend::normal_seconds(Precision p) {
  return p == Precision::FP32 ? normal_seconds_impl<float>(threads_) : normal_seconds_impl<double>(threads_);
}

double CpuBackend::weight_seconds(Precision p) {
  return p == Precision::FP32 ? weight_seconds_impl<float>(threads_) : weight_seconds_impl<double>(threads_);
}

bool CpuBackend::use_rows() const {
  // fp32 with one shared variance on AVX-512 (the reproduction of the tiles' softmax sum is that
  // clone's), K up to kRowsMaxK; auto takes it for d up to kRowsMaxD.
  const bool eligible = shape_.precision == Precision::FP32 && shape_.K <= kRowsMaxK && shape_.cov == Covariance::Isotropic &&
                        uniform_sd_ && cpu_noise::have_avx512();
  if (!eligible || path_ == "fused-tiles" || path_ == "products") return false;
  return path_ == "fused-rows" || shape_.d <= kRowsMaxD;
}

template <typename Real>
void CpuBackend::fused_step_impl(const StepCoeffs& c) {
  const int d = shape_.d, K = shape_.K;
  constexpr int V = kLanes<Real>;
  FusedPlan<Real> p;
  p.d = d;
  p.K = K;
  p.Kp = round_up(K, V);
  p.dp = round_up(d, V);
  p.dz = round_up(d, 4);
  p.nblk = p.dz / 4;
  p.mode = c.diagonal ? detail::QMode::Diagonal : (c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic);
  p.noise = c.sigma != 0;
  p.score_noise = c.noise_sd != 0;
  p.rows = use_rows() && p.mode == detail::QMode::Uniform;
  p.wide = cpu_noise::have_avx512();
  p.lanes = p.wide && sizeof(Real) == sizeof(float) && p.Kp == V && p.mode == detail::QMode::Uniform;
  last_path_ = p.rows ? "cpu-fused-rows" : "cpu-fused";
  p.sc = detail::StepScalars<Real>{static_cast<Real>(c.kappa),       static_cast<Real>(c.inv_sqrt_alpha),
                                   static_cast<Real>(c.sigma),       static_cast<Real>(c.score_scale),
                                   static_cast<Real>(c.noise_sd),    static_cast<uint32_t>(c.t),
                                   shape_.seed};
  // Coefficients in the run's precision, zero-padded, in one aligned allocation per step
  // (K d values: small next to a chunk).
  const bool diag = p.mode == detail::QMode::Diagonal;
  const std::size_t nPT = std::size_t(d) * p.Kp, nP = std::size_t(K) * p.dp;
  const std::size_t nQb = diag ? nP : std::size_t(p.Kp);  // isotropic Q and bias: Kp (zero / kPadLogit padded)
  const std::size_t total = 2 * nPT + nP + nQb + p.Kp + p.dp + p.dz + 7 * (64 / sizeof(Real));
  std::vector<Real> coef_store(total + 64 / sizeof(Real), Real(0));
  Real* base = coef_store.data();
  while (reinterpret_cast<std::uintptr_t>(base) % 64 != 0) ++base;
  auto take = [&](std::size_t n) {
    Real* r = base;
    base += (n + (64 / sizeof(Real)) - 1) / (64 / sizeof(Real)) * (64 / sizeof(Real));
    return r;
  };
  Real* PT = take(nPT);
  Real* QT = take(nPT);
  Real* P = take(nP);
  Real* Q = take(nQb);
  Real* bias = take(p.Kp);
  for (int k = K; k < p.Kp; ++k) bias[k] = static_cast<Real>(kPadLogit);
  Real* bdir = take(p.dp);
  Real* zeros = take(p.dz);
  for (int k = 0; k < K; ++k) {
    bias[k] = static_cast<Real>(c.bias[k]);
    if (!diag) Q[k] = static_cast<Real>(c.Q[k]);
    for (int j = 0; j < d; ++j) {
      const std::size_t kj = std::size_t(k) * d + j;
      PT[std::size_t(j) * p.Kp + k] = static_cast<Real>(c.P[kj]);
      P[std::size_t(k) * p.dp + j] = static_cast<Real>(c.P[kj]);
      if (diag) {
        QT[std::size_t(j) * p.Kp + k] = static_cast<Real>(c.Q[kj]);
        Q[std::size_t(k) * p.dp + j] = static_cast<Real>(c.Q[kj]);
      }
    }
  }
  for (std::size_t j = 0; j < c.bias_dir.size(); ++j) bdir[j] = static_cast<Real>(c.bias_dir[j]);
  p.PT = PT;
  p.QT = QT;
  p.P = P;
  p.Q = Q;
  p.bias = bias;
  p.bdir = bdir;
  p.zeros = zeros;

  const std::size_t scratch_bytes = Scratch<Real>::bytes(p);
  if (scratch_.size() < static_cast<std::size_t>(threads_)) scratch_.resize(threads_);
  for (int i = 0; i < threads_; ++i) scratch_[i].reserve(scratch_bytes);

  Real* Y = y<Real>().data();
  const int d_ = d;
  const std::size_t nblocks = (rows_ + kCpuBlock - 1) / kCpuBlock;
  // The blocks go to the pool (cpu_pool.hpp), one at a time: a block's arithmetic does not depend
  // on the thread that runs it, and a thread the kernel has not scheduled (a core shared with
  // another process) holds nothing back.
  std::vector<char> paired(static_cast<std::size_t>(threads_), 0);
  pool().run(nblocks, [&](std::size_t blk, int thread) {
    void* mem = scratch_[static_cast<std::size_t>(thread)].reserve(scratch_bytes);
    if (!paired[static_cast<std::size_t>(thread)]) {
      Scratch<Real>(mem, p).fill_pairs(p);
      paired[static_cast<std::size_t>(thread)] = 1;
    }
    const std::size_t r0 = blk * kCpuBlock;
    const int nb = static_cast<int>(std::min(kCpuBlock, rows_ - r0));
    fused_block(p, Y + r0 * d_, nb, first_ + r0, mem);
  });
}

template void CpuBackend::fused_step_impl<float>(const StepCoeffs&);
template void CpuBackend::fused_step_impl<double>(const StepCoeffs&);

}  // namespace gmmdiff
