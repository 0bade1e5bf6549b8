"""Zero-shot classification with a stand-in text encoder (random unit vectors per prompt)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from clsp.errors import ConfigError, InputError
from clsp.prompts import load_pack, pack_from_dict
from clsp.zeroshot import ZeroShotClassifier, ensemble_class_embeddings, gold_labels, scale_for

DIM = 64


def fake_text(texts):
    """Deterministic pseudo-random unit vector per text (stand-in for a text encoder)."""
    out = []
    for t in texts:
        seed = int.from_bytes(hashlib.sha256(t.encode()).digest()[:8], "little")
        v = np.random.default_rng(seed).normal(size=DIM)
        out.append(v / np.linalg.norm(v))
    return np.stack(out)


def test_ensemble_is_renormalized_mean_of_normalized_prompts():
    s = load_pack("gender").get()
    emb = ensemble_class_embeddings(s, lambda t: 3.0 * fake_text(t))  # unnormalized input
    male = fake_text(list(s.classes[0].prompts)).mean(axis=0)
    assert np.allclose(emb[0], male / np.linalg.norm(male))
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0)


def _classifier(pack="ravdess", attribute="emotion", scale=20.0):
    s = load_pack(pack).get(attribute)
    return ZeroShotClassifier(s, ensemble_class_embeddings(s, fake_text), scale)


def test_clips_near_a_class_get_its_label_and_scores_sum_to_one():
    clf = _classifier()
    rng = np.random.default_rng(0)
    audio = clf.class_embeddings + 0.05 * rng.normal(size=clf.class_embeddings.shape)
    out = clf.classify(audio, top_k=3)
    assert [r["label"] for r in out] == clf.prompt_set.output_classes
    for r in out:
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert r["top_k"][0]["label"] == r["label"]
        assert len(r["top_k"]) == 3
        assert r["top_k"][0]["score"] >= r["top_k"][1]["score"] >= r["top_k"][2]["score"]


def test_probabilities_are_softmax_of_scaled_cosines_and_temperature_sharpens():
    clf = _classifier(scale=10.0)
    a = np.random.default_rng(1).normal(size=(1, DIM))
    cos = clf.cosines(a)[0]
    expected = np.exp(10 * cos) / np.exp(10 * cos).sum()
    result = clf.classify(a)[0]
    got = result["scores"]
    assert np.allclose([got[c] for c in clf.prompt_set.output_classes], expected, atol=1e-6)
    sharp = ZeroShotClassifier(clf.prompt_set, clf.class_embeddings, scale_for(temperature=0.01)).classify(a)[0]
    assert max(sharp["scores"].values()) > max(got.values())
    assert sharp["label"] == result["label"]


def test_iemocap_excited_counts_as_happy():
    clf = _classifier("iemocap", "emotion")
    names = clf.prompt_set.class_names
    excited = clf.class_embeddings[names.index("excited")]
    r = clf.classify(excited[None, :])[0]
    assert r["label"] == "happy"
    assert set(r["scores"]) == {"happy", "angry", "sad", "neutral"}
    raw = np.exp(clf.scale * clf.cosines(excited[None, :])[0])
    raw /= raw.sum()
    assert r["scores"]["happy"] == pytest.approx(raw[names.index("happy")] + raw[names.index("excited")], abs=1e-5)


def test_scale_and_input_checks():
    assert scale_for(logit_scale=np.log(1 / 0.07)) == pytest.approx(1 / 0.07)
    assert scale_for(logit_scale=0.0, temperature=0.5) == 2.0
    with pytest.raises(ConfigError):
        scale_for(temperature=0)
    clf = _classifier()
    with pytest.raises(InputError, match=r"expected \(N, 64\)"):
        clf.classify(np.ones((2, 3)))
    with pytest.raises(InputError, match="all zeros"):
        clf.classify(np.zeros((1, DIM)))


def test_gold_labels_map_aliases():
    s = pack_from_dict({"attribute": "g", "templates": ["A {label} voice."],
                        "classes": {"m": {"label": "male", "aliases": ["man"]}, "f": "female"}})
    assert gold_labels(s.get(), ["MAN", "f", "x"]) == ["m", "f", None]


def test_from_model_uses_logit_scale_and_text_encoder():
    torch = pytest.importorskip("torch")
    from clsp.models.base import tiny_model

    torch.set_num_threads(1)
    model = tiny_model()
    s = load_pack("gender").get()
    clf = ZeroShotClassifier.from_model(model, s)
    assert clf.scale == pytest.approx(float(model.logit_scale.detach().exp()))
    assert clf.class_embeddings.shape == (2, model.config.joint_dim)
    with torch.no_grad():
        audio = model.encode_audio(torch.randn(2, 16000) * 0.1, torch.tensor([16000, 12000]))
    out = clf.classify(audio)
    assert all(r["label"] in ("male", "female") for r in out)
