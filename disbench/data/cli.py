"""`disbench data`: list, download, describe and preview the datasets.

    disbench data list                  every dataset, its factors and whether it is on disk
    disbench data download NAME|all     fetch the official files and build the cache
    disbench data info NAME             files, URLs, digests, factors, options
    disbench data show NAME [--out F]   PNG of random samples and one traversal per factor

`download` and `show` take loader options as `-o KEY=VALUE`, e.g. `-o source=procedural`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from disbench import data
from disbench.errors import DisbenchError

SAMPLE_ROWS, COLUMNS, GAP = 2, 10, 2


def _human(size: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError


def _disk_usage(data_dir: Path, info: data.DatasetInfo) -> int:
    return sum(p.stat().st_size for sub in info.subdirs if (data_dir / sub).is_dir()
               for p in (data_dir / sub).rglob("*") if p.is_file())


def _presence(data_dir: Path, info: data.DatasetInfo) -> str:
    if all((data_dir / path).is_file() for path in info.ready):
        return "yes"
    return "partly" if _disk_usage(data_dir, info) else "no"


def _factors(info: data.DatasetInfo, sep: str = " ") -> str:
    return sep.join(f"{n}:{s}" for n, s in zip(info.factor_names, info.factor_sizes))


def _data_dir(path: Path | None) -> Path:
    data_dir = path if path is not None else data.default_data_dir()
    if data_dir.exists() and not data_dir.is_dir():
        raise DisbenchError(f"the data directory {data_dir} is not a directory.")
    return data_dir


def _info(name: str) -> data.DatasetInfo:
    info = data.info(name)  # raises for an unknown name
    if info is None:
        raise DisbenchError(f"dataset '{name}' was registered without a description.")
    return info


def cmd_list(data_dir: Path) -> int:
    rows = [("name", "images", "source", "on disk", "size", "factors")]
    for name in data.names():
        info = data.info(name)
        if info is None:
            rows.append((name, "?", "user", "?", "?", "?"))
            continue
        rows.append((name, f"{info.num_images:,}", info.source, _presence(data_dir, info),
                     _human(_disk_usage(data_dir, info)), _factors(info)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)) + "  " + row[-1])
    print(f"\ndata directory: {data_dir}")
    return 0


def cmd_info(name: str, data_dir: Path) -> int:
    info = _info(name)
    options = ", ".join(f"{k}={v!r}" for k, v in data.options(name).items()) or "none"
    print(f"{name}: {info.summary}")
    print(f"factors: {_factors(info, ', ')}")
    instances = f", {info.instances} instances each (drawn at random)" if info.instances > 1 \
        else ""
    print(f"images: {info.num_images:,} ({info.channels} x 64 x 64){instances}")
    print(f"source: {info.source}")
    print(f"options: {options}")
    print(f"data directory: {data_dir}")
    for remote in info.remotes:
        state = "present" if (data_dir / remote.subdir / remote.filename).is_file() else "absent"
        print(f"  file {remote.subdir}/{remote.filename} ({state})\n"
              f"    from {remote.url}\n    checksum {remote.checksum or 'none published'}")
    for path in info.ready:
        state = "present" if (data_dir / path).is_file() else "absent"
        print(f"  ready when {path} exists ({state})")
    print(f"on disk: {_human(_disk_usage(data_dir, info))}")
    return 0


def cmd_download(name: str, data_dir: Path, options: dict) -> int:
    todo = data.names() if name == "all" else [name]
    failed = 0
    for each in todo:
        try:
            dataset = data.load(each, data_dir, **options)
        except DisbenchError as err:
            if name != "all":
                raise
            print(f"error: {each}: {err}", file=sys.stderr)
            failed = err.exit_code
            continue
        print(f"{each}: ready, {len(dataset.images):,} images in {data_dir}")
    return failed


def mosaic(rows: list[np.ndarray]) -> np.ndarray:
    """Rows of observations (n, C, H, W) in [0, 1] -> one RGB image, grey between cells."""
    c, h, w = rows[0].shape[1:]
    out = np.full((len(rows) * (h + GAP) + GAP, COLUMNS * (w + GAP) + GAP, 3), 0.5, np.float32)
    for r, row in enumerate(rows):
        for i, obs in enumerate(row):
            y, x = GAP + r * (h + GAP), GAP + i * (w + GAP)
            out[y:y + h, x:x + w] = np.repeat(obs, 3 // c, axis=0).transpose(1, 2, 0)
    return out


def cmd_show(name: str, data_dir: Path, options: dict, out: Path | None, seed: int) -> int:
    from disbench.visualize import save_image

    dataset = data.load(name, data_dir, **options)
    rng = np.random.default_rng(seed)
    rows = [dataset.sample_observations_from_factors(dataset.sample_factors(COLUMNS, rng), rng)
            for _ in range(SAMPLE_ROWS)]
    legend = [f"rows 1-{SAMPLE_ROWS}: random samples"]
    base = dataset.sample_factors(1, rng)[0]
    for k, (factor, size) in enumerate(zip(dataset.factor_names, dataset.factor_sizes)):
        values = np.unique(np.linspace(0, size - 1, min(size, COLUMNS)).round().astype(int))
        factors = np.repeat(base[None], len(values), axis=0)
        factors[:, k] = values
        rows.append(dataset.sample_observations_from_factors(factors, rng))
        legend.append(f"row {len(rows)}: {factor} = {', '.join(map(str, values))}")
    out = out or Path(f"{name}.png")
    try:
        save_image(out, mosaic(rows))
    except OSError as err:
        raise DisbenchError(f"could not write {out}: {err}") from None
    print(f"{out}: {dataset!r}, other factors at {tuple(int(v) for v in base)}")
    print("\n".join(legend))
    return 0


def factor_frames(dataset, base: np.ndarray, rng) -> list[np.ndarray]:
    """Frames (RGB uint8) with each factor varied in turn over all its values, the others
    fixed at ``base``; a caption line above each image names the factor and its value."""
    from PIL import Image, ImageDraw

    from disbench.visualize import to_rgb

    frames = []
    for k, (factor, size) in enumerate(zip(dataset.factor_names, dataset.factor_sizes)):
        factors = np.repeat(base[None], size, axis=0)
        factors[:, k] = np.arange(size)
        cells = to_rgb(dataset.sample_observations_from_factors(factors, rng))
        for value, cell in enumerate(cells):
            frame = Image.new("RGB", (max(cell.shape[1], 140), cell.shape[0] + 14), "white")
            frame.paste(Image.fromarray(cell), (0, 14))
            ImageDraw.Draw(frame).text((2, 1), f"{factor} = {value} of {size}", fill=(0, 0, 0))
            frames.append(np.asarray(frame))
    return frames


def cmd_show_gif(name: str, data_dir: Path, options: dict, out: Path | None, seed: int) -> int:
    from disbench.visualize import save_gif

    dataset = data.load(name, data_dir, **options)
    rng = np.random.default_rng(seed)
    base = dataset.sample_factors(1, rng)[0]
    frames = factor_frames(dataset, base, rng)
    out = out or Path(f"{name}.gif")
    try:
        save_gif(out, frames, frame_ms=150)
    except OSError as err:
        raise DisbenchError(f"could not write {out}: {err}") from None
    print(f"{out}: {dataset!r}, {len(frames)} frames: each factor in turn over its values, "
          f"the others at {tuple(int(v) for v in base)}")
    return 0


def _option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key, {"true": True, "false": False}.get(value.lower(), value)


def _parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--data-dir", type=Path, default=None,
                        help="data directory (default: $DISBENCH_DATA or ~/.cache/disbench)")
    loading = argparse.ArgumentParser(add_help=False)
    loading.add_argument("-o", "--option", type=_option, action="append", default=[],
                         metavar="KEY=VALUE", help="a loader option, e.g. source=procedural")
    parser = argparse.ArgumentParser(prog="disbench data", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("list", parents=[common], help="every dataset and whether it is on disk")
    p = sub.add_parser("download", parents=[common, loading],
                       help="fetch files and build the cache")
    p.add_argument("name", help="a dataset name, or 'all'")
    p = sub.add_parser("info", parents=[common], help="files, URLs, digests, factors")
    p.add_argument("name")
    p = sub.add_parser("show", parents=[common, loading],
                       help="PNG of samples and factor traversals (--gif: an animation)")
    p.add_argument("name")
    p.add_argument("--gif", action="store_true",
                   help="an animated GIF instead: each factor varied in turn, the others fixed")
    p.add_argument("--out", type=Path, default=None,
                   help="the file to write (default: NAME.png, or NAME.gif with --gif)")
    p.add_argument("--seed", type=int, default=0)
    return parser


def main(argv: list[str]) -> int:
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit:  # --help, or a usage error already printed by argparse
        return int(exit.code or 0)
    try:
        data_dir = _data_dir(args.data_dir)
        if args.command == "list":
            return cmd_list(data_dir)
        if args.command == "info":
            return cmd_info(args.name, data_dir)
        options = dict(args.option)
        if args.command == "download":
            return cmd_download(args.name, data_dir, options)
        show = cmd_show_gif if args.gif else cmd_show
        return show(args.name, data_dir, options, args.out, args.seed)
    except DisbenchError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
