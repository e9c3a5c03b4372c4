// The Prometheus text-format writer.
#include "net/metrics_text.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

namespace ps::net {
namespace {

TEST_CASE("counters and gauges with HELP and TYPE lines", "[net][metrics]") {
  MetricsWriter w;
  w.counter("ps_requests_total", "Requests served.", uint64_t{42});
  w.gauge("ps_up", "1 when serving.", 1.0);
  w.family("ps_inference_total", MetricType::kCounter, "Inference requests by model.");
  w.sample({{"model", "resnet152"}, {"protocol", "text"}}, uint64_t{7});
  w.sample({{"model", "bert_base"}, {"protocol", "binary"}}, uint64_t{18446744073709551615ull});
  w.family("ps_gpu_memory_bytes", MetricType::kGauge, "Pool bytes in use.");
  w.sample({{"gpu", "0"}}, 1.5e9);
  CHECK(w.text() ==
        "# HELP ps_requests_total Requests served.\n"
        "# TYPE ps_requests_total counter\n"
        "ps_requests_total 42\n"
        "# HELP ps_up 1 when serving.\n"
        "# TYPE ps_up gauge\n"
        "ps_up 1\n"
        "# HELP ps_inference_total Inference requests by model.\n"
        "# TYPE ps_inference_total counter\n"
        "ps_inference_total{model=\"resnet152\",protocol=\"text\"} 7\n"
        "ps_inference_total{model=\"bert_base\",protocol=\"binary\"} 18446744073709551615\n"
        "# HELP ps_gpu_memory_bytes Pool bytes in use.\n"
        "# TYPE ps_gpu_memory_bytes gauge\n"
        "ps_gpu_memory_bytes{gpu=\"0\"} 1.5e+09\n");
}

TEST_CASE("summaries write quantiles, _sum and _count", "[net][metrics]") {
  MetricsWriter w;
  w.family("ps_latency_seconds", MetricType::kSummary, "Request latency.");
  std::vector<Quantile> quantiles = {{0.5, 0.0123}, {0.99, 0.045}, {1.0, 0.1}};
  std::vector<Label> labels = {{"model", "resnet152"}};
  w.summary(labels, quantiles, 1.25, 100);
  w.summary({}, {}, 0.0, 0);
  CHECK(w.text() ==
        "# HELP ps_latency_seconds Request latency.\n"
        "# TYPE ps_latency_seconds summary\n"
        "ps_latency_seconds{model=\"resnet152\",quantile=\"0.5\"} 0.0123\n"
        "ps_latency_seconds{model=\"resnet152\",quantile=\"0.99\"} 0.045\n"
        "ps_latency_seconds{model=\"resnet152\",quantile=\"1\"} 0.1\n"
        "ps_latency_seconds_sum{model=\"resnet152\"} 1.25\n"
        "ps_latency_seconds_count{model=\"resnet152\"} 100\n"
        "ps_latency_seconds_sum 0\n"
        "ps_latency_seconds_count 0\n");
}

TEST_CASE("label values and HELP text are escaped", "[net][metrics]") {
  CHECK(escape_label_value(R"(a\b"c)"
                           "\n"
                           "d") == R"(a\\b\"c\nd)");
  CHECK(escape_label_value("plain") == "plain");
  CHECK(escape_help("line1\nline2 \\ \"q\"") == R"(line1\nline2 \\ "q")");
  MetricsWriter w;
  w.family("m", MetricType::kGauge, "help with\nnewline");
  w.sample({{"model", "evil\"} 1\nfake_metric 2"}}, 3.0);
  CHECK(w.text() ==
        "# HELP m help with\\nnewline\n"
        "# TYPE m gauge\n"
        "m{model=\"evil\\\"} 1\\nfake_metric 2\"} 3\n");
  // Exactly three lines: the injected newline did not create a sample.
  CHECK(std::count(w.text().begin(), w.text().end(), '\n') == 3);
}

TEST_CASE("values are printed the way Prometheus reads them", "[net][metrics]") {
  CHECK(format_metric_value(std::numeric_limits<double>::quiet_NaN()) == "NaN");
  CHECK(format_metric_value(std::numeric_limits<double>::infinity()) == "+Inf");
  CHECK(format_metric_value(-std::numeric_limits<double>::infinity()) == "-Inf");
  CHECK(format_metric_value(0.0) == "0");
  CHECK(format_metric_value(-2.5) == "-2.5");
  CHECK(format_metric_value(0.1) == "0.1");
  CHECK(std::stod(format_metric_value(1.0 / 3.0)) == 1.0 / 3.0);
  CHECK(format_metric_value(1e300) == "1e+300");
}

TEST_CASE("take() returns the text and resets the writer", "[net][metrics]") {
  MetricsWriter w;
  w.counter("a_total", "A.", uint64_t{1});
  std::string first = w.take();
  CHECK(first.find("a_total 1\n") != std::string::npos);
  CHECK(w.text().empty());
  // The same family may be written again on a fresh scrape.
  w.counter("a_total", "A.", uint64_t{2});
  CHECK(w.take().find("a_total 2\n") != std::string::npos);
}

}  // namespace
}  // namespace ps::net
