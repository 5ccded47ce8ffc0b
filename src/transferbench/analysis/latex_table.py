"""The results table for a paper: LaTeX (booktabs), one block per mode, models in rows (sorted by upstream top-1),
datasets in columns, values in percent with one decimal; the best model per dataset and mode in bold.

Hand-written rather than pandas' Styler.to_latex: that needs jinja2 at run time and has no per-block midrules.
"""

from __future__ import annotations

import pandas as pd

from transferbench.atomic import atomic_path

MODE_NAMES = {"linear": "Logistic regression", "knn": "k-nearest neighbours", "finetune": "Fine-tuned",
              "bit": "BiT-HyperRule", "scratch": "Random init."}
SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{",
           "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def escape(text) -> str:
    return "".join(SPECIAL.get(ch, ch) for ch in str(text))


def results_latex(table: pd.DataFrame) -> str:
    datasets = sorted(table["dataset"].unique())
    models = table.groupby("model")["imagenet_top1"].first().sort_values()
    modes = [m for m in MODE_NAMES if m in set(table["mode"])] + sorted(set(table["mode"]) - set(MODE_NAMES))
    lines = [r"\begin{tabular}{l r " + "r " * len(datasets) + "}", r"\toprule",
             " & ".join(["Model", "Top-1"] + [escape(d) for d in datasets]) + r" \\"]
    for mode in modes:
        part = table[table["mode"] == mode].pivot_table(index="model", columns="dataset", values="value")
        best = part.max()
        lines += [r"\midrule", rf"\multicolumn{{{len(datasets) + 2}}}{{l}}{{\emph{{{MODE_NAMES.get(mode, mode)}}}}} \\"]
        for model, top1 in models.items():
            cells = []
            for d in datasets:
                value = part.at[model, d] if model in part.index and d in part.columns else float("nan")
                text = "--" if pd.isna(value) else f"{100 * value:.1f}"
                cells.append(rf"\textbf{{{text}}}" if not pd.isna(value) and value == best[d] else text)
            lines.append(" & ".join([escape(model), f"{top1:.1f}"] + cells) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", ""]
    return "\n".join(lines)


def write_results_latex(table: pd.DataFrame, out_tex) -> None:
    with atomic_path(out_tex) as tmp:
        with open(tmp, "w") as f:
            f.write(results_latex(table))
