// gmmdiff: CudaBoundsKernels (cuda_bounds.hpp).
//
// The ddpm path bound, one step t on a chunk of rows = outer draws x M continuations (the CPU's
// path_tile_step, the same order of operations):
//   X <- sqrt(alpha) X + sqrt(beta) W, W -> Z         path_forward_kernel (Philox in place)
//   G = X P^T                                          cuBLAS DGEMM       [rows, K]
//   (diagonal: Xsq = X*X, G2 = Xsq Q^T)                square_kernel + DGEMM
//   G -> W, s2                                         posterior_weights_kernel (the sampler's)
//   S1 = W P (diagonal: S2 = W Q)                      cuBLAS DGEMM       [rows, d]
//   acc += path_step_term(|w|^2, <w, e>, |e|^2)        path_term_kernel (W lanes a row)
// and at the end log N(x_T; 0, I) (row_sumsq_kernel) and the log-sum-exp over each outer draw's
// continuations, in the order m = 0, 1, ... (path_prefix_kernel): count x P values come back.
// The ddim flow, one step t on a chunk of particles (the CPU's flow_tile_step):
//   G = Y P^T; isotropic: G1 = copy of G, |y|^2; diagonal: Ysq, G2     DGEMM, copies, row_sumsq
//   G -> W, s2; S1 = W P (diagonal: S2 = W Q)                           as above
//   log det(I + kappa J) at each particle, acc -= d log(1/sqrt(alpha)) + log det
//                                                      flow_logdet_*_kernel (a thread a particle)
//   the particles the determinant lemma did not decide: their spectrum or the dense matrix
//                                                      flow_fallback_kernel (reads the count on
//                                                      the device: no synchronisation)
//   Y <- the sampler's update                          update_kernel (the sampler's)
// and at the end log p(Y_s) - log q (flow_log_ratio_kernel): count values, the fold step and an
// error flag come back. Napkin maths in docs/cuda.md ("The bounds on the device").
#include "cuda/cuda_bounds.hpp"

#include <algorithm>
#include <climits>
#include <cstring>

#include "cuda/bounds_plan.hpp"
#include "cuda/kernels/bounds_kernels.hpp"
#include "cuda/kernels/gemm.hpp"
#include "cuda/kernels/step_kernels.hpp"
#include "cuda/rt/cuda_error.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::gpu {

namespace {

constexpr int kFlagCount = 0, kFlagFold = 1, kFlagError = 2, kFlags = 3;

detail::QMode qmode(const StepCoeffs& c) {
  return c.diagonal ? detail::QMode::Diagonal : (c.uniform_q ? detail::QMode::Uniform : detail::QMode::Isotropic);
}

}  // namespace

CudaBoundsKernels::CudaBoundsKernels()
    : device_name_([] {
        CUDA_CHECK(cudaSetDevice(0));
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        return std::string(prop.name);
      }()),
      stream_(),
      cublas_(stream_.get()) {
  coeffs_done_.emplace_back(false);
  coeffs_done_.emplace_back(false);
  d_flags_.resize(kFlags, "the bounds' flags");
}

CudaBoundsKernels::~CudaBoundsKernels() {
  // Queued work must finish before the buffers go. Never throws (device_memory.hpp).
  if (cudaStreamSynchronize(stream_.get()) != cudaSuccess) take_last_error();
}

std::size_t CudaBoundsKernels::bytes() const {
  return d_X_.bytes() + d_Z_.bytes() + d_S1_.bytes() + d_Xsq_.bytes() + d_G_.bytes() + d_G1_.bytes() +
         d_G2_.bytes() + d_s2_.bytes() + d_acc_.bytes() + d_rsq_.bytes() + d_out_.bytes() + d_prefixes_.bytes() +
         d_M_.bytes() + d_A_.bytes() + d_v_.bytes() + d_U_.bytes() + d_fb_rows_.bytes() + d_flags_.bytes() +
         d_dense_.bytes() + d_coeffs_.bytes() + d_tables_.bytes();
}

uint64_t CudaBoundsKernels::max_rows(int d, int K) const {
  GMMDIFF_EXPECTS(d >= 1 && K >= 1, "cuda bounds: max_rows needs d >= 1 and K >= 1, got d = ", d, ", K = ", K);
  std::size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  return bounds_rows_for(free_bytes + bytes(), d, K);
}

uint64_t CudaBoundsKernels::path_unit(int M) const {
  GMMDIFF_EXPECTS(M >= 1, "path bound: M = ", M, " (need M >= 1)");
  return 1;
}

void CudaBoundsKernels::check_step(const StepCoeffs& c, int d, int K, bool diagonal, const char* what) const {
  const std::size_t kd = std::size_t(K) * d;
  GMMDIFF_EXPECTS(c.P.size() == kd, what, ": step coefficients for ", c.P.size(), " values, expected K x d = ", K,
                  " x ", d);
  GMMDIFF_EXPECTS(c.diagonal == diagonal, what, ": step coefficients are ", c.diagonal ? "diagonal" : "isotropic",
                  " but the plan's mixture is not");
  GMMDIFF_EXPECTS(c.Q.size() == (diagonal ? kd : std::size_t(K)) && c.bias.size() == std::size_t(K) &&
                      (c.bias_dir.empty() || c.bias_dir.size() == std::size_t(d)),
                  what, ": step coefficients of the wrong shape (Q ", c.Q.size(), ", bias ", c.bias.size(),
                  ", bias_dir ", c.bias_dir.size(), ")");
  GMMDIFF_EXPECTS(c.t >= 1, what, ": step t = ", c.t);
}

void CudaBoundsKernels::upload_tables(const Mixture& m) {
  const PackedMixtureTables t = pack_mixture_tables(m);
  d_tables_.reserve(t.values.size(), "a mixture's tables");
  CUDA_CHECK(cudaMemcpyAsync(d_tables_.data(), t.values.data(), t.values.size() * sizeof(double),
                             cudaMemcpyHostToDevice, stream_.get()));
  tab_cum_ = t.cum;
  tab_means_ = t.means;
  tab_sd_ = t.sd;
  tab_inv_var_ = t.inv_var;
  tab_logc_ = t.logc;
  tab_K_ = t.K;
  tab_d_ = t.d;
  tab_diagonal_ = t.diagonal;
  sync_stream(stream_.get());  // t.values (pageable) goes out of scope
}

void CudaBoundsKernels::upload_coeffs(const StepCoeffs& c, const std::vector<double>& PP) {
  off_Q_ = c.P.size();
  off_bias_ = off_Q_ + c.Q.size();
  off_bdir_ = off_bias_ + c.bias.size();
  off_PP_ = off_bdir_ + c.bias_dir.size();
  const std::size_t n = off_PP_ + PP.size();
  d_coeffs_.reserve(n, "a step's coefficients");
  const int s = slot_;
  slot_ ^= 1;
  if (coeffs_pending_[s]) coeffs_done_[s].synchronize();  // its copy of two steps ago is done
  coeffs_pending_[s] = false;
  h_coeffs_[s].reserve(n, "a pinned buffer of step coefficients");
  double* h = h_coeffs_[s].data();
  std::copy(c.P.begin(), c.P.end(), h);
  std::copy(c.Q.begin(), c.Q.end(), h + off_Q_);
  std::copy(c.bias.begin(), c.bias.end(), h + off_bias_);
  std::copy(c.bias_dir.begin(), c.bias_dir.end(), h + off_bdir_);
  std::copy(PP.begin(), PP.end(), h + off_PP_);
  CUDA_CHECK(cudaMemcpyAsync(d_coeffs_.data(), h, n * sizeof(double), cudaMemcpyHostToDevice, stream_.get()));
  coeffs_done_[s].record(stream_.get());
  coeffs_pending_[s] = true;
}

// ---- the ddpm path bound ----

void CudaBoundsKernels::path_begin(const PathPlan& plan, uint64_t first, uint64_t count) {
  GMMDIFF_EXPECTS(plan.d >= 1 && plan.K >= 1 && plan.M >= 1, "path bound: d = ", plan.d, ", K = ", plan.K,
                  ", M = ", plan.M);
  GMMDIFF_EXPECTS(count >= 1 && first + count <= plan.n, "path bound: the chunk of outer draws ", first, " + ",
                  count, " exceeds n = ", plan.n);
  GMMDIFF_EXPECTS(!plan.prefixes.empty() && plan.prefixes.front() >= 1 && plan.prefixes.back() <= plan.M,
                  "path bound: prefixes must lie in 1..M");
  GMMDIFF_EXPECTS(std::is_sorted(plan.prefixes.begin(), plan.prefixes.end()), "path bound: prefixes must increase");
  const uint64_t M = static_cast<uint64_t>(plan.M);
  GMMDIFF_EXPECTS(count <= uint64_t(INT_MAX) / M, "path bound: a chunk of ", count, " outer draws x M = ", M,
                  " exceeds ", INT_MAX, " continuations");
  sync_stream(stream_.get());  // the previous chunk's buffers may still be in use
  work_ = Work::Path;
  path_ = plan;
  diagonal_ = plan.outer.cov == Covariance::Diagonal;
  first_ = first;
  count_ = count;
  rows_ = count * M;
  const std::size_t n = rows_, d = std::size_t(plan.d), K = std::size_t(plan.K);
  const std::size_t P = plan.prefixes.size();
  d_X_.reserve(n * d, "the chunk's continuations");
  d_Z_.reserve(n * d, "the continuations' forward noise");
  d_S1_.reserve(n * d, "S1 = W P");
  d_G_.reserve(n * K, "the logits and weights");
  d_s2_.reserve(n, "s2");
  d_acc_.reserve(n, "the log-weights");
  d_out_.reserve(std::max<std::size_t>(count * P, 1), "the outer draws' log R_m");
  d_prefixes_.reserve(P, "the prefixes");
  if (diagonal_) {
    d_Xsq_.reserve(n * d, "X*X and S2 = W Q");
    d_G2_.reserve(n * K, "G2 = (X*X) Q^T");
  }
  CUDA_CHECK(cudaMemcpyAsync(d_prefixes_.data(), plan.prefixes.data(), P * sizeof(int), cudaMemcpyHostToDevice,
                             stream_.get()));
  upload_tables(plan.outer);  // synchronises: plan.prefixes is copied by then too
  const DeviceMixtureTables mix{tab_K_,
                                tab_d_,
                                tab_diagonal_,
                                d_tables_.data() + tab_cum_,
                                d_tables_.data() + tab_means_,
                                d_tables_.data() + tab_sd_,
                                d_tables_.data() + tab_inv_var_,
                                d_tables_.data() + tab_logc_};
  launch_path_outer(d_X_.data(), d_acc_.data(), count, plan.M, plan.d, plan.seed, first, mix, stream_.get());
  launch_path_spread(d_X_.data(), d_acc_.data(), count, plan.M, plan.d, stream_.get());
}

void CudaBoundsKernels::path_step(const PathStep& st) {
  GMMDIFF_EXPECTS(work_ == Work::Path, "path bound: path_step called outside a chunk (path_begin first)");
  const StepCoeffs& c = st.c;
  const int d = path_.d, K = path_.K;
  check_step(c, d, K, diagonal_, "path bound");
  upload_coeffs(c, {});
  cudaStream_t s = stream_.get();
  cublasHandle_t h = cublas_.get();
  const double* P = d_coeffs_.data();
  const double* Q = P + off_Q_;
  const double* bias = P + off_bias_;
  const double* bdir = c.bias_dir.empty() ? nullptr : P + off_bdir_;
  const detail::QMode mode = qmode(c);
  const std::size_t rows = rows_;
  launch_path_forward(d_X_.data(), d_Z_.data(), rows, d, first_, path_.M, path_.seed, static_cast<uint32_t>(c.t),
                      st.terms.sqrt_alpha, st.terms.sqrt_beta, s);
  gemm_abt(h, rows, K, d, d_X_.data(), P, d_G_.data());  // G1 = X P^T
  if (diagonal_) {
    launch_square(d_X_.data(), d_Xsq_.data(), rows * std::size_t(d), s);
    gemm_abt(h, rows, K, d, d_Xsq_.data(), Q, d_G2_.data());  // G2 = (X*X) Q^T
  }
  launch_posterior_weights(d_G_.data(), diagonal_ ? d_G2_.data() : nullptr, d_X_.data(), bias, Q, d_s2_.data(), rows,
                           d, K, mode, s);
  gemm_ab(h, rows, K, d, d_G_.data(), P, d_S1_.data());  // S1 = W P
  if (diagonal_) gemm_ab(h, rows, K, d, d_G_.data(), Q, d_Xsq_.data());  // S2 = W Q (over X*X)
  launch_path_term(d_acc_.data(), d_X_.data(), d_Z_.data(), d_S1_.data(), diagonal_ ? d_Xsq_.data() : nullptr,
                   d_s2_.data(), bdir, rows, d, c.score_scale, st.terms, s);
}

void CudaBoundsKernels::path_end(double* log_rm) {
  GMMDIFF_EXPECTS(work_ == Work::Path, "path bound: path_end called outside a chunk (path_begin first)");
  GMMDIFF_EXPECTS(log_rm != nullptr, "path bound: path_end to a null pointer");
  cudaStream_t s = stream_.get();
  const int P = static_cast<int>(path_.prefixes.size());
  // log N(x_T; 0, I) without its 2 pi constant, added to every continuation's log-weight.
  launch_row_sumsq(d_X_.data(), d_acc_.data(), -0.5, d_acc_.data(), rows_, path_.d, s);
  launch_path_prefix_means(d_acc_.data(), count_, path_.M, d_prefixes_.data(), P, d_out_.data(), s);
  CUDA_CHECK(cudaMemcpyAsync(log_rm, d_out_.data(), count_ * std::size_t(P) * sizeof(double), cudaMemcpyDeviceToHost,
                             s));
  sync_stream(s);
  work_ = Work::None;
}

// ---- the ddim flow ----

void CudaBoundsKernels::flow_begin(const FlowPlan& plan, uint64_t first, uint64_t count) {
  GMMDIFF_EXPECTS(plan.d >= 1 && plan.K >= 1, "flow: d = ", plan.d, ", K = ", plan.K);
  GMMDIFF_EXPECTS(count >= 1 && first + count <= plan.n, "flow: the chunk of particles ", first, " + ", count,
                  " exceeds n = ", plan.n);
  GMMDIFF_EXPECTS(count <= uint64_t(INT_MAX), "flow: a chunk of ", count, " particles exceeds ", INT_MAX);
  sync_stream(stream_.get());
  work_ = Work::Flow;
  flow_ = plan;
  diagonal_ = plan.reference.cov == Covariance::Diagonal;
  first_ = first;
  count_ = rows_ = count;
  const std::size_t n = rows_, d = std::size_t(plan.d), K = std::size_t(plan.K);
  d_X_.reserve(n * d, "the chunk's particles");
  d_S1_.reserve(n * d, "S1 = W P");
  d_G_.reserve(n * K, "the logits and weights");
  d_s2_.reserve(n, "s2");
  d_acc_.reserve(n, "log q");
  d_out_.reserve(n, "the particles' log p - log q");
  d_fb_rows_.reserve(n, "the fallback list");
  d_A_.reserve(n * K * K, "the determinant's K x K matrices");
  if (diagonal_) {
    d_Xsq_.reserve(n * d, "Y*Y and S2 = W Q");
    d_G2_.reserve(n * K, "G2 = (Y*Y) Q^T");
    d_U_.reserve(n * K * d, "the Jacobian's rows U");
    dense_slots_ = dense_fallback_slots(plan.d);
    if (dense_slots_ > 0) d_dense_.reserve(std::size_t(dense_slots_) * d * d, "the dense fallback's d x d matrices");
  } else {
    d_G1_.reserve(n * K, "the logits' products");
    d_rsq_.reserve(n, "|y|^2");
    d_M_.reserve(n * K * K, "the Jacobian's Gram matrices");
    d_v_.reserve(n * K, "the Gram's vectors");
  }
  cudaStream_t s = stream_.get();
  CUDA_CHECK(cudaMemsetAsync(d_flags_.data(), 0, kFlags * sizeof(int), s));
  upload_tables(plan.reference);
  // Y_T as the sampler draws it (kStreamInit, particle first + r), log q = log N(Y_T; 0, I) - 2 pi.
  launch_init_normal(d_X_.data(), n, plan.d, plan.seed, first, s);
  launch_row_sumsq(d_X_.data(), nullptr, -0.5, d_acc_.data(), n, plan.d, s);
}

void CudaBoundsKernels::flow_step(const FlowStep& st) {
  GMMDIFF_EXPECTS(work_ == Work::Flow, "flow: flow_step called outside a chunk (flow_begin first)");
  const StepCoeffs& c = st.c;
  const int d = flow_.d, K = flow_.K;
  check_step(c, d, K, diagonal_, "flow");
  GMMDIFF_EXPECTS(diagonal_ || st.PP.size() == std::size_t(K) * K, "flow: P P^T has ", st.PP.size(),
                  " values, expected K x K = ", K, " x ", K);
  upload_coeffs(c, diagonal_ ? std::vector<double>() : st.PP);
  cudaStream_t s = stream_.get();
  cublasHandle_t h = cublas_.get();
  const double* P = d_coeffs_.data();
  const double* Q = P + off_Q_;
  const double* bias = P + off_bias_;
  const double* bdir = c.bias_dir.empty() ? nullptr : P + off_bdir_;
  const double* PP = P + off_PP_;
  const std::size_t rows = rows_;
  double* Y = d_X_.data();
  gemm_abt(h, rows, K, d, Y, P, d_G_.data());  // G1 = Y P^T
  if (diagonal_) {
    launch_square(Y, d_Xsq_.data(), rows * std::size_t(d), s);
    gemm_abt(h, rows, K, d, d_Xsq_.data(), Q, d_G2_.data());
  } else {
    CUDA_CHECK(cudaMemcpyAsync(d_G1_.data(), d_G_.data(), rows * std::size_t(K) * sizeof(double),
                               cudaMemcpyDeviceToDevice, s));
    launch_row_sumsq(Y, nullptr, 1.0, d_rsq_.data(), rows, d, s);
  }
  launch_posterior_weights(d_G_.data(), diagonal_ ? d_G2_.data() : nullptr, Y, bias, Q, d_s2_.data(), rows, d, K,
                           qmode(c), s);
  gemm_ab(h, rows, K, d, d_G_.data(), P, d_S1_.data());
  if (diagonal_) gemm_ab(h, rows, K, d, d_G_.data(), Q, d_Xsq_.data());

  FlowScratch scr;
  scr.M = d_M_.data();
  scr.A = d_A_.data();
  scr.v = d_v_.data();
  scr.U = d_U_.data();
  scr.stride = rows;
  FlowFallback fb;
  fb.count = reinterpret_cast<unsigned int*>(d_flags_.data() + kFlagCount);
  fb.rows = d_fb_rows_.data();
  fb.fold = d_flags_.data() + kFlagFold;
  fb.error = d_flags_.data() + kFlagError;
  fb.dense = d_dense_.empty() ? nullptr : d_dense_.data();
  fb.slots = dense_slots_;
  CUDA_CHECK(cudaMemsetAsync(fb.count, 0, sizeof(unsigned int), s));
  if (diagonal_)
    launch_flow_logdet_diagonal(d_acc_.data(), d_G_.data(), Y, d_S1_.data(), d_Xsq_.data(), P, Q, rows, d, K,
                                st.kappa_j, st.d_log_inv_sqrt_alpha, scr, fb, s);
  else
    launch_flow_logdet_isotropic(d_acc_.data(), d_G_.data(), d_G1_.data(), d_rsq_.data(), Q, PP, rows, d, K,
                                 st.kappa_j, st.d_log_inv_sqrt_alpha, scr, fb, s);
  launch_flow_fallback(d_acc_.data(), diagonal_ ? d_Xsq_.data() : nullptr, rows, d, K, diagonal_, st.kappa_j,
                       st.d_log_inv_sqrt_alpha, c.t, scr, fb, s);
  // The sampler's update (sigma = 0, no score noise): the CPU's update_coord, coordinate by coordinate.
  const detail::StepScalars<double> sc{c.kappa, c.inv_sqrt_alpha, 0.0, c.score_scale, 0.0,
                                       static_cast<uint32_t>(c.t), flow_.seed};
  launch_update(Y, d_S1_.data(), diagonal_ ? d_Xsq_.data() : nullptr, d_s2_.data(), bdir, rows, d, first_, sc, false,
                false, s);
}

int CudaBoundsKernels::flow_end(double* log_ratio) {
  GMMDIFF_EXPECTS(work_ == Work::Flow, "flow: flow_end called outside a chunk (flow_begin first)");
  GMMDIFF_EXPECTS(log_ratio != nullptr, "flow: flow_end to a null pointer");
  cudaStream_t s = stream_.get();
  const DeviceMixtureTables ref{tab_K_,
                                tab_d_,
                                tab_diagonal_,
                                d_tables_.data() + tab_cum_,
                                d_tables_.data() + tab_means_,
                                d_tables_.data() + tab_sd_,
                                d_tables_.data() + tab_inv_var_,
                                d_tables_.data() + tab_logc_};
  launch_flow_log_ratio(d_X_.data(), d_acc_.data(), rows_, ref, d_out_.data(), s);
  int flags[kFlags] = {0, 0, 0};
  CUDA_CHECK(cudaMemcpyAsync(log_ratio, d_out_.data(), rows_ * sizeof(double), cudaMemcpyDeviceToHost, s));
  CUDA_CHECK(cudaMemcpyAsync(flags, d_flags_.data(), sizeof flags, cudaMemcpyDeviceToHost, s));
  sync_stream(s);
  work_ = Work::None;
  GMMDIFF_EXPECTS(flags[kFlagError] == 0, "log det(I + kappa J): some 1 - kappa D_jj <= 0 and d = ", flow_.d,
                  " is too large for the dense d x d fallback (at most ", detail::kMaxDenseLogDetD, ")");
  return flags[kFlagFold];
}

}  // namespace gmmdiff::gpu
