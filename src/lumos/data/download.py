"""Downloads that are checked, atomic and resumable, and tar extraction that stays inside.

Only the standard library is used for HTTP (``urllib``). A download streams into
``<file>.part`` next to the destination; an interrupted transfer (dropped connection, Ctrl-C)
keeps that file, and the next attempt asks the server for the rest with an HTTP ``Range``
header. The checksum is verified before the file is renamed onto its final name, so the final
name only ever holds a complete, verified file.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from lumos.progress import Progress

_CHUNK = 1 << 16
_USER_AGENT = "lumos-downloader/0.1 (+https://github.com/)"


class DownloadError(RuntimeError):
    """A download failed for good: bad checksum, HTTP error, or too many interruptions."""


class UnsafeArchiveError(ValueError):
    """A tar member would land outside the target folder (absolute path, ``..``, link, device)."""


@dataclass(frozen=True)
class Resource:
    """One file to fetch: where from, its name on disk, and the digests it may have.

    ``md5``/``sha256`` hold every accepted digest (a publisher may re-release a file); at least
    one of them must be given.
    """

    filename: str
    urls: tuple[str, ...]
    md5: tuple[str, ...] = ()
    sha256: tuple[str, ...] = ()


def fetch(resource: Resource, folder: str | os.PathLike[str], *, progress: bool = True,
          retries: int = 3, timeout: float = 60.0) -> Path:
    """Download ``resource`` into ``folder`` (trying each mirror in turn); returns its path.

    A file already there with a matching digest is kept without any network access.
    """
    dest = Path(folder) / resource.filename
    if dest.is_file() and _digest_ok(dest, resource):
        return dest
    errors = []
    for url in resource.urls:
        try:
            return download(url, dest, md5=resource.md5, sha256=resource.sha256,
                            progress=progress, retries=retries, timeout=timeout)
        except DownloadError as err:
            errors.append(str(err))
    raise DownloadError(f"could not download {resource.filename}: " + "; ".join(errors))


def download(url: str, dest: str | os.PathLike[str], *, md5: Sequence[str] = (),
             sha256: Sequence[str] = (), progress: bool = True, retries: int = 3,
             timeout: float = 60.0) -> Path:
    """Fetch ``url`` to ``dest``, resuming a previous partial transfer, and verify its digest.

    Parameters
    ----------
    md5, sha256:
        Accepted hex digests; at least one must be given (unverified downloads are refused).
    retries:
        How many times a dropped connection is resumed within this call.

    Raises
    ------
    DownloadError
        HTTP failure, repeated interruption (the ``.part`` file is kept for the next call), or a
        digest mismatch (the ``.part`` file is deleted: its bytes are wrong).
    """
    if not md5 and not sha256:
        raise ValueError(f"refusing to download {url} without an md5 or sha256 to check")
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    for attempt in range(retries + 1):
        try:
            _transfer(url, part, progress, timeout, dest.name)
            break
        except (OSError, http.client.HTTPException) as err:
            if isinstance(err, urllib.error.HTTPError) or attempt == retries:
                raise DownloadError(f"downloading {url} failed ({_describe(err)}); "
                                    f"{_kept(part)}") from err
    digest = _check_digest(part, md5, sha256)
    if digest is not None:
        part.unlink(missing_ok=True)
        raise DownloadError(f"checksum mismatch for {url}: got {digest}, expected one of "
                            f"{list(md5) + list(sha256)}; the downloaded file was deleted")
    os.replace(part, dest)
    return dest


def _transfer(url: str, part: Path, progress: bool, timeout: float, label: str) -> None:
    """Append the rest of ``url`` to ``part``; restart from zero if the server ignores Range."""
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    if have:
        request.add_header("Range", f"bytes={have}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing left to send: the part file is complete
            return
        raise
    with response:
        resumed = have > 0 and response.status == 206
        if not resumed:
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        with part.open("ab" if resumed else "wb") as out, \
                Progress(total, label, enabled=progress, bytes=True, initial=have) as bar:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
        if total is not None and part.stat().st_size < total:
            raise http.client.IncompleteRead(b"", total - part.stat().st_size)


def _check_digest(path: Path, md5: Sequence[str], sha256: Sequence[str]) -> str | None:
    """``None`` if ``path`` matches an accepted digest, else the digest it actually has."""
    h_md5, h_sha = hashlib.md5(usedforsecurity=False), hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            h_md5.update(chunk)
            h_sha.update(chunk)
    if h_md5.hexdigest() in {d.lower() for d in md5}:
        return None
    if h_sha.hexdigest() in {d.lower() for d in sha256}:
        return None
    return f"md5 {h_md5.hexdigest()}" if md5 else f"sha256 {h_sha.hexdigest()}"


def _digest_ok(path: Path, resource: Resource) -> bool:
    return _check_digest(path, resource.md5, resource.sha256) is None


def _describe(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {err.reason}"
    if isinstance(err, http.client.IncompleteRead):
        return "the connection dropped before the end"
    return f"{type(err).__name__}: {err}"


def _kept(part: Path) -> str:
    if part.is_file() and part.stat().st_size:
        return f"{part.stat().st_size} bytes kept in {part}; run again to resume"
    return "nothing was saved"


def extract_tar(archive: str | os.PathLike[str], target: str | os.PathLike[str]) -> list[Path]:
    """Extract ``archive`` into ``target`` after checking every member; returns the top entries.

    Refused (:class:`UnsafeArchiveError`, nothing extracted): absolute paths, ``..`` parts,
    symbolic or hard links pointing outside ``target``, device files and FIFOs. Extraction goes
    to a temp folder inside ``target`` first; the top-level entries are renamed into place only
    after the whole archive extracted, so an error never leaves a half-extracted dataset.
    """
    target = Path(target)
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                check_member(member)
            tops = sorted({PurePosixPath(m.name).parts[0] for m in members
                           if PurePosixPath(m.name).parts})
            clash = [t for t in tops if (target / t).exists()]
            if clash:
                raise FileExistsError(f"{target / clash[0]} already exists; remove it to "
                                      f"extract {archive} again")
            staging = Path(tempfile.mkdtemp(prefix=".extract-", dir=target))
            try:
                _extract_all(tar, staging)
                for top in tops:
                    os.replace(staging / top, target / top)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except (tarfile.TarError, EOFError) as err:
        raise UnsafeArchiveError(f"{archive} is not a readable tar archive: {err}") from err
    return [target / t for t in tops]


def check_member(member: tarfile.TarInfo) -> None:
    """Raise :class:`UnsafeArchiveError` if ``member`` could write outside the target folder."""
    name = member.name
    path = PurePosixPath(name)
    if name.startswith(("/", "\\")) or path.is_absolute() or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchiveError(f"refusing tar member with an absolute path: {name!r}")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"refusing tar member that climbs out with '..': {name!r}")
    if member.isdev() or member.isfifo():
        raise UnsafeArchiveError(f"refusing tar member that is a device or FIFO: {name!r}")
    if member.issym() or member.islnk():
        link = PurePosixPath(member.linkname)
        base = path.parent if member.issym() else PurePosixPath()
        if link.is_absolute() or _climbs_out(base / link):
            raise UnsafeArchiveError(f"refusing tar member {name!r}: its link to "
                                     f"{member.linkname!r} points outside the target folder")


def _climbs_out(path: PurePosixPath) -> bool:
    depth = 0
    for part in path.parts:
        depth += -1 if part == ".." else (0 if part == "." else 1)
        if depth < 0:
            return True
    return False


def _extract_all(tar: tarfile.TarFile, dest: Path) -> None:
    data_filter = getattr(tarfile, "data_filter", None)
    if data_filter is not None:  # Python >= 3.11.4 / 3.12: a second, independent guard
        tar.extractall(dest, filter=data_filter)
    else:  # pragma: no cover - old Python; members were checked by check_member
        tar.extractall(dest)
