"""Training speed: time to reach a validation AUC, and training events per second, per model.

    python benchmarks/train.py [--models gatgap,deepsets,transformer,lorentz] [--events 20000]
        [--target-auc 0.92] [--epochs 8] [--stop-at-target] [--device auto] [--threads N] [--out FILE.json]

Trains each model with the one training loop (:class:`smartbkg.train.loop.Trainer`) on the
embedded sample (generated once, cached in ``--cache-dir``), skim ``tau_generic``, entropy loss,
AdamW lr 1e-3, batch 128, and records after every epoch the validation AUC, the cumulative
training time (forward, backward, optimiser: the loop's time without validation) and the wall
time including validation and checkpoints. Reports per model: parameters, training events/s
(median over epochs after the first, which includes warm-up), and the time until the validation
AUC first reaches ``--target-auc`` (training time and wall time; null if never reached).

Models use CPU-sized settings by default (``--model-options`` takes JSON per model to change
them). On a GPU the loop uses bf16 autocast. The JSON goes to
``benchmarks/results/train_{cpu,gpu}.json`` by default, with the machine and torch version.
Timings on a shared machine are noisy; the figures are what one run measured.
"""

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from smartbkg.metrics import auc
from smartbkg.models.layers import count_parameters
from smartbkg.train.config import RunConfig
from smartbkg.train.loop import Trainer

#: Model settings used on CPU unless --model-options says otherwise.
CPU_OPTIONS = {
    "gatgap": {"units": 32, "layers": 6, "heads": 4},
    "deepsets": {"hidden": 64, "layers": 3},
    "transformer": {"dim": 64, "heads": 4, "blocks": 4, "cls_blocks": 2, "pair_hidden": 32},
    "lorentz": {"dim": 64, "heads": 4, "blocks": 4, "cls_blocks": 2, "pair_hidden": 32},
}


def machine(device):
    info = {"python": platform.python_version(), "torch": torch.__version__, "platform": platform.platform(),
            "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


def bench_model(name, options, args, cache_dir, run_root):
    config = RunConfig.from_dict({
        "data": {"generate_events": args.events, "generate_seed": args.seed, "cache_dir": str(cache_dir),
                 "skims": ["tau_generic"], "batch_size": args.batch_size, "test_fraction": 0.0},
        "model": {"name": name, "options": options},
        "loss": {"name": "entropy"},
        "train": {"epochs": args.epochs, "lr": args.lr, "patience": None, "device": args.device,
                  "quiet": True, "calibrate_every_epoch": False},
        "out": str(run_root / name),
    })
    trainer = Trainer(config)
    records, train_time, start = [], 0.0, time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        stats = trainer.train_epoch(epoch)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        train_time += time.perf_counter() - t0
        pred = trainer.predict(trainer.val_loader)
        val_auc = auc(pred.y[:, 0].numpy(), pred.logits[:, 0].double().numpy(), weight=pred.weight.numpy())
        records.append({"epoch": epoch, "val_auc": val_auc, "train_s": train_time,
                        "wall_s": time.perf_counter() - start, "events_per_s": stats["train/events_per_s"],
                        "train_loss": stats["train/loss"]})
        print(f"  {name} epoch {epoch}: val AUC {val_auc:.4f}, train {train_time:.1f} s, "
              f"{stats['train/events_per_s']:.0f} events/s")
        if args.stop_at_target and val_auc >= args.target_auc:
            break
    reached = next((r for r in records if r["val_auc"] >= args.target_auc), None)
    rates = [r["events_per_s"] for r in records[1:]] or [records[0]["events_per_s"]]
    return {
        "options": options,
        "parameters": count_parameters(trainer.model),
        "train_events": len(trainer.splits.train),
        "val_events": len(trainer.splits.val),
        "train_events_per_s": statistics.median(rates),
        "target_auc": args.target_auc,
        "reached_target": reached is not None,
        "epochs_to_target": reached["epoch"] if reached else None,
        "train_s_to_target": reached["train_s"] if reached else None,
        "wall_s_to_target": reached["wall_s"] if reached else None,
        "best_val_auc": max(r["val_auc"] for r in records),
        "epochs": records,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="gatgap,deepsets,transformer,lorentz")
    parser.add_argument("--model-options", default="{}", help="JSON {model: {option: value}} overriding defaults")
    parser.add_argument("--events", type=int, default=20000, help="events of the embedded sample (80 %% train)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--target-auc", type=float, default=0.92)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--stop-at-target", action="store_true", help="stop a model once it reaches the target")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "smartbkg-bench-cache"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = json.loads(args.model_options)
    # the Trainer's device (train.device): auto is the GPU when there is one
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    out = Path(args.out or Path(__file__).parent / "results" / f"train_{'gpu' if device.type == 'cuda' else 'cpu'}.json")
    run_root = Path(tempfile.mkdtemp(prefix="smartbkg-bench-train-"))
    results = {"command": "python benchmarks/train.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": machine(device), "events": args.events, "skim": "tau_generic",
               "batch_size": args.batch_size, "lr": args.lr, "models": {}}
    try:
        for name in [m for m in args.models.split(",") if m]:
            options = {**CPU_OPTIONS.get(name, {}), **overrides.get(name, {})}
            print(f"{name} {options}")
            results["models"][name] = bench_model(name, options, args, Path(args.cache_dir), run_root)
    finally:
        shutil.rmtree(run_root, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    for name, r in results["models"].items():
        reached = (f"AUC {args.target_auc} after {r['epochs_to_target']} epochs, {r['train_s_to_target']:.1f} s "
                   f"training ({r['wall_s_to_target']:.1f} s wall)" if r["reached_target"]
                   else f"AUC {args.target_auc} not reached (best {r['best_val_auc']:.4f})")
        print(f"{name:12s} {r['parameters']:>9,d} params  {r['train_events_per_s']:8.0f} train events/s  {reached}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
