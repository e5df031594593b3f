// gmmdiff: Philox4x32-10 (Salmon et al., SC'11; the generator behind cuRAND's PHILOX4_32_10),
// one implementation compiled for host and device, so that the noise is a pure function of
// (seed, stream, particle, step, coordinate) and identical on both backends.
//
// Counter layout: c0 = coordinate block (coordinate / 4), c1 = step t, c2 = particle bits 0..31,
// c3 = particle bits 32..47 | stream << 16.  Key = the 64-bit seed.
#pragma once
#include <math.h>

#include <cstdint>

#include "gmmdiff/detail/hd.hpp"

namespace gmmdiff {
namespace detail {

struct U32x4 {
  uint32_t v[4];
};

GMMDIFF_HD uint32_t mulhilo32(uint32_t a, uint32_t b, uint32_t* hi) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  *hi = static_cast<uint32_t>(p >> 32);
  return static_cast<uint32_t>(p);
}

/// Philox4x32 with 10 rounds, as in Random123 (philox.h) and cuRAND.
GMMDIFF_HD U32x4 philox4x32_10(U32x4 ctr, uint32_t k0, uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 0; r < 10; ++r) {
    uint32_t hi0, hi1;
    const uint32_t lo0 = mulhilo32(M0, ctr.v[0], &hi0);
    const uint32_t lo1 = mulhilo32(M1, ctr.v[2], &hi1);
    ctr = U32x4{{hi1 ^ ctr.v[1] ^ k0, lo1, hi0 ^ ctr.v[3] ^ k1, lo0}};
    k0 += W0;
    k1 += W1;
  }
  return ctr;
}

/// The four 32-bit words for (seed, stream, particle, step, block).
GMMDIFF_HD U32x4 philox_bits(uint64_t seed, uint32_t stream, uint64_t particle, uint32_t step,
                             uint32_t block) {
  const U32x4 ctr{{block, step, static_cast<uint32_t>(particle),
                   static_cast<uint32_t>((particle >> 32) & 0xFFFFu) | (stream << 16)}};
  return philox4x32_10(ctr, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
}

/// Uniform in (0, 1) from 32 bits: (x + 1/2) 2^-32 in double; 24 bits in float.
GMMDIFF_HD double u01_double(uint32_t x) { return (static_cast<double>(x) + 0.5) * 2.3283064365386963e-10; }
GMMDIFF_HD float u01_float(uint32_t x) {
  return (static_cast<float>(x >> 8) + 0.5f) * 5.9604644775390625e-08f;
}

GMMDIFF_HD float dlog(float x) { return logf(x); }
GMMDIFF_HD double dlog(double x) { return log(x); }
GMMDIFF_HD float dsqrt(float x) { return sqrtf(x); }
GMMDIFF_HD double dsqrt(double x) { return sqrt(x); }
GMMDIFF_HD float dexp(float x) { return expf(x); }
GMMDIFF_HD double dexp(double x) { return exp(x); }
GMMDIFF_HD float dsin(float x) { return sinf(x); }
GMMDIFF_HD double dsin(double x) { return sin(x); }
GMMDIFF_HD float dcos(float x) { return cosf(x); }
GMMDIFF_HD double dcos(double x) { return cos(x); }

template <typename Real>
GMMDIFF_HD Real u01(uint32_t x);
template <>
GMMDIFF_HD float u01<float>(uint32_t x) { return u01_float(x); }
template <>
GMMDIFF_HD double u01<double>(uint32_t x) { return u01_double(x); }

/// Two Box-Muller pairs from the four words of a block: the normals of philox_normal4.
template <typename Real>
GMMDIFF_HD void box_muller4(const U32x4& b, Real out[4]) {
  const Real two_pi = static_cast<Real>(6.283185307179586476925286766559);
  const Real r0 = dsqrt(Real(-2) * dlog(u01<Real>(b.v[0])));
  const Real a0 = two_pi * u01<Real>(b.v[1]);
  const Real r1 = dsqrt(Real(-2) * dlog(u01<Real>(b.v[2])));
  const Real a1 = two_pi * u01<Real>(b.v[3]);
  out[0] = r0 * dcos(a0);
  out[1] = r0 * dsin(a0);
  out[2] = r1 * dcos(a1);
  out[3] = r1 * dsin(a1);
}

/// Four standard normals (two Box-Muller pairs) for coordinates 4*block .. 4*block + 3.
template <typename Real>
GMMDIFF_HD void philox_normal4(uint64_t seed, uint32_t stream, uint64_t particle, uint32_t step,
                               uint32_t block, Real out[4]) {
  box_muller4<Real>(philox_bits(seed, stream, particle, step, block), out);
}

/// One standard normal for coordinate j (generates its block; loops should take four at a time).
template <typename Real>
GMMDIFF_HD Real philox_normal(uint64_t seed, uint32_t stream, uint64_t particle, uint32_t step,
                              uint32_t j) {
  Real z[4];
  philox_normal4<Real>(seed, stream, particle, step, j >> 2, z);
  return z[j & 3u];
}

/// One uniform in (0, 1), double, from the first word of block `block`.
GMMDIFF_HD double philox_uniform(uint64_t seed, uint32_t stream, uint64_t particle, uint32_t step,
                                 uint32_t block) {
  return u01_double(philox_bits(seed, stream, particle, step, block).v[0]);
}

}  // namespace detail
}  // namespace gmmdiff
