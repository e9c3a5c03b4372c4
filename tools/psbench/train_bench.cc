#include "tools/psbench/train_bench.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>

#include "cuda/copy.h"
#include "cuda/device_buffer.h"
#include "cuda/device_pool.h"
#include "cuda/event.h"
#include "cuda/host_memory.h"
#include "cuda/stream.h"
#include "models/cpu/synthetic_tokens.h"
#include "models/gpu/conv_algo.h"
#include "models/gpu/grad_op.h"
#include "models/gpu/runtime.h"
#include "models/gpu/trainer_data.h"
#include "models/gpu/trainer_plan.h"
#include "models/package_reader.h"
#include "tools/psbench/batch_file.h"
#include "tools/psbench/cli.h"

namespace ps::psbench {
namespace {

Result<double> parse_real(std::string_view option, std::string_view text) {
  const std::string s(text);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size() || !(v >= 0)) {
    return invalid_argument(option, ": '", text, "' is not a non-negative number");
  }
  return v;
}

// Writes batches [0, count) as the trainer makes them (same kernel, same options) to `path`.
Status write_batches(models::gpu::GpuRuntime& runtime, const TrainBenchOptions& o,
                     const models::gpu::TrainLayout& layout, const std::string& path) {
  const cuda::Stream& stream = runtime.plan_stream();
  PS_ASSIGN_OR_RETURN(
      models::gpu::DeviceSyntheticData data,
      models::gpu::DeviceSyntheticData::load(models::gpu::OpEnv{runtime, o.trainer.precision},
                                             o.trainer.data, layout.sample_size));
  const uint64_t image_bytes = static_cast<uint64_t>(layout.batch * layout.sample_size) * 4;
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer patterns,
                      cuda::DeviceBuffer::allocate(data.pattern_bytes()));
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer images, cuda::DeviceBuffer::allocate(image_bytes));
  PS_ASSIGN_OR_RETURN(cuda::DeviceBuffer labels,
                      cuda::DeviceBuffer::allocate(static_cast<size_t>(layout.batch) * 8));
  PS_TRY(data.make_patterns(stream, patterns.ptr()));
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return io_error("cannot create ", path);
  BatchFileHeader h;
  h.count = static_cast<uint32_t>(o.trajectory);
  h.batch = layout.batch;
  h.classes = static_cast<uint32_t>(o.trainer.data.classes);
  h.sample_shape = layout.sample_shape;
  const std::vector<uint8_t> header = encode_batch_file_header(h);
  out.write(reinterpret_cast<const char*>(header.data()),
            static_cast<std::streamsize>(header.size()));
  std::vector<uint8_t> host_labels(static_cast<size_t>(layout.batch) * 8), host_images(image_bytes);
  for (int b = 0; b < o.trajectory; ++b) {
    PS_TRY(data.make_batch(stream, patterns.ptr(), static_cast<uint64_t>(b), layout.batch,
                           images.ptr(), labels.ptr()));
    PS_TRY(cuda::copy_to_host_async(host_labels.data(), labels.ptr(), host_labels.size(), stream));
    PS_TRY(cuda::copy_to_host_async(host_images.data(), images.ptr(), host_images.size(), stream));
    PS_TRY(stream.synchronize());
    out.write(reinterpret_cast<const char*>(host_labels.data()),
              static_cast<std::streamsize>(host_labels.size()));
    out.write(reinterpret_cast<const char*>(host_images.data()),
              static_cast<std::streamsize>(host_images.size()));
  }
  if (!out.flush()) return io_error("cannot write ", path);
  return Status::OK();
}

// Writes token batches [0, count) as the trainer makes them (models/gpu/trainer_tokens.h: the
// same SyntheticTokens, on the host) to `path`.
Status write_token_batches(const TrainBenchOptions& o, const pipeswitch::psm::Manifest& manifest,
                           const models::gpu::TrainLayout& layout, const std::string& path) {
  PS_ASSIGN_OR_RETURN(models::cpu::SyntheticTokens data,
                      models::cpu::SyntheticTokens::create(o.trainer.data, layout.token_inputs));
  TokenFileHeader h;
  h.count = static_cast<uint32_t>(o.trajectory);
  h.batch = layout.batch;
  h.classes = static_cast<uint32_t>(o.trainer.data.classes);
  for (size_t k = 0; k < layout.token_inputs.size(); ++k) {
    const models::cpu::TokenInput& in = layout.token_inputs[k];
    h.inputs.push_back(TokenFileInput{
        manifest.tensors(static_cast<int>(layout.token_tensors[k])).name(),
        std::vector<int64_t>(in.sample_shape.begin(), in.sample_shape.end()), in.vocab});
  }
  return write_token_file(path, h, data);
}

// Writes the weight gradients of the trainer's last step (GpuTrainer::export_gradients) to
// `path`: "PSGRAD1\0", u32 count, then per tensor u32 name bytes, the name, u32 rank, i64 dims,
// float32 values (little-endian), in manifest tensor order. scripts/torch_train.py --grads reads
// it and compares each with PyTorch's gradient of the parameter of the same name.
Status write_gradients(const models::gpu::GpuTrainer& trainer, const std::string& path) {
  PS_ASSIGN_OR_RETURN(const auto grads, trainer.export_gradients());
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) return io_error("cannot create ", path);
  auto put = [&](const void* p, size_t n) {
    out.write(static_cast<const char*>(p), static_cast<std::streamsize>(n));
  };
  put("PSGRAD1", 8);
  const auto count = static_cast<uint32_t>(grads.size());
  put(&count, 4);
  for (const auto& [tensor, g] : grads) {
    const std::string& name = trainer.manifest().tensors(static_cast<int>(tensor)).name();
    const auto name_bytes = static_cast<uint32_t>(name.size());
    put(&name_bytes, 4);
    put(name.data(), name.size());
    const auto rank = static_cast<uint32_t>(g.rank());
    put(&rank, 4);
    for (int64_t d : g.shape()) put(&d, 8);
    std::vector<float> values(static_cast<size_t>(g.numel()));
    const double* src = g.data<double>();
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(src[i]);
    put(values.data(), values.size() * 4);
  }
  if (!out.flush()) return io_error("cannot write ", path);
  return Status::OK();
}

// The step's profiled GPU time by (kind, operator), largest first, then the `top` slowest
// items: where a step's time goes (docs/training.md, "Speed").
void print_profile(const models::gpu::GpuTrainer& trainer, size_t top) {
  std::vector<models::gpu::TrainItemTime> items = trainer.item_profile();
  std::map<std::pair<std::string, std::string>, std::pair<double, int>> by_op;
  double total = 0;
  for (const auto& it : items) {
    auto& slot = by_op[{it.kind, it.op}];
    slot.first += it.ms;
    slot.second += 1;
    total += it.ms;
  }
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [key, v] : by_op) {
    rows.emplace_back(v.first, str_cat(key.first, " ", key.second, " (", v.second, " items)"));
  }
  std::sort(rows.rbegin(), rows.rend());
  std::printf("profiled step: %.3f ms over %zu items\n", total, items.size());
  for (const auto& [ms, what] : rows) {
    std::printf("  %9.3f ms %5.1f%%  %s\n", ms, total > 0 ? 100 * ms / total : 0.0, what.c_str());
  }
  std::sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.ms > b.ms; });
  std::printf("slowest items:\n");
  for (size_t i = 0; i < items.size() && i < top; ++i) {
    std::printf("  %9.3f ms  %s\n", items[i].ms, items[i].label.c_str());
  }
}

// --page-cycles: `cycles` page-outs and page-ins of the trainer at a step boundary, each timed
// on the host (copy and wait; the first page-out apart: it paid the host buffer's pinning when
// that came with it, before the trainer pinned it at create()). The step after
// them must give the loss the same step gave from the same state without paging (the trainer
// is deterministic for one build and algorithm choice): a paging that lost or moved state
// fails here.
struct PagingTimes {
  uint64_t bytes = 0;
  double first_out_ms = 0;
  std::vector<double> out_ms, in_ms;  // cycles after the first (out) and every cycle (in)
};

Result<PagingTimes> time_paging(models::gpu::GpuTrainer& trainer, const cuda::Stream& stream,
                                int cycles) {
  using Clock = std::chrono::steady_clock;
  PagingTimes t;
  if (cycles <= 0) return t;
  auto ms_since = [](Clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
  };
  PS_ASSIGN_OR_RETURN(const models::cpu::TrainingState state, trainer.export_state());
  PS_ASSIGN_OR_RETURN(const double unpaged_loss, trainer.step(stream));
  PS_TRY(trainer.import_state(state));
  t.bytes = trainer.paged_bytes();
  for (int c = 0; c < cycles; ++c) {
    auto t0 = Clock::now();
    PS_TRY(trainer.page_out(stream));
    (c == 0 ? t.first_out_ms : t.out_ms.emplace_back()) = ms_since(t0);
    t0 = Clock::now();
    PS_TRY(trainer.page_in(stream));
    t.in_ms.push_back(ms_since(t0));
  }
  PS_ASSIGN_OR_RETURN(const double paged_loss, trainer.step(stream));
  if (paged_loss != unpaged_loss) {
    return internal_error("--page-cycles: the step after paging gave loss ", paged_loss,
                          ", the same step without paging ", unpaged_loss);
  }
  return t;
}

}  // namespace

void print_train_help(std::FILE* out) {
  std::fprintf(
      out,
      "usage: psbench train PACKAGE.psm [--precision fp32|tf32] [--steps N] [--runs N]\n"
      "                     [--lr X] [--momentum X] [--weight-decay X] [--classes N]\n"
      "                     [--noise X] [--seed N] [--single-image] [--chunk-ms X]\n"
      "                     [--pool SIZE] [--write-batches FILE] [--json] [--debug]\n"
      "                     [--dump-gradients FILE] [--profile-top N] [--page-cycles N]\n"
      "                     [--device N]\n"
      "\n"
      "Builds a GpuTrainer for the training-mode package (psimport --mode training) on a device\n"
      "pool, runs --steps steps from the package's weights printing each loss (the trajectory),\n"
      "then --runs more steps timed: GPU time (events around the step's chunks) and wall time\n"
      "(enqueue to completion), median/p10/p90 in ms. Also prints the chunks and device bytes.\n"
      "\n"
      "options:\n"
      "  --precision P       fp32 (strict) or tf32 (default)\n"
      "  --steps N           trajectory steps whose losses are printed (default 20)\n"
      "  --runs N            timed steps after them (default 20; 0: the trajectory only)\n"
      "  --lr X --momentum X --weight-decay X   SGD (default 0.01, 0.9, 1e-4)\n"
      "  --classes N --noise X --seed N --single-image   the synthetic data (default 10 or\n"
      "                      the model's outputs when fewer, 0.5, 1; for token models noise is\n"
      "                      the probability a token is replaced)\n"
      "  --chunk-ms X        chunk budget (default 1.0; steps are timed whole either way)\n"
      "  --pool SIZE         device pool size (default: what the trainer needs + 2 GiB, the\n"
      "                      most workspace a convolution's backward may take)\n"
      "  --write-batches F   write the trajectory's batches for scripts/torch_train.py\n"
      "                      --batches F (images: PSBATCH1; token ids: PSTOKEN1)\n"
      "  --json              one JSON object instead of the tables\n"
      "  --debug             run the first step item by item, synchronised, printing every\n"
      "                      output's largest magnitude to stderr; stops at the first NaN/Inf,\n"
      "                      naming the item, the output and its inputs\n"
      "  --profile-top N     print the step's profiled GPU time by kind and operator, and\n"
      "                      the N slowest items (the profile create() measured)\n"
      "  --dump-gradients F  write step 0's weight gradients (float32, by tensor name) to F\n"
      "                      for scripts/torch_train.py --grads F (PSGRAD1)\n"
      "  --page-cycles N     after the timed steps, N page-outs and page-ins of the trainer's\n"
      "                      state (what a training job pays when inference needs its pool\n"
      "                      memory): bytes moved, each way's time and GB/s (the first\n"
      "                      page-out reported apart); then one more step,\n"
      "                      whose loss must match an unpaged trainer's (checked)\n"
      "  --device N          GPU ordinal (default 0)\n");
}

Result<TrainBenchOptions> parse_train_options(const std::vector<std::string_view>& args,
                                              bool* help) {
  TrainBenchOptions o;
  o.trainer.sgd = {0.01, 0.9, 1e-4};
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
      PS_ASSIGN_OR_RETURN(o.trainer.precision, models::gpu::parse_precision(v));
    } else if (r.is("--steps") || r.is("--runs") || r.is("--classes") || r.is("--seed") ||
               r.is("--device") || r.is("--profile-top") || r.is("--page-cycles")) {
      const std::string name(r.name());
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(auto n, parse_int(name, v, name == "--classes" ? 1 : 0, 1'000'000'000));
      if (name == "--steps") o.trajectory = static_cast<int>(n);
      if (name == "--runs") o.runs = static_cast<int>(n);
      if (name == "--classes") {
        o.trainer.data.classes = n;
        o.classes_given = true;
      }
      if (name == "--seed") o.trainer.data.seed = static_cast<uint64_t>(n);
      if (name == "--device") o.device = static_cast<int>(n);
      if (name == "--profile-top") o.profile_top = static_cast<int>(n);
      if (name == "--page-cycles") o.page_cycles = static_cast<int>(n);
    } else if (r.is("--lr") || r.is("--momentum") || r.is("--weight-decay") || r.is("--noise") ||
               r.is("--chunk-ms")) {
      const std::string name(r.name());
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(const double x, parse_real(name, v));
      if (name == "--lr") o.trainer.sgd.learning_rate = x;
      if (name == "--momentum") o.trainer.sgd.momentum = x;
      if (name == "--weight-decay") o.trainer.sgd.weight_decay = x;
      if (name == "--noise") o.trainer.data.noise = x;
      if (name == "--chunk-ms") o.trainer.chunk_budget_ms = x;
    } else if (r.is("--single-image")) {
      o.trainer.data.single_image = true;
    } else if (r.is("--pool")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      PS_ASSIGN_OR_RETURN(o.pool_bytes, parse_size("--pool", v));
    } else if (r.is("--write-batches")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      o.batches_file = std::string(v);
    } else if (r.is("--json")) {
      o.json = true;
    } else if (r.is("--debug")) {
      o.debug = true;
    } else if (r.is("--dump-gradients")) {
      PS_ASSIGN_OR_RETURN(auto v, r.value());
      o.gradients_file = std::string(v);
    } else {
      return invalid_argument("unknown option '", r.name(), "'");
    }
  }
  if (o.package.empty()) return invalid_argument("no package given (psbench train MODEL.psm)");
  if (!o.gradients_file.empty() && o.trajectory == 0) {
    return invalid_argument(
        "--dump-gradients writes step 0's gradients: it needs --steps 1 or more");
  }
  return o;
}

Status run_train(const TrainBenchOptions& options) {
  using Clock = std::chrono::steady_clock;
  PS_ASSIGN_OR_RETURN(models::Package package, models::Package::open(options.package));
  const auto& manifest = package.manifest();
  TrainBenchOptions o = options;
  if (!o.classes_given && manifest.outputs_size() == 1) {
    const auto& out = manifest.tensors(static_cast<int>(manifest.outputs(0)));
    if (out.shape_size() == 2 && out.shape(1) >= 1 && out.shape(1) < o.trainer.data.classes) {
      o.trainer.data.classes = out.shape(1);
    }
  }
  std::vector<uint8_t> blob(package.weights_bytes());
  PS_TRY(package.read_weights(blob.data(), blob.size()));
  PS_ASSIGN_OR_RETURN(std::unique_ptr<models::gpu::GpuRuntime> runtime,
                      models::gpu::GpuRuntime::create(o.device));
  models::gpu::TrainLayoutOptions lo;
  lo.momentum = o.trainer.sgd.momentum != 0;
  lo.patterns = models::gpu::synthetic_pattern_count(o.trainer.data);
  lo.classes = o.trainer.data.classes;
  PS_ASSIGN_OR_RETURN(const models::gpu::TrainLayout layout,
                      models::gpu::plan_training(manifest, lo, &models::gpu::gpu_has_backward));
  const uint64_t pool_bytes =
      o.pool_bytes > 0 ? o.pool_bytes : layout.block_bytes + models::gpu::kConvGradWorkspaceCap;
  PS_ASSIGN_OR_RETURN(cuda::DevicePool pool,
                      cuda::DevicePool::create(runtime->device(), pool_bytes));
  const auto build_start = Clock::now();
  PS_ASSIGN_OR_RETURN(std::unique_ptr<models::gpu::GpuTrainer> trainer,
                      models::gpu::GpuTrainer::create(*runtime, pool, manifest, blob, o.trainer));
  const double build_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - build_start).count();
  runtime->release_plan_scratch();
  if (o.profile_top > 0) print_profile(*trainer, static_cast<size_t>(o.profile_top));
  if (!o.batches_file.empty()) {
    PS_TRY(layout.token_tensors.empty() ? write_batches(*runtime, o, layout, o.batches_file)
                                        : write_token_batches(o, manifest, layout, o.batches_file));
  }
  PS_ASSIGN_OR_RETURN(cuda::Stream stream, cuda::Stream::create(cuda::StreamPriority::kLow));

  std::vector<double> losses;
  for (int s = 0; s < o.trajectory; ++s) {
    auto trace = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
    const bool debug = o.debug && s == 0;
    PS_ASSIGN_OR_RETURN(const double loss,
                        debug ? trainer->debug_step(stream, trace) : trainer->step(stream));
    losses.push_back(loss);
    if (!o.json) std::printf("step %3d loss %.8f\n", s, loss);
    if (s == 0 && !o.gradients_file.empty()) {
      PS_TRY(write_gradients(*trainer, o.gradients_file).with_context("--dump-gradients"));
    }
  }
  PS_ASSIGN_OR_RETURN(cuda::Event start, cuda::Event::create(true));
  PS_ASSIGN_OR_RETURN(cuda::Event end, cuda::Event::create(true));
  std::vector<double> gpu_ms, wall_ms;
  for (int r = 0; r < o.runs; ++r) {
    const auto t0 = Clock::now();
    PS_TRY(start.record(stream));
    for (;;) {
      PS_ASSIGN_OR_RETURN(const bool last, trainer->enqueue_next_chunk(stream));
      if (last) break;
    }
    PS_TRY(end.record(stream));
    PS_TRY(end.synchronize());
    trainer->complete_step();
    wall_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    PS_ASSIGN_OR_RETURN(const float ms, cuda::Event::elapsed_ms(start, end));
    gpu_ms.push_back(ms);
  }
  PS_ASSIGN_OR_RETURN(const PagingTimes paging, time_paging(*trainer, stream, o.page_cycles));
  double profiled = 0, longest = 0;
  for (double ms : trainer->chunk_ms()) {
    profiled += ms;
    longest = std::max(longest, ms);
  }
  const std::string precision(models::gpu::precision_name(o.trainer.precision));
  auto mid = [](const std::vector<double>& v) { return v.empty() ? 0.0 : median(v); };
  auto q = [](std::vector<double> v, double p) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[static_cast<size_t>(p * static_cast<double>(v.size() - 1))];
  };
  const std::string paging_json =
      o.page_cycles == 0
          ? std::string()
          : str_cat("\"paging\": {\"bytes\": ", paging.bytes,
                    ", \"first_out_ms\": ", paging.first_out_ms,
                    ", \"out_ms\": ", mid(paging.out_ms), ", \"in_ms\": ", mid(paging.in_ms),
                    ", \"cycles\": ", o.page_cycles, "}, ");
  if (o.json) {
    std::string l;
    for (double x : losses) l += str_cat(l.empty() ? "" : ", ", x);
    std::printf(
        "{\"model\": \"%s\", \"engine\": \"psbench\", \"precision\": \"%s\", \"batch\": %lld, "
        "\"build_ms\": %.1f, \"device_bytes\": %llu, \"chunks\": %zu, \"chunk_budget_ms\": %g, "
        "\"longest_chunk_ms\": %.3f, \"profiled_step_ms\": %.3f, \"runs\": %d, "
        "\"gpu_ms\": {\"median\": %.3f, \"p10\": %.3f, \"p90\": %.3f}, "
        "\"wall_ms\": {\"median\": %.3f, \"p10\": %.3f, \"p90\": %.3f}, %s\"losses\": [%s]}\n",
        manifest.model_name().c_str(), precision.c_str(), static_cast<long long>(layout.batch),
        build_ms, static_cast<unsigned long long>(trainer->device_bytes()),
        trainer->chunks_per_step(), o.trainer.chunk_budget_ms, longest, profiled, o.runs,
        mid(gpu_ms), q(gpu_ms, 0.1), q(gpu_ms, 0.9), mid(wall_ms), q(wall_ms, 0.1), q(wall_ms, 0.9),
        paging_json.c_str(), l.c_str());
    return Status::OK();
  }
  std::printf(
      "\n%s batch %lld, %s: build %.0f ms, %s on the device, %zu chunks of <= %g ms "
      "(longest %.3f ms, profiled step %.2f ms)\n",
      manifest.model_name().c_str(), static_cast<long long>(layout.batch), precision.c_str(),
      build_ms, size_label(trainer->device_bytes()).c_str(), trainer->chunks_per_step(),
      o.trainer.chunk_budget_ms, longest, profiled);
  if (o.runs > 0) {
    std::printf(
        "step: GPU %.2f ms (p10 %.2f, p90 %.2f), wall %.2f ms (p10 %.2f, p90 %.2f) over %d steps\n",
        median(gpu_ms), q(gpu_ms, 0.1), q(gpu_ms, 0.9), median(wall_ms), q(wall_ms, 0.1),
        q(wall_ms, 0.9), o.runs);
  }
  if (o.page_cycles > 0) {
    auto gbps = [&](double ms) {
      return ms > 0 ? static_cast<double>(paging.bytes) / ms / 1e6 : 0;
    };
    std::printf("paging: %s each way; first page-out %.2f ms",
                size_label(paging.bytes).c_str(), paging.first_out_ms);
    if (!paging.out_ms.empty()) {
      std::printf(", page-out %.2f ms (%.1f GB/s)", mid(paging.out_ms), gbps(mid(paging.out_ms)));
    }
    std::printf(", page-in %.2f ms (%.1f GB/s), median of %d; the step after them matched\n",
                mid(paging.in_ms), gbps(mid(paging.in_ms)), o.page_cycles);
  }
  return Status::OK();
}

int train_main(const std::vector<std::string_view>& args) {
  return subcommand_main("train", args, parse_train_options, print_train_help,
                         [](const TrainBenchOptions& o) -> Result<int> {
                           PS_TRY(run_train(o));
                           return 0;
                         });
}

}  // namespace ps::psbench
