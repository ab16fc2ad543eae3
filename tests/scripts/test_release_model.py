import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _module():
    spec = importlib.util.spec_from_file_location("release_model", ROOT / "scripts" / "release_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_models_doc_is_rendered_from_the_shipped_cards(tmp_path, monkeypatch):
    """docs/models.md must be what release_model renders from src/artefix/weights/*.json (no hand edits)."""
    module = _module()
    monkeypatch.setattr(module, "DOC", tmp_path / "models.md")
    module.render_doc()
    assert (tmp_path / "models.md").read_text() == (ROOT / "docs" / "models.md").read_text()


def test_every_shipped_card_has_a_description_and_the_gpu_is_named():
    module = _module()
    for path in sorted((ROOT / "src" / "artefix" / "weights").glob("*.json")):
        card = json.loads(path.read_text())
        assert card["description"] == module.DESCRIPTIONS[card["name"]]
    assert module._hardware({"cpu": "x86", "gpu": "NVIDIA H200", "accelerator": "CUDAAccelerator"}) == (
        "NVIDIA H200 (CUDAAccelerator)"
    )
    assert module._hardware({"cpu": "x86", "accelerator": "CPUAccelerator"}) == "x86 (CPUAccelerator)"
