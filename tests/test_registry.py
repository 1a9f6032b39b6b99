"""Registries: components of an installed package's entry points, modules to import."""

import sys

import pytest
import torch

from smartbkg.errors import ConfigError
from smartbkg.losses import build_loss, list_losses
from smartbkg.models import build_model, list_models
from smartbkg.registry import import_modules

PACKAGE = '''
import torch


class Constant(torch.nn.Module):
    """One learnt logit per skim, whatever the event (a baseline)."""

    def __init__(self, *, num_skims=1, num_event_types=8, vocab_size=None):
        super().__init__()
        self.head = torch.nn.Parameter(torch.zeros(num_skims))

    def forward(self, batch):
        return self.head.expand(batch.num_graphs, -1)


def hinge(logits, y, *, weight, epoch, margin=1.0):
    return torch.relu(margin - (2 * y - 1) * logits).mean()
'''


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """A distribution on sys.path (as pip installs one) with smartbkg entry points, not imported yet.

    Names once loaded stay registered for the process: they carry a prefix no other test uses."""
    (tmp_path / "smartbkg_ep_plugin.py").write_text(PACKAGE)
    info = tmp_path / "smartbkg_ep_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: smartbkg-ep-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[smartbkg.models]\nep_constant = smartbkg_ep_plugin:Constant\n\n"
                                           "[smartbkg.losses]\nep_hinge = smartbkg_ep_plugin:hinge\n"
                                           "ep_broken = smartbkg_ep_plugin:no_such_function\n")
    monkeypatch.syspath_prepend(tmp_path)
    yield
    sys.modules.pop("smartbkg_ep_plugin", None)


def test_entry_points_register_models_and_losses(installed_plugin):
    assert "ep_constant" in list_models() and {"ep_hinge", "ep_broken"} <= set(list_losses())
    model = build_model("ep_constant", num_skims=2)
    batch = type("Batch", (), {"num_graphs": 3})()
    assert model(batch).shape == (3, 2)
    loss = build_loss("ep_hinge", margin=2.0)
    assert loss.config == {"name": "ep_hinge", "margin": 2.0, "disco_lambda": 0.0, "disco_subset": "fail"}
    assert loss(torch.zeros(4, 1), torch.ones(4, 1)).item() == pytest.approx(2.0)
    with pytest.raises(ConfigError, match="unknown option.*gamma for the ep_hinge loss; it takes margin, disco_lambda"):
        build_loss("ep_hinge", gamma=1)
    with pytest.raises(ConfigError, match=r"loss 'ep_broken': cannot load entry point smartbkg_ep_plugin:no_such_function "
                                          r"of group smartbkg.losses \(AttributeError"):
        build_loss("ep_broken")


def test_unknown_names_say_how_to_add_one():
    with pytest.raises(ConfigError, match=r"unknown loss 'nope'; known: .*entropy.*register it in a module named "
                                          r"with --import, or in the entry-point group smartbkg.losses"):
        build_loss("nope")


def test_import_modules_errors_are_one_line(tmp_path, monkeypatch):
    (tmp_path / "smartbkg_failing_plugin.py").write_text("raise RuntimeError('needs a GPU')\n")
    monkeypatch.syspath_prepend(tmp_path)
    with pytest.raises(ConfigError,
                       match=r"cannot import module 'smartbkg_failing_plugin' \(RuntimeError: needs a GPU\)"):
        import_modules(["smartbkg_failing_plugin"])
