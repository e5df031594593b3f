// gmmdiff: NumPy .npy files (format 1.0/2.0/3.0 read, 1.0 or 2.0 written), C order, '<f4'/'<f8'.
// Whole arrays (read_npy) or streamed rows in bounded memory (NpyReader).
#pragma once
#include <cstddef>
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
/// naming the file and the problem on anything malformed or truncated. Built on NpyReader (the
/// same checks and messages); the array is held in memory as double: 8 bytes per value.
NpyArray read_npy(const std::string& path);

/// Header of a .npy file without reading the data.
struct NpyHeader {
  std::vector<uint64_t> shape;
  std::string dtype;
  bool fortran_order = false;
  uint64_t data_offset = 0;
};
/// Parses the header only: magic, version, header length, descr (a supported dtype),
/// fortran_order, shape. No check of the data's size (NpyReader and read_npy add it).
NpyHeader read_npy_header(const std::string& path);

/// Streams the rows of a .npy file, converted to double, in bounded memory.
///
/// The constructor opens the file once and checks everything read_npy checks, with the same
/// messages: the header (read_npy_header), C order, a supported dtype, a shape whose byte size
/// does not wrap past 2^64, and a file at least as long as the header promises. read_rows then
/// reads the data in order. A row is shape[0]'s slice: rows() = shape[0] and cols() = the
/// product of the other dimensions (a 1-D array has one value per row; a 0-d array is one row
/// of one value).
///
/// Memory: read_rows writes only into the caller's buffer, never more than max_rows * cols()
/// doubles, and uses a fixed staging buffer of kStageValues file values (512 KiB) besides:
/// the reader's own memory does not depend on the file's size. If the file ends before the
/// data do (it shrank after the constructor's size check), read_rows throws gmmdiff::Error
/// ("truncated .npy data ...") and never hands out values that were not read.
class NpyReader {
 public:
  static constexpr std::size_t kStageValues = std::size_t(1) << 16;

  explicit NpyReader(const std::string& path);
  ~NpyReader();
  NpyReader(const NpyReader&) = delete;
  NpyReader& operator=(const NpyReader&) = delete;

  const std::string& path() const { return path_; }
  const NpyHeader& header() const { return header_; }
  const std::vector<uint64_t>& shape() const { return header_.shape; }
  const std::string& dtype() const { return header_.dtype; }
  uint64_t rows() const { return rows_; }
  /// Values per row. For a 0-row array whose other dimensions multiply past 2^64: UINT64_MAX.
  uint64_t cols() const { return cols_; }
  uint64_t count() const { return count_; }  ///< values in the file (rows() * cols())
  uint64_t rows_read() const { return rows_read_; }
  uint64_t rows_left() const { return rows_ - rows_read_; }

  /// Reads the next min(max_rows, rows_left()) rows into dst (row-major, cols() doubles each;
  /// dst must hold that many) and returns how many; 0 once every row has been read. Writes
  /// nothing past the rows it returns. Throws gmmdiff::Error on a short or failed read, and on
  /// every call after one.
  uint64_t read_rows(double* dst, uint64_t max_rows);
  /// Moves to row `row` (0 .. rows()): the next read_rows starts there. For a part of the rows
  /// read by one of several processes (docs/scale.md). Throws gmmdiff::Error past the end.
  void seek_row(uint64_t row);

 private:
  std::string path_;
  NpyHeader header_;
  std::FILE* f_ = nullptr;
  std::size_t itemsize_ = 0;
  int kind_ = 0;  ///< the dtype, as an index into the conversions of npy.cpp
  uint64_t rows_ = 0, cols_ = 0, count_ = 0, rows_read_ = 0;
  bool failed_ = false;  ///< a read failed: the position in the file is unknown
  std::vector<unsigned char> stage_;
};

/// Streams rows of a 2-D float32/float64 array into `path` atomically: the data go to a
/// temporary file beside it (temp_name_for, host/io/atomic_file.hpp), renamed on commit(); an
/// uncommitted writer removes its temporary. A write that fails for a full disk, a quota or a
/// file-size limit is a ResourceError, any other a gmmdiff::Error.
class NpyWriter {
 public:
  NpyWriter(const std::string& path, uint64_t rows, uint64_t cols, bool fp64);
  ~NpyWriter();
  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;
  /// Appends `rows` rows (row-major, fp32 or fp64 matching the constructor).
  void append(const void* data, uint64_t rows);
  /// Checks that every row was written, flushes, syncs and closes the temporary, without putting
  /// it in place yet: a run with several outputs finishes them all before committing any, so that
  /// a failure leaves none of them (an error here is the common one: a full disk).
  void finish();
  /// finish() if not done yet, then renames the temporary into place.
  void commit();
  const std::string& path() const { return path_; }

 private:
  std::string path_, tmp_;
  uint64_t rows_, cols_, written_ = 0;
  bool fp64_;
  std::FILE* f_ = nullptr;
  bool finished_ = false, committed_ = false;
};

/// Writes a whole 2-D double array as '<f8' (or '<f4' when fp32), atomically.
void write_npy(const std::string& path, const double* data, uint64_t rows, uint64_t cols, bool fp32 = false);

}  // namespace gmmdiff
