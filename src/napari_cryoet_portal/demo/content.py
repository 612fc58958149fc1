"""The demo portal's content: depositions, datasets, runs, tomograms and annotations.

`generate` writes, for a size, the API rows (`tables.json`, keyed by GraphQL type name) and the
bucket tree they point at (`bucket/<key>`), then `COMPLETE`; see docs/demo-portal.md. Output is
a pure function of the size and GENERATOR_VERSION: fixed seeds, stable ids, fixed dates.
"""

from __future__ import annotations

import base64
import json
import re
import zlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from . import bucket as enc
from . import virtual as vo
from .volumes import (
    Block,
    Scene,
    Shell,
    Wall,
    ball_labels,
    filament,
    icosphere,
    membrane_mask,
    random_rotations,
    render,
    scene_to_json,
)

BUCKET = "cryoet-demo-portal-public"
S3_ROOT = "s3://cryoet-demo-portal-public/"
HTTPS_ROOT = "https://files.demo-portal.invalid/"
GENERATOR_VERSION = 4
SIZES = ("small", "large")

# white noise (standard deviation) on tomograms whose structure peaks at ~1-1.6: raw
# reconstructions are noise-dominated voxel by voxel, denoised ones much less
RAW_NOISE = 0.6
DENOISED_NOISE = 0.12

SHOWCASE_DATASET_ID = 10000
SHOWCASE_RUN_NAME = "TS_001"
SHOWCASE_FINE_SPACING = 10.0  # raw + denoised tomograms, five annotations of every shape
SHOWCASE_COARSE_SPACING = 16.0  # one tomogram and the coarse ribosome picks, same field of view
SHOWCASE_EXTENT = (640.0, 1280.0, 1280.0)  # Å, z y x: 64×128×128 fine, 40×80×80 coarse
BIG_DATASET_ID = 10001  # 150 tiny runs: more than a connection's 100 edges
BIG_DATASET_RUNS = 150
LARGE_TOMOGRAM_DATASET_ID = 10004  # large only
LARGE_TOMOGRAM_RUN_NAME = "TS_LARGE"
LARGE_TOMOGRAM_SHAPE = (256, 768, 768)  # z y x at LARGE_TOMOGRAM_SPACING
LARGE_TOMOGRAM_SPACING = 13.48
LARGE_TOMOGRAM_BINNED_SPACING = 26.96  # its second tomogram: 2× binned, denoised
PORTAL_TOMOGRAM_RUN_NAME = "TS_026"  # large only, in LARGE_TOMOGRAM_DATASET_ID: a real-sized
PORTAL_TOMOGRAM_SHAPE = (1000, 928, 960)  # tomogram (z y x), its chunks made on request
PORTAL_TOMOGRAM_SPACING = 13.48
ML_DATASET_ID = 10010  # like 10445: no default tomogram, annotations at the finer spacing only
ML_RUN_NAME = "TS_105_5"
ML_COARSE_SPACING = 10.012  # raw (WBP) + denoised tomograms
ML_FINE_SPACING = 4.99  # one tomogram and every annotation file
ML_COARSE_SHAPE = (64, 128, 128)
ML_FINE_SHAPE = (128, 256, 256)
LEGACY_DATASET_ID = 10011  # stores as the portal wrote them before 2024, and odd ones
LEGACY_RUN_NAME = "TS_LEGACY"
LEGACY_SPACING = 13.48
LEGACY_SHAPE = (48, 96, 96)
HUGE_DATASET_ID = 10005  # large only: the dataset with > 1000 runs
HUGE_DATASET_RUNS = 1200
LARGE_DATASETS = 200
LARGE_RUNS = 5000

# every table the official client touches, in tables.json order
TYPES = (
    "Deposition",
    "Dataset",
    "DatasetAuthor",
    "DatasetFunding",
    "Run",
    "Tiltseries",
    "Alignment",
    "TomogramVoxelSpacing",
    "Tomogram",
    "TomogramAuthor",
    "Annotation",
    "AnnotationAuthor",
    "AnnotationMethodLink",
    "AnnotationShape",
    "AnnotationFile",
    "IdentifiedObject",
)
SEED = 20240917
TINY_SHAPE = (16, 32, 32)  # the bulk runs' tomograms, from a few pre-encoded templates
TINY_SPACING = 13.48
Row = dict[str, Any]


def generate(size: str, out_dir: Path) -> None:
    """Write `tables.json`, `bucket/` and finally `COMPLETE` for `size` into `out_dir`."""
    if size not in SIZES:
        raise ValueError(f"unknown demo portal size {size!r}; expected one of {SIZES}")
    portal = _Portal(enc.Bucket(out_dir / "bucket"), out_dir)
    _small(portal)
    if size == "large":
        _large(portal)
    portal.finish()
    (out_dir / "tables.json").write_text(portal.tables_json())
    if portal.virtual["arrays"] or portal.virtual["templated"]:
        (out_dir / vo.VIRTUAL_JSON).write_text(json.dumps(portal.virtual, separators=(",", ":")))
    (out_dir / "COMPLETE").write_text(f"{size} v{GENERATOR_VERSION}\n")


def s3_url(key: str) -> str:
    return S3_ROOT + key


def https_url(key: str) -> str:
    return HTTPS_ROOT + key


def bucket_key(url: str) -> str:
    """The bucket key an `s3*`/`https*` URL of the tables points at (its path under `bucket/`)."""
    for root in (S3_ROOT, HTTPS_ROOT):
        if url.startswith(root):
            return url.removeprefix(root)
    raise ValueError(f"{url!r} is not a demo portal URL")


def _when(day: int) -> str:
    return f"{date(2022, 1, 3) + timedelta(days=day)}T00:00:00+00:00"


def _dates(day: int) -> Row:
    return {
        "depositionDate": _when(day),
        "releaseDate": _when(day + 56),
        "lastModifiedDate": _when(day + 120),
    }


def _nulls(names: str) -> Row:
    """Nullable fields this demo leaves empty, listed so every row has every scalar."""
    return dict.fromkeys(names.split())


def _photo_keys(prefix: str, stem: str = "") -> dict[str, str]:
    return {kind: f"{prefix}{stem}{kind}.png" for kind in ("snapshot", "thumbnail")}


def _xyz(points_zyx: np.ndarray, spacing: float) -> np.ndarray:
    """Å (z, y, x) → voxel indices (x, y, z) at `spacing`, the ndjson convention."""
    return np.asarray(points_zyx)[:, ::-1] / spacing


def _dims(shape: tuple[int, ...], level: int) -> str:
    z, y, x = (n >> level for n in shape)
    return f"{x},{y},{z}"


# ---------------------------------------------------------------- vocabulary


@dataclass(frozen=True)
class _Obj:
    """An annotated (or identified) object, as the portal names it."""

    name: str
    id: str
    description: str
    state: str | None = None

    @property
    def stem(self) -> str:  # file-name prefix, as the portal's get_filename_prefix
        return re.sub(r"[^0-9a-z]", "_", self.name.lower())


RIBOSOME = _Obj(
    "cytosolic ribosome",
    "GO:0022626",
    "Ribosomes free in the cytosol (80S in eukaryotes, 70S in bacteria).",
)
PROTEASOME = _Obj(
    "26S proteasome",
    "GO:0000502",
    "Proteasome complexes; elongated particles, orientation annotated.",
)
ACTIN = _Obj(
    "actin filament", "GO:0005884", "Filamentous actin traced as instances, one id per filament."
)
MEMBRANE = _Obj("membrane", "GO:0016020", "Lipid bilayers: plasma membrane and vesicle membranes.")
VESICLE = _Obj("vesicle", "GO:0031982", "Membrane-bounded vesicles, one instance each.")
SPIKE = _Obj(
    "spike glycoprotein",
    "UniProtKB:P0DTC2",
    "SARS-CoV-2 S protein trimers on the virion envelope.",
    "prefusion",
)
ENVELOPE = _Obj("viral envelope", "GO:0019031", "Lipid envelope of the virion.")
RUBISCO = _Obj(
    "Rubisco",
    "UniProtKB:P00877",
    "Ribulose-1,5-bisphosphate carboxylase/oxygenase in the pyrenoid.",
)
ATP_SYNTHASE = _Obj("ATP synthase", "GO:0045259", "Proton-transporting ATP synthase complexes.")
RNA_POLYMERASE = _Obj("RNA polymerase", "GO:0000428", "DNA-directed RNA polymerase complexes.")
BULK_OBJECTS = (
    RIBOSOME,
    RUBISCO,
    ATP_SYNTHASE,
    _Obj("nucleosome", "GO:0000786", "Nucleosome core particles."),
    _Obj("nuclear pore complex", "GO:0005643", "Nuclear pore complexes in the nuclear envelope."),
    _Obj("fatty acid synthase complex", "GO:0005835", "Fatty acid synthase barrels."),
    _Obj("apoferritin", "UniProtKB:P02794", "Ferritin heavy chain 24-mers."),
    _Obj("beta-galactosidase", "UniProtKB:P00722", "E. coli beta-galactosidase tetramers."),
)


@dataclass(frozen=True)
class _Method:
    """How an annotation was made: what the API's method and quality fields report."""

    text: str
    software: str
    kind: str  # annotation_method_type_enum
    ground_truth: bool
    curated: bool
    links: tuple[tuple[str, str, str], ...]  # (linkType, name, link)
    precision: float | None = None
    recall: float | None = None


MANUAL = _Method(
    "Particle centres picked manually in IMOD 3dmod",
    "IMOD 4.11",
    "manual",
    True,
    True,
    (("documentation", "IMOD", "https://bio3d.colorado.edu/imod/"),),
)
TEMPLATE = _Method(
    "Template matching with pytom-match-pick, thresholded and curated by eye",
    "pytom-match-pick 0.7",
    "hybrid",
    False,
    True,
    (("source_code", "pytom-match-pick", "https://github.com/SBC-Utrecht/pytom-match-pick"),),
    0.92,
    0.86,
)
MEMBRAIN = _Method(
    "Membrane segmentation with MemBrain-seg (pretrained model), meshes from marching cubes",
    "membrain-seg 0.0.6",
    "automated",
    False,
    False,
    (
        ("source_code", "MemBrain-seg", "https://github.com/teamtomo/membrain-seg"),
        ("models_weights", "MemBrain-seg v10", "https://github.com/teamtomo/membrain-seg"),
    ),
)
TRACING = _Method(
    "Semi-automated filament tracing in Amira, points resampled every 3 nm",
    "Amira 2022.2",
    "hybrid",
    True,
    True,
    (("website", "Amira", "https://www.thermofisher.com/amira"),),
)
FIRST_NAMES = ("Ana", "Bo", "Chen", "Dara", "Emeka", "Farah", "Gus", "Hana", "Ivo", "Jun", "Kofi")
LAST_NAMES = ("Okafor", "Petrov", "Quist", "Rahman", "Sato", "Tanaka", "Ueda", "Varga", "Weiss")
AFFILIATIONS = (
    "Demo Institute for Structural Biology",
    "University of Examples",
    "Synthetic Imaging Center",
)
FUNDERS = ("Chan Zuckerberg Initiative", "Example Science Foundation", "Demo Research Council")


# ---------------------------------------------------------------- the portal builder


@dataclass
class _Dataset:
    row: Row
    runs: int = 0
    photos: tuple[bytes, bytes] | None = None  # from its first default tomogram (or first one)
    photos_from_default: bool = False


@dataclass
class _Run:
    dataset: _Dataset
    row: Row
    alignment: Row
    key: str  # bucket prefix, "10000/TS_001/"
    day: int

    @property
    def name(self) -> str:
        return self.row["name"]

    @property
    def deposition_id(self) -> int:
        return self.dataset.row["depositionId"]


@dataclass
class _Spacing:
    run: _Run
    row: Row
    key: str  # ".../Reconstructions/VoxelSpacing10.000/"

    @property
    def value(self) -> float:
        return self.row["voxelSpacing"]


@dataclass
class _File:
    """One annotation file: its shape, format, default flag and how to write it at a key.

    `file_shape` is the shape as ingestion names it in the file name and the metadata JSON
    when it differs from the API's enum (meshes: "TriangularMesh" files, "Mesh" rows)."""

    shape: str
    format: str
    default: bool
    write: Callable[[str], int]
    file_shape: str | None = None

    @property
    def ingested_shape(self) -> str:
        return self.file_shape or self.shape


@dataclass
class _Portal:
    bucket: enc.Bucket
    out_dir: Path | None = None  # the content directory (virtual objects' templates go there)
    tables: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in TYPES})
    datasets: list[_Dataset] = field(default_factory=list)
    _counters: defaultdict[str, int] = field(default_factory=lambda: defaultdict(lambda: 100))
    #: virtual.json: objects served by demo.virtual, not stored in bucket/
    virtual: dict[str, Any] = field(
        default_factory=lambda: {
            "version": vo.FORMAT_VERSION,
            "scenes": {},
            "arrays": [],
            "templates": {},
            "templated": {},
        }
    )
    virtual_sizes: dict[str, int] = field(default_factory=dict)  # their keys → sizes
    #: tomogram id → (metadata key, authors, paths, folder number): the metadata is rewritten
    #: when a viewer config is added
    _tomogram_meta: dict[int, tuple[str, list[Row], dict[str, Any], int]] = field(
        default_factory=dict
    )
    #: annotation id → (spacing key, "{n}-{stem}", object name, files as the metadata lists them)
    _annotations: dict[int, tuple[str, str, str, list[dict[str, Any]]]] = field(
        default_factory=dict
    )

    def add(self, type_name: str, id: int | None = None, **fields: Any) -> Row:
        table = self.tables[type_name]
        row = {"id": len(table) + 1 if id is None else id, **fields}
        row["_id"] = base64.b64encode(f"{type_name}:{row['id']}".encode()).decode()
        table.append(row)
        return row

    def _next(self, container: str) -> int:
        """The portal's per-container directory counter ({n} starts at 100)."""
        n = self._counters[container]
        self._counters[container] = n + 1
        return n

    def _people(self, type_name: str, fk: str, owner: int, n: int, salt: int) -> list[Row]:
        rows = []
        for i in range(n):
            k = salt * 7 + i * 5
            name = f"{FIRST_NAMES[k % len(FIRST_NAMES)]} {LAST_NAMES[(k // 3) % len(LAST_NAMES)]}"
            rows.append(
                self.add(
                    type_name,
                    **{fk: owner},
                    authorListOrder=i + 1,
                    orcid=f"0000-0000-{salt % 10000:04d}-{i:04d}",
                    name=name,
                    email=f"{name.lower().replace(' ', '.')}@example.org" if i == n - 1 else None,
                    affiliationName=AFFILIATIONS[k % len(AFFILIATIONS)],
                    **_nulls("kaggleId affiliationAddress affiliationIdentifier"),
                    correspondingAuthorStatus=i == n - 1,
                    primaryAuthorStatus=i == 0,
                )
            )
        return rows

    # ---- containers

    def deposition(self, id: int, title: str, description: str, day: int) -> Row:
        photos = _photo_keys(f"depositions_metadata/{id}/Images/")
        return self.add(
            "Deposition",
            id=id,
            title=title,
            description=description,
            depositionPublications=f"doi:10.5555/demo.{id}",
            **_nulls("tag relatedDatabaseEntries"),
            **_dates(day),
            keyPhotoUrl=https_url(photos["snapshot"]),
            keyPhotoThumbnailUrl=https_url(photos["thumbnail"]),
        )

    def dataset(self, spec: _DatasetSpec) -> _Dataset:
        key = f"{spec.id}/"
        row = self.add(
            "Dataset",
            id=spec.id,
            depositionId=spec.deposition_id,
            title=spec.title,
            description=spec.description,
            assayLabel="cryo-electron tomography",
            assayOntologyId="EFO:0002594",
            **_nulls(
                "developmentStageName developmentStageOntologyId diseaseName diseaseOntologyId"
            ),
            organismName=spec.organism[0],
            organismTaxid=spec.organism[1],
            tissueName=spec.tissue[0],
            tissueId=spec.tissue[1],
            cellName=spec.cell[0],
            cellTypeId=spec.cell[1],
            cellStrainName=spec.strain[0],
            cellStrainId=spec.strain[1],
            sampleType=spec.sample_type,
            samplePreparation=spec.sample_preparation,
            gridPreparation=spec.grid_preparation,
            keyPhotoUrl=https_url(f"{key}Images/snapshot.png"),
            keyPhotoThumbnailUrl=https_url(f"{key}Images/thumbnail.png"),
            **_nulls("otherSetup cellComponentName cellComponentId relatedDatabaseEntries"),
            **_dates(spec.day),
            datasetPublications=f"doi:10.5555/demo.{spec.id}",
            s3Prefix=s3_url(key),
            httpsPrefix=https_url(key),
            fileSize=None,  # set by finish()
        )
        self._people("DatasetAuthor", "datasetId", spec.id, 3 if spec.id < 10004 else 2, spec.id)
        for i in range(1 + spec.id % 2):
            self.add(
                "DatasetFunding",
                datasetId=spec.id,
                fundingAgencyName=FUNDERS[(spec.id + i) % len(FUNDERS)],
                grantId=f"DEMO-{spec.id}-{i + 1}",
            )
        ds = _Dataset(row)
        self.datasets.append(ds)
        return ds

    def run(
        self,
        ds: _Dataset,
        name: str,
        extent: tuple[float, float, float],
        pixel_spacing: float,
        day: int | None = None,
    ) -> _Run:
        """A run with its tilt series and its one alignment (extent: the volume, Å z y x)."""
        ds.runs += 1
        day = ds.row["id"] % 97 + ds.runs % 13 if day is None else day
        key = f"{ds.row['id']}/{name}/"
        dep = ds.row["depositionId"]
        row = self.add(
            "Run",
            datasetId=ds.row["id"],
            name=name,
            s3Prefix=s3_url(key),
            httpsPrefix=https_url(key),
        )
        self.bucket.put_json(key + "run_metadata.json", enc.run_metadata(row, dep, _when(day)[:10]))
        ts = self.add(
            "Tiltseries",
            runId=row["id"],
            depositionId=dep,
            # no tilt-series files in the demo bucket
            **_nulls("s3OmezarrDir fileSizeOmezarr s3MrcFile fileSizeMrc httpsOmezarrDir"),
            **_nulls("httpsMrcFile s3AngleList httpsAngleList alignedTiltseriesBinning"),
            **_nulls("microscopePhasePlate microscopeImageCorrector microscopeAdditionalInfo"),
            **_nulls("relatedEmpiarEntry"),
            accelerationVoltage=300000,
            sphericalAberrationConstant=2.7,
            microscopeManufacturer="TFS",
            microscopeModel="Krios G4",
            microscopeEnergyFilter="Selectris X",
            cameraManufacturer="Falcon",
            cameraModel="Falcon 4i",
            tiltMin=-60.0,
            tiltMax=60.0,
            tiltRange=120.0,
            tiltStep=3.0,
            tiltingScheme="dose symmetric",
            tiltAxis=84.7,
            totalFlux=120.0,
            dataAcquisitionSoftware="Tomo5",
            binningFromFrames=1.0,
            tiltSeriesQuality=4 - ds.runs % 2,
            isAligned=False,
            pixelSpacing=pixel_spacing,
            sizeX=round(extent[2] / pixel_spacing),
            sizeY=round(extent[1] / pixel_spacing),
            sizeZ=41,
        )
        al_key = key + "Alignments/100/alignment_metadata.json"
        alignment = self.add(
            "Alignment",
            depositionId=dep,
            tiltseriesId=ts["id"],
            runId=row["id"],
            alignmentType="GLOBAL",
            alignmentMethod="projection_matching",
            volumeXDimension=extent[2],
            volumeYDimension=extent[1],
            volumeZDimension=extent[0],
            volumeXOffset=0.0,
            volumeYOffset=0.0,
            volumeZOffset=0.0,
            xRotationOffset=0.0,
            tiltOffset=0.0,
            affineTransformationMatrix=json.dumps(np.eye(4, dtype=int).tolist()),
            s3AlignmentMetadata=s3_url(al_key),
            httpsAlignmentMetadata=https_url(al_key),
            isPortalStandard=True,
        )
        self.bucket.put_json(al_key, enc.alignment_metadata(alignment))
        return _Run(ds, row, alignment, key, day)

    def spacing(self, run: _Run, value: float) -> _Spacing:
        key = f"{run.key}Reconstructions/VoxelSpacing{value:.3f}/"
        row = self.add(
            "TomogramVoxelSpacing",
            runId=run.row["id"],
            voxelSpacing=value,
            s3Prefix=s3_url(key),
            httpsPrefix=https_url(key),
        )
        return _Spacing(run, row, key)

    # ---- data

    def tomogram(
        self,
        sp: _Spacing,
        shape: tuple[int, int, int],
        write_zarr: Callable[[str], int],
        photos: Callable[[], tuple[bytes, bytes]],
        processing: str = "raw",
        default: bool = True,
        *,
        standard: bool | None = None,
        method: str = "WBP",
        day: int | None = None,
    ) -> Row:
        """Write one tomogram's zarr, key photos (made after the zarr, which may collect the
        central slice while streaming) and metadata; add its rows. `standard` (isPortalStandard)
        defaults to raw tomograms; author-submitted is everything not portal-standard."""
        run = sp.run
        n = self._next(sp.key + "Tomograms")
        folder = f"{sp.key}Tomograms/{n}/"
        zarr_key = f"{folder}{run.name}.zarr"
        zarr_size = write_zarr(zarr_key)
        snapshot, thumbnail = photos()
        photo_keys = _photo_keys(f"{sp.key}Images/{n}/", "key-photo-")
        self.bucket.put(photo_keys["snapshot"], snapshot)
        self.bucket.put(photo_keys["thumbnail"], thumbnail)
        ds = run.dataset
        if ds.photos is None or (default and not ds.photos_from_default):
            ds.photos, ds.photos_from_default = (snapshot, thumbnail), default
        standard = processing == "raw" if standard is None else standard
        row = self.add(
            "Tomogram",
            alignmentId=run.alignment["id"],
            depositionId=run.deposition_id,
            runId=run.row["id"],
            tomogramVoxelSpacingId=sp.row["id"],
            name=run.name,
            sizeX=shape[2],
            sizeY=shape[1],
            sizeZ=shape[0],
            voxelSpacing=sp.value,
            fiducialAlignmentStatus="NON_FIDUCIAL",
            reconstructionMethod=method,
            processing=processing,
            tomogramVersion=1.0,
            processingSoftware="cryoCARE 0.3" if processing == "denoised" else None,
            reconstructionSoftware="AreTomo2 1.1",
            isPortalStandard=standard,
            isAuthorSubmitted=not standard,
            isVisualizationDefault=default,
            s3OmezarrDir=s3_url(zarr_key),
            httpsOmezarrDir=https_url(zarr_key),
            fileSizeOmezarr=float(zarr_size),
            **_nulls("s3MrcFile httpsMrcFile fileSizeMrc"),  # no MRC files: too big for a demo
            **{f"scale{i}Dimensions": _dims(shape, i) for i in range(enc.LEVELS)},
            ctfCorrected=True,
            offsetX=0,
            offsetY=0,
            offsetZ=0,
            keyPhotoUrl=https_url(photo_keys["snapshot"]),
            keyPhotoThumbnailUrl=https_url(photo_keys["thumbnail"]),
            **_nulls("neuroglancerConfig publications relatedDatabaseEntries"),
            **_dates((run.day if day is None else day) + 7),
        )
        authors = self._people("TomogramAuthor", "tomogramId", row["id"], 1, run.dataset.row["id"])
        paths = {
            "omezarr_dir": zarr_key,
            "key_photo": photo_keys,
            "alignment_metadata_path": run.alignment["s3AlignmentMetadata"].removeprefix(S3_ROOT),
            "neuroglancer_config_path": None,
        }
        meta_key = folder + "tomogram_metadata.json"
        self._tomogram_meta[row["id"]] = (meta_key, authors, paths, n)
        self.bucket.put_json(meta_key, enc.tomogram_metadata(row, authors, paths))
        return row

    def neuroglancer(self, tomo: Row, sp: _Spacing, volume: np.ndarray) -> None:
        """Give a visualization-default tomogram the viewer state the portal's ingestion writes
        (importers/visualization_config.py): the image layer with the curators' contrast range,
        then a layer per annotation file of its voxel spacing, named "{n} {object} {kind}",
        sourced from the spacing's NeuroglancerPrecompute/{n}-{stem}_{shape}; the API returns
        it as a JSON string. `volume` is the full-resolution tomogram (for the range)."""
        config = _neuroglancer_config(tomo, sp, volume, self._spacing_annotations(sp.key))
        text = json.dumps(config, separators=(",", ":"))
        tomo["neuroglancerConfig"] = text
        meta_key, authors, paths, n = self._tomogram_meta[tomo["id"]]
        key = f"{sp.key}NeuroglancerPrecompute/{n}-neuroglancer_config.json"
        self.bucket.put(key, text.encode())
        paths["neuroglancer_config_path"] = key
        self.bucket.put_json(meta_key, enc.tomogram_metadata(tomo, authors, paths))

    def _spacing_annotations(self, spacing_key: str) -> list[tuple[str, str, list[dict]]]:
        return [
            (prefix, name, files)
            for key, prefix, name, files in self._annotations.values()
            if key == spacing_key
        ]

    def annotation(
        self,
        sp: _Spacing,
        obj: _Obj,
        method: _Method,
        count: int,
        files: list[_File],
        deposition_id: int | None = None,
        source: str = "dataset_author",
        day: int | None = None,
    ) -> Row:
        """Write one annotation's files and metadata JSON; add its rows (one shape per distinct
        shape type, one file row per file)."""
        run = sp.run
        n = self._next(sp.key + "Annotations")
        folder = f"{sp.key}Annotations/{n}/"
        stem = f"{obj.stem}-1.0"
        meta_key = f"{folder}{stem}.json"
        ann = self.add(
            "Annotation",
            runId=run.row["id"],
            depositionId=deposition_id or run.deposition_id,
            tomogramVoxelSpacingId=sp.row["id"],
            s3MetadataPath=s3_url(meta_key),
            httpsMetadataPath=https_url(meta_key),
            annotationPublication=f"doi:10.5555/demo.{run.dataset.row['id']}",
            annotationMethod=method.text,
            annotationIngestId=f"{obj.stem.replace('_', '-')}-1",
            groundTruthStatus=method.ground_truth,
            objectId=obj.id,
            objectName=obj.name,
            objectDescription=obj.description,
            objectState=obj.state,
            objectCount=count,
            confidencePrecision=method.precision,
            confidenceRecall=method.recall,
            groundTruthUsed="manual picks of a subset" if method.precision is not None else None,
            annotationSoftware=method.software,
            isCuratorRecommended=method.curated,
            methodType=method.kind,
            **_dates((run.day if day is None else day) + 30),
        )
        shapes: dict[str, Row] = {}
        listing = []
        for f in files:
            if f.shape not in shapes:
                shapes[f.shape] = self.add(
                    "AnnotationShape", annotationId=ann["id"], shapeType=f.shape
                )
            key = f"{folder}{stem}_{f.ingested_shape.lower()}.{f.format}"
            size = f.write(key)
            self.add(
                "AnnotationFile",
                alignmentId=run.alignment["id"],
                annotationShapeId=shapes[f.shape]["id"],
                tomogramVoxelSpacingId=sp.row["id"],
                format=f.format,
                s3Path=s3_url(key),
                fileSize=float(size),
                httpsPath=https_url(key),
                isVisualizationDefault=f.default,
                source=source,
            )
            listing.append(
                {
                    "format": f.format,
                    "path": key,
                    "shape": f.ingested_shape,
                    "is_visualization_default": f.default,
                }
            )
        authors = self._people(
            "AnnotationAuthor",
            "annotationId",
            ann["id"],
            2 if method.ground_truth else 1,
            ann["id"],
        )
        links = [
            self.add(
                "AnnotationMethodLink", annotationId=ann["id"], linkType=t, name=name, link=link
            )
            for t, name, link in method.links
        ]
        al_path = run.alignment["s3AlignmentMetadata"].removeprefix(S3_ROOT)
        self.bucket.put_json(
            meta_key, enc.annotation_metadata(ann, authors, links, listing, al_path)
        )
        self._annotations[ann["id"]] = (sp.key, f"{n}-{stem}", obj.name, listing)
        return ann

    def identified(self, run: _Run, obj: _Obj) -> None:
        self.add(
            "IdentifiedObject",
            runId=run.row["id"],
            objectId=obj.id,
            objectName=obj.name,
            objectDescription=obj.description,
            objectState=obj.state,
        )

    # ---- files

    def points(self, xyz: np.ndarray, **kw: Any) -> Callable[[str], int]:
        data = enc.ndjson_points(xyz, **kw)
        return lambda key: self.bucket.put(key, data)

    def zarr(
        self, data: np.ndarray, spacing: float, reduce: enc.Reduce, **kw: Any
    ) -> Callable[[str], int]:
        """Write `data` (z, y, x) as the portal's OME-Zarr; `kw` as enc.write_ome_zarr."""
        return lambda key: enc.write_ome_zarr(
            self.bucket, key, data, data.shape, spacing, reduce, **kw
        )

    def zarr_copy(
        self, name: str, objects: dict[str, bytes], virtual: bool
    ) -> Callable[[str], int]:
        """Write a pre-encoded zarr (a template's objects, keys relative to the store: "/.zgroup",
        "/0/0/0/0", ...). With `virtual`, only its metadata is stored; its chunks are served by
        demo.virtual from one copy of the template (the bulk runs of `large`)."""

        def write(key: str) -> int:
            if not virtual:
                return self.bucket.put_all(key, objects)
            templates = self.virtual["templates"]
            if name not in templates:
                templates[name] = {}
                for rest, data in objects.items():
                    if not rest.rsplit("/", 1)[-1].startswith("."):
                        path = f"{vo.TEMPLATE_DIR}/{name}{rest}"
                        assert self.out_dir is not None
                        (self.out_dir / path).parent.mkdir(parents=True, exist_ok=True)
                        (self.out_dir / path).write_bytes(data)
                        templates[name][rest.lstrip("/")] = [path, len(data)]
            self.virtual["templated"][key] = name
            total = 0
            for rest, data in objects.items():
                if rest.rsplit("/", 1)[-1].startswith("."):  # .zgroup .zattrs .zarray
                    total += self.bucket.put(key + rest, data)
                else:
                    self.virtual_sizes[key + rest] = len(data)
                    total += len(data)
            return total

        return write

    def zarr_generated(
        self,
        name: str,
        scene: Scene,
        shape: tuple[int, int, int],
        spacing: float,
        noise: float,
        middle: np.ndarray,
    ) -> Callable[[str], int]:
        """A tomogram whose chunks are never stored: its metadata goes into the bucket, its
        levels into virtual.json (the scene, shapes, noise, seeds and every chunk's size, found
        by encoding each chunk once now). Level L samples the scene at spacing·2^L with the
        noise a 2^L mean-binning leaves (÷ 2^(1.5 L)): independent noise per level, the same
        structure. `middle` receives level 0's central z plane (for the key photos)."""

        def write(key: str) -> int:
            self.virtual["scenes"][name] = scene_to_json(scene)
            total = self.bucket.put(f"{key}/.zgroup", enc.zarr_json({"zarr_format": 2}))
            total += self.bucket.put(f"{key}/.zattrs", enc.zarr_json(enc.ngff_attrs(spacing)))
            chunks = (enc.PORTAL_CHUNK,) * 3
            for level in range(enc.LEVELS):
                level_shape = tuple(n >> level for n in shape)
                zarray = enc.zarray(level_shape, np.dtype("<f4"), chunks)
                total += self.bucket.put(f"{key}/{level}/.zarray", enc.zarr_json(zarray))
                array = vo.GeneratedArray(
                    key=f"{key}/{level}",
                    shape=level_shape,  # type: ignore[arg-type]
                    chunks=chunks,
                    dtype="<f4",
                    scene=name,
                    spacing=spacing * 2**level,
                    shift=spacing * (2**level - 1) / 2,
                    noise=noise / 2 ** (1.5 * level),
                    seed=zlib.crc32(f"{key}/{level}".encode()),
                )
                sizes = _encoded_sizes(array, scene, middle if level == 0 else None)
                array = vo.GeneratedArray(**{**array.__dict__, "sizes": tuple(sizes)})
                self.virtual["arrays"].append(array.to_json())
                for chunk_key, size in zip(array.chunk_keys(), sizes):
                    self.virtual_sizes[chunk_key] = size
                total += sum(sizes)
            return total

        return write

    # ---- wrap up

    def finish(self) -> None:
        """Dataset and deposition key photos and metadata, then sizes (which include them)."""
        by_dep: dict[int, tuple[bytes, bytes]] = {}
        for ds in self.datasets:
            assert ds.photos is not None, f"dataset {ds.row['id']} has no default tomogram"
            by_dep.setdefault(ds.row["depositionId"], ds.photos)
            key = f"{ds.row['id']}/"
            photos = _photo_keys(key + "Images/")
            self.bucket.put(photos["snapshot"], ds.photos[0])
            self.bucket.put(photos["thumbnail"], ds.photos[1])
            authors = [a for a in self.tables["DatasetAuthor"] if a["datasetId"] == ds.row["id"]]
            funding = [f for f in self.tables["DatasetFunding"] if f["datasetId"] == ds.row["id"]]
            self.bucket.put_json(
                key + "dataset_metadata.json",
                enc.dataset_metadata(ds.row, authors, funding, photos),
            )
        fallback = self.datasets[0].photos
        for dep in self.tables["Deposition"]:
            key = f"depositions_metadata/{dep['id']}/"
            snapshot, thumbnail = by_dep.get(dep["id"], fallback)  # type: ignore[misc]
            photos = _photo_keys(key + "Images/")
            self.bucket.put(photos["snapshot"], snapshot)
            self.bucket.put(photos["thumbnail"], thumbnail)
            self.bucket.put_json(
                key + "deposition_metadata.json", enc.deposition_metadata(dep, photos)
            )
        totals: defaultdict[str, int] = defaultdict(int)
        for sizes in (self.bucket.sizes, self.virtual_sizes):
            for key, size in sizes.items():
                totals[key.split("/", 1)[0]] += size
        for ds in self.datasets:
            ds.row["fileSize"] = float(totals[str(ds.row["id"])])

    def tables_json(self) -> str:
        """All tables, one row per line: byte-stable, diffable, and quick to load."""
        parts = []
        for t in TYPES:
            rows = ",\n".join(json.dumps(r, separators=(",", ":")) for r in self.tables[t])
            parts.append(f"{json.dumps(t)}: [\n{rows}\n]")
        return "{\n" + ",\n".join(parts) + "\n}\n"


@dataclass(frozen=True)
class _DatasetSpec:
    id: int
    deposition_id: int
    title: str
    description: str
    organism: tuple[str | None, int | None]
    sample_type: str
    day: int
    tissue: tuple[str | None, str | None] = (None, None)
    cell: tuple[str | None, str | None] = (None, None)
    strain: tuple[str | None, str | None] = (None, None)
    sample_preparation: str = "Plunge-frozen in liquid ethane, cryo-FIB milled to 150 nm lamellae"
    grid_preparation: str = "Quantifoil R2/1 Au 200 mesh, glow discharged 30 s"


# ---------------------------------------------------------------- volumes and key photos


def _encoded_sizes(
    array: vo.GeneratedArray, scene: Scene, middle: np.ndarray | None
) -> list[int]:
    """Every chunk's encoded size (chunk_grid order), two chunks at a time; `middle`, if given,
    receives the array's central z plane."""
    mid = array.shape[0] // 2

    def one(index: tuple[int, int, int]) -> int:
        data = vo.chunk_array(array, scene, index)
        z0, y0, x0 = (i * c for i, c in zip(index, array.chunks))
        if middle is not None and z0 <= mid < z0 + array.chunks[0]:
            ny, nx = (min(c, n - o) for c, n, o in zip(array.chunks[1:], array.shape[1:], (y0, x0)))
            middle[y0 : y0 + ny, x0 : x0 + nx] = data[mid - z0, :ny, :nx]
        return len(enc.compress(data))  # the blocks' layout does not change the length

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="demo-virtual") as pool:
        return list(pool.map(one, enc.chunk_grid(array.shape, array.chunks)))


NG_COLORS = ("#80ff00", "#80ffff", "#ff0080", "#ffb000", "#9150af", "#00ff80", "#2d4ffe", "#ae370c")
NG_KINDS = {
    "Point": ("annotation", "point"),
    "OrientedPoint": ("annotation", "orientedpoint"),
    "InstanceSegmentation": ("annotation", "point"),
    "SegmentationMask": ("segmentation", "segmentation"),
    "TriangularMesh": ("segmentation", "mesh"),
}
NG_FORMATS = {"zarr", "ndjson", "glb"}


def _ng_point_shader(color: str | None) -> str:
    color_line = f'#uicontrol vec3 color color(default="{color}")\n' if color else ""
    rgb = "color" if color else "prop_color()"
    set_color = f"setColor(vec4({rgb}, opacity));"
    return (
        "#uicontrol float pointScale slider(min=0.01, max=2.0, default=1.0, step=0.01)\n"
        "#uicontrol float opacity slider(min=0, max=1, default=1)\n"
        f"{color_line}\n"
        "void main() {\n"
        f"  {set_color}\n"
        "  setPointMarkerSize(pointScale * prop_diameter());\n"
        "  setPointMarkerBorderWidth(0.1);\n"
        "}"
    )


def _neuroglancer_config(
    tomo: Row, sp: _Spacing, volume: np.ndarray, annotations: list[tuple[str, str, list[dict]]]
) -> dict[str, Any]:
    """A Neuroglancer state shaped like the portal's (see _Portal.neuroglancer)."""
    metres = round(sp.value, 3) * 1e-10
    dims = {a: [metres, "m"] for a in "xyz"}

    def source(url: str) -> dict[str, Any]:
        return {"url": url, "transform": {"outputDimensions": dims, "inputDimensions": dims}}

    size = {a: tomo[f"size{a.upper()}"] for a in "xyz"}
    largest = max(size.values())
    position = [float(round(size[a] / 2)) for a in "xyz"]
    # the curators' contrast: the bulk of the full-resolution voxels (0.5-99.5 percentile)
    lo, hi = (float(v) for v in np.percentile(volume, [0.5, 99.5]))
    pad = 0.05 * (hi - lo)
    zarr_url = tomo["httpsOmezarrDir"]
    layers: list[dict[str, Any]] = [
        {
            "type": "image",
            "name": sp.run.name,
            "source": source(f"zarr://{zarr_url}"),
            "opacity": 0.51,
            "tab": "rendering",
            "visible": True,
            "shader": "#uicontrol invlerp normalized\n\n"
            "void main() {\n  emitGrayscale(normalized());\n}\n",
            "shaderControls": {"normalized": {"range": [lo, hi], "window": [lo - pad, hi + pad]}},
            "_position": position,
            "_crossSectionScale": max(largest / 400, 1),
            "_projectionScale": largest * 1.1,
        }
    ]
    used: set[str] = set()
    for prefix, name, files in annotations:
        for f in files:
            if f["shape"] not in NG_KINDS or f["format"] not in NG_FORMATS:
                continue  # as the portal: no layers for instance masks, mrc, ...
            layer_type, kind = NG_KINDS[f["shape"]]
            folder = https_url(f"{sp.key}NeuroglancerPrecompute/")
            url = f"precomputed://{folder}{prefix}_{f['shape'].lower()}"
            free = [c for c in NG_COLORS if c not in used] or list(NG_COLORS)
            color = free[zlib.crc32(f"{prefix} {f['shape']}".encode()) % len(free)]
            layer: dict[str, Any] = {
                "type": layer_type,
                "name": f"{int(prefix.split('-')[0])} {name} {kind}",
            }
            if layer_type == "annotation":
                instances = f["shape"] == "InstanceSegmentation"
                layer |= {
                    "source": source(url),
                    "tab": "rendering",
                    "shader": _ng_point_shader(None if instances else color),
                    "visible": f["is_visualization_default"],
                }
                if not instances:
                    used.add(color)
            else:
                layer |= {
                    "source": {
                        **source(url),
                        "subsources": {"default": True, "mesh": True},
                        "enableDefaultSubsources": False,
                    },
                    "tab": "rendering",
                    "selectedAlpha": 1,
                    "hoverHighlight": False,
                    "segments": [1],
                    "segmentDefaultColor": color,
                    "visible": f["is_visualization_default"],
                    "meshRenderScale": 1.0,
                }
                used.add(color)
            layers.append(layer)
    return {
        "dimensions": dims,
        "crossSectionScale": max(largest / 400, 1),
        "projectionOrientation": [0.3826834323650898, 0.0, 0.0, 0.9238795325112867],
        "layers": layers,
        "selectedLayer": {"visible": True, "layer": sp.run.name},
        "crossSectionBackgroundColor": "#000000",
        "layout": "4panel",
        "position": position,
        "projectionScale": largest * 1.1,
    }



def _photos(vol: np.ndarray) -> Callable[[], tuple[bytes, bytes]]:
    """Key photos of the central z slice, made when the tomogram is written."""
    return lambda: enc.key_photos(vol[vol.shape[0] // 2])


def _extent(shape: tuple[int, int, int], spacing: float) -> tuple[float, float, float]:
    z, y, x = (n * spacing for n in shape)
    return z, y, x


def _shape(extent: tuple[float, float, float], spacing: float) -> tuple[int, int, int]:
    z, y, x = (round(e / spacing) for e in extent)
    return z, y, x


def _cell_scene(
    seed: int, extent: tuple[float, float, float], n: int, sigma: float, wall: bool
) -> tuple[Scene, np.ndarray]:
    """A small cellular scene: a vesicle (and a curved membrane) plus `n` particles."""
    rng = np.random.default_rng([SEED, seed])
    ez, ey, ex = extent
    scene = Scene(extent, seed=SEED + seed)
    r = 0.22 * min(ey, ex)
    scene.shells.append(
        Shell((ez / 2, ey * rng.uniform(0.3, 0.7), ex * rng.uniform(0.25, 0.4)), min(r, 0.3 * ez))
    )
    if wall:
        scene.walls.append(Wall(0.82 * ex, 0.04 * ex, 1.7 * ey, rng.uniform(0, 6.28)))
    centers = scene.free_points(rng, n, 2.0 * sigma)
    scene.add_particles(centers, sigma)
    return scene, centers


# ---------------------------------------------------------------- small


SMALL_DEPOSITIONS = (
    (10300, "Synthetic cellular cryo-ET", "Demo deposition of synthetic cellular tomograms."),
    (10301, "Chlamydomonas pyrenoid survey", "Demo deposition: many short runs of the pyrenoid."),
    (10302, "Enveloped virus tomography", "Demo deposition: purified SARS-CoV-2 virions."),
    (10303, "Community annotations: ML particle picks", "Demo deposition: community picks."),
    (10390, "Particle-picking phantoms", "Demo deposition: protein standards for ML challenges."),
    (10391, "Early portal ingestion", "Demo deposition: stores written by 2024 ingestion code."),
)
COMMUNITY_DEPOSITION_ID = 10303


def _small(p: _Portal) -> None:
    for i, (dep_id, title, description) in enumerate(SMALL_DEPOSITIONS):
        p.deposition(dep_id, title, description, 40 * i)
    _showcase_dataset(p)
    _big_dataset(p)
    _mycoplasma_dataset(p)
    _virus_dataset(p)
    _ml_dataset(p)
    _legacy_dataset(p)


def _showcase_dataset(p: _Portal) -> None:
    ds = p.dataset(
        _DatasetSpec(
            SHOWCASE_DATASET_ID,
            10300,
            "HeLa cell lamellae: ribosomes, proteasomes and actin near membranes",
            "Cryo-FIB lamellae of HeLa cells imaged by cryo-electron tomography (synthetic demo"
            " data). Runs show the plasma membrane, vesicles, cytosolic ribosomes, 26S"
            " proteasomes and actin filaments.",
            ("Homo sapiens", 9606),
            "cell_line",
            day=10,
            tissue=("uterine cervix", "UBERON:0000002"),
            cell=("epithelial cell", "CL:0000066"),
            strain=("HeLa", "CVCL_0030"),
        )
    )
    _showcase_run(p, ds)
    for i, wall in ((2, False), (3, True)):
        extent = (320.0, 640.0, 640.0)
        scene, ribosomes = _cell_scene(10 + i, extent, 5 + i, 35.0, wall)
        run = p.run(ds, f"TS_00{i}", extent, 2.5)
        sp = p.spacing(run, SHOWCASE_FINE_SPACING)
        shape = _shape(extent, sp.value)
        vol = render(scene, sp.value, ((0, 0, 0), shape), RAW_NOISE, SEED + 100 + i)
        p.tomogram(sp, shape, p.zarr(vol, sp.value, "mean"), _photos(vol))
        pts = p.points(_xyz(ribosomes, sp.value))
        p.annotation(sp, RIBOSOME, MANUAL, len(ribosomes), [_File("Point", "ndjson", True, pts)])
        if wall:
            mask = p.zarr(membrane_mask(scene, sp.value, shape), sp.value, "binary")
            p.annotation(sp, MEMBRANE, MEMBRAIN, 2, [_File("SegmentationMask", "zarr", True, mask)])


def _showcase_scene() -> tuple[Scene, dict[str, Any]]:
    """TS_001: a curved plasma membrane, two vesicles, three actin filaments, ribosomes and
    (elongated, oriented) proteasomes, in Å."""
    rng = np.random.default_rng([SEED, 1])
    scene = Scene(SHOWCASE_EXTENT, seed=SEED + 1)
    scene.walls.append(Wall(x0=1030.0, amplitude=60.0, period=2400.0, phase=0.6))
    scene.shells += [Shell((320.0, 300.0, 350.0), 180.0), Shell((330.0, 900.0, 600.0), 140.0)]
    filaments = [
        filament(np.array([250.0, 560.0, 120.0]), np.array([0.1, 0.15, 1.0]), 14, 30.0, 50.0),
        filament(np.array([400.0, 1150.0, 150.0]), np.array([-0.2, 0.0, 1.0]), 14, 30.0, -40.0),
        filament(np.array([300.0, 150.0, 640.0]), np.array([0.0, 1.0, 0.25]), 14, 30.0, 60.0),
    ]
    for f in filaments:
        scene.add_particles(f, sigma=18.0, amplitude=-1.1)
    ribosomes = scene.free_points(rng, 14, 90.0)
    scene.add_particles(ribosomes, sigma=40.0, amplitude=-1.6)
    proteasomes = scene.free_points(rng, 8, 100.0)
    rotations = random_rotations(rng, 8)
    # the long axis is the particle's z: column 2 of the xyz rotation matrix, reversed to zyx
    scene.add_particles(
        proteasomes, sigma=28.0, amplitude=-1.4, axes=rotations[:, ::-1, 2], elongation=1.8
    )
    return scene, {
        "ribosomes": ribosomes,
        "proteasomes": proteasomes,
        "rotations": rotations,
        "filaments": filaments,
    }


def _showcase_run(p: _Portal, ds: _Dataset) -> None:
    scene, parts = _showcase_scene()
    run = p.run(ds, SHOWCASE_RUN_NAME, SHOWCASE_EXTENT, 2.5)
    p.identified(run, ATP_SYNTHASE)
    p.identified(run, RIBOSOME)
    fine = p.spacing(run, SHOWCASE_FINE_SPACING)
    coarse = p.spacing(run, SHOWCASE_COARSE_SPACING)
    shape = _shape(SHOWCASE_EXTENT, fine.value)
    viewed: tuple[Row, np.ndarray] | None = None
    kinds = (("raw", RAW_NOISE, False), ("denoised", DENOISED_NOISE, True))
    for processing, noise, default in kinds:
        vol = render(scene, fine.value, ((0, 0, 0), shape), noise, SEED + 2 + default)
        row = p.tomogram(
            fine, shape, p.zarr(vol, fine.value, "mean"), _photos(vol), processing, default
        )
        if default:
            viewed = row, vol
    coarse_shape = _shape(SHOWCASE_EXTENT, coarse.value)
    vol = render(scene, coarse.value, ((0, 0, 0), coarse_shape), RAW_NOISE, SEED + 4)
    p.tomogram(coarse, coarse_shape, p.zarr(vol, coarse.value, "mean"), _photos(vol), "raw", False)

    s = fine.value
    ribosomes, proteasomes, filaments = parts["ribosomes"], parts["proteasomes"], parts["filaments"]
    points = p.points(_xyz(ribosomes, s))
    p.annotation(fine, RIBOSOME, MANUAL, len(ribosomes), [_File("Point", "ndjson", True, points)])
    points = p.points(_xyz(proteasomes, s), rotations=parts["rotations"])
    oriented = [_File("OrientedPoint", "ndjson", True, points)]
    p.annotation(fine, PROTEASOME, TEMPLATE, len(proteasomes), oriented)
    ids = np.repeat(np.arange(1, len(filaments) + 1), [len(f) for f in filaments])
    points = p.points(_xyz(np.concatenate(filaments), s), instance_ids=ids)
    traced = [_File("InstanceSegmentation", "ndjson", True, points)]
    p.annotation(fine, ACTIN, TRACING, len(filaments), traced)
    mask = p.zarr(membrane_mask(scene, s, shape), s, "binary")
    p.annotation(fine, MEMBRANE, MEMBRAIN, 3, [_File("SegmentationMask", "zarr", True, mask)])
    centers = np.array([sh.center for sh in scene.shells])
    radii = np.array([sh.radius for sh in scene.shells])
    ids = range(1, len(radii) + 1)
    labels = p.zarr(ball_labels(centers, radii, s, shape), s, "nearest", labels=ids)
    vesicles = [
        _File("InstanceSegmentationMask", "zarr", False, labels),
        _File("Mesh", "glb", True, _vesicle_mesh(p, centers, radii, s), "TriangularMesh"),
    ]
    p.annotation(fine, VESICLE, MEMBRAIN, len(radii), vesicles)
    # community picks of the same ribosomes at the coarse spacing: voxels at 16 Å, same Å places
    picked = ribosomes[:12]
    points = p.points(_xyz(picked, coarse.value))
    community = [_File("Point", "ndjson", False, points)]
    dep = COMMUNITY_DEPOSITION_ID
    p.annotation(coarse, RIBOSOME, TEMPLATE, len(picked), community, dep, "community")
    assert viewed is not None
    p.neuroglancer(viewed[0], fine, viewed[1])  # the default tomogram's viewer state


def _vesicle_mesh(
    p: _Portal, centers: np.ndarray, radii: np.ndarray, spacing: float
) -> Callable[[str], int]:
    """One glb with a sphere per vesicle; vertices in voxels (x, y, z) at `spacing`, as points."""
    unit, faces = icosphere(2)
    verts = [_xyz(c + r * unit, spacing) for c, r in zip(centers, radii)]
    tris = [faces + i * len(unit) for i in range(len(verts))]
    data = enc.glb_mesh(np.concatenate(verts), np.concatenate(tris))
    return lambda key: p.bucket.put(key, data)


def _mycoplasma_dataset(p: _Portal) -> None:
    ds = p.dataset(
        _DatasetSpec(
            10002,
            10300,
            "Mycoplasma pneumoniae whole cells",
            "Whole-cell tomograms of the minimal bacterium Mycoplasma pneumoniae: ribosomes and"
            " the cell membrane.",
            ("Mycoplasma pneumoniae", 2104),
            "cell",
            day=200,
            strain=("M129", None),
            sample_preparation="Cells grown on gold grids, plunge-frozen; not milled (thin cells)",
        )
    )
    for i in (1, 2):
        extent = _extent((32, 64, 64), 13.48)
        scene, ribosomes = _cell_scene(20 + i, extent, 8, 45.0, i == 1)
        run = p.run(ds, f"mpn_000{i}", extent, 3.37)
        p.identified(run, RNA_POLYMERASE)
        sp = p.spacing(run, 13.48)
        shape = _shape(extent, sp.value)
        vol = render(scene, sp.value, ((0, 0, 0), shape), RAW_NOISE, SEED + 200 + i)
        p.tomogram(sp, shape, p.zarr(vol, sp.value, "mean"), _photos(vol))
        pts = p.points(_xyz(ribosomes, sp.value))
        p.annotation(sp, RIBOSOME, TEMPLATE, len(ribosomes), [_File("Point", "ndjson", True, pts)])
        if i == 1:
            mask = p.zarr(membrane_mask(scene, sp.value, shape), sp.value, "binary")
            membrane = _File("SegmentationMask", "zarr", True, mask)
            p.annotation(sp, MEMBRANE, MEMBRAIN, 2, [membrane])


def _virus_dataset(p: _Portal) -> None:
    ds = p.dataset(
        _DatasetSpec(
            10003,
            10302,
            "SARS-CoV-2 virions with prefusion spikes",
            "Purified, inactivated SARS-CoV-2 virions; spike glycoproteins annotated with"
            " orientations.",
            ("Severe acute respiratory syndrome coronavirus 2", 2697049),
            "virus",
            day=300,
            sample_preparation="Fixed with 4% PFA, 10 nm gold fiducials added, plunge-frozen",
        )
    )
    spacing = 10.012
    for i in (1, 2):
        shape = (48, 64, 64)
        extent = _extent(shape, spacing)
        rng = np.random.default_rng([SEED, 30 + i])
        scene = Scene(extent, seed=SEED + 30 + i)
        center = np.array(extent) / 2 + rng.uniform(-20, 20, 3)
        scene.shells.append(Shell(tuple(center), 165.0))
        spikes, rotations = _spikes(rng, center, 165.0 + 70.0, extent, 10)
        scene.add_particles(
            spikes, sigma=20.0, amplitude=-1.3, axes=rotations[:, ::-1, 2], elongation=2.0
        )
        run = p.run(ds, f"virion_0{i}", extent, 2.503)
        sp = p.spacing(run, spacing)
        vol = render(scene, spacing, ((0, 0, 0), shape), RAW_NOISE, SEED + 300 + i)
        p.tomogram(sp, shape, p.zarr(vol, spacing, "mean"), _photos(vol))
        oriented = p.points(_xyz(spikes, spacing), rotations=rotations)
        spike_file = _File("OrientedPoint", "ndjson", True, oriented)
        p.annotation(sp, SPIKE, MANUAL, len(spikes), [spike_file])
        if i == 1:
            mask = p.zarr(membrane_mask(scene, spacing, shape), spacing, "binary")
            p.annotation(sp, ENVELOPE, MEMBRAIN, 1, [_File("SegmentationMask", "zarr", True, mask)])


def _spikes(
    rng: np.random.Generator, center: np.ndarray, radius: float, extent: tuple[float, ...], n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Up to `n` points on a sphere (inside the volume, not crowded) with rotations whose z axis
    points outward: spikes on a virion."""
    points: list[np.ndarray] = []
    rotations: list[np.ndarray] = []
    margin = 70.0
    for _ in range(50 * n):
        if len(points) == n:
            break
        normal = rng.standard_normal(3)
        normal /= np.linalg.norm(normal)
        p = center + radius * normal
        if np.any(p < margin) or np.any(p > np.asarray(extent) - margin):
            continue
        if any(np.linalg.norm(p - q) < 90.0 for q in points):
            continue
        z = normal[::-1]  # zyx → xyz
        x = np.cross([0.0, 0.0, 1.0] if abs(z[2]) < 0.9 else [1.0, 0.0, 0.0], z)
        x /= np.linalg.norm(x)
        rotations.append(np.column_stack([x, np.cross(z, x), z]))
        points.append(p)
    return np.array(points), np.array(rotations)


# ---------------------------------------------------------------- 10010: two spacings, no default


FERRITIN = _Obj(
    "ferritin complex", "GO:0070288", "Apo-ferritin 24-mers, a standard of the picking phantom."
)
THYROGLOBULIN = _Obj(
    "thyroglobulin", "UniProtKB:P01266", "Thyroglobulin dimers; elongated, orientation annotated."
)


def _ml_scene() -> tuple[Scene, dict[str, np.ndarray]]:
    """TS_105_5, in Å: a vesicle, ferritins, oriented thyroglobulins; inside both grids."""
    extent = _extent(ML_FINE_SHAPE, ML_FINE_SPACING)  # the 4.99 Å grid is the smaller one
    rng = np.random.default_rng([SEED, 60])
    scene = Scene(extent, seed=SEED + 60)
    scene.shells.append(Shell((320.0, 900.0, 330.0), 170.0))
    ferritin = scene.free_points(rng, 10, 70.0)
    scene.add_particles(ferritin, sigma=30.0, amplitude=-1.6)
    thyroglobulin = scene.free_points(rng, 6, 90.0)
    rotations = random_rotations(rng, 6)
    scene.add_particles(
        thyroglobulin, sigma=26.0, amplitude=-1.4, axes=rotations[:, ::-1, 2], elongation=1.8
    )
    return scene, {"ferritin": ferritin, "thyroglobulin": thyroglobulin, "rotations": rotations}


def _ml_dataset(p: _Portal) -> None:
    """Like 10445 (run TS_105_5): tomograms at 10.012 Å (WBP raw and denoised) and at 4.99 Å,
    none of them a visualization default or portal standard; every annotation file at 4.99 Å,
    all sharing the run's one alignment. A viewer of the 10 Å tomograms must find the 4.99 Å
    annotations by alignment and rescale them."""
    ds = p.dataset(
        _DatasetSpec(
            ML_DATASET_ID,
            10390,
            "Protein phantom mixture for particle-picking benchmarks",
            "Purified protein standards (apo-ferritin, thyroglobulin) with lipid vesicles,"
            " reconstructed at two voxel spacings; ground-truth picks for machine-learning"
            " particle-picking challenges.",
            (None, None),
            "in_vitro",
            day=500,
            sample_preparation="Protein standards mixed with liposomes, plunge-frozen, not milled",
        )
    )
    scene, parts = _ml_scene()
    run = p.run(ds, ML_RUN_NAME, _extent(ML_COARSE_SHAPE, ML_COARSE_SPACING), 1.54)
    coarse = p.spacing(run, ML_COARSE_SPACING)
    fine = p.spacing(run, ML_FINE_SPACING)
    for processing, noise, salt in (("raw", RAW_NOISE, 0), ("denoised", DENOISED_NOISE, 1)):
        vol = render(scene, coarse.value, ((0, 0, 0), ML_COARSE_SHAPE), noise, SEED + 61 + salt)
        write = p.zarr(vol, coarse.value, "mean")
        p.tomogram(coarse, ML_COARSE_SHAPE, write, _photos(vol), processing, False, standard=False)
    # finer voxels, more noise per voxel (a 2× binning averages 8 voxels)
    vol = render(scene, fine.value, ((0, 0, 0), ML_FINE_SHAPE), 1.5 * RAW_NOISE, SEED + 63)
    write = p.zarr(vol, fine.value, "mean")
    p.tomogram(fine, ML_FINE_SHAPE, write, _photos(vol), "raw", False, standard=False)
    s = fine.value
    points = p.points(_xyz(parts["ferritin"], s))
    ferritin = [_File("Point", "ndjson", True, points)]
    p.annotation(fine, FERRITIN, MANUAL, len(parts["ferritin"]), ferritin)
    points = p.points(_xyz(parts["thyroglobulin"], s), rotations=parts["rotations"])
    oriented = [_File("OrientedPoint", "ndjson", True, points)]
    p.annotation(fine, THYROGLOBULIN, TEMPLATE, len(parts["thyroglobulin"]), oriented)
    mask = p.zarr(membrane_mask(scene, s, ML_FINE_SHAPE), s, "binary")
    p.annotation(fine, MEMBRANE, MEMBRAIN, 1, [_File("SegmentationMask", "zarr", True, mask)])


# ---------------------------------------------------------------- 10011: legacy and odd stores


FATTY_ACID_SYNTHASE = _Obj(
    "fatty acid synthase complex", "GO:0005835", "Fatty acid synthase barrels."
)
LEGACY_DAY = 768  # the run: 2024-02-10; its raw tomogram a week later, annotations 2024-03-10
LEGACY_MESH_SCALE = 10.0  # the scene's group node scales the mesh buffers by this
LEGACY_MESH_TRANSLATION = (48.0, 48.0, 24.0)  # and moves them (x, y, z voxels)
LEGACY_MESH_ROTATION = (0.1826, 0.3651, 0.5477, 0.7303)  # TRS node quaternion (x, y, z, w)
LEGACY_VESICLE_RADII = (150.0, 120.0, 130.0)  # Å; the second is the first mesh, instanced


def _legacy_scene() -> tuple[Scene, np.ndarray]:
    """TS_LEGACY, in Å: a membrane, three vesicles (meshed) and fatty acid synthases."""
    extent = _extent(LEGACY_SHAPE, LEGACY_SPACING)
    rng = np.random.default_rng([SEED, 70])
    scene = Scene(extent, seed=SEED + 70)
    scene.walls.append(Wall(0.85 * extent[2], 40.0, 1.5 * extent[1], 0.4))
    centers = ((320.0, 330.0, 330.0), (330.0, 900.0, 420.0), (300.0, 650.0, 800.0))
    scene.shells += [Shell(c, r) for c, r in zip(centers, LEGACY_VESICLE_RADII)]
    fas = scene.free_points(rng, 8, 60.0)
    scene.add_particles(fas, sigma=28.0)
    return scene, fas


def quaternion_matrix(q: tuple[float, float, float, float]) -> np.ndarray:
    """The rotation matrix of a glTF quaternion (x, y, z, w), normalised first."""
    x, y, z, w = np.asarray(q, float) / np.linalg.norm(q)
    return np.array(
        [
            [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
            [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
            [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
        ]
    )


def _legacy_mesh(shells: list[Shell], spacing: float) -> bytes:
    """The vesicles as trimesh writes a glb Scene after `apply_scale`: the vertex buffers in
    one unit, the transforms in the nodes. World space is voxels (x, y, z) at `spacing`, as
    the points. Node 1 (a group) carries scale ×10 and a translation; its children 2 and 3
    instance one sphere mesh with different matrices (the second also scaled); node 4 places
    another mesh with translation/rotation/scale instead of a matrix."""
    k, t = LEGACY_MESH_SCALE, np.array(LEGACY_MESH_TRANSLATION)
    c = [np.asarray(sh.center)[::-1] / spacing for sh in shells]  # x, y, z voxels
    r = [sh.radius / spacing for sh in shells]
    unit2, faces2 = icosphere(2)
    unit1, faces1 = icosphere(1)
    meshes = [(unit2 * r[0] / k, faces2), (unit1 * r[2] / k, faces1)]

    def matrix(scale: float, translation: np.ndarray) -> np.ndarray:
        m = np.eye(4)
        m[:3, :3] *= scale
        m[:3, 3] = translation
        return m

    nodes = [
        {"name": "world", "children": [1, 4]},
        {"name": "vesicles", "matrix": matrix(k, t), "children": [2, 3]},
        {"name": "vesicle_0", "mesh": 0, "matrix": matrix(1.0, (c[0] - t) / k)},
        {"name": "vesicle_1", "mesh": 0, "matrix": matrix(r[1] / r[0], (c[1] - t) / k)},
        {
            "name": "vesicle_2",
            "mesh": 1,
            "translation": c[2],
            "rotation": LEGACY_MESH_ROTATION,
            "scale": [k, k, k],
        },
    ]
    return enc.glb_scene(meshes, nodes)


def _legacy_dataset(p: _Portal) -> None:
    """Stores as the portal wrote them at other times, at one spacing (13.48 Å): the default
    tomogram from before 2024-03-06 (axes without unit, scales 1/2/4); a float32 semantic mask
    (before 2024-03-19); a second tomogram stored x, y, z (as the backend's test stores); an
    instance mask whose `.zattrs` lists a level that is not there; a mesh glb whose geometry is
    in its node transforms; and points, all in the same Å frame."""
    ds = p.dataset(
        _DatasetSpec(
            LEGACY_DATASET_ID,
            10391,
            "Schizosaccharomyces pombe lamella, early ingestion formats",
            "A fission-yeast lamella as the portal's first ingestion runs stored it: relative"
            " pyramid scales, float32 masks, meshes with scene transforms.",
            ("Schizosaccharomyces pombe", 4896),
            "organism",
            day=LEGACY_DAY - 30,
            strain=("972h-", "NCBITaxon:284812"),
        )
    )
    scene, fas = _legacy_scene()
    s, shape = LEGACY_SPACING, LEGACY_SHAPE
    run = p.run(ds, LEGACY_RUN_NAME, _extent(shape, s), 3.37, day=LEGACY_DAY)
    sp = p.spacing(run, s)
    vol = render(scene, s, ((0, 0, 0), shape), RAW_NOISE, SEED + 71)
    write = p.zarr(vol, s, "mean", unit=False, relative_scales=True)
    p.tomogram(sp, shape, write, _photos(vol))
    vol = render(scene, s, ((0, 0, 0), shape), DENOISED_NOISE, SEED + 72)
    write = p.zarr(vol, s, "mean", axes="xyz", unit=False)
    p.tomogram(sp, shape, write, _photos(vol), "filtered", False, day=LEGACY_DAY + 245)
    points = p.points(_xyz(fas, s))
    picks = [_File("Point", "ndjson", True, points)]
    p.annotation(sp, FATTY_ACID_SYNTHASE, MANUAL, len(fas), picks)
    mask = p.zarr(membrane_mask(scene, s, shape).astype(np.float32), s, "binary", dtype="<f4")
    p.annotation(sp, MEMBRANE, MEMBRAIN, 4, [_File("SegmentationMask", "zarr", True, mask)])
    centers = np.array([sh.center for sh in scene.shells])
    radii = np.array([sh.radius for sh in scene.shells])
    ids = range(1, len(radii) + 1)
    labels = ball_labels(centers, radii, s, shape)
    gapped = p.zarr(labels, s, "nearest", labels=ids, missing_levels=(2,))
    glb = _legacy_mesh(scene.shells, s)
    vesicles = [
        _File("InstanceSegmentationMask", "zarr", True, gapped),
        _File("Mesh", "glb", True, lambda key: p.bucket.put(key, glb), "TriangularMesh"),
    ]
    p.annotation(sp, VESICLE, MEMBRAIN, len(radii), vesicles)


# ---------------------------------------------------------------- bulk runs (tiny, templated)


@dataclass(frozen=True)
class _Template:
    """A tiny tomogram (raw and denoised) encoded once and copied into many runs, with its
    particle picks. Its zarrs are written as the portal writes any: one 256³ chunk per level,
    padded (~0.3 MB each, mostly the padding's compressed zeros)."""

    name: str
    raw: dict[str, bytes]
    denoised: dict[str, bytes]
    photos: tuple[bytes, bytes]
    denoised_photos: tuple[bytes, bytes]
    points: bytes
    count: int


def _templates(k: int) -> list[_Template]:
    extent = _extent(TINY_SHAPE, TINY_SPACING)
    out = []
    for i in range(k):
        scene, centers = _cell_scene(1000 + i, extent, 3 + i % 4, 24.0, i % 2 == 1)
        zarrs, photos = [], []
        for noise, salt in ((RAW_NOISE, 0), (DENOISED_NOISE, 500)):
            seed = SEED + 1000 + i + salt
            vol = render(scene, TINY_SPACING, ((0, 0, 0), TINY_SHAPE), noise, seed)
            memory = enc.Bucket(None)
            enc.write_ome_zarr(memory, "", vol, TINY_SHAPE, TINY_SPACING, "mean")
            zarrs.append(memory.objects)
            photos.append(_photos(vol)())
        points = enc.ndjson_points(_xyz(centers, TINY_SPACING))
        out.append(
            _Template(f"tiny-{i}", zarrs[0], zarrs[1], photos[0], photos[1], points, len(centers))
        )
    return out


def _tiny_run(
    p: _Portal,
    ds: _Dataset,
    name: str,
    template: _Template,
    obj: _Obj,
    identified: bool,
    *,
    denoised: bool = False,
    virtual: bool = False,
) -> None:
    """A bulk run: one tiny raw tomogram (the default), a denoised one too if `denoised`, and
    the template's particle picks. `virtual`: chunks served by demo.virtual (large's bulk)."""
    extent = _extent(TINY_SHAPE, TINY_SPACING)
    run = p.run(ds, name, extent, TINY_SPACING / 4)
    if identified:
        p.identified(run, obj)
    sp = p.spacing(run, TINY_SPACING)
    raw = p.zarr_copy(f"{template.name}-raw", template.raw, virtual)
    p.tomogram(sp, TINY_SHAPE, raw, lambda: template.photos)
    if denoised:
        copy = p.zarr_copy(f"{template.name}-denoised", template.denoised, virtual)
        p.tomogram(sp, TINY_SHAPE, copy, lambda: template.denoised_photos, "denoised", False)
    pts = _File("Point", "ndjson", True, lambda key: p.bucket.put(key, template.points))
    p.annotation(sp, obj, TEMPLATE, template.count, [pts])


def _big_dataset(p: _Portal) -> None:
    ds = p.dataset(
        _DatasetSpec(
            BIG_DATASET_ID,
            10301,
            "Chlamydomonas reinhardtii pyrenoid survey",
            "A survey of short tilt series across the pyrenoid of Chlamydomonas reinhardtii; "
            "Rubisco complexes picked by template matching in every run.",
            ("Chlamydomonas reinhardtii", 3055),
            "cell",
            day=150,
            strain=("mat3-4 (CC-3994)", None),
        )
    )
    templates = _templates(6)
    for i in range(BIG_DATASET_RUNS):
        name = f"Position_{i + 1:03d}"
        template = templates[i % len(templates)]
        _tiny_run(p, ds, name, template, RUBISCO, i % 10 == 0, denoised=i % 5 == 0)


# ---------------------------------------------------------------- large


ORGANISMS = (
    ("Saccharomyces cerevisiae", 4932, "cell"),
    ("Escherichia coli", 562, "cell"),
    ("Chlamydomonas reinhardtii", 3055, "cell"),
    ("Mus musculus", 10090, "tissue"),
    ("Homo sapiens", 9606, "cell_line"),
    ("Drosophila melanogaster", 7227, "tissue"),
    ("Caenorhabditis elegans", 6239, "organism"),
    ("Arabidopsis thaliana", 3702, "tissue"),
    ("Trypanosoma brucei", 5691, "cell"),
    ("Dictyostelium discoideum", 44689, "cell"),
)
SUBJECTS = (
    "nuclear pore complexes",
    "mitochondrial cristae",
    "synaptic vesicle pools",
    "ciliary axonemes",
    "stress granules",
    "lipid droplet contacts",
    "sperm flagella",
    "cell wall remodelling",
    "Golgi stacks",
    "ER-plasma membrane contacts",
    "phase-separated condensates",
    "chromatin organisation",
)
RUN_NAMES = ("TS_{i:03d}", "Position_{j}_{i}", "{d}_lamella{i:03d}", "run{i:04d}")


def _large(p: _Portal) -> None:
    _large_tomogram_dataset(p)
    rng = np.random.default_rng([SEED, 5])
    bulk = LARGE_DATASETS - len(p.datasets) - 1  # besides the huge one
    rest = LARGE_RUNS - sum(d.runs for d in p.datasets) - HUGE_DATASET_RUNS
    weights = rng.lognormal(np.log(8.0), 1.1, bulk)
    counts = np.maximum(1, np.round(weights * rest / weights.sum())).astype(int)
    counts[np.argmax(counts)] += rest - counts.sum()
    templates = _templates(8)
    taken = {d.row["id"] for d in p.datasets}
    ids = range(HUGE_DATASET_ID, HUGE_DATASET_ID + 10 * LARGE_DATASETS)
    free_ids = (i for i in ids if i not in taken)  # small's datasets keep theirs
    for i, n in enumerate([HUGE_DATASET_RUNS, *counts.tolist()]):
        dataset_id = next(free_ids)
        organism, taxid, sample_type = ORGANISMS[i % len(ORGANISMS)]
        subject = SUBJECTS[(i * 5) % len(SUBJECTS)]
        ds = p.dataset(
            _DatasetSpec(
                dataset_id,
                10304 + i // 5,
                f"{subject.capitalize()} in {organism}, collection {i + 1}",
                f"Cryo-electron tomography of {subject} in {organism} (synthetic, {n} runs).",
                (organism, taxid),
                sample_type,
                day=(i * 37) % 900,
            )
        )
        obj = BULK_OBJECTS[i % len(BULK_OBJECTS)]
        style = RUN_NAMES[i % len(RUN_NAMES)]
        for r in range(n):
            name = style.format(i=r + 1, j=r // 20 + 1, d=f"2023{1 + i % 12:02d}{1 + r % 28:02d}")
            template = templates[(i * 3 + r) % len(templates)]
            _tiny_run(p, ds, name, template, obj, r % 5 == 0, denoised=r % 5 == 0, virtual=True)
    known = {d["id"] for d in p.tables["Deposition"]}
    for d in sorted({ds.row["depositionId"] for ds in p.datasets} - known):
        p.deposition(d, f"Demo deposition {d}", "Synthetic deposition for benchmarks.", d - 10300)


def _large_tomogram_dataset(p: _Portal) -> None:
    """TS_LARGE: a tomogram spanning several 256³ chunks per level (memory, streaming), stored,
    with a 2× binned denoised one; TS_026: a portal-sized tomogram made on request."""
    spacing = LARGE_TOMOGRAM_SPACING
    extent = _extent(LARGE_TOMOGRAM_SHAPE, spacing)
    ds = p.dataset(
        _DatasetSpec(
            LARGE_TOMOGRAM_DATASET_ID,
            10300,
            "Saccharomyces cerevisiae thick lamella (large tomogram)",
            "One large tomogram of a yeast lamella with hundreds of picked ribosomes, for"
            " streaming benchmarks.",
            ("Saccharomyces cerevisiae", 4932),
            "cell",
            day=400,
        )
    )
    rng = np.random.default_rng([SEED, 40])
    scene = Scene(extent, seed=SEED + 40)
    scene.walls.append(Wall(0.85 * extent[2], 250.0, 6000.0, 1.0))
    scene.shells += [
        Shell((extent[0] / 2, 2500.0 + 2000.0 * k, 2000.0 + 1500.0 * k), 900.0) for k in range(3)
    ]
    ribosomes = scene.free_points(rng, 300, 150.0)
    scene.add_particles(ribosomes, sigma=60.0)
    run = p.run(ds, LARGE_TOMOGRAM_RUN_NAME, extent, 3.37)
    sp = p.spacing(run, spacing)
    mid = LARGE_TOMOGRAM_SHAPE[0] // 2
    middle = np.zeros(LARGE_TOMOGRAM_SHAPE[1:], np.float32)  # filled while the blocks are written

    def source(block: Block) -> np.ndarray:
        data = render(scene, spacing, block, RAW_NOISE, SEED + 41)
        (z0, y0, x0), (nz, ny, nx) = block
        if z0 <= mid < z0 + nz:
            middle[y0 : y0 + ny, x0 : x0 + nx] = data[mid - z0]
        return data

    def write(key: str) -> int:
        return enc.write_ome_zarr(p.bucket, key, source, LARGE_TOMOGRAM_SHAPE, spacing, "mean")

    p.tomogram(sp, LARGE_TOMOGRAM_SHAPE, write, lambda: enc.key_photos(middle))
    binned = p.spacing(run, LARGE_TOMOGRAM_BINNED_SPACING)
    shape = _shape(extent, binned.value)
    vol = render(scene, binned.value, ((0, 0, 0), shape), DENOISED_NOISE, SEED + 42)
    p.tomogram(binned, shape, p.zarr(vol, binned.value, "mean"), _photos(vol), "denoised", False)
    pts = p.points(_xyz(ribosomes, spacing))
    p.annotation(sp, RIBOSOME, TEMPLATE, len(ribosomes), [_File("Point", "ndjson", True, pts)])
    _portal_sized_run(p, ds)


def _portal_sized_run(p: _Portal, ds: _Dataset) -> None:
    """TS_026 at its real size (1000×928×960 at 13.48 Å, levels 500×464×480 and 250×232×240):
    rows, metadata and key photos stored; the 73 chunks (4.6 GB encoded) made on request."""
    spacing, shape = PORTAL_TOMOGRAM_SPACING, PORTAL_TOMOGRAM_SHAPE
    extent = _extent(shape, spacing)
    rng = np.random.default_rng([SEED, 50])
    scene = Scene(extent, seed=SEED + 50)
    scene.walls.append(Wall(0.8 * extent[2], 400.0, 9000.0, 0.3))
    scene.shells += [
        Shell((extent[0] * (0.35 + 0.15 * k), 3000.0 + 3000.0 * k, 2500.0 + 2600.0 * k), 700.0)
        for k in range(3)
    ]
    ribosomes = scene.free_points(rng, 120, 150.0)
    scene.add_particles(ribosomes, sigma=60.0)
    run = p.run(ds, PORTAL_TOMOGRAM_RUN_NAME, extent, 3.37)
    sp = p.spacing(run, spacing)
    middle = np.zeros(shape[1:], np.float32)
    write = p.zarr_generated(f"{ds.row['id']}/{run.name}", scene, shape, spacing, RAW_NOISE, middle)
    p.tomogram(sp, shape, write, lambda: enc.key_photos(middle))
    pts = p.points(_xyz(ribosomes, spacing))
    p.annotation(sp, RIBOSOME, TEMPLATE, len(ribosomes), [_File("Point", "ndjson", True, pts)])
