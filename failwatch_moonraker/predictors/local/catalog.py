"""Models failwatch knows how to fetch: where they are published, their checksum, their licence.

Only the address and checksum live here; the weights themselves are downloaded
onto the user's host from their publisher and never ship with failwatch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["MIRROR_ENV", "MODELS", "MODELS_DIR", "OBICO", "ModelEntry", "default_model_path",
           "source_url"]

MODELS_DIR = "~/printer_data/failwatch/models"
#: A mirror holding the published files under their own names (a host that cannot reach
#: the publisher, or the tests' local server); the sha256 and size floor still apply.
MIRROR_ENV = "FAILWATCH_MODEL_MIRROR"


@dataclass(frozen=True)
class ModelEntry:
    name: str
    url: str
    sha256: str
    min_size: int  # bytes; anything smaller is an error page, a pointer or a cut transfer
    filename: str
    notice: str  # what the user is told about whose model it is


OBICO = ModelEntry(
    name="obico",
    url="https://tsd-pub-static.s3.amazonaws.com/ml-models/model-weights-5a6b1be1fa.onnx",
    sha256="0a6ebd8e30dbf6a450c50f9c0a5406f04ba7eb1c99fd5996e888c78bb383b9aa",
    min_size=50_000_000,
    filename="obico-model-weights-5a6b1be1fa.onnx",
    notice="Obico's failure-detection model (YOLOv2, ~202 MB; AGPL-3.0 per Obico), "
           "downloaded from Obico's published URL; it is not part of failwatch",
)

MODELS: dict[str, ModelEntry] = {OBICO.name: OBICO}


def default_model_path(entry: ModelEntry = OBICO) -> Path:
    """Where ``model fetch`` puts a catalogue model, and where ``backend: onnx`` looks."""
    return Path(MODELS_DIR).expanduser() / entry.filename


def source_url(entry: ModelEntry) -> str:
    """The publisher's URL, or the same file name on ``$FAILWATCH_MODEL_MIRROR``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip().rstrip("/")
    if not mirror:
        return entry.url
    return f"{mirror}/{entry.url.rsplit('/', 1)[-1]}"
