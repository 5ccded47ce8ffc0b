from transferbench.analysis.latex_table import write_results_latex
from transferbench.analysis.results import read_table
from transferbench.workflow import job_context

with job_context(snakemake):
    write_results_latex(read_table(snakemake.input[0]), snakemake.output[0])
