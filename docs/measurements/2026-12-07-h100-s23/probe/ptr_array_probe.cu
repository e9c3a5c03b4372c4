// Probe: BERT-base attention's six batched products (forward QK^T and PV, backward dP, dV,
// dQ, dK) on cuBLASLt, (a) strided batches over contiguous [B*H, S, D] operands, as the
// trainer runs them after the HeadSlice copies, against (b) pointer-array batches reading Q,
// K, V in place in the fused projection's [B, S, 3, H, D] output and writing the context in
// place in [B, S, H, D]. Question: do pointer-array batches run as fast, so that the head
// copies (HeadSlice, the context Transpose: ~70 us a layer) could go?
// Build: nvcc -O2 -std=c++17 -arch=sm_90 ptr_array_probe.cu -lcublasLt -o ptr_array_probe
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#define CK(x)                                                                  \
  do {                                                                         \
    auto e_ = (x);                                                             \
    if (static_cast<int>(e_) != 0) {                                           \
      std::fprintf(stderr, "%s:%d %s -> %d\n", __FILE__, __LINE__, #x, (int)e_); \
      std::exit(1);                                                            \
    }                                                                          \
  } while (0)

constexpr int B = 8, H = 12, S = 251, D = 64, BH = B * H, HD = H * D;

// Row-major out[m, n] = op(X)[m, k] op(Y)[k, n] per batch entry.
struct Product {
  const char* name;
  int64_t m, n, k;
  bool tx, ty;
  int64_t ldx, ldy, ldo;
  // strided mode: element strides; pointer mode: arrays
  int64_t sx, sy, so;
};

struct Buffers {
  float *x, *y, *o;
  void **px, **py, **po;  // device pointer arrays (pointer mode)
};

static cublasLtHandle_t lt;
static void* workspace;
static const size_t kWs = 32 << 20;

// Column-major: out^T [n, m] = op(Y)^T op(X)^T: A = Y, B = X.
static double time_product(const Product& p, const Buffers& b, bool pointer, bool tf32,
                           int* n_algos, std::string* best_desc) {
  cublasLtMatmulDesc_t desc;
  CK(cublasLtMatmulDescCreate(&desc, tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                              CUDA_R_32F));
  cublasOperation_t ta = p.ty ? CUBLAS_OP_T : CUBLAS_OP_N, tb = p.tx ? CUBLAS_OP_T : CUBLAS_OP_N;
  CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  CK(cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  auto layout = [&](int64_t rows, int64_t cols, int64_t ld, int64_t stride) {
    cublasLtMatrixLayout_t l;
    CK(cublasLtMatrixLayoutCreate(&l, CUDA_R_32F, rows, cols, ld));
    int32_t count = BH;
    CK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &count, sizeof count));
    if (pointer) {
      uint32_t mode = CUBLASLT_BATCH_MODE_POINTER_ARRAY;
      CK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_MODE, &mode, sizeof mode));
    } else {
      CK(cublasLtMatrixLayoutSetAttribute(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                          sizeof stride));
    }
    return l;
  };
  // A = Y stored col-major [n, k] (ty false) or [k, n]; B = X stored [k, m] or [m, k].
  cublasLtMatrixLayout_t la = p.ty ? layout(p.k, p.n, p.ldy, p.sy) : layout(p.n, p.k, p.ldy, p.sy);
  cublasLtMatrixLayout_t lb = p.tx ? layout(p.m, p.k, p.ldx, p.sx) : layout(p.k, p.m, p.ldx, p.sx);
  cublasLtMatrixLayout_t ld = layout(p.n, p.m, p.ldo, p.so);
  cublasLtMatmulPreference_t pref;
  CK(cublasLtMatmulPreferenceCreate(&pref));
  size_t ws = kWs;
  CK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws,
                                          sizeof ws));
  cublasLtMatmulHeuristicResult_t res[16];
  int found = 0;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt, desc, la, lb, ld, ld, pref, 16, res, &found);
  *n_algos = st == CUBLAS_STATUS_SUCCESS ? found : -static_cast<int>(st);
  double best = -1;
  const void* A = pointer ? static_cast<const void*>(b.py) : b.y;
  const void* Bm = pointer ? static_cast<const void*>(b.px) : b.x;
  void* Dm = pointer ? static_cast<void*>(b.po) : b.o;
  float alpha = 1.0f, beta = 0.0f;
  cudaEvent_t e0, e1;
  CK(cudaEventCreate(&e0));
  CK(cudaEventCreate(&e1));
  for (int i = 0; i < found && i < 8; ++i) {
    auto run = [&] {
      return cublasLtMatmul(lt, desc, &alpha, A, la, Bm, lb, &beta, Dm, ld, Dm, ld, &res[i].algo,
                            workspace, kWs, 0);
    };
    if (run() != CUBLAS_STATUS_SUCCESS) continue;
    CK(cudaDeviceSynchronize());
    std::vector<float> ts;
    for (int rep = 0; rep < 7; ++rep) {
      CK(cudaEventRecord(e0));
      for (int j = 0; j < 20; ++j) CK(run());
      CK(cudaEventRecord(e1));
      CK(cudaEventSynchronize(e1));
      float ms;
      CK(cudaEventElapsedTime(&ms, e0, e1));
      ts.push_back(ms * 1000.0f / 20);
    }
    std::sort(ts.begin(), ts.end());
    const double t = ts[ts.size() / 2];
    if (best < 0 || t < best) {
      best = t;
      int algo_id = 0, tile = 0, split = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_ID, &algo_id,
                                           sizeof algo_id, nullptr);
      cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile,
                                           sizeof tile, nullptr);
      cublasLtMatmulAlgoConfigGetAttribute(&res[i].algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &split,
                                           sizeof split, nullptr);
      *best_desc = "cand " + std::to_string(i) + " algo " + std::to_string(algo_id) + " tile " +
                   std::to_string(tile) + " splitk " + std::to_string(split);
    }
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cublasLtMatmulPreferenceDestroy(pref);
  cublasLtMatrixLayoutDestroy(la);
  cublasLtMatrixLayoutDestroy(lb);
  cublasLtMatrixLayoutDestroy(ld);
  cublasLtMatmulDescDestroy(desc);
  return best;
}

static void fill(float* p, size_t n, unsigned seed) {
  std::vector<float> h(n);
  srand(seed);
  for (auto& v : h) v = static_cast<float>(rand()) / RAND_MAX - 0.5f;
  CK(cudaMemcpy(p, h.data(), n * 4, cudaMemcpyHostToDevice));
}

static float* alloc(size_t n, unsigned seed) {
  float* p;
  CK(cudaMalloc(&p, n * 4));
  fill(p, n, seed);
  return p;
}

static void** pointers(float* base, int64_t b_stride, int64_t h_stride) {
  std::vector<void*> h(BH);
  for (int b = 0; b < B; ++b)
    for (int hh = 0; hh < H; ++hh) h[b * H + hh] = base + b * b_stride + hh * h_stride;
  void** d;
  CK(cudaMalloc(&d, BH * sizeof(void*)));
  CK(cudaMemcpy(d, h.data(), BH * sizeof(void*), cudaMemcpyHostToDevice));
  return d;
}

int main() {
  CK(cublasLtCreate(&lt));
  CK(cudaMalloc(&workspace, kWs));
  // In place: QKV [B, S, 3, H, D] (ld 3 * HD), context [B, S, H, D] (ld HD).
  float* qkv = alloc(size_t{B} * S * 3 * HD, 1);
  float* dqkv = alloc(size_t{B} * S * 3 * HD, 2);
  float* ctx = alloc(size_t{B} * S * HD, 3);
  float* dctx = alloc(size_t{B} * S * HD, 4);
  // Contiguous [BH, S, D] copies and the [BH, S, S] scores.
  const size_t sd = size_t{S} * D, ss = size_t{S} * S;
  float* q = alloc(BH * sd, 5);
  float* k = alloc(BH * sd, 6);
  float* v = alloc(BH * sd, 7);
  float* c = alloc(BH * sd, 8);
  float* dc = alloc(BH * sd, 9);
  float* dq = alloc(BH * sd, 10);
  float* p = alloc(BH * ss, 11);
  float* dp = alloc(BH * ss, 12);
  const int64_t row3 = 3 * HD, bstride3 = int64_t{S} * row3, bstride1 = int64_t{S} * HD;
  void** pq = pointers(qkv, bstride3, D);
  void** pk = pointers(qkv + HD, bstride3, D);
  void** pv = pointers(qkv + 2 * HD, bstride3, D);
  void** pdq = pointers(dqkv, bstride3, D);
  void** pdk = pointers(dqkv + HD, bstride3, D);
  void** pdv = pointers(dqkv + 2 * HD, bstride3, D);
  void** pc = pointers(ctx, bstride1, D);
  void** pdc = pointers(dctx, bstride1, D);
  void** pp = pointers(p, int64_t{H} * ss, ss);  // contiguous, as pointers
  void** pdp = pointers(dp, int64_t{H} * ss, ss);
  struct Case {
    Product prod;
    Buffers strided, ptr;
    int64_t pldx, pldy, pldo;
  };
  std::vector<Case> cases = {
      // scores = Q K^T
      {{"fwd QK^T", S, S, D, false, true, D, D, S, (int64_t)sd, (int64_t)sd, (int64_t)ss},
       {q, k, p, nullptr, nullptr, nullptr},
       {nullptr, nullptr, nullptr, pq, pk, pp},
       row3, row3, S},
      // context = P V
      {{"fwd PV", S, D, S, false, false, S, D, D, (int64_t)ss, (int64_t)sd, (int64_t)sd},
       {p, v, c, nullptr, nullptr, nullptr},
       {nullptr, nullptr, nullptr, pp, pv, pc},
       S, row3, HD},
      // dP = dC V^T
      {{"bwd dP=dC V^T", S, S, D, false, true, D, D, S, (int64_t)sd, (int64_t)sd, (int64_t)ss},
       {dc, v, dp, nullptr, nullptr, nullptr},
       {nullptr, nullptr, nullptr, pdc, pv, pdp},
       HD, row3, S},
      // dV = P^T dC
      {{"bwd dV=P^T dC", S, D, S, true, false, S, D, D, (int64_t)ss, (int64_t)sd, (int64_t)sd},
       {p, dc, dq, nullptr, nullptr, nullptr},
       {nullptr, nullptr, nullptr, pp, pdc, pdv},
       S, HD, row3},
      // dQ = dS K
      {{"bwd dQ=dS K", S, D, S, false, false, S, D, D, (int64_t)ss, (int64_t)sd, (int64_t)sd},
       {dp, k, dq, nullptr, nullptr, nullptr},
       {nullptr, nullptr, nullptr, pdp, pk, pdq},
       S, row3, row3},
      // dK = dS^T Q
      {{"bwd dK=dS^T Q", S, D, S, true, false, S, D, D, (int64_t)ss, (int64_t)sd, (int64_t)sd},
       {dp, q, dq, nullptr, nullptr, nullptr},
       {nullptr, nullptr, nullptr, pdp, pq, pdk},
       S, row3, row3},
  };
  for (int tf32 = 1; tf32 >= 0; --tf32) {
    double sum_s = 0, sum_p = 0;
    std::printf("== %s ==\n", tf32 ? "TF32" : "FP32");
    for (const Case& cs : cases) {
      int ns = 0, np = 0;
      std::string ds, dpd;
      const double ts = time_product(cs.prod, cs.strided, false, tf32, &ns, &ds);
      Product pp2 = cs.prod;
      pp2.ldx = cs.pldx;
      pp2.ldy = cs.pldy;
      pp2.ldo = cs.pldo;
      const double tp = time_product(pp2, cs.ptr, true, tf32, &np, &dpd);
      const double gflop = 2.0 * BH * cs.prod.m * cs.prod.n * cs.prod.k / 1e9;
      std::printf("%-16s strided %7.1f us (%5.1f TFLOPS, %d cands, %s) | pointer %7.1f us (%5.1f TFLOPS, %d cands, %s)\n",
                  cs.prod.name, ts, gflop / ts * 1e3, ns, ds.c_str(), tp,
                  tp > 0 ? gflop / tp * 1e3 : 0.0, np, dpd.c_str());
      sum_s += ts;
      sum_p += tp;
    }
    std::printf("sum: strided %.1f us, pointer %.1f us (a layer)\n", sum_s, sum_p);
  }
  return 0;
}
