"""Lazy access to stored images' pixels, decoded on demand so memory stays bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from defectlab.images import decode_image
from defectlab.workspace.store import BlobStore

__all__ = ["StoredPixels"]


class StoredPixels(Sequence):
    """A sequence of decoded images backed by blobs; each access decodes the blob again.

    Training code that passes over the images several times should keep
    what it needs (features, not pixels) instead of indexing repeatedly.
    """

    def __init__(self, blobs: BlobStore, digests: Sequence[str], names: Sequence[str]) -> None:
        self.blobs = blobs
        self.digests = list(digests)
        self.names = list(names)

    def __len__(self) -> int:
        return len(self.digests)

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - int or slice, as Sequence defines
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return decode_image(self.blobs.get(self.digests[index]), source=self.names[index]).pixels
