// gmmdiff: the throwing half of cuda_error.hpp.
#include "cuda/rt/cuda_error.hpp"

#include <string>

namespace gmmdiff::gpu {

namespace {
std::string where(const char* call, const char* file, int line) {
  return detail::cat(call, " at ", file, ":", line);
}
}  // namespace

void throw_cuda_error(cudaError_t err, const char* call, const char* file, int line) {
  // The runtime recorded err as its last error too; the exception reports it now. (A sticky error,
  // one that breaks the context, stays whatever we do: every later call reports it.)
  take_last_error();
  const std::string msg = detail::cat("CUDA error ", cudaGetErrorName(err), " (",
                                      cudaGetErrorString(err), ") in ", where(call, file, line));
  if (err == cudaErrorMemoryAllocation)
    throw ResourceError(msg + "; try a smaller --chunk or fewer particles");
  throw Error(msg);
}

void throw_cublas_error(cublasStatus_t status, const char* call, const char* file, int line) {
  take_last_error();  // whatever runtime call failed inside cuBLAS's call is reported by this
  const std::string msg = detail::cat("cuBLAS error ", cublasGetStatusName(status), " (",
                                      cublasGetStatusString(status), ") in ",
                                      where(call, file, line));
  if (status == CUBLAS_STATUS_ALLOC_FAILED)
    throw ResourceError(msg + "; try a smaller --chunk or fewer particles");
  throw Error(msg);
}

}  // namespace gmmdiff::gpu
