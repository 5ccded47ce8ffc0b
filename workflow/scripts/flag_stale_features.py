import logging
from pathlib import Path

from transferbench.workflow import job_context

with job_context(snakemake):
    reasons = "; ".join(snakemake.params.reasons)
    logging.getLogger("transferbench.features").warning(
        "features of %s on %s were made for something else (%s): recomputing them", snakemake.wildcards.model,
        snakemake.wildcards.dataset, reasons)
    Path(snakemake.output[0]).write_text(reasons + "\n")
