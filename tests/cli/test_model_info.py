import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

import artefix.cli.model_info as model_info_module
from artefix.cli.model_info import describe_preset

CLI = [sys.executable, "-c", "from artefix.cli import main; main()"]


def _run(*args):
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=120)


def test_json_output_for_the_paper_preset():
    result = _run("model-info", "paper", "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["preset"] == "paper"
    assert info["parameters"] == 75_532_236
    assert abs(info["parameters"] - 75.4e6) / 75.4e6 < 0.10
    assert info["heads"] == ["bias", "subsampling", "motion", "noise"]
    assert sum(info["parameters_per_branch"].values()) == info["parameters"]
    assert info["config"]["base_width"] == 64 and info["stride"] == 32


def test_human_readable_output_and_single_task_heads():
    result = _run("model-info", "compact", "--heads", "noise")
    assert result.returncode == 0, result.stderr
    assert "1,183,923" in result.stdout and "noise" in result.stdout  # 1,184,004 - 9 * (8 + 1)
    assert "subsampling" not in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [(["model-info", "huge"], "unknown model preset 'huge'"), (["model-info", "tiny", "--heads", "blur"], "blur")],
)
def test_user_errors_are_one_line_with_exit_code_2(args, message):
    result = _run(*args)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and message in result.stderr
    assert "Traceback" not in result.stderr


def test_describe_preset_in_process_matches_the_presets():
    info = describe_preset("tiny", ["motion", "bias"])
    assert info["heads"] == ["bias", "motion"] and info["stride"] == 4
    assert info["config"]["heads"] == ["bias", "motion"]


def test_torch_is_imported_only_inside_the_command():
    tree = ast.parse(Path(model_info_module.__file__).read_text())
    top_level = {
        alias.name.split(".")[0] if isinstance(node, ast.Import) else (node.module or "")
        for node in tree.body
        if isinstance(node, (ast.Import, ast.ImportFrom))
        for alias in node.names
    }
    assert "torch" not in top_level and not any(m.startswith("artefix.models") for m in top_level)
