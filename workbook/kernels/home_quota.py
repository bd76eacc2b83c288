"""A home folder that cannot outgrow its quota: one size-limited filesystem per student.

Where the app runs as root and loop devices work, each kernel's home folder is an ext4
image of exactly ``WORKBOOK_KERNEL_HOME_MB`` (sparse: it takes only what is written),
loop-mounted on the folder before the sandbox binds it. The filesystem itself then refuses
a write past the quota (``ENOSPC``, and ``-N`` bounds the number of files), however fast the
student writes: nothing is left behind beyond the image's size. The image lives beside the
folders (``WORKBOOK_WORK_DIR/.homes/<folder>.img``) and is mounted again on the next start.

A spare kernel starts with an empty image of its own; when a student takes it,
:func:`adopt` copies the student's files into it (they fit: the images are the same size),
mounts it on the student's folder too and unmounts it from the spare's (the running sandbox
keeps its own view), and renames the image to the student's.

An app that is killed (SIGKILL, a crash) cannot unmount its kernels' images: the mounts and
their loop devices outlive it. The next app's pool calls :func:`unmount_stale` before it
starts any kernel: every mount under its own work folder (as ``/proc/self/mountinfo`` lists
them, nothing else) is unmounted and the loop devices behind its images are released. The
images, and so the students' files, stay; each is mounted again when its kernel starts.

Unprivileged, or where this cannot be had, :mod:`workbook.kernels.home_watch` holds the
quota instead, to a documented margin (see README, "Per-student limits").
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Collection
from pathlib import Path

__all__ = [
    "adopt",
    "available",
    "image_of",
    "mount",
    "mounts_under",
    "release",
    "unmount",
    "unmount_stale",
]

IMAGES = ".homes"
_TOOLS = ("mkfs.ext4", "mount", "umount", "losetup")
_SYS_BLOCK = Path("/sys/block")

log = logging.getLogger(__name__)


def _run(*argv: str) -> None:
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60, check=False)
    if done.returncode != 0:
        raise OSError(f"{argv[0]} failed: {(done.stderr or done.stdout).strip()[:300]}")


def image_of(folder: Path) -> Path:
    """Where the image behind ``folder`` is kept."""
    return folder.parent / IMAGES / f"{folder.name}.img"


@functools.cache
def available() -> str | None:
    """Why per-student filesystems cannot be used here, or ``None`` (probed once)."""
    if os.geteuid() != 0:
        return "the app does not run as root"
    missing = [tool for tool in _TOOLS if shutil.which(tool) is None]
    if missing:
        return f"{', '.join(missing)} missing (Debian packages e2fsprogs, mount)"
    with tempfile.TemporaryDirectory(prefix="wbk-home-probe-") as tmp:
        folder = Path(tmp) / "home"
        try:
            mount(folder, size_mb=8, files=64, uid=0)
            unmount(folder)
        except OSError as exc:
            return f"a loop-mounted test image failed ({exc})"
    return None


def mount(folder: Path, *, size_mb: int, files: int, uid: int) -> None:
    """Mount ``folder``'s own image on it (creating an empty one the first time).

    Args:
        folder: the kernel's home folder; created if missing, left as it is if mounted.
        size_mb: the image's size: the quota on what the folder can hold.
        files: the most files and folders it can hold (inodes).
        uid: who owns the filesystem's root (the sandbox user).

    Raises:
        OSError: a tool failed, or ``folder`` already holds files of its own (a folder
            from before images were used: the caller keeps the watchdog for it).
    """
    folder.mkdir(parents=True, exist_ok=True)
    if os.path.ismount(folder):
        return
    if any(folder.iterdir()):
        raise OSError(f"{folder} holds files but no image")
    image = image_of(folder)
    if not image.exists():
        image.parent.mkdir(mode=0o700, exist_ok=True)
        with open(image, "wb") as f:
            f.truncate(size_mb * 1024 * 1024)
        try:
            # No reserved blocks and no journal: all of the image is the student's, and a
            # journal's metadata would take a part of a small quota. lazy_itable_init keeps
            # mkfs quick; root_owner hands the top folder to the sandbox user.
            _run(
                "mkfs.ext4", "-q", "-F", "-m", "0", "-O", "^has_journal",
                "-N", str(max(files, 16)), "-E", f"root_owner={uid}:{uid}", str(image),
            )  # fmt: skip
        except OSError:
            image.unlink(missing_ok=True)
            raise
    _attach(image, folder)
    # e2fsck would want lost+found; students do not, and an empty one costs nothing to lose.
    with contextlib.suppress(OSError):
        (folder / "lost+found").rmdir()


def _attach(image: Path, folder: Path) -> None:
    _run("mount", "-o", "loop,nosuid,nodev", str(image), str(folder))


def unmount(folder: Path) -> None:
    """Unmount ``folder``'s image if it is mounted (lazily: a reader may still hold it)."""
    if os.path.ismount(folder):
        _run("umount", "--lazy", str(folder))


def release(folder: Path) -> None:
    """Unmount and delete a spare's folder and image (a spare holds no student files)."""
    unmount(folder)
    image_of(folder).unlink(missing_ok=True)
    shutil.rmtree(folder, ignore_errors=True)


def adopt(spare_folder: Path, student_folder: Path) -> None:
    """Make the spare's mounted image the student's, with the student's files in it.

    Raises:
        OSError: a copy or a mount failed; the student's own image and files are untouched.
    """
    own_image = image_of(student_folder)
    if own_image.exists() and not os.path.ismount(student_folder):
        student_folder.mkdir(parents=True, exist_ok=True)
        _attach(own_image, student_folder)  # the student's files are in there
    if student_folder.exists():
        entries = list(student_folder.iterdir())
        for entry in entries:
            target = spare_folder / entry.name
            # The student's file wins over one the warm-up made.
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            elif target.exists() or target.is_symlink():
                target.unlink()
        if entries:
            # cp -a keeps owners, modes, times and links (the files are the sandbox user's).
            # Entry by entry: copying "folder/." would also give the image's top folder the
            # student folder's owner and mode, which may be the app's.
            _run("cp", "-a", "--", *map(str, entries), str(spare_folder))
        unmount(student_folder)
        if any(student_folder.iterdir()):  # a plain folder from before: its copy is made
            shutil.rmtree(student_folder)
        else:
            student_folder.rmdir()
    student_folder.mkdir(mode=0o700)
    # A second mount of the same filesystem, then the first one goes: "mount --move" would
    # do it in one step but is refused under a shared mount (systemd's default for /).
    _run("mount", "--bind", str(spare_folder), str(student_folder))
    unmount(spare_folder)
    os.replace(image_of(spare_folder), image_of(student_folder))
    with contextlib.suppress(OSError):
        spare_folder.rmdir()


def _unescape(field: str) -> str:
    # mountinfo writes a space, tab, newline or backslash in a path as an octal escape.
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def mounts_under(
    folder: Path, mountinfo: str | None = None, *, sources: Collection[str] | None = None
) -> list[Path]:
    """Mount points at or below ``folder`` in this process's mount namespace, deepest first.

    Args:
        folder: the folder to look under (resolved; a sibling that merely shares its name's
            beginning is not under it).
        mountinfo: the text of ``/proc/self/mountinfo`` (read when not given).
        sources: only mounts of these devices (e.g. ``/dev/loop3``); any when None.
    """
    if mountinfo is None:
        mountinfo = Path("/proc/self/mountinfo").read_text()
    root = Path(folder).resolve()
    found = []
    for line in mountinfo.splitlines():
        fields = line.split(" ")
        # "ID PARENT MAJ:MIN ROOT POINT OPTIONS [TAGS...] - FSTYPE SOURCE SUPEROPTIONS"
        if len(fields) < 5 or "-" not in fields[5:]:
            continue
        point = Path(_unescape(fields[4]))
        source = fields[fields.index("-", 5) + 2 :][:1]
        if sources is not None and not (source and _unescape(source[0]) in sources):
            continue
        if point == root or root in point.parents:
            found.append(point)
    # Deepest first; a folder mounted twice is listed (and so unmounted) twice.
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def _loop_devices_of(images: Path) -> list[str]:
    """The loop devices whose backing file is (or was, if deleted) an image in ``images``."""
    devices = []
    for backing in _SYS_BLOCK.glob("loop*/loop/backing_file"):
        try:
            name = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue  # detached meanwhile
        if Path(name).parent == images:
            devices.append(f"/dev/{backing.parent.parent.name}")
    return devices


def unmount_stale(work_dir: Path, keep: Callable[[Path], bool] = lambda _point: False) -> int:
    """Unmount what a killed app left mounted under ``work_dir``; free its loop devices.

    Only mounts at or below ``work_dir`` of a loop device backed by an image in
    ``work_dir/.homes`` are touched (whatever else the operator mounted there stays), and
    only those loop devices are released. The images are kept (they hold students' files).

    Args:
        work_dir: the app's ``WORKBOOK_WORK_DIR``.
        keep: mount points to leave alone (a spare folder of an app still running).

    Returns:
        How many mounts were unmounted.
    """
    work_dir = Path(work_dir).resolve()
    if not work_dir.is_dir():
        return 0
    images = work_dir / IMAGES
    gone = 0
    for point in mounts_under(work_dir, sources=set(_loop_devices_of(images))):
        if point == work_dir or keep(point):
            continue
        try:
            _run("umount", str(point))
        except OSError:
            try:  # something still holds a file there: detach it now, free it when let go
                _run("umount", "--lazy", str(point))
            except OSError as exc:
                log.warning("could not unmount %s left by an earlier app: %s", point, exc)
                continue
        gone += 1
    for device in _loop_devices_of(images):
        # A device still in use is only marked to be freed when it is let go.
        with contextlib.suppress(OSError):
            _run("losetup", "--detach", device)
    if gone:
        log.info("unmounted %d home image(s) left mounted under %s", gone, work_dir)
    return gone
