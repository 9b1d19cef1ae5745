"""``mmvideo faces``: listing, JSON, the source choice, the annotated copy and error exits."""

from __future__ import annotations

import json

import cv2
from media import blank_image

from mmvideo.commands import main


def test_json_lists_every_face_largest_first(data_dir, capsys):
    assert main(["faces", str(data_dir / "multi_face_kit_rose_01.jpg"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["size"] == [501, 700] and out["source_index"] == 0
    sizes = [f["size"] for f in out["faces"]]
    assert len(sizes) == 2 and sizes == sorted(sizes, reverse=True)
    assert all(len(f["yaw_pitch_roll"]) == 3 for f in out["faces"])


def test_source_index_and_drawing(data_dir, tmp_path, capsys):
    out = tmp_path / "faces.png"
    args = [
        "faces",
        str(data_dir / "multi_face_kit_rose_01.jpg"),
        "--source-face-index",
        "1",
    ]
    assert main([*args, "--draw", str(out)]) == 0
    text = capsys.readouterr().out
    assert "2 face(s)" in text and "[1]" in text and text.count("<- source") == 1
    assert "[1]" in text.splitlines()[2] and "<- source" in text.splitlines()[2]
    drawn = cv2.imread(str(out))
    assert drawn.shape == (700, 501, 3)
    assert list(tmp_path.iterdir()) == [out]  # no temp file left behind


def test_errors_exit_non_zero_with_one_line(data_dir, tmp_path, capsys):
    blank = blank_image(tmp_path / "blank.png", 90)
    assert main(["faces", str(blank)]) == 3
    err = capsys.readouterr().err
    assert "blank.png: no face found" in err and err.count("\n") == 1
    assert main(["faces", str(data_dir / "id_bbt_amy_01.png"), "--source-face-index", "4"]) == 3
    assert "out of range" in capsys.readouterr().err
    assert main(["faces", str(tmp_path / "missing.jpg")]) == 2
    assert (
        main(
            [
                "faces",
                str(data_dir / "id_bbt_amy_01.png"),
                "--draw",
                str(tmp_path / "no" / "x.png"),
            ]
        )
        == 4
    )
