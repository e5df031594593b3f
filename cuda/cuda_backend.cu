// gmmdiff: CudaBackend (cuda_backend.hpp).
//
// One step on a chunk of `rows` particles (Real = float or double, row-major):
//   G = Y P^T                        cuBLAS gemm                      [rows, K]
//   Diagonal: Ysq = Y*Y, G2 = Ysq Q^T  square_kernel + gemm           [rows, K]
//   G -> W (posterior weights), s2   posterior_weights_kernel (thread per row)
//   S1 = W P; Diagonal: S2 = W Q     cuBLAS gemm (S2 reuses Ysq)     [rows, d]
//   Y <- update(Y, S1, S2 | s2, noise) update_kernel (thread per row x 4 coordinates)
// Napkin maths for later tuning: 4 K d FLOP per particle (6 K d Diagonal), and these unfused
// passes move about (6 d + 4 K) Real per particle where a fused step would move 2 d.
#include "cuda/cuda_backend.hpp"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstring>

#include "cuda/cuda_error.hpp"
#include "cuda/gemm.hpp"
#include "cuda/histogram_kernels.hpp"
#include "cuda/step_kernels.hpp"
#include "gmmdiff/detail/step_math.hpp"
#include "gmmdiff/sampler.hpp"

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
  return params + target + kHistogramWorkspaceBytes + kReserveBytes;
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

void CudaBackend::step(const StepCoeffs& c) {
  check_begun("step");
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
  if (rows_ == 0) return;
  if (shape_.precision == Precision::FP32) step_impl<float>(c);
  else step_impl<double>(c);
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

  gemm_abt(h, rows, K, d, w.d_Y.data(), w.d_P.data(), w.d_G.data());  // G1 = Y P^T
  if (mode == detail::QMode::Diagonal) {
    launch_square(w.d_Y.data(), w.d_Ysq.data(), rows * static_cast<std::size_t>(d), s);
    gemm_abt(h, rows, K, d, w.d_Ysq.data(), w.d_Q.data(), w.d_G2.data());  // G2 = (Y*Y) Q^T
  }
  launch_posterior_weights(w.d_G.data(), mode == detail::QMode::Diagonal ? w.d_G2.data() : nullptr,
                           w.d_Y.data(), w.d_bias.data(), w.d_Q.data(), w.d_s2.data(), rows, d, K, mode, s);
  gemm_ab(h, rows, K, d, w.d_G.data(), w.d_P.data(), w.d_S1.data());  // S1 = W P
  const Real* d_S2 = nullptr;
  if (mode == detail::QMode::Diagonal) {
    gemm_ab(h, rows, K, d, w.d_G.data(), w.d_Q.data(), w.d_Ysq.data());  // S2 = W Q (over Ysq)
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

}  // namespace gmmdiff::gpu
