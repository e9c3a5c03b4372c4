// A small writer of the Prometheus text exposition format (version 0.0.4), for GET /metrics.
//
//   # HELP <name> <help, with \ and newline escaped>
//   # TYPE <name> counter|gauge|summary
//   <name>{<label>="<value, with \ " and newline escaped>",...} <value>
//
// A family's HELP and TYPE lines come once, before its samples, and all its samples follow
// together; the writer enforces that. Names are the program's own, so a bad name is a bug
// (PS_CHECK); label values may come from clients (a model name) and are escaped.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <set>
#include <span>
#include <string>
#include <string_view>

namespace ps::net {

enum class MetricType { kCounter, kGauge, kSummary };

struct Label {
  std::string_view name;   // [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__"
  std::string_view value;  // any bytes; escaped
};

struct Quantile {
  double quantile;  // in [0, 1]
  double value;
};

class MetricsWriter {
 public:
  // Starts the family `name`: writes its HELP and TYPE lines. Preconditions: `name` matches
  // [a-zA-Z_:][a-zA-Z0-9_:]* and was not started before on this writer.
  void family(std::string_view name, MetricType type, std::string_view help);

  // One sample of the current family: `name{labels} value`. Preconditions: a counter or gauge
  // family was started. The integer overload prints exactly (no rounding above 2^53).
  void sample(std::initializer_list<Label> labels, double value);
  void sample(std::initializer_list<Label> labels, uint64_t value);
  void sample(std::span<const Label> labels, double value);
  void sample(std::span<const Label> labels, uint64_t value);

  // The samples of one summary of the current family: `name{labels,quantile="q"} v` for each
  // quantile, then `name_sum{labels} sum` and `name_count{labels} count`. Preconditions: a
  // summary family was started; no label is named "quantile".
  void summary(std::span<const Label> labels, std::span<const Quantile> quantiles, double sum,
               uint64_t count);

  // Shorthands: a family with one unlabelled sample.
  void counter(std::string_view name, std::string_view help, uint64_t value);
  void gauge(std::string_view name, std::string_view help, double value);

  // The text so far.
  const std::string& text() const { return out_; }
  // Moves the text out and resets the writer.
  std::string take();

 private:
  void write_labels(std::span<const Label> labels, std::string_view extra_name,
                    std::string_view extra_value);
  void write_value(double value);

  std::string out_;
  std::string current_;  // the family being written
  MetricType current_type_ = MetricType::kCounter;
  std::set<std::string, std::less<>> started_;
};

// Prometheus escaping: in a label value \ -> \\, " -> \", newline -> \n; in HELP text the same
// without the quote. Exposed for the tests.
std::string escape_label_value(std::string_view value);
std::string escape_help(std::string_view help);

// A sample value as Prometheus reads it: "NaN", "+Inf", "-Inf", or the shortest decimal form
// that reads back to the same double.
std::string format_metric_value(double value);

}  // namespace ps::net
