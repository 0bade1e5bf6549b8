"""A ``--npy`` matrix named by a path that is not a regular file: the message says what the
path is (a folder, a device), not "no such file"."""

from __future__ import annotations

import numpy as np
import pytest

from clsp.errors import ConfigError
from clsp.index.records import load_matrix


def test_a_folder_is_named_as_a_folder(tmp_path):
    with pytest.raises(ConfigError, match="a folder, not a .npy file"):
        load_matrix(tmp_path)


def test_a_device_is_named_as_a_device():
    with pytest.raises(ConfigError, match=r"/dev/null: not a regular file \(a character device\)"):
        load_matrix("/dev/null")


def test_a_missing_path_is_named_missing(tmp_path):
    with pytest.raises(ConfigError, match="no such file"):
        load_matrix(tmp_path / "gone.npy")


def test_two_bare_matrices_in_one_index_name_the_made_up_row_ids(tmp_path):
    import numpy as np

    from clsp.errors import InputError
    from clsp.index.records import index_embeddings

    rng = np.random.default_rng(0)
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / name, rng.standard_normal((3, 8)).astype(np.float32))
    index_embeddings(tmp_path / "x.idx", str(tmp_path / "a.npy"))
    with pytest.raises(InputError, match=r"'row-0' appears more than once.*row-0, row-1 \.\.\. in every run.*--ids"):
        index_embeddings(tmp_path / "x.idx", str(tmp_path / "b.npy"), add=True)


def test_a_self_hit_scores_at_most_one_and_passes_threshold_one(tmp_path):
    import json

    import numpy as np

    from clsp.index import load_index
    from clsp.index.records import index_embeddings

    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((64, 32)).astype(np.float32)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps({"id": f"v{i}", "embedding": v.tolist()}) + "\n"
                                              for i, v in enumerate(vecs)))
    index_embeddings(tmp_path / "x.idx", str(tmp_path / "e.jsonl"))
    index = load_index(tmp_path / "x.idx")
    hits = index.search(vecs, 1, threshold=1.0)
    assert all(len(h) == 1 and h[0]["id"] == f"v{i}" for i, h in enumerate(hits)), hits[:3]
    assert max(h[0]["score"] for h in hits) <= 1.0


def test_an_index_whose_info_miscounts_its_vectors_is_refused_at_load(tmp_path):
    import json

    import numpy as np

    from clsp.errors import IndexFileError
    from clsp.index import load_index
    from clsp.index.records import index_embeddings

    rng = np.random.default_rng(1)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps({"id": f"v{i}", "embedding": rng.standard_normal(8).tolist()})
                                              + "\n" for i in range(6)))
    index_embeddings(tmp_path / "x.idx", str(tmp_path / "e.jsonl"))
    info_file = tmp_path / "x.idx" / "index.json"
    info = json.loads(info_file.read_text())
    assert info["count"] == 6 and len(load_index(tmp_path / "x.idx").search(np.ones(8, np.float32), 10)[0]) == 6
    info_file.write_text(json.dumps({**info, "count": 7}))
    with pytest.raises(IndexFileError, match="says count 7, but index.faiss holds 6 vectors"):
        load_index(tmp_path / "x.idx")


def test_a_damaged_index_json_beside_clsp_data_says_how_to_rebuild(tmp_path):
    import json

    import numpy as np

    from clsp.errors import OutputError
    from clsp.index.records import index_embeddings

    rng = np.random.default_rng(2)
    (tmp_path / "e.jsonl").write_text("".join(json.dumps({"id": f"v{i}", "embedding": rng.standard_normal(4).tolist()})
                                              + "\n" for i in range(3)))
    index_embeddings(tmp_path / "x.idx", str(tmp_path / "e.jsonl"))
    (tmp_path / "x.idx" / "index.json").write_text("{garbage")
    with pytest.raises(OutputError, match=r"index.json was damaged: remove the folder \(rm -r "):
        index_embeddings(tmp_path / "x.idx", str(tmp_path / "e.jsonl"))


def test_a_file_that_is_no_npy_matrix_is_a_usage_error_naming_what_it_holds(tmp_path):
    """Text or audio given as --npy was "not a readable .npy matrix (... pickled data ... load it
    unsafely using allow_pickle=)", exit 1: the wrong reason and an unsafe fix."""
    import soundfile as sf

    (tmp_path / "t.txt").write_text('{"id": "a"}\n')
    sf.write(tmp_path / "c.wav", np.zeros(1600, dtype="float32"), 16000)
    for name, kind in (("t.txt", "text, such as records"), ("c.wav", "an audio file")):
        with pytest.raises(ConfigError, match=rf"not a NumPy \.npy matrix \({kind}\)"):
            load_matrix(tmp_path / name)
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ConfigError, match=r"not a NumPy \.npy matrix \(an empty file\)"):
        load_matrix(tmp_path / "empty.npy")
    np.save(tmp_path / "ints.npy", np.eye(2, dtype="int32"))  # another kind of matrix: a usage error too
    np.save(tmp_path / "flat.npy", np.ones(4, dtype="float32"))
    for name, why in (("ints.npy", "expected a float matrix"), ("flat.npy", r"expected a \(count, dim\) matrix")):
        with pytest.raises(ConfigError, match=why):
            load_matrix(tmp_path / name)
    np.save(tmp_path / "m.npy", np.eye(2, dtype="float32"))
    assert load_matrix(tmp_path / "m.npy").shape == (2, 2)


def test_a_matrix_of_another_width_is_named_as_such_not_as_overwritten():
    """A 16-wide matrix given for records of a 32-d model said "row_sha256 differs: the matrix
    was overwritten", not that its rows are of another size."""
    from clsp.errors import InputError
    from clsp.index.records import check_row, row_checksum

    rec = {"id": "a", "row": 0, "row_sha256": row_checksum(np.ones(32, dtype="float32")), "provenance": {"dim": 32}}
    wide = np.zeros((2, 16), dtype="float32")
    with pytest.raises(InputError, match="holds 16-d rows and this record's model gives 32-d vectors"):
        check_row(rec, wide[0], wide, "record 'a'")
    same = np.zeros((2, 32), dtype="float32")
    with pytest.raises(InputError, match="row_sha256 differs"):
        check_row(rec, same[0], same, "record 'a'")
