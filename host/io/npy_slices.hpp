// gmmdiff (io): one .npy written by several processes at once, each its own rows at their offset,
// for `mpirun ... gmmdiff sample --out` (host/dist/npy_out.hpp orchestrates it; docs/scale.md).
//
// One process creates the temporary (header, then the file extended to its full size); every
// process opens it and writes its rows with pwrite(2) at header + first_row x row bytes; each
// flushes its writes (fsync) and closes; one renames it into place when all have succeeded. Rows
// written by different processes never share a byte, so any order gives the same file: the bytes
// NpyWriter writes for the same rows. Needs a filesystem every process sees (local, NFS, Lustre,
// GPFS).
#pragma once
#include <cstdint>
#include <string>

namespace gmmdiff {

class NpySlices {
 public:
  /// Creates `tmp` for an (rows, cols) array of float32/float64 that will become `path`: writes
  /// the header and extends the file to its full size. Checks `path` (check_output_path) and the
  /// room on its filesystem first. Throws gmmdiff::Error (ResourceError when it cannot fit).
  static void create(const std::string& path, const std::string& tmp, uint64_t rows, uint64_t cols, bool fp64);
  /// Renames the finished `tmp` into place as `path`; throws gmmdiff::Error on failure.
  static void commit(const std::string& tmp, const std::string& path);

  /// Opens `tmp` (made by create, with the same shape) for writing rows.
  NpySlices(const std::string& path, const std::string& tmp, uint64_t rows, uint64_t cols, bool fp64);
  ~NpySlices();  ///< closes the file (never removes it: whoever commits or discards decides)
  NpySlices(const NpySlices&) = delete;
  NpySlices& operator=(const NpySlices&) = delete;

  /// Writes `rows` rows (row-major, the dtype of the file) as rows first_row .. first_row + rows - 1.
  void write_rows(uint64_t first_row, const void* data, uint64_t rows);
  /// Flushes this process's writes to the file (fsync) and closes it; throws on failure.
  void finish();
  /// Bytes before the first row (the header).
  uint64_t data_offset() const { return offset_; }

 private:
  std::string path_, tmp_;
  uint64_t rows_, cols_, width_, offset_;
  int fd_ = -1;
};

}  // namespace gmmdiff
