// torchvision Inception3 (eval mode: no AuxLogits branch, transform_input=False) as PyTorch's
// exporter writes it with BatchNormalization kept.
#include <cmath>
#include <string>

#include "models/zoo/builders.h"

namespace ps::zoo {
namespace {

constexpr float kBnEps = 1e-3f;      // BasicConv2d: nn.BatchNorm2d(out, eps=0.001)
constexpr float kBnMomentum = 0.9f;  // ONNX momentum = 1 - PyTorch's momentum 0.1

struct Conv {
  int out, kh, kw, sh = 1, sw = 1, ph = 0, pw = 0;
};
Conv k1(int out) { return {out, 1, 1}; }
Conv k3(int out, int stride = 1, int pad = 0) { return {out, 3, 3, stride, stride, pad, pad}; }

class Builder {
 public:
  Builder(const InceptionConfig& config, GraphBuilder& b) : config_(config), b_(b) {}

  // Channels after the tiny configurations' divisor.
  int ch(int channels) const { return channels / config_.divisor; }

  // BasicConv2d: Conv (no bias) + BatchNorm(eps 0.001) + F.relu, the ReLU in the block's scope.
  // Weights: truncated normal with He's stddev sqrt(2 / fan_in), cut at 2 stddevs (see
  // docs/zoo.md: torchvision's flat trunc_normal(0.1) grows activations ~2x per layer).
  std::string basic_conv(std::string_view attr, const std::string& x, int in, Conv c) {
    auto scope = b_.module(attr);
    std::string y;
    {
      auto conv = b_.module("conv");
      const double stddev = std::sqrt(2.0 / (in * c.kh * c.kw));
      std::string w = b_.param("weight", {c.out, in, c.kh, c.kw}, Init::truncated_normal(stddev, 2.0));
      y = b_.op("Conv", {x, w},
                {attr_ints("dilations", {1, 1}), attr_int("group", 1), attr_ints("kernel_shape", {c.kh, c.kw}),
                 attr_ints("pads", {c.ph, c.pw, c.ph, c.pw}), attr_ints("strides", {c.sh, c.sw})});
    }
    {
      auto bn = b_.module("bn");
      std::string gamma = b_.param("weight", {c.out}, Init::constant(1.0));
      std::string beta = b_.param("bias", {c.out}, Init::constant(0.0));
      std::string mean = b_.buffer("running_mean", {c.out}, Init::normal(0.0, 0.1));
      std::string var = b_.buffer("running_var", {c.out}, Init::uniform(0.5, 1.5));
      y = b_.op("BatchNormalization", {y, gamma, beta, mean, var},
                {attr_float("epsilon", kBnEps), attr_float("momentum", kBnMomentum)});
    }
    return b_.op("Relu", {y});
  }

  std::string max_pool(const std::string& x) {
    return b_.op("MaxPool", {x},
                 {attr_int("ceil_mode", 0), attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {0, 0, 0, 0}),
                  attr_ints("strides", {2, 2})});
  }

  // F.avg_pool2d(x, 3, stride=1, padding=1): count_include_pad=True by default, so the padded
  // zeros count in every window (opset >= 11 exporters write one AveragePool, no Pad).
  std::string avg_pool(const std::string& x) {
    return b_.op("AveragePool", {x},
                 {attr_int("ceil_mode", 0), attr_int("count_include_pad", 1), attr_ints("kernel_shape", {3, 3}),
                  attr_ints("pads", {1, 1, 1, 1}), attr_ints("strides", {1, 1})});
  }

  std::string concat(std::vector<std::string> parts) { return b_.op("Concat", std::move(parts), {attr_int("axis", 1)}); }

  // Each block returns its output and sets `channels` to its output channel count.
  std::string inception_a(const std::string& x, int& channels, int pool_features) {
    const int in = channels;
    std::string b1 = basic_conv("branch1x1", x, in, k1(ch(64)));
    std::string b5 = basic_conv("branch5x5_1", x, in, k1(ch(48)));
    b5 = basic_conv("branch5x5_2", b5, ch(48), {ch(64), 5, 5, 1, 1, 2, 2});
    std::string b3 = basic_conv("branch3x3dbl_1", x, in, k1(ch(64)));
    b3 = basic_conv("branch3x3dbl_2", b3, ch(64), k3(ch(96), 1, 1));
    b3 = basic_conv("branch3x3dbl_3", b3, ch(96), k3(ch(96), 1, 1));
    std::string bp = avg_pool(x);
    bp = basic_conv("branch_pool", bp, in, k1(ch(pool_features)));
    channels = ch(64) + ch(64) + ch(96) + ch(pool_features);
    return concat({b1, b5, b3, bp});
  }

  std::string inception_b(const std::string& x, int& channels) {
    const int in = channels;
    std::string b3 = basic_conv("branch3x3", x, in, k3(ch(384), 2));
    std::string bd = basic_conv("branch3x3dbl_1", x, in, k1(ch(64)));
    bd = basic_conv("branch3x3dbl_2", bd, ch(64), k3(ch(96), 1, 1));
    bd = basic_conv("branch3x3dbl_3", bd, ch(96), k3(ch(96), 2));
    std::string bp = max_pool(x);
    channels = ch(384) + ch(96) + in;
    return concat({b3, bd, bp});
  }

  std::string inception_c(const std::string& x, int& channels, int channels_7x7) {
    const int in = channels;
    const int c7 = ch(channels_7x7);
    const Conv k1x7{c7, 1, 7, 1, 1, 0, 3};
    const Conv k7x1{c7, 7, 1, 1, 1, 3, 0};
    std::string b1 = basic_conv("branch1x1", x, in, k1(ch(192)));
    std::string b7 = basic_conv("branch7x7_1", x, in, k1(c7));
    b7 = basic_conv("branch7x7_2", b7, c7, k1x7);
    b7 = basic_conv("branch7x7_3", b7, c7, {ch(192), 7, 1, 1, 1, 3, 0});
    std::string bd = basic_conv("branch7x7dbl_1", x, in, k1(c7));
    bd = basic_conv("branch7x7dbl_2", bd, c7, k7x1);
    bd = basic_conv("branch7x7dbl_3", bd, c7, k1x7);
    bd = basic_conv("branch7x7dbl_4", bd, c7, k7x1);
    bd = basic_conv("branch7x7dbl_5", bd, c7, {ch(192), 1, 7, 1, 1, 0, 3});
    std::string bp = avg_pool(x);
    bp = basic_conv("branch_pool", bp, in, k1(ch(192)));
    channels = 4 * ch(192);
    return concat({b1, b7, bd, bp});
  }

  std::string inception_d(const std::string& x, int& channels) {
    const int in = channels;
    std::string b3 = basic_conv("branch3x3_1", x, in, k1(ch(192)));
    b3 = basic_conv("branch3x3_2", b3, ch(192), k3(ch(320), 2));
    std::string b7 = basic_conv("branch7x7x3_1", x, in, k1(ch(192)));
    b7 = basic_conv("branch7x7x3_2", b7, ch(192), {ch(192), 1, 7, 1, 1, 0, 3});
    b7 = basic_conv("branch7x7x3_3", b7, ch(192), {ch(192), 7, 1, 1, 1, 3, 0});
    b7 = basic_conv("branch7x7x3_4", b7, ch(192), k3(ch(192), 2));
    std::string bp = max_pool(x);
    channels = ch(320) + ch(192) + in;
    return concat({b3, b7, bp});
  }

  std::string inception_e(const std::string& x, int& channels) {
    const int in = channels;
    const Conv k1x3{ch(384), 1, 3, 1, 1, 0, 1};
    const Conv k3x1{ch(384), 3, 1, 1, 1, 1, 0};
    std::string b1 = basic_conv("branch1x1", x, in, k1(ch(320)));
    std::string b3 = basic_conv("branch3x3_1", x, in, k1(ch(384)));
    std::string b3a = basic_conv("branch3x3_2a", b3, ch(384), k1x3);
    std::string b3b = basic_conv("branch3x3_2b", b3, ch(384), k3x1);
    b3 = concat({b3a, b3b});
    std::string bd = basic_conv("branch3x3dbl_1", x, in, k1(ch(448)));
    bd = basic_conv("branch3x3dbl_2", bd, ch(448), k3(ch(384), 1, 1));
    std::string bda = basic_conv("branch3x3dbl_3a", bd, ch(384), k1x3);
    std::string bdb = basic_conv("branch3x3dbl_3b", bd, ch(384), k3x1);
    bd = concat({bda, bdb});
    std::string bp = avg_pool(x);
    bp = basic_conv("branch_pool", bp, in, k1(ch(192)));
    channels = ch(320) + 2 * ch(384) + 2 * ch(384) + ch(192);
    return concat({b1, b3, bd, bp});
  }

  void build() {
    const int s = config_.image_size;
    b_.add_input("input", onnx::TensorProto::FLOAT, {"batch", 3, s, s});
    std::string x = "input";
    x = basic_conv("Conv2d_1a_3x3", x, 3, k3(ch(32), 2));
    x = basic_conv("Conv2d_2a_3x3", x, ch(32), k3(ch(32)));
    x = basic_conv("Conv2d_2b_3x3", x, ch(32), k3(ch(64), 1, 1));
    {
      auto scope = b_.module("maxpool1");
      x = max_pool(x);
    }
    x = basic_conv("Conv2d_3b_1x1", x, ch(64), k1(ch(80)));
    x = basic_conv("Conv2d_4a_3x3", x, ch(80), k3(ch(192)));
    {
      auto scope = b_.module("maxpool2");
      x = max_pool(x);
    }
    int channels = ch(192);
    for (const InceptionConfig::Block& block : config_.blocks) {
      auto scope = b_.module(block.name);
      switch (block.kind) {
        case InceptionConfig::Kind::kA: x = inception_a(x, channels, block.option); break;
        case InceptionConfig::Kind::kB: x = inception_b(x, channels); break;
        case InceptionConfig::Kind::kC: x = inception_c(x, channels, block.option); break;
        case InceptionConfig::Kind::kD: x = inception_d(x, channels); break;
        case InceptionConfig::Kind::kE: x = inception_e(x, channels); break;
      }
    }
    {
      auto scope = b_.module("avgpool");
      x = b_.op("GlobalAveragePool", {x});
    }
    // Dropout is the identity in eval mode and the exporter writes nothing for it.
    x = b_.op("Flatten", {x}, {attr_int("axis", 1)});
    {
      // nn.Linear default init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
      auto scope = b_.module("fc");
      const double bound = 1.0 / std::sqrt(static_cast<double>(channels));
      std::string w = b_.param("weight", {config_.num_classes, channels}, Init::uniform(-bound, bound));
      std::string bias = b_.param("bias", {config_.num_classes}, Init::uniform(-bound, bound));
      x = b_.op("Gemm", {x, w, bias}, {attr_float("alpha", 1.0f), attr_float("beta", 1.0f), attr_int("transB", 1)});
    }
    b_.rename_value(x, "logits");
    b_.add_output("logits", onnx::TensorProto::FLOAT, {"batch", config_.num_classes});
  }

 private:
  const InceptionConfig& config_;
  GraphBuilder& b_;
};

}  // namespace

InceptionConfig inception_v3_config() {
  using K = InceptionConfig::Kind;
  InceptionConfig c;
  c.blocks = {{"Mixed_5b", K::kA, 32},  {"Mixed_5c", K::kA, 64},  {"Mixed_5d", K::kA, 64},
              {"Mixed_6a", K::kB, 0},   {"Mixed_6b", K::kC, 128}, {"Mixed_6c", K::kC, 160},
              {"Mixed_6d", K::kC, 160}, {"Mixed_6e", K::kC, 192}, {"Mixed_7a", K::kD, 0},
              {"Mixed_7b", K::kE, 0},   {"Mixed_7c", K::kE, 0}};
  return c;
}

void build_inception(const InceptionConfig& config, GraphBuilder& b) { Builder(config, b).build(); }

}  // namespace ps::zoo
