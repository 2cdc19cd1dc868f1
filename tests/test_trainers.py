"""The trainer configs: the launcher each needs is composed from the trainer's own settings."""

from tests.conftest import compose_config


def test_the_multinode_launcher_asks_slurm_for_one_task_per_gpu_of_every_node():
    cfg = compose_config(["trainer=multinode", "trainer.num_nodes=4", "hydra/launcher=slurm_multinode"], with_hydra=True)
    launcher = cfg.hydra.launcher
    assert (launcher.nodes, launcher.tasks_per_node, launcher.gpus_per_node) == (4, 8, 8)
    assert cfg.trainer.strategy == "ddp" and cfg.trainer.accelerator == "gpu"
    assert launcher._target_.endswith("SlurmLauncher")
