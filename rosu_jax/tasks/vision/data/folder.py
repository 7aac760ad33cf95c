"""Image-folder reader (train/test class folders, or the Tiny-ImageNet tree) with an .npz decode cache."""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from rosu_jax.core.paths import cache_root
from rosu_jax.tasks.vision.data.dataset import ImageDataset, per_class_holdout, with_validation

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png"})
_CACHE_VERSION = 1

LAYOUT_HELP = (
    "expected either <root>/train/<class>/*.{jpg,jpeg,png} and <root>/test/<class>/*.{jpg,jpeg,png} "
    "(class folders sorted by name give the labels), or the Tiny-ImageNet layout "
    "<root>/wnids.txt, <root>/train/<wnid>/images/*.JPEG, <root>/val/images/*.JPEG and "
    "<root>/val/val_annotations.txt (lines 'filename<TAB>wnid<TAB>x<TAB>y<TAB>w<TAB>h')"
)


@dataclass(frozen=True)
class _Listing:
    """Files and labels found on disk, before decoding."""

    layout: str  # "classes" or "tiny_imagenet"
    class_names: tuple[str, ...]
    train_files: list[Path]
    train_labels: np.ndarray
    test_files: list[Path]  # for Tiny-ImageNet: the official (labelled) validation images
    test_labels: np.ndarray
    extra_files: tuple[Path, ...] = ()  # label files whose mtime also keys the cache


def _list_images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    with os.scandir(folder) as it:
        names = sorted(
            e.name
            for e in it
            if os.path.splitext(e.name)[1].lower() in IMAGE_SUFFIXES and not e.name.startswith(".") and e.is_file()
        )
    return [folder / n for n in names]


def _subdirs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _missing(what: str, root: Path) -> FileNotFoundError:
    return FileNotFoundError(f"{what} (dataset root {root}); {LAYOUT_HELP}")


def _collect_labelled(class_dirs: list[Path], root: Path) -> tuple[list[Path], list[int]]:
    """The image files of each class folder, labelled by the folder's position; an empty folder is an error."""
    files: list[Path] = []
    labels: list[int] = []
    for label, folder in enumerate(class_dirs):
        found = _list_images(folder)
        if not found:
            raise _missing(f"no .jpg/.jpeg/.png images in class folder {folder}", root)
        files += found
        labels += [label] * len(found)
    return files, labels


def _scan_classes(root: Path) -> _Listing:
    train_dir, test_dir = root / "train", root / "test"
    for d in (train_dir, test_dir):
        if not d.is_dir():
            raise _missing(f"missing folder {d}", root)
    classes = _subdirs(train_dir)
    if not classes:
        raise _missing(f"no class folders in {train_dir}", root)
    train_files, train_labels = _collect_labelled([train_dir / c for c in classes], root)
    index = {c: i for i, c in enumerate(classes)}
    test_files: list[Path] = []
    test_labels: list[int] = []
    for c in _subdirs(test_dir):
        if c not in index:
            raise ValueError(f"test class folder {test_dir / c} has no matching folder in {train_dir}")
        files = _list_images(test_dir / c)
        test_files += files
        test_labels += [index[c]] * len(files)
    if not test_files:
        raise _missing(f"no .jpg/.jpeg/.png images in the class folders of {test_dir}", root)
    return _Listing(
        "classes",
        tuple(classes),
        train_files,
        np.asarray(train_labels, np.int32),
        test_files,
        np.asarray(test_labels, np.int32),
    )


def _is_tiny_imagenet(root: Path) -> bool:
    return (root / "val" / "val_annotations.txt").is_file()


def _scan_tiny_imagenet(root: Path) -> _Listing:
    train_dir, ann_file = root / "train", root / "val" / "val_annotations.txt"
    if not train_dir.is_dir():
        raise _missing(f"missing folder {train_dir}", root)
    wnids_file = root / "wnids.txt"
    if wnids_file.is_file():
        wnids = sorted({w.strip() for w in wnids_file.read_text().splitlines() if w.strip()})
    else:
        wnids = _subdirs(train_dir)
    if not wnids:
        raise _missing(f"no classes listed in {wnids_file} or {train_dir}", root)
    class_dirs = [train_dir / w / "images" if (train_dir / w / "images").is_dir() else train_dir / w for w in wnids]
    train_files, train_labels = _collect_labelled(class_dirs, root)
    index = {w: i for i, w in enumerate(wnids)}
    entries: list[tuple[str, int]] = []
    for lineno, line in enumerate(ann_file.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{ann_file}:{lineno}: expected 'filename<TAB>wnid<TAB>...', got {line!r}")
        if parts[1] not in index:
            raise ValueError(f"{ann_file}:{lineno}: class {parts[1]!r} is not in wnids.txt / train/")
        entries.append((parts[0], index[parts[1]]))
    entries.sort()
    val_dir = root / "val" / "images"
    val_files = [val_dir / f for f, _ in entries]
    for f in val_files[:1] + val_files[-1:]:
        if not f.is_file():
            raise _missing(f"annotated validation image {f} does not exist", root)
    if not val_files:
        raise _missing(f"no annotated images in {ann_file}", root)
    extra = (ann_file, wnids_file) if wnids_file.is_file() else (ann_file,)
    return _Listing(
        "tiny_imagenet",
        tuple(wnids),
        train_files,
        np.asarray(train_labels, np.int32),
        val_files,
        np.asarray([lab for _, lab in entries], np.int32),
        extra_files=extra,
    )


def _target_size(image_size: int | tuple[int, int] | None) -> tuple[int, int] | None:
    """(height, width) or None."""
    if image_size is None:
        return None
    if isinstance(image_size, int):
        return (image_size, image_size)
    h, w = image_size
    return (int(h), int(w))


def _decode(path: Path, size: tuple[int, int] | None) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if size is not None and im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.Resampling.BILINEAR)
        return np.asarray(im, dtype=np.uint8)


class BadImagesError(ValueError):
    """Some image files could not be decoded (truncated, not an image, unreadable)."""


def decode_images(
    paths: list[Path],
    image_size: int | tuple[int, int] | None = None,
    num_workers: int | None = None,
    *,
    skip_bad: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode image files to one uint8 (N, H, W, 3) RGB array with a thread pool; sizes must agree.

    Returns ``(images, kept)``: ``kept`` are the indices of ``paths`` that decoded. A file that does not decode
    (truncated, not an image, unreadable) raises ``BadImagesError`` naming the files and their count, unless
    ``skip_bad``: then it is left out with a warning.
    """
    size = _target_size(image_size)
    if not paths:
        raise ValueError("no image paths to decode")
    decoded: list[np.ndarray | None] = [None] * len(paths)
    errors: dict[int, str] = {}

    def work(bounds: tuple[int, int]) -> None:
        for i in range(*bounds):
            try:
                decoded[i] = _decode(paths[i], size)
            except (OSError, SyntaxError, ValueError) as err:  # PIL raises all three for broken files
                errors[i] = f"{type(err).__name__}: {err}"

    workers = num_workers or min(8, os.cpu_count() or 1)
    n_chunks = max(1, min(len(paths), workers * 8))
    edges = np.linspace(0, len(paths), n_chunks + 1).astype(int)
    chunks = [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:], strict=True) if b > a]
    if workers == 1 or len(chunks) <= 1:
        for c in chunks:
            work(c)
    else:
        with ThreadPoolExecutor(workers) as pool:
            for _ in pool.map(work, chunks):
                pass
    if errors:
        listing = "; ".join(f"{paths[i]} ({errors[i]})" for i in sorted(errors)[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        message = f"{len(errors)} of {len(paths)} image files do not decode: {listing}{more}"
        if not skip_bad:
            raise BadImagesError(f"{message}. Replace or delete them, or pass --skip-bad-images to leave them out.")
        warnings.warn(f"{message}; left out (--skip-bad-images).", stacklevel=2)
    kept = np.asarray([i for i in range(len(paths)) if i not in errors], np.int64)
    if kept.size == 0:
        raise BadImagesError(f"none of the {len(paths)} image files decodes (first: {paths[0]}).")
    first = decoded[kept[0]]
    for i in kept:
        if decoded[i].shape != first.shape:
            raise ValueError(
                f"{paths[i]} is {decoded[i].shape[1]}x{decoded[i].shape[0]} but {paths[kept[0]]} is "
                f"{first.shape[1]}x{first.shape[0]}; pass image_size=(height, width) to resize every image"
            )
    return np.stack([decoded[i] for i in kept]), kept


def _cache_key(root: Path, listing: _Listing, size: tuple[int, int] | None, skip_bad: bool) -> str:
    h = hashlib.sha256()
    prefix = len(str(root)) + 1
    h.update(f"v{_CACHE_VERSION}|{root.resolve()}|{listing.layout}|{size}|{skip_bad}|".encode())
    files = listing.train_files + listing.test_files + list(listing.extra_files)
    h.update(f"{len(files)}|".encode())
    for f in map(str, files):
        st = os.stat(f)
        h.update(f"{f[prefix:]}|{st.st_mtime_ns}|{st.st_size}\n".encode())
    return h.hexdigest()[:16]


def _save_cache(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npz.tmp")
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    except OSError as e:
        warnings.warn(f"could not write dataset cache {path}: {e}", stacklevel=3)


def _load_cache(path: Path) -> dict[str, np.ndarray] | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        warnings.warn(f"ignoring unreadable dataset cache {path}: {e}", stacklevel=3)
        return None


def load_image_folder(
    root: str | os.PathLike,
    *,
    name: str | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | os.PathLike | None = None,
    val_fraction: float = 0.0,
    seed: int = 0,
    use_cache: bool = True,
    num_workers: int | None = None,
    skip_bad: bool = False,
) -> ImageDataset:
    """Read a train/test class-folder tree (or a Tiny-ImageNet tree) into an ImageDataset.

    Files that do not decode fail the load, naming them (``skip_bad``: left out with a warning).

    Decoded arrays are cached in ``<cache_dir>/<name>-<hash>.npz`` (keyed by root path, file list, mtimes and
    image_size) and reused. ``val_fraction`` holds out that fraction of each training class as validation;
    for Tiny-ImageNet the official validation images are split per class, half val and half test (seeded).
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise _missing(f"dataset folder {root} does not exist", root)
    tiny = _is_tiny_imagenet(root)
    if tiny and val_fraction:
        raise ValueError(
            "val_fraction must be 0 for the Tiny-ImageNet layout: its validation set comes from the official "
            "val/ images (half val, half test)"
        )
    listing = _scan_tiny_imagenet(root) if tiny else _scan_classes(root)
    name = name or root.resolve().name
    size = _target_size(image_size)
    arrays = None
    cache_path = None
    if use_cache:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        cache_path = Path(cache_dir).expanduser() if cache_dir is not None else cache_root()
        cache_path = cache_path / f"{safe}-{_cache_key(root, listing, size, skip_bad)}.npz"
        arrays = _load_cache(cache_path)
    if arrays is None:
        x_train, train_kept = decode_images(listing.train_files, size, num_workers, skip_bad=skip_bad)
        x_test, test_kept = decode_images(listing.test_files, size, num_workers, skip_bad=skip_bad)
        if size is None and x_test.shape[1:] != x_train.shape[1:]:
            raise ValueError(f"test images are {x_test.shape[1:3]} but training images are {x_train.shape[1:3]}")
        arrays = {
            "x_train": x_train,
            "y_train": listing.train_labels[train_kept],
            "x_test": x_test,
            "y_test": listing.test_labels[test_kept],
            "class_names": np.asarray(listing.class_names, dtype=str),
        }
        if cache_path is not None:
            _save_cache(cache_path, arrays)
    class_names = tuple(str(c) for c in arrays["class_names"])
    if tiny:
        val_idx, test_idx = per_class_holdout(arrays["y_test"], 0.5, seed)
        x_pool, y_pool = arrays["x_test"], arrays["y_test"]
        return ImageDataset(
            name,
            arrays["x_train"],
            arrays["y_train"],
            x_pool[test_idx],
            y_pool[test_idx],
            class_names,
            x_val=x_pool[val_idx],
            y_val=y_pool[val_idx],
        )
    return with_validation(
        name,
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        class_names,
        val_fraction,
        seed,
    )
