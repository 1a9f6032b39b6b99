"""Calibration forms compared on a finished run: the test speedup of each form, fitted on validation.

    python benchmarks/calibration_forms.py RUN_DIR [--oracle benchmarks/results/oracle.json]
        [--threads N] [--out FILE.json]

Loads the best checkpoint of a run folder written by ``smartbkg-train`` (or by
``benchmarks/limits.py --keep-runs``), predicts its validation and test splits (the run's own
split of its data), fits every form of :data:`smartbkg.sampling.FORMS` on the validation
logits of each skim (:meth:`smartbkg.sampling.Calibration.fit`, the speedup of
:mod:`smartbkg.metrics` with the run's times and max_weight) and scores it on the test logits:
the test speedup, its fraction of the oracle (``benchmarks/results/oracle.json``) and the Kish
efficiency of the test weights. The training loop itself fits ``exp`` and ``sigmoid`` and keeps
the better on validation; this shows what the three-parameter ``skewed_sigmoid`` would add.
The JSON (default ``benchmarks/results/calibration_forms.json``) holds the command and the run.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from smartbkg import metrics as M
from smartbkg.sampling import FORMS, Calibration, kish_efficiency
from smartbkg.train.loop import Trainer

RESULTS = Path(__file__).parent / "results"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run")
    parser.add_argument("--oracle", default=str(RESULTS / "oracle.json"))
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--out", default=str(RESULTS / "calibration_forms.json"))
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    oracle = json.loads(Path(args.oracle).read_text())["skims"]
    trainer = Trainer.resume(args.run, overrides={"train.quiet": True})
    best = torch.load(Path(args.run) / "checkpoints" / "best.pt", weights_only=True)
    trainer.model.load_state_dict(best["model"])
    val, test = trainer.predict(trainer.val_loader), trainer.predict(trainer.test_loader)
    t, timings = trainer.config.train, trainer.timings.as_kwargs()
    rows = []
    for j, skim in enumerate(trainer.skims):
        eps = trainer.splits.retention[skim]
        x_val, y_val = val.logits[:, j].double().numpy(), val.y[:, j].numpy()
        x_test, y_test = test.logits[:, j].double().numpy(), test.y[:, j].numpy()
        for form in FORMS:
            cal = Calibration.fit(x_val, y_val, form=form, eps=eps, max_weight=t.max_weight, **timings)
            p = cal.apply(x_test)
            speedup = M.speedup(p, y_test, eps=eps, max_weight=t.max_weight, **timings)
            limit = oracle.get(skim, {}).get("speedup")
            rows.append({"skim": skim, "form": form, "params": cal.params,
                         "val_speedup": cal.fit_info.get("speedup"), "test_speedup": speedup,
                         "fraction_of_oracle": speedup / limit if limit else None,
                         "test_kish_efficiency": float(kish_efficiency(p, y_test)),
                         "test_passing": int(y_test.sum())})
            print(f"{skim:18s} {form:15s} val {rows[-1]['val_speedup']:7.2f} test {speedup:7.2f}"
                  + (f" ({speedup / limit:.0%} of oracle)" if limit else ""))
    result = {"command": "python benchmarks/calibration_forms.py " + " ".join(sys.argv[1:] if argv is None else argv),
              "run_config": trainer.config.to_dict(), "rows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1, default=float) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
