"""`analysis.errors` and `ErrorTable`: known answers on synthetic results, diverged chains, bootstrap."""

import math
import os
import sys
import warnings

import numpy as np
import pytest

import analysis
import objectives
import simulate
from analysis.errors import COLUMNS, ErrorTable


def synthetic_result(checkpoint_values, diverged_at, checkpoint_steps, step_sizes):
    """A SimulationResult whose every estimator holds `checkpoint_values` `(K, S, C, d)`."""
    values = np.asarray(checkpoint_values, float)
    diverged_at = np.asarray(diverged_at)
    return simulate.SimulationResult(
        **{name: values[-1] for name in simulate.ESTIMATORS},
        diverged=diverged_at >= 0, diverged_at=diverged_at, checkpoint_steps=np.asarray(checkpoint_steps),
        checkpoints={name: values for name in simulate.ESTIMATORS}, step_sizes=np.asarray(step_sizes, float),
        n_steps=int(checkpoint_steps[-1]), n_chains=values.shape[2], seed=0, tail_fraction=0.5,
        noise=simulate.noise.gaussian(1.0), objective_name="synthetic", dim=values.shape[3], dtype="float64",
        divergence_radius=1e6,
    )


def _row(table, **equal):
    rows = table.select(**equal).to_records()
    assert len(rows) == 1, rows
    return rows[0]


def test_errors_match_hand_computed_values_and_drop_chains_diverged_by_each_checkpoint():
    # Step size 0.1: chain 2 diverges at step 7 (counted at t=5, excluded at t=10), chain 3 never.
    # Step size 0.2: every chain diverged by step 3 except chain 0 (a single chain left at t=10).
    at_5 = [[[1.0, 0.0], [3.0, 0.0], [2.0, 2.0], [1.0, 1.0]], [[0.0, 0.0]] * 4]
    at_10 = [[[1.0, 1.0], [1.0, -1.0], [1e30, 0.0], [2.0, 1.0]], [[4.0, 0.0], [9.0, 9.0], [9.0, 9.0], [9.0, 9.0]]]
    result = synthetic_result([at_5, at_10], [[-1, -1, 7, -1], [-1, 2, 3, 3]], [5, 10], [0.1, 0.2])
    table = analysis.errors(result, target=[1.0, 0.0])
    assert len(table) == 5 * 2 * 2 and table.columns() == list(COLUMNS)

    squared = np.array([0.0, 4.0, 5.0, 1.0])
    row = _row(table, estimator="x", step_size=0.1, n_steps=5)
    assert row["mse"] == pytest.approx(squared.mean()) and row["n_chains"] == 4 and row["n_diverged"] == 0
    assert row["mse_se"] == pytest.approx(squared.std(ddof=1) / 2)

    squared = np.array([1.0, 1.0, 2.0])  # the chain that diverged at step 7 is out at t = 10
    row = _row(table, estimator="v_avg", step_size=0.1, n_steps=10)
    assert row["mse"] == pytest.approx(squared.mean()) and row["n_chains"] == 3 and row["n_diverged"] == 1
    assert row["mse_se"] == pytest.approx(squared.std(ddof=1) / math.sqrt(3))

    row = _row(table, estimator="x", step_size=0.2, n_steps=5)  # diverged at 2, 3, 3 <= 5
    assert (row["mse"], row["n_chains"], row["n_diverged"]) == (1.0, 1, 3)
    assert math.isnan(row["mse_se"])  # one chain: no spread to estimate, and said so
    # Every finite row stays finite: the frozen 1e30 chain never leaks into the averages.
    assert np.all(np.isfinite(table.select(step_size=0.1).column("mse")))

    per_step = analysis.errors(result, target=[[1.0, 0.0], [4.0, 0.0]], checkpoints=False)
    assert len(per_step) == 5 * 2 and set(per_step.column("n_steps").tolist()) == {10}
    assert _row(per_step, estimator="x", step_size=0.2)["mse"] == 0.0


def test_a_point_where_every_chain_diverged_reports_zero_chains_and_nan_only_there():
    values = np.ones((2, 2, 3, 1))
    result = synthetic_result(values, [[-1, -1, -1], [4, 2, 8]], [3, 8], [0.5, 2.0])
    table = analysis.errors(result, [0.0], bootstrap=50)
    gone = _row(table, estimator="x_tail", step_size=2.0, n_steps=8)
    assert gone["n_chains"] == 0 and gone["n_diverged"] == 3
    assert all(math.isnan(gone[c]) for c in ("mse", "mse_se", "mse_lo", "mse_hi"))
    others = [row for row in table if not (row["step_size"] == 2.0 and row["n_steps"] == 8)]
    assert all(np.isfinite([row["mse"], row["mse_lo"], row["mse_hi"]]).all() for row in others)


def test_errors_on_a_simulated_divergence_agree_with_diverged_at():
    # eta * h = 2.5 > 2 on a quadratic: every chain leaves the ball; eta * h = 0.5 is stable.
    f = objectives.quadratic(1.0, [0.0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", simulate.DivergenceWarning)
        result = simulate.run(f, step_sizes=[0.5, 2.5], n_steps=60, n_chains=64, x0=[1.0], divergence_radius=50.0,
                              checkpoints=[1, 2, 60], seed=4)
    assert result.diverged[1].all() and not result.diverged[0].any()
    table = analysis.errors(result, [0.0])
    for t in (1, 2, 60):
        row = _row(table, estimator="x", step_size=2.5, n_steps=t)
        assert row["n_diverged"] == int(np.sum(result.diverged_at[1] <= t))
        assert row["n_chains"] + row["n_diverged"] == 64
    assert _row(table, estimator="x", step_size=2.5, n_steps=60)["n_chains"] == 0
    stable = _row(table, estimator="x", step_size=0.5, n_steps=60)
    assert stable["n_chains"] == 64 and np.isfinite(stable["mse"])


def test_bootstrap_interval_covers_the_true_mse_at_its_level():
    # 300 independent data sets as 300 "step sizes": ||N(0, I_2)||^2 has mean 2.
    rng = np.random.default_rng(0)
    values = rng.normal(size=(1, 300, 100, 2))
    result = synthetic_result(values, -np.ones((300, 100), int), [10], np.arange(1, 301) / 1000)
    table = analysis.errors(result, [0.0, 0.0], bootstrap=300, estimators=["x"])
    lo, hi, mse, se = (table.column(c) for c in ("mse_lo", "mse_hi", "mse", "mse_se"))
    coverage = np.mean((lo <= 2.0) & (2.0 <= hi))
    assert 0.9 <= coverage <= 0.985, coverage
    assert np.all((lo < mse) & (mse < hi))
    assert np.median((hi - lo) / (2 * 1.96 * se)) == pytest.approx(1.0, abs=0.1)


def test_bootstrap_rows_depend_only_on_the_seed_and_their_own_position():
    rng = np.random.default_rng(1)
    result = synthetic_result(rng.normal(size=(3, 2, 200, 1)), -np.ones((2, 200), int), [1, 5, 25], [0.1, 0.2])
    full = analysis.errors(result, [0.0], bootstrap=100, seed=5)
    final = analysis.errors(result, [0.0], bootstrap=100, seed=5, checkpoints=False, estimators=["x_avg"])
    assert _row(final, step_size=0.2) == _row(full, estimator="x_avg", step_size=0.2, n_steps=25)
    other = analysis.errors(result, [0.0], bootstrap=100, seed=6)
    assert not np.array_equal(other.column("mse_lo"), full.column("mse_lo"))
    assert np.array_equal(other.column("mse"), full.column("mse"))


def test_errors_rejects_bad_arguments_with_messages_that_name_them():
    result = synthetic_result(np.zeros((1, 2, 3, 2)), -np.ones((2, 3), int), [4], [0.1, 0.2])
    with pytest.raises(ValueError, match=r"target must have shape \(2,\).*\(2, 2\).*got shape \(3,\)"):
        analysis.errors(result, [0.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="target must be finite"):
        analysis.errors(result, [0.0, np.nan])
    with pytest.raises(ValueError, match="bootstrap must be an integer >= 0"):
        analysis.errors(result, [0.0, 0.0], bootstrap=-1)
    with pytest.raises(ValueError, match="estimators must be among"):
        analysis.errors(result, [0.0, 0.0], estimators=["x_ema"])


def test_error_table_select_column_csv_and_text():
    table = ErrorTable([
        {"estimator": "x", "step_size": 0.1, "n_steps": 10, "mse": 0.5, "mse_se": 0.01, "n_chains": 9, "n_diverged": 1},
        {"estimator": "x_avg", "step_size": 0.1, "n_steps": 10, "mse": 0.125, "mse_se": 0.002, "n_chains": 10, "n_diverged": 0},
        {"estimator": "x", "step_size": 0.30000000000000004, "n_steps": 10, "mse": math.nan, "mse_se": math.nan, "n_chains": 0, "n_diverged": 10},
    ])
    assert len(table.select(step_size=0.3)) == 1  # float keys match to a relative 1e-9
    assert len(table.select(estimator=["x", "x_avg"], step_size=0.1)) == 2
    assert len(table.select(estimator="x_tail")) == 0
    np.testing.assert_array_equal(table.column("n_chains"), [9, 10, 0])
    with pytest.raises(ValueError, match="column must be one of"):
        table.column("bias")
    with pytest.raises(ValueError, match="select: column must be one of"):
        table.select(eta=0.1)

    text = str(table)
    lines = text.splitlines()
    assert len(lines) == 4 and len({len(line) for line in lines}) == 1  # aligned
    assert lines[0].split() == list(COLUMNS) and "nan" in lines[3]


def test_error_table_csv_is_written_atomically_and_reads_back(tmp_path):
    rng = np.random.default_rng(2)
    result = synthetic_result(rng.normal(size=(2, 2, 50, 1)), -np.ones((2, 50), int), [5, 50], [0.1, 0.2])
    table = analysis.errors(result, [0.0], bootstrap=20)
    path = tmp_path / "deep" / "errors.csv"
    table.to_csv(path)
    assert os.listdir(path.parent) == ["errors.csv"]  # no temporary file left behind
    assert path.read_text().splitlines()[0] == ",".join([*COLUMNS, "mse_lo", "mse_hi"])
    back = ErrorTable.from_csv(path)
    assert back.columns() == table.columns() and len(back) == len(table)
    np.testing.assert_allclose(back.column("mse"), table.column("mse"), rtol=1e-12)
    np.testing.assert_array_equal(back.column("estimator"), table.column("estimator"))


def test_to_pandas_names_the_pandas_extra_when_pandas_is_missing(monkeypatch):
    table = ErrorTable([{"estimator": "x", "mse": 1.0}])
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install 'asgd-smoothing\[pandas\]'"):
        table.to_pandas()


def test_to_pandas_and_back_keeps_every_row_column_and_type():
    pandas = pytest.importorskip("pandas")
    values = np.arange(2 * 2 * 3 * 1, dtype=float).reshape(2, 2, 3, 1)
    table = analysis.errors(synthetic_result(values, [[-1, 7, -1], [-1, -1, -1]], [5, 10], [0.1, 0.2]), [0.0], bootstrap=20)
    frame = table.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and list(frame.columns) == table.columns() and len(frame) == len(table)
    back = ErrorTable(frame)
    assert back == table
    assert type(back.rows[0]["n_steps"]) is int and type(back.rows[0]["estimator"]) is str


def _seed_results():
    """Three seeds of one synthetic sweep (S = 2, K = 2, d = 1) with 3, 4 and 2 chains, some diverged."""
    rng = np.random.default_rng(5)
    chains, diverged_at = (3, 4, 2), ([[-1, 7, -1], [2, 3, -1]], [[-1, -1, -1, 9], [-1, -1, -1, -1]], [[-1, -1], [1, 1]])
    return [synthetic_result(rng.normal(size=(2, 2, c, 1)), d, [5, 10], [0.1, 0.2]) for c, d in zip(chains, diverged_at)]


def test_pool_equals_errors_over_every_chain_of_every_seed_as_one_sample():
    results = _seed_results()
    pooled = analysis.pool([analysis.errors(r, [0.5]) for r in results])
    assert pooled.columns() == [*COLUMNS, "n_seeds"] and set(pooled.column("n_seeds")) == {3}
    for s, eta in enumerate((0.1, 0.2)):
        for k, t in enumerate((5, 10)):
            squared = np.concatenate([
                (r.checkpoints["x"][k, s, :, 0] - 0.5)[~(r.diverged[s] & (r.diverged_at[s] <= t))] ** 2 for r in results
            ])
            row = _row(pooled, estimator="x", step_size=eta, n_steps=t)
            assert row["n_chains"] == squared.size
            assert row["n_diverged"] == sum(int(np.sum(r.diverged[s] & (r.diverged_at[s] <= t))) for r in results)
            assert math.isclose(row["mse"], squared.mean(), rel_tol=1e-12)
            assert math.isclose(row["mse_se"], squared.std(ddof=1) / math.sqrt(squared.size), rel_tol=1e-12)
    # At eta = 0.2, t = 10 the third seed has no chain left and the first one a single one:
    # they still count exactly (a single chain has no se of its own but adds to the spread).
    assert [_row(analysis.errors(r, [0.5]), estimator="x", step_size=0.2, n_steps=10)["n_chains"] for r in results] == [1, 4, 0]


def test_pool_splits_one_table_by_its_seed_column_and_refuses_what_it_cannot_match():
    tables = [analysis.errors(r, [0.5], bootstrap=10) for r in _seed_results()]
    with_seed = ErrorTable({**row, "seed": seed} for seed, table in zip((3, 1, 4), tables) for row in table)
    assert analysis.pool(with_seed) == analysis.pool(tables)
    assert "mse_lo" not in analysis.pool(tables).columns()  # an interval needs the chains themselves
    assert set(analysis.pool([analysis.pool(tables[:2]), tables[2]]).column("n_seeds")) == {3}
    with pytest.raises(ValueError, match="a single table needs a 'seed' column"):
        analysis.pool(tables[0])
    with pytest.raises(ValueError, match=r"the row \{'estimator': 'x', 'step_size': 0.2, 'n_steps': 10\} is missing from table 1"):
        analysis.pool([tables[0], ErrorTable(r for r in tables[1] if not (r["estimator"] == "x" and r["step_size"] == 0.2 and r["n_steps"] == 10))])
    with pytest.raises(ValueError, match="table 0 has two rows with"):
        analysis.pool([ErrorTable(tables[0].rows * 2)])
    with pytest.raises(ValueError, match="at least one table"):
        analysis.pool([])


def test_a_squared_error_that_overflows_counts_as_divergence_and_the_rest_cannot_overflow():
    # float64 chains, none flagged: 1e296 from the target (its square is inf in float64), three
    # at 1e154 (squares about 1e308 each: their plain sum overflows) and one on the target.
    values = np.array([1e296, 1e154, -1e154, 1e154, 0.0]).reshape(1, 1, 5, 1)
    result = synthetic_result(values, -np.ones((1, 5), int), [10], [0.1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning leaks out either
        table = analysis.errors(result, [0.0], bootstrap=50)
    kept = (np.array([1e154, 1e154, 1e154, 0.0]) / 2.0**500) ** 2  # by hand, scaled by 2**1000 (exact)
    for name in simulate.ESTIMATORS:
        row = _row(table, estimator=name)
        assert (row["n_chains"], row["n_diverged"]) == (4, 1), row
        assert row["mse"] == pytest.approx(kept.mean() * 2.0**1000, rel=1e-12)
        assert row["mse_se"] == pytest.approx(kept.std(ddof=1) / 2 * 2.0**1000, rel=1e-12)
        assert np.all(np.isfinite([row["mse_lo"], row["mse_hi"]])) and row["mse_lo"] <= row["mse"] <= row["mse_hi"]


def test_errors_takes_one_estimator_name_as_one_estimator_and_names_result_when_it_is_not_one():
    result = synthetic_result(np.arange(12.0).reshape(1, 2, 3, 2), -np.ones((2, 3), int), [4], [0.1, 0.2])
    one = analysis.errors(result, [0.0, 0.0], estimators="x_avg")
    assert one == analysis.errors(result, [0.0, 0.0], estimators=["x_avg"]) and set(one.column("estimator")) == {"x_avg"}
    with pytest.raises(ValueError, match=r"estimators must be among .*got 'x_av'"):
        analysis.errors(result, [0.0, 0.0], estimators="x_av")
    with pytest.raises(TypeError, match="result must be a simulate.SimulationResult .*got dict"):
        analysis.errors({"x": 1}, [0.0, 0.0])
