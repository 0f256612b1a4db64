#include "dist/communicator.h"

#include <cstdlib>
#include <string>

#include "reformer/error.h"

namespace reformer {
namespace {

class SingleProcess final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  void start_sum(float*, int64_t) override {}
  void progress() override {}
  void wait_all() override {}
  void sum(double*, int64_t) override {}
};

bool launched_by_mpi() {
  for (const char* var : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"})
    if (std::getenv(var)) return true;
  return false;
}

}  // namespace

std::unique_ptr<Communicator> make_single_process_communicator() { return std::make_unique<SingleProcess>(); }

Communicator& world_communicator() {
  static const std::unique_ptr<Communicator> world =
      launched_by_mpi() ? make_mpi_communicator() : make_single_process_communicator();
  return *world;
}

double dist_timeout_seconds() {
  const char* text = std::getenv("REFORMER_DIST_TIMEOUT");
  if (!text || !*text) return 600.0;
  char* end = nullptr;
  const double s = std::strtod(text, &end);
  REFORMER_CHECK(end && *end == '\0' && s > 0, "REFORMER_DIST_TIMEOUT='", text,
                 "' must be a positive number of seconds (e.g. 600)");
  return s;
}

}  // namespace reformer
