#include "models/optimal_grouping.h"

#include <cmath>
#include <limits>

namespace ps::models {
namespace {

Status check_model(const TransferModel& model) {
  if (!(model.bytes_per_us > 0) || !std::isfinite(model.bytes_per_us)) {
    return invalid_argument("grouping: bandwidth must be positive, got ", model.bytes_per_us,
                            " bytes/us");
  }
  if (!(model.copy_fixed_us >= 0) || !std::isfinite(model.copy_fixed_us)) {
    return invalid_argument("grouping: fixed copy cost must be >= 0, got ", model.copy_fixed_us,
                            " us");
  }
  return Status::OK();
}

}  // namespace

Result<GroupingPrediction> predict_grouping(std::span<const GroupingUnit> units,
                                            const TransferModel& model,
                                            const GroupStarts& groups) {
  PS_TRY(check_model(model));
  if (units.empty() != groups.empty() || (!groups.empty() && groups[0] != 0)) {
    return invalid_argument("grouping: ", groups.size(), " groups for ", units.size(),
                            " units (the first group must start at unit 0)");
  }
  GroupingPrediction p;
  double copy_end = 0;
  double compute_end = 0;
  for (size_t g = 0; g < groups.size(); ++g) {
    const uint32_t begin = groups[g];
    const uint32_t end = g + 1 < groups.size() ? groups[g + 1] : static_cast<uint32_t>(units.size());
    if (begin >= end || end > units.size()) {
      return invalid_argument("grouping: group ", g, " spans units [", begin, ", ", end,
                              ") of ", units.size());
    }
    uint64_t bytes = 0;
    double compute = 0;
    for (uint32_t u = begin; u < end; ++u) {
      bytes += units[u].bytes;
      compute += units[u].compute_us;
    }
    copy_end += model.copy_fixed_us + static_cast<double>(bytes) / model.bytes_per_us;
    if (copy_end > compute_end) p.stall_us += copy_end - compute_end;
    compute_end = std::max(compute_end, copy_end) + compute;
  }
  p.finish_us = compute_end;
  p.transfer_us = copy_end;
  return p;
}

Result<GroupStarts> optimal_grouping(std::span<const GroupingUnit> units,
                                     const TransferModel& model) {
  PS_TRY(check_model(model));
  const size_t n = units.size();
  if (n == 0) return GroupStarts{};
  std::vector<double> prefix_compute(n + 1, 0.0);
  std::vector<double> prefix_copy(n + 1, 0.0);  // bytes / bandwidth, in us
  for (size_t i = 0; i < n; ++i) {
    if (!(units[i].compute_us >= 0) || !std::isfinite(units[i].compute_us)) {
      return invalid_argument("grouping: unit ", i, " has compute time ", units[i].compute_us);
    }
    prefix_compute[i + 1] = prefix_compute[i] + units[i].compute_us;
    prefix_copy[i + 1] = prefix_copy[i] + static_cast<double>(units[i].bytes) / model.bytes_per_us;
  }

  constexpr double kInf = std::numeric_limits<double>::infinity();
  // best[g][j]: the smallest finish of units [0, j) in g groups; from[g][j]: the start of the
  // last of those groups. Row g only reads row g - 1.
  std::vector<std::vector<double>> best(n + 1, std::vector<double>(n + 1, kInf));
  std::vector<std::vector<uint32_t>> from(n + 1, std::vector<uint32_t>(n + 1, 0));
  best[0][0] = 0;
  double answer = kInf;
  size_t answer_groups = 0;
  for (size_t g = 1; g <= n; ++g) {
    for (size_t j = g; j <= n; ++j) {
      const double copy_end = static_cast<double>(g) * model.copy_fixed_us + prefix_copy[j];
      double best_here = kInf;
      uint32_t best_from = 0;
      for (size_t i = g - 1; i < j; ++i) {
        if (best[g - 1][i] == kInf) continue;
        const double finish =
            std::max(best[g - 1][i], copy_end) + (prefix_compute[j] - prefix_compute[i]);
        if (finish < best_here) {
          best_here = finish;
          best_from = static_cast<uint32_t>(i);
        }
      }
      best[g][j] = best_here;
      from[g][j] = best_from;
    }
    // Strictly better only: ties keep the grouping with fewer groups.
    if (best[g][n] < answer) {
      answer = best[g][n];
      answer_groups = g;
    }
  }

  GroupStarts starts(answer_groups);
  size_t j = n;
  for (size_t g = answer_groups; g > 0; --g) {
    starts[g - 1] = from[g][j];
    j = from[g][j];
  }
  return starts;
}

}  // namespace ps::models
