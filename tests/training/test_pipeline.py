import json
import shlex
import shutil
from pathlib import Path

import pytest
import yaml

from artefix.errors import OutputError
from artefix.training.config import ConfigError
from artefix.training.pipeline import (
    PIPELINE_FILE,
    is_pipeline_file,
    load_pipeline,
    run_pipeline,
    stage_configs,
)

REPO = Path(__file__).resolve().parents[2]
TINY = REPO / "configs" / "tiny.yaml"
WEIGHTS = REPO / "src" / "artefix" / "weights"
ABLATION = REPO / "experiments" / "mt-vs-mt-lc" / "configs" / "mt_vs_mt_lc.yaml"
QUIET = ["trainer.progress_bar=none", "trainer.val_metrics=[mse]", "trainer.max_epochs=1"]


def write(path, doc):
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def two_stages(folder):
    return write(
        folder / "p.yaml",
        {
            "name": "two",
            "stages": [
                {"name": "first", "config": str(TINY)},
                {"name": "second", "config": str(TINY), "init": "first", "set": ["seed=3"]},
            ],
        },
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipeline")
    pipeline = load_pipeline(two_stages(folder))
    results = run_pipeline(pipeline, folder / "run", QUIET)
    return pipeline, folder / "run", results


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"stages": []}, "non-empty 'stages' list"),
        ({"stages": [{"name": "a", "config": "x.yaml"}], "seed": 1}, "unknown keys ['seed']"),
        ({"stages": [{"name": "a", "config": "x.yaml", "lr": 1}]}, "unknown keys ['lr']"),
        ({"stages": [{"name": "a/b", "config": "x.yaml"}]}, "plain folder name"),
        ({"stages": [{"name": "a", "config": "x.yaml"}, {"name": "a", "config": "x.yaml"}]}, "used twice"),
        ({"stages": [{"name": "a", "config": "x.yaml", "init": "b"}]}, "not an earlier stage"),
        ({"stages": [{"name": "a"}]}, "needs a config"),
        ({"stages": [{"name": "a", "config": "x.yaml", "set": "seed=1"}]}, "list of KEY=VALUE"),
    ],
)
def test_bad_pipeline_files_are_refused_with_the_reason(tmp_path, doc, message):
    with pytest.raises(ConfigError, match=r".*") as info:
        load_pipeline(write(tmp_path / "p.yaml", doc))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_stage_with_a_missing_config_is_named(tmp_path):
    pipeline = load_pipeline(write(tmp_path / "p.yaml", {"stages": [{"name": "only", "config": "missing.yaml"}]}))
    assert pipeline.name == "p" and pipeline.stages[0].config == tmp_path / "missing.yaml"
    with pytest.raises(ConfigError, match="stage 'only': .*missing.yaml: config file not found"):
        stage_configs(pipeline, tmp_path / "run")


def test_pipeline_files_are_told_from_training_configs(tmp_path):
    assert is_pipeline_file(two_stages(tmp_path))
    assert not is_pipeline_file(TINY)
    assert not is_pipeline_file(tmp_path / "missing.yaml")


def test_stage_configs_chain_the_weights_and_apply_overrides(tmp_path):
    stages = stage_configs(load_pipeline(two_stages(tmp_path)), tmp_path / "run", ["trainer.max_epochs=2"])
    (first, c1, d1), (second, c2, d2) = stages
    assert (d1, d2) == (tmp_path / "run" / "first", tmp_path / "run" / "second")
    assert c1.model.init is None and c2.model.init == str(d1 / "best.safetensors")
    assert c1.seed == 0 and c2.seed == 3  # the stage's own `set`
    assert c1.trainer.max_epochs == c2.trainer.max_epochs == 2


@pytest.mark.slow
def test_every_stage_trains_from_the_previous_stage(trained):
    pipeline, out, results = trained
    assert [r.status for r in results] == ["finished", "finished"]
    second = yaml.safe_load((out / "second" / "config.yaml").read_text())
    assert second["model"]["init"] == str(out / "first" / "best.safetensors")
    summary = json.loads((out / PIPELINE_FILE).read_text())
    assert [s["name"] for s in summary["stages"]] == ["first", "second"]
    assert summary["final_weights"] == str(out / "second" / "best.safetensors")
    assert (out / "second" / "best.safetensors").is_file()


@pytest.mark.slow
def test_a_trained_pipeline_is_kept_unless_resumed(trained):
    pipeline, out, _ = trained
    with pytest.raises(OutputError, match="already holds a training pipeline; pass `resume`"):
        run_pipeline(pipeline, out, QUIET)
    before = {p: p.stat().st_mtime_ns for p in out.rglob("best.safetensors")}
    results = run_pipeline(pipeline, out, QUIET, resume=True)
    assert [r.status for r in results] == ["finished", "finished"]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("best.safetensors")} == before  # nothing retrained


@pytest.mark.slow
def test_resume_refuses_a_stage_trained_from_weights_that_changed_since(trained, tmp_path):
    pipeline, out, _ = trained
    copy = tmp_path / "run"
    shutil.copytree(out, copy)
    (copy / "first" / "best.safetensors").write_bytes(b"other weights")  # as if stage `first` trained further
    with pytest.raises(OutputError, match="stage 'second' was trained from an earlier 'first'; delete"):
        run_pipeline(pipeline, copy, QUIET, resume=True)


@pytest.mark.slow
def test_resume_refuses_a_stage_whose_config_changed(trained):
    pipeline, out, _ = trained
    with pytest.raises(ConfigError, match="cannot resume .*first.*loss.alpha"):
        run_pipeline(pipeline, out, [*QUIET, "loss.alpha=0.5"], resume=True)


@pytest.mark.parametrize("card", sorted(WEIGHTS.glob("*.json")), ids=lambda p: p.stem)
def test_each_shipped_model_has_a_pipeline_of_its_stages(card):
    doc = json.loads(card.read_text())
    command = shlex.split(doc["release_command"])
    assert command[:2] == ["artefix", "train"]
    pipeline = load_pipeline(REPO / command[2])
    stage_files = [shlex.split(s["command"])[2] for s in doc["starts_from"]]
    stage_files.append(shlex.split(doc["command"])[2])
    assert [s.config for s in pipeline.stages] == [(REPO / f).absolute() for f in stage_files]
    assert [s.init for s in pipeline.stages] == [None, *[s.name for s in pipeline.stages[:-1]]]
    configs = stage_configs(pipeline, REPO / "runs" / "check")
    assert configs[-1][1].model.preset == doc["preset"]


def test_every_pipeline_file_in_configs_and_experiments_resolves():
    yamls = [p for top in ("configs", "experiments") for p in sorted((REPO / top).rglob("*.yaml"))]
    files = [p for p in yamls if is_pipeline_file(p)]
    assert {p.parent.name for p in files} >= {"pipelines"} and ABLATION in files
    for path in files:
        stages = stage_configs(load_pipeline(path), REPO / "runs" / "check")
        assert stages and all(config.name for _, config, _ in stages)


def test_the_mt_vs_mt_lc_ablation_changes_only_the_loss():
    stages = {s.name: c.to_dict() for s, c, _ in stage_configs(load_pipeline(ABLATION), REPO / "runs" / "check")}
    for lc, mt in (("mt-lc-stage2", "mt-stage2"), ("mt-lc-fitgates", "mt-fitgates")):
        a, b = stages[lc], stages[mt]
        assert (a["loss"]["deltas"], b["loss"]["deltas"]) == ("mt_lc_brain", "mse")
        for doc in (a, b):
            doc.pop("name")
            doc["loss"].pop("deltas")
            if "fitgates" in lc:
                doc["model"].pop("init")  # each from its own stage 2
        assert a == b


def test_a_stage_set_path_is_taken_from_the_pipeline_folder(tmp_path, monkeypatch):
    folder = tmp_path / "pipes"
    folder.mkdir()
    doc = {"name": "p", "stages": [{"name": "only", "config": str(TINY), "set": ["data.split=my_split.json"]}]}
    monkeypatch.chdir(tmp_path)  # elsewhere than the pipeline file
    ((_, config, _),) = stage_configs(load_pipeline(write(folder / "p.yaml", doc)), tmp_path / "run", [])
    assert config.data.split == str(folder / "my_split.json")
    ((_, config, _),) = stage_configs(load_pipeline(folder / "p.yaml"), tmp_path / "run", ["data.split=cli.json"])
    assert config.data.split == str(tmp_path / "cli.json")  # a command-line path: the current folder
