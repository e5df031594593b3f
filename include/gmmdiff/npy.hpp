// gmmdiff: NumPy .npy files (format 1.0/2.0/3.0 read, 1.0 or 2.0 written), C order, '<f4'/'<f8'.
#pragma once
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

namespace gmmdiff {

/// An array read from a .npy file, converted to double.
struct NpyArray {
  std::vector<uint64_t> shape;
  std::vector<double> data;
  std::string dtype;  ///< as in the file, e.g. "<f4"
  uint64_t rows() const { return shape.empty() ? 1 : shape[0]; }
  uint64_t cols() const { return shape.size() < 2 ? 1 : shape[1]; }
};

/// Reads a whole .npy of float32/float64 (also int32/int64, converted). Throws gmmdiff::Error
/// naming the file and the problem on anything malformed or truncated.
NpyArray read_npy(const std::string& path);

/// Header of a .npy file without reading the data.
struct NpyHeader {
  std::vector<uint64_t> shape;
  std::string dtype;
  bool fortran_order = false;
  uint64_t data_offset = 0;
};
NpyHeader read_npy_header(const std::string& path);

/// Streams rows of a 2-D float32/float64 array into `path` atomically: the data go to a
/// temporary file beside it, renamed on commit(); an uncommitted writer removes its temporary.
class NpyWriter {
 public:
  NpyWriter(const std::string& path, uint64_t rows, uint64_t cols, bool fp64);
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  /// Appends `rows` rows (row-major, fp32 or fp64 matching the constructor).
  void append(const void* data, uint64_t rows);
  /// Checks that every row was written, flushes, renames into place.
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  uint64_t rows_, cols_, written_ = 0;
  bool fp64_;
  std::FILE* f_ = nullptr;
  bool committed_ = false;
};

/// Writes a whole 2-D double array as '<f8' (or '<f4' when fp32), atomically.
void write_npy(const std::string& path, const double* data, uint64_t rows, uint64_t cols, bool fp32 = false);

}  // namespace gmmdiff
