"""One cache keyed by what produced it: a finished pipeline stage, experiment arm or study cell is reused only when
the fingerprint of its resolved config (and inputs) matches the one stamped on its result; otherwise it re-runs.
A `--resume` whose config differs from the run's recorded one is an error that names the differing keys."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path

import yaml

from synthlabel.checkpoint import atomic_write_text
from synthlabel.errors import ConfigError

STAMP = "fingerprint.json"


def fingerprint(*parts) -> str:
    """Short hash of JSON-able settings (dict key order does not matter; 48 bits tell any two configs of one
    project apart)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def config_diff(old: Mapping, new: Mapping, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two nested config dicts (added and removed keys included)."""
    keys = []
    for key in sorted(set(old) | set(new), key=str):
        a, b, name = old.get(key), new.get(key), f"{prefix}{key}"
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            keys += config_diff(a, b, prefix=f"{name}.")
        elif key not in old or key not in new or a != b:
            keys.append(name)
    return keys


def describe_diff(old: Mapping, new: Mapping, keys: list[str], limit: int = 6) -> str:
    """'train.steps: 40 -> 80, model.width: 8 -> 16' for the first `limit` keys."""

    def value(d: Mapping, dotted: str):
        for part in dotted.split("."):
            d = d.get(part, "<absent>") if isinstance(d, Mapping) else "<absent>"
        return d

    shown = [f"{k}: {value(old, k)!r} -> {value(new, k)!r}" for k in keys[:limit]]
    return ", ".join(shown) + (f" (+{len(keys) - limit} more)" if len(keys) > limit else "")


def check_resume(run_dir: str | Path, config: Mapping, normalize: Callable[[dict], dict] | None = None) -> None:
    """Raise ConfigError naming the keys when `run_dir/config.yaml` records a config other than `config`
    (nothing is written: the run directory keeps describing the model it holds). `normalize` reads the recorded
    config through the schema first, so a run recorded before a field existed matches at that field's default."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        return
    recorded = yaml.safe_load(path.read_text()) or {}
    if normalize is not None:
        try:
            recorded = normalize(recorded)
        except ConfigError:
            pass  # not valid under today's schema: compared as written, so the keys that differ are named
    keys = config_diff(recorded, json.loads(json.dumps(dict(config), default=str)))
    if keys:
        raise ConfigError(
            f"{run_dir}: --resume with a config that differs from the run's config.yaml in "
            f"{describe_diff(recorded, config, keys)}; resume with the recorded config, or start a new run "
            "in another --out"
        )


def read_stamp(directory: str | Path) -> str | None:
    path = Path(directory) / STAMP
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (json.JSONDecodeError, AttributeError):
        return None


def stamp(directory: str | Path, key: str, what: str = "") -> None:
    """Record that `directory` was produced by settings with fingerprint `key` (written first, atomically)."""
    atomic_write_text(Path(directory) / STAMP, json.dumps({"fingerprint": key, "what": what}, indent=1))


def claim(directory: str | Path, key: str, what: str = "") -> bool:
    """Prepare `directory` for work with fingerprint `key`. Returns True when it already holds work of that key
    (finished or resumable); otherwise removes stale contents (another key, or unstamped leftovers), stamps it and
    returns False, so the caller starts afresh."""
    directory = Path(directory)
    found = read_stamp(directory)
    if found == key:
        return True
    if directory.exists() and any(directory.iterdir()):
        shutil.rmtree(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stamp(directory, key, what)
    return False


def read_record(path: str | Path, key: str) -> dict | None:
    """A cached JSON result whose "fingerprint" equals `key`, else None (missing, stale or unreadable)."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and record.get("fingerprint") == key else None


def write_record(path: str | Path, key: str, record: Mapping) -> dict:
    """Write a JSON result stamped with `key` (atomically); returns what was written."""
    out = {"fingerprint": key, **{k: v for k, v in record.items() if k != "fingerprint"}}
    atomic_write_text(Path(path), json.dumps(out, indent=1))
    return out


class Ledger:
    """The fingerprints of a chain's stages, in one JSON file (`<out>/stages.json`): a stage is skipped when it
    finished under the same key and its outputs exist; under another key its outputs are removed and it re-runs;
    under the same key but unfinished it resumes. Keys include the keys of the stages a stage reads from, so a
    change flows downstream and nowhere else."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        try:
            self.entries: dict[str, dict] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except json.JSONDecodeError:
            self.entries = {}  # a torn ledger costs a re-run, never a wrong reuse

    def done(self, name: str, key: str, *outputs: Path) -> bool:
        entry = self.entries.get(name) or {}
        return entry.get("key") == key and bool(entry.get("done")) and all(Path(p).exists() for p in outputs)

    def begin(self, name: str, key: str, *outputs: Path) -> bool:
        """Mark `name` as started under `key`; True when an unfinished run of the same key may be resumed, else
        its outputs (of another key, or of unknown origin) are removed first."""
        if (self.entries.get(name) or {}).get("key") == key:
            return True
        for path in map(Path, outputs):
            if path.is_dir():
                shutil.rmtree(path)
            else:
                path.unlink(missing_ok=True)
        self._record(name, key, done=False)
        return False

    def finish(self, name: str, key: str) -> None:
        self._record(name, key, done=True)

    def _record(self, name: str, key: str, done: bool) -> None:
        self.entries[name] = {"key": key, "done": done}
        atomic_write_text(self.path, json.dumps(self.entries, indent=1))


def dataset_identity(path: str | Path, keep: str | Path | None = None, trust: bool = False) -> str | None:
    """Fingerprint of what a synthesized dataset holds (its manifest, which names every sample's generator hash,
    map hash and seed), of the keep list that filters it and, when `trust`, of its trust maps (trust/trust.json's
    key: the segmenters, tolerance and files they were written with); None for a dataset without a manifest."""
    manifest = Path(path) / "manifest.jsonl"
    if not manifest.is_file():
        return None
    kept = Path(keep).read_text() if keep is not None and Path(keep).is_file() else None
    summary = Path(path) / "trust" / "trust.json"
    trusted = json.loads(summary.read_text()).get("key") if trust and summary.is_file() else None
    return (
        fingerprint(manifest.read_text(), kept) if trusted is None else fingerprint(manifest.read_text(), kept, trusted)
    )
