// gmmdiff: NumPy .npy reading (whole, or streamed in rows) and atomic streaming writing.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#include "gmmdiff/npy.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <limits>
#include <new>

#include "io/atomic_file.hpp"
#include "io/input.hpp"
#include "io/npy_slices.hpp"
#include "gmmdiff/error.hpp"

namespace gmmdiff {

namespace {

constexpr char kMagic[] = "\x93NUMPY";
constexpr uint64_t kMaxHeader = 1u << 20;

struct File {
  std::FILE* f = nullptr;
  explicit File(std::FILE* p) : f(p) {}
  ~File() {
    if (f) std::fclose(f);
  }
};

// Value of 'key' in the header dict, as raw text up to the next top-level comma or brace.
std::string dict_value(const std::string& h, const std::string& key, const std::string& path) {
  const auto k = h.find("'" + key + "'");
  GMMDIFF_EXPECTS(k != std::string::npos, path, ": .npy header has no '", key, "'");
  auto p = h.find(':', k);
  GMMDIFF_EXPECTS(p != std::string::npos, path, ": malformed .npy header");
  ++p;
  while (p < h.size() && h[p] == ' ') ++p;
  if (p < h.size() && h[p] == '(') {
    const auto e = h.find(')', p);
    GMMDIFF_EXPECTS(e != std::string::npos, path, ": malformed shape in .npy header");
    return h.substr(p, e - p + 1);
  }
  auto e = p;
  while (e < h.size() && h[e] != ',' && h[e] != '}') ++e;
  return h.substr(p, e - p);
}

std::size_t itemsize(const std::string& dtype, const std::string& path) {
  if (dtype == "<f4" || dtype == "<i4") return 4;
  if (dtype == "<f8" || dtype == "<i8") return 8;
  throw Error(path + ": unsupported dtype '" + dtype + "' (allowed: <f4, <f8, <i4, <i8, little-endian)");
}

}  // namespace

namespace {

// The header from the start of an open file; leaves f at data_offset.
NpyHeader parse_header(std::FILE* f, const std::string& path) {
  unsigned char pre[10];
  GMMDIFF_EXPECTS(std::fread(pre, 1, 8, f) == 8 && std::memcmp(pre, kMagic, 6) == 0, path,
                  ": not a .npy file (bad magic)");
  const int major = pre[6];
  GMMDIFF_EXPECTS(major >= 1 && major <= 3, path, ": unsupported .npy version ", major);
  uint64_t hlen = 0, pre_len = 0;
  if (major == 1) {
    GMMDIFF_EXPECTS(std::fread(pre + 8, 1, 2, f) == 2, path, ": truncated .npy header");
    hlen = pre[8] | (pre[9] << 8);
    pre_len = 10;
  } else {
    unsigned char b[4];
    GMMDIFF_EXPECTS(std::fread(b, 1, 4, f) == 4, path, ": truncated .npy header");
    hlen = uint64_t(b[0]) | (uint64_t(b[1]) << 8) | (uint64_t(b[2]) << 16) | (uint64_t(b[3]) << 24);
    pre_len = 12;
  }
  GMMDIFF_EXPECTS(hlen <= kMaxHeader, path, ": .npy header of ", hlen, " bytes is implausible");
  std::string h(hlen, '\0');
  GMMDIFF_EXPECTS(std::fread(&h[0], 1, hlen, f) == hlen, path, ": truncated .npy header");
  NpyHeader out;
  out.data_offset = pre_len + hlen;
  // A key given twice would be read here as its first value and by NumPy as its last: refused,
  // as duplicate keys are in every JSON file (io/input.hpp).
  for (const char* key : {"'descr'", "'fortran_order'", "'shape'"}) {
    const auto first = h.find(key);
    GMMDIFF_EXPECTS(first == std::string::npos || h.find(key, first + 1) == std::string::npos, path,
                    ": duplicate key ", key, " in the .npy header");
  }
  std::string descr = dict_value(h, "descr", path);
  GMMDIFF_EXPECTS(descr.size() >= 2 && (descr.front() == '\'' || descr.front() == '"'), path,
                  ": malformed descr in .npy header");
  out.dtype = descr.substr(1, descr.size() - 2);
  const std::string fo = dict_value(h, "fortran_order", path);
  GMMDIFF_EXPECTS(fo == "False" || fo == "True", path, ": malformed fortran_order in .npy header");
  out.fortran_order = fo == "True";
  const std::string shape = dict_value(h, "shape", path);
  GMMDIFF_EXPECTS(shape.size() >= 2 && shape.front() == '(', path, ": malformed shape in .npy header");
  std::string inner = shape.substr(1, shape.size() - 2);
  std::size_t p = 0;
  while (p < inner.size()) {
    while (p < inner.size() && (inner[p] == ' ' || inner[p] == ',')) ++p;
    if (p >= inner.size()) break;
    std::size_t e = p;
    while (e < inner.size() && inner[e] >= '0' && inner[e] <= '9') ++e;
    GMMDIFF_EXPECTS(e > p && e - p < 19, path, ": malformed shape ", shape, " in .npy header");
    out.shape.push_back(std::stoull(inner.substr(p, e - p)));
    p = e;
  }
  itemsize(out.dtype, path);
  return out;
}

// The dtypes read_rows converts, indexed by NpyReader::kind_.
enum Kind { kF4 = 0, kF8 = 1, kI4 = 2, kI8 = 3 };
int kind_of(const std::string& dtype) {
  return dtype == "<f4" ? kF4 : dtype == "<f8" ? kF8 : dtype == "<i4" ? kI4 : kI8;
}

// n little-endian values of type T at src, as double, into dst (the host is little-endian).
template <typename T>
void convert(const unsigned char* src, std::size_t n, double* dst) {
  for (std::size_t i = 0; i < n; ++i) {
    T x;
    std::memcpy(&x, src + i * sizeof(T), sizeof(T));
    dst[i] = static_cast<double>(x);
  }
}

}  // namespace

namespace {
/// The file at path, opened for reading: a regular file (io/input.hpp), else gmmdiff::Error.
std::FILE* open_npy(const std::string& path) {
  const int fd = open_input_file(path, ".npy file");
  std::FILE* f = ::fdopen(fd, "rb");
  if (!f) {
    const int e = errno;
    ::close(fd);
    throw Error(path + ": cannot open the .npy file (" + std::strerror(e) + ")");
  }
  return f;
}
}  // namespace

NpyHeader read_npy_header(const std::string& path) {
  File f(open_npy(path));
  return parse_header(f.f, path);
}

NpyReader::NpyReader(const std::string& path) : path_(path) {
  File f(open_npy(path));
  header_ = parse_header(f.f, path);
  const NpyHeader& h = header_;
  GMMDIFF_EXPECTS(!h.fortran_order, path, ": Fortran-ordered arrays are not supported (save with C order)");
  itemsize_ = itemsize(h.dtype, path);
  kind_ = kind_of(h.dtype);
  uint64_t count = 1;
  for (uint64_t s : h.shape) {
    GMMDIFF_EXPECTS(s == 0 || count <= std::numeric_limits<uint64_t>::max() / s / itemsize_, path,
                    ": shape too large");
    count *= s;
  }
  // The size of the open file (not of whatever the path names by now).
  struct stat st {};
  GMMDIFF_EXPECTS(::fstat(::fileno(f.f), &st) == 0, path, ": cannot stat");
  const uint64_t need = h.data_offset + count * itemsize_;  // wraps around (need < data_offset) past 2^64
  GMMDIFF_EXPECTS(need >= h.data_offset && static_cast<uint64_t>(st.st_size) >= need, path, ": truncated .npy (",
                  st.st_size, " bytes, the header promises ",
                  need >= h.data_offset ? std::to_string(need) : "over 2^64", ")");
  count_ = count;
  rows_ = h.shape.empty() ? 1 : h.shape[0];
  // Values per row: the other dimensions. With rows_ > 0 their product divides count_ (no
  // wrap); a 0-row array was not checked past its 0, so saturate.
  cols_ = 1;
  for (std::size_t i = 1; i < h.shape.size(); ++i) {
    const uint64_t s = h.shape[i];
    cols_ = (s != 0 && cols_ > std::numeric_limits<uint64_t>::max() / s) ? std::numeric_limits<uint64_t>::max()
                                                                          : cols_ * s;
  }
#ifdef POSIX_FADV_SEQUENTIAL
  (void)::posix_fadvise(::fileno(f.f), 0, 0, POSIX_FADV_SEQUENTIAL);  // a hint: read ahead
#endif
  f_ = f.f;  // positioned at data_offset by parse_header
  f.f = nullptr;
}

NpyReader::~NpyReader() {
  if (f_) std::fclose(f_);
}

uint64_t NpyReader::read_rows(double* dst, uint64_t max_rows) {
  GMMDIFF_EXPECTS(!failed_, path_, ": read after a failed read");
  const uint64_t r = std::min(max_rows, rows_left());
  if (r == 0) return 0;
  const uint64_t n = r * cols_;  // <= count_: no wrap
  GMMDIFF_EXPECTS(dst != nullptr || n == 0, path_, ": read_rows into a null buffer");
  const uint64_t before = rows_read_ * cols_;
  uint64_t done = 0;
  auto short_read = [&](std::size_t got) {
    failed_ = true;
    const uint64_t at = before + done + got;
    if (std::ferror(f_))
      throw Error(detail::cat(path_, ": read error after ", at, " of ", count_, " values (", std::strerror(errno),
                              ")"));
    throw Error(detail::cat(path_, ": truncated .npy data (the file ends after ", at, " of ", count_,
                            " values: it is shorter than its header promises, or shrank while being read)"));
  };
  if (kind_ == kF8) {  // the file's bytes are the doubles: straight into dst
    while (done < n) {
      const std::size_t m = static_cast<std::size_t>(std::min<uint64_t>(n - done, uint64_t(1) << 24));
      const std::size_t got = std::fread(dst + done, 8, m, f_);
      if (got != m) short_read(got);
      done += m;
    }
  } else {
    if (stage_.empty()) stage_.resize(static_cast<std::size_t>(std::min<uint64_t>(kStageValues, count_)) * itemsize_);
    const std::size_t cap = stage_.size() / itemsize_;
    while (done < n) {
      const std::size_t m = static_cast<std::size_t>(std::min<uint64_t>(n - done, cap));
      const std::size_t got = std::fread(stage_.data(), itemsize_, m, f_);
      if (got != m) short_read(got);
      if (kind_ == kF4) convert<float>(stage_.data(), m, dst + done);
      else if (kind_ == kI4) convert<int32_t>(stage_.data(), m, dst + done);
      else convert<int64_t>(stage_.data(), m, dst + done);
      done += m;
    }
  }
  rows_read_ += r;
  return r;
}

void NpyReader::seek_row(uint64_t row) {
  GMMDIFF_EXPECTS(!failed_, path_, ": seek after a failed read");
  GMMDIFF_EXPECTS(row <= rows_, path_, ": row ", row, " is past the last row (", rows_, " rows)");
  const uint64_t at = header_.data_offset + row * cols_ * itemsize_;  // <= the file's size: no wrap
  if (::fseeko(f_, static_cast<off_t>(at), SEEK_SET) != 0) {
    failed_ = true;
    throw Error(detail::cat(path_, ": cannot seek to row ", row, " (", std::strerror(errno), ")"));
  }
  rows_read_ = row;
}

NpyArray read_npy(const std::string& path) {
  NpyReader r(path);
  NpyArray a;
  a.shape = r.shape();
  a.dtype = r.dtype();
  try {
    a.data.resize(static_cast<std::size_t>(r.count()));
  } catch (const std::bad_alloc&) {
    throw ResourceError(detail::cat(path, ": cannot hold its ", r.count(), " values in memory as double (",
                                    (r.count() * 8) >> 20, " MiB); large samples are streamed by gmmdiff tv"));
  }
  r.read_rows(a.data.data(), r.rows());
  return a;
}

namespace {
std::string make_header(uint64_t rows, uint64_t cols, bool fp64, bool one_d) {
  std::string dict = std::string("{'descr': '") + (fp64 ? "<f8" : "<f4") + "', 'fortran_order': False, 'shape': (" +
                     std::to_string(rows) + (one_d ? ",), }" : ", " + std::to_string(cols) + "), }");
  // Version 1.0: magic(6) + version(2) + len(2) + dict padded with spaces, ending in '\n', total % 64 == 0.
  std::size_t total = 10 + dict.size() + 1;
  const std::size_t pad = (64 - total % 64) % 64;
  dict += std::string(pad, ' ') + "\n";
  std::string out(kMagic, 6);
  out += '\x01';
  out += '\x00';
  out += static_cast<char>(dict.size() & 0xff);
  out += static_cast<char>((dict.size() >> 8) & 0xff);
  return out + dict;
}
}  // namespace

namespace {
std::string gib(double bytes) {
  char b[32];
  std::snprintf(b, sizeof b, "%.3g GB", bytes / 1e9);
  return b;
}

/// Refuses, before anything is written, an output its filesystem cannot hold (an hour-long run
/// that fails at 90% is worse than one line now). Skipped where statvfs cannot tell.
void check_room(const std::string& path, const std::string& tmp, uint64_t header, uint64_t rows, uint64_t cols,
                bool fp64) {
  const uint64_t width = fp64 ? 8 : 4;
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  if (cols != 0 && rows > (kMax - header) / width / cols)
    throw ResourceError(detail::cat(path, ": ", rows, " x ", cols, " values take over 2^64 bytes"));
  const uint64_t need = header + rows * cols * width;
  const std::size_t slash = tmp.find_last_of('/');
  const std::string dir = slash == std::string::npos ? "." : (slash == 0 ? "/" : tmp.substr(0, slash));
  struct statvfs sv;
  if (::statvfs(dir.c_str(), &sv) != 0) return;
  const long double avail = static_cast<long double>(sv.f_bavail) * static_cast<long double>(sv.f_frsize);
  if (static_cast<long double>(need) > avail)
    throw ResourceError(detail::cat(path, ": the output needs ", gib(double(need)), " (", rows, " x ", cols,
                                    fp64 ? " float64" : " float32", ") but its filesystem has ",
                                    gib(double(avail)), " free"));
}

}  // namespace

NpyWriter::NpyWriter(const std::string& path, uint64_t rows, uint64_t cols, bool fp64)
    : path_(path), tmp_(temp_name_for(path)), rows_(rows), cols_(cols), fp64_(fp64) {
  check_output_path(path);
  const std::string h = make_header(rows, cols, fp64, false);
  check_room(path, tmp_, h.size(), rows, cols, fp64);
  register_temp(tmp_);
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) {
    const int e = errno;
    unregister_temp(tmp_);
    throw_write_error(path + ": cannot write", e);
  }
  if (std::fwrite(h.data(), 1, h.size(), f_) != h.size()) {
    const int e = errno;
    std::fclose(f_);
    std::remove(tmp_.c_str());
    unregister_temp(tmp_);
    throw_write_error(path + ": write failed", e);
  }
}

NpyWriter::~NpyWriter() {
  if (f_) std::fclose(f_);
  if (!committed_) std::remove(tmp_.c_str());
  unregister_temp(tmp_);
}

void NpyWriter::append(const void* data, uint64_t rows) {
  GMMDIFF_EXPECTS(!committed_ && f_, path_, ": append after commit");
  GMMDIFF_EXPECTS(written_ + rows <= rows_, path_, ": more rows than declared (", written_ + rows, " > ", rows_, ")");
  const std::size_t n = static_cast<std::size_t>(rows * cols_);
  if (std::fwrite(data, fp64_ ? 8 : 4, n, f_) != n) throw_write_error(path_ + ": write failed", errno);
  written_ += rows;
}

void NpyWriter::finish() {
  if (finished_) return;
  GMMDIFF_EXPECTS(!committed_ && f_, path_, ": finish after commit");
  GMMDIFF_EXPECTS(written_ == rows_, path_, ": ", written_, " of ", rows_, " rows written");
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const int e = errno;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!(ok && closed)) throw_write_error(path_ + ": could not finish the file", ok ? errno : e);
  finished_ = true;
}

void NpyWriter::commit() {
  finish();
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) throw_write_error(path_ + ": could not finish the file", errno);
  committed_ = true;
}

void write_npy(const std::string& path, const double* data, uint64_t rows, uint64_t cols, bool fp32) {
  NpyWriter w(path, rows, cols, !fp32);
  if (fp32) {
    std::vector<float> tmp(data, data + rows * cols);
    w.append(tmp.data(), rows);
  } else {
    w.append(data, rows);
  }
  w.commit();
}

}  // namespace gmmdiff

// ---- NpySlices (host/io/npy_slices.hpp): one file, rows written by several processes ----------

namespace gmmdiff {

void NpySlices::create(const std::string& path, const std::string& tmp, uint64_t rows, uint64_t cols, bool fp64) {
  check_output_path(path);
  const std::string h = make_header(rows, cols, fp64, false);
  check_room(path, tmp, h.size(), rows, cols, fp64);
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  GMMDIFF_EXPECTS(fd >= 0, path, ": cannot write (", std::strerror(errno), ")");
  const uint64_t size = h.size() + rows * cols * (fp64 ? 8 : 4);  // check_room: no wrap
  const bool ok = ::pwrite(fd, h.data(), h.size(), 0) == static_cast<ssize_t>(h.size()) &&
                  ::ftruncate(fd, static_cast<off_t>(size)) == 0;
  const int e = errno;
  ::close(fd);
  if (!ok) {
    ::unlink(tmp.c_str());
    throw_write_error(path + ": cannot create", e);
  }
}

void NpySlices::commit(const std::string& tmp, const std::string& path) {
  if (std::rename(tmp.c_str(), path.c_str()) != 0) throw_write_error(path + ": could not finish the file", errno);
}

NpySlices::NpySlices(const std::string& path, const std::string& tmp, uint64_t rows, uint64_t cols, bool fp64)
    : path_(path), tmp_(tmp), rows_(rows), cols_(cols), width_(fp64 ? 8 : 4),
      offset_(make_header(rows, cols, fp64, false).size()) {
  fd_ = ::open(tmp.c_str(), O_WRONLY | O_CLOEXEC);
  GMMDIFF_EXPECTS(fd_ >= 0, path, ": cannot open the shared temporary ", tmp, " (", std::strerror(errno),
                  "; do all ranks see the same filesystem?)");
  struct stat st {};
  const uint64_t size = offset_ + rows * cols * width_;
  if (::fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != size) {
    ::close(fd_);
    fd_ = -1;
    throw Error(detail::cat(path, ": the shared temporary ", tmp, " is not the file this rank expects (",
                            static_cast<uint64_t>(st.st_size), " bytes, not ", size, ")"));
  }
}

NpySlices::~NpySlices() {
  if (fd_ >= 0) ::close(fd_);
}

void NpySlices::write_rows(uint64_t first_row, const void* data, uint64_t rows) {
  GMMDIFF_EXPECTS(fd_ >= 0, path_, ": write after finish");
  GMMDIFF_EXPECTS(first_row <= rows_ && rows <= rows_ - first_row, path_, ": rows ", first_row, "..",
                  first_row + rows, " are outside the ", rows_, " rows of the file");
  const char* p = static_cast<const char*>(data);
  uint64_t left = rows * cols_ * width_, at = offset_ + first_row * cols_ * width_;
  while (left > 0) {
    const std::size_t m = static_cast<std::size_t>(std::min<uint64_t>(left, uint64_t(1) << 30));
    const ssize_t w = ::pwrite(fd_, p, m, static_cast<off_t>(at));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) throw_write_error(path_ + ": write failed", w < 0 ? errno : EIO);
    p += w;
    at += static_cast<uint64_t>(w);
    left -= static_cast<uint64_t>(w);
  }
}

void NpySlices::finish() {
  GMMDIFF_EXPECTS(fd_ >= 0, path_, ": finished twice");
  const bool synced = ::fsync(fd_) == 0;
  const int e = errno;
  const bool closed = ::close(fd_) == 0;
  fd_ = -1;
  if (!synced || !closed) throw_write_error(path_ + ": could not finish this rank's rows", synced ? errno : e);
}

}  // namespace gmmdiff
