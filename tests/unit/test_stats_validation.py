"""The statistics command checks its table before computing anything: each bad table is a one-line error naming the
rows and what would be right; r with fewer than 3 models says so; predictions paths resolve against --root."""

import numpy as np
import pandas as pd
import pytest

from transferbench.analysis import __main__ as cli
from transferbench.analysis import stats
from transferbench.analysis.results import TableError, validate_table
from transferbench.analysis.statistics import statistics_files, write_statistics
from transferbench.predictions import save_predictions

pytestmark = pytest.mark.unit


def good_table(n_models=4, datasets=("cifar10", "pets"), modes=("linear",), n_train=(5000, 3000)):
    rng = np.random.default_rng(0)
    top1 = np.linspace(70, 80, n_models)
    rows = [{"model": f"resnet{m}", "dataset": d, "mode": mode, "metric": "top1",
             "value": float(np.clip(0.5 + 0.04 * m + rng.normal(0, 0.01), 0, 1)), "imagenet_top1": top1[m],
             "n_train": n, "n_test": 100}
            for mode in modes for m in range(n_models) for d, n in zip(datasets, n_train)]
    return pd.DataFrame(rows)


def run_cli(tmp_path, table, capsys, *extra):
    path = tmp_path / "T.csv"
    table.to_csv(path, index=False)
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--results", str(path), "--out", str(tmp_path / "out"), "--n-boot", "50", *extra])
    err = capsys.readouterr().err
    return exit_info.value.code, err


def test_percent_values_stop_the_command_with_one_line_naming_the_row(tmp_path, capsys):
    table = good_table()
    table.loc[0, "value"] = 53.0
    code, err = run_cli(tmp_path, table, capsys)
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "column 'value' holds 53 in (resnet0, cifar10, linear)" in err
    assert "fractions in [0, 1]; divide percent by 100" in err
    assert not (tmp_path / "out").exists()  # validated before anything is computed or written


def test_whole_percent_table_names_first_rows_and_counts_the_rest():
    table = good_table()
    table["value"] *= 100
    with pytest.raises(TableError, match=r"holds 50.1257 in \(resnet0, cifar10, linear\), .*, "
                                         r"54.1049 in \(resnet1, pets, linear\) and 4 more: values are fractions"):
        validate_table(table)


def test_nan_and_empty_values_are_errors_not_counted_models(tmp_path, capsys):
    table = good_table()
    table.loc[3, "value"] = np.nan
    code, err = run_cli(tmp_path, table, capsys)
    assert code == 2
    assert "column 'value' is empty or NaN in 1 row(s): (resnet1, pets, linear)" in err
    path = tmp_path / "empty.csv"  # an empty CSV cell reads as NaN: the same error
    good_table().to_csv(path, index=False)
    text = path.read_text().splitlines()
    text[2] = text[2].replace(text[2].split(",")[4], "", 1)
    path.write_text("\n".join(text) + "\n")
    with pytest.raises(TableError, match=r"column 'value' is empty or NaN in 1 row\(s\): \(resnet0, pets, linear\)"):
        write_statistics(path, statistics_files(tmp_path / "out2"))


def test_text_in_a_numeric_column_is_named():
    table = good_table().astype({"value": object})
    table.loc[1, "value"] = "53%"
    with pytest.raises(TableError, match=r"column 'value' holds text '53%' in \(resnet0, pets, linear\)"):
        validate_table(table)


def test_missing_column_is_named_with_the_expected_columns(tmp_path, capsys):
    code, err = run_cli(tmp_path, good_table().drop(columns=["n_test"]), capsys)
    assert code == 2 and "lacks columns ['n_test']" in err and "Traceback" not in err


def test_duplicate_keys_are_named():
    table = good_table()
    table = pd.concat([table, table.iloc[[2]]])
    with pytest.raises(TableError, match=r"1 \(model, dataset, mode\) key\(s\) on more than one row: "
                                         r"\(resnet1, cifar10, linear\); keep one row per key"):
        validate_table(table)


def test_upstream_top1_as_fraction_and_inconsistent_per_model_are_errors():
    table = good_table()
    table["imagenet_top1"] /= 100
    with pytest.raises(TableError, match="it is percent .* multiply by 100"):
        validate_table(table)
    table = good_table()
    table.loc[0, "imagenet_top1"] = 71.0
    with pytest.raises(TableError, match=r"'imagenet_top1' differs between rows of one model: resnet0 \(70, 71\)"):
        validate_table(table)


def test_counts_below_one_and_model_lacking_a_dataset_are_errors():
    table = good_table()
    table.loc[0, "n_test"] = 0
    with pytest.raises(TableError, match=r"'n_test' holds 0 in \(resnet0, cifar10, linear\)"):
        validate_table(table)
    table = good_table().drop(index=5)
    with pytest.raises(TableError, match=r"mode 'linear': resnet2 lacks \['pets'\]; every model needs every dataset"):
        validate_table(table)


def test_several_problems_are_reported_together_on_one_line():
    table = good_table()
    table.loc[0, "value"] = 53.0
    table.loc[1, "n_train"] = np.nan
    with pytest.raises(TableError) as info:
        validate_table(table)
    message = str(info.value)
    assert "'n_train' is empty" in message and "'value' holds 53 in" in message and "\n" not in message


def test_fewer_than_three_models_is_a_note_not_a_silent_nan(tmp_path):
    corr = stats.correlations(good_table(n_models=2), n_boot=50)
    row = corr.query("subset == 'all'").iloc[0]
    assert np.isnan(row["r"]) and np.isnan(row["ci_low"])
    assert row["note"] == "r needs at least 3 models (2 here)"
    full = stats.correlations(good_table(n_models=4), n_boot=50)
    assert (full.query("subset == 'all'")["note"] == "").all()


def test_constant_upstream_top1_is_noted():
    table = good_table()
    table["imagenet_top1"] = 75.0
    row = stats.correlations(table, n_boot=50).query("subset == 'all'").iloc[0]
    assert row["note"] == "r undefined: every model has the same upstream top-1"


def test_one_size_group_gets_its_row_and_says_it_is_every_dataset():
    corr = stats.correlations(good_table(), n_boot=50).set_index("subset")
    assert "n_train>=10000" not in corr.index
    assert corr.loc["n_train<10000", "r"] == pytest.approx(corr.loc["all", "r"])
    assert corr.loc["n_train<10000", "note"] == \
        "no dataset has >= 10,000 training examples: this group is every dataset"


def with_predictions(tmp_path):
    """A workflow-like folder: table in results/tables, predictions paths relative to the folder."""
    rng = np.random.default_rng(1)
    table = good_table(n_models=3)
    labels = {d: rng.integers(0, 3, 40) for d in table["dataset"].unique()}
    paths = []
    for row in table.itertuples():
        relative = f"results/linear/{row.model}/{row.dataset}.predictions.npz"
        scores = rng.normal(size=(40, 3))
        scores[np.arange(40), labels[row.dataset]] += 1 + int(row.model[-1])
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        save_predictions(tmp_path / relative, labels[row.dataset], scores)
        paths.append(relative)
    table["predictions"] = paths
    csv = tmp_path / "results/tables/results.csv"
    csv.parent.mkdir(parents=True)
    table.to_csv(csv, index=False)
    return csv


def test_relative_predictions_resolve_against_root(tmp_path, monkeypatch):
    csv = with_predictions(tmp_path / "study")
    monkeypatch.chdir(tmp_path)  # not the workflow's directory
    cli.main(["--results", str(csv), "--out", str(tmp_path / "out"), "--n-boot", "50", "--root",
                str(tmp_path / "study")])
    paired = pd.read_csv(tmp_path / "out/paired_tests.csv")
    assert len(paired) == 6
    monkeypatch.chdir(tmp_path / "study")  # the workflow's directory: the default root
    write_statistics(csv, statistics_files(tmp_path / "out2"), n_boot=50)
    assert (tmp_path / "out2/paired_tests.csv").exists()


def test_missing_predictions_are_named_and_the_root_to_pass_is_suggested(tmp_path, monkeypatch, capsys):
    csv = with_predictions(tmp_path / "study")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        cli.main(["--results", str(csv), "--out", str(tmp_path / "out"), "--n-boot", "50"])
    err = capsys.readouterr().err
    assert info.value.code == 2 and err.count("\n") == 1 and "Traceback" not in err
    assert f"6 predictions file(s) of {csv} not found: {tmp_path}/results/linear/resnet0/cifar10.predictions.npz" in err
    assert f"they are under {tmp_path / 'study'}: pass --root {tmp_path / 'study'}" in err
    assert not (tmp_path / "out").exists()
    (tmp_path / "study/results/linear/resnet1/pets.predictions.npz").unlink()
    with pytest.raises(TableError, match=r"1 predictions file\(s\) .* not found: .*resnet1/pets.predictions.npz; "
                                         r"relative paths are taken relative to .*study; pass --root"):
        write_statistics(csv, statistics_files(tmp_path / "out"), root=tmp_path / "study")
