"""The embedded demo corpus: Vietnamese emotional speech synthesised offline, deterministically.

Sentences come from a small grammar written for this project, in four emotions (neutral,
happy, angry, sad; the config maps them to the task's classes as ViSEC's are mapped). Each
utterance is spoken by one of several espeak-ng voices with emotion-dependent prosody
(rate, pitch, pitch range, loudness) plus per-utterance jitter. A negative utterance shows
its emotion in its words and voice, in its words only (spoken calmly) or in its voice only
(plain words), in the shares of ``negative_cues``: each modality alone misses the negatives
that only the other one shows, and fusion can see both, which is the paper's case for it.
A separate text corpus (sentences not spoken in the speech corpus, labelled by the emotion
their words express, as text corpora are) trains the text encoder, and a separate ASR corpus
(other voices, other sentences) trains the demo's Whisper, as the paper's ASR corpora do.
"""

import logging
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import soundfile as sf

from workflow_scripts.common.files import atomic_path
from workflow_scripts.common.rule import run_rule
from workflow_scripts.data.espeak import EspeakSynthesizer, Prosody

log = logging.getLogger(__name__)

EMOTIONS = ("neutral", "happy", "angry", "sad")
# Where a negative utterance shows its emotion (keys of demo.negative_cues).
CUES = ("words_and_voice", "words_only", "voice_only")

SUBJECTS = ["tôi", "chúng tôi", "anh ấy", "chị ấy", "mẹ tôi", "bố tôi", "bạn tôi", "em gái tôi", "ông ấy", "cô giáo"]
TIMES = ["vào buổi sáng", "mỗi ngày", "hôm nay", "chiều nay", "vào cuối tuần", "tối hôm qua", "sáng mai"]
ACTIVITIES = [
    "đi chợ mua rau",
    "đọc sách ở thư viện",
    "nấu cơm cho cả nhà",
    "làm việc ở văn phòng",
    "đi xe buýt đến trường",
    "gọi điện cho khách hàng",
    "học tiếng anh",
    "dọn dẹp nhà cửa",
    "xem tin tức trên ti vi",
    "tưới cây ngoài vườn",
    "viết báo cáo cho công ty",
    "đi bộ trong công viên",
]
GOOD_EVENTS = [
    "được nghỉ phép",
    "nhận được quà",
    "thi đỗ đại học",
    "gặp lại bạn cũ",
    "được tăng lương",
    "đội nhà thắng trận",
    "có thêm em bé",
    "được khen trước lớp",
]
BAD_EVENTS = [
    "bị lừa tiền",
    "xe bị mất cắp",
    "người ta nói dối",
    "hàng giao trễ ba ngày",
    "bị mắng vô cớ",
    "hàng xóm ồn ào suốt đêm",
    "bị cắt điện cả ngày",
    "nhân viên phục vụ quá tệ",
]
ANNOYANCES = [
    "cái tiếng ồn này",
    "thái độ của anh ta",
    "sự chậm trễ này",
    "cách làm việc cẩu thả đó",
    "những lời hứa suông",
    "cái mạng chậm như rùa",
]
SAD_EVENTS = [
    "con mèo bị ốm",
    "trượt kỳ thi",
    "phải xa gia đình",
    "mất việc",
    "người bạn thân chuyển đi",
    "trời mưa mãi không dứt",
    "ông bà đã mất",
    "không ai nhớ sinh nhật",
]
FEELINGS_SAD = ["cô đơn và mệt mỏi", "chán nản và trống rỗng", "buồn và mệt mỏi"]


# The words that fill a sentence form's {slots} ({subject} is drawn first, from SUBJECTS).
WORDS = {
    "time": TIMES,
    "activity": ACTIVITIES,
    "good_event": GOOD_EVENTS,
    "bad_event": BAD_EVENTS,
    "annoyance": ANNOYANCES,
    "sad_event": SAD_EVENTS,
    "sad_feeling": FEELINGS_SAD,
}
# Two sentence forms per emotion; their slots are drawn from WORDS left to right.
FORMS = {
    "neutral": ("{subject} {activity} {time}.", "{time} {subject} sẽ {activity}."),
    "happy": ("{subject} rất vui vì {good_event}.", "thật tuyệt vời, {subject} {good_event} rồi!"),
    "angry": ("{subject} rất tức giận vì {bad_event}.", "{subject} không chịu nổi {annoyance} nữa!"),
    "sad": ("{subject} buồn lắm vì {sad_event}.", "{subject} cảm thấy {sad_feeling} {time}."),
}


def _pick(rng: np.random.Generator, options: Sequence[str]) -> str:
    return options[int(rng.integers(len(options)))]


def sentence_for(emotion: str, rng: np.random.Generator) -> str:
    """One sentence whose wording expresses ``emotion`` ("neutral" gives plain statements).

    Draws the subject, then the form, then the form's slots from left to right.
    """
    if emotion not in FORMS:
        raise ValueError(f"unknown demo emotion {emotion!r}; expected one of {EMOTIONS}")
    subject = _pick(rng, SUBJECTS)
    form = FORMS[emotion][int(rng.integers(len(FORMS[emotion])))]
    slots = [name for _, name, _, _ in string.Formatter().parse(form) if name and name != "subject"]
    return form.format(subject=subject, **{name: _pick(rng, WORDS[name]) for name in slots})


@dataclass(frozen=True)
class EmotionProsody:
    """Prosody of an emotion relative to the voice's own baseline."""

    pitch_shift: int
    rate_shift: int
    pitch_range: int
    volume: int


PROSODY = {
    "neutral": EmotionProsody(pitch_shift=0, rate_shift=0, pitch_range=40, volume=100),
    "happy": EmotionProsody(pitch_shift=8, rate_shift=15, pitch_range=70, volume=115),
    "angry": EmotionProsody(pitch_shift=14, rate_shift=30, pitch_range=85, volume=150),
    "sad": EmotionProsody(pitch_shift=-12, rate_shift=-40, pitch_range=15, volume=70),
}


def _negative_like(emotion: str) -> bool:
    return emotion in ("angry", "sad")


def plan_utterances(
    config: Mapping[str, Any], prefix: str = "demo", exclude: frozenset[str] = frozenset()
) -> pd.DataFrame:
    """Draw every utterance's emotion, voice, wording and prosody from the seed (no audio yet).

    Utterance ids are ``<prefix>_spk<voice index>_<n>``; sentences in ``exclude`` are not used.
    """
    rng = np.random.default_rng(int(config["seed"]))
    voices = list(config["voices"])
    weights = np.array([config["emotion_weights"][e] for e in EMOTIONS], dtype=float)
    weights /= weights.sum()
    cue_shares = np.array([config["negative_cues"][c] for c in CUES], dtype=float)
    if cue_shares.sum() <= 0:
        raise ValueError(
            f"demo.negative_cues: expected shares of {CUES} with a positive sum, got {config['negative_cues']}"
        )
    cue_shares /= cue_shares.sum()
    # Each voice has its own baseline, as speakers do.
    base_pitch = {v: int(rng.integers(35, 66)) for v in voices}
    base_rate = {v: int(rng.integers(150, 176)) for v in voices}
    rows = []
    seen: set[str] = set(exclude)
    per_voice = int(config["utterances_per_voice"])
    for voice_index, voice in enumerate(voices):
        for n in range(per_voice):
            emotion = EMOTIONS[int(rng.choice(len(EMOTIONS), p=weights))]
            cue = "words_and_voice"
            if _negative_like(emotion):
                cue = CUES[int(rng.choice(len(CUES), p=cue_shares))]
            wording = "neutral" if cue == "voice_only" else emotion
            spoken_as = "neutral" if cue == "words_only" else emotion
            for _ in range(50):  # prefer sentences not used yet (never an excluded one)
                text = sentence_for(wording, rng)
                if text not in seen:
                    break
            while text in exclude:
                text = sentence_for(wording, rng)
            seen.add(text)
            style = PROSODY[spoken_as]
            jitter = config["jitter"]
            rows.append(
                {
                    "utt_id": f"{prefix}_spk{voice_index}_{n:04d}",
                    "speaker": f"{prefix}_spk{voice_index}" if prefix != "demo" else f"spk{voice_index}",
                    "voice": voice,
                    "emotion": emotion,
                    "cue": cue,
                    "text": text,
                    "rate": int(np.clip(base_rate[voice] + style.rate_shift + rng.normal(0, jitter["rate"]), 80, 400)),
                    "pitch": int(
                        np.clip(base_pitch[voice] + style.pitch_shift + rng.normal(0, jitter["pitch"]), 0, 99)
                    ),
                    "pitch_range": int(np.clip(style.pitch_range + rng.normal(0, jitter["pitch_range"]), 0, 99)),
                    "volume": int(np.clip(style.volume + rng.normal(0, jitter["volume"]), 20, 200)),
                    "lead_s": float(rng.uniform(0.05, 0.3)),
                    "tail_s": float(rng.uniform(0.05, 0.3)),
                    "noise_seed": int(rng.integers(2**31)),
                }
            )
    return pd.DataFrame(rows)


def render(
    samples: np.ndarray, sample_rate: int, lead_s: float, tail_s: float, noise_seed: int, noise_level: float
) -> np.ndarray:
    """Pad with silence and add seeded background noise; float32 in [-1, 1]."""
    audio = samples.astype(np.float32) / 32768.0
    audio = np.concatenate(
        [np.zeros(int(lead_s * sample_rate), np.float32), audio, np.zeros(int(tail_s * sample_rate), np.float32)]
    )
    noise = np.random.default_rng(noise_seed).normal(0.0, noise_level, size=audio.shape).astype(np.float32)
    return np.clip(audio + noise, -1.0, 1.0)


def text_corpus(config: Mapping[str, Any], exclude: set[str]) -> pd.DataFrame:
    """Labelled sentences for the text encoder, none of them spoken in the speech corpus."""
    rng = np.random.default_rng(int(config["seed"]) + 1)
    weights = np.array([config["emotion_weights"][e] for e in EMOTIONS], dtype=float)
    weights /= weights.sum()
    rows = []
    while len(rows) < int(config["text_sentences"]):
        emotion = EMOTIONS[int(rng.choice(len(EMOTIONS), p=weights))]
        text = sentence_for(emotion, rng)
        if text not in exclude:
            rows.append({"text": text, "emotion": emotion})
    return pd.DataFrame(rows)


def asr_corpus_plan(config: Mapping[str, Any], spoken: set[str]) -> pd.DataFrame:
    """The ASR training corpus: other voices, other sentences (none of ``spoken``), all in split train.

    It plays the part of the paper's PhoAudiobook / 28k-vn: Whisper never hears a speaker or a
    sentence of the emotion corpus, so the emotion corpus's training transcripts carry ASR
    errors like its test transcripts do.
    """
    block = config["asr_corpus"]
    plan = plan_utterances(
        {
            **config,
            "voices": block["voices"],
            "utterances_per_voice": block["utterances_per_voice"],
            "seed": int(config["seed"]) + 2,
        },
        prefix="demoasr",
        exclude=frozenset(spoken),
    )
    plan["split"] = "train"
    return plan


def render_plan(plan: pd.DataFrame, synthesizer: EspeakSynthesizer, wav_dir: Path, noise_level: float) -> None:
    """Synthesise every planned utterance into ``wav_dir/<utt_id>.wav`` (written atomically as a whole)."""
    with atomic_path(wav_dir, is_dir=True) as tmp_dir:
        for row in plan.itertuples():
            samples = synthesizer.synthesize(
                row.text,
                row.voice,
                Prosody(rate=row.rate, pitch=row.pitch, pitch_range=row.pitch_range, volume=row.volume),
                seed=row.noise_seed,
            )
            audio = render(samples, synthesizer.sample_rate, row.lead_s, row.tail_s, row.noise_seed, noise_level)
            sf.write(tmp_dir / f"{row.utt_id}.wav", audio, synthesizer.sample_rate, subtype="PCM_16")
    plan["audio_path"] = [f"{wav_dir.name}/{u}.wav" for u in plan["utt_id"]]


def synthesize_corpus(
    config: Mapping[str, Any], speech_table: Path, wav_dir: Path, text_table: Path, asr_table: Path, asr_wav_dir: Path
) -> pd.DataFrame:
    """Write the speech corpus (wav files + table), the text corpus table and the ASR corpus (wav files + table)."""
    plan = plan_utterances(config)
    synthesizer = EspeakSynthesizer()
    render_plan(plan, synthesizer, wav_dir, float(config["noise_level"]))
    columns = [
        "utt_id",
        "audio_path",
        "speaker",
        "text",
        "emotion",
        "cue",
        "voice",
        "rate",
        "pitch",
        "pitch_range",
        "volume",
    ]
    with atomic_path(speech_table) as tmp:
        plan.loc[:, columns].to_csv(tmp, sep="\t", index=False, quoting=3)
    texts = text_corpus(config, set(plan["text"]))
    with atomic_path(text_table) as tmp:
        texts.to_csv(tmp, sep="\t", index=False, quoting=3)
    asr_plan = asr_corpus_plan(config, set(plan["text"]))
    render_plan(asr_plan, synthesizer, asr_wav_dir, float(config["noise_level"]))
    with atomic_path(asr_table) as tmp:
        asr_plan.loc[:, [*columns, "split"]].to_csv(tmp, sep="\t", index=False, quoting=3)
    log.info("ASR corpus: %d utterances, %d voices", len(asr_plan), asr_plan["voice"].nunique())
    return plan


def main(job: Any) -> None:
    """Entry point of the synthesize_demo_corpus rule (``job``: the rule's ``snakemake`` object)."""
    out = job.output
    plan = synthesize_corpus(
        job.params.demo,
        Path(out.speech_table),
        Path(out.wav_dir),
        Path(out.text_table),
        Path(out.asr_table),
        Path(out.asr_wav_dir),
    )
    log.info(
        "synthesised %d utterances, %d distinct sentences, emotions %s",
        len(plan),
        plan["text"].nunique(),
        plan["emotion"].value_counts().to_dict(),
    )


if __name__ == "__main__":
    run_rule(main)
