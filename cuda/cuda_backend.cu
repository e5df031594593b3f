// gmmdiff: CudaBackend (cuda_backend.hpp).
//
// One step on a chunk of `rows` particles (Real = float or double, row-major), products path:
//   G = Y P^T                          cuBLAS gemm                      [rows, K]
//   Diagonal: Ysq = Y*Y, G2 = Ysq Q^T  square_kernel + gemm             [rows, K]
//   G -> W (posterior weights), s2     posterior_weights_kernel (a group of lanes per row, online
//                                      log-sum-exp: one read of G, one read-write; weights_lane.hpp)
//   S1 = W P; Diagonal: S2 = W Q       cuBLAS gemm (S2 reuses Ysq)      [rows, d]
//   Y <- update(Y, S1, S2 | s2, noise) update_kernel (thread per row x 4 coordinates)
// Napkin maths: 4 K d FLOP per particle (6 K d Diagonal), and these unfused passes move about
// (6 d + 4 K) Real per particle where the fused step (fused_step.hpp) moves 2 d per launch.
// docs/cuda.md compares the two paths, says how "auto" chooses and what a chunk costs on each.
#include "cuda/cuda_backend.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "cuda/rt/cuda_error.hpp"
#include "cuda/rt/cuda_event.hpp"
#include "cuda/rt/stage_plan.hpp"
#include "cuda/kernels/fused_step.hpp"
#include "cuda/kernels/gemm.hpp"
#include "cuda/kernels/histogram_kernels.hpp"
#include "cuda/kernels/step_kernels.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/backend.hpp"

namespace gmmdiff::gpu {

namespace {

template <typename Real>
void to_real(const std::vector<double>& src, std::vector<Real>& dst) {
  dst.resize(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<Real>(src[i]);
}

template <typename T>
void upload_exact(const std::vector<T>& src, DeviceBuffer<T>& dst, cudaStream_t stream, const char* what) {
  dst.resize(src.size(), what);
  if (!src.empty())
    CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), src.size() * sizeof(T),
                               cudaMemcpyHostToDevice, stream));
}

}  // namespace

// ---- construction ----

CudaBackend::CudaBackend()
    : device_name_([] {
        CUDA_CHECK(cudaSetDevice(0));
        cudaDeviceProp prop{};
        CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
        return std::string(prop.name);
      }()),
      stream_(),
      cublas_(stream_.get()) {
  // In the body: members declared after device_name_ are initialised after its lambda runs.
  CUDA_CHECK(cudaDeviceGetAttribute(&cc_major_, cudaDevAttrComputeCapabilityMajor, 0));
  CUDA_CHECK(cudaDeviceGetAttribute(&cc_minor_, cudaDevAttrComputeCapabilityMinor, 0));
  d_scalar_.resize(1, "the non-finite row count");
}

CudaBackend::~CudaBackend() {
  // Let queued work finish before the buffers go. Never throws: a failure here is left to the
  // frees after it (device_memory.hpp), and cleared so that no later check reads it.
  if (cudaStreamSynchronize(stream_.get()) != cudaSuccess) take_last_error();
}

template <>
ChunkWorkspace<float>& CudaBackend::ws<float>() { return ws32_; }
template <>
ChunkWorkspace<double>& CudaBackend::ws<double>() { return ws64_; }
template <>
const ChunkWorkspace<float>& CudaBackend::ws<float>() const { return ws32_; }
template <>
const ChunkWorkspace<double>& CudaBackend::ws<double>() const { return ws64_; }

void CudaBackend::check_begun(const char* what) const {
  GMMDIFF_EXPECTS(begun_, "cuda backend: ", what, " called before begin()");
}

void CudaBackend::check_rows(const char* what, std::size_t rows) const {
  check_begun(what);
  GMMDIFF_EXPECTS(rows <= shape_.chunk_rows, "cuda backend: ", what, " of ", rows,
                  " rows exceeds the chunk capacity ", shape_.chunk_rows, " given to begin()");
}

// ---- memory ----

std::size_t CudaBackend::max_chunk_rows(const RunShape& shape) const {
  GMMDIFF_EXPECTS(shape.d >= 1 && shape.K >= 1, "cuda backend: max_chunk_rows needs d >= 1 and "
                  "K >= 1, got d = ", shape.d, ", K = ", shape.K);
  const PathChoice choice = resolve_step_path(path_request_, shape, cc_major_, cc_minor_);
  std::size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // Memory this backend holds for a previous run is freed by the next begin(): count it as free.
  free_bytes += ws32_.bytes() + ws64_.bytes();
  return chunk_rows_for(free_bytes, chunk_cost(shape, choice.path));
}

// ---- begin ----

void CudaBackend::begin(const RunShape& shape, const Mixture& target) {
  GMMDIFF_EXPECTS(shape.d >= 1 && shape.K >= 1, "cuda backend: begin needs d >= 1 and K >= 1, got d = ",
                  shape.d, ", K = ", shape.K);
  GMMDIFF_EXPECTS(shape.chunk_rows >= 1, "cuda backend: begin needs chunk_rows >= 1");
  GMMDIFF_EXPECTS(shape.chunk_rows <= static_cast<std::size_t>(INT_MAX),
                  "cuda backend: chunk_rows ", shape.chunk_rows, " exceeds ", INT_MAX);
  GMMDIFF_EXPECTS(target.d == shape.d, "cuda backend: target has d = ", target.d,
                  " but the run has d = ", shape.d);
  GMMDIFF_EXPECTS(target.K >= 1 && target.weights.size() == static_cast<std::size_t>(target.K) &&
                      target.means.size() == static_cast<std::size_t>(target.K) * target.d,
                  "cuda backend: target mixture is not validated (sizes of weights/means)");
  sync_stream(stream_.get());
  begun_ = false;
  rows_ = 0;
  first_ = 0;
  // A path this shape cannot take fails here, before any allocation, and leaves the backend as it was.
  const PathChoice choice = resolve_step_path(path_request_, shape, cc_major_, cc_minor_);
  // Free the previous run's memory before allocating this one's.
  ws32_.release();
  ws64_.release();
  shape_ = shape;
  choice_ = choice;
  last_path_ = path_name(choice_);

  // Target for fill_target, in double (its K may differ from the score model's shape.K).
  const int Kt = target.K, d = target.d;
  std::vector<double> sd(static_cast<std::size_t>(Kt) * d), cum(Kt);
  for (int k = 0; k < Kt; ++k)
    for (int j = 0; j < d; ++j) sd[static_cast<std::size_t>(k) * d + j] = std::sqrt(target.var(k, j));
  double acc = 0;
  for (int k = 0; k < Kt; ++k) {
    acc += target.weights[k];
    cum[k] = acc;
  }
  cum[Kt - 1] = 1.0;
  target_K_ = Kt;
  upload_exact(target.means, d_target_means_, stream_.get(), "the target's means");
  upload_exact(sd, d_target_sd_, stream_.get(), "the target's standard deviations");
  upload_exact(cum, d_target_cum_, stream_.get(), "the target's cumulative weights");

  if (shape.precision == Precision::FP32) begin_impl<float>();
  else begin_impl<double>();
  sync_stream(stream_.get());  // the host vectors above go out of scope
  begun_ = true;
}

template <typename Real>
void CudaBackend::begin_impl() {
  auto& w = ws<Real>();
  w.d_Y.resize(shape_.chunk_rows * static_cast<std::size_t>(shape_.d), "the chunk's particles");
  if (choice_.path == StepPath::Products) ensure_products(w);
  else ensure_fused(w);
}

template <typename Real>
void CudaBackend::ensure_products(ChunkWorkspace<Real>& w) {
  if (w.products_ready) return;
  const std::size_t n = shape_.chunk_rows, d = static_cast<std::size_t>(shape_.d),
                    K = static_cast<std::size_t>(shape_.K);
  const bool diag = shape_.cov == Covariance::Diagonal;
  w.d_S1.resize(n * d, "the products path's S1 = W P");
  w.d_G.resize(n * K, "the products path's logits and weights");
  w.d_s2.resize(n, "the products path's s2");
  if (diag) {
    w.d_Ysq.resize(n * d, "the products path's Y*Y");
    w.d_G2.resize(n * K, "the products path's G2");
  }
  w.d_P.resize(K * d, "the step's P");
  w.d_Q.resize(diag ? K * d : K, "the step's Q");
  w.d_bias.resize(K, "the step's bias");
  w.d_bias_dir.resize(d, "the step's bias direction");
  w.products_ready = true;
}

template <typename Real>
void CudaBackend::ensure_fused(ChunkWorkspace<Real>& w) {
  if (w.fused_ready) return;
  const FusedLayout L = make_fused_layout(shape_.K, shape_.d, shape_.cov == Covariance::Diagonal);
  const std::size_t batch = fused_batch_steps(L, sizeof(Real));
  w.d_fcoeffs.resize(batch * L.stride, "a batch of fused steps' coefficients");
  w.d_finfo.resize(batch, "a batch of fused steps' scalars");
  w.fused_ready = true;
}

// ---- filling a chunk ----

void CudaBackend::init_chunk(uint64_t first, std::size_t rows) {
  check_rows("init_chunk", rows);
  if (shape_.precision == Precision::FP32) init_impl<float>(first, rows);
  else init_impl<double>(first, rows);
  rows_ = rows;
  first_ = first;
}

template <typename Real>
void CudaBackend::init_impl(uint64_t first, std::size_t rows) {
  launch_init_normal(ws<Real>().d_Y.data(), rows, shape_.d, shape_.seed, first, stream_.get());
}

void CudaBackend::fill_target(uint64_t first, std::size_t rows) {
  check_rows("fill_target", rows);
  if (shape_.precision == Precision::FP32) target_impl<float>(first, rows);
  else target_impl<double>(first, rows);
  rows_ = rows;
  first_ = first;
}

template <typename Real>
void CudaBackend::target_impl(uint64_t first, std::size_t rows) {
  launch_fill_target(ws<Real>().d_Y.data(), rows, shape_.d, target_K_, d_target_means_.data(),
                     d_target_sd_.data(), d_target_cum_.data(), shape_.seed, first, stream_.get());
}

void CudaBackend::upload_chunk(const double* host, uint64_t first, std::size_t rows) {
  check_rows("upload_chunk", rows);
  GMMDIFF_EXPECTS(host != nullptr || rows == 0, "cuda backend: upload_chunk from a null pointer");
  if (shape_.precision == Precision::FP32) upload_impl<float>(host, rows);
  else upload_impl<double>(host, rows);
  rows_ = rows;
  first_ = first;
}

// ---- staging (stage_plan.hpp) ----

void CudaBackend::ensure_stage(std::size_t slot_bytes) const {
  if (stage_done_.empty()) {
    stage_done_.emplace_back(false);
    stage_done_.emplace_back(false);
  }
  for (int s = 0; s < 2; ++s) {
    if (stage_[s].size() >= slot_bytes) continue;
    if (stage_pending_[s]) stage_done_[s].synchronize();  // a queued copy still uses the old buffer
    stage_pending_[s] = false;
    stage_[s].reserve(slot_bytes, "a pinned staging buffer");
  }
}

template <typename Real>
void CudaBackend::upload_impl(const double* host, std::size_t rows) {
  const std::size_t d = static_cast<std::size_t>(shape_.d), row_bytes = d * sizeof(Real);
  if (rows == 0) return;
  const std::size_t piece = stage_piece_rows(row_bytes);
  ensure_stage(std::min(piece, rows) * row_bytes);
  Real* dst = ws<Real>().d_Y.data();
  cudaStream_t s = stream_.get();
  staged_upload(
      rows, piece,
      [&](int slot) {  // the slot's previous copy must be done before it is written again
        if (stage_pending_[slot]) stage_done_[slot].synchronize();
        stage_pending_[slot] = false;
      },
      [&](int slot, std::size_t r0, std::size_t n) {
        Real* buf = reinterpret_cast<Real*>(stage_[slot].data());
        const double* src = host + r0 * d;
        for (std::size_t i = 0; i < n * d; ++i) buf[i] = static_cast<Real>(src[i]);
        CUDA_CHECK(cudaMemcpyAsync(dst + r0 * d, buf, n * row_bytes, cudaMemcpyHostToDevice, s));
        stage_done_[slot].record(s);
        stage_pending_[slot] = true;
      });
}

void CudaBackend::stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& /*scratch: unused*/,
                               const PieceConsumer& consume) const {
  check_begun("stream_chunk");
  const std::size_t real = real_bytes(shape_.precision);
  GMMDIFF_EXPECTS(row_bytes == static_cast<std::size_t>(shape_.d) * real, "cuda backend: stream_chunk of rows of ",
                  row_bytes, " bytes, but a row of the run holds ", shape_.d, " values of ", real, " bytes");
  if (rows_ == 0) return;
  const std::size_t piece = stage_piece_rows(row_bytes);
  ensure_stage(std::min(piece, rows_) * row_bytes);
  const unsigned char* src = shape_.precision == Precision::FP32
                                 ? reinterpret_cast<const unsigned char*>(ws<float>().d_Y.data())
                                 : reinterpret_cast<const unsigned char*>(ws<double>().d_Y.data());
  cudaStream_t s = stream_.get();
  staged_download(
      rows_, piece,
      [&](int slot, std::size_t r0, std::size_t n) {
        CUDA_CHECK(cudaMemcpyAsync(stage_[slot].data(), src + r0 * row_bytes, n * row_bytes,
                                   cudaMemcpyDeviceToHost, s));
        stage_done_[slot].record(s);
        stage_pending_[slot] = true;
      },
      [&](int slot, std::size_t r0, std::size_t n) {
        stage_done_[slot].synchronize();
        stage_pending_[slot] = false;
        consume(stage_[slot].data(), r0, n);
      });
}

// ---- one step ----

template <typename Real>
void CudaBackend::upload_converted(const std::vector<double>& src, DeviceBuffer<Real>& dst) {
  // Converted into a host vector that lives until the copy has been staged: cudaMemcpyAsync from
  // pageable memory returns once the source has been copied out.
  std::vector<Real> tmp;
  to_real(src, tmp);
  GMMDIFF_EXPECTS(tmp.size() <= dst.size(), "cuda backend: internal: upload of ", tmp.size(),
                  " values into a buffer of ", dst.size());
  if (!tmp.empty())
    CUDA_CHECK(cudaMemcpyAsync(dst.data(), tmp.data(), tmp.size() * sizeof(Real),
                               cudaMemcpyHostToDevice, stream_.get()));
}

void CudaBackend::check_coeffs(const StepCoeffs& c) const {
  const std::size_t K = static_cast<std::size_t>(shape_.K), d = static_cast<std::size_t>(shape_.d);
  GMMDIFF_EXPECTS(c.diagonal == (shape_.cov == Covariance::Diagonal),
                  "cuda backend: step coefficients are ", c.diagonal ? "diagonal" : "isotropic",
                  " but the run's covariance is not");
  GMMDIFF_EXPECTS(c.P.size() == K * d, "cuda backend: step P has ", c.P.size(),
                  " values, expected K*d = ", K * d);
  GMMDIFF_EXPECTS(c.Q.size() == (c.diagonal ? K * d : K), "cuda backend: step Q has ", c.Q.size(),
                  " values, expected ", c.diagonal ? K * d : K);
  GMMDIFF_EXPECTS(c.bias.size() == K, "cuda backend: step bias has ", c.bias.size(),
                  " values, expected K = ", K);
  GMMDIFF_EXPECTS(c.bias_dir.empty() || c.bias_dir.size() == d, "cuda backend: step bias_dir has ",
                  c.bias_dir.size(), " values, expected 0 or d = ", d);
  GMMDIFF_EXPECTS(c.t >= 0, "cuda backend: step t = ", c.t, " is negative");
}

void CudaBackend::step(const StepCoeffs& c) {
  check_begun("step");
  check_coeffs(c);
  if (rows_ != 0) {
    const bool fp32 = shape_.precision == Precision::FP32;
    if (choice_.path == StepPath::Fused) {
      if (fp32) fused_impl<float>(&c, 1);
      else fused_impl<double>(&c, 1);
    } else {
      if (fp32) step_impl<float>(c);
      else step_impl<double>(c);
    }
  }
  last_path_ = path_name(choice_);  // only once the step is queued: never a path that did not run
}

bool CudaBackend::step_many(const StepCoeffs* steps, std::size_t count) {
  check_begun("step_many");
  if (choice_.path != StepPath::Fused) return false;
  GMMDIFF_EXPECTS(steps != nullptr || count == 0, "cuda backend: step_many from a null pointer");
  for (std::size_t i = 0; i < count; ++i) check_coeffs(steps[i]);
  if (rows_ != 0 && count != 0) {
    if (shape_.precision == Precision::FP32) fused_impl<float>(steps, count);
    else fused_impl<double>(steps, count);
  }
  last_path_ = path_name(choice_);
  return true;
}

template <typename Real>
void CudaBackend::fused_impl(const StepCoeffs* steps, std::size_t count) {
  auto& w = ws<Real>();
  ensure_fused(w);
  cudaStream_t s = stream_.get();
  const FusedLayout L = make_fused_layout(shape_.K, shape_.d, shape_.cov == Covariance::Diagonal);
  const std::size_t step_bytes = L.stride * sizeof(Real);
  const std::size_t batch = std::min(fused_batch_steps(L, sizeof(Real)), w.d_finfo.size());
  for (std::size_t s0 = 0; s0 < count; s0 += batch) {
    const std::size_t n = std::min(batch, count - s0);
    // Host vectors reused for the next batch: cudaMemcpyAsync from pageable memory returns once
    // the source has been staged, and the device buffers are reused in stream order.
    w.h_fcoeffs.resize(n * L.stride);
    w.h_finfo.resize(n);
    for (std::size_t i = 0; i < n; ++i) {
      pack_fused_step(steps[s0 + i], L, w.h_fcoeffs.data() + i * L.stride);
      w.h_finfo[i] = make_fused_info<Real>(steps[s0 + i], shape_.seed);
    }
    CUDA_CHECK(cudaMemcpyAsync(w.d_fcoeffs.data(), w.h_fcoeffs.data(), n * step_bytes,
                               cudaMemcpyHostToDevice, s));
    CUDA_CHECK(cudaMemcpyAsync(w.d_finfo.data(), w.h_finfo.data(), n * sizeof(FusedStepInfo<Real>),
                               cudaMemcpyHostToDevice, s));
    launch_fused_steps(w.d_Y.data(), w.d_fcoeffs.data(), w.d_finfo.data(), L, static_cast<int>(n),
                       rows_, first_, s);
  }
}

template <typename Real>
void CudaBackend::step_impl(const StepCoeffs& c) {
  auto& w = ws<Real>();
  ensure_products(w);
  const int K = shape_.K, d = shape_.d;
  const std::size_t rows = rows_;
  cudaStream_t s = stream_.get();
  cublasHandle_t h = cublas_.get();

  upload_converted(c.P, w.d_P);
  upload_converted(c.Q, w.d_Q);
  upload_converted(c.bias, w.d_bias);
  const bool has_bias_dir = !c.bias_dir.empty();
  if (has_bias_dir) upload_converted(c.bias_dir, w.d_bias_dir);

  const detail::QMode mode = c.diagonal    ? detail::QMode::Diagonal
                             : c.uniform_q ? detail::QMode::Uniform
                                           : detail::QMode::Isotropic;

  const GemmMath m = choice_.math;
  gemm_abt(h, rows, K, d, w.d_Y.data(), w.d_P.data(), w.d_G.data(), m);  // G1 = Y P^T
  if (mode == detail::QMode::Diagonal) {
    launch_square(w.d_Y.data(), w.d_Ysq.data(), rows * static_cast<std::size_t>(d), s);
    gemm_abt(h, rows, K, d, w.d_Ysq.data(), w.d_Q.data(), w.d_G2.data(), m);  // G2 = (Y*Y) Q^T
  }
  launch_posterior_weights(w.d_G.data(), mode == detail::QMode::Diagonal ? w.d_G2.data() : nullptr,
                           w.d_Y.data(), w.d_bias.data(), w.d_Q.data(), w.d_s2.data(), rows, d, K, mode, s);
  gemm_ab(h, rows, K, d, w.d_G.data(), w.d_P.data(), w.d_S1.data(), m);  // S1 = W P
  const Real* d_S2 = nullptr;
  if (mode == detail::QMode::Diagonal) {
    gemm_ab(h, rows, K, d, w.d_G.data(), w.d_Q.data(), w.d_Ysq.data(), m);  // S2 = W Q (over Ysq)
    d_S2 = w.d_Ysq.data();
  }

  const detail::StepScalars<Real> sc{static_cast<Real>(c.kappa),       static_cast<Real>(c.inv_sqrt_alpha),
                                     static_cast<Real>(c.sigma),       static_cast<Real>(c.score_scale),
                                     static_cast<Real>(c.noise_sd),    static_cast<uint32_t>(c.t),
                                     shape_.seed};
  launch_update(w.d_Y.data(), w.d_S1.data(), d_S2, w.d_s2.data(), has_bias_dir ? w.d_bias_dir.data() : nullptr,
                rows, d, first_, sc, c.sigma != 0.0, c.noise_sd != 0.0, s);
}

// ---- reading a chunk ----

void CudaBackend::download(void* host) const {
  check_begun("download");
  GMMDIFF_EXPECTS(host != nullptr || rows_ == 0, "cuda backend: download to a null pointer");
  if (shape_.precision == Precision::FP32) download_impl<float>(host);
  else download_impl<double>(host);
}

template <typename Real>
void CudaBackend::download_impl(void* host) const {
  const std::size_t n = rows_ * static_cast<std::size_t>(shape_.d);
  if (n == 0) return;
  CUDA_CHECK(cudaMemcpyAsync(host, ws<Real>().d_Y.data(), n * sizeof(Real), cudaMemcpyDeviceToHost,
                             stream_.get()));
  sync_stream(stream_.get());
}

namespace {

/// Device memory for results kept on the device (allocate_result): cudaMalloc'd on the device
/// current when it was made, freed by cudaFree (DeviceBuffer) whenever its owner lets it go.
class DeviceResultMemory final : public ResultMemory {
 public:
  DeviceResultMemory(DeviceBuffer<unsigned char>&& buf, std::size_t bytes, int device)
      : ResultMemory(buf.data(), bytes, MemoryKind::Cuda, device), buf_(std::move(buf)) {}
  void copy_to_host(void* host, std::size_t offset, std::size_t bytes) const override {
    GMMDIFF_EXPECTS(offset <= bytes_ && bytes <= bytes_ - offset, "result memory: bytes ", offset, "..",
                    offset + bytes, " lie outside the ", bytes_, " allocated");
    if (bytes == 0) return;
    CUDA_CHECK(cudaSetDevice(device_));
    CUDA_CHECK(cudaMemcpy(host, static_cast<const unsigned char*>(data_) + offset, bytes, cudaMemcpyDeviceToHost));
    check_deferred_errors();  // as every synchronisation does (device_memory.hpp)
  }

 private:
  DeviceBuffer<unsigned char> buf_;
};

}  // namespace

std::unique_ptr<ResultMemory> CudaBackend::allocate_result(std::size_t bytes) const {
  int device = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  // ResourceError when it does not fit.
  DeviceBuffer<unsigned char> buf(std::max<std::size_t>(bytes, 1), "a sample kept on the device");
  return std::make_unique<DeviceResultMemory>(std::move(buf), bytes, device);
}

void CudaBackend::copy_chunk_to(ResultMemory& dst, std::size_t offset) const {
  check_begun("copy_chunk_to");
  const std::size_t n = rows_ * static_cast<std::size_t>(shape_.d) * real_bytes(shape_.precision);
  GMMDIFF_EXPECTS(offset <= dst.bytes() && n <= dst.bytes() - offset, "cuda backend: a chunk of ", n,
                  " bytes does not fit at offset ", offset, " of a result of ", dst.bytes(), " bytes");
  if (dst.kind() == MemoryKind::Host) {
    download(static_cast<unsigned char*>(dst.data()) + offset);
    return;
  }
  if (n == 0) return;
  const void* src = shape_.precision == Precision::FP32 ? static_cast<const void*>(ws<float>().d_Y.data())
                                                        : static_cast<const void*>(ws<double>().d_Y.data());
  CUDA_CHECK(cudaMemcpyAsync(static_cast<unsigned char*>(dst.data()) + offset, src, n, cudaMemcpyDeviceToDevice,
                             stream_.get()));
  sync_stream(stream_.get());
}

uint64_t CudaBackend::count_nonfinite_rows() const {
  check_begun("count_nonfinite_rows");
  if (rows_ == 0) return 0;
  return shape_.precision == Precision::FP32 ? nonfinite_impl<float>() : nonfinite_impl<double>();
}

template <typename Real>
uint64_t CudaBackend::nonfinite_impl() const {
  cudaStream_t s = stream_.get();
  CUDA_CHECK(cudaMemsetAsync(d_scalar_.data(), 0, sizeof(unsigned long long), s));
  launch_count_nonfinite_rows(ws<Real>().d_Y.data(), rows_, shape_.d, d_scalar_.data(), s);
  unsigned long long count = 0;
  CUDA_CHECK(cudaMemcpyAsync(&count, d_scalar_.data(), sizeof(count), cudaMemcpyDeviceToHost, s));
  sync_stream(s);
  return static_cast<uint64_t>(count);
}

// ---- histograms ----

void CudaBackend::accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) {
  check_begun("accumulate_histograms");
  if (shape_.precision == Precision::FP32) hist_impl<float>(spec, counts);
  else hist_impl<double>(spec, counts);
}

template <typename Real>
void CudaBackend::hist_impl(const HistogramSpec& spec, HistogramCounts& counts) {
  const int d = shape_.d;
  const int nv = spec.num_values();
  const int m = nv - (spec.radial ? 1 : 0);
  const int np = static_cast<int>(spec.pairs.size());
  GMMDIFF_EXPECTS(spec.d == d, "histograms: spec has d = ", spec.d, " but the run has d = ", d);
  GMMDIFF_EXPECTS(m >= 0 && spec.directions.size() == static_cast<std::size_t>(m) * d,
                  "histograms: directions hold ", spec.directions.size(), " values, expected ", m,
                  " x ", d, " (values ", nv, ", radial ", spec.radial ? 1 : 0, ")");
  GMMDIFF_EXPECTS(!spec.radial || spec.center.size() == static_cast<std::size_t>(d),
                  "histograms: radial center holds ", spec.center.size(), " values, expected ", d);
  GMMDIFF_EXPECTS(counts.one_d.size() == static_cast<std::size_t>(nv) &&
                      counts.two_d.size() == static_cast<std::size_t>(np),
                  "histograms: counts are not shaped for the spec (use HistogramCounts::zeros)");

  // Flatten the spec: doubles = directions | center | edges; ints = edge offsets | B_v | pairs |
  // count offsets.
  std::vector<double> dbl(spec.directions);
  const std::size_t center_at = dbl.size();
  if (spec.radial) dbl.insert(dbl.end(), spec.center.begin(), spec.center.end());
  const std::size_t edges_at = dbl.size();
  std::vector<int> edge_off(nv), nbins(nv), pairs(2 * static_cast<std::size_t>(np)),
      count_off(static_cast<std::size_t>(nv) + np);
  long long total = 0;
  for (int v = 0; v < nv; ++v) {
    const auto& e = spec.edges[v];
    GMMDIFF_EXPECTS(e.size() >= 2, "histograms: value ", v, " has ", e.size(),
                    " bin edges, at least 2 needed");
    GMMDIFF_EXPECTS(counts.one_d[v].size() == e.size() - 1, "histograms: counts of value ", v,
                    " have ", counts.one_d[v].size(), " bins, the spec ", e.size() - 1);
    edge_off[v] = static_cast<int>(dbl.size() - edges_at);
    nbins[v] = static_cast<int>(e.size() - 1);
    dbl.insert(dbl.end(), e.begin(), e.end());
    count_off[v] = static_cast<int>(total);
    total += nbins[v];
  }
  for (int p = 0; p < np; ++p) {
    const auto [a, b] = spec.pairs[p];
    GMMDIFF_EXPECTS(a >= 0 && a < nv && b >= 0 && b < nv, "histograms: pair ", p, " = (", a, ", ",
                    b, ") names a value outside 0..", nv - 1);
    const long long cells = static_cast<long long>(nbins[a]) * nbins[b];
    GMMDIFF_EXPECTS(counts.two_d[p].size() == static_cast<std::size_t>(cells),
                    "histograms: counts of pair ", p, " have ", counts.two_d[p].size(),
                    " cells, the spec ", cells);
    pairs[2 * p] = a;
    pairs[2 * p + 1] = b;
    count_off[static_cast<std::size_t>(nv) + p] = static_cast<int>(total);
    total += cells;
    GMMDIFF_EXPECTS(total < INT_MAX, "histograms: ", total, " bins in all exceed ", INT_MAX);
  }
  counts.rows += rows_;
  if (rows_ == 0 || nv == 0) {
    if (rows_ != 0) counts.nonfinite_rows += count_nonfinite_rows();
    return;
  }

  std::vector<int> ints;
  ints.reserve(3 * static_cast<std::size_t>(nv) + 3 * static_cast<std::size_t>(np));
  ints.insert(ints.end(), edge_off.begin(), edge_off.end());
  ints.insert(ints.end(), nbins.begin(), nbins.end());
  ints.insert(ints.end(), pairs.begin(), pairs.end());
  ints.insert(ints.end(), count_off.begin(), count_off.end());

  cudaStream_t s = stream_.get();
  sync_stream(s);  // the buffers below may be in use by a previous call
  d_hist_doubles_.reserve(dbl.size());
  d_hist_ints_.reserve(ints.size());
  d_hist_counts_.reserve(static_cast<std::size_t>(total) + 1);
  CUDA_CHECK(cudaMemcpyAsync(d_hist_doubles_.data(), dbl.data(), dbl.size() * sizeof(double),
                             cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaMemcpyAsync(d_hist_ints_.data(), ints.data(), ints.size() * sizeof(int),
                             cudaMemcpyHostToDevice, s));
  CUDA_CHECK(cudaMemsetAsync(d_hist_counts_.data(), 0,
                             (static_cast<std::size_t>(total) + 1) * sizeof(unsigned long long), s));

  DeviceHistogramSpec dspec;
  dspec.num_values = nv;
  dspec.num_directions = m;
  dspec.radial = spec.radial;
  dspec.num_pairs = np;
  dspec.total_bins = static_cast<int>(total);
  dspec.d_directions = d_hist_doubles_.data();
  dspec.d_center = d_hist_doubles_.data() + center_at;
  dspec.d_edges = d_hist_doubles_.data() + edges_at;
  dspec.d_edge_offset = d_hist_ints_.data();
  dspec.d_num_bins = d_hist_ints_.data() + nv;
  dspec.d_pairs = d_hist_ints_.data() + 2 * static_cast<std::size_t>(nv);
  dspec.d_count_offset = d_hist_ints_.data() + 2 * static_cast<std::size_t>(nv) + 2 * np;
  unsigned long long* d_counts = d_hist_counts_.data();
  unsigned long long* d_nonfinite = d_hist_counts_.data() + total;

  // Sub-batches of rows keep the bins buffer within kHistogramWorkspaceBytes.
  const std::size_t per_row = static_cast<std::size_t>(nv) * sizeof(int);
  const std::size_t batch = std::min<std::size_t>(
      rows_, std::max<std::size_t>(kChunkAlign, kHistogramWorkspaceBytes / per_row));
  d_hist_bins_.reserve(batch * nv);
  const Real* d_Y = ws<Real>().d_Y.data();
  for (std::size_t r0 = 0; r0 < rows_; r0 += batch) {
    const std::size_t nr = std::min(batch, rows_ - r0);
    const Real* d_Yb = d_Y + r0 * static_cast<std::size_t>(d);
    launch_histogram_bins(d_Yb, nr, d, dspec, d_hist_bins_.data(), s);
    launch_histogram_count(d_Yb, nr, d, d_hist_bins_.data(), dspec, d_counts, d_nonfinite, s);
  }

  std::vector<unsigned long long> host(static_cast<std::size_t>(total) + 1);
  CUDA_CHECK(cudaMemcpyAsync(host.data(), d_counts, host.size() * sizeof(unsigned long long),
                             cudaMemcpyDeviceToHost, s));
  sync_stream(s);
  for (int v = 0; v < nv; ++v)
    for (int b = 0; b < nbins[v]; ++b) counts.one_d[v][b] += host[count_off[v] + b];
  for (int p = 0; p < np; ++p) {
    auto& cells = counts.two_d[p];
    const std::size_t at = count_off[static_cast<std::size_t>(nv) + p];
    for (std::size_t c = 0; c < cells.size(); ++c) cells[c] += host[at + c];
  }
  counts.nonfinite_rows += host[static_cast<std::size_t>(total)];
}

// ---- step paths ----

void CudaBackend::set_step_path(const std::string& path) {
  GMMDIFF_EXPECTS(is_step_path_name(path), "--path ", path, ": the cuda backend has auto, products, fused, "
                  "products-tf32, products-bf16 and products-bf16x9");
  // A mode this device lacks is refused now, whatever the shape (a float32 shape stands for the
  // request); a path the run's shape cannot take is refused at begin(), or now after one.
  RunShape probe = begun_ ? shape_ : RunShape{};
  if (!begun_) {
    probe.d = 1;
    probe.K = 1;
    probe.precision = Precision::FP32;
  }
  const PathChoice choice = resolve_step_path(path, probe, cc_major_, cc_minor_);
  path_request_ = path;
  if (!begun_) return;
  choice_ = choice;
  last_path_ = path_name(choice_);
}

std::string CudaBackend::step_path() const { return last_path_.empty() ? name() : last_path_; }

// ---- measurement ----

void CudaBackend::synchronize() { stream_.synchronize(); }

double CudaBackend::time_seconds(const std::function<void()>& work) {
  CudaEvent start, stop;
  start.record(stream_.get());
  work();
  stop.record(stream_.get());
  return stop.seconds_since(start);
}

double CudaBackend::copy_bandwidth(std::size_t bytes) {
  constexpr int kRepeats = 5;
  const std::size_t n = std::max<std::size_t>(bytes, std::size_t{1} << 20);
  cudaStream_t s = stream_.get();
  DeviceBuffer<unsigned char> src(n), dst(n);
  CUDA_CHECK(cudaMemsetAsync(src.data(), 0x5a, n, s));  // not zeros: real data
  auto copy = [&] { CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), n, cudaMemcpyDeviceToDevice, s)); };
  copy();  // warm-up
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < kRepeats; ++r) best = std::min(best, time_seconds(copy));
  stream_.synchronize();  // the buffers are freed next
  GMMDIFF_EXPECTS(best > 0, "cuda backend: a copy of ", n, " bytes took no measurable time");
  return 2.0 * static_cast<double>(n) / best;
}

namespace {

struct FmaLanes {
  int fp32;
  int fp64;
};

// FP32 and FP64 FMA lanes per SM by compute capability (NVIDIA's architecture whitepapers and the
// CUDA C++ Programming Guide's throughput table). Data-centre parts (6.0, 7.0, 8.0, 9.0, 10.x)
// have FP64 at half the FP32 rate of their generation; consumer parts at 1/32 to 1/64. Note
// sm_80 (A100) has 64 FP32 lanes per SM, not 128: only sm_86 and later consumer parts doubled
// them. Unknown parts get 128 / 2 (a consumer part's ratio): a guess, said so in docs/cuda.md.
FmaLanes fma_lanes_per_sm(int major, int minor) {
  switch (major) {
    case 6: return minor == 0 ? FmaLanes{64, 32} : FmaLanes{128, 4};   // P100 | GP10x
    case 7: return minor == 5 ? FmaLanes{64, 2} : FmaLanes{64, 32};    // T4 | V100, Xavier
    case 8: return minor == 0 ? FmaLanes{64, 32} : FmaLanes{128, 2};   // A100 | A10, L4, L40, Orin
    case 9: return FmaLanes{128, 64};                                   // H100, H200
    case 10: return FmaLanes{128, 64};                                  // B200, B300
    default: return FmaLanes{128, 2};                                   // 12.x consumer Blackwell, unknown
  }
}

}  // namespace

double CudaBackend::flop_limit(Precision p) {
  int device = 0, sms = 0, khz = 0, major = 0, minor = 0;
  CUDA_CHECK(cudaGetDevice(&device));
  CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&khz, cudaDevAttrClockRate, device));  // peak, kHz
  CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device));
  CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device));
  const FmaLanes lanes = fma_lanes_per_sm(major, minor);
  const int per_sm = p == Precision::FP32 ? lanes.fp32 : lanes.fp64;
  return 2.0 * static_cast<double>(sms) * (static_cast<double>(khz) * 1e3) * per_sm;  // FMA = 2 FLOP
}

}  // namespace gmmdiff::gpu
