"""The face backends and detectors by name: the one list that the analyzer, the ``faces``
command and the swap config's choices (``mmvideo.config.DetectConfig``) all read. Kept apart
from ``analyzer`` so that loading a preset does not import OpenCV."""

from __future__ import annotations

BACKENDS = ("dlib", "insightface", "fan", "mediapipe")
# backend -> (the optional package it imports, what installs it)
BACKEND_PACKAGES = {
    "insightface": ("insightface", "'mmvideo[insightface]'"),
    "fan": ("face_alignment", "'mmvideo[fan]'"),
    "mediapipe": ("ai_edge_litert", "'mmvideo[mediapipe]'"),
}
DETECTORS = ("hog", "cnn", "mtcnn", "scrfd")
