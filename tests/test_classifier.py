"""The torch-free runtime API: Classifier.open / predict / embed on every kind of input."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from PIL import Image

from tests.conftest import DATA, TINY_LABELS
from vitedge.errors import ArtifactError, ImageLoadError, UsageError
from vitedge.runtime import Classification, Classifier
from vitedge.runtime.classifier import softmax


@pytest.fixture(scope="module")
def clf(tiny_artifact):
    return Classifier.open(tiny_artifact, num_threads=1)


def test_predict_one_image_gives_top_k_softmax_scores(clf):
    result = clf.predict(DATA / "astronaut.jpg", top_k=3)
    assert isinstance(result, Classification) and result.ok and result.warning is None
    assert len(result.predictions) == 3 and result.image.endswith("astronaut.jpg")
    scores = [p.score for p in result.predictions]
    assert scores == sorted(scores, reverse=True) and all(0 <= s <= 1 for s in scores)
    assert {p.label for p in result.predictions} <= set(TINY_LABELS)
    full = clf.predict(DATA / "astronaut.jpg", top_k=10)
    assert len(full.predictions) == 4 and abs(sum(p.score for p in full.predictions) - 1) < 1e-5


def test_predict_matches_the_torch_model_on_a_photo(clf, tiny_folder):
    import torch
    from transformers import ViTForImageClassification, ViTImageProcessorPil

    photo = Image.open(DATA / "coffee.png").convert("RGB")
    model = ViTForImageClassification.from_pretrained(tiny_folder).eval()
    inputs = ViTImageProcessorPil.from_pretrained(tiny_folder)(photo, return_tensors="np")["pixel_values"]
    with torch.no_grad():
        expected = torch.softmax(model(pixel_values=torch.from_numpy(inputs)).logits, -1)[0].numpy()
    result = clf.predict(photo, top_k=4)
    got = np.zeros(4)
    for p in result.predictions:
        got[p.index] = p.score
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_every_input_kind_gives_the_same_answer(clf):
    photo = Image.open(DATA / "astronaut.jpg")
    as_array = np.asarray(photo.convert("RGB"))
    from_path = clf.predict(str(DATA / "astronaut.jpg"))
    from_bytes = clf.predict((DATA / "astronaut.jpg").read_bytes())
    for other in (clf.predict(photo), clf.predict(as_array), from_bytes):
        assert [p.index for p in other.predictions] == [p.index for p in from_path.predictions]
        np.testing.assert_allclose([p.score for p in other.predictions], [p.score for p in from_path.predictions], atol=1e-6)
    batch = clf.predict(np.stack([as_array, as_array]))  # a 4-D array is a batch
    assert isinstance(batch, list) and len(batch) == 2


def test_a_bad_image_fails_only_itself(clf, image_dir):
    paths = sorted(str(p) for p in image_dir.iterdir())
    results = clf.predict(paths + ["missing.png"])
    assert [r.image for r in results] == paths + ["missing.png"]
    bad = {r.image for r in results if not r.ok}
    assert bad == {str(image_dir / "e_corrupt.jpg"), "missing.png"}
    assert all("\n" not in r.error for r in results if not r.ok)
    with pytest.raises(ImageLoadError, match="e_corrupt.jpg"):
        clf.predict(str(image_dir / "e_corrupt.jpg"))


@pytest.mark.parametrize("batch_size", [1, 2, 3, 16])
def test_batch_size_does_not_change_results(tiny_artifact, image_dir, batch_size):
    paths = sorted(str(p) for p in image_dir.iterdir())
    reference = Classifier.open(tiny_artifact, batch_size=1).predict(paths, top_k=4)
    results = Classifier.open(tiny_artifact, batch_size=batch_size).predict(paths, top_k=4)
    for a, b in zip(reference, results):
        assert a.error == b.error
        np.testing.assert_allclose([p.score for p in a.predictions], [p.score for p in b.predictions], atol=1e-5)


def test_embeddings_are_l2_normalized_rows_in_input_order(clf, image_dir):
    paths = sorted(str(p) for p in image_dir.iterdir())
    embeddings = clf.embed(paths)
    vectors = np.asarray(embeddings)
    assert vectors.shape == (4, 64) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    assert list(embeddings.images) == [p for p in paths if "corrupt" not in p]
    assert [name for name, _ in embeddings.errors] == [str(image_dir / "e_corrupt.jpg")]
    single = clf.embed(paths[0])
    np.testing.assert_allclose(single, vectors[0], atol=1e-5)
    raw = clf.embed(paths[0], normalize=False)
    np.testing.assert_allclose(raw / np.linalg.norm(raw), single, atol=1e-5)


def test_safe_from_several_threads(clf):
    photos = [DATA / "astronaut.jpg", DATA / "chelsea.jpg", DATA / "coffee.png"] * 4
    expected = [clf.predict(p).predictions for p in photos]
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda p: clf.predict(p).predictions, photos))
    for a, b in zip(expected, got):
        assert [x.index for x in a] == [x.index for x in b]


def test_random_init_artifacts_say_so_in_every_prediction(preset_artifact):
    clf = Classifier.open(preset_artifact)
    results = clf.predict([DATA / "astronaut.jpg", DATA / "coffee.png"])
    assert clf.is_random_init and all("random-init" in r.warning for r in results)
    assert all("random-init" in r.to_dict()["warning"] for r in results)


def test_bad_arguments(tiny_artifact, clf):
    with pytest.raises(UsageError):
        clf.predict(DATA / "astronaut.jpg", top_k=0)
    with pytest.raises(UsageError):
        Classifier.open(tiny_artifact, batch_size=0)
    with pytest.raises(ArtifactError):
        Classifier.open(tiny_artifact / "model.onnx")


def test_softmax_is_stable():
    scores = softmax(np.array([[1000.0, 0.0, -1000.0]], np.float32))
    assert np.isfinite(scores).all() and abs(scores.sum() - 1) < 1e-6
