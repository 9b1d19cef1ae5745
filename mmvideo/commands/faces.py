"""``mmvideo faces IMAGE``: list the faces the analyser finds in a still, with pose and index.

Use it to check a source photo before a swap and to choose ``--source-face-index``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import cv2
import numpy as np

from magicmask.face.analyzer import FaceAnalyzer, FaceConfig, check_backend_installed, pick_face
from magicmask.face.backends import BACKENDS, DETECTORS
from magicmask.face.image import load_image
from magicmask.face.types import Face
from mmcore.atomic import atomic_output, check_output
from mmcore.errors import OutputError
from mmvideo.commands.options import overwrite_options


def _face_record(index: int, face: Face) -> dict:
    x0, y0, x1, y1 = (round(float(v), 1) for v in face.box)
    pose = None if face.pose is None else [round(float(a), 1) for a in face.pose]
    return {
        "index": index,
        "box": [x0, y0, x1, y1],
        "size": round(min(x1 - x0, y1 - y0)),
        "score": round(face.score, 3),
        "yaw_pitch_roll": pose,
        "has_3d": face.landmarks_3d is not None,
    }


def _draw(image: np.ndarray, faces: list[Face], chosen: int, out: Path) -> None:
    """Boxes, landmarks and indices on a copy of the image, written atomically."""
    canvas = cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    thick = max(1, round(max(image.shape[:2]) / 600))
    for i, face in enumerate(faces):
        color = (0, 200, 0) if i == chosen else (0, 160, 255)
        x0, y0, x1, y1 = (round(float(v)) for v in face.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), color, thick)
        for x, y in face.landmarks:
            cv2.circle(canvas, (round(float(x)), round(float(y))), thick, color, -1)
        cv2.putText(
            canvas,
            str(i),
            (x0, max(0, y0 - 4 * thick)),
            cv2.FONT_HERSHEY_SIMPLEX,
            thick * 0.8,
            color,
            thick,
        )
    with atomic_output(out, suffix=out.suffix or ".png") as tmp:
        if not cv2.imwrite(str(tmp), canvas):
            raise OutputError(f"{out}: cannot write an image of this type")


@click.command("faces")
@click.argument("image", type=click.Path(path_type=Path))
@click.option("--face-backend", type=click.Choice(BACKENDS), default="dlib", show_default=True)
@click.option(
    "--detector",
    type=click.Choice(DETECTORS),
    default=None,
    help="Default: the backend's own.",
)
@click.option("--face-models", type=click.Path(path_type=Path), default=None,
              help="Folder of insightface / FAN / Face Mesh model files.")  # fmt: skip
@click.option("--fan-landmarks", type=click.Choice(("2d", "3d")), default="2d", show_default=True)
@click.option("--detect-upsample", default=1, show_default=True, help="HOG/MMOD upsampling steps.")
@click.option(
    "--min-face-size",
    default=20,
    show_default=True,
    help="Ignore faces smaller than this (px).",
)
@click.option(
    "--source-face-index",
    type=int,
    default=None,
    help="Face to mark as the source (0 = largest).",
)
@click.option(
    "--draw",
    type=click.Path(path_type=Path),
    default=None,
    help="Write an annotated copy here.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object on stdout.")
@click.option("--device", default="cpu", show_default=True)
@overwrite_options
def faces(
    image: Path,
    face_backend: str,
    detector: str | None,
    face_models: Path | None,
    fan_landmarks: str,
    detect_upsample: int,
    min_face_size: int,
    source_face_index: int | None,
    draw: Path | None,
    as_json: bool,
    device: str,
    overwrite: bool | None,
) -> None:
    """List the faces in IMAGE (largest first) with box, size and head pose.

    Exits with an error when IMAGE has no face, as a swap with it as the source would.
    """
    cfg = FaceConfig(face_backend=face_backend, detector=detector, detect_upsample=detect_upsample,
                     min_face_size=min_face_size, detect_max_side=1024, face_models=face_models,
                     fan_landmarks=fan_landmarks, device=device)  # fmt: skip
    rgb = load_image(image)
    if draw is not None:
        check_output(draw, image, overwrite=overwrite)  # before the models load
    check_backend_installed(face_backend)
    analyzer = FaceAnalyzer(cfg)
    found = analyzer.detect(rgb)
    chosen = pick_face(found, source_face_index, name=str(image))  # no face: NoFaceFound, exit 3
    index = next(i for i, f in enumerate(found) if f is chosen)
    records = [_face_record(i, f) for i, f in enumerate(found)]
    if draw is not None:
        _draw(rgb, found, index, draw)
    if as_json:
        click.echo(json.dumps({"image": str(image), "size": list(rgb.shape[1::-1]), "source_index": index,
                               "faces": records}))  # fmt: skip
        return
    click.echo(f"{image}: {rgb.shape[1]}x{rgb.shape[0]}, {len(found)} face(s)")
    for r in records:
        pose = (
            "pose n/a"
            if r["yaw_pitch_roll"] is None
            else "yaw {:+.0f} pitch {:+.0f} roll {:+.0f}".format(*r["yaw_pitch_roll"])
        )
        mark = "  <- source" if r["index"] == index else ""
        click.echo(
            f"  [{r['index']}] {r['size']} px at ({r['box'][0]:.0f}, {r['box'][1]:.0f}), {pose}, score {r['score']}{mark}"
        )
