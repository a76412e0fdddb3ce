"""Data sources: one distribution per side of the bridge, or a paired dataset."""

from sbcore.data.arrays import ArraysSource
from sbcore.data.base import PairedSource, Source, TensorSource
from sbcore.data.gaussian import GaussianSource
from sbcore.data.image_folder import ImageFolderSource
from sbcore.data.images import MNIST, DataNotFoundError, EMNISTLetters, FashionMNIST
from sbcore.data.memory import MemorySource
from sbcore.data.shards import ShardError, ShardSource
from sbcore.data.toy2d import Toy2D

__all__ = [
    "MNIST", "ArraysSource", "DataNotFoundError", "EMNISTLetters", "FashionMNIST", "GaussianSource",
    "ImageFolderSource", "MemorySource", "PairedSource", "ShardError", "ShardSource", "Source", "TensorSource",
    "Toy2D",
]
