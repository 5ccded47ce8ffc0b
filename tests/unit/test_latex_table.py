import pandas as pd
import pytest

from transferbench.analysis.latex_table import results_latex

pytestmark = pytest.mark.unit


def test_booktabs_table_bolds_the_best_and_escapes_names():
    rows = [("net_a", "cifar_10", "linear", 0.812, 70.0), ("net_b", "cifar_10", "linear", 0.9, 80.0),
            ("net_a", "cifar_10", "finetune", 0.95, 70.0), ("net_b", "cifar_10", "finetune", 0.94, 80.0)]
    table = pd.DataFrame(rows, columns=["model", "dataset", "mode", "value", "imagenet_top1"])
    tex = results_latex(table)
    lines = tex.splitlines()
    assert lines[0] == r"\begin{tabular}{l r r }" and r"\toprule" in lines and r"\bottomrule" in lines
    assert r"Model & Top-1 & cifar\_10 \\" in lines
    linear = lines.index(r"\multicolumn{3}{l}{\emph{Logistic regression}} \\")
    assert lines[linear + 1:linear + 3] == [r"net\_a & 70.0 & 81.2 \\", r"net\_b & 80.0 & \textbf{90.0} \\"]
    finetune = lines.index(r"\multicolumn{3}{l}{\emph{Fine-tuned}} \\")
    assert lines[finetune + 1] == r"net\_a & 70.0 & \textbf{95.0} \\"
