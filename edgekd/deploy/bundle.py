"""The bundle: what `edgekd deploy` copies to a device and the agent runs. A folder holding

    bundle.json            schema, the model to run, agent settings, and the sha256 of every other file
    models/<file>          the model(s), each with its manifest `<file>.json` (`edgekd export` writes them)
    edgekd-agent.service   the systemd unit

Its id is a hash of bundle.json, so a device can keep several side by side and swap between them atomically. The
broker URL and password are NOT in it: they go to the device's own 0600 environment file. Torch-free.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

from edgekd.errors import EdgeKDError
from edgekd.runtime.manifest import ManifestError, manifest_path, read_manifest, sha256_file

BUNDLE_VERSION = "edgekd-bundle/1"
UNIT_FILE = "edgekd-agent.service"


class BundleError(EdgeKDError):
    """A bundle that is incomplete, or whose files do not match their recorded sha256."""


def build_bundle(models: list[str | Path], out: str | Path, agent: dict) -> Path:
    """Copy the models (first one is run) and their manifests into `out`, checking each against its manifest."""
    if not models:
        raise BundleError("no model given")
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "models").mkdir(parents=True)
    for model in map(Path, models):
        if not model.is_file():
            raise BundleError(f"{model}: no such model file")
        read_manifest(model)  # refuses a file that is not the one its manifest describes
        shutil.copy2(model, out / "models" / model.name)
        shutil.copy2(manifest_path(model), out / "models" / manifest_path(model).name)
    unit = resources.files("device_agents.rpi").joinpath(UNIT_FILE).read_text()
    (out / UNIT_FILE).write_text(unit)
    files = {str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*")) if p.is_file()}
    described = {"schema": BUNDLE_VERSION, "model": Path(models[0]).name, "agent": agent, "files": files}
    (out / "bundle.json").write_text(json.dumps(described, indent=2))
    return out


def bundle_id(folder: str | Path) -> str:
    return hashlib.sha256((Path(folder) / "bundle.json").read_bytes()).hexdigest()[:16]


def read_bundle(folder: str | Path) -> dict:
    path = Path(folder) / "bundle.json"
    try:
        described = json.loads(path.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path}: not a bundle (no bundle.json)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise BundleError(f"{path}: not valid JSON ({error})") from None
    if not isinstance(described, dict) or described.get("schema") != BUNDLE_VERSION:
        raise BundleError(f"{path}: field schema: expected {BUNDLE_VERSION}")
    for field in ("model", "files"):
        if field not in described:
            raise BundleError(f"{path}: field {field} is missing")
    return described


def verify_bundle(folder: str | Path) -> dict:
    """The bundle's description if every file is present and has its recorded sha256 and every model matches its
    manifest; BundleError naming the first file that does not."""
    folder = Path(folder)
    described = read_bundle(folder)
    for name, expected in described["files"].items():
        path = folder / name
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle")
        if sha256_file(path) != expected:
            raise BundleError(f"{path}: sha256 mismatch with bundle.json: corrupt or changed; refusing the bundle")
    for model in model_files(folder, described):
        try:
            read_manifest(model)
        except ManifestError as error:
            raise BundleError(f"{error}; refusing the bundle") from None
    if not (folder / "models" / described["model"]).is_file():
        raise BundleError(f"{folder}: field model: {described['model']} is not in models/")
    return described


def model_files(folder: str | Path, described: dict) -> list[Path]:
    names = [n for n in described["files"] if n.startswith("models/") and not n.endswith(".json")]
    return [Path(folder) / n for n in names]
