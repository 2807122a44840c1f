"""Benchmark: the toolkit's training step against a minimal hand-written PyTorch loop.

    OMP_NUM_THREADS=1 python benchmarks/train_step.py --device auto --threads 1

For each network family (paper28 on 1x28x28, paper32 on 3x32x32) it times
``toolkit.train.Trainer.train_step`` and the hand-written loop of ``baseline_loop.py`` (same
networks from the same factories, same latent layout, same losses), after ``--warmup`` steps,
``--repeats`` times ``--steps`` steps each (the two implementations take turns), and reports
the median steps/s and images/s. It prints a table and appends a section to ``--output``
(default ``benchmarks/RESULTS.md``). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # baseline_loop sits next to this file
    sys.path.insert(0, str(HERE))

import baseline_loop
import torch

from toolkit.distributed import pick_device
from toolkit.errors import ToolkitError

# speed presets (train.speed in a recipe); "a+b" merges presets
SPEED_PRESETS = {
    "default": {},
    "off": {"precision": "fp32", "channels_last": False, "compile": False, "optimizer": "loop"},
    "channels_last": {"channels_last": True},
    "bf16": {"precision": "bf16"},
    "compile": {"compile": True},
    "fused": {"optimizer": "fused"},
    "foreach": {"optimizer": "foreach"},
    "loop": {"optimizer": "loop"},
}


def speed_options(config: str) -> dict:
    merged = {}
    for part in config.split("+"):
        merged.update(SPEED_PRESETS[part])
    return merged


# -- the two implementations ---------------------------------------------------------------
def toolkit_recipe(family: str, batch_size: int, images: int, width: float, device: str,
                   labeled: int = baseline_loop.LABELED, speed: dict | None = None) -> dict:
    """A recipe like recipes/mnist.yaml on the in-process ``synthetic`` dataset."""
    layout = baseline_loop.FAMILIES[family]
    channels, size, _ = layout["shape"]
    categorical, continuous = baseline_loop.variable_names(family)
    variables = {}
    for i, (name, classes) in enumerate(zip(categorical, layout["categorical"])):
        variables[name] = {"kind": "categorical", "label": "shape"} if i == 0 else {"kind": "categorical", "classes": classes}
    variables.update({name: {"kind": "continuous"} for name in continuous})
    w, ramp = baseline_loop.WEIGHTS, baseline_loop.RAMP
    return {
        "name": f"bench-{family}",
        "seed": 0,
        "data": {"dataset": "synthetic",
                 "options": {"n": images, "size": size, "channels": channels, "classes": layout["categorical"][0]},
                 "labels": labeled, "labeled_ramp": ramp},
        "latent": {"u": {"size": layout["u"]}, "variables": variables},
        "model": {"network": family, "options": {"width": width}},
        "losses": {"sup": {"weight": w["sup"]}, "rec": {"weight": w["rec"]},
                   "info": {"weight": w["info"], "ramp": ramp}, "adv": {"weight": w["adv"], "ramp": ramp}},
        "optim": {"batch_size": batch_size, "lr_d": baseline_loop.LR_D, "lr_ge": baseline_loop.LR_GE,
                  "betas": list(baseline_loop.BETAS)},
        "train": {"steps": 10**6, "device": device, "speed": dict(speed or {})},
    }


@contextlib.contextmanager
def synthetic_dataset_registered():
    """Dataset ``synthetic`` (toolkit.testing), registered in-process unless it already is."""
    from toolkit.plugins import registry
    from toolkit.testing import SyntheticPlugin, plugin_registered

    if "synthetic" in registry("dataset"):
        yield
        return
    with plugin_registered(SyntheticPlugin(), "benchmark-synthetic"):
        yield


class ToolkitRunner:
    """``Trainer.train_step`` as ``Trainer.run`` calls it (losses read back once per timed block)."""

    def __init__(self, family, batch_size, images, width, device, run_dir, config: str = "default"):
        from toolkit.plugins import resolve
        from toolkit.recipe import parse_recipe
        from toolkit.train import Trainer

        self.name = f"toolkit {config}"
        options = speed_options(config)
        recipe = resolve(parse_recipe(toolkit_recipe(family, batch_size, images, width, str(device), speed=options)))
        self.trainer = Trainer(recipe, Path(run_dir), str(device))
        self.trainer.networks.train()

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.trainer.networks.parameters())

    def step(self, step: int) -> None:
        self.trainer.step = step
        self.trainer.train_step(step)

    def end_block(self) -> None:
        self.trainer.read_losses()  # what run() does every log_every steps: one host synchronisation


class BaselineRunner:
    name = "baseline"

    def __init__(self, family, batch_size, images, width, device):
        self.loop = baseline_loop.BaselineLoop(family, batch_size, images, width, device)
        self.last = {}

    def parameter_count(self) -> int:
        return self.loop.parameter_count()

    def step(self, step: int) -> None:
        self.last = self.loop.step(step)  # .item() on every loss, every step

    def end_block(self) -> None:
        pass


# -- timing --------------------------------------------------------------------------------
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_block(runner, first_step: int, steps: int, device: torch.device) -> float:
    """Seconds for ``steps`` steps, the device synchronised before both clock readings."""
    synchronize(device)
    start = time.perf_counter()
    for i in range(steps):
        runner.step(first_step + i)
    runner.end_block()
    synchronize(device)
    return time.perf_counter() - start


def bench_family(family: str, args, device: torch.device, run_dir: Path) -> list[dict]:
    runners = [ToolkitRunner(family, args.batch_size, args.images, args.width, device, run_dir / family / config, config)
               for config in args.configs]
    runners.append(BaselineRunner(family, args.batch_size, args.images, args.width, device))
    counts = {r.name: r.parameter_count() for r in runners}
    if len(set(counts.values())) != 1:
        raise RuntimeError(f"{family}: the two implementations built different networks: {counts}")
    step = 1
    if args.warmup:
        for runner in runners:
            time_block(runner, step, args.warmup, device)
        step += args.warmup
    rates = {r.name: [] for r in runners}
    for repeat in range(args.repeats):
        order = runners if repeat % 2 == 0 else runners[::-1]  # take turns, so drift hits both
        for runner in order:
            seconds = time_block(runner, step, args.steps, device)
            rates[runner.name].append(args.steps / seconds)
        step += args.steps
    base = statistics.median(rates["baseline"])
    rows = []
    for name in [r.name for r in runners]:
        median = statistics.median(rates[name])
        rows.append({"family": family, "implementation": name, "steps_per_s": median,
                     "images_per_s": median * args.batch_size, "speedup": median / base,
                     "min": min(rates[name]), "max": max(rates[name]), "parameters": counts[name]})
    return rows


# -- reporting -----------------------------------------------------------------------------
def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return f"CPU: {line.split(':', 1)[1].strip()} ({os.cpu_count()} logical cores)"
    except OSError:
        pass
    return f"CPU: {platform.processor() or platform.machine()} ({os.cpu_count()} logical cores)"


def git_revision() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True,
                             timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], check=False, cwd=HERE,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + (" (with uncommitted changes)" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def table(rows: list[dict]) -> str:
    lines = ["| family | implementation | steps/s | images/s | speed-up vs baseline | steps/s range |",
             "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['family']} | {r['implementation']} | {r['steps_per_s']:.2f} | {r['images_per_s']:.0f} "
                     f"| {r['speedup']:.2f}x | {r['min']:.2f}-{r['max']:.2f} |")
    return "\n".join(lines)


def section(rows: list[dict], args, device: torch.device, command: str) -> str:
    omp = os.environ.get("OMP_NUM_THREADS")
    threads = f"{torch.get_num_threads()} (torch.get_num_threads)" + (f", OMP_NUM_THREADS={omp}" if omp else "")
    params = ", ".join(f"{r['family']} {r['parameters'] / 1e6:.2f}M" for r in rows if r["implementation"] == "baseline")
    when = datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")
    return "\n".join([
        f"## {when}: {device_name(device)}",
        "",
        f"- command: `{command}`",
        f"- device: `{device}`",
        f"- threads: {threads}",
        f"- torch {torch.__version__}, python {platform.python_version()}, {platform.platform()}",
        f"- commit: {git_revision()}",
        (f"- batch size {args.batch_size}, width {args.width}, {args.images} images on the device; "
         f"warm-up steps: {args.warmup}, then the median of {args.repeats} repeat(s) of {args.steps} steps"),
        f"- parameters (G+E+D): {params}",
        "",
        table(rows),
        "",
    ])


def append_results(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    new = not path.exists() or not path.read_text().strip()
    with open(path, "a") as f:
        if new:
            f.write("# Training-step benchmark results\n\nWritten by `benchmarks/train_step.py`; "
                    "see benchmarks/README.md for how to read them. Newest at the bottom.\n\n")
        else:
            f.write("\n")
        f.write(text)


# -- command line --------------------------------------------------------------------------
def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default: auto)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--steps", type=int, default=20, help="timed steps per repeat")
    p.add_argument("--warmup", type=int, default=5, help="untimed steps first, per implementation")
    p.add_argument("--repeats", type=int, default=3, help="timed blocks per implementation; the median is reported")
    p.add_argument("--families", default="paper28,paper32", help="comma-separated: " + ", ".join(baseline_loop.FAMILIES))
    p.add_argument("--width", type=float, default=1.0, help="channel multiplier of the networks (1 = the paper's)")
    p.add_argument("--images", type=int, default=2048, help="images held on the device (random batches are drawn from them)")
    p.add_argument("--configs", default="default",
                   help="comma-separated speed settings of the toolkit's step, each a preset or presets joined "
                        "by '+' (e.g. off,default,channels_last+compile); presets: " + ", ".join(SPEED_PRESETS))
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads(N) (default: torch's choice)")
    p.add_argument("--output", type=Path, default=HERE / "RESULTS.md", help="markdown file the results are appended to")
    args = p.parse_args(argv)
    args.families = [f.strip() for f in args.families.split(",") if f.strip()]
    unknown = [f for f in args.families if f not in baseline_loop.FAMILIES]
    if unknown or not args.families:
        p.error(f"--families: unknown {unknown}; choose from {', '.join(baseline_loop.FAMILIES)}")
    for name in ("batch_size", "steps", "repeats"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be at least 1")
    args.configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    bad = [c for c in args.configs if any(part not in SPEED_PRESETS for part in c.split("+"))]
    if bad or not args.configs:
        p.error(f"--configs: unknown {bad}; presets: {', '.join(SPEED_PRESETS)} (join with '+')")
    if args.images < 2 * baseline_loop.LABELED:
        p.error(f"--images must be at least {2 * baseline_loop.LABELED} ({baseline_loop.LABELED} of them are labeled)")
    if args.warmup < 0 or (args.threads is not None and args.threads < 1) or args.width <= 0:
        p.error("--warmup must be >= 0, --threads >= 1 and --width > 0")
    return args


def main(argv: list[str] | None = None) -> list[dict]:
    """Run the benchmark; returns one row per (family, implementation)."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    command = shlex.join(["python", "benchmarks/train_step.py", *argv])
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    try:
        device = pick_device(args.device)
    except ToolkitError as exc:
        raise SystemExit(f"error: {exc}") from None
    print(f"{device_name(device)}; {torch.get_num_threads()} threads; torch {torch.__version__}", flush=True)
    rows = []
    with synthetic_dataset_registered(), tempfile.TemporaryDirectory(prefix="toolkit-bench-") as tmp:
        for family in args.families:
            print(f"{family}: warm-up {args.warmup}, {args.repeats} x {args.steps} steps per implementation ...", flush=True)
            rows += bench_family(family, args, device, Path(tmp))
    print(table(rows))
    append_results(args.output, section(rows, args, device, command))
    print(f"appended to {args.output}")
    return rows


if __name__ == "__main__":
    main()
