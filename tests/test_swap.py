"""`mmvideo swap` end to end on real clips with a randomly initialised tiny generator.

These check plumbing, never quality: frame count, timestamps and audio survive; only masked
pixels change; tracks are stable; smoothing lowers jitter; same input and seed → same output;
bad input fails early and leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import replace

import av
import cv2
import numpy as np
import pytest
import torch
from media import TONE_RATE, blank_image, decoded_audio, frames_of, stepped_tone_clip, swap_cli

from magicmask.face.analyzer import FaceAnalyzer
from magicmask.face.prepare import prepare_target
from mmcore.errors import NoFaceFound
from mmvideo import pipeline
from mmvideo.commands import main
from mmvideo.config import SwapJob, load_config
from mmvideo.generate import load_models
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.encode import VideoWriter
from mmvideo.io.frame import Frame
from mmvideo.io.probe import probe
from mmvideo.post.read_tag import read_provenance


@pytest.fixture(scope="session")
def models(tiny_checkpoint):
    return load_models(str(tiny_checkpoint))


@pytest.fixture(scope="session")
def analyzer():
    return FaceAnalyzer(pipeline.face_config(load_config("balanced").detect))


@pytest.fixture(scope="session")
def stills():
    return FaceAnalyzer(pipeline.source_face_config())


def audio_packets(path):
    with av.open(str(path)) as c:
        return [(p.pts, hashlib.sha1(bytes(p)).hexdigest()) for p in c.demux(audio=0) if p.size]


@pytest.fixture(scope="session")
def cli_run(tiny_checkpoint, data_dir, tmp_path_factory):
    """One full `mmvideo swap` of a real clip with audio, through the command line."""
    out = tmp_path_factory.mktemp("cli") / "swapped.mp4"
    clip = data_dir / "talking_head_turn_03.mp4"
    return swap_cli(data_dir, clip, out, tiny_checkpoint), clip, out


def test_cli_swap_keeps_frames_timestamps_and_audio(cli_run):
    rc, clip, out = cli_run
    assert rc == 0
    src, dst = probe(clip), probe(out)
    assert dst.video.frames == src.video.frames == 108
    assert dst.video.frame_pts == src.video.frame_pts
    assert dst.video.time_base == src.video.time_base
    assert audio_packets(out) == audio_packets(clip) != []
    assert not list(out.parent.glob(".*partial"))
    tag = read_provenance(out)
    assert tag is not None and tag.synthetic_faces


def test_cli_swap_changes_the_face(cli_run):
    _, clip, out = cli_run
    a, b = frames_of(clip, 5), frames_of(out, 5)
    diff = np.abs(a[2].astype(int) - b[2].astype(int)).max(-1)
    # the random generator repaints the face: big changes inside, none in the corners
    assert (diff > 40).mean() > 0.05
    assert diff[:20, :20].max() < 12 and diff[-20:, -20:].max() < 12


def test_only_masked_pixels_change_and_faceless_frames_pass_through(
    models, analyzer, stills, data_dir, tmp_path
):
    """Lossless RGB (FFV1) on both sides, so any pixel difference comes from the swap."""
    faces = frames_of(data_dir / "talking_head_outdoor_01.mp4", 12)
    gray = [np.full_like(faces[0], 128) for _ in range(6)]
    clip = tmp_path / "clip.mkv"
    _write_lossless(clip, faces + gray + faces[:6], data_dir / "talking_head_outdoor_01.mp4")
    cfg = load_config("balanced", {"codec": "ffv1", "batch_size": 4})
    out = tmp_path / "out.mkv"
    job = SwapJob(source=str(data_dir / "id_biden_01.jpg"), input=str(clip), output=str(out))
    summary = pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
    assert summary.frames == 24
    assert summary.frames_without_face == 6
    assert summary.cuts == [12, 18]
    # the same face after the cuts joins its track again by identity (issue 16: one track per
    # person), in a new segment whose filters start afresh
    assert summary.tracks == 1
    before, after = frames_of(clip), frames_of(out)
    plan = _plan(clip, cfg, models, analyzer)
    for i, (a, b) in enumerate(zip(before, after)):
        changed = np.any(a != b, axis=-1)
        if i not in plan:
            assert not changed.any(), f"frame {i} has no face but changed"
            continue
        allowed = np.zeros(changed.shape, bool)
        for _, face in plan[i]:
            ti = prepare_target(a, face.landmarks, face.landmarks_3d)
            reach = max(0, cfg.compose.mask_feather - cfg.compose.mask_erosion) + 2
            allowed |= _warped_region(ti, a.shape, reach)
        assert changed.any()
        assert not (changed & ~allowed).any(), f"frame {i}: pixels changed outside the mask"


def test_faceless_frames_keep_the_source_yuv_bit_for_bit(
    models, analyzer, stills, data_dir, tmp_path
):
    """Lossless x264 (CRF 0) in and out: frames without a face are encoded from the decoder's own
    picture, so their Y, U and V planes equal the source's; swapped frames do change."""
    faces = frames_of(data_dir / "talking_head_outdoor_01.mp4", 6)
    rng = np.random.default_rng(0)
    noise = [
        cv2.GaussianBlur(rng.integers(0, 256, faces[0].shape, np.uint8), (5, 5), 0)
        for _ in range(4)
    ]
    clip = tmp_path / "clip.mp4"
    info = probe(data_dir / "talking_head_outdoor_01.mp4")
    with VideoWriter(
        clip, info, EncodeOptions(crf=0, encoder_preset="ultrafast"), copy_streams=False
    ) as w:
        for i, img in enumerate(faces + noise):
            w.write(Frame(i, info.video.frame_pts[i], info.video.time_base, img))
    cfg = load_config("balanced", {"crf": 0, "encoder_preset": "ultrafast"})
    out = tmp_path / "out.mp4"
    job = SwapJob(source=str(data_dir / "id_biden_01.jpg"), input=str(clip), output=str(out))
    summary = pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
    assert summary.frames_without_face == 4

    def planes(path):
        with av.open(str(path)) as c:
            return [f.to_ndarray() for f in c.decode(video=0)]

    before, after = planes(clip), planes(out)
    assert before[0].shape == after[0].shape  # yuv420p both sides
    assert not any(np.array_equal(a, b) for a, b in zip(before[:6], after[:6]))
    assert all(np.array_equal(a, b) for a, b in zip(before[6:], after[6:]))


def _write_lossless(path, images, like):
    info = probe(like)
    with VideoWriter(path, info, EncodeOptions(codec="ffv1"), copy_streams=False) as w:
        for i, img in enumerate(images):
            w.write(Frame(i, info.video.frame_pts[i], info.video.time_base, img))


def _plan(clip, cfg, models, analyzer):
    info = probe(clip)
    analysis = pipeline.analyze(str(clip), info, cfg, analyzer, models)
    return pipeline.plan_faces(analysis, cfg, None, 0, info.video.frames)[0]


def _warped_region(ti, shape, reach):
    inv = cv2.invertAffineTransform(ti.matrix)
    warped = cv2.warpAffine((ti.mask > 0.5).astype(np.uint8), inv, (shape[1], shape[0]))
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * reach + 1,) * 2)
    return cv2.dilate(warped, k) > 0


def test_same_input_and_seed_give_identical_output(models, analyzer, stills, data_dir, tmp_path):
    cfg = load_config("balanced", {"codec": "ffv1"})  # lossless: any difference shows
    outs = []
    for name in ("a.mkv", "b.mkv"):
        job = SwapJob(
            source=str(data_dir / "id_obama_01.jpg"),
            input=str(data_dir / "talking_head_turn_01.mp4"),
            output=str(tmp_path / name),
            stop=16,
            seed=3,
        )
        pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
        outs.append(frames_of(tmp_path / name))
    assert len(outs[0]) == 16
    assert all(np.array_equal(a, b) for a, b in zip(*outs))


def test_track_is_stable_through_a_real_clip(models, analyzer, data_dir):
    clip = data_dir / "talking_head_glasses_02.mp4"
    info = probe(clip)
    analysis = pipeline.analyze(str(clip), info, load_config("balanced"), analyzer, models, 0, 60)
    assert analysis.frames == 60
    assert len(analysis.tracks) == 1
    (track,) = analysis.tracks
    assert len(track.faces) >= 57
    assert analysis.cuts == []


def test_kalman_and_rts_lower_jitter_on_a_real_clip(analyzer, data_dir):
    clip = data_dir / "talking_head_outdoor_01.mp4"
    cfg = load_config("balanced", {"detect_interval": 1})  # raw = the detector's own noise
    # no identity encoder: tracking by IoU alone is enough for one face, and faster
    analysis = pipeline.analyze(str(clip), probe(clip), cfg, analyzer, None, 0, 40)
    jit = pipeline.track_jitter(analysis.tracks, cfg)
    assert jit["kalman"] < jit["raw"]
    assert jit["rts"] < jit["raw"]


def test_source_without_a_face_fails_before_decoding(
    models, analyzer, stills, data_dir, tmp_path, monkeypatch
):
    blank = blank_image(tmp_path / "blank.png", 90)

    def no_decoding(*args, **kwargs):
        raise AssertionError("the video was opened for decoding")

    monkeypatch.setattr(pipeline, "open_reader", no_decoding)
    out = tmp_path / "out.mp4"
    job = SwapJob(
        source=str(blank),
        input=str(data_dir / "talking_head_turn_01.mp4"),
        output=str(out),
    )
    with pytest.raises(NoFaceFound, match="blank.png"):
        pipeline.run_swap(job, load_config("balanced"), models, analyzer, source_analyzer=stills)
    assert not out.exists()


def test_interrupt_leaves_no_partial_output(
    models, analyzer, stills, data_dir, tmp_path, monkeypatch
):
    calls = []
    real = pipeline.generate_faces

    def interrupted(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "generate_faces", interrupted)
    out = tmp_path / "out.mp4"
    job = SwapJob(
        source=str(data_dir / "id_obama_01.jpg"),
        input=str(data_dir / "talking_head_turn_01.mp4"),
        output=str(out),
        stop=20,
    )
    cfg = replace(
        load_config("balanced"),
        generate=replace(load_config("balanced").generate, batch_size=4),
    )
    with pytest.raises(KeyboardInterrupt):
        pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
    assert list(tmp_path.iterdir()) == []


def test_print_config_merges_preset_and_flags(capsys):
    assert (
        main(
            [
                "swap",
                "--preset",
                "fast",
                "--batch-size",
                "3",
                "--smoothing",
                "rts",
                "--print-config",
            ]
        )
        == 0
    )
    cfg = tomllib.loads(capsys.readouterr().out)
    assert cfg["generate"]["batch_size"] == 3
    assert cfg["smooth"]["smoothing"] == "rts"
    assert cfg["detect"]["detect_interval"] == 10  # from the fast preset
    assert main(["swap", "--preset", "fast", "--smoothing", "median", "--print-config"]) != 0


def test_missing_inputs_are_one_line_errors(tiny_checkpoint, data_dir, tmp_path, capsys):
    rc = main(
        [
            "swap",
            "--source", str(tmp_path / "nobody.jpg"),
            "--in", str(data_dir / "talking_head_turn_01.mp4"),
            "--out", str(tmp_path / "o.mp4"),
            "--checkpoint", str(tiny_checkpoint),
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc == 2 and err.count("\n") == 0 and "nobody.jpg" in err


def test_tracks_command_lists_tracks_and_writes_a_sheet(
    tiny_checkpoint, data_dir, tmp_path, capsys
):
    sheet = tmp_path / "sheet.png"
    clip = data_dir / "talking_head_turn_02.mp4"
    rc = main(
        [
            "tracks",
            str(clip),
            "--sheet",
            str(sheet),
            "--checkpoint",
            str(tiny_checkpoint),
            "--detect-interval",
            "10",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "track 1: frames 0-" in out
    image = cv2.imread(str(sheet))
    assert image is not None and image.shape[0] == pipeline.THUMB


def test_faces_at_the_edge_and_tiny_faces(models, analyzer, stills, data_dir, tmp_path):
    """A face sliding out over the right border is swapped while it is found (and only inside
    its mask); a face below ``min_face_size`` is left alone."""
    still = cv2.cvtColor(cv2.imread(str(data_dir / "id_obama_01.jpg")), cv2.COLOR_BGR2RGB)
    cx, cy, side = 502.0, 282.0, 249.0  # the face box centre and size in this still
    frames = []
    for k in range(10):
        # a 150 px face whose centre moves from x=300 to x=462 (the edge is at 480)
        s = 150.0 / side
        m = np.array([[s, 0, 300 + 18 * k - cx * s], [0, s, 240 - cy * s]])
        frames.append(cv2.warpAffine(still, m, (480, 480)))
    for _ in range(4):
        s = 14.0 / side  # far below min_face_size
        m = np.array([[s, 0, 240 - cx * s], [0, s, 240 - cy * s]])
        frames.append(cv2.warpAffine(still, m, (480, 480)))
    clip = tmp_path / "edge.mkv"
    _write_lossless(clip, frames, data_dir / "talking_head_outdoor_01.mp4")
    cfg = load_config("balanced", {"codec": "ffv1", "batch_size": 4, "detect_interval": 1})
    out = tmp_path / "out.mkv"
    job = SwapJob(source=str(data_dir / "id_biden_01.jpg"), input=str(clip), output=str(out))
    summary = pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
    assert summary.frames == 14
    plan = _plan(clip, cfg, models, analyzer)
    swapped = sorted(plan)
    assert swapped[:6] == list(range(6))  # found at least until it touches the border
    assert not any(i >= 10 for i in swapped)  # the tiny face is never swapped
    before, after = frames_of(clip), frames_of(out)
    reach = max(0, cfg.compose.mask_feather - cfg.compose.mask_erosion) + 2
    for i, (a, b) in enumerate(zip(before, after)):
        changed = np.any(a != b, axis=-1)
        if i not in plan:
            assert not changed.any()
            continue
        allowed = np.zeros(changed.shape, bool)
        for _, face in plan[i]:
            allowed |= _warped_region(prepare_target(a, face.landmarks), a.shape, reach)
        assert changed.any() and not (changed & ~allowed).any()


# -- face-analysis options ---------------------------------------------------------------------

MULTI = "multi_face_obama_biden_01.jpg"  # two faces of about the same size


def test_print_config_shows_the_face_options(capsys):
    args = ["swap", "--preset", "fast", "--face-backend", "fan", "--detector", "mtcnn"]
    args += ["--face-models", "/models", "--source-face-index", "1", "--print-config"]
    assert main(args) == 0
    detect = tomllib.loads(capsys.readouterr().out)["detect"]
    assert detect["face_backend"] == "fan" and detect["detector"] == "mtcnn"
    assert detect["face_models"] == "/models" and detect["source_face_index"] == 1
    assert main(["swap", "--detector", "retina", "--print-config"]) != 0
    capsys.readouterr()
    # unset: the backend's default detector, no folder, the largest source face
    assert main(["swap", "--print-config"]) == 0
    detect = tomllib.loads(capsys.readouterr().out)["detect"]
    assert detect["face_backend"] == "dlib"
    assert not {"detector", "face_models", "source_face_index"} & set(detect)


def test_source_face_index_picks_another_face(models, stills, data_dir, caplog):
    path = str(data_dir / MULTI)
    caplog.set_level("INFO", logger="mmvideo.pipeline")
    default = pipeline.source_identity(path, stills, models)
    assert "2 faces found, using the largest" in caplog.text
    assert "using face 0 of 2" in caplog.text
    first = pipeline.source_identity(path, stills, models, index=0)
    caplog.clear()
    second = pipeline.source_identity(path, stills, models, index=1)
    assert "using face 1 of 2" in caplog.text
    assert torch.equal(default, first)
    # another person: another identity code
    assert torch.nn.functional.cosine_similarity(first, second).item() < 0.99


def test_source_face_index_out_of_range_is_a_one_line_error(
    tiny_checkpoint, data_dir, tmp_path, capsys
):
    out = tmp_path / "o.mp4"
    rc = main(
        [
            "swap",
            "--source", str(data_dir / MULTI),
            "--in", str(data_dir / "talking_head_turn_01.mp4"),
            "--out", str(out),
            "--checkpoint", str(tiny_checkpoint),
            "--source-face-index", "2",
            "--no-progress",
        ]
    )  # fmt: skip
    err = capsys.readouterr().err.strip()
    assert rc != 0 and err.count("\n") == 0
    assert MULTI in err and "--source-face-index 2 out of range (2 faces found)" in err
    assert list(tmp_path.iterdir()) == []


def test_swap_with_the_mtcnn_detector(tiny_checkpoint, data_dir, tmp_path, monkeypatch):
    """``--detector mtcnn`` reaches the analysers: MTCNN finds the faces of the source and
    of the frames, and the swap runs end to end."""
    from magicmask.face import mtcnn_backend

    calls = []
    original = mtcnn_backend.MtcnnDetector.__call__

    def counted(self, image):
        calls.append(image.shape)
        return original(self, image)

    monkeypatch.setattr(mtcnn_backend.MtcnnDetector, "__call__", counted)
    clip = data_dir / "talking_head_turn_01.mp4"
    out = tmp_path / "swapped.mp4"
    rc = swap_cli(
        data_dir,
        clip,
        out,
        tiny_checkpoint,
        "--detector",
        "mtcnn",
        "--detect-interval",
        "3",
        "--stop",
        "6",
    )
    assert rc == 0
    assert len(calls) == 1 + 2  # the source, then frames 0 and 3
    a, b = frames_of(clip, 6), frames_of(out)
    assert len(b) == 6
    diff = np.abs(a[3].astype(int) - b[3].astype(int)).max(-1)
    assert (diff > 40).mean() > 0.02  # the face found by MTCNN was repainted


def test_swap_pins_blas_to_one_thread(models, analyzer, stills, data_dir, tmp_path, monkeypatch):
    """BLAS runs on one thread for the whole swap (as in every farm chunk) and is given back."""
    from threadpoolctl import threadpool_info, threadpool_limits

    seen = []

    def spy(*args, **kwargs):
        seen.append([p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"])
        raise KeyboardInterrupt  # stop here: the rest of the run is not the point

    monkeypatch.setattr(pipeline, "source_identity", spy)
    job = SwapJob(
        source=str(data_dir / "id_obama_01.jpg"),
        input=str(data_dir / "talking_head_turn_01.mp4"),
        output=str(tmp_path / "o.mp4"),
    )
    cfg = load_config("fast")
    with threadpool_limits(limits=2, user_api="blas"):
        with pytest.raises(KeyboardInterrupt):
            pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
        after = [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]
    assert seen == [[1] * len(after)] and after and all(n == 2 for n in after)


def test_swap_of_a_near_profile_clip_with_the_mediapipe_backend(
    tiny_checkpoint, data_dir, tmp_path
):
    """``--face-backend mediapipe`` (MMOD boxes, Face Mesh points) reaches the pipeline and
    repaints the turned head of the near-profile clip on every frame."""
    clip = data_dir / "talking_head_profile_occlusion_01.mp4"
    out = tmp_path / "swapped.mp4"
    assert (
        swap_cli(data_dir, clip, out, tiny_checkpoint, "--face-backend", "mediapipe", "--stop", "8")
        == 0
    )
    a, b = frames_of(clip, 8), frames_of(out)
    assert len(b) == 8
    for x, y in zip(a, b):
        assert (np.abs(x.astype(int) - y.astype(int)).max(-1) > 40).mean() > 0.02


def test_mask_forehead_moves_the_top_of_the_pasted_region(
    models, analyzer, stills, data_dir, tmp_path
):
    clip = tmp_path / "clip.mkv"
    _write_lossless(
        clip,
        frames_of(data_dir / "talking_head_outdoor_01.mp4", 3),
        data_dir / "talking_head_outdoor_01.mp4",
    )
    before = frames_of(clip)
    tops, counts = [], []
    for forehead in (0.3, 0.0):
        cfg = load_config("balanced", {"codec": "ffv1", "mask_forehead": forehead})
        out = tmp_path / f"out{forehead}.mkv"
        job = SwapJob(source=str(data_dir / "id_biden_01.jpg"), input=str(clip), output=str(out))
        pipeline.run_swap(job, cfg, models, analyzer, source_analyzer=stills)
        changed = np.any(before[1] != frames_of(out)[1], axis=-1)
        tops.append(np.nonzero(changed.any(axis=1))[0].min())
        counts.append(changed.sum())
    assert tops[1] > tops[0] + 5 and counts[1] < counts[0]


def test_a_swapped_range_carries_the_audio_of_that_range(
    models, analyzer, stills, data_dir, tmp_path
):
    """`--frames 30-69`: the output's audio is the input's 1.2 s to 2.8 s, to the sample (PCM)."""
    clip, out = tmp_path / "clip.mkv", tmp_path / "range.mkv"
    stepped_tone_clip(clip, "pcm_s16le")
    job = SwapJob(
        source=str(data_dir / "id_obama_01.jpg"),
        input=str(clip),
        output=str(out),
        start=30,
        stop=70,
    )
    pipeline.run_swap(job, load_config("fast"), models, analyzer, source_analyzer=stills)
    t0, samples = decoded_audio(out)
    _, source = decoded_audio(clip)
    assert t0 == 1.2 and np.array_equal(
        samples, source[round(1.2 * TONE_RATE) : round(2.8 * TONE_RATE)]
    )
