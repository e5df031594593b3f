// Philox4x32-10 against the Random123 known-answer vectors, and the normals it feeds.
#include <gtest/gtest.h>

#include <cmath>

#include "gmmdiff/detail/philox.hpp"

using namespace gmmdiff::detail;

TEST(Philox, Random123KnownAnswers) {
  struct Kat { uint32_t ctr[4], key[2], out[4]; };
  const Kat kats[] = {
      {{0, 0, 0, 0}, {0, 0}, {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}},
      {{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff},
       {0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}},
      {{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0},
       {0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}},
  };
  for (const Kat& k : kats) {
    const U32x4 r = philox4x32_10(U32x4{{k.ctr[0], k.ctr[1], k.ctr[2], k.ctr[3]}}, k.key[0], k.key[1]);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(r.v[i], k.out[i]) << "word " << i << " of ctr " << std::hex << k.ctr[0];
  }
}

TEST(Philox, NormalsHaveUnitMomentsAndDistinctStreams) {
  constexpr int kN = 200000;
  constexpr double kTol = 5.0;  // standard errors
  double s1 = 0, s2 = 0, s4 = 0;
  for (int i = 0; i < kN / 4; ++i) {
    double z[4];
    philox_normal4<double>(42, 1, i, 7, 0, z);
    for (double v : z) { s1 += v; s2 += v * v; s4 += v * v * v * v; }
  }
  EXPECT_NEAR(s1 / kN, 0.0, kTol / std::sqrt(double(kN)));
  EXPECT_NEAR(s2 / kN, 1.0, kTol * std::sqrt(2.0 / kN));
  EXPECT_NEAR(s4 / kN, 3.0, kTol * std::sqrt(96.0 / kN));
  // float and double draws of the same counter agree to float rounding
  float zf[4];
  double zd[4];
  philox_normal4<float>(9, 2, 123, 4, 5, zf);
  philox_normal4<double>(9, 2, 123, 4, 5, zd);
  for (int i = 0; i < 4; ++i) EXPECT_NEAR(zf[i], zd[i], 1e-5 * (1 + std::fabs(zd[i])));
  // a different stream, step, particle or seed gives different bits
  const U32x4 a = philox_bits(1, 0, 5, 3, 0);
  for (const U32x4& b : {philox_bits(2, 0, 5, 3, 0), philox_bits(1, 1, 5, 3, 0), philox_bits(1, 0, 6, 3, 0),
                         philox_bits(1, 0, 5, 4, 0), philox_bits(1, 0, 5, 3, 1)})
    EXPECT_NE(a.v[0], b.v[0]);
}
