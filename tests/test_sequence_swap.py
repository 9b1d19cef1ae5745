"""``mmvideo swap`` on image sequences and with the post hand-offs, end to end, with a randomly
initialised tiny generator (plumbing, never quality): frame numbers and timecode kept, untouched
pixels bit-identical through EXR and DPX, the provenance tag on every output, ``--frames A-B``,
``--watermark`` detected by ``verify``."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from media import decoded_frames, first_frames, read_image, swap_cli, write_image

from mmvideo.commands import main
from mmvideo.config import SwapJob
from mmvideo.io.probe import probe
from mmvideo.io.sequence import display_to_linear, probe_sequence
from mmvideo.io.timecode import parse_timecode, read_video_timecode
from mmvideo.post.read_tag import read_provenance
from mmvideo.post.verify import verify

# Tests marked ``needs_hooks`` run once the swap pipeline takes the rest of the post hooks
# (docs/post_hooks.patch: the --frames/--timecode/--fill-missing/--watermark/--sign flags,
# timecode on every output, probe's post lines).
needs_hooks = pytest.mark.skipif(
    "watermark" not in {f.name for f in dataclasses.fields(SwapJob)},
    reason="swap pipeline without the post hooks (docs/post_hooks.patch)",
)

CLIP = "talking_head_turn_01.mp4"
SOURCE = "id_obama_01.jpg"
NUMBERS = [1001, 1002, 1003, 1004, 1006, 1007, 1008, 1009]  # 1005 is missing


def write_plate(folder, data_dir, kind):
    """Real frames as a plate: scene-linear half EXR or 10-bit DPX, numbered from 1001."""
    tc = parse_timecode("01:00:00:00", 25)
    for image, n in zip(decoded_frames(data_dir / CLIP, len(NUMBERS), "rgb48le"), NUMBERS):
        path = folder / f"plate.{n:04d}.{kind}"
        at = tc + (n - 1001)
        if kind == "exr":
            write_image(path, display_to_linear(image), "half", tc=at, rate=25)
        else:
            write_image(path, image, "uint16", bits=10, tc=at, rate=25)
    return folder / f"plate.%04d.{kind}"


def run_swap(checkpoint, data_dir, source_in, out, *extra):
    return swap_cli(
        data_dir, source_in, out, checkpoint, "--preset", "fast", "--warmup", "2", *extra
    )


@needs_hooks
@pytest.mark.parametrize("kind", ["exr", "dpx"])
def test_swap_on_a_sequence_keeps_numbers_timecode_and_untouched_pixels(
    tiny_checkpoint, data_dir, tmp_path, kind
):
    plate = write_plate(tmp_path, data_dir, kind)
    out = tmp_path / "out" / f"swap.%04d.{kind}"
    out.parent.mkdir()
    # a gap without --fill-missing: a one-line error and nothing written
    assert run_swap(tiny_checkpoint, data_dir, plate, out, "--frames", "1003-1007") == 3
    assert list(out.parent.iterdir()) == []
    assert (
        run_swap(tiny_checkpoint, data_dir, plate, out, "--frames", "1003-1007", "--fill-missing")
        == 0
    )
    result = probe_sequence(str(out))
    assert result.frames == (1003, 1004, 1005, 1006, 1007)
    assert str(result.timecode) == "01:00:00:02"
    assert read_provenance(out) is not None and read_provenance(out).synthetic_faces
    fmt = "float" if kind == "exr" else "uint16"
    for n in (1003, 1004, 1006, 1007):
        src, dst = (
            read_image(tmp_path / f"plate.{n:04d}.{kind}", fmt),
            read_image(out.parent / f"swap.{n:04d}.{kind}", fmt),
        )
        same = np.all(src == dst, axis=-1)
        assert 0.3 < same.mean() < 1.0  # the face changed, the rest did not
        # the corners are far from the face: bit for bit the plate's
        for corner in (
            same[:20, :20],
            same[:20, -20:],
            same[-20:, :20],
            same[-20:, -20:],
        ):
            assert corner.all()


@needs_hooks
def test_swap_range_of_a_video_with_watermark_timecode_and_tag(tiny_checkpoint, data_dir, tmp_path):
    out = tmp_path / "range.mp4"
    args = ["--frames", "10-20", "--timecode", "10:00:00:00", "--watermark"]
    assert run_swap(tiny_checkpoint, data_dir, data_dir / CLIP, out, *args) == 0
    assert probe(out).video.frames == 11
    assert read_video_timecode(out) == "10:00:00:10"
    tag = read_provenance(out)
    assert tag is not None and tag.synthetic_faces and tag.checkpoint_sha256
    assert verify(out).watermark.marked


def test_preview_of_a_sequence_labels_frame_numbers_and_timecode(
    tiny_checkpoint, data_dir, tmp_path
):
    from mmvideo.config import load_config
    from mmvideo.generate import load_models
    from mmvideo.preview import render_rows

    plate = write_plate(tmp_path, data_dir, "exr")
    models = load_models(str(tiny_checkpoint))
    rows = render_rows(
        str(data_dir / SOURCE), str(plate), "1002-1004", load_config("fast"), models,
        count=3, warmup=1, fill_missing=True,
    )  # fmt: skip
    assert [r.label for r in rows] == [1002, 1003, 1004]
    assert [r.timecode for r in rows] == ["01:00:00:01", "01:00:00:02", "01:00:00:03"]
    assert all(r.face_found for r in rows)
    assert rows[0].original.dtype == np.uint16  # display-space 16-bit from the EXR


@needs_hooks
def test_bad_timecode_fails_before_decoding_and_writes_nothing(
    tiny_checkpoint, data_dir, tmp_path, capsys
):
    out = tmp_path / "out.mp4"
    assert (
        run_swap(tiny_checkpoint, data_dir, data_dir / CLIP, out, "--timecode", "25:00:00:00") == 3
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == ("mmvideo: error: --timecode: timecode 25:00:00:00 is out of range at 25 fps")
    assert list(tmp_path.iterdir()) == []


@needs_hooks
def test_probe_shows_timecode_and_provenance_of_outputs(
    tiny_checkpoint, data_dir, tmp_path, capsys
):
    plate = write_plate(tmp_path, data_dir, "dpx")
    out = tmp_path / "swap.%04d.dpx"
    assert (
        run_swap(tiny_checkpoint, data_dir, plate, out, "--frames", "1002-1003", "--fill-missing")
        == 0
    )
    capsys.readouterr()
    assert main(["probe", str(out)]) == 0
    text = capsys.readouterr().out
    assert "image sequence (dpx)" in text and "2 frames" in text
    assert "timecode: 01:00:00:01" in text and "provenance: synthetic faces, mmvideo" in text
    assert main(["probe", "--json", str(out)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["post"]["timecode"] == "01:00:00:01"
    assert data["post"]["provenance"]["synthetic_faces"] is True
    assert main(["probe", str(data_dir / CLIP)]) == 0
    assert "provenance: no mmvideo tag" in capsys.readouterr().out


@needs_hooks
@pytest.mark.slow
def test_farm_chunks_and_merge_keep_timecode_and_tag(tiny_checkpoint, data_dir, tmp_path):
    from mmvideo.farm.chunk import run_chunk
    from mmvideo.farm.merge import merge
    from mmvideo.farm.plan import make_plan, save_plan
    from mmvideo.farm.swap import resolve_settings

    clip = first_frames(data_dir / CLIP, tmp_path / "clip.mov", "-timecode", "01:00:00:00")
    settings = resolve_settings("fast", tiny_checkpoint, {"threads": 1, "crf": 0, "batch_size": 4})
    job = tmp_path / "job" / "job.json"
    plan = make_plan(job, clip, data_dir / SOURCE, settings, chunks=2)
    save_plan(plan, job)
    for i in range(2):
        run_chunk(job, i)
    labels = [read_video_timecode(c.output) for c in plan.chunks]
    # each chunk: its own first frame (the cut falls on the generator batch of 4: frame 8)
    assert labels == ["01:00:00:00", "01:00:00:08"]
    merged = merge(job, tmp_path / "merged.mov").output
    assert read_video_timecode(merged) == "01:00:00:00"
    assert read_provenance(merged) == read_provenance(plan.chunks[0].output) is not None
