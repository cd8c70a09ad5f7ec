"""Each kind's weight in the ensemble's vote, fitted on the validation clips its members never trained on.

The kinds do not travel alike: on a corpus of a few speakers in another language (SAVEE) the networks were
near chance and the descriptors heads far above them, and with equal weights the networks' confident
errors outvoted them (docs/recipe.md). So the recipe weighs its kinds by how their mixture predicted the
validation clips (stacking, Wolpert 1992): the members of one seed (or fold) validate on the same unseen
speakers, and one weight per kind (a grid of 0.1 steps on the simplex) is chosen to minimise the
negative log-likelihood of those clips, pooled over the seeds. A handful of numbers fitted on hundreds of
clips; a kind that does not help gets 0.

- ENSEMBLE_FILE (`ensemble.json`) in the run folder holds `kind_weights` (what `predict`, `evaluate`,
  `submit`, the test predictions and the API use, `w2v2.emotion.members.member_weights`) and
  `validation_weights`: for the ensemble's own validation estimate, each seed's clips are scored with the
  weights fitted on the other seeds' clips, so the estimate is not fitted on itself (with one seed, the
  weights fitted on its own clips: said in the file);
- with a single kind there is nothing to weigh: no file, every member the same.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd

from finetune.outputs import PROB_COLUMNS, write_json
from w2v2.emotion.members import ENSEMBLE_FILE, member_kind

STEP = 0.1  # the grid of weights


def unit_of(name: str) -> str:
    """The seed or fold a member belongs to (member_2_probe -> member_2)."""
    return "_".join(name.split("_")[:2])


def mixture_nll(weights: dict[str, float], units: dict[str, dict[str, pd.DataFrame]]) -> float:
    """Mean negative log-likelihood of every unit's clips under its kinds' weighted mixture."""
    total, n = 0.0, 0
    for kinds in units.values():
        first = next(iter(kinds.values()))
        p = sum(weights[k] * df[PROB_COLUMNS].to_numpy() for k, df in kinds.items())
        y = first["label"].to_numpy()
        total -= float(np.log(np.clip(p[np.arange(len(y)), y], 1e-8, None)).sum())
        n += len(y)
    return total / max(n, 1)


def fit(units: dict[str, dict[str, pd.DataFrame]], kinds: list[str]) -> dict[str, float]:
    """The kind weights (summing to 1, on the STEP grid) with the least validation NLL; ties go to the first
    found, the grid starting from the kinds in `kinds`' order."""
    steps = round(1 / STEP)
    best, chosen = np.inf, {k: 1 / len(kinds) for k in kinds}
    for cut in itertools.product(range(steps + 1), repeat=len(kinds) - 1):
        if sum(cut) > steps:
            continue
        weights = dict(zip(kinds, [c / steps for c in cut] + [(steps - sum(cut)) / steps], strict=True))
        loss = mixture_nll(weights, units)
        if loss < best - 1e-12:
            best, chosen = loss, weights
    return chosen


def validation_units(run: Path, names: list[str], kinds: dict[str, str]) -> dict[str, dict[str, pd.DataFrame]]:
    """Each unit's members' val_probs.csv by kind; a unit whose members validate on different clips is left out."""
    units: dict[str, dict[str, pd.DataFrame]] = {}
    for name in names:
        units.setdefault(unit_of(name), {})[kinds[name]] = pd.read_csv(run / name / "val_probs.csv")
    return {u: frames for u, frames in units.items()
            if all(df["id"].tolist() == next(iter(frames.values()))["id"].tolist() for df in frames.values())}


def fit_ensemble(run: Path, members: list[dict]) -> dict | None:
    """Fit the kind weights of a run's members (rows of metrics.json: name, kind) on their validation clips and
    write ENSEMBLE_FILE; None (nothing written) where the run has one kind."""
    kinds = {m["name"]: m["kind"] for m in members}
    order = list(dict.fromkeys(kinds.values()))
    if len(order) < 2:
        return None
    units = validation_units(run, list(kinds), kinds)
    units = {u: frames for u, frames in units.items() if set(frames) == set(order)}  # every kind validated
    if not units:
        return None
    weights = fit(units, order)
    own = {u: fit({v: f for v, f in units.items() if v != u}, order) if len(units) > 1 else weights for u in units}
    clips = sum(len(next(iter(f.values()))) for f in units.values())
    content = {"kind_weights": weights, "validation_weights": own, "clips": clips,
               "fitted_on": f"the validation clips of {len(units)} seed(s)/fold(s), {clips} clips",
               "validation_nll": mixture_nll(weights, units),
               "validation_nll_equal": mixture_nll(dict.fromkeys(order, 1 / len(order)), units),
               "validation_estimate": "each seed scored with the weights fitted on the other seeds" if len(units) > 1
               else "one seed: its weights were fitted on these clips (the estimate is optimistic)"}
    write_json(run / ENSEMBLE_FILE, content)
    return content


def unit_weights(run: Path, names: list[str]) -> list[float]:
    """The weights of one seed's (or fold's) members in its validation estimate: the weights fitted without
    its clips (ENSEMBLE_FILE's `validation_weights`), 1 each where the run has none."""
    file = run / ENSEMBLE_FILE
    if not names or not file.is_file():
        return [1.0] * len(names)
    own = json.loads(file.read_text()).get("validation_weights", {}).get(unit_of(names[0]))
    return [1.0] * len(names) if own is None else [float(own.get(member_kind(Path(n)), 0.0)) for n in names]
