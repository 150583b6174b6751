"""Every default of edgekd in one place (as Ultralytics keeps its default.yaml).

Modules and the CLI read their defaults from here, so a user looking for "what does edgekd do by
default" reads one file. Values are plain dataclasses; the CLI overrides fields by name.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

# Where Debian's `dataset-fashion-mnist` package puts its IDX files.
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

# Fraction of the training pool held out for validation; test sets stay as the dataset ships them.
VAL_FRACTION = 0.1
# Datasets without an official test split (digits, mnist-5k, image folders) are split train/val/test.
TEST_FRACTION = 0.2
DEFAULT_SEED = 0
# Splits (and the labeled subset of a low-label run) use a fixed seed, so runs with different training
# seeds are measured on the same images.
SPLIT_SEED = 0


@dataclass
class TrainConfig:
    """Optimisation settings shared by `train`, `distill` and `tune`."""

    epochs: int = 10
    batch_size: int = 128
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"  # cosine | constant
    augment: bool = False  # random crop (pad 2) + horizontal flip, applied per sample on the fly
    label_smoothing: float = 0.0
    seed: int = DEFAULT_SEED  # initialisation, batch order, augmentation
    threads: int = 0  # 0 = torch's default
    eval_batch_size: int = 1024

    def with_overrides(self, **overrides) -> TrainConfig:
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


# Detectors train from scratch with AdamW and augmentation; tiny heads want far more steps than classifiers.
DETECTION_TRAIN = TrainConfig(epochs=30, batch_size=32, optimizer="adamw", lr=3e-3, weight_decay=1e-4, augment=True)


@dataclass
class DistillConfig:
    """Distillation method settings; each method reads the fields it needs."""

    method: str = "kd"
    scheme: str = "offline"
    alpha: float = 0.5  # weight of the hard-label cross-entropy (Hinton: alpha*CE + (1-alpha)*T^2*KL)
    temperature: float = 4.0
    beta: float = 1.0  # weight of the method's extra term (hint, relation, DKD non-target)
    dkd_alpha: float = 1.0  # DKD target-class term weight
    dkd_beta: float = 8.0  # DKD non-target term weight (paper's default for CIFAR)
    rkd_distance: float = 25.0  # RKD paper's weights
    rkd_angle: float = 50.0
    sp_weight: float = 3000.0  # SP paper's gamma
    hint_pairs: list[str] = field(default_factory=lambda: ["auto"])  # "student_layer:teacher_layer"
    generations: int = 2  # self-distillation (born-again) generations after the first
    noisy_iterations: int = 2  # Noisy Student rounds
    noisy_dropout: float = 0.3
    noisy_drop_path: float = 0.1
    pseudo_threshold: float = 0.0  # Noisy Student: keep pseudo-labels with teacher confidence >= this
    pseudo_soft: bool = True  # soft (teacher probabilities) or hard (argmax) pseudo-labels
    # Detection distillation
    det_temperature: float = 1.0  # sigmoid heatmaps: T > 1 flattens them towards 0.5
    det_pseudo_threshold: float = 0.5  # hard pseudo-labels: teacher detections scoring >= this
    det_soft_floor: float = 0.2  # soft pseudo-labels: kept down to this score, weighted by it
    feature_masked: bool = True  # feature imitation only near objects

    def with_overrides(self, **overrides) -> DistillConfig:
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TuneConfig:
    """Bayesian optimisation of alpha, T (and optionally the method) with optuna's TPE sampler."""

    trials: int = 20
    alpha_range: tuple[float, float] = (0.0, 1.0)
    temperature_range: tuple[float, float] = (1.0, 20.0)
    methods: tuple[str, ...] = ("kd",)
    epochs: int = 3  # per trial; short trials rank settings, the winner is then trained fully


@dataclass
class ExportConfig:
    calibration_images: int = 200  # validation images that set int8 ranges (min/max)
    verification_images: int = 64  # held-out test images each exported file is compared on, output by output
    max_drop: float = 1.0  # points of top-1 / mAP@0.5 an int8 file may lose before QAT is tried (then: failure)
    qat_epochs: int = 3  # quantization-aware fine-tuning when post-training int8 loses more than max_drop
    qat_lr: float = 1e-4


@dataclass
class PruneConfig:
    """`edgekd prune`: what to remove, in how many steps, and how long to fine-tune after each step."""

    kind: str = "magnitude"  # magnitude (zero single weights) | structured (remove whole channels)
    sparsity: float = 0.8  # magnitude: fraction of prunable weights set to zero
    scope: str = "global"  # magnitude: one threshold over all layers (global) or the same fraction per layer
    dense_ends: bool = True  # magnitude: keep the first conv and the output layer(s) dense
    macs_ratio: float = 0.5  # structured: prune channels until MACs <= this fraction of the original
    channel_step: float = 0.01  # structured: fraction of each layer's channels removed per pruning step
    max_channel_ratio: float = 0.9  # structured: never remove more than this fraction of a layer's channels
    round_to: int | None = None  # structured: keep channel counts multiples of this (8 suits int8 SIMD kernels)
    steps: int = 3  # gradual pruning (Zhu & Gupta 2017's cubic schedule): prune, fine-tune, repeat
    epochs: int = 2  # fine-tuning epochs after each step
    lr_scale: float = 0.2  # fine-tuning starts at the training lr times this: the weights are already trained

    def with_overrides(self, **overrides) -> PruneConfig:
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in overrides.items() if k in known and v is not None})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class FleetConfig:
    """MQTT telemetry, the collector's store, the device agent and deploy (`edgekd collect|fleet|deploy`)."""

    broker: str = "mqtt://127.0.0.1:1883"  # EDGEKD_BROKER overrides; nothing answering -> embedded amqtt broker
    store: str = str(Path.home() / ".edgekd" / "fleet.db")  # SQLite file, or a postgresql:// URL
    max_payload_bytes: int = 64 * 1024  # a report is ~1 KB; larger messages are counted and dropped
    batch_size: int = 500  # reports per store transaction (one commit, then their PUBACKs)
    heartbeat_s: float = 30.0  # the agent refreshes its retained status this often
    report_interval_s: float = 300.0  # the agent benchmarks its model this often (0: only on command)
    runs: int = 100  # timed runs per agent benchmark
    warmup: int = 10
    frames: int = 30  # frames of the camera / video / image folder timed end to end per report
    remote_root: str = "edgekd"  # on the device, relative to the login's home
    unit: str = "edgekd-agent"  # systemd unit name
