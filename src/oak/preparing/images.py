"""One image's bytes to the bytes a shard stores: JPEG that decodes to 3-channel RGB.

`passthrough` keeps an RGB JPEG's original bytes and re-encodes only what is not one (CMYK or
grayscale JPEGs, a PNG named .JPEG). `resize` makes the shorter side at most `short_side` and
re-encodes at `quality`, decoding at reduced size (JPEG draft mode) when the target allows it.
`cap` does the same to the longer side, at most `long_side`: low-resolution shards whose JPEGs
decode in a fraction of the time, as FFCV's ImageNet files cap the side (libffcv/ffcv-imagenet,
write_imagenet.py's max_resolution; its README: 500 px for ResNet-50, 400 px for ResNet-18, JPEG
quality 90). FFCV stores half (ResNet-50) or 90% (ResNet-18) of the images as raw pixels instead,
which decode at no cost but take several times the bytes: Oak's shards hold JPEGs only.

What will happen to an image is usually known from its first bytes and its last two
(`planned_kind`): the frame header gives the size and the colour components, the end marker
shows the file is not cut short. Only files that this cheap check cannot settle are opened with
Pillow (`convert_image`).

No image of more than MAX_PIXELS is stored: a small file can declare a picture that takes
gigabytes to decode (a decompression bomb). Both checks refuse one from its header, before
decoding, so whatever reads the shards later (`oak verify`, Pillow in the loader, torchvision on
the device) decodes every image in bounded memory and Pillow never warns of one.
"""

import io
import struct
import warnings
from dataclasses import asdict, dataclass

from PIL import Image, UnidentifiedImageError

from oak.errors import OakError

MODES = ("passthrough", "resize", "cap")
REENCODE_QUALITY = 95  # for files re-encoded only to become RGB JPEG: keep them close to the original
JPEG_START = b"\xff\xd8"  # the SOI marker
JPEG_END = b"\xff\xd9"  # the EOI marker: a JPEG that does not end with it was cut short
HEAD_BYTES = 4096  # enough to reach the frame header of nearly every JPEG (a large EXIF block pushes it further)
# Frame headers (SOF) Pillow decodes with libjpeg's usual paths: baseline, extended, progressive.
# Other frame types (lossless, arithmetic, hierarchical) are rare: left to Pillow to judge.
COMMON_FRAMES = {0xC0, 0xC1, 0xC2}
# What may come between the start and the frame header: application data (APPn), comments,
# quantisation and Huffman tables, restart interval, arithmetic-coding conditioning.
SEGMENTS_BEFORE_FRAME = {*range(0xE0, 0xF0), 0xFE, 0xDB, 0xC4, 0xDD, 0xCC}


# Pillow's default Image.MAX_IMAGE_PIXELS: above it Pillow warns of a decompression bomb, above
# twice it refuses the file. 268 MB decoded as RGB; ImageNet's largest images are far smaller.
MAX_PIXELS = 89_478_485


class BadImage(Exception):
    """The bytes cannot become a sample; the message says why."""


def check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise BadImage(f"{width}x{height} pixels, more than the {MAX_PIXELS:,} Oak decodes (a decompression bomb?)")


def open_image(data: bytes) -> Image.Image:
    """Pillow's image of `data`, its header read; BadImage when it declares more than MAX_PIXELS."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the same limit, checked below with the size
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:  # Pillow refuses twice its limit before telling the size
            raise BadImage(f"over {2 * MAX_PIXELS:,} pixels, more than the {MAX_PIXELS:,} Oak decodes (a decompression bomb?)") from None
    try:
        check_pixels(*image.size)  # also when Pillow's own limit was raised or switched off
    except BadImage:
        image.close()
        raise
    return image


@dataclass(frozen=True)
class Conversion:
    mode: str = "passthrough"
    short_side: int = 256  # resize mode: the shorter side is at most this
    quality: int = 90  # resize and cap modes: JPEG quality of the re-encoded images
    long_side: int = 384  # cap mode: the longer side is at most this

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise OakError(f"prepare.mode={self.mode!r}: expected one of {', '.join(MODES)}")
        if self.short_side < 1:
            raise OakError(f"prepare.resize_short_side={self.short_side}: must be at least 1")
        if not 1 <= self.quality <= 100:
            raise OakError(f"prepare.resize_quality={self.quality}: must be between 1 and 100")
        if self.long_side < 1:
            raise OakError(f"prepare.cap_long_side={self.long_side}: must be at least 1")

    def settings(self) -> dict[str, object]:
        """The settings as `_info.json` records them: the cap only in cap mode, so that shards made
        without one keep the info file they had before cap mode existed."""
        recorded = asdict(self)
        if self.mode != "cap":
            del recorded["long_side"]
        return recorded


# Pillow gives a freed image's memory back to malloc (it caches no blocks by default), and glibc
# serves the next image's ~1 MB with fresh pages from the kernel: page faults and zeroing that
# cost ~10% of a resize. Pillow can keep freed blocks for reuse (its PILLOW_BLOCKS_MAX setting); a
# conversion holds at most three images at once (decoded, half-resized, resized).
REUSED_IMAGE_BLOCKS = 4


def reuse_image_memory() -> None:
    """Let this process (and the workers it forks) reuse Pillow's freed image memory."""
    Image.core.set_blocks_max(REUSED_IMAGE_BLOCKS)


# What happened to an image: kept as it was, re-encoded to become RGB JPEG, or resized.
KEPT, REENCODED_RGB, RESIZED = "kept", "reencoded_rgb", "resized"


def convert_image(data: bytes, conversion: Conversion) -> tuple[bytes | None, str]:
    """The bytes to store (None: the original bytes) and what was done; BadImage when unreadable."""
    if not data:
        raise BadImage("zero-byte file")
    try:
        with open_image(data) as image:
            is_rgb_jpeg = image.format == "JPEG" and image.mode == "RGB"
            target = _target_size(image.size, conversion)
            if target is None:
                if is_rgb_jpeg:
                    _check_complete_jpeg(data, image)
                    return None, KEPT
                return _encode(image.convert("RGB"), REENCODE_QUALITY), REENCODED_RGB
            return _encode(_rgb(_reduced(image, target)), conversion.quality), RESIZED
    except UnidentifiedImageError:
        raise BadImage("not an image") from None
    except (OSError, SyntaxError, ValueError) as error:  # Pillow's ways of saying "broken file"
        raise BadImage(f"cannot be decoded ({error})") from None


def planned_kind(head: bytes, tail: bytes, conversion: Conversion) -> str | None:
    """What `convert_image` will do with a file, from its first bytes and its last two; None
    when these cannot tell (not an RGB JPEG, no end marker, frame header further in): ask Pillow.
    BadImage when the frame header declares more than MAX_PIXELS."""
    frame = jpeg_frame(head)
    if frame is None:
        return None
    width, height, components = frame
    check_pixels(width, height)
    if tail != JPEG_END:
        return None
    if components != 3:  # grayscale or CMYK: re-encoded, and rare enough to check by decoding
        return None
    return KEPT if _target_size((width, height), conversion) is None else RESIZED


def jpeg_frame(head: bytes) -> tuple[int, int, int] | None:
    """(width, height, colour components) from the frame header of an 8-bit JPEG of a common
    type, walking the marker segments from the start; None when `head` does not get that far."""
    if not head.startswith(JPEG_START):
        return None
    position = len(JPEG_START)
    while position + 4 <= len(head):
        if head[position] != 0xFF:
            return None  # not a marker where one must be: damaged, let Pillow say how
        marker = head[position + 1]
        if marker == 0xFF:  # a fill byte before the marker
            position += 1
            continue
        (length,) = struct.unpack_from(">H", head, position + 2)
        if marker in COMMON_FRAMES:
            if length < 8 or position + 10 > len(head):
                return None
            precision, height, width, components = struct.unpack_from(">BHHB", head, position + 4)
            return (width, height, components) if precision == 8 and width and height else None
        if marker not in SEGMENTS_BEFORE_FRAME or length < 2:
            return None  # a rarer frame type, a marker out of place, or a broken length
        if marker == 0xE2 and head[position + 4 : position + 8] == b"MPF\0":
            return None  # a multi-picture file: Pillow calls it MPO, not JPEG, and re-encodes it
        position += 2 + length
    return None


def _target_size(size: tuple[int, int], conversion: Conversion) -> tuple[int, int] | None:
    """The resized (width, height), or None when the image stays as it is."""
    width, height = size
    if conversion.mode == "resize":
        side, limit = min(width, height), conversion.short_side
    elif conversion.mode == "cap":
        side, limit = max(width, height), conversion.long_side
    else:
        return None
    if side <= limit:
        return None
    scale = limit / side
    return max(1, round(width * scale)), max(1, round(height * scale))


def _reduced(image: Image.Image, target: tuple[int, int]) -> Image.Image:
    # draft() asks libjpeg to decode at 1/2, 1/4 or 1/8 scale, never below the target size:
    # far cheaper than a full decode when the target is at most half the source.
    if image.format == "JPEG":
        image.draft(image.mode, target)
    return image.resize(target, Image.Resampling.BICUBIC)


def _rgb(image: Image.Image) -> Image.Image:
    return image if image.mode == "RGB" else image.convert("RGB")  # convert() would copy an RGB image


def _check_complete_jpeg(data: bytes, image: Image.Image) -> None:
    """A truncated JPEG fails here. Files that end in the EOI marker pass on a header read alone;
    the rest are decoded, since some valid files carry padding after their last marker."""
    if data.rstrip(b"\x00").endswith(JPEG_END):
        return
    image.draft(image.mode, (max(1, image.width // 8), max(1, image.height // 8)))
    image.load()  # raises OSError("image file is truncated") when the data runs out


def _encode(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def stored_image_problem(data: bytes) -> str | None:
    """What keeps `data` from being a stored image (a JPEG of at most MAX_PIXELS whose full decode
    gives 3-channel RGB: what `oak verify` demands), or None."""
    try:
        with open_image(data) as image:
            image.load()
            if image.format == "JPEG" and image.mode == "RGB":
                return None
    except BadImage as error:
        return str(error)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        pass
    return "image does not decode to RGB JPEG"
