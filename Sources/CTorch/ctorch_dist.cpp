// Data-parallel collectives over LibTorch's c10d: a TCPStore rendezvous and a Gloo process
// group (its implementation is inside libtorch_cpu; Debian's libgloo-dev supplies only the
// headers ProcessGroupGloo.hpp includes). Without those headers the shim still builds and
// ct_pg_new fails with a message saying what to install.
//
// CUDA tensors are staged through host memory: Gloo's allgather has no CUDA path. NCCL would
// need nccl.h and the CUDA headers at build time (not on the build machines); see docs.
#if __has_include(<gloo/context.h>)
#define USE_C10D_GLOO 1
#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>
#endif
#include <torch/csrc/autograd/custom_function.h>

#include <chrono>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <sys/prctl.h>
#include <string>

#include "ctorch_internal.hpp"

using namespace ctorch;

struct ct_process_group_s {
#ifdef USE_C10D_GLOO
  c10::intrusive_ptr<c10d::Store> store;
  c10::intrusive_ptr<c10d::Backend> backend;
#endif
  int rank = 0;
  int world = 1;
};

#ifdef USE_C10D_GLOO
namespace {

/// Turns c10d's flight recorder off unless the user set its buffer size. It keeps a trace of
/// every collective (with a captured call stack) in one process-wide buffer, for PyTorch's NCCL
/// hang dumps, which nothing here reads. Worse, its record path inserts into a map before
/// taking its lock (FlightRecorderDetail.hpp, recordWithResetEnabled): two groups in one
/// process — the tests' ranks on two threads — race there, and a debug test run crashed or hung
/// about one time in ten. The recorder reads the variable once, when its singleton is built at
/// the first collective, so this runs before the first group exists.
void disable_flight_recorder_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (!std::getenv("TORCH_FR_BUFFER_SIZE") && !std::getenv("TORCH_NCCL_TRACE_BUFFER_SIZE"))
      setenv("TORCH_FR_BUFFER_SIZE", "0", 0);
  });
}

/// Runs `op` on host copies when `t` lives on a GPU, then copies the result back.
at::Tensor on_host(const at::Tensor &t) { return t.is_cpu() ? t.contiguous() : t.to(at::kCPU).contiguous(); }

void wait(const c10::intrusive_ptr<c10d::Work> &work) {
  if (!work->wait()) throw std::runtime_error("collective did not complete");
}

/// Σ over ranks, in place on a host tensor.
void allreduce_host(ct_process_group_s *pg, at::Tensor &host) {
  std::vector<at::Tensor> v{host};
  wait(pg->backend->allreduce(v));
}

at::Tensor allreduce_sum(ct_process_group_s *pg, const at::Tensor &x) {
  auto host = on_host(x).clone();
  allreduce_host(pg, host);
  return host.to(x.device());
}

at::Tensor allgather_cat(ct_process_group_s *pg, const at::Tensor &x) {
  auto host = on_host(x);
  std::vector<std::vector<at::Tensor>> out(1);
  for (int r = 0; r < pg->world; ++r) out[0].push_back(at::empty_like(host));
  std::vector<at::Tensor> in{host};
  wait(pg->backend->allgather(out, in));
  return at::cat(out[0], 0).to(x.device());
}

/// y = Σ_r x_r on every rank. Every rank's loss reads y, so ∂(Σ_r L_r)/∂x_r = Σ_r ∂L_r/∂y:
/// the backward is the same all-reduce (differentiable again, for double backward).
struct AllReduceSum : public torch::autograd::Function<AllReduceSum> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, at::Tensor x, int64_t handle) {
    ctx->saved_data["pg"] = handle;
    return allreduce_sum(reinterpret_cast<ct_process_group_s *>(handle), x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx, torch::autograd::variable_list g) {
    auto handle = ctx->saved_data["pg"].toInt();
    return {AllReduceSum::apply(g[0], handle), at::Tensor()};
  }
};

/// y = cat(x_0, …, x_{W-1}) along dim 0 on every rank. Backward: the all-reduced gradient's
/// rows of this rank (torch.distributed.nn.functional.all_gather's rule).
struct AllGather : public torch::autograd::Function<AllGather> {
  static at::Tensor forward(torch::autograd::AutogradContext *ctx, at::Tensor x, int64_t handle) {
    auto pg = reinterpret_cast<ct_process_group_s *>(handle);
    ctx->saved_data["pg"] = handle;
    ctx->saved_data["rows"] = x.size(0);
    return allgather_cat(pg, x);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext *ctx, torch::autograd::variable_list g) {
    auto handle = ctx->saved_data["pg"].toInt();
    auto rows = ctx->saved_data["rows"].toInt();
    auto pg = reinterpret_cast<ct_process_group_s *>(handle);
    auto summed = AllReduceSum::apply(g[0], handle);
    return {summed.narrow(0, pg->rank * rows, rows), at::Tensor()};
  }
};

}  // namespace
#endif

extern "C" {

ct_process_group ct_pg_new(const char *host, int port, int rank, int world, double timeout_seconds) {
  ct_try_load_cuda();  // before c10d may query the CUDA hooks (see ctorch_core.cpp)
  CT_GUARD(
      nullptr, clear();
#ifdef USE_C10D_GLOO
      disable_flight_recorder_once();
      auto timeout = std::chrono::milliseconds(static_cast<int64_t>(timeout_seconds * 1000));
      c10d::TCPStoreOptions options;
      options.port = static_cast<uint16_t>(port);
      options.isServer = rank == 0;
      options.numWorkers = world;
      options.waitWorkers = true;
      options.timeout = timeout;
      auto pg = new ct_process_group_s();
      try {
        pg->rank = rank;
        pg->world = world;
        pg->store = c10::make_intrusive<c10d::TCPStore>(host, options);
        auto glooOptions = c10d::ProcessGroupGloo::Options::create(timeout);
        glooOptions->devices.push_back(c10d::ProcessGroupGloo::createDeviceForHostname(host));
        pg->backend = c10::make_intrusive<c10d::ProcessGroupGloo>(pg->store, rank, world, glooOptions);
      } catch (...) {
        delete pg;
        throw;
      }
      return pg;
#else
      (void)host; (void)port; (void)rank; (void)world; (void)timeout_seconds;
      set_error("this build has no Gloo process group: install Debian's libgloo-dev (scripts/bootstrap.sh does) and rebuild");
      return nullptr;
#endif
  );
}

void ct_pg_free(ct_process_group pg) { delete pg; }

int ct_die_with_parent(void) { return prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) == 0 ? 0 : -1; }

int ct_pg_allreduce_sum(ct_process_group pg, const ct_tensor *tensors, int n, int64_t bucket_bytes) {
  CT_STATUS(
#ifdef USE_C10D_GLOO
      // Buckets of same-dtype, same-device tensors, flattened into one buffer each, all launched
      // before any is waited on, so Gloo's threads work on several at once.
      std::vector<std::vector<at::Tensor>> buckets;
      std::vector<int64_t> sizes;
      for (int i = 0; i < n; ++i) {
        auto &t = T(tensors[i]);
        auto bytes = t.numel() * static_cast<int64_t>(t.element_size());
        bool fits = !buckets.empty() && buckets.back()[0].scalar_type() == t.scalar_type() &&
                    buckets.back()[0].device() == t.device() && sizes.back() + bytes <= bucket_bytes;
        if (!fits) {
          buckets.emplace_back();
          sizes.push_back(0);
        }
        buckets.back().push_back(t);
        sizes.back() += bytes;
      }
      std::vector<at::Tensor> flats;
      std::vector<c10::intrusive_ptr<c10d::Work>> works;
      for (auto &bucket : buckets) {
        std::vector<at::Tensor> pieces;
        for (auto &t : bucket) pieces.push_back(t.detach().reshape({-1}));
        auto flat = on_host(at::cat(pieces, 0));
        std::vector<at::Tensor> v{flat};
        works.push_back(pg->backend->allreduce(v));
        flats.push_back(flat);
      }
      for (size_t b = 0; b < buckets.size(); ++b) {
        wait(works[b]);
        int64_t offset = 0;
        at::NoGradGuard no_grad;
        for (auto &t : buckets[b]) {
          t.copy_(flats[b].narrow(0, offset, t.numel()).view(t.sizes()));
          offset += t.numel();
        }
      }
#else
      (void)pg; (void)tensors; (void)n; (void)bucket_bytes;
      throw std::runtime_error("no Gloo process group in this build");
#endif
  );
}

int ct_pg_broadcast(ct_process_group pg, const ct_tensor *tensors, int n, int root) {
  CT_STATUS(
#ifdef USE_C10D_GLOO
      at::NoGradGuard no_grad;
      for (int i = 0; i < n; ++i) {
        auto &t = T(tensors[i]);
        auto host = on_host(t).clone();
        std::vector<at::Tensor> v{host};
        c10d::BroadcastOptions options;
        options.rootRank = root;
        wait(pg->backend->broadcast(v, options));
        t.copy_(host);
      }
#else
      (void)pg; (void)tensors; (void)n; (void)root;
      throw std::runtime_error("no Gloo process group in this build");
#endif
  );
}

int ct_pg_barrier(ct_process_group pg) {
  CT_STATUS(
#ifdef USE_C10D_GLOO
      // An all-reduce of one number rather than Gloo's barrier: it also proves every rank is alive.
      auto one = at::ones({1});
      allreduce_host(pg, one);
#else
      (void)pg;
      throw std::runtime_error("no Gloo process group in this build");
#endif
  );
}

ct_tensor ct_pg_all_gather(ct_process_group pg, ct_tensor x) {
#ifdef USE_C10D_GLOO
  CT_TENSOR(AllGather::apply(T(x), reinterpret_cast<int64_t>(pg)));
#else
  (void)pg; (void)x;
  set_error("no Gloo process group in this build");
  return nullptr;
#endif
}

ct_tensor ct_pg_all_reduce_sum(ct_process_group pg, ct_tensor x) {
#ifdef USE_C10D_GLOO
  CT_TENSOR(AllReduceSum::apply(T(x), reinterpret_cast<int64_t>(pg)));
#else
  (void)pg; (void)x;
  set_error("no Gloo process group in this build");
  return nullptr;
#endif
}

}  // extern "C"
