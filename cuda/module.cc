#include "cuda/module.h"

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "cuda/context.h"
#include "cuda/driver.h"
#include "cuda/stream.h"

// Begin and end of the fatbin that cuda/kernels_fatbin.S embeds (names fixed by the assembler).
extern "C" const unsigned char ps_kernels_fatbin_begin[];  // NOLINT(readability-identifier-naming)
extern "C" const unsigned char ps_kernels_fatbin_end[];    // NOLINT(readability-identifier-naming)

namespace ps::cuda {

std::span<const unsigned char> embedded_fatbin() {
  return {ps_kernels_fatbin_begin,
          static_cast<size_t>(ps_kernels_fatbin_end - ps_kernels_fatbin_begin)};
}

Status check_fatbin(std::span<const unsigned char> image) {
  // The header nvcc writes: magic 0xBA55ED50, version (2 bytes), header size (2), the size of
  // what follows the header (8), little-endian.
  constexpr size_t kHeader = 16;
  if (image.size() < kHeader) return invalid_argument("not a fatbin: ", image.size(), " bytes");
  auto le = [&](size_t at, size_t n) {
    uint64_t v = 0;
    for (size_t i = 0; i < n; ++i) v |= uint64_t{image[at + i]} << (8 * i);
    return v;
  };
  if (le(0, 4) != 0xBA55ED50u) return invalid_argument("not a fatbin (no 0xBA55ED50 magic)");
  const uint64_t header = le(6, 2), body = le(8, 8);
  if (header < kHeader || body > image.size() || header > image.size() - body) {
    return invalid_argument("truncated fatbin: its header gives ", header, " + ", body,
                            " bytes, the image has ", image.size());
  }
  return Status::OK();
}

unsigned blocks_for(uint64_t n, unsigned block, unsigned max_blocks) {
  if (block == 0 || n == 0 || max_blocks <= 1) return 1;
  uint64_t blocks = (n + block - 1) / block;
  return blocks < max_blocks ? static_cast<unsigned>(blocks) : max_blocks;
}

Status Kernel::launch_raw(const Stream& stream, Dim3 grid, Dim3 block, unsigned shared_bytes,
                          void** params, const size_t* sizes, size_t count) const {
  if (function_ == nullptr) return invalid_argument("launch of an empty Kernel");
  if (params_known_ && count != param_count_) {
    return invalid_argument("kernel ", name_, " takes ", param_count_,
                            " parameters, launched with ", count);
  }
  for (size_t i = 0; params_known_ && i < count; ++i) {
    if (sizes[i] != param_sizes_[i]) {
      return invalid_argument("kernel ", name_, " parameter ", i, " is ", param_sizes_[i],
                              " bytes, the argument passed is ", sizes[i]);
    }
  }
  CUresult r = api().cuLaunchKernel(function_, grid.x, grid.y, grid.z, block.x, block.y, block.z,
                                    shared_bytes, stream.get(), params, nullptr);
  if (r != CUDA_SUCCESS) {
    return cu_status(r, "cuLaunchKernel", __FILE__, __LINE__)
        .with_context(str_cat("kernel ", name_, " grid (", grid.x, ",", grid.y, ",", grid.z,
                              ") block (", block.x, ",", block.y, ",", block.z, ") shared ",
                              shared_bytes));
  }
  return Status::OK();
}

void Module::Unload::operator()(CUmodule module) const {
  ScopedContext scope(context);
  if (scope.active()) CU_CHECK_RELEASE(api().cuModuleUnload(module));
}

Result<Module> Module::load_embedded() {
  if (const char* path = std::getenv(kKernelsOverrideEnv); path != nullptr && *path != '\0') {
    std::ifstream in(path, std::ios::binary);
    std::ostringstream image;
    if (!(in && image << in.rdbuf())) {
      return not_found(kKernelsOverrideEnv, "=", path, ": cannot read the file");
    }
    const std::string bytes = image.str();
    const std::string what = str_cat(kKernelsOverrideEnv, "=", path);
    PS_TRY(check_fatbin({reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size()})
               .with_context(what));
    return load_image(bytes.data(), what);
  }
  return load_image(embedded_fatbin().data(), "the embedded kernels (sm_80, sm_90, compute_90)");
}

Result<Module> Module::load_image(const void* image, const std::string& what) {
  PS_ASSIGN_OR_RETURN(CUcontext context, current_context());
  CUmodule handle = nullptr;
  CUresult r = api().cuModuleLoadData(&handle, image);
  if (r != CUDA_SUCCESS) {
    return cu_status(r, "cuModuleLoadData", __FILE__, __LINE__)
        .with_context(str_cat("loading ", what));
  }
  Module m;
  m.module_ = UniqueHandle<CUmodule, Unload>(handle, Unload{context});
  m.what_ = what;
  return m;
}

Result<Kernel> Module::function(const char* name) const {
  if (!module_) return invalid_argument("Module::function(", name, ") on an empty Module");
  Kernel k;
  CUresult r = api().cuModuleGetFunction(&k.function_, module_.get(), name);
  if (r == CUDA_ERROR_NOT_FOUND) return not_found("no kernel named ", name, " in ", what_);
  if (r != CUDA_SUCCESS) {
    return cu_status(r, "cuModuleGetFunction", __FILE__, __LINE__)
        .with_context(str_cat("kernel ", name));
  }
  k.name_ = name;
  // The parameter list: cuFuncGetParamInfo answers CUDA_ERROR_INVALID_VALUE past the last one.
  // The list only serves to check launches, so a driver that cannot describe it (any other
  // error) leaves the kernel usable, with unchecked launches (params_known() false).
  for (size_t i = 0;; ++i) {
    size_t offset = 0;
    size_t size = 0;
    r = api().cuFuncGetParamInfo(k.function_, i, &offset, &size);
    if (r == CUDA_ERROR_INVALID_VALUE) break;
    if (r != CUDA_SUCCESS) {
      k.params_known_ = false;
      k.param_count_ = 0;
      break;
    }
    if (i >= Kernel::kMaxParams) {
      return unsupported("kernel ", name, " has more than ", Kernel::kMaxParams, " parameters");
    }
    k.param_sizes_[i] = static_cast<uint32_t>(size);
    k.param_count_ = i + 1;
  }
  return k;
}

}  // namespace ps::cuda
