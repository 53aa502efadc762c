#include "comm/world.h"

#include <cstdio>
#include <cstdlib>

#include "comm/mpi_check.h"

namespace cohort::comm {

bool launched_by_mpi() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK", "PMI_SIZE"})
    if (std::getenv(name)) return true;
  return false;
}

World::World(int* argc, char*** argv) {
  int initialized = 0;
  COHORT_MPI_CHECK(MPI_Initialized(&initialized));
  if (!initialized) {
    int provided = MPI_THREAD_SINGLE;
    COHORT_MPI_CHECK(MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided));
    owns_mpi_ = true;
    if (provided < MPI_THREAD_FUNNELED) {
      MPI_Finalize();
      throw CommError("MPI_Init_thread: MPI provides thread level " + std::to_string(provided) +
                      ", below the MPI_THREAD_FUNNELED that cohort needs");
    }
  }
  // Errors come back as codes (and so as CommError) rather than killing the job silently.
  COHORT_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
  COHORT_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
  COHORT_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  MPI_Comm local = MPI_COMM_NULL;
  COHORT_MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local));
  COHORT_MPI_CHECK(MPI_Comm_rank(local, &local_rank_));
  COHORT_MPI_CHECK(MPI_Comm_size(local, &local_size_));
  COHORT_MPI_CHECK(MPI_Comm_free(&local));
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int len = 0;
  COHORT_MPI_CHECK(MPI_Get_processor_name(name, &len));
  host_.assign(name, len);
}

World::~World() {
  if (!owns_mpi_ || aborted_) return;
  int finalized = 0;
  MPI_Finalized(&finalized);
  if (!finalized) MPI_Finalize();
}

void World::abort_all(const std::string& reason) {
  aborted_ = true;
  std::fprintf(stderr, "cohort: rank %d on %s: %s\n", rank_, host_.c_str(), reason.c_str());
  std::fflush(stderr);
  MPI_Abort(MPI_COMM_WORLD, 1);
  std::abort();  // MPI_Abort does not return; this keeps [[noreturn]] honest if it ever does.
}

}  // namespace cohort::comm
