"""Database tables of a workspace (SQLAlchemy 2 declarative mapping).

Changing a table here needs a new Alembic revision in ``migrations/versions``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Float, ForeignKey, Integer, String, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = [
    "Annotation",
    "AuditEntry",
    "Base",
    "BookVersion",
    "Decision",
    "DefectClass",
    "Image",
    "ImageTag",
    "Job",
    "Model",
    "Project",
    "Snapshot",
    "TASKS",
    "TaskAnnotation",
    "TaskImage",
    "LabelingTask",
    "Token",
    "User",
]

TASKS = ("classification", "anomaly", "segmentation", "detection")
ANNOTATION_KINDS = ("class", "box", "polygon", "mask")


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    task: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    classes: Mapped[list[DefectClass]] = relationship(
        back_populates="project", cascade="all, delete-orphan", order_by="DefectClass.position"
    )
    images: Mapped[list[Image]] = relationship(back_populates="project", cascade="all, delete-orphan")


class DefectClass(Base):
    """A defect class of a project; ``ok`` is the explicit no-defect class.

    ``external_id`` keeps the source's own key (a COCO category id, a YOLO
    index) so that an export writes the same mapping back.
    """

    __tablename__ = "defect_classes"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    external_id: Mapped[str | None] = mapped_column(String(100))
    position: Mapped[int] = mapped_column(Integer, default=0)

    project: Mapped[Project] = relationship(back_populates="classes")


class Image(Base):
    """One picture in a project, identified by its relative path.

    Sizes are those of the image as displayed (EXIF orientation applied). An
    ``excluded`` image stays in the project but is left out of snapshots, so no
    model trains or is evaluated on it.
    """

    __tablename__ = "images"
    __table_args__ = (UniqueConstraint("project_id", "path"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    path: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(20))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    channels: Mapped[int] = mapped_column(Integer)
    bit_depth: Mapped[int] = mapped_column(Integer)
    split: Mapped[str | None] = mapped_column(String(10))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    version: Mapped[int] = mapped_column(Integer, default=1)
    excluded: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    project: Mapped[Project] = relationship(back_populates="images")
    annotations: Mapped[list[Annotation]] = relationship(
        back_populates="image", cascade="all, delete-orphan", order_by="Annotation.id"
    )
    tags: Mapped[list[ImageTag]] = relationship(cascade="all, delete-orphan", order_by="ImageTag.tag")


class ImageTag(Base):
    """A word a person put on an image to find it again, such as ``recheck`` or ``lot 7 glare``."""

    __tablename__ = "image_tags"
    __table_args__ = (UniqueConstraint("image_id", "tag"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    tag: Mapped[str] = mapped_column(String(100), index=True)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Annotation(Base):
    """One labeler's annotation of one image: an image-level class, a box, a polygon or a mask.

    ``geometry`` contains ``[x_min, y_min, x_max, y_max]`` for a box and the flat
    ``[x1, y1, x2, y2, ...]`` list for a polygon, in displayed pixels; a
    mask is a PNG blob named by ``mask_sha256``.
    """

    __tablename__ = "annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("defect_classes.id", ondelete="CASCADE"))
    labeler: Mapped[str] = mapped_column(String(100), default="import")
    kind: Mapped[str] = mapped_column(String(10))
    geometry: Mapped[list[Any] | None] = mapped_column(JSON)
    mask_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    image: Mapped[Image] = relationship(back_populates="annotations")
    defect_class: Mapped[DefectClass] = relationship()


class Snapshot(Base):
    """A frozen copy of a project's images, labels and splits, stored as a JSON blob."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    content_sha256: Mapped[str] = mapped_column(String(64))
    image_count: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Model(Base):
    """A trained model: its artifact blob, the snapshot it came from and its summary."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    snapshot_id: Mapped[int] = mapped_column(ForeignKey("snapshots.id"))
    task: Mapped[str] = mapped_column(String(20))
    artifact_sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Job(Base):
    """A long-running piece of work (import, training, evaluation) and how it ended."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id", ondelete="SET NULL"))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10), default="running")
    message: Mapped[str | None] = mapped_column(String(4000))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    started_by: Mapped[str | None] = mapped_column(String(100))


class Inference(Base):
    """One prediction the inference server made while capturing into a project.

    ``image_id`` is set when the image itself was kept (see
    ``defectlab.deployment.capture`` for the rule); ``reason`` gives why it was
    kept or not. ``stats`` are the image's brightness, contrast, sharpness and
    size (``defectlab.images.statistics``), kept for every image for drift reports.
    """

    __tablename__ = "inferences"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int | None] = mapped_column(ForeignKey("images.id", ondelete="SET NULL"), index=True)
    name: Mapped[str] = mapped_column(String(1000))
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(1000))
    label: Mapped[str] = mapped_column(String(200))
    score: Mapped[float] = mapped_column(Float)
    threshold: Mapped[float] = mapped_column(Float)
    is_defect: Mapped[bool] = mapped_column(Boolean)
    probabilities: Mapped[dict[str, float] | None] = mapped_column(JSON)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    stats: Mapped[dict[str, float]] = mapped_column(JSON, default=dict)
    reason: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)


class LabelingTask(Base):
    """A set of images handed to 2 to 5 named labelers, who label them blind (see ``defectlab.consensus``)."""

    __tablename__ = "labeling_tasks"
    __table_args__ = (UniqueConstraint("project_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    labelers: Mapped[list[Any]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    images: Mapped[list[TaskImage]] = relationship(cascade="all, delete-orphan", order_by="TaskImage.position")


class TaskImage(Base):
    """One image of a labeling task, in the order labelers get them."""

    __tablename__ = "task_images"
    __table_args__ = (UniqueConstraint("task_id", "image_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("labeling_tasks.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)


class TaskAnnotation(Base):
    """One labeler's annotation of one image inside a labeling task, kept apart from the project's labels.

    Geometry follows ``Annotation``. An image a labeler found free of defects
    has one ``class`` annotation of class ``ok``.
    """

    __tablename__ = "task_annotations"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("labeling_tasks.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("defect_classes.id", ondelete="CASCADE"))
    labeler: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(10))
    geometry: Mapped[list[Any] | None] = mapped_column(JSON)
    mask_sha256: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    defect_class: Mapped[DefectClass] = relationship()


class Decision(Base):
    """A reviewer's settlement of one image of a labeling task; the newest one per image counts.

    ``outcome`` is ``label`` (``class_name`` and, for regions, the regions of
    ``source_labeler`` became the project's label) or ``ambiguous`` (the image
    became a borderline example of ``class_name`` in the defect book).
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    task_id: Mapped[int] = mapped_column(ForeignKey("labeling_tasks.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    outcome: Mapped[str] = mapped_column(String(10))
    class_name: Mapped[str] = mapped_column(String(200))
    source_labeler: Mapped[str | None] = mapped_column(String(100))
    note: Mapped[str | None] = mapped_column(String(2000))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class BookVersion(Base):
    """One version of a defect class's entry in the defect book; every change adds a version.

    ``content`` contains ``definition``, ``rule`` (the decision rule) and
    ``examples`` (``image_id``, ``path``, ``role``, ``note``); ``change`` describes
    in words what this version changed.
    """

    __tablename__ = "book_versions"
    __table_args__ = (UniqueConstraint("class_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    class_id: Mapped[int] = mapped_column(ForeignKey("defect_classes.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    author: Mapped[str] = mapped_column(String(100))
    change: Mapped[str] = mapped_column(String(1000))
    content: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)


class Proposal(Base):
    """A label that a model proposed for an unlabeled image, kept apart from labels until a person reviews it.

    ``source`` names what proposed it: ``features`` (the pretrained features and
    the labels of that moment) or ``model N``. ``label`` is the proposed
    image-level class and ``regions`` the proposed boxes (``class``, ``box``,
    ``score``), if any. ``status`` is ``open`` until reviewed, then ``accepted``,
    ``corrected`` or ``rejected``, or ``superseded`` when the image was labeled another way. A ``blind`` proposal is a check: the reviewer
    labels the image without seeing it, and ``answer`` records that label. An open proposal becomes
    ``replaced`` when a newer run proposes for its image. ``labeled_images`` and ``blind_share`` record
    the run that made it: how many labeled images it learned from, and the share it kept blind.
    """

    __tablename__ = "proposals"

    id: Mapped[int] = mapped_column(primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id", ondelete="CASCADE"), index=True)
    image_id: Mapped[int] = mapped_column(ForeignKey("images.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(100))
    label: Mapped[str] = mapped_column(String(200))
    regions: Mapped[list[Any] | None] = mapped_column(JSON)
    confidence: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    blind: Mapped[bool] = mapped_column(Boolean, default=False)
    reviewer: Mapped[str | None] = mapped_column(String(100))
    answer: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    labeled_images: Mapped[int | None] = mapped_column(Integer)
    blind_share: Mapped[float | None] = mapped_column(Float)


class User(Base):
    """A person's account: a unique name, a role (``viewer``, ``labeler``, ``reviewer`` or ``owner``) and a
    password stored as a salted scrypt hash (see ``defectlab.accounts``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(300))
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    tokens: Mapped[list[Token]] = relationship(back_populates="user", cascade="all, delete-orphan")


class Token(Base):
    """A secret that stands for a user: a browser's sign-in ``session`` (it expires) or an ``api`` token for
    scripts (until revoked). Only the SHA-256 digest of the secret is stored."""

    __tablename__ = "tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(100))
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    user: Mapped[User] = relationship(back_populates="tokens")


class AuditEntry(Base):
    """One request that changed something through the REST API: who, when, what and with which outcome."""

    __tablename__ = "audit"

    id: Mapped[int] = mapped_column(primary_key=True)
    user: Mapped[str] = mapped_column(String(100), index=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(1000))
    status: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utc_now, index=True)
