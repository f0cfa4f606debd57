"""Every TensorRT-version branch of the package, in one table (TensorRT-free so it is tested anywhere).

TensorRT 8.5 brought the named-tensor API (``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``) the backend uses throughout, so 8.5 is the floor. Later releases changed how a
network is created and where precision comes from:

=========  =====================  ================================  ===============
version    explicit-batch flag    precision                          progress monitor
=========  =====================  ================================  ===============
8.5-8.6    required               builder flags FP16/INT8 (+Q/DQ)    no
9.x-10.x   implied (deprecated)   builder flags FP16/INT8 (+Q/DQ)    yes (10.0+)
11.x       removed                strongly typed: from the ONNX      yes
=========  =====================  ================================  ===============

On 11.x an FP16 engine is built from an FP16 ONNX (``precision.to_fp16``) and an INT8 one from a
Q/DQ ONNX (``precision.quantize_int8``); on 8.5-10.x a Q/DQ ONNX also works (with the INT8 flag).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIN_VERSION = (8, 5)


@dataclass(frozen=True)
class TensorRTFeatures:
    version: tuple[int, int]
    #: ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` must be passed to ``create_network``.
    explicit_batch_flag: bool
    #: ``BuilderFlag.FP16`` / ``BuilderFlag.INT8`` exist (removed with implicit quantization in 11).
    precision_flags: bool
    #: Networks are always strongly typed: precision is whatever the ONNX says.
    strongly_typed_only: bool
    #: ``IProgressMonitor`` and ``IBuilderConfig.progress_monitor``.
    progress_monitor: bool

    def onnx_for(self, precision: str) -> str:
        """Which ONNX recipe feeds the builder: ``fp32``, ``fp16`` (an FP16 copy) or ``int8`` (Q/DQ)."""
        if precision == "fp16" and self.precision_flags:
            return "fp32"  # the builder flag picks FP16 kernels per layer, often faster than an FP16 ONNX
        return precision

    def builder_flags(self, precision: str) -> tuple[str, ...]:
        """Names of ``trt.BuilderFlag`` members to set for ``precision`` (empty on 11.x)."""
        if not self.precision_flags:
            return ()
        return {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]


def parse_version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def features(version: str) -> TensorRTFeatures:
    """The feature set of TensorRT ``version`` (``"10.13.0.35"``); ValueError below 8.5."""
    v = parse_version(version)
    if v < MIN_VERSION:
        raise ValueError(
            f"TensorRT {version} is too old: the named-tensor API needs {MIN_VERSION[0]}.{MIN_VERSION[1]}+"
        )
    major = v[0]
    return TensorRTFeatures(
        version=v,
        explicit_batch_flag=major < 10,
        precision_flags=major < 11,
        strongly_typed_only=major >= 11,
        progress_monitor=major >= 10,
    )
