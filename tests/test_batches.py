"""The framework's data order: what each epoch's batches are, whatever came before in the process."""

import torch
from torch.utils.data import DataLoader, DistributedSampler

from retrieval_lab.training.batches import BatchKey, ResumableBatches, ShuffledBatches, batch_rng


def test_one_process_keeps_the_order_of_a_shuffling_dataloader():
    """The order of the runs made before the framework owned it (pinned figures depend on it)."""
    n, batch_size, seed = 101, 8, 42
    loader = DataLoader(list(range(n)), batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed))
    for epoch in range(3):
        ours = ShuffledBatches(n, batch_size, seed)
        ours.set_epoch(epoch)  # a fresh sampler: epoch e alone, as a resumed process sees it
        assert list(ours) == [batch.tolist() for batch in loader], epoch
    assert len(ours) == len(loader) == 13


def test_several_ranks_get_distributed_samplers_order():
    n, batch_size, seed, world = 37, 4, 3, 3
    for epoch in range(2):
        for rank in range(world):
            reference = DistributedSampler(list(range(n)), num_replicas=world, rank=rank, shuffle=True, seed=seed)
            reference.set_epoch(epoch)
            indices = list(reference)
            ours = ShuffledBatches(n, batch_size, seed, rank, world)
            ours.set_epoch(epoch)
            assert list(ours) == [indices[i:i + batch_size] for i in range(0, len(indices), batch_size)]
            assert len(ours) == 4


def test_a_resumed_epoch_skips_the_batches_done_and_keys_every_batch_by_its_place():
    inner = ShuffledBatches(50, 8, 0)
    full = ResumableBatches(inner)
    full.set_epoch(1)
    everything = list(full)
    resumed = ResumableBatches(ShuffledBatches(50, 8, 0))
    resumed.resume_at(1, 3)
    resumed.set_epoch(1)
    rest = list(resumed)
    assert rest == everything[3:] and rest[0][0][0] == BatchKey(1, 3)
    resumed.set_epoch(2)  # the skip applies once, to its epoch
    assert len(list(resumed)) == len(resumed) == 7


def test_each_batch_draws_by_its_place_alone():
    assert batch_rng(1, BatchKey(0, 5)).random() == batch_rng(1, BatchKey(0, 5)).random()
    assert len({batch_rng(1, BatchKey(e, b)).random() for e in range(3) for b in range(3)}) == 9


def test_lightning_sets_the_epoch_of_the_batches(tmp_path):
    """Lightning calls set_epoch on the loader's sampler and its batch sampler's sampler only:
    each epoch must still get its own order (and a resumed epoch its skip)."""
    import pytorch_lightning as pl

    from retrieval_lab.training.batches import ResumableDataModule

    seen = []

    class Items(ResumableDataModule):
        def items(self):
            return list(range(12))

        def collate(self, items, rng=None):
            seen.append(items)
            return torch.zeros(1, requires_grad=True)

    class Module(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def training_step(self, batch, batch_idx):
            return (self.w * batch).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, use_distributed_sampler=False,
                         default_root_dir=tmp_path)
    trainer.fit(Module(), datamodule=Items(batch_size=4, seed=5, num_workers=0))
    epochs = []
    for epoch in range(2):
        order = ShuffledBatches(12, 4, 5)
        order.set_epoch(epoch)
        epochs += list(order)
    assert seen == epochs and seen[:3] != seen[3:]
