// The MPI communicator (built when CMake finds MPI). Gradient sums are MPI_Iallreduce on a duplicate
// of MPI_COMM_WORLD whose errors are returned (MPI_ERRORS_RETURN) and thrown as reformer::Error;
// every wait polls MPI_Test against a deadline, so a rank that dies or hangs ends the run with a
// message instead of a hang.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>
#include <vector>

#include "dist/communicator.h"
#include "reformer/error.h"

namespace reformer {
namespace {

using Clock = std::chrono::steady_clock;

double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

class MpiCommunicator final : public Communicator {
 public:
  MpiCommunicator() : timeout_s_(dist_timeout_seconds()) {
    int provided = 0;
    // FUNNELED: only the main thread calls MPI (the OpenMP workers and the signal watcher never do).
    check(MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided), "MPI_Init_thread");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    check(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    check(MPI_Comm_rank(comm_, &rank_), "MPI_Comm_rank");
    check(MPI_Comm_size(comm_, &size_), "MPI_Comm_size");
  }
  // At exit. An abandoned rank ends without MPI_Finalize (which would wait for the other ranks):
  // mpirun sees it and ends the job.
  ~MpiCommunicator() override {
    if (abandoned_) return;
    MPI_Comm_free(&comm_);
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }

  void start_sum(float* data, int64_t n) override {
    const Clock::time_point now = Clock::now();
    for (int64_t done = 0; done < n;) {
      const int count = static_cast<int>(std::min<int64_t>(n - done, INT_MAX / 2));
      MPI_Request r = MPI_REQUEST_NULL;
      check(MPI_Iallreduce(MPI_IN_PLACE, data + done, count, MPI_FLOAT, MPI_SUM, comm_, &r), "MPI_Iallreduce");
      pending_.push_back(r);
      started_.push_back(now);
      done_.push_back(false);
      done += count;
    }
    ++stats_.reductions;
    stats_.bytes += n * static_cast<int64_t>(sizeof(float));
  }

  // Tests every request in flight; one seen complete adds its time in flight to the overlap.
  void progress() override {
    const Clock::time_point now = Clock::now();
    for (size_t i = 0; i < pending_.size(); ++i) {
      if (done_[i]) continue;
      int flag = 0;
      check(MPI_Test(&pending_[i], &flag, MPI_STATUS_IGNORE), "MPI_Test");
      if (!flag) continue;
      done_[i] = true;
      stats_.overlap_s += seconds(now - started_[i]);
    }
  }

  void wait_all() override {
    if (pending_.empty()) return;
    progress();
    const Clock::time_point t = Clock::now();
    for (size_t i = 0; i < pending_.size(); ++i)  // still in flight when the backward ended
      if (!done_[i]) stats_.overlap_s += seconds(t - started_[i]);
    wait(pending_, "the gradient all-reduce");
    stats_.wait_s += seconds(Clock::now() - t);
    pending_.clear();
    started_.clear();
    done_.clear();
  }

  void sum(double* data, int64_t n) override {
    std::vector<MPI_Request> r(1, MPI_REQUEST_NULL);
    check(MPI_Iallreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, comm_, r.data()), "MPI_Iallreduce");
    wait(r, "a reduction of losses or flags");
  }

  void abandon() override { abandoned_ = true; }

 private:
  void check(int rc, const char* call) const {
    if (rc == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING] = {};
    int len = 0;
    MPI_Error_string(rc, text, &len);
    throw Error(detail::concat("rank ", rank_, ": ", call, " failed: ", text,
                               " (another rank has probably died; the run ends here)"));
  }

  // True when every request has completed (completed ones become MPI_REQUEST_NULL).
  bool test_all(std::vector<MPI_Request>& requests) const {
    bool all = true;
    for (MPI_Request& r : requests) {
      if (r == MPI_REQUEST_NULL) continue;
      int flag = 0;
      check(MPI_Test(&r, &flag, MPI_STATUS_IGNORE), "MPI_Test");
      all = all && flag;
    }
    return all;
  }

  void wait(std::vector<MPI_Request>& requests, const char* what) const {
    const Clock::time_point deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(timeout_s_));
    for (int64_t polls = 0; !test_all(requests); ++polls) {
      if (Clock::now() > deadline)
        throw Error(detail::concat("rank ", rank_, " of ", size_, ": ", what, " did not complete within ", timeout_s_,
                                   " s; another rank has died or hangs (REFORMER_DIST_TIMEOUT sets this limit)"));
      // Spin first (a reduction between busy ranks completes in microseconds), then yield the core.
      if (polls > 2000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  MPI_Comm comm_ = MPI_COMM_NULL;
  int rank_ = 0, size_ = 1;
  double timeout_s_;
  std::vector<MPI_Request> pending_;
  std::vector<Clock::time_point> started_;
  std::vector<bool> done_;
  bool abandoned_ = false;
};

}  // namespace

std::unique_ptr<Communicator> make_mpi_communicator() { return std::make_unique<MpiCommunicator>(); }

}  // namespace reformer
