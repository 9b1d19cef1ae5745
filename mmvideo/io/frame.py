"""The decoded-frame record that travels from decode to encode."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np


@dataclass
class Picture:
    """The decoder's own frame behind a :class:`Frame`, with the conversion that gives its RGB
    pixels. Kept so that a frame nobody changes is encoded from the decoded YUV as it is: no
    YUV→RGB→YUV round trip, which costs time and rounds every pixel."""

    frame: av.VideoFrame
    to_image: Callable[[av.VideoFrame], np.ndarray]
    image: np.ndarray | None = None  # the conversion, when it was done already


class _Image:
    """``Frame.image``. Given a :class:`Picture`, the RGB pixels are made on first read and are
    read-only, so that nobody changes them in place while the writer would still encode the
    decoder's frame; assigning an array detaches the picture."""

    def __get__(self, frame: Frame | None, owner=None) -> np.ndarray:
        if frame is None:
            raise AttributeError("image")  # a required dataclass field: no default
        picture = frame._picture
        if picture is not None and picture.image is None:
            picture.image = picture.to_image(picture.frame)
            picture.image.flags.writeable = False
        return picture.image if picture is not None else frame._pixels

    def __set__(self, frame: Frame, value: np.ndarray | Picture) -> None:
        if isinstance(value, Picture):
            if value.image is not None:
                value.image.flags.writeable = False
            frame._picture, frame._pixels = value, None
        else:
            frame._picture, frame._pixels = None, value


@dataclass(eq=False)
class Frame:
    """One decoded video frame.

    ``image`` is RGB, H×W×3, uint8 for 8-bit sources and uint16 (full 16-bit scale) for deeper
    ones, with the container's rotation already applied. ``pts`` is in ``time_base`` units of the
    video stream; it is carried unchanged to the encoder so timing (including VFR) is preserved.
    A reader may pass a :class:`Picture` as ``image``; ``decoded`` then gives the decoder's
    frame until new pixels are assigned.
    """

    index: int
    pts: int | None
    time_base: Fraction
    image: np.ndarray = _Image()  # type: ignore[assignment]
    key_frame: bool = False
    interlaced: bool = False
    # H×W float32 0–1 blend matte of the swap (``--matte-out``): an EXR output adds it as a channel
    matte: np.ndarray | None = None

    @property
    def decoded(self) -> av.VideoFrame | None:
        """The decoder's frame while ``image`` is still its unchanged conversion, else None."""
        return self._picture.frame if self._picture is not None else None
