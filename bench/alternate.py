"""The Swift-vs-PyTorch harness the step benchmarks share: a Swift worker process driven over
stdin/stdout, and rounds that alternate between the two sides (swapping who goes first)."""
import subprocess
import sys


class SwiftWorker:
    """A benchmark worker: `steps N` -> "times t1 ... tN" then "loss L"; `quit` ends it."""

    def __init__(self, command):
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.ready = self.process.stdout.readline().strip()
        if not self.ready.startswith("ready"):
            sys.exit(f"the Swift worker did not start (said {self.ready!r})")

    def steps(self, n):
        self.process.stdin.write(f"steps {n}\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if not line.startswith("times"):
            sys.exit(f"the Swift worker failed (said {line!r})")
        return [float(t) for t in line.split()[1:]], float(self.process.stdout.readline().split()[1])

    def profile(self):
        """One step under LibTorch's profiler: {operator: (calls, self microseconds)}."""
        self.process.stdin.write("profile\n")
        self.process.stdin.flush()
        ops = {}
        for line in self.process.stdout:
            if line.strip() == "end":
                return ops
            _, calls, micros, name = line.rstrip("\n").split(" ", 3)
            ops[name] = (int(calls), float(micros))
        sys.exit("the Swift worker ended during a profile")

    def close(self):
        self.process.stdin.write("quit\n")
        self.process.stdin.flush()
        self.process.wait()


def alternate(swift_steps, torch_steps, rounds, steps):
    """Timed steps of both sides, `steps` per side per round, the first side swapped every round."""
    swift_times, torch_times = [], []
    for r in range(rounds):
        order = [(swift_steps, swift_times), (torch_steps, torch_times)]
        for run, sink in (order if r % 2 == 0 else order[::-1]):
            sink.extend(run(steps)[0])
    return swift_times, torch_times
