"""The detection jobs: one grid point (train -> val) or the final fit (train + val -> test) of a backbone state x
detector capacity, with the classification jobs' reliability (transferbench.train.loop): the batch of every step
and its flips derive from (seed, step); a checkpoint (model, optimizer, schedule, step) is written every
`checkpoint_every` steps and on SIGTERM, and a restarted job resumes from it and ends where an uninterrupted one
would; a NaN or inf loss stops the run and marks it diverged (metric 0, never chosen).

Protocol: SGD with momentum 0.9 on the trainable parameters, the grid's learning rate and weight decay, a linear
warm-up over `warmup_steps`, then cosine decay to zero over `steps` (the classification modes' schedule); horizontal
flips with probability 0.5. Training learns from the images with at least one box that is not difficult (difficult
boxes are dropped from its targets); evaluation runs on every image of the split and scores with
transferbench.detection.metrics. The final fit saves its test detections in COCO's results format (image_id: the
source's id, an integer where it is one (VOC's '000005' stays a string); category_id: the label 1..K, i.e. the k-th
category in the order of the source's category ids, VOC's classes in the devkit's order; bbox [x, y, w, h]; score).
"""

from __future__ import annotations

import functools
import logging
import math
import time
from pathlib import Path

import numpy as np
import torch

from transferbench.atomic import write_json
from transferbench.detection.data import DetectionDatasetSpec, DetectionImages, DetectionSplit
from transferbench.detection.detector import build_detector
from transferbench.detection.metrics import METRIC_COLUMNS, detection_scores
from transferbench.inference import pick_device
from transferbench.models.spec import ModelSpec
from transferbench.seeding import derive_seed
from transferbench.train.loop import Preempted, _SigtermFlag, batch_indices, lr_factor, resume, save_checkpoint

log = logging.getLogger(__name__)

PHASES = {"grid": (("train",), "val"), "final": (("train", "val"), "test")}


def _collate(items):
    return [i for i, _ in items], [t for _, t in items]


def _training_batch(data: DetectionImages, positions: list[int], step: int, batch_size: int, seed: int):
    """The step's images as floats in [0, 1] with targets (difficult boxes dropped), flipped by (seed, step)."""
    index = batch_indices(step, batch_size, len(positions), seed)
    flips = np.random.default_rng(derive_seed(seed, "flip", step)).random(len(index)) < 0.5
    images, targets = [], []
    for i, flip in zip(index.tolist(), flips):
        pixels, target = data[positions[i]]
        keep = ~target["difficult"]
        boxes = target["boxes"][keep].clone()
        pixels = pixels.float() / 255
        if flip:
            width = pixels.shape[-1]
            pixels = pixels.flip(-1)
            boxes[:, [0, 2]] = width - boxes[:, [2, 0]]
        images.append(pixels)
        targets.append({"boxes": boxes, "labels": target["labels"][keep]})
    return images, targets


@torch.inference_mode()
def detect(detector, data: DetectionImages, device: torch.device, batch_size: int) -> list[dict]:
    """Detections of every image of `data` (numpy boxes, scores, labels), in its order."""
    detector.eval()
    out = []
    for start in range(0, len(data), batch_size):
        images = [data[i][0].float().div(255).to(device) for i in range(start, min(start + batch_size, len(data)))]
        for d in detector(images):
            out.append({k: d[k].float().cpu().numpy() if k != "labels" else d[k].cpu().numpy() for k in
                        ("boxes", "scores", "labels")})
    return out


def score(detections: list[dict], data: DetectionImages, num_classes: int, metric: str) -> dict[str, float]:
    truth = [{"boxes": im.boxes, "labels": im.labels, "difficult": im.difficult} for im in data.images]
    sizes = [(im.height, im.width) for im in data.images]
    return detection_scores(detections, truth, sizes, num_classes, metric)


def save_detections(path, detections: list[dict], data: DetectionImages) -> None:
    """COCO's results format, one entry per detection, with the dataset's own image ids."""
    rows = []
    for image, d in zip(data.images, detections):
        # COCO's ids are integers; VOC's file stems ('000005') stay as they are
        image_id = int(image.image_id) if str(int(image.image_id) if image.image_id.isdigit() else "") == \
            image.image_id else image.image_id
        for box, s, label in zip(d["boxes"], d["scores"], d["labels"]):
            x1, y1, x2, y2 = (float(v) for v in box)
            rows.append({"image_id": image_id, "category_id": int(label),
                         "bbox": [round(v, 2) for v in (x1, y1, x2 - x1, y2 - y1)], "score": round(float(s), 5)})
    write_json(path, rows)


def run_detection(state: str, model_spec: ModelSpec, dataset_spec: DetectionDatasetSpec, split_file, capacity: dict,
                  settings: dict, lr: float, weight_decay: float, phase: str, seed: int, out_json, checkpoint,
                  predictions_out=None, point: str | None = None, device: str = "auto") -> dict:
    """Train one configuration and write its JSON (and, for the final phase, its test detections)."""
    train_names, eval_name = PHASES[phase]
    spec = model_spec.with_preprocessing()
    split = DetectionSplit.load(split_file)
    num_classes = len(split.classes)
    parts = {}  # the source's annotations, read once for both (a grid point's train and val share a part)
    train_data = DetectionImages(dataset_spec, split, train_names, parts)
    eval_data = DetectionImages(dataset_spec, split, (eval_name,), parts)
    positions = train_data.trainable()
    if not positions:
        raise ValueError(f"{dataset_spec.name}: no {'+'.join(train_names)} image has a box to learn from")
    left_out = len(train_data) - len(positions)
    device = pick_device(device)
    torch.manual_seed(seed)
    detector, description = build_detector(spec, num_classes, state, capacity, settings, settings["min_size"],
                                           settings["max_size"])
    detector.to(device)
    log.info("%s %s on %s (%s): lr %g, weight decay %g, %d train images (%d without boxes left out) / %d %s images; "
             "%s trainable parameters", state, spec.name, dataset_spec.name, phase, lr, weight_decay, len(positions),
             left_out, len(eval_data), eval_name, f"{description['trainable_params']:,}")
    steps, batch_size = settings["steps"], settings["batch_size"]
    params = [p for p in detector.parameters() if p.requires_grad]
    optimizer = torch.optim.SGD(params, lr=lr, momentum=settings.get("momentum", 0.9), weight_decay=weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, functools.partial(lr_factor, settings, steps))
    checkpoint = Path(checkpoint) if checkpoint else None
    fresh = {"step": 0, "wall_time_s": 0.0, "losses": []}
    state_dict = resume(checkpoint, detector, optimizer, schedule, device, fresh, steps)

    checkpoint_every = settings.get("checkpoint_every", steps)
    log_every = max(1, steps // 10)
    diverged, started, first = False, time.perf_counter(), state_dict["step"]
    detector.train()
    with _SigtermFlag() as sigterm:
        while state_dict["step"] < steps:
            step = state_dict["step"]
            # the RPN's and the box head's samplers draw from torch's global generator: seeded by (seed, step), so
            # a resumed run draws what an uninterrupted one would
            torch.manual_seed(derive_seed(seed, "detection_step", step))
            images, targets = _training_batch(train_data, positions, step, batch_size, seed)
            losses = detector([i.to(device) for i in images],
                              [{k: v.to(device) for k, v in t.items()} for t in targets])
            loss = sum(losses.values())
            value = float(loss.detach())
            if not math.isfinite(value):
                log.warning("loss is %s at step %d: run diverged", value, step)
                diverged = True
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            state_dict["step"] = done = step + 1
            if done % log_every == 0 or done == steps:
                state_dict["losses"].append({"step": done, "loss": value,
                                             **{k: float(v.detach()) for k, v in losses.items()}})
                rate = (done - first) * batch_size / max(time.perf_counter() - started, 1e-9)
                log.info("step %d/%d loss %.4f lr %.3g %.1f img/s eta %.0fs", done, steps, value,
                         schedule.get_last_lr()[0], rate, (steps - done) * batch_size / max(rate, 1e-9))
            if sigterm.raised or (done % checkpoint_every == 0 and done < steps):
                state_dict["wall_time_s"] += time.perf_counter() - started
                started, first = time.perf_counter(), done
                save_checkpoint(checkpoint, detector, optimizer, schedule, state_dict)
                if sigterm.raised:
                    raise Preempted(f"stopped by SIGTERM at step {done}/{steps}; checkpoint {checkpoint} saved; "
                                    "rerun the job to resume")
    wall_time = state_dict["wall_time_s"] + time.perf_counter() - started
    metric = dataset_spec.metric
    if diverged:
        values, detections = dict.fromkeys(METRIC_COLUMNS[metric], 0.0), None
    else:
        detections = detect(detector, eval_data, device, batch_size)
        values = score(detections, eval_data, num_classes, metric)
    log.info("%s: %s", eval_name, ", ".join(f"{k} {v:.4f}" for k, v in values.items()))
    summary = {"mode": state, "phase": phase, "point": point, "model": spec.name, "dataset": dataset_spec.name,
               "lr": lr, "weight_decay": weight_decay, "metric": metric, "value": values[metric], "metrics": values,
               "eval_split": eval_name, "n_train": len(positions), "n_eval": len(eval_data),
               "left_out_without_boxes": left_out, "diverged": diverged, "steps": state_dict["step"],
               "wall_time_s": wall_time, "losses": state_dict["losses"], "capacity": capacity, **description}
    if predictions_out is not None:
        if detections is None:
            raise RuntimeError(f"the final {state} detection fit of {spec.name} on {dataset_spec.name} diverged at "
                               f"lr {lr}: no test detections (lower the learning rate)")
        save_detections(predictions_out, detections, eval_data)
    write_json(out_json, summary)
    if checkpoint is not None and checkpoint.exists():
        checkpoint.unlink()
    return summary
