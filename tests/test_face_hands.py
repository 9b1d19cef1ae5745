"""Hands in front of faces (palm detector + hand landmarker of the mediapipe 0.10.14 wheel), the
hand silhouette, and the face mask with the hands taken out.

Real weights on real clips: in ``talking_head_profile_occlusion_01.mp4`` a hand rises in front of
the lower face; it is fully in front of the jaw and cheek in frames 19-23 (it enters from the
bottom edge in 15-18 and leaves by the bottom-right corner in 24-28, partly out of frame, where
neither answer is checked).
"""

from __future__ import annotations

import builtins
import shutil

import cv2
import numpy as np
import pytest
from media import decoded_frames, frames_of, swap_cli

from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.hands import (
    HAND_MODEL,
    PALM_MODEL,
    Hand,
    HandDetector,
    HandTracker,
    OneEuro,
    decode_palms,
    edge_flicker,
    hand_mask,
    hand_silhouette,
    landmark_roi,
    on_face,
    ssd_anchors,
    weighted_nms,
    without_hands,
)
from magicmask.face.mask import face_mask
from magicmask.face.mediapipe_backend import wheel_model
from mmcore.errors import InvalidInput, ModelError

OCCLUDED = range(19, 24)
# frames 0-14 (before it enters; the palm detector fires on the jaw in 10-14 and the
# landmarker rejects it) and every third of 30-125 (hand gone)
HANDLESS = [*range(15), *range(30, 126, 3)]


def _frames(path, step: int = 1, count: int | None = None) -> list[tuple[int, np.ndarray]]:
    return [(i, f) for i, f in enumerate(decoded_frames(path)) if i % step == 0][:count]


@pytest.fixture(scope="module")
def detector():
    return HandDetector()


@pytest.fixture(scope="module")
def occlusion_clip(data_dir):
    """The occlusion clip's frames and a face box for all of them: MMOD's on the first frame
    (HOG misses the profile). The search region around it, 2.5× the ~120 px box, spans the whole
    224×224 frame wherever the head moves, so one detection serves every frame."""
    frames = dict(_frames(data_dir / "talking_head_profile_occlusion_01.mp4"))
    (face,) = FaceAnalyzer(FaceConfig(detector="cnn")).detect(frames[0])
    return frames, face.box


@pytest.fixture(scope="module")
def occlusion_hands(occlusion_clip, detector):
    """Frame index → (frame, hands near its face), each frame on its own (palm pass every frame)."""
    frames, box = occlusion_clip
    return {i: (frames[i], detector(frames[i], box[None])[0]) for i in [*HANDLESS, *OCCLUDED]}


def test_hand_found_where_it_covers_the_face(occlusion_hands):
    found = {i for i, (_, hands) in occlusion_hands.items() if hands}
    assert set(OCCLUDED) <= found
    assert not found & set(HANDLESS), sorted(found & set(HANDLESS))
    for i in OCCLUDED:
        (hand,) = occlusion_hands[i][1]
        assert hand.score > 0.8 and hand.points.shape == (21, 3)


def test_silhouette_covers_the_hand_and_not_the_face(occlusion_hands):
    # frame 21, points read off the frame by eye (x, y): the raised index finger, the back of
    # the hand over the jaw; the eye, the nose tip, the lips and the cheek above the hand
    frame, hands = occlusion_hands[21]
    mask = hand_mask(hands, frame.shape[:2])
    for x, y in [(185, 100), (182, 130), (160, 160), (175, 150)]:
        assert mask[y, x] == 1.0, (x, y)
    for x, y in [(115, 55), (72, 88), (88, 112), (115, 95)]:
        assert mask[y, x] == 0.0, (x, y)


@pytest.mark.parametrize(
    ("clip", "detector_name"),
    [
        ("talking_head_jackie_chan_01.mp4", "hog"),
        ("talking_head_obama_news_01.mp4", "hog"),
        ("talking_head_obama_address_01.mp4", "hog"),
    ],
)
def test_no_hand_in_frontal_clips(data_dir, detector, clip, detector_name):
    faces = FaceAnalyzer(FaceConfig(detector=detector_name))
    checked = 0
    for i, frame in _frames(data_dir / clip, step=8, count=12):
        found = faces.detect(frame)
        if found:
            checked += 1
            assert detector(frame, np.stack([f.box for f in found])) == [[] for _ in found], i
    assert checked >= 6


def test_deterministic(occlusion_hands, detector):
    frame, _ = occlusion_hands[20]
    box = np.array([[35.0, 21.0, 154.0, 140.0]])
    a, b = detector(frame, box)[0], HandDetector()(frame, box)[0]
    assert len(a) == len(b) == 1 and np.array_equal(a[0].points, b[0].points)


class _Counted(HandDetector):
    """The detector, counting its palm and landmark passes."""

    palm_passes = landmark_passes = 0

    def palms(self, image, box):
        self.palm_passes += 1
        return super().palms(image, box)

    def landmarks(self, image, center, side, angle):
        self.landmark_passes += 1
        return super().landmarks(image, center, side, angle)


def test_tracker_finds_the_same_hands_with_fewer_palm_passes(occlusion_clip):
    """Frames 0-44 in order through one tracker: the hand is found in the frames where it covers
    the face and in none of the handless ones, as with a palm pass on every frame, while the palm
    detector runs on well under half the frames (the hand is followed from its landmarks)."""
    frames, box = occlusion_clip
    detector = _Counted()
    tracker = HandTracker(detector)
    found = {i for i in range(45) if tracker(frames[i], box, i)}
    assert set(OCCLUDED) <= found
    assert not found & set(HANDLESS), sorted(found & set(HANDLESS))
    # 45 without tracking; every third frame, and every frame while the hand comes in (15-19)
    # or was lost (17, 25): 18 passes. (24 when a palm turned down on the jaw set off a palm
    # pass on the next frame, as it did before the search region's change was the trigger.)
    assert detector.palm_passes <= 20, detector.palm_passes
    # a gap in the frame numbers starts cold: the palm detector runs at once, and the handless
    # frame has no hand
    passes = detector.palm_passes
    assert tracker(frames[60], box, 60) == [] and detector.palm_passes == passes + 1


def test_a_palm_turned_down_is_not_offered_to_the_landmarker_again(occlusion_clip):
    """Frames 38-57: the palm detector fires on the profile's jaw in 38-43 and 46-56 and the
    landmarker turns it down. The tracker remembers where that palm lay on the face and offers it
    to the landmarker again only after ``recheck_every`` frames: 2 landmark passes, where each
    palm pass cost one (16) when it was not remembered, and 7 palm passes (18 when each turned
    down palm set off a palm pass on the next frame)."""
    frames, box = occlusion_clip
    detector = _Counted()
    tracker = HandTracker(detector)
    assert not any(tracker(frames[i], box, i) for i in range(38, 58))
    assert detector.landmark_passes <= 3 and detector.palm_passes <= 9, (
        detector.landmark_passes,
        detector.palm_passes,
    )


def test_palm_pass_when_the_search_region_changes():
    """Without a tracked hand the palm detector runs every ``palm_every`` frames, and on every
    frame where something moved in the region around the face (a hand coming in)."""
    detector = _Counted()
    tracker = HandTracker(detector, palm_every=5)
    still = np.full((240, 320, 3), 120, np.uint8)
    box = np.array([120.0, 80.0, 200.0, 160.0])
    for i in range(11):
        assert tracker(still, box, i) == []
    assert detector.palm_passes == 3  # frames 0, 5 and 10
    moved = still.copy()
    moved[150:230, 60:120] = 200  # a bright block below and left of the face, inside the region
    tracker(moved, box, 11)
    assert detector.palm_passes == 4
    # outside the region (2.5x the face box around its center) nothing counts
    far = moved.copy()
    far[:, 290:] = 20
    tracker(far, box, 12)
    assert detector.palm_passes == 4


def test_flow_carries_a_slow_hand_between_landmark_passes(occlusion_clip, detector):
    """A still hand (frame 21 twelve times with fresh noise) is carried by optical flow on every
    other frame, within a tenth of its palm length of the landmarker's points there; where the
    flow fails (the next frame is noise) the landmarker runs at once and finds no hand; and the
    hand sweeping over the face in 19-24 (0.2-0.5 palm lengths per frame) gets a landmark pass
    on every frame but the one after it paused."""
    frames, box = occlusion_clip
    rng = np.random.default_rng(2)
    noisy = [
        np.clip(frames[21] + rng.normal(0.0, 3.0, frames[21].shape), 0, 255).astype(np.uint8)
        for _ in range(12)
    ]
    counted = _Counted()
    tracker = HandTracker(counted, smooth=False)
    carried = []
    for i, frame in enumerate(noisy):
        passes = counted.landmark_passes
        (hand,) = tracker(frame, box, i)
        if counted.landmark_passes == passes:
            carried.append(i)
            (truth,) = detector(frame, box[None])[0]
            error = np.linalg.norm(hand.points[:, :2] - truth.points[:, :2], axis=1).mean()
            assert error < 0.1 * truth.palm_length(), (i, error)
    # frame 0 finds the hand, frame 1 measures its speed, then every other frame is carried
    assert carried == [2, 4, 6, 8, 10], carried
    noise = rng.integers(0, 256, frames[21].shape, dtype=np.uint8)
    passes = counted.landmark_passes
    assert tracker(noise, box, 12) == [] and counted.landmark_passes > passes
    fast = _Counted()
    tracker, carried = HandTracker(fast), []
    for i in range(19, 25):
        passes = fast.landmark_passes
        assert tracker(frames[i], box, i)
        if fast.landmark_passes == passes:
            carried.append(i)
    # only after 22, where the hand stops for a frame (0.03 palm lengths)
    assert carried == [23], carried


# Frames 27-28 of the occlusion clip, with the face boxes the swap's face track gives them
# (``--face-backend mediapipe``, smoothed): the palm detector fires on the turning, blurred face
# and the landmarker accepts a "hand" over its nose and cheek (presence 0.87-0.88), which cut
# nearly the whole face out of the mask before ``on_face``.
FACE_AS_HAND = {27: [20.0, 8.0, 167.0, 155.0], 28: [14.0, -1.0, 169.0, 154.0]}


@pytest.fixture(scope="module")
def face_mesh():
    return FaceAnalyzer(FaceConfig(face_backend="mediapipe"))


def test_face_taken_for_a_hand_is_turned_down(occlusion_clip, detector, face_mesh):
    frames, box = occlusion_clip
    for i, track_box in FACE_AS_HAND.items():
        (face,) = face_mesh.detect(frames[i])
        track_box = np.array(track_box)
        assert len(detector(frames[i], track_box[None])[0]) == 1, i  # the false hand
        assert HandTracker(detector)(frames[i], track_box, i) != [], i
        assert HandTracker(detector)(frames[i], track_box, i, face.landmarks) == [], i
    # the real hand over the face is still found, through one tracker as in a swap
    tracker = HandTracker(detector)
    found = set()
    for i in range(15, 29):
        (face,) = face_mesh.detect(frames[i])
        if tracker(frames[i], np.array(FACE_AS_HAND.get(i, box)), i, face.landmarks):
            found.add(i)
    assert set(OCCLUDED) <= found and not found & set(FACE_AS_HAND), sorted(found)


def test_on_face_needs_the_hand_inside_the_face():
    # a 100 px square face; a hand of palm length 40, wrist at the bottom, fingertips 67 px up
    face = np.array([[0.0, 0.0], [100.0, 0.0], [100.0, 100.0], [0.0, 100.0]])

    def wrist_at(x: float, y: float) -> np.ndarray:
        return _upright_hand(offset=(x, y - 40.0)).points

    inside = wrist_at(60.0, 90.0)
    assert inside[:, :2].min() > 0 and inside[:, :2].max() < 100 and on_face(inside, face)
    assert not on_face(wrist_at(60.0, 105.0), face)  # the wrist below the chin
    past = inside.copy()
    past[12, 1] = -12.0  # the middle fingertip past the brows, 12 % of the face size
    assert not on_face(past, face)
    past[12, 1] = -8.0  # within 10 %: landmark noise, still the face
    assert on_face(past, face)


def test_tracked_region_holds_the_hand(occlusion_hands, detector):
    # the region from a hand's own landmarks gives back that hand: the tracker's premise
    for i in OCCLUDED:
        frame, (hand,) = occlusion_hands[i]
        points, presence = detector.landmarks(frame, *landmark_roi(hand.points))
        assert presence > 0.8
        error = np.linalg.norm(points[:, :2] - hand.points[:, :2], axis=1).mean()
        assert error < 0.1 * hand.palm_length(), (i, error)
    # an upright hand: its wrist and lower finger joints span 43 x 52 px around (-4.5, 14) from
    # the middle knuckle; the region is twice the longer side, shifted up a tenth of the height
    center, side, angle = landmark_roi(_upright_hand(offset=(100.0, 120.0)).points)
    assert abs(angle) < 0.5 and side == pytest.approx(104.0, abs=0.5)
    assert np.allclose(center, [100.0 - 4.5, 120.0 + 14.0 - 5.2], atol=0.5)


def test_smoothing_steadies_a_still_hand(occlusion_clip, detector):
    """Frame 21 sixteen times with fresh camera-like noise (σ 3 grey levels): the hand does not
    move, so whatever its mask does at its edge is flicker. Smoothed: under the unsmoothed
    tracker's and under 3/4 of a palm pass on every frame. How much the tracker alone flickers
    depends on the CPU's inference kernels: measured 18.0 vs 34.1 (tracked) and 26.5 (every
    frame) on one machine, 18.2 vs 19.0 and 30.9 on an AMD EPYC."""
    frames, box = occlusion_clip
    rng = np.random.default_rng(0)
    noisy = [
        np.clip(frames[21] + rng.normal(0.0, 3.0, frames[21].shape), 0, 255).astype(np.uint8)
        for _ in range(16)
    ]
    shape = frames[21].shape[:2]
    raw, smooth = HandTracker(detector, smooth=False), HandTracker(detector)
    flicker = {
        "every frame": edge_flicker([hand_mask(detector(f, box[None])[0], shape) for f in noisy]),
        "tracked": edge_flicker([hand_mask(raw(f, box, i), shape) for i, f in enumerate(noisy)]),
    }
    smoothed = edge_flicker([hand_mask(smooth(f, box, i), shape) for i, f in enumerate(noisy)])
    assert smoothed < flicker["tracked"], (smoothed, flicker)
    assert smoothed < 0.75 * flicker["every frame"], (smoothed, flicker)


def test_one_euro_follows_a_moving_hand_and_steadies_a_still_one():
    rng = np.random.default_rng(1)
    hand = _upright_hand()  # palm length 40 px
    still, steady = OneEuro(), []
    for _ in range(30):
        noisy = hand.points + rng.normal(0.0, 1.0, hand.points.shape).astype(np.float32)
        steady.append(still(noisy, 40.0) - hand.points)
    # 1 px of jitter on each coordinate: 0.74 px left (the speed the jitter itself fakes opens
    # the filter a little; it leans toward following a hand rather than lagging it)
    assert np.sqrt(np.mean(np.square(steady[10:]))) < 0.8
    # a hand sweeping 8 px per frame (a fifth of its palm) into the face: the smoothed points
    # trail by ~1 px, and the smoothed hand's mask still covers every pixel of the true hand at
    # full strength (hand_mask grows by that pixel more than its feather needs)
    moving = OneEuro()
    for k in range(20):
        truth = _upright_hand(offset=(60.0 + 8.0 * k, 120.0))
        smoothed = Hand(moving(truth.points, 40.0).astype(np.float32), 0.99, 0.9)
        assert (
            hand_mask([smoothed], (240, 400))[hand_silhouette(truth, (240, 400)) > 0].min() > 0.996
        )


def test_edge_flicker():
    a = np.zeros((50, 50), np.float32)
    a[10:30, 10:30] = 1.0
    assert edge_flicker([a, a, a]) == 0.0 and edge_flicker([a]) == 0.0
    b = np.roll(a, 1, axis=1)  # the edge moved by a pixel: two columns of 20 px changed fully
    assert 0.0 < edge_flicker([a, b]) < 255.0
    assert edge_flicker([a, b, a]) == pytest.approx(edge_flicker([a, b]))
    assert edge_flicker([np.zeros_like(a)] * 2) == 0.0


def test_anchors_and_weighted_nms():
    anchors = ssd_anchors()
    assert anchors.shape == (2016, 2)
    # 24x24 cells with 2 anchors each, then 12x12 cells with 6 each, row by row
    assert np.allclose(anchors[[0, 1, 2]], [[0.5 / 24, 0.5 / 24]] * 2 + [[1.5 / 24, 0.5 / 24]])
    assert np.allclose(anchors[1152:1158], 0.5 / 12) and np.allclose(anchors[-1], 11.5 / 12)
    raw = np.zeros((2016, 18))
    raw[0, 2:4] = 19.2  # a box 0.1 wide around the first anchor, its keypoints on the centre
    logits = np.full(2016, -10.0)
    logits[0] = 3.0
    boxes, keypoints, scores = decode_palms(raw, logits, anchors, 0.5)
    assert np.allclose(
        boxes, [[0.5 / 24 - 0.05, 0.5 / 24 - 0.05, 0.5 / 24 + 0.05, 0.5 / 24 + 0.05]]
    )
    assert np.allclose(keypoints, anchors[0]) and np.allclose(scores, 1 / (1 + np.exp(-3.0)))
    # two overlapping boxes merge into their score-weighted mean; a distant one stays apart
    boxes = np.array([[0.0, 0.0, 1.0, 1.0], [0.1, 0.0, 1.1, 1.0], [3.0, 3.0, 4.0, 4.0]])
    merged = weighted_nms(boxes, np.zeros((3, 7, 2)), np.array([0.9, 0.3, 0.6]))
    assert [round(s, 2) for _, _, s in merged] == [0.9, 0.6]
    assert np.allclose(merged[0][0], [0.025, 0.0, 1.025, 1.0]) and np.allclose(
        merged[1][0], boxes[2]
    )


def _upright_hand(scale: float = 1.0, offset=(100.0, 120.0)) -> Hand:
    """A flat right hand seen from the front, fingers up, palm length 40 px × ``scale``."""
    xy = [(0, 40), (-12, 32), (-20, 22), (-26, 14), (-30, 6)]  # wrist, thumb
    for x in (-10, 0, 9, 17):  # index, middle, ring, little: knuckle to tip
        xy += [(x, 0), (x, -12), (x, -20), (x, -27)]
    points = np.column_stack([np.array(xy, float) * scale + offset, np.zeros(21)])
    return Hand(points.astype(np.float32), 0.99, 0.9)


def test_silhouette_widths_follow_the_hand_size_and_the_matrix():
    small = hand_silhouette(_upright_hand(1.0), (240, 240)) > 0
    big = hand_silhouette(_upright_hand(2.0, (100.0, 60.0)), (240, 240)) > 0
    assert 3.6 < big.sum() / small.sum() < 4.4
    # a finger is about a quarter of the palm length wide: across the four fingers between their
    # first and second joints, the silhouette spans index-to-little (27 px × scale) plus one width
    for mask, y, scale in ((small, 104, 1), (big, 28, 2)):
        cols = np.flatnonzero(mask[y])
        assert 9 * scale <= cols[-1] - cols[0] + 1 - 27 * scale <= 12 * scale
    # drawing through a 2x matrix is drawing the 2x hand
    m = np.array([[2.0, 0.0, -100.0], [0.0, 2.0, -180.0]])
    through = hand_silhouette(_upright_hand(1.0), (240, 240), m) > 0
    assert (through ^ big).sum() < 0.02 * big.sum()


def test_face_mask_minus_hands():
    # a face hull in the 224 crop (mean-face-like outline) and a hand raised over its lower half
    from magicmask.face.pose import mean_face

    landmarks = mean_face()[:, :2] * 80.0 + 112.0
    face = face_mask(landmarks)
    hands = hand_mask([_upright_hand(1.2, (112.0, 150.0))], face.shape)
    hard_hand = hand_silhouette(_upright_hand(1.2, (112.0, 150.0)), face.shape) > 0
    out = without_hands(face, hands)
    assert out.dtype == face.dtype and out.shape == face.shape
    assert (out <= face).all() and (out >= 0).all()
    # the hand itself is kept out of the face (< 1 grey level)
    assert out[hard_hand].max() < 4e-3
    # ... where the hull alone pastes over a good part of it
    assert (face[hard_hand] > 0.99).sum() > 1000
    far = hand_mask([_upright_hand(1.2, (112.0, 150.0))], face.shape, grow=10.0, feather=0.0) == 0
    assert np.array_equal(out[far], face[far])  # away from the hand, the hull is untouched
    assert np.array_equal(without_hands(face, np.zeros_like(face)), face)
    with pytest.raises(InvalidInput, match="does not match"):
        without_hands(face, hands[:100])


def test_missing_model_and_runtime_are_clear_errors(tmp_path, monkeypatch):
    with pytest.raises(ModelError, match=rf"{PALM_MODEL}.*--face-models.*; or --mask hull"):
        HandDetector(face_models=tmp_path)
    shutil.copy(wheel_model(None, "palm_detection", PALM_MODEL, "palm detector"), tmp_path)
    with pytest.raises(ModelError, match=rf"{HAND_MODEL}.*--face-models"):
        HandDetector(face_models=tmp_path)
    (tmp_path / HAND_MODEL).write_bytes(b"not a model")
    with pytest.raises(ModelError, match="not a readable TFLite model"):
        HandDetector(face_models=tmp_path)
    # the two files swapped: the wrong input size is named
    shutil.copy(tmp_path / PALM_MODEL, tmp_path / HAND_MODEL)
    with pytest.raises(ModelError, match=r"is not hand landmarker's \(1, 224, 224, 3\)"):
        HandDetector(face_models=tmp_path)
    real_import = builtins.__import__

    def no_litert(name, *args, **kwargs):
        if name.startswith("ai_edge_litert"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(builtins, "__import__", no_litert)
        with pytest.raises(
            ModelError,
            match=r"palm detector: TFLite runtime missing \(pip install 'mmvideo\[mediapipe\]'\)",
        ):
            HandDetector()
    monkeypatch.setattr(
        "importlib.util.find_spec", lambda name, *args: None
    )  # mediapipe not installed
    with pytest.raises(
        ModelError,
        match=r"mediapipe: package not installed \(pip install --no-deps mediapipe==0.10.14\)",
    ):
        HandDetector()


def test_mask_key_takes_hull_and_hands():
    from mmvideo.config import load_config

    assert load_config().compose.mask == "hull"
    assert load_config("quality").compose.mask == "hull,hands"  # issue 15: quality keeps hands
    assert load_config(overrides={"mask": "hull,hands"}).compose.mask == "hull,hands"
    with pytest.raises(InvalidInput, match=r"--mask must be a comma list .* not 'hands': hull is"):
        load_config(overrides={"mask": "hands"})


@pytest.mark.slow
def test_swap_leaves_the_hand_over_the_face_unchanged(
    data_dir,
    tmp_path,
    tiny_checkpoint,
):
    """``--mask hull,hands`` on the frames where the hand covers the face: the hand (its
    silhouette found on the input frames, eroded 2 px) moves by at most 2 grey levels in the
    lossless output, while the face around it is swapped. With the hull alone the random tiny
    generator's face is pasted over part of the hand."""
    clip = data_dir / "talking_head_profile_occlusion_01.mp4"
    out = tmp_path / "swapped.mkv"
    extra = [
        "--face-backend",
        "mediapipe",
        "--mask",
        "hull,hands",
        "--codec",
        "ffv1",
        "--frames",
        "19-23",
    ]
    assert swap_cli(data_dir, clip, out, tiny_checkpoint, *extra) == 0
    # both read by the same decoder, so the comparison sees only the swap
    inputs, outputs = frames_of(clip)[OCCLUDED.start : OCCLUDED.stop], frames_of(out)
    assert len(outputs) == len(inputs) == 5
    detector = HandDetector()
    (face,) = FaceAnalyzer(FaceConfig(detector="cnn")).detect(inputs[0])
    erode = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    for before, after in zip(inputs, outputs):
        (hand,) = detector(before, face.box[None])[0]
        kept = cv2.erode(hand_silhouette(hand, before.shape[:2]), erode) > 0
        change = np.abs(_gray(after) - _gray(before))
        # the goal (issue 15): <= 2 levels on average; and hardly a pixel moves by more. The hull
        # alone here: 1.6-2.5 on average, 6-7 % of the hand's pixels beyond 2 levels (frames
        # 19-22); with the hands cut out: <= 0.04, <= 0.6 % (a few edge pixels, where the
        # pipeline's landmarks of the hand differ from these by a pixel or two)
        assert kept.sum() > 2000 and change[kept].mean() <= 2.0
        assert (change[kept] > 2).mean() < 0.02
        assert (change > 10).sum() > 1000  # the face itself was swapped


def _gray(image: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
