"""Properties every model must have: permutation invariance, inert padding, batch independence,
finite gradients, and the capacity to fit a tiny sample. Parametrised over all models."""

import torch
from torch_geometric.data import Batch

from tests.models.batches import synthetic_batch
from tests.models.invariance import assert_invariant, permute_particles


def test_logits_shape_and_finite(tiny_model, events):
    _, model = tiny_model
    logits = model(events)
    assert logits.shape == (events.num_graphs, 2)
    assert torch.isfinite(logits).all()


def test_head_is_the_final_linear_layer(tiny_model, events):
    """``model.head`` makes the logits (fine-tuning re-initialises it for new skims)."""
    _, model = tiny_model
    assert isinstance(model.head, torch.nn.Linear) and model.head.out_features == 2
    made = []
    model.head.register_forward_hook(lambda module, inputs, output: made.append(output))
    logits = model(events)
    assert len(made) == 1 and made[0] is logits


def test_particle_order_does_not_matter(tiny_model, events):
    _, model = tiny_model
    for seed in range(3):
        assert_invariant(model, events, lambda b: permute_particles(b, seed))


def test_permutation_helper_changes_the_order(events):
    """The permutation test above is not vacuous: the node order really changes."""
    permuted = permute_particles(events, 0)
    assert not torch.equal(permuted.x, events.x)
    assert torch.equal(torch.sort(permuted.x[:, 4], stable=True).values,
                       torch.sort(events.x[:, 4], stable=True).values)


def test_event_alone_equals_event_in_batch(tiny_model, events):
    """Padding length and the other events of the batch never change an event's logits."""
    _, model = tiny_model
    model.eval()
    with torch.no_grad():
        together = model(events)
        for i in range(events.num_graphs):
            alone = model(Batch.from_data_list([events.get_example(i)]))
            torch.testing.assert_close(alone[0], together[i], atol=1e-5, rtol=1e-5)


def test_reversed_batch_order(tiny_model, events):
    _, model = tiny_model
    model.eval()
    reversed_batch = Batch.from_data_list(events.index_select(list(range(events.num_graphs))[::-1]))
    with torch.no_grad():
        torch.testing.assert_close(model(reversed_batch), model(events).flip(0), atol=1e-5,
                                   rtol=1e-5)


def test_gradients_finite_for_every_parameter(tiny_model, events):
    _, model = tiny_model
    model.train()
    loss = torch.nn.functional.binary_cross_entropy_with_logits(model(events), events.y)
    loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None, f"{name} gets no gradient"
        assert torch.isfinite(parameter.grad).all(), f"{name} has a non-finite gradient"


def test_reset_parameters_reinitialises_every_parameter(tiny_model):
    """After every parameter is overwritten, ``reset_parameters`` gives each a fresh value:
    no element keeps the overwritten one, LayerNorms are back to weight 1 and bias 0."""
    _, model = tiny_model
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.fill_(0.123)
    model.reset_parameters()
    for name, parameter in model.named_parameters():
        assert (parameter != 0.123).all(), f"{name} is not re-initialised"
    norms = [m for m in model.modules() if isinstance(m, torch.nn.LayerNorm)]
    for norm in norms:
        assert (norm.weight == 1).all() and (norm.bias == 0).all()


def test_overfits_a_tiny_sample(tiny_model):
    name, model = tiny_model
    batch = synthetic_batch(12, num_particles=10, num_skims=2, vocab_size=50, seed=7)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    losses = []
    for _ in range(50):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(batch), batch.y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.25 * losses[0], f"{name}: loss {losses[0]:.3f} -> {losses[-1]:.3f}"
