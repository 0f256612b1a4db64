// A build without MPI (CMake did not find it): a process started by an MPI launcher is refused.
#include "dist/communicator.h"

#include "reformer/error.h"

namespace reformer {

std::unique_ptr<Communicator> make_mpi_communicator() {
  throw Error(
      "this process was started by an MPI launcher (mpirun, mpiexec or srun), but this reformer was built "
      "without MPI; install OpenMPI (scripts/bootstrap.sh installs libopenmpi-dev openmpi-bin) and rebuild, or "
      "run reformer without the launcher");
}

}  // namespace reformer
