// What shape inference and the constant evaluator know about one node while they look at it,
// and the operator parameters both of them derive the same way (broadcasting, axes, slice
// bounds, split sizes, permutations). Internal to onnx_loader.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "onnx_loader/graph.h"

namespace ps::onnx_loader {

// One input of a node as shape inference sees it.
struct InputInfo {
  bool present = false;  // false for an omitted optional input
  std::string_view name;
  DType dtype = DType::kUndefined;
  Shape shape;
  const TensorData* constant = nullptr;  // its value, when known at import time
};

// The inferred type of one output.
struct OutputType {
  DType dtype = DType::kUndefined;
  Shape shape;
};

bool is_integer_dtype(DType dtype);  // int64/32/8, uint8

using ::ps::broadcast_shapes;  // common/shape.h

class OpContext {
 public:
  // `inputs` has one entry per node input (absent optional ones not present); `label` names
  // the node in errors ("node 12 'Reshape_5' (Reshape)"). All referenced objects must outlive
  // the context.
  OpContext(const Node& node, std::span<const InputInfo> inputs, int64_t opset, std::string label)
      : node_(node), inputs_(inputs), opset_(opset), label_(std::move(label)) {}

  const Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  const std::string& label() const { return label_; }
  size_t input_count() const { return inputs_.size(); }
  size_t output_count() const { return node_.outputs.size(); }
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i].present; }
  // Precondition: has_input(i).
  const InputInfo& input(size_t i) const { return inputs_[i]; }
  const Shape& shape(size_t i) const { return inputs_[i].shape; }
  DType dtype(size_t i) const { return inputs_[i].dtype; }
  int64_t rank(size_t i) const { return static_cast<int64_t>(inputs_[i].shape.size()); }

  // An InvalidArgument error that names the node.
  template <typename... Args>
  Status error(const Args&... args) const {
    return invalid_argument(label_, ": ", args...);
  }

  // Requires between `min` and `max` present-or-absent inputs, inputs [0, required) present,
  // and between 1 and `max_outputs` outputs.
  Status expect_arity(size_t required, size_t max_inputs, size_t max_outputs) const;
  // Requires input i to have one of the listed dtypes.
  Status expect_dtype(size_t i, std::initializer_list<DType> allowed) const;
  // Requires inputs i and j to have the same dtype.
  Status expect_same_dtype(size_t i, size_t j) const;
  // Requires input i to be floating-point / numeric (floating-point or integer, not bool).
  Status expect_float(size_t i) const;
  Status expect_numeric(size_t i) const;

  // The values of a constant integer input (int64 or int32), or an error naming `what` when
  // the input is not known at import time.
  Result<std::vector<int64_t>> const_ints(size_t i, std::string_view what) const;
  // A constant numeric scalar (or one-element tensor) input as a double.
  Result<double> const_scalar(size_t i, std::string_view what) const;
  // Axes from input `input` when present (opset 13+ style), else from attribute `attr`;
  // nullopt when neither is given.
  Result<std::optional<std::vector<int64_t>>> axes(size_t input, const char* attr) const;

  // Maps a possibly negative axis into [0, rank), or an error.
  Result<int64_t> normalize_axis(int64_t axis, int64_t rank) const;
  // The same for a list; duplicates are an error.
  Result<std::vector<int64_t>> normalize_axes(const std::vector<int64_t>& axes, int64_t rank) const;

 private:
  const Node& node_;
  std::span<const InputInfo> inputs_;
  int64_t opset_;
  std::string label_;
};

// Parameters shared by shape inference and the evaluator.

// Slice: for each axis of the input, the first index and the step; and the output shape.
struct SliceParams {
  std::vector<int64_t> starts;
  std::vector<int64_t> steps;
  Shape output;
};
Result<SliceParams> slice_params(const OpContext& ctx);

// Split: the size of each output along `axis`.
struct SplitParams {
  int64_t axis = 0;
  std::vector<int64_t> sizes;
};
Result<SplitParams> split_params(const OpContext& ctx);

// Reduce*: which axes of the input are reduced (a flag per axis) and the output shape.
struct ReduceParams {
  std::vector<bool> reduced;
  Shape output;
};
Result<ReduceParams> reduce_params(const OpContext& ctx);

// Transpose: the permutation (default: reversed axes).
Result<std::vector<int64_t>> transpose_perm(const OpContext& ctx);

// Range: the number of elements.
Result<int64_t> range_count(const OpContext& ctx);

// Shape (opset 15 start/end): the window [first, last) of input 0's dimensions it returns.
struct ShapeWindow {
  int64_t first = 0;
  int64_t last = 0;
};
ShapeWindow shape_window(const OpContext& ctx);

}  // namespace ps::onnx_loader
