import h5py
import pandas as pd

from transferbench.analysis.feature_space import tsne_embedding
from transferbench.analysis.feature_space_figures import plot_tsne
from transferbench.analysis.results import read_table
from transferbench.data.splits import Split
from transferbench.workflow import job_context

with job_context(snakemake):
    settings, dataset = snakemake.params.settings, snakemake.params.dataset
    tsne, split_name = settings["tsne"], settings["split"]
    space = pd.read_csv(snakemake.input.space).set_index(["model", "dataset"])["class_separation"]
    top1 = read_table(snakemake.input.results).groupby("model")["imagenet_top1"].first()
    embeddings, titles = {}, {}
    for model, features_file in zip(snakemake.params.models, snakemake.input.features):
        with h5py.File(features_file, "r") as h5:
            features, labels = h5[split_name]["features"][:], h5[split_name]["labels"][:]
        classes = min(tsne["classes"], len(set(labels.tolist())))  # a dataset with fewer classes: all of them
        embeddings[model] = tsne_embedding(features, labels, classes, tsne["seed"], tsne["max_per_class"])
        titles[model] = f"{model}: top-1 {top1[model]:.1f}%, R² {space[(model, dataset)]:.2f}"
    classes = Split.load(snakemake.input.split).classes
    plot_tsne(embeddings, snakemake.output.pdf, snakemake.output.png,
              class_names={i: name for i, name in enumerate(classes)}, titles=titles)
