"""``speaker_fusion``: frozen pretrained speaker knowledge + signal measurements (+ an
optional trainable fbank tower) as one speech encoder.

Config (the ``speech_encoder`` dict of a model config; these keys are stable)::

    {"type": "speaker_fusion",
     "speakers": ["ge2e"],   # frozen speaker encoders, concatenated: "ge2e" (clsp.models.speaker),
                             # "voicefilter" (clsp.models.voicefilter)
     "stats": true,          # utterance signal statistics (clsp.models.signal_stats)
     "stats_band": "full",   # frame energy of the loudness/pause/pace statistics over all fbank bins,
                             # or "telephone": 100 Hz-3.4 kHz only (a telephone copy measures the same)
     "front_end": "raw",     # "raw": each clip as decoded; "trimmed": DC removed and leading / trailing
                             # non-speech trimmed (clsp.audio.trim_speech), so a DC offset or silence
                             # around the speech does not move a clip; "normalized": also scaled to
                             # -26 dBFS active speech level over a fixed -70 dBFS noise floor
                             # (clsp.audio.normalize_speech), so its gain does not either;
                             # "leveled": DC removed and scaled to that level over that floor,
                             # nothing trimmed (clsp.audio.level_speech)
     "speaker_front_end": null,  # the front end the speaker encoders and the gender head hear
                             # instead (one of those four; null: front_end), e.g. "trimmed": a clip's
                             # d-vectors and gender come from its speech only, so silence around it
                             # does not move them, while the statistics still hear front_end
     "gender_front_end": null,  # the front end the gender head hears (one of those four; null:
                             # speaker_front_end), e.g. "trimmed" with speaker_front_end "raw": the
                             # gender log-odds come from the speech only, while the d-vectors that feed
                             # the trainable layers hear the clip as it is (those encoders then run twice)
     "max_pause_s": null,    # or seconds: each pause inside the speech longer than this is cut to it
                             # (clsp.audio.shorten_pauses) before any part hears the clip, so a
                             # hesitation longer than the training speech held does not move a clip
                             # as far as another voice does
     "stats_phases": 1,      # statistics averaged over this many fbank frame grids, 10 ms / k apart
                             # (clsp.models.signal_stats.waveform_stats): 4 makes them insensitive to
                             # a clip's start moving by part of a frame; each grid costs one more fbank
     "stats_dim": 64,        # width of the trainable Linear+GELU over the statistics
     "compact": null,        # or CompactSpeechEncoder kwargs: a trainable fbank tower, mean-pooled
     "num_mel_bins": 128,    # fbank bins for the statistics and the compact tower
     "max_partials": 3,      # GE2E: at most this many 1.6 s partials per clip, evenly spread (null: all)
     "max_windows": 4,       # voicefilter: at most this many 0.8 s windows per clip, evenly spread (null: all)
     "speaker_bands": {},    # encoder -> "full" (the default) or "telephone": that encoder's mels come
                             # from 100 Hz-3.4 kHz only (clsp.audio.band_mask), so a telephone or
                             # 8 kHz copy of a clip gets nearly the same d-vector
     "gender_head": false,   # append the packaged frozen gender head's log-odds (clsp.models.gender_head;
                             # the head fitted with these max_partials / max_windows / speaker_bands
                             # where one is packaged)
     "gender_dim": 16,       # width of the trainable Linear+GELU over that log-odds
     "speaker_proj_dim": null,  # null: the layer-normalised d-vectors as they are; k > 0: projected
                             # to k values (a bottleneck against memorising few training voices);
                             # 0: d-vectors feed only the gender head
     "proj_speakers": null}  # the speaker encoders whose d-vectors feed the trainable layers
                             # (null: all of them); the others feed only the gender head

Input: 16 kHz waveforms ``(B, S)`` and sample counts ``(B,)`` (``input_kind = "waveform"``).
Output: one vector per clip as a single frame, ``(B, 1, output_dim)`` with lengths all 1,
``output_dim = 256 * len(proj_speakers) (or speaker_proj_dim) + gender_dim * gender_head +
stats_dim * stats + compact dim``. The speaker part is layer-normalised (trainable affine); the frozen part is
``frozen_features`` (speaker d-vectors, the gender log-odds, then raw statistics,
``(B, frozen_dim)``), which training computes once per clip
and passes back through ``forward(..., frozen=...)``. Every clip is measured from its own
valid samples, so its output does not depend on the batch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from clsp.errors import ConfigError
from clsp.models.registry import register_speech_encoder
from clsp.models.signal_stats import SIGNAL_STATS_DIM, STATS_BANDS, valid_phases, waveform_stats
from clsp.models.speaker import GE2ESpeakerEncoder
from clsp.models.voicefilter import VoiceFilterSpeakerEncoder

def _clip_waves(waveforms: torch.Tensor, lengths: torch.Tensor) -> list[torch.Tensor]:
    """Each clip's valid samples, float32 on CPU (where fbank and the statistics run)."""
    return [waveforms[i, : int(n)].float().cpu() for i, n in enumerate(lengths.tolist())]


def _padded(waves: list[torch.Tensor], device: torch.device, lengths_device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips ``(S_i,)`` as a zero-padded batch ``(B, max S_i)`` on ``device`` and their sample counts."""
    lens = torch.tensor([w.numel() for w in waves], dtype=torch.long)
    out = torch.zeros(len(waves), int(lens.max()) if waves else 0)
    for i, w in enumerate(waves):
        out[i, : w.numel()] = w
    return out.to(device), lens.to(lengths_device)


FRONT_ENDS = ("raw", "trimmed", "normalized", "leveled")


SPEAKER_ENCODERS = {"ge2e": GE2ESpeakerEncoder, "voicefilter": VoiceFilterSpeakerEncoder}


@register_speech_encoder("speaker_fusion")
class SpeakerFusionEncoder(nn.Module):
    """Frozen speaker d-vectors + signal statistics (+ trainable compact tower) per clip."""

    input_kind = "waveform"

    def __init__(self, speakers: list[str] | tuple[str, ...] = ("ge2e",), stats: bool = True, stats_dim: int = 64,
                 compact: dict[str, Any] | None = None, num_mel_bins: int = 128, max_partials: int | None = 3,
                 max_windows: int | None = 4, gender_head: bool = False, gender_dim: int = 16,
                 speaker_proj_dim: int | None = None, stats_band: str = "full", stats_phases: int = 1,
                 load_weights: bool = True,
                 proj_speakers: list[str] | tuple[str, ...] | None = None,
                 speaker_bands: dict[str, str] | None = None, front_end: str = "raw",
                 speaker_front_end: str | None = None, gender_front_end: str | None = None,
                 max_pause_s: float | None = None):
        super().__init__()
        if max_pause_s is not None and (isinstance(max_pause_s, bool) or not isinstance(max_pause_s, (int, float))
                                        or not 0.05 <= max_pause_s <= 60):
            raise ConfigError(f"speaker_fusion: max_pause_s must be null or seconds in 0.05..60, got {max_pause_s!r}")
        self.max_pause_s = None if max_pause_s is None else float(max_pause_s)
        for key, value in (("front_end", front_end), ("speaker_front_end", speaker_front_end),
                           ("gender_front_end", gender_front_end)):
            if value not in FRONT_ENDS and not (key != "front_end" and value is None):
                raise ConfigError(f"speaker_fusion: {key} must be one of {', '.join(FRONT_ENDS)}"
                                  f"{' or null' if key != 'front_end' else ''}, got {value!r}")
        self.front_end = front_end
        self.speaker_front_end = front_end if speaker_front_end is None else speaker_front_end
        self.gender_front_end = self.speaker_front_end if gender_front_end is None else gender_front_end
        unknown = [s for s in speakers if s not in SPEAKER_ENCODERS]
        if unknown or not (speakers or stats or compact):
            raise ConfigError(f"speaker_fusion: unknown speaker encoder(s) {unknown} (known: {sorted(SPEAKER_ENCODERS)})"
                              if unknown else "speaker_fusion: needs speakers, stats or compact")
        if stats and stats_dim < 1:
            raise ConfigError("speaker_fusion: stats_dim must be >= 1 when stats is on")
        if stats_band not in STATS_BANDS:
            raise ConfigError(f"speaker_fusion: stats_band must be one of {', '.join(STATS_BANDS)}, got {stats_band!r}")
        if not valid_phases(stats_phases):
            raise ConfigError(f"speaker_fusion: stats_phases must be an integer in 1..160, got {stats_phases!r}")
        self.stats_band, self.stats_phases = stats_band, stats_phases
        self.speaker_names = list(speakers)
        from clsp.audio import SPEAKER_BANDS

        if speaker_bands is not None and not isinstance(speaker_bands, dict):
            raise ConfigError(f"speaker_fusion: speaker_bands must map speaker encoders to bands, e.g. "
                              f"{{\"ge2e\": \"telephone\"}}, got {speaker_bands!r}")
        self.speaker_bands = dict(speaker_bands or {})
        bad = {k: v for k, v in self.speaker_bands.items() if k not in self.speaker_names or v not in SPEAKER_BANDS}
        if bad:
            raise ConfigError(f"speaker_fusion: speaker_bands {bad}: keys must name speakers of {self.speaker_names}, "
                              f"values one of {', '.join(SPEAKER_BANDS)}")
        limits = {"ge2e": {"max_partials": max_partials}, "voicefilter": {"max_windows": max_windows}}
        self.speakers = nn.ModuleList(SPEAKER_ENCODERS[s](load_weights=load_weights, band=self.speaker_bands.get(s, "full"),
                                                          **limits[s]) for s in speakers)
        # frozen weights that ship in the package: checkpoints leave them out (clsp.models.checkpoint)
        self.packaged_prefixes = ("speakers.",) if load_weights and speakers else ()
        self.speaker_dim = sum(s.output_dim for s in self.speakers)
        if speaker_proj_dim is not None and speaker_proj_dim < 0:
            raise ConfigError("speaker_fusion: speaker_proj_dim must be null, 0 or positive")
        self.proj_speakers = list(self.speaker_names if proj_speakers is None else proj_speakers)
        if not set(self.proj_speakers) <= set(self.speaker_names) or len(set(self.proj_speakers)) != len(self.proj_speakers):
            raise ConfigError(f"speaker_fusion: proj_speakers {self.proj_speakers} must name speakers of "
                              f"{self.speaker_names}, each once")
        # frozen columns of the d-vectors that feed the trainable layers, in speakers' order
        cols, start = [], 0
        for name, enc in zip(self.speaker_names, self.speakers):
            if name in self.proj_speakers:
                cols += range(start, start + enc.output_dim)
            start += enc.output_dim
        self.register_buffer("_proj_cols", torch.tensor(cols, dtype=torch.long), persistent=False)
        proj_in = len(cols)
        use_dvec = bool(proj_in) and speaker_proj_dim != 0
        self.speaker_norm = nn.LayerNorm(proj_in) if use_dvec else None
        self.speaker_proj = nn.Linear(proj_in, speaker_proj_dim) if use_dvec and speaker_proj_dim else None
        speaker_out = (speaker_proj_dim or proj_in) if use_dvec else 0
        self.gender_head = self.gender_proj = None
        if gender_head:
            if not speakers or gender_dim < 1:
                raise ConfigError("speaker_fusion: gender_head needs speaker encoders and gender_dim >= 1")
            from clsp.models.gender_head import encoder_settings, gender_linear

            self.gender_head = gender_linear(self.speaker_names, load_weights,
                                             encoder_settings(self.speaker_names, max_partials, max_windows,
                                                              self.speaker_bands, self.gender_front_end))
            self.gender_proj = nn.Sequential(nn.Linear(1, gender_dim), nn.GELU())
        gender_in = 1 if gender_head else 0
        self.use_stats, self.num_mel_bins = bool(stats), num_mel_bins
        self.stats_proj = nn.Sequential(nn.Linear(SIGNAL_STATS_DIM, stats_dim), nn.GELU()) if stats else None
        self.frozen_dim = self.speaker_dim + gender_in + (SIGNAL_STATS_DIM if stats else 0)
        self.compact = None
        if compact is not None:
            from clsp.models.compact import CompactSpeechEncoder

            self.compact = CompactSpeechEncoder(**{"num_mel_bins": num_mel_bins, **compact})
        self.output_dim = (speaker_out + (gender_dim if gender_head else 0) + (stats_dim if stats else 0)
                           + (self.compact.output_dim if self.compact else 0))

    def _heard(self, waveforms: torch.Tensor, lengths: torch.Tensor,
               front_end: str | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch as a part of the tower hears it through ``front_end`` (default: the tower's
        ``front_end``): ``(B, S')`` and ``(B,)`` on the input's device; each clip through
        ``trim_speech``, ``normalize_speech`` or ``level_speech`` for those front ends."""
        front_end = self.front_end if front_end is None else front_end
        if front_end == "raw":
            return waveforms.float(), lengths
        from clsp.audio import level_speech, normalize_speech, trim_speech

        hear = {"trimmed": trim_speech, "normalized": normalize_speech, "leveled": level_speech}[front_end]
        return _padded([hear(w) for w in _clip_waves(waveforms, lengths)], waveforms.device, lengths.device)

    def _paused(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The batch with long pauses cut to ``max_pause_s`` (unchanged when it is null)."""
        if self.max_pause_s is None:
            return waveforms, lengths
        from clsp.audio import shorten_pauses

        return _padded([shorten_pauses(w, self.max_pause_s) for w in _clip_waves(waveforms, lengths)],
                       waveforms.device, lengths.device)

    def _fbank(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        from clsp.features import fbank_batch

        waveforms, lengths = self._heard(*self._paused(waveforms, lengths))
        feats, lens = fbank_batch(_clip_waves(waveforms, lengths), self.num_mel_bins)
        return feats.to(waveforms.device), lens.to(waveforms.device)

    @torch.no_grad()
    def frozen_features(self, waveforms: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The parameter-free part ``(B, frozen_dim)``: speaker d-vectors, the gender log-odds,
        then raw statistics. Computed in their own formats (``clsp.models.lstm_precision``),
        whatever autocast the caller runs under (``--dtype bfloat16``, training's bf16): the
        same numbers as without it."""
        with torch.autocast(device_type=waveforms.device.type, enabled=False):
            raw, raw_lengths = self._paused(waveforms.float(), lengths)
            waveforms, lengths = self._heard(raw, raw_lengths)
            parts = []
            if self.speakers:
                parts = self._dvectors((raw, raw_lengths), (waveforms, lengths))
            if self.use_stats:
                parts.append(waveform_stats(_clip_waves(waveforms, lengths), self.num_mel_bins, self.stats_band,
                                            self.stats_phases).to(waveforms.device))
            return torch.cat(parts, dim=-1).float()

    def _dvectors(self, raw: tuple[torch.Tensor, torch.Tensor],
                  heard: tuple[torch.Tensor, torch.Tensor]) -> list[torch.Tensor]:
        """The d-vector columns of ``frozen_features``, then the gender log-odds where the tower
        has a gender head: a list of ``(B, 256)`` per speaker encoder and ``(B, 1)``. ``raw``
        is the batch as decoded, ``heard`` the same through ``front_end`` (waveforms and sample
        counts each). The d-vectors that
        feed the trainable layers are those of the clips through ``speaker_front_end``; the
        gender head hears ``gender_front_end``, and an encoder that feeds only the gender head
        fills its columns with what the head hears (so it runs once)."""
        def through(front_end: str) -> tuple[torch.Tensor, torch.Tensor]:
            return heard if front_end == self.front_end else self._heard(*raw, front_end)

        spoken = through(self.speaker_front_end)
        if self.gender_head is None or self.gender_front_end == self.speaker_front_end:
            parts = [enc(*spoken) for enc in self.speakers]
            return parts + ([self.gender_head(torch.cat(parts, dim=-1))] if self.gender_head is not None else [])
        gendered = through(self.gender_front_end)
        trained = set(self.proj_speakers) if self.speaker_norm is not None else set()
        for_gender = [enc(*gendered) for enc in self.speakers]
        parts = [enc(*spoken) if name in trained else g
                 for name, enc, g in zip(self.speaker_names, self.speakers, for_gender)]
        return parts + [self.gender_head(torch.cat(for_gender, dim=-1))]

    def gender_logodds(self, frozen: torch.Tensor) -> torch.Tensor:
        """The gender head's female log-odds ``(B, 1)`` from ``frozen_features`` output.
        ``ConfigError`` when the tower has no gender head."""
        if self.gender_head is None:
            raise ConfigError("speaker_fusion: gender_logodds needs gender_head: true")
        return frozen[:, self.speaker_dim : self.speaker_dim + 1].float()

    def forward(self, waveforms: torch.Tensor, lengths: torch.Tensor,
                frozen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        if waveforms.ndim != 2 or lengths.shape != waveforms.shape[:1]:
            from clsp.errors import InputError

            raise InputError(f"speaker_fusion: expected waveforms (batch, samples), got {tuple(waveforms.shape)}")
        if frozen is None:
            frozen = self.frozen_features(waveforms, lengths)
        frozen = frozen.to(waveforms.device, torch.float32)
        out = []
        if self.speaker_norm is not None:
            dvec = self.speaker_norm(frozen[:, self._proj_cols] if len(self._proj_cols) < self.speaker_dim
                                     else frozen[:, : self.speaker_dim])
            out.append(self.speaker_proj(dvec) if self.speaker_proj is not None else dvec)
        rest = frozen[:, self.speaker_dim :]
        if self.gender_proj is not None:
            out.append(self.gender_proj(rest[:, :1]))
            rest = rest[:, 1:]
        if self.stats_proj is not None:
            out.append(self.stats_proj(rest))
        if self.compact is not None:
            feats, lens = self._fbank(waveforms, lengths)
            x, xl = self.compact(feats, lens)
            mask = (torch.arange(x.shape[1], device=x.device)[None] < xl[:, None]).to(x.dtype)
            out.append((x * mask[..., None]).sum(1) / xl.clamp(min=1)[:, None].to(x.dtype))
        vec = torch.cat([o.float() for o in out], dim=-1)
        return vec.unsqueeze(1), torch.ones(vec.shape[0], dtype=torch.long, device=vec.device)
