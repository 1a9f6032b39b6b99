"""``smartbkg-train``: options, config files, resume, the embedded sample, and one-line errors."""

import json
import sys

import pytest
import yaml

from smartbkg.cli import train_main

TINY = ["--model", "deepsets", "--set", "model.options={hidden: 16, layers: 2, pdg_dim: 8}", "--batch-size", "64",
        "--lr", "0.005", "--quiet"]


def run(argv, capsys):
    """Exit status, stderr and stdout of ``smartbkg-train argv``."""
    with pytest.raises(SystemExit) as info:
        train_main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.err, captured.out


def test_train_then_resume_with_more_epochs(sample_dir, tmp_path, capsys):
    out = tmp_path / "run"
    code, *_ = run(["--data", str(sample_dir), "--skims", "tau_generic", "--epochs", "1", "--schedule", "cosine",
                    "--out", str(out), *TINY], capsys)
    assert code == 0
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 1
    code, *_ = run(["--resume", str(out), "--epochs", "3", "--quiet"], capsys)
    assert code == 0
    history = json.loads((out / "metrics.json").read_text())
    assert [r["epoch"] for r in history] == [1, 2, 3]
    # one warm-up epoch, then the cosine decay of the new total: the end of epoch 2 is half way
    # through it (lr 0.005 / 2), the end of epoch 3 its end
    assert [r["train/lr/all"] for r in history] == [0.005, pytest.approx(0.0025), 0.0]
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["epochs"] == 3


def test_config_file_and_precedence(tmp_path, capsys):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"train": {"epochs": 5, "lr": 0.01}, "model": {"name": "gatgap"},
                                      "data": {"skims": ["radiative"]}}))
    code, _, out = run(["--config", str(config), "--epochs", "2", "--set", "train.lr=0.02", "--out", "x",
                        "--print-config"], capsys)
    assert code == 0
    printed = yaml.safe_load(out)
    assert printed["train"]["epochs"] == 2 and printed["train"]["lr"] == 0.02
    assert printed["model"]["name"] == "gatgap" and printed["data"]["skims"] == ["radiative"]


def test_main_job_generates_the_embedded_sample(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["--events", "800", "--epochs", "1", "--out", str(out), "--model", "deepsets",
            "--set", "model.options={hidden: 8, layers: 2, pdg_dim: 4}"]
    code, _, printed = run(argv, capsys)
    assert code == 0
    assert "final (test set" in printed and "tau_generic: AUC" in printed and "speedup" in printed
    sample = out / "data" / "embedded-800ev-seed1"
    assert (sample / "metadata.json").is_file()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["skims"] == ["tau_generic"] and sum(summary["events"].values()) <= 800


@pytest.mark.parametrize("argv, message", [
    (["--data", "{missing}"], "no such file"),
    (["--data", "{corrupt}"], "cannot read parquet file"),
    (["--data", "{sample}", "--skims", "tau_generic,nonsense"], "unknown skim(s) ['nonsense']"),
    (["--data", "{sample}", "--model", "resnet"], "unknown model 'resnet'"),
    (["--data", "{sample}", "--loss", "hinge"], "unknown loss 'hinge'"),
    (["--data", "{sample}", "--epochs", "-3"], "train.epochs = -3 must be >= 0"),
    (["--epochs", "three"], "argument --epochs: invalid int value"),
    (["--set", "train.warp=9"], "unknown option(s) ['train.warp']"),
    (["--config", "{missing}"], "cannot read config file"),
    (["--resume", "{missing}"], "no such run folder"),
    (["--data", "{sample}", "--set", "data.val_fraction=0", "--set", "data.test_fraction=0"], "data.val_fraction"),
    (["--data", "{sample}", "--skims", "tau_generic", "--init-from", "{junk}"], "not a torch checkpoint: the file starts with b'\\x17"),
    (["--set", "loss.disco_variable=mass", "--set", "loss.options.disco_lambda=1"],
     "loss.disco_variable 'mass' is not an event variable; choose one of n_particles, n_final_state"),
    (["--data", "{sample}", "--set", "data.preprocess.drop_abs_pdg=5"], "drop_abs_pdg must be a list of absolute PDG ids"),
    # contradicting options
    (["--data", "{sample}", "--init-from", "{transformer}", "--freeze-backbone", "--lr-backbone", "1e-4"],
     "option train.lr_backbone = 0.0001 contradicts train.freeze_backbone"),
    (["--data", "{sample}", "--events", "500"],
     "option data.generate_events = 500 applies only to the embedded sample generated without data.path"),
    (["--data", "{sample}", "--set", "out="], "option out = None must name the run folder"),
    (["--data", "{sample}", "--set", "out=' '"], "option out = ' ' must name the run folder"),
    (["--data", "{sample}", "--model", "gatgap", "--init-from", "{transformer}"],
     "model.name 'gatgap' contradicts train.init_from"),
    (["--data", "{sample}", "--set", "model.options.dim=32", "--init-from", "{transformer}"],
     "model.options {'dim': 32} contradict train.init_from"),
])
def test_bad_input_is_one_line_and_exit_2(sample_dir, tmp_path, capsys, request, argv, message):
    corrupt = tmp_path / "bad.parquet"
    corrupt.write_bytes(b"PAR1 this is not parquet")
    junk = tmp_path / "junk.pt"
    junk.write_bytes(bytes(range(23, 256)) * 10)
    paths = {"missing": str(tmp_path / "missing"), "corrupt": str(corrupt), "sample": str(sample_dir),
             "junk": str(junk)}
    if "{transformer}" in argv:
        paths["transformer"] = str(request.getfixturevalue("transformer_checkpoint"))
    argv = [a.format(**paths) for a in argv] + ["--quiet"]
    if "--resume" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code, err, _ = run(argv, capsys)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err, err


@pytest.fixture
def transformer_checkpoint(tiny_config, tmp_path):
    """A checkpoint of an untrained tiny transformer (dim 16) for tau_generic."""
    from smartbkg.train.checkpoint import rng_state, save_checkpoint
    from smartbkg.train.loop import Trainer

    trainer = Trainer(tiny_config(tmp_path / "pre", model="transformer", train={"epochs": 0}))
    save_checkpoint(trainer.state_dict([rng_state()]), tmp_path / "transformer.pt")
    return tmp_path / "transformer.pt"


def test_fine_tuning_accepts_the_checkpoints_own_model(sample_dir, transformer_checkpoint, tmp_path, capsys):
    for extra in ([], ["--model", "transformer"], ["--set", "model.options.dim=16"]):
        code, err, out = run(["--data", str(sample_dir), "--init-from", str(transformer_checkpoint),
                              "--out", str(tmp_path / "ft"), "--print-config", *extra], capsys)
        assert code == 0, err


def test_refuses_to_overwrite_or_change_a_run(sample_dir, tmp_path, capsys):
    out = tmp_path / "run"
    assert run(["--data", str(sample_dir), "--skims", "tau_generic", "--epochs", "1", "--out", str(out), *TINY],
               capsys)[0] == 0
    code, err, _ = run(["--data", str(sample_dir), "--epochs", "1", "--out", str(out), "--quiet"], capsys)
    assert code == 2 and "already holds a run" in err
    code, err, _ = run(["--resume", str(out), "--lr", "0.1"], capsys)
    assert code == 2 and "only" in err and "train.lr" in err


def test_resuming_an_early_stopped_run_says_so_and_continues_with_more_patience(tiny_config, separated_toy,
                                                                                 tmp_path, capsys, monkeypatch):
    from smartbkg.train.loop import Trainer

    out = tmp_path / "run"
    trainer = Trainer(tiny_config(out, train={"epochs": 6, "monitor": "significance", "patience": 1}))
    monkeypatch.setattr(trainer, "predict", lambda loader: separated_toy)  # the same every epoch: epoch 1 is best
    assert trainer.fit()["early_stopped"]
    assert [r["epoch"] for r in json.loads((out / "metrics.json").read_text())] == [1, 2]

    code, err, _ = run(["--resume", str(out), "--epochs", "8"], capsys)
    assert code == 0 and len(_without_warnings(err)) == 1
    assert (f"{out}: the run early-stopped after epoch 2 of 8: significance did not improve by more than 1e-05 "
            "for 1 epochs since epoch 1 (patience 1); nothing to train (resume with a larger --patience, "
            "e.g. --patience 4, to continue)") in err
    assert len(json.loads((out / "metrics.json").read_text())) == 2

    # the real network's significance stays below the toy's: 2 more epochs without improvement
    code, err, _ = run(["--resume", str(out), "--patience", "3", "--quiet"], capsys)
    assert code == 0 and _without_warnings(err) == []
    assert [r["epoch"] for r in json.loads((out / "metrics.json").read_text())] == [1, 2, 3, 4]
    assert json.loads((out / "summary.json").read_text())["early_stopped"]

    code, err, _ = run(["--resume", str(out), "--set", "train.patience=null", "--epochs", "4", "--quiet"], capsys)
    assert code == 0 and "the run has already completed its 4 epochs" in err


def _without_warnings(err):
    """The lines of ``err`` but the warnings about splits with few passing events (the test sample is small)."""
    return [line for line in err.splitlines() if not line.startswith("warning: ")]


def test_speedup_loss_warns_about_skims_with_less_than_one_passing_event_per_batch(sample_dir, tmp_path, capsys):
    base = ["--data", str(sample_dir), "--skims", "tau_generic", "--epochs", "1", *TINY, "--loss", "speedup"]
    # about 16 % passing: 0.6 per batch of 4 (warned), about 10 per batch of 64 (not warned)
    code, err, _ = run([*base, "--batch-size", "4", "--out", str(tmp_path / "small")], capsys)
    assert code == 0 and "warning: loss speedup: tau_generic passes" in err and "per training batch of 4" in err
    summary = json.loads((tmp_path / "small" / "summary.json").read_text())
    assert any(w.startswith("loss speedup: tau_generic") for w in summary["warnings"])
    code, err, _ = run([*base, "--out", str(tmp_path / "large")], capsys)
    assert code == 0 and "loss speedup" not in err


def test_quiet_prints_the_final_line_and_warnings_silent_prints_nothing(sample_dir, tmp_path, capsys):
    base = ["--data", str(sample_dir), "--skims", "tau_generic", "--epochs", "1", *TINY]
    code, err, out = run([*base, "--out", str(tmp_path / "quiet")], capsys)
    assert code == 0
    assert out.startswith("final (test set") and out.count("\n") == 1
    # 1500 events, about 16 % passing tau_generic: about 50 in the validation and test sets
    assert "warning: the validation set has" in err and "passing tau_generic, fewer than 100" in err
    summary = json.loads((tmp_path / "quiet" / "summary.json").read_text())
    assert any(w.startswith("the test set has") for w in summary["warnings"])
    code, err, out = run([*base, "--out", str(tmp_path / "silent"), "--silent"], capsys)
    assert (code, err, out) == (0, "", "")
    code, err, out = run(["--resume", str(tmp_path / "silent"), "--silent"], capsys)  # nothing left to train
    assert (code, err, out) == (0, "", "")


PLUGIN = '''
import torch
from torch_geometric.utils import scatter

from smartbkg.losses import register_loss
from smartbkg.models import register_model


@register_model("meanfeatures")
class MeanFeatures(torch.nn.Module):
    """Logits linear in the mean encoded node features of the event."""

    def __init__(self, *, num_skims=1, num_event_types=8, vocab_size=None):
        super().__init__()
        self.head = torch.nn.Linear(8, num_skims)

    def forward(self, batch):
        mean = scatter(torch.asinh(batch.x), batch.batch, dim=0, dim_size=batch.num_graphs, reduce="mean")
        return self.head(mean)


@register_loss("brier")
def brier(logits, y, *, weight, epoch, scale=1.0):
    return scale * ((torch.sigmoid(logits) - y) ** 2).mean()
'''


def test_a_users_model_and_loss_train_through_import(sample_dir, tmp_path, capsys, monkeypatch):
    (tmp_path / "smartbkg_cli_plugin.py").write_text(PLUGIN)
    monkeypatch.chdir(tmp_path)  # found in the working directory, as python -m would
    monkeypatch.setattr(sys, "path", list(sys.path))  # import_modules appends the working directory
    out = tmp_path / "run"
    code, err, _ = run(["--data", str(sample_dir), "--skims", "tau_generic", "--epochs", "1", "--batch-size", "64",
                        "--quiet", "--out", str(out), "--import", "smartbkg_cli_plugin", "--model", "meanfeatures",
                        "--loss", "brier", "--set", "loss.options.scale=2"], capsys)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["model"], summary["loss"], summary["parameters"]) == ("meanfeatures", "brier", 9)
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["imports"] == ["smartbkg_cli_plugin"] and config["loss"]["options"]["scale"] == 2


def test_import_of_a_missing_module_is_one_line(tmp_path, capsys):
    code, err, _ = run(["--import", "no_such_module_here", "--out", str(tmp_path / "r"), "--quiet"], capsys)
    assert code == 2
    assert err == "error: cannot import module 'no_such_module_here' (ModuleNotFoundError: No module named " \
                  "'no_such_module_here')\n"
