#include "reactor/cpu_backend.h"

#include <chrono>
#include <cstring>

#include "models/cpu/executor.h"
#include "models/cpu/tensor.h"
#include "reactor/synthetic_input.h"

namespace ps::reactor {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return us < 0 ? 0 : static_cast<uint64_t>(us);
}

}  // namespace

CpuBackend::CpuBackend(uint32_t threads, TrainingPolicy training)
    : threads_(threads < 1 ? 1 : threads), training_policy_(training) {}

CpuBackend::~CpuBackend() { shutdown(); }

std::string CpuBackend::describe() const {
  return str_cat("cpu (reference executor, ", threads_, " worker thread", threads_ == 1 ? "" : "s",
                 ", training ", training_policy_name(training_policy_), ")");
}

Status CpuBackend::start(CompletionSink* sink) {
  PS_CHECK(sink != nullptr && sink_ == nullptr);
  sink_ = sink;
  loader_ = std::thread([this] { loader_main(); });
  for (uint32_t i = 0; i < threads_; ++i) workers_.emplace_back([this] { worker_main(); });
  return Status::OK();
}

uint32_t CpuBackend::max_in_flight() const { return threads_; }

void CpuBackend::load(uint64_t ticket, ModelSource source) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      load_queue_.push_back(LoadJob{ticket, std::move(source)});
      load_ready_.notify_one();
      return;
    }
  }
  sink_->post(failed_completion(CompletionKind::kLoad, ticket,
                                unavailable("the backend is shutting down")));
}

void CpuBackend::unload(uint64_t ticket, std::string model) {
  Completion c;
  c.kind = CompletionKind::kUnload;
  c.ticket = ticket;
  {
    std::unique_lock lock(models_mutex_);
    if (models_.erase(model) == 0) c.status = not_found("no model '", model, "'");
  }
  // Workers that hold the model keep it alive through their shared_ptr until they finish.
  sink_->post(std::move(c));
}

void CpuBackend::infer(InferTask task) {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) {
      gate_.inference_arrived();  // training parks from its next layer on
      infer_queue_.push_back(std::move(task));
      work_ready_.notify_one();
      return;
    }
  }
  sink_->post(failed_completion(CompletionKind::kInfer, task.ticket,
                                make_error(Code::kCancelled, "the server is shutting down")));
}

Status CpuBackend::start_training(const TrainTask& task) {
  std::shared_ptr<const Model> model = find(task.model);
  if (!model) return not_found("no model '", task.model, "'");
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return unavailable("the backend is shutting down");
  }
  for (auto it = jobs_.begin(); it != jobs_.end();) {  // reap the ended ones
    it = it->second->ended() ? jobs_.erase(it) : std::next(it);
  }
  CpuTrainingConfig config;
  config.task = task;
  config.model = std::shared_ptr<const HostModel>(model, &model->host);
  config.source = model->source;
  config.native_batch = model->info.batch;
  config.gate = training_policy_ == TrainingPolicy::kYield ? &gate_ : nullptr;
  config.sink = sink_;
  jobs_.emplace(task.job, std::make_unique<CpuTrainingJob>(std::move(config)));
  return Status::OK();
}

CpuTrainingJob* CpuBackend::find_job(uint64_t job) {
  auto it = jobs_.find(job);
  return it == jobs_.end() ? nullptr : it->second.get();
}

Status CpuBackend::stop_training(uint64_t job) {
  CpuTrainingJob* found = find_job(job);
  if (found == nullptr) return not_found("no training job ", job);
  found->request_stop();  // nothing to do when it has ended
  return Status::OK();
}

Status CpuBackend::checkpoint_training(uint64_t job) {
  CpuTrainingJob* found = find_job(job);
  if (found == nullptr || found->ended()) return not_found("no running training job ", job);
  return found->request_checkpoint();
}

BackendStats CpuBackend::stats() const {
  BackendStats s;
  std::shared_lock lock(models_mutex_);
  for (const auto& [name, model] : models_) s.resident.push_back(name);
  return s;
}

void CpuBackend::shutdown() {
  std::deque<InferTask> cancelled;
  std::deque<LoadJob> cancelled_loads;
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
    stopping_ = true;
    cancelled.swap(infer_queue_);
    cancelled_loads.swap(load_queue_);
    work_ready_.notify_all();
    load_ready_.notify_all();
  }
  if (sink_ != nullptr) {
    for (InferTask& task : cancelled) {
      gate_.inference_finished();
      sink_->post(failed_completion(CompletionKind::kInfer, task.ticket,
                                    make_error(Code::kCancelled, "the server is shutting down")));
    }
    for (LoadJob& job : cancelled_loads) {
      sink_->post(failed_completion(CompletionKind::kLoad, job.ticket,
                                    make_error(Code::kCancelled, "the server is shutting down")));
    }
  }
  if (loader_.joinable()) loader_.join();
  for (std::thread& worker : workers_) worker.join();
  workers_.clear();
  // Jobs stop at their next step boundary and save their checkpoints; nothing parks any more.
  for (auto& [id, job] : jobs_) job->request_stop();
  gate_.release();
  jobs_.clear();  // joins
}

std::shared_ptr<const CpuBackend::Model> CpuBackend::find(const std::string& name) const {
  std::shared_lock lock(models_mutex_);
  auto it = models_.find(name);
  return it == models_.end() ? nullptr : it->second;
}

void CpuBackend::loader_main() {
  for (;;) {
    LoadJob job;
    {
      std::unique_lock lock(mutex_);
      load_ready_.wait(lock, [this] { return stopping_ || !load_queue_.empty(); });
      if (stopping_) return;
      job = std::move(load_queue_.front());
      load_queue_.pop_front();
    }
    const auto start = Clock::now();
    Completion c;
    c.kind = CompletionKind::kLoad;
    c.ticket = job.ticket;
    auto host = read_model(job.source);
    job.source.package_fd.reset();  // read (or refused): the file is not needed again
    const std::string label =
        job.source.zoo_model.empty() ? job.source.package_path : "zoo:" + job.source.zoo_model;
    if (!host.ok()) {
      c.status = host.status();
    } else {
      auto info = describe_model(job.source.name, label, host->manifest);
      if (!info.ok()) {
        c.status = info.status();
      } else {
        auto model = std::make_shared<Model>(Model{std::move(*host), *info, job.source});
        {
          std::unique_lock lock(models_mutex_);
          models_[job.source.name] = std::move(model);
        }
        c.model = std::move(*info);
      }
    }
    c.load_us = micros(Clock::now() - start);
    sink_->post(std::move(c));
  }
}

void CpuBackend::worker_main() {
  for (;;) {
    InferTask task;
    {
      std::unique_lock lock(mutex_);
      work_ready_.wait(lock, [this] { return stopping_ || !infer_queue_.empty(); });
      if (infer_queue_.empty()) return;  // stopping, nothing left
      task = std::move(infer_queue_.front());
      infer_queue_.pop_front();
    }
    Completion done = run_infer(task);
    gate_.inference_finished();
    sink_->post(std::move(done));
  }
}

Completion CpuBackend::run_infer(const InferTask& task) {
  const auto start = Clock::now();
  Completion c;
  c.kind = CompletionKind::kInfer;
  c.ticket = task.ticket;
  c.timings.queue_us = micros(start - task.accepted);
  std::shared_ptr<const Model> model = find(task.model);
  if (!model) {
    c.status = not_found("model '", task.model, "' was unloaded");
    return c;
  }
  const ModelInfo& info = model->info;
  const std::string synthetic = task.synthetic && batch_supported(info, task.batch)
                                    ? synthetic_input(info, task.batch)
                                    : std::string();
  const std::string& input = task.synthetic ? synthetic : task.input;
  c.status = check_infer_input(info, task.batch, input.size());
  if (!c.status.ok()) return c;
  const uint32_t chunks = task.batch / info.batch;
  // Bytes of each input and output per native batch.
  std::vector<uint64_t> in_bytes, out_bytes;
  for (const TensorSpec& s : info.inputs) in_bytes.push_back(s.bytes());
  for (const TensorSpec& s : info.outputs) out_bytes.push_back(s.bytes());
  std::vector<std::string> outputs(info.outputs.size());
  for (size_t o = 0; o < outputs.size(); ++o) outputs[o].reserve(out_bytes[o] * chunks);

  for (uint32_t chunk = 0; chunk < chunks; ++chunk) {
    std::vector<models::cpu::Tensor> tensors;
    std::map<std::string, const models::cpu::Tensor*> inputs;
    tensors.reserve(info.inputs.size());
    uint64_t offset = 0;
    for (size_t i = 0; i < info.inputs.size(); ++i) {
      const TensorSpec& spec = info.inputs[i];
      // Input i at batch B starts after inputs 0..i-1 at batch B; chunk k is its k-th slice.
      auto t = models::cpu::Tensor::allocate(spec.dtype, spec.shape);
      if (!t.ok()) {
        c.status = t.status();
        return c;
      }
      std::memcpy(t->mutable_raw(), input.data() + offset + chunk * in_bytes[i], in_bytes[i]);
      offset += in_bytes[i] * chunks;
      tensors.push_back(std::move(*t));
    }
    for (size_t i = 0; i < info.inputs.size(); ++i)
      inputs.emplace(info.inputs[i].name, &tensors[i]);
    auto result = models::cpu::run_model(model->host.manifest, model->host.weights, inputs);
    if (!result.ok()) {
      c.status = result.status().with_context(str_cat("model '", info.name, "'"));
      return c;
    }
    for (size_t o = 0; o < info.outputs.size(); ++o) {
      auto it = result->find(info.outputs[o].name);
      if (it == result->end() || it->second.byte_size() != out_bytes[o]) {
        c.status = internal_error("model '", info.name, "': output '", info.outputs[o].name,
                                  "' missing or of the wrong size");
        return c;
      }
      outputs[o].append(static_cast<const char*>(it->second.raw()), out_bytes[o]);
    }
  }
  for (std::string& o : outputs) c.output += o;
  c.outputs = specs_at_batch(info.outputs, info.batch, task.batch);
  c.timings.compute_us = micros(Clock::now() - start);
  return c;
}

}  // namespace ps::reactor
