import json

import numpy as np
import particle
import pytest
from particle import Particle

from smartbkg.data import vocab
from smartbkg.data.vocab import PDG_IDS, VOCAB_SIZE, build_vocabulary, pdg_to_token, token_to_pdg, unknown_pdg_counts

SAME_PARTICLE = vocab.load_vocabulary()["built_with"] == f"particle {particle.__version__}"


def test_every_known_id_round_trips_and_tokens_are_dense():
    tokens = pdg_to_token(PDG_IDS)
    np.testing.assert_array_equal(tokens, np.arange(1, VOCAB_SIZE))
    np.testing.assert_array_equal(token_to_pdg(tokens), PDG_IDS)
    assert tokens.dtype == np.int64
    assert np.all(np.diff(PDG_IDS) > 0)


def test_hand_picked_ids():
    # pi+, its antiparticle, the Upsilon(4S), f0(980) (beyond the dense table), EvtGen's virtual photon,
    # Xsd, the Pythia string and the deuteron (in EvtGen records) are known; 0, an invented id,
    # Geant's Cerenkov photon and lead-208 are not.
    known = [211, -211, 300553, 9010221, 10022, 30343, -30343, 92, 20413, 1000010020]
    unknown = [0, 12345678, 20022, 1000822080, -(10**12), 10**12]
    assert np.all(pdg_to_token(known) > 0)
    np.testing.assert_array_equal(pdg_to_token(unknown), 0)
    assert pdg_to_token([211])[0] == np.searchsorted(PDG_IDS, 211) + 1


def test_shape_and_dtypes_are_kept():
    pdg = np.array([[211, 0], [9010221, 22]], dtype=np.int32)
    tokens = pdg_to_token(pdg)
    assert tokens.shape == (2, 2)
    assert tokens[0, 1] == 0 and tokens[1, 0] > 0
    np.testing.assert_array_equal(pdg_to_token(pdg.astype(np.int64)), tokens)


def test_vocabulary_covers_particle_table_without_nuclei():
    expected = {int(p.pdgid) for p in Particle.all() if abs(int(p.pdgid)) < 10**9}
    assert expected <= set(PDG_IDS.tolist())
    assert 600 < VOCAB_SIZE < 1000


def test_unknown_counts():
    counts = unknown_pdg_counts(np.array([211, 777777, 777777, 0, 22, 20022]))
    assert counts == {777777: 2, 0: 1, 20022: 1}
    assert unknown_pdg_counts(np.array([211]), tokens=pdg_to_token([211])) == {}


@pytest.mark.skipif(not SAME_PARTICLE, reason="shipped vocabulary built with another particle version")
def test_rebuild_is_deterministic_and_equals_shipped_file(tmp_path):
    out = tmp_path / "vocab.json"
    vocab.main(["--out", str(out)])
    shipped = vocab.load_vocabulary()
    assert json.loads(out.read_text()) == shipped
    assert build_vocabulary() == shipped
    assert len(shipped["names"]) == len(shipped["pdg"])
    assert shipped["names"][shipped["pdg"].index(10022)] == "vpho"
