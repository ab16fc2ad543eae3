import json
from pathlib import Path

from artefix.release.__main__ import main
from artefix.release.cards import portable
from artefix.release.publish import pipeline_command
from artefix.release.repository import Repository

ROOT = Path(__file__).resolve().parents[2]


def test_release_records_every_earlier_stage_in_the_card_and_the_command(tmp_path):
    """A three-stage model: both earlier runs go into ``starts_from`` (earliest first) and lead the command."""
    from artefix.models.checkpoint import load_model, save_model
    from artefix.models.dual_domain import DualDomainModel
    from artefix.models.presets import PRESETS

    repo = Repository(ROOT, tmp_path / "weights", tmp_path / "docs")
    repo.weights.mkdir()
    repo.docs.mkdir()
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
    argv = ["model", str(stages[2]), "mt-lc-brain", "--config", "c3.yaml"]
    argv += ["--starts-from", str(stages[0]), "c1.yaml", "--starts-from", str(stages[1]), "c2.yaml"]
    priors = ["--bias-smooth", "0.1", "--noise-snr", "9", "12"]
    main([*argv, "--consistency", "--ensemble", "8", *priors], repo=repo)
    model, shipped = load_model(repo.weights / "mt-lc-brain.safetensors")
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
    assert pipeline_command(repo, "no-such-model") is None
    page = (repo.docs / "models" / "mt-lc-brain.md").read_text()
    assert page.count("- starts from `") == 2 and page.index(stages[0].as_posix()) < page.index(stages[1].as_posix())
    assert "[mt-lc-brain](models/mt-lc-brain.md)" in (repo.docs / "models.md").read_text()


def test_portable_makes_the_paths_of_this_machine_relative_to_the_repository(tmp_path):
    root = tmp_path / "work" / "artefix"
    card = {
        "split_file": str(root / "configs" / "release" / "brain_split.json"),
        "data": {"roots": [str(tmp_path / "work" / "shared" / "data" / "ixi")], "n": 3},
        "notes": "kept /as it is",
        "elsewhere": "/usr/lib/x",
    }
    assert portable(card, root) == {
        "split_file": "configs/release/brain_split.json",
        "data": {"roots": ["../shared/data/ixi"], "n": 3},
        "notes": "kept /as it is",
        "elsewhere": "/usr/lib/x",
    }
