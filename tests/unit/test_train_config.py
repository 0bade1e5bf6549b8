"""Training config loading/overrides, learning-rate schedules and the stage-two task scheduler."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from clsp.errors import ConfigError
from clsp.train.config import OptimConfig, TrainConfig, load_config
from clsp.train.schedule import lr_factor
from clsp.train.tasks import draw_task, stage_one_captions, stage_two_captions, task1_probability
from tests.helpers.assets import REPO

EXAMPLES = REPO / "examples" / "configs"


@pytest.mark.parametrize("name", ["tiny.yaml", "stage1.yaml", "stage2.yaml", "finetune.yaml"])
def test_example_configs_load(name: str) -> None:
    cfg = load_config(EXAMPLES / name).validate()
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg


def test_overrides_and_errors(tmp_path: Path) -> None:
    cfg = load_config(EXAMPLES / "stage2.yaml", ["optim.lr_heads=5e-4", "max_steps=7", "freeze=[text]", "data.valid=null"])
    assert cfg.optim.lr_heads == 5e-4 and cfg.max_steps == 7 and cfg.freeze == ["text"] and cfg.data.valid is None
    with pytest.raises(ConfigError, match="optim.lrr"):
        load_config(None, ["optim.lrr=1"])
    with pytest.raises(ConfigError, match="max_steps"):
        load_config(None, ["max_steps=abc"])
    with pytest.raises(ConfigError, match="key=value"):
        load_config(None, ["max_steps"])
    (tmp_path / "c.json").write_text('{"loss": {"stage": 3}, "data": {"train": "x"}, "init_from": "tiny-random"}')
    with pytest.raises(ConfigError, match="stage"):
        load_config(tmp_path / "c.json").validate()


def test_schedules() -> None:
    cos = OptimConfig(schedule="cosine", warmup_steps=10, min_lr_ratio=0.1)
    assert lr_factor(cos, 0, 0, 110) == pytest.approx(0.1)
    assert lr_factor(cos, 10, 0, 110) == pytest.approx(1.0)
    assert lr_factor(cos, 60, 0, 110) == pytest.approx(0.55)
    assert lr_factor(cos, 110, 0, 110) == pytest.approx(0.1)
    eden = OptimConfig(schedule="eden", warmup_steps=500, eden_lr_batches=100000, eden_lr_epochs=100)
    assert lr_factor(eden, 0, 0, 1) == pytest.approx(0.5)
    b, e = 100000.0, 100.0
    want = ((50000**2 + b**2) / b**2) ** -0.25 * ((3**2 + e**2) / e**2) ** -0.25
    assert lr_factor(eden, 50000, 3, 1) == pytest.approx(want)


def test_task_scheduler() -> None:
    assert task1_probability(0) == pytest.approx(0.95)
    assert task1_probability(5000) == pytest.approx(0.725)
    assert task1_probability(20000) == pytest.approx(0.5)
    assert [draw_task(42, s) for s in range(50)] == [draw_task(42, s) for s in range(50)]
    late = [draw_task(1, s) for s in range(20000, 22000)]
    assert 0.45 < late.count(1) / len(late) < 0.55
    early = [draw_task(1, s) for s in range(0, 400)]
    assert early.count(1) / len(early) > 0.9


def test_caption_layouts() -> None:
    clips = [{"global_captions": ["g0"], "finegrained_captions": ["a0", "b0", "c0"]},
             {"global_captions": [], "finegrained_captions": ["a1", "b1"]},
             {"global_captions": ["g2"], "finegrained_captions": ["a2"]}]
    rng = random.Random(0)
    t1 = stage_two_captions(clips, 1, rng)
    assert t1[0] == "g0" and t1[3] in ("a0", "b0", "c0") and set(t1[1::3]) <= {"a1", "b1"} and t1[2] == "g2"
    t2 = stage_two_captions(clips, 2, rng)
    assert t2[0] != t2[3] and {t2[0], t2[3]} <= {"a0", "b0", "c0"} and {t2[2], t2[5]} == {"g2", "a2"}
    assert stage_one_captions(clips, rng, "global") [1] in ("a1", "b1")
    assert all(not math.isnan(len(c)) for c in t2)


BAD_OVERRIDES = [
    ("optim.betas=[0.9,abc]", "optim.betas.1", "valid number"),
    ("optim.betas=[0.9]", "optim.betas", "at least 2 items"),
    ("optim.betas=[0.9,0.98,0.99]", "optim.betas", "at most 2 items"),
    ("optim.betas=[0.9,1.5]", "optim.betas.1", "less than 1"),
    ("freeze=[1,text]", "freeze.0", "valid string"),
    ("freeze=text", "freeze", "valid list"),
    ("log_every=0", "log_every", "greater than or equal to 1"),
    ("valid_every=-1", "valid_every", "greater than or equal to 0"),
    ("optim.lr_heads=nan", "optim.lr_heads", "finite"),
    ("optim.lr_encoder=-1e-3", "optim.lr_encoder", "greater than or equal to 0"),
    ("loss.stage=3", "loss.stage", "1 or 2"),
    ("optim.schedule=linear", "optim.schedule", "'cosine', 'eden' or 'constant'"),
    ("device=gpu", "device", "'auto', 'cpu' or 'cuda'"),
    ("seed=1.5", "seed", "fractional part"),
    ("max_steps=true", "max_steps", "got the boolean true"),
    ("seed=false", "seed", "got the boolean false"),
    ("optim.lr_heads=true", "optim.lr_heads", "got the boolean true"),
    ("loss.channel_consistency=true", "loss.channel_consistency", "got the boolean true"),
    ("data.num_workers=two", "data.num_workers", "valid integer"),
    ("data.trian=x.jsonl", "data.trian", "did you mean data.train?"),
    ("optim.lr_head=1e-3", "optim.lr_head", "did you mean optim.lr_heads?"),
    ("optim=3", "optim", "dictionary"),
]


@pytest.mark.parametrize(("override", "key", "reason"), BAD_OVERRIDES)
def test_bad_override_names_key_and_reason(override: str, key: str, reason: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLES / "tiny.yaml", [override])
    message = str(info.value)
    assert message.startswith(f"{key}: ") and reason in message, message


@pytest.mark.parametrize("override", ["init_from=", "init_from= ", "output_dir=", 'output_dir=" "', "data.group_key=",
                                      'data.group_key=" "'])
def test_an_empty_model_or_output_dir_is_refused_not_taken_as_the_working_directory(override: str) -> None:
    """``init_from=`` built no model (a traceback later); ``output_dir=`` made the working
    directory the run's folder, its checkpoints mixed with whatever lay there; ``data.group_key=``
    (an unset variable) turned the grouping off without a word."""
    key = override.split("=")[0]
    with pytest.raises(ConfigError, match=f"^{key}: empty; "):
        load_config(EXAMPLES / "tiny.yaml", ["data.train=t.jsonl", override]).validate()
    assert load_config(EXAMPLES / "tiny.yaml", ["data.train=t.jsonl", "data.valid="]).validate().data.valid == ""


@pytest.mark.parametrize(("name", "reason"), [(" ", "blank or has spaces around it"), ("", "blank"),
                                            ("yfyeung/CLSP", "path separator or is one, so it reads as a folder or a hub id"),
                                            ("a\\b", "path separator"), ("..", "path separator or is one"),
                                            (".", "path separator or is one"), ("a\tb", "control characters")])
def test_a_trained_models_name_is_a_plain_name(name: str, reason: str) -> None:
    import json

    with pytest.raises(ConfigError, match=f"^name: .*{reason}"):
        load_config(EXAMPLES / "tiny.yaml", [f"name={json.dumps(name)}"]).validate()
    assert load_config(EXAMPLES / "tiny.yaml", ['name="my voices v2"']).validate().name == "my voices v2"


def test_file_keys_are_checked_like_overrides_and_all_reported(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text("init_from: tiny-random\ndata: {train: t.jsonl, max_batchseconds: 10}\n"
                                     "optim: {betas: [0.9, x]}\nlog_every: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml")
    lines = str(info.value).splitlines()
    assert any("data.max_batchseconds: unknown config key; did you mean data.max_batch_seconds?" in l for l in lines)
    assert any(l.strip().startswith("optim.betas.1:") for l in lines)
    assert any(l.strip().startswith("log_every:") for l in lines)


@pytest.mark.parametrize(("overrides", "key"), [
    (["data.max_batch_seconds=3", "data.max_duration=2"], "data.max_batch_seconds"),  # 3 s cannot hold two 2 s clips
    (["data.max_batch_size=1"], "data.max_batch_size"),
    (["data.min_duration=3", "data.max_duration=2"], "data.min_duration"),
])
def test_batches_must_hold_two_clips_and_durations_be_ordered(overrides: list[str], key: str) -> None:
    base = ["init_from=tiny-random", "data.train=t.jsonl"]
    load_config(None, [*base, "data.max_batch_seconds=4", "data.max_duration=2"]).validate()  # exactly two fit
    with pytest.raises(ConfigError, match=f"^{key}: "):
        load_config(None, base + overrides).validate()


def test_cli_reports_a_bad_override_as_usage_error(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from clsp_cli.app import app

    result = CliRunner().invoke(app, ["train", str(EXAMPLES / "tiny.yaml"), "-o", str(tmp_path / "exp"), "optim.betas=[0.9,abc]"])
    assert result.exit_code == 2
    assert "optim.betas.1" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "exp").exists()


@pytest.mark.parametrize("args, shown", [
    (["max_steps=abc", "max_steps=1"], "max_steps=abc and max_steps=1"),  # the invalid first one was never checked
    (["max_steps=2", "--max-steps", "3"], "max_steps=2 and max_steps=3"),  # an override and the option for it
])
def test_cli_refuses_a_key_set_twice_to_different_values(tmp_path: Path, args: list[str], shown: str) -> None:
    from typer.testing import CliRunner

    from clsp_cli.app import app

    result = CliRunner().invoke(app, ["train", str(EXAMPLES / "tiny.yaml"), "-o", str(tmp_path / "exp"), *args])
    assert result.exit_code == 2 and f"max_steps is set twice ({shown}" in result.output, result.output
    assert not (tmp_path / "exp").exists()
    from clsp.train.config import check_repeated_overrides

    check_repeated_overrides(["max_steps=3", " max_steps = 3"])  # the same value twice is taken


def test_a_section_override_sets_its_keys_and_keeps_the_others() -> None:
    """optim={lr_heads: 0.02} replaced the whole section: lr_encoder fell back to its default."""
    from clsp.train.config import check_repeated_overrides

    base = load_config(EXAMPLES / "tiny.yaml")
    cfg = load_config(EXAMPLES / "tiny.yaml", ["optim={lr_heads: 0.02}", "data={max_batch_seconds: 8}"])
    assert cfg.optim.lr_heads == 0.02 and cfg.optim.lr_encoder == base.optim.lr_encoder == 3e-3
    assert cfg.data.max_batch_seconds == 8 and cfg.data.train == base.data.train
    with pytest.raises(ConfigError, match=r"optim.lr_heads is set twice \(optim.lr_heads=0.01 and optim.lr_heads=0.02"):
        check_repeated_overrides(["optim.lr_heads=0.01", "optim={lr_heads: 0.02}"])
    check_repeated_overrides(["optim.lr_heads=1e-4", "optim={lr_heads: 1.0e-4}"])  # one value, two spellings


def test_resume_policy_per_key() -> None:
    from clsp.train.config import resume_changes

    saved = load_config(EXAMPLES / "tiny.yaml").to_dict()
    changed = resume_changes(saved, load_config(EXAMPLES / "tiny.yaml", [
        "optim.lr_heads=1e-5", "max_steps=200", "data.max_batch_seconds=8", "log_every=1", "text_whiten_shrink=0"]))
    assert changed.applied == {"optim.lr_heads": (3e-3, 1e-5), "max_steps": (80, 200),
                               "data.max_batch_seconds": (16.0, 8.0), "log_every": (10, 1)}
    assert changed.not_applied == {"text_whiten_shrink": (0.1, 0.0)}
    for override, key in [("freeze=[text]", "freeze"), ("seed=1", "seed"), ("data.train=other.jsonl", "data.train"),
                          ("init_from=other", "init_from"), ("model={joint_dim: 8}", "model")]:
        with pytest.raises(ConfigError, match=f"changed {key} .*start a new run"):
            resume_changes(saved, load_config(EXAMPLES / "tiny.yaml", [override]))
    older = {k: v for k, v in saved.items() if k != "max_nonfinite_steps"}  # a key the checkpoint predates
    assert resume_changes(older, load_config(EXAMPLES / "tiny.yaml")).applied == {}


def test_path_keys_keep_names_that_look_like_numbers() -> None:
    cfg = load_config(EXAMPLES / "tiny.yaml", ["output_dir=2024", "data.valid=7", "init_from=0.5"])
    assert (cfg.output_dir, cfg.data.valid, cfg.init_from) == ("2024", "7", "0.5")
    # YAML reads 010 as 8, 1.50 as 1.5, 12:30 as 750 and yes as true: a path is the name as written
    for written in ["010", "1.50", "12:30", "yes", "true", "a: b.jsonl", "0x1A"]:
        assert load_config(EXAMPLES / "tiny.yaml", [f"data.train={written}"]).data.train == written
    cfg = load_config(EXAMPLES / "tiny.yaml", ["data={train: 010, valid: 8, group_key: 1.50}", "name=no"])
    assert (cfg.data.train, cfg.data.valid, cfg.data.group_key, cfg.name) == ("010", "8", "1.50", "no")
    assert load_config(EXAMPLES / "tiny.yaml", ["data.valid=null"]).data.valid is None
    assert load_config(EXAMPLES / "tiny.yaml", ["data={valid: ~}"]).data.valid is None
    assert load_config(EXAMPLES / "tiny.yaml", ["max_steps=010"]).max_steps == 8  # numbers stay YAML's


def test_two_path_overrides_that_read_as_one_number_are_two_values() -> None:
    from clsp.train.config import check_repeated_overrides

    with pytest.raises(ConfigError, match=r"data.train is set twice \(data.train=010 and data.train=8"):
        check_repeated_overrides(["data.train=010", "data.train=8"])
    check_repeated_overrides(["data.train=010", "data={train: 010}"])


def test_model_settings_next_to_init_from_are_refused_not_ignored() -> None:
    from clsp.train.setup import load_initial_model

    cfg = load_config(EXAMPLES / "tiny.yaml", ["model.speech_encoder.stats_phases=4", "model.joint_dim=8"])
    with pytest.raises(ConfigError, match=r"model\.speech_encoder\.stats_phases, model\.joint_dim: the model comes "
                                          r"from init_from \(tiny-random\)"):
        load_initial_model(cfg)


def test_unknown_keys_inside_model_components_are_config_errors_naming_them() -> None:
    from clsp.models import ModelConfig, build_model
    from clsp.models.registry import build_speech_encoder

    with pytest.raises(ConfigError, match=r"unknown config key model\.speech_encoder\.stats_phase \(known: .*stats_dim"):
        build_speech_encoder({"type": "compact", "stats_phase": 4})
    with pytest.raises(ConfigError, match=r"model\.speech_encoder\.stats_phase \(known: .*stats_phases"):
        build_speech_encoder({"type": "speaker_fusion", "speakers": [], "stats_phase": 4})
    text = {"source": "all-MiniLM-L6-v2", "pooling": "mean", "frozen": True, "external": True, "poolin": "mean"}
    cfg = ModelConfig.from_dict({"speech_encoder": {"type": "compact", "dim": 32, "layers": 1, "heads": 2, "ff_dim": 64},
                                 "text_encoder": text, "joint_dim": 16, "head_hidden": 16})
    with pytest.raises(ConfigError, match=r"unknown config key model\.text_encoder\.poolin"):
        build_model(cfg, with_text=False)


def test_resume_names_the_changed_key_inside_the_model_config() -> None:
    from clsp.train.config import resume_changes

    base = ["init_from=null", "model={speech_encoder: {type: compact, dim: 32}, joint_dim: 16}"]
    saved = load_config(EXAMPLES / "tiny.yaml", base).to_dict()
    new = load_config(EXAMPLES / "tiny.yaml", base[:1] + ["model={speech_encoder: {type: compact, dim: 64}, joint_dim: 16}"])
    with pytest.raises(ConfigError, match=r"changed model\.speech_encoder\.dim \(32 -> 64\): these keys"):
        resume_changes(saved, new)


@pytest.mark.parametrize("name", ["train.jsonl", "train.json", "train.yaml"])
def test_a_manifest_given_as_the_config_names_data_train(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text('{"id": "a", "audio": "a.wav", "global_captions": ["x"]}\n{"id": "b", "audio": "b.wav"}\n')
    with pytest.raises(ConfigError, match=f"a manifest of training records.*data.train={path}"):
        load_config(path)
    if name != "train.jsonl":  # a one-line JSON config is a config
        path.write_text('{"max_steps": 3, "data": {"train": "t.jsonl"}}\n')
        assert load_config(path).max_steps == 3


def test_a_config_file_keeps_path_values_as_written_and_refuses_a_key_given_twice(tmp_path: Path) -> None:
    """In a YAML config, name: 010 became the name 8 and output_dir: 2024_01 the folder 202401;
    a key given twice kept the last unseen, and a section given twice lost the first's keys."""
    base = (EXAMPLES / "tiny.yaml").read_text()
    named = tmp_path / "named.yaml"
    named.write_text(base.replace("output_dir: exp/tiny", "output_dir: 2024_01").replace("valid: toy/valid.jsonl",
                                                                                     "valid: 0x10") + "name: 010\n")
    cfg = load_config(named)
    assert (cfg.name, cfg.output_dir, cfg.data.valid, cfg.max_steps) == ("010", "2024_01", "0x10", 80)
    twice = tmp_path / "twice.yaml"
    twice.write_text(base + "optim:\n  lr_heads: 5.0\n")
    with pytest.raises(ConfigError, match=r"twice.yaml: key 'optim' is given twice in one section \(line \d+\)"):
        load_config(twice)
    (tmp_path / "twice.json").write_text('{"max_steps": 1, "max_steps": 2}')
    with pytest.raises(ConfigError, match="key 'max_steps' is given twice"):
        load_config(tmp_path / "twice.json")
    merged = tmp_path / "merged.yaml"  # a YAML merge key's values may be overridden
    merged.write_text("base: &b {lr_heads: 0.1, warmup_steps: 5}\noptim:\n  <<: *b\n  lr_heads: 0.2\n")
    from clsp.train.config import read_config_file

    assert read_config_file(merged)["optim"] == {"lr_heads": 0.2, "warmup_steps": 5}


@pytest.mark.parametrize("key, value, shown", [
    ("joint_dim", "abc", r"model.joint_dim: input should be a valid integer \(got 'abc'\)"),
    ("joint_dim", 0, r"model.joint_dim: input should be greater than or equal to 1"),
    ("head_dropout", 2, r"model.head_dropout: input should be less than 1"),
    ("num_mel_bins", True, r"model.num_mel_bins: expected a number, got the boolean true"),
    ("speech_encoder.dim", "abc", r"model.speech_encoder.dim: input should be a valid integer"),
    ("speech_encoder.layers", -1, r"model: cannot build the model .*compact encoder: layers=-1"),
    ("speech_encoder.heads", 3, r"model: cannot build the model .*divisible"),
    ("text_encoder.max_length", "abc", r"model.text_encoder.max_length: input should be a valid integer"),
])
def test_model_settings_of_a_new_model_are_checked_before_any_step(key: str, value, shown: str) -> None:
    """model.joint_dim=abc ended in a torch traceback (exit 1), joint_dim=0 in a false divergence."""
    from clsp.models.base import tiny_config
    from clsp.train.setup import load_initial_model

    model = tiny_config().to_dict()
    section, _, leaf = key.rpartition(".")
    (model[section] if section else model)[leaf] = value
    cfg = TrainConfig.from_dict({"model": model, "data": {"train": "x.jsonl"}})
    with pytest.raises(ConfigError, match=shown):
        load_initial_model(cfg)
