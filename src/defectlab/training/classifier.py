"""Image classification into "ok" and defect classes, on pretrained EfficientNet-Lite0.

Training is fast on a CPU because the pretrained network is split in two:

1. The frozen trunk (stem and all but the last ``plan.fine_tune_blocks`` blocks)
   runs once per training image and augmented copy; its outputs are cached in
   float16. Augmented copies are flips, a 90-degree rotation on square inputs,
   and a small brightness and contrast change (``plan.augmentations``).
2. Two heads are trained on the cache:
   * a linear head: multinomial logistic regression on the frozen network's
     pooled 1280-value features;
   * a fine-tuned head: the last blocks, the head convolution and a new linear
     layer, trained with AdamW, a cosine learning-rate schedule and a class-weighted
     cross-entropy loss (``plan.class_weights``).
   The head with the lower loss on the dev images is kept (``plan.fine_tune`` can
   force one).

An image is called defective when its defect score, ``1 - p(ok)``, is above the
model's ``threshold``. The threshold starts at 0.5 and is lowered on the dev
images when that reduces ``plan.escape_cost * escapes + overkills``, so escapes
are avoided first; it is never raised above 0.5. A defective image gets the most
probable defect class as its label.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.linear_model import LogisticRegression
from torch import nn

from defectlab.data.pixels import Subset
from defectlab.errors import InvalidInputError, TrainingError
from defectlab.models.efficientnet import (
    FEATURE_DIM,
    NUM_BLOCKS,
    EfficientNetLite0,
    backbone_record,
    check_saved_model,
    load_efficientnet_lite0,
)
from defectlab.models.preprocess import Preprocessing, fit_preprocessing, to_tensor
from defectlab.runtime.engine import defect_scores
from defectlab.training.anomaly import ProgressCallback
from defectlab.training.autotune import OK_CLASS, Augmentations, TrainingPlan
from defectlab.training.curves import EpochCallback

__all__ = ["ClassifierModel", "train_classifier"]

logger = logging.getLogger(__name__)

_FORMAT = "defectlab.classification.efficientnet-lite0"
_FORMAT_VERSION = 1
_COPIES = 4
_DEV_FRACTION = 0.15
_PREDICT_BATCH = 4
_LOGISTIC_C = (0.1, 0.3, 1.0)
_LOWEST_THRESHOLD = 0.05


class ClassifierModel:
    """A trained image classifier.

    Args:
        preprocessing: How pixels become network input.
        class_names: Class per output index; ``"ok"`` is the no-defect class.
        network: EfficientNet-Lite0 whose ``_fc`` has ``len(class_names)`` outputs.
        first_tuned_block: Index of the first block whose weights differ from the
            pretrained ones (16 when only the linear layer was trained).
        threshold: Defect score ``1 - p(ok)`` above which an image is defective, in 0..1.
        loss_history: One dict per fine-tuning epoch with ``epoch``, ``train_loss``
            and ``dev_loss`` (mean class-weighted cross-entropy) and ``dev_accuracy``,
            for loss curves; empty when no fine-tuning ran.
        head: ``"linear"`` or ``"fine_tuned"``, the head that was kept.
    """

    def __init__(
        self,
        preprocessing: Preprocessing,
        class_names: Sequence[str],
        network: EfficientNetLite0,
        *,
        first_tuned_block: int,
        threshold: float = 0.5,
        loss_history: Sequence[dict[str, float]] = (),
        head: str = "linear",
    ) -> None:
        self.preprocessing = preprocessing
        self.class_names = list(class_names)
        self.network = network.eval()
        self.first_tuned_block = int(first_tuned_block)
        self.threshold = float(threshold)
        self.loss_history = [dict(entry) for entry in loss_history]
        self.head = head

    def predict_proba(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Return class probabilities, float32 ``(N, C)`` with rows summing to 1.

        Args:
            images: Pixels as ``decode_image`` returns them, ``(H, W)`` or ``(H, W, 3)``,
                uint8 or uint16; sizes may differ.

        Raises:
            InvalidInputError: An image has an unsupported shape or dtype.
        """
        rows = []
        with torch.inference_mode():
            for start in range(0, len(images), _PREDICT_BATCH):
                batch = torch.stack([to_tensor(images[i], self.preprocessing) for i in range(start, min(start + _PREDICT_BATCH, len(images)))])
                rows.append(torch.softmax(self.network(batch.contiguous(memory_format=torch.channels_last)), dim=1))
        if not rows:
            return np.zeros((0, len(self.class_names)), dtype=np.float32)
        return torch.cat(rows).numpy().astype(np.float32)

    def defect_scores(self, probabilities: np.ndarray) -> np.ndarray:
        """Return ``1 - p(ok)`` per row of ``probabilities`` ``(N, C)``; 1 when there is no ok class."""
        return defect_scores(probabilities, self.class_names).astype(np.float32)

    def predict(self, images: Sequence[np.ndarray]) -> list[str]:
        """Return one class name per image: ``"ok"`` unless the defect score is above ``threshold``."""
        probabilities = self.predict_proba(images)
        defective = self.defect_scores(probabilities) > self.threshold
        return [_label(row, is_defect, self.class_names) for row, is_defect in zip(probabilities, defective)]

    def to_dict(self) -> dict[str, Any]:
        """Return the model as tensors and plain values, for ``torch.save`` and ``torch.load(weights_only=True)``.

        Only the weights that differ from the pretrained network are stored.
        """
        tuned = {
            name: tensor.clone()
            for name, tensor in self.network.state_dict().items()
            if _is_tuned(name, self.first_tuned_block)
        }
        return {
            "format": _FORMAT,
            "version": _FORMAT_VERSION,
            "preprocessing": self.preprocessing.to_dict(),
            "class_names": list(self.class_names),
            "first_tuned_block": self.first_tuned_block,
            "tuned_weights": tuned,
            "threshold": self.threshold,
            "head": self.head,
            "loss_history": [dict(entry) for entry in self.loss_history],
            "backbone": backbone_record(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ClassifierModel:
        """Rebuild a model saved with ``to_dict``.

        Raises:
            InvalidInputError: The data is not a saved classification model of this
                version, or the installed backbone weights differ from the ones it
                was trained on.
        """
        check_saved_model(data, format=_FORMAT, version=_FORMAT_VERSION, writer="ClassifierModel.to_dict()")
        network = load_efficientnet_lite0()
        network._fc = nn.Linear(FEATURE_DIM, len(data["class_names"]))
        network.load_state_dict(data["tuned_weights"], strict=False)
        return cls(
            Preprocessing.from_dict(data["preprocessing"]),
            data["class_names"],
            network.to(memory_format=torch.channels_last),
            first_tuned_block=int(data["first_tuned_block"]),
            threshold=float(data["threshold"]),
            loss_history=data.get("loss_history", []),
            head=str(data.get("head", "linear")),
        )


def _label(probabilities: np.ndarray, is_defect: bool, class_names: list[str]) -> str:
    if not is_defect or OK_CLASS not in class_names:
        return OK_CLASS if OK_CLASS in class_names and not is_defect else class_names[int(np.argmax(probabilities))]
    ranked = [index for index in np.argsort(-probabilities) if class_names[index] != OK_CLASS]
    return class_names[ranked[0]]


def _is_tuned(name: str, first_tuned_block: int) -> bool:
    if name.startswith(("_conv_head", "_bn1", "_fc")):
        return first_tuned_block < NUM_BLOCKS or name.startswith("_fc")
    if name.startswith("_blocks."):
        return int(name.split(".")[1]) >= first_tuned_block
    return False


def train_classifier(
    images: Sequence[np.ndarray],
    labels: Sequence[int],
    class_names: Sequence[str],
    plan: TrainingPlan,
    *,
    dev_images: Sequence[np.ndarray] = (),
    dev_labels: Sequence[int] | None = None,
    progress: ProgressCallback | None = None,
    on_epoch: EpochCallback | None = None,
) -> ClassifierModel:
    """Train a classifier on labeled images and choose its head and threshold on dev images.

    Args:
        images: Training pixels, ``(H, W)`` or ``(H, W, 3)``, uint8 or uint16; sizes
            may differ. Each image is read once, so a lazy sequence keeps memory bounded.
        labels: Class index per training image, in ``0 .. len(class_names) - 1``.
        class_names: Class per index; ``"ok"`` is the no-defect class.
        plan: Settings from ``plan_training``.
        dev_images: Images that choose the head, the best epoch and the threshold.
            When empty, a stratified ``15 %`` of the training images is held out.
        dev_labels: Class index per dev image.
        progress: Called with (done, total, message) as work proceeds.
        on_epoch: Called with each fine-tuning epoch's ``loss_history`` entry.

    Raises:
        InvalidInputError: Labels do not match the images or the class names.
        TrainingError: Fewer than two classes have training images.
    """
    report = progress or (lambda done, total, message: None)
    train_labels = _check_labels(labels, len(images), class_names, "training")
    if len(dev_images) > 0:
        dev_label_array = _check_labels(dev_labels if dev_labels is not None else [], len(dev_images), class_names, "dev")
        train_view: Sequence[np.ndarray] = images
    else:
        train_index, dev_index = _split_dev(train_labels, seed=plan.seed)
        train_view, dev_images = Subset(images, train_index), Subset(images, dev_index)
        train_labels, dev_label_array = train_labels[train_index], train_labels[dev_index]

    prep = fit_preprocessing((train_view[i] for i in range(len(train_view))), plan.input_size, seed=plan.seed,
                             stretch=plan.stretch)
    network = load_efficientnet_lite0()
    split = NUM_BLOCKS - plan.fine_tune_blocks
    copies = _copies(plan.augmentations, plan.input_size)
    total = len(train_view) + len(dev_images) + plan.epochs + 1
    cache = _cache_trunk(network, train_view, prep, split, copies, plan, lambda done: report(done, total, "Extracting features"))
    dev_cache = _cache_trunk(network, dev_images, prep, split, ["identity"], plan, lambda done: report(len(train_view) + done, total, "Extracting dev features"))
    data = _Data(len(copies), cache, np.repeat(train_labels, len(copies)), dev_cache, dev_label_array, _weights(class_names, plan))

    model = _select_head(network, data, class_names, prep, split, plan, lambda epoch: report(len(train_view) + len(dev_images) + epoch, total, "Fine-tuning"), on_epoch)
    dev_probabilities = _probabilities_from_trunk(model.network, dev_cache, split)
    model.threshold = choose_defect_threshold(model, dev_probabilities, dev_label_array, escape_cost=plan.escape_cost)
    logger.info("Classifier head %s, defect threshold %.3f on %d dev images", model.head, model.threshold, len(dev_label_array))
    report(total, total, "Done")
    return model


@dataclass
class _Data:
    """Cached trunk outputs, float16 ``(rows, C, h, w)``, with a label per row and class weights.

    Training rows hold ``copies`` augmented copies of each image next to each other.
    """

    copies: int
    train: torch.Tensor
    train_labels: np.ndarray
    dev: torch.Tensor
    dev_labels: np.ndarray
    weights: torch.Tensor


def _check_labels(labels: Sequence[int] | None, count: int, class_names: Sequence[str], role: str) -> np.ndarray:
    array = np.asarray(labels if labels is not None else [], dtype=np.int64).reshape(-1)
    if array.shape != (count,):
        raise InvalidInputError(f"{role} labels have {array.size} entries for {count} images; pass one class index per image")
    bad = array[(array < 0) | (array >= len(class_names))]
    if bad.size:
        raise InvalidInputError(
            f"{role} labels {sorted(set(bad.tolist()))[:5]} are invalid; class indices must be 0 to {len(class_names) - 1} "
            f"for classes {list(class_names)}"
        )
    if role == "training" and np.unique(array).size < 2:
        raise TrainingError(
            f"training images cover {np.unique(array).size} class(es); a classifier needs at least two, "
            "such as 'ok' and one defect class"
        )
    return array


def _split_dev(labels: np.ndarray, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Hold out 15 % of each class with 3 or more images; return (train indices, dev indices)."""
    rng = np.random.default_rng(seed)
    dev = []
    for name in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == name))
        if members.size >= 3:
            dev.extend(members[: max(1, round(_DEV_FRACTION * members.size))].tolist())
    dev_index = np.array(sorted(dev), dtype=np.int64)
    train_index = np.setdiff1d(np.arange(labels.size), dev_index)
    logger.info("No dev images given; holding out %d of %d training images", dev_index.size, labels.size)
    return train_index, dev_index


def _weights(class_names: Sequence[str], plan: TrainingPlan) -> torch.Tensor:
    return torch.tensor([float(plan.class_weights.get(name, 1.0)) for name in class_names], dtype=torch.float32)


def _copies(augmentations: Augmentations, input_size: tuple[int, int]) -> list[str]:
    """Return up to four geometric copies allowed by the plan, ``identity`` first."""
    names = ["identity"]
    if augmentations.horizontal_flip:
        names.append("horizontal_flip")
    if augmentations.vertical_flip:
        names.append("vertical_flip")
    if augmentations.rotate_90 and input_size[0] == input_size[1]:
        names.append("rotate_90")
    elif augmentations.horizontal_flip and augmentations.vertical_flip:
        names.append("rotate_180")
    return names[:_COPIES]


def _augment(batch: torch.Tensor, copy_name: str, prep: Preprocessing, augmentations: Augmentations, rng: np.random.Generator) -> torch.Tensor:
    """Apply one geometric copy and, except for ``identity``, a small random brightness and contrast change."""
    flips = {"horizontal_flip": (3,), "vertical_flip": (2,), "rotate_180": (2, 3)}
    if copy_name in flips:
        batch = batch.flip(flips[copy_name])
    elif copy_name == "rotate_90":
        batch = batch.rot90(1, dims=(2, 3))
    if copy_name == "identity":
        return batch

    mean = torch.tensor(prep.mean, dtype=torch.float32)[:, None, None]
    std = torch.tensor(prep.std, dtype=torch.float32)[:, None, None]
    count = batch.shape[0]
    shift = torch.as_tensor(rng.uniform(-augmentations.brightness, augmentations.brightness, count), dtype=torch.float32)
    scale = torch.as_tensor(1.0 + rng.uniform(-augmentations.contrast, augmentations.contrast, count), dtype=torch.float32)
    # Work on the 0..1 window so that the change is a fraction of it, as the plan states.
    window = batch * std + mean
    window = ((window - 0.5) * scale[:, None, None, None] + 0.5 + shift[:, None, None, None]).clamp(0.0, 1.0)
    return (window - mean) / std


def _cache_trunk(
    network: EfficientNetLite0,
    images: Sequence[np.ndarray],
    prep: Preprocessing,
    split: int,
    copies: Sequence[str],
    plan: TrainingPlan,
    report: Callable[[int], None],
) -> torch.Tensor:
    """Run the frozen trunk on every image and copy; float16 ``(N * copies, C, h, w)``, copies of one image adjacent."""
    rng = np.random.default_rng(plan.seed)
    outputs = []
    with torch.inference_mode():
        for start in range(0, len(images), _PREDICT_BATCH):
            stop = min(start + _PREDICT_BATCH, len(images))
            batch = torch.stack([to_tensor(images[i], prep) for i in range(start, stop)])
            per_copy = []
            for name in copies:
                x = _augment(batch, name, prep, plan.augmentations, rng).contiguous(memory_format=torch.channels_last)
                per_copy.append(network.forward_blocks(network.forward_stem(x), stop=split).half())
            outputs.append(torch.stack(per_copy, dim=1).flatten(0, 1).contiguous())
            report(stop)
    return torch.cat(outputs) if outputs else torch.zeros(0)


def _probabilities_from_trunk(network: EfficientNetLite0, cache: torch.Tensor, split: int) -> np.ndarray:
    """Finish the forward pass from cached trunk outputs; float32 ``(N, C)`` probabilities."""
    rows = []
    network.eval()
    with torch.inference_mode():
        for start in range(0, cache.shape[0], 64):
            x = network.forward_blocks(cache[start : start + 64].float(), start=split)
            rows.append(torch.softmax(network.forward_logits(network.forward_pooled(x)), dim=1))
    return torch.cat(rows).numpy() if rows else np.zeros((0, network._fc.out_features), dtype=np.float32)


def _weighted_loss(probabilities: np.ndarray, labels: np.ndarray, weights: torch.Tensor) -> float:
    """Class-weighted mean negative log-likelihood, the loss that training minimizes."""
    if labels.size == 0:
        return math.nan
    picked = np.clip(probabilities[np.arange(labels.size), labels], 1e-7, 1.0)
    sample_weights = weights.numpy()[labels]
    return float(np.sum(-np.log(picked) * sample_weights) / np.sum(sample_weights))


def _select_head(
    network: EfficientNetLite0,
    data: _Data,
    class_names: Sequence[str],
    prep: Preprocessing,
    split: int,
    plan: TrainingPlan,
    report: Callable[[int], None],
    on_epoch: EpochCallback | None = None,
) -> ClassifierModel:
    """Train the heads the plan allows and keep the one with the lower dev loss."""
    candidates: list[tuple[float, ClassifierModel]] = []
    linear = None
    if plan.fine_tune != "always" or data.dev_labels.size == 0:
        linear = _fit_linear_head(network, data, len(class_names), split)
        model = ClassifierModel(prep, class_names, linear, first_tuned_block=NUM_BLOCKS, head="linear")
        candidates.append((_weighted_loss(_probabilities_from_trunk(linear, data.dev, split), data.dev_labels, data.weights), model))
    if plan.fine_tune != "never":
        tuned, history = _fine_tune(linear if linear is not None else network, data, len(class_names), split, plan, report,
                                    on_epoch)
        model = ClassifierModel(prep, class_names, tuned, first_tuned_block=split, head="fine_tuned", loss_history=history)
        best = min(entry["dev_loss"] for entry in history) if history and data.dev_labels.size else math.inf
        candidates.append((best, model))

    for loss, model in candidates:
        logger.info("Dev loss of the %s head: %.4f", model.head, loss)
    chosen = min(candidates, key=lambda pair: (math.isnan(pair[0]), pair[0]))[1]
    if chosen.head == "linear" and len(candidates) > 1:
        chosen.loss_history = candidates[1][1].loss_history
    return chosen


def _pooled_features(network: EfficientNetLite0, cache: torch.Tensor, split: int) -> np.ndarray:
    rows = []
    with torch.inference_mode():
        for start in range(0, cache.shape[0], 64):
            rows.append(network.forward_pooled(network.forward_blocks(cache[start : start + 64].float(), start=split)))
    return torch.cat(rows).numpy().astype(np.float64)


def _fit_linear_head(network: EfficientNetLite0, data: _Data, num_classes: int, split: int) -> EfficientNetLite0:
    """Fit logistic regression on pooled frozen features; return a network copy with it as ``_fc``."""
    features = _pooled_features(network, data.train, split)
    mean, scale = features.mean(axis=0), features.std(axis=0) + 1e-6
    standardized = (features - mean) / scale
    dev_standardized = (_pooled_features(network, data.dev, split) - mean) / scale
    class_weight = {index: float(data.weights[index]) for index in range(num_classes)}

    best = None
    for c in _LOGISTIC_C:
        fitted = LogisticRegression(C=c, class_weight=class_weight, max_iter=2000).fit(standardized, data.train_labels)
        probabilities = _full_proba(fitted, dev_standardized, num_classes)
        loss = _weighted_loss(probabilities, data.dev_labels, data.weights) if data.dev_labels.size else -c
        if best is None or loss < best[0]:
            best = (loss, fitted)

    head = copy.deepcopy(network)
    head._fc = nn.Linear(FEATURE_DIM, num_classes)
    weight, bias = _full_coefficients(best[1], num_classes)
    # Fold the standardization into the layer: w . (x - mean) / scale + b = (w / scale) . x + b - (w / scale) . mean.
    folded = weight / scale
    head._fc.weight.data = torch.tensor(folded, dtype=torch.float32)
    head._fc.bias.data = torch.tensor(bias - folded @ mean, dtype=torch.float32)
    return head.eval()


def _full_coefficients(fitted: LogisticRegression, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (weight (C, 1280), bias (C,)), with very negative logits for classes absent from training."""
    weight = np.zeros((num_classes, fitted.coef_.shape[1]))
    bias = np.full(num_classes, -30.0)
    if fitted.coef_.shape[0] == 1:  # two classes: sklearn stores one row for the second class
        weight[fitted.classes_[1]], bias[fitted.classes_[1]] = fitted.coef_[0], fitted.intercept_[0]
        bias[fitted.classes_[0]] = 0.0
    else:
        weight[fitted.classes_], bias[fitted.classes_] = fitted.coef_, fitted.intercept_
    return weight, bias


def _full_proba(fitted: LogisticRegression, features: np.ndarray, num_classes: int) -> np.ndarray:
    probabilities = np.zeros((features.shape[0], num_classes))
    probabilities[:, fitted.classes_] = fitted.predict_proba(features)
    return probabilities


def _fine_tune(
    start: EfficientNetLite0,
    data: _Data,
    num_classes: int,
    split: int,
    plan: TrainingPlan,
    report: Callable[[int], None],
    on_epoch: EpochCallback | None = None,
) -> tuple[EfficientNetLite0, list[dict[str, float]]]:
    """Train blocks ``split ..`` and the head on cached trunk outputs; keep the epoch with the lowest dev loss."""
    with torch.random.fork_rng():
        torch.manual_seed(plan.seed)  # the new layer's initial weights and dropout
        network = copy.deepcopy(start)
        if network._fc.out_features != num_classes:
            network._fc = nn.Linear(FEATURE_DIM, num_classes)
        optimizer, scheduler = _optimizer(network, split, plan, data)
        generator = torch.Generator().manual_seed(plan.seed)
        history, best = [], (math.inf, copy.deepcopy(network.state_dict()))
        for epoch in range(plan.epochs):
            train_loss = _train_epoch(network, data, split, optimizer, scheduler, plan.batch_size, generator)
            probabilities = _probabilities_from_trunk(network, data.dev, split)
            dev_loss = _weighted_loss(probabilities, data.dev_labels, data.weights)
            accuracy = float(np.mean(probabilities.argmax(axis=1) == data.dev_labels)) if data.dev_labels.size else math.nan
            history.append({"epoch": epoch + 1, "train_loss": train_loss, "dev_loss": dev_loss, "dev_accuracy": accuracy})
            if not dev_loss >= best[0]:  # also true for the first NaN, so a model is always kept
                best = (dev_loss, copy.deepcopy(network.state_dict()))
            if on_epoch is not None:
                on_epoch(history[-1])
            report(epoch + 1)
    network.load_state_dict(best[1])
    return network.eval(), history


def _optimizer(
    network: EfficientNetLite0, split: int, plan: TrainingPlan, data: _Data
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """Return AdamW over blocks ``split ..`` and the head, with a one-cycle cosine schedule."""
    trainable = [network._blocks[split:], network._conv_head, network._bn1, network._fc]
    parameters = [p for module in trainable for p in module.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=plan.learning_rate, weight_decay=1e-4)
    steps_per_epoch = max(1, math.ceil(data.train.shape[0] // data.copies / plan.batch_size))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=plan.learning_rate, total_steps=plan.epochs * steps_per_epoch, pct_start=0.1
    )
    return optimizer, scheduler


def _train_epoch(
    network: EfficientNetLite0,
    data: _Data,
    split: int,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """Run one epoch over one random copy of each training image; return the mean weighted loss."""
    network.train()
    for module in network.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.eval()  # few images per class: keep the pretrained running statistics
    images = data.train.shape[0] // data.copies
    chosen = torch.arange(images) * data.copies + torch.randint(data.copies, (images,), generator=generator)
    order = chosen[torch.randperm(images, generator=generator)]
    labels = torch.as_tensor(data.train_labels)

    total, weight_sum = 0.0, 0.0
    for start in range(0, images, batch_size):
        index = order[start : start + batch_size]
        x = network.forward_blocks(data.train[index].float(), start=split)
        logits = network.forward_logits(network.forward_pooled(x))
        loss = F.cross_entropy(logits, labels[index], weight=data.weights)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        scheduler.step()
        batch_weight = float(data.weights[labels[index]].sum())
        total += float(loss.detach()) * batch_weight
        weight_sum += batch_weight
    network.eval()
    return total / max(weight_sum, 1e-12)


def choose_defect_threshold(
    model: ClassifierModel, probabilities: np.ndarray, labels: np.ndarray, *, escape_cost: float
) -> float:
    """Return the defect-score threshold in ``[0.05, 0.5]`` with the lowest dev cost.

    The cost is ``escape_cost * escapes + overkills``; an image is defective when
    its score ``1 - p(ok)`` is above the threshold. Candidates are 0.5 and the
    midpoints between neighbouring dev scores; of equal costs the highest wins, so
    the threshold leaves 0.5 only when that removes an escape or an overkill. The
    floor of 0.05 keeps one dev image from making the model reject most good parts.
    """
    if OK_CLASS not in model.class_names or labels.size == 0:
        return 0.5
    scores = model.defect_scores(probabilities).astype(np.float64)
    is_good = labels == model.class_names.index(OK_CLASS)
    good, defective = np.sort(scores[is_good]), np.sort(scores[~is_good])
    if defective.size == 0:
        return 0.5

    points = np.unique(np.concatenate([scores, [_LOWEST_THRESHOLD, 0.5]]))
    points = points[(points >= _LOWEST_THRESHOLD) & (points <= 0.5)]
    candidates = np.concatenate([[0.5], ((points[1:] + points[:-1]) / 2.0)[::-1]])
    escapes = np.searchsorted(defective, candidates, side="right")
    overkills = good.size - np.searchsorted(good, candidates, side="right")
    return float(candidates[int(np.argmin(escape_cost * escapes + overkills))])
