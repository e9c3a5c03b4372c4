// Helpers for test_cpu_ops: building attributes and tensors, running one op.
#pragma once

#include <catch2/catch.hpp>
#include <cmath>
#include <initializer_list>
#include <string>
#include <vector>

#include "models/cpu/ops.h"
#include "models/cpu/tensor.h"

namespace ps::models::cpu::test {

inline pipeswitch::psm::Attribute attr_i(const std::string& name, int64_t v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_i(v);
  return a;
}
inline pipeswitch::psm::Attribute attr_f(const std::string& name, float v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_f(v);
  return a;
}
inline pipeswitch::psm::Attribute attr_s(const std::string& name, const std::string& v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.set_s(v);
  return a;
}
inline pipeswitch::psm::Attribute attr_ints(const std::string& name,
                                            const std::vector<int64_t>& v) {
  pipeswitch::psm::Attribute a;
  a.set_name(name);
  a.mutable_ints();  // an empty list is still an ints attribute
  for (int64_t x : v) a.mutable_ints()->add_values(x);
  return a;
}
inline Attributes attrs(const std::vector<pipeswitch::psm::Attribute>& list = {}) {
  Attributes out;
  for (const auto& a : list) *out.Add() = a;
  return out;
}

// An owned zero tensor (for outputs).
inline Tensor zeros(DType dtype, Shape shape) {
  Result<Tensor> t = Tensor::allocate(dtype, std::move(shape));
  REQUIRE(t.ok());
  return std::move(t).value();
}
// An owned tensor with these values; the test fails when they do not fit the shape.
template <typename T>
Tensor make(Shape shape, const std::vector<T>& values) {
  Tensor t = zeros(dtype_of<T>(), std::move(shape));
  REQUIRE(static_cast<int64_t>(values.size()) == t.numel());
  T* p = t.mutable_data<T>();
  for (size_t i = 0; i < values.size(); ++i) p[i] = values[i];
  return t;
}
inline Tensor floats(Shape shape, const std::vector<float>& values) {
  return make<float>(std::move(shape), values);
}

inline Status run(const std::string& op, const Attributes& a,
                  std::initializer_list<const Tensor*> inputs,
                  std::initializer_list<Tensor*> outputs) {
  std::vector<const Tensor*> in(inputs);
  std::vector<Tensor*> out(outputs);
  return run_op(op, a, in, out);
}

template <typename T>
std::vector<T> values(const Tensor& t) {
  const T* p = t.data<T>();
  return std::vector<T>(p, p + t.numel());
}

// Matches float vectors of the same length whose elements are within `rel` relative or
// `abs` absolute of the expected ones (owns the expected values, unlike Catch's Approx).
class ApproxVector : public Catch::MatcherBase<std::vector<float>> {
 public:
  explicit ApproxVector(std::vector<float> expected, double rel = 1e-5, double abs = 1e-6)
      : expected_(std::move(expected)), rel_(rel), abs_(abs) {}
  bool match(const std::vector<float>& v) const override {
    if (v.size() != expected_.size()) return false;
    for (size_t i = 0; i < v.size(); ++i) {
      const double d = std::fabs(static_cast<double>(v[i]) - expected_[i]);
      if (!(d <= abs_ + rel_ * std::fabs(static_cast<double>(expected_[i])))) return false;
    }
    return true;
  }
  std::string describe() const override {
    return "is within " + std::to_string(rel_) + " of " + Catch::Detail::stringify(expected_);
  }

 private:
  std::vector<float> expected_;
  double rel_, abs_;
};
inline ApproxVector approx(std::vector<float> expected, double rel = 1e-5) {
  return ApproxVector(std::move(expected), rel);
}

}  // namespace ps::models::cpu::test
