"""What the PyTorch sides of loom's step benchmarks share: the environment
that must be set before torch loads, the timing loop and the setup line.

Import it before torch: importing it sets OMP_WAIT_POLICY=passive if
unset (PyTorch's best configuration on 2 cores; with OpenMP's default
busy-waiting its threads and OpenBLAS's fight over the cores).
"""
import os
import statistics
import time

os.environ.setdefault("OMP_WAIT_POLICY", "passive")

# BENCH_CLOCK=cpu: the process's CPU time instead of the wall clock, as
# bench/bench_util.c does (for runs pinned to one core on a busy machine).
_clock = (time.process_time if os.environ.get("BENCH_CLOCK") == "cpu"
          else time.perf_counter)


def setup(torch, threads, warmup, reps):
    """Sets torch's thread count and prints the line saying how it ran."""
    torch.set_num_threads(threads)
    print(f"# torch {torch.__version__}, threads {threads}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; "
          f"{warmup} warm-up + {reps} timed steps per case")


def median_ms(fn, warmup, reps):
    """fn() `warmup` times untimed, then the median ms of `reps` timed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(reps):
        t0 = _clock()
        fn()
        times.append((_clock() - t0) * 1e3)
    return statistics.median(times)
