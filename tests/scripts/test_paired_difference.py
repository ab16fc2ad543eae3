import json

import pytest


def _write(folder, shift):
    rows = []
    for experiment, severity in (("bias", 0.05), ("noise+bias", None)):
        for k in range(8):
            base = {"file": f"s{k % 3}.nii.gz", "slice": k, "experiment": experiment, "severity": severity}
            for method, delta in (("a", shift), ("b", 0.0)):
                for metric, value in (("ssim", 0.5 + 0.01 * k + delta), ("vif", 0.4), ("mse", 0.1 - delta)):
                    rows.append({**base, "method": method, "metric": metric, "value": value})
    (folder / "per_slice.json").write_text(json.dumps(rows))


def test_paired_differences_wins_and_p_values(script, tmp_path):
    _write(tmp_path, 0.02)
    module = script("paired_difference")
    diffs = module.paired(tmp_path, "a", "b")
    assert list(diffs) == ["bias@0.05", "noise+bias"]  # the evaluation's order
    assert diffs["bias@0.05"]["ssim"] == pytest.approx([0.02] * 8)
    assert diffs["bias@0.05"]["mse"] == pytest.approx([-0.02] * 8)
    lines = module.table(tmp_path, "a", "b").splitlines()
    assert lines[2].startswith("| bias@0.05 | 8 | +0.0200 | +0.0000 | -0.0200 | 8 / 0 / 8 |")
    p_ssim, p_vif, _ = lines[2].split("|")[-2].split(" / ")
    assert float(p_ssim) < 0.01 and p_vif.strip() == "-"  # no VIF difference: no test


def test_a_missing_method_is_refused(script, tmp_path):
    _write(tmp_path, 0.0)
    with pytest.raises(SystemExit, match="needs both methods 'a' and 'c'"):
        script("paired_difference").paired(tmp_path, "a", "c")
