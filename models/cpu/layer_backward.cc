#include "models/cpu/layer_backward.h"

#include <optional>
#include <span>
#include <string>

#include "models/cpu/op_context.h"

namespace ps::models::cpu {

namespace {

using Grads = std::vector<std::pair<size_t, Tensor>>;

Status need_inputs(const LayerValues& v, size_t count) {
  if (v.inputs.size() < count) {
    return invalid_argument("needs ", count, " inputs, has ", v.inputs.size());
  }
  return Status::OK();
}

// Ops whose backward is dY with the input's shape (views and copies).
bool is_view(const std::string& op) {
  return op == "Flatten" || op == "Reshape" || op == "Identity" || op == "Squeeze" ||
         op == "Unsqueeze";
}

bool is_unary(const std::string& op) {
  return op == "Erf" || op == "Tanh" || op == "Sqrt" || op == "Gelu" || op == "Neg" ||
         op == "Exp" || op == "Cast";
}

// ReduceMean's axes when they come as the second input (opset 18), else empty.
Result<std::span<const int64_t>> axes_input(const LayerValues& v) {
  if (v.inputs.size() < 2) return std::span<const int64_t>();
  const Tensor& axes = *v.inputs[1];
  if (axes.dtype() != DType::kInt64) return invalid_argument("axes must be int64");
  return std::span<const int64_t>(axes.data<int64_t>(), static_cast<size_t>(axes.numel()));
}

}  // namespace

Result<Grads> layer_backward(const pipeswitch::psm::Layer& layer, const LayerValues& v,
                             const Tensor& dy) {
  const std::string& op = layer.op();
  const Attributes& attrs = layer.attributes();
  Grads out;
  if (op == "Conv") {
    PS_TRY(need_inputs(v, 2));
    const bool has_bias = v.inputs.size() > 2;
    PS_ASSIGN_OR_RETURN(ConvGrads g, conv_backward(attrs, *v.inputs[0], *v.inputs[1], has_bias, dy));
    out.emplace_back(0, std::move(g.dx));
    out.emplace_back(1, std::move(g.dw));
    if (has_bias) out.emplace_back(2, std::move(g.db));
  } else if (op == "BatchNormalization") {
    PS_TRY(need_inputs(v, 3));
    if (v.batch_norm == nullptr) return internal_error("no batch statistics saved");
    PS_ASSIGN_OR_RETURN(BatchNormGrads g,
                        batch_norm_backward(*v.inputs[0], *v.inputs[1], *v.batch_norm, dy));
    out.emplace_back(0, std::move(g.dx));
    out.emplace_back(1, std::move(g.dscale));
    out.emplace_back(2, std::move(g.dbias));
  } else if (op == "Relu") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, relu_backward(*v.inputs[0], dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "MaxPool" || op == "AveragePool") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, op == "MaxPool" ? max_pool_backward(attrs, *v.inputs[0], dy)
                                                  : average_pool_backward(attrs, *v.inputs[0], dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "GlobalAveragePool") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, global_average_pool_backward(*v.inputs[0], dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "Add") {
    PS_TRY(need_inputs(v, 2));
    for (size_t k = 0; k < 2; ++k) {
      PS_ASSIGN_OR_RETURN(Tensor g, reduce_to_shape(dy, v.inputs[k]->shape()));
      out.emplace_back(k, std::move(g));
    }
  } else if (op == "Sub" || op == "Mul" || op == "Div" || op == "Pow") {
    PS_TRY(need_inputs(v, 2));
    PS_ASSIGN_OR_RETURN(BinaryGrads g, binary_backward(op, *v.inputs[0], *v.inputs[1], dy));
    out.emplace_back(0, std::move(g.da));
    out.emplace_back(1, std::move(g.db));
  } else if (is_view(op)) {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, reshape_backward(v.inputs[0]->shape(), dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "Expand") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, expand_backward(v.inputs[0]->shape(), dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "Transpose") {
    PS_ASSIGN_OR_RETURN(Tensor g, transpose_backward(attrs, dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "HeadSlice") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, head_slice_backward(attrs, v.inputs[0]->shape(), dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "AttentionScores") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, attention_scores_backward(attrs, *v.inputs[0], dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "AttentionContext") {
    PS_TRY(need_inputs(v, 2));
    PS_ASSIGN_OR_RETURN(AttentionContextGrads g,
                        attention_context_backward(attrs, *v.inputs[0], *v.inputs[1], dy));
    out.emplace_back(0, std::move(g.dp));
    out.emplace_back(1, std::move(g.dx));
  } else if (is_unary(op)) {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(Tensor g, unary_backward(op, *v.inputs[0], dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "Gemm") {
    PS_TRY(need_inputs(v, 2));
    const bool has_c = v.inputs.size() > 2;
    const Shape c_shape = has_c ? v.inputs[2]->shape() : Shape{};
    PS_ASSIGN_OR_RETURN(GemmGrads g, gemm_backward(attrs, *v.inputs[0], *v.inputs[1],
                                                   has_c ? &c_shape : nullptr, dy));
    out.emplace_back(0, std::move(g.da));
    out.emplace_back(1, std::move(g.db));
    if (has_c) out.emplace_back(2, std::move(g.dc));
  } else if (op == "MatMul") {
    PS_TRY(need_inputs(v, 2));
    PS_ASSIGN_OR_RETURN(MatMulGrads g, matmul_backward(*v.inputs[0], *v.inputs[1], dy));
    out.emplace_back(0, std::move(g.da));
    out.emplace_back(1, std::move(g.db));
  } else if (op == "MatMulScale") {
    PS_TRY(need_inputs(v, 2));
    PS_ASSIGN_OR_RETURN(const float alpha, OpContext(op, attrs, {}, {}).attr_float("alpha", 1.0f));
    PS_ASSIGN_OR_RETURN(MatMulGrads g,
                        matmul_scale_backward(*v.inputs[0], *v.inputs[1], dy, alpha));
    out.emplace_back(0, std::move(g.da));
    out.emplace_back(1, std::move(g.db));
  } else if (op == "MatMulTransB") {
    PS_TRY(need_inputs(v, 2));
    PS_ASSIGN_OR_RETURN(MatMulGrads g, matmul_trans_b_backward(*v.inputs[0], *v.inputs[1], dy));
    out.emplace_back(0, std::move(g.da));
    out.emplace_back(1, std::move(g.db));
    if (v.inputs.size() > 2) {  // the linear layer's bias (fuse_linear_bias), broadcast over rows
      PS_ASSIGN_OR_RETURN(Tensor dbias, reduce_to_shape(dy, v.inputs[2]->shape()));
      out.emplace_back(2, std::move(dbias));
    }
  } else if (op == "Concat") {
    std::vector<Shape> shapes;
    for (const Tensor* a : v.inputs) shapes.push_back(a->shape());
    PS_ASSIGN_OR_RETURN(std::vector<Tensor> g, concat_backward(attrs, shapes, dy));
    for (size_t k = 0; k < g.size(); ++k) out.emplace_back(k, std::move(g[k]));
  } else if (op == "Softmax" || op == "AddSoftmax") {
    if (v.output == nullptr) return internal_error("the forward output is not kept");
    PS_ASSIGN_OR_RETURN(Tensor g, softmax_backward(attrs, *v.output, dy));
    std::optional<Tensor> dm;
    if (op == "AddSoftmax") {  // Y = Softmax(X + M): dX the sum's gradient, dM it summed to M
      PS_TRY(need_inputs(v, 2));
      PS_ASSIGN_OR_RETURN(dm, reduce_to_shape(g, v.inputs[1]->shape()));
    }
    out.emplace_back(0, std::move(g));
    if (dm) out.emplace_back(1, std::move(*dm));
  } else if (op == "LayerNormalization") {
    PS_TRY(need_inputs(v, 2));
    const bool has_bias = v.inputs.size() > 2;
    const Shape bias_shape = has_bias ? v.inputs[2]->shape() : Shape{};
    PS_ASSIGN_OR_RETURN(LayerNormGrads g,
                        layer_norm_backward(attrs, *v.inputs[0], *v.inputs[1],
                                            has_bias ? &bias_shape : nullptr, dy));
    out.emplace_back(0, std::move(g.dx));
    out.emplace_back(1, std::move(g.dscale));
    if (has_bias) out.emplace_back(2, std::move(g.dbias));
  } else if (op == "Gather") {
    PS_TRY(need_inputs(v, 2));
    PS_ASSIGN_OR_RETURN(Tensor g, gather_backward(attrs, v.inputs[0]->shape(), *v.inputs[1], dy));
    out.emplace_back(0, std::move(g));
  } else if (op == "ReduceMean") {
    PS_TRY(need_inputs(v, 1));
    PS_ASSIGN_OR_RETURN(std::span<const int64_t> axes, axes_input(v));
    PS_ASSIGN_OR_RETURN(Tensor g, reduce_mean_backward(attrs, axes, v.inputs[0]->shape(), dy));
    out.emplace_back(0, std::move(g));
  } else {
    return unsupported("no backward operator");
  }
  return out;
}

}  // namespace ps::models::cpu
