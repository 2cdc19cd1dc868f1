"""Download a BEIR dataset zip, check its MD5, and unpack it into `<root>/<name>`.

Nothing half-written is ever left at `<root>/<name>`: the zip goes to a temporary file in
`root`, is verified, unpacked into a temporary directory there, and only then renamed into place.
"""

from __future__ import annotations

import hashlib
import http.client
import shutil
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import BinaryIO

from retrieval_lab.errors import DataError

BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"

# The checksums published by BEIR for its dataset zips.
BEIR_MD5 = {  # the public datasets of BEIR's README table
    "msmarco": "444067daf65d982533ea17ebd59501e4",
    "trec-covid": "ce62140cb23feb9becf6270d0d1fe6d1",
    "nfcorpus": "a89dba18a62ef92f7d323ec890a0d38d",
    "nq": "d4d3d2e48787a744b6f6e691ff534307",
    "hotpotqa": "f412724f78b0d91183a0e86805e16114",
    "fiqa": "17918ed23cd04fb15047f73e6c3bd9d9",
    "scifact": "5f7d1de60b170fc8027bb7898e2efca1",
    "arguana": "8ad3e3c2a5867cdced806d6503f29b99",
    "webis-touche2020": "46f650ba5a527fc69e0a6521c5a23563",
    "cqadupstack": "4e41456d7df8ee7760a7f866133bda78",
    "quora": "18fb154900ba42a600f84b839c173167",
    "dbpedia-entity": "c2a39eb420a3164af735795df012ac2c",
    "scidocs": "38121350fc3a4d2f48850f6aff52e4a9",
    "fever": "5a818580227bfb4b35bb6fa46d9b6c03",
    "climate-fever": "8b66f0a9126c521bae2bde127b4dc99d",
}


def layout_hint(dest: Path) -> str:
    """Where to put a dataset by hand."""
    return (
        f"put the files at {dest}/corpus.jsonl, {dest}/queries.jsonl and {dest}/qrels/<split>.tsv "
        "(the data root is chosen by RLAB_DATA_DIR / data.root)"
    )


def download_beir(
    name: str,
    root: str | Path,
    *,
    md5: str | None = None,
    base_url: str = BEIR_BASE_URL,
    timeout: float = 30.0,
) -> Path:
    """Fetch `<base_url>/<name>.zip` into `<root>/<name>` and return that path.

    `md5` overrides the published checksum; a name without one is refused unless it is given.
    A forum of CQADupStack (``cqadupstack/android``) comes in BEIR's one zip of all 12 forums:
    that zip is fetched into `<root>/cqadupstack`.
    """
    root = Path(root)
    wanted = name
    name = name.split("/", 1)[0]
    dest = root / name
    expected = (md5 or BEIR_MD5.get(name, "")).lower()
    if not expected:
        raise DataError(
            f"no published checksum for BEIR dataset {name!r} (known: {', '.join(sorted(BEIR_MD5))}); "
            f"pass an md5 to download it anyway, or {layout_hint(dest)}"
        )
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise DataError(f"{dest} already exists; not overwriting it with a download of {name!r}")
    url = f"{base_url.rstrip('/')}/{name}.zip"
    root.mkdir(parents=True, exist_ok=True)
    archive: Path | None = None
    try:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                with tempfile.NamedTemporaryFile(dir=root, prefix=f".{name}.", suffix=".zip.part", delete=False) as out:
                    archive = Path(out.name)
                    digest = _copy(response, out)
        except (OSError, http.client.HTTPException) as e:
            raise DataError(
                f"dataset {name!r} not found at {dest} and downloading {url} failed "
                f"({getattr(e, 'reason', e)}); {layout_hint(dest)}"
            ) from None
        if digest != expected:
            raise DataError(f"{url}: MD5 mismatch (expected {expected}, got {digest}); the download was deleted")
        _extract(archive, url, name, dest, Path(wanted).relative_to(name) / "corpus.jsonl")
    finally:
        if archive is not None:
            archive.unlink(missing_ok=True)
    return root / wanted


def _copy(src: BinaryIO, dst: BinaryIO) -> str:
    """Copy `src` to `dst` and return the MD5 hex digest of what was copied."""
    digest = hashlib.md5(usedforsecurity=False)
    while chunk := src.read(1 << 20):
        digest.update(chunk)
        dst.write(chunk)
    return digest.hexdigest()


def _extract(archive: Path, url: str, name: str, dest: Path, corpus: Path) -> None:
    """Unpack `archive` (with or without a top-level `<name>/` folder) and rename it to `dest`;
    `corpus` is where in it the corpus must be."""
    tmp_dir = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{name}."))
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                zf.extractall(tmp_dir)
        except zipfile.BadZipFile as e:
            raise DataError(f"{url}: not a valid zip archive ({e})") from None
        src = tmp_dir / name if (tmp_dir / name).is_dir() else tmp_dir
        if not (src / corpus).is_file():
            raise DataError(f"{url}: archive has no {(Path(name) / corpus).as_posix()}")
        src.replace(dest)  # atomic; also takes the place of an empty directory
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
