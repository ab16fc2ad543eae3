"""The library words errors in its own terms; the command line names the parameters as its flags."""

import pytest

from artefix.errors import ArtefixError, InputError, OutputError, cli_words


def test_errors_name_parameters_as_the_api_does_and_the_cli_as_flags():
    exc = InputError("`strength` names noise, which `only` leaves out")
    assert str(exc) == "`strength` names noise, which `only` leaves out"
    assert exc.cli_message() == "--strength names noise, which --only leaves out"
    assert InputError("`snr_scope` must be scan").cli_message() == "--snr-scope must be scan"
    out = OutputError("runs/x: pass `resume` or choose another `out_dir`", flags={"out_dir": "--out"})
    assert out.cli_message() == "runs/x: pass --resume or choose another --out"


def test_only_backticked_parameters_become_flags():
    exc = OutputError("/data/overwrite/a.nii: output exists; pass `overwrite` to replace it")
    assert exc.cli_message() == "/data/overwrite/a.nii: output exists; pass --overwrite to replace it"
    assert ArtefixError("a device is not a `device`").cli_message() == "a device is not a --device"
    assert cli_words("plain words, `Not_a_param` stays") == "plain words, `Not_a_param` stays"


@pytest.mark.parametrize("command", ["correct", "simulate"])
def test_the_command_line_shows_flags_where_the_library_says_parameters(command, tmp_path, monkeypatch, capsys):
    import sys

    from artefix.cli import main

    np = pytest.importorskip("numpy")
    np.save(tmp_path / "in.npy", np.ones((8, 8), np.float32))
    (tmp_path / "out.npy").write_bytes(b"old")
    extra = ["--artefact", "bias"] if command == "simulate" else []
    monkeypatch.setattr(sys, "argv", ["artefix", command, str(tmp_path / "in.npy"), str(tmp_path / "out.npy"), *extra])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.strip().endswith("output exists; pass --overwrite to replace it")
    assert "`" not in err
