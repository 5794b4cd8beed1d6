"""Training data: the synthetic ICT data engine and the on-disk dataset format."""
from .dataset import FORMAT, GLVDDataset, SceneRecord, make_dataset

__all__ = ["FORMAT", "GLVDDataset", "SceneRecord", "make_dataset"]
