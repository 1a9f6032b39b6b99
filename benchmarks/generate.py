"""Events per second per core of the embedded sample: generation alone, detector + skims, end to end.

    python benchmarks/generate.py [--events 20000] [--seed 1] [--out benchmarks/results/generate.json]

Runs in one process (one core) on the default mix (in proportion to cross sections), after
a warm-up that initialises Pythia for every type (paid once per worker and type; the warm-up's
``initialisation_s`` per type is reported on its own, and no figure per event contains it, as
in ``metadata.json`` of a production). Reports wall-clock and process CPU time (the CPU figure
is less sensitive to other load on the machine), per event type and for the mix. Also compares the two ways of reading Pythia's
event record from Python: particle by particle through the bindings, and ``nextBatch``
buffers (what :mod:`smartbkg.simulation.pythia` uses).
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

from smartbkg.simulation.production import SampleConfig, run_task
from smartbkg.simulation.pythia import PythiaGenerator


def clocks():
    return time.perf_counter(), time.process_time()


def readout_comparison(n_events=1000, event_type="ccbar"):
    """Seconds per event: Pythia next() alone, next() + reading every particle, nextBatch + decoding."""
    gen = PythiaGenerator(event_type, 10.58, max_batch=n_events)
    pythia = gen._pythia
    pythia.rndm.init(1)
    t0 = time.perf_counter()
    for _ in range(n_events):
        pythia.next()
    t1 = time.perf_counter()
    event = pythia.event
    for _ in range(n_events):
        pythia.next()
        [(q.id(), q.status(), q.mother1(), q.mother2(), q.daughter1(), q.daughter2(), q.px(), q.py(), q.pz(), q.e(),
          q.xProd(), q.yProd(), q.zProd(), q.tProd()) for q in (event[i] for i in range(event.size()))]
    t2 = time.perf_counter()
    gen.generate(n_events, 2)
    t3 = time.perf_counter()
    return {"event_type": event_type, "events": n_events,
            "next_only_s_per_event": (t1 - t0) / n_events,
            "next_and_particle_loop_s_per_event": (t2 - t1) / n_events,
            "nextBatch_and_decode_s_per_event": (t3 - t2) / n_events}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results" / "generate.json"))
    args = parser.parse_args(argv)

    load_before = list(os.getloadavg())   # 1, 5, 15 min: other jobs make the figures noisy
    config = SampleConfig(n_events=args.events, seed=args.seed)
    warm = SampleConfig(n_events=7, seed=args.seed + 1, mix="equal")
    initialisation = {}
    for task in warm.tasks():
        initialisation[task[0]] = run_task(warm, task)[1]["initialisation_s"]

    per_type = {t: {"events": 0, "generation_wall_s": 0.0, "detector_skims_wall_s": 0.0,
                    "total_cpu_s": 0.0, "particles": 0} for t in config.types}
    wall0, cpu0 = clocks()
    for task in config.tasks():
        w, c = clocks()
        table, timing, _ = run_task(config, task)
        w2, c2 = clocks()
        row = per_type[task[0]]
        row["events"] += len(table)
        row["particles"] += table.n_particles
        assert timing["initialisation_s"] == 0.0, "Pythia was built again after the warm-up"
        row["generation_wall_s"] += timing["generation_s"]
        row["detector_skims_wall_s"] += timing["detector_skims_s"]
        row["total_cpu_s"] += c2 - c
    wall1, cpu1 = clocks()

    n = sum(r["events"] for r in per_type.values())
    gen = sum(r["generation_wall_s"] for r in per_type.values())
    det = sum(r["detector_skims_wall_s"] for r in per_type.values())
    result = {
        "command": "python benchmarks/generate.py " + " ".join(argv or []),
        "machine": {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine(),
                    "python": platform.python_version()},
        "load_average_before": load_before,
        "load_average_after": list(os.getloadavg()),
        "events": n,
        "mix": config.mix,
        "events_per_s_per_core": {
            "generation": n / gen,
            "detector_skims": n / det,
            "end_to_end_wall": n / (wall1 - wall0),
            "end_to_end_cpu": n / (cpu1 - cpu0),
        },
        "ms_per_event": {"generation": 1e3 * gen / n, "detector_skims": 1e3 * det / n},
        "initialisation_s": initialisation,
        "per_type": {t: {"events": r["events"], "particles_per_event": r["particles"] / max(r["events"], 1),
                         "generation_ms_per_event": 1e3 * r["generation_wall_s"] / max(r["events"], 1),
                         "detector_skims_ms_per_event": 1e3 * r["detector_skims_wall_s"] / max(r["events"], 1),
                         "end_to_end_events_per_s_cpu": r["events"] / max(r["total_cpu_s"], 1e-12)}
                     for t, r in per_type.items()},
        "pythia_readout": readout_comparison(),
        "target_end_to_end_events_per_s_per_core": 3000,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    rates = result["events_per_s_per_core"]
    print(f"{n} events, one core: generation {rates['generation']:.0f} ev/s, detector+skims "
          f"{rates['detector_skims']:.0f} ev/s, end to end {rates['end_to_end_wall']:.0f} ev/s wall, "
          f"{rates['end_to_end_cpu']:.0f} ev/s CPU (target 3000)")
    for t, r in result["per_type"].items():
        print(f"  {t:8s} gen {r['generation_ms_per_event']:.3f} ms  det+skims {r['detector_skims_ms_per_event']:.3f} ms"
              f"  {r['particles_per_event']:.1f} particles/event")
    print("Pythia initialisation (once per worker and type, not in the rates): "
          + ", ".join(f"{t} {v:.3f} s" for t, v in initialisation.items()))
    ro = result["pythia_readout"]
    print(f"Pythia record read-out ({ro['event_type']}): next() {1e6 * ro['next_only_s_per_event']:.0f} us, "
          f"next() + particle loop {1e6 * ro['next_and_particle_loop_s_per_event']:.0f} us, "
          f"nextBatch + decode {1e6 * ro['nextBatch_and_decode_s_per_event']:.0f} us per event")
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
