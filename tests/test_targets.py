"""Several actors in one pass (``--map``), chunk-safe target choice, and the unswapped-frame
report with ``--require-all``.

The two-person clip is built from two real clips of ``shared/data`` side by side (no clip there
has two people in one shot): Chris Christie (``talking_head_vox_01``) on the left, Amy Adams
(``talking_head_turn_01``) on the right, 16 frames.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from media import blank_image, decoded_frames, ffmpeg

from magicmask.face.analyzer import FaceAnalyzer
from magicmask.face.identity import build_identity_encoder
from magicmask.face.image import load_image
from magicmask.face.types import Face
from magicmask.quality import face_chip
from mmcore.errors import InvalidInput, NoFaceFound
from mmvideo import pipeline
from mmvideo.commands import main
from mmvideo.config import SwapJob, TrackConfig, load_config
from mmvideo.farm.chunk import run_chunk
from mmvideo.farm.merge import merge
from mmvideo.farm.plan import load_plan, make_plan, save_plan
from mmvideo.farm.swap import resolve_settings, run_job
from mmvideo.generate import load_models
from mmvideo.io.media import probe_media
from mmvideo.targets import assign_sources, match_anchors, parse_map
from mmvideo.track import Track

FRAMES = 16


@pytest.fixture(scope="module")
def clips(tmp_path_factory, data_dir):
    root = tmp_path_factory.mktemp("targets")
    duo = root / "duo.mp4"
    ffmpeg(
        "-i", str(data_dir / "talking_head_vox_01.mp4"), "-i", str(data_dir / "talking_head_turn_01.mp4"),
        "-filter_complex", "[0:v][1:v]hstack=inputs=2[v]", "-map", "[v]",
        "-frames:v", str(FRAMES), "-c:v", "libx264", "-crf", "16", "-g", "8", str(duo),
    )  # fmt: skip
    # the left actor enters at frame 8 (the left half is black before): the whole clip numbers
    # the right actor's track 1, a chunk starting at frame 8 numbers the left one 1
    enter = root / "enter.mp4"
    ffmpeg(
        "-i", str(duo), "-vf", "drawbox=x=0:y=0:w=224:h=224:color=black:t=fill:enable='lt(n,8)'",
        "-c:v", "libx264", "-crf", "16", "-g", "8", str(enter),
    )  # fmt: skip
    # a deliberate gap: frames 5-44 of a real talking head with its face covered, longer than
    # any gap a tracker may bridge (gap filling holds a track about a second)
    gap = root / "gap.mp4"
    ffmpeg(
        "-i", str(data_dir / "talking_head_turn_01.mp4"), "-frames:v", "56",
        "-vf", "drawbox=x=30:y=20:w=164:h=190:color=gray:t=fill:enable='between(n,5,44)'",
        "-c:v", "libx264", "-crf", "16", "-g", "8", str(gap),
    )  # fmt: skip
    # reference photos of the two actors: halves of the clip's first frame
    first = decoded_frames(duo)[0]
    left, right = root / "left.png", root / "right.png"
    cv2.imwrite(str(left), np.ascontiguousarray(first[:, :224, ::-1]))
    cv2.imwrite(str(right), np.ascontiguousarray(first[:, 224:, ::-1]))
    blank = blank_image(root / "blank.png", 128)
    return {
        "root": root,
        "duo": duo,
        "enter": enter,
        "gap": gap,
        "left": left,
        "right": right,
        "blank": blank,
        "a": data_dir / "id_bbt_penny_01.png",
        "b": data_dir / "id_obama_01.jpg",
    }


# -- units ---------------------------------------------------------------------------------------


def test_parse_map_refuses_malformed_pairs():
    entries = parse_map(["2=b.jpg", "lead.jpg=a.jpg"])
    assert (entries[0].track, entries[0].source) == (2, "b.jpg")
    assert (entries[1].reference, entries[1].source) == ("lead.jpg", "a.jpg")
    for bad, message in [
        ("b.jpg", "expected TRACK=source.jpg"),
        ("0=b.jpg", "track ids start at 1"),
        ("1=", "expected TRACK=source.jpg"),
    ]:
        with pytest.raises(InvalidInput, match=message):
            parse_map([bad])
    with pytest.raises(InvalidInput, match="2 is mapped twice"):
        parse_map(["2=a.jpg", "2=b.jpg"])


def _track(tid: int, frames: range, x: float, rejected=()) -> Track:
    t = Track(tid, 0)
    lm = np.zeros((68, 2), np.float32)
    for f in frames:
        t.add(f, Face(np.array([x, 0, x + 50, 50], np.float32), 1.0, lm), detected=True)
    t.rejected = set(rejected)
    return t


def test_anchors_follow_the_planned_faces_whatever_their_ids():
    whole = [_track(1, range(16), 200), _track(2, range(8, 16), 0)]
    anchors = pipeline.anchor_targets(whole, {1: "a.jpg", 2: "b.jpg"})
    # a chunk that starts at 8 numbers the tracks the other way round
    chunk = [_track(1, range(8, 16), 0), _track(2, range(8, 16), 200), _track(3, range(8, 9), 400)]
    assert match_anchors(chunk, anchors) == {1: "b.jpg", 2: "a.jpg"}
    assert match_anchors(chunk, []) == {}


def test_source_goes_to_the_tracks_the_map_leaves():
    tracks = [_track(1, range(4), 0), _track(2, range(4), 100), _track(3, range(2), 300)]
    cfg = TrackConfig(map=("2=b.jpg",))
    assert assign_sources(tracks, cfg, "s.jpg", {}) == {1: "s.jpg", 2: "b.jpg", 3: "s.jpg"}
    assert assign_sources(tracks, cfg, None, {}) == {2: "b.jpg"}
    largest = TrackConfig(map=("2=b.jpg",), target="largest")
    assert assign_sources(tracks, largest, "s.jpg", {}) == {1: "s.jpg", 2: "b.jpg"}
    with pytest.raises(InvalidInput, match=r"--map 7=b.jpg: no track 7 \(tracks: 1, 2, 3\)"):
        assign_sources(tracks, TrackConfig(map=("7=b.jpg",)), None, {})


def test_unswapped_frames_are_ranges_with_their_reason():
    track = _track(1, [*range(5), *range(9, 20)], 0, rejected={6})
    # planned (swapped) in the written range [2, 16) except where the track had no face
    plan = {f: [(1, track.faces[f])] for f in track.faces if 2 <= f < 16}
    report = pipeline.unswapped_frames([track], plan, 2, 16)
    assert report == {
        1: [
            {"first": 0, "last": 1, "reason": "outside the frame range"},
            {"first": 5, "last": 5, "reason": "no detection"},
            {"first": 6, "last": 6, "reason": "rejected"},
            {"first": 7, "last": 8, "reason": "no detection"},
            {"first": 16, "last": 19, "reason": "outside the frame range"},
        ]
    }
    summary = pipeline.SwapSummary(
        frames=14, faces_per_track={1: 10}, frames_without_face=4, tracks=1, selected=[1],
        cuts=[], stage_seconds={}, jitter={}, unswapped=report,
    )  # fmt: skip
    assert [r["first"] for r in summary.missed()[1]] == [5, 6, 7]
    text = "\n".join(summary.lines())
    assert (
        "track 1: 0-1 outside the frame range, 5 no detection, 6 rejected, 7-8 no detection" in text
    )


# -- the CLI's checks before any model loads ---------------------------------------------------------


def test_bad_maps_are_refused_in_one_line_before_models_load(clips, tmp_path, capsys):
    out = str(tmp_path / "out.mp4")
    base = [
        "swap",
        "--in",
        str(clips["duo"]),
        "--out",
        out,
        "--checkpoint",
        str(tmp_path / "none.pt"),
    ]
    # the checkpoint does not exist: an error about it would mean the map was checked too late
    assert main([*base, "--map", f"1={tmp_path / 'missing.jpg'}"]) == 2
    err = capsys.readouterr().err.strip()
    assert "missing.jpg: file not found (--map 1=" in err and "\n" not in err
    assert main([*base, "--map", f"{tmp_path / 'nobody.jpg'}={clips['a']}"]) == 2
    assert "nobody.jpg: file not found" in capsys.readouterr().err
    assert main([*base, "--map", str(clips["a"])]) == 3
    assert "expected TRACK=source.jpg" in capsys.readouterr().err
    assert main(["swap", "--in", str(clips["duo"]), "--out", out]) != 0
    assert "--source (or --map) is required" in capsys.readouterr().err
    assert not Path(out).exists()
    # `plan` too, before it loads (and hashes) the checkpoint
    job = tmp_path / "job.json"
    plan = [
        "plan",
        "--in",
        str(clips["duo"]),
        "--out",
        str(job),
        "--checkpoint",
        str(tmp_path / "none.pt"),
    ]
    assert main([*plan, "--map", f"1={tmp_path / 'missing.jpg'}"]) == 2
    assert "missing.jpg: file not found (--map 1=" in capsys.readouterr().err
    assert not job.exists()


# -- the real pipeline -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded():
    return load_models(None, "cpu")


@pytest.fixture(scope="module")
def analyzers():
    cfg = load_config("balanced")
    frames = FaceAnalyzer(pipeline.face_config(cfg.detect))
    return frames, FaceAnalyzer(pipeline.source_face_config(cfg=cfg.detect))


def _descriptor(encoder, stills: FaceAnalyzer, image: np.ndarray, face=None) -> np.ndarray:
    face = face or max(stills.detect(image), key=lambda f: f.area)
    chip = face_chip(image, face.landmarks, 150, 0.25)
    with torch.no_grad():
        x = torch.from_numpy(chip[None]).permute(0, 3, 1, 2).float() / 255.0
        return encoder.network(x).numpy()[0]  # dlib's own descriptor scale (0.6 = same person)


@pytest.fixture(scope="module")
def sides(clips, embedded, analyzers):
    """The duo clip's track ids, as `mmvideo tracks` lists them, by the side of their face."""
    info = probe_media(clips["duo"])
    analysis = pipeline.analyze(
        str(clips["duo"]), info, load_config("balanced"), analyzers[0], embedded
    )
    assert len(analysis.tracks) == 2
    return {"left" if t.faces[t.first].box[0] < 224 else "right": t.id for t in analysis.tracks}


def test_two_sources_map_onto_the_two_actors(clips, analyzers, sides, tmp_path, capsys):
    """`--map LEFT=A --map RIGHT=B` on a real two-person clip with the embedded model: each
    actor's output face is clearly nearer its own source than the other (dlib distance)."""
    out = tmp_path / "duo.mkv"
    left, right = sides["left"], sides["right"]
    rc = main(
        ["swap", "--in", str(clips["duo"]), "--out", str(out), "--codec", "ffv1",
         "--map", f"{left}={clips['a']}", "--map", f"{right}={clips['b']}", "--require-all",
         "--json-progress"]
    )  # fmt: skip
    lines = capsys.readouterr().out.strip().splitlines()
    assert rc == 0, lines[-3:]
    summary = json.loads(lines[-1])["summary"]
    assert summary["sources"] == {str(left): str(clips["a"]), str(right): str(clips["b"])}
    assert summary["faces_per_track"] == {str(left): FRAMES, str(right): FRAMES}
    assert summary["unswapped"] == {str(left): [], str(right): []}
    encoder = build_identity_encoder("dlib-resnet")
    _, stills = analyzers
    a, b = (_descriptor(encoder, stills, load_image(clips[k])) for k in "ab")
    dist = {"left": [], "right": []}
    for image in decoded_frames(out)[::3]:
        for face in stills.detect(image):
            side = "left" if (face.box[0] + face.box[2]) / 2 < image.shape[1] / 2 else "right"
            d = _descriptor(encoder, stills, image, face)
            dist[side].append((np.linalg.norm(d - a), np.linalg.norm(d - b)))
    left, right = np.mean(dist["left"], axis=0), np.mean(dist["right"], axis=0)
    # measured: left (A) 0.66 vs 0.85, right (B) 0.64 vs 0.82; the unswapped clip has the left
    # actor nearer B (0.79 vs 0.81), so a swap of the wrong source fails here
    assert left[0] < left[1] - 0.1, left
    assert right[1] < right[0] - 0.1, right


def test_reference_photos_pick_the_tracks_and_bad_ones_are_refused(
    clips, embedded, analyzers, sides, tmp_path, monkeypatch
):
    frames, stills = analyzers

    def run(*entries, source=None):
        cfg = load_config("balanced", {"map": entries, "codec": "ffv1"})
        job = SwapJob(
            source=source, input=str(clips["duo"]), output=str(tmp_path / "o.mkv"), stop=2
        )
        return pipeline.run_swap(job, cfg, embedded, frames, source_analyzer=stills)

    # the photos given in the other order than the tracks: each still finds its own actor
    summary = run(f"{clips['right']}={clips['b']}", f"{clips['left']}={clips['a']}")
    assert summary.sources == {sides["left"]: str(clips["a"]), sides["right"]: str(clips["b"])}
    # a source used by several tracks (and as --source) is analysed once
    seen = []
    identity = pipeline.source_identity
    monkeypatch.setattr(
        pipeline, "source_identity", lambda path, *a: seen.append(path) or identity(path, *a)
    )
    summary = run(
        f"{sides['left']}={clips['b']}", f"{sides['right']}={clips['b']}", source=str(clips["b"])
    )
    assert set(summary.sources.values()) == {str(clips["b"])} and seen == [str(clips["b"])]
    monkeypatch.undo()
    with pytest.raises(InvalidInput, match=r"no track 5 \(tracks: 1, 2\)"):
        run(f"5={clips['a']}")
    with pytest.raises(NoFaceFound, match="blank.png"):
        run(f"{clips['blank']}={clips['a']}")


def test_unswapped_report_and_require_all(clips, tmp_path, capsys):
    """Frames 5-44 of the face covered: reported as ranges with their reason, and exit 6 with
    --require-all (the output is still written)."""
    out = tmp_path / "gap.mkv"
    rc = main(
        ["swap", "--source", str(clips["a"]), "--in", str(clips["gap"]), "--out", str(out),
         "--codec", "ffv1", "--shot-cut-threshold", "-1", "--require-all", "--json-progress"]
    )  # fmt: skip
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])["summary"]
    assert rc == 6
    assert out.is_file()
    ranges = summary["unswapped"]["1"]
    assert ranges and all(r["reason"] in ("no detection", "rejected") for r in ranges)
    missed = {f for r in ranges for f in range(r["first"], r["last"] + 1)}
    # the face is back at 45 and re-identified: the gap lies inside track 1's life
    assert {35, 40} <= missed <= set(range(5, 45)), ranges
    err = captured.err.strip().splitlines()[-1]
    assert err.startswith("mmvideo: error: ") and "not swapped" in err and "--require-all" in err


# -- farm ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("choice", ["map", "largest"])
def test_target_choice_is_chunk_safe(clips, tiny_checkpoint, choice):
    """The left actor enters at frame 8, where the second chunk starts: that chunk alone numbers
    its tracks the other way round and finds the left face the largest. Decided in `plan`, the
    2 chunks merged equal a single run of the whole clip, pixel for pixel (FFV1)."""
    root = clips["root"] / f"farm-{choice}"
    job = root / "job.json"
    sets = {
        "threads": 1, "codec": "ffv1", "batch_size": 4, "smoothing": "none",
        "detect_interval": 4, "shot_cut_threshold": -1.0,
    }  # fmt: skip
    source = None
    if choice == "map":
        sets["map"] = (f"1={clips['a']}", f"2={clips['b']}")
    else:
        sets["target"], source = "largest", clips["a"]
    settings = resolve_settings("fast", tiny_checkpoint, sets)
    plan = make_plan(
        job, clips["enter"], source, settings, chunks=2, warmup_seconds=0,
        created="2026-12-07T00:00:00Z",
    )  # fmt: skip
    save_plan(plan, job)
    plan = load_plan(job)
    assert [(c.start, c.decode_start) for c in plan.chunks] == [(0, 0), (8, 8)]
    # decided once: track 1 of the whole clip is the right actor (there from frame 0)
    expected = {1: str(clips["a"]), 2: str(clips["b"])} if choice == "map" else {1: str(clips["a"])}
    assert {t.track: t.source for t in plan.targets} == expected
    assert all(b[0] >= 8 for t in plan.jobs[1]["targets"] for b in t["boxes"])
    for i in range(2):
        run_chunk(job, i)
    merged = merge(job, root / "merged.mkv")
    single = root / "single.mkv"
    whole = dict(plan.jobs[0], start=0, stop=None, output=str(single), copy_streams=True,
                 targets=None, source=None if source is None else str(source))  # fmt: skip
    run_job(whole, plan.settings.config)
    a, b = decoded_frames(Path(merged.output)), decoded_frames(single)
    assert len(a) == len(b) == FRAMES
    for i, (x, y) in enumerate(zip(a, b, strict=True)):
        assert np.array_equal(x, y), f"frame {i} differs by up to {np.abs(x.astype(int) - y).max()}"
