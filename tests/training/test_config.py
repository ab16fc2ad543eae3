from pathlib import Path

import pytest
import yaml

from artefix.errors import ArtefixError
from artefix.losses import ALPHA_PRESETS, DELTA_PRESETS
from artefix.training.config import ConfigError, TrainConfig, apply_overrides, load_config, save_config
from artefix.training.pipeline import is_pipeline_file

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"
EXPERIMENTS = REPO / "experiments"
PAPER = {
    # name: (Table 2 column for alpha, log10 lr, delta preset, heads)
    "mt_lc_brain": ("mt_lc_brain", -3.91, "mt_lc_brain", ("bias", "subsampling", "motion", "noise")),
    "mt_brain": ("mt", -3.73, "mse", ("bias", "subsampling", "motion", "noise")),
    "bias_brain": ("bias", -3.79, "mse", ("bias",)),
    "subsampling_brain": ("subsampling", -4.39, "mse", ("subsampling",)),
    "motion_brain": ("motion", -4.17, "mse", ("motion",)),
    "noise_brain": ("noise", -4.06, "mse", ("noise",)),
    "mt_lc_pelvis": ("mt_lc_pelvis", -3.88, "mt_lc_pelvis", ("bias", "subsampling", "motion", "noise")),
}


def write(tmp_path, text, name="c.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_every_shipped_config_is_listed_and_validates():
    names = {p.stem for p in CONFIGS.glob("*.yaml")}
    assert names == set(PAPER) | {"tiny"}
    for path in CONFIGS.glob("*.yaml"):
        config = load_config(path)
        assert config.name == path.stem
        assert TrainConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("name", sorted(PAPER))
def test_paper_configs_carry_table_2(name):
    column, g, deltas, heads = PAPER[name]
    config = load_config(CONFIGS / f"{name}.yaml")
    assert config.optimizer.name == "rmsprop"
    assert config.optimizer.log10_lr == g
    assert config.optimizer.lr == pytest.approx(10**g)
    assert config.loss.alpha == ALPHA_PRESETS[column]
    assert config.loss.delta_values == pytest.approx(dict(DELTA_PRESETS[deltas]))
    assert config.model.head_names == heads
    assert config.trainer.patience == 10
    assert config.data.matrix == (320, 320)
    # the brain/pelvis data resolves against the config's folder to ../shared/data of the repository
    assert Path(config.data.base) == (REPO.parent / "shared" / "data").absolute()
    if name.endswith("pelvis"):
        assert config.data.fractions == (0.8, 0.2, 0.0)
        assert "periodic-motion" in config.data.artefacts
    else:
        assert config.data.fractions == (0.7, 0.1, 0.2)
        assert set(config.data.artefacts) == set(heads)


def test_tiny_config_uses_the_builtin_sample():
    config = load_config(CONFIGS / "tiny.yaml")
    assert config.data.source == "sample"
    assert config.model.preset == "tiny"
    assert config.data.matrix == (64, 64)
    assert set(config.data.train_samples).isdisjoint(config.data.val_samples)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("model: [1, 2\n", "invalid YAML"),
        ("- 1\n- 2\n", "must hold a YAML mapping"),
        ("trainer: {max_epoch: 3}\n", "unknown key 'trainer.max_epoch'; did you mean 'max_epochs'?"),
        ("optimiser: {name: adam}\n", "unknown key 'optimiser'; did you mean 'optimizer'?"),
        ("data: {source: sample, batch_size: 0}\n", "data.batch_size must be an integer >= 1, got 0"),
        ("optimizer: {name: sgd}\ndata: {source: sample}\n", "optimizer.name must be one of rmsprop, adam"),
        ("optimizer: {log10_lr: fast}\ndata: {source: sample}\n", "optimizer.log10_lr must be a finite number"),
        ("trainer: {precision: 8-bit}\ndata: {source: sample}\n", "trainer.precision must be one of"),
        ("loss: {deltas: {E: 1, X9: 2}}\ndata: {source: sample}\n", "unknown kernel(s) ['X9']"),
        ("loss: {deltas: {E: 0}}\ndata: {source: sample}\n", "all zero"),
        ("loss: {alpha: -1}\ndata: {source: sample}\n", "loss.alpha must lie in [0.0, None]"),
        ("model: {preset: huge}\ndata: {source: sample}\n", "model.preset must be one of paper, compact, tiny"),
        ("model: {heads: [bias]}\ndata: {source: sample}\n", "data.artefacts ['subsampling', 'motion', 'noise']"),
        ("data: {source: sample, fractions: [0.5, 0.1, 0.1]}\n", "must add up to 1"),
        ("data: {source: files}\n", "neither data.roots nor data.split"),
        ("data: {source: sample, artefacts: [ghosting]}\n", "data.artefacts has unknown name(s) ['ghosting']"),
        ("trainer: {devices: zero}\ndata: {source: sample}\n", "trainer.devices must be 'auto'"),
        ("trainer: {limit_train_batches: 1.5}\ndata: {source: sample}\n", "trainer.limit_train_batches"),
        ("tune: {sampler: grid}\ndata: {source: sample}\n", "tune.sampler must be one of tpe, gp, random"),
        ("seed: -1\ndata: {source: sample}\n", "seed must be an integer >= 0"),
    ],
)
def test_invalid_configs_raise_one_line_config_errors(tmp_path, text, message):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert isinstance(info.value, ArtefixError)
    assert message in str(info.value)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_empty_file_gives_the_defaults_except_data(tmp_path):
    with pytest.raises(ConfigError, match="neither data.roots nor data.split"):
        load_config(write(tmp_path, ""))
    config = load_config(write(tmp_path, "data: {source: sample}\n"))
    assert config.model.preset == "compact"
    assert config.trainer.patience == 10
    assert config.model.head_names == ("bias", "subsampling", "motion", "noise")


def test_paths_resolve_against_the_config_folder_and_overrides_against_cwd(tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    path = write(folder, "data: {base: ../data, roots: [brain], split: splits/s.json}\n")
    config = load_config(path)
    assert Path(config.data.base) == (tmp_path / "data").absolute()
    assert Path(config.data.split) == (folder / "splits" / "s.json").absolute()
    assert config.data.roots == ("brain",)  # relative to data.base
    elsewhere = tmp_path / "cwd"
    config = load_config(path, ["data.base=mirror", "data.split=null"], cwd=elsewhere)
    assert Path(config.data.base) == elsewhere / "mirror"
    assert config.data.split is None
    config = load_config(path, data_root=tmp_path / "copy")
    assert Path(config.data.base) == tmp_path / "copy"
    # without a base, roots resolve like the base would
    path = write(folder, "data: {roots: [../scans, /abs/scans]}\n", "b.yaml")
    assert load_config(path).data.roots == (str((tmp_path / "scans").absolute()), "/abs/scans")
    config = load_config(path, ["data.roots=[x]"], cwd=elsewhere)
    assert config.data.roots == (str(elsewhere / "x"),)


def test_overrides_parse_yaml_values_and_create_sections():
    raw = {"data": {"source": "sample"}, "trainer": {"max_epochs": 5}}
    out = apply_overrides(
        raw, ["trainer.max_epochs=3", "trainer.devices=[0, 1]", "model.heads=[noise]", "loss.alpha=0.5", "name=x"]
    )
    assert raw["trainer"]["max_epochs"] == 5  # input untouched
    config = TrainConfig.from_dict({**out, "data": {"source": "sample", "artefacts": ["noise"]}})
    assert config.trainer.max_epochs == 3
    assert config.trainer.devices == (0, 1)
    assert config.model.head_names == ("noise",)
    assert config.loss.alpha == 0.5
    assert config.name == "x"
    for bad in ("trainer.max_epochs", "=3", "trainer..x=1", "data.source.deep=1"):
        with pytest.raises(ConfigError):
            apply_overrides(raw, [bad])


def test_replace_validates_and_merges_sections():
    config = TrainConfig.from_dict({"data": {"source": "sample"}})
    changed = config.replace(trainer={"max_epochs": 3}, seed=7)
    assert (changed.trainer.max_epochs, changed.trainer.patience, changed.seed) == (3, 10, 7)
    with pytest.raises(ConfigError, match="trainer.max_epochs"):
        config.replace(trainer={"max_epochs": 0})


def test_save_config_round_trip(tmp_path):
    config = load_config(CONFIGS / "mt_lc_brain.yaml", ["trainer.max_epochs=3"])
    path = save_config(config, tmp_path / "out.yaml", header="resolved\nsecond line")
    text = path.read_text()
    assert text.startswith("# resolved\n# second line\n")
    assert yaml.safe_load(text)["trainer"]["max_epochs"] == 3
    assert load_config(path) == config


def test_level_ranges_survive_the_resolved_config(tmp_path):
    config = load_config(CONFIGS / "mt_lc_brain.yaml", ["data.level_ranges={noise: [-10, 10]}"])
    assert config.data.level_ranges == {"noise": (-10.0, 10.0)}
    path = save_config(config, tmp_path / "out.yaml")
    assert yaml.safe_load(path.read_text())["data"]["level_ranges"] == {"noise": [-10.0, 10.0]}
    assert load_config(path) == config


def test_all_heads_term_penalises_invented_corrections():
    from pathlib import Path

    import torch

    from artefix.data.dataset import TrainingSample
    from artefix.training.config import load_config
    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"

    torch.manual_seed(0)
    clean = torch.randn(2, 1, 16, 16)
    batch = TrainingSample(clean, clean.clone(), torch.tensor([0, 3]), ("{}", "{}"), torch.tensor([0, 1]))
    base = ArtefactCorrectionModule(load_config(tiny))
    extra = ArtefactCorrectionModule(load_config(tiny, ["loss.all_heads=1.0"]))
    extra.model.load_state_dict(base.model.state_dict())
    loss0, _ = base._loss(batch)
    loss1, _ = extra._loss(batch)
    # on clean inputs every residual is an invented correction: the extra term adds the all-heads error
    with torch.no_grad():
        out = base.model(clean)
    every = torch.ones(2, 4)
    expected = base.criterion(clean, clean, out.residuals, every).reconstruction
    torch.testing.assert_close(loss1.total - loss0.total, expected, rtol=1e-5, atol=1e-6)
    assert expected > 0


def test_clean_inputs_select_no_head_and_model_init_starts_from_weights(tmp_path):
    import torch

    from artefix.data.dataset import NO_ARTEFACT, TrainingSample
    from artefix.models import build_model
    from artefix.models.checkpoint import save_model
    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    source = build_model("tiny", seed=7)
    (tmp_path / "w").mkdir()
    save_model(source, tmp_path / "w" / "start.safetensors")
    (tmp_path / "c.yaml").write_text(
        yaml.safe_dump({**yaml.safe_load(tiny.read_text()), "model": {"preset": "tiny", "init": "w/start.safetensors"}})
    )
    config = load_config(tmp_path / "c.yaml", ["data.clean_fraction=0.2", "loss.all_heads=1.0"])
    assert config.model.init == str(tmp_path / "w" / "start.safetensors")  # relative to the config file
    module = ArtefactCorrectionModule(config)
    for key, value in source.state_dict().items():
        torch.testing.assert_close(module.model.state_dict()[key], value)
    assert module.artefacts[-1] == "none"  # validation reports the clean slices separately

    torch.manual_seed(0)
    clean = torch.randn(2, 1, 16, 16)
    labels = torch.tensor([NO_ARTEFACT, NO_ARTEFACT])
    batch = TrainingSample(clean, clean.clone(), labels, ("{}", "{}"), torch.tensor([0, 1]))
    loss, _ = module._loss(batch)
    with torch.no_grad():
        out = module.model(clean)
    crit = module.criterion
    # Eq. 6 selects no head (its reconstruction term is that of the identity); all_heads scores all residuals
    expected = crit(clean, clean, out.residuals, torch.zeros(2, 4)).total
    expected = expected + crit(clean, clean, out.residuals, torch.ones(2, 4)).reconstruction
    torch.testing.assert_close(loss.total, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.fit=stretch", "data.fit must be one of"),
        ("data.clean_fraction=1.0", "clean_fraction"),
        ("data.severity_fraction=2", "severity_fraction"),
        ("data.background=1.5", "data.background must lie in"),
        ("data.background=yes", "data.background must be a finite number"),
        ("data.level_ranges={noise: [10, -10]}", "data.level_ranges: .*low <= high"),
        ("data.level_ranges={motio: [0.1, 0.2]}", "data.level_ranges: unknown artefact"),
        ("data.level_ranges=[1, 2]", "data.level_ranges must map"),
        ("model.init=''", "model.init"),
    ],
)
def test_new_data_and_model_options_are_validated(override, message):
    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    with pytest.raises(ConfigError, match=message):
        load_config(tiny, [override])


def test_detection_loss_is_the_cross_entropy_of_the_scores_against_the_applied_artefact():
    import torch

    from artefix.data.dataset import NO_ARTEFACT, TrainingSample
    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    for heads, labels in ((None, [0, 3, NO_ARTEFACT]), (["noise"], [3, 3, NO_ARTEFACT])):
        overrides = ["model.gates=true", f"model.heads={heads or 'null'}"]
        if heads:
            overrides.append("data.artefacts=[noise]")
        module = ArtefactCorrectionModule(load_config(tiny, [*overrides, "loss.detection=0.5"]))
        x = torch.randn(3, 1, 16, 16, generator=torch.Generator().manual_seed(0))
        batch = TrainingSample(x, x.clone(), torch.tensor(labels), ("{}",) * 3, torch.arange(3))
        with torch.no_grad():
            g = module.model.detect(x)
        n = g.shape[1]
        target = torch.zeros(3, n)
        for row, label in enumerate(labels):
            if label != NO_ARTEFACT:
                target[row, module.model.head_names.index(("bias", "subsampling", "motion", "noise")[label])] = 1
        expected = torch.nn.functional.binary_cross_entropy(g, target)
        torch.testing.assert_close(module._detection_loss(batch), expected, rtol=1e-5, atol=1e-6)
        plain = ArtefactCorrectionModule(load_config(tiny, overrides))
        plain.model.load_state_dict(module.model.state_dict())
        loss, _ = module._loss(batch)
        base, _ = plain._loss(batch)
        torch.testing.assert_close(loss.total - base.total, 0.5 * expected, rtol=1e-4, atol=1e-6)


def test_cosine_schedule_and_batch_norm_momentum():
    import torch

    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    module = ArtefactCorrectionModule(load_config(tiny))
    assert isinstance(module.configure_optimizers(), torch.optim.Optimizer)  # the paper: constant rate
    overrides = ["optimizer.schedule=cosine", "optimizer.bn_momentum=0.01", "trainer.max_epochs=4"]
    module = ArtefactCorrectionModule(load_config(tiny, overrides))
    setup = module.configure_optimizers()
    scheduler = setup["lr_scheduler"]["scheduler"]
    lr0 = setup["optimizer"].param_groups[0]["lr"]
    rates = []
    for _ in range(4):
        setup["optimizer"].step()
        scheduler.step()
        rates.append(setup["optimizer"].param_groups[0]["lr"])
    assert rates[-1] < 1e-12 * lr0 + 1e-15 and rates[1] == pytest.approx(lr0 / 2)
    norms = [m for m in module.model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert norms and all(m.momentum == 0.01 for m in norms)
    with pytest.raises(ConfigError, match="bn_momentum"):
        load_config(tiny, ["optimizer.bn_momentum=0"])


def test_release_configs_validate_and_fine_tune_the_stage_1_run():
    release = CONFIGS / "release"
    stage1 = load_config(release / "mt_lc_brain_stage1.yaml")
    assert stage1.model.init is None and stage1.data.fit == "pad"
    names = set()
    for path in sorted(release.glob("*.yaml")):
        config = load_config(path)
        names.add(config.name)
        assert TrainConfig.from_dict(config.to_dict()) == config
        if path.stem == "mt_lc_brain_stage1":
            continue
        if path.stem.endswith("_fitgates"):  # stage 3: the detector refitted to stage 2's residuals as shipped
            _assert_refits_the_detector_of(config, load_config(release / path.name.replace("_fitgates", "")))
            continue
        # every shipped model fine-tunes stage 1 with the same data recipe and the detector
        assert config.model.init == str(REPO / "runs" / "mt-lc-brain-stage1" / "best.safetensors")
        assert config.model.gates and config.loss.detection > 0 and config.data.fit == "native"
        assert config.data.clean_fraction > 0 and config.data.severity_fraction > 0
        assert config.model.preset == stage1.model.preset
        single = config.model.heads is not None
        assert single == (len(config.data.artefacts) == 1)
    assert names >= {"mt-lc-brain", "mt-brain", "bias-brain", "subsampling-brain", "motion-brain", "noise-brain"}
    assert "mt-lc-pelvis" in names and "periodic-motion" in load_config(release / "mt_lc_pelvis.yaml").data.artefacts


def _assert_refits_the_detector_of(config: TrainConfig, stage2: TrainConfig) -> None:
    assert config.model.init == str(REPO / "runs" / stage2.name / "best.safetensors")
    assert config.loss.is_mse == stage2.loss.is_mse and config.data.roots == stage2.data.roots
    assert set(config.model.freeze) == {"image_branch", "kspace_branch"} and config.loss.fit_gates
    assert config.model.heads == stage2.model.heads and config.data.artefacts == stage2.data.artefacts


def test_experiment_configs_validate_and_use_the_release_data():
    """Studies that were not shipped (experiments/STUDY/configs/): each config loads from its new folder."""
    release = CONFIGS / "release"
    paths = [p for p in sorted(EXPERIMENTS.glob("*/configs/*.yaml")) if not is_pipeline_file(p)]
    assert {p.parent.parent.name for p in paths} >= {"quiet-heads", "single-task-gate-refit", "detector-only-stage"}
    for path in paths:
        config = load_config(path)
        assert TrainConfig.from_dict(config.to_dict()) == config
        assert Path(config.data.base) == (REPO.parent / "shared" / "data").absolute()
        assert config.data.split is not None and Path(config.data.split).is_file(), path
        if path.stem == "mt_lc_brain_gates":  # stage 3: only the detector of stage 2 learns
            assert config.model.init == str(REPO / "runs" / "mt-lc-brain" / "best.safetensors")
            assert set(config.model.freeze) == {"image_branch", "kspace_branch"} and config.model.gates
            assert config.data.level_ranges == {"noise": (-10.0, 10.0)}
        elif path.stem.endswith("_fitgates") and (release / path.name.replace("_fitgates", "")).is_file():
            _assert_refits_the_detector_of(config, load_config(release / path.name.replace("_fitgates", "")))


def test_detector_learning_rate_scale():
    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    config = load_config(tiny, ["model.gates=true", "optimizer.detector_lr_scale=10", "optimizer.log10_lr=-3"])
    module = ArtefactCorrectionModule(config)
    groups = module.configure_optimizers().param_groups
    assert [g["lr"] for g in groups] == pytest.approx([1e-3, 1e-2])
    detector = {id(p) for p in module.model.detector.parameters()}
    assert {id(p) for p in groups[1]["params"]} == detector
    assert not detector & {id(p) for p in groups[0]["params"]}
    assert sum(len(g["params"]) for g in groups) == len(list(module.model.parameters()))


def _small_batch(size: int = 32):
    """Four ``size`` x ``size`` training slices with added noise: two labelled noise, one clean, one bias."""
    import torch

    from artefix.data.dataset import TrainingSample

    g = torch.Generator().manual_seed(0)
    clean = torch.randn(4, 1, size, size, generator=g)
    return TrainingSample(
        clean=clean,
        corrupted=clean + 0.3 * torch.randn(4, 1, size, size, generator=g),
        artefact=torch.tensor([3, 3, -1, 0]),
        params=['{"artefact": "noise"}'] * 4,
        index=torch.arange(4),
    )


def test_freeze_trains_only_the_detector_with_fixed_batch_norm_statistics():
    import torch

    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    overrides = ["model.gates=true", "model.freeze=[image_branch, kspace_branch]", "loss.detection=0.1"]
    config = load_config(tiny, overrides)
    assert config.model.freeze == ("image_branch", "kspace_branch")
    module = ArtefactCorrectionModule(config)
    groups = module.configure_optimizers().param_groups
    assert [id(p) for g in groups for p in g["params"]] == [id(p) for p in module.model.detector.parameters()]
    module.train()
    assert module.model.detector.training
    assert not module.model.image_branch.training and not module.model.kspace_branch.training
    before = {k: v.clone() for k, v in module.model.state_dict().items() if not k.startswith("detector.")}
    batch = _small_batch()
    optimizer = torch.optim.SGD([p for g in groups for p in g["params"]], lr=0.1)
    detector_before = [p.clone() for p in module.model.detector.parameters()]
    module.training_step(batch, 0).backward()
    optimizer.step()
    after = module.model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in before.items())  # weights and running statistics
    assert any(not torch.equal(a, b) for a, b in zip(detector_before, module.model.detector.parameters(), strict=True))
    with pytest.raises(ConfigError, match="model.gates is false"):
        load_config(tiny, ["model.freeze=[detector]"])
    with pytest.raises(ConfigError, match="model.freeze"):
        load_config(tiny, ["model.gates=true", "model.freeze=[trunk]"])
    with pytest.raises(ValueError, match="nothing to train"):
        everything = "model.freeze=[image_branch, kspace_branch, detector]"
        ArtefactCorrectionModule(load_config(tiny, ["model.gates=true", everything]))


def test_fit_gates_trains_the_detector_on_the_residuals_as_shipped():
    import torch

    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    frozen = "model.freeze=[image_branch, kspace_branch]"
    priors = ["model.bias_smooth=0.1", "model.noise_snr=[9, 12]"]
    config = load_config(tiny, ["model.gates=true", "model.consistency=true", frozen, "loss.fit_gates=true", *priors])
    assert config.loss.fit_gates and config.model.noise_snr == (9.0, 12.0)
    module = ArtefactCorrectionModule(config)
    assert module.model.policy.bias_smooth == 0.1 and module.model.policy.noise_snr == (9.0, 12.0)
    assert module.model.policy.consistency and module.model.config.gates
    module.train()
    batch = _small_batch()
    loss, output = module._loss(batch)
    assert module.training and not module.model.image_branch.training  # modes restored after the fixed pass
    module.eval()
    with torch.no_grad():  # the output the loss scores is the model's own at inference (priors on), up to
        # the smooth-field prior's mild non-linearity (it smooths the log-ratio of the gated residual)
        torch.testing.assert_close(output, module.model(batch.corrupted).output, rtol=0, atol=2e-3)
    module.train()
    from artefix.artefacts.base import znorm

    per_slice = [module.criterion.criterion(o[None], r[None]) for o, r in zip(output, znorm(batch.clean), strict=True)]
    expected = torch.log(torch.stack(per_slice) + config.loss.gate_floor).mean()  # every slice weighs the same
    torch.testing.assert_close(loss.total, expected)
    loss.total.backward()
    grads = {n: p.grad for n, p in module.model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("detector.") for n in grads)
    with pytest.raises(ValueError, match="fit_gates trains only the detector"):
        ArtefactCorrectionModule(load_config(tiny, ["model.gates=true", "loss.fit_gates=true"]))
    with pytest.raises(ValueError, match="fit_gates trains only the detector"):
        ArtefactCorrectionModule(load_config(tiny, ["loss.fit_gates=true", frozen]))
    with pytest.raises(ConfigError, match="fit_gates"):
        load_config(tiny, ["loss.fit_gates=2"])
    with pytest.raises(ConfigError, match="gate_floor"):
        load_config(tiny, ["loss.gate_floor=0"])
    with pytest.raises(ConfigError, match="gate_criterion"):
        load_config(tiny, ["loss.gate_criterion=psnr"])


def test_fit_gates_on_the_quality_metrics_scores_each_slice_by_ssim_and_vif():
    import torch

    from artefix.artefacts.base import znorm
    from artefix.losses import quality_deficit
    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    frozen = "model.freeze=[image_branch, kspace_branch]"
    config = load_config(tiny, ["model.gates=true", frozen, "loss.fit_gates=true", "loss.gate_criterion=QUALITY"])
    assert config.loss.gate_criterion == "quality"
    module = ArtefactCorrectionModule(config)
    module.train()
    batch = _small_batch(48)  # VIF's four scales need 41 pixels a side
    loss, output = module._loss(batch)
    per_slice = quality_deficit(output, znorm(batch.clean)).clamp(min=0.0)
    torch.testing.assert_close(loss.total, torch.log(per_slice + config.loss.gate_floor).mean())
    loss.total.backward()
    grads = {n: p.grad for n, p in module.model.named_parameters() if p.grad is not None}
    assert grads and all(n.startswith("detector.") for n in grads)
    assert any(float(g.abs().sum()) > 0 for g in grads.values())
    with pytest.raises(ConfigError, match="bias_smooth"):
        load_config(tiny, ["model.bias_smooth=2"])
    with pytest.raises(ConfigError, match="noise_snr"):
        load_config(tiny, ["model.noise_snr=[12, 9]"])


def test_choices_are_stored_normalised_and_a_small_matrix_needs_no_vif(tmp_path):
    config = load_config(CONFIGS / "tiny.yaml", ["trainer.monitor=VAL/MSE", "model.preset=TINY", "loss.deltas=MSE"])
    assert (config.trainer.monitor, config.model.preset, config.loss.deltas) == ("val/mse", "tiny", "mse")
    assert config.trainer.keep == "best"
    assert load_config(CONFIGS / "tiny.yaml", ["trainer.keep=Last"]).trainer.keep == "last"
    with pytest.raises(ConfigError, match="trainer.keep"):
        load_config(CONFIGS / "tiny.yaml", ["trainer.keep=first"])
    with pytest.raises(ConfigError, match="too small for the vif"):
        load_config(CONFIGS / "tiny.yaml", ["data.matrix=[32,32]"])
    small = load_config(CONFIGS / "tiny.yaml", ["data.matrix=[32,32]", "trainer.val_metrics=[mse,ssim]"])
    assert small.data.matrix == (32, 32)
    with pytest.raises(ConfigError, match="share"):
        load_config(CONFIGS / "tiny.yaml", ["data.val_samples=[brain-t1]"])


def test_data_root_takes_the_roots_of_a_config_without_a_base(tmp_path):
    config_file = tmp_path / "files.yaml"
    config_file.write_text("name: files\ndata:\n  source: files\n  roots: [open_ms, ixi]\n")
    config = load_config(config_file, data_root="/data/mri")
    assert config.data.base == "/data/mri" and config.data.roots == ("open_ms", "ixi")
    assert load_config(config_file).data.roots == (str(tmp_path / "open_ms"), str(tmp_path / "ixi"))


def test_quiet_heads_penalises_the_ungated_residuals_of_absent_artefacts_only():
    from pathlib import Path

    import torch

    from artefix.data.dataset import NO_ARTEFACT, TrainingSample
    from artefix.training.config import load_config
    from artefix.training.module import ArtefactCorrectionModule

    tiny = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
    torch.manual_seed(0)
    clean = torch.randn(2, 1, 16, 16)
    labels = torch.tensor([0, NO_ARTEFACT])  # slice 0 has a bias field, slice 1 none
    batch = TrainingSample(clean, clean.clone(), labels, ("{}", "{}"), torch.tensor([0, 1]))
    base = ArtefactCorrectionModule(load_config(tiny, ["model.gates=true"])).train()
    quiet = ArtefactCorrectionModule(load_config(tiny, ["model.gates=true", "loss.quiet_heads=2.0"])).train()
    quiet.model.load_state_dict(base.model.state_dict())
    with torch.no_grad():
        loss0, out0 = base._loss(batch)
        loss1, out1 = quiet._loss(batch)
        ungated = base.model.ungated_residuals(clean)
    torch.testing.assert_close(out1, out0)  # the same output: only the loss changes
    absent = torch.ones(2, 4, 1, 1)
    absent[0, 0] = 0.0  # the bias head of the slice with a bias field is not penalised
    torch.testing.assert_close(loss1.total - loss0.total, 2.0 * (absent * ungated.square()).mean())
    assert loss1.total > loss0.total
    quiet.model.load_state_dict(base.model.state_dict())  # the same batch-norm statistics
    with torch.no_grad():
        assert quiet.eval()._loss(batch)[0].total == base.eval()._loss(batch)[0].total  # training only


def test_a_config_extends_another_and_overrides_it_key_by_key(tmp_path):
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "parent.yaml").write_text(
        "name: parent\nseed: 3\nmodel: {preset: tiny, gates: true}\n"
        "data: {base: data, roots: [a, b], split: split.json, artefacts: [bias, noise]}\ntrainer: {max_epochs: 7}\n"
    )
    (tmp_path / "child.yaml").write_text(
        "extends: base/parent.yaml\nname: child\nmodel: {heads: [noise]}\ndata: {artefacts: [noise]}\n"
    )
    config = load_config(tmp_path / "child.yaml")
    assert (config.name, config.seed, config.trainer.max_epochs) == ("child", 3, 7)
    assert config.model.preset == "tiny" and config.model.gates and config.model.heads == ("noise",)
    assert config.data.artefacts == ("noise",) and config.data.roots == ("a", "b")  # a list replaces, keys merge
    assert config.data.base == str(tmp_path / "base" / "data")  # the parent's paths against the parent's folder
    assert config.data.split == str(tmp_path / "base" / "split.json")


def test_extends_refuses_a_loop_and_a_value_that_is_not_a_file(tmp_path):
    (tmp_path / "a.yaml").write_text("extends: b.yaml\nname: a\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\nname: b\n")
    with pytest.raises(ConfigError, match=r"`extends` loops \(a.yaml -> b.yaml -> a.yaml\)"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("extends: [a.yaml]\n")
    with pytest.raises(ConfigError, match="`extends` must name a config file"):
        load_config(tmp_path / "c.yaml")
    (tmp_path / "d.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="missing.yaml: config file not found"):
        load_config(tmp_path / "d.yaml")


def _leaves(mapping: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are leaves)."""
    out = {}
    for key, value in mapping.items():
        if isinstance(value, dict) and value:
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _extending_configs() -> list[Path]:
    paths = [*CONFIGS.rglob("*.yaml"), *EXPERIMENTS.glob("*/configs/*.yaml")]
    return sorted(p for p in paths if not is_pipeline_file(p) and "extends" in (yaml.safe_load(p.read_text()) or {}))


@pytest.mark.parametrize("path", _extending_configs(), ids=lambda p: str(p.relative_to(REPO)))
def test_a_config_that_extends_another_lists_only_what_differs(path):
    """Every key a file sets beside ``extends`` changes the resolved value of its base (no copies left behind)."""
    layer = yaml.safe_load(path.read_text())
    base = _leaves(load_config(path.parent / layer.pop("extends")).to_dict())
    resolved = _leaves(load_config(path).to_dict())
    same = [key for key in _leaves(layer) if key != "name" and resolved.get(key) == base.get(key)]
    assert not same, f"{path.name} repeats its base's {same}"


def test_the_default_models_stages_differ_where_their_files_say():
    """Stage 2 extends stage 1 and stage 3 stage 2 (configs/release): what each changes, key by key."""
    release = CONFIGS / "release"
    stage1, stage2, stage3 = (
        _leaves(load_config(release / f"{name}.yaml").to_dict())
        for name in ("mt_lc_brain_stage1", "mt_lc_brain", "mt_lc_brain_fitgates")
    )

    def changed(a: dict, b: dict) -> set:
        return {key for key in a.keys() | b.keys() if a.get(key) != b.get(key)}

    data_budget = {"data.batch_size", "data.num_workers"}
    assert changed(stage1, stage2) == {
        *("name", "seed", "model.init", "model.gates", "loss.detection", "optimizer.log10_lr", "optimizer.schedule"),
        *("optimizer.bn_momentum", "optimizer.detector_lr_scale", "data.fit", "data.clean_fraction"),
        *("data.severity_fraction", "data.cache_size", *data_budget, "trainer.max_epochs", "trainer.patience"),
        *("trainer.limit_train_batches", "trainer.accelerator", "trainer.cpu_threads"),
    }
    assert changed(stage2, stage3) == {
        *("name", "seed", "model.init", "model.consistency", "model.truncation_gate", "model.bias_smooth"),
        *("model.noise_snr", "model.freeze", "loss.alpha", "loss.all_heads", "loss.detection", "loss.fit_gates"),
        *("loss.gate_criterion", "optimizer.bn_momentum", "optimizer.detector_lr_scale", *data_budget),
        *("trainer.max_epochs", "trainer.monitor", "trainer.keep", "trainer.limit_train_batches"),
    }
