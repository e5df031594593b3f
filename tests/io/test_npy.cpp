// .npy: round trips, every malformed file gets a clear error, and NpyReader streams rows in
// bounded memory with read_npy's checks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>

#include <algorithm>
#include <string>
#include <vector>

#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"
#include "io/atomic_file.hpp"
#include "util/error_util.hpp"

using namespace gmmdiff;
using test::error_of;

namespace {
/// A .npy v1.0 file with this header dict and these raw data bytes.
void write_raw_npy(const std::string& path, const std::string& dict, const std::string& data) {
  std::string h = dict;
  while ((10 + h.size() + 1) % 64) h += ' ';
  h += '\n';
  std::string f = std::string("\x93NUMPY\x01\x00", 8);
  f += static_cast<char>(h.size() & 0xff);
  f += static_cast<char>(h.size() >> 8);
  std::ofstream(path, std::ios::binary) << f << h << data;
}
/// Temporaries of this process in dir (io/atomic_file.hpp names them).
int own_temporaries(const std::string& dir) {
  int n = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    long pid = 0;
    n += parse_temp_name(e.path().filename().string(), nullptr, &pid) && pid == static_cast<long>(getpid());
  }
  return n;
}
}  // namespace

TEST(Npy, RoundTripFp64AndFp32) {
  const std::string p = testing::TempDir() + "/rt.npy";
  std::vector<double> v = {1.5, -2.25, 3.0, 1e-300, 4, 5};
  write_npy(p, v.data(), 3, 2);
  NpyArray a = read_npy(p);
  ASSERT_EQ(a.shape, (std::vector<uint64_t>{3, 2}));
  EXPECT_EQ(a.dtype, "<f8");
  EXPECT_EQ(a.data, v);
  write_npy(p, v.data(), 2, 3, /*fp32=*/true);
  a = read_npy(p);
  ASSERT_EQ(a.shape, (std::vector<uint64_t>{2, 3}));
  EXPECT_EQ(a.dtype, "<f4");
  EXPECT_EQ(a.data[1], -2.25);
  EXPECT_EQ(read_npy_header(p).data_offset % 64, 0u);
}

TEST(Npy, StreamingWriterIsAtomic) {
  const std::string p = testing::TempDir() + "/stream.npy";
  std::remove(p.c_str());
  {
    NpyWriter w(p, 4, 2, true);
    double rows[4] = {1, 2, 3, 4};
    w.append(rows, 2);
    // destroyed without commit: nothing at p, no temporary left
  }
  EXPECT_FALSE(std::ifstream(p).good());
  EXPECT_EQ(own_temporaries(testing::TempDir()), 0);
  NpyWriter w(p, 2, 2, true);
  double rows[4] = {1, 2, 3, 4};
  w.append(rows, 1);
  EXPECT_THROW(w.commit(), Error);  // 1 of 2 rows
  w.append(rows + 2, 1);
  w.commit();
  EXPECT_EQ(read_npy(p).data, std::vector<double>({1, 2, 3, 4}));
}

TEST(Npy, MalformedFilesAreClearErrors) {
  const std::string p = testing::TempDir() + "/bad.npy";
  std::vector<double> v(100, 1.0);
  write_npy(p, v.data(), 10, 10);
  // truncated data
  {
    std::ifstream in(p, std::ios::binary);
    std::string s((std::istreambuf_iterator<char>(in)), {});
    std::ofstream(p, std::ios::binary) << s.substr(0, s.size() - 9);
  }
  try {
    read_npy(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  }
  std::ofstream(p, std::ios::binary) << "not a numpy file at all";
  EXPECT_THROW(read_npy(p), Error);
  std::ofstream(p, std::ios::binary) << "\x93NUMPY\x01";
  EXPECT_THROW(read_npy(p), Error);
  EXPECT_THROW(read_npy(testing::TempDir() + "/does_not_exist.npy"), Error);
  // big-endian and Fortran order
  auto with_header = [&](const std::string& dict) { write_raw_npy(p, dict, std::string(64, '\0')); };
  with_header("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }");
  EXPECT_THROW(read_npy(p), Error);
  with_header("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }");
  EXPECT_THROW(read_npy(p), Error);
  with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }");
  EXPECT_EQ(read_npy(p).data.size(), 4u);
  // Issue 15: a key given twice is read by NumPy as its last value; refused here, not read as the first.
  with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), 'shape': (1, 2), }");
  try {
    read_npy(p);
    ADD_FAILURE() << "a .npy header with 'shape' twice was read";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("duplicate key 'shape' in the .npy header"), std::string::npos) << e.what();
  }
}

// ---- NpyReader: streamed rows -------------------------------------------------------------

namespace {

/// Sentinel written past the rows a read may touch: read_rows must leave it alone.
constexpr double kGuard = -7.125e300;


template <typename T>
std::string raw_bytes(const std::vector<T>& v) {
  return std::string(reinterpret_cast<const char*>(v.data()), v.size() * sizeof(T));
}

/// Reads every row of p in chunks of `chunk` rows; checks the API contract on the way: each call
/// returns min(chunk, rows left), writes no value past the rows it returns, and the counters move.
std::vector<double> read_in_chunks(const std::string& p, uint64_t chunk) {
  NpyReader r(p);
  const uint64_t cols = r.cols();
  std::vector<double> all, buf;
  for (;;) {
    const uint64_t left = r.rows_left();
    buf.assign(chunk * cols + 3, kGuard);
    const uint64_t got = r.read_rows(buf.data(), chunk);
    EXPECT_EQ(got, std::min(chunk, left));
    EXPECT_EQ(r.rows_left(), left - got);
    for (std::size_t i = got * cols; i < buf.size(); ++i) {
      EXPECT_EQ(buf[i], kGuard) << "value " << i << " written past " << got << " rows of " << cols;
      if (buf[i] != kGuard) break;
    }
    if (got == 0) break;
    all.insert(all.end(), buf.begin(), buf.begin() + got * cols);
  }
  EXPECT_EQ(r.rows_read(), r.rows());
  return all;
}

}  // namespace

TEST(NpyReader, StreamedRowsEqualTheWholeArrayForAnyChunk) {
  // Fixed values (no randomness): 1001 rows x 3, fp64 and fp32, with NaN and Inf; the row count
  // is a multiple of none of the chunks.
  const uint64_t n = 1001, d = 3;
  std::vector<double> v(n * d);
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = std::ldexp(static_cast<double>(i % 97) - 48.3, int(i % 11) - 5);
  v[5] = NAN;
  v[3 * 500] = -INFINITY;
  const std::string p = testing::TempDir() + "/reader.npy";
  for (const bool fp32 : {false, true}) {
    write_npy(p, v.data(), n, d, fp32);
    const NpyArray whole = read_npy(p);
    ASSERT_EQ(whole.data.size(), n * d);
    for (const uint64_t chunk : {uint64_t(1), uint64_t(7), uint64_t(256), n + 5}) {
      SCOPED_TRACE(testing::Message() << (fp32 ? "<f4" : "<f8") << ", chunk " << chunk << " rows");
      const std::vector<double> got = read_in_chunks(p, chunk);
      ASSERT_EQ(got.size(), whole.data.size());
      for (std::size_t i = 0; i < got.size(); ++i) {
        // bitwise: NaN == NaN here
        ASSERT_EQ(std::memcmp(&got[i], &whole.data[i], sizeof(double)), 0) << "value " << i << ": " << got[i]
                                                                            << " vs " << whole.data[i];
      }
    }
  }
}

TEST(NpyReader, IntegerAndLowDimensionalShapes) {
  const std::string p = testing::TempDir() + "/reader_shapes.npy";
  const std::vector<int32_t> i4 = {-3, 0, 7, 2147483647, -2147483647 - 1, 5};
  write_raw_npy(p, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 2), }", raw_bytes(i4));
  EXPECT_EQ(read_in_chunks(p, 2), std::vector<double>(i4.begin(), i4.end()));
  const std::vector<int64_t> i8 = {int64_t(1) << 40, -1, 9};
  write_raw_npy(p, "{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }", raw_bytes(i8));
  {
    NpyReader r(p);
    EXPECT_EQ(r.rows(), 3u);
    EXPECT_EQ(r.cols(), 1u);
  }
  EXPECT_EQ(read_in_chunks(p, 2), std::vector<double>({double(int64_t(1) << 40), -1, 9}));
  const std::vector<double> one = {2.5};
  write_raw_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (), }", raw_bytes(one));
  {
    NpyReader r(p);
    EXPECT_EQ(r.rows(), 1u);
    EXPECT_EQ(r.cols(), 1u);
  }
  EXPECT_EQ(read_in_chunks(p, 4), one);
  // 3-D: a row is the slice of the last two dimensions
  std::vector<double> v3(2 * 3 * 4);
  for (std::size_t i = 0; i < v3.size(); ++i) v3[i] = double(i);
  write_raw_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3, 4), }", raw_bytes(v3));
  {
    NpyReader r(p);
    EXPECT_EQ(r.rows(), 2u);
    EXPECT_EQ(r.cols(), 12u);
  }
  EXPECT_EQ(read_in_chunks(p, 1), v3);
  // no rows, and rows of no values
  write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 5), }", "");
  {
    NpyReader r(p);
    EXPECT_EQ(r.rows(), 0u);
    EXPECT_EQ(r.cols(), 5u);
    double x = kGuard;
    EXPECT_EQ(r.read_rows(&x, 10), 0u);
    EXPECT_EQ(x, kGuard);
  }
  write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (4, 0), }", "");
  {
    NpyReader r(p);
    EXPECT_EQ(r.read_rows(nullptr, 10), 4u);
    EXPECT_EQ(r.rows_left(), 0u);
  }
}

TEST(NpyReader, MalformedFilesGiveTheMessagesOfReadNpy) {
  const std::string p = testing::TempDir() + "/reader_bad.npy";
  const std::string d8 = std::string(32, '\0');  // 4 doubles
  struct Case {
    std::string what;
    std::function<void()> make;
    std::string needle;
  };
  const std::vector<Case> cases = {
      {"bad magic", [&] { std::ofstream(p, std::ios::binary) << "not a numpy file at all"; }, "bad magic"},
      {"header cut", [&] { std::ofstream(p, std::ios::binary) << std::string("\x93NUMPY\x01\x00\x76", 9); },
       "truncated .npy header"},
      {"version 4", [&] { std::ofstream(p, std::ios::binary) << std::string("\x93NUMPY\x04\x00\x00\x00", 10); },
       "unsupported .npy version 4"},
      {"big-endian", [&] { write_raw_npy(p, "{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }", d8); },
       "unsupported dtype '>f8'"},
      {"Fortran order", [&] { write_raw_npy(p, "{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }", d8); },
       "Fortran-ordered"},
      {"no shape", [&] { write_raw_npy(p, "{'descr': '<f8', 'fortran_order': False, }", d8); }, "no 'shape'"},
      {"data cut", [&] { write_raw_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }", d8); },
       "truncated .npy ("},
      {"size wraps past 2^64",
       [&] { write_raw_npy(p, "{'descr': '<f4', 'fortran_order': False, 'shape': (2147483647, 2147483649), }", ""); },
       "over 2^64"},
      {"shape too large",
       [&] { write_raw_npy(p, "{'descr': '<f8', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", ""); },
       "shape too large"},
      {"missing file", [&] { std::remove(p.c_str()); }, "cannot open"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.what);
    c.make();
    const std::string streamed = error_of([&] { NpyReader r(p); });
    const std::string whole = error_of([&] { read_npy(p); });
    EXPECT_NE(streamed.find(c.needle), std::string::npos) << streamed;
    EXPECT_EQ(streamed.find(p), 0u) << streamed;  // the message starts with the path
    EXPECT_EQ(streamed, whole);
  }
}

TEST(NpyReader, AFileThatShrinksWhileBeingReadIsAnError) {
  // The size is checked when the reader opens the file; cut it afterwards (as another process
  // rewriting the file would) and the read that reaches the end must fail, not invent values.
  const uint64_t n = 20000, d = 4;
  std::vector<double> v(n * d, 1.25);
  const std::string p = testing::TempDir() + "/reader_shrinks.npy";
  for (const bool fp32 : {false, true}) {
    SCOPED_TRACE(fp32 ? "<f4" : "<f8");
    write_npy(p, v.data(), n, d, fp32);
    const uint64_t offset = read_npy_header(p).data_offset, isz = fp32 ? 4 : 8;
    NpyReader r(p);
    std::vector<double> buf(1000 * d);
    ASSERT_EQ(r.read_rows(buf.data(), 1000), 1000u);
    ASSERT_EQ(::truncate(p.c_str(), static_cast<off_t>(offset + n / 2 * d * isz)), 0);
    std::string msg;
    try {
      while (r.read_rows(buf.data(), 1000) > 0) {
      }
    } catch (const Error& e) {
      msg = e.what();
    }
    EXPECT_NE(msg.find("truncated .npy data"), std::string::npos) << msg;
    EXPECT_NE(msg.find("of " + std::to_string(n * d) + " values"), std::string::npos) << msg;
    EXPECT_EQ(msg.find(p), 0u) << msg;
    EXPECT_LT(r.rows_read(), n / 2 + 1);  // no row past the cut was handed out
    // the position in the file is lost: every later read fails too
    EXPECT_NE(error_of([&] { r.read_rows(buf.data(), 1); }).find("read after a failed read"), std::string::npos);
  }
}

TEST(NpyWriter, AnOutputTheFilesystemCannotHoldIsRefusedBeforeWriting) {
  // 2^50 float64 values (9 PB) fit no test machine's disk; 2^62 x 2^3 x 8 bytes overflow 2^64.
  const std::string dir = testing::TempDir() + "/npy_room_" + std::to_string(::getpid());
  ASSERT_EQ(std::system(("rm -rf '" + dir + "' && mkdir -p '" + dir + "'").c_str()), 0);
  const std::string p = dir + "/huge.npy";
  struct Case { uint64_t rows, cols; const char* needle; };
  for (const Case& c : {Case{uint64_t(1) << 40, 1024, "free"}, Case{uint64_t(1) << 62, 8, "2^64"}}) {
    SCOPED_TRACE(testing::Message() << c.rows << " x " << c.cols);
    try {
      NpyWriter w(p, c.rows, c.cols, true);
      FAIL() << "expected a ResourceError";
    } catch (const ResourceError& e) {
      EXPECT_NE(std::string(e.what()).find(c.needle), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(p), std::string::npos) << e.what();
    }
  }
  // nothing was created: neither the file nor its temporary
  const std::string listing = dir + "/listing.txt";
  ASSERT_EQ(std::system(("ls -A '" + dir + "' > '" + listing + "'").c_str()), 0);
  std::ifstream in(listing);
  std::string name, names;
  while (in >> name)
    if (name != "listing.txt") names += name + " ";
  EXPECT_EQ(names, "");
}
