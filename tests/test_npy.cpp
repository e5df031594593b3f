// .npy: round trips, and every malformed file gets a clear error.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "gmmdiff/error.hpp"
#include "gmmdiff/npy.hpp"

using namespace gmmdiff;

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
  EXPECT_FALSE(std::ifstream(p + ".tmp." + std::to_string(getpid())).good());
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
  auto with_header = [&](const std::string& dict) {
    std::string h = dict;
    while ((10 + h.size() + 1) % 64) h += ' ';
    h += '\n';
    std::string f = std::string("\x93NUMPY\x01\x00", 8);
    f += static_cast<char>(h.size() & 0xff);
    f += static_cast<char>(h.size() >> 8);
    std::ofstream(p, std::ios::binary) << f << h << std::string(64, '\0');
  };
  with_header("{'descr': '>f8', 'fortran_order': False, 'shape': (2, 2), }");
  EXPECT_THROW(read_npy(p), Error);
  with_header("{'descr': '<f8', 'fortran_order': True, 'shape': (2, 2), }");
  EXPECT_THROW(read_npy(p), Error);
  with_header("{'descr': '<f8', 'fortran_order': False, 'shape': (2, 2), }");
  EXPECT_EQ(read_npy(p).data.size(), 4u);
}
