#pragma once
// The processes of a data-parallel run and the reductions between them (docs/DISTRIBUTED.md). The
// trainer sees only this interface: one implementation is this process alone (every reduction is
// the identity), the other is MPI (mpi_communicator.cpp, built when CMake finds MPI).
//
// Every call is collective: all ranks make the same calls in the same order. A reduction that does
// not complete within timeout_seconds() (a rank died or hangs) throws reformer::Error, and an MPI
// error is returned, not fatal, and thrown as reformer::Error too; a failed run calls abandon(), so
// the process ends without MPI_Finalize, which makes mpirun end the other ranks.
#include <cstdint>
#include <memory>

namespace reformer {

// What the gradient reductions of the steps so far cost (rank-local wall times).
struct CommStats {
  int64_t reductions = 0;    // non-blocking all-reduces started
  int64_t bytes = 0;         // bytes all-reduced (the buffers' sizes, not the bytes on the wire)
  double overlap_s = 0;      // summed over the all-reduces: from its start until it was seen complete
                             // (at a progress() call, i.e. the next layer boundary) or the backward
                             // ended: in flight behind backward work (an upper bound at layer granularity)
  double wait_s = 0;         // blocked in wait_all after the backward
};

class Communicator {
 public:
  virtual ~Communicator() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;

  // Starts summing data[0..n) over all ranks in place, without waiting; the buffer must not be
  // touched until wait_all() returns.
  virtual void start_sum(float* data, int64_t n) = 0;
  // Lets the started sums advance (MPI progresses non-blocking collectives only inside MPI calls).
  virtual void progress() = 0;
  // Waits until every started sum has completed.
  virtual void wait_all() = 0;
  // Blocking sum of a few doubles over all ranks (losses, token counts, stop flags).
  virtual void sum(double* data, int64_t n) = 0;
  // This rank failed: it will end without MPI_Finalize (which would wait for the other ranks), and
  // mpirun then ends them. Otherwise MPI_Finalize runs when the process exits.
  virtual void abandon() {}

  const CommStats& stats() const { return stats_; }

 protected:
  CommStats stats_;
};

// This process alone.
std::unique_ptr<Communicator> make_single_process_communicator();

// The process's communicator: MPI when the process was started by an MPI launcher (mpirun, mpiexec,
// srun: OMPI_COMM_WORLD_SIZE, PMIX_RANK or PMI_RANK in the environment), else this process alone.
// Made on first use (MPI_Init) and kept until exit (MPI_Finalize, unless abandoned). A launched process in a build without MPI is
// an error (N copies of one run would overwrite each other's checkpoints).
Communicator& world_communicator();

// Seconds a reduction may wait for the other ranks before the run gives up: REFORMER_DIST_TIMEOUT
// (default 600: long enough for rank 0 to write a large checkpoint while the others wait).
double dist_timeout_seconds();

// Implemented by mpi_communicator.cpp, or by no_mpi.cpp in a build without MPI (which throws).
std::unique_ptr<Communicator> make_mpi_communicator();

}  // namespace reformer
