"""The training loop: one process per device, any number of processes (torchrun / SLURM).

Each optimizer step takes ``accumulation`` batches per rank; every batch is a complete
contrastive problem over the global batch (all ranks' clips), and the step's gradient is
the mean of those batches' gradients. A step whose loss or gradient is not finite is
skipped (the optimizer does not move) and logged; the run stops with
``TrainingDivergedError`` when its weights are no longer finite, after
``max_nonfinite_steps`` such steps in a row or when it ends on one, and no checkpoint is
written from such weights, nor from finite weights whose embeddings overflow. SIGTERM / SIGUSR1 / a first Ctrl-C make every rank finish its step, write a
checkpoint and return ``status="preempted"`` (the command exits with 75 so that a SLURM
requeue resumes with ``--resume latest``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from clsp.distributed import all_reduce_flag, all_reduce_sum, barrier, init_distributed
from clsp.errors import CheckpointError, ConfigError, OutputError, TrainingDivergedError
from clsp.losses import caption_keys, clamp_logit_scale_, gathered_contrastive_loss
from clsp.train import checkpoint as ckpt
from clsp.train.config import RUN_CONFIG, TrainConfig, absolute_paths, resume_changes
from clsp.train.data import (BatchPlan, SkipCounter, audio_skip_kind, check_group_key, check_manifest_complete,
                             clip_cache_key, make_loader, manifest_digest)
from clsp.train.finite import name_list, nonfinite_parameters
from clsp.train.run_dir import RunDirGuard
from clsp.train.schedule import lr_factor, set_learning_rates
from clsp.train.setup import (
    ContrastiveTowers,
    SpeechFeatureCache,
    TextFeatureCache,
    apply_optim_config,
    enable_gradient_checkpointing,
    freeze,
    frozen_towers,
    load_initial_model,
    param_groups,
)
from clsp.train.stop import StopRequest
from clsp.train.tasks import draw_task, stage_one_captions, stage_two_captions

log = logging.getLogger("clsp.train")
EXIT_PREEMPTED = 75


def _refuse_audio_manifests(cfg: TrainConfig) -> None:
    """``ConfigError`` when ``data.train`` or ``data.valid`` is an audio file, not a manifest
    (read as text it gave one skipped row per binary line), or names no file or a folder:
    found before any step, not when the first validation comes (after ``valid_every`` steps)."""
    from clsp.inputs import refuse_audio_file

    for key, path in (("data.train", cfg.data.train), ("data.valid", cfg.data.valid)):
        if isinstance(path, str) and path not in ("", "-"):
            try:
                if not os.path.exists(path):
                    raise ConfigError(f"{path}: no such file")
                if os.path.isdir(path):
                    raise ConfigError(f"{path}: is a directory, expected a manifest file")
                refuse_audio_file(path, "manifest")
            except ConfigError as exc:
                raise ConfigError(f"{key}: {exc}") from None


def _warn_if_valid_is_train(train: str, valid: str | None) -> None:
    """A warning when ``data.valid`` is the training manifest itself: its recall then measures
    clips the model trains on, not held-out ones."""
    if not valid or not train:
        return
    try:
        same = os.path.samefile(train, valid)
    except OSError:
        same = False
    if same:
        log.warning("data.valid is the training manifest (%s): validation then scores clips the model trains on, "
                    "not held-out ones; give a held-out manifest to measure generalisation", valid)


@dataclass
class TrainResult:
    status: str  # "finished" or "preempted"
    step: int
    output_dir: Path
    checkpoint: Path | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)


def _refuse_nested_output(out: Path) -> None:
    """``ConfigError`` for an output folder inside another training run's folder (one holding
    checkpoints or logged steps) or inside a model folder (a clsp ``config.json``): the runs'
    checkpoints and metrics would mix, and a checkpoint's model could be overwritten. Checked
    before the folder is made or locked."""
    for parent in out.resolve().parents:
        metrics = parent / "metrics.jsonl"
        try:
            logged = metrics.is_file() and metrics.stat().st_size > 0
        except OSError:
            logged = False
        if ckpt.list_checkpoints(parent) or logged:
            raise ConfigError(f"--output-dir {out}: lies inside the folder of another training run ({parent}); its "
                              "checkpoints and metrics would mix with this run's: train into a folder outside it")
        cfg = parent / "config.json"
        try:
            is_model = cfg.is_file() and "clsp_format" in json.loads(cfg.read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError):
            is_model = False
        if is_model:
            raise ConfigError(f"--output-dir {out}: lies inside the model folder {parent}: train into a folder "
                              "outside it")


class Trainer:
    """State and steps of one run; ``run()`` trains until ``max_steps`` or a stop signal."""

    def __init__(self, cfg: TrainConfig, resume: str | None = None, on_log: Callable[[dict], None] | None = None):
        self.cfg = cfg.validate()
        self.on_log = on_log
        self.info, self.device = init_distributed(cfg.device)
        self.out = Path(cfg.output_dir)
        _refuse_nested_output(self.out)
        self._run_lock = self._lock_output_dir()
        try:  # whatever stops the set-up lets go of the folder's lock
            self._refuse_other_run(resume)
            _warn_if_valid_is_train(cfg.data.train, cfg.data.valid)
            _refuse_audio_manifests(cfg)
            for manifest in (cfg.data.train, cfg.data.valid):
                if manifest and manifest != "-":
                    check_manifest_complete(manifest)  # a cut .gz: refused now, not when an epoch reaches the cut
            if cfg.data.valid:  # said before the first step, not after valid_every steps
                from clsp.train.validate import check_validation_set

                why = check_validation_set(cfg.data.valid)
                if why is not None:
                    log.warning(why)
            check_group_key(cfg.data.train, cfg.data.group_key)
            if cfg.deterministic:
                torch.use_deterministic_algorithms(True)
            torch.manual_seed(cfg.seed)  # same fresh weights on every rank
            self.model = load_initial_model(cfg).to(self.device)
            torch.manual_seed(cfg.seed + self.info.rank)  # distinct dropout per rank
            random.seed(cfg.seed + self.info.rank)
            self.writer = None
            freeze(self.model, cfg.freeze)
            self.frozen = frozen_towers(self.model)
            self.cache = TextFeatureCache(cfg.data.text_cache_size) if self._cache_usable() else None
            self.speech_cache = SpeechFeatureCache() if SpeechFeatureCache.usable(self.model) else None
            fresh_start = cfg.text_head_init != "random" and ckpt.resolve_resume(self.out, resume) is None
            if cfg.text_head_init == "whiten" and fresh_start:
                from clsp.train.text_init import whiten_text_head

                whiten_text_head(self.model, cfg.data.train, cfg.text_whiten_captions, cfg.text_whiten_shrink, cfg.seed,
                                 self.cache, centre=cfg.text_whiten_centre)
            if cfg.text_head_init == "paraphrase" and fresh_start:
                from clsp.train.text_init import paraphrase_text_head

                paraphrase_text_head(self.model, cfg.data.train, cfg.text_paraphrase_clips, cfg.text_paraphrase_steps,
                                     seed=cfg.seed, cache=self.cache)
            anchor = self.model.gender_anchor
            if anchor is not None and not anchor.fitted and ckpt.resolve_resume(self.out, resume) is None:
                from clsp.models.anchor import fit_gender_anchor
                from clsp.train.text_init import sample_caption_groups

                captions = [c for g in sample_caption_groups(cfg.data.train, 5000, cfg.seed) for c in g]
                fitted = fit_gender_anchor(self.model, captions)
                log.info("gender anchor: %d caption pairs, basis holds %.1f%% of their differences",
                         fitted["pairs"], 100 * fitted["energy"])
            if cfg.gradient_checkpointing:
                log.info("gradient checkpointing on %d layers", enable_gradient_checkpointing(self.model))
            self._check_channel_consistency()
            self.towers = ContrastiveTowers(self.model)
            self.ddp = None
            if self.info.enabled:
                ids = [self.device.index] if self.device.type == "cuda" else None
                self.ddp = torch.nn.parallel.DistributedDataParallel(self.towers, device_ids=ids)
            self.optimizer = torch.optim.AdamW(param_groups(self.model, cfg), betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
            self.use_bf16 = cfg.precision == "bf16" or (cfg.precision == "auto" and self.device.type == "cuda")
            self.step, self.epoch, self.batch_in_epoch, self.skipped_steps = 0, 0, 0, 0
            self.filled_batches = 0  # batches holding a clip in this pass over the manifest
            self.nonfinite_streak = 0  # consecutive skipped (non-finite) steps
            self.save_due = False  # a periodic checkpoint waits for a finite step
            self.probe: tuple[torch.Tensor, torch.Tensor] | None = None  # two clips of the last batch (save() checks them)
            self.small_batches = 0  # batches of fewer than 2 clips (no negatives) so far
            self.skips = SkipCounter()
            self.last_metrics: dict[str, float] = {}
            self.channel_gap: float | torch.Tensor = float("nan")  # 1 - cosine to the narrow-band copies, last micro-batch
            self.data_digest = manifest_digest(cfg.data.train)  # kept in checkpoints, checked on --resume
            self.resumed_from = self._resume(resume)
            blocked = ckpt.foreign_step_folders(self.out, self.step)
            if blocked:  # found now, not when the run reaches that step and cannot write its checkpoint
                raise ConfigError(ckpt.not_written_by_train(blocked[0]))
        except BaseException:
            self.release()
            raise

    # ---- set-up helpers ----
    def _cache_usable(self) -> bool:
        if not self.cfg.data.text_cache:
            return False
        if self.model.text_encoder not in self.frozen:
            log.warning("data.text_cache ignored: the text tower is trained (freeze it with freeze=[text])")
            return False
        return True

    def _check_channel_consistency(self) -> None:
        lc = self.cfg.loss
        if lc.channel_consistency <= 0:
            if list(lc.channel_copies) != ["narrowband"]:
                log.warning("loss.channel_copies=%s has no effect: loss.channel_consistency is 0 (give it a weight, "
                            "e.g. loss.channel_consistency=8)", list(lc.channel_copies))
            return
        from clsp.errors import ConfigError

        if self.model.input_kind != "waveform":
            raise ConfigError(f"loss.channel_consistency: needs a speech tower that reads waveforms (speaker_fusion, "
                              f"a transformers speech model); this one reads {self.model.input_kind}")
        rate = self.model.config.sample_rate
        if not 0 < lc.channel_rate < rate:
            raise ConfigError(f"loss.channel_rate: {lc.channel_rate} Hz must be below the model's sample rate ({rate} Hz)")

    def _lock_output_dir(self):
        """The main process holds an exclusive lock on ``output_dir/train.lock`` (its PID
        inside) for the whole run, so two runs started into one folder never interleave; the
        kernel releases it when the process ends, and a run that ends removes the file.
        ``OutputError`` when another run holds it; ``ConfigError`` when ``output_dir`` names
        something that is not a folder."""
        if not self.info.is_main:
            return None
        import fcntl

        if self.out.exists() and not self.out.is_dir():
            raise ConfigError(f"--output-dir {self.out}: exists and is not a folder; give a new or an existing folder")
        path = self.out / "train.lock"
        # a symlink is followed, as for every output: a dangling one gets the folder it points to
        real = Path(os.path.realpath(self.out))
        from clsp.outfile import missing_folders

        self._made_dirs = missing_folders(real)  # the folders this run makes (removed again if left empty)
        folder = Path(f"{self.out} (a symlink to {real})") if self.out.is_symlink() else self.out
        while True:
            with _writing_log(folder):
                real.mkdir(parents=True, exist_ok=True)
            with _writing_log(path):
                fh = open(path, "a+", encoding="utf-8")
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                fh.seek(0)
                holder = fh.read().strip() or "another process"
                fh.close()
                raise OutputError(f"{self.out} is being trained into by PID {holder} ({path}); wait for that run to "
                                  "end, or train into another --output-dir") from None
            try:  # the run before may have removed the file between our open and flock: lock the one there now
                same = os.stat(path).st_ino == os.fstat(fh.fileno()).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            fh.close()
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        return fh

    def release(self) -> None:
        """Let go of the output folder's lock (the run is over) and remove its file. The folders
        this run made and left empty (a run that failed at its start: the output folder and the
        missing folders above it) are removed again."""
        if getattr(self, "_run_lock", None) is not None:
            with contextlib.suppress(OSError):
                (self.out / "train.lock").unlink()
            self._run_lock.close()
            self._run_lock = None
            for folder in getattr(self, "_made_dirs", []):  # deepest first; a symlink's target: the link stays
                try:
                    folder.rmdir()  # only when empty
                except OSError:
                    break

    def _refuse_foreign_config(self) -> None:
        """A fresh run writes its whole config to ``OUT/config.json``: a file there that no run
        wrote (the user's own, or the config file given to this run) is a ``ConfigError``,
        never overwritten. A run's config holds every top-level key of ``TrainConfig``."""
        path = self.out / RUN_CONFIG
        if not path.exists():
            return
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            data = None
        keys = {f.name for f in dataclasses.fields(TrainConfig)}
        if isinstance(data, dict) and keys <= set(data):
            return
        raise ConfigError(f"{path} exists and is not the config a training run wrote (a file of yours, or the config "
                          f"given to this run?): a run writes its own {RUN_CONFIG} there; train into another "
                          "--output-dir, or move that file")

    def _refuse_other_run(self, resume: str | None) -> None:
        """Without ``--resume``, an output folder that already holds a run (checkpoints or
        logged steps) is a ``ConfigError``: the two runs' checkpoints and metrics would mix.
        With ``--resume CHECKPOINT``, so is a checkpoint of another folder into a folder that
        holds a run, and one with newer checkpoints beside it (``checkpoint.resume_conflict``)."""
        if resume and resume != "latest":
            conflict = ckpt.resume_conflict(self.out, ckpt.resolve_resume(self.out, resume))
            if conflict:
                raise ConfigError(conflict)
        if resume:
            return
        found = ckpt.list_checkpoints(self.out)
        metrics = self.out / "metrics.jsonl"
        logged = metrics.exists() and metrics.stat().st_size > 0
        self._refuse_foreign_config()
        if found or logged:
            held = f"checkpoints up to {found[-1].name}" if found else "the metrics.jsonl of a run"
            raise ConfigError(f"{self.out} already holds a training run ({held}): continue it with --resume latest, "
                              "or train into another --output-dir")

    def _keep_metrics_until(self, step: int) -> None:
        """Drop the logged rows after ``step`` (a run stopped after its last checkpoint logged
        them; the resumed run logs those steps again)."""
        metrics = self.out / "metrics.jsonl"
        if not self.info.is_main or not metrics.exists():
            return
        kept = []
        with _writing_log(metrics):
            for line in metrics.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    row_step = json.loads(line).get("step")
                except (ValueError, AttributeError):
                    continue  # a line cut by the kill
                if isinstance(row_step, int) and row_step <= step:
                    kept.append(line)
            tmp = metrics.with_name(metrics.name + ".partial")
            tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
            os.replace(tmp, metrics)

    def _resume(self, resume: str | None) -> Path | None:
        path = ckpt.resolve_resume(self.out, resume)
        if path is None:
            if resume:
                log.info("no checkpoint in %s: starting from scratch", self.out)
                self._keep_metrics_until(0)
            return None
        trainer, mine = ckpt.load_trainer_state(path, self.info.rank)
        changed = resume_changes(trainer.get("config") or {}, self.cfg)  # a fixed key changed: ConfigError
        self._check_same_data(path, trainer.get("data_digest"), trainer["step"])
        ckpt.load_model_weights(self.model, path)
        try:
            self.optimizer.load_state_dict(trainer["optimizer"])
        except ValueError as exc:
            raise CheckpointError(f"{path}: its optimizer state does not fit this model's trainable parameters ({exc})") from None
        apply_optim_config(self.optimizer, self.model, self.cfg)  # the state brought back the old lr, betas...
        for key, (old, new) in changed.applied.items():
            log.info("resume: %s changed from %r to %r (applied from step %d)", key, old, new, trainer["step"])
        for key, (old, new) in changed.not_applied.items():
            log.warning("resume: %s changed from %r to %r, but it only acts when a run starts: not applied", key, old, new)
        saved_world = trainer.get("world_size")
        if saved_world is not None and saved_world != self.info.world_size:
            log.warning("resume: %d processes now, %d when %s was written: the global batch and the order of the "
                        "batches after it differ from an uninterrupted run", self.info.world_size, saved_world, path.name)
        self.step, self.epoch, self.skipped_steps = trainer["step"], trainer["epoch"], trainer["skipped_steps"]
        self.batch_in_epoch = mine["batch_in_epoch"]
        if saved_world is not None and saved_world != self.info.world_size:  # about the same point of the epoch:
            # each old process had taken batch_in_epoch of its 1/saved_world share; rounded down (whole batches),
            # so that no clip not yet trained on is passed over (some may come twice)
            self.batch_in_epoch = mine["batch_in_epoch"] * saved_world // self.info.world_size
        self.skips.counts.update(mine.get("skipped_rows", {}))
        self.skips.seen.update((str(row), str(kind)) for row, kind in mine.get("skipped_seen", []))  # not counted twice
        ckpt.set_rng_state(mine["rng"])
        if mine.get("borrowed"):  # rank 0's state, for a process the checkpoint did not have: its own streams
            random.seed(f"resume-{self.cfg.seed}-{self.step}-{self.info.rank}")
            torch.manual_seed(hash((self.cfg.seed, self.step, self.info.rank)) % (2**63))
        log.info("resumed from %s (step %d, epoch %d, batch %d of the epoch)", path, self.step, self.epoch, self.batch_in_epoch)
        self._keep_metrics_until(self.step)
        return path

    def _check_same_data(self, path: Path, saved: str | None, step: int) -> None:
        """``ConfigError`` when the training manifest's bytes differ from those the checkpoint
        was trained on (a checkpoint written before digests were kept is taken as it is)."""
        if saved is None or self.data_digest is None or saved == self.data_digest:
            return
        from clsp.errors import ConfigError

        raise ConfigError(f"data.train {self.cfg.data.train}: the manifest changed since {path} was written (its "
                          f"content differs); resuming would continue at step {step}, inside an epoch planned over "
                          "other records. Restore the manifest, or start a new run from "
                          f"these weights in another folder: clsp train CONFIG init_from={path / 'model'} "
                          "--output-dir NEW_DIR")

    def autocast(self):
        if self.use_bf16:
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _train_mode(self) -> None:
        self.model.train()
        for tower in self.frozen:
            tower.eval()

    # ---- one step ----
    def _texts(self, clips: list[dict], micro: int) -> tuple[list[str], int]:
        rng = random.Random(f"captions-{self.cfg.seed}-{self.step}-{self.info.rank}-{micro}")
        if self.cfg.loss.stage == 1:
            return stage_one_captions(clips, rng, self.cfg.loss.stage1_caption), 1
        lc = self.cfg.loss
        task = draw_task(self.cfg.seed, self.step, lc.task1_p0, lc.task1_p_min, lc.task_horizon)
        return stage_two_captions(clips, task, rng), 2

    def _forward_loss(self, batch: dict, micro: int) -> torch.Tensor:
        texts, per_clip = self._texts(batch["clips"], micro)
        feats, lens = batch["feats"].to(self.device), batch["feat_lens"].to(self.device)
        kwargs: dict[str, Any] = {}
        if self.cache is not None:
            kwargs["text_features"] = self.cache.features(self.model, texts, self.device)
        else:
            kwargs["tokens"] = self.model.text_encoder.tokenize(texts, self.device)
        keys = [clip_cache_key(c) for c in batch["clips"]]
        if self.speech_cache is not None:
            kwargs["speech_frozen"] = self.speech_cache.features(self.model, keys, feats, lens, self.device)
        weight = self.cfg.loss.channel_consistency
        if weight > 0:
            rate, kinds = self.cfg.loss.channel_rate, list(self.cfg.loss.channel_copies)
            if kinds == ["narrowband"]:  # the whole batch through one channel at once
                from clsp.audio import narrowband_copy

                kwargs["channel_feats"] = narrowband_copy(feats, lens, rate, self.model.config.sample_rate)
                channel_lens, tags = lens, [f"narrowband-{rate}"] * len(keys)
            else:
                kwargs["channel_feats"], channel_lens, tags = self._consistency_copies(feats, lens, keys, kinds, rate)
                kwargs["channel_lens"] = channel_lens
            if self.speech_cache is not None:
                kwargs["channel_frozen"] = self.speech_cache.features(
                    self.model, [(*k, tag) for k, tag in zip(keys, tags)], kwargs["channel_feats"], channel_lens,
                    self.device)
        module = self.ddp or self.towers
        with self.autocast():
            audio, text, scale, *channel = module(feats, lens, **kwargs)
        caption_ids = caption_keys(texts).to(self.device) if self.cfg.loss.mask_duplicate_captions else None
        loss = gathered_contrastive_loss(audio, text, scale, per_clip, caption_ids, self.cfg.loss.local_loss)
        if weight > 0:
            consistency = (1 - (audio * channel[0]).sum(-1)).mean()
            self.channel_gap = consistency.detach()  # read when logged: no device sync per step
            loss = loss + weight * consistency
        return loss

    def _consistency_copies(self, waves: torch.Tensor, lens: torch.Tensor, keys: list[tuple], kinds: list[str],
                            rate: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Each clip's copy (``clsp.audio.consistency_copy``, chosen by its cache key) as a
        padded batch ``(B, S')``, its lengths ``(B,)`` and the copies' tags."""
        from clsp.audio import consistency_copy

        sr = self.model.config.sample_rate
        copies = [consistency_copy(waves[i, : int(n)], kinds, repr(keys[i]), rate, sr)
                  for i, n in enumerate(lens.tolist())]
        out_lens = torch.tensor([c.numel() for c, _ in copies], dtype=torch.long, device=lens.device)
        out = torch.zeros(len(copies), int(out_lens.max()) if copies else 0, device=waves.device)
        for i, (c, _) in enumerate(copies):
            out[i, : c.numel()] = c.to(waves.device)
        return out, out_lens, [tag for _, tag in copies]

    def _optimizer_step(self, batches: list[dict]) -> dict[str, Any]:
        accum, world = len(batches), self.info.world_size
        lens = batches[0]["feat_lens"][:2]
        self.probe = (batches[0]["feats"][:2, : int(lens.max())], lens)
        set_learning_rates(self.optimizer, lr_factor(self.cfg.optim, self.step, self.epoch, self.cfg.max_steps))
        total = torch.zeros((), device=self.device)
        for i, batch in enumerate(batches):
            sync = self.ddp is None or i == accum - 1
            with contextlib.nullcontext() if sync else self.ddp.no_sync():
                loss = self._forward_loss(batch, i)
                (loss * world / accum).backward()
            total += loss.detach() / accum
        if self.cfg.loss.local_loss:
            total = all_reduce_sum(total)
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        max_norm = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
        bad = all_reduce_flag(not (torch.isfinite(norm) and torch.isfinite(total)), "any", self.device)
        if bad:
            self.skipped_steps += 1
            log.warning("step %d skipped: non-finite loss or gradient (loss %s, grad norm %s)", self.step, total.item(), norm.item())
        else:
            self.optimizer.step()
            clamp_logit_scale_(self.model.logit_scale)
        self.optimizer.zero_grad(set_to_none=True)
        return {"loss": total.item(), "grad_norm": norm.item(), "skipped": bad}

    # ---- bookkeeping ----
    def _write_metrics(self, record: dict[str, Any]) -> None:
        if not self.info.is_main:
            return
        finite = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in record.items()}
        with _writing_log(self.out / "metrics.jsonl"), open(self.out / "metrics.jsonl", "a", encoding="utf-8") as fh:
            fh.write(json.dumps(finite, allow_nan=False) + "\n")  # JSON has no NaN: null
        if self.writer is not None:
            for key, value in finite.items():
                if isinstance(value, (int, float)) and key not in ("step", "epoch"):
                    self.writer.add_scalar(key, value, record["step"])
        if self.on_log is not None:
            self.on_log(record)

    def _open_writer(self):
        if not (self.cfg.tensorboard and self.info.is_main):
            return None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            return None
        return SummaryWriter(str(self.out / "tensorboard"))

    def save(self) -> Path:
        """Write a checkpoint of this step; ``TrainingDivergedError`` if a weight is not finite."""
        bad = nonfinite_parameters(self.model)
        if bad:
            raise TrainingDivergedError(f"step {self.step}: non-finite weights ({name_list(bad)}); no checkpoint written. "
                                        f"{self._restart_hint()}")
        if all_reduce_flag(not self._embeddings_finite(), "any", self.device):
            raise TrainingDivergedError(f"step {self.step}: the weights are finite but the model's embeddings are not "
                                        f"(they overflow); no checkpoint written. {self._restart_hint()}")
        trainer_state = {"step": self.step, "epoch": self.epoch, "skipped_steps": self.skipped_steps,
                         "optimizer": self.optimizer.state_dict(), "config": absolute_paths(self.cfg.to_dict()),
                         "world_size": self.info.world_size, "data_digest": self.data_digest}
        rank_state = {"batch_in_epoch": self.batch_in_epoch, "skipped_rows": dict(self.skips.counts),
                      "skipped_seen": sorted([str(row), str(kind)] for row, kind in self.skips.seen)}
        path = ckpt.save_checkpoint(self.out, self.step, self.model, trainer_state, rank_state,
                                    self.info.rank, self.cfg.keep_last)
        log.info("checkpoint %s", path)
        return path

    @torch.no_grad()
    def _embeddings_finite(self) -> bool:
        """Whether the model, as it would be saved, gives finite unit-norm embeddings: two clips
        of the last batch and one caption, in eval mode (weights can be finite yet overflow)."""
        if self.probe is None:
            return True
        model, was_training = self.model, self.model.training
        model.eval()
        try:
            feats, lens = self.probe
            audio = model.encode_fbank(feats.to(self.device), lens.to(self.device))
            text = model.encode_text(["a calm voice"])
            unit = [(e.float().norm(dim=-1) - 1).abs().max() < 1e-3 for e in (audio, text)]  # an overflow also gives 0-vectors
            return bool(torch.isfinite(audio).all() and torch.isfinite(text).all() and all(unit))
        finally:
            model.train(was_training)

    def run_validation(self) -> dict[str, float]:
        if not self.cfg.data.valid:
            return {}
        metrics: dict[str, float] = {}
        if self.info.is_main:
            from clsp.errors import ClspError
            from clsp.train.validate import validate

            try:
                metrics = validate(self.model, self.cfg.data.valid, self.cfg.data, self.device, self.autocast)
            except Exception as exc:  # noqa: BLE001 - a failed validation must not cost the steps trained
                what = str(exc) if isinstance(exc, ClspError) else f"{type(exc).__name__}: {exc}"
                log.error("validation at step %d failed (%s); training goes on, checkpoints are written",
                          self.step, what)
            else:
                self.last_metrics = metrics
                self._write_metrics({"step": self.step, "epoch": self.epoch, **metrics})
        barrier()
        self._train_mode()
        return metrics

    # ---- the loop ----
    def _next_batches(self, it) -> list[dict] | None:
        """``accumulation`` non-empty batches, or None when any rank's epoch is over."""
        batches, taken = [], 0
        while len(batches) < self.cfg.optim.accumulation:
            batch = next(it, None)
            if batch is None:
                break
            self.batch_in_epoch += 1
            taken += 1
            for clip_id, reason in batch["skipped"]:
                self.skips.skip(clip_id, reason, audio_skip_kind(reason))
            if batch["clips"]:
                batches.append(batch)
                self.filled_batches += 1
        complete = len(batches) == self.cfg.optim.accumulation
        if all_reduce_flag(complete, "all", self.device):
            return batches
        if complete or batches:  # another process ran out first: this one's rest of the epoch is not trained on
            self._count_left_at_epoch_end(taken)
        return None

    def _count_left_at_epoch_end(self, fetched: int) -> None:
        """Count the clips this process still had when another one's epoch ended (processes get
        unequal numbers of batches: every process must take the same number of steps), as
        skipped rows of their own kind, from the plan's metadata (no audio is decoded)."""
        plan = BatchPlan(self.cfg.data.train, self.cfg.data, self.cfg.seed, self.epoch, self.info.rank,
                         self.info.world_size, skip_batches=self.batch_in_epoch - fetched, skips=SkipCounter())
        for batch in plan:
            for clip in batch:
                self.skips.skip(clip["id"], "left at the end of the epoch: another process had no batch left "
                                "(the processes got unequal numbers of batches)", "left at an uneven epoch end")

    def _check_batch_sizes(self, batches: list[dict], shown: int = 3) -> None:
        """Warn about global batches of fewer than 2 clips: a contrastive loss over one
        clip is 0 whatever the weights, so such a batch teaches nothing."""
        local = torch.tensor([float(len(b["clips"])) for b in batches])
        sizes = all_reduce_sum(local.to(self.device)).tolist()
        for size in sizes:
            if size >= 2:
                continue
            self.small_batches += 1
            if self.small_batches <= shown:
                log.warning("step %d: a batch of %d clip(s) from %s gives the contrastive loss no negatives%s",
                            self.step + 1, int(size), self.cfg.data.train,
                            " (further ones not shown)" if self.small_batches == shown else "")

    def _epoch_loader(self):
        plan = BatchPlan(self.cfg.data.train, self.cfg.data, self.cfg.seed, self.epoch, self.info.rank,
                         self.info.world_size, skip_batches=self.batch_in_epoch, skips=self.skips)
        loader = make_loader(plan, self.cfg.data.num_workers, self.model.speech_input)
        return iter(loader)

    def _log_step(self, stats: dict[str, Any], batches: list[dict], seconds: float) -> None:
        groups = {g["name"]: g["lr"] for g in self.optimizer.param_groups}
        # the step's clips and seconds and the rows skipped so far, over every process (each reads its own rows)
        local = [float(sum(len(b["clips"]) for b in batches)), float(sum(c["duration"] for b in batches for c in b["clips"])),
                 float(self.skips.total)]
        clips, audio_s, skipped_rows = all_reduce_sum(torch.tensor(local, dtype=torch.float64, device=self.device)).tolist()
        clips, skipped_rows = int(clips), int(skipped_rows)
        self._write_metrics({
            "step": self.step, "epoch": self.epoch, "loss": stats["loss"], "grad_norm": stats["grad_norm"],
            "logit_scale": float(self.model.logit_scale.detach().exp()), "lr_encoder": groups.get("encoder", groups.get("encoder_no_decay")),
            "lr_heads": groups.get("heads", groups.get("heads_no_decay")), "clips": clips, "audio_seconds": audio_s,
            "step_seconds": seconds, "skipped_steps": self.skipped_steps, "skipped_rows": skipped_rows,
            **({"channel_gap": float(self.channel_gap)} if self.cfg.loss.channel_consistency > 0 else {}),
        })

    def run(self) -> TrainResult:
        """Train; a run that fails before its first step leaves the output dir as it found it."""
        guard, first_step = RunDirGuard(self.out), self.step
        try:
            return self._run()
        except BaseException:
            if self.info.is_main and self.step == first_step:
                if self.writer is not None:
                    self.writer.close()
                guard.undo()
            raise
        finally:
            self.release()  # the run is over: another may train into the folder

    def _run(self) -> TrainResult:
        cfg = self.cfg
        if self.resumed_from is not None and self.step >= cfg.max_steps:
            # nothing to train: the folder keeps the config and checkpoint the steps were trained with
            log.warning("resume: the run is already at step %d (max_steps=%d): nothing to train; raise max_steps to "
                        "train on. %s and %s are left as they are", self.step, cfg.max_steps, RUN_CONFIG, self.resumed_from)
            return self._finish("finished", self.resumed_from)
        with _writing_log(self.out):
            self.out.mkdir(parents=True, exist_ok=True)
        if self.info.is_main:
            with _writing_log(self.out / RUN_CONFIG):
                (self.out / RUN_CONFIG).write_text(json.dumps(absolute_paths(cfg.to_dict()), indent=2))
        self.writer = self._open_writer()
        self._train_mode()
        path = None
        with StopRequest() as stop:
            while self.step < cfg.max_steps and not (cfg.max_epochs and self.epoch >= cfg.max_epochs):
                fresh_epoch, first_step = self.batch_in_epoch == 0, self.step
                self.filled_batches = 0  # batches holding a clip, read in this pass
                it = self._epoch_loader()
                while self.step < cfg.max_steps:
                    t0 = time.perf_counter()
                    batches = self._next_batches(it)
                    if batches is None:
                        break
                    self._check_batch_sizes(batches)
                    stats = self._optimizer_step(batches)
                    self.step += 1
                    if self.step % cfg.log_every == 0 or stats["skipped"] or self.step == cfg.max_steps:
                        self._log_step(stats, batches, time.perf_counter() - t0)
                    self._check_divergence(stats["skipped"])
                    if cfg.valid_every and self.step % cfg.valid_every == 0:
                        self.run_validation()
                    if all_reduce_flag(stop.signal is not None, "any", self.device):
                        if self.info.is_main:  # once, not once per process
                            log.warning("stop signal received: writing a checkpoint at step %d", self.step)
                        return self._finish("preempted", self.save())
                    if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0 or self.save_due:
                        path = self._save_when_finite() or path
                if self.step >= cfg.max_steps:
                    break
                if fresh_epoch and self.step == first_step:
                    raise_empty(cfg.data.train, self.skips, self.info.rank, self.info.world_size,
                                batches=self.filled_batches, accumulation=cfg.optim.accumulation,
                                stopped=self._stopped_hint())
                self.epoch, self.batch_in_epoch = self.epoch + 1, 0
            if self.nonfinite_streak:
                raise TrainingDivergedError(f"the run ends with {self.nonfinite_streak} non-finite step(s) in a row "
                                            f"(up to step {self.step}): its weights give no finite loss. "
                                            f"{self._restart_hint()}")
            # the last checkpoint first, still under the stop handler: a SIGTERM or a failure in the
            # final validation (a large set, a time limit) costs no trained step
            if path is None or path.name != f"step-{self.step:08d}":
                path = self.save()
            if cfg.data.valid and not (cfg.valid_every and self.step % cfg.valid_every == 0):
                if all_reduce_flag(stop.signal is not None, "any", self.device):
                    if self.info.is_main:
                        log.warning("stop signal received: the final validation is skipped; the checkpoint of step %d "
                                    "is written", self.step)
                else:
                    self.run_validation()
        return self._finish("finished", path)

    def _save_when_finite(self) -> Path | None:
        """The periodic checkpoint, unless this step was not finite: weights that just gave a
        non-finite loss are not saved; the checkpoint waits for the next finite step."""
        if self.nonfinite_streak:
            if not self.save_due:
                log.warning("step %d: checkpoint deferred until a step with a finite loss", self.step)
            self.save_due = True
            return None
        self.save_due = False
        return self.save()

    def _check_divergence(self, skipped: bool) -> None:
        """Stop a run that cannot recover: non-finite weights, or ``max_nonfinite_steps``
        skipped steps in a row."""
        self.nonfinite_streak = self.nonfinite_streak + 1 if skipped else 0
        if not skipped:
            return
        bad = nonfinite_parameters(self.model)
        if bad:
            raise TrainingDivergedError(f"step {self.step}: non-finite weights ({name_list(bad)}). {self._restart_hint()}")
        if self.nonfinite_streak >= self.cfg.max_nonfinite_steps:
            raise TrainingDivergedError(
                f"step {self.step}: {self.nonfinite_streak} steps in a row with a non-finite loss or gradient "
                f"(max_nonfinite_steps={self.cfg.max_nonfinite_steps}): the run diverged. {self._restart_hint()}")

    def _restart_hint(self) -> str:
        found = ckpt.list_checkpoints(self.out)
        if found:
            return (f"Lower optim.lr_encoder / optim.lr_heads or raise optim.warmup_steps and start again; the last "
                    f"checkpoint is {found[-1]} (--resume {found[-1]} with the lower rates continues from it).")
        return ("Lower optim.lr_encoder / optim.lr_heads or raise optim.warmup_steps and start again into a new "
                f"--output-dir (or remove {self.out}); no checkpoint was written.")

    def _stopped_hint(self) -> str:
        """For an error that ends a run after it trained steps: the step it stopped at and the
        last checkpoint to resume from (or that there is none); empty before the first step."""
        if self.step == 0:
            return ""
        found = ckpt.list_checkpoints(self.out)
        if not found:
            return (f"; training stopped at step {self.step} and no checkpoint was written, so its steps are lost; "
                    "mend the data and start again")
        last = found[-1]
        return (f"; training stopped at step {self.step}, and steps after the last checkpoint, {last} (step "
                f"{ckpt.step_of(last)}), are lost: mend the data and continue from it with --resume latest")

    def _finish(self, status: str, path: Path | None) -> TrainResult:
        if self.writer is not None:
            self.writer.close()
        if self.skips.total:
            whose = f" of this process's share (rank {self.info.rank} of {self.info.world_size})" if self.info.world_size > 1 else ""
            log.warning("skipped %d manifest rows%s: %s", self.skips.total, whose, dict(self.skips.counts))
        return TrainResult(status, self.step, self.out, path, self.last_metrics)


@contextlib.contextmanager
def _writing_log(path: Path):
    """A failed write of a run's log file is an ``OutputError`` naming it and the OS reason."""
    try:
        yield
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {ckpt.os_reason(exc)}") from None


def raise_empty(manifest: str, skips: SkipCounter, rank: int = 0, world: int = 1, batches: int = 0,
                accumulation: int = 1, stopped: str = "") -> None:
    """``InputError``: an epoch gave no step. With several processes a step needs a batch on
    each, and each reads its own share of the rows (index % world == rank); a step takes
    ``accumulation`` batches, so an epoch of fewer ``batches`` (this rank's) gives none.
    ``stopped`` (``Trainer._stopped_hint``) ends the message: for a run that trained steps before
    (its audio gone mid-run), the step it stopped at and the checkpoint to resume from."""
    from clsp.errors import InputError

    if accumulation > 1 and 0 < batches < accumulation:
        share = f" on rank {rank} of {world}" if world > 1 else ""
        raise InputError(f"{manifest}: an epoch holds {batches} batch(es){share}, fewer than the {accumulation} one "
                         f"optimizer step takes (optim.accumulation={accumulation}); lower optim.accumulation, or "
                         f"data.max_batch_seconds for more, smaller batches{stopped}")

    if world > 1:
        raise InputError(f"{manifest}: no training batch on every one of the {world} processes: each reads the rows "
                         f"whose index % {world} is its rank, and one share held no usable clip (rank {rank} skipped "
                         f"{skips.total} of its rows: {dict(skips.counts)}); mend or remove the skipped rows, or "
                         f"train with fewer processes{stopped}")
    detail = f" ({skips.total} rows skipped: {dict(skips.counts)})" if skips.total else ""
    raise InputError(f"{manifest}: no usable training batch{detail}{stopped}")


def train(cfg: TrainConfig, resume: str | None = None, on_log: Callable[[dict], None] | None = None) -> TrainResult:
    """Train with ``cfg`` (optionally continuing from ``resume``: ``latest`` or a checkpoint)."""
    return Trainer(cfg, resume, on_log).run()
