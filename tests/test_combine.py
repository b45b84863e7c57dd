import numpy as np
import pytest
from xplique.attributions import Saliency

from maco_tf import MacoError, visualize
from maco_tf.outputs.attributions import UnknownAttributionMethodError, last_conv_layer
from maco_tf.outputs.combine import ClassExplanation, explain_class
from maco_tf.targets.units import neuron

FAST_VIS = dict(steps=4, crops=2, size=(48, 48), seed=0)


@pytest.fixture
def photos(rng):
    # two uint8 "photos" of other sizes than the model input: cropped and resized
    return [
        rng.integers(0, 256, (40, 60, 3), dtype=np.uint8),
        rng.integers(0, 256, (50, 50, 3), dtype=np.uint8),
    ]


def test_last_conv_layer(tiny_model):
    assert last_conv_layer(tiny_model) == "conv2"


def test_explain_class_tiny(tiny_model, photos):
    result = explain_class(
        tiny_model,
        3,
        photos,
        methods=("Saliency", "grad-cam", "RISE"),
        method_kwargs={"rise": {"nb_samples": 16, "grid_size": 4}},
        values_range=(0, 1),
        visualization=FAST_VIS,
    )
    assert isinstance(result, ClassExplanation)
    assert result.methods == ("Saliency", "grad-cam", "RISE")
    assert result.image.shape == (48, 48, 3) and result.transparency.shape == (48, 48, 3)
    assert 0.0 <= result.image.min() and result.image.max() <= 1.0
    assert result.images.shape == (2, 32, 32, 3)
    # uint8 photos mapped to the model's range
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    assert result.images.max() > 0.5
    for name in result.methods:
        maps = result.attributions[name]
        assert maps.shape == (2, 32, 32), name
        assert np.all(np.isfinite(maps)), name
        assert result.visualization_attributions[name].shape == (32, 32)
    assert np.any(result.attributions["Saliency"] > 0)
    assert result.predictions.shape == (2, 10)
    np.testing.assert_allclose(result.probabilities.sum(axis=1), 1.0, rtol=1e-5)
    assert result.class_probability.shape == (2,)
    assert result.visualization_prediction.shape == (10,)
    assert result.visualization is not None and result.visualization.settings["steps"] == 4
    assert result.class_name == "class 3"
    # the predictions are the model's on the prepared images
    np.testing.assert_allclose(
        result.predictions, tiny_model.predict(result.images, verbose=0), rtol=1e-4, atol=1e-5
    )


def test_saliency_matches_xplique(tiny_model, photos):
    result = explain_class(
        tiny_model,
        1,
        photos,
        methods=["Saliency"],
        values_range=(0, 1),
        visualization=FAST_VIS,
        explain_visualization=False,
    )
    targets = np.zeros((2, 10), np.float32)
    targets[:, 1] = 1
    expected = np.asarray(Saliency(tiny_model).explain(result.images, targets))[..., 0]
    np.testing.assert_allclose(result.attributions["Saliency"], expected, rtol=1e-5, atol=1e-7)
    assert result.visualization_attributions is None and result.visualization_prediction is None
    assert len(result.plot().axes) == 3 * 2  # MACO row (attributions off) + two photos


def test_given_visualization_instances_and_plot(tiny_model, photos, tmp_path):
    run = visualize(neuron(tiny_model, "logits", 2), values_range=(0, 1), **FAST_VIS)
    explainer = Saliency(tiny_model)
    result = explain_class(
        tiny_model,
        2,
        np.stack([p[:32, :32] for p in photos]),
        methods=[explainer, "Occlusion"],
        method_kwargs={"Occlusion": {"patch_size": 8, "patch_stride": 8}},
        values_range=(0, 1),
        visualization=run,
    )
    assert result.visualization is run
    np.testing.assert_allclose(result.image, run.images[0])
    assert result.methods == ("Saliency", "Occlusion")

    figure = result.plot()
    assert len(figure.axes) == 3 * 3
    path = result.save(tmp_path / "out" / "explanation.png")
    assert path.stat().st_size > 1000
    arrays = np.load(result.save(tmp_path / "explanation.npz"))
    assert arrays["attributions/Occlusion"].shape == (2, 32, 32)
    assert arrays["images"].shape == (2, 32, 32, 3)

    # an (image, transparency) pair in the model's range works too
    pair = explain_class(
        tiny_model,
        2,
        photos[0],
        methods="Saliency",
        values_range=(0, 1),
        visualization=(run.images[0], run.transparency[0]),
    )
    assert pair.visualization is None and pair.images.shape == (1, 32, 32, 3)


def test_float_images_and_images_range(tiny_model, rng):
    photo = rng.uniform(-1, 1, (32, 32, 3)).astype(np.float32)
    result = explain_class(
        tiny_model,
        0,
        [photo],
        methods="Saliency",
        values_range=(0, 1),
        images_range=(-1, 1),
        visualization=FAST_VIS,
        explain_visualization=False,
    )
    np.testing.assert_allclose(result.images[0], (photo + 1) / 2, atol=1e-5)


def test_errors(tiny_model, photos):
    common = dict(values_range=(0, 1), visualization=FAST_VIS)
    with pytest.raises(UnknownAttributionMethodError, match="Saliency"):
        explain_class(tiny_model, 0, photos, methods=["Salency"], **common)
    with pytest.raises(MacoError, match="out of range"):
        explain_class(tiny_model, 10, photos, **common)
    with pytest.raises(MacoError, match="not used"):
        explain_class(
            tiny_model,
            0,
            photos,
            methods=["Saliency"],
            method_kwargs={"RISE": {"nb_samples": 8}},
            **common,
        )
    with pytest.raises(MacoError, match="channels"):
        explain_class(tiny_model, 0, [np.zeros((32, 32, 2), np.uint8)], **common)
    with pytest.raises(MacoError, match="no real image"):
        explain_class(tiny_model, 0, [], **common)


@pytest.mark.slow
def test_efficientnet_coffee_saliency():
    from skimage import data

    from maco_tf import load_model

    loaded = load_model("efficientnet-lite0")  # a LoadedModel: range, logits, class names
    result = explain_class(
        loaded,
        "espresso",
        [data.coffee()],
        methods=("Saliency",),
        visualization=dict(steps=4, crops=2, seed=0),
    )
    assert result.values_range == (0.0, 255.0)
    assert result.class_id == 967 and result.class_name == "espresso"
    assert result.image.shape == (224, 224, 3)
    assert result.images.shape == (1, 224, 224, 3)
    # the model sees an espresso in the coffee photo
    assert result.predicted_classes[0] == 967
    assert result.class_probability[0] > 0.5
    saliency = result.attributions["Saliency"][0]
    assert saliency.shape == (224, 224) and np.all(np.isfinite(saliency))
    # the saliency concentrates on the cup (centre) rather than the image border
    border = np.concatenate([saliency[:16].ravel(), saliency[-16:].ravel()])
    assert saliency[56:168, 56:168].mean() > border.mean()
    figure = result.plot()
    assert len(figure.axes) == 2 * 2
