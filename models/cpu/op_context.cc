#include "models/cpu/op_context.h"

#include <algorithm>

#include "models/cpu/dispatch.h"

namespace ps::models::cpu {

namespace psm = pipeswitch::psm;

namespace {

std::string_view attr_kind(const psm::Attribute& a) {
  switch (a.value_case()) {
    case psm::Attribute::kI:
      return "int";
    case psm::Attribute::kF:
      return "float";
    case psm::Attribute::kS:
      return "string";
    case psm::Attribute::kInts:
      return "ints";
    case psm::Attribute::kFloats:
      return "floats";
    case psm::Attribute::VALUE_NOT_SET:
      break;
  }
  return "empty";
}

Status wrong_kind(const psm::Attribute& a, std::string_view wanted) {
  return invalid_argument("attribute '", a.name(), "' is ", attr_kind(a), ", expected ", wanted);
}

}  // namespace

Result<const Tensor*> OpContext::required_input(size_t i, std::string_view name) const {
  const Tensor* t = input(i);
  if (t == nullptr) return invalid_argument("input ", i, " (", name, ") is missing");
  return t;
}

Result<Tensor*> OpContext::output_checked(size_t i, DType dtype, const Shape& shape) const {
  Tensor* t = output(i);
  if (t == nullptr) return invalid_argument("output ", i, " is missing");
  if (allocate_outputs_ && t->dtype() == DType::kUndefined) {
    PS_ASSIGN_OR_RETURN(*t, Tensor::allocate(dtype, shape));
  }
  if (t->dtype() != dtype || t->shape() != shape) {
    return invalid_argument("output ", i, " is ", t->description(), ", expected ",
                            dtype_name(dtype), shape_string(shape));
  }
  if (t->read_only()) return invalid_argument("output ", i, " is read-only");
  if (t->numel() > 0 && t->raw() == nullptr) return invalid_argument("output ", i, " has no data");
  return t;
}

Result<Tensor*> OpContext::optional_output_checked(size_t i, DType dtype,
                                                   const Shape& shape) const {
  if (output(i) == nullptr) return static_cast<Tensor*>(nullptr);
  return output_checked(i, dtype, shape);
}

Status OpContext::check_arity(size_t min_inputs, size_t max_inputs, size_t min_outputs,
                              size_t max_outputs) const {
  if (inputs_.size() > max_inputs) {
    return invalid_argument(inputs_.size(), " inputs given, at most ", max_inputs, " allowed");
  }
  for (size_t i = 0; i < min_inputs; ++i) {
    if (input(i) == nullptr) {
      return invalid_argument("input ", i, " is missing (", min_inputs, " required)");
    }
  }
  if (outputs_.size() > max_outputs) {
    return invalid_argument(outputs_.size(), " outputs given, at most ", max_outputs, " allowed");
  }
  for (size_t i = 0; i < min_outputs; ++i) {
    if (output(i) == nullptr) {
      return invalid_argument("output ", i, " is missing (", min_outputs, " required)");
    }
  }
  return Status::OK();
}

Status OpContext::check_attrs(std::initializer_list<std::string_view> known) const {
  for (const psm::Attribute& a : attrs_) {
    if (std::find(known.begin(), known.end(), a.name()) == known.end()) {
      return unsupported("attribute '", a.name(), "' is not supported");
    }
  }
  return Status::OK();
}

Status OpContext::require_attrs(std::initializer_list<std::string_view> required) const {
  for (std::string_view name : required) {
    if (find_attr(name) == nullptr) return invalid_argument("attribute '", name, "' is required");
  }
  return Status::OK();
}

const psm::Attribute* OpContext::find_attr(std::string_view name) const {
  for (const psm::Attribute& a : attrs_) {
    if (a.name() == name) return &a;
  }
  return nullptr;
}

Result<int64_t> OpContext::attr_int(std::string_view name, int64_t fallback) const {
  const psm::Attribute* a = find_attr(name);
  if (a == nullptr) return fallback;
  if (a->value_case() != psm::Attribute::kI) return wrong_kind(*a, "int");
  return a->i();
}

Result<float> OpContext::attr_float(std::string_view name, float fallback) const {
  const psm::Attribute* a = find_attr(name);
  if (a == nullptr) return fallback;
  if (a->value_case() != psm::Attribute::kF) return wrong_kind(*a, "float");
  return a->f();
}

Result<std::string> OpContext::attr_string(std::string_view name, std::string fallback) const {
  const psm::Attribute* a = find_attr(name);
  if (a == nullptr) return fallback;
  if (a->value_case() != psm::Attribute::kS) return wrong_kind(*a, "string");
  return a->s();
}

Result<std::vector<int64_t>> OpContext::attr_ints(std::string_view name,
                                                  std::vector<int64_t> fallback) const {
  const psm::Attribute* a = find_attr(name);
  if (a == nullptr) return fallback;
  if (a->value_case() != psm::Attribute::kInts) return wrong_kind(*a, "ints");
  return std::vector<int64_t>(a->ints().values().begin(), a->ints().values().end());
}

Result<std::vector<float>> OpContext::attr_floats(std::string_view name,
                                                  std::vector<float> fallback) const {
  const psm::Attribute* a = find_attr(name);
  if (a == nullptr) return fallback;
  if (a->value_case() != psm::Attribute::kFloats) return wrong_kind(*a, "floats");
  return std::vector<float>(a->floats().values().begin(), a->floats().values().end());
}

Result<std::vector<int64_t>> read_int_values(const Tensor& t, std::string_view what) {
  if (t.rank() > 1) {
    return invalid_argument(what, " must be a scalar or 1-D, got ", t.description());
  }
  std::vector<int64_t> values(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kInt64) {
    std::copy_n(t.data<int64_t>(), t.numel(), values.begin());
  } else if (t.dtype() == DType::kInt32) {
    std::copy_n(t.data<int32_t>(), t.numel(), values.begin());
  } else {
    return invalid_argument(what, " must be int64 or int32, got ", t.description());
  }
  return values;
}

Result<double> read_scalar(const Tensor& t, std::string_view what) {
  if (t.numel() != 1) {
    return invalid_argument(what, " must have exactly one element, got ", t.description());
  }
  double value = 0;
  PS_TRY(dispatch(NumericTypes{}, t.dtype(), what, [&](auto tag) {
    using T = typename decltype(tag)::type;
    value = static_cast<double>(t.data<T>()[0]);
    return Status::OK();
  }));
  return value;
}

}  // namespace ps::models::cpu
