"""A swap under faults a render farm meets: Ctrl-C and SIGTERM mid-render, a node SIGKILLed and
rerun, a disk that fills up, and stderr that is a log file rather than a terminal.

The signal and log cases run a real ``mmvideo swap`` process: an abort at interpreter exit
("terminate called", exit 134) and tqdm's cursor escapes only show up there.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from media import swap_args, swap_cli

from mmcore.errors import OutputError
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.encode import VideoWriter
from mmvideo.io.probe import probe
from mmvideo.progress import LINE_SECONDS, LineBar, Progress, bar

REPO = Path(__file__).resolve().parent.parent
LONG_CLIP = "talking_head_obama_address_01.mp4"  # 259 frames: the render lasts a few seconds
SHORT_CLIP = "talking_head_turn_03.mp4"  # 108 frames
PARTIAL = re.compile(r"\.out\.mp4\.[0-9a-f]{8}\.partial")


def _mmvideo(*args: str) -> list[str]:
    # Ctrl-C raises KeyboardInterrupt even where the test runs as a shell's background job
    # (which starts its children with SIGINT ignored, and Python then keeps it ignored)
    start = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
    return [sys.executable, "-c", start + "from mmvideo.commands import run; run()", *args]


def _signal_mid_render(cmd: list[str], sig: int) -> subprocess.CompletedProcess:
    """Run ``cmd`` (a swap with --json-progress), send ``sig`` once the render pass has written
    frames, and wait for the process to end."""
    proc = subprocess.Popen(
        cmd,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    sent = False
    for line in proc.stdout:
        record = json.loads(line)
        if record.get("phase") == "render" and 0 < record["done"] < record["total"]:
            proc.send_signal(sig)
            sent = True
            break
    out, err = proc.communicate(timeout=120)
    assert sent, f"the render finished before a signal could be sent:\n{err[-2000:]}"
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.mark.slow
@pytest.mark.parametrize(
    "sig, code, message",
    [
        (signal.SIGINT, 130, "mmvideo: interrupted"),
        (signal.SIGTERM, 143, "mmvideo: terminated"),
    ],
)
def test_signal_mid_render_exits_with_its_code_and_leaves_nothing(
    sig,
    code,
    message,
    tiny_checkpoint,
    data_dir,
    tmp_path,
):
    out = tmp_path / "out.mp4"
    cmd = _mmvideo(
        *swap_args(data_dir, data_dir / LONG_CLIP, out, tiny_checkpoint), "--json-progress"
    )
    result = _signal_mid_render(cmd, sig)
    assert "terminate called" not in result.stderr
    assert "Traceback" not in result.stderr
    assert result.returncode == code, result.stderr[-2000:]
    assert result.stderr.strip().splitlines()[-1] == message
    assert list(tmp_path.iterdir()) == []  # no output, no partial


@pytest.mark.slow
def test_next_swap_removes_the_partial_a_killed_run_left(
    tiny_checkpoint,
    data_dir,
    tmp_path,
):
    out = tmp_path / "out.mp4"
    cmd = _mmvideo(
        *swap_args(data_dir, data_dir / LONG_CLIP, out, tiny_checkpoint), "--json-progress"
    )
    killed = _signal_mid_render(cmd, signal.SIGKILL)
    assert killed.returncode == -signal.SIGKILL
    stale = [p.name for p in tmp_path.iterdir() if PARTIAL.fullmatch(p.name)]
    assert len(stale) == 1  # what a SIGKILLed writer leaves
    # look-alikes of other outputs, or not of our naming, are never touched
    keep = [".out.mp4.notes.partial", ".out.mp4x.0123abcd.partial", "other.mp4"]
    for name in keep:
        (tmp_path / name).write_bytes(b"keep")

    assert swap_cli(data_dir, data_dir / SHORT_CLIP, out, tiny_checkpoint, "--stop", "5") == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(keep + ["out.mp4"])


def _small_tmpfs_works() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe_cmd = ["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"]
    return subprocess.run(probe_cmd, check=False, capture_output=True).returncode == 0


@pytest.mark.slow
@pytest.mark.skipif(
    not _small_tmpfs_works(),
    reason="cannot mount a small tmpfs here (needs unshare -m and the right to mount)",
)
def test_disk_full_on_a_small_tmpfs_is_one_line_and_leaves_nothing(
    tiny_checkpoint,
    data_dir,
    tmp_path,
):
    disk = tmp_path / "disk"
    disk.mkdir()
    out = disk / "out.mp4"
    swap = shlex.join(_mmvideo(*swap_args(data_dir, data_dir / SHORT_CLIP, out, tiny_checkpoint)))
    # the tmpfs lives as long as the mount namespace: list what is left before leaving it
    script = (
        f"mount -t tmpfs -o size=150k tmpfs {disk} && {{ {swap}; echo rc=$? >&2; "
        f"ls -A {disk} >&2; }}"
    )
    result = subprocess.run(
        ["unshare", "-m", "sh", "-c", script],
        check=False,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    lines = result.stderr.splitlines()
    assert "\r" not in result.stderr and "\x1b" not in result.stderr
    assert "Traceback" not in result.stderr and "terminate called" not in result.stderr
    assert lines[-1] == "rc=4", result.stderr[-2000:]  # nothing listed after it: no partial
    error = lines[-2]
    assert error.startswith(f"mmvideo: error: {disk}: no space left on the device"), error
    need = float(re.search(r"need about ([0-9.]+) MB free there", error).group(1))
    assert 0.2 <= need <= 0.5  # the whole output is about 0.3 MB


def test_injected_enospc_is_one_line_naming_the_folder(data_dir, tmp_path):
    """Where no tmpfs can be mounted: the muxer fails the way a full disk makes it fail."""
    clip = data_dir / SHORT_CLIP
    out = tmp_path / "out.mp4"

    class FullDisk:
        """The output container, with a disk that fills up after 5 packets."""

        def __init__(self, container):
            self.container, self.packets = container, 0

        def mux(self, packet):
            self.packets += 1
            if self.packets > 5:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.container.mux(packet)

        def __getattr__(self, name):
            return getattr(self.container, name)

    with VideoReader(clip, stop=30) as reader:
        frames = list(reader)
    writer = VideoWriter(out, probe(clip), EncodeOptions(codec="libx264"), copy_range=(0, 30))
    writer._output = FullDisk(writer._output)
    with pytest.raises(OutputError) as caught, writer:
        for frame in frames:
            writer.write(frame)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith(f"{tmp_path}: no space left on the device")
    assert "its 30 frames need about" in message and "MB free there" in message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_swap_to_a_log_prints_plain_progress_lines(tiny_checkpoint, data_dir, tmp_path):
    """stderr a pipe (a farm's log): a few plain lines, no cursor escapes."""
    args = swap_args(data_dir, data_dir / SHORT_CLIP, tmp_path / "out.mp4", tiny_checkpoint)
    shown = subprocess.run(_mmvideo(*args), check=False, cwd=REPO, capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "\r" not in shown.stderr and "\x1b" not in shown.stderr
    lines = shown.stderr.splitlines()
    assert 2 <= len(lines) <= 30, shown.stderr
    assert lines[-1].startswith("render: 108/108 frames (100%)")


def test_line_bar_prints_every_tenth_and_at_the_end(capsys, monkeypatch):
    clock = iter(float(t) for t in range(1000))
    monkeypatch.setattr("mmvideo.progress.time.monotonic", lambda: next(clock) * 0.001)
    with LineBar(200, "chunks") as line:
        for _ in range(199):
            line.update()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 10  # at 10 %, 20 %, ... 90 %, then the last count on close
    assert err[0].startswith("chunks: 20/200 frames (10%)")
    assert err[-1].startswith("chunks: 199/200 frames (99%)")


def test_line_bar_prints_a_line_every_few_seconds_on_slow_work(capsys, monkeypatch):
    now = [0.0]
    monkeypatch.setattr("mmvideo.progress.time.monotonic", lambda: now[0])
    line = LineBar(10_000, "render")
    for _ in range(3):
        now[0] += LINE_SECONDS
        line.update()
    assert len(capsys.readouterr().err.splitlines()) == 3


def test_progress_is_silent_with_quiet(caplog, capsys):
    """``-q`` (the mmvideo logger at ERROR) hides bars and lines alike."""
    caplog.set_level("ERROR", logger="mmvideo")
    with bar(10, "x") as quiet:
        quiet.update(10)
    progress = Progress()
    progress.begin("render", ["decode", "encode"], 10)
    progress.advance("decode", 10)
    progress.advance("encode", 10)
    progress.end()
    assert capsys.readouterr().err == ""
