// gmmdiff: Philox normals in AVX-512 registers (host/cpu/cpu_noise.hpp).
#include "cpu/cpu_noise.hpp"

#include <math.h>

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && defined(__GLIBC__) && defined(_OPENMP) && \
    !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define GMMDIFF_NOISE_AVX512 1
#endif

#if GMMDIFF_NOISE_AVX512
#include <immintrin.h>

#pragma GCC push_options
// GCC 12 warns about the undefined first operand inside its own AVX-512 intrinsics headers.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC target("arch=x86-64-v4")
// Everything up to pop_options is compiled for x86-64-v4 and runs only where have_avx512().
// glibc's libmvec, AVX-512 variants (the x86-64-v4 clone of the fused step calls these same symbols;
// fp32's are copied inline below).
extern "C" {
__m512d _ZGVeN8v_log(__m512d);
__m512d _ZGVeN8v_cos(__m512d);
__m512d _ZGVeN8v_sin(__m512d);
}

namespace gmmdiff {
namespace cpu_noise {
namespace {

#define GMMDIFF_AVX512 inline __attribute__((always_inline))

/// detail::philox4x32_10 on 16 lanes. Each word is kept as two vectors, its even lanes and its
/// odd lanes, each lane in the low half of a 64-bit slot: vpmuludq then gives a lane's product
/// whole (lo in the low half, where the next round reads it; the high half is never read), and
/// hi comes down by a dword shuffle. The halves are split once and joined once per call. The
/// multiplies run on one port (p0 for zmm on Intel) and the shuffles on another (p5), so a round
/// is 4 multiplies, 4 shuffles and 4 three-way xors; the packed form's 64-bit shifts also went
/// to p0. Same words as the scalar function: tests/cpu/test_cpu_fused.cpp (CpuInit) and the pins.
GMMDIFF_AVX512 void philox16(__m512i& c0, __m512i& c1, __m512i& c2, __m512i& c3, uint32_t k0, uint32_t k1) {
  const __m512i M0 = _mm512_set1_epi64(0xD2511F53u), M1 = _mm512_set1_epi64(0xCD9E8D57u);
  constexpr uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  constexpr _MM_PERM_ENUM kHiDown = static_cast<_MM_PERM_ENUM>(0xF5);  // dwords 1,1,3,3 of each 128 bits
  constexpr _MM_PERM_ENUM kLoUp = static_cast<_MM_PERM_ENUM>(0xA0);    // dwords 0,0,2,2
  __m512i e0 = c0, e1 = c1, e2 = c2, e3 = c3;
  __m512i o0 = _mm512_shuffle_epi32(c0, kHiDown), o1 = _mm512_shuffle_epi32(c1, kHiDown),
          o2 = _mm512_shuffle_epi32(c2, kHiDown), o3 = _mm512_shuffle_epi32(c3, kHiDown);
#pragma GCC unroll 10
  for (int r = 0; r < 10; ++r) {
    const __m512i K0 = _mm512_set1_epi32(static_cast<int>(k0)), K1 = _mm512_set1_epi32(static_cast<int>(k1));
    // c0' = hi(c2 M1) ^ c1 ^ k0, c1' = lo(c2 M1), c2' = hi(c0 M0) ^ c3 ^ k1, c3' = lo(c0 M0) (0x96: a ^ b ^ c)
    const __m512i pe0 = _mm512_mul_epu32(e0, M0), pe2 = _mm512_mul_epu32(e2, M1);
    const __m512i po0 = _mm512_mul_epu32(o0, M0), po2 = _mm512_mul_epu32(o2, M1);
    e0 = _mm512_ternarylogic_epi32(_mm512_shuffle_epi32(pe2, kHiDown), e1, K0, 0x96);
    e2 = _mm512_ternarylogic_epi32(_mm512_shuffle_epi32(pe0, kHiDown), e3, K1, 0x96);
    o0 = _mm512_ternarylogic_epi32(_mm512_shuffle_epi32(po2, kHiDown), o1, K0, 0x96);
    o2 = _mm512_ternarylogic_epi32(_mm512_shuffle_epi32(po0, kHiDown), o3, K1, 0x96);
    e1 = pe2;
    e3 = pe0;
    o1 = po2;
    o3 = po0;
    k0 += W0;
    k1 += W1;
  }
  constexpr __mmask16 kOdd = 0xAAAA;
  c0 = _mm512_mask_blend_epi32(kOdd, e0, _mm512_shuffle_epi32(o0, kLoUp));
  c1 = _mm512_mask_blend_epi32(kOdd, e1, _mm512_shuffle_epi32(o1, kLoUp));
  c2 = _mm512_mask_blend_epi32(kOdd, e2, _mm512_shuffle_epi32(o2, kLoUp));
  c3 = _mm512_mask_blend_epi32(kOdd, e3, _mm512_shuffle_epi32(o3, kLoUp));
}

/// The counters of pairs e..e+15 (detail::philox_bits' layout): c0 = block, c1 = step,
/// c2 = particle bits 0..31, c3 = particle bits 32..47 | stream << 16, particle = first + erow[e].
GMMDIFF_AVX512 void counters16(uint64_t first, uint32_t stream, uint32_t step, const uint32_t* erow,
                               const uint32_t* eblk, __m512i& c0, __m512i& c1, __m512i& c2, __m512i& c3) {
  const __m512i flo = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first)));
  const __m512i fhi = _mm512_set1_epi32(static_cast<int>(static_cast<uint32_t>(first >> 32)));
  const __m512i lo = _mm512_add_epi32(flo, _mm512_load_si512(erow));
  const __mmask16 carry = _mm512_cmplt_epu32_mask(lo, flo);
  const __m512i hi = _mm512_mask_add_epi32(fhi, carry, fhi, _mm512_set1_epi32(1));
  c0 = _mm512_load_si512(eblk);
  c1 = _mm512_set1_epi32(static_cast<int>(step));
  c2 = lo;
  c3 = _mm512_or_si512(_mm512_and_si512(hi, _mm512_set1_epi32(0xFFFF)),
                       _mm512_set1_epi32(static_cast<int>(stream << 16)));
}

/// detail::u01_float: ((x >> 8) + 1/2) 2^-24, in the same operations.
GMMDIFF_AVX512 __m512 u01f(__m512i x) {
  const __m512 a = _mm512_cvtepi32_ps(_mm512_srli_epi32(x, 8));
  return _mm512_mul_ps(_mm512_add_ps(a, _mm512_set1_ps(0.5f)), _mm512_set1_ps(5.9604644775390625e-08f));
}
/// detail::u01_double of 8 words: (x + 1/2) 2^-32.
GMMDIFF_AVX512 __m512d u01d(__m256i x) {
  return _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu32_pd(x), _mm512_set1_pd(0.5)), _mm512_set1_pd(2.3283064365386963e-10));
}

/// Box-Muller's logf, cosf and sinf on the fused step's input ranges, bit for bit what glibc
/// 2.36's libmvec returns (_ZGVeN16v_logf, _cosf, _sinf, the variants the fused step's
/// x86-64-v4 clone calls and today's streams carry): the same operations in the same order,
/// here inline. Calling libmvec spilled every live zmm register around six calls per 64 normals
/// and reloaded the functions' constants each time. The inputs are u01f's uniforms, in
/// [2^-25, 1), and 2 pi times them, in [0, 2 pi): libmvec's path for the other inputs (subnormals,
/// infinities, |x| > 10000) is never taken there and is left out. Checked against libmvec on every
/// one of the 2^24 inputs of each (tests/cpu/test_cpu_noise.cpp, CpuNoise.*MatchesLibmvec*).
GMMDIFF_AVX512 __m512 f32(uint32_t bits) { return _mm512_castsi512_ps(_mm512_set1_epi32(static_cast<int>(bits))); }

/// log(x) = k ln 2 + log1p(m - 1): m the mantissa scaled into [2/3, 4/3), a degree-8 polynomial.
GMMDIFF_AVX512 __m512 logf16(__m512 x) {
  const __m512i two_thirds = _mm512_set1_epi32(0x3f2aaaab);
  const __m512i t = _mm512_sub_epi32(_mm512_castps_si512(x), two_thirds);
  const __m512i k = _mm512_srai_epi32(t, 23);
  const __m512i m = _mm512_add_epi32(_mm512_and_si512(t, _mm512_set1_epi32(0x007fffff)), two_thirds);
  const __m512 r = _mm512_sub_ps(_mm512_castsi512_ps(m), f32(0x3f800000));
  __m512 p = _mm512_fmadd_ps(r, f32(0xbe1b6a22), f32(0x3e2db86b));
  p = _mm512_fmadd_ps(r, p, f32(0xbe289358));
  p = _mm512_fmadd_ps(r, p, f32(0x3e4afb81));
  p = _mm512_fmadd_ps(r, p, f32(0xbe80061d));
  p = _mm512_fmadd_ps(r, p, f32(0x3eaaaee7));
  p = _mm512_fmadd_ps(r, p, f32(0xbf000000));
  const __m512 l1p = _mm512_fmadd_ps(r, _mm512_mul_ps(p, r), r);
  return _mm512_fmadd_ps(_mm512_cvt_roundepi32_ps(k, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC), f32(0x3f317218),
                         l1p);
}

/// sin's and cos's shared tail: r = x - n pi in three parts (n's parity flips the sign), then
/// r + r^3 q(r^2) with q of degree 3.
GMMDIFF_AVX512 __m512 trig_tail(__m512 x, __m512 n, __m512i odd, __m512 q3, __m512 q2, __m512 q1) {
  __m512 r = _mm512_fnmadd_ps(f32(0x40490fdb), n, x);
  r = _mm512_fnmadd_ps(n, f32(0xb3bbbd2e), r);
  r = _mm512_fnmadd_ps(n, f32(0xa7772ced), r);
  const __m512 r2 = _mm512_mul_ps(r, r);
  const __m512 rs = _mm512_xor_ps(r, _mm512_castsi512_ps(_mm512_slli_epi32(odd, 31)));
  __m512 q = _mm512_fmadd_ps(r2, q3, q2);
  q = _mm512_fmadd_ps(r2, q, q1);
  q = _mm512_fmadd_ps(r2, q, f32(0xbe2aaaa6));
  return _mm512_fmadd_ps(rs, _mm512_mul_ps(q, r2), rs);
}
constexpr uint32_t kInvPi = 0x3ea2f983, kShifter = 0x4b400000;  // 1/pi; 1.5 2^23 rounds to an integer

/// sin(x) = sign(x) sin(|x|), n = round(|x| / pi).
GMMDIFF_AVX512 __m512 sinf16(__m512 x) {
  const __m512 ax = _mm512_abs_ps(x);
  const __m512 sign = _mm512_andnot_ps(f32(0x7fffffff), x);
  const __m512 ns = _mm512_fmadd_ps(ax, f32(kInvPi), f32(kShifter));
  const __m512 n = _mm512_sub_ps(ns, f32(kShifter));
  const __m512 s = trig_tail(ax, n, _mm512_castps_si512(ns), f32(0x362edef8), f32(0xb94fb7ff), f32(0x3c08876a));
  return _mm512_xor_ps(s, sign);
}

/// cos(x) = sin(x + pi/2) with n = round((x + pi/2) / pi) - 1/2, its own polynomial.
GMMDIFF_AVX512 __m512 cosf16(__m512 x) {
  const __m512 ns = _mm512_fmadd_ps(_mm512_add_ps(x, f32(0x3fc90fdb)), f32(kInvPi), f32(kShifter));
  const __m512 n = _mm512_sub_ps(_mm512_sub_ps(ns, f32(kShifter)), f32(0x3f000000));
  return trig_tail(x, n, _mm512_castps_si512(ns), f32(0x362ec335), f32(0xb94fb6cf), f32(0x3c088768));
}

/// 16 lanes x 4 values -> o[4 lane + c]: a 4 x 4 transpose within each 128-bit lane, then of the lanes.
GMMDIFF_AVX512 void store_transposed(__m512 o0, __m512 o1, __m512 o2, __m512 o3, float* o) {
  const __m512 t0 = _mm512_unpacklo_ps(o0, o1), t1 = _mm512_unpackhi_ps(o0, o1);
  const __m512 t2 = _mm512_unpacklo_ps(o2, o3), t3 = _mm512_unpackhi_ps(o2, o3);
  const __m512 u0 = _mm512_shuffle_ps(t0, t2, 0x44), u1 = _mm512_shuffle_ps(t0, t2, 0xEE);  // pairs 0,4,8,12 | 1,5,9,13
  const __m512 u2 = _mm512_shuffle_ps(t1, t3, 0x44), u3 = _mm512_shuffle_ps(t1, t3, 0xEE);  // 2,6,10,14 | 3,7,11,15
  const __m512 a = _mm512_shuffle_f32x4(u0, u1, 0x44), b = _mm512_shuffle_f32x4(u2, u3, 0x44);  // 0,4,1,5 | 2,6,3,7
  const __m512 c = _mm512_shuffle_f32x4(u0, u1, 0xEE), d = _mm512_shuffle_f32x4(u2, u3, 0xEE);  // 8,12,9,13 | 10,14,11,15
  _mm512_store_ps(o + 0, _mm512_shuffle_f32x4(a, b, 0x88));
  _mm512_store_ps(o + 16, _mm512_shuffle_f32x4(a, b, 0xDD));
  _mm512_store_ps(o + 32, _mm512_shuffle_f32x4(c, d, 0x88));
  _mm512_store_ps(o + 48, _mm512_shuffle_f32x4(c, d, 0xDD));
}

}  // namespace

void block_words_avx512(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E, const uint32_t* erow,
                        const uint32_t* eblk, uint32_t* out) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  for (int e = 0; e < E; e += 16) {
    __m512i c0, c1, c2, c3;
    counters16(first, stream, step, erow + e, eblk + e, c0, c1, c2, c3);
    philox16(c0, c1, c2, c3, k0, k1);
    // The transpose only moves bits: through float registers, the words come out unchanged.
    store_transposed(_mm512_castsi512_ps(c0), _mm512_castsi512_ps(c1), _mm512_castsi512_ps(c2),
                     _mm512_castsi512_ps(c3), reinterpret_cast<float*>(out + 4 * static_cast<std::size_t>(e)));
  }
}

void block_normals_libm_avx512(uint64_t seed, uint32_t stream, uint64_t first, uint32_t step, int E,
                               const uint32_t* erow, const uint32_t* eblk, float* out) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const __m512 two_pi = _mm512_set1_ps(static_cast<float>(6.283185307179586476925286766559));
  const __m512 m2 = _mm512_set1_ps(-2.0f);
  alignas(64) float u0[16], u2[16], a0[16], a1[16], l0[16], l2[16], s0[16], c0s[16], s1[16], c1s[16];
  for (int e = 0; e < E; e += 16) {
    __m512i c0, c1, c2, c3;
    counters16(first, stream, step, erow + e, eblk + e, c0, c1, c2, c3);
    philox16(c0, c1, c2, c3, k0, k1);
    _mm512_store_ps(u0, u01f(c0));
    _mm512_store_ps(a0, _mm512_mul_ps(two_pi, u01f(c1)));
    _mm512_store_ps(u2, u01f(c2));
    _mm512_store_ps(a1, _mm512_mul_ps(two_pi, u01f(c3)));
    // glibc's sincosf equals its sinf and cosf (checked on all 2^24 angles 2 pi u01f(x)).
    for (int i = 0; i < 16; ++i) {
      l0[i] = logf(u0[i]);
      l2[i] = logf(u2[i]);
      sincosf(a0[i], &s0[i], &c0s[i]);
      sincosf(a1[i], &s1[i], &c1s[i]);
    }
    const __m512 r0 = _mm512_sqrt_ps(_mm512_mul_ps(m2, _mm512_load_ps(l0)));
    const __m512 r1 = _mm512_sqrt_ps(_mm512_mul_ps(m2, _mm512_load_ps(l2)));
    store_transposed(_mm512_mul_ps(r0, _mm512_load_ps(c0s)), _mm512_mul_ps(r0, _mm512_load_ps(s0)),
                     _mm512_mul_ps(r1, _mm512_load_ps(c1s)), _mm512_mul_ps(r1, _mm512_load_ps(s1)),
                     out + 4 * static_cast<std::size_t>(e));
  }
}

void block_normals_avx512(uint64_t seed, uint32_t stream, uint64_t first,
                                                                    uint32_t step, int E, const uint32_t* erow,
                                                                    const uint32_t* eblk, float* out) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const __m512 two_pi = _mm512_set1_ps(static_cast<float>(6.283185307179586476925286766559));
  const __m512 m2 = _mm512_set1_ps(-2.0f);
  for (int e = 0; e < E; e += 16) {
    __m512i c0, c1, c2, c3;
    counters16(first, stream, step, erow + e, eblk + e, c0, c1, c2, c3);
    philox16(c0, c1, c2, c3, k0, k1);
    const __m512 r0 = _mm512_sqrt_ps(_mm512_mul_ps(m2, logf16(u01f(c0))));
    const __m512 a0 = _mm512_mul_ps(two_pi, u01f(c1));
    const __m512 r1 = _mm512_sqrt_ps(_mm512_mul_ps(m2, logf16(u01f(c2))));
    const __m512 a1 = _mm512_mul_ps(two_pi, u01f(c3));
    const __m512 o0 = _mm512_mul_ps(r0, cosf16(a0));
    const __m512 o1 = _mm512_mul_ps(r0, sinf16(a0));
    const __m512 o2 = _mm512_mul_ps(r1, cosf16(a1));
    const __m512 o3 = _mm512_mul_ps(r1, sinf16(a1));
    store_transposed(o0, o1, o2, o3, out + 4 * static_cast<std::size_t>(e));
  }
}

void block_normals_avx512(uint64_t seed, uint32_t stream, uint64_t first,
                                                                    uint32_t step, int E, const uint32_t* erow,
                                                                    const uint32_t* eblk, double* out) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const __m512d two_pi = _mm512_set1_pd(6.283185307179586476925286766559);
  const __m512d m2 = _mm512_set1_pd(-2.0);
  for (int e = 0; e < E; e += 16) {
    __m512i c[4];
    counters16(first, stream, step, erow + e, eblk + e, c[0], c[1], c[2], c[3]);
    philox16(c[0], c[1], c[2], c[3], k0, k1);
    for (int h = 0; h < 2; ++h) {  // pairs e + 8h .. e + 8h + 7
      __m256i w[4];
      for (int i = 0; i < 4; ++i) w[i] = h == 0 ? _mm512_castsi512_si256(c[i]) : _mm512_extracti64x4_epi64(c[i], 1);
      const __m512d r0 = _mm512_sqrt_pd(_mm512_mul_pd(m2, _ZGVeN8v_log(u01d(w[0]))));
      const __m512d a0 = _mm512_mul_pd(two_pi, u01d(w[1]));
      const __m512d r1 = _mm512_sqrt_pd(_mm512_mul_pd(m2, _ZGVeN8v_log(u01d(w[2]))));
      const __m512d a1 = _mm512_mul_pd(two_pi, u01d(w[3]));
      const __m512d o0 = _mm512_mul_pd(r0, _ZGVeN8v_cos(a0));
      const __m512d o1 = _mm512_mul_pd(r0, _ZGVeN8v_sin(a0));
      const __m512d o2 = _mm512_mul_pd(r1, _ZGVeN8v_cos(a1));
      const __m512d o3 = _mm512_mul_pd(r1, _ZGVeN8v_sin(a1));
      // 8 lanes x 4 values -> out[4 e + c].
      const __m512d t0 = _mm512_unpacklo_pd(o0, o1), t1 = _mm512_unpackhi_pd(o0, o1);  // (c0,c1) of 0,2,4,6 | 1,3,5,7
      const __m512d t2 = _mm512_unpacklo_pd(o2, o3), t3 = _mm512_unpackhi_pd(o2, o3);  // (c2,c3) of the same
      const __m512d a = _mm512_shuffle_f64x2(t0, t2, 0x44), b = _mm512_shuffle_f64x2(t1, t3, 0x44);  // 0a 2a 0b 2b | 1a 3a 1b 3b
      const __m512d cc = _mm512_shuffle_f64x2(t0, t2, 0xEE), dd = _mm512_shuffle_f64x2(t1, t3, 0xEE);  // 4a 6a 4b 6b | 5a 7a 5b 7b
      double* o = out + 4 * (static_cast<std::size_t>(e) + 8 * h);
      _mm512_store_pd(o + 0, _mm512_shuffle_f64x2(a, b, 0x88));
      _mm512_store_pd(o + 8, _mm512_shuffle_f64x2(a, b, 0xDD));
      _mm512_store_pd(o + 16, _mm512_shuffle_f64x2(cc, dd, 0x88));
      _mm512_store_pd(o + 24, _mm512_shuffle_f64x2(cc, dd, 0xDD));
    }
  }
}

void box_muller_functions_avx512(const float* x, std::size_t n, float* log_x, float* sin_x, float* cos_x) {
  for (std::size_t i = 0; i < n; i += 16) {
    const __m512 v = _mm512_load_ps(x + i);
    _mm512_store_ps(log_x + i, logf16(v));
    _mm512_store_ps(sin_x + i, sinf16(v));
    _mm512_store_ps(cos_x + i, cosf16(v));
  }
}

uint32_t philox_only_avx512(uint64_t seed, uint64_t n) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  __m512i acc = _mm512_setzero_si512();
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (uint64_t b = 0; b < n; b += 16) {
    __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(b)), lane), c1 = _mm512_setzero_si512(),
            c2 = _mm512_set1_epi32(static_cast<int>(b >> 32)), c3 = _mm512_set1_epi32(1 << 16);
    philox16(c0, c1, c2, c3, k0, k1);
    acc = _mm512_xor_si512(acc, _mm512_ternarylogic_epi32(c0, c1, _mm512_xor_si512(c2, c3), 0x96));
  }
  return static_cast<uint32_t>(_mm512_reduce_add_epi32(acc));
}

}  // namespace cpu_noise
}  // namespace gmmdiff
#pragma GCC pop_options

namespace gmmdiff {
namespace cpu_noise {
bool have_avx512() {
  static const bool yes = __builtin_cpu_supports("x86-64-v4");
  return yes;
}
}  // namespace cpu_noise
}  // namespace gmmdiff

#else  // no AVX-512 path in this build

#include <stdexcept>

namespace gmmdiff {
namespace cpu_noise {
bool have_avx512() { return false; }
void block_normals_avx512(uint64_t, uint32_t, uint64_t, uint32_t, int, const uint32_t*, const uint32_t*, float*) {
  throw std::logic_error("cpu_noise: no AVX-512 path in this build");
}
void block_normals_avx512(uint64_t, uint32_t, uint64_t, uint32_t, int, const uint32_t*, const uint32_t*, double*) {
  throw std::logic_error("cpu_noise: no AVX-512 path in this build");
}
void block_normals_libm_avx512(uint64_t, uint32_t, uint64_t, uint32_t, int, const uint32_t*, const uint32_t*, float*) {
  throw std::logic_error("cpu_noise: no AVX-512 path in this build");
}
void block_words_avx512(uint64_t, uint32_t, uint64_t, uint32_t, int, const uint32_t*, const uint32_t*, uint32_t*) {
  throw std::logic_error("cpu_noise: no AVX-512 path in this build");
}
void box_muller_functions_avx512(const float*, std::size_t, float*, float*, float*) {
  throw std::logic_error("cpu_noise: no AVX-512 path in this build");
}
uint32_t philox_only_avx512(uint64_t, uint64_t) { throw std::logic_error("cpu_noise: no AVX-512 path in this build"); }
}  // namespace cpu_noise
}  // namespace gmmdiff
#endif
