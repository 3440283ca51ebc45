"""The TFLite interpreter shim: which runtime is installed, and one model file's lifecycle.

Why a shim: `ai-edge-litert` is the supported runtime (wheels for x86-64 and aarch64, numpy 2), but
a Raspberry Pi image may only have the older `tflite-runtime` (numpy < 2, int8 models 10-15x
slower). Either works; having neither must not stop the daemon: tagging is simply off, and the
reason is shown to the user.

Why a handle per model file rather than a module-level interpreter: a TFLite Interpreter is not
thread-safe (it owns its tensors), so every worker thread of the pool gets its own, created lazily
on first use. On a 2 GB Pi the models cost memory, so a handle can drop all its interpreters after
an idle time and reload on the next call. A missing or corrupt file turns into a state with a
readable reason (MISSING/FAILED) that the caller reports; it never raises out of the daemon's run.
"""

from __future__ import annotations

import enum
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np


class RuntimeUnavailable(RuntimeError):
    """No TFLite runtime can be imported: tagging and faces stay off."""


class ModelUnavailable(RuntimeError):
    """A model cannot run (missing, corrupt, disabled, no runtime); the message says why."""


class ModelInputError(ValueError):
    """The caller fed a tensor with the wrong shape or count: a programming error, said plainly."""


def load_interpreter_class() -> tuple[type, str]:
    """Return (Interpreter class, runtime name): ai-edge-litert first, else tflite-runtime.

    Raises RuntimeUnavailable naming both import failures and what to install.
    """
    errors: list[str] = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except Exception as exc:  # ImportError, or a wheel built against another numpy
        errors.append(f"ai-edge-litert: {exc}")
    try:
        from tflite_runtime.interpreter import Interpreter  # type: ignore[import-not-found]

        return Interpreter, "tflite-runtime"
    except Exception as exc:
        errors.append(f"tflite-runtime: {exc}")
    raise RuntimeUnavailable(
        "no TFLite runtime: install ai-edge-litert (pip install ai-edge-litert==2.3.0) or, where it "
        "has no wheel, tflite-runtime==2.14.0 with numpy<2; photo tagging and faces are off until then ("
        + "; ".join(errors) + ")"
    )


class ModelState(enum.Enum):
    MISSING = "missing"      # the file is not there
    IDLE = "idle"            # not loaded yet, or unloaded after an idle time
    LOADED = "loaded"        # at least one interpreter is live
    FAILED = "failed"        # the file (or the runtime) could not be loaded; see reason
    DISABLED = "disabled"    # switched off by configuration


class _Slot:
    """One worker thread's interpreter; the handle keeps every slot so unload() can empty them all."""

    __slots__ = ("interpreter", "input_index", "output_index")

    def __init__(self) -> None:
        self.interpreter: Any = None
        self.input_index: list[tuple[int, tuple[int, ...], np.dtype]] = []
        self.output_index: list[int] = []


class ModelHandle:
    """One model file: lazily creates ONE interpreter per worker thread, XNNPACK on.

    State, reason, load count and mean latency are exposed for the health page. A handle is shared
    by all workers; each thread only ever touches its own interpreter.
    """

    def __init__(
        self,
        path: Path,
        *,
        num_threads: int = 1,
        idle_unload_s: float | None = None,
        interpreter_class: type | None = None,
    ) -> None:
        self.path = Path(path)
        self.num_threads = max(1, int(num_threads))
        self.idle_unload_s = idle_unload_s
        self._interpreter_class = interpreter_class
        self.runtime_name: str | None = "custom" if interpreter_class is not None else None
        self._lock = threading.Lock()
        self._local = threading.local()
        self._slots: list[_Slot] = []
        self._state = ModelState.IDLE
        self._reason = ""
        self._failed_stat: tuple[float, int] | None = None
        self._last_used = time.monotonic()
        self.load_count = 0
        self.run_count = 0
        self._run_seconds = 0.0
        self._check_file()

    # ---- state -------------------------------------------------------------------------------

    @property
    def state(self) -> ModelState:
        return self._state

    @property
    def reason(self) -> str:
        """Why the model is MISSING/FAILED/DISABLED; empty otherwise."""
        return self._reason

    last_error = reason

    @property
    def mean_latency_ms(self) -> float | None:
        with self._lock:
            return 1000.0 * self._run_seconds / self.run_count if self.run_count else None

    def __repr__(self) -> str:
        return f"<ModelHandle {self.path.name} {self._state.value}{': ' + self._reason if self._reason else ''}>"

    def disable(self, reason: str = "disabled in the configuration") -> None:
        """Switch the model off: runs raise ModelUnavailable until enable()."""
        self.unload()
        with self._lock:
            self._state, self._reason = ModelState.DISABLED, reason

    def enable(self) -> None:
        with self._lock:
            if self._state is ModelState.DISABLED:
                self._state, self._reason = ModelState.IDLE, ""
        self._check_file()

    def _check_file(self) -> bool:
        """MISSING when the file is absent; back to IDLE when it reappears."""
        exists = self.path.is_file()
        with self._lock:
            if self._state is ModelState.DISABLED:
                return False
            if not exists:
                self._state = ModelState.MISSING
                self._reason = f"model file not found: {self.path}"
                return False
            if self._state is ModelState.MISSING:
                self._state, self._reason = ModelState.IDLE, ""
            return True

    def available(self) -> tuple[bool, str]:
        """Whether run() may succeed now, and why not: looks for a missing file again, and lets a
        FAILED model try again once its file was replaced (new size or mtime). Loads nothing, so
        it is cheap enough to ask before every job."""
        if not self._check_file():
            return False, self._reason
        with self._lock:
            if self._state is ModelState.FAILED and self._file_stat() == self._failed_stat:
                return False, self._reason
        return True, ""

    # ---- loading -----------------------------------------------------------------------------

    def _slot(self) -> _Slot:
        slot = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
            with self._lock:
                self._slots.append(slot)
        return slot

    def _ensure_loaded(self, slot: _Slot) -> Any:
        if slot.interpreter is not None:
            return slot.interpreter
        if self._state is ModelState.DISABLED:
            raise ModelUnavailable(f"{self.path.name}: {self._reason}")
        if not self._check_file():
            raise ModelUnavailable(self._reason)
        if self._state is ModelState.FAILED:
            # A corrupt file stays failed until it is replaced (new mtime or size): no reload storm.
            if self._file_stat() == self._failed_stat:
                raise ModelUnavailable(self._reason)
        try:
            if self._interpreter_class is None:
                self._interpreter_class, self.runtime_name = load_interpreter_class()
            interpreter = self._interpreter_class(model_path=str(self.path), num_threads=self.num_threads)
            interpreter.allocate_tensors()
            inputs = [(d["index"], tuple(int(x) for x in d["shape"]), np.dtype(d["dtype"]))
                      for d in interpreter.get_input_details()]
            outputs = [d["index"] for d in interpreter.get_output_details()]
        except Exception as exc:  # ValueError for a bad flatbuffer, RuntimeError from allocate, ...
            with self._lock:
                self._state = ModelState.FAILED
                self._reason = f"cannot load {self.path.name}: {exc}".strip()
                self._failed_stat = self._file_stat()
            raise ModelUnavailable(self._reason) from exc
        slot.interpreter, slot.input_index, slot.output_index = interpreter, inputs, outputs
        with self._lock:
            self.load_count += 1
            self._state, self._reason, self._failed_stat = ModelState.LOADED, "", None
            if slot not in self._slots:  # unload() emptied the registry since this slot was made
                self._slots.append(slot)
        return interpreter

    def _file_stat(self) -> tuple[float, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime, st.st_size)

    def load(self) -> ModelState:
        """Load this thread's interpreter now (e.g. at start-up to report problems early)."""
        try:
            self._ensure_loaded(self._slot())
        except ModelUnavailable:
            pass
        return self._state

    def unload(self) -> None:
        """Drop every thread's interpreter; the next run() in any thread reloads its own."""
        with self._lock:
            for slot in self._slots:
                slot.interpreter = None
            self._slots.clear()
            if self._state is ModelState.LOADED:
                self._state = ModelState.IDLE

    def unload_if_idle(self, now: float | None = None) -> bool:
        """Unload when configured and unused for idle_unload_s; the scheduler calls this periodically."""
        if self.idle_unload_s is None or self._state is not ModelState.LOADED:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_used < self.idle_unload_s:
            return False
        self.unload()
        return True

    # ---- inference ---------------------------------------------------------------------------

    @property
    def input_shapes(self) -> list[tuple[int, ...]]:
        """Input shapes (loads this thread's interpreter if needed)."""
        slot = self._slot()
        self._ensure_loaded(slot)
        return [shape for _, shape, _ in slot.input_index]

    def run(self, inputs: np.ndarray | Sequence[np.ndarray]) -> list[np.ndarray]:
        """Run the model once; returns copies of the outputs in the model's output order.

        Raises ModelUnavailable (state/reason say why) or ModelInputError for a wrong tensor.
        """
        slot = self._slot()
        interpreter = self._ensure_loaded(slot)
        arrays = [inputs] if isinstance(inputs, np.ndarray) else list(inputs)
        if len(arrays) != len(slot.input_index):
            raise ModelInputError(f"{self.path.name} takes {len(slot.input_index)} input(s), got {len(arrays)}")
        start = time.perf_counter()
        for array, (index, shape, dtype) in zip(arrays, slot.input_index):
            if tuple(array.shape) != shape:
                raise ModelInputError(f"{self.path.name} expects input shape {shape}, got {tuple(array.shape)}")
            interpreter.set_tensor(index, np.ascontiguousarray(array, dtype=dtype))
        interpreter.invoke()
        outputs = [np.array(interpreter.get_tensor(i)) for i in slot.output_index]
        elapsed = time.perf_counter() - start
        with self._lock:
            self.run_count += 1
            self._run_seconds += elapsed
            self._last_used = time.monotonic()
        return outputs
