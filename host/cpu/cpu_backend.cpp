// gmmdiff: the CPU backend. OpenMP over fixed blocks of kCpuBlock rows, single-threaded OpenBLAS
// for the four products of a step inside each block, and the shared per-particle arithmetic of
// detail/step_math.hpp. A block's arithmetic depends only on its own rows, so the results are
// bitwise the same for any thread count and any chunk size that is a multiple of the block.
#include "cpu/cpu_backend.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <type_traits>

#include "core/system.hpp"
#include "cpu/cpu_noise.hpp"
#include "cpu/cpu_peak.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"


namespace gmmdiff {

namespace {

void gemm(bool trans_b, int m, int n, int k, const float* A, int lda, const float* B, int ldb, float* C, int ldc) {
  cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f, A, lda, B, ldb,
              0.0f, C, ldc);
}
void gemm(bool trans_b, int m, int n, int k, const double* A, int lda, const double* B, int ldb, double* C, int ldc) {
  cblas_dgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0, A, lda, B, ldb,
              0.0, C, ldc);
}

template <typename Real>
std::vector<Real> to_real(const std::vector<double>& v) {
  return std::vector<Real>(v.begin(), v.end());
}

constexpr double kHostMemoryFraction = 0.25;  // of MemAvailable, for the chunk

}  // namespace

// Our OpenMP loops own the parallelism and OpenBLAS runs single-threaded inside each block. That is
// asked of each of our threads, inside the region (omp_set_num_threads there sets the thread's own
// nested default, which OpenBLAS's OpenMP build reads), never process-wide: openblas_set_num_threads
// would call omp_set_num_threads(1) on the calling thread and so make every later OpenMP region of
// the process, ours or a user's, single-threaded.
CpuBackend::CpuBackend(int threads) : threads_(threads > 0 ? threads : omp_get_max_threads()) {}

std::string CpuBackend::device_name() const {
  return std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads");
}

template <> ChunkValues<float>& CpuBackend::y<float>() { return y32_; }
template <> ChunkValues<double>& CpuBackend::y<double>() { return y64_; }
template <> const ChunkValues<float>& CpuBackend::y<float>() const { return y32_; }
template <> const ChunkValues<double>& CpuBackend::y<double>() const { return y64_; }

std::size_t CpuBackend::max_chunk_rows(const RunShape& s) const {
  const std::size_t bytes = bytes_of(s.precision);
  const double budget = kHostMemoryFraction * static_cast<double>(mem_budget_bytes());
  // Per-thread scratch of a block: G1, G2 [block, K], S1, S2 [block, d], rsq; none when the chunk
  // is only filled and binned (TV), whose histograms hold d values per direction, not per row.
  const double scratch = s.steps ? double(threads_) * kCpuBlock * (2.0 * s.K + 2.0 * s.d + 1) * bytes : 0.0;
  const double per_row = double(s.d) * bytes;
  if (!s.steps) {
    // Rows need not be a multiple of the block when nothing steps them; one row is the least.
    if (budget < per_row) return 0;
    const double rows = budget / per_row;
    return rows >= kCpuBlock ? static_cast<std::size_t>(rows / kCpuBlock) * kCpuBlock
                             : static_cast<std::size_t>(rows);
  }
  if (budget <= scratch + per_row * kCpuBlock) return 0;
  const double rows = (budget - scratch) / per_row;
  return static_cast<std::size_t>(rows / kCpuBlock) * kCpuBlock;
}

void CpuBackend::begin(const RunShape& shape, const Mixture& target) {
  GMMDIFF_EXPECTS(shape.d == target.d && shape.K >= 1, "cpu backend: shape d = ", shape.d,
                  " does not match the model's d = ", target.d);
  shape_ = shape;
  target_ = target;
  uniform_sd_ = target.cov == Covariance::Isotropic &&
                std::all_of(target.sd.begin(), target.sd.end(), [&](double x) { return x == target.sd[0]; });
  target_cum_.resize(target.K);
  double c = 0;
  for (int k = 0; k < target.K; ++k) target_cum_[k] = (c += target.weights[k]);
  target_cum_[target.K - 1] = 1.0;
  const std::size_t n = shape.chunk_rows * static_cast<std::size_t>(shape.d);
  try {
    if (shape.precision == Precision::FP32) {
      y32_.resize(n);
      y64_.clear();
    } else {
      y64_.resize(n);
      y32_.clear();
    }
  } catch (const std::bad_alloc&) {
    throw ResourceError("cpu backend: cannot allocate a chunk of " + std::to_string(shape.chunk_rows) + " x " +
                        std::to_string(shape.d) + " values (" +
                        std::to_string(n * bytes_of(shape.precision) >> 20) + " MiB asked, " +
                        std::to_string(mem_budget_bytes() >> 20) + " MiB available)");
  }
  rows_ = 0;
  first_ = 0;
  last_path_.clear();
}

template <typename Real>
void CpuBackend::init_impl(uint64_t first, std::size_t rows) {
  GMMDIFF_EXPECTS(rows <= shape_.chunk_rows, "cpu backend: chunk of ", rows, " rows exceeds capacity ",
                  shape_.chunk_rows);
  Real* Y = y<Real>().data();
  const int d = shape_.d;
  const uint64_t seed = shape_.seed;
  const int nblk = (d + 3) / 4;  // Philox blocks per row
  // Y_T keeps the scalar libm's logf and sincosf (the pinned streams; libmvec rounds differently).
  // On AVX-512 everything else comes 16 lanes at a time from cpu_noise (fp32: Philox and the
  // Box-Muller arithmetic; fp64: the Philox words). Blocks of kCpuBlock rows on the pool, pair
  // e = row * nblk + block as in the step; a row's values depend on the row only.
  const bool wide = cpu_noise::have_avx512();
  const int E = static_cast<int>((kCpuBlock * nblk + 15) / 16 * 16);
  std::vector<AlignedBuffer> mem(static_cast<std::size_t>(threads_));
  std::vector<char> paired(static_cast<std::size_t>(threads_), 0);
  pool().run((rows + kCpuBlock - 1) / kCpuBlock, [&](std::size_t blk, int thread) {
    const std::size_t i0 = blk * kCpuBlock, n = std::min(kCpuBlock, rows - i0);
    if (!wide) {
      for (std::size_t i = i0; i < i0 + n; ++i) {
        Real z[4];
        for (int b = 0; b < nblk; ++b) {
          detail::philox_normal4<Real>(seed, kStreamInit, first + i, 0, static_cast<uint32_t>(b), z);
          for (int c = 0; c < 4 && 4 * b + c < d; ++c) Y[i * d + 4 * b + c] = z[c];
        }
      }
      return;
    }
    auto* erow = static_cast<uint32_t*>(mem[thread].reserve(6 * std::size_t(E) * sizeof(uint32_t)));
    uint32_t* eblk = erow + E;
    uint32_t* words = eblk + E;  // 4 E words, or 4 E floats
    if (!paired[thread]) {
      for (int e = 0; e < E; ++e) {
        erow[e] = static_cast<uint32_t>(e / nblk);
        eblk[e] = static_cast<uint32_t>(e % nblk);
      }
      paired[thread] = 1;
    }
    if constexpr (std::is_same_v<Real, float>) {
      float* z = reinterpret_cast<float*>(words);
      cpu_noise::block_normals_libm_avx512(seed, kStreamInit, first + i0, 0, E, erow, eblk, z);
      for (std::size_t i = i0; i < i0 + n; ++i, z += 4 * nblk) std::copy(z, z + d, Y + i * d);
    } else {
      cpu_noise::block_words_avx512(seed, kStreamInit, first + i0, 0, E, erow, eblk, words);
      const uint32_t* w = words;
      for (std::size_t i = i0; i < i0 + n; ++i)
        for (int b = 0; b < nblk; ++b, w += 4) {
          Real z[4];
          detail::box_muller4<Real>(detail::U32x4{{w[0], w[1], w[2], w[3]}}, z);
          for (int c = 0; c < 4 && 4 * b + c < d; ++c) Y[i * d + 4 * b + c] = z[c];
        }
    }
  });
  rows_ = rows;
  first_ = first;
}

void CpuBackend::init_chunk(uint64_t first, std::size_t rows) {
  shape_.precision == Precision::FP32 ? init_impl<float>(first, rows) : init_impl<double>(first, rows);
}

template <typename Real>
void CpuBackend::target_impl(uint64_t first, std::size_t rows) {
  GMMDIFF_EXPECTS(rows <= shape_.chunk_rows, "cpu backend: chunk of ", rows, " rows exceeds capacity ",
                  shape_.chunk_rows);
  Real* Y = y<Real>().data();
  const int d = shape_.d, K = target_.K;
  const uint64_t seed = shape_.seed;
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::ptrdiff_t i = 0; i < static_cast<std::ptrdiff_t>(rows); ++i) {
    const uint64_t p = first + i;
    const int k = detail::pick_component(
        detail::philox_uniform(seed, kStreamTarget, p, 0, detail::kTargetComponentBlock), target_cum_.data(), K);
    const double* mu = target_.mean(k);
    Real* yi = Y + static_cast<std::size_t>(i) * d;
    Real z[4];
    for (int b = 0; 4 * b < d; ++b) {
      detail::philox_normal4<Real>(seed, kStreamTarget, p, detail::kTargetNormalStep, static_cast<uint32_t>(b), z);
      for (int c = 0; c < 4 && 4 * b + c < d; ++c) {
        const int j = 4 * b + c;
        yi[j] = static_cast<Real>(mu[j] + std::sqrt(target_.var(k, j)) * static_cast<double>(z[c]));
      }
    }
  }
  rows_ = rows;
  first_ = first;
}

void CpuBackend::fill_target(uint64_t first, std::size_t rows) {
  shape_.precision == Precision::FP32 ? target_impl<float>(first, rows) : target_impl<double>(first, rows);
}

void CpuBackend::upload_chunk(const double* host, uint64_t first, std::size_t rows) {
  GMMDIFF_EXPECTS(rows <= shape_.chunk_rows, "cpu backend: chunk of ", rows, " rows exceeds capacity ",
                  shape_.chunk_rows);
  const std::size_t n = rows * static_cast<std::size_t>(shape_.d);
  if (shape_.precision == Precision::FP32) std::copy(host, host + n, y32_.begin());
  else std::copy(host, host + n, y64_.begin());
  rows_ = rows;
  first_ = first;
}

template <typename Real>
void CpuBackend::step_impl(const StepCoeffs& c) {
  const int d = shape_.d, K = shape_.K;
  const std::vector<Real> P = to_real<Real>(c.P), Q = to_real<Real>(c.Q), bias = to_real<Real>(c.bias),
                          bdir = to_real<Real>(c.bias_dir);
  const detail::QMode mode = c.diagonal ? detail::QMode::Diagonal
                                        : (c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic);
  const detail::StepScalars<Real> sc{static_cast<Real>(c.kappa),       static_cast<Real>(c.inv_sqrt_alpha),
                                     static_cast<Real>(c.sigma),       static_cast<Real>(c.score_scale),
                                     static_cast<Real>(c.noise_sd),    static_cast<uint32_t>(c.t),
                                     shape_.seed};
  const bool noise = c.sigma != 0, score_noise = c.noise_sd != 0, has_bias = !bdir.empty();
  Real* Y = y<Real>().data();
  const std::size_t nblocks = (rows_ + kCpuBlock - 1) / kCpuBlock;
#pragma omp parallel num_threads(threads_)
  {
    omp_set_num_threads(1);  // OpenBLAS, called below, on this thread alone (see the constructor)
    std::vector<Real> G1(kCpuBlock * K), G2(mode == detail::QMode::Diagonal ? kCpuBlock * K : 0),
        S1(kCpuBlock * d), S2(mode == detail::QMode::Diagonal ? kCpuBlock * d : 0), sq(S2.size()),
        s2row(kCpuBlock);
#pragma omp for schedule(static)
    for (std::ptrdiff_t blk = 0; blk < static_cast<std::ptrdiff_t>(nblocks); ++blk) {
      const std::size_t r0 = static_cast<std::size_t>(blk) * kCpuBlock;
      const int nb = static_cast<int>(std::min(kCpuBlock, rows_ - r0));
      Real* Yb = Y + r0 * d;
      // Logits' products: G1 = Y P^T; G2 = (Y*Y) Q^T (diagonal).
      gemm(true, nb, K, d, Yb, d, P.data(), d, G1.data(), K);
      if (mode == detail::QMode::Diagonal) {
        for (std::size_t i = 0; i < std::size_t(nb) * d; ++i) sq[i] = Yb[i] * Yb[i];
        gemm(true, nb, K, d, sq.data(), d, Q.data(), d, G2.data(), K);
      }
      for (int i = 0; i < nb; ++i) {
        Real rsq = 0;
        if (mode == detail::QMode::Isotropic)
          for (int j = 0; j < d; ++j) rsq += Yb[std::size_t(i) * d + j] * Yb[std::size_t(i) * d + j];
        const Real wq = detail::posterior_weights_row<Real>(
            G1.data() + std::size_t(i) * K, mode == detail::QMode::Diagonal ? G2.data() + std::size_t(i) * K : nullptr,
            rsq, bias.data(), Q.data(), K, mode);
        s2row[i] = mode == detail::QMode::Uniform ? Q[0] : wq;
      }
      // Score's products: S1 = W P; S2 = W Q (diagonal).
      gemm(false, nb, d, K, G1.data(), K, P.data(), d, S1.data(), d);
      if (mode == detail::QMode::Diagonal) gemm(false, nb, d, K, G1.data(), K, Q.data(), d, S2.data(), d);
      for (int i = 0; i < nb; ++i) {
        const uint64_t p = first_ + r0 + i;
        Real* yi = Yb + std::size_t(i) * d;
        const Real* s1 = S1.data() + std::size_t(i) * d;
        Real z[4] = {0, 0, 0, 0}, xi[4] = {0, 0, 0, 0};
        for (int b = 0; 4 * b < d; ++b) {
          if (noise) detail::philox_normal4<Real>(sc.seed, kStreamStep, p, sc.t, static_cast<uint32_t>(b), z);
          if (score_noise)
            detail::philox_normal4<Real>(sc.seed, kStreamScoreNoise, p, sc.t, static_cast<uint32_t>(b), xi);
          for (int cc = 0; cc < 4 && 4 * b + cc < d; ++cc) {
            const int j = 4 * b + cc;
            const Real s2 = mode == detail::QMode::Diagonal ? S2[std::size_t(i) * d + j] : s2row[i];
            const Real s = detail::score_coord<Real>(yi[j], s1[j], s2);
            yi[j] = detail::update_coord<Real>(yi[j], s, has_bias ? bdir[j] : Real(0), xi[cc], z[cc], sc);
          }
        }
      }
    }
  }
}

void CpuBackend::set_step_path(const std::string& path) {
  GMMDIFF_EXPECTS(path == "auto" || path == "products" || path == "fused" || path == "fused-rows" ||
                      path == "fused-tiles",
                  "--path ", path, ": the cpu backend has auto, products, fused, fused-rows and fused-tiles");
  path_ = path;
}

bool CpuBackend::use_fused() const {
  if (path_ == "fused" || path_ == "fused-rows" || path_ == "fused-tiles") return true;
  if (path_ == "products") return false;
  return double(shape_.K) * shape_.d * bytes_of(shape_.precision) <= double(kFusedMaxCoeffBytes);
}

std::string CpuBackend::step_path() const {
  if (!last_path_.empty()) return last_path_;
  return use_fused() ? (use_rows() ? "cpu-fused-rows" : "cpu-fused") : "cpu-blas";
}

void CpuBackend::step(const StepCoeffs& c) {
  GMMDIFF_EXPECTS(c.P.size() == static_cast<std::size_t>(shape_.K) * shape_.d, "cpu backend: step coefficients for K x d = ",
                  c.P.size(), " values, expected ", shape_.K, " x ", shape_.d);
  const bool fp32 = shape_.precision == Precision::FP32;
  if (use_fused()) {
    fp32 ? fused_step_impl<float>(c) : fused_step_impl<double>(c);
  } else {
    fp32 ? step_impl<float>(c) : step_impl<double>(c);
    last_path_ = "cpu-blas";
  }
}

void CpuBackend::download(void* host) const {
  const std::size_t n = rows_ * static_cast<std::size_t>(shape_.d);
  if (shape_.precision == Precision::FP32) std::memcpy(host, y32_.data(), n * sizeof(float));
  else std::memcpy(host, y64_.data(), n * sizeof(double));
}

void CpuBackend::stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& /*scratch: unused*/,
                               const PieceConsumer& consume) const {
  GMMDIFF_EXPECTS(row_bytes == static_cast<std::size_t>(shape_.d) * bytes_of(shape_.precision),
                  "cpu backend: stream_chunk of rows of ", row_bytes, " bytes, the chunk's are ",
                  static_cast<std::size_t>(shape_.d) * bytes_of(shape_.precision));
  if (rows_ == 0) return;
  if (shape_.precision == Precision::FP32) consume(y32_.data(), 0, rows_);
  else consume(y64_.data(), 0, rows_);
}

CpuPool& CpuBackend::pool() const {
  if (!pool_ || pool_->threads() != threads_) pool_ = std::make_unique<CpuPool>(threads_);
  return *pool_;
}

uint64_t CpuBackend::count_nonfinite_rows() const {
  const std::size_t d = static_cast<std::size_t>(shape_.d);
  std::vector<uint64_t> bad(static_cast<std::size_t>(threads_), 0);
  auto count = [&](const auto* Y) {
    using T = std::remove_cv_t<std::remove_pointer_t<decltype(Y)>>;
    pool().run((rows_ + kCpuBlock - 1) / kCpuBlock, [&](std::size_t blk, int thread) {
      const std::size_t end = std::min(rows_, (blk + 1) * kCpuBlock);
      for (std::size_t i = blk * kCpuBlock; i < end; ++i) {
        // |y| <= max is false for NaN and +-Inf: a count without a branch, so it vectorises.
        std::size_t finite = 0;
        for (std::size_t j = 0; j < d; ++j) finite += std::abs(Y[i * d + j]) <= std::numeric_limits<T>::max();
        bad[thread] += finite != d;
      }
    });
  };
  if (shape_.precision == Precision::FP32) count(y32_.data());
  else count(y64_.data());
  uint64_t total = 0;
  for (uint64_t b : bad) total += b;
  return total;
}

}  // namespace gmmdiff

// ---- measurement (gmmdiff bench) ----
namespace gmmdiff {

double CpuBackend::copy_bandwidth(std::size_t bytes) {
  constexpr int kRepeats = 5;
  const std::size_t n = std::max<std::size_t>(bytes / sizeof(double), 1 << 20);
  std::vector<double> a(n, 1.0), b(n, 0.0);
  double best = 1e300;
  for (int r = 0; r < kRepeats; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads_)
    {
      const std::size_t T = static_cast<std::size_t>(omp_get_num_threads()), id = static_cast<std::size_t>(omp_get_thread_num());
      const std::size_t lo = n * id / T, hi = n * (id + 1) / T;
      std::memcpy(b.data() + lo, a.data() + lo, (hi - lo) * sizeof(double));
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    a[r] = b[n - 1 - r];  // keep the copies observable
  }
  return 2.0 * n * sizeof(double) / best;
}

double CpuBackend::flop_limit(Precision p) {
  // The FMA peak of the widest vector unit on all threads at once, measured now (cpu_peak.hpp):
  // threads x 2 x lanes x FMAs per second. The best of a few runs of ~20 ms each.
  constexpr int kRepeats = 5;
  constexpr long kIters = 1L << 20;
  const bool fp64 = p == Precision::FP64;
  double best = 0;
  for (int r = 0; r < kRepeats; ++r) {
    double flop_all = 0, keep = 0;
    const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads_) reduction(+ : flop_all, keep)
    {
      double flop = 0;
      keep += cpu_peak::fma_loop(fp64, kIters, &flop);
      flop_all += flop;
    }
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (keep == 12345.678) flop_all += 1;  // keeps the loops' results
    best = std::max(best, flop_all / s);
  }
  return best;
}

std::string CpuBackend::flop_unit() const { return cpu_peak::widest_unit().name; }

}  // namespace gmmdiff
