"""ONNX export speed: single-event latency at one thread (the basf2 situation) and batched
throughput, onnxruntime against PyTorch eager in the same run.

    python benchmarks/export.py [--models gatgap32,gatgap32_gatv2,deepsets,transformer,lorentz]
        [--events 500] [--source pythia|synthetic] [--batch-size 128] [--repeat 5] [--out FILE.json]

Each model (random weights, seed 0, one skim) is exported with :func:`smartbkg.export.export_graph`
(the single-event graph of the Belle II interface and the padded-batch graph); the events are
the embedded Pythia sample after the Belle II preprocessing (or synthetic decay trees).

* Single event: every event is run alone, ``--repeat`` passes over all events; per event the
  fastest of the passes counts (the least disturbed by other processes on a shared machine), and
  the figure is the mean over events in ms; also the mean of whole passes. onnxruntime runs the
  single-event graph with one intra-op thread; PyTorch runs the model's own forward on a
  one-event ``Batch`` with ``torch.set_num_threads(1)`` (the ``Batch`` is built outside the
  timing).
* Batched: batches of ``--batch-size`` events, one thread for both; events/s of the fastest pass.

The JSON goes to ``benchmarks/results/export_cpu.json`` by default, with the machine, its load
average before and after, and the versions. Timings on a shared machine are noisy.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime
import torch

from data_pipeline import cpu_model  # the script's folder is on the path
from smartbkg.data.graphs import GraphStore
from smartbkg.data.preprocess import preprocess
from smartbkg.data.readers import read_events
from smartbkg.data.synthetic import decay_trees
from smartbkg.export.exporter import export_graph
from smartbkg.export.runtime import EVENT_INPUTS, batch_graph_path, inference_session, padded_inputs
from smartbkg.models import build_model
from smartbkg.models.layers import count_parameters

#: name -> (registry name, options) of the benchmarked models (CPU sizes; gatgap32 is Belle II's).
MODELS = {
    "gatgap32": ("gatgap", {"units": 32, "layers": 6, "heads": 4}),
    "gatgap32_gatv2": ("gatgap", {"units": 32, "layers": 6, "heads": 4, "attention": "gatv2"}),
    "deepsets": ("deepsets", {"hidden": 64, "layers": 3}),
    "transformer": ("transformer", {"dim": 64, "heads": 4, "blocks": 4, "cls_blocks": 2,
                                    "pair_hidden": 32}),
    "lorentz": ("lorentz", {"dim": 64, "heads": 4, "blocks": 4, "cls_blocks": 2, "pair_hidden": 32}),
}


def load_table(source, n_events, seed):
    """The benchmark events: the preprocessed Pythia sample or synthetic decay trees."""
    if source == "synthetic":
        return decay_trees(n_events, num_particles=40, seed=seed)
    from smartbkg.simulation import produce

    with tempfile.TemporaryDirectory(prefix="smartbkg-bench-export-") as folder:
        produce(Path(folder) / "sample", n_events, seed=seed)
        table, _ = preprocess(read_events([Path(folder) / "sample"]))
    return table


def best_of(run, items, repeat):
    """(mean over items of the fastest of ``repeat`` timings, mean of whole passes), seconds."""
    fastest = np.full(len(items), np.inf)
    passes = []
    for _ in range(repeat):
        start = time.perf_counter()
        for k, item in enumerate(items):
            t0 = time.perf_counter()
            run(item)
            fastest[k] = min(fastest[k], time.perf_counter() - t0)
        passes.append((time.perf_counter() - start) / len(items))
    return float(fastest.mean()), float(np.mean(passes))


def bench_model(name, store, args, folder):
    kind, options = MODELS[name]
    torch.manual_seed(0)
    model = build_model(kind, num_skims=1, **options).eval()
    path = Path(folder) / f"{name}.onnx"
    start = time.perf_counter()
    export_graph(model, path)
    export_graph(model, batch_graph_path(path), batched=True)
    export_s = time.perf_counter() - start

    events = [store.batch([i]) for i in range(len(store))]
    feeds = []
    for batch in events:
        inputs = padded_inputs(batch)
        feeds.append({"x": inputs["x"][0], "pdg": inputs["pdg"][0], "mother": inputs["mother"][0],
                      "c": inputs["c"]})
    assert list(feeds[0]) == list(EVENT_INPUTS)
    session = inference_session(path, threads=1)
    with torch.no_grad():
        onnx_min, onnx_mean = best_of(lambda f: session.run(None, f), feeds, args.repeat)
        torch_min, torch_mean = best_of(model, events, args.repeat)

        groups = [range(lo, min(lo + args.batch_size, len(store)))
                  for lo in range(0, len(store), args.batch_size)]
        batches = [store.batch(g) for g in groups]
        padded = [padded_inputs(b) for b in batches]
        batch_session = inference_session(batch_graph_path(path), threads=1)
        onnx_batch, _ = best_of(lambda p: batch_session.run(None, p), padded, args.repeat)
        torch_batch, _ = best_of(model, batches, args.repeat)
    per_batch = len(store) / len(batches)
    return {
        "model": kind, "options": options, "parameters": count_parameters(model),
        "export_s": export_s, "onnx_bytes": path.stat().st_size,
        "event_ms": {"onnxruntime": onnx_min * 1e3, "pytorch": torch_min * 1e3},
        "event_ms_pass_mean": {"onnxruntime": onnx_mean * 1e3, "pytorch": torch_mean * 1e3},
        "batch_events_per_s": {"onnxruntime": per_batch / onnx_batch,
                               "pytorch": per_batch / torch_batch},
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=",".join(MODELS))
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--source", choices=("pythia", "synthetic"), default="pythia")
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results") / "export_cpu.json")
    args = parser.parse_args(argv)
    names = [m for m in args.models.split(",") if m]
    unknown = sorted(set(names) - set(MODELS))
    if unknown:
        parser.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    torch.set_num_threads(1)
    load_before = os.getloadavg()[0]
    table = load_table(args.source, args.events, args.seed)
    store = GraphStore(table)
    results = {
        "command": "python benchmarks/export.py " + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": {"platform": platform.platform(), "processor": cpu_model(), "cpu_count": os.cpu_count(),
                    "load_average_1min_before": load_before, "python": platform.python_version(),
                    "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                    "threads": 1},
        "events": len(store), "source": args.source,
        "mean_particles": float(np.mean(table.counts)), "max_particles": int(np.max(table.counts)),
        "batch_size": args.batch_size, "repeat": args.repeat, "models": {},
    }
    with tempfile.TemporaryDirectory(prefix="smartbkg-bench-export-") as folder:
        for name in names:
            print(f"{name} {MODELS[name][1]}", flush=True)
            results["models"][name] = bench_model(name, store, args, folder)
    results["machine"]["load_average_1min_after"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"{len(store)} events ({args.source}, {results['mean_particles']:.1f} particles on average), "
          "one thread; single event: mean over events of the fastest of "
          f"{args.repeat} passes; batched: {args.batch_size} events per batch")
    for name, r in results["models"].items():
        e, b = r["event_ms"], r["batch_events_per_s"]
        print(f"{name:15s} {r['parameters']:>9,d} params  one event: onnxruntime {e['onnxruntime']:.3f} ms, "
              f"pytorch {e['pytorch']:.3f} ms  batched: onnxruntime {b['onnxruntime']:,.0f} events/s, "
              f"pytorch {b['pytorch']:,.0f} events/s")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
