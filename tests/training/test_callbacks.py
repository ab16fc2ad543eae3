from types import SimpleNamespace

import lightning as L
import torch

from artefix.training.callbacks import _hardware


class CUDAAccelerator:  # named like Lightning's, which is what the card records
    pass


def test_hardware_of_a_real_trainer_reads_its_root_device(monkeypatch):
    """The CUDA branch must use attributes a real Trainer has (it once asked for trainer.root_device)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    info = _hardware(trainer)
    assert info["accelerator"] == "CPUAccelerator"
    assert "gpu" not in info  # the root device is the CPU even where CUDA is available
    assert info["world_size"] == 1 and info["num_nodes"] == 1


def test_hardware_names_the_gpu_of_a_cuda_run(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device: f"Fake H200 at {device}")
    trainer = SimpleNamespace(
        accelerator=CUDAAccelerator(),
        strategy=SimpleNamespace(root_device=torch.device("cuda", 0)),
        world_size=1,
        num_nodes=1,
        precision="bf16-mixed",
    )
    info = _hardware(trainer)
    assert info["gpu"] == "Fake H200 at cuda:0"
    assert info["accelerator"] == "CUDAAccelerator"
    assert info["precision"] == "bf16-mixed"
    assert info["cpu"]
