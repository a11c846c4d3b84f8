"""SQLAlchemy 2 models. Schema changes go through an alembic revision in migrations/versions/."""
from __future__ import annotations

import enum
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from indexer.decode import TAKEN_LENGTH
from indexer.fsnames import MAX_CHARS, from_text, to_text


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    pass


class FsPath(TypeDecorator):
    """A file path: stored in its UTF-8-safe form (``indexer/fsnames.py``), read back as ``os.fsdecode`` gives it,
    so a name that is not UTF-8 is stored and opened byte for byte."""

    impl = String(MAX_CHARS)
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else to_text(value)

    def process_result_value(self, value: str | None, dialect) -> str | None:
        return None if value is None else from_text(value)


class SafeText(TypeDecorator):
    """A message that may quote a file name: any byte that is not UTF-8 is written as ``fsnames.to_text`` does."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect) -> str | None:
        return None if value is None else to_text(value)


class ImageStatus(str, enum.Enum):
    pending = "pending"  # registered, not embedded yet (an interrupted run resumes these)
    indexed = "indexed"  # vector stored under this id
    failed = "failed"  # could not be decoded; reason recorded


class Root(Base):
    """A folder (or single file) the user ingested; the nightly reindex rescans these."""

    __tablename__ = "roots"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    path: Mapped[str] = mapped_column(FsPath(), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_scan_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Image(Base):
    __tablename__ = "images"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    path: Mapped[str] = mapped_column(FsPath(), unique=True)
    root_id: Mapped[int | None] = mapped_column(ForeignKey("roots.id", ondelete="SET NULL"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    mtime: Mapped[float] = mapped_column(Float, default=0.0)
    sha256: Mapped[str | None] = mapped_column(String(64), index=True)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    format: Mapped[str | None] = mapped_column(String(16))
    camera_exif: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())  # Make/Model/date taken
    # Decodes of this photo begun in a process that died before finishing them (decoding in the caller's
    # process, as Celery workers do): 2 and the photo fails as "decoder crashed" (indexer/embedding.py).
    decode_crashes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    status: Mapped[ImageStatus] = mapped_column(
        Enum(ImageStatus, name="image_status", native_enum=False, length=16), default=ImageStatus.pending, index=True
    )
    error_reason: Mapped[str | None] = mapped_column(String(32))
    error_message: Mapped[str | None] = mapped_column(SafeText)
    model_id: Mapped[str | None] = mapped_column(String(128))
    linked: Mapped[bool] = mapped_column(Boolean, default=False, index=True)  # neighbours searched for
    group_id: Mapped[int | None] = mapped_column(ForeignKey("dup_groups.id", ondelete="SET NULL"), index=True)
    similarity_to_keeper: Mapped[float | None] = mapped_column(Float)
    # Similarity to its linkrule.CROWD_K-th nearest neighbour when it was last linked: how crowded its
    # neighbourhood is (a cosine-only link must stand above it)
    crowd: Mapped[float | None] = mapped_column(Float)
    # What the photo holds of the original picture (``indexer/keeper.py`` Attributes), measured at decode;
    # ``measured`` is keeper.VERSION of the measure (None: never measured, the keeper rule goes by pixels)
    detail: Mapped[float | None] = mapped_column(Float)
    border: Mapped[float | None] = mapped_column(Float)
    colour: Mapped[float | None] = mapped_column(Float)
    tint: Mapped[float | None] = mapped_column(Float)
    clipped: Mapped[float | None] = mapped_column(Float)
    noise: Mapped[float | None] = mapped_column(Float)
    blockiness: Mapped[float | None] = mapped_column(Float)
    jpeg_quality: Mapped[int | None] = mapped_column(Integer)
    analysed_side: Mapped[int | None] = mapped_column(Integer)
    tones: Mapped[list | None] = mapped_column(JSON)  # grey levels at keeper.TONE_QUANTILES
    measured: Mapped[int | None] = mapped_column(Integer)
    taken_at: Mapped[str | None] = mapped_column(String(TAKEN_LENGTH))  # the camera's capture time (indexer.decode.capture_time)
    halo: Mapped[float | None] = mapped_column(Float)  # overshoot at edges over their step (keeper.halo)
    # Share of its group's picture it holds (``keeper.holdings``: a crop holds part of its original), set when its
    # group is refreshed; None when not in a group or not known
    held: Mapped[float | None] = mapped_column(Float)
    first_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    indexed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


# Pairs a relink recomputes (new model, threshold or rule).
DERIVED_PAIR_KINDS = ("visual", "verified", "framed", "pixels", "soft")


class Pair(Base):
    """Two duplicate photos (a < b) and the evidence that links them (``indexer/linkrule.py``). kind: 'exact'
    (same bytes), 'verified' (keypoints agree on one transform and the content agrees under it: ``inliers``,
    ``agreement``), 'framed' (the same, but the content agrees only inside the matched keypoints' box: one
    photo in two frames), 'pixels' (low-texture pictures whose colour thumbnails match), 'soft' (a photo and its
    blurred or shrunk copy, matched cell by cell) or 'visual' (the cosine, where geometry cannot judge); see
    ``DERIVED_PAIR_KINDS``."""

    __tablename__ = "pairs"
    a_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    b_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True, index=True)
    similarity: Mapped[float] = mapped_column(Float)
    kind: Mapped[str] = mapped_column(String(8), default="visual")
    inliers: Mapped[int | None] = mapped_column(Integer)
    agreement: Mapped[float | None] = mapped_column(Float)
    cover: Mapped[float | None] = mapped_column(Float)  # of a fit's overlap, the share that agrees: NULL without a fit
    shifted: Mapped[int | None] = mapped_column(Integer)  # of a fit: cells whose content moved (NULL without a fit)


class Features(Base):
    """What the link step needs of a photo besides its vector (``indexer/features.py``), kept from the decode
    that embedded it so linking never decodes the file again. ``sha256`` is the content it was computed from."""

    __tablename__ = "features"
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    page: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # a page's (linking gives it more candidates)
    version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # features.VERSION of ``data``; NULL: not read yet


class DupGroup(Base):
    """A transitive duplicate group (a connected component of the pair graph)."""

    __table_args__ = (  # keyset pagination of GET /groups by (sort column, id)
        Index("ix_dup_groups_size_id", "size", "id"),
        Index("ix_dup_groups_reclaimable_bytes_id", "reclaimable_bytes", "id"),
    )

    __tablename__ = "dup_groups"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(Integer, default=0, index=True)
    keeper_id: Mapped[int | None] = mapped_column(BigInteger)
    keeper_reason: Mapped[str | None] = mapped_column(Text)
    max_distance: Mapped[float] = mapped_column(Float, default=0.0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    reclaimable_bytes: Mapped[int] = mapped_column(BigInteger, default=0, index=True)
    resolution: Mapped[str | None] = mapped_column(String(32))
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # a member joins the others only through look-alike links, the members hold two capture times or a pair whose
    # content moved, they hang on one link between two parts (grouping.bridged), a member has a checked link to a
    # photo outside them (grouping.reaching_out), or they are more than grouping.MAX_BULK (grouping.look_only): bulk
    # review leaves it out
    look_only: Mapped[bool | None] = mapped_column(Boolean, nullable=True)


class NotDuplicate(Base):
    """A user's decision that two photos are not duplicates, keyed by content so it survives re-ingest."""

    __tablename__ = "not_duplicates"
    sha_a: Mapped[str] = mapped_column(String(64), primary_key=True)
    sha_b: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Job(Base):
    """A long-running ingest or reindex, with progress for the CLI, API and workers."""

    __tablename__ = "jobs"
    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict)
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    summary: Mapped[dict | None] = mapped_column(JSON)
    phases: Mapped[dict | None] = mapped_column(JSON)  # indexer/phases.py: the phase now and each one's progress
    message: Mapped[str | None] = mapped_column(SafeText)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Meta(Base):
    """Key/value facts about the index (model in use, threshold pairs were linked at)."""

    __tablename__ = "meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


__all__ = ["Base", "DupGroup", "Image", "ImageStatus", "Job", "Meta", "NotDuplicate", "Pair", "Root"]
