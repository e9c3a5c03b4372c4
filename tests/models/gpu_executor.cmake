# The GPU executor's tests (included from tests/models/gpu.cmake):
#  - test_gpu_plan_layout: the plan's device-free logic on lowered zoo models (runs in CI);
#  - test_gpu_executor [gpu]: whole tiny zoo models vs the CPU executor, graph replay, group
#    hook, debug run, build errors;
#  - test_gpu_conformance [gpu]: libonnx-testdata node cases on the GPU operators.
add_library(ps_zoo_lowering STATIC ${CMAKE_CURRENT_LIST_DIR}/zoo_lowering.cc)
target_link_libraries(ps_zoo_lowering PUBLIC ps_onnx_loader ps_zoo ps_cpu_ops)
target_include_directories(ps_zoo_lowering PUBLIC ${PROJECT_SOURCE_DIR})

ps_add_test(test_gpu_plan_layout
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpu_plan_layout_test.cc
  LIBS ps_gpu ps_zoo_lowering)
ps_add_test(test_gpu_executor
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpu_executor_test.cc
  LIBS ps_gpu_test_support ps_zoo_lowering)
ps_add_test(test_gpu_conformance
  SOURCES
    ${CMAKE_CURRENT_LIST_DIR}/gpu_conformance_test.cc
    ${CMAKE_CURRENT_LIST_DIR}/cpu_ops_onnx_data.cc
  LIBS ps_gpu_test_support onnx_proto)

# The switching engine's copy groups (models/gpu/copy_groups.h): pure, runs in CI.
ps_add_test(test_copy_groups
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/copy_groups_test.cc
  LIBS ps_gpu ps_zoo_lowering)

# Direct host access for embedding tables (models/gpu/host_read.h): pure, runs in CI.
ps_add_test(test_host_read
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/host_read_test.cc
  LIBS ps_gpu ps_zoo_lowering)

# Parallel transmission's enqueue order (models/gpu/parallel_run.h) against simulated streams
# and events: pure, runs in CI. Its GPU run is in test_gpu_executor.
ps_add_test(test_parallel_run
  SOURCES ${CMAKE_CURRENT_LIST_DIR}/parallel_run_test.cc
  LIBS ps_gpu ps_zoo_lowering)
