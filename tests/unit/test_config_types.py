from __future__ import annotations

import logging
import pickle
import sys
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest

from flyte_celery._deployment_types import PodTemplate, ReusePolicy, Secret, secrets_from_request
from flyte_celery._image import Image, Layer
from flyte_celery._resources import (
    AMD_GPU,
    APPLE_SILICON,
    GPU,
    HABANA_GAUDI,
    TPU,
    Device,
    Neuron,
    Resources,
)
from flyte_celery.errors import ImageBuildError

PY = f"py{sys.version_info.major}.{sys.version_info.minor}"

# --- Resources and devices -----------------------------------------------------------------------------------------


def test_resources_accepts_flyte_spellings() -> None:
    r = Resources(cpu=(1, 2), memory=("1Gi", "4Gi"), gpu="A100:8", disk="10Gi", shm="auto")
    assert (r.cpu, r.memory, r.gpu, r.disk) == ((1, 2), ("1Gi", "4Gi"), "A100:8", "10Gi")
    assert Resources(cpu="500m").cpu == "500m"
    assert Resources(cpu=0.5, gpu=2).gpu == 2
    assert Resources() == Resources(cpu=None, memory=None, gpu=None, disk=None, shm=None)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"cpu": -1}, "cpu"),
        ({"cpu": (-1, 2)}, "cpu"),
        ({"cpu": (None, 2)}, "cpu"),
        ({"cpu": [1]}, "cpu"),
        ({"cpu": (1, 2, 3)}, "cpu"),
        ({"memory": 1024}, "memory"),
        ({"memory": ("1Gi", None)}, "memory"),
        ({"memory": ("1Gi",)}, "memory"),
        ({"disk": 10}, "disk"),
        ({"shm": 1}, "shm"),
        ({"gpu": -1}, "gpu"),
        ({"gpu": "A100:9"}, "gpu"),
        ({"gpu": "Z99:1"}, "gpu"),
        ({"gpu": "A100"}, "gpu"),
        ({"gpu": ("A100", 1)}, "gpu"),
        ({"gpu": True}, "gpu"),
    ],
)
def test_resources_rejects_bad_values_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Resources(**kwargs)  # type: ignore[arg-type]


def test_resources_is_frozen() -> None:
    r = Resources(cpu=1)
    with pytest.raises(AttributeError):
        r.cpu = 2  # type: ignore[misc]


def test_get_device_from_string_int_and_device() -> None:
    assert Resources(gpu="T4:2").get_device() == Device(quantity=2, device_class="GPU", device="T4")
    assert Resources(gpu="Trn1:16").get_device() == Device(quantity=16, device_class="NEURON", device="Trn1")
    assert Resources(gpu="MI300X:1").get_device() == Device(quantity=1, device_class="AMD_GPU", device="MI300X")
    assert Resources(gpu="AppleSilicon").get_device() == APPLE_SILICON()
    assert Resources(gpu=3).get_device() == Device(quantity=3, device_class="GPU")
    assert Resources(gpu=0).get_device() is None
    assert Resources().get_device() is None
    gpu = GPU("A100", 1, "1g.5gb")
    assert Resources(gpu=gpu).get_device() is gpu


def test_deprecated_gpu_alias_is_normalised_with_a_log(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="flyte_celery._resources"):
        r = Resources(gpu="A100 80G:2")
    assert r.gpu == "A100_80G:2"
    assert "deprecated" in caplog.text
    assert GPU("RTX PRO 6000", 1).device == "RTX_PRO_6000"  # type: ignore[arg-type]


def test_shared_memory() -> None:
    assert Resources(shm="auto").get_shared_memory() == ""
    assert Resources(shm="2Gi").get_shared_memory() == "2Gi"
    assert Resources().get_shared_memory() is None


def test_gpu_constructor_validates_type_quantity_and_partition() -> None:
    assert GPU("H100", 8, "1g.10gb") == Device(quantity=8, device_class="GPU", device="H100", partition="1g.10gb")
    assert GPU("T4 shared", 1).device == "T4 shared"
    with pytest.raises(ValueError, match="quantity"):
        GPU("T4", 0)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="GPU type"):
        GPU("X1", 1)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="partition"):
        GPU("A100", 1, "9g.99gb")
    with pytest.raises(ValueError, match="shared"):
        GPU("T4 shared", 1, "1g.5gb")


def test_other_device_constructors() -> None:
    assert TPU("V5P", "2x2x1") == Device(quantity=1, device_class="TPU", device="V5P", partition="2x2x1")
    assert TPU("V5E").partition is None
    with pytest.raises(ValueError, match="partition"):
        TPU("V5E", "2x2x1")
    with pytest.raises(ValueError, match="TPU type"):
        TPU("V4")  # type: ignore[arg-type]
    assert Neuron("Inf2").device_class == "NEURON"
    assert AMD_GPU("MI355X").device_class == "AMD_GPU"
    assert HABANA_GAUDI("Gaudi1").device_class == "HABANA_GAUDI"
    with pytest.raises(ValueError, match="Invalid Neuron type"):
        Neuron("Inf9")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid AMD GPU type"):
        AMD_GPU("MI1")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Invalid Habana Gaudi type"):
        HABANA_GAUDI("Gaudi9")  # type: ignore[arg-type]


def test_device_validation() -> None:
    with pytest.raises(ValueError, match="quantity"):
        Device(quantity=0, device_class="GPU")
    with pytest.raises(ValueError, match="device_class"):
        Device(quantity=1, device_class="FPGA")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="Apple Silicon"):
        Device(quantity=1, device_class="GPU", device="AppleSilicon")
    with pytest.raises(ValueError, match="quantity must be 1"):
        Device(quantity=2, device_class="APPLE_SILICON", device="AppleSilicon")


# --- Secret --------------------------------------------------------------------------------------------------------


def test_secret_env_var_defaults_like_flyte() -> None:
    assert Secret("my-openai-key").as_env_var == "MY_OPENAI_KEY"
    assert Secret("token", group="git-hub").as_env_var == "GIT_HUB_TOKEN"
    assert Secret("k", as_env_var="OPENAI_API_KEY").as_env_var == "OPENAI_API_KEY"
    assert Secret("k", mount=Path("/etc/flyte/secrets")).as_env_var is None


def test_secret_validation() -> None:
    with pytest.raises(ValueError, match="mount"):
        Secret("k", mount="/tmp/secrets")
    with pytest.raises(ValueError, match="as_env_var"):
        Secret("k", as_env_var="lower-case")


def test_secret_hash_is_stable_and_request_normalises() -> None:
    assert Secret("k").stable_hash() == Secret("k").stable_hash()
    assert Secret("k").stable_hash() != Secret("k2").stable_hash()
    assert secrets_from_request("a") == [Secret("a")]
    assert secrets_from_request(Secret("b")) == [Secret("b")]
    assert secrets_from_request(["a", Secret("b", group="g")]) == [Secret("a"), Secret("b", group="g")]


# --- ReusePolicy ---------------------------------------------------------------------------------------------------


def test_reuse_policy_defaults_and_normalisation() -> None:
    p = ReusePolicy()
    assert (p.replicas, p.idle_ttl, p.concurrency, p.scaledown_ttl, p.scope) == (
        (2, 2),
        timedelta(seconds=30),
        1,
        timedelta(seconds=30),
        "global",
    )
    q = ReusePolicy(replicas=(1, 3), idle_ttl=timedelta(minutes=5), concurrency=4, scaledown_ttl=60, scope="run")
    assert (q.min_replicas, q.max_replicas, q.get_scaledown_ttl()) == (1, 3, timedelta(seconds=60))
    assert q.idle_ttl == timedelta(minutes=5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"replicas": (3, 1)}, "replicas min"),
        ({"replicas": (1, 2, 3)}, "replicas"),
        ({"replicas": (-1, 2)}, "replicas min"),
        ({"replicas": ("1", 2)}, "replicas min"),
        ({"replicas": None}, "replicas"),
        ({"concurrency": 0}, "concurrency"),
        ({"concurrency": 1.5}, "concurrency"),
        ({"idle_ttl": 10}, "idle_ttl"),
        ({"idle_ttl": "30"}, "idle_ttl"),
        ({"scaledown_ttl": timedelta(seconds=5)}, "scaledown_ttl"),
        ({"scope": "cluster"}, "scope"),
    ],
)
def test_reuse_policy_rejects_bad_values(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ReusePolicy(**kwargs)  # type: ignore[arg-type]


# --- PodTemplate ---------------------------------------------------------------------------------------------------


def _spec(*names: str) -> SimpleNamespace:
    return SimpleNamespace(containers=[SimpleNamespace(name=n) for n in names])


def test_pod_template_from_spec_picks_the_primary_container() -> None:
    assert PodTemplate.from_spec(_spec("main")).primary_container_name == "main"
    assert PodTemplate.from_spec(_spec("sidecar", "primary")).primary_container_name == "primary"
    assert PodTemplate.from_spec(_spec("a", "b"), primary_container_name="b").primary_container_name == "b"
    with pytest.raises(ValueError, match="primary container"):
        PodTemplate.from_spec(_spec("a", "b"))
    with pytest.raises(ValueError, match="'c'"):
        PodTemplate.from_spec(_spec("a"), primary_container_name="c")


def test_pod_template_from_spec_copies_the_spec() -> None:
    spec = _spec("primary")
    template = PodTemplate.from_spec(spec, labels={"team": "ml"})
    spec.containers.append(SimpleNamespace(name="later"))
    assert len(template.pod_spec.containers) == 1
    assert template.labels == {"team": "ml"}


def test_pod_template_helpers_return_copies() -> None:
    base = PodTemplate(labels={"a": "b"})
    graced = base.with_termination_grace_period(timedelta(minutes=2))
    assert (graced.termination_grace_period_s, base.termination_grace_period_s) == (120, None)
    assert base.with_termination_grace_period(5).termination_grace_period_s == 5
    with pytest.raises(ValueError, match="termination_grace_period"):
        base.with_termination_grace_period(-1)
    with pytest.raises(TypeError, match="termination_grace_period"):
        base.with_termination_grace_period(True)
    fused = base.allow_fuse().allow_nested_sandboxing()
    assert fused.annotations == {
        "flyte.org/capability-fuse": "true",
        "flyte.org/capability-nested-sandboxing": "true",
    }
    assert base.annotations is None


# --- Image ---------------------------------------------------------------------------------------------------------


def test_image_cannot_be_instantiated_directly() -> None:
    with pytest.raises(TypeError, match="from_"):
        Image()


def test_image_uris_match_flyte() -> None:
    # Values checked against flyte 2.12.1 on Python 3.11 (with the tag's Python version made generic).
    assert Image.from_debian_base().uri == f"ghcr.io/flyteorg/flyte:{PY}-v2.12.1"
    assert Image.from_debian_base(python_version=(3, 12), flyte_version="v2.0.0").uri == (
        "ghcr.io/flyteorg/flyte:py3.12-v2.0.0"
    )
    assert Image.from_debian_base(install_flyte=False).uri == f"flyte:{PY}"
    assert Image.from_base("python:3.12-slim").uri == "python:3.12-slim"
    named = Image.from_debian_base(name="mine", registry="registry.example.com")
    assert named.uri.startswith("registry.example.com/mine:")
    assert len(named.uri.rsplit(":", 1)[1]) == 32


def test_image_uri_errors() -> None:
    with pytest.raises(ImageBuildError, match="base image"):
        _ = Image.from_ref_name("gpu").uri
    with pytest.raises(ImageBuildError, match="base image"):
        _ = Image.from_base("").uri


def test_builders_record_layers_without_changing_the_original() -> None:
    base = Image.from_debian_base()
    image = (
        base.with_apt_packages("curl", "git")
        .with_pip_packages("numpy", "pandas", extra_index_urls="https://idx", secret_mounts="GITHUB_PAT")
        .with_env_vars({"B": "2", "A": "1"})
        .with_commands(["echo hi"])
        .with_workdir("/app")
    )
    assert base.layers == ()
    assert [layer.kind for layer in image.layers] == ["apt_packages", "pip_packages", "env", "commands", "workdir"]
    pip = image.layers[1]
    assert pip.get("packages") == ("numpy", "pandas")
    assert pip.get("extra_index_urls") == ("https://idx",)
    assert pip.get("secret_mounts") == (Secret("GITHUB_PAT"),)
    assert image.layers[2].get("env_vars") == (("A", "1"), ("B", "2"))
    assert image.uri != base.uri
    assert image.uri.startswith("flyte:")


def test_image_is_hashable_comparable_and_picklable() -> None:
    a = Image.from_debian_base().with_pip_packages("x").with_env_vars({"K": "V"})
    b = Image.from_debian_base().with_pip_packages("x").with_env_vars({"K": "V"})
    assert a == b
    assert hash(a) == hash(b)
    assert a.uri == b.uri
    assert pickle.loads(pickle.dumps(a)) == a
    assert Image.from_debian_base().with_pip_packages("y").uri != a.uri


def test_non_extendable_images_take_no_layers() -> None:
    with pytest.raises(ValueError, match="non-extendable"):
        Image.from_base("python:3.12").with_pip_packages("x")
    with pytest.raises(ValueError, match="non-extendable"):
        Image.from_ref_name("default").with_pip_packages("x")
    dockerfile = Image.from_dockerfile("/tmp/Dockerfile", registry="r", name="n", platform="linux/arm64")
    assert (dockerfile.dockerfile, dockerfile.platform) == (Path("/tmp/Dockerfile"), ("linux/arm64",))
    with pytest.raises(ValueError, match="non-extendable"):
        dockerfile.with_pip_packages("x")
    with pytest.raises(ValueError, match="Dockerfile"):
        dockerfile.clone(extendable=True).with_pip_packages("x")
    extended = Image.from_base("python:3.12").clone(name="mine", extendable=True).with_pip_packages("x")
    assert extended.base_image == "python:3.12"
    assert extended.uri.startswith("mine:")


def test_clone_replaces_base_properties() -> None:
    image = Image.from_debian_base().clone(
        registry="r.io", name="n", registry_secret="pull-secret", platform="linux/amd64", python_version=(3, 13)
    )
    assert (image.registry, image.name, image.platform, image.python_version) == (
        "r.io",
        "n",
        ("linux/amd64",),
        (3, 13),
    )
    assert image._image_registry_secret == Secret("pull-secret")


def test_requirements_and_project_layers(tmp_path: Path) -> None:
    image = Image.from_debian_base()
    assert image.with_requirements("reqs.txt").layers[-1] == Layer.of("requirements", file=Path("reqs.txt"), pre=False)
    with pytest.raises(ValueError, match=r"\.txt"):
        image.with_requirements("reqs.in")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "uv.lock").write_text("")
    uv = image.with_uv_project(tmp_path / "pyproject.toml").layers[-1]
    assert (uv.kind, uv.get("uvlock"), uv.get("project_install_mode")) == (
        "uv_project",
        tmp_path / "uv.lock",
        "dependencies_only",
    )
    poetry = image.with_poetry_project(str(tmp_path / "pyproject.toml"), project_install_mode="install_project")
    assert poetry.layers[-1].get("poetry_lock") == tmp_path / "poetry.lock"
    assert image.with_pixi_project("pixi.toml").layers[-1].get("environment") == "default"


def test_source_layers(tmp_path: Path) -> None:
    image = Image.from_debian_base()
    folder = image.with_source_folder(tmp_path / "src").layers[-1]
    assert (folder.get("path_type"), folder.get("dst")) == ("dir", "./src")
    assert image.with_source_folder(tmp_path, "/app", copy_contents_only=True).layers[-1].get("dst") == "/app"
    files = image.with_source_file([Path("a/x.py"), Path("b/y.py")], dst="/app")
    assert [layer.get("src") for layer in files.layers] == [Path("a/x.py"), Path("b/y.py")]
    with pytest.raises(ValueError, match=r"x\.py"):
        image.with_source_file([Path("a/x.py"), Path("b/x.py")])
    with pytest.raises(ImageBuildError, match="does not exist"):
        image.with_source_folder(tmp_path / "missing").validate()
    image.with_source_folder(tmp_path).validate()


def test_script_constructors_and_local_wheels() -> None:
    uv = Image.from_uv_script("script.py", name="scripted", registry="r.io", python_version=(3, 12))
    assert (uv.name, uv.registry, uv.python_version) == ("scripted", "r.io", (3, 12))
    assert uv.layers[-1] == Layer.of("uv_script", script=Path("script.py"), pre=False)
    assert Image.from_pixi_script("s.py", name="px").layers[-1].kind == "pixi_script"
    local = Image.from_debian_base().with_local_v2().with_local_v2_plugins("flyteplugins-hitl")
    assert [layer.get("package_name") for layer in local.layers] == ["flyte", "flyteplugins_hitl"]
    with pytest.raises(ValueError, match="flyteplugins-"):
        Image.from_debian_base().with_local_v2_plugins(["hitl"])
    bundle = Image.from_debian_base().with_code_bundle("all", "/src").with_dockerignore(Path(".dockerignore"))
    assert [layer.kind for layer in bundle.layers] == ["code_bundle", "dockerignore"]
