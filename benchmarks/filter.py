"""End-to-end filter throughput: read -> preprocess + graph -> network -> calibration -> draw -> write.

    python benchmarks/filter.py [--events 20000] [--models gatgap32,transformer] [--threads 1]
        [--repeat 3] [--batch-size 1024] [--device cpu] [--run-events 3000] [--cache-dir DIR]
        [--out benchmarks/results/filter_cpu.json]

For each model a run folder is trained once (cached in ``--cache-dir``: ``--run-events`` events of
the embedded sample, seed 1, skim ``tau_generic``, one epoch, entropy loss; throughput does not
depend on how well the network is trained, only the kept fraction does, through the writing).
The input is a separate embedded sample of ``--events`` events (seed 101, parquet shards, full
generator records as ``smartbkg-generate`` writes them), filtered with
:func:`smartbkg.filter.apply_filter` exactly as ``smartbkg-filter`` does, after one untimed
warm-up pass over the first shard. Figures per model: ms/event end to end (CPU time of the
process and wall time; with ``--threads 1`` the CPU time is per core), the wall time of each
stage and the network's share of the CPU time; the pass of median CPU time and the best of
``--repeat`` passes.

Models: ``gatgap32`` (Belle II GAT + GAP: 6 layers, 4 heads, 32 units), ``transformer`` (the
package defaults: 8 + 2 blocks, 8 heads, width 128) and ``deepsets_emulation`` (deepsets, 128
units, 4 layers, with the generator-level skim emulation as event features, which the filter
computes in its ``prepare`` stage: the filter chain of the filters measured against the
oracle). With ``--device cuda`` the network runs on the GPU and events/s are recorded (the JSON
goes to ``filter_gpu.json``). Timings on a shared machine are noisy; the JSON records the load
average before and after.
"""

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import zlib
from pathlib import Path

import torch

from generate import clocks
from smartbkg.data.skim_emulation import FEATURES as EMULATION_FEATURES
from smartbkg.filter import Filter, apply_filter
from smartbkg.simulation import produce
from smartbkg.train.config import RunConfig
from smartbkg.train.loop import train
from train import machine

#: name -> (model, options, with the skim emulation as event features).
MODELS = {"gatgap32": ("gatgap", {"units": 32, "layers": 6, "heads": 4}, False),
          "transformer": ("transformer", {}, False),
          "deepsets_emulation": ("deepsets", {"hidden": 128, "layers": 4}, True)}
STAGES = ("read_s", "prepare_s", "network_s", "calibration_s", "decide_s", "write_s")


def trained_run(cache, model, options, event_features, *, skims, events, epochs):
    """A run folder of ``model`` trained on ``events`` events of the embedded sample (seed 1) for
    ``epochs`` epochs on ``skims`` (entropy loss), with or without ``event_features``, cached in
    ``cache`` and trained on first use."""
    # the number of emulation features in the tag: a run of another emulation would be refused
    tag = zlib.crc32(json.dumps([options, event_features and len(EMULATION_FEATURES)], sort_keys=True).encode())
    folder = cache / f"run-{model}-{'+'.join(skims)}-{events}ev-{epochs}ep-{tag:08x}"
    if not (folder / "calibration.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        print(f"training a run folder for {model} ({events} events, {epochs} epoch(s), skims {skims})")
        train(RunConfig.from_dict({
            "data": {"generate_events": events, "generate_seed": 1, "cache_dir": str(cache / "train-data"),
                     "skims": list(skims), "batch_size": 128, "event_features": event_features},
            "model": {"name": model, "options": options},
            "train": {"epochs": epochs, "quiet": True, "patience": None, "device": "cpu"},
            "out": str(folder),
        }))
    return folder


def sample(args, cache):
    folder = cache / f"input-{args.events}ev-seed101"
    if not (folder / "metadata.json").is_file():
        shutil.rmtree(folder, ignore_errors=True)
        produce(folder, args.events, seed=101, events_per_shard=max(args.events // 4, 1))
    return folder


def bench(name, run, data, args):
    flt_options = {"device": args.device, "batch_size": args.batch_size}
    scratch = Path(tempfile.mkdtemp(prefix="smartbkg-bench-filter-"))
    try:
        warm = sorted(data.glob("*.parquet"))[0]
        apply_filter(Filter.from_run(run, **flt_options), warm, scratch / "warm")
        passes = []
        for k in range(args.repeat):
            flt = Filter.from_run(run, **flt_options)
            wall, cpu = clocks()
            summary = apply_filter(flt, data, scratch / f"pass{k}", seed=k)
            if flt.backend.device.type == "cuda":
                torch.cuda.synchronize()
            wall2, cpu2 = clocks()
            n = summary["events"]
            passes.append({"wall_ms_per_event": 1e3 * (wall2 - wall) / n, "cpu_ms_per_event": 1e3 * (cpu2 - cpu) / n,
                           "network_ms_per_event": summary["timing"]["network_ms_per_event"],
                           "network_cpu_ms_per_event": 1e3 * flt.timing["network_cpu"] / n,
                           "network_share": flt.timing["network_cpu"] / (cpu2 - cpu),
                           "stages_ms_per_event": {s[:-2]: 1e3 * summary["timing"][s] / n for s in STAGES},
                           "kept_fraction": summary["kept_fraction"]["observed"], "events": n})
            print(f"  {name} pass {k + 1}: {passes[-1]['cpu_ms_per_event']:.4f} ms/event CPU, "
                  f"{passes[-1]['wall_ms_per_event']:.4f} wall, network share of the CPU time "
                  f"{passes[-1]['network_share']:.2f}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    median = passes[sorted(range(len(passes)), key=lambda i: passes[i]["cpu_ms_per_event"])[len(passes) // 2]]
    result = {
        "parameters": sum(p.numel() for p in Filter.from_run(run).backend.model.parameters()),
        "median": median,
        "best_cpu_ms_per_event": min(p["cpu_ms_per_event"] for p in passes),
        "best_wall_ms_per_event": min(p["wall_ms_per_event"] for p in passes),
        "events_per_s_wall": 1e3 / statistics.median(p["wall_ms_per_event"] for p in passes),
        "passes": passes,
    }
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events of the input sample")
    parser.add_argument("--models", default="gatgap32,transformer")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: figures per core)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=1024)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--run-events", type=int, default=3000, help="events of each model's training run")
    parser.add_argument("--cache-dir", default=str(Path(tempfile.gettempdir()) / "smartbkg-bench-cache"))
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    device = torch.device(args.device)
    kind = "gpu" if device.type == "cuda" else "cpu"
    out = Path(args.out or Path(__file__).parent / "results" / f"filter_{kind}.json")
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    names = [m for m in args.models.split(",") if m]
    unknown = [m for m in names if m not in MODELS]
    if unknown:
        parser.error(f"unknown model(s) {unknown}; known: {list(MODELS)}")
    runs = {name: trained_run(cache, *MODELS[name], skims=["tau_generic"], events=args.run_events, epochs=1)
            for name in names}
    data = sample(args, cache)
    load_before = list(os.getloadavg())
    results = {"command": "python benchmarks/filter.py " + " ".join(sys.argv[1:] if argv is None else argv),
               "machine": machine(device), "load_average_before": load_before, "events": args.events,
               "batch_size": args.batch_size, "target_gatgap32_ms_per_event": 0.15, "models": {}}
    for name in names:
        print(name)
        results["models"][name] = bench(name, runs[name], data, args)
    results["load_average_after"] = list(os.getloadavg())
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    for name, r in results["models"].items():
        m = r["median"]
        print(f"{name:12s} {r['parameters']:>9,d} params  end to end {m['cpu_ms_per_event']:.4f} ms/event CPU "
              f"({m['wall_ms_per_event']:.4f} wall, {r['events_per_s_wall']:,.0f} events/s), network "
              f"{m['network_cpu_ms_per_event']:.4f} ms/event CPU ({100 * m['network_share']:.0f} % of the CPU time)")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
