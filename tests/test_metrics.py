"""keras_seg.metrics on the active backend: hand-computed cases, agreement, properties, jit, saving."""

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import keras_seg.metrics as M
from keras_seg.metrics import confusion

NAN = float("nan")


def np_(x):
    return np.asarray(keras.ops.convert_to_numpy(x), dtype=np.float64)


def scores(ids, k):
    """One-hot 'logits' whose argmax is `ids` (B,H,W) -> (B,H,W,k) float32."""
    return np.eye(k, dtype="float32")[np.asarray(ids)] * 4.0 - 1.0


def reference_miou(y_true, pred, k, ignore_index=None):
    """The seed's algorithm: per class intersection/union over valid pixels, NaN if empty, mean of non-NaN."""
    valid = np.ones(y_true.shape, bool) if ignore_index is None else y_true != ignore_index
    ious = []
    for c in range(k):
        p, g = (pred == c) & valid, (y_true == c) & valid
        union = (p | g).sum()
        ious.append((p & g).sum() / union if union else np.nan)
    ious = np.array(ious, dtype=np.float64)
    return (np.nanmean(ious) if np.any(~np.isnan(ious)) else 0.0), ious


# Shared 2x3 case, K = 3, ignore_index = 255.
#   truth  [[0, 1, 2],      pred [[0, 1, 1],
#           [255, 1, 1]]          [2, 1, 0]]
Y_TRUE = np.array([[[0, 1, 2], [255, 1, 1]]], dtype="int32")
Y_PRED_IDS = np.array([[[0, 1, 1], [2, 1, 0]]], dtype="int32")
# Valid pixels (5): (t,p) = (0,0) (1,1) (2,1) (1,1) (1,0)
# cm rows truth: [[1,0,0],[1,2,0],[0,1,0]]
CM = np.array([[1, 0, 0], [1, 2, 0], [0, 1, 0]], dtype=np.float64)
# IoU_0 = 1/(1+2-1)=1/2 ; IoU_1 = 2/(3+3-2)=1/2 ; IoU_2 = 0/(1+0-0)=0  -> mean 1/3
# Dice_0 = 2/(1+2)=2/3 ; Dice_1 = 4/(3+3)=2/3 ; Dice_2 = 0/1=0        -> mean 4/9
# accuracy = (1+2+0)/5 = 3/5


def test_hand_computed_confusion_iou_dice_accuracy():
    y_pred = scores(Y_PRED_IDS, 3)
    cm = M.ConfusionMatrix(3, ignore_index=255)
    miou = M.MeanIoU(3, ignore_index=255)
    dice = M.DiceScore(3, ignore_index=255)
    acc = M.PixelAccuracy(3, ignore_index=255)
    ious = [M.IoU(3, class_id=k, ignore_index=255) for k in range(3)]
    for m in [cm, miou, dice, acc, *ious]:
        m.update_state(Y_TRUE, y_pred)
    np.testing.assert_allclose(np_(cm.result()), CM)
    np.testing.assert_allclose(np_(miou.confusion_matrix()), CM)
    np.testing.assert_allclose(np_(miou.result()), 1 / 3, rtol=1e-6)
    np.testing.assert_allclose(np_(miou.per_class_result()), [0.5, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np_(dice.result()), 4 / 9, rtol=1e-6)
    np.testing.assert_allclose(np_(dice.per_class_result()), [2 / 3, 2 / 3, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np_(acc.result()), 3 / 5, rtol=1e-6)
    assert [m.name for m in ious] == ["iou_0", "iou_1", "iou_2"]
    np.testing.assert_allclose([np_(m.result()) for m in ious], [0.5, 0.5, 0.0], rtol=1e-6)


def test_pixel_accuracy_infers_num_classes():
    acc = M.PixelAccuracy(ignore_index=255)
    acc.update_state(Y_TRUE, scores(Y_PRED_IDS, 3))
    np.testing.assert_allclose(np_(acc.result()), 3 / 5, rtol=1e-6)  # same 3 of 5 valid pixels
    acc.reset_state()
    acc.update_state(Y_TRUE, Y_PRED_IDS)  # integer predictions, K unknown: 255 ignored, rest counted
    np.testing.assert_allclose(np_(acc.result()), 3 / 5, rtol=1e-6)


def test_confusion_matrix_normalize():
    # rows of CM sum to [1, 3, 1]; columns to [2, 3, 0]; total 5
    y_pred = scores(Y_PRED_IDS, 3)
    for normalize, expected in [
        ("true", CM / np.array([[1], [3], [1]])),
        ("pred", np.array([[1 / 2, 0, 0], [1 / 2, 2 / 3, 0], [0, 1 / 3, 0]])),  # empty column 2 stays 0
        ("all", CM / 5),
        (None, CM),
    ]:
        m = M.ConfusionMatrix(3, ignore_index=255, normalize=normalize)
        m.update_state(Y_TRUE, y_pred)
        np.testing.assert_allclose(np_(m.result()), expected, rtol=1e-6, err_msg=str(normalize))
    with pytest.raises(ValueError, match="normalize"):
        M.ConfusionMatrix(3, normalize="rows")


def test_absent_class_is_left_out_and_per_class_is_nan():
    # K = 4; class 3 appears in neither truth nor prediction.
    # truth [[0,0,1]], pred [[0,1,1]]: IoU_0 = 1/2, IoU_1 = 1/2, IoU_2 = IoU_3 = NaN -> mean 1/2 (not 1/4)
    # Dice_0 = 2/3, Dice_1 = 2/3 -> mean 2/3
    y_true = np.array([[[0, 0, 1]]])
    y_pred = scores([[[0, 1, 1]]], 4)
    miou, dice, iou3 = M.MeanIoU(4), M.DiceScore(4), M.IoU(4, class_id=3)
    for m in (miou, dice, iou3):
        m.update_state(y_true, y_pred)
    np.testing.assert_allclose(np_(miou.result()), 0.5, rtol=1e-6)
    np.testing.assert_allclose(np_(miou.per_class_result()), [0.5, 0.5, NAN, NAN], rtol=1e-6)
    np.testing.assert_allclose(np_(dice.result()), 2 / 3, rtol=1e-6)
    assert np.isnan(np_(iou3.result()))


def test_no_valid_pixel_gives_zero():
    # every pixel ignored: no class present -> 0 (not NaN) for the means and accuracy
    y_true = np.full((1, 2, 2), 255)
    y_pred = scores(np.zeros((1, 2, 2), int), 3)
    for m in (M.MeanIoU(3, ignore_index=255), M.DiceScore(3, ignore_index=255), M.PixelAccuracy(3, ignore_index=255)):
        m.update_state(y_true, y_pred)
        assert float(np_(m.result())) == 0.0
    fresh = M.MeanIoU(3)
    assert float(np_(fresh.result())) == 0.0


def test_sample_weight_shapes():
    # Two images 1x2, K = 2.  img0: truth [0,1] pred [0,0];  img1: truth [1,1] pred [1,0]
    y_true = np.array([[[0, 1]], [[1, 1]]])
    y_pred = scores([[[0, 0]], [[1, 0]]], 2)
    # (B,) weights [2, 0.5]: cm[0,0]=2, cm[1,0]=2 (img0) + 0.5 (img1), cm[1,1]=0.5
    expected_b = np.array([[2, 0], [2.5, 0.5]])
    # (B,H,W) weights [[1, 0]], [[3, 1]]: cm[0,0]=1, cm[1,1]=3, cm[1,0]=1
    pixel_w = np.array([[[1.0, 0.0]], [[3.0, 1.0]]])
    expected_p = np.array([[1, 0], [1, 3]])
    cases = [
        (np.array([2.0, 0.5]), expected_b),
        (pixel_w, expected_p),
        (pixel_w[..., None], expected_p),
        (0.5, 0.5 * np.array([[1, 0], [2, 1]])),  # scalar: unweighted cm [[1,0],[2,1]] times 0.5
    ]
    for sw, expected in cases:
        m = M.ConfusionMatrix(2)
        m.update_state(y_true, y_pred, sample_weight=sw)
        np.testing.assert_allclose(np_(m.result()), expected, rtol=1e-6)
    # IoU with (B,) weights: IoU_0 = 2/(2+4.5-2) = 4/9 ; IoU_1 = 0.5/(3+0.5-0.5) = 1/6
    m = M.MeanIoU(2)
    m.update_state(y_true, y_pred, sample_weight=np.array([2.0, 0.5]))
    np.testing.assert_allclose(np_(m.result()), (4 / 9 + 1 / 6) / 2, rtol=1e-6)
    # accuracy with pixel weights: correct weight 1 + 3 = 4 of total 5
    a = M.PixelAccuracy(2)
    a.update_state(y_true, y_pred, sample_weight=pixel_w)
    np.testing.assert_allclose(np_(a.result()), 4 / 5, rtol=1e-6)


def test_ignore_index_inside_class_range():
    # ignore_index=0 (void background) with K = 3: the two 0-labelled pixels are dropped
    # truth [[0,1,2,0]] pred [[2,1,1,1]]: valid (1,1) (2,1) -> IoU_1 = 1/2, IoU_2 = 0/1 = 0, class 0 absent
    m = M.MeanIoU(3, ignore_index=0)
    m.update_state(np.array([[[0, 1, 2, 0]]]), scores([[[2, 1, 1, 1]]], 3))
    np.testing.assert_allclose(np_(m.per_class_result()), [NAN, 0.5, 0.0], rtol=1e-6)
    np.testing.assert_allclose(np_(m.result()), 0.25, rtol=1e-6)


def test_one_channel_binary_logits_and_probabilities():
    # logits [-2, 0.5, 3, -0.1] -> sigmoid > 0.5 -> [0, 1, 1, 0]; truth [0, 1, 0, 0]
    # cm [[2,1],[0,1]]: IoU_0 = 2/3, IoU_1 = 1/2 -> mean 7/12 ; accuracy 3/4
    y_true = np.array([[[0, 1, 0, 0]]])
    logits = np.array([[[[-2.0], [0.5], [3.0], [-0.1]]]], dtype="float32")
    m = M.MeanIoU(2)
    m.update_state(y_true, logits)
    np.testing.assert_allclose(np_(m.confusion_matrix()), [[2, 1], [0, 1]])
    np.testing.assert_allclose(np_(m.result()), 7 / 12, rtol=1e-6)
    # probabilities with from_logits=False: 0.5 threshold directly (0.45 -> 0, 0.55 -> 1)
    probs = np.array([[[[0.1], [0.55], [0.9], [0.45]]]], dtype="float32")
    p = M.PixelAccuracy(2, from_logits=False)
    p.update_state(y_true, probs)
    np.testing.assert_allclose(np_(p.result()), 3 / 4, rtol=1e-6)
    # custom threshold 0.95 on probabilities: all predicted 0 -> accuracy 3/4 (only the 1 is wrong)
    t = M.PixelAccuracy(2, from_logits=False, threshold=0.95)
    t.update_state(y_true, probs)
    np.testing.assert_allclose(np_(t.result()), 3 / 4, rtol=1e-6)
    with pytest.raises(ValueError, match="num_classes"):
        M.MeanIoU(3).update_state(y_true, logits)


def test_one_hot_truth_with_void_rows():
    # one-hot truth equal to Y_TRUE, the 255 pixel written as an all-zero row -> same matrix as CM
    onehot = np.zeros((1, 2, 3, 3), "float32")
    for (i, j), t in np.ndenumerate(Y_TRUE[0]):
        if t != 255:
            onehot[0, i, j, t] = 1
    m = M.MeanIoU(3)
    m.update_state(onehot, scores(Y_PRED_IDS, 3))
    np.testing.assert_allclose(np_(m.confusion_matrix()), CM)


def test_integer_predictions_and_label_shapes():
    # integer (B,H,W) and (B,H,W,1) class ids, labels (B,H,W,1): same matrix as CM
    for y_true in (Y_TRUE, Y_TRUE[..., None], Y_TRUE.astype("float32")):
        for y_pred in (Y_PRED_IDS, Y_PRED_IDS[..., None]):
            m = M.ConfusionMatrix(3, ignore_index=255)
            m.update_state(y_true, y_pred)
            np.testing.assert_allclose(np_(m.result()), CM)


def test_out_of_range_labels_are_dropped():
    # truth [[0, 7, -1, 1]] (7 and -1 are neither classes nor ignore_index), pred [[0, 1, 1, 1]]
    # only (0,0) and (1,1) count: cm [[1,0],[0,1]], nothing lands in another cell
    m = M.ConfusionMatrix(2, ignore_index=255)
    m.update_state(np.array([[[0, 7, -1, 1]]]), scores([[[0, 1, 1, 1]]], 2))
    np.testing.assert_allclose(np_(m.result()), [[1, 0], [0, 1]])
    # out-of-range integer predictions are dropped too
    m.reset_state()
    m.update_state(np.array([[[0, 1, 1]]]), np.array([[[0, 5, 1]]]))
    np.testing.assert_allclose(np_(m.result()), [[1, 0], [0, 1]])


def test_streaming_and_reset():
    # batch 1 = the shared case (cm CM); batch 2: truth [[2,2]] pred [[2,0]] adds cm[2,2]=1, cm[2,0]=1
    # total [[1,0,0],[1,2,0],[1,1,1]]: IoU_0 = 1/(1+3-1)=1/3, IoU_1 = 2/(3+3-2)=1/2, IoU_2 = 1/(3+1-1)=1/3
    m = M.MeanIoU(3, ignore_index=255)
    m.update_state(Y_TRUE, scores(Y_PRED_IDS, 3))
    m.update_state(np.array([[[2, 2]]]), scores([[[2, 0]]], 3))
    np.testing.assert_allclose(np_(m.confusion_matrix()), [[1, 0, 0], [1, 2, 0], [1, 1, 1]])
    np.testing.assert_allclose(np_(m.result()), (1 / 3 + 1 / 2 + 1 / 3) / 3, rtol=1e-6)
    m.reset_state()
    np.testing.assert_allclose(np_(m.confusion_matrix()), np.zeros((3, 3)))
    assert float(np_(m.result())) == 0.0
    m.update_state(Y_TRUE, scores(Y_PRED_IDS, 3))
    np.testing.assert_allclose(np_(m.result()), 1 / 3, rtol=1e-6)


@pytest.mark.filterwarnings("ignore:Explicitly requested dtype int64")  # inside keras.metrics.MeanIoU on jax
def test_agreement_with_keras_mean_iou_and_reference():
    rng = np.random.default_rng(0)
    k = 5
    for trial in range(3):
        y_true = rng.integers(0, k, size=(2, 6, 7)).astype("int32")
        y_true[rng.random(y_true.shape) < 0.2] = 255
        logits = rng.normal(size=(2, 6, 7, k)).astype("float32")
        pred = logits.argmax(-1).astype("int32")
        ours = M.MeanIoU(k, ignore_index=255)
        ours.update_state(y_true, logits)
        theirs = keras.metrics.MeanIoU(k, ignore_class=255, sparse_y_pred=True)
        theirs.update_state(y_true, pred)
        ref, ref_per_class = reference_miou(y_true, pred, k, 255)
        np.testing.assert_allclose(np_(ours.result()), np_(theirs.result()), atol=1e-5)
        np.testing.assert_allclose(np_(ours.result()), ref, atol=1e-5)
        np.testing.assert_allclose(np_(ours.per_class_result()), ref_per_class, atol=1e-5)


def test_mixed_precision_computes_in_float32():
    keras.config.set_dtype_policy("mixed_float16")
    m = M.MeanIoU(3, ignore_index=255, dtype="mixed_float16")
    m.update_state(Y_TRUE, scores(Y_PRED_IDS, 3).astype("float16"))
    assert keras.backend.standardize_dtype(m.variables[0].dtype) == "float32"
    value = m.result()
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    np.testing.assert_allclose(np_(value), 1 / 3, rtol=1e-6)


def test_errors_name_the_value():
    with pytest.raises(ValueError, match="num_classes"):
        M.MeanIoU(1)
    with pytest.raises(ValueError, match="class_id"):
        M.IoU(3, class_id=3)
    with pytest.raises(ValueError, match="4 channels"):
        M.MeanIoU(3).update_state(Y_TRUE, np.zeros((1, 2, 3, 4), "float32"))
    with pytest.raises(ValueError, match="pixel grids"):
        M.MeanIoU(3).update_state(Y_TRUE, np.zeros((1, 3, 3, 3), "float32"))


# ----------------------------------------------------------------------------- properties

K = 3
masks = hnp.arrays(np.int32, st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 4)),
                   elements=st.sampled_from([0, 1, 2, 255]))


@given(masks)
def test_perfect_prediction_scores_one(y_true):
    if not np.any(y_true != 255):
        y_true = y_true.copy()
        y_true.flat[0] = 1
    pred_ids = np.where(y_true == 255, 0, y_true)
    for m in (M.MeanIoU(K, ignore_index=255), M.DiceScore(K, ignore_index=255), M.PixelAccuracy(K, ignore_index=255)):
        m.update_state(y_true, scores(pred_ids, K))
        np.testing.assert_allclose(np_(m.result()), 1.0, rtol=1e-6)


@given(masks, st.integers(0, 2**31 - 1))
def test_predictions_at_ignored_pixels_change_nothing(y_true, seed):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=y_true.shape + (K,)).astype("float32")
    other = logits.copy()
    other[y_true == 255] = rng.normal(size=other[y_true == 255].shape)
    a, b = M.ConfusionMatrix(K, ignore_index=255), M.ConfusionMatrix(K, ignore_index=255)
    a.update_state(y_true, logits)
    b.update_state(y_true, other)
    np.testing.assert_array_equal(np_(a.result()), np_(b.result()))


@given(masks, st.integers(0, 2**31 - 1), st.integers(1, 3))
def test_streaming_in_pieces_equals_one_batch(y_true, seed, pieces):
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=y_true.shape + (K,)).astype("float32")
    weights = rng.uniform(0, 2, size=y_true.shape[0]).astype("float32")
    whole, parts = M.MeanIoU(K, ignore_index=255), M.MeanIoU(K, ignore_index=255)
    whole.update_state(y_true, logits, sample_weight=weights)
    for idx in np.array_split(np.arange(y_true.shape[0]), pieces):
        if len(idx):
            parts.update_state(y_true[idx], logits[idx], sample_weight=weights[idx])
    np.testing.assert_allclose(np_(parts.confusion_matrix()), np_(whole.confusion_matrix()), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(np_(parts.result()), np_(whole.result()), rtol=1e-6, atol=1e-7)


# ----------------------------------------------------------------------------- jit, compile, saving


def test_update_state_under_jit(backend):
    metric = M.MeanIoU(3, ignore_index=255)
    y_true = Y_TRUE
    y_pred = scores(Y_PRED_IDS, 3)
    sw = np.array([2.0], "float32")

    def step(variables, y_true, y_pred, sw):
        variables = metric.stateless_update_state(variables, y_true, y_pred, sample_weight=sw)
        return variables, metric.stateless_result(variables)

    if backend == "jax":
        import jax

        step = jax.jit(step)
    elif backend == "tensorflow":
        import tensorflow as tf

        step = tf.function(step, jit_compile=False)
        y_true, y_pred, sw = tf.constant(y_true), tf.constant(y_pred), tf.constant(sw)
    variables = [v.value for v in metric.variables]
    for _ in range(2):
        variables, value = step(variables, y_true, y_pred, sw)
    # two updates with weight 2: cm = 4 * CM, same ratios -> mIoU 1/3
    np.testing.assert_allclose(np_(variables[0]), 4 * CM, rtol=1e-6)
    np.testing.assert_allclose(np_(value), 1 / 3, rtol=1e-6)
    if backend == "tensorflow":  # XLA too
        import tensorflow as tf

        xla = tf.function(lambda v, t, p: metric.stateless_update_state(v, t, p), jit_compile=True)
        out = xla([v.value for v in metric.variables], tf.constant(Y_TRUE), tf.constant(scores(Y_PRED_IDS, 3)))
        np.testing.assert_allclose(np_(out[0]), CM, rtol=1e-6)


def _model():
    inputs = keras.Input((None, None, 2))
    outputs = keras.layers.Conv2D(3, 1, dtype="float32")(inputs)
    return keras.Model(inputs, outputs)


def test_compiled_evaluate_matches_numpy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5, 4, 2)).astype("float32")
    y = rng.integers(0, 3, size=(6, 5, 4)).astype("int32")
    y[:, 0, 0] = 255
    model = _model()
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=255),
        metrics=[M.MeanIoU(3, ignore_index=255), M.DiceScore(3, ignore_index=255)],
    )
    got = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    pred = model.predict(x, verbose=0).argmax(-1)
    ref, _ = reference_miou(y, pred, 3, 255)
    valid = y != 255
    dice = []
    for c in range(3):  # Dice_c = 2|P∩G| / (|P| + |G|) over valid pixels, left out when both are empty
        p, g = (pred == c) & valid, (y == c) & valid
        if p.sum() + g.sum():
            dice.append(2 * (p & g).sum() / (p.sum() + g.sum()))
    np.testing.assert_allclose(got["mean_iou"], ref, rtol=1e-5)
    np.testing.assert_allclose(got["dice"], np.mean(dice), rtol=1e-5)


ALL = [
    lambda: M.MeanIoU(4, ignore_index=255, from_logits=False, name="miou", dtype="float32"),
    lambda: M.IoU(4, class_id=2, ignore_index=0, threshold=0.3),
    lambda: M.DiceScore(3),
    lambda: M.PixelAccuracy(),
    lambda: M.PixelAccuracy(5, ignore_index=255),
    lambda: M.ConfusionMatrix(3, normalize="true"),
]


@pytest.mark.parametrize("make", ALL)
def test_config_round_trip(make):
    metric = make()
    config = metric.get_config()
    clone = type(metric).from_config(config)
    assert clone.get_config() == config
    revived = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(revived) is type(metric) and revived.get_config() == config


def test_keras_file_round_trip(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(4, 3, 3, 2)).astype("float32")
    y = rng.integers(0, 3, size=(4, 3, 3)).astype("int32")
    model = _model()
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[M.MeanIoU(3), M.IoU(3, class_id=1), M.DiceScore(3), M.PixelAccuracy(3)],
    )
    model.fit(x, y, epochs=1, verbose=0)  # saved after training, with optimizer state
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    path = tmp_path / "m.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    got = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(got) == set(expected) >= {"mean_iou", "iou_1", "dice", "pixel_accuracy"}
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, err_msg=key)


# ----------------------------------------------------------------------------- report


def test_segmentation_report_from_matrix_and_metric():
    report = M.segmentation_report(CM, class_names=["sky", "road", "car"])
    # from CM: precision = TP / column sums [2, 3, 0] ; recall = TP / row sums [1, 3, 1]
    assert report.per_class["sky"] == pytest.approx(
        {"iou": 0.5, "dice": 2 / 3, "precision": 0.5, "recall": 1.0, "support": 1.0}
    )
    assert report.per_class["road"] == pytest.approx(
        {"iou": 0.5, "dice": 2 / 3, "precision": 2 / 3, "recall": 2 / 3, "support": 3.0}
    )
    assert np.isnan(report.per_class["car"]["precision"]) and report.per_class["car"]["recall"] == 0.0
    assert report.mean_iou == pytest.approx(1 / 3)
    assert report.mean_dice == pytest.approx(4 / 9)
    assert report.pixel_accuracy == pytest.approx(3 / 5)
    text = str(report)
    for token in ["class", "IoU", "Dice", "precision", "recall", "pixels", "road", "0.3333", "0.6000"]:
        assert token in text
    assert report.to_dict()["mean_iou"] == pytest.approx(1 / 3)

    metric = M.ConfusionMatrix(3, ignore_index=255, normalize="true")  # the report uses the raw counts
    metric.update_state(Y_TRUE, scores(Y_PRED_IDS, 3))
    from_metric = M.segmentation_report(metric)
    assert list(from_metric.per_class) == ["0", "1", "2"]
    assert from_metric.mean_iou == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="class_names"):
        M.segmentation_report(CM, class_names=["a", "b"])
    with pytest.raises(ValueError, match="square"):
        M.segmentation_report(np.zeros((2, 3)))


def test_confusion_functions_are_pure():
    per_class = np_(confusion.iou_per_class(CM.astype("float32")))
    np.testing.assert_allclose(per_class, [0.5, 0.5, 0.0])
    cm = confusion.batch_confusion_matrix(Y_TRUE, scores(Y_PRED_IDS, 3), 3, ignore_index=255)
    np.testing.assert_allclose(np_(cm), CM)
    assert float(np_(confusion.nanmean(np.array([NAN, NAN], "float32")))) == 0.0


@given(masks, st.integers(0, 2**31 - 1), st.sampled_from([1e4, 1e30, np.inf]))
def test_finite_in_unit_range_for_extreme_logits_and_empty_classes(y_true, seed, big):
    rng = np.random.default_rng(seed)
    logits = (np.sign(rng.normal(size=y_true.shape + (K,))) * big).astype("float32")
    only_zero = np.where(y_true == 255, 255, 0)  # classes 1 and 2 absent from the truth
    for y in (y_true, only_zero):
        # (IoU(class_id=k) alone is NaN, by design, while class k is absent from truth and prediction.)
        for m in (M.MeanIoU(K, ignore_index=255), M.DiceScore(K, ignore_index=255), M.PixelAccuracy(K, ignore_index=255)):
            m.update_state(y, logits)
            value = float(np_(m.result()))
            assert np.isfinite(value) and 0.0 <= value <= 1.0, (m.name, value)
