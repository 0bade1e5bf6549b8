"""Pool-mode retrieval per ``--group-key``: a caption text that two groups share is relevant to
the clips of both, as it is over the whole pool, so a perfect model scores 1.0 in every group."""

from __future__ import annotations

import json

import numpy as np

from clsp.retrieval_eval import evaluate_pool


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_a_perfect_model_scores_one_in_every_group(tmp_path):
    rng = np.random.default_rng(0)
    texts = {t: rng.standard_normal(16) for t in ("A calm man.", "An angry woman.", "A sad man.")}
    speech, captions = [], []
    for t, v in texts.items():
        for site in ("A", "B"):
            cid = f"c{len(speech)}"
            speech.append({"id": cid, "embedding": (v + 0.05 * rng.standard_normal(16)).tolist()})
            captions.append({"id": cid + "-cap", "text": t, "audio_id": cid, "site": site, "embedding": v.tolist()})
    summary = evaluate_pool(_write(tmp_path / "s.jsonl", speech), _write(tmp_path / "c.jsonl", captions),
                            group_key="site", n_boot=0).summary
    assert summary["metrics"]["t2s_R@1"] == 1.0
    for name, group in summary["groups"].items():
        assert group["t2s_R@1"] == 1.0, (name, group)
        assert group["s2t_R@1"] == 1.0, (name, group)


def test_a_caption_of_one_group_alone_still_ranks_other_clips_above_it(tmp_path):
    """Widening the relevant clips to the same text's clips does not make other captions' clips relevant."""
    e = np.eye(4)
    speech = [{"id": f"a{i}", "embedding": e[i].tolist()} for i in range(3)]
    captions = [{"id": "t0", "text": "x", "audio_id": "a0", "g": "A", "embedding": e[1].tolist()},
                {"id": "t1", "text": "y", "audio_id": "a1", "g": "B", "embedding": e[1].tolist()},
                {"id": "t2", "text": "z", "audio_id": "a2", "g": "B", "embedding": e[2].tolist()}]
    summary = evaluate_pool(_write(tmp_path / "s.jsonl", speech), _write(tmp_path / "c.jsonl", captions),
                            group_key="g", n_boot=0).summary
    assert summary["groups"]["A"]["t2s_R@1"] == 0.0 and summary["groups"]["B"]["t2s_R@1"] == 1.0


def test_speech_to_text_in_a_group_counts_a_text_the_clip_has_in_another_group(tmp_path):
    """Clip a0 is described "y" in group B; in group A, another clip's "y" ranked first for a0 was
    a miss, though over the whole pool that text is a0's own."""
    e = np.eye(6)
    speech = [{"id": f"a{i}", "embedding": e[i if i < 2 else i + 1].tolist()} for i in range(5)]
    captions = [{"id": "t0", "text": "x", "audio_id": "a0", "g": "A", "embedding": (0.5 * e[0] + 0.866 * e[2]).tolist()},
                {"id": "t1", "text": "y", "audio_id": "a0", "g": "B", "embedding": e[0].tolist()},
                {"id": "t2", "text": "y", "audio_id": "a1", "g": "A", "embedding": (0.8 * e[0] + 0.6 * e[1]).tolist()}]
    captions += [{"id": f"{t}{g}", "text": t, "audio_id": f"a{i + 2}", "g": g, "embedding": e[i + 3].tolist()}
                 for i, t in enumerate("pqr") for g in "AB"]

    def groups(rows, name):
        return evaluate_pool(_write(tmp_path / "s.jsonl", speech), _write(tmp_path / name, rows),
                             group_key="g", n_boot=0).summary

    summary = groups(captions, "c.jsonl")
    assert summary["metrics"]["s2t_R@1"] == 1.0
    assert summary["groups"]["A"]["s2t_R@1"] == 1.0 and summary["groups"]["B"]["s2t_R@1"] == 1.0
    captions[1]["text"] = "z"  # a text a0 has nowhere ("y" of a1 alone) ranked first for it stays a miss
    summary = groups(captions, "c2.jsonl")
    assert summary["groups"]["A"]["s2t_R@1"] == 0.8 and summary["groups"]["B"]["s2t_R@1"] == 1.0


def test_a_match_key_no_caption_has_is_a_usage_error(tmp_path):
    import pytest

    from clsp.errors import ConfigError

    e = np.eye(3)
    speech = [{"id": f"a{i}", "embedding": e[i].tolist()} for i in range(3)]
    captions = [{"id": f"t{i}", "text": f"x{i}", "audio_id": f"a{i}", "embedding": e[i].tolist()} for i in range(3)]
    s, c = _write(tmp_path / "s.jsonl", speech), _write(tmp_path / "c.jsonl", captions)
    skipped = []
    with pytest.raises(ConfigError, match="--match-key 'clip': no caption record has this field"):
        evaluate_pool(s, c, match_key="clip", n_boot=0, on_skip=lambda *a: skipped.append(a))
    assert skipped == []
    # a key some captions lack still evaluates the others, skipping those
    captions[0].pop("audio_id")
    summary = evaluate_pool(s, _write(tmp_path / "c2.jsonl", captions), n_boot=0,
                            on_skip=lambda *a: skipped.append(a)).summary
    assert summary["captions"] == 2 and len(skipped) == 1


def test_a_null_or_boolean_match_key_names_no_clip(tmp_path):
    """A caption whose audio_id was null was matched to a clip with the id "None" (true to "True")."""
    e = np.eye(4)
    speech = [{"id": name, "embedding": e[i].tolist()} for i, name in enumerate(["None", "True", "s2", "s3"])]
    captions = [{"id": "c0", "text": "x", "audio_id": None, "embedding": e[0].tolist()},
                {"id": "c1", "text": "y", "audio_id": True, "embedding": e[1].tolist()},
                {"id": "c2", "text": "z", "audio_id": "s2", "embedding": e[2].tolist()},
                {"id": "c3", "text": "w", "audio_id": "s3", "embedding": e[3].tolist()}]
    skipped = []
    summary = evaluate_pool(_write(tmp_path / "s.jsonl", speech), _write(tmp_path / "c.jsonl", captions), n_boot=0,
                            on_skip=lambda *a: skipped.append(a)).summary
    assert summary["captions"] == 2 and summary["failed"] == 2
    assert [a[0] for a in skipped] == ["caption c0", "caption c1"] and "is null, not the id" in str(skipped[0][1])
