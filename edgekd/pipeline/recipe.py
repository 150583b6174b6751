"""Pipeline recipes: YAML validated into typed dataclasses, every default here.

A recipe names the data, the teacher and student, how to distil, prune, export and where to benchmark. A bad
recipe is refused before any work starts, naming the file, the line and the key: an unknown key (with the closest
known one), a value of the wrong type or out of range, a file that does not exist.
"""

from __future__ import annotations

import difflib
import types
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import yaml

from edgekd.errors import ConfigError

DEFAULT_RECIPE = Path(__file__).parent / "recipes" / "faces.yaml"


@dataclass
class TeacherStage:
    model: str = "m"  # detector scale (n/s/m) or preset, or an existing model.pt to start from
    epochs: int = 40


@dataclass
class StudentStage:
    model: str = "mcu-face"  # the MCU face detector: 96x96 gray, fits an ESP32
    epochs: int = 40
    method: str = "pseudo"  # pseudo | response | feature (detection distillation)
    unlabeled: int = 1000  # pseudo: extra images of the built-in set the teacher labels
    soft: bool = True  # pseudo: keep low-confidence boxes, weighted by confidence
    baseline: bool = True  # also train the student on labels alone: the "without KD" row


@dataclass
class PruneStage:
    kind: str = "structured"  # structured | magnitude | none
    macs_ratio: float = 0.5
    sparsity: float = 0.8
    steps: int = 3
    epochs: int = 16  # fine-tuning epochs after each step (8 left the pruned student 10 points down)
    kd: bool = True  # fine-tune with response KD from the unpruned student
    round_to: int | None = 4  # structured: channel counts stay multiples of this (the Cortex-M4 DSP kernels take 4)


@dataclass
class ExportStage:
    # As `edgekd export --target rpi`: onnxruntime int8 is slower than fp32 on CPUs without VNNI (see FACTS), and the
    # pruned student's ONNX int8 lost 1.4 points where TFLite int8 lost none.
    formats: list[str] = field(default_factory=lambda: ["onnx", "tflite", "tflite-int8"])
    compare_formats: list[str] = field(default_factory=lambda: ["onnx", "tflite"])  # teacher and students, fp32
    target: str = "mcu"  # cpu | rpi | mcu (mcu: TFLite Micro must run the int8 file)
    max_drop: float = 1.0
    qat_epochs: int = 2


@dataclass
class BenchStage:
    runs: int = 100
    warmup: int = 10
    threads: int = 1
    max_images: int | None = None  # score at most this many test images
    mcu: str = "auto"  # auto: on the emulated Cortex-M4 when QEMU and the ARM compiler are installed | on | off
    devices: list[str] = field(default_factory=list)  # fleet device ids whose stored reports join the report
    fleet_db: str | None = None  # the collector's store (SQLite path or postgresql:// URL)


@dataclass
class Recipe:
    name: str = "faces"
    data: str = "faces"  # built-in set or a dataset path (data.yaml, COCO json)
    seed: int = 0
    threads: int = 2  # torch threads for training
    teacher: TeacherStage = field(default_factory=TeacherStage)
    student: StudentStage = field(default_factory=StudentStage)
    prune: PruneStage = field(default_factory=PruneStage)
    export: ExportStage = field(default_factory=ExportStage)
    bench: BenchStage = field(default_factory=BenchStage)

    def to_dict(self) -> dict:
        return asdict(self)


# `--quick`: the same stages, minutes instead of a quarter hour (a smoke run, not a result).
QUICK = {
    "teacher": {"epochs": 2},
    "student": {"epochs": 2, "unlabeled": 60},
    "prune": {"steps": 1, "epochs": 1},
    "export": {"formats": ["onnx", "tflite-int8"], "compare_formats": ["onnx"], "qat_epochs": 0, "max_drop": 100.0},
    "bench": {"runs": 20, "warmup": 2, "max_images": 40},
}

CHOICES = {
    ("student", "method"): ("pseudo", "response", "feature"),
    ("prune", "kind"): ("structured", "magnitude", "none"),
    ("export", "target"): ("cpu", "rpi", "mcu"),
    ("bench", "mcu"): ("auto", "on", "off"),
}
EXPORT_FORMATS = ("onnx", "onnx-int8", "tflite", "tflite-int8")
LIST_CHOICES = {("export", "formats"): EXPORT_FORMATS, ("export", "compare_formats"): EXPORT_FORMATS}
POSITIVE = {("teacher", "epochs"), ("student", "epochs"), ("prune", "steps"), ("bench", "runs")}
FRACTIONS = {("prune", "macs_ratio"), ("prune", "sparsity")}


def _where(source: str, node: yaml.Node | None) -> str:
    return f"{source}:{node.start_mark.line + 1}" if node is not None else source


def _scalar(node: yaml.Node):
    return yaml.safe_load(yaml.serialize(node))


def _check_type(value, annotation, path: str, where: str):
    """`value` if it fits `annotation` (int, float, str, bool, list[str], X | None)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in typing.get_args(annotation):
            return None
        annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        origin = typing.get_origin(annotation)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{where}: {path} must be a list of strings, got {value!r}")
        return value
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is int and isinstance(value, bool) or not isinstance(value, annotation):
        raise ConfigError(f"{where}: {path} must be {annotation.__name__}, got {value!r}")
    return value


def _build(cls, node: yaml.Node, source: str, prefix: tuple[str, ...] = ()):
    if not isinstance(node, yaml.MappingNode):
        raise ConfigError(f"{_where(source, node)}: {'.'.join(prefix) or 'the recipe'} must be a mapping of keys")
    known = {f.name: f for f in fields(cls)}
    hints = typing.get_type_hints(cls)
    values = {}
    for key_node, value_node in node.value:
        key = key_node.value
        path = ".".join((*prefix, key))
        where = _where(source, key_node)
        if key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else f"; known keys: {', '.join(known)}"
            raise ConfigError(f"{where}: unknown key '{path}'{hint}")
        if is_dataclass(hints[key]):
            values[key] = _build(hints[key], value_node, source, (*prefix, key))
            continue
        value = _check_type(_scalar(value_node), hints[key], path, where)
        _check_value((*prefix, key), value, path, where)
        values[key] = value
    return cls(**values)


def _check_value(key: tuple[str, ...], value, path: str, where: str) -> None:
    if key in CHOICES and value not in CHOICES[key]:
        raise ConfigError(f"{where}: {path} must be one of {', '.join(CHOICES[key])}, got {value!r}")
    if key in LIST_CHOICES:
        wrong = [v for v in value if v not in LIST_CHOICES[key]]
        if wrong or not value:
            allowed = ", ".join(LIST_CHOICES[key])
            raise ConfigError(f"{where}: {path} takes a non-empty list of {allowed}, got {value!r}")
    if key in POSITIVE and value < 1:
        raise ConfigError(f"{where}: {path} must be at least 1, got {value}")
    if key in FRACTIONS and not 0 < value < 1:
        raise ConfigError(f"{where}: {path} must be between 0 and 1, got {value}")
    if isinstance(value, int | float) and not isinstance(value, bool) and value < 0:
        raise ConfigError(f"{where}: {path} must not be negative, got {value}")


def _looks_like_file(value: str) -> bool:
    return value.endswith((".pt", ".yaml", ".yml", ".json")) or "/" in value


def _check_files(recipe: Recipe, base: Path, source: str) -> None:
    """Paths in the recipe are relative to the recipe's folder; each must exist."""
    for path, value in (("data", recipe.data), ("teacher.model", recipe.teacher.model)):
        if _looks_like_file(value):
            resolved = (base / value).expanduser()
            if not resolved.exists():
                raise ConfigError(f"{source}: {path}: file {value} does not exist (looked at {resolved})")


def _merge(recipe: Recipe, overrides: dict) -> Recipe:
    for section, values in overrides.items():
        target = getattr(recipe, section)
        for key, value in values.items():
            setattr(target, key, value)
    return recipe


def load_recipe(path: str | Path | None = None, quick: bool = False) -> Recipe:
    """The recipe at `path` (default: the shipped face recipe), validated; `quick` shortens every stage."""
    path = Path(path) if path else DEFAULT_RECIPE
    if not path.is_file():
        raise ConfigError(f"recipe {path} does not exist")
    try:
        node = yaml.compose(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from error
    recipe = Recipe() if node is None else _build(Recipe, node, str(path))
    _check_files(recipe, path.parent, str(path))
    if _looks_like_file(recipe.data):
        recipe.data = str((path.parent / recipe.data).resolve())
    if _looks_like_file(recipe.teacher.model):
        recipe.teacher.model = str((path.parent / recipe.teacher.model).resolve())
    return _merge(recipe, QUICK) if quick else recipe
