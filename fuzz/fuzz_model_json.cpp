// libFuzzer target fuzz_model_json: see run_model_json in fuzz_targets.hpp. Seeds: fuzz/corpus/fuzz_model_json/.
#include <cstddef>
#include <cstdint>

#include "fuzz_targets.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, std::size_t size) {
  gmmdiff_fuzz::run_model_json(data, size);
  return 0;
}
