// LibTorch's operator profiler (Kineto, CPU activities), for benchmarks: which ATen operators a
// step runs, how often, and for how long.
#include <torch/csrc/autograd/profiler_kineto.h>

#include <fstream>

#include "ctorch_internal.hpp"

namespace {
torch::profiler::impl::ProfilerConfig cpuConfig(bool shapes) {
  return torch::profiler::impl::ProfilerConfig(torch::profiler::impl::ProfilerState::KINETO, shapes);
}
bool recordingShapes = false;
const std::set<torch::profiler::impl::ActivityType> cpuActivities{torch::profiler::impl::ActivityType::CPU};
}  // namespace

int ct_profiler_start(bool shapes) {
  CT_STATUS({
    recordingShapes = shapes;
    torch::autograd::profiler::prepareProfiler(cpuConfig(shapes), cpuActivities);
    torch::autograd::profiler::enableProfiler(cpuConfig(shapes), cpuActivities);
  });
}

// Stops the profiler and writes one line per recorded event: name, thread, start ns, duration ns,
// tab-separated (the caller aggregates: self time is an event's duration less its children's).
// With shapes, the name is followed by its inputs' shapes, e.g. "aten::mul [64, 9] []".
int ct_profiler_stop(const char *path) {
  CT_STATUS({
    auto result = torch::autograd::profiler::disableProfiler();
    std::ofstream out(path);
    if (!out) throw std::runtime_error(std::string("cannot write ") + path);
    for (const auto &event : result->events()) {
      out << event.name();
      if (recordingShapes && event.hasShapes()) {
        for (const auto &shape : event.shapes()) {
          out << " [";
          for (size_t i = 0; i < shape.size(); ++i) out << (i ? ", " : "") << shape[i];
          out << "]";
        }
      }
      out << '\t' << event.startThreadId() << '\t' << event.startNs() << '\t' << event.durationNs() << '\n';
    }
    if (!out) throw std::runtime_error(std::string("write failed: ") + path);
  });
}
