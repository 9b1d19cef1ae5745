"""Bad input and bad output paths: one-line error naming the file and the reason, a non-zero exit
code, and nothing left behind. A decode error mid-clip stops with the frame number, or with
--skip-bad-frames repeats the last good frame and says how many."""

from __future__ import annotations

import shutil

import av
import numpy as np
import pytest
from media import ffmpeg, make_clip, run_cli

from mmcore.errors import DecodeError
from mmvideo.commands import main
from mmvideo.io.decode import VideoReader


def assert_one_line_error(code, err, expected_code, path, reason):
    assert code == expected_code
    assert "\n" not in err
    assert err.startswith(f"mmvideo: error: {path}")
    assert reason in err


@pytest.fixture
def out_dir(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    return folder


def _truncated_without_index(tmp_path, data_dir):
    path = tmp_path / "cut.mp4"
    src = (data_dir / "talking_head_turn_03.mp4").read_bytes()  # index (moov) at the end
    assert src.find(b"moov") > src.find(b"mdat")
    path.write_bytes(src[: len(src) // 2])
    return path


def _truncated_with_index(tmp_path, data_dir):
    full, path = tmp_path / "fast.mp4", tmp_path / "cut_fast.mp4"
    ffmpeg("-i", data_dir / "talking_head_turn_03.mp4", "-c", "copy", "-movflags", "+faststart",
           full)  # fmt: skip
    data = full.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _audio_only(tmp_path, data_dir):
    path = tmp_path / "audio.m4a"
    ffmpeg("-i", data_dir / "talking_head_turn_01.mp4", "-vn", "-c", "copy", path)
    return path


def _unsupported_codec(tmp_path, data_dir):
    mkv, path = tmp_path / "h264.mkv", tmp_path / "unknown.mkv"
    ffmpeg("-i", data_dir / "talking_head_turn_01.mp4", "-t", "1", "-c", "copy", mkv)
    data = mkv.read_bytes()
    assert data.count(b"V_MPEG4/ISO/AVC") == 1
    path.write_bytes(data.replace(b"V_MPEG4/ISO/AVC", b"V_QQQQQ/ISO/QQQ"))  # a codec no one knows
    return path


def _text_file(tmp_path, data_dir):
    path = tmp_path / "notes.mp4"
    path.write_text("this is not a video\n")
    return path


def _empty(tmp_path, data_dir):
    path = tmp_path / "empty.mp4"
    path.touch()
    return path


def _missing(tmp_path, data_dir):
    return tmp_path / "nowhere.mp4"


def _directory(tmp_path, data_dir):
    path = tmp_path / "folder.mp4"
    path.mkdir()
    return path


@pytest.mark.parametrize(
    ("make", "exit_code", "reason"),
    [
        (_missing, 2, "no such file"),
        (_directory, 2, "is a directory"),
        (_empty, 3, "empty file (0 bytes)"),
        (_truncated_without_index, 3, "not a readable media file"),
        (_truncated_with_index, 3, "truncated file"),
        (_text_file, 3, "not a readable media file"),
        (_audio_only, 3, "no video stream (audio)"),
        (_unsupported_codec, 3, "unsupported video codec"),
    ],
)
def test_bad_input(tmp_path, data_dir, out_dir, capsys, make, exit_code, reason):
    bad = make(tmp_path, data_dir)
    code, err, _ = run_cli(capsys, "transcode", "--no-progress", bad, out_dir / "out.mp4")
    assert_one_line_error(code, err, exit_code, bad, reason)
    assert list(out_dir.iterdir()) == []
    code, err, _ = run_cli(capsys, "probe", bad)
    assert_one_line_error(code, err, exit_code, bad, reason)


def test_output_folder_missing(data_dir, tmp_path, capsys):
    out = tmp_path / "no" / "such" / "out.mp4"
    code, err, _ = run_cli(capsys, "transcode", data_dir / "talking_head_turn_01.mp4", out)
    assert_one_line_error(code, err, 4, out, "does not exist")


def test_output_is_a_directory(data_dir, out_dir, capsys):
    code, err, _ = run_cli(capsys, "transcode", data_dir / "talking_head_turn_01.mp4", out_dir)
    assert_one_line_error(code, err, 4, out_dir, "is a directory")
    assert list(out_dir.iterdir()) == []


def test_output_equals_input(data_dir, tmp_path, capsys):
    src = tmp_path / "clip.mp4"
    shutil.copy(data_dir / "talking_head_turn_01.mp4", src)
    before = src.read_bytes()
    code, err, _ = run_cli(capsys, "transcode", src, tmp_path / "." / "clip.mp4")
    assert_one_line_error(code, err, 4, tmp_path / "." / "clip.mp4", "output is the input")
    assert src.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_unknown_output_container(data_dir, out_dir, capsys):
    code, err, _ = run_cli(
        capsys, "transcode", data_dir / "talking_head_turn_01.mp4", out_dir / "o.xyz"
    )
    assert code == 3 and "unknown output container .xyz" in err
    assert list(out_dir.iterdir()) == []


def test_nvenc_without_gpu_is_a_clear_error(data_dir, out_dir, capsys):
    from mmvideo.io.encode import encoder_available

    if encoder_available("h264_nvenc"):
        pytest.skip("this machine has NVENC")
    code, err, _ = run_cli(
        capsys,
        "transcode",
        "--codec",
        "h264_nvenc",
        data_dir / "talking_head_turn_01.mp4",
        out_dir / "o.mp4",
    )
    assert_one_line_error(code, err, 4, out_dir / "o.mp4", "cannot start h264_nvenc")
    assert list(out_dir.iterdir()) == []


def _clip_with_bad_frame(path, bad_index=5):
    """An MJPEG clip whose frame ``bad_index`` has its entropy-coded data overwritten."""
    make_clip(path, frames=10, codec="mjpeg", pix_fmt="yuvj420p")
    with av.open(str(path)) as c:
        pos, size = [(p.pos, p.size) for p in c.demux(video=0) if p.size][bad_index]
    data = bytearray(path.read_bytes())
    soi = data.index(b"\xff\xd8", pos)
    data[soi + 200 : soi + size - 50] = b"\xff" * (size - 250)
    path.write_bytes(bytes(data))


def test_decode_error_mid_clip_stops_with_frame_number(tmp_path, out_dir, capsys):
    clip = tmp_path / "bad.mkv"
    _clip_with_bad_frame(clip)
    with pytest.raises(DecodeError) as info, VideoReader(clip) as reader:
        list(reader)
    assert info.value.frame_index == 5
    code, err, _ = run_cli(capsys, "transcode", "--no-progress", clip, out_dir / "out.mp4")
    assert_one_line_error(code, err, 3, clip, "decode error at frame 5")
    assert "--skip-bad-frames" in err
    assert list(out_dir.iterdir()) == []  # the partial output was removed


def test_skip_bad_frames_repeats_last_good_frame(tmp_path, out_dir, capsys):
    clip = tmp_path / "bad.mkv"
    _clip_with_bad_frame(clip)
    with VideoReader(clip, skip_bad_frames=True) as reader:
        frames = list(reader)
    assert reader.skipped == 1 and len(frames) == 10
    assert [f.pts for f in frames] == [i * 40 for i in range(10)]  # timing kept
    assert np.array_equal(frames[5].image, frames[4].image)
    assert not np.array_equal(frames[6].image, frames[4].image)
    code = main(
        [
            "transcode",
            "--no-progress",
            "--skip-bad-frames",
            str(clip),
            str(out_dir / "out.mp4"),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "10 frames, 1 bad frame(s) replaced" in out


def test_output_folder_not_writable(data_dir, out_dir, capsys, monkeypatch):
    import os

    # permissions cannot stop root (CI), so the permission check itself is made to say no
    real_access = os.access
    monkeypatch.setattr(
        os,
        "access",
        lambda p, mode: False if str(p) == str(out_dir) else real_access(p, mode),
    )
    code, err, _ = run_cli(
        capsys, "transcode", data_dir / "talking_head_turn_01.mp4", out_dir / "o.mp4"
    )
    assert_one_line_error(code, err, 4, out_dir / "o.mp4", f"folder {out_dir} is not writable")
    assert list(out_dir.iterdir()) == []
