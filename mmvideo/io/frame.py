"""The decoded-frame record that travels from decode to encode."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass
class Frame:
    """One decoded video frame.

    ``image`` is RGB, H×W×3, uint8 for 8-bit sources and uint16 (full 16-bit scale) for deeper
    ones, with the container's rotation already applied. ``pts`` is in ``time_base`` units of the
    video stream; it is carried unchanged to the encoder so timing (including VFR) is preserved.
    """

    index: int
    pts: int | None
    time_base: Fraction
    image: np.ndarray
    key_frame: bool = False
    interlaced: bool = False
