// gmmdiff: the Backend interface's default methods and its shared value types (backend.hpp).
// Both backends build on these; choosing one is the driver's job (host/driver/make_backend.cpp).
#include "gmmdiff/backend.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "gmmdiff/error.hpp"

namespace gmmdiff {

void Backend::set_step_path(const std::string& path) {
  GMMDIFF_EXPECTS(path == "auto" || path == "products", "--path ", path, ": the ", name(),
                  " backend has auto and products");
}

double Backend::time_seconds(const std::function<void()>& work) {
  synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  work();
  synchronize();
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void Backend::stream_chunk(std::size_t row_bytes, std::vector<unsigned char>& scratch,
                           const PieceConsumer& consume) const {
  if (rows_ == 0) return;
  scratch.resize(rows_ * row_bytes);
  download(scratch.data());
  consume(scratch.data(), 0, rows_);
}

double Backend::copy_bandwidth(std::size_t) {
  throw Error("the " + name() + " backend does not measure its copy bandwidth");
}

double Backend::flop_limit(Precision) {
  throw Error("the " + name() + " backend does not know its FLOP limit");
}

namespace {

/// Host memory for results (allocate_host_result): 64-byte aligned, freed by the destructor.
class HostResultMemory final : public ResultMemory {
 public:
  explicit HostResultMemory(std::size_t bytes) : ResultMemory(allocate(bytes), bytes, MemoryKind::Host, 0) {}
  ~HostResultMemory() override { std::free(data_); }
  void copy_to_host(void* host, std::size_t offset, std::size_t bytes) const override {
    GMMDIFF_EXPECTS(offset <= bytes_ && bytes <= bytes_ - offset, "result memory: bytes ", offset, "..",
                    offset + bytes, " lie outside the ", bytes_, " allocated");
    if (bytes > 0) std::memcpy(host, static_cast<const unsigned char*>(data_) + offset, bytes);
  }

 private:
  static void* allocate(std::size_t bytes) {
    constexpr std::size_t kAlign = 64;
    const std::size_t rounded = (std::max<std::size_t>(bytes, 1) + kAlign - 1) / kAlign * kAlign;
    if (rounded < bytes) throw ResourceError("result memory: " + std::to_string(bytes) + " bytes cannot be allocated");
    void* p = std::aligned_alloc(kAlign, rounded);
    if (p == nullptr)
      throw ResourceError("cannot allocate " + std::to_string(bytes >> 20) + " MiB of host memory for the result");
    return p;
  }
};

}  // namespace

std::unique_ptr<ResultMemory> allocate_host_result(std::size_t bytes) {
  return std::make_unique<HostResultMemory>(bytes);
}

void Backend::copy_chunk_to(ResultMemory& dst, std::size_t offset) const {
  GMMDIFF_EXPECTS(dst.kind() == MemoryKind::Host, "the ", name(), " backend copies chunks only into host memory");
  GMMDIFF_EXPECTS(offset <= dst.bytes(), "result memory: offset ", offset, " past its ", dst.bytes(), " bytes");
  download(static_cast<unsigned char*>(dst.data()) + offset);
}

HistogramCounts HistogramCounts::zeros(const HistogramSpec& spec) {
  HistogramCounts c;
  c.one_d.resize(spec.edges.size());
  for (std::size_t v = 0; v < spec.edges.size(); ++v)
    c.one_d[v].assign(spec.edges[v].size() >= 1 ? spec.edges[v].size() - 1 : 0, 0);
  c.two_d.resize(spec.pairs.size());
  for (std::size_t p = 0; p < spec.pairs.size(); ++p) {
    const auto [a, b] = spec.pairs[p];
    c.two_d[p].assign((spec.edges.at(a).size() - 1) * (spec.edges.at(b).size() - 1), 0);
  }
  return c;
}

}  // namespace gmmdiff
