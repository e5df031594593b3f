// Test helpers: reading a backend's chunk back in double, and sinks that gather a run's chunks.
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/sampler.hpp"

namespace gmmdiff::test {

/// The backend's current chunk (rows x d), converted to double.
inline std::vector<double> download_double(const Backend& be, int d, Precision p) {
  const std::size_t n = be.rows() * static_cast<std::size_t>(d);
  std::vector<double> out(n);
  if (p == Precision::FP32) {
    std::vector<float> buf(n);
    be.download(buf.data());
    std::copy(buf.begin(), buf.end(), out.begin());
  } else {
    be.download(out.data());
  }
  return out;
}

/// Appends every finished chunk, in the order they come.
class CollectSink : public ChunkSink {
 public:
  CollectSink(int d, Precision p) : d_(d), p_(p) {}
  void on_chunk(Backend& be) override {
    const std::vector<double> part = download_double(be, d_, p_);
    data.insert(data.end(), part.begin(), part.end());
    ++chunks;
  }
  std::vector<double> data;
  int chunks = 0;

 private:
  int d_;
  Precision p_;
};

/// Keeps every finished chunk at its particles' place (n x d), and every snapshot as it came.
class PlacedSink : public ChunkSink {
 public:
  PlacedSink(uint64_t n, int d, Precision p) : y(n * static_cast<std::size_t>(d)), d_(d), p_(p) {}
  void on_chunk(Backend& be) override {
    const std::vector<double> part = download_double(be, d_, p_);
    std::copy(part.begin(), part.end(), y.begin() + static_cast<std::ptrdiff_t>(be.first() * d_));
    ++chunks;
  }
  void on_snapshot(Backend& be, int t) override {
    snapshots.push_back(t);
    snapshot_values.push_back(download_double(be, d_, p_));
  }
  std::vector<double> y;
  std::size_t chunks = 0;
  std::vector<int> snapshots;
  std::vector<std::vector<double>> snapshot_values;

 private:
  int d_;
  Precision p_;
};

}  // namespace gmmdiff::test
