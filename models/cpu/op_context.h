// What an operator implementation sees: its inputs, its preallocated outputs and its
// attributes, with checked accessors. Internal to models/cpu.
//
// Error messages made here do not name the op: run_op puts "<op>: " in front of every error.
#pragma once

#include <initializer_list>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/cpu/ops.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu {

class OpContext {
 public:
  // All arguments are borrowed and must outlive the context. With `allocate_outputs`, the
  // outputs are empty tensors that output_checked allocates with the shape it is given.
  OpContext(const std::string& op, const Attributes& attrs, std::span<const Tensor* const> inputs,
            std::span<Tensor* const> outputs, bool allocate_outputs = false)
      : op_(op),
        attrs_(attrs),
        inputs_(inputs),
        outputs_(outputs),
        allocate_outputs_(allocate_outputs) {}

  const std::string& op() const { return op_; }
  size_t num_inputs() const { return inputs_.size(); }
  size_t num_outputs() const { return outputs_.size(); }

  // Input i, or nullptr when it is absent (nullptr or past the end).
  const Tensor* input(size_t i) const { return i < inputs_.size() ? inputs_[i] : nullptr; }
  // Input i; an error naming it ("input 1 (W)") when absent.
  Result<const Tensor*> required_input(size_t i, std::string_view name) const;
  // Output i, or nullptr when absent.
  Tensor* output(size_t i) const { return i < outputs_.size() ? outputs_[i] : nullptr; }
  // True when outputs are allocated by output_checked (run_op_allocating): an output's dtype
  // and shape are then not known before the op computes them.
  bool allocates_outputs() const { return allocate_outputs_; }
  // Output i after checking that it is present, writable, and has `dtype` and `shape` (when
  // allocating: after allocating it so).
  Result<Tensor*> output_checked(size_t i, DType dtype, const Shape& shape) const;
  // Like output_checked, but an absent output is nullptr instead of an error.
  Result<Tensor*> optional_output_checked(size_t i, DType dtype, const Shape& shape) const;

  // The number of input and output slots must be within the op's range.
  Status check_arity(size_t min_inputs, size_t max_inputs, size_t min_outputs,
                     size_t max_outputs) const;
  // Every attribute must be one of `known`; an unknown one is an Unsupported error, so no
  // attribute is silently ignored.
  Status check_attrs(std::initializer_list<std::string_view> known) const;
  // Every attribute in `required` must be present; the first absent one is an InvalidArgument
  // error naming it.
  Status require_attrs(std::initializer_list<std::string_view> required) const;

  bool has_attr(std::string_view name) const { return find_attr(name) != nullptr; }
  // Typed attribute values; `fallback` when absent, an error when the attribute has another
  // type.
  Result<int64_t> attr_int(std::string_view name, int64_t fallback) const;
  Result<float> attr_float(std::string_view name, float fallback) const;
  Result<std::string> attr_string(std::string_view name, std::string fallback) const;
  Result<std::vector<int64_t>> attr_ints(std::string_view name,
                                         std::vector<int64_t> fallback = {}) const;
  Result<std::vector<float>> attr_floats(std::string_view name,
                                         std::vector<float> fallback = {}) const;

 private:
  const pipeswitch::psm::Attribute* find_attr(std::string_view name) const;

  const std::string& op_;
  const Attributes& attrs_;
  std::span<const Tensor* const> inputs_;
  std::span<Tensor* const> outputs_;
  bool allocate_outputs_;
};

// The values of a rank-0 or rank-1 int32/int64 tensor (axes, shapes, slice bounds).
// `what` names the tensor in errors.
Result<std::vector<int64_t>> read_int_values(const Tensor& t, std::string_view what);
// The single value of a one-element numeric tensor, as double (Range, Clip bounds).
Result<double> read_scalar(const Tensor& t, std::string_view what);

}  // namespace ps::models::cpu
