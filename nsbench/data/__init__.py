from .sources import ArraySource, FileSource, HFSource, Source, UnreadableImage, open_source
from .splits import labeled_split, subsample

__all__ = ["ArraySource", "FileSource", "HFSource", "Source", "UnreadableImage", "open_source", "labeled_split", "subsample"]
