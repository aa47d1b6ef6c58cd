"""synthlabel: turn a small pixel-labeled image set into a large, balanced, labeled training set with GANs."""

__version__ = "0.1.0"

from synthlabel.data.classes import ClassMap, ClassSpec  # noqa: E402
from synthlabel.data.datasets import check_dataset, list_splits, open_dataset  # noqa: E402
from synthlabel.data.sample import Sample, TensorSet  # noqa: E402
from synthlabel.errors import ConfigError, DataError, SynthlabelError  # noqa: E402

__all__ = [
    "ClassMap",
    "ClassSpec",
    "ConfigError",
    "DataError",
    "Sample",
    "SynthlabelError",
    "TensorSet",
    "check_dataset",
    "list_splits",
    "open_dataset",
]
