// test_cpu_train: SGD's update rule, the synthetic dataset, and the CPU trainer on the
// training-mode tiny zoo models (lowered in process as `psimport --mode training` does).
#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <map>
#include <numeric>
#include <vector>

#include "models/cpu/sgd.h"
#include "models/cpu/synthetic_data.h"
#include "models/cpu/synthetic_tokens.h"
#include "models/cpu/trainer.h"
#include "tests/models/cpu_ops_test_util.h"
#include "tests/models/train_test_util.h"
#include "tests/models/zoo_lowering.h"

namespace ps::models::cpu {
namespace {

using testing::lower_training;

TEST_CASE("SGD follows torch.optim.SGD (momentum, weight decay, first step)", "[train]") {
  const SgdOptions opt{0.1, 0.9, 0.01};
  Tensor p = test::make<double>({2}, {1.0, -2.0});
  Tensor buf;
  Tensor g1 = test::make<double>({2}, {0.5, 0.25});
  REQUIRE(sgd_update(opt, p, g1, buf).ok());
  // Step 1: d_p = g + wd * p; buf = d_p; p -= lr * buf.
  const double d0 = 0.5 + 0.01 * 1.0, d1 = 0.25 + 0.01 * -2.0;
  CHECK(buf.data<double>()[0] == d0);
  CHECK(p.data<double>()[0] == 1.0 - 0.1 * d0);
  CHECK(p.data<double>()[1] == -2.0 - 0.1 * d1);
  // Step 2: buf = momentum * buf + d_p.
  const double p0 = p.data<double>()[0];
  Tensor g2 = test::make<double>({2}, {-1.0, 0.0});
  REQUIRE(sgd_update(opt, p, g2, buf).ok());
  const double e0 = -1.0 + 0.01 * p0;
  const double b0 = 0.9 * d0 + e0;
  CHECK(buf.data<double>()[0] == b0);
  CHECK(p.data<double>()[0] == p0 - 0.1 * b0);
  // Momentum 0: plain SGD, no buffer.
  Tensor q = test::make<double>({1}, {3.0});
  Tensor none;
  REQUIRE(sgd_update({0.5, 0.0, 0.0}, q, test::make<double>({1}, {2.0}), none).ok());
  CHECK(q.data<double>()[0] == 2.0);
  CHECK(none.dtype() == DType::kUndefined);
  CHECK_FALSE(sgd_update(opt, q, test::make<double>({2}, {1, 1}), none).ok());
  CHECK_FALSE(sgd_update({-1, 0, 0}, q, test::make<double>({1}, {1}), none).ok());
}

TEST_CASE("the synthetic dataset is seeded, class-patterned, and has the single-image mode",
          "[train]") {
  SyntheticDataOptions opt;
  opt.seed = 4;
  opt.classes = 3;
  opt.noise = 0.0;
  Result<SyntheticData> d = SyntheticData::create(opt, {2, 3});
  REQUIRE(d.ok());
  Tensor a, b;
  std::vector<int64_t> la, lb;
  REQUIRE(d->batch(5, 16, &a, &la).ok());
  REQUIRE(d->batch(5, 16, &b, &lb).ok());
  CHECK(la == lb);
  CHECK(std::memcmp(a.raw(), b.raw(), a.byte_size()) == 0);
  REQUIRE(d->batch(6, 16, &b, &lb).ok());
  CHECK(la != lb);
  // Without noise, samples of one class are identical and different classes differ.
  for (size_t i = 0; i < la.size(); ++i) {
    for (size_t j = 0; j < la.size(); ++j) {
      const bool same =
          std::memcmp(a.data<double>() + i * 6, a.data<double>() + j * 6, 6 * sizeof(double)) == 0;
      CHECK(same == (la[i] == la[j]));
    }
  }
  opt.single_image = true;
  Result<SyntheticData> one = SyntheticData::create(opt, {2, 3});
  REQUIRE(one.ok());
  REQUIRE(one->batch(9, 4, &a, &la).ok());
  CHECK(la == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(std::memcmp(a.data<double>(), a.data<double>() + 18, 6 * sizeof(double)) == 0);
  opt.classes = 0;
  CHECK_FALSE(SyntheticData::create(opt, {2, 3}).ok());
}

TEST_CASE("the synthetic token dataset is seeded, class-patterned, and has the single mode",
          "[train]") {
  SyntheticDataOptions opt;
  opt.seed = 4;
  opt.classes = 3;
  opt.noise = 0.0;
  const std::vector<TokenInput> inputs = {{{6}, 50}, {{6}, 2}};
  Result<SyntheticTokens> d = SyntheticTokens::create(opt, inputs);
  REQUIRE(d.ok());
  std::vector<Tensor> a, b;
  std::vector<int64_t> la, lb;
  REQUIRE(d->batch(5, 16, &a, &la).ok());
  REQUIRE(a.size() == 2);
  CHECK(a[0].shape() == Shape{16, 6});
  CHECK(a[0].dtype() == DType::kInt64);
  REQUIRE(d->batch(5, 16, &b, &lb).ok());
  CHECK(la == lb);
  CHECK(std::memcmp(a[0].raw(), b[0].raw(), a[0].byte_size()) == 0);
  CHECK(std::memcmp(a[1].raw(), b[1].raw(), a[1].byte_size()) == 0);
  REQUIRE(d->batch(6, 16, &b, &lb).ok());
  CHECK(la != lb);
  // Without noise, the ids of samples of one class are identical, different classes differ,
  // and every id is inside its input's vocabulary.
  const int64_t* ids = a[0].data<int64_t>();
  for (size_t i = 0; i < la.size(); ++i) {
    for (size_t j = 0; j < la.size(); ++j) {
      const bool same = std::memcmp(ids + i * 6, ids + j * 6, 6 * sizeof(int64_t)) == 0;
      CHECK(same == (la[i] == la[j]));
    }
  }
  for (int64_t k = 0; k < a[0].numel(); ++k) CHECK((ids[k] >= 0 && ids[k] < 50));
  for (int64_t k = 0; k < a[1].numel(); ++k) {
    CHECK((a[1].data<int64_t>()[k] == 0 || a[1].data<int64_t>()[k] == 1));
  }
  // With noise p, about a fraction p of the tokens differ from the class's sequence.
  opt.noise = 0.25;
  Result<SyntheticTokens> noisy = SyntheticTokens::create(opt, inputs);
  REQUIRE(noisy.ok());
  std::vector<Tensor> n;
  std::vector<int64_t> ln;
  REQUIRE(noisy->batch(5, 400, &n, &ln).ok());
  std::map<int64_t, const int64_t*> clean_of;  // one noiseless sample of each class
  for (size_t i = 0; i < la.size(); ++i) clean_of.emplace(la[i], ids + i * 6);
  REQUIRE(clean_of.size() == 3);
  int changed = 0;
  for (size_t i = 0; i < ln.size(); ++i) {
    for (int k = 0; k < 6; ++k) changed += n[0].data<int64_t>()[i * 6 + k] != clean_of[ln[i]][k];
  }
  const double fraction = changed / 2400.0;  // a replacement may draw the same id: 1 in 50
  CHECK(fraction > 0.20);
  CHECK(fraction < 0.30);
  // One sequence, label 0.
  opt.single_image = true;
  Result<SyntheticTokens> one = SyntheticTokens::create(opt, inputs);
  REQUIRE(one.ok());
  REQUIRE(one->batch(9, 4, &a, &la).ok());
  CHECK(la == std::vector<int64_t>{0, 0, 0, 0});
  CHECK(std::memcmp(a[0].data<int64_t>(), a[0].data<int64_t>() + 18, 6 * sizeof(int64_t)) == 0);
  // Refusals.
  opt.noise = 1.5;
  CHECK_FALSE(SyntheticTokens::create(opt, inputs).ok());
  opt.noise = 0.5;
  CHECK_FALSE(SyntheticTokens::create(opt, {{{6}, 0}}).ok());
  CHECK_FALSE(SyntheticTokens::create(opt, {}).ok());
  opt.classes = 0;
  CHECK_FALSE(SyntheticTokens::create(opt, inputs).ok());
}

TrainerOptions learnable_options() {
  TrainerOptions opt;
  opt.sgd = {0.05, 0.9, 1e-4};
  opt.data.seed = 3;
  opt.data.classes = 10;
  opt.data.noise = 0.5;
  return opt;
}

std::vector<double> train(const onnx_loader::LoweredModel& m, const TrainerOptions& opt,
                          int steps) {
  Result<std::unique_ptr<Trainer>> t = Trainer::create(m.manifest, m.weights, opt);
  INFO(t.status().to_string());
  REQUIRE(t.ok());
  std::vector<double> losses;
  for (int s = 0; s < steps; ++s) {
    Result<double> loss = (*t)->step();
    INFO(loss.status().to_string());
    REQUIRE(loss.ok());
    losses.push_back(*loss);
  }
  return losses;
}

double mean(const std::vector<double>& v, size_t first, size_t count) {
  return std::accumulate(v.begin() + static_cast<long>(first),
                         v.begin() + static_cast<long>(first + count), 0.0) /
         static_cast<double>(count);
}

// Prints the losses, then checks that the mean of the last `window` steps is below `ratio` times
// the mean of the first `window`, and below log(classes): the loss of the best prediction that
// ignores the input, so the classes were learnt from the data.
void check_loss_falls(const char* model, const std::vector<double>& losses, size_t window,
                      double ratio, int classes) {
  for (size_t i = 0; i < losses.size(); ++i) std::printf("step %zu loss %.6f\n", i, losses[i]);
  const size_t n = losses.size();
  const double first = mean(losses, 0, window), last = mean(losses, n - window, window);
  std::printf("%s: mean loss of steps 0-%zu %.4f, of steps %zu-%zu %.4f (ratio %.3f)\n", model,
              window - 1, first, n - window, n - 1, last, last / first);
  CHECK(std::isfinite(last));
  CHECK(last < ratio * first);
  CHECK(last < std::log(static_cast<double>(classes)));
}

// The whole model's backward (the trainer's wiring: reverse order, gradients summed where a
// tensor feeds several layers, residual Adds, Concat branches) against finite differences of
// the loss for a few elements of several trainable weights.
void check_model_gradients(const std::string& model, int opset = 17, int64_t classes = 10) {
  const onnx_loader::LoweredModel m = lower_training(model, 2, opset);
  TrainerOptions options = learnable_options();
  options.data.classes = classes;
  Result<std::unique_ptr<Trainer>> t = Trainer::create(m.manifest, m.weights, options);
  INFO(t.status().to_string());
  REQUIRE(t.ok());
  Trainer& trainer = **t;
  std::map<uint32_t, Tensor> grads;
  Result<double> loss = trainer.loss_and_gradients(0, false, &grads);
  INFO(loss.status().to_string());
  REQUIRE(loss.ok());
  std::vector<uint32_t> trainable;
  for (const auto& [index, w] : trainer.state().weights) {
    if (m.manifest.tensors(static_cast<int>(index)).trainable()) trainable.push_back(index);
  }
  CHECK(grads.size() == trainable.size());  // every parameter reaches the loss
  const double h = 1e-6;
  int checked = 0;
  for (size_t k = 0; k < trainable.size(); k += trainable.size() / 7) {
    const uint32_t index = trainable[k];
    INFO(model << " opset " << opset << " weight '"
               << m.manifest.tensors(static_cast<int>(index)).name() << "'");
    double* w = trainer.mutable_state().weights.at(index).mutable_data<double>();
    const Tensor& g = grads.at(index);
    for (int64_t e = 0; e < g.numel(); e += std::max<int64_t>(1, g.numel() / 3)) {
      std::map<uint32_t, Tensor> unused;
      const double saved = w[e];
      w[e] = saved + h;
      const double plus = trainer.loss_and_gradients(0, false, &unused).value();
      w[e] = saved - h;
      const double minus = trainer.loss_and_gradients(0, false, &unused).value();
      w[e] = saved;
      const double numeric = (plus - minus) / (2 * h);
      const double analytic = g.data<double>()[e];
      INFO("element " << e << ": numeric " << numeric << ", analytic " << analytic);
      CHECK(std::abs(numeric - analytic) < 1e-6 + 1e-4 * std::abs(analytic));
      ++checked;
    }
  }
  CHECK(checked >= 14);
}

TEST_CASE("whole-model gradients of resnet_tiny and inception_tiny match finite differences",
          "[train]") {
  check_model_gradients("resnet_tiny");
  check_model_gradients("inception_tiny");
}

// BERT's training graph (BertForSequenceClassification) on token ids: the embeddings (Gather),
// attention (MatMul, Softmax, Transpose, Reshape), LayerNorm (the op at opset 17, its
// ReduceMean/Sub/Pow/Sqrt/Div decomposition at opset 13), GELU (Erf), the pooler (Gather on
// axis 1, Gemm, Tanh) and the classifier.
TEST_CASE("whole-model gradients of bert_tiny's classifier match finite differences", "[train]") {
  check_model_gradients("bert_tiny", 17, 2);
  check_model_gradients("bert_tiny", 13, 2);
}

// bert_tiny's training package with every linear weight stored as PyTorch holds it, [out, in],
// and read through MatMulTransB (what fuse_matmul_transpose makes of a training-mode export):
// the manifest's MatMul(x, W [in, out]) layers rewritten, W's bytes transposed in the blob.
// The trainer must follow the MatMul package's trajectory: the same losses, and weights that
// are the transposes of each other after every step; so must the same package with the bias
// Adds taken into the MatMulTransB layers (fuse_linear_bias), its biases trained through them.
TEST_CASE("bert_tiny with MatMulTransB linear layers trains as its MatMul form does", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("bert_tiny", 2);
  pipeswitch::psm::Manifest manifest = m.manifest;
  std::vector<uint8_t> blob = m.weights;
  std::map<uint32_t, std::pair<int64_t, int64_t>> transposed;  // tensor -> [in, out] of MatMul
  for (auto& layer : *manifest.mutable_layers()) {
    if (layer.op() != "MatMul" || layer.inputs_size() != 2) continue;
    auto* w = manifest.mutable_tensors(static_cast<int>(layer.inputs(1)));
    if (w->kind() != pipeswitch::psm::Tensor::WEIGHT || !w->trainable() || w->shape_size() != 2) {
      continue;
    }
    REQUIRE(w->dtype() == pipeswitch::psm::DT_FLOAT32);
    const int64_t k = w->shape(0), n = w->shape(1);
    REQUIRE(transposed.emplace(layer.inputs(1), std::make_pair(k, n)).second);  // read once
    std::vector<float> wt(static_cast<size_t>(k * n));
    const uint8_t* at = blob.data() + w->weight_offset();
    for (int64_t p = 0; p < k; ++p) {
      for (int64_t j = 0; j < n; ++j) std::memcpy(&wt[j * k + p], at + (p * n + j) * 4, 4);
    }
    std::memcpy(blob.data() + w->weight_offset(), wt.data(), wt.size() * 4);
    w->set_shape(0, n);
    w->set_shape(1, k);
    layer.set_op("MatMulTransB");
  }
  CHECK(transposed.size() == 12);  // 2 layers x (query, key, value, output, intermediate, output)

  // And with each bias Add taken into its MatMulTransB (what fuse_linear_bias makes): the
  // MatMulTransB reads the bias as a third input, the Add becomes an Identity of its output.
  pipeswitch::psm::Manifest biased = manifest;
  std::map<uint32_t, int> producer;  // tensor -> MatMulTransB layer writing it
  for (int l = 0; l < biased.layers_size(); ++l) {
    if (biased.layers(l).op() == "MatMulTransB") producer[biased.layers(l).outputs(0)] = l;
  }
  int biases = 0;
  for (auto& layer : *biased.mutable_layers()) {
    if (layer.op() != "Add" || layer.inputs_size() != 2) continue;
    for (int side = 0; side < 2; ++side) {
      const auto it = producer.find(layer.inputs(side));
      const auto& bias = biased.tensors(static_cast<int>(layer.inputs(1 - side)));
      if (it == producer.end() || !bias.trainable() || bias.shape_size() != 1) continue;
      biased.mutable_layers(it->second)->add_inputs(layer.inputs(1 - side));
      const uint32_t product = layer.inputs(side);
      layer.set_op("Identity");
      layer.clear_inputs();
      layer.add_inputs(product);
      ++biases;
      break;
    }
  }
  CHECK(biases == 12);

  TrainerOptions opt = learnable_options();
  opt.data.classes = 2;
  opt.sgd.learning_rate = 0.02;
  Result<std::unique_ptr<Trainer>> plain = Trainer::create(m.manifest, m.weights, opt);
  Result<std::unique_ptr<Trainer>> fused = Trainer::create(manifest, blob, opt);
  Result<std::unique_ptr<Trainer>> with_bias = Trainer::create(biased, blob, opt);
  INFO(plain.status().to_string() << " / " << fused.status().to_string() << " / "
                                  << with_bias.status().to_string());
  REQUIRE(plain.ok());
  REQUIRE(fused.ok());
  REQUIRE(with_bias.ok());
  for (int step = 0; step < 3; ++step) {
    INFO("step " << step);
    const Result<double> a = (*plain)->step();
    const Result<double> b = (*fused)->step();
    const Result<double> c = (*with_bias)->step();
    INFO(b.status().to_string() << " / " << c.status().to_string());
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(c.ok());
    CHECK(std::abs(*a - *b) <= 1e-12 * std::abs(*a));
    CHECK(std::abs(*b - *c) <= 1e-12 * std::abs(*b));
    double bias_diff = 0;
    for (const auto& [index, wb] : (*fused)->state().weights) {
      const Tensor& wc = (*with_bias)->state().weights.at(index);
      for (int64_t e = 0; e < wb.numel(); ++e) {
        bias_diff = std::max(bias_diff, std::abs(wb.data<double>()[e] - wc.data<double>()[e]));
      }
    }
    CHECK(bias_diff <= 1e-12);
    double max_diff = 0, max_abs = 0;
    for (const auto& [index, wa] : (*plain)->state().weights) {
      const Tensor& wb = (*fused)->state().weights.at(index);
      REQUIRE(wa.numel() == wb.numel());
      const auto it = transposed.find(index);
      for (int64_t e = 0; e < wa.numel(); ++e) {
        int64_t f = e;  // wa [k, n] at (p, j) is wb [n, k] at (j, p)
        if (it != transposed.end()) {
          const auto [k, n] = it->second;
          f = (e % n) * k + e / n;
        }
        max_diff = std::max(max_diff, std::abs(wa.data<double>()[e] - wb.data<double>()[f]));
        max_abs = std::max(max_abs, std::abs(wa.data<double>()[e]));
      }
    }
    std::printf("bert_tiny MatMulTransB vs MatMul, step %d: loss %.9f, weights differ by %.3g\n",
                step, *b, max_diff);
    CHECK(max_diff <= 1e-12 * max_abs);
  }
}

TEST_CASE("resnet_tiny's loss falls over 20 steps on the learnable data", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("resnet_tiny", 8);
  // Below log(10), the best a prediction that ignores the image can do: the patterns are learnt.
  check_loss_falls("resnet_tiny", train(m, learnable_options(), 20), 3, 0.7, 10);
}

// SGD at lr 0.02 with momentum 0.9 (at 0.05, resnet_tiny's rate, BERT diverges); the tokens
// of a class's sequences are replaced with probability 0.1. Single batches of 8 may still spike
// (a sample whose telling tokens were replaced), so the test compares means of several steps.
TEST_CASE("bert_tiny fine-tunes: the classifier's loss falls on the token data", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("bert_tiny", 8);
  TrainerOptions opt = learnable_options();
  opt.sgd.learning_rate = 0.02;
  opt.data.classes = 2;
  opt.data.noise = 0.1;
  // Below log(2), the best a prediction that ignores the tokens can do.
  check_loss_falls("bert_tiny", train(m, opt, 30), 5, 0.5, 2);
}

TEST_CASE("two runs from the same seed give bit-identical losses", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("resnet_tiny", 4);
  const std::vector<double> a = train(m, learnable_options(), 4);
  const std::vector<double> b = train(m, learnable_options(), 4);
  for (size_t i = 0; i < a.size(); ++i) CHECK(std::memcmp(&a[i], &b[i], sizeof(double)) == 0);
  TrainerOptions other = learnable_options();
  other.data.seed = 4;
  CHECK(train(m, other, 1)[0] != a[0]);
}

TEST_CASE("inception_tiny trains in the paper's setting: one image, label 0", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("inception_tiny", 2);
  TrainerOptions opt = learnable_options();
  opt.data.single_image = true;
  const std::vector<double> losses = train(m, opt, 3);
  std::printf("inception_tiny, one image, label 0: losses %.5f %.5f %.5f\n", losses[0], losses[1],
              losses[2]);
  CHECK(losses[2] < losses[0]);
}

TEST_CASE("the trainer refuses what it cannot train, naming it", "[train]") {
  const onnx_loader::LoweredModel m = lower_training("resnet_tiny", 2);
  TrainerOptions opt = learnable_options();
  opt.data.classes = 5000;
  Result<std::unique_ptr<Trainer>> t = Trainer::create(m.manifest, m.weights, opt);
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(t.status().message(), Catch::Contains("5000 classes"));
  pipeswitch::psm::Manifest bad = m.manifest;
  bad.mutable_layers(3)->set_op("Sigmoid");
  t = Trainer::create(bad, m.weights, learnable_options());
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(t.status().message(), Catch::Contains("layer 3 (Sigmoid"));
  // BERT's classifier has 2 outputs: the default 10 classes do not fit.
  const onnx_loader::LoweredModel bert = lower_training("bert_tiny", 2);
  t = Trainer::create(bert.manifest, bert.weights, learnable_options());
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(t.status().message(), Catch::Contains("10 classes, the model outputs 2"));
  // An integer input that indexes no embedding table: the trainer cannot tell its ids.
  pipeswitch::psm::Manifest no_table = bert.manifest;
  for (auto& layer : *no_table.mutable_layers()) {
    if (layer.op() == "Gather" && layer.inputs_size() > 1 &&
        no_table.tensors(static_cast<int>(layer.inputs(1))).kind() ==
            pipeswitch::psm::Tensor::INPUT) {
      layer.set_op("GatherElements");
    }
  }
  TrainerOptions two = learnable_options();
  two.data.classes = 2;
  t = Trainer::create(no_table, bert.weights, two);
  REQUIRE_FALSE(t.ok());
  CHECK_THAT(t.status().message(), Catch::Contains("cannot tell which token ids"));
  t = Trainer::create(m.manifest, std::span<const uint8_t>(m.weights.data(), 100),
                      learnable_options());
  CHECK_FALSE(t.ok());
}

// fuse_head_projections on attention in PyTorch's training-export form: the fused package (one
// MatMulTransB over the Concat'ed query/key/value weights, three HeadSlices; fuse_attention,
// which would take the HeadSlices into attention's products, skipped: the next case has it)
// must give every parameter, under its own name and shape, the gradient the three projections
// give it, and those gradients must be the loss's (finite differences).
TEST_CASE("fused query/key/value projections train as the three projections do", "[train]") {
  const onnx::ModelProto model = models::testing::attention_classifier_model();
  Result<onnx_loader::LoweredModel> fused =
      models::testing::lower_onnx_model(model, onnx_loader::Mode::kTraining, {"fuse_attention"});
  Result<onnx_loader::LoweredModel> three = models::testing::lower_onnx_model(
      model, onnx_loader::Mode::kTraining, {"fuse_head_projections"});
  INFO(fused.status().to_string() << " / " << three.status().to_string());
  REQUIRE(fused.ok());
  REQUIRE(three.ok());
  auto count = [](const pipeswitch::psm::Manifest& m, const std::string& op) {
    return std::count_if(m.layers().begin(), m.layers().end(),
                         [&](const auto& layer) { return layer.op() == op; });
  };
  CHECK(count(fused->manifest, "HeadSlice") == 3);
  CHECK(count(fused->manifest, "Concat") == 2);
  CHECK(count(fused->manifest, "MatMulTransB") == 1);
  CHECK(count(three->manifest, "HeadSlice") == 0);
  CHECK(count(three->manifest, "MatMulTransB") == 3);

  TrainerOptions options = learnable_options();
  options.data.classes = 16;
  // Gradients by parameter name, float64.
  auto gradients = [&](const onnx_loader::LoweredModel& m, Trainer** keep,
                       std::unique_ptr<Trainer>* owner) {
    Result<std::unique_ptr<Trainer>> t = Trainer::create(m.manifest, m.weights, options);
    INFO(t.status().to_string());
    REQUIRE(t.ok());
    std::map<uint32_t, Tensor> grads;
    Result<double> loss = (*t)->loss_and_gradients(0, false, &grads);
    REQUIRE(loss.ok());
    std::map<std::string, Tensor> named;
    for (auto& [index, g] : grads)
      named.emplace(m.manifest.tensors(static_cast<int>(index)).name(), std::move(g));
    *owner = std::move(*t);
    *keep = owner->get();
    return std::make_pair(*loss, std::move(named));
  };
  std::unique_ptr<Trainer> fused_owner, three_owner;
  Trainer* fused_trainer = nullptr;
  Trainer* three_trainer = nullptr;
  auto [fused_loss, fused_grads] = gradients(*fused, &fused_trainer, &fused_owner);
  auto [three_loss, three_grads] = gradients(*three, &three_trainer, &three_owner);
  CHECK(std::abs(fused_loss - three_loss) <= 1e-12 * std::abs(three_loss));
  REQUIRE(fused_grads.size() == 6);
  REQUIRE(three_grads.size() == 6);
  for (const auto& [name, g] : three_grads) {
    INFO(name);
    REQUIRE(fused_grads.count(name) == 1);
    const Tensor& f = fused_grads.at(name);
    REQUIRE(f.shape() == g.shape());
    double worst = 0, norm = 0;
    for (int64_t i = 0; i < g.numel(); ++i) {
      worst = std::max(worst, std::abs(f.data<double>()[i] - g.data<double>()[i]));
      norm = std::max(norm, std::abs(g.data<double>()[i]));
    }
    CHECK(norm > 0);
    CHECK(worst <= 1e-12 * norm);
  }
  // Finite differences of the fused trainer's loss for a few elements of each parameter.
  const double h = 1e-6;
  for (auto& [index, w] : fused_trainer->mutable_state().weights) {
    const std::string& name = fused->manifest.tensors(static_cast<int>(index)).name();
    if (fused_grads.count(name) == 0) continue;
    const Tensor& g = fused_grads.at(name);
    for (int64_t e = 1; e < w.numel(); e += w.numel() / 3) {
      double* p = w.mutable_data<double>();
      const double saved = p[e];
      std::map<uint32_t, Tensor> unused;
      p[e] = saved + h;
      const double plus = fused_trainer->loss_and_gradients(0, false, &unused).value();
      p[e] = saved - h;
      const double minus = fused_trainer->loss_and_gradients(0, false, &unused).value();
      p[e] = saved;
      const double numeric = (plus - minus) / (2 * h);
      INFO(name << " element " << e << ": numeric " << numeric << ", analytic "
                << g.data<double>()[e]);
      CHECK(std::abs(numeric - g.data<double>()[e]) < 1e-7 + 1e-4 * std::abs(numeric));
    }
  }
}

// fuse_attention on top of fuse_head_projections: AttentionScores and AttentionContext in
// place of the three HeadSlices, the scores' MatMul and the context's MatMul and Transpose.
// Their CPU forward and backward are those layers' composed, so the loss, every parameter's
// gradient and a few training steps must be the unfused package's to the bit.
TEST_CASE("attention's products reading the heads in place train as the unfused layers do",
          "[train]") {
  const onnx::ModelProto model = models::testing::attention_classifier_model();
  Result<onnx_loader::LoweredModel> in_place =
      models::testing::lower_onnx_model(model, onnx_loader::Mode::kTraining);
  Result<onnx_loader::LoweredModel> slices =
      models::testing::lower_onnx_model(model, onnx_loader::Mode::kTraining, {"fuse_attention"});
  INFO(in_place.status().to_string() << " / " << slices.status().to_string());
  REQUIRE(in_place.ok());
  REQUIRE(slices.ok());
  auto count = [](const pipeswitch::psm::Manifest& m, const std::string& op) {
    return std::count_if(m.layers().begin(), m.layers().end(),
                         [&](const auto& layer) { return layer.op() == op; });
  };
  CHECK(count(in_place->manifest, "AttentionScores") == 1);
  CHECK(count(in_place->manifest, "AttentionContext") == 1);
  CHECK(count(in_place->manifest, "HeadSlice") == 0);
  CHECK(count(in_place->manifest, "Transpose") == 0);
  CHECK(count(in_place->manifest, "MatMul") == 0);
  CHECK(count(in_place->manifest, "MatMulTransB") == 1);
  CHECK(count(in_place->manifest, "Div") == 1);  // sqrt(8) is no power of two: not an alpha
  CHECK(count(slices->manifest, "AttentionScores") == 0);
  CHECK(count(slices->manifest, "HeadSlice") == 3);
  CHECK(count(slices->manifest, "Transpose") == 1);
  CHECK(count(slices->manifest, "MatMul") == 2);
  for (const auto& layer : in_place->manifest.layers()) {
    if (layer.op() != "AttentionScores") continue;
    std::map<std::string, std::string> a;
    for (const auto& attr : layer.attributes()) {
      a[attr.name()] = attr.has_f() ? std::to_string(attr.f()) : std::to_string(attr.i());
    }
    CHECK(a == std::map<std::string, std::string>{{"alpha", std::to_string(1.0f)},
                                                  {"heads", "2"},
                                                  {"k_start", "16"},
                                                  {"q_start", "0"},
                                                  {"size", "16"}});
  }

  TrainerOptions options = learnable_options();
  options.data.classes = 16;
  auto bits_equal = [](const Tensor& a, const Tensor& b) {
    return a.shape() == b.shape() && std::memcmp(a.raw(), b.raw(), a.byte_size()) == 0;
  };
  // The loss and the gradients by parameter name.
  auto gradients = [&](const onnx_loader::LoweredModel& m) {
    Result<std::unique_ptr<Trainer>> t = Trainer::create(m.manifest, m.weights, options);
    INFO(t.status().to_string());
    REQUIRE(t.ok());
    std::map<uint32_t, Tensor> grads;
    Result<double> loss = (*t)->loss_and_gradients(0, false, &grads);
    INFO(loss.status().to_string());
    REQUIRE(loss.ok());
    std::map<std::string, Tensor> named;
    for (auto& [index, g] : grads)
      named.emplace(m.manifest.tensors(static_cast<int>(index)).name(), std::move(g));
    return std::make_pair(*loss, std::move(named));
  };
  const auto [in_place_loss, in_place_grads] = gradients(*in_place);
  const auto [slices_loss, slices_grads] = gradients(*slices);
  CHECK(std::memcmp(&in_place_loss, &slices_loss, sizeof(double)) == 0);
  REQUIRE(in_place_grads.size() == 6);
  REQUIRE(slices_grads.size() == 6);
  for (const auto& [name, g] : slices_grads) {
    INFO(name);
    REQUIRE(in_place_grads.count(name) == 1);
    CHECK(bits_equal(in_place_grads.at(name), g));
  }
  const std::vector<double> a = train(*in_place, options, 4);
  const std::vector<double> b = train(*slices, options, 4);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("step " << i << ": " << a[i] << " vs " << b[i]);
    CHECK(std::memcmp(&a[i], &b[i], sizeof(double)) == 0);
  }
}

}  // namespace
}  // namespace ps::models::cpu
