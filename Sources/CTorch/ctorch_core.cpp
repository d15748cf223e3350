// Errors, runtime, creation, properties, autograd and optimizer kernels.
#include <ATen/Context.h>
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <ATen/core/Generator.h>
#include <ATen/CPUGeneratorImpl.h>
#include <c10/core/GradMode.h>
#include <torch/csrc/autograd/autograd.h>
#include <torch/version.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdlib>
#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>

#include "ctorch_internal.hpp"

namespace ctorch {
std::atomic<int64_t> live_tensors{0};
thread_local int64_t thread_live_delta = 0;
namespace {
thread_local std::string error_message;
thread_local bool has_error = false;
}  // namespace
void set_error(const char *message) {
  error_message = message ? message : "unknown error";
  has_error = true;
}
void clear() { has_error = false; }
}  // namespace ctorch

using namespace ctorch;

namespace {
// One attempt per process. ATen builds its CUDA hooks on the first query and keeps the stub for
// good if libtorch_cuda.so is not loaded by then ("CUDA permanently disabled"), so every entry
// point that may query them (seeding, device counts, process groups) loads it first.
std::once_flag cuda_once;
int cuda_loaded = 0;
std::string cuda_load_error;

void load_cuda_once() {
  std::call_once(cuda_once, [] {
    // libtorch_cuda registers CUDA kernels from static initialisers; dlopen of the file next
    // to libtorch_cpu is enough. Without the CUDA wheels it fails, and CPU keeps working.
    Dl_info info;
    if (dladdr(reinterpret_cast<void *>(&at::get_num_threads), &info) == 0 || info.dli_fname == nullptr) {
      cuda_load_error = "cannot locate libtorch_cpu.so";
      return;
    }
    std::string path(info.dli_fname);
    auto slash = path.rfind('/');
    path = (slash == std::string::npos ? std::string(".") : path.substr(0, slash)) + "/libtorch_cuda.so";
    if (dlopen(path.c_str(), RTLD_NOW | RTLD_GLOBAL) == nullptr) {
      const char *why = dlerror();
      cuda_load_error = why ? why : "dlopen of " + path + " failed";
      return;
    }
    cuda_loaded = 1;
  });
}
}  // namespace

struct ct_generator_s {
  at::Generator gen;
};

extern "C" {

const char *ct_last_error(void) { return has_error ? error_message.c_str() : nullptr; }
void ct_clear_error(void) { clear(); }
int64_t ct_live_tensors(void) { return live_tensors.load(); }
int64_t ct_thread_live_delta(void) { return thread_live_delta; }

void ct_free(ct_tensor t) {
  if (t == nullptr) return;
  live_tensors.fetch_sub(1, std::memory_order_relaxed);
  --thread_live_delta;
  delete reinterpret_cast<at::Tensor *>(t);  // a destructor never throws
}

ct_tensor ct_shallow_clone(ct_tensor t) { CT_TENSOR(T(t)); }

void ct_set_num_threads(int n) {
  try { at::set_num_threads(n); } catch (...) {}
}
int ct_get_num_threads(void) { return at::get_num_threads(); }

int ct_manual_seed(uint64_t seed) {
  load_cuda_once();  // before the CUDA hooks are queried below
  CT_STATUS({
    auto gen = at::detail::getDefaultCPUGenerator();
    {
      std::lock_guard<std::mutex> lock(gen.mutex());
      gen.set_current_seed(seed);
    }
    // Every CUDA device's default generator too, once libtorch_cuda is loaded (as torch.manual_seed).
    if (at::detail::getCUDAHooks().hasCUDA()) {
      for (c10::DeviceIndex i = 0; i < at::detail::getCUDAHooks().deviceCount(); ++i) {
        auto cuda = at::detail::getCUDAHooks().getDefaultGenerator(i);
        std::lock_guard<std::mutex> lock(cuda.mutex());
        cuda.set_current_seed(seed);
      }
    }
  });
}

// Autocast (mixed precision) for one device type: 0 = CPU, 1 = CUDA. `dtype` is a ct dtype code.
int ct_autocast_set(int device_type, bool enabled, int dtype) {
  CT_STATUS({
    const auto type = device_type == 1 ? at::kCUDA : at::kCPU;
    if (enabled) at::autocast::set_autocast_dtype(type, static_cast<at::ScalarType>(dtype));
    at::autocast::set_autocast_enabled(type, enabled);
    if (!enabled) at::autocast::clear_cache();  // the casted weight copies of this region
  });
}
bool ct_autocast_enabled(int device_type) {
  return at::autocast::is_autocast_enabled(device_type == 1 ? at::kCUDA : at::kCPU);
}

// torch.use_deterministic_algorithms(enabled) plus cuDNN's deterministic mode without its
// autotuner. cuBLAS is deterministic only with a fixed workspace, chosen by an environment
// variable read when its handle is made: set here (unless the user set it) before any CUDA work.
int ct_set_deterministic(bool enabled) {
  CT_STATUS({
    if (enabled) setenv("CUBLAS_WORKSPACE_CONFIG", ":4096:8", /*overwrite=*/0);
    auto &context = at::globalContext();
    context.setDeterministicAlgorithms(enabled, /*warn_only=*/false);
    context.setDeterministicCuDNN(enabled);
    if (enabled) context.setBenchmarkCuDNN(false);
  });
}
bool ct_deterministic(void) { return at::globalContext().deterministicAlgorithms(); }

int ct_try_load_cuda(void) {
  clear();
  load_cuda_once();
  if (!cuda_loaded) set_error(cuda_load_error.c_str());
  return cuda_loaded;
}

bool ct_cuda_is_available(void) {
  load_cuda_once();
  try { return at::hasCUDA() && at::detail::getCUDAHooks().getNumGPUs() > 0; } catch (...) { return false; }
}
int ct_cuda_device_count(void) {
  load_cuda_once();
  try { return at::hasCUDA() ? at::detail::getCUDAHooks().getNumGPUs() : 0; } catch (...) { return 0; }
}
int ct_cuda_synchronize(int device) {
  load_cuda_once();
  CT_STATUS({
    at::detail::getCUDAHooks().deviceSynchronize(static_cast<c10::DeviceIndex>(device));
  });
}
const char *ct_torch_version(void) { return TORCH_VERSION; }

// Generators.
ct_generator ct_generator_new(uint64_t seed) {
  CT_GUARD(nullptr, clear(); return new ct_generator_s{at::make_generator<at::CPUGeneratorImpl>(seed)};);
}
void ct_generator_free(ct_generator g) { delete g; }

static at::Generator generator_or_default(ct_generator g) {
  return g ? g->gen : at::detail::getDefaultCPUGenerator();
}
static std::optional<at::Generator> optional_generator(ct_generator g) {
  if (g == nullptr) return std::nullopt;
  return g->gen;
}

ct_tensor ct_generator_get_state(ct_generator g) {
  CT_GUARD(nullptr, clear(); auto gen = generator_or_default(g);
           std::lock_guard<std::mutex> lock(gen.mutex()); return wrap(gen.get_state()););
}
int ct_generator_set_state(ct_generator g, ct_tensor state) {
  CT_STATUS({
    auto gen = generator_or_default(g);
    std::lock_guard<std::mutex> lock(gen.mutex());
    gen.set_state(T(state));
  });
}

// Creation.
ct_tensor ct_empty(const int64_t *shape, int ndim, int dtype, int dt, int di) {
  CT_TENSOR(at::empty(dims(shape, ndim), options(dtype, dt, di)));
}
ct_tensor ct_zeros(const int64_t *shape, int ndim, int dtype, int dt, int di) {
  CT_TENSOR(at::zeros(dims(shape, ndim), options(dtype, dt, di)));
}
ct_tensor ct_ones(const int64_t *shape, int ndim, int dtype, int dt, int di) {
  CT_TENSOR(at::ones(dims(shape, ndim), options(dtype, dt, di)));
}
ct_tensor ct_full(const int64_t *shape, int ndim, double value, int dtype, int dt, int di) {
  CT_TENSOR(at::full(dims(shape, ndim), value, options(dtype, dt, di)));
}
ct_tensor ct_randn(const int64_t *shape, int ndim, int dtype, int dt, int di, ct_generator g) {
  CT_TENSOR(at::randn(dims(shape, ndim), optional_generator(g), options(dtype, dt, di)));
}
ct_tensor ct_rand(const int64_t *shape, int ndim, int dtype, int dt, int di, ct_generator g) {
  CT_TENSOR(at::rand(dims(shape, ndim), optional_generator(g), options(dtype, dt, di)));
}
ct_tensor ct_randint(int64_t low, int64_t high, const int64_t *shape, int ndim, int dt, int di, ct_generator g) {
  CT_TENSOR(at::randint(low, high, dims(shape, ndim), optional_generator(g), options(4, dt, di)));
}
ct_tensor ct_randperm(int64_t n, int dt, int di, ct_generator g) {
  CT_TENSOR(at::randperm(n, optional_generator(g), options(4, dt, di)));
}
ct_tensor ct_arange(double start, double end, double step, int dtype, int dt, int di) {
  CT_TENSOR(at::arange(start, end, step, options(dtype, dt, di)));
}
ct_tensor ct_linspace(double start, double end, int64_t steps, int dtype, int dt, int di) {
  CT_TENSOR(at::linspace(start, end, steps, options(dtype, dt, di)));
}
ct_tensor ct_eye(int64_t n, int dtype, int dt, int di) { CT_TENSOR(at::eye(n, options(dtype, dt, di))); }

ct_tensor ct_from_data(const void *data, size_t nbytes, const int64_t *shape, int ndim, int dtype) {
  CT_GUARD(nullptr, {
    clear();
    auto t = at::empty(dims(shape, ndim), options(dtype, 0, -1));
    if (t.nbytes() != nbytes) {
      set_error(("from_data: " + std::to_string(nbytes) + " bytes given for a tensor of " +
                 std::to_string(t.nbytes()) + " bytes").c_str());
      return nullptr;
    }
    if (nbytes > 0) std::memcpy(t.data_ptr(), data, nbytes);
    return wrap(std::move(t));
  });
}

ct_tensor ct_from_blob(void *data, const int64_t *shape, int ndim, int dtype, void *context, void (*release)(void *)) {
  CT_GUARD(nullptr, {
    clear();
    auto deleter = [context, release](void *) {
      if (release) release(context);
    };
    return wrap(at::from_blob(data, dims(shape, ndim), deleter, options(dtype, 0, -1)));
  });
}

// Properties.
int ct_dim(ct_tensor t) { return static_cast<int>(T(t).dim()); }
int ct_sizes(ct_tensor t, int64_t *out) {
  CT_STATUS({
    auto s = T(t).sizes();
    std::copy(s.begin(), s.end(), out);
  });
}
int ct_strides(ct_tensor t, int64_t *out) {
  CT_STATUS({
    auto s = T(t).strides();
    std::copy(s.begin(), s.end(), out);
  });
}
int64_t ct_numel(ct_tensor t) { return T(t).numel(); }
int ct_dtype(ct_tensor t) { return static_cast<int>(T(t).scalar_type()); }
int ct_device(ct_tensor t, int *type, int *index) {
  auto d = T(t).device();
  *type = d.is_cuda() ? 1 : 0;
  *index = d.has_index() ? d.index() : -1;
  return 0;
}
bool ct_requires_grad(ct_tensor t) { return T(t).requires_grad(); }
bool ct_is_contiguous(ct_tensor t) { return T(t).is_contiguous(); }
bool ct_is_defined(ct_tensor t) { return t != nullptr && T(t).defined(); }
int ct_item_double(ct_tensor t, double *out) { CT_STATUS(*out = T(t).item<double>();); }
int ct_item_int64(ct_tensor t, int64_t *out) { CT_STATUS(*out = T(t).item<int64_t>();); }
int ct_copy_to_host(ct_tensor t, void *out, size_t nbytes) {
  CT_STATUS({
    auto c = T(t).detach().to(at::kCPU).contiguous();
    if (c.nbytes() != nbytes) {
      set_error(("copy_to_host: buffer of " + std::to_string(nbytes) + " bytes for a tensor of " +
                 std::to_string(c.nbytes()) + " bytes").c_str());
      return -1;
    }
    if (nbytes > 0) std::memcpy(out, c.data_ptr(), nbytes);
  });
}
void *ct_data_ptr(ct_tensor t) {
  try { return T(t).data_ptr(); } catch (...) { return nullptr; }
}
size_t ct_element_size(ct_tensor t) { return T(t).element_size(); }

// Conversion.
ct_tensor ct_to(ct_tensor t, int dtype, int dt, int di, bool copy) {
  CT_TENSOR(T(t).to(options(dtype, dt, di), /*non_blocking=*/false, copy));
}
ct_tensor ct_contiguous(ct_tensor t) { CT_TENSOR(T(t).contiguous()); }
ct_tensor ct_clone(ct_tensor t) { CT_TENSOR(T(t).clone()); }
ct_tensor ct_detach(ct_tensor t) { CT_TENSOR(T(t).detach()); }
int ct_set_requires_grad(ct_tensor t, bool value) { CT_STATUS(T(t).requires_grad_(value);); }
int ct_set_data(ct_tensor t, ct_tensor src) { CT_STATUS(T(t).set_data(T(src));); }

// Autograd.
bool ct_set_grad_enabled(bool enabled) {
  bool previous = c10::GradMode::is_enabled();
  c10::GradMode::set_enabled(enabled);
  return previous;
}
bool ct_is_grad_enabled(void) { return c10::GradMode::is_enabled(); }

int ct_backward(ct_tensor t, ct_tensor grad, bool retain_graph) {
  CT_STATUS(T(t).backward(grad ? T(grad) : at::Tensor(), retain_graph););
}
ct_tensor ct_grad(ct_tensor t) {
  CT_GUARD(nullptr, {
    clear();
    const auto &g = T(t).grad();
    if (!g.defined()) return nullptr;
    return wrap(g);
  });
}
int ct_zero_grad(ct_tensor t) { CT_STATUS(T(t).mutable_grad().reset();); }
int ct_set_grad(ct_tensor t, ct_tensor grad) { CT_STATUS(T(t).mutable_grad() = T(grad);); }

int ct_autograd_grad(const ct_tensor *outputs, int n_outputs, const ct_tensor *inputs, int n_inputs,
                     bool retain_graph, bool create_graph, ct_tensor *out) {
  CT_STATUS({
    auto grads = torch::autograd::grad(list(outputs, n_outputs), list(inputs, n_inputs), {},
                                       retain_graph, create_graph, /*allow_unused=*/true);
    for (int i = 0; i < n_inputs; ++i) out[i] = grads[i].defined() ? wrap(grads[i]) : nullptr;
  });
}

// Optimizers. These compute torch.optim's updates, so results match PyTorch step for step.
//
// AdamW runs ATen's fused kernel (`torch.optim.AdamW(fused=True)`): one pass over each
// parameter, its gradient and both moments, where the single-tensor ("for-loop") form takes
// seven element-wise passes and two temporaries per tensor — at the demo's sizes 14 of a 41 ms
// training step, most of it on the 49408-row token embedding. The two forms agree to float
// rounding (tested against torch.optim's default, within 1e-5). Tensors the kernel does not
// take (non-contiguous, another dtype than their gradient, sparse gradients) go through the
// single-tensor form.
namespace {
void adamwSingleTensor(at::Tensor &p, const at::Tensor &g, at::Tensor &m, at::Tensor &v, double lr, double beta1,
                       double beta2, double eps, double weight_decay, double step_size, double bias_correction2_sqrt) {
  if (weight_decay != 0) p.mul_(1.0 - lr * weight_decay);
  m.lerp_(g, 1.0 - beta1);
  v.mul_(beta2).addcmul_(g, g, 1.0 - beta2);
  auto denom = (v.sqrt() / bias_correction2_sqrt).add_(eps);
  p.addcdiv_(m, denom, -step_size);
}

bool fusable(const at::Tensor &p, const at::Tensor &g, const at::Tensor &m, const at::Tensor &v) {
  return p.is_contiguous() && g.is_contiguous() && m.is_contiguous() && v.is_contiguous() && !g.is_sparse() &&
         g.scalar_type() == p.scalar_type() && m.scalar_type() == p.scalar_type() && v.scalar_type() == p.scalar_type() &&
         at::isFloatingType(p.scalar_type()) && g.device() == p.device() && m.device() == p.device() &&
         v.device() == p.device() && (p.is_cpu() || p.is_cuda());
}
}  // namespace

int ct_adamw_step(const ct_tensor *params, const ct_tensor *grads, const ct_tensor *exp_avg,
                  const ct_tensor *exp_avg_sq, int n, int64_t step, double lr, double beta1,
                  double beta2, double eps, double weight_decay) {
  CT_STATUS({
    at::NoGradGuard no_grad;
    const double bias_correction1 = 1.0 - std::pow(beta1, static_cast<double>(step));
    const double bias_correction2 = 1.0 - std::pow(beta2, static_cast<double>(step));
    const double step_size = lr / bias_correction1;
    const double bias_correction2_sqrt = std::sqrt(bias_correction2);
    // The fused kernel's calls, one per device (it takes one device per call).
    std::vector<std::pair<c10::Device, std::vector<int>>> fused;
    for (int i = 0; i < n; ++i) {
      auto &p = T(params[i]);
      const auto &g = T(grads[i]);
      auto &m = T(exp_avg[i]);
      auto &v = T(exp_avg_sq[i]);
      if (fusable(p, g, m, v)) {
        auto group = std::find_if(fused.begin(), fused.end(), [&](const auto &f) { return f.first == p.device(); });
        if (group == fused.end()) group = fused.insert(fused.end(), {p.device(), {}});
        group->second.push_back(i);
      } else {
        adamwSingleTensor(p, g, m, v, lr, beta1, beta2, eps, weight_decay, step_size, bias_correction2_sqrt);
      }
    }
    for (const auto &[device, indices] : fused) {
      std::vector<at::Tensor> ps, gs, ms, vs;
      for (int i : indices) {
        ps.push_back(T(params[i]));
        gs.push_back(T(grads[i]));
        ms.push_back(T(exp_avg[i]));
        vs.push_back(T(exp_avg_sq[i]));
      }
      // The step count, already advanced (the kernel reads it, as torch.optim passes it).
      auto count = at::full({}, static_cast<double>(step), at::TensorOptions().dtype(at::kFloat).device(device));
      std::vector<at::Tensor> steps(indices.size(), count);
      at::_fused_adamw_(ps, gs, ms, vs, {}, steps, lr, beta1, beta2, weight_decay, eps, /*amsgrad=*/false,
                        /*maximize=*/false, std::nullopt, std::nullopt);
    }
  });
}

int ct_sgd_step(const ct_tensor *params, const ct_tensor *grads, const ct_tensor *momentum_buf,
                int n, double lr, double momentum, double dampening, double weight_decay,
                bool nesterov, bool first_step) {
  CT_STATUS({
    at::NoGradGuard no_grad;
    for (int i = 0; i < n; ++i) {
      auto &p = T(params[i]);
      at::Tensor d = T(grads[i]);
      if (weight_decay != 0) d = d.add(p, weight_decay);
      if (momentum != 0) {
        auto &buf = T(momentum_buf[i]);
        if (first_step) buf.copy_(d);
        else buf.mul_(momentum).add_(d, 1.0 - dampening);
        d = nesterov ? d.add(buf, momentum) : buf;
      }
      p.add_(d, -lr);
    }
  });
}

int ct_clip_grad_norm(const ct_tensor *params, int n, double max_norm, double norm_type, double *total_norm) {
  CT_STATUS({
    at::NoGradGuard no_grad;
    std::vector<at::Tensor> norms;
    std::vector<at::Tensor> grads;
    for (int i = 0; i < n; ++i) {
      const auto &g = T(params[i]).grad();
      if (!g.defined()) continue;
      grads.push_back(g);
      norms.push_back(at::linalg_vector_norm(g, norm_type));
    }
    if (grads.empty()) {
      *total_norm = 0;
      return 0;
    }
    auto total = at::linalg_vector_norm(at::stack(norms), norm_type);
    *total_norm = total.item<double>();
    // Same formula as torch.nn.utils.clip_grad_norm_: scale by min(1, max/(norm + 1e-6)).
    if (std::isinf(max_norm)) return 0;  // the norm only (gradientNorm)
    auto coef = at::clamp_max(max_norm / (total + 1e-6), 1.0);
    for (auto &g : grads) g.mul_(coef);
  });
}

}  // extern "C"
