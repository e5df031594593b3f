// Test helper: a sink that gathers every chunk on the host, in double.
#pragma once
#include <cstring>
#include <vector>

#include "gmmdiff/backend.hpp"
#include "gmmdiff/sampler.hpp"

namespace gmmdiff::test {

class CollectSink : public ChunkSink {
 public:
  CollectSink(int d, Precision p) : d_(d), p_(p) {}
  void on_chunk(Backend& be) override {
    const std::size_t n = be.rows() * static_cast<std::size_t>(d_);
    if (p_ == Precision::FP32) {
      std::vector<float> b(n);
      be.download(b.data());
      data.insert(data.end(), b.begin(), b.end());
    } else {
      std::vector<double> b(n);
      be.download(b.data());
      data.insert(data.end(), b.begin(), b.end());
    }
    ++chunks;
  }
  std::vector<double> data;
  int chunks = 0;

 private:
  int d_;
  Precision p_;
};

}  // namespace gmmdiff::test
