"""The file layer: output families from a path, where residuals go, which outputs a volume allows, its timings."""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from artefix.correction import files
from artefix.correction.files import _check_family, _is_folder, correct_file, output_suffix, residual_paths
from artefix.data.io import Volume
from artefix.errors import OutputError
from artefix.models import build_model
from artefix.models.checkpoint import save_model

HEADS = ("bias", "subsampling", "motion", "noise")


@pytest.mark.parametrize(
    ("name", "suffix"),
    [
        ("out.nii.gz", ".nii.gz"),
        ("OUT.NII.GZ", ".nii.gz"),
        ("out.nii", ".nii"),
        ("out.npy", ".npy"),
        ("out.npz", ".npz"),
        ("out.h5", ".h5"),
        ("out.hdf5", ".hdf5"),
        ("out.Png", ".png"),
        ("series", ""),
        ("a.b/series", ""),
    ],
)
def test_output_suffix_names_the_family(tmp_path, name, suffix):
    assert output_suffix(tmp_path / name) == suffix


def test_folders_are_dicom_outputs_and_unknown_extensions_are_refused(tmp_path):
    (tmp_path / "existing.d").mkdir()
    assert output_suffix(tmp_path / "existing.d") == ""  # an existing folder, whatever its name
    assert output_suffix(f"{tmp_path}/new.d/") == ""  # a trailing separator as typed names a folder
    with pytest.raises(OutputError, match=r"unsupported output \.d"):
        output_suffix(tmp_path / "new.d")  # without it, an extension
    with pytest.raises(OutputError, match=r"unsupported output \.mha; use \.nii\.gz, \.nii, \.npy"):
        output_suffix(tmp_path / "out.mha")
    with pytest.raises(OutputError, match=r"unsupported output \.gz"):
        output_suffix(tmp_path / "out.tar.gz")
    assert _is_folder(Path("a/series")) and not _is_folder(Path("a/out.npy"))


def test_residuals_follow_the_outputs_family(tmp_path):
    folder = tmp_path / "res"
    assert residual_paths(tmp_path / "o.nii.gz", folder, HEADS) == {h: folder / f"{h}.nii.gz" for h in HEADS}
    assert residual_paths(tmp_path / "o.png", folder, ["noise"]) == {"noise": folder / "noise.npy"}  # signed values
    assert residual_paths(tmp_path / "series", str(folder), ["bias"]) == {"bias": folder / "bias"}
    assert list(residual_paths(tmp_path / "o.npy", folder, HEADS)) == list(HEADS)


def test_a_volume_allows_the_families_it_can_be_written_as(tmp_path):
    image = Volume(np.ones((4, 5), np.float32))
    stack = Volume(np.ones((4, 5, 3), np.float32))
    _check_family(image, tmp_path / "o.png", "output")
    _check_family(stack, tmp_path / "o.nii.gz", "output")
    with pytest.raises(OutputError, match=r"residuals as a DICOM series needs a DICOM input \(input is npy\)"):
        _check_family(stack, tmp_path / "series", "residuals")
    with pytest.raises(OutputError, match=r"PNG holds one 2D slice; the input has shape \(4, 5, 3\)"):
        _check_family(stack, tmp_path / "o.png", "output")
    _check_family(Volume(np.ones((4, 5, 3), np.float32), format="dicom"), tmp_path / "series", "output")


def _tiny_scan(tmp_path: Path) -> tuple[Path, Path]:
    """A tiny untrained checkpoint and a 16x16 scan with contrast, in ``tmp_path``."""
    weights = tmp_path / "tiny.safetensors"
    save_model(build_model("tiny", seed=1), weights, card={})
    np.save(tmp_path / "scan.npy", np.random.default_rng(0).random((16, 16)).astype(np.float32) + 1)
    return weights, tmp_path / "scan.npy"


def test_the_timings_are_the_stages_read_off_one_clock(tmp_path, monkeypatch):
    weights, scan = _tiny_scan(tmp_path)
    clock = itertools.count(1000.0, 1.0)  # every reading one second after the last: each stage reads it twice
    monkeypatch.setattr(files, "time", SimpleNamespace(perf_counter=lambda: next(clock)))
    run = correct_file(scan, tmp_path / "out.npy", model=weights)
    assert run.timings == {"read": 1.0, "load_model": 1.0, "correct": 1.0, "write": 1.0, "total": 9.0}


def test_onnx_runtime_runs_the_network_only_when_asked(tmp_path, monkeypatch):
    import artefix.models.onnx_runtime as onnx_runtime
    from artefix.models.policy import InferencePolicy

    class RanInOnnxError(Exception):
        """Raised by the stand-in for ONNX Runtime: the network would have run there."""

    checked, wrapped = [], []

    def onnx_model(net, policy):
        wrapped.append(policy)
        raise RanInOnnxError

    monkeypatch.setattr(onnx_runtime, "check_onnx_runtime", lambda: checked.append(True))
    monkeypatch.setattr(onnx_runtime, "OnnxModel", onnx_model)
    weights, scan = _tiny_scan(tmp_path)
    torch_runtime, onnx_runtime_name = "".join(["tor", "ch"]), "".join(["on", "nx"])  # built as argv's are: by value
    correct_file(scan, tmp_path / "torch.npy", model=weights, runtime=torch_runtime)
    assert (tmp_path / "torch.npy").is_file() and checked == [] and wrapped == []
    with pytest.raises(RanInOnnxError):
        correct_file(scan, tmp_path / "onnx.npy", model=weights, runtime=onnx_runtime_name)
    assert checked == [True] and len(wrapped) == 1 and isinstance(wrapped[0], InferencePolicy)
    assert not (tmp_path / "onnx.npy").exists()


def test_residual_outputs_are_refused_before_any_correction(tmp_path, monkeypatch):
    weights, scan = _tiny_scan(tmp_path)
    corrected = []
    monkeypatch.setattr(files, "correct_volume", lambda *a, **k: corrected.append(a))
    (tmp_path / "res").mkdir()
    (tmp_path / "res" / "motion.npy").write_bytes(b"earlier")
    with pytest.raises(OutputError, match=r"motion\.npy.*exists"):
        correct_file(scan, tmp_path / "out.npy", model=weights, residuals=tmp_path / "res")
    with pytest.raises(OutputError, match=r"noise\.npy: a residual volume would overwrite another output"):
        correct_file(scan, tmp_path / "res" / "noise.npy", model=weights, residuals=tmp_path / "res", overwrite=True)
    assert corrected == [] and (tmp_path / "res" / "motion.npy").read_bytes() == b"earlier"
    assert not (tmp_path / "out.npy").exists() and [p.name for p in (tmp_path / "res").iterdir()] == ["motion.npy"]


def test_paths_by_name_and_choices_by_keyword_only(tmp_path):
    weights, scan = _tiny_scan(tmp_path)
    run = correct_file(input=scan, output=tmp_path / "out.npy", model=weights)
    assert run.output == tmp_path / "out.npy" and run.output.is_file()
    with pytest.raises(TypeError):
        correct_file(scan, tmp_path / "other.npy", weights)
    assert not (tmp_path / "other.npy").exists()


def test_residuals_are_kept_in_a_scratch_folder_only_when_written(tmp_path, monkeypatch):
    weights, scan = _tiny_scan(tmp_path)
    real, seen = files.correct_volume, []

    def spy(*args, **kwargs):
        seen.append((kwargs["keep_residuals"], kwargs["scratch_dir"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(files, "correct_volume", spy)
    correct_file(scan, tmp_path / "plain.npy", model=weights)
    correct_file(scan, tmp_path / "kept.npy", model=weights, residuals=tmp_path / "res")
    assert seen[0] == (False, None)
    assert seen[1][0] is True and seen[1][1].name.startswith("artefix-residuals-") and not seen[1][1].exists()


def test_a_residual_folder_that_cannot_be_made_fails_the_run_and_leaves_nothing(tmp_path, monkeypatch):
    weights, scan = _tiny_scan(tmp_path)
    real_mkdir = Path.mkdir

    def refuse(self, *args, **kwargs):
        if self.name == "res":
            raise PermissionError(13, "Permission denied")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(OutputError, match=r"res: cannot create the residual folder \(.*Permission denied"):
        correct_file(scan, tmp_path / "out.npy", model=weights, residuals=tmp_path / "res")
    assert not (tmp_path / "out.npy").exists() and not (tmp_path / "res").exists()
