import json

import pytest
import torch

from artefix.errors import InputError
from artefix.models import build_model
from artefix.models.checkpoint import card_path, load_model, save_model, sha256_of, transfer_weights


@pytest.fixture()
def saved(tmp_path):
    model = build_model("tiny", seed=0).eval()
    with torch.no_grad():  # make BN statistics non-trivial so they must round-trip too
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
    path = save_model(model, tmp_path / "m.safetensors", card={"name": "m", "note": "test"})
    return model, path


def test_round_trip_is_exact(saved):
    model, path = saved
    loaded, card = load_model(path)
    assert not loaded.training
    for (k, a), (k2, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    x = torch.randn(2, 1, 24, 20)
    with torch.no_grad():
        assert torch.equal(model(x).output, loaded(x).output)
    assert card["name"] == "m" and card["sha256"] == sha256_of(path)
    assert card["parameters"] == sum(p.numel() for p in model.parameters())
    assert card["heads"] == ["bias", "subsampling", "motion", "noise"]


def test_checksum_mismatch_refused(saved):
    _, path = saved
    card = json.loads(card_path(path).read_text())
    card["sha256"] = "0" * 64
    card_path(path).write_text(json.dumps(card))
    with pytest.raises(InputError, match="checksum"):
        load_model(path)
    load_model(path, verify=False)


def test_truncated_and_foreign_files(tmp_path, saved):
    _, path = saved
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(path.read_bytes()[:100])
    with pytest.raises(InputError, match="unreadable"):
        load_model(bad)
    (tmp_path / "x.pt").write_bytes(b"")
    with pytest.raises(InputError, match="safetensors files only"):
        load_model(tmp_path / "x.pt")
    with pytest.raises(InputError, match="not found"):
        load_model(tmp_path / "none.safetensors")


def test_no_pickle_in_weights(saved):
    _, path = saved
    assert path.read_bytes()[:8] != b"\x80\x02\x8a\x0a"  # not a torch pickle
    header_len = int.from_bytes(path.read_bytes()[:8], "little")
    header = json.loads(path.read_bytes()[8 : 8 + header_len])
    assert json.loads(header["__metadata__"]["model_config"])["base_width"] == 4


def test_transfer_weights_to_a_single_task_model_takes_its_head_rows():
    source = build_model("tiny", seed=0).eval()
    target = build_model("tiny", seed=1, heads=["noise"]).eval()
    report = transfer_weights(target, source)
    assert sorted(report["heads"]) == sorted(
        ["image_branch.head.weight", "image_branch.head.bias", "kspace_branch.head.weight", "kspace_branch.head.bias"]
    )
    x = torch.randn(2, 1, 24, 20)
    with torch.no_grad():
        full = source(x).residuals
        single = target(x).residuals
    torch.testing.assert_close(single[:, 0], full[:, source.head_names.index("noise")], rtol=1e-4, atol=1e-5)


def test_transfer_weights_copies_a_same_architecture_model_exactly():
    source = build_model("tiny", seed=0).eval()
    target = build_model("tiny", seed=3).eval()
    report = transfer_weights(target, source)
    assert not report["heads"] and not [k for k in report["kept"] if not k.endswith("num_batches_tracked")]
    for key, value in source.state_dict().items():
        torch.testing.assert_close(target.state_dict()[key], value)


def test_transfer_weights_matches_heads_by_name_not_by_shape():
    """A bias model's head never lands in a noise model; a gated model's detector gives its heads' rows."""
    bias = build_model("tiny", seed=0, heads=["bias"], gates=True)
    noise = build_model("tiny", seed=1, heads=["noise"], gates=True)
    before = {k: v.clone() for k, v in noise.state_dict().items()}
    report = transfer_weights(noise, bias)
    assert "image_branch.head.weight" in report["kept"] and "detector.score.weight" in report["kept"]
    torch.testing.assert_close(noise.state_dict()["image_branch.head.weight"], before["image_branch.head.weight"])
    full = build_model("tiny", seed=2, gates=True)
    report = transfer_weights(noise, full)
    assert {"detector.score.weight", "detector.score.bias"} <= set(report["heads"])
    row = full.head_names.index("noise")
    torch.testing.assert_close(
        noise.state_dict()["detector.score.weight"][0], full.state_dict()["detector.score.weight"][row]
    )


def test_transfer_weights_refuses_another_preset():
    with pytest.raises(ValueError, match="same preset"):
        transfer_weights(build_model("tiny"), build_model("compact"))


def test_saving_the_same_weights_again_keeps_the_file(saved):
    model, path = saved
    before, sha = path.read_bytes(), sha256_of(path)
    save_model(model, path, card={"name": "m", "note": "a new card for the same weights"})
    assert path.read_bytes() == before and json.loads(card_path(path).read_text())["sha256"] == sha
    assert json.loads(card_path(path).read_text())["note"] == "a new card for the same weights"
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_model(model, path, card={"name": "m"})  # other weights: the file is replaced and its checksum follows
    loaded, card = load_model(path)
    assert card["sha256"] == sha256_of(path) != sha
    assert torch.equal(next(loaded.parameters()), next(model.parameters()))
    path.write_bytes(b"not a safetensors file")
    save_model(model, path, card={"name": "m"})  # an unreadable file is replaced
    assert load_model(path)[1]["sha256"] == sha256_of(path)


def test_a_card_that_is_not_an_object_is_an_input_error(tmp_path):
    from artefix.errors import InputError
    from artefix.models import build_model
    from artefix.models.checkpoint import load_model, save_model

    path = save_model(build_model("tiny", seed=0), tmp_path / "m.safetensors")
    path.with_suffix(".json").write_text("[1]")
    with pytest.raises(InputError, match="JSON object"):
        load_model(path)


def test_weights_get_the_same_permissions_as_their_card(tmp_path):
    """safetensors writes its file as 0600; saved weights are readable like every other output (0666 less umask)."""
    import os

    path = save_model(build_model("tiny", seed=0), tmp_path / "m.safetensors")
    umask = os.umask(0)
    os.umask(umask)
    expected = 0o666 & ~umask
    assert path.stat().st_mode & 0o777 == expected
    assert path.with_suffix(".json").stat().st_mode & 0o777 == expected
