import json
from pathlib import Path

from artefix.release.cards import DESCRIPTIONS, hardware_name, shipped_cards
from artefix.release.docs import render, write_docs
from artefix.release.repository import Repository

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_model_pages_are_rendered_from_the_shipped_cards():
    """docs/models.md and docs/models/*.md must be what the tool renders from the cards (no hand edits)."""
    pages = render(shipped_cards(ROOT / "src" / "artefix" / "weights"))
    on_disk = {"models.md", *(f"models/{p.name}" for p in (DOCS / "models").glob("*.md"))}
    assert set(pages) == on_disk  # a page for every shipped model and none for a model that is not shipped
    for relative, text in pages.items():
        assert (DOCS / relative).read_bytes() == text.encode("utf-8"), relative


def test_the_index_links_one_page_per_model_and_stale_pages_go(tmp_path):
    weights, docs = tmp_path / "weights", tmp_path / "docs"
    weights.mkdir()
    (docs / "models").mkdir(parents=True)
    (docs / "models" / "gone.md").write_text("# gone\n")
    for name in ("mt-lc-brain", "bias-brain"):
        (weights / f"{name}.json").write_bytes((ROOT / "src" / "artefix" / "weights" / f"{name}.json").read_bytes())
    write_docs(Repository(ROOT, weights, docs))
    assert sorted(p.name for p in (docs / "models").iterdir()) == ["bias-brain.md", "mt-lc-brain.md"]
    rows = [line for line in (docs / "models.md").read_text().splitlines() if line.startswith("| [")]
    assert [row.split("]")[0] for row in rows] == ["| [bias-brain", "| [mt-lc-brain"]
    assert "(models/mt-lc-brain.md) | Default: " in rows[1] and rows[1].endswith("| 1,282,328 |")


def test_every_shipped_card_has_a_description_and_the_gpu_is_named():
    for path in sorted((ROOT / "src" / "artefix" / "weights").glob("*.json")):
        card = json.loads(path.read_text())
        assert card["description"] == DESCRIPTIONS[card["name"]]
    assert hardware_name({"cpu": "x86", "gpu": "NVIDIA H200", "accelerator": "CUDAAccelerator"}) == (
        "NVIDIA H200 (CUDAAccelerator)"
    )
    assert hardware_name({"cpu": "x86", "accelerator": "CPUAccelerator"}) == "x86 (CPUAccelerator)"
