"""Output files: modes follow the umask, stray temporaries of killed writers are removed,
the manifest lists what a run wrote and --force removes exactly that, folder checks."""

import json
import os
import subprocess
import sys

import pytest

from ppl_genmodels.io import (MANIFEST, DamagedFileError, OutputFolderError, atomic_path,
                              check_writable, file_mode, recording, remove_recorded, write_text)


@pytest.mark.parametrize("umask", [0o022, 0o077, 0o002])
def test_files_get_the_mode_open_would_give(tmp_path, umask):
    old = os.umask(umask)
    try:
        assert file_mode() == 0o666 & ~umask
        write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o666 & ~umask


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_stray_temporaries_of_dead_writers_are_removed_by_the_next_write(tmp_path):
    stray = tmp_path / f".nuts.nc.{_dead_pid()}-abc123.tmp"
    stray.write_bytes(b"")  # a kill between mkstemp and the rename
    live = tmp_path / f".svi.nc.{os.getppid()}-abc123.tmp"  # a running writer's: kept
    live.write_bytes(b"partial")
    users = tmp_path / ".notes.tmp"  # not a name atomic_path gives: kept
    users.write_text("mine")
    write_text(tmp_path / "b.txt", "x")
    assert not stray.exists() and live.exists() and users.exists()


def test_a_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "c.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_manifest_lists_written_files_and_remove_recorded_removes_only_them(tmp_path):
    (tmp_path / "mine.txt").write_text("user's")
    with recording(tmp_path):
        write_text(tmp_path / "a.txt", "1")
        write_text(tmp_path / "sub" / "b.txt", "2")
        write_text(tmp_path / "a.txt", "3")  # listed once
    write_text(tmp_path / "outside.txt", "not recorded")
    files = json.loads((tmp_path / MANIFEST).read_text())["files"]
    assert files == ["a.txt", "sub/b.txt"]
    assert sorted(p.name for p in remove_recorded(tmp_path)) == ["a.txt", "b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.txt", "outside.txt", "sub"]


def test_manifest_entries_outside_the_folder_are_ignored(tmp_path):
    root = tmp_path / "out"
    root.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep")
    (root / MANIFEST).write_text(json.dumps({"files": ["../victim.txt", str(victim)]}))
    assert remove_recorded(root) == []
    assert victim.exists()
    (root / MANIFEST).write_text("{not json")
    with pytest.raises(DamagedFileError, match=MANIFEST):
        remove_recorded(root)


def test_check_writable_names_the_folder(tmp_path):
    assert check_writable(tmp_path / "new" / "deep") == tmp_path / "new" / "deep"
    assert not (tmp_path / "new").exists()  # folders made for the probe are removed again
    (tmp_path / "kept").mkdir()
    assert check_writable(tmp_path / "kept").is_dir()  # an existing folder stays
    a_file = tmp_path / "f"
    a_file.write_text("x")
    with pytest.raises(OutputFolderError, match=f"{a_file} is an existing file"):
        check_writable(a_file)
    with pytest.raises(OutputFolderError, match="cannot write into output folder"):
        check_writable(a_file / "sub")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_check_writable_read_only_folder(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        with pytest.raises(OutputFolderError, match=f"cannot write into output folder {ro}"):
            check_writable(ro)
    finally:
        ro.chmod(0o700)


def test_check_writable_reports_a_refused_probe(tmp_path, monkeypatch):
    import ppl_genmodels.io as io_module

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(io_module.tempfile, "mkstemp", refuse)  # what a read-only folder does
    with pytest.raises(OutputFolderError, match=f"cannot write into output folder {tmp_path} "
                                                r"\(Permission denied\)"):
        check_writable(tmp_path)
