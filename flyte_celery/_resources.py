"""Inert resource requests (``Resources``) and accelerator devices (``GPU``, ``TPU``, ...), validated like Flyte's.

Celery workers run wherever they were started, so nothing here is enforced; a request Flyte would reject is still
rejected, so task files stay portable both ways.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal, Union, get_args

_logger = logging.getLogger(__name__)

SharedGPUType = Literal["T4 shared", "L4 shared", "A10G shared", "A10 shared", "L40S shared"]
GPUType = Literal[
    "A2", "A10", "A10G", "A100", "A100_80G", "B200", "H100", "H200", "L4", "L40s", "T4", "V100",
    "RTX_PRO_4500", "RTX_PRO_6000", "GB10", SharedGPUType,
]  # fmt: skip
GPUQuantity = Literal[1, 2, 3, 4, 5, 6, 7, 8]
A100Parts = Literal["1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"]
A100_80GBParts = Literal["1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
H100Parts = Literal["1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"]
H200Parts = Literal["1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"]
RTXPro6000Parts = Literal["1g.24gb", "2g.48gb", "4g.96gb"]
TPUType = Literal["V5E", "V5P", "V6E"]
V5EParts = Literal["1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"]
V5PParts = Literal[
    "2x2x1", "2x2x2", "2x4x4", "4x4x4", "4x4x8", "4x8x8", "8x8x8", "8x8x16", "8x16x16", "16x16x16", "16x16x24"
]  # fmt: skip
V6EParts = Literal["1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"]
NeuronType = Literal["Inf1", "Inf2", "Trn1", "Trn1n", "Trn2", "Trn2u"]
AMD_GPUType = Literal["MI100", "MI210", "MI250", "MI250X", "MI300A", "MI300X", "MI325X", "MI350X", "MI355X"]
HABANA_GAUDIType = Literal["Gaudi1"]
AppleSiliconType = Literal["AppleSilicon"]
DeviceClass = Literal["GPU", "TPU", "NEURON", "AMD_GPU", "HABANA_GAUDI", "APPLE_SILICON"]
CPUBaseType = Union[int, float, str]

_GPU_PARTITIONS: dict[str, tuple[str, ...]] = {
    "A100": get_args(A100Parts),
    "A100_80G": get_args(A100_80GBParts),
    "H100": get_args(H100Parts),
    "H200": get_args(H200Parts),
    "RTX_PRO_6000": get_args(RTXPro6000Parts),
}
_TPU_PARTITIONS: dict[str, tuple[str, ...]] = {
    "V5E": get_args(V5EParts),
    "V5P": get_args(V5PParts),
    "V6E": get_args(V6EParts),
}
_DEPRECATED_GPU_ALIASES = {"A100 80G": "A100_80G", "RTX PRO 6000": "RTX_PRO_6000"}


def _accelerator_counts() -> dict[str, tuple[int, ...]]:
    # The "<device>:<count>" strings Flyte's `Accelerators` literal allows, as a table instead of 180 literals.
    up_to_8 = tuple(range(1, 9))
    counts: dict[str, tuple[int, ...]] = {"A2": (1,), "RTX_PRO_4500": (1,), "RTX_PRO_6000": (1, 2), "GB10": (1,)}
    counts.update(dict.fromkeys(("A10", "A10G", "A100", "A100_80G", "B200", "H100", "H200", "L4", "L40s"), up_to_8))
    counts.update(dict.fromkeys(("V100", "T4"), up_to_8))
    counts.update(dict.fromkeys(get_args(SharedGPUType), (1,)))
    counts.update(dict.fromkeys(("Trn1", "Trn1n", "Trn2", "Trn2u"), (1, 4, 8, 16)))
    counts.update({"Inf1": tuple(range(1, 17)), "Inf2": tuple(range(1, 13)), "AppleSilicon": (1,)})
    counts.update(dict.fromkeys(get_args(AMD_GPUType) + get_args(HABANA_GAUDIType), (1,)))
    return counts


_ACCELERATOR_COUNTS = _accelerator_counts()
_DEVICE_CLASS_BY_TYPE: dict[str, DeviceClass] = {
    **dict.fromkeys(get_args(GPUType) + get_args(SharedGPUType), "GPU"),
    **dict.fromkeys(get_args(TPUType), "TPU"),
    **dict.fromkeys(get_args(NeuronType), "NEURON"),
    **dict.fromkeys(get_args(AMD_GPUType), "AMD_GPU"),
    **dict.fromkeys(get_args(HABANA_GAUDIType), "HABANA_GAUDI"),
    "AppleSilicon": "APPLE_SILICON",
}


def _normalize_gpu_type(device: str) -> str:
    current = _DEPRECATED_GPU_ALIASES.get(device)
    if current is None:
        return device
    _logger.warning("GPU type %r is deprecated, use %r instead", device, current)
    return current


def _parse_accelerator(value: str) -> tuple[str, int]:
    """Split an accelerator string such as ``"A100:2"`` and check it; raise ``ValueError`` naming ``gpu``."""
    device, sep, count = value.partition(":")
    device = _normalize_gpu_type(device)
    if device == "AppleSilicon" and not sep:
        return device, 1  # the Mac has one GPU, so the count may be left out
    allowed = _ACCELERATOR_COUNTS.get(device, ())
    if not count.isdigit() or int(count) not in allowed:
        raise ValueError(f"gpu must be an accelerator string such as 'A100:2' or 'T4:1', got {value!r}")
    return device, int(count)


@dataclass(frozen=True)
class Device:
    """An accelerator request: a device class, a quantity, and optionally a device type and partition.

    Args:
        quantity: How many devices (at least 1).
        device_class: The family, e.g. ``"GPU"`` or ``"TPU"``.
        device: The device type, e.g. ``"A100"``; ``None`` means any.
        partition: A MIG partition (``"1g.5gb"``) or a TPU slice (``"2x2"``).
    """

    quantity: int
    device_class: DeviceClass
    device: str | None = None
    partition: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.quantity, bool) or not isinstance(self.quantity, int) or self.quantity < 1:
            raise ValueError(f"Device quantity must be an int >= 1, got {self.quantity!r}")
        if self.device_class not in get_args(DeviceClass):
            raise ValueError(f"device_class must be one of {get_args(DeviceClass)}, got {self.device_class!r}")
        if (self.device == "AppleSilicon") != (self.device_class == "APPLE_SILICON"):
            raise ValueError('the Apple Silicon device is device="AppleSilicon" with device_class="APPLE_SILICON"')
        if self.device_class == "APPLE_SILICON" and self.quantity != 1:
            raise ValueError("an Apple Silicon device is the Mac's single GPU; quantity must be 1")


# The device constructors are functions with class-like names because that is Flyte's API.
def GPU(device: GPUType, quantity: GPUQuantity, partition: str | None = None) -> Device:
    """An NVIDIA GPU request, optionally a MIG partition of one.

    Args:
        device: The GPU type, e.g. ``"T4"``, ``"A100"`` or ``"T4 shared"`` (a time-sliced share).
        quantity: How many GPUs.
        partition: A MIG partition such as ``"1g.5gb"`` (A100, A100_80G, H100, H200, RTX_PRO_6000 only).
    """
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValueError(f"GPU quantity must be an int >= 1, got {quantity!r}")
    name = _normalize_gpu_type(device)
    if name not in get_args(GPUType) and name not in get_args(SharedGPUType):
        raise ValueError(f"Invalid GPU type {device!r}; must be one of {get_args(GPUType)}")
    if partition is not None:
        if name in get_args(SharedGPUType):
            raise ValueError(f"a shared GPU takes no partition, got {partition!r} for {name}")
        allowed = _GPU_PARTITIONS.get(name)
        if allowed is not None and partition not in allowed:
            raise ValueError(f"Invalid partition {partition!r} for {name}; must be one of {allowed}")
    return Device(quantity=quantity, device_class="GPU", device=name, partition=partition)


def TPU(device: TPUType, partition: str | None = None) -> Device:
    """A Google Cloud TPU request, optionally a slice such as ``"2x2"``."""
    if device not in _TPU_PARTITIONS:
        raise ValueError(f"Invalid TPU type {device!r}; must be one of {get_args(TPUType)}")
    if partition is not None and partition not in _TPU_PARTITIONS[device]:
        raise ValueError(f"Invalid partition {partition!r} for {device}; must be one of {_TPU_PARTITIONS[device]}")
    return Device(quantity=1, device_class="TPU", device=device, partition=partition)


def _single(device: str, allowed: tuple[str, ...], family: str, device_class: DeviceClass) -> Device:
    if device not in allowed:
        raise ValueError(f"Invalid {family} type {device!r}; must be one of {allowed}")
    return Device(quantity=1, device_class=device_class, device=device)


def Neuron(device: NeuronType) -> Device:
    """An AWS Neuron (Inferentia / Trainium) device request."""
    return _single(device, get_args(NeuronType), "Neuron", "NEURON")


def AMD_GPU(device: AMD_GPUType) -> Device:
    """An AMD GPU request, e.g. ``"MI300X"``."""
    return _single(device, get_args(AMD_GPUType), "AMD GPU", "AMD_GPU")


def HABANA_GAUDI(device: HABANA_GAUDIType) -> Device:
    """A Habana Gaudi accelerator request."""
    return _single(device, get_args(HABANA_GAUDIType), "Habana Gaudi", "HABANA_GAUDI")


def APPLE_SILICON() -> Device:
    """The Metal GPU of an Apple Silicon Mac (same as ``gpu="AppleSilicon"``)."""
    return Device(quantity=1, device_class="APPLE_SILICON", device="AppleSilicon")


def _check_cpu(value: object, *, in_pair: bool = False) -> None:
    if value is None and not in_pair:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"cpu must be a core count or a quantity string such as 1, 0.5 or '100m', got {value!r}")
    if isinstance(value, (int, float)) and value < 0:
        raise ValueError(f"cpu must be >= 0, got {value!r}")


def _check_quantity(field: str, value: object, *, in_pair: bool = False) -> None:
    # Reject rather than coerce: memory=1024 would mean 1024 bytes as a Kubernetes quantity.
    if value is None and not in_pair:
        return
    if not isinstance(value, str):
        raise ValueError(f"{field} must be a quantity string such as '1Gi', '512Mi' or '2G', got {value!r}")


@dataclass(frozen=True)
class Resources:
    """CPU, memory, accelerator, disk and shared-memory requests of a task (recorded, not enforced).

    Args:
        cpu: Cores as an int, float or string (``"500m"``), or a ``(request, limit)`` pair.
        memory: A quantity string (``"1Gi"``) or a ``(request, limit)`` pair.
        gpu: A GPU count, an accelerator string (``"A100:2"``) or a ``Device`` from ``GPU()``, ``TPU()``, ...
        disk: Ephemeral disk as a quantity string.
        shm: Shared memory as a quantity string, or ``"auto"``.
    """

    cpu: CPUBaseType | tuple[CPUBaseType, CPUBaseType] | None = None
    memory: str | tuple[str, str] | None = None
    gpu: str | int | Device | None = None
    disk: str | None = None
    shm: str | None = None

    def __post_init__(self) -> None:
        for name, value in (("cpu", self.cpu), ("memory", self.memory)):
            if isinstance(value, tuple) and len(value) != 2:
                raise ValueError(f"{name} tuple must have exactly two elements (request, limit), got {value!r}")
        for cpu in self.cpu if isinstance(self.cpu, tuple) else (self.cpu,):
            _check_cpu(cpu, in_pair=isinstance(self.cpu, tuple))
        for memory in self.memory if isinstance(self.memory, tuple) else (self.memory,):
            _check_quantity("memory", memory, in_pair=isinstance(self.memory, tuple))
        _check_quantity("disk", self.disk)
        _check_quantity("shm", self.shm)
        gpu = self.gpu
        if gpu is None or isinstance(gpu, Device):
            return
        if isinstance(gpu, bool) or not isinstance(gpu, (int, str)):
            raise ValueError(f"gpu must be an accelerator string, a device count or a Device, got {gpu!r}")
        if isinstance(gpu, int):
            if gpu < 0:
                raise ValueError(f"gpu must be >= 0, got {gpu}")
            return
        device, count = _parse_accelerator(gpu)
        if device != gpu.partition(":")[0]:  # a deprecated alias: keep the current spelling
            object.__setattr__(self, "gpu", f"{device}:{count}")

    def get_device(self) -> Device | None:
        """The requested accelerator as a ``Device``, or ``None`` when none is requested (including ``gpu=0``)."""
        gpu = self.gpu
        if gpu is None or isinstance(gpu, Device):
            return gpu
        if isinstance(gpu, int):
            return Device(quantity=gpu, device_class="GPU") if gpu else None
        device, count = _parse_accelerator(gpu)
        return Device(quantity=count, device_class=_DEVICE_CLASS_BY_TYPE[device], device=device)

    def get_shared_memory(self) -> str | None:
        """The shared-memory request; ``""`` means "as much as the node has" (``shm="auto"``)."""
        if self.shm is None:
            return None
        return "" if self.shm == "auto" else self.shm
