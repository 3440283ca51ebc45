"""The interpreter shim: runtime selection, missing/corrupt model files, idle unload, threads."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from daemon.vision.runtime import ModelHandle, ModelInputError, ModelState, ModelUnavailable

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
DETECTOR = "face_detection_short_range.tflite"   # the smallest model: fast to load


def _run_python(code: str, extra_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run code in a fresh interpreter of the venv, ai_edge_litert blocked the way Python itself
    treats a None entry in sys.modules: `import` raises ImportError."""
    prelude = "import sys\nsys.modules['ai_edge_litert'] = None\nsys.modules['ai_edge_litert.interpreter'] = None\n"
    if extra_path is not None:
        prelude += f"sys.path.insert(0, {str(extra_path)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def test_prefers_ai_edge_litert():
    from daemon.vision.runtime import load_interpreter_class

    cls, name = load_interpreter_class()
    assert name == "ai-edge-litert"
    assert cls.__module__.startswith("ai_edge_litert")


def test_without_ai_edge_litert_falls_back_or_says_what_to_install():
    proc = _run_python("""
        from daemon.vision.runtime import load_interpreter_class, RuntimeUnavailable
        try:
            cls, name = load_interpreter_class()
            print("RUNTIME", name, cls.__module__)
        except RuntimeUnavailable as exc:
            print("UNAVAILABLE", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    try:
        import importlib.util
        has_tflite_runtime = importlib.util.find_spec("tflite_runtime") is not None
    except ValueError:
        has_tflite_runtime = False
    if has_tflite_runtime:
        assert "RUNTIME tflite-runtime tflite_runtime" in proc.stdout
    else:
        assert proc.stdout.startswith("UNAVAILABLE no TFLite runtime")
        assert "pip install ai-edge-litert" in proc.stdout and "tflite-runtime" in proc.stdout


def test_tflite_runtime_package_is_used_when_ai_edge_litert_is_absent(tmp_path):
    # A real package named tflite_runtime on sys.path (standing in for the Pi wheel): the selection
    # must import it and hand back its Interpreter.
    pkg = tmp_path / "tflite_runtime"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "interpreter.py").write_text("class Interpreter:\n    pass\n")
    proc = _run_python("""
        from daemon.vision.runtime import load_interpreter_class
        cls, name = load_interpreter_class()
        print(name, cls.__module__)
    """, extra_path=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "tflite-runtime tflite_runtime.interpreter"


def test_handle_without_any_runtime_fails_with_reason_not_crash():
    proc = _run_python(f"""
        from pathlib import Path
        from daemon.vision.runtime import ModelHandle, ModelUnavailable
        h = ModelHandle(Path({str(MODELS / DETECTOR)!r}))
        try:
            h.run([])
        except ModelUnavailable as exc:
            print(h.state.value, "|", exc)
    """)
    assert proc.returncode == 0, proc.stderr
    state, _, reason = proc.stdout.partition("|")
    assert state.strip() == "failed"
    assert "no TFLite runtime" in reason


def test_missing_model_file_is_reported(tmp_path):
    h = ModelHandle(tmp_path / "gone.tflite")
    assert h.state is ModelState.MISSING
    assert "model file not found" in h.reason and "gone.tflite" in h.reason
    with pytest.raises(ModelUnavailable, match="not found"):
        h.run(np.zeros((1, 128, 128, 3), np.float32))
    # the file turns up (e.g. `make models-build` ran): the next use loads it
    shutil.copy(MODELS / DETECTOR, tmp_path / "gone.tflite")
    h.run(np.zeros((1, 128, 128, 3), np.float32))
    assert h.state is ModelState.LOADED


def test_corrupt_model_file_fails_with_reason_and_recovers_when_replaced(tmp_path):
    bad = tmp_path / "model.tflite"
    bad.write_bytes(np.random.default_rng(1).bytes(4096))
    h = ModelHandle(bad)
    assert h.load() is ModelState.FAILED
    assert "cannot load model.tflite" in h.reason
    with pytest.raises(ModelUnavailable, match="cannot load"):
        h.run(np.zeros((1, 128, 128, 3), np.float32))
    assert h.load_count == 0
    time.sleep(0.01)  # not a wait: the replacement must get a later mtime than the bad file
    shutil.copy(MODELS / DETECTOR, bad)          # a fresh copy: new size and mtime
    out = h.run(np.zeros((1, 128, 128, 3), np.float32))
    assert h.state is ModelState.LOADED and h.reason == ""
    assert [o.shape for o in out] == [(1, 896, 16), (1, 896, 1)]


def test_truncated_model_file_fails(tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes((MODELS / "efficientnet_lite0_int8.tflite").read_bytes()[:100_000])
    h = ModelHandle(cut)
    assert h.load() is ModelState.FAILED
    assert h.reason


def test_idle_unload_then_reload(tmp_path):
    h = ModelHandle(MODELS / DETECTOR, idle_unload_s=0.05)
    x = np.zeros((1, 128, 128, 3), np.float32)
    first = h.run(x)
    assert h.state is ModelState.LOADED and h.load_count == 1
    assert not h.unload_if_idle()                 # just used
    time.sleep(0.08)  # not a wait: being idle longer than idle_unload_s is what is tested
    assert h.unload_if_idle()
    assert h.state is ModelState.IDLE
    second = h.run(x)
    assert h.state is ModelState.LOADED and h.load_count == 2
    np.testing.assert_array_equal(first[0], second[0])
    assert h.run_count == 2 and h.mean_latency_ms > 0


def test_unload_never_happens_when_not_configured():
    h = ModelHandle(MODELS / DETECTOR)
    h.run(np.zeros((1, 128, 128, 3), np.float32))
    assert not h.unload_if_idle(now=time.monotonic() + 10_000)
    assert h.state is ModelState.LOADED


def test_one_interpreter_per_thread_same_results():
    h = ModelHandle(MODELS / DETECTOR)
    x = np.random.default_rng(0).uniform(-1, 1, (1, 128, 128, 3)).astype(np.float32)
    results: dict[int, np.ndarray] = {}

    def work(i: int) -> None:
        for _ in range(3):
            results[i] = h.run(x)[1]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert h.load_count == 3
    for r in results.values():
        np.testing.assert_allclose(r, results[0], rtol=1e-5, atol=1e-5)


def test_wrong_input_shape_is_a_clear_error():
    h = ModelHandle(MODELS / DETECTOR)
    with pytest.raises(ModelInputError, match=r"expects input shape \(1, 128, 128, 3\)"):
        h.run(np.zeros((1, 192, 192, 3), np.float32))


def test_disabled_model_refuses_to_run():
    h = ModelHandle(MODELS / DETECTOR)
    h.disable("faces switched off in shoebox.toml")
    with pytest.raises(ModelUnavailable, match="switched off"):
        h.run(np.zeros((1, 128, 128, 3), np.float32))
    assert h.state is ModelState.DISABLED
    h.enable()
    h.run(np.zeros((1, 128, 128, 3), np.float32))
    assert h.state is ModelState.LOADED
