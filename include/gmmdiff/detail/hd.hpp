// gmmdiff: __host__ __device__ qualifiers for the arithmetic shared by both backends.
#pragma once
#if defined(__CUDACC__)
#define GMMDIFF_HD __host__ __device__ __forceinline__
#else
#define GMMDIFF_HD inline
#endif
