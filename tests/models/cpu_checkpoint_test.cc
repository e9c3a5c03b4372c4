// test_cpu_checkpoint: the CPU trainer's checkpoints (models/cpu/checkpoint.h): resuming gives
// the uninterrupted run's losses bit for bit; a failed save leaves the previous checkpoint
// valid; corrupt, truncated and foreign files are refused with a clear error.
#include <sys/stat.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <vector>

#include "models/cpu/checkpoint.h"
#include "models/cpu/trainer.h"
#include "tests/models/train_test_util.h"

namespace ps::models::cpu {
namespace {

using testing::lower_training;

namespace fs = std::filesystem;

TrainerOptions options() {
  TrainerOptions opt;
  opt.sgd = {0.05, 0.9, 1e-4};
  opt.data.seed = 8;
  return opt;
}

// With as many classes as the model outputs, at most 10 (BERT's classifier has 2).
std::unique_ptr<Trainer> make_trainer(const onnx_loader::LoweredModel& m) {
  TrainerOptions opt = options();
  const auto& out = m.manifest.tensors(static_cast<int>(m.manifest.outputs(0)));
  opt.data.classes = std::min<int64_t>(10, out.shape(1));
  Result<std::unique_ptr<Trainer>> t = Trainer::create(m.manifest, m.weights, opt);
  INFO(t.status().to_string());
  REQUIRE(t.ok());
  return std::move(t).value();
}

std::vector<double> run_steps(Trainer& t, int steps) {
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    Result<double> loss = t.step();
    INFO(loss.status().to_string());
    REQUIRE(loss.ok());
    losses.push_back(*loss);
  }
  return losses;
}

// A fresh directory under the system's temp directory, removed at the end of the scope.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string templ = (fs::temp_directory_path() / "ps_ckpt_XXXXXX").string();
    REQUIRE(::mkdtemp(templ.data()) != nullptr);
    path = templ;
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path, fs::perms::owner_all, ec);
    fs::remove_all(path, ec);
  }
};

std::vector<char> read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void write_file(const fs::path& p, const std::vector<char>& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST_CASE("stop, save, restore into a fresh trainer, continue: the same losses bit for bit",
          "[train]") {
  const std::string model = GENERATE("resnet_tiny", "bert_tiny");
  INFO(model);
  const onnx_loader::LoweredModel m = lower_training(model, 4);
  std::unique_ptr<Trainer> whole = make_trainer(m);
  const std::vector<double> expected = run_steps(*whole, 8);

  TempDir dir;
  const std::string path = (dir.path / "job.ckpt").string();
  std::unique_ptr<Trainer> first = make_trainer(m);
  const std::vector<double> head = run_steps(*first, 3);
  REQUIRE(save_checkpoint(*first, path).ok());
  CHECK_FALSE(fs::exists(path + ".tmp"));

  std::unique_ptr<Trainer> resumed = make_trainer(m);
  Status s = load_checkpoint(*resumed, path);
  INFO(s.to_string());
  REQUIRE(s.ok());
  CHECK(resumed->state().step == 3);
  CHECK(resumed->state().data_position == 3);
  CHECK(resumed->state().momentum.size() == first->state().momentum.size());
  const std::vector<double> tail = run_steps(*resumed, 5);
  for (size_t i = 0; i < 3; ++i) CHECK(std::memcmp(&head[i], &expected[i], sizeof(double)) == 0);
  for (size_t i = 0; i < 5; ++i) {
    INFO("step " << i + 3 << ": " << tail[i] << " vs " << expected[i + 3]);
    CHECK(std::memcmp(&tail[i], &expected[i + 3], sizeof(double)) == 0);
  }
  // Control: without its momentum buffers the resumed run leaves the trajectory at the first
  // update, so the comparison above would see a checkpoint that lost them.
  std::unique_ptr<Trainer> no_momentum = make_trainer(m);
  REQUIRE(load_checkpoint(*no_momentum, path).ok());
  no_momentum->mutable_state().momentum.clear();
  const std::vector<double> drift = run_steps(*no_momentum, 2);
  CHECK(drift[0] == expected[3]);
  CHECK(drift[1] != expected[4]);
  // The weights and running statistics end identical too.
  for (const auto& [index, w] : whole->state().weights) {
    const Tensor& r = resumed->state().weights.at(index);
    CHECK(std::memcmp(w.raw(), r.raw(), w.byte_size()) == 0);
  }
}

TEST_CASE("a failed save leaves the previous checkpoint valid", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("resnet_tiny", 2);
  TempDir dir;
  const std::string path = (dir.path / "job.ckpt").string();
  std::unique_ptr<Trainer> t = make_trainer(m);
  run_steps(*t, 2);
  REQUIRE(save_checkpoint(*t, path).ok());
  const std::vector<char> good = read_file(path);
  run_steps(*t, 1);

  // The temporary file cannot be created (a directory is in its way).
  fs::create_directory(path + ".tmp");
  Status s = save_checkpoint(*t, path);
  CHECK(s.code() == Code::kIo);
  CHECK_THAT(s.message(), Catch::Contains(path + ".tmp"));
  fs::remove(path + ".tmp");
  // A directory that does not exist.
  s = save_checkpoint(*t, (dir.path / "missing" / "job.ckpt").string());
  CHECK(s.code() == Code::kIo);
  // An unwritable directory (only when not root: root writes anyway).
  if (::geteuid() != 0) {
    fs::permissions(dir.path, fs::perms::owner_read | fs::perms::owner_exec);
    CHECK(save_checkpoint(*t, path).code() == Code::kIo);
    fs::permissions(dir.path, fs::perms::owner_all);
  }

  CHECK(read_file(path) == good);
  std::unique_ptr<Trainer> fresh = make_trainer(m);
  REQUIRE(load_checkpoint(*fresh, path).ok());
  CHECK(fresh->state().step == 2);
}

TEST_CASE("corrupt, truncated and foreign checkpoints are refused and change nothing", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("resnet_tiny", 2);
  TempDir dir;
  const std::string path = (dir.path / "job.ckpt").string();
  std::unique_ptr<Trainer> t = make_trainer(m);
  run_steps(*t, 1);
  REQUIRE(save_checkpoint(*t, path).ok());
  const std::vector<char> good = read_file(path);
  const fs::path bad = dir.path / "bad.ckpt";
  std::unique_ptr<Trainer> fresh = make_trainer(m);

  auto refused = [&](const std::vector<char>& bytes, Code code, const std::string& text) {
    write_file(bad, bytes);
    const Status s = load_checkpoint(*fresh, bad.string());
    INFO(s.to_string());
    CHECK(s.code() == code);
    CHECK_THAT(s.message(), Catch::Contains(text));
    CHECK(fresh->state().step == 0);
  };
  std::vector<char> flipped = good;
  flipped[flipped.size() / 2] ^= 0x10;
  refused(flipped, Code::kCorrupt, "checksum mismatch");
  refused(std::vector<char>(good.begin(), good.end() - 100), Code::kCorrupt, "truncated");
  refused(std::vector<char>(good.begin(), good.begin() + 20), Code::kCorrupt, "not a training");
  std::vector<char> magic = good;
  magic[0] = 'X';
  refused(magic, Code::kCorrupt, "not a training");
  refused({}, Code::kCorrupt, "not a training");
  CHECK(load_checkpoint(*fresh, (dir.path / "none").string()).code() == Code::kIo);

  // Another model's checkpoint: its tensors are not this model's.
  const onnx_loader::LoweredModel other = lower_training("inception_tiny", 2);
  Result<std::unique_ptr<Trainer>> inc = Trainer::create(other.manifest, other.weights, options());
  REQUIRE(inc.ok());
  const Status s = load_checkpoint(**inc, path);
  CHECK(s.code() == Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("not a float weight of this model"));
  REQUIRE(load_checkpoint(*fresh, path).ok());
  CHECK(fresh->state().step == 1);
}

}  // namespace
}  // namespace ps::models::cpu
