"""Atomic files and directories: all or nothing, no temporary files left, the umask's modes."""

import os
import stat

import pytest

from t2t_lite.atomic import AtomicFile, atomic_directory, atomic_open, write_file_atomic


def mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture(params=[0o022, 0o027, 0o077], ids=["022", "027", "077"])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def test_files_and_directories_get_the_umask_modes(tmp_path, umask):
    write_file_atomic(str(tmp_path / "a.json"), "{}\n")
    with atomic_open(str(tmp_path / "b.npz"), binary=True) as f:
        f.write(b"x")
    pending = AtomicFile(str(tmp_path / "c.txt"))
    pending.commit()
    with atomic_directory(str(tmp_path / "export")) as temp:
        write_file_atomic(os.path.join(temp, "d.txt"), "d")
    for name in ["a.json", "b.npz", "c.txt", "export/d.txt"]:
        assert mode(tmp_path / name) == 0o666 & ~umask, name  # 0644 under umask 022
    assert mode(tmp_path / "export") == 0o777 & ~umask


def test_success_replaces_the_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with atomic_open(str(path)) as f:
        f.write("first chunk\n")
        f.flush()
        assert path.read_text() == "old\n"  # nothing visible before the block ends
        f.write("second chunk\n")
    assert path.read_text() == "first chunk\nsecond chunk\n"
    write_file_atomic(str(tmp_path / "x.bin"), b"\x00\xff")
    assert (tmp_path / "x.bin").read_bytes() == b"\x00\xff"
    assert sorted(os.listdir(tmp_path)) == ["out.txt", "x.bin"]


def test_failure_after_a_chunk_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old\n")
    with pytest.raises(RuntimeError, match="disk on fire"), atomic_open(str(path)) as f:
        f.write("first chunk\n")
        f.flush()
        raise RuntimeError("disk on fire")
    assert path.read_text() == "old\n"
    pending = AtomicFile(str(path))
    pending.file.write("first chunk\n")
    pending.discard()
    assert path.read_text() == "old\n"
    with pytest.raises(RuntimeError), atomic_directory(str(tmp_path / "export")) as temp:
        write_file_atomic(os.path.join(temp, "half.txt"), "h")
        raise RuntimeError
    assert os.listdir(tmp_path) == ["out.txt"]


def test_missing_directory_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        write_file_atomic(str(tmp_path / "nowhere" / "a.txt"), "a")
    assert os.listdir(tmp_path) == []
