// gmmdiff: histogram and finiteness kernels (histogram_kernels.hpp).
// Two passes per sub-batch of rows: (1) one thread per (row, value) computes the value in double
// and its bin; (2) one thread per row checks finiteness and adds its 1-D bins and 2-D cells to a
// per-block histogram in shared memory (32-bit counters: a block sees far fewer than 2^32 rows),
// which is then flushed with one global 64-bit atomicAdd per non-zero bin.
#include "cuda/kernels/histogram_kernels.hpp"

#include "cuda/rt/cuda_error.hpp"
#include "cuda/kernels/launch_config.hpp"
#include "gmmdiff/detail/step_math.hpp"

namespace gmmdiff::gpu {

namespace {

// Static shared memory a block may use without opting in (48 KiB), in 32-bit counters.
constexpr int kSharedBinsLimit = 48 * 1024 / static_cast<int>(sizeof(unsigned int));
// Blocks of the counting pass: enough to fill a device, few enough that the per-block flush of
// the shared histogram stays cheap.
constexpr unsigned int kCountBlocksMax = 1024;

template <typename Real>
__device__ bool row_is_finite(const Real* __restrict__ y, int d) {
  bool ok = true;
  for (int j = 0; j < d; ++j) ok = ok && detail::is_finite<Real>(y[j]);
  return ok;
}

template <typename Real>
__global__ void histogram_bins_kernel(const Real* __restrict__ Y,  // [rows, d]
                                      std::size_t rows, int d, DeviceHistogramSpec spec,
                                      int* __restrict__ bins) {    // [rows, nv]
  const int nv = spec.num_values;
  const std::size_t n = rows * static_cast<std::size_t>(nv);
  for (std::size_t idx = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; idx < n;
       idx += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    const std::size_t i = idx / nv;
    const int v = static_cast<int>(idx % nv);
    const Real* y = Y + i * d;
    double value = 0;
    if (v < spec.num_directions) {
      const double* u = spec.d_directions + static_cast<std::size_t>(v) * d;
      for (int j = 0; j < d; ++j) value += static_cast<double>(y[j]) * u[j];
    } else {  // radial: |y - center|^2
      for (int j = 0; j < d; ++j) {
        const double e = static_cast<double>(y[j]) - spec.d_center[j];
        value += e * e;
      }
    }
    bins[idx] = detail::find_bin<double>(value, spec.d_edges + spec.d_edge_offset[v],
                                         spec.d_num_bins[v]);
  }
}

template <typename Real, bool kShared>
__global__ void histogram_count_kernel(const Real* __restrict__ Y,    // [rows, d]
                                       std::size_t rows, int d,
                                       const int* __restrict__ bins,  // [rows, nv]
                                       DeviceHistogramSpec spec,
                                       unsigned long long* __restrict__ counts,  // [total_bins]
                                       unsigned long long* __restrict__ nonfinite) {
  extern __shared__ unsigned int shared_counts[];  // [total_bins] when kShared
  if constexpr (kShared) {
    for (int b = threadIdx.x; b < spec.total_bins; b += blockDim.x) shared_counts[b] = 0u;
    __syncthreads();
  }
  const int nv = spec.num_values;
  unsigned long long my_nonfinite = 0;
  for (std::size_t i = blockIdx.x * static_cast<std::size_t>(blockDim.x) + threadIdx.x; i < rows;
       i += static_cast<std::size_t>(gridDim.x) * blockDim.x) {
    if (!row_is_finite(Y + i * d, d)) {
      ++my_nonfinite;
      continue;
    }
    const int* b = bins + i * nv;
    for (int h = 0; h < nv + spec.num_pairs; ++h) {
      int cell;
      if (h < nv) {
        cell = b[h];
      } else {
        const int p = h - nv;
        const int va = spec.d_pairs[2 * p], vb = spec.d_pairs[2 * p + 1];
        cell = b[va] * spec.d_num_bins[vb] + b[vb];
      }
      const int slot = spec.d_count_offset[h] + cell;
      if constexpr (kShared) atomicAdd(&shared_counts[slot], 1u);
      else atomicAdd(&counts[slot], 1ull);
    }
  }
  if (my_nonfinite != 0) atomicAdd(nonfinite, my_nonfinite);
  if constexpr (kShared) {
    __syncthreads();
    for (int s = threadIdx.x; s < spec.total_bins; s += blockDim.x) {
      const unsigned int c = shared_counts[s];
      if (c != 0u) atomicAdd(&counts[s], static_cast<unsigned long long>(c));
    }
  }
}

template <typename Real>
__global__ void count_nonfinite_rows_kernel(const Real* __restrict__ Y,  // [rows, d]
                                            std::size_t rows, int d,
                                            unsigned long long* __restrict__ count) {
  // Every thread of the block runs the same number of iterations, so __syncthreads_count
  // is reached uniformly.
  const std::size_t stride = static_cast<std::size_t>(gridDim.x) * blockDim.x;
  for (std::size_t base = static_cast<std::size_t>(blockIdx.x) * blockDim.x; base < rows;
       base += stride) {
    const std::size_t i = base + threadIdx.x;
    const int bad = (i < rows && !row_is_finite(Y + i * d, d)) ? 1 : 0;
    const int block_bad = __syncthreads_count(bad);
    if (threadIdx.x == 0 && block_bad != 0)
      atomicAdd(count, static_cast<unsigned long long>(block_bad));
  }
}

template <typename Real>
void bins_impl(const Real* d_Y, std::size_t rows, int d, const DeviceHistogramSpec& spec,
               int* d_bins, cudaStream_t stream) {
  const std::size_t n = rows * static_cast<std::size_t>(spec.num_values);
  if (n == 0) return;
  histogram_bins_kernel<Real><<<grid_blocks(n), kBlockThreads, 0, stream>>>(d_Y, rows, d, spec,
                                                                            d_bins);
  CUDA_CHECK_LAUNCH("histogram_bins_kernel");
}

template <typename Real>
void count_impl(const Real* d_Y, std::size_t rows, int d, const int* d_bins,
                const DeviceHistogramSpec& spec, unsigned long long* d_counts,
                unsigned long long* d_nonfinite, cudaStream_t stream) {
  if (rows == 0) return;
  const unsigned int blocks = std::min(grid_blocks(rows), kCountBlocksMax);
  if (spec.total_bins <= kSharedBinsLimit) {
    const std::size_t smem = static_cast<std::size_t>(spec.total_bins) * sizeof(unsigned int);
    histogram_count_kernel<Real, true><<<blocks, kBlockThreads, smem, stream>>>(
        d_Y, rows, d, d_bins, spec, d_counts, d_nonfinite);
    CUDA_CHECK_LAUNCH("histogram_count_kernel<shared>");
  } else {
    histogram_count_kernel<Real, false><<<blocks, kBlockThreads, 0, stream>>>(
        d_Y, rows, d, d_bins, spec, d_counts, d_nonfinite);
    CUDA_CHECK_LAUNCH("histogram_count_kernel<global>");
  }
}

template <typename Real>
void nonfinite_impl(const Real* d_Y, std::size_t rows, int d, unsigned long long* d_count,
                    cudaStream_t stream) {
  if (rows == 0) return;
  count_nonfinite_rows_kernel<Real><<<grid_blocks(rows), kBlockThreads, 0, stream>>>(d_Y, rows, d,
                                                                                     d_count);
  CUDA_CHECK_LAUNCH("count_nonfinite_rows_kernel");
}

}  // namespace

int histogram_shared_bins_limit() { return kSharedBinsLimit; }

void launch_histogram_bins(const float* d_Y, std::size_t rows, int d,
                           const DeviceHistogramSpec& spec, int* d_bins, cudaStream_t stream) {
  bins_impl(d_Y, rows, d, spec, d_bins, stream);
}
void launch_histogram_bins(const double* d_Y, std::size_t rows, int d,
                           const DeviceHistogramSpec& spec, int* d_bins, cudaStream_t stream) {
  bins_impl(d_Y, rows, d, spec, d_bins, stream);
}

void launch_histogram_count(const float* d_Y, std::size_t rows, int d, const int* d_bins,
                            const DeviceHistogramSpec& spec, unsigned long long* d_counts,
                            unsigned long long* d_nonfinite, cudaStream_t stream) {
  count_impl(d_Y, rows, d, d_bins, spec, d_counts, d_nonfinite, stream);
}
void launch_histogram_count(const double* d_Y, std::size_t rows, int d, const int* d_bins,
                            const DeviceHistogramSpec& spec, unsigned long long* d_counts,
                            unsigned long long* d_nonfinite, cudaStream_t stream) {
  count_impl(d_Y, rows, d, d_bins, spec, d_counts, d_nonfinite, stream);
}

void launch_count_nonfinite_rows(const float* d_Y, std::size_t rows, int d,
                                 unsigned long long* d_count, cudaStream_t stream) {
  nonfinite_impl(d_Y, rows, d, d_count, stream);
}
void launch_count_nonfinite_rows(const double* d_Y, std::size_t rows, int d,
                                 unsigned long long* d_count, cudaStream_t stream) {
  nonfinite_impl(d_Y, rows, d, d_count, stream);
}

}  // namespace gmmdiff::gpu
