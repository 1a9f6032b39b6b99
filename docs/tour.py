import torch
from smartbkg.simulation import generate
from smartbkg.data import EventGraphDataset, GraphLoader
from smartbkg.models import build_model
from smartbkg.losses import build_loss
from smartbkg.metrics import auc, perfect_speedup, speedup
from smartbkg.sampling import Calibration, sample

torch.manual_seed(0)                            # model initialisation
table = generate(6000, seed=7)                  # Pythia 8 + fast detector + six skims
data = EventGraphDataset(table, skims=["tau_generic"])   # Belle II preprocessing, PDG tokens
train, val, test = data[:3600], data[3600:4800], data[4800:]

model = build_model("gatgap", num_skims=1, vocab_size=data.vocab_size)
loss_fn = build_loss("entropy")
opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
loader = GraphLoader(train, batch_size=128, shuffle=True, seed=0)
for epoch in range(4):
    loader.set_epoch(epoch)
    for batch in loader:                        # PyG Batch: x (N, 8), pdg, edge_index, y (B, 1)
        loss = loss_fn(model(batch), batch.y, weight=batch.weight)
        opt.zero_grad(); loss.backward(); opt.step()

def predict(ds):                                # logits and labels of one skim, in dataset order
    model.eval()
    with torch.no_grad():
        batches = list(GraphLoader(ds, batch_size=1024, shuffle=False))
        return (torch.cat([model(b) for b in batches])[:, 0].numpy(),
                torch.cat([b.y for b in batches])[:, 0].numpy())

x_val, y_val = predict(val)
x_test, y_test = predict(test)
cal = Calibration.fit(x_val, y_val, form=("exp", "sigmoid"))   # fitted on validation events
p = cal.apply(x_test)                                          # judged on test events
print(f"test AUC {auc(y_test, x_test):.3f}, speedup {speedup(p, y_test):.2f} "
      f"(perfect classifier {perfect_speedup(y_test.mean(), max_weight=100):.2f})")
keep, weight = sample(p, seed=1)                # the filter: keep with p, weight 1/p
print(f"kept {keep.mean():.0%} of the test events, weights up to {weight.max():.1f}")
