"""Data level: datasets, vocabularies, loaders, fetchers, filters and splits."""

from recgen.data.dataset import Dataset, Vocabulary, from_columns
from recgen.data.filters import deduplicate, k_core, rating_threshold
from recgen.data.loaders import FORMATS, detect_format, load_dataset, load_path
from recgen.data.split import EvalSet, Split, leave_one_out, make_split, ratio_split, temporal_split

__all__ = [
    "FORMATS",
    "Dataset",
    "EvalSet",
    "Split",
    "Vocabulary",
    "deduplicate",
    "detect_format",
    "from_columns",
    "k_core",
    "leave_one_out",
    "load_dataset",
    "load_path",
    "make_split",
    "rating_threshold",
    "ratio_split",
    "temporal_split",
]
