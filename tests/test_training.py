"""The LightningModule trains the encoder in train mode and the schedule warms up then decays."""

import pytorch_lightning as pl
import torch

from retrieval_lab.data.beir import load_beir
from retrieval_lab.objectives import InfoNCE
from retrieval_lab.training.datamodule import ContrastiveDataModule
from retrieval_lab.training.training_set import judged_pairs
from retrieval_lab.training.module import RetrieverModule
from retrieval_lab.training.schedule import linear_warmup_decay
from tests.test_model import tiny


class _ModeProbe(pl.Callback):
    def __init__(self):
        self.modes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.modes.append(all(m.training for m in pl_module.model.modules()))


def test_encoder_trains_in_train_mode_and_learns(tiny_beir):
    model = tiny()
    model.eval()  # as from_pretrained leaves it
    dataset = load_beir(tiny_beir, "tiny", ["train"], download=False)
    dm = ContrastiveDataModule(judged_pairs(dataset, "train", "{title} {text}"), model.tokenization, 8, seed=0)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
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
    assert any(n.endswith("LayerNorm.weight") for n, _ in model.named_parameters())


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
