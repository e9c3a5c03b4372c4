// torchvision ResNet as PyTorch's exporter writes it with BatchNormalization kept (an eval
// export with do_constant_folding=False, or a training-amenable one).
#include <cmath>
#include <string>

#include "models/zoo/builders.h"

namespace ps::zoo {
namespace {

constexpr float kBnEps = 1e-5f;
constexpr float kBnMomentum = 0.9f;  // ONNX momentum = 1 - PyTorch's momentum 0.1

// A value of the graph with the expected second moment E[x^2] of its elements for an input
// image of unit variance. BatchNorm's running statistics are drawn around it, so that BatchNorm
// normalises as it does in a trained network (see docs/zoo.md, "Initialisation").
struct Act {
  std::string name;
  double m2;
};

// nn.Conv2d(in, out, k, stride, padding, bias=False) in the current scope, initialised as
// torchvision's ResNet: kaiming_normal_(mode="fan_out", nonlinearity="relu"), i.e.
// N(0, 2 / (out * k * k)). The output's second moment is fan_in * Var(w) * E[x^2].
Act conv_here(GraphBuilder& b, const Act& x, int in, int out, int k, int stride, int pad) {
  const double variance = 2.0 / (out * k * k);
  std::string w = b.param("weight", {out, in, k, k}, Init::normal(0.0, std::sqrt(variance)));
  std::string y = b.op("Conv", {x.name, w},
                       {attr_ints("dilations", {1, 1}), attr_int("group", 1), attr_ints("kernel_shape", {k, k}),
                        attr_ints("pads", {pad, pad, pad, pad}), attr_ints("strides", {stride, stride})});
  return {y, in * k * k * variance * x.m2};
}

Act conv(GraphBuilder& b, std::string_view attr, const Act& x, int in, int out, int k, int stride, int pad) {
  auto scope = b.module(attr);
  return conv_here(b, x, in, out, k, stride, pad);
}

// nn.BatchNorm2d(c) in the current scope: gamma 1, beta 0 as torchvision, and running
// statistics that are not trivial, so that folding BatchNorm into the convolution is really
// exercised, yet normalise: var ~ E[x^2] * U(0.5, 1.5), mean ~ N(0, 0.1 * sqrt(E[x^2])).
Act batch_norm_here(GraphBuilder& b, const Act& x, int c) {
  const double scale = std::sqrt(x.m2);
  std::string gamma = b.param("weight", {c}, Init::constant(1.0));
  std::string beta = b.param("bias", {c}, Init::constant(0.0));
  std::string mean = b.buffer("running_mean", {c}, Init::normal(0.0, 0.1 * scale));
  std::string var = b.buffer("running_var", {c}, Init::uniform(0.5 * x.m2, 1.5 * x.m2));
  std::string y = b.op("BatchNormalization", {x.name, gamma, beta, mean, var},
                       {attr_float("epsilon", kBnEps), attr_float("momentum", kBnMomentum)});
  return {y, 1.0};
}

Act batch_norm(GraphBuilder& b, std::string_view attr, const Act& x, int c) {
  auto scope = b.module(attr);
  return batch_norm_here(b, x, c);
}

// ReLU keeps `kept` of the second moment: half for a zero-mean value, more when its channel
// means are not zero, as after a convolution of ReLU outputs (measured: ~0.6; ~0.85 on the
// residual stream, a sum of non-negative shortcuts and a branch).
Act relu(GraphBuilder& b, const Act& x, double kept = 0.6) {
  auto scope = b.module("relu");
  return {b.op("Relu", {x.name}), x.m2 * kept};
}

// torchvision BasicBlock / Bottleneck, in the order forward() calls its modules.
Act block(GraphBuilder& b, const ResNetConfig& config, const Act& x, int inplanes, int planes, int stride) {
  const int expansion = config.bottleneck ? 4 : 1;
  Act out;
  if (config.bottleneck) {
    out = conv(b, "conv1", x, inplanes, planes, 1, 1, 0);
    out = batch_norm(b, "bn1", out, planes);
    out = relu(b, out);
    out = conv(b, "conv2", out, planes, planes, 3, stride, 1);
    out = batch_norm(b, "bn2", out, planes);
    out = relu(b, out);
    out = conv(b, "conv3", out, planes, planes * expansion, 1, 1, 0);
    out = batch_norm(b, "bn3", out, planes * expansion);
  } else {
    out = conv(b, "conv1", x, inplanes, planes, 3, stride, 1);
    out = batch_norm(b, "bn1", out, planes);
    out = relu(b, out);
    out = conv(b, "conv2", out, planes, planes, 3, 1, 1);
    out = batch_norm(b, "bn2", out, planes);
  }
  Act identity = x;
  if (stride != 1 || inplanes != planes * expansion) {
    auto downsample = b.module("downsample");
    {
      // conv1x1 and BatchNorm2d are the Sequential's items themselves: scopes "downsample.0/1".
      auto item = b.sequential_item(0);
      identity = conv_here(b, x, inplanes, planes * expansion, 1, stride, 0);
    }
    auto item = b.sequential_item(1);
    identity = batch_norm_here(b, identity, planes * expansion);
  }
  // The branch and the shortcut are close to independent: their second moments add.
  out = {b.op("Add", {out.name, identity.name}), out.m2 + identity.m2};
  return relu(b, out, 0.85);
}

}  // namespace

void build_resnet(const ResNetConfig& config, GraphBuilder& b) {
  const int s = config.image_size;
  b.add_input("input", onnx::TensorProto::FLOAT, {"batch", 3, s, s});

  Act x{"input", 1.0};
  x = conv(b, "conv1", x, 3, config.width, 7, 2, 3);
  x = batch_norm(b, "bn1", x, config.width);
  x = relu(b, x);
  {
    auto scope = b.module("maxpool");
    x.name = b.op("MaxPool", {x.name},
                  {attr_int("ceil_mode", 0), attr_ints("kernel_shape", {3, 3}), attr_ints("pads", {1, 1, 1, 1}),
                   attr_ints("strides", {2, 2})});
    // The largest of 9 neighbours of a ReLU'd unit normal: E[x^2] grows from 0.5 to about 2.
    x.m2 *= 4;
  }

  const int expansion = config.bottleneck ? 4 : 1;
  int inplanes = config.width;
  for (int stage = 0; stage < 4; ++stage) {
    const int planes = config.width << stage;
    auto layer = b.module("layer" + std::to_string(stage + 1));
    for (int i = 0; i < config.blocks[stage]; ++i) {
      auto item = b.sequential_item(i);
      const int stride = (stage > 0 && i == 0) ? 2 : 1;
      x = block(b, config, x, inplanes, planes, stride);
      inplanes = planes * expansion;
    }
  }

  std::string y;
  {
    auto scope = b.module("avgpool");
    y = b.op("GlobalAveragePool", {x.name});
  }
  y = b.op("Flatten", {y}, {attr_int("axis", 1)});
  {
    // nn.Linear default init: weight and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    auto scope = b.module("fc");
    const double bound = 1.0 / std::sqrt(static_cast<double>(inplanes));
    std::string w = b.param("weight", {config.num_classes, inplanes}, Init::uniform(-bound, bound));
    std::string bias = b.param("bias", {config.num_classes}, Init::uniform(-bound, bound));
    y = b.op("Gemm", {y, w, bias}, {attr_float("alpha", 1.0f), attr_float("beta", 1.0f), attr_int("transB", 1)});
  }
  b.rename_value(y, "logits");
  b.add_output("logits", onnx::TensorProto::FLOAT, {"batch", config.num_classes});
}

}  // namespace ps::zoo
