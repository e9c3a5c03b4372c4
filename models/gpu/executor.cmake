# The executor part of ps_gpu: the per-model plan (address tables, ops, warm-up, debug run,
# profile) and CUDA graph capture (included from models/gpu/CMakeLists.txt).
target_sources(ps_gpu PRIVATE
  ${CMAKE_CURRENT_LIST_DIR}/graph.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan_debug.cc
  ${CMAKE_CURRENT_LIST_DIR}/plan_layout.cc
)
