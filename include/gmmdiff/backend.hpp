// gmmdiff: the interface both backends implement. Host-only types: no CUDA here.
//
// A backend owns one chunk of particles at a time (rows x d, in the run's precision), in its own
// memory (host for cpu, device for cuda). The host driver (sampler.hpp) fills a chunk, steps it
// through the schedule with coefficients it computes in double, and hands the chunk to a sink,
// which either copies it to the host or bins statistics of it where it lies.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "gmmdiff/model.hpp"
#include "gmmdiff/types.hpp"

namespace gmmdiff {

/// Chunks are sized in multiples of this many rows (unless one chunk covers the whole run).
constexpr std::size_t kChunkAlign = 256;

/// What a run needs to size and set up a backend.
struct RunShape {
  int d = 0;
  int K = 0;
  Covariance cov = Covariance::Isotropic;
  Precision precision = Precision::FP32;
  uint64_t seed = 0;
  std::size_t chunk_rows = 0;  ///< capacity: the largest chunk the run will use
  /// Whether the run steps the chunk (sampling). TV's sample chunks and reference samples are only
  /// filled (upload_chunk, fill_target) and binned: max_chunk_rows then reserves no step scratch.
  bool steps = true;
};

/// The shape of a run of the mixture m (its d, K and covariance kind).
inline RunShape run_shape(const Mixture& m, Precision precision, uint64_t seed, std::size_t chunk_rows = 0) {
  RunShape s;
  s.d = m.d;
  s.K = m.K;
  s.cov = m.cov;
  s.precision = precision;
  s.seed = seed;
  s.chunk_rows = chunk_rows;
  return s;
}

/// Coefficients of one reverse step t, computed by the host driver in double (THEORY.md):
/// V_kj = abar_t C_kj + 1 - abar_t,
/// logit_k(y) = bias_k + sum_j P_kj y_j - 1/2 sum_j Q_kj y_j^2,
/// score_j(y) = sum_k w_k (P_kj - Q_kj y_j),
/// y' = inv_sqrt_alpha * (y + kappa * (score_scale * score + bias_dir)) + sigma * z
///      [+ the score-error noise noise_sd * xi inside the kappa bracket].
struct StepCoeffs {
  int t = 0;                   ///< the step, T..1: also the Philox counter of its noise
  bool diagonal = false;       ///< Q is [K, d] (diagonal) or [K] (isotropic: Q_kj = Q_k)
  bool uniform_q = false;      ///< all Q equal: the y^2 term is the same for all k and is skipped
  std::vector<double> P;       ///< [K, d]: sqrt(abar_t) mu_k / V_k
  std::vector<double> Q;       ///< [K, d] or [K]: 1 / V_k
  std::vector<double> bias;    ///< [K]: log pi_k - 1/2 sum_j log V_kj - abar_t/2 sum_j mu_kj^2 / V_kj
  double kappa = 0;            ///< 1 - alpha_t (ddpm) or (1 - alpha_t)/2 (ddim)
  double inv_sqrt_alpha = 1;   ///< 1 / sqrt(alpha_t)
  double sigma = 0;            ///< noise sd of the step (0 for ddim)
  double score_scale = 1;      ///< score error `scale`: (1 + eps)
  std::vector<double> bias_dir;  ///< [d] or empty: score error `bias` (eps * unit direction)
  double noise_sd = 0;         ///< score error `gaussian`: sd per coordinate of the added noise
};

/// Statistics to bin over a chunk (built by the TV module, tv.hpp).
/// Values: v = 0..m-1 are projections <y, u_v> on the rows of `directions`; when `radial` is set,
/// value m is |y - center|^2. Each value v has bin edges edges[v] (B_v + 1 entries, increasing,
/// edges[v][0] = -inf and edges[v][B_v] = +inf allowed); x falls in bin b when
/// edges[b] <= x < edges[b+1]. pairs lists 2-D histograms on (value a, value b), counted into
/// B_a x B_b cells, row-major in a.
struct HistogramSpec {
  int d = 0;
  std::vector<double> directions;  ///< [m, d]
  bool radial = false;
  std::vector<double> center;      ///< [d] when radial
  std::vector<std::vector<double>> edges;     ///< [m + radial][B_v + 1]
  std::vector<std::pair<int, int>> pairs;     ///< 2-D histograms on value indices
  int num_values() const { return static_cast<int>(edges.size()); }
};

/// Counts accumulated over chunks. A row with any non-finite coordinate is counted in
/// `nonfinite_rows` and in no histogram.
struct HistogramCounts {
  std::vector<std::vector<uint64_t>> one_d;  ///< [values][B_v]
  std::vector<std::vector<uint64_t>> two_d;  ///< [pairs][B_a * B_b]
  uint64_t rows = 0;           ///< all rows seen
  uint64_t nonfinite_rows = 0;
  /// Zeroed counts shaped for spec.
  static HistogramCounts zeros(const HistogramSpec& spec);
};

/// The memory a backend computes in: the host (cpu) or a CUDA device (cuda).
enum class MemoryKind { Host, Cuda };

/// Memory allocated by a backend for results that stay where it computes (Backend::allocate_result):
/// host memory for cpu, device memory for cuda. It owns its allocation, frees it in its destructor
/// (which never throws), and outlives the backend that made it. Callers export it without a copy
/// (the Python module's DLPack arrays) or copy it to the host.
class ResultMemory {
 public:
  virtual ~ResultMemory() = default;
  ResultMemory(const ResultMemory&) = delete;
  ResultMemory& operator=(const ResultMemory&) = delete;
  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  MemoryKind kind() const { return kind_; }
  int device() const { return device_; }  ///< the CUDA device ordinal (0 for host memory)
  /// Copies `bytes` bytes from byte `offset` of this memory into host memory (blocking).
  /// Throws gmmdiff::Error when the range lies outside the allocation.
  virtual void copy_to_host(void* host, std::size_t offset, std::size_t bytes) const = 0;

 protected:
  ResultMemory(void* data, std::size_t bytes, MemoryKind kind, int device)
      : data_(data), bytes_(bytes), kind_(kind), device_(device) {}
  void* data_;
  std::size_t bytes_;
  MemoryKind kind_;
  int device_;
};

/// Host memory of `bytes` bytes (64-byte aligned; ResourceError when it cannot be allocated).
std::unique_ptr<ResultMemory> allocate_host_result(std::size_t bytes);

class Backend {
 public:
  virtual ~Backend() = default;
  Backend() = default;
  Backend(const Backend&) = delete;
  Backend& operator=(const Backend&) = delete;

  virtual std::string name() const = 0;         ///< "cpu" | "cuda"
  virtual std::string device_name() const = 0;  ///< e.g. "2 threads" or "NVIDIA H100 80GB HBM3"
  /// Largest chunk (rows) that fits this backend's memory for a run of this shape
  /// (0: not even one row fits).
  virtual std::size_t max_chunk_rows(const RunShape& shape) const = 0;

  /// Allocates for shape (chunk_rows set) and uploads nothing yet. Called once per run.
  virtual void begin(const RunShape& shape, const Mixture& target) = 0;
  /// Y_T ~ N(0, I) for particles first .. first + rows - 1 (Philox stream kStreamInit).
  virtual void init_chunk(uint64_t first, std::size_t rows) = 0;
  /// Exact samples of the target given to begin() for particles first..first+rows-1
  /// (Philox stream kStreamTarget): used for reference histograms and noise floors.
  virtual void fill_target(uint64_t first, std::size_t rows) = 0;
  /// Copies rows x d values (row-major) from host memory into the chunk, converting from double.
  virtual void upload_chunk(const double* host, uint64_t first, std::size_t rows) = 0;
  /// One reverse step on the whole chunk.
  virtual void step(const StepCoeffs& c) = 0;
  /// steps[0], ..., steps[count - 1] in that order, with the results of as many step() calls
  /// (e.g. several steps per kernel launch, the chunk held in registers between them). Returns
  /// false, having done nothing, when this backend or its current step path has no multi-step
  /// form; the caller then calls step() for each.
  virtual bool step_many(const StepCoeffs* steps, std::size_t count) {
    (void)steps;
    (void)count;
    return false;
  }
  /// Copies the chunk to host memory in the run's precision (rows x d, row-major).
  virtual void download(void* host) const = 0;
  /// Hands the chunk (rows() rows of row_bytes = d x the run's value size, row-major) to
  /// consume(values, row0, rows) in consecutive pieces of whole rows, in order; the values are
  /// valid during the call only. For a chunk that goes to the host (a file): the default downloads
  /// the whole chunk into `scratch` (resized) and makes one call; the CUDA backend streams it
  /// through two pinned buffers of bounded size, the copy of one piece running while consume
  /// handles the other (docs/cuda.md, "Staging"), and leaves scratch alone.
  using PieceConsumer = std::function<void(const void* values, std::size_t row0, std::size_t rows)>;
  virtual void stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& scratch,
                            const PieceConsumer& consume) const;
  /// Memory of `bytes` bytes where this backend computes, for results that stay there
  /// (default: host memory; cuda: device memory). ResourceError when it does not fit.
  virtual std::unique_ptr<ResultMemory> allocate_result(std::size_t bytes) const {
    return allocate_host_result(bytes);
  }
  /// Copies the chunk (rows x d, run precision, row-major) into dst from byte `offset` on,
  /// without leaving dst's memory kind: device to device on cuda, download() into host memory.
  /// The caller checks that the chunk fits (offset + rows x d x bytes of the precision <= dst.bytes()).
  /// Default: download() into host memory (an Error for device memory).
  virtual void copy_chunk_to(ResultMemory& dst, std::size_t offset) const;
  /// Rows of the current chunk that hold a NaN or Inf.
  virtual uint64_t count_nonfinite_rows() const = 0;
  /// Bins the statistics of spec over the current chunk into counts (accumulating).
  virtual void accumulate_histograms(const HistogramSpec& spec, HistogramCounts& counts) = 0;

  // ---- step paths and measurement (used by the run summary and `gmmdiff bench`) ----
  /// Chooses how step() computes: "auto" (the backend picks from K, d and precision),
  /// "products" (GEMMs + per-particle kernels), "fused" (one pass per step, small K).
  /// Throws gmmdiff::Error for a path this backend does not have.
  virtual void set_step_path(const std::string& path);
  /// The path the last step() took, e.g. "cpu-blas", "cpu-fused", "cuda-gemm", "cuda-fused".
  virtual std::string step_path() const { return name(); }
  /// Blocks until the work queued on this backend is done (GPU); no-op on the CPU.
  virtual void synchronize() {}
  /// Seconds `work` takes on this backend (CUDA: events around it; CPU: a steady clock).
  virtual double time_seconds(const std::function<void()>& work);
  /// Copy bandwidth of this backend's memory in bytes per second (read + write counted), measured
  /// now with buffers of about `bytes` each.
  virtual double copy_bandwidth(std::size_t bytes);
  /// The FLOP-rate limit in FLOP/s for precision p: the device's peak where it is known
  /// (GPU: SMs x clock x FMA units), else measured now (CPU: FMA chains in the widest vector unit).
  virtual double flop_limit(Precision p);
  /// What flop_limit measured or assumed, e.g. "zmm (AVX-512 FMA)" or "SMs x clock x FMA lanes".
  virtual std::string flop_unit() const { return ""; }
  /// Seconds per standard normal of a step's noise (Philox + Box-Muller as the step draws them) for
  /// the whole backend (all its threads at once), measured now; 0 when this backend does not know.
  virtual double normal_seconds(Precision p) {
    (void)p;
    return 0;
  }
  /// Seconds per posterior weight of a step (logit, max, exp, sum and normalisation of one
  /// component for one particle) for the whole backend, measured now; 0 when this backend does not know.
  virtual double weight_seconds(Precision p) {
    (void)p;
    return 0;
  }

  std::size_t rows() const { return rows_; }
  uint64_t first() const { return first_; }

 protected:
  std::size_t rows_ = 0;
  uint64_t first_ = 0;
};

/// Philox streams: randomness is a pure function of (seed, stream, particle, step, coordinate).
enum PhiloxStream : uint32_t {
  kStreamInit = 0,        ///< Y_T
  kStreamStep = 1,        ///< z of step t
  kStreamScoreNoise = 2,  ///< score-error noise of step t
  kStreamTarget = 3,      ///< exact target samples X_0
  kStreamForward = 4,     ///< forward noise W of X_t (eps_score measurement)
  kStreamAux = 5,         ///< directions, random means, bias direction (particle = purpose id)
  kStreamBoundOuter = 6,  ///< bounds: outer draws x_s ~ p_s of the ddpm path bound (particle = draw i)
  kStreamBoundForward = 7,  ///< bounds: forward noise of continuation m of draw i at step t
                            ///< (particle = detail::continuation_particle(i, m))
};

/// Backend names: "cpu", "cuda", "auto" (cuda when a device is present, else cpu).
/// threads: CPU threads (0: OpenMP's default; at most 4096). Throws on an unknown name or cuda
/// without a device.
std::unique_ptr<Backend> make_backend(const std::string& name, int threads = 0);

/// What this build and machine offer, for `gmmdiff info`.
struct DeviceInfo {
  std::string name;
  std::size_t total_bytes = 0;
  std::size_t free_bytes = 0;
  int cc_major = 0, cc_minor = 0;
  int sm_count = 0;
};
bool cuda_compiled();                   ///< built with the CUDA backend
std::vector<DeviceInfo> cuda_devices(); ///< empty without a driver or device
std::string cuda_runtime_version();     ///< "" when not compiled

}  // namespace gmmdiff
