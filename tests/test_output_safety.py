"""Never lose a user's file, and explain instead of crashing (issue 17, items 11 and 12, and the
error paths): existing outputs are kept unless -y; every output, source image and optional
dependency is checked before any model loads; what we write gets the umask's mode; PCM audio into
mp4 and a bad --ffmpeg-args option end with one line, not a traceback."""

from __future__ import annotations

import errno
import os
import sys

import numpy as np
import pytest
from media import SINE, TESTSRC, farm_job, ffmpeg, random_shard, run_cli, transcode_chunk

from magicmask.checkpoint import save_checkpoint
from magicmask.config import create_config
from magicmask.export import export_onnx
from magicmask.model.generator import MagicMaskGenerator
from mmcore.atomic import atomic_output, write_errors, write_json_atomic
from mmcore.errors import ModelError, OutputError
from mmvideo.commands.swap import write_contact_sheet
from mmvideo.farm import chunk as chunk_module
from mmvideo.farm.chunk import read_status
from mmvideo.farm.merge import merge
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.transcode import transcode
from mmvideo.preview import write_sheet
from train.shards import write_shard


def one_line(err: str) -> str:
    assert err.startswith("mmvideo: error: ") and "\n" not in err, err
    assert "Traceback" not in err
    return err


@pytest.fixture
def clip(tmp_path):
    path = tmp_path / "clip.mp4"
    ffmpeg(*TESTSRC, *SINE, "-t", "0.4", "-c:v", "libx264", "-c:a", "aac", path)
    return path


@pytest.fixture
def face(data_dir):
    return data_dir / "id_obama_01.jpg"


@pytest.fixture
def no_models(monkeypatch):
    """Any model load fails the test: the checks under test must come first."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the paths were checked")

    import mmvideo.commands.faces
    import mmvideo.commands.farm
    import mmvideo.commands.models
    import mmvideo.generate
    import train.fit

    monkeypatch.setattr(mmvideo.generate, "load_models", refuse)
    monkeypatch.setattr(mmvideo.commands.faces, "FaceAnalyzer", refuse)
    monkeypatch.setattr(mmvideo.commands.models, "_resolve", refuse)
    monkeypatch.setattr(train.fit, "export_training_state", refuse)
    monkeypatch.setattr(mmvideo.commands.farm, "resolve_settings", refuse)


# ---- item 11: -y / -n, refuse by default, before any model loads ----------------------------


def _existing(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(b"a finished render")
    return path


COMMANDS = {
    "swap": lambda c, f, o: ["swap", "--source", f, "--in", c, "--out", o],
    "preview": lambda c, f, o: ["preview", "--source", f, "--in", c, "--frames", "0-3", "--out", o],
    "tracks": lambda c, f, o: ["tracks", c, "--sheet", o],
    "faces": lambda c, f, o: ["faces", f, "--draw", o],
    "export-onnx": lambda c, f, o: ["models", "export-onnx", "tiny", o],
    "train-export": lambda c, f, o: ["train-export", f, "--to", o],
    "plan": lambda c, f, o: ["plan", "--in", c, "--source", f, "--out", o],
    "transcode": lambda c, f, o: ["transcode", "--no-progress", c, o],
}
SUFFIX = {"preview": ".png", "tracks": ".png", "faces": ".png", "export-onnx": ".onnx",
          "train-export": ".pt", "plan": ".json"}  # fmt: skip


@pytest.mark.parametrize("flag", [None, "-n", "--no-overwrite"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_existing_output_is_kept_unless_y(tmp_path, capsys, clip, face, no_models, command, flag):
    out = _existing(tmp_path, "out" + SUFFIX.get(command, ".mp4"))
    args = COMMANDS[command](clip, face, out) + ([flag] if flag else [])
    code, err, _ = run_cli(capsys, *args)
    assert code == 4
    assert (
        one_line(err) == f"mmvideo: error: {out}: already exists; pass -y/--overwrite to replace it"
    )
    assert out.read_bytes() == b"a finished render"


def test_y_replaces_an_existing_output(tmp_path, capsys, clip):
    out = _existing(tmp_path, "out.mp4")
    code, err, _ = run_cli(capsys, "transcode", "--no-progress", "-y", clip, out)
    assert code == 0, err
    assert out.read_bytes() != b"a finished render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4", "out.mp4"]
    code, err, _ = run_cli(capsys, "transcode", "--no-progress", "--overwrite", clip, out)
    assert code == 0, err


@pytest.mark.parametrize(
    ("command", "victim"),
    [("swap", "clip"), ("swap", "face"), ("plan", "clip"), ("plan", "face"),
     ("transcode", "clip"), ("faces", "face")],
)  # fmt: skip
def test_output_that_is_an_input_is_refused_even_with_y(
    tmp_path, capsys, clip, face, no_models, command, victim
):
    actor = tmp_path / "actor.jpg"
    actor.write_bytes(face.read_bytes())
    target = {"clip": clip, "face": actor}[victim]
    before = target.read_bytes()
    code, err, _ = run_cli(capsys, *COMMANDS[command](clip, actor, target), "-y")
    assert code == 4 and "output is the input file" in one_line(err)
    assert target.read_bytes() == before


@pytest.mark.parametrize("command", ["swap", "preview", "tracks", "faces", "transcode"])
def test_missing_output_folder_is_found_before_models_load(
    tmp_path, capsys, clip, face, no_models, command
):
    out = tmp_path / "no" / "such" / ("out" + SUFFIX.get(command, ".mp4"))
    code, err, _ = run_cli(capsys, *COMMANDS[command](clip, face, out))
    assert code == 4 and "does not exist" in one_line(err)


@pytest.mark.parametrize("command", ["swap", "preview"])
def test_source_that_is_not_an_image_is_found_before_models_load(
    tmp_path, capsys, clip, no_models, command
):
    fake = tmp_path / "actor.jpg"
    fake.write_text("not an image")
    out = tmp_path / ("out" + SUFFIX.get(command, ".mp4"))
    code, err, _ = run_cli(capsys, *COMMANDS[command](clip, fake, out))
    assert code == 3 and f"{fake}: cannot read image" in one_line(err)


def test_preview_without_openimageio_says_which_extra(
    tmp_path, capsys, clip, face, no_models, monkeypatch
):
    monkeypatch.setitem(sys.modules, "OpenImageIO", None)  # import now raises ImportError
    code, err, _ = run_cli(capsys, *COMMANDS["preview"](clip, face, tmp_path / "s.png"))
    assert code == 3
    assert "need OpenImageIO: pip install 'mmvideo[post]'" in one_line(err)


def test_swap_sign_without_c2pa_says_which_extra(
    tmp_path, capsys, clip, face, no_models, monkeypatch
):
    monkeypatch.setitem(sys.modules, "c2pa", None)
    cert, key = _existing(tmp_path, "cert.pem"), _existing(tmp_path, "key.pem")
    args = COMMANDS["swap"](clip, face, tmp_path / "out.mp4") + ["--sign", cert, key]
    code, err, _ = run_cli(capsys, *args)
    assert code == 3
    assert "--sign needs c2pa-python: pip install 'mmvideo[post]'" in one_line(err)


@pytest.mark.parametrize("command", ["swap", "preview", "tracks", "faces"])
def test_missing_face_backend_package_is_found_before_models_load(
    tmp_path, capsys, clip, face, no_models, monkeypatch, command
):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "face_alignment" else real(name, *a),
    )
    flag = "--face-backend"
    out = tmp_path / ("out" + SUFFIX.get(command, ".mp4"))
    code, err, _ = run_cli(capsys, *COMMANDS[command](clip, face, out), flag, "fan")
    assert code == 5
    assert "face_alignment: package not installed (pip install 'mmvideo[fan]')" in one_line(err)


def test_sequence_output_with_existing_frames_is_kept_unless_y(
    tmp_path, capsys, clip, face, no_models
):
    frame = _existing(tmp_path, "out.0001.png")
    code, err, _ = run_cli(capsys, *COMMANDS["swap"](clip, face, tmp_path / "out.%04d.png"))
    assert code == 4 and "1 frames already exist; pass -y/--overwrite" in one_line(err)
    assert frame.read_bytes() == b"a finished render"


def test_merge_keeps_an_existing_output_unless_y(
    tmp_path, capsys, clip, monkeypatch, tiny_checkpoint
):
    monkeypatch.setattr(chunk_module, "run_job", transcode_chunk)
    job, plan = farm_job(tmp_path, clip, 2, tiny_checkpoint)
    for span in plan.chunks:
        chunk_module.run_chunk(job, span.index)
    out = _existing(tmp_path, "merged.mp4")
    code, err, _ = run_cli(capsys, "merge", job, "--out", out)
    assert code == 4 and "already exists; pass -y/--overwrite" in one_line(err)
    assert out.read_bytes() == b"a finished render"
    code, err, _ = run_cli(capsys, "merge", job, "--out", out, "-y")
    assert code == 0, err
    merged = out.read_bytes()
    assert merged != b"a finished render"
    # a requeued merge task: the output is already this merge, so it is kept and all is well
    code, err, said = run_cli(capsys, "merge", job, "--out", out)
    assert code == 0 and "already merged from the current chunks" in said, err
    assert out.read_bytes() == merged


def test_run_chunk_still_resumes_and_y_reruns_a_finished_chunk(
    tmp_path, capsys, clip, monkeypatch, tiny_checkpoint
):
    monkeypatch.setattr(chunk_module, "run_job", transcode_chunk)
    job, _ = farm_job(tmp_path, clip, 2, tiny_checkpoint)
    code, err, out = run_cli(capsys, "run-chunk", job, "--index", "0")
    assert code == 0 and "chunk 0:" in out and "already done" not in out, err
    first = read_status(job, 0).started
    for flag in ([], ["-n"]):
        code, err, out = run_cli(capsys, "run-chunk", job, "--index", "0", *flag)
        assert code == 0 and "chunk 0: already done" in out, err
    code, err, out = run_cli(capsys, "run-chunk", job, "--index", "0", "-y")
    assert code == 0 and "already done" not in out, err
    assert read_status(job, 0).started > first
    code, err, _ = run_cli(capsys, "run-chunk", job, "--index", "0", "-n", "--force")
    assert code == 2 and "contradict" in err


def test_batch_fails_a_clip_whose_output_exists_before_its_chunks_run(
    tmp_path, capsys, clip, face, monkeypatch, tiny_checkpoint
):
    ran = []
    monkeypatch.setattr(chunk_module, "run_job", lambda job, cfg: ran.append(job) or {})
    out = _existing(tmp_path, "shot.mp4")
    batch = tmp_path / "batch.toml"
    batch.write_text(
        f'[defaults]\ncheckpoint = "{tiny_checkpoint}"\npreset = "fast"\n\n'
        f'[[clip]]\nname = "shot"\ninput = "{clip}"\nsource = "{face}"\noutput = "{out}"\n'
    )
    code, err, table = run_cli(capsys, "batch", batch, "--workers", "1")
    assert code == 1 and "1 of 1 clips failed: shot" in err
    assert "already exists; pass -y/--overwrite" in table
    assert ran == [] and out.read_bytes() == b"a finished render"


# ---- item 12: the umask's mode, not mkstemp's 0600 ----------------------------------------


@pytest.fixture(params=[0o022, 0o027])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def _mode(path) -> int:
    return path.stat().st_mode & 0o777


def test_atomic_output_gets_the_umask_mode(tmp_path, umask):
    with atomic_output(tmp_path / "a.bin") as tmp:
        tmp.write_bytes(b"x")
    assert _mode(tmp_path / "a.bin") == 0o666 & ~umask


def test_sheets_checkpoints_and_shards_get_the_umask_mode(tmp_path, umask):
    write_contact_sheet(tmp_path / "sheet.png", {1: np.zeros((32, 32, 3), np.uint8)})
    cfg = create_config("tiny", identity_dim=128)
    save_checkpoint(tmp_path / "g.pt", MagicMaskGenerator(cfg), cfg, "dlib-resnet", {})
    write_shard(tmp_path / "shard-1.npz", random_shard())
    for name in ("sheet.png", "g.pt", "shard-1.npz"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name


def test_onnx_videos_json_and_preview_sheets_get_the_umask_mode(tmp_path, clip, umask):
    # the writers that create their temp file through mmcore.atomic.temp_beside since the leaf
    # package: the ONNX export, the PyAV and ffmpeg encoders, farm JSON, the preview sheet
    cfg = create_config("tiny", identity_dim=128)
    export_onnx(MagicMaskGenerator(cfg), tmp_path / "g.onnx")
    transcode(clip, tmp_path / "pyav.mp4", EncodeOptions())
    transcode(clip, tmp_path / "ffmpeg.mp4", EncodeOptions(ffmpeg_args=("-g", "5")))
    write_json_atomic(tmp_path / "status.json", {"state": "done"})
    write_sheet(tmp_path / "preview.png", np.zeros((16, 16, 3), np.uint8), None)
    for name in ("g.onnx", "pyav.mp4", "ffmpeg.mp4", "status.json", "preview.png"):
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_farm_merge_gets_the_umask_mode(tmp_path, clip, monkeypatch, umask, tiny_checkpoint):
    monkeypatch.setattr(chunk_module, "run_job", transcode_chunk)
    job, plan = farm_job(tmp_path, clip, 2, tiny_checkpoint)
    for span in plan.chunks:
        chunk_module.run_chunk(job, span.index)
    merge(job, tmp_path / "merged.mp4")
    assert _mode(tmp_path / "merged.mp4") == 0o666 & ~umask


# ---- error paths that crashed ----------------------------------------------------------------


@pytest.fixture(params=["mkv", "mov"])
def pcm_clip(tmp_path, request):
    path = tmp_path / f"pcm.{request.param}"
    ffmpeg(*TESTSRC, "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000", "-ac", "2",
           "-t", "0.4", "-c:v", "libx264", "-c:a", "pcm_s16le", path)  # fmt: skip
    return path


def test_pcm_audio_into_mp4_is_one_line_suggesting_aac(tmp_path, capsys, pcm_clip):
    out = tmp_path / "out.mp4"
    code, err, _ = run_cli(capsys, "transcode", "--no-progress", pcm_clip, out)
    if pcm_clip.suffix == ".mov":
        # mov keeps the channel positions, which mp4 stores with PCM: that one goes in
        assert code == 0, err
        return
    assert code == 4
    assert "container cannot hold audio stream #1 (pcm_s16le); use --audio-codec aac" in one_line(
        err
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == [pcm_clip.name]
    code, err, _ = run_cli(
        capsys, "transcode", "--no-progress", "--audio-codec", "aac", pcm_clip, out
    )
    assert code == 0, err


def test_swap_of_pcm_mkv_into_mp4_is_one_line_suggesting_aac(tmp_path, capsys, face):
    clip = tmp_path / "pcm.mkv"
    ffmpeg(*TESTSRC, "-f", "lavfi", "-i", "sine=sample_rate=48000", "-ac", "2", "-t", "0.2",
           "-c:v", "libx264", "-c:a", "pcm_s16le", clip)  # fmt: skip
    code, err, _ = run_cli(capsys, "swap", "--no-progress", "--source", face, "--in", clip,
                           "--out", tmp_path / "out.mp4", "--preset", "fast")  # fmt: skip
    assert code == 4
    assert "(pcm_s16le); use --audio-codec aac" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pcm.mkv"]


def test_bad_ffmpeg_args_show_ffmpegs_own_message(tmp_path, capsys, clip):
    out = tmp_path / "out.mkv"
    code, err, _ = run_cli(
        capsys, "transcode", "--no-progress", "--ffmpeg-args", "-no-such-option 1", clip, out
    )
    assert code == 4
    assert "ffmpeg encode failed (Unrecognized option 'no-such-option'" in one_line(err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clip.mp4"]


def test_write_errors_is_one_line_and_lets_the_projects_own_errors_through(tmp_path):
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(OutputError, match=r"^x: cannot write \(No space left on device\)$"):
        with write_errors("x"):
            raise full
    # a widened catch (torch's full disk), its message's first line; an empty one: its type
    with pytest.raises(OutputError, match=r"^x: cannot save it \(disk full\); kept$"):
        with write_errors("x", "save it", "; kept", (OSError, RuntimeError)):
            raise RuntimeError("disk full\nC++ trace")
    with pytest.raises(OutputError, match=r"\(RuntimeError\)$"):
        with write_errors("x", errors=(RuntimeError,)):
            raise RuntimeError()
    with pytest.raises(ModelError, match="^bad$"):
        with write_errors("x", errors=(RuntimeError,)):
            raise ModelError("bad")
    with pytest.raises(ValueError):  # not a write error: not caught
        with write_errors("x"):
            raise ValueError("no")
    # a folder that cannot be made: write_json_atomic says so in the same line
    (tmp_path / "file").write_text("")
    with pytest.raises(OutputError, match=r"sub/a\.json: cannot write \(Not a directory\)$"):
        write_json_atomic(tmp_path / "file" / "sub" / "a.json", {})
