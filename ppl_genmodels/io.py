"""Output files: atomic writes, file modes, a manifest of what a run wrote, folder checks.

- Every file is written to a temporary ``.{name}.{pid}-{random}.tmp`` beside it and renamed
  over the target (``os.replace``, atomic on POSIX): a reader, a Ctrl-C or a kill never
  leaves a half-written file under the real name. The file gets mode ``0o666 & ~umask``
  (as ``open`` would give it), not ``mkstemp``'s 0600.
- A temporary file left by a killed process (its pid no longer runs) is removed by the
  next write into that folder.
- Inside :func:`recording`, each file written under the root is listed in
  ``<root>/.ppl_genmodels_manifest.json`` (updated atomically after each write), so that
  :func:`remove_recorded` (``--force``) deletes exactly the files an earlier run wrote.

Errors the command line prints as one line (all ``ValueError``): :class:`FileProblem` and
its subclasses :class:`DamagedFileError`, :class:`OutputFolderError`, :class:`StaleFileError`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Iterator

__all__ = ["atomic_path", "write_text", "save_netcdf", "load_netcdf", "FileProblem",
           "DamagedFileError", "OutputFolderError", "StaleFileError", "damaged",
           "check_writable", "load_torch", "recording", "remove_recorded", "MANIFEST", "file_mode"]

MANIFEST = ".ppl_genmodels_manifest.json"
_TMP = re.compile(r"^\..+\.(\d+)-[^.]+\.tmp$")
_lock = threading.RLock()
_cleaned: set[str] = set()
_roots: list[Path] = []  # active recording() roots, innermost last


class FileProblem(ValueError):
    """A file or folder the tool reads or writes cannot be used; the message names it and
    says what to do."""


class DamagedFileError(FileProblem):
    """A saved file (checkpoint, netCDF, SBC batch) is truncated or not what it should be."""


class OutputFolderError(FileProblem):
    """The output folder cannot be created or written (checked before any engine runs)."""


class StaleFileError(FileProblem):
    """A saved result was made from other inputs (data, model, engine config, ...)."""


def damaged(path: str | Path, exc: BaseException, fix: str = "delete it or rerun with --force"
            ) -> DamagedFileError:
    """The error to raise when reading ``path`` failed with ``exc``."""
    return DamagedFileError(f"{path} is damaged or not a file this tool wrote "
                            f"({type(exc).__name__}: {exc}); {fix}")


def file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open()`` gives a new file. The umask is read from
    ``/proc/self/status`` where possible (setting it to read it races other threads)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    with _lock:
        umask = os.umask(0o022)
        os.umask(umask)
    return 0o666 & ~umask


def _clean_stray_temporaries(folder: Path) -> None:
    """Remove ``.{name}.{pid}-{random}.tmp`` files whose writer (pid) is no longer running;
    once per folder and process."""
    key = str(folder.resolve())
    if key in _cleaned:
        return
    _cleaned.add(key)
    for path in folder.glob(".*.tmp"):
        match = _TMP.match(path.name)
        if match is None or int(match.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            with contextlib.suppress(OSError):
                path.unlink()
        except (PermissionError, OverflowError, ValueError):
            pass  # another user's live process, or a bad number: leave it


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; on success it replaces ``target``
    (``os.replace``, atomic on POSIX) with mode ``0o666 & ~umask``, on any exception
    (or KeyboardInterrupt) it is removed. Inside :func:`recording` the target is listed
    in the manifest."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    _clean_stray_temporaries(target.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.{os.getpid()}-", suffix=".tmp",
                               dir=target.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, file_mode())
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    _record(target)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def save_netcdf(idata, target: str | Path) -> None:
    """``InferenceData.to_netcdf`` through a temporary file."""
    with atomic_path(target) as tmp:
        idata.to_netcdf(str(tmp))


def load_netcdf(path: str | Path):
    """Read an InferenceData fully into memory (the file is not kept open).

    :raises FileNotFoundError: no such file; :class:`DamagedFileError`: it cannot be read.
    """
    from . import _arviz

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} not found")
    try:
        idata = _arviz.from_netcdf(str(path))
        for group in idata.groups():
            getattr(idata, group).load()
    except Exception as exc:  # netCDF/HDF5 raise OSError, ValueError, KeyError, ...
        raise damaged(path, exc) from exc
    return idata


def load_torch(path: str | Path, required: tuple[str, ...] = ()):
    """``torch.load`` (full unpickling: only load files you trust) of a dict this tool saved.

    :param required: keys the dict must have.
    :raises FileNotFoundError: no such file; :class:`DamagedFileError`: truncated, not a
        torch file, or without the ``required`` keys.
    """
    import torch

    if not Path(path).exists():
        raise FileNotFoundError(f"{path} not found")
    try:
        state = torch.load(path, weights_only=False)
        if not isinstance(state, dict):
            raise TypeError(f"holds a {type(state).__name__}, not a dict")
        missing = [k for k in required if k not in state]
        if missing:
            raise KeyError(f"no {missing}")
    except Exception as exc:  # pickle, zip and torch errors alike
        raise damaged(path, exc) from exc
    return state


def check_writable(folder: str | Path) -> Path:
    """Create ``folder`` (and parents) and write and remove a probe file in it, so that a
    read-only or misplaced output folder is found before any work is done; folders this
    made are removed again (the first real write recreates them).

    :returns: the folder as a ``Path``.
    :raises OutputFolderError: naming the folder (it is a file, or cannot be created or
        written).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputFolderError(f"output folder {folder} is an existing file, not a folder; "
                                "choose another --out")
    created = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".write-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as exc:
        raise OutputFolderError(f"cannot write into output folder {folder} "
                                f"({exc.strerror or exc}); choose another --out or fix its "
                                "permissions") from exc
    finally:
        # Leave no trace: folders made for the probe go again (the first write makes them
        # anew), so a run that fails before writing anything leaves the disk as it was.
        for path in created:
            with contextlib.suppress(OSError):
                path.rmdir()
    return folder


def _read_manifest(root: Path) -> list[str]:
    path = root / MANIFEST
    if not path.exists():
        return []
    try:
        files = json.loads(path.read_text(encoding="utf-8"))["files"]
        if not all(isinstance(f, str) for f in files):
            raise ValueError("entries are not file names")
    except (ValueError, KeyError, TypeError, OSError) as exc:
        raise damaged(path, exc, "delete it (then --force removes nothing it cannot vouch for) "
                                 "or remove the folder yourself") from exc
    return list(files)


@contextlib.contextmanager
def _folder_lock(root: Path) -> Iterator[None]:
    """Exclusive ``flock`` on the folder itself, so that processes writing into one output
    folder (``compare --jobs``) update its manifest one at a time (POSIX; elsewhere only
    the thread lock applies)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    fd = os.open(root, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def _record(target: Path) -> None:
    """List ``target`` in the manifest of the innermost active root holding it."""
    if not _roots or target.name == MANIFEST:
        return
    resolved = target.resolve()
    for root in reversed(_roots):
        try:
            rel = resolved.relative_to(root.resolve()).as_posix()
        except ValueError:
            continue
        with _lock, _folder_lock(root):
            files = _read_manifest(root)
            if rel not in files:
                write_text(root / MANIFEST, json.dumps({"files": files + [rel]}, indent=1))
        return


@contextlib.contextmanager
def recording(root: str | Path) -> Iterator[Path]:
    """List every file written under ``root`` by :func:`atomic_path` (and hence by
    :func:`write_text`, :func:`save_netcdf`, ``save_figure``) in ``root/MANIFEST``,
    keeping entries from earlier runs."""
    root = Path(root)
    _roots.append(root)
    try:
        yield root
    finally:
        _roots.remove(root)


def remove_recorded(root: str | Path) -> list[Path]:
    """Delete the files listed in ``root/MANIFEST`` (written by an earlier run), then the
    manifest. Files the tool did not write are never touched; entries outside ``root`` are
    ignored.

    :returns: the paths removed.
    :raises DamagedFileError: the manifest cannot be read.
    """
    root = Path(root)
    removed = []
    for rel in _read_manifest(root):
        path = root / rel
        if Path(rel).is_absolute() or ".." in Path(rel).parts or not path.is_file():
            continue
        path.unlink()
        removed.append(path)
    with contextlib.suppress(FileNotFoundError):
        (root / MANIFEST).unlink()
    return removed
