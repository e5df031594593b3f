// Test helper: the message of the gmmdiff::Error a call throws.
#pragma once
#include <string>

#include "gmmdiff/error.hpp"

namespace gmmdiff::test {

/// The message of the gmmdiff::Error f throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace gmmdiff::test
