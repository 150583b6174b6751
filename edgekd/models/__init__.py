"""Model families. Every classifier returns logits from `forward` and, from `forward_features`, the logits
plus a dict of named intermediate features that distillation methods pair up."""

from edgekd.models.checkpoint import load_model, save_model
from edgekd.models.classifiers import CLASSIFIERS, Classifier, build_classifier
from edgekd.models.profile import count_macs, count_params, model_profile

__all__ = [
    "CLASSIFIERS",
    "Classifier",
    "build_classifier",
    "count_macs",
    "count_params",
    "load_model",
    "model_profile",
    "save_model",
]
