"""The demo portal's content: depositions, datasets, runs, tomograms and annotations.

`generate` writes, for a size, the API rows (`tables.json`, keyed by GraphQL type name) and the
bucket tree they point at (`bucket/<key>`), then `COMPLETE`; see docs/demo-portal.md. Output is
a pure function of the size and GENERATOR_VERSION: fixed seeds, stable ids, fixed dates.
"""

from __future__ import annotations

import base64
import json
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from . import bucket as enc
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
)

BUCKET = "cryoet-demo-portal-public"
S3_ROOT = "s3://cryoet-demo-portal-public/"
HTTPS_ROOT = "https://files.demo-portal.invalid/"
GENERATOR_VERSION = 2
SIZES = ("small", "large")

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
    portal = _Portal(enc.Bucket(out_dir / "bucket"))
    _small(portal)
    if size == "large":
        _large(portal)
    portal.finish()
    (out_dir / "tables.json").write_text(portal.tables_json())
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
    photos: tuple[bytes, bytes] | None = None  # from its first default tomogram


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
    """One annotation file: its shape, format, default flag and how to write it at a key."""

    shape: str
    format: str
    default: bool
    write: Callable[[str], int]


@dataclass
class _Portal:
    bucket: enc.Bucket
    tables: dict[str, list[Row]] = field(default_factory=lambda: {t: [] for t in TYPES})
    datasets: list[_Dataset] = field(default_factory=list)
    _counters: defaultdict[str, int] = field(default_factory=lambda: defaultdict(lambda: 100))

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
        self, ds: _Dataset, name: str, extent: tuple[float, float, float], pixel_spacing: float
    ) -> _Run:
        """A run with its tilt series and its one alignment (extent: the volume, Å z y x)."""
        ds.runs += 1
        day = ds.row["id"] % 97 + ds.runs % 13
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
    ) -> Row:
        """Write one tomogram's zarr, key photos (made after the zarr, which may collect the
        central slice while streaming) and metadata; add its rows."""
        run = sp.run
        n = self._next(sp.key + "Tomograms")
        folder = f"{sp.key}Tomograms/{n}/"
        zarr_key = f"{folder}{run.name}.zarr"
        zarr_size = write_zarr(zarr_key)
        snapshot, thumbnail = photos()
        photo_keys = _photo_keys(f"{sp.key}Images/{n}/", "key-photo-")
        self.bucket.put(photo_keys["snapshot"], snapshot)
        self.bucket.put(photo_keys["thumbnail"], thumbnail)
        if default and run.dataset.photos is None:
            run.dataset.photos = snapshot, thumbnail
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
            reconstructionMethod="WBP",
            processing=processing,
            tomogramVersion=1.0,
            processingSoftware="cryoCARE 0.3" if processing == "denoised" else None,
            reconstructionSoftware="AreTomo2 1.1",
            isPortalStandard=processing == "raw",
            isAuthorSubmitted=processing != "raw",
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
            **_dates(run.day + 7),
        )
        authors = self._people("TomogramAuthor", "tomogramId", row["id"], 1, run.dataset.row["id"])
        paths = {
            "omezarr_dir": zarr_key,
            "key_photo": photo_keys,
            "alignment_metadata_path": run.alignment["s3AlignmentMetadata"].removeprefix(S3_ROOT),
        }
        self.bucket.put_json(
            folder + "tomogram_metadata.json", enc.tomogram_metadata(row, authors, paths)
        )
        return row

    def annotation(
        self,
        sp: _Spacing,
        obj: _Obj,
        method: _Method,
        count: int,
        files: list[_File],
        deposition_id: int | None = None,
        source: str = "dataset_author",
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
            **_dates(run.day + 30),
        )
        shapes: dict[str, Row] = {}
        listing = []
        for f in files:
            if f.shape not in shapes:
                shapes[f.shape] = self.add(
                    "AnnotationShape", annotationId=ann["id"], shapeType=f.shape
                )
            key = f"{folder}{stem}_{f.shape.lower()}.{f.format}"
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
                    "shape": f.shape,
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
        self,
        data: np.ndarray,
        spacing: float,
        reduce: enc.Reduce,
        chunk: int | None = enc.PORTAL_CHUNK,
        **kw: Any,
    ) -> Callable[[str], int]:
        return lambda key: enc.write_ome_zarr(
            self.bucket, key, data, data.shape, spacing, reduce, chunk, **kw
        )

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
        for key, size in self.bucket.sizes.items():
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
    organism: tuple[str, int]
    sample_type: str
    day: int
    tissue: tuple[str | None, str | None] = (None, None)
    cell: tuple[str | None, str | None] = (None, None)
    strain: tuple[str | None, str | None] = (None, None)
    sample_preparation: str = "Plunge-frozen in liquid ethane, cryo-FIB milled to 150 nm lamellae"
    grid_preparation: str = "Quantifoil R2/1 Au 200 mesh, glow discharged 30 s"


# ---------------------------------------------------------------- volumes and key photos


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
)
COMMUNITY_DEPOSITION_ID = 10303


def _small(p: _Portal) -> None:
    for i, (dep_id, title, description) in enumerate(SMALL_DEPOSITIONS):
        p.deposition(dep_id, title, description, 40 * i)
    _showcase_dataset(p)
    _big_dataset(p)
    _mycoplasma_dataset(p)
    _virus_dataset(p)


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
        vol = render(scene, sp.value, ((0, 0, 0), shape), 0.5, SEED + 100 + i)
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
    for processing, noise, default in (("raw", 0.6, False), ("denoised", 0.12, True)):
        vol = render(scene, fine.value, ((0, 0, 0), shape), noise, SEED + 2 + default)
        p.tomogram(fine, shape, p.zarr(vol, fine.value, "mean"), _photos(vol), processing, default)
    coarse_shape = _shape(SHOWCASE_EXTENT, coarse.value)
    vol = render(scene, coarse.value, ((0, 0, 0), coarse_shape), 0.45, SEED + 4)
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
        _File("Mesh", "glb", True, _vesicle_mesh(p, centers, radii, s)),
    ]
    p.annotation(fine, VESICLE, MEMBRAIN, len(radii), vesicles)
    # community picks of the same ribosomes at the coarse spacing: voxels at 16 Å, same Å positions
    picked = ribosomes[:12]
    points = p.points(_xyz(picked, coarse.value))
    community = [_File("Point", "ndjson", False, points)]
    dep = COMMUNITY_DEPOSITION_ID
    p.annotation(coarse, RIBOSOME, TEMPLATE, len(picked), community, dep, "community")


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
        vol = render(scene, sp.value, ((0, 0, 0), shape), 0.5, SEED + 200 + i)
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
        vol = render(scene, spacing, ((0, 0, 0), shape), 0.5, SEED + 300 + i)
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


# ---------------------------------------------------------------- bulk runs (tiny, templated)


@dataclass(frozen=True)
class _Template:
    """A tiny tomogram encoded once and copied into many runs, with its particle picks."""

    zarr: dict[str, bytes]
    photos: tuple[bytes, bytes]
    points: bytes
    count: int


def _templates(k: int) -> list[_Template]:
    extent = _extent(TINY_SHAPE, TINY_SPACING)
    out = []
    for i in range(k):
        scene, centers = _cell_scene(1000 + i, extent, 3 + i % 4, 24.0, i % 2 == 1)
        vol = render(scene, TINY_SPACING, ((0, 0, 0), TINY_SHAPE), 0.45, SEED + 1000 + i)
        memory = enc.Bucket(None)
        # one unpadded chunk per level: a 256³ padded chunk would be ~300 KB per level per run
        enc.write_ome_zarr(memory, "", vol, TINY_SHAPE, TINY_SPACING, "mean", chunk=None)
        points = enc.ndjson_points(_xyz(centers, TINY_SPACING))
        out.append(_Template(memory.objects, _photos(vol)(), points, len(centers)))
    return out


def _tiny_run(
    p: _Portal, ds: _Dataset, name: str, template: _Template, obj: _Obj, identified: bool
) -> None:
    extent = _extent(TINY_SHAPE, TINY_SPACING)
    run = p.run(ds, name, extent, TINY_SPACING / 4)
    if identified:
        p.identified(run, obj)
    sp = p.spacing(run, TINY_SPACING)
    copy = partial(p.bucket.put_all, objects=template.zarr)
    p.tomogram(sp, TINY_SHAPE, copy, lambda: template.photos)
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
        _tiny_run(p, ds, name, templates[i % len(templates)], RUBISCO, i % 10 == 0)


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
    for i, n in enumerate([HUGE_DATASET_RUNS, *counts.tolist()]):
        dataset_id = HUGE_DATASET_ID + i
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
            _tiny_run(p, ds, name, templates[(i * 3 + r) % len(templates)], obj, r % 5 == 0)
    known = {d["id"] for d in p.tables["Deposition"]}
    for d in sorted({ds.row["depositionId"] for ds in p.datasets} - known):
        p.deposition(d, f"Demo deposition {d}", "Synthetic deposition for benchmarks.", d - 10300)


def _large_tomogram_dataset(p: _Portal) -> None:
    """One run whose tomogram spans several 256³ chunks per level (memory, streaming)."""
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
        data = render(scene, spacing, block, 0.5, SEED + 41)
        (z0, y0, x0), (nz, ny, nx) = block
        if z0 <= mid < z0 + nz:
            middle[y0 : y0 + ny, x0 : x0 + nx] = data[mid - z0]
        return data

    def write(key: str) -> int:
        return enc.write_ome_zarr(p.bucket, key, source, LARGE_TOMOGRAM_SHAPE, spacing, "mean")

    p.tomogram(sp, LARGE_TOMOGRAM_SHAPE, write, lambda: enc.key_photos(middle))
    pts = p.points(_xyz(ribosomes, spacing))
    p.annotation(sp, RIBOSOME, TEMPLATE, len(ribosomes), [_File("Point", "ndjson", True, pts)])
