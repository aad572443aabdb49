"""Nothing lost, nothing mixed, nothing silent (issue 15, the command line's half; issue 14.8).

Result folders refuse what would mix numbers (another precision, library version, randomness
contract), `--fresh` never leaves a mix when killed, everything is validated before anything
is written, damaged folders and bad `--out` give one line naming the path (exit 2), Ctrl-C
exits 130, files honour the umask, and an interrupted run resumes to the very same bytes.

Most checks call `asgd.cli.main` in this process (no JAX start-up per case); the signal tests
need subprocesses.
"""

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from asgd import cli, result_folder
from asgd.config import ConfigError, parse_config
from asgd.schema import read_toml

import support

def write_config(folder: Path, steps=(200,), figures=("tradeoff", "basins"), file="tiny.toml", **tables) -> Path:
    """The shared sharp_flat config (tests/support.py) named "tiny", at horizons `steps`, drawing
    `figures`; `tables` override it further (`support.config`)."""
    run = {"n_steps": list(steps), **tables.pop("run", {})}
    return support.write_config(folder / file, **{"name": "tiny", "output": {"figures": list(figures)}, **tables, "run": run})


run_main = support.run_main


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished tiny run made under umask 022: (config path, result folder)."""
    root = tmp_path_factory.mktemp("finished")
    config = write_config(root)
    previous = os.umask(0o022)
    try:
        assert cli.main(["run", str(config), "--out", str(root / "out"), "--quiet"]) == 0
    finally:
        os.umask(previous)
    return config, root / "out" / "tiny"


@pytest.fixture
def damaged(finished, tmp_path):
    """A copy of the finished folder, to damage."""
    folder = tmp_path / "tiny"
    shutil.copytree(finished[1], folder)
    return folder


def assert_same_results(reference: Path, other: Path) -> None:
    """results.csv byte for byte; arrays.npz and every point file array for array (a zip
    member's timestamp is not part of the results)."""
    assert (reference / "results.csv").read_bytes() == (other / "results.csv").read_bytes()
    pairs = [(reference / "arrays.npz", other / "arrays.npz")]
    pairs += [(p, other / "points" / p.name) for p in sorted((reference / "points").glob("*.npz"))]
    assert sorted(p.name for p in (other / "points").glob("*.npz")) == sorted(p.name for p in (reference / "points").glob("*.npz"))
    for a, b in pairs:
        with np.load(a) as x, np.load(b) as y:
            assert sorted(x.files) == sorted(y.files), a.name
            for key in x.files:
                assert x[key].tobytes() == y[key].tobytes() and x[key].dtype == y[key].dtype, f"{a.name}: {key}"


# ---- 15.1: provenance -----------------------------------------------------------------------------


def _claimed(tmp_path, monkeypatch, **changes):
    """Claim a folder, then claim it again with `changes` to the provenance."""
    raw = {"name": "tiny", "run": {"n_chains": 4}}
    result_folder.claim_folder(tmp_path / "f", "tiny", raw, fresh=False)
    changed = {**result_folder.provenance(), **changes}
    monkeypatch.setattr(result_folder, "provenance", lambda: changed)
    return lambda: result_folder.claim_folder(tmp_path / "f", "tiny", raw, fresh=False)


@pytest.mark.parametrize(
    "changes, said",
    [
        ({"x64": "flip"}, "float"),
        ({"randomness_contract": 999}, "randomness contract version 999"),
        ({"asgd-smoothing": "9.9.9"}, "asgd-smoothing 9.9.9"),
    ],
)
def test_a_folder_of_another_precision_version_or_randomness_contract_is_refused(tmp_path, monkeypatch, changes, said):
    if changes.get("x64") == "flip":
        changes = {"x64": not result_folder.provenance()["x64"]}
    claim_again = _claimed(tmp_path, monkeypatch, **changes)
    with pytest.raises(ConfigError, match="--fresh") as error:
        claim_again()
    assert said in str(error.value) and "must not mix" in str(error.value)


def test_a_folder_of_another_jax_version_warns_and_resumes(tmp_path, monkeypatch):
    claim_again = _claimed(tmp_path, monkeypatch, jax="0.0.1")
    with pytest.warns(result_folder.ResultFolderWarning, match=r"jax 0\.0\.1.*last bits"):
        assert claim_again() == tmp_path / "f" / "points"


def test_a_folder_without_recorded_provenance_is_refused(tmp_path):
    folder = tmp_path / "f"
    folder.mkdir()
    raw = {"name": "tiny"}
    (folder / "sweep.json").write_text(json.dumps({"experiment": "tiny", "fingerprint": result_folder.fingerprint(raw)}))
    with pytest.raises(ConfigError, match="did not record precision"):
        result_folder.claim_folder(folder, "tiny", raw, fresh=False)


def test_resuming_under_another_precision_is_an_exit_2_before_any_point(finished, tmp_path, capsys, monkeypatch):
    config, folder = finished
    copy = tmp_path / "out" / "tiny"
    shutil.copytree(folder, copy)
    shutil.rmtree(copy / "points")
    flipped = {**result_folder.provenance(), "x64": not result_folder.provenance()["x64"]}
    monkeypatch.setattr(result_folder, "provenance", lambda: flipped)
    code, err = run_main(capsys, "run", config, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and "must not mix" in err and len(err.strip().splitlines()) == 1
    assert not (copy / "points").exists()


# ---- 15.2, 15.4, 15.11: validation before anything is written -----------------------------------


@pytest.mark.parametrize("name", ["..", ".", "a/b", "/abs", "", "a\\b"])
def test_experiment_names_must_be_one_path_component(tmp_path, capsys, name):
    config = write_config(tmp_path, name=name)
    code, err = run_main(capsys, "run", config, "--out", tmp_path / "out" / "inner", "--quiet")
    assert code == 2 and f"name = {name!r}" in err and "one folder name" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.toml"]  # nothing written anywhere


EXACT = {"run": {"method": "exact"}}


@pytest.mark.parametrize(
    "changes, message",
    [
        (EXACT, "run.method = 'exact': method='exact' needs a quadratic objective"),
        # eta * lambda = 0.3 * 10 = 3 > 2: the exact sampler has no stationary law to sample
        ({**EXACT, "objective": {"kind": "quadratic", "hessian": [10.0]}}, "method='exact' needs stable step sizes"),
    ],
)
def test_what_the_first_simulation_would_refuse_is_refused_before_any_file(tmp_path, capsys, changes, message):
    config = write_config(tmp_path, **changes)
    code, err = run_main(capsys, "run", config, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_config_values_are_named_by_their_key(tmp_path):
    def parse(**changes):
        return parse_config(read_toml(write_config(tmp_path, **changes)))

    with pytest.raises(ConfigError, match=r"^objective\.hessian = 'abc': must be a finite number"):
        parse(objective={"kind": "quadratic", "hessian": "abc"})
    with pytest.raises(ConfigError, match=r"^noise\.scale = 'big': must be a finite number"):
        parse(noise={"scale": "big"})
    # [quick] is checked without --quick too, under its own name.
    with pytest.raises(ConfigError, match=r"^quick\.n_chains = 0: must be an integer >= 1"):
        parse(quick={"n_chains": 0})


# ---- 15.10, 15.11: --out and damaged folders: one line, exit 2 ------------------------------------


def test_an_out_through_a_file_or_without_write_permission_is_one_line(tmp_path, capsys, monkeypatch):
    config = write_config(tmp_path)
    (tmp_path / "file").write_text("not a folder")
    code, err = run_main(capsys, "run", config, "--out", tmp_path / "file", "--quiet")
    assert code == 2 and f"{str(tmp_path / 'file')!r} is a file, not a folder" in err
    assert len(err.strip().splitlines()) == 1

    # A read-only folder (os.access says so: this test may run as root, which writes anyway).
    readonly = tmp_path / "readonly"
    readonly.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != readonly and real_access(path, mode))
    code, err = run_main(capsys, "run", config, "--out", readonly, "--quiet")
    assert code == 2 and f"the folder {str(readonly)!r} is not writable" in err
    assert list(readonly.iterdir()) == []


def test_a_folder_with_files_but_no_claim_is_refused_unless_fresh(tmp_path, capsys):
    """A result folder never mixes runs: `--out` pointing at a folder of other files (or one made
    before folders were claimed) is refused, and nothing in it is touched; `--fresh` writes."""
    config = write_config(tmp_path, steps=(50,), figures=())
    folder = tmp_path / "out" / "tiny"
    folder.mkdir(parents=True)
    (folder / "results.csv").write_text("somebody else's table\n")
    (folder / "notes.txt").write_text("keep me")
    code, err = run_main(capsys, "run", config, "--out", tmp_path / "out", "--quiet")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"{str(folder)!r} holds files but no sweep.json (notes.txt, results.csv)" in err and "--fresh" in err
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt", "results.csv"]
    assert (folder / "results.csv").read_text() == "somebody else's table\n"

    # A killed claim leaves at most a hidden temporary file: that folder is still claimable.
    empty = tmp_path / "out2" / "tiny"
    empty.mkdir(parents=True)
    (empty / ".sweep.json.0123456789abcdef.tmp").write_text("{")
    assert run_main(capsys, "run", config, "--out", tmp_path / "out2", "--quiet")[0] == 0

    assert run_main(capsys, "run", config, "--out", tmp_path / "out", "--quiet", "--fresh")[0] == 0
    assert (folder / "sweep.json").exists() and (folder / "notes.txt").read_text() == "keep me"
    assert (folder / "results.csv").read_text() != "somebody else's table\n"


def test_a_write_error_nobody_foresaw_is_still_one_line(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "out" / "tiny" / "sweep.json"))

    monkeypatch.setattr(result_folder, "write_json", refuse)
    code, err = run_main(capsys, "run", write_config(tmp_path), "--out", tmp_path / "out", "--quiet")
    assert code == 2 and err.strip() == f"asgd run: error: {tmp_path / 'out' / 'tiny' / 'sweep.json'}: Permission denied"


def _damage(folder: Path, how: str) -> str:
    """Damage `folder` as `how` says; returns what the error must say."""
    results = folder / "results.csv"
    if how == "points missing":
        shutil.rmtree(folder / "points")
        return f"{str(folder / 'points' / 'seed0_T200.npz')!r}: missing; the figures ['basins']"
    if how == "point corrupt":
        (folder / "points" / "seed0_T200.npz").write_bytes(b"PK\x03\x04 not a zip")
        return f"{str(folder / 'points' / 'seed0_T200.npz')!r}: damaged sweep point (BadZipFile"
    if how == "results truncated":
        text = results.read_text()
        results.write_text(text[: text.index("\n", len(text) // 2) + 20])
        return f"{str(results)!r}: line "
    if how == "results empty":
        results.write_text("")
        return f"{str(results)!r}: empty file"
    if how == "results header only":
        results.write_text(results.read_text().splitlines()[0] + "\n")
        return f"{str(results)!r}: has a header but no rows"
    if how == "results undecodable":
        results.write_bytes(results.read_bytes()[:100] + b"\xa7\xff" + results.read_bytes()[100:])
        return f"{str(results)!r}: damaged, not UTF-8 text (byte 0xa7 at offset 100)"
    if how == "metadata corrupt":
        path = folder / "metadata.json"
        path.write_text(path.read_text()[:50])
        return f"{str(path)!r}: damaged, not valid JSON (Unterminated string"
    raise AssertionError(how)


@pytest.mark.parametrize(
    "how",
    ["points missing", "point corrupt", "results truncated", "results empty", "results header only", "results undecodable", "metadata corrupt"],
)
def test_plot_on_a_damaged_folder_is_one_line_naming_the_file(damaged, capsys, how):
    said = _damage(damaged, how)
    for figure in ("tradeoff.png", "basins.png"):
        (damaged / figure).unlink()
    code, err = run_main(capsys, "plot", damaged)
    assert code == 2 and said in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (damaged / "tradeoff.png").exists()  # refused before drawing anything


def test_plot_warns_about_nan_standard_errors_naming_file_and_lines(damaged, capsys):
    path = damaged / "results.csv"
    lines = path.read_text().splitlines()
    header = lines[0].split(",")
    for number in (3, 5):  # 1-based file lines
        cells = lines[number - 1].split(",")
        cells[header.index("mse_se")] = "nan"
        lines[number - 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    code, err = run_main(capsys, "plot", damaged)
    assert code == 0
    assert f"asgd plot: warning: {str(path)!r}: mse_se is NaN on line(s) 3, 5" in err


def test_a_corrupt_point_is_recomputed_with_a_warning_on_resume(finished, damaged, capsys):
    config, reference = finished
    point = damaged / "points" / "seed1_T200.npz"
    point.write_bytes(point.read_bytes()[:200])  # truncated
    code, err = run_main(capsys, "run", config, "--out", damaged.parent, "--quiet")
    assert code == 0, err
    assert f"warning: {str(point)!r}: damaged sweep point" in err and "computing it again" in err
    assert_same_results(reference, damaged)


# ---- 14.8: file modes ------------------------------------------------------------------------------


def test_every_file_honours_the_umask(finished):
    folder = finished[1]
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {"results.csv", "arrays.npz", "metadata.json", "sweep.json", "tradeoff.png", "seed0_T200.npz"} <= {p.name for p in files}
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in files}
    assert set(modes.values()) == {0o644}, modes


# ---- 15.3, 15.12 and interruptions: subprocesses ---------------------------------------------------


def start(config: Path, out: Path, *extra, compile_cache: bool = True) -> subprocess.Popen:
    # Without the cache it compiles for real: a cache hit leaves no compiler thread to interrupt.
    env = None if compile_cache else {"JAX_COMPILATION_CACHE_DIR": None}
    return support.asgd("run", config, "--out", out, "--quiet", *extra, popen=True, env=env)


def wait_for(condition, process: subprocess.Popen, timeout: float = 120) -> bool:
    """Poll `condition()` until it holds (True) or the process ends (False)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.01)
    raise AssertionError("timed out")


def test_ctrl_c_while_starting_exits_130_without_a_traceback(finished, tmp_path):
    process = start(finished[0], tmp_path / "out")
    time.sleep(0.5)  # importing JAX
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 130 and "Traceback" not in err and "interrupted" in err, (process.returncode, err)
    assert not (tmp_path / "out").exists()


def test_ctrl_c_while_compiling_exits_130_then_resumes_to_the_same_bytes(finished, tmp_path):
    config, reference = finished
    folder = tmp_path / "out" / "tiny"
    process = start(config, tmp_path / "out", compile_cache=False)
    wait_for((folder / "sweep.json").exists, process)  # claimed: the first point compiles now
    time.sleep(0.5)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.skip("the run finished before the interrupt landed")
    assert process.returncode == 130, (process.returncode, err)  # was -11: a segfault in teardown
    assert "Traceback" not in err and "resume" in err
    assert not (folder / "results.csv").exists() and not list(folder.rglob("*.tmp"))
    resumed = start(config, tmp_path / "out")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_same_results(reference, folder)


def test_a_killed_fresh_leaves_the_old_folder_whole_or_a_clean_new_one(finished, tmp_path):
    old_config, reference = finished
    folder = tmp_path / "out" / "tiny"
    shutil.copytree(reference, folder)
    new_config = write_config(tmp_path, steps=(300,), file="new.toml")
    old_fingerprint = json.loads((folder / "sweep.json").read_text())["fingerprint"]
    process = start(new_config, tmp_path / "out", "--fresh")

    def new_claim():
        try:
            return json.loads((folder / "sweep.json").read_text())["fingerprint"] != old_fingerprint
        except (FileNotFoundError, json.JSONDecodeError):
            return not (folder / "results.csv").exists()

    wait_for(new_claim, process)
    process.kill()
    process.communicate(timeout=60)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.toml", "out"]
    if folder.exists():  # the new run's claim, nothing of the old run (a kill -9 during a write
        # leaves that write's hidden temporary file, never a file under its final name)
        names = sorted(p.name for p in folder.iterdir() if not (p.name.startswith(".") and p.name.endswith(".tmp")))
        assert names in ([], ["sweep.json"], ["points", "sweep.json"])
    resumed = start(new_config, tmp_path / "out")  # the same command without --fresh resumes
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert not list((tmp_path / "out").glob(".tiny.discarded-*"))
    assert json.loads((folder / "metadata.json").read_text())["config"]["run"]["n_steps"] == [300]


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_killed_at_a_random_moment_then_resumed_gives_the_same_bytes(finished, tmp_path, seed):
    """Kill -9 at a random moment (start-up, compile, simulation, results, figures), resume."""
    config, reference = finished
    folder = tmp_path / "out" / "tiny"
    process = start(config, tmp_path / "out")
    time.sleep(np.random.default_rng(seed).uniform(0.5, 8.0))
    process.kill()
    process.communicate(timeout=60)
    resumed = start(config, tmp_path / "out")
    _, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert_same_results(reference, folder)
    assert (folder / "tradeoff.png").exists() and not list(folder.rglob("*.tmp"))


@pytest.mark.slow
def test_killed_while_drawing_figures_then_resumed_gives_the_same_bytes(finished, tmp_path):
    config, reference = finished
    folder = tmp_path / "out" / "tiny"
    process = start(config, tmp_path / "out")
    wait_for((folder / "results.csv").exists, process)  # the figures are drawn next
    process.kill()
    process.communicate(timeout=60)
    resumed = start(config, tmp_path / "out")
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err
    assert "2 sweep point(s) resumed" in out
    assert_same_results(reference, folder)
