// gmmdiff: Philox normals vectorised across (row, coordinate block) pairs, for the CPU's hot loops
// (the fused step, host/cpu/cpu_fused.cpp, and the bounds' continuations, host/bounds/). The same
// values as detail::philox_normal4 up to libmvec's rounding (Box-Muller's log/cos/sin are glibc's
// SIMD variants); a row's values depend only on (seed, stream, particle, step, coordinate).
//
// A file that includes this header should be compiled with -fno-math-errno and -fno-trapping-math
// (CMakeLists.txt sets them per file): sqrt must not set errno, or the loop does not vectorise.
#pragma once
#include <cmath>
#include <cstdint>

#include "gmmdiff/detail/philox.hpp"

// ---- libmvec: the SIMD variants of logf/cosf/sinf/expf (and double) ----
// glibc declares them only under -ffast-math; these aliases of the scalar functions (same symbols,
// other names, so that GCC neither treats them as builtins nor merges sin and cos into sincos)
// carry `omp declare simd`, and a vectorised loop calls _ZGV{b,d,e}N{lanes}v_<name>.
#if defined(__x86_64__) && defined(__GLIBC__) && defined(_OPENMP) && defined(__GNUC__) && !defined(__clang__)
#define GMMDIFF_VMATH_ALIAS(ret, name, sym)                 \
  _Pragma("omp declare simd notinbranch") ret name(ret x) \
      __asm__(sym) __attribute__((const, nothrow, leaf));
extern "C" {
GMMDIFF_VMATH_ALIAS(float, gmmdiff_vlogf, "logf")
GMMDIFF_VMATH_ALIAS(float, gmmdiff_vcosf, "cosf")
GMMDIFF_VMATH_ALIAS(float, gmmdiff_vsinf, "sinf")
GMMDIFF_VMATH_ALIAS(float, gmmdiff_vexpf, "expf")
GMMDIFF_VMATH_ALIAS(double, gmmdiff_vlog, "log")
GMMDIFF_VMATH_ALIAS(double, gmmdiff_vcos, "cos")
GMMDIFF_VMATH_ALIAS(double, gmmdiff_vsin, "sin")
GMMDIFF_VMATH_ALIAS(double, gmmdiff_vexp, "exp")
}
#undef GMMDIFF_VMATH_ALIAS
#else
inline float gmmdiff_vlogf(float x) { return std::log(x); }
inline float gmmdiff_vcosf(float x) { return std::cos(x); }
inline float gmmdiff_vsinf(float x) { return std::sin(x); }
inline float gmmdiff_vexpf(float x) { return std::exp(x); }
inline double gmmdiff_vlog(double x) { return std::log(x); }
inline double gmmdiff_vcos(double x) { return std::cos(x); }
inline double gmmdiff_vsin(double x) { return std::sin(x); }
inline double gmmdiff_vexp(double x) { return std::exp(x); }
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__) && \
    !defined(__SANITIZE_THREAD__)
#define GMMDIFF_CPU_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default"), flatten))
#elif defined(__GNUC__)
#define GMMDIFF_CPU_CLONES __attribute__((flatten))
#else
#define GMMDIFF_CPU_CLONES
#endif
#ifndef GMMDIFF_INLINE
#if defined(__GNUC__)
#define GMMDIFF_INLINE inline __attribute__((always_inline))
#else
#define GMMDIFF_INLINE inline
#endif
#endif


namespace gmmdiff {
namespace cpu_simd {

GMMDIFF_INLINE float vlog(float x) { return gmmdiff_vlogf(x); }
GMMDIFF_INLINE float vcos(float x) { return gmmdiff_vcosf(x); }
GMMDIFF_INLINE float vsin(float x) { return gmmdiff_vsinf(x); }
GMMDIFF_INLINE double vlog(double x) { return gmmdiff_vlog(x); }
GMMDIFF_INLINE double vcos(double x) { return gmmdiff_vcos(x); }
GMMDIFF_INLINE double vsin(double x) { return gmmdiff_vsin(x); }

/// The particle of row r of a block of consecutive particles starting at `first`.
struct ContiguousParticles {
  uint64_t first;
  GMMDIFF_INLINE uint64_t operator()(uint32_t row) const { return first + row; }
};

/// detail::philox4x32_10 (the same bits) on four scalars, its rounds unrolled, so that the
/// vectoriser sees plain 32-bit lanes (the struct and its loop defeat it).
GMMDIFF_INLINE void philox4x32_10_lanes(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                                        uint32_t k1) {
  constexpr uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
#pragma GCC unroll 10
  for (int r = 0; r < 10; ++r) {
    const uint64_t p0 = static_cast<uint64_t>(M0) * c0, p1 = static_cast<uint64_t>(M1) * c2;
    const uint32_t n0 = static_cast<uint32_t>(p1 >> 32) ^ c1 ^ k0, n2 = static_cast<uint32_t>(p0 >> 32) ^ c3 ^ k1;
    c1 = static_cast<uint32_t>(p1);
    c3 = static_cast<uint32_t>(p0);
    c0 = n0;
    c2 = n2;
    k0 += W0;
    k1 += W1;
  }
}

/// The block's normals of (stream, step): out[4 e + c] for pair e = (row, coordinate block), the
/// same values as detail::philox_normal4 up to libmvec's rounding. Vectorised across pairs.
/// particle_of(row) gives the Philox particle of a row: ContiguousParticles for a block of
/// consecutive particles, or any functor (e.g. a gather from a table; it must accept the padding
/// pairs' rows too).
template <typename Real, typename ParticleOf>
GMMDIFF_INLINE void block_normals(uint64_t seed, uint32_t stream, ParticleOf particle_of, uint32_t step, int E,
                                  const uint32_t* __restrict__ erow, const uint32_t* __restrict__ eblk,
                                  Real* __restrict__ out) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const Real two_pi = static_cast<Real>(6.283185307179586476925286766559);
#pragma omp simd aligned(erow, eblk, out : 64)
  for (int e = 0; e < E; ++e) {
    const uint64_t p = particle_of(erow[e]);
    uint32_t c0 = eblk[e], c1 = step, c2 = static_cast<uint32_t>(p),
             c3 = static_cast<uint32_t>((p >> 32) & 0xFFFFu) | (stream << 16);
    philox4x32_10_lanes(c0, c1, c2, c3, k0, k1);
    const Real r0 = std::sqrt(Real(-2) * vlog(detail::u01<Real>(c0)));
    const Real a0 = two_pi * detail::u01<Real>(c1);
    const Real r1 = std::sqrt(Real(-2) * vlog(detail::u01<Real>(c2)));
    const Real a1 = two_pi * detail::u01<Real>(c3);
    out[4 * e + 0] = r0 * vcos(a0);
    out[4 * e + 1] = r0 * vsin(a0);
    out[4 * e + 2] = r1 * vcos(a1);
    out[4 * e + 3] = r1 * vsin(a1);
  }
}

}  // namespace cpu_simd
}  // namespace gmmdiff
