# The executor part of ps_gpu: the per-model plan (address tables, ops, warm-up, debug run,
# profile), CUDA graph capture, and the switching engine's pieces: copy groups, the link probe,
# the pipelined run (weights copied group by group while the layers run) and its parallel form
# over several links (parallel_run, cuda_lanes) (included from models/gpu/CMakeLists.txt).
target_sources(ps_gpu PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/copy_groups.cc
  ${CMAKE_CURRENT_LIST_DIR}/cuda_lanes.cc
  ${CMAKE_CURRENT_LIST_DIR}/graph.cc
  ${CMAKE_CURRENT_LIST_DIR}/host_read.cc
  ${CMAKE_CURRENT_LIST_DIR}/link_probe.cc
  ${CMAKE_CURRENT_LIST_DIR}/non_finite.cc
  ${CMAKE_CURRENT_LIST_DIR}/parallel_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/pipelined_run.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan_debug.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan_layout.cc
)
