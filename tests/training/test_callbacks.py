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


def _validated(export, model, epoch: int, value: float) -> None:
    """One epoch's end of validation with ``val/loss = value``, as Lightning calls the callback."""
    trainer = SimpleNamespace(
        sanity_checking=False,
        callback_metrics={"val/loss": torch.tensor(value)},
        current_epoch=epoch,
        is_global_zero=True,
        loggers=[],
        accelerator=CUDAAccelerator(),
        strategy=SimpleNamespace(root_device=torch.device("cpu")),
        world_size=1,
        num_nodes=1,
        precision="32-true",
        max_epochs=4,
    )
    export.on_validation_end(trainer, SimpleNamespace(model=model))


def test_model_export_keeps_the_best_or_the_last_epoch(tmp_path):
    import json

    import pytest

    from artefix.models import build_model
    from artefix.models.checkpoint import load_model
    from artefix.training.callbacks import ModelExport, read_run_file

    model = build_model("tiny", seed=0)
    for keep, kept in (("best", 1), ("last", 2)):
        out = tmp_path / keep
        out.mkdir()  # the engine makes the run folder
        export = ModelExport(out, {"name": keep}, monitor="val/loss", keep=keep)
        for epoch, value in enumerate((0.5, 0.2, 0.3)):
            with torch.no_grad():
                next(model.parameters()).fill_(float(epoch))  # weights that say which epoch they are from
            _validated(export, model, epoch, value)
        best, card = load_model(out / "best.safetensors")
        assert float(next(best.parameters()).detach().flatten()[0]) == float(kept)
        assert card["best_epoch"] == kept and card["kind"] == "best"
        run = read_run_file(out)
        assert run["keep"] == keep and run["best_epoch"] == kept and len(run["history"]) == 3
        assert json.loads((out / "last.json").read_text())["epochs"] == 3
        _validated(export, model, 3, float("nan"))  # a non-finite value never replaces the kept weights
        assert read_run_file(out)["best_epoch"] == kept
    with pytest.raises(ValueError, match="keep"):
        ModelExport(tmp_path, {}, keep="first")
