"""PDG id -> token vocabulary, shipped with the package as ``pdg_vocab.json``.

Token 0 means "unknown PDG id"; the known ids get tokens 1..N in increasing id order, so
``VOCAB_SIZE = N + 1`` is the size of a model's PDG embedding table.

The known ids are the union of

* every id of the ``particle`` package's PDG table except nuclei (abs(id) >= 10^9), and
* every id of the ``particle`` package's EvtGen name table: the pseudo-particles and states that
  EvtGen writes into Belle II generator records but the PDG table lacks (10022 ``vpho``, 30343
  ``Xsd``, 92 ``string``, 20413 ``D'_1+``, light nuclei d t He3 He4 ...), except the Geant
  pseudo-particles (Cerenkov, geantino) and Pythia's event-analysis codes 94-99 (shower, axes,
  jets, table), which never stand for a generated particle.

The JSON file is the source of truth at run time (no network, no rebuild). It is rebuilt,
deterministically for a given ``particle`` version, with ``python -m smartbkg.data.vocab``.
Rebuilding with another ``particle`` version can change tokens: models store the vocabulary
size they were built with, and a vocabulary change needs retraining.
"""

import argparse
import json
from collections import Counter
from importlib import resources
from pathlib import Path

import numpy as np

VOCAB_FILE = "pdg_vocab.json"
UNKNOWN_TOKEN = 0
#: EvtGen-table entries that are not generated particles: Geant's Cerenkov photon and geantino,
#: Pythia's event-analysis pseudo-codes (CMshower, SPHEaxis, THRUaxis, CLUSjet, CELLjet, table).
EXCLUDED_PSEUDO = (20022, 480000000, 94, 95, 96, 97, 98, 99)
#: Ids with abs(id) < DENSE_LIMIT are looked up in a dense table; the rare rest by binary search.
DENSE_LIMIT = 1 << 20


def build_vocabulary():
    """The vocabulary from the installed ``particle`` package.

    Returns:
        dict with ``pdg`` (sorted list of known ids), ``names`` (one name per id) and
        ``built_with`` (the ``particle`` version), as stored in ``pdg_vocab.json``.
    """
    import particle
    from particle import Particle

    names = {int(p.pdgid): p.name for p in Particle.all() if abs(int(p.pdgid)) < 10**9}
    table = resources.files("particle.data").joinpath("pdgid_to_evtgenname.csv").read_text()
    for line in table.splitlines():
        fields = line.split(",")
        if len(fields) < 2 or not fields[0].lstrip("-").isdigit():
            continue  # comment and header lines
        pdg = int(fields[0])
        if pdg not in names and pdg not in EXCLUDED_PSEUDO:
            names[pdg] = fields[1].strip()
    pdg = sorted(names)
    return {"format": 1, "built_with": f"particle {particle.__version__}", "unknown_token": UNKNOWN_TOKEN,
            "pdg": pdg, "names": [names[i] for i in pdg]}


def load_vocabulary():
    """The shipped vocabulary (see :func:`build_vocabulary` for the keys)."""
    return json.loads(resources.files(__package__).joinpath(VOCAB_FILE).read_text())


_VOCAB = load_vocabulary()
#: (N,) int64 known PDG ids, sorted; the token of ``PDG_IDS[k]`` is ``k + 1``.
PDG_IDS = np.asarray(_VOCAB["pdg"], dtype=np.int64)
#: Number of tokens, including the unknown token 0.
VOCAB_SIZE = len(PDG_IDS) + 1

# Dense lookup for |pdg| < DENSE_LIMIT (int16: VOCAB_SIZE < 2^15); the two end cells are -1 and
# catch every id outside the dense range (np.clip sends them there), which is then searched.
_DENSE = np.zeros(2 * DENSE_LIMIT + 1, dtype=np.int16)
_DENSE[[0, -1]] = -1
_in_dense = np.abs(PDG_IDS) < DENSE_LIMIT
_DENSE[PDG_IDS[_in_dense] + DENSE_LIMIT] = np.flatnonzero(_in_dense) + 1
del _in_dense


def pdg_to_token(pdg):
    """Tokens of PDG ids, vectorised.

    Args:
        pdg: (...) integer array of PDG ids.

    Returns:
        (...) int64 tokens in ``[0, VOCAB_SIZE)``; 0 for ids not in the vocabulary.
    """
    pdg = np.asarray(pdg)
    index = np.clip(pdg, -DENSE_LIMIT, DENSE_LIMIT).astype(np.int32, copy=False)
    index += DENSE_LIMIT
    tokens = _DENSE.take(index).astype(np.int64)
    far = np.flatnonzero(tokens < 0)
    if len(far):
        values = pdg.reshape(-1)[far].astype(np.int64)
        at = np.minimum(np.searchsorted(PDG_IDS, values), len(PDG_IDS) - 1)
        tokens.reshape(-1)[far] = np.where(PDG_IDS[at] == values, at + 1, UNKNOWN_TOKEN)
    return tokens


def token_to_pdg(tokens):
    """PDG ids of tokens (0, the unknown token, gives 0)."""
    return np.concatenate([[0], PDG_IDS])[np.asarray(tokens)]


def unknown_pdg_counts(pdg, tokens=None):
    """How often each PDG id outside the vocabulary occurs (for read reports).

    Args:
        pdg: (n,) integer PDG ids.
        tokens: their tokens, when already computed.

    Returns:
        :class:`collections.Counter` unknown id -> number of particles.
    """
    pdg = np.asarray(pdg).reshape(-1)
    tokens = pdg_to_token(pdg) if tokens is None else np.asarray(tokens).reshape(-1)
    unknown = pdg[tokens == UNKNOWN_TOKEN]
    ids, counts = np.unique(unknown, return_counts=True)
    return Counter(dict(zip(ids.tolist(), counts.tolist())))


def main(argv=None):
    """``python -m smartbkg.data.vocab [--out FILE]``: rebuild the shipped vocabulary."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name(VOCAB_FILE))
    args = parser.parse_args(argv)
    vocab = build_vocabulary()
    args.out.write_text(json.dumps(vocab, indent=1) + "\n")
    print(f"wrote {len(vocab['pdg'])} PDG ids ({vocab['built_with']}) to {args.out}")


if __name__ == "__main__":
    main()
