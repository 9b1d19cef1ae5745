"""Helpers the tests share, one copy each (a test module imports no other test module).

Media made inside a test: PyAV clips (rotation, VFR, 10-bit, audio), ffmpeg lavfi clips, image
plates, a photo with no face; real clips cut short with the ffmpeg command line; frames, packets
and audio read back with PyAV, independently of mmvideo's reader (or through it, where one decoder
must read both sides of a comparison); AFLW2000-3D ground truth; the ``mmvideo swap`` command
line; a stand-in for a farm chunk's swap; training data (folders of real stills, a held-out set,
a random shard). Real media come from the ``data_dir`` fixture and a random tiny checkpoint from
``tiny_checkpoint`` (conftest.py).
"""

from __future__ import annotations

import subprocess
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import OpenImageIO as oiio
import scipy.io as sio

from mmvideo.commands import main
from mmvideo.farm.plan import JobPlan, make_plan, save_plan
from mmvideo.farm.swap import resolve_settings
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.encode import VideoWriter
from mmvideo.io.frame import Frame
from mmvideo.io.probe import probe
from mmvideo.io.timecode import Timecode
from train.shards import ShardData, ShardHeader

# lavfi inputs of the ffmpeg command line: a 64x48 test pattern at 25 fps and a 440 Hz tone
TESTSRC = ("-f", "lavfi", "-i", "testsrc=size=64x48:rate=25")
SINE = ("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=16000")
# `stepped_tone_clip`'s audio: 300 Hz, then +200 Hz every 0.25 s, so that audio from the wrong
# time is audibly different; its subtitle cues
TONE_RATE = 48000
STEPPED_TONE = "0.5*sin(2*PI*t*(300+200*floor(t*4)))"
CUES = [(0.2, 0.6, "before"), (1.0, 1.5, "across the start"), (2.0, 2.4, "inside"),
        (2.7, 3.2, "across the end"), (3.3, 3.8, "after")]  # fmt: skip


def pattern(index: int, width: int, height: int, deep: bool = False) -> np.ndarray:
    """A frame that differs per index (moving bar, gradient) and compresses well."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack(
        [
            (x * 255) // max(width - 1, 1),
            (y * 255) // max(height - 1, 1),
            np.full_like(x, (index * 37) % 256),
        ],
        axis=-1,
    ).astype(np.uint16)
    bar = (index * 7) % max(width - 8, 1)
    img[:, bar : bar + 8] = 255 - img[:, bar : bar + 8]
    img[: height // 4, : width // 4] = 255  # a bright corner shows the orientation
    return (img * 257).astype(np.uint16) if deep else img.astype(np.uint8)


def make_clip(
    path: Path,
    frames: int = 10,
    size: tuple[int, int] = (64, 48),
    rate: int = 25,
    codec: str = "libx264",
    pix_fmt: str = "yuv420p",
    pts: list[int] | None = None,
    time_base: Fraction | None = None,
    rotation: int | None = None,
    hflip: bool = False,
    audio: bool = False,
    color: tuple[int, int, int, int] | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
) -> list[np.ndarray]:
    """Write a clip with PyAV and return the RGB frames that were fed to the encoder."""
    width, height = size
    tb = time_base or Fraction(1, rate * 512)
    deep = "10" in pix_fmt or "16" in pix_fmt
    images = [pattern(i, width, height, deep) for i in range(frames)]
    pts = pts if pts is not None else [round(i / rate / tb) for i in range(frames)]
    with av.open(str(path), "w", options=container_options or {}) as out:
        video = out.add_stream(codec, rate=rate)
        video.width, video.height, video.pix_fmt = width, height, pix_fmt
        video.codec_context.time_base = tb
        video.time_base = tb
        video.options = options or {}
        if color is not None:
            cc = video.codec_context
            cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range = color
        if rotation is not None:
            video.set_display_rotation(rotation, hflip=hflip)
        sound = None
        if audio:
            sound = out.add_stream("aac", rate=48000)
            sound.layout = "stereo"
        for img, t in zip(images, pts):
            vf = av.VideoFrame.from_ndarray(img, format="rgb48le" if deep else "rgb24")
            kwargs = {}
            if color is not None:
                kwargs = {"dst_colorspace": color[2], "dst_color_range": color[3]}
            vf = vf.reformat(format=pix_fmt, **kwargs)
            vf.pts, vf.time_base = t, tb
            for packet in video.encode(vf):
                out.mux(packet)
        for packet in video.encode(None):
            out.mux(packet)
        if sound is not None:
            seconds = (pts[-1] * tb) + Fraction(1, rate)
            samples = int(seconds * 48000)
            t = np.arange(samples) / 48000
            wave = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
            for start in range(0, samples, 1024):
                chunk = np.stack([wave[start : start + 1024]] * 2)
                af = av.AudioFrame.from_ndarray(
                    np.ascontiguousarray(chunk), format="fltp", layout="stereo"
                )
                af.sample_rate, af.pts = 48000, start
                for packet in sound.encode(af):
                    out.mux(packet)
            for packet in sound.encode(None):
                out.mux(packet)
    return images


def encode_images(
    path: Path,
    images: list[np.ndarray],
    codec: str = "libx264",
    options: dict[str, str] | None = None,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Encode RGB ``images`` at 25 fps as yuv420p with PyAV (the encoder flushed), with container
    ``metadata``."""
    with av.open(str(path), "w") as out:
        out.metadata.update(metadata or {})
        stream = out.add_stream(codec, rate=25)
        stream.height, stream.width = images[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        stream.options = options or {}
        for image in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, "rgb24")):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def write_image(
    path: Path,
    pixels: np.ndarray,
    fmt: str,
    *,
    channels: tuple[str, ...] | None = None,
    bits: int | None = None,
    tc: Timecode | None = None,
    rate: int | None = None,
) -> None:
    """One image of a plate, written with OpenImageIO as ``fmt`` ("half", "uint16", ...), with its
    channel names, bit depth, SMPTE timecode and frame rate where given."""
    spec = oiio.ImageSpec(pixels.shape[1], pixels.shape[0], pixels.shape[2], fmt)
    if channels:
        spec.channelnames = channels
    if bits:
        spec.attribute("oiio:BitsPerSample", bits)
    if tc is not None:
        spec.attribute("smpte:TimeCode", oiio.TypeDesc("timecode"), list(tc.to_smpte_words()))
    if rate is not None:
        spec.attribute("FramesPerSecond", oiio.TypeDesc("rational"), [rate, 1])
    out = oiio.ImageOutput.create(str(path))
    assert out.open(str(path), spec), oiio.geterror()
    assert out.write_image(pixels)
    out.close()


def read_image(path: Path, fmt: str = "float") -> np.ndarray:
    """An image's pixels as OpenImageIO reads them, converted to ``fmt``."""
    inp = oiio.ImageInput.open(str(path))
    pixels = inp.read_image(fmt)
    inp.close()
    return pixels


def blank_image(path: Path, gray: int = 128) -> Path:
    """A flat grey 200x200 photo: an image in which no detector finds a face."""
    assert cv2.imwrite(str(path), np.full((200, 200, 3), gray, np.uint8))
    return path


def ffmpeg(*args) -> bytes:
    """Run the ffmpeg command line (quiet, overwriting) on ``args``; its stdout. Its errors go to
    the test's stderr."""
    cmd = ["ffmpeg", "-v", "error", "-y", *map(str, args)]
    return subprocess.run(cmd, stdout=subprocess.PIPE, check=True).stdout


def first_frames(src: Path, out: Path, *extra) -> Path:
    """The first 12 frames (0.48 s, with audio) of a real clip, re-encoded with a GOP of 5 so
    that a chunked run has cuts to choose from."""
    ffmpeg("-i", src, "-frames:v", 12, "-t", 0.48, "-c:v", "libx264", "-g", 5, "-c:a", "aac",
           *extra, out)  # fmt: skip
    return out


def _srt_time(t: float) -> str:
    return f"00:00:{int(t):02d},{round(t % 1 * 1000):03d}"


def stepped_tone_clip(path: Path, audio_codec: str, subtitles: bool = False) -> None:
    """4 s of the test pattern (GOP 10) with the stepped tone in stereo and, if asked, the
    subtitle cues (from ``cues.srt`` beside ``path``)."""
    args = [*TESTSRC, "-f", "lavfi", "-i", f"aevalsrc='{STEPPED_TONE}':s={TONE_RATE}:c=stereo"]
    if subtitles:
        srt = path.parent / "cues.srt"
        srt.write_text("".join(
            f"{i + 1}\n{_srt_time(a)} --> {_srt_time(b)}\n{text}\n\n"
            for i, (a, b, text) in enumerate(CUES)
        ))  # fmt: skip
        args += ["-i", str(srt), "-map", "0", "-map", "1", "-map", "2", "-c:s", "srt"]
    ffmpeg(*args, "-t", "4", "-c:v", "libx264", "-g", "10", "-c:a", audio_codec, path)


def decoded_audio(path: Path) -> tuple[float, np.ndarray]:
    """The first decoded sample's time and all samples as [n, channels] float."""
    with av.open(str(path)) as c:
        frames = list(c.decode(c.streams.audio[0]))
    first = frames[0]
    data = [
        f.to_ndarray().T if f.format.is_planar else f.to_ndarray().reshape(-1, 2) for f in frames
    ]
    return float(first.pts * first.time_base), np.concatenate(data).astype(np.float64)


def decoded_frames(path: Path, count: int | None = None, fmt: str = "rgb24") -> list[np.ndarray]:
    """The first ``count`` frames (all by default) of the first video stream, decoded by PyAV."""
    frames = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format=fmt))
            if len(frames) == count:
                break
    return frames


def reader_frames(path: Path, **kwargs) -> list[Frame]:
    """Every frame mmvideo's `VideoReader` gives for ``path`` (its options pass through)."""
    with VideoReader(path, **kwargs) as reader:
        return list(reader)


def frames_of(path: Path, stop: int | None = None) -> list[np.ndarray]:
    """The images of `reader_frames` up to ``stop``: an input and its swapped output read by one
    decoder, so that a comparison sees only the swap."""
    return [f.image for f in reader_frames(path, stop=stop)]


def profile_clip_yaws(data_dir: Path, analyzer, frames: int = 13) -> list[float]:
    """|yaw| of every face ``analyzer`` finds in the first frames of the near-profile clip."""
    images = decoded_frames(data_dir / "talking_head_profile_occlusion_01.mp4", frames)
    return [abs(f.pose[0]) for image in images for f in analyzer.detect(image)]


def aflw2000(data_dir: Path, name: str) -> tuple[np.ndarray, tuple[float, float, float]]:
    """An AFLW2000-3D face's ground truth: its 68 3D landmarks and (yaw, pitch, roll) in
    degrees."""
    mat = sio.loadmat(data_dir / f"pose_aflw2000_{name}.mat")
    pitch, yaw, roll = np.degrees(mat["Pose_Para"][0, :3])
    return mat["pt3d_68"].T.astype(np.float64), (yaw, pitch, roll)


def packets(path: Path, kind: str) -> list[tuple[bytes, Fraction | None]]:
    """(payload, pts in seconds) of every packet of every stream of ``kind``."""
    with av.open(str(path)) as c:
        streams = [s for s in c.streams if s.type == kind]
        return [
            (bytes(p), p.pts * p.time_base if p.pts is not None else None)
            for p in c.demux(streams)
            if p.size
        ]


def run_cli(capsys, *args) -> tuple[int, str, str]:
    """``mmvideo ARGS`` run in this process: its exit code, its stderr (stripped) and stdout."""
    code = main([*map(str, args)])
    captured = capsys.readouterr()
    return code, captured.err.strip(), captured.out


def swap_args(data_dir: Path, clip: Path, out: Path, checkpoint: Path) -> list[str]:
    """The ``mmvideo swap`` arguments putting Obama's still into ``clip`` with ``checkpoint``."""
    return [
        "swap",
        "--source", str(data_dir / "id_obama_01.jpg"),
        "--in", str(clip),
        "--out", str(out),
        "--checkpoint", str(checkpoint),
    ]  # fmt: skip


def swap_cli(data_dir: Path, clip: Path, out: Path, checkpoint: Path, *extra: str) -> int:
    """``mmvideo swap`` (see `swap_args`) run in this process, without progress bars; its exit
    code."""
    return main([*swap_args(data_dir, clip, out, checkpoint), "--no-progress", *extra])


def identity_folders(root: Path, data_dir: Path, stills: dict[str, list[str]]) -> Path:
    """``root/<identity>/<still>`` links to real stills: the layout training data comes in."""
    for identity, files in stills.items():
        (root / identity).mkdir(parents=True)
        for f in files:
            (root / identity / f).symlink_to(data_dir / f)
    return root


def held_out_set(
    folder: Path,
    data_dir: Path,
    stills: dict[str, str],
    pairs: list[tuple[str, str]],
    pairs_csv: Path | None = None,
) -> Path:
    """A held-out set for evaluation: links to real stills with their ``identities.csv`` in
    ``folder``, and the (source, target) pairs in ``pairs_csv`` (``folder/pairs.csv``)."""
    folder.mkdir()
    for f in stills:
        (folder / f).symlink_to(data_dir / f)
    (folder / "identities.csv").write_text(
        "file,identity\n" + "".join(f"{f},{i}\n" for f, i in stills.items())
    )
    (pairs_csv or folder / "pairs.csv").write_text(
        "source,target\n" + "".join(f"{s},{t}\n" for s, t in pairs)
    )
    return folder


def transcode_chunk(job: dict, config: dict) -> dict:
    """A stand-in for a farm chunk's swap (``chunk.run_job``) that does to timing what the swap
    does, without the swap: frames [start, stop) re-encoded losslessly; like run_job it returns
    the tracks left unswapped (none)."""
    info = probe(job["input"])
    whole = job["start"] == 0 and job["stop"] >= info.video.frames
    with (
        VideoReader(job["input"], start=job["start"], stop=job["stop"], info=info) as reader,
        VideoWriter(
            job["output"],
            info,
            EncodeOptions(codec="libx264", crf=0),
            copy_streams=whole,
        ) as writer,
    ):
        for frame in reader:
            writer.write(frame)
    return {}


def farm_job(folder: Path, clip: Path, chunks: int, checkpoint: Path) -> tuple[Path, JobPlan]:
    """A saved farm plan (``folder/job<chunks>.json``) cutting ``clip`` into ``chunks``, for
    `transcode_chunk`: planning checks the checkpoint, the transcode never loads it."""
    settings = resolve_settings("fast", checkpoint)
    job = folder / f"job{chunks}.json"
    # Cut anywhere (not on the generator batch): the transcode stand-in batches nothing
    plan = make_plan(job, clip, clip, settings, chunks=chunks, warmup_seconds=0.2, align=1)
    save_plan(plan, job)
    return job, plan


def random_shard(n: int = 3, size: int = 224) -> ShardData:
    """A training shard of ``n`` random samples (seeded): every field filled, nothing real."""
    rng = np.random.default_rng(0)
    return ShardData(
        header=ShardHeader(size, 112, ["a", "b"], n, [("x.jpg", "no face")], "test"),
        target=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
        source=rng.integers(0, 255, (n, 112, 112, 3), dtype=np.uint8),
        landmarks=rng.uniform(0, size, (n, 68, 2)).astype(np.float32),
        depth=rng.integers(0, 255, (n, size, size), dtype=np.uint8),
        mask=rng.integers(0, 255, (n, size, size), dtype=np.uint8),
        boxes=rng.uniform(0, size, (n, 4, 4)).astype(np.float32),
        pose=rng.uniform(-30, 30, (n, 3)).astype(np.float32),
        label=np.array([0, 1, 1][:n], np.int64),
        frame=np.full(n, -1, np.int64),
        origin=np.array([f"img{i}.jpg" for i in range(n)]),
    )
