// gmmdiff: launch geometry shared by the launchers (1-D grids over a flat index with a
// grid-stride loop, so any size is covered by a bounded grid).
#pragma once
#include <algorithm>
#include <cstddef>

namespace gmmdiff::gpu {

constexpr int kBlockThreads = 256;
constexpr std::size_t kMaxGridBlocks = std::size_t{1} << 20;

/// Blocks for n items at kBlockThreads per block (at least 1, at most kMaxGridBlocks).
inline unsigned int grid_blocks(std::size_t n) {
  const std::size_t b = (n + kBlockThreads - 1) / kBlockThreads;
  return static_cast<unsigned int>(std::clamp<std::size_t>(b, 1, kMaxGridBlocks));
}

/// Blocks of 4 coordinates per row: the unit of one Philox call.
inline int coord_blocks(int d) { return (d + 3) / 4; }

}  // namespace gmmdiff::gpu
