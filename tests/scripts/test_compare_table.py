import json


def _rows(experiment, severity, values):
    return [
        {"experiment": experiment, "severity": severity, "method": method, "metric": metric, "mean": v, "sem": 0.0}
        for method, (ssim, vif, mse) in values.items()
        for metric, v in (("ssim", ssim), ("vif", vif), ("mse", mse))
    ]


def test_table_marks_models_that_improve_both_metrics_and_names_the_best_classical(script, tmp_path):
    rows = _rows(
        "noise", 5.0, {"input": (0.5, 0.4, 1.0), "m": (0.9, 0.5, 0.1), "cad": (0.8, 0.6, 0.2), "bm3d": (0.85, 0.3, 0.2)}
    )
    rows += _rows("bias", 0.05, {"input": (0.99, 0.99, 0.0), "m": (0.98, 0.995, 0.0), "n4": (0.9, 0.9, 0.1)})
    rows += _rows("noise+bias", None, {"input": (0.5, 0.4, 1.0), "m": (0.6, 0.41, 0.5)})
    (tmp_path / "summary.json").write_text(json.dumps(rows))
    lines = script("compare_table").table(tmp_path, ["m", "absent"]).splitlines()
    assert lines[0] == "| experiment | severity | input | m | absent | best classical |"
    assert lines[2] == "| noise | 5 | 0.500 / 0.400 | 0.900 / 0.500 * | - | 0.850 / 0.300 (bm3d) |"
    assert lines[3] == "| bias | 0.05 | 0.990 / 0.990 | 0.980 / 0.995 | - | 0.900 / 0.900 (n4) |"
    assert lines[4] == "| noise+bias |  | 0.500 / 0.400 | 0.600 / 0.410 * | - | - |"


def test_sem_marks_only_gains_beyond_one_paired_standard_error(script, tmp_path):
    rows = _rows("noise", 5.0, {"input": (0.5, 0.4, 1.0), "clear": (0.6, 0.5, 0.1), "noisy": (0.6, 0.5, 0.1)})
    (tmp_path / "summary.json").write_text(json.dumps(rows))
    per_slice = []
    for k in range(4):
        lucky = 0.4 if k == 0 else -0.01
        ssim_vif = {"input": (0.5, 0.4), "clear": (0.6 + 0.01 * k, 0.5), "noisy": (0.5 + lucky, 0.5)}
        for method, (ssim, vif) in ssim_vif.items():
            for metric, value in (("ssim", ssim), ("vif", vif)):
                per_slice.append(
                    {"file": "f", "slice": k, "experiment": "noise", "severity": 5.0, "method": method}
                    | {"metric": metric, "value": value}
                )
    (tmp_path / "per_slice.json").write_text(json.dumps(per_slice))
    module = script("compare_table")
    assert module.clear_gains(tmp_path) == {("noise", "5", "clear")}  # "noisy" gains on one slice, loses on three
    line = module.table(tmp_path, ["clear", "noisy"], sem=True).splitlines()[2]
    assert "0.600 / 0.500 * | 0.600 / 0.500 |" in line
