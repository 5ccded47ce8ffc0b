"""Fetch what compute jobs need but cannot download: hub weights and the paper's datasets.

Compute nodes are often offline. `snakemake --cores 1 prefetch` (the `prefetch` rule, run where there is internet)
fills the Hugging Face cache (timm weights), torchvision's cache (torchvision weights) and the data root (the
paper's datasets, through torchvision's downloaders where torchvision has one). Jobs then run with
HF_HUB_OFFLINE=1 and name what is missing and this command if something was not fetched.

Each item is fetched only when it is not already there; a failure is reported and the others go on.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from transferbench.atomic import atomic_path

log = logging.getLogger(__name__)

BIRDSNAP_LIST = "http://thomasberg.org/datasets/birdsnap/1.1/birdsnap.tgz"
SUN397_PARTITIONS = "https://vision.princeton.edu/projects/2010/SUN/download/Partitions.zip"


def fetch_model(spec) -> str:
    """Download a model's hub weights into the library's cache (nothing to do for checkpoints); returns a line
    saying what was done."""
    if spec.pretrained == "checkpoint":
        from transferbench.models.spec import read_checkpoint

        read_checkpoint(spec.checkpoint)  # there and readable
        return f"{spec.name}: local checkpoint {spec.checkpoint}"
    if spec.pretrained != "hub":
        return f"{spec.name}: weights made by the workflow"
    if spec.torchvision:
        from transferbench.models.tv_adapter import fetch_weights, weights_file

        if weights_file(spec.torchvision).is_file():
            return f"{spec.name}: torchvision weights already in {weights_file(spec.torchvision)}"
        return f"{spec.name}: fetched torchvision weights into {fetch_weights(spec.torchvision)}"
    import timm

    timm.create_model(spec.timm, pretrained=True)  # downloads into the Hugging Face cache (or finds it there)
    return f"{spec.name}: hub weights {spec.timm} in the Hugging Face cache"


def _torchvision_download(source: str, root: Path) -> None:
    from torchvision import datasets as tv

    downloads = {
        "food101": lambda: tv.Food101(root, download=True),
        "cifar10": lambda: tv.CIFAR10(root, download=True),
        "cifar100": lambda: tv.CIFAR100(root, download=True),
        "sun397": lambda: tv.SUN397(root, download=True),
        "fgvc_aircraft": lambda: tv.FGVCAircraft(root, download=True),
        "voc2007": lambda: (tv.VOCDetection(root, year="2007", image_set="trainval", download=True),
                            tv.VOCDetection(root, year="2007", image_set="test", download=True)),
        "dtd": lambda: tv.DTD(root, download=True),
        "oxford_pets": lambda: tv.OxfordIIITPet(root, download=True),
        "caltech101": lambda: tv.Caltech101(root, download=True),
        "flowers102": lambda: tv.Flowers102(root, download=True),
    }
    downloads[source]()


def fetch_dataset(source: str, root, options: dict | None = None, workers: int = 16) -> str:
    """Fill `root` with a paper dataset in the layout its reader expects, unless the reader finds it complete."""
    from torchvision.datasets.utils import download_and_extract_archive

    from transferbench.data.paper import PAPER_DATASETS, MissingDataError, read_paper_dataset

    root = Path(root)
    try:
        read_paper_dataset(source, root, options or {}, seed=0)
        if source != "birdsnap":  # Birdsnap: retry the images that failed last time
            return f"{source}: present under {root}"
    except MissingDataError:
        pass
    root.mkdir(parents=True, exist_ok=True)
    if source == "stanford_cars":
        raise MissingDataError(f"stanford_cars: {PAPER_DATASETS[source].fetch}: {PAPER_DATASETS[source].layout}")
    if source == "birdsnap":
        if not (root / "birdsnap" / "images.txt").is_file():
            download_and_extract_archive(BIRDSNAP_LIST, root)
        failed = fetch_birdsnap_images(root / "birdsnap", workers=workers)
        return f"birdsnap: images under {root / 'birdsnap/download/images'}; {failed} could not be fetched " \
               "(listed in birdsnap/download/failed.txt; the split leaves them out and counts them)"
    _torchvision_download(source, root)
    if source == "sun397":
        _fetch_sun397_partitions(root / "SUN397", download_and_extract_archive)
    read_paper_dataset(source, root, options or {}, seed=0)  # what the jobs will read is complete
    return f"{source}: fetched into {root}"


def _fetch_sun397_partitions(base: Path, download_and_extract_archive) -> None:
    if (base / "Partitions" / "Training_01.txt").is_file():
        return
    download_and_extract_archive(SUN397_PARTITIONS, base)
    if not (base / "Partitions").is_dir():  # an archive without its folder: gather the lists into Partitions/
        (base / "Partitions").mkdir()
        for listing in base.glob("*ing_[0-9][0-9].txt"):
            shutil.move(listing, base / "Partitions" / listing.name)


def _fetch_one(url: str, md5: str, dest: Path, timeout: float) -> str | None:
    """Download `url` to `dest` (atomically) if its MD5 matches; None on success, else why not."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except Exception as error:  # noqa: BLE001 - any failure of one image is recorded, the rest go on
        return f"{type(error).__name__}: {error}"
    if md5 and hashlib.md5(data).hexdigest() != md5:
        return "md5 mismatch (the server sent another file)"
    with atomic_path(dest) as tmp:
        tmp.write_bytes(data)
    return None


def fetch_birdsnap_images(base, workers: int = 16, timeout: float = 30.0) -> int:
    """Download Birdsnap's images from its official list (images.txt: url, md5, path, ...) into download/images/,
    skipping those already there. Many of the URLs are dead: each failure is written to download/failed.txt
    (path, url, reason) and the count is returned."""
    base = Path(base)
    rows = [line.split("\t") for line in (base / "images.txt").read_text().splitlines() if line.strip()]
    header, rows = rows[0], rows[1:]
    url_col, md5_col, path_col = header.index("url"), header.index("md5"), header.index("path")
    todo = [r for r in rows if not (base / "download" / "images" / r[path_col]).is_file()]
    failures, started = [], time.perf_counter()
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = pool.map(lambda r: _fetch_one(r[url_col], r[md5_col], base / "download" / "images" / r[path_col],
                                                 timeout), todo)
        for done, (row, problem) in enumerate(zip(todo, outcomes), start=1):
            if problem:
                failures.append(f"{row[path_col]}\t{row[url_col]}\t{problem}")
            if done % 1000 == 0 or done == len(todo):
                log.info("birdsnap: %d/%d images tried, %d failed, %.0f s", done, len(todo), len(failures),
                         time.perf_counter() - started)
    (base / "download").mkdir(parents=True, exist_ok=True)
    (base / "download" / "failed.txt").write_text("".join(f + "\n" for f in failures))
    return len(failures)


def prefetch(model_specs, datasets: dict, data_root) -> list[str]:
    """Fetch every model's weights and every paper dataset {name: config entry}; returns the problems (empty:
    everything is in place). Each item is logged as it finishes."""
    from transferbench.data.paper import PAPER_DATASETS

    problems = []
    items = [(spec.name, lambda s=spec: fetch_model(s)) for spec in model_specs]
    items += [(name, lambda e=entry: fetch_dataset(e["source"], e.get("root", data_root), e))
              for name, entry in datasets.items() if entry["source"] in PAPER_DATASETS]
    for name, fetch in items:
        try:
            log.info("%s", fetch())
        except Exception as error:  # noqa: BLE001 - reported together at the end
            problems.append(f"{name}: {type(error).__name__}: {error}")
            log.error("%s failed: %s", name, error)
    return problems
