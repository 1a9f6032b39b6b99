"""``smartbkg-export``: the files it writes, and one-line errors with exit status 2."""

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest

from smartbkg import __version__
from smartbkg.cli import _run
from smartbkg.data.preprocess import PreprocessConfig
from smartbkg.data.vocab import PDG_IDS
from smartbkg.export.exporter import PARITY_TOLERANCE, load_run
from smartbkg.export.metadata import calibrations, config_hash, read_metadata
from smartbkg.export.runtime import batch_graph_path, metadata_path


def test_export_writes_both_graphs_and_everything_the_caller_needs(exported_run, trained_run):
    path, lines = exported_run
    assert len(lines) == 3 and lines[0].startswith(f"wrote {path} (one event")
    for graph in (path, batch_graph_path(path)):
        onnx.checker.check_model(onnx.load(str(graph)), full_check=True)
    metadata = read_metadata(metadata_path(path))
    checkpoint, calibration = load_run(trained_run)
    info = checkpoint["model_info"]
    # the JSON round-trips into the very calibration of the run
    assert calibrations(metadata) == calibration
    assert metadata["skims"] == info["skims"] == ["tau_generic"]
    assert metadata["event_types"] == [{"name": n, "code": i} for i, n in enumerate(info["event_types"])]
    assert metadata["config_hash"] == config_hash(checkpoint["config"])
    assert metadata["smartbkg_version"] == __version__
    assert metadata["model"]["name"] == "gatgap" and metadata["graphs"]["opset"] == 18
    assert metadata["graphs"] == {"event": "model.onnx", "batch": "model.batch.onnx", "opset": 18}
    settings = PreprocessConfig.from_dict(checkpoint["config"]["data"]["preprocess"]).to_dict()
    assert metadata["preprocessing"]["settings"] == settings
    assert metadata["preprocessing"]["done_by"] == "caller"
    assert metadata["pdg"]["ids"] == PDG_IDS.tolist()
    assert metadata["pdg"]["tokens"] == list(range(1, len(PDG_IDS) + 1))
    [x] = [i for i in metadata["interface"]["event"]["inputs"] if i["name"] == "x"]
    assert x["shape"] == ["N", 8] and x["content"].startswith("[prodTime ns, x cm")
    assert max(metadata["verification"]["max_abs_logit_diff"].values()) <= PARITY_TOLERANCE
    assert json.loads(metadata_path(path).read_text()) == metadata


def test_config_hash_ignores_key_order_and_sees_values():
    assert config_hash({"a": 1, "b": {"c": 2, "d": 3}}) == config_hash({"b": {"d": 3, "c": 2}, "a": 1})
    assert config_hash({"a": 1}) != config_hash({"a": 2})


def export_error(capsys, *argv):
    """(exit status, stderr lines) of ``smartbkg-export argv`` run in this process."""
    status = _run("smartbkg.export.cli", [str(a) for a in argv])
    return status, capsys.readouterr().err.splitlines()


def test_a_run_folder_without_best_checkpoint_exits_2_in_one_line(tmp_path):
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    done = subprocess.run([sys.executable, "-c", "from smartbkg.cli import export_main; export_main()",
                           str(run), "--out", str(tmp_path / "model.onnx")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert done.stderr.splitlines() == [f"error: {run}: no best checkpoint (checkpoints/best.pt): "
                                        "not a finished training run"]
    assert not (tmp_path / "model.onnx").exists()


@pytest.mark.parametrize("opset", [7, 99])
def test_an_opset_onnx_cannot_write_exits_2(opset, trained_run, tmp_path, capsys):
    status, err = export_error(capsys, trained_run, "--out", tmp_path / "m.onnx", "--opset", opset)
    assert status == 2
    assert err == [f"error: opset {opset} cannot be written: the export writes opsets 18 to 23"]


def test_an_output_folder_that_does_not_exist_exits_2(trained_run, tmp_path, capsys):
    status, err = export_error(capsys, trained_run, "--out", tmp_path / "nowhere" / "m.onnx")
    assert status == 2
    assert err == [f"error: {tmp_path / 'nowhere'}: the output folder does not exist"]


def test_an_unknown_skim_exits_2(trained_run, tmp_path, capsys):
    status, err = export_error(capsys, trained_run, "--out", tmp_path / "m.onnx", "--skims", "fei")
    assert status == 2
    assert err == ["error: unknown skim(s) ['fei']; the run predicts ['tau_generic']"]


def test_a_missing_run_folder_exits_2(tmp_path, capsys):
    status, err = export_error(capsys, tmp_path / "none", "--out", tmp_path / "m.onnx")
    assert status == 2 and err == [f"error: {tmp_path / 'none'}: run folder not found"]


def test_probabilities_follow_the_exported_calibration(exported_run):
    from smartbkg.export.runtime import ExportedModel

    model = ExportedModel(exported_run[0])
    logits = np.linspace(-6, 6, 25, dtype=np.float32)[:, None]
    np.testing.assert_array_equal(model.probabilities(logits)[:, 0],
                                  model.calibrations["tau_generic"].apply(logits[:, 0]))
