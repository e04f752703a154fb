/* dist/dist.c — MPI bootstrap and GPU binding (dist.h). */
#include "dist.h"

#include <mpi.h>

#ifdef SLA_HAVE_CUDA
#include <cuda_runtime.h>
#endif

void dist_init(int *argc, char ***argv, dist_t *d) {
    int initialized = 0;
    MPI_Initialized(&initialized);
    if (!initialized) MPI_Init(argc, argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->world);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, d->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &d->local_rank);
    MPI_Comm_free(&node);
#ifdef SLA_HAVE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) == cudaSuccess && n > 0) cudaSetDevice(d->local_rank % n);
    else cudaGetLastError();
#endif
}

void dist_finalize(void) {
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (!finalized) MPI_Finalize();
}
