"""The LightningModule trains the encoder in train mode and the schedule warms up then decays."""

import pytorch_lightning as pl
import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.objectives import InfoNCE
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.training_set import judged_pairs
from retrieval_lab.training.module import RetrieverModule, contrastive_loss
from retrieval_lab.training.schedule import linear_warmup_decay
from tests.test_model import tiny


class _ModeProbe(pl.Callback):
    def __init__(self):
        self.modes = []
        self.losses = []  # (epoch, training loss) of each step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes.append(all(m.training for m in pl_module.model.modules()))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.losses.append((trainer.current_epoch, float(outputs["loss"])))


def _whole_set_loss(model, dm) -> float:
    """InfoNCE of all 30 training pairs in one batch, dropout off: 29 negatives each."""
    model.eval()
    with torch.no_grad():
        return float(contrastive_loss(model, InfoNCE(0.05), dm.collate(list(dm.training_set.pairs)), False))


def test_encoder_trains_in_train_mode_and_learns(tiny_beir):
    model = tiny()
    model.eval()  # as from_pretrained leaves it
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    dm = ContrastiveDataModule(judged_pairs(dataset, "train", "{title} {text}"), model.tokenization, 8, seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    loss_before = _whole_set_loss(model, dm)  # leaves the model in eval mode
    module = RetrieverModule(
        model, InfoNCE(0.05),
        optimizer=lambda groups: torch.optim.AdamW(groups, lr=1e-3, weight_decay=0.01),
        scheduler=lambda opt, total: linear_warmup_decay(opt, total, 0.1),
    )
    probe = _ModeProbe()
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, callbacks=[probe],
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    assert probe.modes and all(probe.modes)
    pooler = {n for n, p in model.named_parameters() if ".pooler." in n and not p.requires_grad}
    assert pooler  # BERT's pooler head: unused by our pooling, frozen
    unchanged = {n for n, p in model.named_parameters() if torch.equal(p, before[n])}
    assert unchanged == pooler
    groups = trainer.optimizers[0].param_groups
    assert groups[0]["weight_decay"] == 0.01 and groups[1]["weight_decay"] == 0.0
    name_of = {id(p): n for n, p in model.named_parameters()}
    decay, no_decay = ({name_of[id(p)] for p in g["params"]} for g in groups)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert decay | no_decay == trainable and not decay & no_decay and len(groups) == 2
    # no decay: exactly the biases and the LayerNorm weights (BERT's and sentence-transformers' rule)
    shape = dict((n, p.shape) for n, p in model.named_parameters())
    assert no_decay == {n for n in trainable if n.endswith(".bias") or n.endswith("LayerNorm.weight")}
    assert all(len(shape[n]) == 1 for n in no_decay)
    assert sum(n.endswith("LayerNorm.weight") for n in no_decay) == 1 + 2 * 2  # embeddings + 2 per layer, 2 layers
    assert any(n.endswith("attention.self.query.bias") for n in no_decay)
    # decay: the weight matrices (embedding tables, attention and feed-forward projections)
    assert decay and all(n.endswith(".weight") and len(shape[n]) == 2 for n in decay)
    assert any(n.endswith("word_embeddings.weight") for n in decay)
    assert sum(n.endswith("attention.self.query.weight") for n in decay) == 2
    # the loss falls: the training loss of the second epoch (same batch sizes as the first) is
    # well below the first's (measured 1.66 -> 1.26), and the whole training set's loss, dropout
    # off, drops from near chance (ln 30 = 3.40; measured 2.98 -> 2.34)
    epoch_mean = [sum(v for e, v in probe.losses if e == epoch) / 4 for epoch in (0, 1)]
    assert [e for e, _ in probe.losses] == [0] * 4 + [1] * 4  # 30 pairs, batches of 8
    assert epoch_mean[1] < epoch_mean[0] - 0.15, probe.losses
    loss_after = _whole_set_loss(model, dm)
    assert loss_after < loss_before - 0.3, (loss_before, loss_after)


def test_linear_warmup_then_decay():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=1.0)
    sched = linear_warmup_decay(opt, total_steps=20, warmup_ratio=0.1)
    lrs = []
    for _ in range(20):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == 0.0 and lrs[1] == 0.5 and lrs[2] == 1.0
    assert lrs[2:] == sorted(lrs[2:], reverse=True) and lrs[-1] > 0
