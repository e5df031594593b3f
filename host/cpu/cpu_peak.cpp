// gmmdiff: the CPU's FMA peak, measured by a microbenchmark of the widest vector unit this CPU runs
// (host/cpu/cpu_peak.hpp): 12 independent multiply-add chains in registers, enough to cover the
// latency of two FMA pipes (4 cycles x 2), so the loop runs at the unit's throughput whatever BLAS
// kernel the environment would pick.
#include "cpu/cpu_peak.hpp"

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define GMMDIFF_PEAK_X86 1
#include <immintrin.h>
#endif

namespace gmmdiff {
namespace cpu_peak {

namespace {

constexpr int kChains = 12;

#if GMMDIFF_PEAK_X86
// A loop of kChains FMAs a = a * m + c per iteration; the result is folded so that it is kept.
// The chains are 12 named variables, each named in the empty asm (which also keeps the compiler
// from reasoning about the loop), so that they live in registers. Kept as an array, with 4 of them
// in the asm, GCC 12 left the others on the stack, and the "peak" read a third of the unit's
// (72-110 against 256-295 GFLOP/s fp32 on the 2-core VM, 2026-11-29).
static_assert(kChains == 12, "GMMDIFF_FMA_LOOP has 12 chains");
#define GMMDIFF_FMA_LOOP(VEC, SET1, FMA, ADD, STORE, LANES, T)                                         \
  VEC a0 = SET1(T(1)), a1 = SET1(T(1) + T(1) / T(64)), a2 = SET1(T(1) + T(2) / T(64)),                   \
      a3 = SET1(T(1) + T(3) / T(64)), a4 = SET1(T(1) + T(4) / T(64)), a5 = SET1(T(1) + T(5) / T(64)),     \
      a6 = SET1(T(1) + T(6) / T(64)), a7 = SET1(T(1) + T(7) / T(64)), a8 = SET1(T(1) + T(8) / T(64)),     \
      a9 = SET1(T(1) + T(9) / T(64)), a10 = SET1(T(1) + T(10) / T(64)), a11 = SET1(T(1) + T(11) / T(64)); \
  const VEC m = SET1(T(0.9999999)), c = SET1(T(1e-7));                                                  \
  for (long it = 0; it < iters; ++it) {                                                                 \
    a0 = FMA(a0, m, c), a1 = FMA(a1, m, c), a2 = FMA(a2, m, c), a3 = FMA(a3, m, c);                     \
    a4 = FMA(a4, m, c), a5 = FMA(a5, m, c), a6 = FMA(a6, m, c), a7 = FMA(a7, m, c);                     \
    a8 = FMA(a8, m, c), a9 = FMA(a9, m, c), a10 = FMA(a10, m, c), a11 = FMA(a11, m, c);                 \
    __asm__ volatile("" : "+x"(a0), "+x"(a1), "+x"(a2), "+x"(a3), "+x"(a4), "+x"(a5), "+x"(a6),         \
                     "+x"(a7), "+x"(a8), "+x"(a9), "+x"(a10), "+x"(a11));                                \
  }                                                                                                     \
  const VEC s = ADD(ADD(ADD(ADD(a0, a1), ADD(a2, a3)), ADD(ADD(a4, a5), ADD(a6, a7))),                  \
                    ADD(ADD(a8, a9), ADD(a10, a11)));                                                   \
  T out[LANES];                                                                                         \
  STORE(out, s);                                                                                        \
  return static_cast<double>(out[0]);

__attribute__((target("arch=x86-64-v4"))) double zmm_f32(long iters) {
  GMMDIFF_FMA_LOOP(__m512, _mm512_set1_ps, _mm512_fmadd_ps, _mm512_add_ps, _mm512_storeu_ps, 16, float)
}
__attribute__((target("arch=x86-64-v4"))) double zmm_f64(long iters) {
  GMMDIFF_FMA_LOOP(__m512d, _mm512_set1_pd, _mm512_fmadd_pd, _mm512_add_pd, _mm512_storeu_pd, 8, double)
}
__attribute__((target("arch=x86-64-v3"))) double ymm_f32(long iters) {
  GMMDIFF_FMA_LOOP(__m256, _mm256_set1_ps, _mm256_fmadd_ps, _mm256_add_ps, _mm256_storeu_ps, 8, float)
}
__attribute__((target("arch=x86-64-v3"))) double ymm_f64(long iters) {
  GMMDIFF_FMA_LOOP(__m256d, _mm256_set1_pd, _mm256_fmadd_pd, _mm256_add_pd, _mm256_storeu_pd, 4, double)
}
// Baseline x86-64: SSE2, a multiply and an add (2 FLOP per lane, as an FMA).
inline __m128 sse_madd_ps(__m128 a, __m128 m, __m128 c) { return _mm_add_ps(_mm_mul_ps(a, m), c); }
inline __m128d sse_madd_pd(__m128d a, __m128d m, __m128d c) { return _mm_add_pd(_mm_mul_pd(a, m), c); }
double xmm_f32(long iters) { GMMDIFF_FMA_LOOP(__m128, _mm_set1_ps, sse_madd_ps, _mm_add_ps, _mm_storeu_ps, 4, float) }
double xmm_f64(long iters) { GMMDIFF_FMA_LOOP(__m128d, _mm_set1_pd, sse_madd_pd, _mm_add_pd, _mm_storeu_pd, 2, double) }
#undef GMMDIFF_FMA_LOOP
#else
template <typename T>
double scalar_loop(long iters) {
  T a[kChains];
  for (int i = 0; i < kChains; ++i) a[i] = T(1) + T(i) / T(64);
  for (long it = 0; it < iters; ++it)
    for (int i = 0; i < kChains; ++i) a[i] = a[i] * T(0.9999999) + T(1e-7);
  T s = 0;
  for (int i = 0; i < kChains; ++i) s += a[i];
  return static_cast<double>(s);
}
#endif

}  // namespace

Unit widest_unit() {
#if GMMDIFF_PEAK_X86
  if (__builtin_cpu_supports("x86-64-v4")) return Unit{"zmm (AVX-512 FMA)", 64};
  if (__builtin_cpu_supports("x86-64-v3")) return Unit{"ymm (AVX2 FMA)", 32};
  return Unit{"xmm (SSE2 mul+add)", 16};
#else
  return Unit{"scalar", 8};
#endif
}

double fma_loop(bool fp64, long iters, double* flop) {
  const Unit u = widest_unit();
  const double lanes = double(u.bytes) / (fp64 ? 8.0 : 4.0);
  *flop = 2.0 * kChains * lanes * double(iters);
#if GMMDIFF_PEAK_X86
  if (u.bytes == 64) return fp64 ? zmm_f64(iters) : zmm_f32(iters);
  if (u.bytes == 32) return fp64 ? ymm_f64(iters) : ymm_f32(iters);
  return fp64 ? xmm_f64(iters) : xmm_f32(iters);
#else
  *flop = 2.0 * kChains * double(iters);
  return fp64 ? scalar_loop<double>(iters) : scalar_loop<float>(iters);
#endif
}

}  // namespace cpu_peak
}  // namespace gmmdiff
