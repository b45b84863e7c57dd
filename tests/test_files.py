"""maco_tf.files: the atomic write, the output-folder guard (property tests) and the folder lock."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from maco_tf.files import (
    FolderBusyError,
    OutputFolder,
    UnsafePathError,
    UnwritableFolderError,
    is_safe_name,
    write_atomically,
    write_text_atomically,
)

from .conftest import lock_held_elsewhere

# Path components an attacker would write into results.json, and harmless ones.
HOSTILE_PARTS = ["..", ".", "", "/", "//", "~", "..\\..", "\x00", "a\x00b", "%2e%2e"]
PARTS = st.lists(
    st.one_of(st.sampled_from(HOSTILE_PARTS), st.text(min_size=0, max_size=6)),
    min_size=1,
    max_size=5,
)
FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def layout(tmp_path_factory) -> tuple[OutputFolder, Path]:
    """An output folder with a file, a sub-folder, and symlinks pointing into and out of it."""
    base = tmp_path_factory.mktemp("guard")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(b"secret")
    out = base / "out"
    (out / "sub").mkdir(parents=True)
    (out / "a.png").write_bytes(b"a")
    (out / "escape").symlink_to(outside)
    (out / "escape.png").symlink_to(outside / "secret.png")
    (out / "inside.png").symlink_to(out / "a.png")
    return OutputFolder(out), outside


def _inside(folder: OutputFolder, path: Path) -> bool:
    root = folder.root.resolve()
    resolved = path.resolve()
    return resolved != root and resolved.is_relative_to(root)


@FAST
@given(parts=PARTS, absolute=st.booleans())
def test_accepted_paths_stay_inside(layout, parts, absolute):
    folder, _ = layout
    relative = ("/" if absolute else "") + "/".join(parts)
    try:
        path = folder.path(relative)
    except UnsafePathError:
        return
    assert not absolute and ".." not in relative.split("/")
    assert _inside(folder, path)


@FAST
@given(parts=PARTS)
def test_hostile_paths_are_never_files_and_never_removed(layout, parts):
    folder, outside = layout
    for relative in ("/".join(parts), "escape/" + "/".join(parts), "../outside/secret.png"):
        if not folder.is_safe(relative):
            assert not folder.is_file(relative)
            assert folder.remove(relative) is False
    assert (outside / "secret.png").read_bytes() == b"secret"


@pytest.mark.parametrize(
    "relative",
    [
        "/etc/passwd",
        "../outside/secret.png",
        "sub/../../outside/secret.png",
        "escape/secret.png",  # a symlinked folder out of --out
        "escape.png",  # a symlinked file out of --out
        "",
        ".",
        "sub/..",
        None,
        3,
        ["a.png"],
    ],
)
def test_refused_paths(layout, relative):
    folder, outside = layout
    with pytest.raises(UnsafePathError, match="refusing path"):
        folder.path(relative)
    assert not folder.is_file(relative)
    assert folder.remove(relative) is False
    with pytest.raises(UnsafePathError):
        folder.write_text(relative, "x")
    assert (outside / "secret.png").read_bytes() == b"secret"


def test_accepted_paths(layout):
    folder, _ = layout
    assert folder.is_file("a.png") and folder.is_file("inside.png") and folder.is_file("./a.png")
    assert not folder.is_file("sub") and not folder.is_file("missing.png")
    assert folder.path("sub/new.png") == folder.root / "sub" / "new.png"


@given(name=st.text(max_size=12))
def test_safe_names_are_one_component_inside(name):
    if is_safe_name(name):
        assert "/" not in name and not name.startswith(".") and "\x00" not in name
        assert OutputFolder("/tmp/x").is_safe(name)


def test_atomic_write_leaves_no_partial_file(tmp_path):
    path = write_text_atomically(tmp_path / "deep" / "a.txt", "first")
    assert path.read_text() == "first" and (path.stat().st_mode & 0o777) == 0o644

    def failing(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(path, failing)
    assert path.read_text() == "first"
    assert sorted(p.name for p in path.parent.iterdir()) == ["a.txt"]


def test_check_writable(tmp_path):
    OutputFolder(tmp_path / "new" / "deeper").check_writable()
    assert not (tmp_path / "new").exists()  # nothing created
    (tmp_path / "file").write_text("x")
    with pytest.raises(UnwritableFolderError, match="exists and is not a folder"):
        OutputFolder(tmp_path / "file").check_writable()
    with pytest.raises(UnwritableFolderError, match="is not a folder"):
        OutputFolder(tmp_path / "file" / "out").check_writable()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write a read-only folder")
def test_check_writable_read_only_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    with pytest.raises(UnwritableFolderError, match="cannot be written"):
        OutputFolder(locked / "out").check_writable()


def test_a_second_process_is_refused_the_lock_and_named(tmp_path):
    folder = OutputFolder(tmp_path)
    with lock_held_elsewhere(tmp_path, "results.json") as pid:
        with pytest.raises(FolderBusyError, match=rf"pid {pid}.*results\.json"):
            with folder.lock("results.json"):
                pass
        with folder.lock("results.0-of-2.json"):  # another results file: no conflict
            pass
    with folder.lock("results.json"):  # released when its holder ends
        pass


@pytest.mark.parametrize("link", ["hard", "symbolic"])
def test_a_linked_lock_file_is_replaced_not_written_through(tmp_path, link):
    outside = tmp_path / "outside.txt"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    lock = out / ".results.json.lock"
    if link == "hard":
        os.link(outside, lock)
    else:
        lock.symlink_to(outside)
    with OutputFolder(out).lock("results.json"):
        assert not lock.is_symlink() and lock.stat().st_nlink == 1
        assert lock.read_text().startswith(f"pid {os.getpid()}")
    assert outside.read_text() == "precious"


def test_an_atomic_write_never_writes_through_a_link(tmp_path):
    outside = tmp_path / "outside.png"
    outside.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    os.link(outside, out / "hard.png")
    (out / "soft.png").symlink_to(outside)
    OutputFolder(out).write_text("hard.png", "new")  # the hard link is replaced
    assert (out / "hard.png").stat().st_nlink == 1 and (out / "hard.png").read_text() == "new"
    with pytest.raises(UnsafePathError):  # a symbolic link out of the folder is refused
        OutputFolder(out).write_text("soft.png", "new")
    assert outside.read_text() == "precious"


def test_stale_temporary_files_are_removed_and_fresh_ones_kept(tmp_path):
    (tmp_path / "sub").mkdir()
    stale = [tmp_path / ".a.png.k3j_x9q2.tmp", tmp_path / "sub" / ".results.json.abcdefgh.tmp"]
    fresh = tmp_path / ".b.png.zzzzzzzz.tmp"  # another process's write in progress
    others = [tmp_path / "keep.tmp", tmp_path / "a.png"]  # not named as the tool names them
    for path in [*stale, fresh, *others]:
        path.write_bytes(b"x")
    for path in [*stale, *others]:
        os.utime(path, (1, 1))
    removed = OutputFolder(tmp_path).remove_stale_temporaries()
    assert sorted(removed) == sorted(stale)
    assert all(path.exists() for path in [fresh, *others])
    assert not any(path.exists() for path in stale)
