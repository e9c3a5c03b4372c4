// Copy groups: which consecutive layers share one host-to-device weight copy when a model is
// switched in (PipeSwitch's pipelined transmission). Pure: no GPU, tested on the CPU.
//
// A package's manifest groups are the finest units the weights can be copied in (a per-layer
// import has one per layer); each covers consecutive layers and a contiguous range of the
// weight blob, in order (the importer packs weights in execution order; only alignment padding
// lies between two groups' bytes). Any merge of consecutive units is therefore again one
// contiguous copy, padding included. The switching engine
// chooses a grouping at registration:
//   - kPackage:  the package's groups as imported (per-layer, or the original's blocks when
//                imported with --grouping blocks);
//   - kPerLayer: the package's units (same as kPackage for a per-layer import);
//   - kWhole:    one copy of the whole blob before the first layer (stop-and-start);
//   - kBlocks:   one group per source block, as the original PipeSwitch (onnx_loader's
//                make_groups over the layers' recorded blocks), from a per-layer package;
//   - kOptimal:  the partition with the smallest predicted finish time for measured per-layer
//                compute times and a measured transfer model (models/optimal_grouping.h);
//   - kTimed:    kOptimal, kBlocks and kPerLayer each timed as a whole switch on the device at
//                registration (in its fastest enqueue mode), the fastest kept: the prediction
//                ignores host-bound enqueue and per-group waits, and lost to the blocks on all
//                three models on an H100 (docs/results.md, figure 7). The engine does the
//                timing (reactor/gpu_engine_register.cc); where it cannot (policies without the
//                switch region) it uses kOptimal.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "models/gpu/host_read.h"
#include "models/optimal_grouping.h"
#include "onnx_loader/psm.pb.h"

namespace ps::models::gpu {

struct CopyGroup {
  uint32_t first_layer = 0;
  uint32_t layer_count = 0;
  uint64_t blob_offset = 0;  // where the group's weights start in the blob (host and device)
  uint64_t bytes = 0;        // may be 0: a group of layers without weights
  bool operator==(const CopyGroup&) const = default;
};

enum class GroupingChoice { kPackage, kPerLayer, kWhole, kBlocks, kOptimal, kTimed };

// "package", "per-layer", "whole", "blocks", "optimal", "timed".
const char* grouping_choice_name(GroupingChoice choice);
// Inverse of grouping_choice_name; errors list the accepted names.
Result<GroupingChoice> parse_grouping_choice(std::string_view name);

// The manifest's groups as copy groups. Errors (kCorrupt) when they do not cover the layers in
// order or their byte ranges overlap, go backwards or leave the blob (this guards manifests
// from elsewhere; Package::open's validation already covers packages).
Result<std::vector<CopyGroup>> package_groups(const pipeswitch::psm::Manifest& manifest);

// Merges consecutive `units` into the groups that start at the unit indices `starts`
// (ascending, starting at 0, each < units.size(); models::GroupStarts). Errors for bad starts.
Result<std::vector<CopyGroup>> merge_groups(std::span<const CopyGroup> units,
                                            const GroupStarts& starts);

// One group: every layer, the whole blob.
std::vector<CopyGroup> whole_model_group(const pipeswitch::psm::Manifest& manifest);

// The original PipeSwitch's block groups, rebuilt from the layers' names and recorded blocks
// (the same rule as psimport --grouping blocks), merged from `units`. A unit that spans two
// blocks (a package imported with coarser groups) stays whole. Errors when no layer carries a
// module scope in its name.
Result<std::vector<CopyGroup>> block_groups(const pipeswitch::psm::Manifest& manifest,
                                            std::span<const CopyGroup> units);

// The optimal grouping's input: one GroupingUnit per unit, its bytes and the sum of its layers'
// compute times, less the bytes of `host_read` (the weights a switch leaves on the host:
// host_read.h). Precondition: layer_us has one entry per layer of the units.
std::vector<GroupingUnit> grouping_units(std::span<const CopyGroup> units,
                                         std::span<const double> layer_us,
                                         std::span<const WeightRange> host_read = {});

// "23 groups, 37.0 KiB - 23.0 MiB" for logs.
std::string describe_groups(std::span<const CopyGroup> groups);

}  // namespace ps::models::gpu
