"""Figure paths the demo never reaches (all its datasets are under 10,000 examples): the dataset-size panel."""

import pandas as pd
import pytest
from PIL import Image

from transferbench.figures import SINGLE_COLUMN, plot_dataset_size

pytestmark = pytest.mark.unit


def test_dataset_size_panel_draws_both_groups_at_single_column_width(tmp_path):
    rows = [{"mode": mode, "subset": subset, "r": r, "ci_low": r - 0.1, "ci_high": min(r + 0.1, 1.0)}
            for mode, small, large in (("linear", 0.97, 0.99), ("scratch", 0.29, 0.86))
            for subset, r in (("n_train<10000", small), ("n_train>=10000", large))]
    plot_dataset_size(pd.DataFrame(rows), tmp_path / "f.pdf", tmp_path / "f.png")
    pdf = (tmp_path / "f.pdf").read_bytes()
    assert b"/FontFile2" in pdf  # TrueType embedded
    width_in = Image.open(tmp_path / "f.png").size[0] / 300
    assert SINGLE_COLUMN * 0.9 < width_in < SINGLE_COLUMN * 1.2
