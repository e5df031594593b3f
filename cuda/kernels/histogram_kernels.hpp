// gmmdiff: launchers that bin statistics of a chunk where it lies (Backend::accumulate_histograms)
// and count its non-finite rows. Only counts leave the device.
#pragma once
#include <cstddef>
#include <cstdint>

#include <cuda_runtime_api.h>

namespace gmmdiff::gpu {

/// A HistogramSpec flattened into device arrays (built by the backend).
struct DeviceHistogramSpec {
  int num_values = 0;      ///< nv = m + radial
  int num_directions = 0;  ///< m
  bool radial = false;
  int num_pairs = 0;
  int total_bins = 0;                      ///< sum_v B_v + sum_p B_a B_b
  const double* d_directions = nullptr;    ///< [m, d]
  const double* d_center = nullptr;        ///< [d] (radial)
  const double* d_edges = nullptr;         ///< all edges[v] one after another
  const int* d_edge_offset = nullptr;      ///< [nv]: where edges[v] starts in d_edges
  const int* d_num_bins = nullptr;         ///< [nv]: B_v
  const int* d_pairs = nullptr;            ///< [num_pairs, 2]: value indices (a, b)
  const int* d_count_offset = nullptr;     ///< [nv + num_pairs]: where each histogram starts
};

/// Bins of every value of every row: d_bins[i][v] = find_bin(value_v(y_i), edges[v], B_v), values
/// in double (projections sum_j (double)y_ij u_vj and |y_i - center|^2, j ascending).
/// d_Y: [rows, d]; d_bins: [rows, nv].
void launch_histogram_bins(const float* d_Y, std::size_t rows, int d,
                           const DeviceHistogramSpec& spec, int* d_bins, cudaStream_t stream);
void launch_histogram_bins(const double* d_Y, std::size_t rows, int d,
                           const DeviceHistogramSpec& spec, int* d_bins, cudaStream_t stream);

/// Adds each finite row's bins into d_counts [total_bins] (1-D histograms, then the 2-D cells
/// bin_a * B_b + bin_b) and the number of non-finite rows into *d_nonfinite. Per-block
/// shared-memory histograms when total_bins fit, global atomics otherwise.
/// d_Y: [rows, d]; d_bins: [rows, nv].
void launch_histogram_count(const float* d_Y, std::size_t rows, int d, const int* d_bins,
                            const DeviceHistogramSpec& spec, unsigned long long* d_counts,
                            unsigned long long* d_nonfinite, cudaStream_t stream);
void launch_histogram_count(const double* d_Y, std::size_t rows, int d, const int* d_bins,
                            const DeviceHistogramSpec& spec, unsigned long long* d_counts,
                            unsigned long long* d_nonfinite, cudaStream_t stream);

/// Adds the number of rows holding a NaN or Inf to *d_count. d_Y: [rows, d].
void launch_count_nonfinite_rows(const float* d_Y, std::size_t rows, int d,
                                 unsigned long long* d_count, cudaStream_t stream);
void launch_count_nonfinite_rows(const double* d_Y, std::size_t rows, int d,
                                 unsigned long long* d_count, cudaStream_t stream);

/// Largest total_bins that launch_histogram_count keeps in shared memory.
int histogram_shared_bins_limit();

}  // namespace gmmdiff::gpu
