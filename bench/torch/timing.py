"""Times a training step the way the TypeScript benches do: warm-up steps first, then wall and CPU seconds per step."""
import time


def time_steps(step, warmup, steps):
    """Runs `step` warmup + steps times; returns the timed steps' wall seconds and process CPU seconds (all threads)."""
    for _ in range(warmup):
        step()
    times, cpu = [], []
    for _ in range(steps):
        t0, c0 = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return times, cpu
