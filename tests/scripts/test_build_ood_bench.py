import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from artefix.data.io import read_volume


def _digests(folder):
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


@pytest.fixture(scope="module")
def bench(tmp_path_factory, shared_data):
    """The bench built twice (``shared_data`` skips, or fails under CI, without ../shared/data)."""
    path = Path(__file__).resolve().parents[2] / "scripts" / "build_ood_bench.py"
    spec = importlib.util.spec_from_file_location("build_ood_bench", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    first, second = tmp_path_factory.mktemp("bench1"), tmp_path_factory.mktemp("bench2")
    files = module.build(first, shared_data)
    module.build(second, shared_data)
    return module, first, second, files


def test_the_bench_has_four_sources_of_readable_slices(bench):
    module, out, _, files = bench
    folders = sorted({f.parent.name for f in files})
    # msd_glioma, nibabel_epi, pydicom_mr_small and matplotlib_head need only the core install.
    assert {"msd_glioma", "nibabel_epi", "pydicom_mr_small", "matplotlib_head"} <= set(folders)
    assert len(folders) >= 4
    for path in files:
        volume = read_volume(path)
        assert volume.array.ndim == 3 and volume.meta["slice_axis"] == 2
        assert min(volume.array.shape[:2]) >= 41
        assert np.all(np.isfinite(volume.array)) and volume.array.max() > 0
        assert volume.array.shape[2] <= module.SLICES_PER_VOLUME


def test_two_builds_are_byte_identical(bench):
    _, first, second, _ = bench
    assert _digests(first) == _digests(second)


def test_sources_md_lists_every_file_with_licence_and_version(bench):
    module, out, _, files = bench
    text = (out / "SOURCES.md").read_text()
    for path in files:
        assert f"{path.parent.name}/{path.name}" in text
    for source in module.SOURCES:
        if (out / source.name).is_dir():
            assert f"### {source.name}" in text and source.licence in text
            if source.package:
                assert f"{source.package} {module.version_of(source.package)}" in text
        else:
            assert f"- {source.name}:" in text  # named under "Skipped here"
    for name in module.TRAINING_SOURCES:
        assert not (out / name).exists()


def test_a_missing_package_is_skipped_with_a_warning(script, tmp_path, caplog, monkeypatch):
    module = script("build_ood_bench")
    real = module.importlib.util.find_spec
    monkeypatch.setattr(module.importlib.util, "find_spec", lambda name: None if name == "nibabel" else real(name))
    with caplog.at_level("WARNING"):
        files = module.build(tmp_path, tmp_path / "no-shared-data")
    assert not any(f.parent.name in ("nibabel_epi", "msd_glioma") for f in files)
    assert "skipping source nibabel_epi" in caplog.text and "skipping source msd_glioma" in caplog.text
    assert "- nibabel_epi: package 'nibabel' is not installed" in (tmp_path / "SOURCES.md").read_text()
