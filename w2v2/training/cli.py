"""What both command lines (`python -m pretrain`, `python -m finetune`) share: a run config built from
the dataclass defaults, a YAML file and `key=value` overrides, and the model a run builds.

The model library (`w2v2.config`) holds the dataclasses and their type- and range-checked merge; the
YAML files and argparse live here, on the application side."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import yaml

from w2v2.config import ARCHITECTURE, ModelConfig, from_dict, merge, parse_overrides, preset, to_dict

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

T = TypeVar("T", bound="DataclassInstance")


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str]) -> argparse.Namespace:
    """parser.parse_args, with `key=value` overrides (the positional `overrides`) allowed on both sides of
    options, which plain parse_args refuses; anything else unrecognised is a usage error."""
    args, rest = parser.parse_known_args(argv)
    bad = [a for a in rest if a.startswith("-") or "=" not in a]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides += rest
    return args


def deep_merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """`a` with `b` on top, nested dicts merged key by key."""
    out = dict(a)
    for k, v in b.items():
        out[k] = deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def resolve(cls: type[T], config_path: str | None, overrides: list[str],
            informational: tuple[str, ...] = ()) -> tuple[T, dict[str, Any]]:
    """A run config, the one way both CLIs build theirs: `cls`'s defaults, then the YAML file, then
    `key=value` overrides, merged key by key (a dict field such as `model` too: `model.context.dropout=0.2`
    changes that one entry); type- and range-checked. Also returns what the file and overrides set.
    informational: top-level keys a run writes into its own config.yaml for the reader (not settings),
    skipped when that file is given back as --config."""
    from_file = load_yaml(config_path) if config_path else {}
    from_file = {k: v for k, v in from_file.items() if k not in informational}
    given = deep_merge(from_file, parse_overrides(overrides))
    return from_dict(cls, deep_merge(to_dict(cls()), given)), given


def resolve_model(preset_name: str | None, init: str, init_cfg: ModelConfig | None,
                  overrides: dict[str, Any]) -> ModelConfig:
    """The model a run builds: the init's config (its weights decide the architecture) or the preset's,
    with `model.*` overrides on top. A preset naming another architecture than the init's is reported
    and not used."""
    if init_cfg is not None and preset_name and preset(preset_name).architecture() != init_cfg.architecture():
        print(f"note: preset={preset_name} is not the architecture of init={init}; the init's weights decide it "
              "(change fields with model.KEY=VALUE)")
    cfg = merge(init_cfg if init_cfg is not None else preset(preset_name or "tiny"), overrides, prefix="model.")
    changed = [f"model.{k}={cfg.get(k)!r} (its {init_cfg.get(k)!r})" for k in ARCHITECTURE
               if init_cfg is not None and cfg.get(k) != init_cfg.get(k)]
    if changed:  # its weights would not fit: a size-mismatch traceback deep in loading
        raise ValueError(f"init={init}: {', '.join(changed)} would change the shape of its weights; with an init, "
                         f"these fields cannot change: {', '.join(f'model.{k}' for k in ARCHITECTURE)} (dropout, "
                         "masking and the head can); use init=scratch for another architecture")
    return cfg


def load_yaml(path: str | Path) -> dict[str, Any]:
    with open(path) as f:
        try:
            data = yaml.safe_load(f) or {}
        except yaml.YAMLError as e:
            mark = getattr(e, "problem_mark", None)
            where = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
            raise ValueError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data
