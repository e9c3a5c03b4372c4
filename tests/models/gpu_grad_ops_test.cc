// [gpu] cases of test_gpu_grad_ops (filled below).
#include <catch2/catch.hpp>
