// gmmdiff: the forward noise of the path bound's continuations, many rows at once, vectorised
// (cpu/cpu_normals.hpp: Philox in 32-bit lanes, Box-Muller with libmvec's log/cos/sin). Row r's
// coordinate j is the normal of (seed, stream, pid[r], step, j): the values depend only on those,
// never on the rows beside it (up to libmvec's rounding they equal detail::philox_normal4<double>).
#pragma once
#include <cstdint>

#include "cpu/cpu_backend.hpp"

namespace gmmdiff::bounds {

class NormalsBuffer {
 public:
  /// Fills the normals of rows r < nr (at most kMaxRows) of dimension d.
  void fill(uint64_t seed, uint32_t stream, const uint64_t* pid, int nr, uint32_t step, int d);
  /// Row r's normals start at z() + r * stride(); stride() = d rounded up to a multiple of 4.
  const double* z() const { return z_; }
  int stride() const { return dz_; }
  static constexpr int kMaxRows = 1 << 16;

 private:
  AlignedBuffer mem_;
  int nr_ = -1, d_ = -1, dz_ = 0, E_ = 0;
  uint32_t* erow_ = nullptr;
  uint32_t* eblk_ = nullptr;
  double* z_ = nullptr;
};

}  // namespace gmmdiff::bounds
