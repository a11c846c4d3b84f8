"""One typed settings object for the whole service, overridable by ``DUPESIFT_*`` variables."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from platformdirs import user_data_dir
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = REPO_ROOT / "models"
DEFAULT_MODEL = MODELS_DIR / "dupesift-arcface-kd-lite0.onnx"


class Settings(BaseSettings):
    """Every tunable of dupesift. Environment variables are ``DUPESIFT_<FIELD>`` (case-insensitive)."""

    model_config = SettingsConfigDict(env_prefix="DUPESIFT_", env_file=None, extra="ignore")

    data_dir: Path = Field(default_factory=lambda: Path(user_data_dir("dupesift", appauthor=False)))
    database_url: str | None = None  # default: sqlite in data_dir
    milvus_uri: str | None = None  # default: Milvus Lite file in data_dir; http://host:19530 for a server
    milvus_token: str | None = None
    collection: str = "dupesift_images"  # the alias the service searches; collections are per model

    model_path: Path = DEFAULT_MODEL
    # Cosine similarity at or above which two photos are duplicates. None = the model's calibrated value.
    threshold: float | None = Field(default=None, ge=-1.0, le=1.0)

    max_pixels: int = Field(default=250_000_000, gt=0)  # decompression-bomb guard
    # Uploads to /similar: a lower pixel limit (a 40 MP RGBA PNG still needs ~0.3 GB to decode) and a cap
    # on how many decode at once; more wait up to upload_wait_s, then get a 503.
    upload_max_pixels: int = Field(default=40_000_000, gt=0)
    upload_decodes: int = Field(default=2, ge=1)
    upload_wait_s: float = Field(default=10.0, ge=0)
    # Thumbnails: pixels decoded at once across requests (a larger photo decodes alone), and how long a
    # thumbnail waits for room before 503
    thumbnail_decode_pixels: int = Field(default=60_000_000, gt=0)
    thumbnail_wait_s: float = Field(default=30.0, ge=0)
    max_file_bytes: int = Field(default=512 * 1024 * 1024, gt=0)
    batch_size: int = Field(default=64, gt=0)
    decode_workers: int = Field(default=0, ge=0)  # 0 = one per core
    # Per-file CPU-time limit (seconds) in a decode worker process: a worker over it is killed and its file
    # fails as "decoder crashed" (indexer/decodepool.py). 0 = no limit. With decode_workers=1 (Celery
    # workers) decoding runs in the calling process, which the limit then stops; the next try names the file.
    decode_cpu_seconds: float = Field(default=300, ge=0)
    onnx_threads: int = Field(default=0, ge=0)  # 0 = onnxruntime's choice
    # The link rule (indexer/linkrule.py; how each value was chosen: bench/README.md, "Link rule"). Candidates:
    # each photo's verify_per_photo most similar neighbours down to verify_band below the threshold, so that
    # the work grows with the library, not with its square. A candidate is linked when keypoints agree on one
    # transform (verify_min_inliers both ways) and the photo content agrees under it (verify_min_agreement of
    # the textured overlap), or on a weaker fit (verify_weak_inliers, as a blurred or tiny copy gives) under which
    # it agrees more closely (verify_weak_agreement), or, where a strong affine fit's content disagreed, inside the
    # inliers' bounding box alone with verify_frame_agreement (one photo in two frames), or under a perspective
    # fit (a copy photographed at an angle) with verify_perspective_agreement; or, at or above the
    # threshold, when two low-texture pictures' colour thumbnails match (pixel_max_distance), or match more
    # closely once a brightness gain and colour cast are undone (pixel_max_gain_distance); or, at any candidate
    # cosine, when a textured photo blurred matches a low-texture one's grey copy in every cell (to
    # pixel_max_blur_residual times the cell's spread: a blurred or shrunk copy), as it is or once laid over
    # the textured one (also cropped, turned a little or framed); or, where a photo has
    # under inconclusive_below keypoints, by a cosine of at least visual_min_cosine that stands crowd_margin
    # above the photos' crowds. A change relinks.
    verify_band: float = Field(default=0.35, ge=0, le=1)
    verify_min_inliers: int = Field(default=15, ge=3)
    verify_min_agreement: float = Field(default=0.6, ge=0, le=1)
    verify_weak_inliers: int = Field(default=8, ge=3)
    verify_weak_agreement: float = Field(default=0.75, ge=0, le=1)
    verify_perspective_agreement: float = Field(default=0.95, ge=0, le=1)
    verify_frame_agreement: float = Field(default=0.95, ge=0, le=1)
    # Two pages (documents, slides, clip art on white: indexer/pagecheck.py) also need page_min_agreement of
    # their small textured cells found in each other at the keypoints' frame: the text must agree too (never
    # less than pagecheck.LIGHT_AGREEMENT for a photographed page).
    page_min_agreement: float = Field(default=0.95, ge=0, le=1)
    verify_per_photo: int = Field(default=12, ge=1)
    # A page (indexer/pagecheck.py) gets this many: to the embedding all pages of a template look alike, and a
    # scan or phone photo of one ranks far down among them.
    verify_per_page: int = Field(default=128, ge=1)
    pixel_max_distance: float = Field(default=8.0, ge=0, le=255)
    pixel_max_gain_distance: float = Field(default=5.0, ge=0, le=255)
    pixel_max_blur_residual: float = Field(default=1.5, ge=0)
    inconclusive_below: int = Field(default=30, ge=0)
    visual_min_cosine: float = Field(default=0.8, ge=-1, le=1)
    crowd_margin: float = Field(default=0.1, ge=-2, le=2)
    neighbour_k: int = Field(default=64, gt=1)  # Milvus top-k per new photo when linking incrementally
    bulk_fraction: float = Field(default=0.2, gt=0, le=1)  # new/total above which linking uses faiss all-pairs

    # Worker threads of the API server for its sync routes; the catalog's connection pool holds as many (plus
    # a few for the ingest and warm-up threads), so no request thread ever waits for a connection.
    api_threads: int = Field(default=40, ge=1, le=1000)
    roots: str = ""  # ':'-separated library roots the API may ingest; empty = roots already ingested
    # Photos whose train split `dupesift calibrate` uses when it is given no folder (none by default: it then asks)
    photos_dir: Path | None = None
    api_token: str | None = None
    # Host names (comma- or space-separated) the API answers to besides loopback names and the bound address,
    # e.g. the machine's LAN name when serving on 0.0.0.0 (api/guards.py: DNS rebinding)
    allowed_hosts: str = ""
    broker_url: str | None = None
    result_backend: str | None = None

    @field_validator("data_dir", "model_path", "photos_dir", mode="after")
    @classmethod
    def _expand(cls, v: Path | None) -> Path | None:
        return None if v is None else v.expanduser().resolve()

    @property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'catalog.sqlite3'}"

    @property
    def milvus_target(self) -> str:
        return self.milvus_uri or str(self.data_dir / "milvus.db")

    @property
    def uses_milvus_lite(self) -> bool:
        return self.milvus_uri is None or not self.milvus_uri.startswith(("http://", "https://", "tcp://", "unix:"))

    @property
    def thumbnails_dir(self) -> Path:
        return self.data_dir / "thumbnails"

    @property
    def quarantine_dir(self) -> Path:
        return self.data_dir / "quarantine"

    def ensure_dirs(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)


SETTINGS_FILE = "dupesift.env"  # per-data-dir overrides, e.g. written by `dupesift calibrate --write`


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment, then ``<data_dir>/dupesift.env``, then ``overrides`` (highest)."""
    base = Settings(**overrides)
    env_file = base.data_dir / SETTINGS_FILE
    return Settings(_env_file=env_file, **overrides) if env_file.is_file() else base


def write_setting(data_dir: Path, name: str, value: object) -> Path:
    """Set ``DUPESIFT_<NAME>=value`` in the data dir's settings file (other lines are kept)."""
    path = Path(data_dir) / SETTINGS_FILE
    key = f"DUPESIFT_{name.upper()}"
    lines = [ln for ln in path.read_text().splitlines() if not ln.startswith(key + "=")] if path.exists() else []
    lines.append(f"{key}={value}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
