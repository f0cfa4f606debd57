"""Minimal stand-in for TensorRT's runtime API, backed by CuPy, to exercise TensorRTEngine's buffers
and streams on a real GPU (TensorRT itself is not installable here). Model: y = 2*x + 1 (same shape),
s = x.sum(axis=1) -> [N, H, W]. Input 'x' [-1, 3, -1, -1] float32, profile min 1x3x8x8 max 4x3x64x64."""

import enum

import cupy
import numpy as np

__version__ = "10.99.0"


class ILogger:
    class Severity(enum.IntEnum):
        INTERNAL_ERROR = 0
        ERROR = 1
        WARNING = 2
        INFO = 3
        VERBOSE = 4

    def __init__(self):
        pass


class IProgressMonitor:
    def __init__(self):
        pass


class TensorIOMode(enum.Enum):
    INPUT = 1
    OUTPUT = 2


class DataType(enum.Enum):
    FLOAT = 0


def nptype(dt):
    return np.float32


class Dims(tuple):
    def __new__(cls, v=()):
        return tuple.__new__(cls, v)


class _Engine:
    num_io_tensors = 3
    num_optimization_profiles = 1
    _names = ["x", "y", "s"]

    def get_tensor_name(self, i):
        return self._names[i]

    def get_tensor_mode(self, n):
        return TensorIOMode.INPUT if n == "x" else TensorIOMode.OUTPUT

    def get_tensor_shape(self, n):
        return Dims({"x": (-1, 3, -1, -1), "y": (-1, 3, -1, -1), "s": (-1, -1, -1)}[n])

    def get_tensor_dtype(self, n):
        return DataType.FLOAT

    def get_tensor_profile_shape(self, n, p):
        return [Dims((1, 3, 8, 8)), Dims((1, 3, 32, 32)), Dims((4, 3, 64, 64))]

    def create_execution_context(self):
        return _Context()


class _Context:
    def __init__(self):
        self.shape = None
        self.addr = {}

    def set_optimization_profile_async(self, p, s):
        return True

    def set_input_shape(self, n, shape):
        self.shape = tuple(shape)
        return True

    def get_tensor_shape(self, n):
        n_, _c, h, w = self.shape
        return Dims(self.shape if n == "y" else (n_, h, w))

    def set_tensor_address(self, n, ptr):
        self.addr[n] = ptr
        return True

    def execute_async_v3(self, stream):
        def arr(name, shape):
            size = int(np.prod(shape)) * 4
            mem = cupy.cuda.UnownedMemory(self.addr[name], size, self)
            return cupy.ndarray(shape, cupy.float32, cupy.cuda.MemoryPointer(mem, 0))

        n, _c, h, w = self.shape
        with cupy.cuda.ExternalStream(stream):
            x = arr("x", self.shape)
            arr("y", self.shape)[...] = 2 * x + 1
            arr("s", (n, h, w))[...] = x.sum(axis=1)
        return True


class Runtime:
    def __init__(self, logger):
        self.logger = logger

    def deserialize_cuda_engine(self, data):
        if bytes(data) != b"FAKEPLAN":
            self.logger.log(ILogger.Severity.ERROR, "magic tag mismatch")
            return None
        return _Engine()
