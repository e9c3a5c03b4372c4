// The Backend interface: what the scheduler (reactor/scheduler.h) hands work to. One backend
// drives one device: the CPU reference executor (reactor/cpu_backend.h) or a GPU (issue 6);
// reactor/multi_backend.h is a backend over several of them (one per device, issue 10).
//
// Threads. Every member function is called on the loop thread only. Submission (load, unload,
// infer) returns at once: blocking work (reading a package, building a zoo model, computing)
// runs on the backend's own threads or on the GPU. Each submission is answered by exactly one
// Completion, delivered through the CompletionSink given to start(), which any thread may call;
// the sink wakes the loop (uv_async_send) and the scheduler receives the completion on the loop
// thread. Two ways to deliver:
//   - sink->post(completion): the sink queues it (a locked queue) and wakes the loop. The CPU
//     backend's workers do this.
//   - sink->wake() from any thread (a CUDA host function, through cuda::CompletionQueue's
//     notifier), and the backend builds the completions itself in drain(), which the loop calls
//     after every wake-up. This keeps allocation out of the driver's callback thread.
//
// Models. The backend registers models from a ModelSource (a .psm package or a zoo model built
// in-process) and reports each as a ModelInfo in the load's Completion; the scheduler keeps the
// table of registered models from those completions, so the backend is never asked for it.
// A model has a native batch (the batch its plan was built for; the first dimension of every
// input and output); a request may ask for any multiple of it (batch_supported), which the
// backend runs as consecutive native batches.
//
// Inputs and outputs on the wire are the model's tensors concatenated in ModelInfo order, each
// raw, little-endian, batch-major (input_bytes() gives the size for a batch).
//
// Training (issue 7) goes through start_training/stop_training/checkpoint_training; a backend
// without training returns an UNSUPPORTED error from start_training that says so.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/dtype.h"
#include "common/shape.h"
#include "common/status.h"
#include "common/unique_fd.h"

namespace ps::reactor {

// The largest batch a request may ask for (the text protocol's batch=N range).
inline constexpr uint32_t kMaxBatch = 4096;

struct TensorSpec {
  std::string name;
  DType dtype = DType::kUndefined;
  Shape shape;  // at the model's native batch (or, in a Completion, at the request's batch)
  // Integer inputs: valid values lie in [0, value_bound) (a Gather's table size), 0 = unknown.
  // Synthetic inputs respect it.
  int64_t value_bound = 0;

  // Bytes of the whole tensor at its shape.
  uint64_t bytes() const;
};

struct ModelInfo {
  std::string name;
  uint32_t batch = 1;  // native batch: dim 0 of every input and output
  std::vector<TensorSpec> inputs;
  std::vector<TensorSpec> outputs;
  uint64_t weights_bytes = 0;
  uint64_t parameters = 0;  // elements of the trainable weights
  std::string source;       // "zoo:resnet_tiny" or the package path
  bool training = false;    // a training package (inference works too; TRAIN needs it)
  // The GPU backend's copy groups for a switch: how they were chosen ("optimal", "blocks",
  // "timed:blocks": the grouping --grouping timed kept) and how many. Empty and 0 elsewhere.
  std::string grouping;
  uint32_t groups = 0;
};

// Whether `batch` may be requested of `model`: a multiple of its native batch in
// [1, kMaxBatch]. When not, *why (if given) says so.
bool batch_supported(const ModelInfo& model, uint64_t batch, std::string* why = nullptr);

// The specs scaled to `batch` (dim 0 = batch). Precondition: batch_supported(model, batch).
std::vector<TensorSpec> specs_at_batch(const std::vector<TensorSpec>& specs, uint32_t native,
                                       uint32_t batch);

// Payload bytes of all inputs at `batch`. Precondition: batch_supported(model, batch).
uint64_t input_bytes(const ModelInfo& model, uint32_t batch);

// What every backend checks before running a request of `batch` with `input_size` bytes of
// input (the sent or the synthetic one): a supported batch and input_bytes() bytes.
// INVALID_ARGUMENT saying which.
Status check_infer_input(const ModelInfo& model, uint32_t batch, uint64_t input_size);

// Where a model comes from. Exactly one of package_path and zoo_model is set.
struct ModelSource {
  std::string name;          // the name it is registered under
  std::string package_path;  // a .psm file: opened by this path unless package_fd is set
  // The package already open, when the server's LOAD opened it confined to the models directory
  // (common/beneath_open.h): it is read from this descriptor, and package_path only names it in
  // messages. Shared, so a source stays copyable (one load fans out to every device); the last
  // copy closes it. Who keeps a source after the load drops it (the file is not needed again).
  std::shared_ptr<const UniqueFd> package_fd;
  std::string zoo_model;   // a zoo model (models/zoo/zoo.h) built and imported in-process
  uint32_t zoo_batch = 1;  // zoo only: the dims fixed at import
  uint32_t zoo_seq = 16;
};

struct InferTask {
  uint64_t ticket = 0;
  std::string model;
  uint32_t batch = 1;  // batch_supported() was checked
  // The inputs (input_bytes(model, batch) bytes), or empty with synthetic = true: the backend
  // makes reactor/synthetic_input.h's input for (model, batch) itself, off the loop thread.
  std::string input;
  bool synthetic = false;
  // False when the client wants only the output's checksum and sum: a backend may then skip
  // copying the output into Completion::output and fill Completion::summary instead.
  bool want_output = true;
  // When the scheduler accepted the request: queue_us runs from here to the start of the work.
  std::chrono::steady_clock::time_point accepted;
};

// How a training job trains (TRAIN's options; docs/training.md). The data is the seeded
// synthetic dataset of models/cpu/synthetic_data.h (images) or synthetic_tokens.h (token ids).
struct TrainOptions {
  double learning_rate = 0.01;
  double momentum = 0.9;
  double weight_decay = 1e-4;
  uint64_t seed = 1;
  // Labels in [0, classes); at most the model's output width. 0: 10, or the output width
  // when it is smaller (reactor/train_options.h).
  uint32_t classes = 0;
  // Images: per-sample noise relative to the class patterns; tokens: the probability that a
  // token is replaced by a random one (models/cpu/synthetic_tokens.h).
  double noise = 0.5;
  bool single_image = false;  // the paper's setting: one repeated image, label 0
  // Checkpoints (models/cpu/checkpoint.h). checkpoint_path: where this job saves (every
  // checkpoint_every steps when > 0, on CHECKPOINT, and when it stops or the server shuts
  // down); empty: the job never saves. resume_path: a checkpoint to start from; empty: the
  // package's weights.
  uint64_t checkpoint_every = 0;
  std::string checkpoint_path;
  std::string resume_path;
};

struct TrainTask {
  uint64_t job = 0;
  std::string model;
  uint32_t batch = 1;
  uint64_t steps = 0;  // steps to run in this job; 0: until stopped
  TrainOptions options;
  // The device to train on (TRAIN device=NAME), as DeviceStats::name names it; empty: the
  // backend chooses. Only a backend over several devices (reactor/multi_backend.h) reads it.
  std::string device;
};

// How training shares the device with inference (--training). kYield: a job parks between
// two layers while inference is pending and resumes by itself (the default; issue 7's
// preemption). kCoRun: it keeps running beside inference at a lower priority.
enum class TrainingPolicy : uint8_t { kYield, kCoRun };
std::string_view training_policy_name(TrainingPolicy policy);  // "yield" | "co-run"
Result<TrainingPolicy> parse_training_policy(std::string_view text);

// A training job's progress, as each kTraining completion reports it.
struct TrainingProgress {
  uint64_t step = 0;          // the model's step counter (a resumed job continues its checkpoint's)
  uint64_t steps = 0;         // steps this job ran
  double loss = 0.0;          // the last step's loss
  double images_per_s = 0.0;  // since the job started (inference's share of the time included)
  // Preemption: times the job parked for inference, how long after the inference arrived it
  // parked (median, p99, max over the job), and the time it spent parked in all.
  uint64_t preemptions = 0;
  uint64_t preempt_p50_us = 0;
  uint64_t preempt_p99_us = 0;
  uint64_t preempt_max_us = 0;
  uint64_t parked_us = 0;
  // Paging (GPU): times the job's state left the pool for host memory because inference needed
  // the room, whether it is out now, and the time it spent out in all.
  uint64_t page_outs = 0;
  bool paged = false;
  uint64_t paged_us = 0;
  // The last checkpoint written (its step; path empty: none yet); checkpoint_saved says this
  // completion reports one just written.
  uint64_t checkpoint_step = 0;
  std::string checkpoint_path;
  bool checkpoint_saved = false;
};

// Microseconds of one request, measured by the backend. total = queue_us + compute_us.
struct Timings {
  uint64_t queue_us = 0;  // accepted -> work started (waiting for the device)
  // Making the model resident: the weight copies (on the GPU they overlap the layers, so this
  // is part of compute_us, not added to it). 0 when the model was resident.
  uint64_t switch_us = 0;
  uint64_t compute_us = 0;  // work started -> outputs ready (switch included)
  // accepted -> the model's first layer starts running (queueing, input copy, and the wait
  // for the first weight group); the paper's "startup overhead". 0 when not measured.
  uint64_t startup_us = 0;
};

enum class CompletionKind : uint8_t {
  kInfer,     // an InferTask finished (status says whether it worked)
  kLoad,      // load() finished: model is set on success
  kUnload,    // unload() finished
  kTraining,  // a training job progressed (steps) or ended (finished = true)
};

struct Completion {
  CompletionKind kind = CompletionKind::kInfer;
  uint64_t ticket = 0;  // the task's ticket; for kTraining the job id
  Status status;
  // kInfer:
  Timings timings;
  std::vector<TensorSpec> outputs;  // at the request's batch, in ModelInfo order
  std::string output;               // the outputs' bytes, concatenated (see want_output)
  // The output's checksum and sum (reactor/output_summary.h) when the backend computed them
  // itself (summarized = true; then `output` may be empty unless the task wanted it).
  bool summarized = false;
  uint64_t checksum = 0;
  double sum = 0.0;
  // kLoad:
  std::optional<ModelInfo> model;
  uint64_t load_us = 0;
  // kTraining (ticket = the job id):
  TrainingProgress training;
  bool finished = false;  // the job ended (status: OK finished or stopped, or why it failed)
};

// A completion of `kind` for `ticket` that carries only `status` (an error).
Completion failed_completion(CompletionKind kind, uint64_t ticket, Status status);

// The loop's side of the completion bridge; see the top of this file. Thread-safe.
class CompletionSink {
 public:
  virtual ~CompletionSink() = default;
  // Any thread. Queues `completion` for the loop thread and wakes the loop.
  virtual void post(Completion completion) = 0;
  // Any thread, allocation-free. Wakes the loop, which then calls Backend::drain().
  virtual void wake() = 0;
};

// One device of a backend over several (reactor/multi_backend.h), for STATS and /metrics.
struct DeviceStats {
  std::string name;            // "0", "1", ... (GPU ordinals) or "cpu0", ... (simulated devices)
  std::string description;     // its backend's describe()
  bool healthy = true;         // false after a device error took it out of service
  uint64_t requests = 0;       // inference tasks it was given
  uint64_t errors = 0;         // of which failed
  uint32_t in_flight = 0;      // now
  std::vector<uint64_t> jobs;  // training jobs pinned to it and still running, by id
  uint64_t switches = 0;
  uint64_t parallel_switches = 0;  // of which borrowed other GPUs' links
  uint64_t region_hits = 0;
  uint64_t request_captures = 0;
  uint64_t pool_bytes = 0;
  uint64_t pool_used_bytes = 0;
  std::vector<std::string> resident;
};

// Device-wide numbers for STATS and /metrics. Over several devices the fields are sums (and
// `resident` the union, sorted) and `devices` has one entry per device; one device: empty.
struct BackendStats {
  uint64_t switches = 0;    // times a model was made resident
  uint64_t parallel_switches = 0;  // of which borrowed other GPUs' links (docs/multi-gpu.md)
  // Requests that found their model's weights still in the switch region (pipeswitch, after a
  // request of the same model with nothing switched in between): run without a switch.
  uint64_t region_hits = 0;
  // CUDA graphs captured while serving a request (each costs that request a few ms; registration
  // captures the ones a model's requests replay, so in a steady state this stays put): a
  // cache-policy model's first request as resident, the first request at batch 1 after a
  // larger batch grew the model's staging buffers.
  uint64_t request_captures = 0;
  // The model whose weights the switch region holds now (its next request is a region hit);
  // empty: none, or a backend without a reused switch region. One device only.
  std::string in_switch_region;
  uint64_t pool_bytes = 0;  // device memory pool size (0: no pool, e.g. the CPU)
  uint64_t pool_used_bytes = 0;
  std::vector<std::string> resident;  // models resident now
  std::vector<DeviceStats> devices;
};

class Backend {
 public:
  virtual ~Backend() = default;

  // One line for the start-up banner and STATS: "cpu (reference executor, 2 worker threads)".
  virtual std::string describe() const = 0;

  // Starts the backend's threads. `sink` outlives the backend's use of it (until shutdown()
  // returns). Called once, first. Errors: no device, a bad policy, ...
  virtual Status start(CompletionSink* sink) = 0;

  // How many infer tasks may be submitted and not yet completed at once; the scheduler keeps
  // the rest in its per-model queues (so its queueing and fairness decide the order).
  virtual uint32_t max_in_flight() const = 0;

  // Registers source.name. Completes with kLoad and the ModelInfo, or an error (NOT_FOUND,
  // CORRUPT, UNSUPPORTED, OUT_OF_MEMORY, ...). Precondition: the scheduler has no model of that
  // name registered or loading.
  virtual void load(uint64_t ticket, ModelSource source) = 0;

  // Unregisters `model`. Precondition: it is registered and no task of it is in flight (the
  // scheduler drains them first). Completes with kUnload.
  virtual void unload(uint64_t ticket, std::string model) = 0;

  // Runs one inference. Preconditions: the model is registered, task.batch is supported, and
  // task.input has input_bytes() bytes unless synthetic. Completes with kInfer.
  virtual void infer(InferTask task) = 0;

  // Starts a training job on a registered model; progress and the end come as kTraining
  // completions with ticket = job. Returns an error at once if it cannot start (UNSUPPORTED on a
  // backend without training).
  virtual Status start_training(const TrainTask& task) = 0;
  // Asks a running job to stop (keeping its state); its kTraining completion with finished =
  // true follows. Errors: NOT_FOUND for an unknown job.
  virtual Status stop_training(uint64_t job) = 0;
  // Asks a running job to save a checkpoint at its next step boundary; a kTraining completion
  // with training.checkpoint_saved follows (or the job's end). Errors: NOT_FOUND for an
  // unknown or ended job, FAILED_PRECONDITION for a job without a checkpoint path.
  virtual Status checkpoint_training(uint64_t job) = 0;

  // Called on the loop thread after every wake-up of the sink: appends completions the backend
  // built itself (see the top of this file). The default has none.
  virtual void drain(std::vector<Completion>* out) { (void)out; }

  virtual BackendStats stats() const = 0;

  // Stops: tasks not yet started complete with CANCELLED, running ones finish, threads are
  // joined. Blocks until then; no completion is posted after it returns. Idempotent.
  virtual void shutdown() = 0;
};

}  // namespace ps::reactor
