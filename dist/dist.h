/* dist/dist.h — the process group of a run: MPI bootstrap, this process's rank and its GPU.
 *
 * dist_init starts MPI (a process started without mpirun is a world of one), reads rank, world
 * size and the node-local rank (OMPI_COMM_WORLD_LOCAL_RANK, MPI_Comm_split_type), and, when the
 * CUDA backend is present, binds the process to GPU local_rank % device count. dist_finalize
 * ends MPI. The collectives (NCCL on GPUs, MPI on the CPU) and ZeRO-1 shard math come with the
 * multi-GPU issue; until then sla-train refuses a world larger than one with a sentence. */
#ifndef SLA_DIST_H
#define SLA_DIST_H

typedef struct dist {
    int rank, world, local_rank;
} dist_t;

void dist_init(int *argc, char ***argv, dist_t *d);
void dist_finalize(void);

#endif
