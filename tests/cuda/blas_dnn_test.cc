// cuBLAS and cuDNN: the check macros and handles (CPU cases), SGEMM and a cuDNN call on our
// stream ([gpu] cases). A separate executable because loading libcublasLt costs about half a
// second of CPU per process (thousands of static initialisers), which the other cuda/ tests
// should not pay once per test case.
#include <catch2/catch.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "cuda/blas.h"
#include "cuda/copy.h"
#include "cuda/dnn.h"
#include "tests/cuda/cuda_test_util.h"
#include "tests/support/gpu.h"

using ps::Code;
using namespace ps::cuda;
using ps::cuda::testing::open_gpu;
using ps::cuda::testing::take;

namespace {

bool contains(std::string_view haystack, std::string_view needle) {
  return haystack.find(needle) != std::string_view::npos;
}

ps::Status fail_with_cublas(cublasStatus_t s) {
  CUBLAS_TRY(s);
  return ps::Status::OK();
}

ps::Status fail_with_cudnn(cudnnStatus_t s) {
  CUDNN_TRY(s);
  return ps::Status::OK();
}

}  // namespace

TEST_CASE("CUBLAS_TRY and CUDNN_TRY name the call, the status and the place", "[cuda]") {
  ps::Status b = fail_with_cublas(CUBLAS_STATUS_INVALID_VALUE);
  CHECK(b.code() == Code::kDevice);
  CHECK(contains(b.message(), "s failed: CUBLAS_STATUS_INVALID_VALUE"));
  CHECK(contains(b.message(), "blas_dnn_test.cc:"));
  CHECK(fail_with_cublas(CUBLAS_STATUS_ALLOC_FAILED).code() == Code::kOutOfMemory);
  CHECK(fail_with_cublas(CUBLAS_STATUS_SUCCESS).ok());

  ps::Status d = fail_with_cudnn(CUDNN_STATUS_BAD_PARAM);
  CHECK(d.code() == Code::kDevice);
  CHECK(contains(d.message(), "s failed: CUDNN_STATUS_BAD_PARAM"));
  CHECK(contains(d.message(), "blas_dnn_test.cc:"));
  CHECK(fail_with_cudnn(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED).code() ==
        Code::kOutOfMemory);
  CHECK(fail_with_cudnn(CUDNN_STATUS_SUCCESS).ok());
}

TEST_CASE("without a driver cuBLAS and cuDNN handles fail with a Status", "[cuda]") {
  if (ps::cuda::load_driver().ok()) {
    SUCCEED("a driver is present: the [gpu] cases cover this machine");
    return;
  }
  auto blas = ps::cuda::BlasHandle::create();
  REQUIRE_FALSE(blas.ok());
  CHECK(blas.status().code() == Code::kDevice);
  CHECK(contains(blas.status().message(), "cublasCreate"));
  auto dnn = ps::cuda::DnnHandle::create();
  REQUIRE_FALSE(dnn.ok());
  CHECK(contains(dnn.status().message(), "cudnnCreate"));
}

// C = alpha * A * B + beta * C, column-major, small integers so the product is exact even if
// the library used reduced-precision inputs.
TEST_CASE("cuBLAS: SGEMM on our stream matches the CPU", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  Stream stream = take(Stream::create());
  BlasHandle blas = take(BlasHandle::create());
  REQUIRE_OK(blas.set_stream(stream));
  DeviceBuffer workspace = take(DeviceBuffer::allocate(size_t{4} << 20));
  REQUIRE_OK(blas.set_workspace(workspace.ptr(), workspace.size()));

  constexpr int m = 17, n = 13, k = 11;
  std::vector<float> a(m * k), b(k * n), c(m * n), expected(m * n), got(m * n);
  for (int i = 0; i < m * k; ++i) a[i] = static_cast<float>((i * 7) % 9 - 4);
  for (int i = 0; i < k * n; ++i) b[i] = static_cast<float>((i * 5) % 7 - 3);
  for (int i = 0; i < m * n; ++i) c[i] = static_cast<float>(i % 5);
  const float alpha = 2.0f, beta = 0.5f;
  for (int col = 0; col < n; ++col) {
    for (int row = 0; row < m; ++row) {
      float sum = 0.0f;
      for (int p = 0; p < k; ++p) sum += a[row + p * m] * b[p + col * k];
      expected[row + col * m] = alpha * sum + beta * c[row + col * m];
    }
  }
  DeviceBuffer da = take(DeviceBuffer::allocate(a.size() * 4));
  DeviceBuffer db = take(DeviceBuffer::allocate(b.size() * 4));
  DeviceBuffer dc = take(DeviceBuffer::allocate(c.size() * 4));
  REQUIRE_OK(copy_to_device_async(da.ptr(), a.data(), a.size() * 4, stream));
  REQUIRE_OK(copy_to_device_async(db.ptr(), b.data(), b.size() * 4, stream));
  REQUIRE_OK(copy_to_device_async(dc.ptr(), c.data(), c.size() * 4, stream));
  auto sgemm = [&]() -> ps::Status {
    CUBLAS_TRY(cublasSgemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, da.as<float>(), m,
                           db.as<float>(), k, &beta, dc.as<float>(), m));
    return ps::Status::OK();
  };
  REQUIRE_OK(sgemm());
  REQUIRE_OK(copy_to_host_async(got.data(), dc.ptr(), got.size() * 4, stream));
  REQUIRE_OK(stream.synchronize());
  for (int i = 0; i < m * n; ++i) {
    INFO("element " << i);
    CHECK(got[i] == Approx(expected[i]).margin(1e-3));
  }

  auto bad = [&]() -> ps::Status {
    CUBLAS_TRY(cublasSgemm(blas.get(), CUBLAS_OP_N, CUBLAS_OP_N, -1, n, k, &alpha, da.as<float>(),
                           m, db.as<float>(), k, &beta, dc.as<float>(), m));
    return ps::Status::OK();
  };
  ps::Status s = bad();
  CHECK(s.code() == Code::kDevice);
  CHECK(s.message().find("CUBLAS_STATUS_INVALID_VALUE") != std::string::npos);
}

TEST_CASE("cuDNN: a handle on our stream sets a tensor", "[cuda][gpu]") {
  PS_REQUIRE_GPU();
  auto gpu = open_gpu();
  CHECK(cudnnGetVersion() >= 90000);
  Stream stream = take(Stream::create());
  DnnHandle dnn = take(DnnHandle::create());
  REQUIRE_OK(dnn.set_stream(stream));

  cudnnTensorDescriptor_t desc = nullptr;
  REQUIRE(cudnnCreateTensorDescriptor(&desc) == CUDNN_STATUS_SUCCESS);
  auto run = [&]() -> ps::Status {
    CUDNN_TRY(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 2, 3, 4, 5));
    DeviceBuffer y = take(DeviceBuffer::allocate(2 * 3 * 4 * 5 * 4));
    const float value = 2.5f;
    CUDNN_TRY(cudnnSetTensor(dnn.get(), desc, y.as<void>(), &value));
    std::vector<float> host(2 * 3 * 4 * 5);
    PS_TRY(copy_to_host_async(host.data(), y.ptr(), host.size() * 4, stream));
    PS_TRY(stream.synchronize());
    CHECK(host == std::vector<float>(host.size(), 2.5f));
    return ps::Status::OK();
  };
  ps::Status ok = run();
  auto bad = [&]() -> ps::Status {
    CUDNN_TRY(cudnnSetTensor4dDescriptor(desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, -1, 3, 4, 5));
    return ps::Status::OK();
  };
  ps::Status refused = bad();
  cudnnDestroyTensorDescriptor(desc);
  REQUIRE_OK(ok);
  CHECK(refused.code() == Code::kDevice);
  CHECK(refused.message().find("CUDNN_STATUS_BAD_PARAM") != std::string::npos);
}
