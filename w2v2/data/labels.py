"""The six emotion classes shared by every dataset layout (CREMA-D's set and label order)."""

from __future__ import annotations

EMOTIONS: tuple[str, ...] = ("angry", "fear", "sad", "disgust", "neutral", "happy")
CREMA_CODES: dict[str, int] = {"ANG": 0, "FEA": 1, "SAD": 2, "DIS": 3, "NEU": 4, "HAP": 5}
