// gmmdiff: the bounds' chunk kernels on the CPU (bounds_cpu.hpp).
//
// A tile of kBoundsTileRows rows is stepped through the schedule while it sits in cache: per step,
// the logits' product G1 = X P^T (and G2 = (X*X) Q^T for diagonal components), the posterior
// weights (detail::posterior_weights_row, as the sampler), the score's product S1 = W P (and
// S2 = W Q), then one pass over each row for what the bound needs:
//   path bound (ddpm): the forward step x_t = sqrt(alpha) x_{t-1} + sqrt(beta) w first, and after
//     the score at x_t, |w|^2, <w, e>, |e|^2 -> detail::path_step_term;
//   flow (ddim): the Jacobian's K x K Gram (detail::jacobian_gram_isotropic) or rows
//     (detail::jacobian_rows_diagonal), log det(I + kappa J) (detail::log_det_isotropic /
//     log_det_diagonal), then the sampler's update (detail::update_coord).
// Napkin maths per row-step: 4 K d FLOP of products (8 K d diagonal), d normals (path bound: a
// quarter of a Philox call and half a Box-Muller each), and for the flow O(K^2 + K^3 / 3)
// (isotropic) or O(K^2 d) (diagonal) for the determinant.
#include "bounds/bounds_cpu.hpp"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "bounds/bounds_normals.hpp"
#include "bounds/score_jacobian.hpp"
#include "core/system.hpp"
#include "gmmdiff/detail/bounds_math.hpp"
#include "gmmdiff/detail/philox.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

extern "C" void openblas_set_num_threads(int);

namespace gmmdiff {

namespace {

/// A mixture laid out for detail::mixture_draw and detail::mixture_log_density_no2pi.
struct MixtureTables {
  int K = 0, d = 0;
  bool diagonal = false;
  std::vector<double> cum, means, sd, inv_var, logc;

  explicit MixtureTables(const Mixture& m) : K(m.K), d(m.d), diagonal(m.cov == Covariance::Diagonal), means(m.means) {
    cum.resize(K);
    double c = 0;
    for (int k = 0; k < K; ++k) cum[k] = (c += m.weights[k]);
    cum[K - 1] = 1.0;
    logc.resize(K);
    if (diagonal) {
      sd.resize(std::size_t(K) * d);
      inv_var.resize(sd.size());
    } else {
      sd.resize(K);
      inv_var.resize(K);
    }
    for (int k = 0; k < K; ++k) {
      double ld = 0;
      if (diagonal) {
        for (int j = 0; j < d; ++j) {
          const double v = m.var_diag[std::size_t(k) * d + j];
          sd[std::size_t(k) * d + j] = std::sqrt(v);
          inv_var[std::size_t(k) * d + j] = 1.0 / v;
          ld += std::log(v);
        }
      } else {
        const double v = m.sd[k] * m.sd[k];
        sd[k] = m.sd[k];
        inv_var[k] = 1.0 / v;
        ld = d * std::log(v);
      }
      logc[k] = std::log(m.weights[k]) - 0.5 * ld;
    }
  }
  double log_density(const double* x) const {
    return detail::mixture_log_density_no2pi(K, d, diagonal, logc.data(), means.data(), inv_var.data(), x);
  }
  void draw(uint64_t seed, uint32_t stream, uint64_t particle, double* x) const {
    detail::mixture_draw(seed, stream, particle, K, d, diagonal, cum.data(), means.data(), sd.data(), x);
  }
};

/// Per-thread buffers of one tile (the rows themselves live in the chunk).
struct TileBuffers {
  bounds::NormalsBuffer normals;  // the forward noise of the tile's rows
  std::vector<double> G1, G1raw, G2, sq, S1, S2, rsq, s2row;
  std::vector<double> M, A, kscratch, U;  // the Jacobian at one row
  void size_for(int d, int K, bool diagonal) {
    const std::size_t R = kBoundsTileRows;
    G1.resize(R * K);
    G1raw.resize(R * K);
    G2.resize(diagonal ? R * K : 0);
    sq.resize(diagonal ? R * d : 0);
    S1.resize(R * d);
    S2.resize(diagonal ? R * d : 0);
    rsq.resize(R);
    s2row.resize(R);
    M.resize(std::size_t(K) * K);
    A.resize(std::size_t(K) * K);
    kscratch.resize(K);
    U.resize(diagonal ? std::size_t(K) * d : 0);
  }
};

/// The score's products at the nr rows of X [nr, d] for step c: the posterior weights in s.G1
/// [nr, K], S1 = W P [nr, d], and the coefficient of -x in the score, s2row [nr] (isotropic:
/// sum_k w_k Q_k; equal variances: Q_0) or S2 = W Q [nr, d] (diagonal); rsq = |x|^2. With
/// keep_raw, G1raw holds X P^T (the logits' product before the softmax, which the Jacobian needs).
void tile_score(const StepCoeffs& c, const double* X, int nr, int d, int K, TileBuffers& s, bool keep_raw) {
  const detail::QMode mode =
      c.diagonal ? detail::QMode::Diagonal : (c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic);
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, K, d, 1.0, X, d, c.P.data(), d, 0.0, s.G1.data(), K);
  if (mode == detail::QMode::Diagonal) {
    for (std::size_t i = 0; i < std::size_t(nr) * d; ++i) s.sq[i] = X[i] * X[i];
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nr, K, d, 1.0, s.sq.data(), d, c.Q.data(), d, 0.0,
                s.G2.data(), K);
  }
  if (keep_raw) std::copy(s.G1.begin(), s.G1.begin() + std::size_t(nr) * K, s.G1raw.begin());
  for (int r = 0; r < nr; ++r) {
    const double* x = X + std::size_t(r) * d;
    double q = 0;
    for (int j = 0; j < d; ++j) q += x[j] * x[j];
    s.rsq[r] = q;
    const double wq = detail::posterior_weights_row<double>(
        s.G1.data() + std::size_t(r) * K, mode == detail::QMode::Diagonal ? s.G2.data() + std::size_t(r) * K : nullptr,
        q, c.bias.data(), c.Q.data(), K, mode);
    s.s2row[r] = mode == detail::QMode::Uniform ? c.Q[0] : wq;
  }
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, K, 1.0, s.G1.data(), K, c.P.data(), d, 0.0,
              s.S1.data(), d);
  if (mode == detail::QMode::Diagonal)
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, d, K, 1.0, s.G1.data(), K, c.Q.data(), d, 0.0,
                s.S2.data(), d);
}

/// One forward step of the path bound on a tile: x_t = sqrt(alpha) x_{t-1} + sqrt(beta) w, then the
/// reverse kernel's score e at x_t and the step's log rev - log fwd added to acc.
void path_tile_step(const PathStep& st, uint64_t seed, double* X, double* acc, const uint64_t* pid, int nr, int d,
                    int K, TileBuffers& s) {
  const StepCoeffs& c = st.c;
  const detail::PathStepTerms& tm = st.terms;
  s.normals.fill(seed, kStreamBoundForward, pid, nr, static_cast<uint32_t>(c.t), d);
  const double* Z = s.normals.z();
  const int dz = s.normals.stride();
  for (int r = 0; r < nr; ++r) {
    double* x = X + std::size_t(r) * d;
    const double* z = Z + std::size_t(r) * dz;
    for (int j = 0; j < d; ++j) x[j] = tm.sqrt_alpha * x[j] + tm.sqrt_beta * z[j];
  }
  tile_score(c, X, nr, d, K, s, false);
  const bool diag = c.diagonal, has_bias = !c.bias_dir.empty();
  for (int r = 0; r < nr; ++r) {
    const double* x = X + std::size_t(r) * d;
    const double* z = Z + std::size_t(r) * dz;
    const double* s1 = s.S1.data() + std::size_t(r) * d;
    const double* s2 = diag ? s.S2.data() + std::size_t(r) * d : nullptr;
    const double s2r = s.s2row[r];
    double ww = 0, we = 0, ee = 0;
    // A fixed vector reduction (the same order for every row, thread and chunk).
#pragma omp simd reduction(+ : ww, we, ee)
    for (int j = 0; j < d; ++j) {
      const double sc = detail::score_coord<double>(x[j], s1[j], diag ? s2[j] : s2r);
      const double e = c.score_scale * sc + (has_bias ? c.bias_dir[j] : 0.0);
      ww += z[j] * z[j];
      we += z[j] * e;
      ee += e * e;
    }
    acc[r] += detail::path_step_term(tm, ww, we, ee);
  }
}

/// One reverse step of the flow on a tile: log det D Phi_t at each particle (subtracted from
/// log q), then the sampler's update. Returns t when I + kappa_j J_t is not positive definite at
/// some particle of the tile, else 0.
int flow_tile_step(const FlowStep& st, double* Y, double* acc, int nr, int d, int K, TileBuffers& s) {
  const StepCoeffs& c = st.c;
  tile_score(c, Y, nr, d, K, s, true);
  const bool diag = c.diagonal, has_bias = !c.bias_dir.empty();
  const detail::StepScalars<double> sc{c.kappa, c.inv_sqrt_alpha, 0.0, c.score_scale, 0.0, static_cast<uint32_t>(c.t),
                                       0};
  int fold = 0;
  for (int r = 0; r < nr; ++r) {
    double* y = Y + std::size_t(r) * d;
    const double* w = s.G1.data() + std::size_t(r) * K;
    const double* s1 = s.S1.data() + std::size_t(r) * d;
    const double* s2 = diag ? s.S2.data() + std::size_t(r) * d : nullptr;
    double ld = 0;
    bool pd = false;
    if (!diag) {
      const double a = detail::jacobian_gram_isotropic(K, w, s.G1raw.data() + std::size_t(r) * K, s.rsq[r],
                                                       c.Q.data(), st.PP.data(), s.M.data(), s.kscratch.data());
      pd = detail::log_det_isotropic(K, d, a, s.M.data(), st.kappa_j, s.A.data(), &ld);
      if (!pd) {  // b = 1 - kappa a <= 0, or M numerically indefinite: the eigenvalues decide
        bounds::JacobianAt ja;
        ja.d = d;
        ja.K = K;
        ja.a = a;
        ja.M = s.M;
        const bounds::LogDet L = bounds::log_det_i_plus_kappa_j(ja, st.kappa_j);
        pd = L.positive_definite;
        ld = L.value;
      }
    } else {
      detail::jacobian_rows_diagonal(K, d, w, y, c.P.data(), c.Q.data(), s1, s2, s.U.data());
      pd = detail::log_det_diagonal(K, d, s2, s.U.data(), st.kappa_j, s.A.data(), &ld);
      if (!pd) {  // some 1 - kappa D_jj <= 0: a dense d x d Cholesky decides
        bounds::JacobianAt ja;
        ja.d = d;
        ja.K = K;
        ja.diagonal = true;
        ja.dvec.assign(s2, s2 + d);
        ja.U = s.U;
        const bounds::LogDet L = bounds::log_det_i_plus_kappa_j(ja, st.kappa_j);
        pd = L.positive_definite;
        ld = L.value;
      }
    }
    if (!pd) fold = c.t;
    acc[r] -= st.d_log_inv_sqrt_alpha + ld;  // log q_{t-1}(Y_{t-1}) = log q_t(Y_t) - log det D Phi_t(Y_t)
    const double s2r = s.s2row[r];
    for (int j = 0; j < d; ++j) {
      const double score = detail::score_coord<double>(y[j], s1[j], diag ? s2[j] : s2r);
      y[j] = detail::update_coord<double>(y[j], score, has_bias ? c.bias_dir[j] : 0.0, 0.0, 0.0, sc);
    }
  }
  return fold;
}

constexpr double kHostMemoryFraction = 0.25;                 // of MemAvailable, for a chunk's rows
constexpr double kMaxChunkStateBytes = 256.0 * (1 << 20);    // and at most this much

}  // namespace

struct CpuBoundsKernels::Scratch {
  TileBuffers buf;
};

CpuBoundsKernels::CpuBoundsKernels(int threads) : threads_(threads > 0 ? threads : omp_get_max_threads()) {
  // Our OpenMP loops own the parallelism; BLAS runs single-threaded inside each tile.
  openblas_set_num_threads(1);
  for (int i = 0; i < threads_; ++i) scratch_.push_back(std::make_unique<Scratch>());
}

CpuBoundsKernels::~CpuBoundsKernels() = default;

std::string CpuBoundsKernels::device_name() const {
  return std::to_string(threads_) + (threads_ == 1 ? " thread" : " threads");
}

uint64_t CpuBoundsKernels::max_rows(int d, int K) const {
  const double per_row = 8.0 * (d + 2);
  const double scratch = double(threads_) * kBoundsTileRows * 8.0 * (5.0 * d + 4.0 * K + 4) +
                         double(threads_) * 8.0 * (2.0 * K * K + double(K) * d);
  const double budget = std::min(kMaxChunkStateBytes, kHostMemoryFraction * double(mem_budget_bytes())) - scratch;
  if (budget < per_row * kBoundsTileRows) return 0;
  return static_cast<uint64_t>(budget / per_row);
}

uint64_t CpuBoundsKernels::path_unit(int M) const {
  GMMDIFF_EXPECTS(M >= 1, "path bound: M = ", M, " (need M >= 1)");
  return kBoundsTileRows / std::gcd<uint64_t>(kBoundsTileRows, static_cast<uint64_t>(M));
}

void CpuBoundsKernels::path_begin(const PathPlan& plan, uint64_t first, uint64_t count) {
  const uint64_t unit = path_unit(plan.M), M = static_cast<uint64_t>(plan.M);
  GMMDIFF_EXPECTS(first % unit == 0 && (count % unit == 0 || first + count == plan.n) && first + count <= plan.n,
                  "path bound: the chunk of outer draws ", first, " + ", count, " is not aligned to ", unit);
  GMMDIFF_EXPECTS(!plan.prefixes.empty() && plan.prefixes.front() >= 1 && plan.prefixes.back() <= plan.M,
                  "path bound: prefixes must lie in 1..M");
  path_ = plan;
  first_ = first;
  count_ = count;
  rows_ = count * M;
  const int d = plan.d;
  try {
    X_.assign(rows_ * d, 0.0);
    acc_.assign(rows_, 0.0);
    pid_.assign(rows_, 0);
  } catch (const std::bad_alloc&) {
    throw ResourceError("bounds: cannot allocate a chunk of " + std::to_string(rows_) + " continuations of d = " +
                        std::to_string(d));
  }
  const MixtureTables outer(plan.outer);
  for (auto& s : scratch_) s->buf.size_for(d, plan.K, plan.outer.cov == Covariance::Diagonal);
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(count); ++c) {
    const uint64_t i = first + c;
    double* x0 = X_.data() + std::size_t(c) * M * d;
    outer.draw(plan.seed, kStreamBoundOuter, i, x0);
    const double lps = outer.log_density(x0);
    for (uint64_t m = 0; m < M; ++m) {
      if (m > 0) std::copy(x0, x0 + d, x0 + m * d);
      acc_[c * M + m] = -lps;
      pid_[c * M + m] = detail::continuation_particle(i, m);
    }
  }
}

void CpuBoundsKernels::path_step(const PathStep& st) {
  GMMDIFF_EXPECTS(st.c.P.size() == std::size_t(path_.K) * path_.d, "path bound: step coefficients for ",
                  st.c.P.size(), " values, expected K x d = ", path_.K, " x ", path_.d);
  const int d = path_.d, K = path_.K;
  const std::size_t ntiles = (rows_ + kBoundsTileRows - 1) / kBoundsTileRows;
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1)
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(ntiles); ++b) {
    const std::size_t r0 = static_cast<std::size_t>(b) * kBoundsTileRows;
    const int nr = static_cast<int>(std::min<std::size_t>(kBoundsTileRows, rows_ - r0));
    path_tile_step(st, path_.seed, X_.data() + r0 * d, acc_.data() + r0, pid_.data() + r0, nr, d, K,
                   scratch_[omp_get_thread_num()]->buf);
  }
}

void CpuBoundsKernels::path_end(double* log_rm) {
  const int d = path_.d, P = static_cast<int>(path_.prefixes.size());
  const uint64_t M = static_cast<uint64_t>(path_.M);
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::ptrdiff_t c = 0; c < static_cast<std::ptrdiff_t>(count_); ++c) {
    // log N(x_T; 0, I) without its 2 pi constant, then the mean of the first prefixes[p] weights,
    // summed in the order m = 0, 1, ... whatever the tiles were.
    detail::LogSumExpAcc lse;
    int p = 0;
    for (uint64_t m = 0; m < M && p < P; ++m) {
      const std::size_t r = std::size_t(c) * M + m;
      const double* x = X_.data() + r * d;
      double q = 0;
      for (int j = 0; j < d; ++j) q += x[j] * x[j];
      lse.push(acc_[r] - 0.5 * q);
      while (p < P && m + 1 == static_cast<uint64_t>(path_.prefixes[p])) {
        log_rm[std::size_t(c) * P + p] = lse.value() - std::log(static_cast<double>(path_.prefixes[p]));
        ++p;
      }
    }
  }
}

void CpuBoundsKernels::flow_begin(const FlowPlan& plan, uint64_t first, uint64_t count) {
  GMMDIFF_EXPECTS(first % kBoundsTileRows == 0 && (count % kBoundsTileRows == 0 || first + count == plan.n) &&
                      first + count <= plan.n,
                  "flow: the chunk of particles ", first, " + ", count, " is not aligned to ", kBoundsTileRows);
  flow_ = plan;
  first_ = first;
  count_ = rows_ = count;
  fold_ = 0;
  const int d = plan.d;
  try {
    X_.assign(rows_ * d, 0.0);
    acc_.assign(rows_, 0.0);
  } catch (const std::bad_alloc&) {
    throw ResourceError("bounds: cannot allocate a chunk of " + std::to_string(rows_) + " particles of d = " +
                        std::to_string(d));
  }
  for (auto& s : scratch_) s->buf.size_for(d, plan.K, plan.reference.cov == Covariance::Diagonal);
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::ptrdiff_t r = 0; r < static_cast<std::ptrdiff_t>(count); ++r) {
    double* y = X_.data() + std::size_t(r) * d;
    double q = 0;
    for (int b = 0; 4 * b < d; ++b) {
      double z[4];
      detail::philox_normal4<double>(plan.seed, kStreamInit, first + r, 0, static_cast<uint32_t>(b), z);
      for (int c = 0; c < 4 && 4 * b + c < d; ++c) {
        y[4 * b + c] = z[c];
        q += z[c] * z[c];
      }
    }
    acc_[r] = -0.5 * q;  // log N(Y_T; 0, I) without its 2 pi constant
  }
}

void CpuBoundsKernels::flow_step(const FlowStep& st) {
  GMMDIFF_EXPECTS(st.c.P.size() == std::size_t(flow_.K) * flow_.d, "flow: step coefficients for ", st.c.P.size(),
                  " values, expected K x d = ", flow_.K, " x ", flow_.d);
  const int d = flow_.d, K = flow_.K;
  const std::size_t ntiles = (rows_ + kBoundsTileRows - 1) / kBoundsTileRows;
  int fold = 0;
#pragma omp parallel for num_threads(threads_) schedule(dynamic, 1) reduction(max : fold)
  for (std::ptrdiff_t b = 0; b < static_cast<std::ptrdiff_t>(ntiles); ++b) {
    const std::size_t r0 = static_cast<std::size_t>(b) * kBoundsTileRows;
    const int nr = static_cast<int>(std::min<std::size_t>(kBoundsTileRows, rows_ - r0));
    fold = std::max(fold, flow_tile_step(st, X_.data() + r0 * d, acc_.data() + r0, nr, d, K,
                                         scratch_[omp_get_thread_num()]->buf));
  }
  fold_ = std::max(fold_, fold);
}

int CpuBoundsKernels::flow_end(double* log_ratio) {
  const MixtureTables ref(flow_.reference);
  const int d = flow_.d;
#pragma omp parallel for num_threads(threads_) schedule(static)
  for (std::ptrdiff_t r = 0; r < static_cast<std::ptrdiff_t>(rows_); ++r)
    log_ratio[r] = ref.log_density(X_.data() + std::size_t(r) * d) - acc_[r];
  return fold_;
}

}  // namespace gmmdiff
