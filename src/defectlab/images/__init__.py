"""Image decoding, contrast windows for 8-bit views, and network input."""

from defectlab.images.decode import ALPHA_BACKGROUND, DecodedImage, decode_image, max_pixels

__all__ = ["ALPHA_BACKGROUND", "DecodedImage", "decode_image", "max_pixels"]
