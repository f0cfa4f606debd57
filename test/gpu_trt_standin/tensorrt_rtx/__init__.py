"""TensorRT-RTX stand-in: the TensorRT stand-in's runtime (``../tensorrt``, CuPy-backed) plus what the RTX
flavour adds: ``Runtime.get_engine_validity`` and an engine runtime config with a runtime cache. Plans:
``FAKEPLAN`` valid; ``FAKEPLAN-SM90`` built for/checked on an unsupported GPU (``UNSUPPORTED_CC``);
anything else malformed. Creating an execution context with a runtime cache "compiles" its kernels into it."""

import enum

import tensorrt as _base  # the TensorRT stand-in next to this package
from tensorrt import *  # noqa: F403  (the shared runtime API: ILogger, TensorIOMode, nptype, Dims...)

__version__ = "1.7.99"

RUNTIME_CACHE_MAGIC = b"RTCACHE:"


class EngineValidity(enum.IntEnum):
    VALID = 0
    SUBOPTIMAL = 1
    INVALID = 2


class _RuntimeCache:
    def __init__(self):
        self.blob = b""

    def serialize(self):
        return memoryview(self.blob or RUNTIME_CACHE_MAGIC)

    def deserialize(self, blob):
        blob = bytes(blob)
        if not blob.startswith(RUNTIME_CACHE_MAGIC):
            return False
        self.blob = blob
        return True


class _RuntimeConfig:
    def __init__(self):
        self.cache = None

    def create_runtime_cache(self):
        return _RuntimeCache()

    def set_runtime_cache(self, cache=None):
        self.cache = cache
        return True


class _Engine(_base._Engine):
    def create_runtime_config(self):
        return _RuntimeConfig()

    def create_execution_context(self, runtime_config=None):
        if runtime_config is not None and runtime_config.cache is not None and not runtime_config.cache.blob:
            runtime_config.cache.blob = RUNTIME_CACHE_MAGIC + b"kernels compiled for the stand-in"
        return super().create_execution_context()


class Runtime(_base.Runtime):
    def get_engine_validity(self, data):
        data = bytes(data)
        if data == b"FAKEPLAN":
            return EngineValidity.VALID, 0
        if data == b"FAKEPLAN-SM90":
            return EngineValidity.INVALID, 2  # EngineInvalidityDiagnostics.UNSUPPORTED_CC
        return EngineValidity.INVALID, 32  # MALFORMED_ENGINE

    def deserialize_cuda_engine(self, data):
        return _Engine() if super().deserialize_cuda_engine(data) is not None else None
