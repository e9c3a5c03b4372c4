#include "tools/psbench/infer_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <random>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/stream.h"
#include "models/gpu/plan.h"
#include "models/gpu/runtime.h"
#include "models/package_reader.h"
#include "tools/psbench/cli.h"

namespace ps::psbench {
namespace {

using models::gpu::Bindings;
using models::gpu::IoSpec;
using models::gpu::Plan;
using models::gpu::Precision;

struct Spread {
  double median = 0, p10 = 0, p90 = 0;
};

Spread spread(const std::vector<double>& v) {
  return Spread{median(v), percentile(v, 0.1), percentile(v, 0.9)};
}

Result<std::vector<uint8_t>> read_raw(const std::string& path, uint64_t bytes,
                                      const std::string& what) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  if (!in) return io_error("cannot open ", what, " file ", path);
  const auto size = static_cast<uint64_t>(in.tellg());
  if (size != bytes) {
    return invalid_argument(what, " file ", path, " has ", size, " bytes; the model's tensor has ",
                            bytes);
  }
  std::vector<uint8_t> data(bytes);
  in.seekg(0);
  if (bytes > 0 && !in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(bytes))) {
    return io_error("cannot read ", path);
  }
  return data;
}

// max |a - r| / max |r| over float32 tensors (the "maximum relative error").
struct Compared {
  double max_rel = 0, max_abs = 0;
  int64_t non_finite = 0;
};
Compared compare_f32(const std::vector<uint8_t>& actual, const std::vector<uint8_t>& reference) {
  Compared c;
  double mag = 0;
  const size_t n = reference.size() / 4;
  for (size_t i = 0; i < n; ++i) {
    float a, r;
    std::memcpy(&a, actual.data() + i * 4, 4);
    std::memcpy(&r, reference.data() + i * 4, 4);
    if (!std::isfinite(a) || !std::isfinite(r)) {
      ++c.non_finite;
      continue;
    }
    mag = std::max(mag, std::fabs(static_cast<double>(r)));
    c.max_abs = std::max(c.max_abs, std::fabs(static_cast<double>(a) - r));
  }
  c.max_rel = c.max_abs / (mag > 0 ? mag : 1.0);
  return c;
}

std::string json_spread(const Spread& s) {
  char buf[128];
  std::snprintf(buf, sizeof(buf), "{\"median\": %.4f, \"p10\": %.4f, \"p90\": %.4f}", s.median,
                s.p10, s.p90);
  return buf;
}

struct LayerTime {
  size_t index = 0;
  double ms = 0;
};

}  // namespace

double percentile(std::vector<double> v, double q) {
  PS_CHECK(!v.empty());
  std::sort(v.begin(), v.end());
  const double pos = q * static_cast<double>(v.size() - 1);
  const size_t lo = static_cast<size_t>(std::floor(pos));
  const size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (pos - static_cast<double>(lo));
}

// Seeded inputs: floats ~N(0,1); int64 values 0/1 for token types, 1 for masks, else [0, 1000).
std::vector<uint8_t> random_input(const IoSpec& in, uint64_t seed) {
  std::vector<uint8_t> data(in.bytes);
  std::mt19937_64 rng(seed);
  const int64_t n = element_count(in.shape);
  if (in.dtype == DType::kFloat32) {
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 0; i < n; ++i) {
      const float v = normal(rng);
      std::memcpy(data.data() + i * 4, &v, 4);
    }
  } else if (in.dtype == DType::kInt64) {
    const bool type_ids = in.name.find("token_type") != std::string::npos;
    const bool mask = in.name.find("mask") != std::string::npos;
    std::uniform_int_distribution<int64_t> ids(0, type_ids ? 1 : 999);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = mask ? 1 : ids(rng);
      std::memcpy(data.data() + i * 8, &v, 8);
    }
  }
  return data;
}

void print_infer_help(std::FILE* out) {
  std::fprintf(
      out,
      "usage: psbench infer PACKAGE.psm [--precision fp32|tf32] [--graph] [--runs N]\n"
      "                     [--warmup N] [--profile] [--profile-top N] [--debug]\n"
      "                     [--input FILE]... [--reference FILE]... [--label NAME] [--json]\n"
      "                     [--device N]\n"
      "\n"
      "Loads the package, copies its weights to the GPU, builds the executor's plan and runs the\n"
      "model resident: --warmup untimed runs, then --runs timed runs, each one request (inputs\n"
      "copied device-to-device into the arena, the pass, synchronise). Prints the GPU time\n"
      "(CUDA events around the pass) and the host wall time (enqueue to completion), median,\n"
      "p10 and p90 in milliseconds.\n"
      "\n"
      "options:\n"
      "  --precision P     fp32 (strict) or tf32 (TF32 tensor cores for convolutions and\n"
      "                    matrix products; default)\n"
      "  --graph           capture the pass once as a CUDA graph and replay it\n"
      "  --runs N          timed runs (default 100)\n"
      "  --warmup N        untimed runs first (default 10)\n"
      "  --profile         per-layer GPU times (events between layers; median over up to 20\n"
      "                    passes): the slowest layers and the sum per op type\n"
      "  --profile-top N   layers listed by --profile (default 30; --json lists all)\n"
      "  --debug           first run the pass layer by layer, checking every output for NaN/Inf\n"
      "  --input FILE      a raw little-endian input tensor (repeat: one per model input, in\n"
      "                    order); default seeded random values\n"
      "  --reference FILE  a raw float32 expected output (repeat: in output order); prints the\n"
      "                    maximum relative error max|out - ref| / max|ref| of each\n"
      "  --label NAME      the model name in the results (default: the package's)\n"
      "  --json            print one JSON object instead of the tables\n"
      "  --device N        GPU ordinal (default 0)\n"
      "\n"
      "exit status: 0 ok, 1 error, 2 bad command line, 3 an output differs from its reference by\n"
      "more than 1e-4 (fp32) or 5e-3 (tf32).\n");
}

Result<InferOptions> parse_infer_options(const std::vector<std::string_view>& args, bool* help) {
  InferOptions o;
  *help = false;
  OptionReader r(args);
  while (r.next()) {
    if (r.is_help()) {
      *help = true;
      return o;
    }
    if (r.is_positional()) {
      PS_TRY(r.take_package(o.package));
    } else if (r.is("--precision")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(o.precision, models::gpu::parse_precision(v));
    } else if (r.is("--graph")) {
      o.graph = true;
    } else if (r.is("--profile")) {
      o.profile = true;
    } else if (r.is("--debug")) {
      o.debug = true;
    } else if (r.is("--json")) {
      o.json = true;
    } else if (r.is("--runs")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(1, 1'000'000));
      o.runs = static_cast<int>(n);
    } else if (r.is("--warmup")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(0, 1'000'000));
      o.warmup = static_cast<int>(n);
    } else if (r.is("--profile-top")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(1, 1'000'000));
      o.profile_top = static_cast<int>(n);
    } else if (r.is("--device")) {
      PS_ASSIGN_OR_RETURN(auto n, r.int_value(0, 1023));
      o.device = static_cast<int>(n);
    } else if (r.is("--input")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      o.inputs.emplace_back(v);
    } else if (r.is("--reference")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      o.references.emplace_back(v);
    } else if (r.is("--label")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      o.label = std::string(v);
    } else {
      return invalid_argument("unknown option '", r.name(), "'");
    }
  }
  if (o.package.empty()) return invalid_argument("no package given (psbench infer MODEL.psm)");
  return o;
}

Result<bool> run_infer(const InferOptions& o) {
  using Clock = std::chrono::steady_clock;
  PS_ASSIGN_OR_RETURN(models::Package package, models::Package::open(o.package));
  const auto& manifest = package.manifest();
  const std::string label = o.label.empty() ? manifest.model_name() : o.label;
  PS_ASSIGN_OR_RETURN(std::unique_ptr<models::gpu::GpuRuntime> runtime,
                      models::gpu::GpuRuntime::create(o.device));

  // Weights: file -> pinned host memory -> GPU.
  const uint64_t weight_bytes = std::max<uint64_t>(package.weights_bytes(), 1);
  PS_ASSIGN_OR_RETURN(cuda::PinnedBuffer host_weights, cuda::PinnedBuffer::allocate(weight_bytes));
  PS_TRY(package.read_weights(host_weights.data(), host_weights.size()));
  const std::span<const uint8_t> blob(static_cast<const uint8_t*>(host_weights.data()),
                                      package.weights_bytes());
  PS_ASSIGN_OR_RETURN(cuda::Stream stream, cuda::Stream::create(cuda::StreamPriority::kHigh));
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer weights, cuda::DeviceBuffer::allocate(weight_bytes));
  PS_TRY(cuda::copy_to_device_async(weights.ptr(), blob.data(), blob.size(), stream));

  const auto build_start = Clock::now();
  models::gpu::PlanOptions plan_options;
  plan_options.precision = o.precision;
  plan_options.warm_up = false;  // warmed below on the real weights
  PS_ASSIGN_OR_RETURN(Plan plan, Plan::build(manifest, blob, *runtime, plan_options));
  const double build_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - build_start).count();
  runtime->release_plan_scratch();
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer arena,
                      cuda::DeviceBuffer::allocate(std::max<uint64_t>(plan.arena_bytes(), 256)));
  cuda::DeviceBuffer workspace;
  if (plan.workspace_bytes() > 0) {
    PS_ASSIGN_OR_RETURN(workspace, cuda::DeviceBuffer::allocate(plan.workspace_bytes()));
  }
  const Bindings bindings{weights.ptr(), arena.ptr(), workspace.ptr(), workspace.size()};

  // Inputs: kept in their own device buffer and copied into the arena before every run (the
  // memory plan may reuse an input's bytes once it has been read).
  if (!o.inputs.empty() && o.inputs.size() != plan.inputs().size()) {
    return invalid_argument(o.inputs.size(), " --input files for a model with ",
                            plan.inputs().size(), " inputs");
  }
  if (o.references.size() > plan.outputs().size()) {
    return invalid_argument(o.references.size(), " --reference files for a model with ",
                            plan.outputs().size(), " outputs");
  }
  uint64_t input_bytes = 0;
  for (const IoSpec& in : plan.inputs()) input_bytes += (in.bytes + 255) / 256 * 256;
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer staged,
                      cuda::DeviceBuffer::allocate(std::max<uint64_t>(input_bytes, 256)));
  std::vector<std::vector<uint8_t>> host_inputs;
  {
    uint64_t at = 0;
    for (size_t i = 0; i < plan.inputs().size(); ++i) {
      const IoSpec& in = plan.inputs()[i];
      if (o.inputs.empty()) {
        host_inputs.push_back(random_input(in, 1234 + i));
      } else {
        PS_ASSIGN_OR_RETURN(auto data, read_raw(o.inputs[i], in.bytes, str_cat("input '", in.name, "'")));
        host_inputs.push_back(std::move(data));
      }
      PS_TRY(cuda::copy_to_device_async(staged.ptr() + at, host_inputs.back().data(), in.bytes,
                                        stream));
      at += (in.bytes + 255) / 256 * 256;
    }
  }
  auto load_inputs = [&]() -> Status {
    uint64_t at = 0;
    for (const IoSpec& in : plan.inputs()) {
      PS_TRY(cuda::copy_device_async(arena.ptr() + in.arena_offset, staged.ptr() + at, in.bytes,
                                     stream));
      at += (in.bytes + 255) / 256 * 256;
    }
    return Status::OK();
  };
  PS_TRY(stream.synchronize());

  // Warm-up on the real weights before anything is captured: kernels load lazily on their
  // first launch, which must not happen inside a graph capture.
  PS_TRY(load_inputs());
  PS_TRY(plan.enqueue(stream, bindings));
  PS_TRY(stream.synchronize());

  if (o.debug) {
    PS_TRY(load_inputs());
    PS_TRY(plan.run_debug(stream, bindings));
  }

  models::gpu::CudaGraph graph;
  if (o.graph) {
    PS_ASSIGN_OR_RETURN(graph, plan.capture_graph(stream, bindings));
  }
  auto run_once = [&]() -> Status {
    return o.graph ? graph.launch(stream) : plan.enqueue(stream, bindings);
  };

  // Reference comparison on the first run.
  PS_TRY(load_inputs());
  PS_TRY(run_once());
  PS_TRY(stream.synchronize());
  struct OutputCheck {
    std::string name;
    Compared c;
  };
  std::vector<OutputCheck> checks;
  bool within = true;
  const double tolerance = o.precision == Precision::kFp32 ? 1e-4 : 5e-3;
  for (size_t i = 0; i < o.references.size(); ++i) {
    const IoSpec& out = plan.outputs()[i];
    if (out.dtype != DType::kFloat32) {
      return unsupported("output '", out.name, "' is ", dtype_name(out.dtype),
                         "; --reference compares float32 outputs");
    }
    PS_ASSIGN_OR_RETURN(auto ref, read_raw(o.references[i], out.bytes,
                                           str_cat("reference for output '", out.name, "'")));
    std::vector<uint8_t> got(out.bytes);
    PS_TRY(cuda::copy_to_host_async(got.data(), arena.ptr() + out.arena_offset, out.bytes, stream));
    PS_TRY(stream.synchronize());
    const Compared c = compare_f32(got, ref);
    within = within && c.non_finite == 0 && c.max_rel <= tolerance;
    checks.push_back(OutputCheck{out.name, c});
  }

  // Timed runs.
  PS_ASSIGN_OR_RETURN(cuda::Event start, cuda::Event::create(true));
  PS_ASSIGN_OR_RETURN(cuda::Event end, cuda::Event::create(true));
  for (int i = 0; i < o.warmup; ++i) {
    PS_TRY(load_inputs());
    PS_TRY(run_once());
  }
  PS_TRY(stream.synchronize());
  std::vector<double> gpu_ms, wall_ms;
  for (int i = 0; i < o.runs; ++i) {
    PS_TRY(load_inputs());
    const auto t0 = Clock::now();
    PS_TRY(start.record(stream));
    PS_TRY(run_once());
    PS_TRY(end.record(stream));
    PS_TRY(end.synchronize());
    wall_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    PS_ASSIGN_OR_RETURN(float ms, cuda::Event::elapsed_ms(start, end));
    gpu_ms.push_back(ms);
  }
  const Spread gpu = spread(gpu_ms);
  const Spread wall = spread(wall_ms);

  // Profile: median per layer over up to 20 passes.
  std::vector<LayerTime> layers;
  std::map<std::string, std::pair<double, int>> per_op;
  double profiled_total = 0;
  if (o.profile) {
    const int passes = std::min(o.runs, 20);
    std::vector<std::vector<double>> samples(plan.layer_count());
    for (int p = 0; p < passes; ++p) {
      PS_TRY(load_inputs());
      PS_ASSIGN_OR_RETURN(std::vector<double> ms, plan.profile_layers(stream, bindings));
      for (size_t l = 0; l < ms.size(); ++l) samples[l].push_back(ms[l]);
    }
    for (size_t l = 0; l < samples.size(); ++l) {
      const double ms = median(samples[l]);
      layers.push_back(LayerTime{l, ms});
      auto& [sum, count] = per_op[plan.layer(l).op];
      sum += ms;
      ++count;
      profiled_total += ms;
    }
    std::sort(layers.begin(), layers.end(),
              [](const LayerTime& a, const LayerTime& b) { return a.ms > b.ms; });
  }

  const char* precision = models::gpu::precision_name(o.precision).data();
  if (o.json) {
    std::string s = "{";
    s += str_cat("\"model\": ", json_string(label), ", \"precision\": \"", precision,
                 "\", \"graph\": ", o.graph ? "true" : "false", ", \"engine\": \"pipeswitch\"");
    s += str_cat(", \"batch\": ", manifest.dims().count("batch") ? manifest.dims().at("batch") : 0);
    s += str_cat(", \"runs\": ", o.runs, ", \"warmup\": ", o.warmup);
    s += str_cat(", \"gpu_ms\": ", json_spread(gpu), ", \"wall_ms\": ", json_spread(wall));
    s += str_cat(", \"layers\": ", plan.layer_count(), ", \"build_ms\": ", build_ms);
    s += str_cat(", \"workspace_bytes\": ", plan.workspace_bytes(),
                 ", \"arena_bytes\": ", plan.arena_bytes(), ", \"weights_bytes\": ",
                 plan.weights_bytes());
    if (!checks.empty()) {
      s += ", \"max_rel_error\": {";
      for (size_t i = 0; i < checks.size(); ++i) {
        s += str_cat(i ? ", " : "", json_string(checks[i].name), ": ", checks[i].c.max_rel);
      }
      s += str_cat("}, \"within_tolerance\": ", within ? "true" : "false");
    }
    if (o.profile) {
      s += ", \"profile_ms\": [";
      for (size_t i = 0; i < layers.size(); ++i) {
        const auto& info = plan.layer(layers[i].index);
        s += str_cat(i ? ", " : "", "{\"layer\": ", layers[i].index, ", \"op\": ",
                     json_string(info.op), ", \"name\": ", json_string(info.name),
                     ", \"ms\": ", layers[i].ms, ", \"impl\": ", json_string(info.implementation),
                     "}");
      }
      s += "], \"profile_per_op_ms\": {";
      bool first = true;
      for (const auto& [op, v] : per_op) {
        s += str_cat(first ? "" : ", ", json_string(op), ": ", v.first);
        first = false;
      }
      s += "}";
    }
    s += "}";
    std::printf("%s\n", s.c_str());
    return within;
  }

  std::printf("psbench infer: %s (%s), %zu layers, %s, %s, GPU %s\n", label.c_str(),
              o.package.c_str(), plan.layer_count(), precision,
              o.graph ? "CUDA graph replay" : "layer-by-layer enqueue",
              runtime->device().name().c_str());
  std::printf("  weights %s, arena %s, workspace %s, plan built in %.0f ms\n",
              size_label(plan.weights_bytes()).c_str(), size_label(plan.arena_bytes()).c_str(),
              size_label(plan.workspace_bytes()).c_str(), build_ms);
  std::printf("  %d runs after %d warm-up runs (ms):  %10s %10s %10s\n", o.runs, o.warmup,
              "median", "p10", "p90");
  std::printf("    GPU time (events)                  %10.3f %10.3f %10.3f\n", gpu.median,
              gpu.p10, gpu.p90);
  std::printf("    host wall time                     %10.3f %10.3f %10.3f\n", wall.median,
              wall.p10, wall.p90);
  for (const OutputCheck& c : checks) {
    std::printf("  output %-24s max relative error %.3g (max abs %.3g, non-finite %lld): %s\n",
                c.name.c_str(), c.c.max_rel, c.c.max_abs, static_cast<long long>(c.c.non_finite),
                c.c.non_finite == 0 && c.c.max_rel <= tolerance ? "OK" : "ABOVE TOLERANCE");
  }
  if (o.profile) {
    std::printf("\n  per-layer GPU time (median of up to 20 profiled passes; sum %.3f ms)\n",
                profiled_total);
    std::printf("  %5s %9s %6s  %-18s %-40s %s\n", "layer", "ms", "%", "op", "name",
                "implementation");
    for (size_t i = 0; i < layers.size() && i < static_cast<size_t>(o.profile_top); ++i) {
      const auto& info = plan.layer(layers[i].index);
      std::printf("  %5zu %9.4f %5.1f%%  %-18s %-40.40s %s\n", layers[i].index, layers[i].ms,
                  100.0 * layers[i].ms / std::max(profiled_total, 1e-9), info.op.c_str(),
                  info.name.c_str(), info.implementation.c_str());
    }
    std::vector<std::pair<std::string, std::pair<double, int>>> ops(per_op.begin(), per_op.end());
    std::sort(ops.begin(), ops.end(),
              [](const auto& a, const auto& b) { return a.second.first > b.second.first; });
    std::printf("\n  per op type: %-18s %6s %9s %6s\n", "op", "layers", "ms", "%");
    for (const auto& [op, v] : ops) {
      std::printf("               %-18s %6d %9.4f %5.1f%%\n", op.c_str(), v.second, v.first,
                  100.0 * v.first / std::max(profiled_total, 1e-9));
    }
  }
  return within;
}

int infer_main(const std::vector<std::string_view>& args) {
  return subcommand_main("infer", args, parse_infer_options, print_infer_help,
                         [](const InferOptions& o) -> Result<int> {
                           PS_ASSIGN_OR_RETURN(const bool within, run_infer(o));
                           return within ? 0 : 3;
                         });
}

}  // namespace ps::psbench
