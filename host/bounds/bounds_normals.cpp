// gmmdiff: vectorised normals of the path bound's continuations (bounds_normals.hpp). Compiled with
// -fno-math-errno, -fno-trapping-math and -ffp-contract=fast (CMakeLists.txt), as the fused step.
#include "bounds/bounds_normals.hpp"

#include <algorithm>

#include "cpu/cpu_normals.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff::bounds {

namespace {

constexpr int kPairLanes = 16;  // the pair count is padded to a multiple of this

/// Row r's particle; the padding pairs (rows >= nr) take the last row's, whose values are not used.
struct ParticleTable {
  const uint64_t* pid;
  uint32_t last;
  GMMDIFF_INLINE uint64_t operator()(uint32_t r) const { return pid[r < last ? r : last]; }
};

GMMDIFF_CPU_CLONES void normals_f64(uint64_t seed, uint32_t stream, const uint64_t* pid, int nr, uint32_t step, int E,
                                    const uint32_t* erow, const uint32_t* eblk, double* out) {
  cpu_simd::block_normals<double>(seed, stream, ParticleTable{pid, static_cast<uint32_t>(nr - 1)}, step, E, erow,
                                  eblk, out);
}

}  // namespace

void NormalsBuffer::fill(uint64_t seed, uint32_t stream, const uint64_t* pid, int nr, uint32_t step, int d) {
  GMMDIFF_EXPECTS(nr >= 1 && nr <= kMaxRows && d >= 1, "normals: ", nr, " rows of d = ", d);
  if (nr != nr_ || d != d_) {
    // Pairs e = row * nblk + block, so that normal 4 e + c is coordinate 4 block + c of the row.
    const int nblk = (d + 3) / 4;
    dz_ = 4 * nblk;
    E_ = (nr * nblk + kPairLanes - 1) / kPairLanes * kPairLanes;
    const std::size_t pair_bytes = (std::size_t(E_) * sizeof(uint32_t) + 63) / 64 * 64;
    char* m = static_cast<char*>(mem_.reserve(2 * pair_bytes + std::size_t(4) * E_ * sizeof(double)));
    erow_ = reinterpret_cast<uint32_t*>(m);
    eblk_ = reinterpret_cast<uint32_t*>(m + pair_bytes);
    z_ = reinterpret_cast<double*>(m + 2 * pair_bytes);
    for (int e = 0; e < E_; ++e) {
      erow_[e] = static_cast<uint32_t>(e / nblk);
      eblk_[e] = static_cast<uint32_t>(e % nblk);
    }
    nr_ = nr;
    d_ = d;
  }
  normals_f64(seed, stream, pid, nr, step, E_, erow_, eblk_, z_);
}

}  // namespace gmmdiff::bounds
