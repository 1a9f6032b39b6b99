"""Does the input pipeline keep the device fed, and what does length bucketing save?

On the embedded Pythia sample (generated once and cached, as ``benchmarks/train.py`` does), for
each model of ``--models``:

Models have the package's default sizes on a GPU (the transformer of about 2 M parameters) and
the CPU sizes of ``benchmarks/train.py`` on the CPU.

* ``load``: the training loader alone, every batch built and copied to the device (pinned,
  asynchronous on CUDA), events/s;
* ``train``: one training epoch of :meth:`smartbkg.train.Trainer.train_epoch` on the same
  batches, events/s. The in-memory loader builds batches in the main process while the device
  runs the previous step (nothing in the loop waits for the device), so the device is fed when
  ``load`` is faster than ``train``: ``feed_ratio = load / train`` above 1;
* ``padding``: the share of attention pairs that are padding when the training batches are
  padded to their longest event (the transformer and ``lorentz``), without and with length
  bucketing (``--bucket-window`` batches, :mod:`smartbkg.data.bucketing`), and the inference
  events/s of the model on the validation set in both orders.

``--device cuda`` fails (exit status 1) when no GPU is visible rather than measuring the CPU.

Usage::

    python benchmarks/feed.py [--device cuda] [--events 20000] [--models gatgap,transformer]
        [--batch-size 512] [--bucket-window 16] [--out benchmarks/results/feed_cuda.json]
"""

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from smartbkg.data.bucketing import padding_fraction
from smartbkg.train.config import RunConfig
from smartbkg.train.loop import Trainer

sys.path.insert(0, str(Path(__file__).parent))
from train import CPU_OPTIONS, machine  # noqa: E402  (the benchmark's own helpers)


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(device, work):
    """Seconds that ``work()`` takes, the device's queue drained before and after."""
    synchronize(device)
    start = time.perf_counter()
    work()
    synchronize(device)
    return time.perf_counter() - start


def trainer_for(name, args, cache_dir, out, bucket_window=None):
    config = RunConfig.from_dict({
        "data": {"generate_events": args.events, "generate_seed": args.seed, "cache_dir": str(cache_dir),
                 "skims": ["tau_generic"], "batch_size": args.batch_size, "test_fraction": 0.0,
                 "bucket_window": bucket_window},
        "model": {"name": name, "options": {} if args.device.startswith("cuda") else CPU_OPTIONS.get(name, {})},
        "loss": {"name": "entropy"},
        "train": {"epochs": 1, "patience": None, "device": args.device, "quiet": True,
                  "calibrate_every_epoch": False},
        "out": str(out),
    })
    return Trainer(config)


def load_rate(trainer):
    """Events/s of building every training batch and copying it to the device."""
    events = []

    def work():
        for batch in trainer.train_loader:
            events.append(trainer._to_device(batch).num_graphs)

    trainer.train_loader.set_epoch(1)
    seconds = timed(trainer.device, work)
    return sum(events) / seconds


def batch_counts(loader):
    """(particles per event in batch order, batch cuts) of one epoch of ``loader``."""
    loader.set_epoch(1)
    sizes = [torch.diff(batch.ptr) for batch in loader]
    counts = torch.cat(sizes).numpy()
    return counts, np.concatenate([[0], np.cumsum([len(s) for s in sizes])])


def infer_rate(trainer):
    """Events/s of predicting the validation set (after one untimed warm-up pass)."""
    trainer.predict(trainer.val_loader)
    n = len(trainer.splits.val)
    return n / timed(trainer.device, lambda: trainer.predict(trainer.val_loader))


def bench(name, args, cache_dir, run_root):
    trainer = trainer_for(name, args, cache_dir, run_root / name)
    trainer.train_epoch(1)  # warm-up: kernels, allocator, oneDNN primitives
    load = load_rate(trainer)
    seconds = timed(trainer.device, lambda: trainer.train_epoch(2))
    train = len(trainer.splits.train) / seconds
    result = {"model": name, "load_events_per_s": load, "train_events_per_s": train, "feed_ratio": load / train,
              "padding_fraction": padding_fraction(*batch_counts(trainer.train_loader)),
              "infer_events_per_s": infer_rate(trainer)}
    bucketed = trainer_for(name, args, cache_dir, run_root / f"{name}_bucketed", args.bucket_window)
    bucketed.model.load_state_dict(trainer.model.state_dict())
    result.update({"bucketed_padding_fraction": padding_fraction(*batch_counts(bucketed.train_loader)),
                   "bucketed_infer_events_per_s": infer_rate(bucketed)})
    print(f"{name}: load {load:,.0f} events/s, train {train:,.0f} events/s (feed ratio {load / train:.1f}); "
          f"padding {result['padding_fraction']:.0%} -> {result['bucketed_padding_fraction']:.0%} bucketed; "
          f"inference {result['infer_events_per_s']:,.0f} -> {result['bucketed_infer_events_per_s']:,.0f} events/s")
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", default="gatgap,transformer")
    parser.add_argument("--events", type=int, default=20000, help="events of the embedded sample (80 %% train)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--bucket-window", type=int, default=16, help="batches per bucketing window")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "smartbkg-bench-cache"))
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit(f"error: --device {args.device} but no CUDA device is visible; not measuring the CPU instead")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as run_root:
        results = [bench(name, args, args.cache_dir, Path(run_root)) for name in args.models.split(",")]
    out = args.out or Path(__file__).parent / "results" / f"feed_{device.type}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"command": " ".join(["python", "benchmarks/feed.py", *(argv or sys.argv[1:])]),
                               "machine": machine(device), "load_average_before": load_before,
                               "load_average_after": os.getloadavg()[0], "events": args.events,
                               "batch_size": args.batch_size, "bucket_window": args.bucket_window,
                               "results": results}, indent=1) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
