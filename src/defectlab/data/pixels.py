"""Lazy access to stored images' pixels, decoded on demand so memory stays bounded."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from defectlab.data.regions import png_to_mask
from defectlab.formats._raster import region_mask
from defectlab.formats.records import Region
from defectlab.images import decode_image
from defectlab.workspace.store import BlobStore

__all__ = ["StoredClassMaps", "StoredMasks", "StoredPixels", "Subset"]


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


class StoredMasks(Sequence):
    """Per snapshot image, the union of its labeled regions as a boolean ``(H, W)`` mask, or None.

    Masks are decoded from their blobs; boxes and polygons are filled in.
    Images without regions give None.
    """

    def __init__(self, blobs: BlobStore, images: Sequence) -> None:  # noqa: ANN001 - SnapshotImage items
        self.blobs = blobs
        self.images = list(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray | None:
        image = self.images[index]
        if not image.regions:
            return None
        canvas = Image.new("1", (image.width, image.height), 0)
        draw = ImageDraw.Draw(canvas)
        union = np.zeros((image.height, image.width), dtype=bool)
        for region in image.regions:
            if region["kind"] == "mask":
                union |= png_to_mask(self.blobs.get(region["mask_sha256"]))
            elif region["kind"] == "box":
                draw.rectangle(region["geometry"], fill=1)
            else:
                points = region["geometry"]
                draw.polygon(list(zip(points[0::2], points[1::2])), fill=1)
        return union | np.asarray(canvas, dtype=bool)


class StoredClassMaps(Sequence):
    """Per snapshot image, a ``uint8`` ``(H, W)`` map of class indices into ``class_names`` (0 is ``ok``).

    Regions are drawn in their stored order, so where two overlap the later
    one wins. An image without regions is all 0: for segmentation that means
    no defect, so only labeled images belong in the sequence.
    """

    def __init__(self, blobs: BlobStore, images: Sequence, class_names: Sequence[str]) -> None:  # noqa: ANN001
        self.blobs = blobs
        self.images = list(images)
        self.index = {name: position for position, name in enumerate(class_names)}

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> np.ndarray:
        image = self.images[index]
        classes = np.zeros((image.height, image.width), dtype=np.uint8)
        for region in image.regions:
            if region["kind"] == "mask":
                shape = Region("mask", region["class"], mask=png_to_mask(self.blobs.get(region["mask_sha256"])))
            elif region["kind"] == "box":
                shape = Region("box", region["class"], box=tuple(region["geometry"]))
            else:
                shape = Region("polygon", region["class"], polygon=list(region["geometry"]))
            classes[region_mask(shape, image.width, image.height)] = self.index[region["class"]]
        return classes


class Subset(Sequence):
    """Lazy view of some items of a sequence, in the order of ``indices``."""

    def __init__(self, items: Sequence, indices: Sequence[int]) -> None:
        self.items, self.indices = items, [int(i) for i in indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):  # noqa: ANN204 - the item type of ``items``
        return self.items[self.indices[index]]
