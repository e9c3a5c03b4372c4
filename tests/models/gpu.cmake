# The GPU executor's tests (included from tests/models/CMakeLists.txt). Every case is [gpu]:
# skipped without a GPU, run by scripts/gpu-check.sh on the GPU machine.
add_library(ps_gpu_test_support STATIC ${CMAKE_CURRENT_LIST_DIR}/gpu_op_check.cc)
target_link_libraries(ps_gpu_test_support PUBLIC ps_gpu ps_cpu_ops Catch2::Catch2)
target_include_directories(ps_gpu_test_support PUBLIC ${PROJECT_SOURCE_DIR})

# Each part adds its own test executables in its own file.
foreach(part gpu_dnn gpu_kernels gpu_executor gpu_train)
  if(EXISTS ${CMAKE_CURRENT_LIST_DIR}/${part}.cmake)
    include(${CMAKE_CURRENT_LIST_DIR}/${part}.cmake)
  endif()
endforeach()

ps_add_test(test_gpu_runtime SOURCES ${CMAKE_CURRENT_LIST_DIR}/gpu_runtime_test.cc
  LIBS ps_gpu_test_support)
