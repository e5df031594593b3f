// Test helpers shared by the TV tests and the `tv` command's tests: small mixtures, exact draws
// from them (std::mt19937_64, independent of gmmdiff's own Philox streams), temporary paths, and
// a raw .npy writer that bypasses the library's writer.
#pragma once
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "gmmdiff/model.hpp"
#include "util/model_util.hpp"

namespace gmmdiff::test {

/// n exact draws from a mixture (std::mt19937_64: deterministic for a given standard library).
inline std::vector<double> draw(const Mixture& m, uint64_t n, uint64_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> N01;
  std::discrete_distribution<int> pick(m.weights.begin(), m.weights.end());
  std::vector<double> y(n * m.d);
  for (uint64_t i = 0; i < n; ++i) {
    const int k = pick(g);
    for (int j = 0; j < m.d; ++j) y[i * m.d + j] = m.mean(k)[j] + std::sqrt(m.var(k, j)) * N01(g);
  }
  return y;
}

/// A path in the test's temporary directory, unique to this process.
inline std::string temp_path(const std::string& name) {
  return testing::TempDir() + "/tv_" + std::to_string(::getpid()) + "_" + name;
}

/// A float64 .npy of the given shape (rows may be 0), written directly.
inline void write_npy_raw(const std::string& path, const std::vector<double>& data, uint64_t rows, uint64_t cols) {
  std::string header = "{'descr': '<f8', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                       std::to_string(cols) + "), }";
  const std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header.push_back('\n');
  std::ofstream f(path, std::ios::binary);
  f.write("\x93NUMPY\x01\x00", 8);
  const uint16_t hl = static_cast<uint16_t>(header.size());
  f.write(reinterpret_cast<const char*>(&hl), 2);
  f.write(header.data(), header.size());
  f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(rows * cols * sizeof(double)));
}

}  // namespace gmmdiff::test
