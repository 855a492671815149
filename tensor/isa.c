/* Which instruction set loom's hot loops run with: the widest the CPU
 * has, or the one LOOM_ISA names (avx512, avx2 or baseline), so both
 * vector paths can be measured and tested on one AVX-512 machine.
 *
 * loom chooses at run time instead of through GCC's target_clones, whose
 * resolvers run while the library is loaded, before a program could say
 * anything (and before AddressSanitizer's runtime is ready, so sanitized
 * builds had only the baseline loops). */
#include "kernels.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

static const char *const isa_names[] = {
    [LOOM__ISA_BASELINE] = "baseline",
    [LOOM__ISA_AVX2] = "avx2",
    [LOOM__ISA_AVX512] = "avx512",
};

static loom__isa_level chosen;

static loom__isa_level best_supported(void) {
#if defined(__GNUC__) && defined(__x86_64__)
  /* the features of x86-64-v3 and -v4 the loops are compiled for, named
   * one by one: clang before 16 knows no level names here */
  __builtin_cpu_init();
  bool v3 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
            __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  if (v3 && __builtin_cpu_supports("avx512f") &&
      __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512cd") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl"))
    return LOOM__ISA_AVX512;
  if (v3)
    return LOOM__ISA_AVX2;
#endif
  return LOOM__ISA_BASELINE;
}

/* A request the CPU cannot run falls to the best level below it; a name
 * loom does not know is ignored (loom_isa() shows what runs). */
static void choose(void) {
  loom__isa_level best = best_supported();
  chosen = best;
  const char *want = getenv("LOOM_ISA");
  if (!want)
    return;
  for (int i = 0; i <= LOOM__ISA_AVX512; i++)
    if (strcmp(want, isa_names[i]) == 0)
      chosen = (loom__isa_level)i < best ? (loom__isa_level)i : best;
}

loom__isa_level loom__isa(void) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, choose);
  return chosen;
}

const char *loom_isa(void) { return isa_names[loom__isa()]; }
