import json
from pathlib import Path

import pytest
import torch

from artefix.release.__main__ import main
from artefix.release.repository import Repository
from artefix.release.validation import refresh

ROOT = Path(__file__).resolve().parents[2]


def _summary_rows(values: dict[str, float]) -> list[dict]:
    """summary.json rows of one experiment (bias 5 %) for methods -> SSIM (VIF and MSE derived from it)."""
    rows = []
    for method, ssim in values.items():
        for metric, mean in (("ssim", ssim), ("vif", ssim - 0.01), ("mse", 1.0 - ssim)):
            row = {"experiment": "bias", "severity": 0.05, "method": method, "metric": metric}
            rows.append({**row, "mean": mean, "sem": 0.0, "bold": False, "n": 4})
    return rows


def test_refresh_validation_replaces_only_the_tables(tmp_path, capsys):
    """A card evaluated beside a re-released model gets the new table; weights and other fields stay."""
    from artefix.models.checkpoint import load_model, save_model
    from artefix.models.dual_domain import DualDomainModel
    from artefix.models.presets import PRESETS

    repo = Repository(ROOT, tmp_path / "weights", tmp_path / "docs")
    repo.weights.mkdir()
    repo.docs.mkdir()
    evaluation = tmp_path / "eval" / "val"
    evaluation.mkdir(parents=True)
    command = f"artefix evaluate a.nii.gz --out {evaluation.as_posix()} --models mt-brain,other"
    old = {"methods": {}, "verdicts": {}, "slices_note": "old", "command": command}
    training = {"loss": {"deltas": "mse", "alpha": 0.0, "all_heads": 0.0}, "data": {"roots": []}}
    card = {"name": "mt-brain", "preset": "tiny", "training_config": training, "notes": "kept", "validation": old}
    card.update(epochs=3, best_epoch=2, wall_time_s=180.0, hardware={"cpu": "x86", "accelerator": "CPU"}, seed=2)
    model = DualDomainModel(PRESETS["tiny"])
    save_model(model, repo.weights / "mt-brain.safetensors", card=card)
    (evaluation / "summary.json").write_text(
        json.dumps(_summary_rows({"input": 0.99, "mt-brain": 0.995, "other": 0.98}))
    )
    (evaluation / "evaluation.json").write_text(json.dumps({"n_slices": 4, "files": ["a.nii.gz"], "seed": 0}))
    main(["refresh-validation", "mt-brain", "--evaluation", str(evaluation)], repo=repo)
    shipped, new = load_model(repo.weights / "mt-brain.safetensors")
    pairs = zip(shipped.state_dict().values(), model.state_dict().values(), strict=True)
    assert all(torch.equal(a, b) for a, b in pairs)
    assert new["notes"] == "kept" and new["validation"]["command"] == command
    assert new["validation"]["slices_note"] == "4 slices of 1 scans, seed 0"
    assert new["validation"]["methods"]["bias@0.05"]["other"]["ssim"]["mean"] == 0.98
    assert new["validation"]["verdicts"]["bias@0.05"]["improves_ssim"] is True
    assert "mt-brain" in (repo.docs / "models.md").read_text()
    assert "| bias@0.05 | other |" in (repo.docs / "models" / "mt-brain.md").read_text()
    with pytest.raises(ValueError, match="another command"):
        refresh(repo.weights, "mt-brain", tmp_path / "eval" / "elsewhere")
    with pytest.raises(SystemExit, match="another command"):  # on the command line: a one-line error
        main(["refresh-validation", "mt-brain", "--evaluation", str(tmp_path / "eval" / "elsewhere")], repo=repo)
