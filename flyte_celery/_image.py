"""Inert container image specs: Flyte's ``Image`` constructors and ``with_*`` builders, recording layers.

Nothing is built or pulled: Celery workers run in whatever environment they were started in. An ``Image`` only
records what a Flyte deployment would build, checks the arguments as Flyte does, and computes a Flyte-style ``uri``.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import InitVar, dataclass, field
from pathlib import Path
from typing import Any, Literal

from flyte_celery._deployment_types import Secret, SecretRequest, secrets_from_request

Architecture = Literal["linux/amd64", "linux/arm64"]
InstallMode = Literal["dependencies_only", "install_project"]
DEFAULT_PLATFORMS: tuple[Architecture, ...] = ("linux/amd64", "linux/arm64")
BASE_REGISTRY = "ghcr.io/flyteorg"
DEFAULT_IMAGE_NAME = "flyte"
DEFAULT_IMAGE_REF_NAME = "default"
# The Flyte SDK release whose default image tags `from_debian_base` mirrors.
FLYTE_IMAGE_VERSION = "2.12.1"
_TOKEN = object()


def _freeze(value: Any) -> Any:
    # Layer parameters must be hashable, because Image is.
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    return value


def _as_tuple(value: str | list[str] | tuple[str, ...] | None) -> tuple[str, ...] | None:
    if not value:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


def _mounts(secret_mounts: SecretRequest | None) -> tuple[Secret, ...] | None:
    return tuple(secrets_from_request(secret_mounts)) if secret_mounts else None


@dataclass(frozen=True)
class Layer:
    """One recorded build step: its ``kind`` (e.g. ``"pip_packages"``) and its arguments as sorted pairs."""

    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, kind: str, **params: Any) -> Layer:
        """A layer of ``kind`` with ``params`` (``None`` values dropped)."""
        return cls(kind, tuple(sorted((k, _freeze(v)) for k, v in params.items() if v is not None)))

    def get(self, key: str, default: Any = None) -> Any:
        """The value of one parameter."""
        return dict(self.params).get(key, default)


@dataclass(frozen=True)
class Image:
    """A container image spec, made with a ``from_*`` constructor and extended with ``with_*`` builders.

    Each builder returns a new ``Image`` with one more recorded layer. Create images with the constructors;
    ``Image(...)`` raises ``TypeError``, as in Flyte.
    """

    base_image: str | None = None
    dockerfile: Path | None = None
    registry: str | None = None
    name: str | None = None
    platform: tuple[Architecture, ...] = ("linux/amd64",)
    python_version: tuple[int, int] = field(default_factory=lambda: (sys.version_info.major, sys.version_info.minor))
    extendable: bool = False
    _is_cloned: bool = False
    _ref_name: str | None = None
    _layers: tuple[Layer, ...] = ()
    _tag: str | None = None
    _image_registry_secret: Secret | None = None
    _key: InitVar[object] = None

    def __post_init__(self, _key: object) -> None:
        if _key is not _TOKEN:
            raise TypeError("Image cannot be instantiated directly; use one of the Image.from_*() constructors")

    @classmethod
    def _new(cls, **kwargs: Any) -> Image:
        return cls(**kwargs, _key=_TOKEN)

    # --- constructors --------------------------------------------------------------------------------------------

    @classmethod
    def from_debian_base(
        cls,
        python_version: tuple[int, int] | None = None,
        flyte_version: str | None = None,
        install_flyte: bool = True,
        registry: str | None = None,
        registry_secret: str | Secret | None = None,
        name: str | None = None,
        platform: tuple[Architecture, ...] | None = None,
    ) -> Image:
        """Flyte's default Debian-based image for ``python_version`` (default: the running Python)."""
        major, minor = python_version or (sys.version_info.major, sys.version_info.minor)
        common: dict[str, Any] = {
            "name": DEFAULT_IMAGE_NAME,
            "python_version": (major, minor),
            "platform": platform or DEFAULT_PLATFORMS,
            "extendable": True,
        }
        if install_flyte:
            version = (flyte_version or FLYTE_IMAGE_VERSION).removeprefix("v")
            image = cls._new(base_image=f"{BASE_REGISTRY}/{DEFAULT_IMAGE_NAME}:py{major}.{minor}-v{version}", **common)
        else:
            base = f"python:{major}.{minor}-slim-bookworm"
            image = cls._new(base_image=base, _is_cloned=True, _tag=f"py{major}.{minor}", **common)
        if registry or name:
            return image.clone(registry=registry, name=name, registry_secret=registry_secret, extendable=True)
        return image

    @classmethod
    def from_base(cls, image_uri: str) -> Image:
        """An existing image, used as is; it cannot take more layers."""
        return cls._new(base_image=image_uri)

    @classmethod
    def from_ref_name(cls, name: str = DEFAULT_IMAGE_REF_NAME) -> Image:
        """The image that the config's ``image.image_refs`` (or the CLI's ``--image``) maps ``name`` to."""
        return cls._new(name=name, _ref_name=name)

    @classmethod
    def from_uv_script(
        cls,
        script: Path | str,
        *,
        name: str,
        registry: str | None = None,
        registry_secret: str | Secret | None = None,
        python_version: tuple[int, int] | None = None,
        index_url: str | None = None,
        extra_index_urls: str | list[str] | tuple[str, ...] | None = None,
        pre: bool = False,
        extra_args: str | None = None,
        platform: tuple[Architecture, ...] | None = None,
        secret_mounts: SecretRequest | None = None,
    ) -> Image:
        """An image with the dependencies declared in a uv script's inline metadata."""
        layer = Layer.of(
            "uv_script",
            script=Path(script),
            index_url=index_url,
            extra_index_urls=_as_tuple(extra_index_urls),
            pre=pre,
            extra_args=extra_args,
            secret_mounts=_mounts(secret_mounts),
        )
        base = cls.from_debian_base(python_version, None, False, registry, registry_secret, name, platform)
        return base.clone(addl_layer=layer)

    @classmethod
    def from_pixi_script(
        cls,
        script: Path | str,
        *,
        name: str,
        registry: str | None = None,
        registry_secret: str | Secret | None = None,
        environment: str = "default",
        extra_args: str | None = None,
        platform: tuple[Architecture, ...] | None = None,
        secret_mounts: SecretRequest | None = None,
    ) -> Image:
        """An image with the conda and PyPI packages declared in a pixi script's inline metadata."""
        layer = Layer.of(
            "pixi_script",
            script=Path(script),
            environment=environment,
            extra_args=extra_args,
            secret_mounts=_mounts(secret_mounts),
        )
        base = cls.from_debian_base(None, None, False, registry, registry_secret, name, platform)
        return base.clone(addl_layer=layer)

    @classmethod
    def from_dockerfile(
        cls, file: Path | str, registry: str, name: str, platform: Architecture | tuple[Architecture, ...] | None = None
    ) -> Image:
        """An image built from a Dockerfile; it cannot take more layers."""
        kwargs: dict[str, Any] = {"dockerfile": Path(file), "registry": registry, "name": name, "_is_cloned": True}
        if platform:
            kwargs["platform"] = (platform,) if isinstance(platform, str) else tuple(platform)
        return cls._new(**kwargs)

    def clone(
        self,
        registry: str | None = None,
        registry_secret: str | Secret | None = None,
        name: str | None = None,
        base_image: str | None = None,
        python_version: tuple[int, int] | None = None,
        addl_layer: Layer | None = None,
        extendable: bool | None = None,
        platform: Architecture | tuple[Architecture, ...] | None = None,
    ) -> Image:
        """A copy with some base properties replaced and, optionally, one more layer at the end."""
        name = name or self.name
        if addl_layer is not None:
            if not self.extendable:
                raise ValueError("cannot add layers to a non-extendable image; clone() it with extendable=True first")
            if self.dockerfile:
                raise ValueError("cannot add layers to a Dockerfile-based image; amend the Dockerfile instead")
            if not name:
                raise ValueError(f"cannot add layer {addl_layer.kind!r} to an image without a name; clone() it first")
        secret = registry_secret or self._image_registry_secret
        return Image._new(
            base_image=base_image or self.base_image,
            dockerfile=self.dockerfile,
            registry=registry or self.registry,
            name=name,
            platform=((platform,) if isinstance(platform, str) else platform) if platform else self.platform,
            python_version=python_version or self.python_version,
            extendable=self.extendable if extendable is None else extendable,
            _is_cloned=True,
            _ref_name=self._ref_name,
            _layers=(*self._layers, addl_layer) if addl_layer else self._layers,
            _image_registry_secret=Secret(key=secret) if isinstance(secret, str) else secret,
        )

    # --- reading -------------------------------------------------------------------------------------------------

    @property
    def layers(self) -> tuple[Layer, ...]:
        """The recorded layers, oldest first."""
        return self._layers

    @property
    def uri(self) -> str:
        """``<registry>/<name>:<tag>`` for a built image (tag: a digest of the spec), else the base image's URI."""
        from flyte_celery.errors import ImageBuildError

        if not self._is_cloned:
            if not self.base_image:
                raise ImageBuildError(f"image has no base image URI (got {self.base_image!r}); pass a full image URI")
            return self.base_image
        if not self.name:
            raise ImageBuildError("image has no name, so it has no URI; pass name= to clone()")
        prefix = f"{self.registry}/" if self.registry else ""
        return f"{prefix}{self.name}:{self._tag or self._digest()}"

    def _digest(self) -> str:
        # A digest of the spec as written (file contents are not read: nothing is built).
        spec = repr((self.base_image, str(self.dockerfile or ""), self._layers))
        return hashlib.md5(spec.encode("utf-8"), usedforsecurity=False).hexdigest()

    def validate(self) -> None:
        """Check that the files the layers copy exist (Flyte checks this before a build)."""
        from flyte_celery.errors import ImageBuildError

        for layer in self._layers:
            src = layer.get("src")
            if layer.kind == "copy" and isinstance(src, Path) and not src.exists():
                raise ImageBuildError(f"source path {src.absolute()} does not exist")

    # --- builders ------------------------------------------------------------------------------------------------

    def with_workdir(self, workdir: str) -> Image:
        """Set the working directory."""
        return self.clone(addl_layer=Layer.of("workdir", workdir=workdir))

    def with_requirements(
        self,
        file: str | Path,
        index_url: str | None = None,
        extra_index_urls: str | list[str] | tuple[str, ...] | None = None,
        pre: bool = False,
        extra_args: str | None = None,
        secret_mounts: SecretRequest | None = None,
    ) -> Image:
        """Install a ``requirements.txt`` file (it must have a ``.txt`` suffix)."""
        path = Path(file)
        if path.suffix != ".txt":
            raise ValueError(f"requirements file {path} must have a .txt extension")
        return self.clone(
            addl_layer=Layer.of(
                "requirements",
                file=path,
                index_url=index_url,
                extra_index_urls=_as_tuple(extra_index_urls),
                pre=pre,
                extra_args=extra_args,
                secret_mounts=_mounts(secret_mounts),
            )
        )

    def with_pip_packages(
        self,
        *packages: str,
        index_url: str | None = None,
        extra_index_urls: str | list[str] | tuple[str, ...] | None = None,
        pre: bool = False,
        extra_args: str | None = None,
        secret_mounts: SecretRequest | None = None,
    ) -> Image:
        """Install pip packages (pip requirement syntax)."""
        return self.clone(
            addl_layer=Layer.of(
                "pip_packages",
                packages=packages or None,
                index_url=index_url,
                extra_index_urls=_as_tuple(extra_index_urls),
                pre=pre,
                extra_args=extra_args,
                secret_mounts=_mounts(secret_mounts),
            )
        )

    def with_env_vars(self, env_vars: dict[str, str]) -> Image:
        """Set environment variables."""
        return self.clone(addl_layer=Layer.of("env", env_vars=env_vars))

    def with_source_folder(self, src: Path, dst: str = ".", copy_contents_only: bool = False) -> Image:
        """Copy a local folder into the image (into ``./<folder name>`` when ``dst`` is ``"."``)."""
        if not copy_contents_only and dst == ".":
            dst = f"./{Path(src).name}"
        return self.clone(addl_layer=Layer.of("copy", path_type="dir", src=Path(src), dst=dst))

    def with_source_file(self, src: Path | list[Path], dst: str = ".") -> Image:
        """Copy one or more local files into the image."""
        paths = [Path(p) for p in src] if isinstance(src, list) else [Path(src)]
        names = [p.name for p in paths]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"files with the same name would overwrite each other at {dst!r}: {duplicates}")
        image = self
        for path in paths:
            image = image.clone(addl_layer=Layer.of("copy", path_type="file", src=path, dst=dst))
        return image

    def with_code_bundle(
        self, copy_style: Literal["loaded_modules", "all"] = "loaded_modules", dst: str = "."
    ) -> Image:
        """Bake the source code into the image when runs use ``copy_style="none"``."""
        return self.clone(addl_layer=Layer.of("code_bundle", copy_style=copy_style, dst=dst))

    def with_dockerignore(self, path: Path) -> Image:
        """Use a ``.dockerignore`` file for the copy layers."""
        return self.clone(addl_layer=Layer.of("dockerignore", path=str(path)))

    def with_uv_project(
        self,
        pyproject_file: str | Path,
        uvlock: Path | None = None,
        index_url: str | None = None,
        extra_index_urls: list[str] | tuple[str, ...] | None = None,
        pre: bool = False,
        extra_args: str | None = None,
        secret_mounts: SecretRequest | None = None,
        project_install_mode: InstallMode = "dependencies_only",
    ) -> Image:
        """Install a uv project (``uvlock`` defaults to the ``uv.lock`` next to ``pyproject_file`` if present)."""
        pyproject = Path(pyproject_file)
        if uvlock is None and (pyproject.parent / "uv.lock").exists():
            uvlock = pyproject.parent / "uv.lock"
        return self.clone(
            addl_layer=Layer.of(
                "uv_project",
                pyproject=pyproject,
                uvlock=uvlock,
                index_url=index_url,
                extra_index_urls=_as_tuple(extra_index_urls),
                pre=pre,
                extra_args=extra_args,
                secret_mounts=_mounts(secret_mounts),
                project_install_mode=project_install_mode,
            )
        )

    def with_poetry_project(
        self,
        pyproject_file: str | Path,
        poetry_lock: Path | None = None,
        extra_args: str | None = None,
        secret_mounts: SecretRequest | None = None,
        project_install_mode: InstallMode = "dependencies_only",
    ) -> Image:
        """Install a Poetry project (``poetry_lock`` defaults to the ``poetry.lock`` next to ``pyproject_file``)."""
        pyproject = Path(pyproject_file)
        return self.clone(
            addl_layer=Layer.of(
                "poetry_project",
                pyproject=pyproject,
                poetry_lock=poetry_lock or pyproject.parent / "poetry.lock",
                extra_args=extra_args,
                secret_mounts=_mounts(secret_mounts),
                project_install_mode=project_install_mode,
            )
        )

    def with_pixi_project(
        self,
        manifest_file: str | Path,
        pixi_lock: Path | None = None,
        environment: str = "default",
        extra_args: str | None = None,
        secret_mounts: SecretRequest | None = None,
        project_install_mode: InstallMode = "dependencies_only",
    ) -> Image:
        """Install a pixi project from its ``pixi.toml`` or ``pyproject.toml``."""
        return self.clone(
            addl_layer=Layer.of(
                "pixi_project",
                manifest=Path(manifest_file),
                pixi_lock=pixi_lock,
                environment=environment,
                extra_args=extra_args,
                secret_mounts=_mounts(secret_mounts),
                project_install_mode=project_install_mode,
            )
        )

    def with_apt_packages(self, *packages: str, secret_mounts: SecretRequest | None = None) -> Image:
        """Install Debian packages with apt."""
        return self.clone(addl_layer=Layer.of("apt_packages", packages=packages, secret_mounts=_mounts(secret_mounts)))

    def with_commands(self, commands: list[str], secret_mounts: SecretRequest | None = None) -> Image:
        """Run shell commands (without ``RUN``)."""
        layer = Layer.of("commands", commands=_as_tuple(commands) or (), secret_mounts=_mounts(secret_mounts))
        return self.clone(addl_layer=layer)

    def with_local_v2(self) -> Image:
        """Install the locally built SDK wheel (recorded only)."""
        return self.clone(addl_layer=Layer.of("python_wheels", package_name="flyte"))

    def with_local_rs_controller(self) -> Image:
        """Install the locally built Rust controller wheel (recorded only)."""
        return self.clone(addl_layer=Layer.of("python_wheels", package_name="flyte_controller_base"))

    def with_local_v2_plugins(self, plugins: str | list[str] | None = None) -> Image:
        """Install locally built plugin wheels; each name must start with ``flyteplugins-``."""
        image = self
        for plugin in [plugins] if isinstance(plugins, str) else plugins or []:
            if not plugin.startswith("flyteplugins-"):
                raise ValueError(f"plugin {plugin!r} must start with 'flyteplugins-'")
            image = image.clone(addl_layer=Layer.of("python_wheels", package_name=plugin.replace("-", "_")))
        return image
