/* How many threads loom's own kernels use. */
#include "internal.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int num_threads; /* 0: all cores */

void loom_set_num_threads(int n) { num_threads = n > 0 ? n : 0; }

int loom_num_threads(void) {
  if (num_threads > 0)
    return num_threads;
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}

int loom__threads_for(int64_t work) {
  if (work < 2 * LOOM_PAR_MIN)
    return 1;
  int64_t want = work / LOOM_PAR_MIN;
  int max = loom_num_threads();
  return want < max ? (int)want : max;
}
