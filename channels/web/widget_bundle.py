"""The rasa-webchat widget the gateway serves: fetched once at setup, checked every time.

``widget.pin`` (beside this module) names the npm package, its version, the registry's integrity
string for the tarball and the sha384 of the one file kept, the widget's UMD bundle. The setup
(``python -m channels.web.widget_bundle fetch``, run by scripts/setup.sh) gets the tarball with
``npm pack`` (the npm registry, through npm as configured on the machine), refuses it unless its
sha512 is the pinned integrity, and extracts that one file into ``.run/webchat/`` (git-ignored).
The gateway reads the file once, refuses it unless its sha384 is pinned, and serves those bytes
from memory: a file changed on disk later is never served. No CDN is involved at any point.
"""
from __future__ import annotations

import base64
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional

from bot.config import ROOT

PIN_FILE = Path(__file__).resolve().parent / "widget.pin"
BUNDLE_DIR = ROOT / ".run" / "webchat"


class WidgetError(RuntimeError):
    """The widget is missing, or is not the pinned one."""


@dataclass(frozen=True)
class WidgetPin:
    package: str
    version: str
    integrity: str  # of the npm tarball: "sha512-<base64>"
    file: str  # the member of the tarball that is kept
    file_sha384: str  # of that member: "sha384-<base64>", also the page's Subresource Integrity

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def served_name(self) -> str:
        """The file name under /chat/static/ (versioned, so a browser never mixes two widgets)."""
        return f"{self.package}-{self.version}.js"

    @property
    def path(self) -> Path:
        return BUNDLE_DIR / self.served_name


def read_pin(path: Path = PIN_FILE) -> WidgetPin:
    values: Dict[str, str] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    try:
        return WidgetPin(values["package"], values["version"], values["integrity"], values["file"],
                         values["file_sha384"])
    except KeyError as missing:
        raise WidgetError(f"{path} does not name {missing}") from None


def sri(data: bytes, algorithm: str) -> str:
    """``<algorithm>-<base64 digest>``: npm's integrity strings and Subresource Integrity alike."""
    return f"{algorithm}-{base64.b64encode(hashlib.new(algorithm, data).digest()).decode('ascii')}"


def verified_bundle(pin: WidgetPin, path: Optional[Path] = None) -> bytes:
    """The bundle's bytes, if it is there and is the pinned file; else :class:`WidgetError`."""
    path = path or pin.path
    try:
        data = path.read_bytes()
    except OSError:
        raise WidgetError(f"the web chat widget is not installed at {path}: run scripts/setup.sh") from None
    if sri(data, "sha384") != pin.file_sha384:
        raise WidgetError(f"{path} is not the pinned {pin.spec} bundle (its hash differs): refusing it")
    return data


def _npm_pack(pin: WidgetPin, into: Path, npm: str) -> Path:
    run = subprocess.run([npm, "pack", pin.spec, "--ignore-scripts", "--pack-destination", str(into)],
                         capture_output=True, text=True, timeout=300, check=False)
    if run.returncode != 0:
        raise WidgetError(f"npm pack {pin.spec} failed: {run.stderr.strip()[-500:]}")
    tarballs: List[Path] = sorted(into.glob("*.tgz"))
    if len(tarballs) != 1:
        raise WidgetError(f"npm pack {pin.spec} did not leave one tarball")
    return tarballs[0]


def _extract(pin: WidgetPin, tarball: Path) -> bytes:
    """The pinned member's bytes, read from the archive (nothing else is written anywhere)."""
    with tarfile.open(tarball, "r:gz") as archive:
        try:
            member = archive.getmember(pin.file)
        except KeyError:
            raise WidgetError(f"{pin.spec} has no {pin.file}") from None
        handle = archive.extractfile(member) if member.isfile() else None
        if handle is None:
            raise WidgetError(f"{pin.file} in {pin.spec} is not a regular file")
        return handle.read()


def fetch(pin: WidgetPin, dest: Optional[Path] = None, npm: str = "npm") -> Path:
    """Install the pinned bundle at ``dest`` (default: ``pin.path``) unless it is already there
    and verified. Raises :class:`WidgetError` on any mismatch, leaving nothing behind."""
    dest = dest or pin.path
    try:
        verified_bundle(pin, dest)
        return dest
    except WidgetError:
        pass
    with tempfile.TemporaryDirectory(prefix="pb-webchat-") as tmp:
        tarball = _npm_pack(pin, Path(tmp), npm)
        got = sri(tarball.read_bytes(), "sha512")
        if got != pin.integrity:
            raise WidgetError(f"the {pin.spec} tarball's sha512 is {got}, not the pinned {pin.integrity}: "
                              "refusing it")
        data = _extract(pin, tarball)
    if sri(data, "sha384") != pin.file_sha384:
        raise WidgetError(f"{pin.file} in {pin.spec} does not have the pinned sha384: refusing it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_suffix(".partial")
    partial.write_bytes(data)
    os.chmod(partial, 0o644)
    os.replace(partial, dest)  # whole or not at all
    return dest


def main(argv: Optional[List[str]] = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args != ["fetch"]:
        print("usage: python -m channels.web.widget_bundle fetch", file=sys.stderr)
        return 2
    pin = read_pin()
    try:
        path = fetch(pin)
    except WidgetError as exc:
        print(f"web chat widget: {exc}", file=sys.stderr)
        return 1
    print(f"web chat widget {pin.spec} verified at {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
