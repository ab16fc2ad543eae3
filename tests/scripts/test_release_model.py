import json
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]


def test_models_doc_is_rendered_from_the_shipped_cards(script, tmp_path, monkeypatch):
    """docs/models.md must be what release_model renders from src/artefix/weights/*.json (no hand edits)."""
    module = script("release_model")
    monkeypatch.setattr(module, "DOC", tmp_path / "models.md")
    module.render_doc()
    assert (tmp_path / "models.md").read_text() == (ROOT / "docs" / "models.md").read_text()


def test_every_shipped_card_has_a_description_and_the_gpu_is_named(script):
    module = script("release_model")
    for path in sorted((ROOT / "src" / "artefix" / "weights").glob("*.json")):
        card = json.loads(path.read_text())
        assert card["description"] == module.DESCRIPTIONS[card["name"]]
    assert module._hardware({"cpu": "x86", "gpu": "NVIDIA H200", "accelerator": "CUDAAccelerator"}) == (
        "NVIDIA H200 (CUDAAccelerator)"
    )
    assert module._hardware({"cpu": "x86", "accelerator": "CPUAccelerator"}) == "x86 (CPUAccelerator)"


def test_release_records_every_earlier_stage_in_the_card_and_the_command(script, tmp_path, monkeypatch):
    """A three-stage model: both earlier runs go into ``starts_from`` (earliest first) and lead the command."""
    from artefix.models.checkpoint import load_model, save_model
    from artefix.models.dual_domain import DualDomainModel
    from artefix.models.presets import PRESETS

    module = script("release_model")
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(module, "WEIGHTS", weights)
    monkeypatch.setattr(module, "DOC", tmp_path / "models.md")
    hardware = {"cpu": "x86", "accelerator": "CPUAccelerator"}
    stages = []
    for k, name in enumerate(("s1", "s2", "s3")):
        run = tmp_path / "runs" / name
        run.mkdir(parents=True)
        card = {"epochs": k + 1, "best_epoch": k, "wall_time_s": 60.0 * (k + 1), "hardware": hardware, "seed": k}
        (run / "best.json").write_text(json.dumps(card))
        stages.append(run)
    training = {"loss": {"deltas": "mt_lc_brain", "alpha": 0.01, "all_heads": 1.0}, "data": {"roots": []}}
    card = {"name": "x", "preset": "tiny", "training_config": training, "epochs": 3, "best_epoch": 2}
    card.update(wall_time_s=180.0, hardware=hardware, seed=2)
    save_model(DualDomainModel(PRESETS["tiny"]), stages[2] / "best.safetensors", card=card)
    argv = ["release_model.py", str(stages[2]), "mt-lc-brain", "--config", "c3.yaml"]
    argv += ["--starts-from", str(stages[0]), "c1.yaml", "--starts-from", str(stages[1]), "c2.yaml"]
    priors = ["--bias-smooth", "0.1", "--noise-snr", "9", "12"]
    monkeypatch.setattr("sys.argv", [*argv, "--consistency", "--ensemble", "8", *priors])
    module.main()
    model, shipped = load_model(weights / "mt-lc-brain.safetensors")
    assert model.policy.consistency and model.policy.ensemble == 8
    assert model.policy.bias_smooth == 0.1 and model.policy.noise_snr == (9.0, 12.0)
    assert shipped["inference"] == model.policy.to_dict() and shipped["config"] == model.config.to_dict()
    assert shipped["release_changes"].startswith(
        "model.consistency on, model.ensemble 8, model.bias_smooth 0.1, model.noise_snr 9-12 at release"
    )
    assert [s["run"] for s in shipped["starts_from"]] == [stages[0].as_posix(), stages[1].as_posix()]
    assert [s["epochs"] for s in shipped["starts_from"]] == [1, 2]
    assert shipped["stage_commands"] == (
        f"artefix train c1.yaml --out {stages[0].as_posix()} && artefix train c2.yaml --out {stages[1].as_posix()}"
        f" && artefix train c3.yaml --out {stages[2].as_posix()}"
    )
    # mt-lc-brain has a pipeline file: its one command trains every stage
    assert shipped["release_command"] == (
        "artefix train configs/release/pipelines/mt-lc-brain.yaml --out runs/mt-lc-brain-release"
    )
    assert module.pipeline_command("no-such-model") is None
    doc = (tmp_path / "models.md").read_text()
    assert doc.count("- starts from `") == 2 and doc.index(stages[0].as_posix()) < doc.index(stages[1].as_posix())


def _summary_rows(values: dict[str, float]) -> list[dict]:
    """summary.json rows of one experiment (bias 5 %) for methods -> SSIM (VIF and MSE derived from it)."""
    rows = []
    for method, ssim in values.items():
        for metric, mean in (("ssim", ssim), ("vif", ssim - 0.01), ("mse", 1.0 - ssim)):
            row = {"experiment": "bias", "severity": 0.05, "method": method, "metric": metric}
            rows.append({**row, "mean": mean, "sem": 0.0, "bold": False, "n": 4})
    return rows


def test_refresh_validation_replaces_only_the_tables(script, tmp_path, monkeypatch):
    """A card evaluated beside a re-released model gets the new table; weights and other fields stay."""
    from artefix.models.checkpoint import load_model, save_model
    from artefix.models.dual_domain import DualDomainModel
    from artefix.models.presets import PRESETS

    module = script("refresh_validation")
    weights = tmp_path / "weights"
    weights.mkdir()
    monkeypatch.setattr(module.release_model, "WEIGHTS", weights)
    monkeypatch.setattr(module.release_model, "DOC", tmp_path / "models.md")
    evaluation = tmp_path / "eval" / "val"
    evaluation.mkdir(parents=True)
    command = f"artefix evaluate a.nii.gz --out {evaluation.as_posix()} --models mt-brain,other"
    old = {"methods": {}, "verdicts": {}, "slices_note": "old", "command": command}
    training = {"loss": {"deltas": "mse", "alpha": 0.0, "all_heads": 0.0}, "data": {"roots": []}}
    card = {"name": "mt-brain", "preset": "tiny", "training_config": training, "notes": "kept", "validation": old}
    card.update(epochs=3, best_epoch=2, wall_time_s=180.0, hardware={"cpu": "x86", "accelerator": "CPU"}, seed=2)
    model = DualDomainModel(PRESETS["tiny"])
    save_model(model, weights / "mt-brain.safetensors", card=card)
    (evaluation / "summary.json").write_text(
        json.dumps(_summary_rows({"input": 0.99, "mt-brain": 0.995, "other": 0.98}))
    )
    (evaluation / "evaluation.json").write_text(json.dumps({"n_slices": 4, "files": ["a.nii.gz"], "seed": 0}))
    monkeypatch.setattr("sys.argv", ["refresh_validation.py", "mt-brain", "--evaluation", str(evaluation)])
    module.main()
    shipped, new = load_model(weights / "mt-brain.safetensors")
    pairs = zip(shipped.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert new["notes"] == "kept" and new["validation"]["command"] == command
    assert new["validation"]["slices_note"] == "4 slices of 1 scans, seed 0"
    assert new["validation"]["methods"]["bias@0.05"]["other"]["ssim"]["mean"] == 0.98
    assert new["validation"]["verdicts"]["bias@0.05"]["improves_ssim"] is True
    assert "mt-brain" in (tmp_path / "models.md").read_text()
    with pytest.raises(ValueError, match="another command"):
        module.refresh("mt-brain", tmp_path / "eval" / "elsewhere")


def test_portable_makes_the_paths_of_this_machine_relative_to_the_repository(script, tmp_path):
    module = script("release_model")
    root = tmp_path / "work" / "artefix"
    card = {
        "split_file": str(root / "configs" / "release" / "brain_split.json"),
        "data": {"roots": [str(tmp_path / "work" / "shared" / "data" / "ixi")], "n": 3},
        "notes": "kept /as it is",
        "elsewhere": "/usr/lib/x",
    }
    assert module.portable(card, root) == {
        "split_file": "configs/release/brain_split.json",
        "data": {"roots": ["../shared/data/ixi"], "n": 3},
        "notes": "kept /as it is",
        "elsewhere": "/usr/lib/x",
    }
