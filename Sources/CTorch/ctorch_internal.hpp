#ifdef CTORCH_LIBTORCH_NOT_FOUND
#error "LibTorch not found: run scripts/bootstrap.sh (or make test), or set LIBTORCH to a directory with include/ and lib/"
#endif
// Shared by the shim's translation units: handle conversion and the exception barrier.
#pragma once
#include <ATen/ATen.h>
#include <atomic>
#include <string>
#include <vector>

#include "ctorch.h"

namespace ctorch {

extern std::atomic<int64_t> live_tensors;
extern thread_local int64_t thread_live_delta;
void set_error(const char *message);

inline at::Tensor &T(ct_tensor t) { return *reinterpret_cast<at::Tensor *>(t); }

inline ct_tensor wrap(at::Tensor t) {
  live_tensors.fetch_add(1, std::memory_order_relaxed);
  ++thread_live_delta;
  return reinterpret_cast<ct_tensor>(new at::Tensor(std::move(t)));
}

inline std::optional<at::Tensor> opt(ct_tensor t) {
  if (t == nullptr) return std::nullopt;
  return T(t);
}

inline std::vector<at::Tensor> list(const ct_tensor *ts, int n) {
  std::vector<at::Tensor> v;
  v.reserve(n);
  for (int i = 0; i < n; ++i) v.push_back(T(ts[i]));
  return v;
}

inline at::IntArrayRef dims(const int64_t *d, int n) { return at::IntArrayRef(d, static_cast<size_t>(n)); }

inline at::TensorOptions options(int dtype, int device_type, int device_index) {
  auto device = device_type == 1 ? at::Device(at::kCUDA, static_cast<c10::DeviceIndex>(device_index))
                                 : at::Device(at::kCPU);
  return at::TensorOptions().dtype(static_cast<at::ScalarType>(dtype)).device(device);
}

}  // namespace ctorch

// The exception barrier: every extern "C" body runs inside one of these. No C++ exception
// may unwind into Swift (that is undefined behaviour and in practice a crash).
#define CT_GUARD(failure, ...)                                   \
  do {                                                           \
    try {                                                        \
      __VA_ARGS__                                                \
    } catch (const c10::Error &e) {                              \
      ctorch::set_error(e.what_without_backtrace());             \
    } catch (const std::exception &e) {                          \
      ctorch::set_error(e.what());                               \
    } catch (...) {                                              \
      ctorch::set_error("unknown C++ exception in LibTorch");    \
    }                                                            \
    return failure;                                              \
  } while (0)

// For functions returning a new tensor: `expr` is an at::Tensor expression.
#define CT_TENSOR(expr) CT_GUARD(nullptr, ctorch::clear(); return ctorch::wrap(expr);)
// For functions returning int status.
#define CT_STATUS(...) CT_GUARD(-1, ctorch::clear(); __VA_ARGS__ return 0;)

namespace ctorch {
void clear();
}
