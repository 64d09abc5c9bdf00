"""Service settings: ``FACEATLAS_*`` environment variables, validated when the app starts.

Every field is an environment variable with the prefix, e.g. ``FACEATLAS_DATA_DIR=/srv/faces``,
``FACEATLAS_CORS_ORIGINS='["https://photos.example"]'``, ``FACEATLAS_AUTH=false``.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    from platformdirs import user_data_dir

    return Path(user_data_dir("faceatlas"))


class Settings(BaseSettings):
    """What the service reads at start-up; a bad value stops it with a message naming the variable."""

    model_config = SettingsConfigDict(env_prefix="FACEATLAS_", extra="ignore", frozen=True)

    data_dir: Path = Field(default_factory=default_data_dir, description="where keys.db and the SQLite stores live")
    gallery: str | None = Field(None, description="gallery path or postgresql:// URL; default <data_dir>/gallery.db")
    collection: Path | str | None = Field(
        None, description="photo collection file or postgresql:// URL; default <data_dir>/collection.db"
    )
    photo_roots: list[Path] = Field(
        default_factory=list,
        description="folders an index job may read (none: index jobs are refused); a JSON list",
    )
    auth: bool = Field(True, description="require an API key (Authorization: Bearer fa_...) on /v1")
    max_upload_mb: float = Field(20.0, gt=0, le=1024, description="largest accepted upload, in MB")
    max_pixels: int = Field(40_000_000, gt=0, description="largest accepted image, in pixels (decoded)")
    max_video_mb: float = Field(
        500.0, gt=0, le=65536, description="largest accepted video clip upload (POST /v1/videos), in MB"
    )
    max_streams: int = Field(
        4, ge=0, le=64, description="live streams (POST /v1/streams) run at once, each on its own thread"
    )
    stream_hosts: list[str] = Field(
        default_factory=lambda: ["*"],
        description="hosts a stream URL or a webhook may name (shell patterns such as camera-*.local or 10.0.0.*; "
        "a JSON list); ['*'] = any host, [] = streams and webhooks refused",
    )
    rate_limit_per_minute: int = Field(600, ge=0, description="requests per key per minute; 0 = unlimited")
    max_waiting: int = Field(16, ge=1, description="image requests allowed to wait for the model; more get 503")
    analysis_threads: int = Field(1, ge=1, le=64, description="requests analysed at once")
    index_workers: int = Field(
        1,
        ge=1,
        le=64,
        description="processes an index job analyses photos in: 1 uses the service's own models (shared with "
        "requests); more spawns that many less one, each loading the models (~700 MB each)",
    )
    cors_origins: list[str] = Field(default_factory=list, description="origins allowed by CORS; empty = CORS off")
    metrics_public: bool = Field(False, description="serve /metrics without a key (for a scraper on a private net)")
    show_private: bool = Field(
        False,
        description="with FACEATLAS_AUTH=false, show private people (off: the local UI hides them, as from a "
        "read key without the private permission); with keys, a key's own permission decides",
    )
    detector: str = Field(
        "retinaface", description="face detector: a name (faceatlas models list) or the path of an .onnx / model pack"
    )
    embedder: str = Field(
        "dlib_resnet", description="face embedder: a name (faceatlas models list) or the path of an .onnx / model pack"
    )

    @field_validator("photo_roots")
    @classmethod
    def _roots_exist(cls, roots: list[Path]) -> list[Path]:
        resolved = []
        for root in roots:
            path = root.expanduser().resolve()
            if not path.is_dir():
                raise ValueError(f"photo root {root} is not a folder")
            resolved.append(path)
        return resolved

    @field_validator("cors_origins")
    @classmethod
    def _no_wildcard_with_keys(cls, origins: list[str]) -> list[str]:
        for origin in origins:
            if origin != "*" and not origin.startswith(("http://", "https://")):
                raise ValueError(f"CORS origin {origin!r} must start with http:// or https:// (or be '*')")
        return origins

    @field_validator("detector", "embedder")
    @classmethod
    def _model_usable(cls, model: str, info: ValidationInfo) -> str:
        """A name that is registered (and installed) or a path to a model of that task: checked at
        start-up, so a typo stops the service instead of failing its first request."""
        from faceatlas.errors import FaceAtlasError
        from faceatlas.models.catalog import check_model

        try:
            check_model(model, str(info.field_name))
        except FaceAtlasError as exc:
            raise ValueError(str(exc)) from None
        return model

    @model_validator(mode="after")
    def _data_dir_usable(self) -> Settings:
        data_dir = self.data_dir.expanduser()
        try:
            data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ValueError(f"data_dir {data_dir} cannot be created: {exc}") from exc
        if not os.access(data_dir, os.W_OK):
            raise ValueError(f"data_dir {data_dir} is not writable")
        return self

    @property
    def gallery_location(self) -> str:
        return self.gallery or str(self.data_dir.expanduser() / "gallery.db")

    @property
    def collection_location(self) -> Path | str:
        """The collection: a postgresql:// URL as it is, else its file (``collection_path``)."""
        if isinstance(self.collection, str) and self.collection.startswith(("postgresql://", "postgres://")):
            return self.collection
        return self.collection_path

    @property
    def collection_path(self) -> Path:
        """The collection's file (for a PostgreSQL collection, see ``collection_location``)."""
        return Path(self.collection or self.data_dir / "collection.db").expanduser()

    @property
    def keys_path(self) -> Path:
        return self.data_dir.expanduser() / "keys.db"

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_video_bytes(self) -> int:
        return int(self.max_video_mb * 1024 * 1024)
