"""The command line: ``python -m jaxinit`` (report) and ``python -m jaxinit show``."""

import importlib.util
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest
from _stats import ALPHA

from jaxinit import _cli, _report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SHOW_OPTIONS = [
    "--shape", "--a", "--b", "--mean", "--std", "--val", "--gain", "--scale",
    "--mode", "--distribution", "--nonlinearity", "--sparsity", "--groups",
    "--layout", "--dtype", "--seed",
    "--draws", "--plot", "--compare-torch",
]  # fmt: skip


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = _cli.main(argv)
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def usage_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(argv)
    assert exit_info.value.code == 2
    return capsys.readouterr().err


def test_help_documents_the_report_and_show(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in ("--out", "--seed", "--no-torch", "show", "examples:"):
        assert option in text


def test_show_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        _cli.main(["show", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for option in SHOW_OPTIONS:
        assert option in text, option
    for name in _report.FACTORIES:
        assert name in text


def test_show_prints_fans_gain_theory_and_measurement(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["show", "kaiming_normal", "--shape", "3,3,16,32"]
    status, out, err = run(
        [*argv, "--mode", "fan_out", "--nonlinearity", "relu"], capsys
    )
    assert (status, err) == (0, "")
    assert "fan_in 144, fan_out 288, gain 1.41421" in out
    assert "std 0.083333" in out  # sqrt(2) / sqrt(288)
    assert "torch weight (32, 16, 3, 3)" in out
    assert re.search(r"measured: n 4608, mean \S+, std \S+", out)


def test_show_torch_layout_reads_out_in(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["show", "xavier_uniform", "--shape", "32,16,3,3", "--layout", "torch"]
    status, out, _ = run([*argv, "--gain", "2"], capsys)
    assert status == 0
    assert "fan_in 144, fan_out 288, gain 2" in out
    assert "support [-0.2357, 0.2357]" in out  # 2 * sqrt(6 / 432)


@pytest.mark.parametrize("dtype", ["bfloat16", "float16", "float64"])
def test_show_dtypes(dtype: str, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(
        ["show", "uniform", "--shape", "4,5", "--dtype", dtype], capsys
    )
    assert status == 0
    assert f"dtype {dtype}" in out
    assert "measured: n 20" in out


def test_show_zero_element_shape(capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = run(["show", "xavier_uniform", "--shape", "0,0"], capsys)
    assert status == 0
    assert "fan_in 0, fan_out 0" in out
    assert "an empty array" in out


def test_show_plot_writes_a_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "figs" / "sparse.png"
    argv = ["show", "sparse", "--shape", "64,32", "--sparsity", "0.25"]
    status, out, _ = run([*argv, "--plot", str(path)], capsys)
    assert status == 0
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert f"figure: {path.resolve()}" in out
    assert "8 zeros per column" in out  # ceil(0.25 * 32) on the torch (32, 64) weight


def test_show_compares_with_torch(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    path = tmp_path / "tn.png"
    argv = ["show", "trunc_normal", "--shape", "64,64", "--std", "0.5", "--a", "-1"]
    status, out, _ = run([*argv, "--compare-torch", "--plot", str(path)], capsys)
    assert status == 0
    match = re.search(
        r"two-sample KS \(jaxinit vs torch\): statistic (\S+), p-value (\S+)", out
    )
    assert match is not None, out
    assert float(match.group(2)) > ALPHA
    assert path.read_bytes().startswith(PNG_MAGIC)


def test_show_deterministic_matches_torch_exactly(
    capsys: pytest.CaptureFixture[str],
) -> None:
    pytest.importorskip("torch")
    argv = ["show", "dirac", "--shape", "3,3,8,32", "--groups", "2", "--compare-torch"]
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert "identical to torch (in torch layout): True" in out


def test_show_torch_fallback_dtype(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("torch")
    argv = ["show", "orthogonal", "--shape", "16,8", "--dtype", "bfloat16"]
    status, out, _ = run([*argv, "--compare-torch"], capsys)
    assert status == 0
    assert "float32 (torch cannot do bfloat16)" in out


def test_show_timm_variance_scaling(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["show", "variance_scaling", "--shape", "3,3,16,32", "--scale", "2"]
    argv += ["--mode", "fan_avg", "--distribution", "truncated_normal"]
    status, out, _ = run([*argv, "--compare-torch"], capsys)
    assert status == 0
    assert "fan_in 144, fan_out 288, gain -" in out
    # std sqrt(2 / 216); support +-2 std / 0.87962566
    assert "std 0.096225, support [-0.21879, 0.21879]" in out


def test_show_timm_trunc_normal_tf_bounds_in_std(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["show", "trunc_normal_tf", "--mean", "1", "--std", "0.5", "--a", "-1"]
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert "support [0.5, 2]" in out  # 1 - 1 * 0.5, 1 + 2 * 0.5


def test_timm_compared_with_timm_only(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """timm's initializers are compared with timm.layers: skipped without timm,
    and a two-sample KS with it (here a stand-in built from torch's primitives)."""
    pytest.importorskip("torch")
    pytest.importorskip("scipy")
    argv = ["show", "lecun_normal", "--shape", "64,64", "--compare-torch"]
    if importlib.util.find_spec("timm") is None:
        status, out, _ = run(argv, capsys)
        assert status == 0
        assert "torch:    timm is not installed; skipped" in out
        import _timm_oracle

        weight_init = types.ModuleType("timm.layers.weight_init")
        weight_init.lecun_normal_ = _timm_oracle.lecun_normal_  # type: ignore[attr-defined]
        for name in ("timm", "timm.layers"):
            monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
        monkeypatch.setitem(sys.modules, "timm.layers.weight_init", weight_init)
    status, out, _ = run(argv, capsys)
    assert status == 0
    assert "[timm.layers.lecun_normal_ on (64, 64), float32]" in out
    match = re.search(
        r"two-sample KS \(jaxinit vs torch\): statistic \S+, p-value (\S+)", out
    )
    assert match is not None and float(match.group(1)) > ALPHA, out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["show", "normal", "--std", "-1"], "normal: std must be"),
        (
            ["show", "variance_scaling", "--mode", "fan_geo_avg"],
            "variance_scaling: mode must be one of",
        ),
        (
            ["show", "kaiming_uniform", "--mode", "fan_avg"],
            "Mode fan_avg not supported",
        ),
        (
            ["show", "kaiming_normal", "--nonlinearity", "gelu"],
            "Unsupported nonlinearity gelu",
        ),
        (["show", "uniform", "--a", "2", "--b", "1"], "uniform"),
        (
            ["show", "sparse", "--sparsity", "1.5"],
            "sparsity must be a number in [0, 1]",
        ),
        (["show", "dirac", "--groups", "0"], "groups"),
        (["show", "eye", "--shape", "3,4,5"], "Only tensors with 2 dimensions"),
        (["show", "xavier_normal", "--shape", "7"], "fewer than 2 dimensions"),
    ],
)
def test_bad_values_give_jaxinit_errors_without_traceback(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run(argv, capsys)
    assert status == 1
    assert err.startswith("python -m jaxinit show: error: ")
    assert message in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--bogus"], "unrecognized arguments: --bogus"),
        (["show"], "the following arguments are required: NAME"),
        (["show", "gaussian"], "invalid choice: 'gaussian'"),
        (["show", "normal", "--layout", "tf"], "invalid choice: 'tf'"),
        (["show", "normal", "--dtype", "int8"], "invalid choice: 'int8'"),
        (["show", "normal", "--std", "wide"], "invalid float value: 'wide'"),
        (["show", "normal", "--shape", "3,x"], "invalid shape '3,x'"),
        (["show", "normal", "--shape", "3,-1"], "sizes must be >= 0"),
        (["show", "normal", "--draws", "0"], "must be >= 1"),
        (
            ["show", "uniform", "--std", "1"],
            "uniform takes no --std (it takes: --a, --b)",
        ),
        (
            ["show", "zeros", "--val", "1"],
            "zeros takes no --val (it takes: no parameters)",
        ),
        (["show", "constant"], "constant needs --val"),
        (["show", "sparse"], "sparse needs --sparsity"),
        (
            ["show", "lecun_normal", "--mode", "fan_in"],
            "lecun_normal takes no --mode (it takes: no parameters)",
        ),
    ],
)
def test_bad_options_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    err = usage_error(argv, capsys)
    assert "usage: python -m jaxinit" in err
    assert message in err


def test_report_prints_every_row_and_saves_the_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The full report draws every initializer (make demo); two keep this test fast.
    monkeypatch.setattr(_report, "DEMO", _report.DEMO[10:12])
    path = tmp_path / "demo.png"
    status, out, _ = run(["--out", str(path), "--no-torch"], capsys)
    assert status == 0
    assert path.read_bytes().startswith(PNG_MAGIC)
    assert f"figure: {path.resolve()}" in out
    assert "kaiming_uniform(a=2.236)" in out
    assert "kaiming_normal(mode='fan_out', nonlinearity='relu')" in out
    assert re.search(r"jaxinit flax\s+\(3, 3, 32, 64\)\s+288\s+576\s+1\.414", out)
    assert re.search(r"jaxinit torch\s+\(64, 32, 3, 3\)\s+288\s+576\s+1\.414", out)
    assert "torch.nn.init" not in out.split("\n", 3)[-1]  # --no-torch: no torch rows


def test_report_covers_every_initializer() -> None:
    assert [name for name, _, _ in _report.DEMO] == list(_report.FACTORIES)


def test_module_entry_point_runs_in_a_subprocess(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "jaxinit",
            "show",
            "uniform",
            "--shape",
            "3,5",
            "--b",
            "2",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "theory:   law U[a, b), mean 1, std 0.57735, support [0, 2]" in result.stdout
