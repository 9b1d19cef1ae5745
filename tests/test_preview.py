"""``mmvideo preview`` on a real clip with a randomly initialised tiny generator (plumbing only):
the sheet shows the requested spread of frames, track ids and face-found flags, carries the
provenance tag, and bad input leaves nothing behind."""

from __future__ import annotations

import numpy as np
import OpenImageIO as oiio

from magicmask.face.image import load_image
from mmvideo.commands import main
from mmvideo.config import load_config
from mmvideo.generate import load_models
from mmvideo.post.read_tag import read_provenance
from mmvideo.preview import MATTE_TINT, PreviewFace, PreviewRow, contact_sheet, render_rows

CLIP = "talking_head_turn_01.mp4"
SOURCE = "id_obama_01.jpg"


def test_contact_sheet_layout_is_pure_and_sized():
    image = np.zeros((100, 150, 3), np.uint8)
    rows = [
        PreviewRow(
            7,
            "01:00:00:07",
            image,
            image + 50,
            [PreviewFace(1, (10, 10, 60, 60), True)],
        ),
        PreviewRow(9, None, image.astype(np.uint16), image.astype(np.uint16), []),
    ]
    sheet = contact_sheet(rows, "title", height=80)
    assert sheet.dtype == np.uint8 and sheet.shape == (
        50 + 2 * 90,
        230 + 2 * 120 + 30,
        3,
    )
    assert np.array_equal(sheet, contact_sheet(rows, "title", height=80))
    # The selected face's box is drawn in green on the original thumbnail.
    panel = sheet[50:130, 240:360]
    assert (panel == (40, 200, 60)).all(axis=-1).any()


def test_mask_column_tints_the_matte_over_the_original():
    image = np.full((100, 150, 3), 100, np.uint8)
    matte = np.zeros((100, 150), np.float32)
    matte[20:80, 40:100] = 1.0
    rows = [PreviewRow(3, None, image, image + 50, [], matte)]
    sheet = contact_sheet(rows, "title", height=100)
    # three columns: original | swap | mask, each 150 wide plus a 10 px gap
    assert sheet.shape == (50 + 110, 230 + 3 * 160 + 10, 3)
    mask = sheet[50:150, 240 + 2 * 160 : 240 + 2 * 160 + 150].astype(int)
    tint = np.rint(100 * 0.4 + np.array(MATTE_TINT) * 0.6)
    assert (mask[50, 70] == tint).all()  # inside the matte: the tint over the original
    assert (mask[5, 5] == 100).all()  # outside: the original as it is
    assert np.array_equal(sheet[50:150, 240:390], image)  # the original column stays plain


def test_rows_cover_the_range_with_tracks_and_flags(tiny_checkpoint, data_dir):
    models = load_models(str(tiny_checkpoint))
    cfg = load_config("fast")
    rows = render_rows(
        str(data_dir / SOURCE),
        str(data_dir / CLIP),
        "20-30",
        cfg,
        models,
        count=3,
        warmup=3,
    )
    assert [r.label for r in rows] == [20, 25, 30]
    assert all(r.face_found for r in rows)  # a talking head: a face in every shown frame
    assert all(any(f.selected for f in r.faces) for r in rows)
    for r in rows:
        assert r.original.shape == r.swapped.shape == (224, 224, 3)
        assert not np.array_equal(r.original, r.swapped)  # the face was replaced
        # the matte shows the swap's reach: every changed pixel lies inside it
        changed = np.any(r.original != r.swapped, axis=-1)
        assert r.matte.shape == (224, 224) and r.matte.max() > 0.9
        assert not changed[r.matte == 0].any()


def test_preview_command_writes_a_tagged_sheet(tiny_checkpoint, data_dir, tmp_path, capsys):
    out = tmp_path / "sheet.png"
    args = ["preview", "--source", str(data_dir / SOURCE), "--in", str(data_dir / CLIP)]
    args += ["--frames", "10-20", "--out", str(out), "--count", "2"]
    args += ["--checkpoint", str(tiny_checkpoint), "--preset", "fast", "--warmup", "3"]
    assert main(args) == 0
    assert f"{out}: 2 frames" in capsys.readouterr().out
    spec = oiio.ImageInput.open(str(out)).spec()
    assert spec.height == 50 + 2 * 210
    assert spec.width == 230 + 3 * (200 + 10) + 10  # original | swap | mask, 200 px each
    tag = read_provenance(out)
    assert tag is not None and tag.synthetic_faces and tag.checkpoint_sha256
    assert [p.name for p in tmp_path.iterdir()] == ["sheet.png"]

    bad = tmp_path / "bad.png"
    args[args.index("10-20")] = "150-999"
    args[args.index(str(out))] = str(bad)
    assert main(args) == 3
    assert "goes past the last frame" in capsys.readouterr().err
    assert not bad.exists()


def test_preview_takes_the_swap_config_flags(tiny_checkpoint, data_dir, tmp_path, monkeypatch):
    """``--face-backend``/``--detector`` reach both the frames and the source still, as in swap."""
    from magicmask.face import mediapipe_backend

    calls = []
    original = mediapipe_backend.MeshLandmarker.__call__

    def counted(self, image, boxes):
        calls.append(image.shape)
        return original(self, image, boxes)

    monkeypatch.setattr(mediapipe_backend.MeshLandmarker, "__call__", counted)
    out = tmp_path / "sheet.png"
    args = ["preview", "--source", str(data_dir / SOURCE), "--in", str(data_dir / CLIP)]
    args += [
        "--frames",
        "10-12",
        "--out",
        str(out),
        "--count",
        "1",
        "--checkpoint",
        str(tiny_checkpoint),
    ]
    args += ["--warmup", "0", "--face-backend", "mediapipe", "--detector", "hog"]
    assert main(args) == 0 and out.is_file()
    source_shape = load_image(data_dir / SOURCE).shape
    assert source_shape in calls and len(calls) >= 4  # the source, then the frames 10-12
