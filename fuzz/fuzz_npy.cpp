// libFuzzer target fuzz_npy: see run_npy in fuzz_targets.hpp. Seeds: fuzz/corpus/fuzz_npy/.
#include <cstddef>
#include <cstdint>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  gmmdiff_fuzz::run_npy(data, size);
  return 0;
}
