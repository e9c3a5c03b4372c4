#include "net/metrics_text.h"

#include <charconv>
#include <cmath>

#include "common/status.h"

namespace ps::net {
namespace {

bool is_alpha(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool valid_metric_name(std::string_view name) {
  if (name.empty() || !(is_alpha(name[0]) || name[0] == ':')) return false;
  for (char c : name) {
    if (!(is_alpha(c) || is_digit(c) || c == ':')) return false;
  }
  return true;
}

bool valid_label_name(std::string_view name) {
  if (name.empty() || !is_alpha(name[0]) || name.starts_with("__")) return false;
  for (char c : name) {
    if (!(is_alpha(c) || is_digit(c))) return false;
  }
  return true;
}

std::string_view type_name(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kSummary:
      return "summary";
  }
  return "untyped";
}

}  // namespace

std::string escape_label_value(std::string_view value) {
  std::string out;
  out.reserve(value.size());
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string escape_help(std::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string format_metric_value(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof(buffer), value);
  PS_CHECK(ec == std::errc());
  return std::string(buffer, end);
}

void MetricsWriter::family(std::string_view name, MetricType type, std::string_view help) {
  PS_CHECK(valid_metric_name(name));
  PS_CHECK(started_.find(name) == started_.end());
  started_.emplace(name);
  current_ = std::string(name);
  current_type_ = type;
  out_ += str_cat("# HELP ", name, " ", escape_help(help), "\n");
  out_ += str_cat("# TYPE ", name, " ", type_name(type), "\n");
}

void MetricsWriter::write_labels(std::span<const Label> labels, std::string_view extra_name,
                                 std::string_view extra_value) {
  if (labels.empty() && extra_name.empty()) return;
  out_ += '{';
  bool first = true;
  auto one = [&](std::string_view name, std::string_view value) {
    if (!first) out_ += ',';
    first = false;
    out_ += name;
    out_ += "=\"";
    out_ += escape_label_value(value);
    out_ += '"';
  };
  for (size_t i = 0; i < labels.size(); ++i) {
    PS_CHECK(valid_label_name(labels[i].name));
    PS_CHECK(labels[i].name != extra_name);
    for (size_t j = 0; j < i; ++j) PS_CHECK(labels[j].name != labels[i].name);
    one(labels[i].name, labels[i].value);
  }
  if (!extra_name.empty()) one(extra_name, extra_value);
  out_ += '}';
}

void MetricsWriter::write_value(double value) {
  out_ += ' ';
  out_ += format_metric_value(value);
  out_ += '\n';
}

void MetricsWriter::sample(std::span<const Label> labels, double value) {
  PS_CHECK(!current_.empty() && current_type_ != MetricType::kSummary);
  out_ += current_;
  write_labels(labels, {}, {});
  write_value(value);
}

void MetricsWriter::sample(std::span<const Label> labels, uint64_t value) {
  PS_CHECK(!current_.empty() && current_type_ != MetricType::kSummary);
  out_ += current_;
  write_labels(labels, {}, {});
  out_ += str_cat(" ", value, "\n");
}

void MetricsWriter::sample(std::initializer_list<Label> labels, double value) {
  sample(std::span<const Label>(labels.begin(), labels.size()), value);
}

void MetricsWriter::sample(std::initializer_list<Label> labels, uint64_t value) {
  sample(std::span<const Label>(labels.begin(), labels.size()), value);
}

void MetricsWriter::summary(std::span<const Label> labels, std::span<const Quantile> quantiles,
                            double sum, uint64_t count) {
  PS_CHECK(!current_.empty() && current_type_ == MetricType::kSummary);
  for (const Quantile& q : quantiles) {
    PS_CHECK(q.quantile >= 0.0 && q.quantile <= 1.0);
    out_ += current_;
    write_labels(labels, "quantile", format_metric_value(q.quantile));
    write_value(q.value);
  }
  out_ += current_;
  out_ += "_sum";
  write_labels(labels, {}, {});
  write_value(sum);
  out_ += current_;
  out_ += "_count";
  write_labels(labels, {}, {});
  out_ += str_cat(" ", count, "\n");
}

void MetricsWriter::counter(std::string_view name, std::string_view help, uint64_t value) {
  family(name, MetricType::kCounter, help);
  sample({}, value);
}

void MetricsWriter::gauge(std::string_view name, std::string_view help, double value) {
  family(name, MetricType::kGauge, help);
  sample({}, value);
}

std::string MetricsWriter::take() {
  std::string out = std::move(out_);
  *this = MetricsWriter();
  return out;
}

}  // namespace ps::net
