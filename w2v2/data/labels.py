"""The six emotion classes shared by every dataset layout (CREMA-D's set and label order)."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "fear", "sad", "disgust", "neutral", "happy")
CREMA_CODES: dict[str, int] = {"ANG": 0, "FEA": 1, "SAD": 2, "DIS": 3, "NEU": 4, "HAP": 5}
# other names datasets give the six emotions (emotion-recognition corpora and their CSVs): read as ours
SYNONYMS: dict[str, int] = {"anger": 0, "fearful": 1, "afraid": 1, "scared": 1, "sadness": 2, "disgusted": 3,
                            "happiness": 5, "joy": 5}
