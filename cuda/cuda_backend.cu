// gmmdiff: CudaBackend (cuda_backend.hpp).
//
// One step on a chunk of `rows` particles (Real = float or double, row-major):
//   G = Y P^T                        cuBLAS gemm                      [rows, K]
//   Diagonal: Ysq = Y*Y, G2 = Ysq Q^T  square_kernel + gemm           [rows, K]
//   G -> W (posterior weights), s2   posterior_weights_kernel (thread per row)
//   S1 = W P; Diagonal: S2 = W Q     cuBLAS gemm (S2 reuses Ysq)     [rows, d]
//   Y <- update(Y, S1, S2 | s2, noise) update_kernel (thread per row x 4 coordinates)
// Napkin maths: 4 K d FLOP per particle (6 K d Diagonal), and these unfused passes move about
// (6 d + 4 K) Real per particle where the fused step (fused_step.hpp) moves 2 d per launch.
// docs/cuda.md compares the two paths and says how "auto" chooses.
#include "cuda/cuda_backend.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>

#include "cuda/rt/cuda_error.hpp"
#include "cuda/rt/cuda_event.hpp"
#include "cuda/kernels/fused_step.hpp"
#include "cuda/kernels/gemm.hpp"
#include "cuda/kernels/histogram_kernels.hpp"
#include "cuda/kernels/step_kernels.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/backend.hpp"

namespace gmmdiff::gpu {

namespace {

constexpr double kMemoryFraction = 0.8;                     // of the free device memory
constexpr std::size_t kReserveBytes = std::size_t{64} << 20;  // cuBLAS workspace and slack

std::size_t real_bytes(Precision p) { return bytes_of(p); }

template <typename Real>
void to_real(const std::vector<double>& src, std::vector<Real>& dst) {
  dst.resize(src.size());
  for (std::size_t i = 0; i < src.size(); ++i) dst[i] = static_cast<Real>(src[i]);
}

template <typename T>
void upload_exact(const std::vector<T>& src, DeviceBuffer<T>& dst, cudaStream_t stream) {
  dst.resize(src.size());
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
  d_scalar_.resize(1);
}

CudaBackend::~CudaBackend() {
  cudaStreamSynchronize(stream_.get());  // let queued work finish before buffers go; never throws
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

std::size_t CudaBackend::bytes_per_row(const RunShape& shape) {
  const std::size_t d = static_cast<std::size_t>(shape.d), K = static_cast<std::size_t>(shape.K);
  const bool diag = shape.cov == Covariance::Diagonal;
  // Y, S1, G, s2; Diagonal adds Ysq/S2 and G2.
  const std::size_t reals = 2 * d + K + 1 + (diag ? d + K : 0);
  return reals * real_bytes(shape.precision);
}

std::size_t CudaBackend::fixed_bytes(const RunShape& shape) {
  const std::size_t kd = static_cast<std::size_t>(shape.K) * static_cast<std::size_t>(shape.d);
  const std::size_t params = (2 * kd + static_cast<std::size_t>(shape.K) + shape.d) *
                             real_bytes(shape.precision);   // P, Q, bias, bias_dir
  const std::size_t target = (2 * kd + shape.K) * sizeof(double);  // means, sd, cum
  // Fused path: one batch of packed coefficients (at least one step) and its scalars.
  const FusedLayout L = make_fused_layout(shape.K, shape.d, shape.cov == Covariance::Diagonal);
  const std::size_t fused = std::max(kFusedCoeffBatchBytes, L.stride * real_bytes(shape.precision)) +
                            (std::size_t{1} << 20);
  return params + target + fused + kHistogramWorkspaceBytes + kReserveBytes;
}

std::size_t CudaBackend::max_chunk_rows(const RunShape& shape) const {
  GMMDIFF_EXPECTS(shape.d >= 1 && shape.K >= 1, "cuda backend: max_chunk_rows needs d >= 1 and "
                  "K >= 1, got d = ", shape.d, ", K = ", shape.K);
  std::size_t free_bytes = 0, total_bytes = 0;
  CUDA_CHECK(cudaMemGetInfo(&free_bytes, &total_bytes));
  // Memory this backend holds for a previous run is freed by the next begin(): count it as free.
  free_bytes += ws32_.bytes() + ws64_.bytes();
  const double budget = static_cast<double>(free_bytes) * kMemoryFraction -
                        static_cast<double>(fixed_bytes(shape));
  if (budget <= 0) return 0;
  std::size_t rows = static_cast<std::size_t>(budget / static_cast<double>(bytes_per_row(shape)));
  rows = std::min<std::size_t>(rows, static_cast<std::size_t>(INT_MAX));  // cuBLAS dimensions
  return rows / kChunkAlign * kChunkAlign;
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
  CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
  begun_ = false;
  rows_ = 0;
  first_ = 0;
  // Free the previous run's memory before allocating this one's.
  ws32_.release();
  ws64_.release();
  shape_ = shape;
  resolve_path();  // a path this shape cannot take fails here, before any allocation

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
  upload_exact(target.means, d_target_means_, stream_.get());
  upload_exact(sd, d_target_sd_, stream_.get());
  upload_exact(cum, d_target_cum_, stream_.get());

  if (shape.precision == Precision::FP32) begin_impl<float>();
  else begin_impl<double>();
  CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // the host vectors above go out of scope
  begun_ = true;
}

template <typename Real>
void CudaBackend::begin_impl() {
  auto& w = ws<Real>();
  const std::size_t n = shape_.chunk_rows, d = static_cast<std::size_t>(shape_.d),
                    K = static_cast<std::size_t>(shape_.K);
  const bool diag = shape_.cov == Covariance::Diagonal;
  w.d_Y.resize(n * d);
  w.d_S1.resize(n * d);
  w.d_G.resize(n * K);
  w.d_s2.resize(n);
  if (diag) {
    w.d_Ysq.resize(n * d);
    w.d_G2.resize(n * K);
  }
  w.d_P.resize(K * d);
  w.d_Q.resize(diag ? K * d : K);
  w.d_bias.resize(K);
  w.d_bias_dir.resize(d);
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

template <typename Real>
void CudaBackend::upload_impl(const double* host, std::size_t rows) {
  auto& w = ws<Real>();
  const std::size_t n = rows * static_cast<std::size_t>(shape_.d);
  if (n == 0) return;
  CUDA_CHECK(cudaStreamSynchronize(stream_.get()));  // h_stage may still feed a queued copy
  w.h_stage.resize(n);
  for (std::size_t i = 0; i < n; ++i) w.h_stage[i] = static_cast<Real>(host[i]);
  CUDA_CHECK(cudaMemcpyAsync(w.d_Y.data(), w.h_stage.data(), n * sizeof(Real),
                             cudaMemcpyHostToDevice, stream_.get()));
  CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
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
  last_path_ = path_name();
  if (rows_ == 0) return;
  const bool fp32 = shape_.precision == Precision::FP32;
  if (path_ == StepPath::Fused) {
    if (fp32) fused_impl<float>(&c, 1);
    else fused_impl<double>(&c, 1);
  } else {
    if (fp32) step_impl<float>(c);
    else step_impl<double>(c);
  }
}

bool CudaBackend::step_many(const StepCoeffs* steps, std::size_t count) {
  check_begun("step_many");
  if (path_ != StepPath::Fused) return false;
  GMMDIFF_EXPECTS(steps != nullptr || count == 0, "cuda backend: step_many from a null pointer");
  for (std::size_t i = 0; i < count; ++i) check_coeffs(steps[i]);
  last_path_ = path_name();
  if (rows_ == 0 || count == 0) return true;
  if (shape_.precision == Precision::FP32) fused_impl<float>(steps, count);
  else fused_impl<double>(steps, count);
  return true;
}

template <typename Real>
void CudaBackend::fused_impl(const StepCoeffs* steps, std::size_t count) {
  auto& w = ws<Real>();
  cudaStream_t s = stream_.get();
  const FusedLayout L = make_fused_layout(shape_.K, shape_.d, shape_.cov == Covariance::Diagonal);
  const std::size_t step_bytes = L.stride * sizeof(Real);
  const std::size_t batch = std::clamp<std::size_t>(kFusedCoeffBatchBytes / step_bytes, 1,
                                                    std::min<std::size_t>(count, INT_MAX));
  if (w.d_fcoeffs.size() < batch * L.stride || w.d_finfo.size() < batch)
    stream_.synchronize();  // growing frees the old buffers, which queued launches may still read
  w.d_fcoeffs.reserve(batch * L.stride);
  w.d_finfo.reserve(batch);
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

  const GemmMath m = gemm_math_;
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
  CUDA_CHECK(cudaStreamSynchronize(stream_.get()));
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
  CUDA_CHECK(cudaStreamSynchronize(s));
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
  CUDA_CHECK(cudaStreamSynchronize(s));  // the buffers below may be in use by a previous call
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
  CUDA_CHECK(cudaStreamSynchronize(s));
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

namespace {

const char* const kPathNames[] = {"auto", "products", "fused", "products-tf32", "products-bf16",
                                  "products-bf16x9"};

}  // namespace

bool CudaBackend::auto_picks_fused(const RunShape& shape) {
  // Napkin maths (docs/cuda.md), float32, per elt-step: the products path moves about
  // 4 (6 + 4 K / d) bytes (Y, S1 and the N x K logits/weights several times over) and does 4 K
  // FLOP at cuBLAS's rate; the fused path moves 8 / S bytes and does about 4 K FLOP plus one
  // exp and log2(G) shuffles per (particle, k), at perhaps half the FP32 peak (one shared-memory
  // load per 2 FMA). On an H100 (3.0 TB/s, 67 TFLOP/s) the products path is memory-bound below
  // K ~ 45 for any d, and its N x K traffic dominates whenever K / d is large: the fused path
  // wins for K <= 64 at any d it holds, and for any K when d <= 32 (K / d >= 2). Beyond that the
  // products path's GEMM efficiency wins. Both thresholds are to be measured (docs/cuda.md).
  if (fused_plan(shape.d).G == 0 || shape.K < 1) return false;
  const FusedLayout L = make_fused_layout(shape.K, shape.d, shape.cov == Covariance::Diagonal);
  if (!fused_staged(L, real_bytes(shape.precision))) return false;
  return shape.K <= kAutoFusedMaxK || shape.d <= kAutoFusedMaxSmallD;
}

void CudaBackend::set_step_path(const std::string& path) {
  const bool known = std::find(std::begin(kPathNames), std::end(kPathNames), path) != std::end(kPathNames);
  GMMDIFF_EXPECTS(known, "--path ", path, ": the cuda backend has auto, products, fused, "
                  "products-tf32, products-bf16 and products-bf16x9");
  const std::string previous = path_request_;
  path_request_ = path;
  if (!begun_) return;  // resolved by begin()
  try {
    resolve_path();
  } catch (...) {
    path_request_ = previous;
    resolve_path();
    throw;
  }
}

void CudaBackend::resolve_path() {
  const std::string& r = path_request_;
  gemm_math_ = GemmMath::Exact;
  if (r == "fused") {
    GMMDIFF_EXPECTS(fused_plan(shape_.d).G != 0, "--path fused: the cuda backend's fused step holds d <= ",
                    kFusedMaxD, " coordinates per particle, the run has d = ", shape_.d,
                    " (use --path auto or products)");
    path_ = StepPath::Fused;
  } else if (r == "auto") {
    path_ = auto_picks_fused(shape_) ? StepPath::Fused : StepPath::Products;
  } else {
    path_ = StepPath::Products;
    if (shape_.precision == Precision::FP32) {  // float64 runs keep exact DGEMMs
      if (r == "products-tf32") gemm_math_ = GemmMath::TF32;
      else if (r == "products-bf16") gemm_math_ = GemmMath::BF16;
      else if (r == "products-bf16x9") gemm_math_ = GemmMath::BF16x9;
    }
  }
  last_path_ = path_name();
}

std::string CudaBackend::path_name() const {
  if (path_ == StepPath::Fused) return "cuda-fused";
  switch (gemm_math_) {
    case GemmMath::TF32: return "cuda-gemm-tf32";
    case GemmMath::BF16: return "cuda-gemm-bf16";
    case GemmMath::BF16x9: return "cuda-gemm-bf16x9";
    case GemmMath::Exact: break;
  }
  return "cuda-gemm";
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
