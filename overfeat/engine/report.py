"""Render a training run's recorded data into ``reports/training/`` (nothing typed by hand).

``overfeat train report RUN_DIR --out reports/training --name toy`` copies the run's
``metrics.jsonl``, ``config.json`` and ``command.txt`` as ``NAME_metrics.jsonl`` etc., writes the
per-epoch table as ``NAME_epochs.csv`` and renders ``NAME.md`` from those files alone.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
from pathlib import Path

from overfeat.engine.metrics_log import read_metrics

__all__ = ["EPOCH_COLUMNS", "chance_top5_error", "render_training_report"]

EPOCH_COLUMNS = (
    "epoch", "global_step", "lr", "train_loss", "train_top1_error", "train_top5_error",
    "val_loss", "val_top1_error", "val_top5_error", "train_images", "train_skipped",
    "val_images", "val_skipped", "seconds",
)  # fmt: skip


def chance_top5_error(num_classes: int) -> float:
    """Top-5 error of guessing: the true class is among 5 random guesses with p = 5 / C."""
    return max(0.0, 1.0 - 5.0 / num_classes)


def _finite_or_inf(value) -> float:
    return value if isinstance(value, (int, float)) and math.isfinite(value) else math.inf


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def render_training_report(run_dir: str | os.PathLike, out: str | os.PathLike, name: str) -> Path:
    """Copy the run's data into ``out`` and render ``out/NAME.md`` from the copies."""
    run_dir, out = Path(run_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for src, dst in (("metrics.jsonl", "metrics.jsonl"), ("config.json", "config.json"),
                     ("command.txt", "command.txt"), ("environment.json", "environment.json")):  # fmt: skip
        if (run_dir / src).exists():
            shutil.copyfile(run_dir / src, out / f"{name}_{dst}")
    config = json.loads((out / f"{name}_config.json").read_text())
    synthetic = Path(config.get("data", "")) / "synthetic.json"
    if config.get("data") and synthetic.exists():
        # The generator's parameters, so the report names the data as a command too.
        data_config = json.loads(synthetic.read_text()).get("config", {})
        (out / f"{name}_data.json").write_text(json.dumps(data_config, indent=1) + "\n")
    records = read_metrics(out / f"{name}_metrics.jsonl")
    epochs = [r for r in records if r["kind"] == "epoch"]
    if not epochs:
        raise ValueError(f"{run_dir}/metrics.jsonl holds no finished epoch; nothing to report")
    with open(out / f"{name}_epochs.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=EPOCH_COLUMNS, extrasaction="ignore")
        w.writeheader()
        w.writerows(epochs)
    command = (out / f"{name}_command.txt").read_text().strip() if (
        out / f"{name}_command.txt").exists() else "(not recorded)"  # fmt: skip
    data_path = out / f"{name}_data.json"
    if data_path.exists():
        d = json.loads(data_path.read_text())
        flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in sorted(d.items()))
        command = f"overfeat make-synthetic {config['data']} {flags}\n{command}"
    env_path = out / f"{name}_environment.json"
    env = json.loads(env_path.read_text()) if env_path.exists() else {}
    num_classes = env.get("num_classes")
    last = epochs[-1]
    # An epoch whose every validation image was skipped has a NaN error: never the best.
    best = min(epochs, key=lambda r: _finite_or_inf(r.get("val_top5_error")))
    minutes = sum(r["seconds"] for r in epochs) / 60
    lines = [
        f"# Training run `{name}`",
        "",
        f"Rendered by `overfeat train report` from `{name}_metrics.jsonl`, `{name}_config.json`,",
        f"`{name}_command.txt`, `{name}_environment.json` and (synthetic data) `{name}_data.json`;",
        f"`{name}_epochs.csv` is the table below.",
        "",
        "Command:",
        "",
        "```bash",
        command,
        "```",
        "",
        f"Network `{config['arch']}` at width {config['width']}, recipe `{config['recipe']}`: "
        f"batch {config['batch_size']}, lr {config['lr']}, momentum {config['momentum']}, "
        f"weight decay {config['weight_decay']}, dropout {config['dropout']}, init "
        f"`{config['init']}`, milestones {config['lr_milestones']}, {config['epochs']} epochs.",
    ]
    if env:
        lines.append(
            f"Ran on {env.get('device', '?')} ({env.get('cpu_count', '?')} CPU cores, "
            f"{env.get('world_size', 1)} process(es), torch {env.get('torch', '?')}), "
            f"{minutes:.1f} minutes of training and validation."
        )
    lines.append("")
    if num_classes:
        chance = chance_top5_error(num_classes)
        lines += [
            f"**Result:** validation top-5 error {last['val_top5_error']:.3f} after the last "
            f"epoch (best {best['val_top5_error']:.3f}, epoch {best['epoch']}), against "
            f"{chance:.3f} for chance with {num_classes} classes (1 − 5/{num_classes}); top-1 "
            f"error {last['val_top1_error']:.3f} against {1 - 1 / num_classes:.3f}.",
            "",
        ]
    if _plot(epochs, num_classes, out / f"{name}.png"):
        lines += [f"![validation and training error per epoch]({name}.png)", ""]
    cols = [c for c in EPOCH_COLUMNS if c in last]
    lines += ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_fmt(r.get(c, "")) for c in cols) + " |" for r in epochs]
    md = out / f"{name}.md"
    md.write_text("\n".join(lines) + "\n")
    return md


def _plot(epochs: list[dict], num_classes: int | None, path: Path) -> bool:
    """Error curves per epoch (PNG); skipped, returning False, where matplotlib is absent."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    x = [r["epoch"] + 1 for r in epochs]
    fig, ax = plt.subplots(figsize=(6, 3.5), dpi=100)
    for key, style in (("val_top5_error", "-o"), ("val_top1_error", "-s"),
                       ("train_top5_error", "--"), ("train_top1_error", ":")):  # fmt: skip
        if key in epochs[-1]:
            ax.plot(x, [r[key] for r in epochs], style, label=key.replace("_", " "))
    if num_classes:
        ax.axhline(chance_top5_error(num_classes), color="grey", lw=1, label="chance top-5")
    ax.set_xlabel("epochs trained")
    ax.set_ylabel("error")
    ax.set_ylim(0, 1)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True
