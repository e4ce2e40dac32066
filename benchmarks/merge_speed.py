"""The greedy merge (§4.3) against the paper's loop run literally, on realistic sets of boxes.

A set is what the regressor produces on one image for one class: most boxes jittered around a
few objects (centre ±10% of the object's side, each side ×e^N(0, 0.15)), the rest scattered over
a 500×375 image at 25–60% of its height (windows away from any object still predict a box),
rounded to integer pixels. :func:`overfeat.merge.greedy_merge` is timed at 500, 2,000 and 8,000
boxes (wall-clock time, best of ``--repeats``, and the process's CPU time in that run: on a
shared machine the CPU time is the steadier of the two), with the peak of the memory it
allocates (numpy's allocations, traced by :mod:`tracemalloc`, in a separate run); the literal
loop (the argmin over every pair of the current set, one merge per iteration: cubic) up to
``--loop-max`` boxes (500 by default: about a minute at 2,000 on a quiet machine), where the two
results are also checked to be identical. Both timings come from the same run, so their ratio is
what to compare across machines. The last line says whether greedy_merge meets its target, at
most TARGET_MS milliseconds (best wall-clock time) for TARGET_BOXES boxes.

Then the batched merge (:func:`overfeat.merge_batched.batched_greedy_merge`, torch on
``--device``) against greedy_merge one set after another, on ``--sets`` sets of each of
``--batched-sizes`` boxes merged together (localize's measured sizes: a few hundred to about a
thousand boxes per (image, class) at 4 scales, ``reports/benchmarks/localize_throughput-cpu.txt``),
both results checked to be identical bit for bit; greedy_merge on one CPU thread, the batched
merge with torch's threads. Their ratio is what decision MERGE_PATH (overfeat.merge_workers)
rests on.

    python benchmarks/merge_speed.py
    python benchmarks/merge_speed.py --sizes 500 2000 --loop-max 2000
    python benchmarks/merge_speed.py --sizes --batched-sizes 650 1080 --device cuda
"""

from __future__ import annotations

import argparse
import platform
import time
import tracemalloc

import numpy as np
import torch

from overfeat.merge import MERGE_THRESHOLD, greedy_merge, independent_groups, match_score
from overfeat.merge_batched import batched_greedy_merge

# The speed greedy_merge is held to on a 2-core CPU: a realistic set of 2,000 boxes in 50 ms.
TARGET_MS, TARGET_BOXES = 50.0, 2000


def realistic_boxes(n: int, rng: np.random.Generator, objects: int = 3, width: int = 500,
                    height: int = 375, scattered: float = 0.3) -> np.ndarray:  # fmt: skip
    """``(n, 4)`` integer inclusive boxes (module docstring)."""
    n_scattered = int(round(n * scattered))
    per_object = np.full(objects, (n - n_scattered) // objects)
    per_object[: (n - n_scattered) % objects] += 1
    parts = []
    for m in per_object:
        side = rng.uniform(0.15, 0.5) * min(width, height)
        cx = rng.uniform(side / 2, width - side / 2)
        cy = rng.uniform(side / 2, height - side / 2)
        w, h = side * np.exp(rng.normal(0, 0.15, (2, m)))
        x, y = cx + rng.normal(0, 0.1, m) * side, cy + rng.normal(0, 0.1, m) * side
        parts.append(np.stack([x - w / 2, y - h / 2, x + w / 2, y + h / 2], axis=1))
    s = rng.uniform(0.25, 0.6, n_scattered) * height
    x, y = rng.uniform(0, width - s), rng.uniform(0, height - s)
    parts.append(np.stack([x, y, x + s, y + s], axis=1))
    boxes = np.round(np.concatenate(parts)[rng.permutation(n)])
    return np.clip(boxes, 0, [width - 1, height - 1, width - 1, height - 1])


def paper_loop(boxes: np.ndarray, threshold: float = MERGE_THRESHOLD) -> list[list[int]]:
    """§4.3 (d)–(g) literally (as tests/test_merge.py writes it): the input indices per box."""
    clusters = [[i] for i in range(len(boxes))]
    while len(clusters) > 1:
        current = np.array([boxes[c].sum(axis=0) / len(c) for c in clusters])
        pair = match_score(current[:, None, :], current[None, :, :])
        np.fill_diagonal(pair, np.inf)
        a, b = np.unravel_index(np.argmin(pair), pair.shape)
        if pair[a, b] > threshold:
            break
        clusters[a] = clusters[a] + clusters[b]
        del clusters[b]
    return clusters


def _best_of(fn, repeats: int) -> tuple[float, float, object]:
    """The best wall-clock time of ``repeats`` calls, the CPU time of that call, its output."""
    best, cpu, out = float("inf"), float("inf"), None
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        wall = time.perf_counter() - t
        if wall < best:
            best, cpu = wall, time.process_time() - c
    return best, cpu, out


def _peak_mb(fn) -> float:
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[500, 2000, 8000])
    parser.add_argument("--batched-sizes", type=int, nargs="*", default=[50, 650, 1080],
                        help="boxes per set of the batched merge's timing")  # fmt: skip
    parser.add_argument("--sets", type=int, default=5, help="sets merged together (a batch)")
    parser.add_argument("--device", default="cpu", help="the batched merge's device")
    parser.add_argument("--loop-max", type=int, default=500,
                        help="run the literal loop up to this many boxes (cubic time)")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3, help="best of N for greedy_merge")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    print(f"greedy merge (§4.3), t = {MERGE_THRESHOLD}; {platform.processor() or platform.machine()}"
          f", numpy {np.__version__}")  # fmt: skip
    print(f"{'boxes':>6} {'merged':>7} {'largest group':>14} {'greedy_merge':>13} {'cpu':>10} "
          f"{'peak':>8} {'paper loop':>11} {'ratio':>7}  same result")  # fmt: skip
    target = None
    for n in args.sizes:
        boxes = realistic_boxes(n, np.random.default_rng(args.seed + n))
        scores = np.ones(n)
        repeats = args.repeats if n <= 2000 else 1
        t_fast, cpu, result = _best_of(lambda b=boxes, s=scores: greedy_merge(b, s), repeats)
        if n == TARGET_BOXES:
            target = t_fast, cpu
        peak = _peak_mb(lambda b=boxes, s=scores: greedy_merge(b, s))
        group = int(np.bincount(independent_groups(boxes)).max())
        line = (f"{n:>6} {len(result.boxes):>7} {group:>14} {t_fast * 1e3:>10.1f} ms"
                f" {cpu * 1e3:>7.1f} ms {peak:>5.0f} MB")  # fmt: skip
        if n <= args.loop_max:
            t_loop, _, clusters = _best_of(lambda b=boxes: paper_loop(b), 1)
            got = sorted(np.flatnonzero(result.assignment == k).tolist()
                         for k in range(len(result.boxes)))  # fmt: skip
            same = got == sorted(sorted(c) for c in clusters)
            line += f" {t_loop:>9.2f} s {t_loop / t_fast:>6.0f}x  {'yes' if same else 'NO'}"
        else:
            line += f" {'not run':>11} {'':>7}  (the loop runs up to --loop-max {args.loop_max})"
        print(line, flush=True)
    goal = f"target: at most {TARGET_MS:.0f} ms for {TARGET_BOXES} boxes"
    if target is None:
        print(f"{goal}: not measured (add {TARGET_BOXES} to --sizes)")
    else:
        verdict = "met" if target[0] * 1e3 <= TARGET_MS else "NOT met"
        print(
            f"{goal}: {verdict} ({target[0] * 1e3:.1f} ms wall-clock, {target[1] * 1e3:.1f} ms cpu)"
        )
    if args.batched_sizes:
        batched(args)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batched(args) -> list[dict]:
    """greedy_merge set by set against batched_greedy_merge of the same sets together."""
    device = torch.device(args.device)
    print(
        f"\nbatched merge of {args.sets} sets together on {device} (on a CPU one "
        f"thread) vs greedy_merge set by set (one thread), best of {args.repeats}:"
    )
    print(f"{'boxes/set':>9} {'sets':>5} {'greedy_merge':>13} {'batched':>11} {'per set':>10} "
          f"{'ratio':>6}  same result")  # fmt: skip
    rows = []
    for n in args.batched_sizes:
        rng = np.random.default_rng(args.seed + n)
        sets = [realistic_boxes(n, rng) for _ in range(args.sets)]
        t_cpu, _, ref = _best_of(
            lambda sets=sets: [greedy_merge(b, np.zeros(len(b))) for b in sets], args.repeats
        )
        batched_greedy_merge(sets[:1], device=device)  # the first call on a device initialises it
        _sync(device)

        def run(sets=sets):
            out = batched_greedy_merge(sets, device=device)
            _sync(device)
            return out

        t_dev, _, got = _best_of(run, args.repeats)
        same = all(np.array_equal(r.boxes, b) and np.array_equal(r.assignment, a)
                   for r, (b, a) in zip(ref, got))  # fmt: skip
        rows.append({"boxes": n, "sets": args.sets, "greedy_merge_s": t_cpu, "batched_s": t_dev,
                     "device": str(device), "identical": same})  # fmt: skip
        print(f"{n:>9} {args.sets:>5} {t_cpu * 1e3:>10.1f} ms {t_dev * 1e3:>8.1f} ms "
              f"{t_dev / args.sets * 1e3:>7.1f} ms {t_cpu / t_dev:>5.2f}x  "
              f"{'yes' if same else 'NO'}", flush=True)  # fmt: skip
    return rows


if __name__ == "__main__":
    main()
