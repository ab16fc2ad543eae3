"""What a file correction is asked to do: InferenceOptions, OutputSpec, ExecutionSettings and the older keywords."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from artefix.correction import ExecutionSettings, InferenceOptions, OutputSpec, correct_file
from artefix.correction.bulk import CorrectionOptions
from artefix.correction.options import grouped_options
from artefix.correction.spec import ModelSpec
from artefix.errors import InputError, OutputError
from artefix.models.policy import InferencePolicy


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ensemble": 3}, "`ensemble`: ensemble must be one of [1, 2, 4, 8], got 3"),
        ({"ensemble": True}, "`ensemble`: ensemble must be one of [1, 2, 4, 8], got True"),
        ({"snr_scope": "volume"}, "`snr_scope` must be one of scan, slice, got 'volume'"),
        ({"strength": {"noise": 2}}, "`strength`: noise=2 must be a number from 0 to 1"),
        ({"strength": {"noise": "half"}}, "`strength`: noise='half' must be a number from 0 to 1"),
        ({"only": [1]}, "`only` must name heads, got (1,)"),
        ({"priors": "no"}, "`priors` must be true or false, got 'no'"),
        ({"gates": 0}, "`gates` must be true or false, got 0"),
    ],
)
def test_inference_options_refuse_bad_values_in_the_words_of_their_parameter(options, message):
    with pytest.raises(InputError) as exc:
        InferenceOptions(**options)
    assert str(exc.value) == message


def test_inference_options_are_normalised_values_that_compare_and_hash():
    a = InferenceOptions(only="noise", strength={"noise": 0.5, "bias": 0})
    b = InferenceOptions(only=("noise",), strength=(("bias", 0.0), ("noise", 0.5)))
    assert a == b and hash(a) == hash(b)
    assert a.only == ("noise",) and a.strength == (("bias", 0.0), ("noise", 0.5))
    assert a.strengths == {"bias": 0.0, "noise": 0.5} and InferenceOptions().strengths is None
    assert InferenceOptions(only=[]).only == ()


def test_inference_options_are_laid_over_the_cards_policy():
    card = InferencePolicy(ensemble=2, bias_smooth=0.1, noise_snr=(9, 11), consistency=True)
    assert InferenceOptions().policy(card) == card  # nothing chosen: the card's, SNR scope "scan"
    chosen = InferenceOptions(only=["noise"], strength={"noise": 0.5}, priors=False, gates=False)
    policy = chosen.policy(card)
    assert policy.ensemble == 2 and policy.consistency and not policy.has_priors and not policy.gated
    assert policy.only == ("noise",) and policy.strengths == {"noise": 0.5}
    assert InferenceOptions(ensemble=8, snr_scope="slice").policy(card) == card.replace(ensemble=8, snr_scope="slice")
    assert policy == card.with_options(
        only=["noise"], strength={"noise": 0.5}, priors=False, gates=False, snr_scope="scan"
    )


def test_a_strength_that_only_leaves_out_is_refused_where_the_options_meet_the_policy():
    options = InferenceOptions(only=["noise"], strength={"bias": 0.5})  # valid on its own
    with pytest.raises(InputError) as exc:
        options.policy(InferencePolicy())
    assert str(exc.value) == "`strength` names bias, which `only` leaves out"


def test_output_spec_holds_paths_and_refuses_a_report_that_is_not_html(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = OutputSpec(residuals="~/res", report="~/qc.HTML", overwrite=True)
    assert spec.residuals == tmp_path / "res" and spec.report == tmp_path / "qc.HTML"
    assert spec.summary == tmp_path / "qc.json" and OutputSpec().summary is None
    assert spec == OutputSpec(tmp_path / "res", tmp_path / "qc.HTML", True)
    with pytest.raises(OutputError, match=r"^qc\.txt: the report must be an \.html file$"):
        OutputSpec(report="qc.txt")
    with pytest.raises(InputError, match="^`overwrite` must be true or false, got 'yes'$"):
        OutputSpec(overwrite="yes")  # type: ignore[arg-type]
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.overwrite = False  # type: ignore[misc]
    assert len({spec, OutputSpec(tmp_path / "res", tmp_path / "qc.HTML", True)}) == 1  # a value: hashable


def test_execution_settings_refuse_an_unknown_runtime():
    assert ExecutionSettings() == ExecutionSettings("cpu", None, "torch", None)
    with pytest.raises(InputError, match="^`runtime` must be one of torch, onnx, got 'tensorrt'$"):
        ExecutionSettings(runtime="tensorrt")
    with pytest.raises(dataclasses.FrozenInstanceError):
        ExecutionSettings().runtime = "onnx"  # type: ignore[misc]
    assert len({ExecutionSettings(), ExecutionSettings("cpu")}) == 1


def test_the_older_keywords_build_the_same_objects():
    inference, outputs, execution = grouped_options(
        {"only": ["noise"], "ensemble": 2, "report": "qc.html", "overwrite": True, "device": "cpu", "batch_size": 3}
    )
    assert inference == InferenceOptions(only=("noise",), ensemble=2)
    assert outputs == OutputSpec(report=Path("qc.html"), overwrite=True)
    assert execution == ExecutionSettings(batch_size=3)
    assert grouped_options({}) == (InferenceOptions(), OutputSpec(), ExecutionSettings())
    with pytest.raises(TypeError, match=r"correct_file\(\) got only beside `inference`; set them in `inference`"):
        grouped_options({"only": ["noise"]}, inference=InferenceOptions())
    with pytest.raises(TypeError, match="unexpected keyword argument 'strenght'"):
        grouped_options({"strenght": {"noise": 0.5}})
    with pytest.raises(TypeError):
        grouped_options({}, InferenceOptions())  # the groups by keyword only
    with pytest.raises(TypeError, match="unexpected keyword argument"):
        correct_file("sample:brain-t2", "out.npy", strenght={"noise": 0.5})


def test_bulk_takes_the_same_inference_options():
    inference = InferenceOptions(
        only=["noise", "bias"], strength={"noise": 0.5}, ensemble=2, gates=False, snr_scope="slice"
    )
    assert ModelSpec.of("m", "cpu", inference) == ModelSpec("m", "cpu", 2, True, False)
    assert CorrectionOptions.of(inference, axis=1, batch_size=4) == CorrectionOptions.create(
        only=["noise", "bias"], strength={"noise": 0.5}, axis=1, batch_size=4, snr_scope="slice"
    )


def test_old_and_new_calls_of_correct_file_give_the_same_outputs(tmp_path):
    old = correct_file(
        "sample:brain-t1",
        tmp_path / "old.npy",
        only=["noise", "motion"],
        strength={"noise": 0.5},
        gates=False,
        snr_scope="slice",
        residuals=tmp_path / "old_res",
        batch_size=1,
    )
    new = correct_file(
        "sample:brain-t1",
        tmp_path / "new.npy",
        inference=InferenceOptions(only=["noise", "motion"], strength={"noise": 0.5}, gates=False, snr_scope="slice"),
        outputs=OutputSpec(residuals=tmp_path / "new_res"),
        execution=ExecutionSettings(batch_size=1),
    )
    np.testing.assert_array_equal(np.load(old.output), np.load(new.output))
    assert list(old.residual_paths) == list(new.residual_paths) == ["bias", "subsampling", "motion", "noise"]
    for head, path in old.residual_paths.items():
        np.testing.assert_array_equal(np.load(path), np.load(new.residual_paths[head]))
    before, after = old.record.to_dict(), new.record.to_dict()
    before.pop("correction_seconds"), after.pop("correction_seconds")
    assert before == after
    assert after["applied"] == ["motion", "noise"] and after["detector_applied"] is False
    assert after["artefacts"]["noise"]["strength"] == 0.5
