"""Every TensorRT-version branch of the package, in one table (TensorRT-free so it is tested anywhere).

Two flavours share the backend (``tensorrt_backend``): TensorRT itself (module ``tensorrt``, 8.5-11.x;
Jetson, data-centre and desktop GPUs) and TensorRT for RTX (module ``tensorrt_rtx``, 1.1+; x86 RTX
GPUs of compute capability 7.5, 8.0, 8.6, 8.9, 12.x). TensorRT 8.5 brought the named-tensor API
(``set_input_shape``, ``set_tensor_address``, ``execute_async_v3``) the backend uses throughout, so
8.5 is the floor; later releases changed how a network is created and where precision comes from:

==========  ==========  =================  ================================  ========  ================
flavour     version     explicit-batch     precision                         progress  kernel tuning
==========  ==========  =================  ================================  ========  ================
tensorrt    8.5-8.6     required           builder flags FP16/INT8 (+Q/DQ)   no        timing cache
tensorrt    9.x-10.x    implied            builder flags FP16/INT8 (+Q/DQ)   10.0+     timing cache
tensorrt    11.x        removed            strongly typed: from the ONNX     yes       timing cache
rtx         1.1+        removed            strongly typed: from the ONNX     yes       runtime cache
==========  ==========  =================  ================================  ========  ================

On 11.x and RTX an FP16 engine is built from an FP16 ONNX (``precision.to_fp16``) and an INT8 one from
a Q/DQ ONNX (``precision.quantize_int8``); on 8.5-10.x a Q/DQ ONNX also works (with the INT8 flag).
TensorRT-RTX differs further: the builder targets a compute capability named in the config and needs no
GPU for that (CPU-only ahead-of-time build), kernels are compiled just in time on the GPU and kept in
a *runtime cache* (the builder's timing cache is a no-op there and would force a GPU query, so it is not
used), there is no DLA, and ``Runtime.get_engine_validity`` (1.1+) checks a plan against the GPU before
loading it. Sources: TensorRT-RTX docs "CPU-Only AOT and TensorRT-RTX Engines",
"Working with Runtime Cache", "Timing Cache Migration" and the 1.1 release notes
(https://docs.nvidia.com/deeplearning/tensorrt-rtx/latest/inference-library/cpu-engines.html,
.../work-with-runtime-cache.html, .../timing-cache-migration.html,
.../getting-started/release-notes-1/1.1.html).

ONNX limits of TensorRT's parser that shape the graphs this package writes
---------------------------------------------------------------------------
* **UINT8 tensors only at network inputs/outputs** (8.6+ parser; RTX 1.7 the same): a node writing a
  UINT8 tensor that is not a graph output fails with ``UNSUPPORTED_NODE ... TensorRT does not support
  UINT8 types for intermediate tensors``. 8.5's Cast casts to/from UINT8 only from/to FP32/FP16.
  ``modelops.argmax_fusion`` (target ``tensorrt``) therefore carries the class index as float32 and casts
  to uint8 only in the node writing ``mask``. Sources: onnx-tensorrt ``ModelImporter.cpp`` (8.6-GA,
  10.1-GA: "UINT8 is only allowed as network inputs and outputs"), ``builtin_op_importers.cpp`` Cast
  (8.5-GA), docs/operators.md (10.x: "UINT8 is only supported as network input or output tensor
  types"), https://github.com/onnx/onnx-tensorrt.
* **Resize on FP32/FP16 (BF16 from 10.x) only**, not on integer tensors (onnx-tensorrt docs/operators.md
  8.5-GA through main); ONNX Runtime's CPU Resize takes float, int32, int8 and uint8 but not ArgMax's
  int64, which is why the nearest resize of the mask runs on float32 for both.
* **DequantizeLinear takes INT8 (FP8/INT4 from 10.x) with zero ``x_zero_point``**, never int32
  (onnx-tensorrt docs/operators.md 8.5-GA onwards): ONNX Runtime's ``quantize_static`` quantizes Conv/Gemm
  biases to int32 with a DequantizeLinear by default, which every TensorRT 7-10 and RTX rejects
  (``INVALID_NODE``, "only activation types allowed as input to this layer";
  https://github.com/onnx/onnx-tensorrt/issues/850, https://github.com/microsoft/onnxruntime/issues/14229).
  ``precision.quantize_int8(target="tensorrt")`` keeps biases in float (``QuantizeBias=False``; TensorRT
  fuses them into the INT8 layer), uses symmetric INT8 activations and weights (zero points 0, which the
  QuantizeLinear/DequantizeLinear importers require), per-channel weight scales on the output-channel
  axis (0 for Conv and Gemm with ``transB=1``, 1 for ConvTranspose and MatMul: the axis TensorRT's
  per-channel weight quantization needs), and Q/DQ on the inputs of Conv/ConvTranspose/MatMul/Gemm but
  not on their outputs (``OpTypesToExcludeOutputQuantization``), as TensorRT's Q/DQ placement
  recommendations ask, so it fuses the activation/residual into the INT8 layer (TensorRT developer guide,
  "Explicit Quantization", Q/DQ layer placement,
  https://docs.nvidia.com/deeplearning/tensorrt/latest/inference-library/quantized-types-explicit-quantization.html).

What the CPU check with TensorRT-RTX proves, and what it does not
-----------------------------------------------------------------
``test/test_tensorrt_rtx_build.py`` parses and builds (for sm_86, on the CPU) every ONNX the package
ships or writes, with TensorRT-RTX 1.7's ONNX parser and builder. That catches graphs any recent
TensorRT parser rejects (the two defects above were found this way) and runs ``build_plan`` and the
engine cache for real. It does **not** prove that TensorRT 8.6 or 10.3 on JetPack 6 (or 8.5 on JetPack
5) builds the same graphs: TensorRT-RTX is a separate product whose parser follows TensorRT 10.x/11
(opsets, INT64, strongly typed only), so a layer or type older versions lack (e.g. 8.5's narrower Cast,
8.x's INT64 handling, implicit-precision builder flags, DLA) is not exercised; nor does it run a single
kernel (no RTX GPU here: its runtime refuses Hopper, compute capability 9.0) or measure accuracy or
speed. The Jetson run of the engine/benchmark command remains the proof for the robot.
"""

from __future__ import annotations

import importlib
import os
import re
from dataclasses import dataclass
from types import ModuleType

MIN_VERSION = (8, 5)
#: ``Runtime.get_engine_validity`` (the unsupported-GPU check) arrived in TensorRT-RTX 1.1.
MIN_RTX_VERSION = (1, 1)
FLAVOURS = ("tensorrt", "tensorrt_rtx")
#: Environment variable naming the flavour to load where both are installed (default: tensorrt first).
FLAVOUR_ENV = "TRT_PERCEPTION_TENSORRT"
#: Compute capabilities TensorRT-RTX 1.7 builds for (its ``ComputeCapability`` enum).
RTX_COMPUTE_CAPABILITIES = ("7.5", "8.0", "8.6", "8.9", "12.0", "12.1")


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
    #: ``tensorrt`` or ``tensorrt_rtx`` (the module name).
    flavour: str = "tensorrt"
    #: The builder config names the target compute capability (no GPU needed to build).
    target_compute_capability: bool = False
    #: Kernels are tuned at run time into an ``IRuntimeCache`` (the build-time timing cache is a no-op).
    runtime_cache: bool = False
    #: Deep-learning accelerator cores can be targeted (Jetson Xavier/Orin).
    dla: bool = True

    @property
    def name(self) -> str:
        product = "TensorRT-RTX" if self.flavour == "tensorrt_rtx" else "TensorRT"
        return f"{product} {self.version[0]}.{self.version[1]}"

    def onnx_for(self, precision: str) -> str:
        """Which ONNX recipe feeds the builder: ``fp32``, ``fp16`` (an FP16 copy) or ``int8`` (Q/DQ)."""
        if precision == "fp16" and self.precision_flags:
            return "fp32"  # the builder flag picks FP16 kernels per layer, often faster than an FP16 ONNX
        return precision

    def builder_flags(self, precision: str) -> tuple[str, ...]:
        """Names of ``trt.BuilderFlag`` members to set for ``precision`` (empty on 11.x and RTX)."""
        if not self.precision_flags:
            return ()
        return {"fp32": (), "fp16": ("FP16",), "int8": ("INT8", "FP16")}[precision]


def parse_version(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if not match:
        raise ValueError(f"not a TensorRT version: {version!r}")
    return int(match.group(1)), int(match.group(2))


def features(version: str, flavour: str = "tensorrt") -> TensorRTFeatures:
    """The feature set of ``flavour`` at ``version`` (``"10.13.0.35"``, ``"1.7.1.116"``); ValueError
    below the floor (TensorRT 8.5, TensorRT-RTX 1.1) or for an unknown flavour."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown TensorRT flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")
    v = parse_version(version)
    if flavour == "tensorrt_rtx":
        if v < MIN_RTX_VERSION:
            raise ValueError(
                f"TensorRT-RTX {version} is too old: the engine validity check needs "
                f"{MIN_RTX_VERSION[0]}.{MIN_RTX_VERSION[1]}+"
            )
        return TensorRTFeatures(
            version=v,
            explicit_batch_flag=False,
            precision_flags=False,
            strongly_typed_only=True,
            progress_monitor=True,
            flavour=flavour,
            target_compute_capability=True,
            runtime_cache=True,
            dla=False,
        )
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


def load_tensorrt(rtx_fallback: bool = True) -> tuple[ModuleType, str]:
    """(module, flavour) of the TensorRT to use: ``tensorrt`` where the real one is installed (its type
    stubs alone leave a namespace without ``Runtime``), else ``tensorrt_rtx`` unless ``rtx_fallback`` is
    False; ``$TRT_PERCEPTION_TENSORRT`` names the one to use. ImportError saying what was tried.

    ``rtx_fallback=False`` is the question "may nodes run engines here?" (``factory``): CI and
    development machines have TensorRT-RTX for its CPU-only builder, but its runtime needs an RTX GPU,
    so on a robot with one the variable opts in (``TRT_PERCEPTION_TENSORRT=tensorrt_rtx``)."""
    wanted = os.environ.get(FLAVOUR_ENV, "").strip()
    if wanted and wanted not in FLAVOURS:
        raise ImportError(f"${FLAVOUR_ENV}={wanted!r}: expected one of {', '.join(FLAVOURS)}")
    reasons = []
    candidates = (wanted,) if wanted else FLAVOURS if rtx_fallback else FLAVOURS[:1]
    for flavour in candidates:
        try:
            module = importlib.import_module(flavour)
        except ImportError as exc:
            reasons.append(f"{flavour}: {exc}")
            continue
        if hasattr(module, "Runtime"):
            return module, flavour
        reasons.append(f"{flavour}: only its type stubs are installed")
    raise ImportError("; ".join(reasons))


def rtx_compute_capability(cc: str) -> str:
    """``"8.6"`` / ``"86"`` / ``"sm_86"`` -> ``"SM86"`` (a ``tensorrt_rtx.ComputeCapability`` member);
    ValueError for one TensorRT-RTX cannot target (Hopper 9.0, Jetson 7.2/8.7...)."""
    digits = cc.lower().removeprefix("sm_").removeprefix("sm").replace(".", "")
    dotted = f"{digits[:-1]}.{digits[-1]}" if digits.isdigit() and len(digits) >= 2 else cc
    if dotted not in RTX_COMPUTE_CAPABILITIES:
        raise ValueError(
            f"TensorRT-RTX cannot target compute capability {cc!r}; it supports "
            f"{', '.join(RTX_COMPUTE_CAPABILITIES)} (x86 RTX GPUs): use TensorRT for other GPUs"
        )
    return "SM" + digits
