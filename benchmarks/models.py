"""Model throughput: training and inference events/s of every model and two plain references.

One run, the same events for every model, for each sample of ``--source``: seeded synthetic
decay trees of about 40 particles (:func:`smartbkg.data.synthetic.decay_trees`) and the
embedded Pythia sample (:func:`smartbkg.simulation.generate` with the Belle II preprocessing;
about 25 particles per event after it). Measured per model:

* ``infer``: forward passes in ``torch.inference_mode`` (eval mode), events/s and ms/event;
* ``train``: forward + BCE loss + backward + Adam step, events/s.

Models: the package's ``gatgap`` (U = 32 and 128, and U = 32 with ``attention="gatv2"``),
``transformer`` and ``lorentz`` (defaults, about 2 M parameters), ``deepsets``; and two
references written plainly here:

* ``ref_pyg_gatgap32``: PyG ``GATConv`` + ``AttentionalAggregation`` with the Belle II structure
  (6 layers, 4 heads, 32 units, leaky ReLU, global state), PyG's message passing throughout;
* ``ref_part``: a padded particle transformer built from ``nn.MultiheadAttention`` with a float
  attention mask carrying the pair bias (as the original Particle Transformer code), with the
  sizes of ``transformer`` (8 + 2 blocks, 8 heads, width 128, MLP 4x, same pair features).

On CPU (default) torch uses ``--threads`` threads (1: figures are per core). On a GPU
(``--device cuda``) every model runs under bf16 autocast; the device name goes into the JSON.
``--compile NAMES`` (a comma list of model names, or ``all``) also runs those models through
``torch.compile(model, dynamic=True)``, as extra results next to their eager ones (``compiled``
true/false in the JSON), each with its own cache of compiled graphs
(``isolate_recompiles``); a model that reaches the recompile limit stops the benchmark rather
than being timed in eager mode under a "compiled" label. ``dynamic=True`` makes every size
symbolic from the first compile, so batches with other event counts, node counts and padded
lengths (they change from batch to batch) reuse the compiled graphs instead of recompiling:
one compile per model and mode (training mode is a second one). The JSON records, per compiled result, the graphs compiled in
warm-up and those compiled during the timed passes (``recompiles_while_timed``, expected 0).

Every model and mode first makes one untimed warm-up pass over all batches (no time limit), so
that every batch shape has been compiled (and oneDNN's kernels for it created) before timing.
Timings are the median (and the best) of ``--repeat`` timed passes over the batches, the passes
of the models interleaved so that load changes on a shared machine hit all alike; each timed
pass is cut after ``--max-seconds``.

Usage::

    python benchmarks/models.py [--device cpu|cuda] [--threads 1] [--events N]
        [--batch-size B] [--train-batch-size B] [--models gatgap32,ref_pyg_gatgap32]
        [--source synthetic,pythia] [--compile transformer,gatgap32|all]
        [--out benchmarks/results/models_cpu.json]

Writes JSON: machine, torch version, device, options, and per model (and compiled or not)
parameters, events/s and ms/event for inference and training.
"""

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F
from torch_geometric.nn import GATConv
from torch_geometric.nn.aggr import AttentionalAggregation
from torch_geometric.utils import to_dense_batch

from smartbkg.data.graphs import GraphStore
from smartbkg.data.pair_features import dense_adjacency, pair_features
from smartbkg.data.synthetic import decay_trees
from smartbkg.data.table import NUM_EVENT_TYPES
from smartbkg.models import build_model
from smartbkg.models.layers import MLP, NodeFeatureEncoding, count_parameters, default_vocab_size


class ReferencePygGATGAP(nn.Module):
    """Belle II GAT + GAP written with plain PyG layers (the reference for ``gatgap``)."""

    def __init__(self, num_skims, vocab_size, units=32, heads=4, layers=6):
        super().__init__()
        self.pdg_embedding = nn.Embedding(vocab_size, 8)
        self.convs, self.pools, self.updates = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        width, state = 16, 0
        for _ in range(layers):
            self.convs.append(GATConv(width, units, heads=heads, bias=False))
            self.pools.append(AttentionalAggregation(nn.Linear(heads * units, 1)))
            self.updates.append(nn.Linear(state + heads * units, units))
            width, state = heads * units, units
        self.head = nn.Linear(units, num_skims)

    def forward(self, batch):
        h = torch.cat([self.pdg_embedding(batch.pdg), batch.x], dim=1)
        state = None
        for conv, pool, update in zip(self.convs, self.pools, self.updates):
            h = F.leaky_relu(conv(h, batch.edge_index))
            pooled = pool(h, batch.batch, dim_size=batch.num_graphs)
            state = pooled if state is None else torch.cat([state, pooled], dim=1)
            state = F.leaky_relu(update(state))
        return self.head(state)


class _ReferenceBlock(nn.Module):
    def __init__(self, dim, heads, mlp_ratio):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = MLP((dim, mlp_ratio * dim, dim))

    def forward(self, x, context=None, key_padding_mask=None, attn_mask=None):
        y = self.norm1(x if context is None else torch.cat([x, context], dim=1))
        query = y if context is None else y[:, : x.shape[1]]
        x = x + self.attn(query, y, y, key_padding_mask=key_padding_mask, attn_mask=attn_mask,
                          need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class ReferenceParT(nn.Module):
    """Padded particle transformer on ``nn.MultiheadAttention`` (reference for ``transformer``)."""

    def __init__(self, num_skims, vocab_size, num_event_types=NUM_EVENT_TYPES, dim=128, heads=8, blocks=8,
                 cls_blocks=2, mlp_ratio=4, pair_names=("adjacency", "ln_m2", "angle")):
        super().__init__()
        self.heads, self.pair_names = heads, pair_names
        self.encode = NodeFeatureEncoding()
        self.embed = nn.Linear(8, dim)
        self.pdg_embedding = nn.Embedding(vocab_size, dim)
        self.event_embedding = nn.Embedding(num_event_types, dim)
        self.pair_embedding = MLP((len(pair_names), 64, 64, heads))
        self.blocks = nn.ModuleList(_ReferenceBlock(dim, heads, mlp_ratio) for _ in range(blocks))
        self.cls_blocks = nn.ModuleList(_ReferenceBlock(dim, heads, mlp_ratio)
                                        for _ in range(cls_blocks))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.norm, self.head = nn.LayerNorm(dim), nn.Linear(dim, num_skims)

    def forward(self, batch):
        b = batch.num_graphs
        x, mask = to_dense_batch(batch.x, batch.batch, batch_size=b)
        pdg, _ = to_dense_batch(batch.pdg, batch.batch, batch_size=b)
        length = x.shape[1]
        adjacency = dense_adjacency(batch.edge_index, batch.batch, batch.ptr, length)
        pairs = pair_features(x[..., 4:8], mask, self.pair_names, adjacency=adjacency)
        bias = self.pair_embedding(pairs.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        attn_mask = bias.reshape(b * self.heads, length, length)
        padding = ~mask
        event = self.event_embedding(batch.event_type)[:, None]
        h = self.embed(self.encode(x)) + self.pdg_embedding(pdg) + event
        for block in self.blocks:
            h = block(h, key_padding_mask=padding, attn_mask=attn_mask.to(h.dtype))
        cls = self.cls_token.expand(b, -1, -1) + event
        cls_padding = torch.cat([padding.new_zeros(b, 1), padding], dim=1)
        for block in self.cls_blocks:
            cls = block(cls, context=h, key_padding_mask=cls_padding)
        return self.head(self.norm(cls[:, 0]))


def make_models(names, num_skims, vocab_size):
    """name -> constructor of every benchmarked model."""
    factories = {
        "gatgap32": lambda: build_model("gatgap", num_skims=num_skims, vocab_size=vocab_size,
                                        units=32),
        "gatgap128": lambda: build_model("gatgap", num_skims=num_skims, vocab_size=vocab_size,
                                         units=128),
        "gatgap32_gatv2": lambda: build_model("gatgap", num_skims=num_skims,
                                              vocab_size=vocab_size, units=32, attention="gatv2"),
        "transformer": lambda: build_model("transformer", num_skims=num_skims,
                                           vocab_size=vocab_size),
        "lorentz": lambda: build_model("lorentz", num_skims=num_skims, vocab_size=vocab_size),
        "deepsets": lambda: build_model("deepsets", num_skims=num_skims, vocab_size=vocab_size),
        "ref_pyg_gatgap32": lambda: ReferencePygGATGAP(num_skims, vocab_size),
        "ref_part": lambda: ReferenceParT(num_skims, vocab_size),
    }
    unknown = [n for n in names if n not in factories]
    if unknown:
        sys.exit(f"unknown models {unknown}; known: {', '.join(factories)}")
    return {name: factories[name] for name in names}


def load_batches(args, source):
    """Batches for inference and for training (same events) on the device, and the skim count."""
    if source == "pythia":
        from smartbkg.simulation import generate

        table = generate(args.events, seed=args.seed, preprocess=True)
    else:
        table = decay_trees(args.events, num_particles=args.particles, num_skims=args.skims,
                            seed=args.seed)
    store = GraphStore(table)
    num_events = len(table)

    def cut(size):
        return [store.batch(range(i, min(i + size, num_events))) for i in range(0, num_events, size)]

    return ([b.to(args.device) for b in cut(args.batch_size)],
            [b.to(args.device) for b in cut(args.train_batch_size)], len(table.skims))


def _sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize(device)  # the device itself, not the current one (cuda:0)


def timed_pass(step, batches, device, max_seconds=math.inf):
    """Events/s of one pass of ``step`` over ``batches`` (cut after ``max_seconds``)."""
    events, start = 0, time.perf_counter()
    for batch in batches:
        step(batch)
        events += batch.num_graphs
        if time.perf_counter() - start > max_seconds:
            break
    _sync(device)
    return events / (time.perf_counter() - start)


def make_steps(model, args, compiled):
    """(inference step, training step) of a model: one batch each, no return value."""
    # each model keeps its own compiled graphs (models sharing code, such as the gatgap
    # variants, would otherwise fill one cache, and a full cache silently runs eager)
    runner = torch.compile(model, dynamic=True, isolate_recompiles=True) if compiled else model
    autocast = torch.autocast(args.device.split(":")[0], dtype=torch.bfloat16, enabled=args.bf16)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4,
                                 fused=args.device.startswith("cuda"))

    def infer(batch):
        model.eval()
        with torch.inference_mode(), autocast:
            runner(batch)

    def train(batch):
        model.train()
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = F.binary_cross_entropy_with_logits(runner(batch).float(), batch.y)
        loss.backward()
        optimizer.step()

    return {"infer": infer, "train": train}


def compiled_graphs():
    """Number of graphs torch.compile has compiled in this process so far."""
    return torch._dynamo.utils.counters["stats"]["unique_graphs"]


def benchmark(factories, infer_batches, train_batches, args):
    """Per model (and compiled variant): parameters, median and best events/s of each mode.

    Every variant and mode first makes an untimed warm-up pass over all batches; then the timed
    passes of the variants are interleaved (repeat 1 of every variant, then repeat 2 ...) so
    that a change of load on a shared machine hits all alike.
    """
    models, steps, rates, graphs = {}, {}, {}, {}
    for name, factory in factories.items():
        for compiled in (False, True) if name in args.compile else (False,):
            torch.manual_seed(args.seed)
            models[name, compiled] = model = factory().to(args.device)
            steps[name, compiled] = make_steps(model, args, compiled)
    for mode in args.modes:
        batches = infer_batches if mode == "infer" else train_batches
        for key in models:
            before = compiled_graphs()
            timed_pass(steps[key][mode], batches, args.device)
            graphs[key, mode] = [compiled_graphs() - before]
        for _ in range(args.repeat):
            for key in models:
                before = compiled_graphs()
                rates.setdefault((key, mode), []).append(
                    timed_pass(steps[key][mode], batches, args.device, args.max_seconds))
                graphs[key, mode].append(compiled_graphs() - before)
    results = []
    for (name, compiled), model in models.items():
        result = {"model": name, "compiled": compiled, "parameters": count_parameters(model)}
        for mode in args.modes:
            median = statistics.median(rates[(name, compiled), mode])
            result.update({f"{mode}_events_per_s": median, f"{mode}_ms_per_event": 1e3 / median,
                           f"{mode}_best_events_per_s": max(rates[(name, compiled), mode])})
            if compiled:
                warm_up, *timed = graphs[(name, compiled), mode]
                result.update({f"{mode}_graphs_compiled": warm_up,
                               f"{mode}_recompiles_while_timed": sum(timed)})
        results.append(result)
    return results


def machine(args):
    info = {"platform": platform.platform(), "processor": platform.processor(),
            "python": platform.python_version(), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "device": args.device}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            info["cpu"] = next(line.split(":", 1)[1].strip() for line in cpuinfo
                               if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    if args.device.startswith("cuda"):
        info["device_name"] = torch.cuda.get_device_name(args.device)
    return info


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (torch)")
    parser.add_argument("--events", type=int, help="events per sample (2048 CPU, 65536 GPU)")
    parser.add_argument("--particles", type=int, default=43,
                        help="target particles per synthetic event (about 40 on average)")
    parser.add_argument("--skims", type=int, default=1,
                        help="label columns of synthetic events (Pythia: all its skims)")
    parser.add_argument("--batch-size", type=int, help="inference batch size (128 CPU, 4096 GPU)")
    parser.add_argument("--train-batch-size", type=int, help="training batch size (128 CPU, "
                                                             "1024 GPU)")
    parser.add_argument("--models", default="gatgap32,ref_pyg_gatgap32,gatgap32_gatv2,gatgap128,"
                                            "deepsets,transformer,lorentz,ref_part")
    parser.add_argument("--modes", default="infer,train")
    parser.add_argument("--source", default="synthetic,pythia",
                        help="comma-separated samples: synthetic (seeded random trees) and/or "
                             "pythia (the embedded generator, preprocessed)")
    parser.add_argument("--compile", default="",
                        help="comma list of models (or 'all') to run also through torch.compile")
    parser.add_argument("--bf16", action=argparse.BooleanOptionalAction, default=None,
                        help="bf16 autocast (default: on for cuda, off for cpu)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--max-seconds", type=float, default=5.0,
                        help="cut a timed pass after this long (never the warm-up pass)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    args.modes = args.modes.split(",")
    models = args.models.split(",")
    args.compile = models if args.compile == "all" else [n for n in args.compile.split(",") if n]
    unknown = sorted(set(args.compile) - set(models))
    if unknown:
        sys.exit(f"--compile names models that are not run: {unknown}")
    on_gpu = args.device.startswith("cuda")
    if args.bf16 is None:
        args.bf16 = on_gpu
    args.events = args.events or (65536 if on_gpu else 2048)
    args.batch_size = args.batch_size or (4096 if on_gpu else 128)
    args.train_batch_size = args.train_batch_size or (1024 if on_gpu else 128)
    if args.device == "cpu":
        torch.set_num_threads(args.threads)
    # a compiled model that reaches the recompile limit would run eager but be reported as
    # compiled: make that an error instead
    torch._dynamo.config.fail_on_recompile_limit_hit = True
    device_kind = args.device.split(":")[0]
    out = args.out or Path(__file__).with_name("results") / f"models_{device_kind}.json"

    print(f"device {args.device}, threads {torch.get_num_threads()}, bf16 {args.bf16}, "
          f"compile {','.join(args.compile) or 'none'}")
    samples = []
    for source in args.source.split(","):
        infer_batches, train_batches, num_skims = load_batches(args, source)
        nodes = sum(b.num_nodes for b in infer_batches)
        events = sum(b.num_graphs for b in infer_batches)
        print(f"{source}: {events} events, {nodes / events:.1f} particles/event, "
              f"{num_skims} skims")
        factories = make_models(models, num_skims, default_vocab_size())
        results = benchmark(factories, infer_batches, train_batches, args)
        for result in results:
            label = result["model"] + " (compiled)" * result["compiled"]
            print(f"{label:>25}  {result['parameters']:>9,d} params  " + "  ".join(
                f"{mode} {result[mode + '_events_per_s']:>9,.0f} ev/s "
                f"({result[mode + '_ms_per_event']:.3f} ms/ev, best "
                f"{1e3 / result[mode + '_best_events_per_s']:.3f})" for mode in args.modes))
        samples.append({"source": source, "events": events, "particles_per_event": nodes / events,
                        "skims": num_skims, "results": results})
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "command": "python benchmarks/models.py " + " ".join(argv or sys.argv[1:]),
        "machine": machine(args),
        "options": {k: v for k, v in vars(args).items() if k != "out"},
        "samples": samples,
    }, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
