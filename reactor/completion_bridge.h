// The completion bridge: the CompletionSink (backend.h) that backends' threads post to, and the
// loop side that hands their completions to a handler on the loop thread.
//
// post() appends to a locked queue and calls uv_async_send; wake() only calls uv_async_send.
// uv_async_send coalesces, so the async callback drains the whole queue, then asks the backend
// for completions it keeps itself (Backend::drain), and hands each to the handler in order.
// The uv_async_t is heap-allocated and freed in its close callback (close()).
#pragma once

#include <uv.h>

#include <functional>
#include <mutex>
#include <vector>

#include "common/status.h"
#include "reactor/backend.h"

namespace ps::reactor {

class CompletionBridge final : public CompletionSink {
 public:
  using Handler = std::function<void(Completion)>;

  CompletionBridge() = default;
  ~CompletionBridge() override;
  CompletionBridge(const CompletionBridge&) = delete;
  CompletionBridge& operator=(const CompletionBridge&) = delete;

  // Creates the async handle on `loop`. `backend` (may be null: then drain() is not called) and
  // `handler` are used on the loop thread until close(). Errors name the libuv call.
  Status open(uv_loop_t* loop, Backend* backend, Handler handler);

  // Starts closing the handle (its memory is freed in the close callback). Completions posted
  // later are dropped. Loop thread.
  void close();

  // CompletionSink, any thread.
  void post(Completion completion) override;
  void wake() override;

  // Drains now (the async callback's body); for shutdown and tests. Loop thread.
  void drain_now();

 private:
  static void on_async(uv_async_t* handle);

  uv_async_t* async_ = nullptr;  // owned until its close callback
  Backend* backend_ = nullptr;
  Handler handler_;
  std::mutex mutex_;
  std::vector<Completion> queue_;
  bool open_ = false;  // guarded by mutex_
};

}  // namespace ps::reactor
