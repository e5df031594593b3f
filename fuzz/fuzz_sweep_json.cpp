// libFuzzer target fuzz_sweep_json: see run_sweep_json in fuzz_targets.hpp. Seeds: fuzz/corpus/fuzz_sweep_json/.
#include <cstddef>
#include <cstdint>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  gmmdiff_fuzz::run_sweep_json(data, size);
  return 0;
}
