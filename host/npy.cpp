// gmmdiff: NumPy .npy reading and atomic streaming writing.
// Format: https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html
#include "gmmdiff/npy.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <limits>

#include "atomic_file.hpp"
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

NpyHeader read_npy_header(const std::string& path) {
  File f(std::fopen(path.c_str(), "rb"));
  GMMDIFF_EXPECTS(f.f, path, ": cannot open (", std::strerror(errno), ")");
  unsigned char pre[10];
  GMMDIFF_EXPECTS(std::fread(pre, 1, 8, f.f) == 8 && std::memcmp(pre, kMagic, 6) == 0, path,
                  ": not a .npy file (bad magic)");
  const int major = pre[6];
  GMMDIFF_EXPECTS(major >= 1 && major <= 3, path, ": unsupported .npy version ", major);
  uint64_t hlen = 0, pre_len = 0;
  if (major == 1) {
    GMMDIFF_EXPECTS(std::fread(pre + 8, 1, 2, f.f) == 2, path, ": truncated .npy header");
    hlen = pre[8] | (pre[9] << 8);
    pre_len = 10;
  } else {
    unsigned char b[4];
    GMMDIFF_EXPECTS(std::fread(b, 1, 4, f.f) == 4, path, ": truncated .npy header");
    hlen = uint64_t(b[0]) | (uint64_t(b[1]) << 8) | (uint64_t(b[2]) << 16) | (uint64_t(b[3]) << 24);
    pre_len = 12;
  }
  GMMDIFF_EXPECTS(hlen <= kMaxHeader, path, ": .npy header of ", hlen, " bytes is implausible");
  std::string h(hlen, '\0');
  GMMDIFF_EXPECTS(std::fread(&h[0], 1, hlen, f.f) == hlen, path, ": truncated .npy header");
  NpyHeader out;
  out.data_offset = pre_len + hlen;
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

NpyArray read_npy(const std::string& path) {
  const NpyHeader h = read_npy_header(path);
  GMMDIFF_EXPECTS(!h.fortran_order, path, ": Fortran-ordered arrays are not supported (save with C order)");
  const std::size_t isz = itemsize(h.dtype, path);
  uint64_t count = 1;
  for (uint64_t s : h.shape) {
    GMMDIFF_EXPECTS(s == 0 || count <= std::numeric_limits<uint64_t>::max() / s / isz, path,
                    ": shape too large");
    count *= s;
  }
  struct stat st {};
  GMMDIFF_EXPECTS(::stat(path.c_str(), &st) == 0, path, ": cannot stat");
  const uint64_t need = h.data_offset + count * isz;  // wraps around (need < data_offset) past 2^64
  GMMDIFF_EXPECTS(need >= h.data_offset && static_cast<uint64_t>(st.st_size) >= need, path, ": truncated .npy (",
                  st.st_size, " bytes, the header promises ",
                  need >= h.data_offset ? std::to_string(need) : "over 2^64", ")");
  File f(std::fopen(path.c_str(), "rb"));
  GMMDIFF_EXPECTS(f.f && std::fseek(f.f, static_cast<long>(h.data_offset), SEEK_SET) == 0, path,
                  ": cannot read");
  NpyArray a;
  a.shape = h.shape;
  a.dtype = h.dtype;
  a.data.resize(count);
  constexpr std::size_t kBuf = 1 << 16;
  std::vector<unsigned char> buf(kBuf * isz);
  for (uint64_t done = 0; done < count;) {
    const std::size_t m = static_cast<std::size_t>(std::min<uint64_t>(kBuf, count - done));
    GMMDIFF_EXPECTS(std::fread(buf.data(), isz, m, f.f) == m, path, ": truncated .npy data");
    for (std::size_t i = 0; i < m; ++i) {
      const unsigned char* b = buf.data() + i * isz;
      double v;
      if (h.dtype == "<f4") { float x; std::memcpy(&x, b, 4); v = x; }
      else if (h.dtype == "<f8") { std::memcpy(&v, b, 8); }
      else if (h.dtype == "<i4") { int32_t x; std::memcpy(&x, b, 4); v = double(x); }
      else { int64_t x; std::memcpy(&x, b, 8); v = double(x); }
      a.data[done + i] = v;
    }
    done += m;
  }
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

NpyWriter::NpyWriter(const std::string& path, uint64_t rows, uint64_t cols, bool fp64)
    : path_(path), tmp_(temp_name_for(path)), rows_(rows), cols_(cols), fp64_(fp64) {
  register_temp(tmp_);
  f_ = std::fopen(tmp_.c_str(), "wb");
  if (!f_) unregister_temp(tmp_);
  GMMDIFF_EXPECTS(f_, path, ": cannot write (", std::strerror(errno), ")");
  const std::string h = make_header(rows, cols, fp64, false);
  if (std::fwrite(h.data(), 1, h.size(), f_) != h.size()) {
    std::fclose(f_);
    std::remove(tmp_.c_str());
    unregister_temp(tmp_);
    throw Error(path + ": write failed");
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
  GMMDIFF_EXPECTS(std::fwrite(data, fp64_ ? 8 : 4, n, f_) == n, path_, ": write failed (",
                  std::strerror(errno), ")");
  written_ += rows;
}

void NpyWriter::commit() {
  GMMDIFF_EXPECTS(written_ == rows_, path_, ": ", written_, " of ", rows_, " rows written");
  const bool ok = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  GMMDIFF_EXPECTS(ok && closed && std::rename(tmp_.c_str(), path_.c_str()) == 0, path_,
                  ": could not finish the file (", std::strerror(errno), ")");
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
