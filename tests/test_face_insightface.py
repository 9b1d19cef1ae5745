"""The insightface backend through insightface's own loading code, with small ONNX models made here.

The models have the real packs' file names and input/output signatures (SCRFD: one dynamic NCHW
input, 9 outputs = scores/boxes/5 points at strides 8/16/32; landmarks: 192×192 input, 3309 or
212 outputs) but fixed, hand-set weights: they test plumbing, shapes and coordinate handling,
not accuracy.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.insightface_backend import (
    DETECTOR_FILES,
    LANDMARK_2D_FILE,
    LANDMARK_3D_FILE,
)
from magicmask.face.pose import mean_face
from magicmask.face.prepare import prepare_target
from mmcore.errors import ModelError

pytest.importorskip("insightface")

STRIDES = (8, 16, 32)


pytestmark = pytest.mark.usefixtures("offline")


def _save(graph: onnx.GraphProto, path) -> None:
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _scrfd(path) -> None:
    """SCRFD signature; the stride-32 score is high where the 32×32 patch is bright."""
    nodes, inits, outputs = [], [], {"score": [], "bbox": [], "kps": []}
    for s in STRIDES:
        for head, width in (("score", 1), ("bbox", 4), ("kps", 10)):
            channels = 2 * width  # two anchors per position
            w = np.zeros((channels, 3, s, s), np.float32)
            b = np.zeros(channels, np.float32)
            if head == "score":
                if s == 32:
                    w[:] = 4.0 / (3 * s * s)  # logit = 4 · mean normalised pixel - 2
                    b[:] = -2.0
                else:
                    b[:] = -20.0
            elif head == "bbox":
                b[:] = 1.0  # one stride on each side of the anchor
            else:
                b[:] = np.tile([-0.4, -0.3, 0.4, -0.3, 0.0, 0.0, -0.3, 0.4, 0.3, 0.4], 2)
            name = f"{head}{s}"
            inits += [
                numpy_helper.from_array(w, f"{name}_w"),
                numpy_helper.from_array(b, f"{name}_b"),
            ]
            nodes += [
                helper.make_node(
                    "Conv",
                    ["input.1", f"{name}_w", f"{name}_b"],
                    [f"{name}_c"],
                    strides=[s, s],
                ),
                helper.make_node("Transpose", [f"{name}_c"], [f"{name}_t"], perm=[0, 2, 3, 1]),
                helper.make_node(
                    "Reshape",
                    [f"{name}_t", f"shape{width}"],
                    [f"{name}_r" if head == "score" else name],
                ),
            ]
            if head == "score":
                nodes.append(helper.make_node("Sigmoid", [f"{name}_r"], [name]))
            outputs[head].append(
                helper.make_tensor_value_info(name, TensorProto.FLOAT, [None, width])
            )
    for width in (1, 4, 10):
        inits.append(numpy_helper.from_array(np.array([-1, width], np.int64), f"shape{width}"))
    graph = helper.make_graph(
        nodes,
        "scrfd_test",
        [helper.make_tensor_value_info("input.1", TensorProto.FLOAT, [1, 3, None, None])],
        outputs["score"] + outputs["bbox"] + outputs["kps"],
        inits,
    )
    _save(graph, path)


def _landmark(path, n_out: int, bias: np.ndarray) -> None:
    """192×192 input → global pool → linear → n_out values; the bias fixes the points."""
    rng = np.random.default_rng(n_out)
    inits = [
        numpy_helper.from_array(
            (rng.standard_normal((3, n_out)) * 1e-3).astype(np.float32), "fc_w"
        ),
        numpy_helper.from_array(bias.astype(np.float32), "fc_b"),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"]),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["fc1"]),
    ]
    graph = helper.make_graph(
        nodes,
        "landmark_test",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
        [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, n_out])],
        inits,
    )
    _save(graph, path)


@pytest.fixture(scope="module")
def face_models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("buffalo_test")
    _scrfd(folder / DETECTOR_FILES[0])
    # 1k3d68: 1103 points × 3; insightface keeps the last 68, in [-1, 1] crop units.
    bias3d = np.zeros((1103, 3), np.float32)
    bias3d[-68:] = mean_face() * 0.5
    _landmark(folder / LANDMARK_3D_FILE, 3309, bias3d.ravel())
    _landmark(folder / LANDMARK_2D_FILE, 212, np.linspace(-0.5, 0.5, 212))
    return folder


@pytest.fixture(scope="module")
def analyzer(face_models):
    return FaceAnalyzer(
        FaceConfig(face_backend="insightface", face_models=face_models, detect_max_side=0)
    )


def _bright_square(h=480, w=640, x0=256, y0=160, side=128):
    image = np.zeros((h, w, 3), np.uint8)
    image[y0 : y0 + side, x0 : x0 + side] = 255
    return image


def test_scrfd_boxes_are_in_image_pixels_where_the_image_is_bright(analyzer):
    faces = analyzer.detect(_bright_square())
    assert faces, "the bright square should trigger the stride-32 score"
    for f in faces:
        cx, cy = (f.box[:2] + f.box[2:]) / 2
        assert 256 <= cx <= 384 and 160 <= cy <= 288
        assert f.score > 0.5
        assert f.extra["points5"].shape == (5, 2)
        assert f.box[0] <= f.extra["points5"][0, 0] <= f.box[2]
    assert analyzer.detect(np.zeros((480, 640, 3), np.uint8)) == []


def test_landmarks_come_back_as_68_points_with_depth_and_106_extra(analyzer):
    image = _bright_square()
    box = np.array([[256, 160, 384, 288]], np.float32)
    (face,) = analyzer.landmarks(image, box)
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert face.landmarks_3d.shape == (68, 3)
    assert face.extra["landmarks_106"].shape == (106, 2)
    # The fixed output is the mean face about the box centre: insightface crops 1.5× the box
    # (192 px for this 128 px box, scale 1) and maps [-1, 1] to the crop, so 0.5 units = 48 px.
    expected = np.array([320.0, 224.0]) + mean_face()[:, :2] * 48.0
    assert np.abs(face.landmarks - expected).max() < 2.0
    # z toward the camera survives insightface's transforms: a frontal pose, nose nearest.
    assert max(abs(a) for a in face.pose) < 5
    t = prepare_target(image, face.landmarks, face.landmarks_3d)
    nose = np.round(t.landmarks[30]).astype(int)
    cheek = np.round(t.landmarks[2] + 0.3 * (t.landmarks[30] - t.landmarks[2])).astype(int)
    assert t.depth[nose[1], nose[0]] > t.depth[cheek[1], cheek[0]]


def test_batch_detection_runs_each_image(analyzer):
    out = analyzer.detect_batch([_bright_square(), np.zeros((200, 300, 3), np.uint8)])
    assert len(out) == 2 and len(out[0]) > 0 and out[1] == []


def test_missing_files_name_the_file_and_the_folder(tmp_path, face_models):
    with pytest.raises(ModelError, match="det_10g.onnx.*--face-models"):
        FaceAnalyzer(FaceConfig(face_backend="insightface", face_models=tmp_path))
    (tmp_path / DETECTOR_FILES[0]).write_bytes((face_models / DETECTOR_FILES[0]).read_bytes())
    with pytest.raises(ModelError, match="1k3d68.onnx"):
        FaceAnalyzer(FaceConfig(face_backend="insightface", face_models=tmp_path))
    # A corrupt file is our error too, naming the file.
    (tmp_path / LANDMARK_3D_FILE).write_bytes(b"not an onnx file")
    with pytest.raises(ModelError, match="1k3d68.onnx: cannot load"):
        FaceAnalyzer(FaceConfig(face_backend="insightface", face_models=tmp_path))


def test_a_model_of_the_wrong_kind_is_refused(tmp_path, face_models):
    # A landmark model saved under the detector's name is routed as Landmark, not SCRFD.
    (tmp_path / DETECTOR_FILES[0]).write_bytes((face_models / LANDMARK_3D_FILE).read_bytes())
    with pytest.raises(ModelError, match="not an insightface SCRFD detector"):
        FaceAnalyzer(FaceConfig(face_backend="insightface", face_models=tmp_path))
