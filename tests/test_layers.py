"""The layer rule: inference is the product; evaluation, baselines, training, data generation and
the benchmark import it, never the reverse. Reconstructing a photo loads none of them."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PRODUCT = ("glvd_core.evaluate", "glvd_core.baselines", "glvd_core.train", "glvd_core.data", "glvd_core.bench",
               "glvd_core.demo", "glvd_core.likeness", "research")


def test_reconstructing_a_photo_loads_no_evaluation_training_data_or_bench_module():
    code = f"""
import json, sys
from glvd_core import Reconstructor
from glvd_core.pipeline import PipelineOptions, load_inputs, run
inputs = load_inputs([{str(ROOT / "docs" / "examples" / "astronaut.png")!r}])
res = run(Reconstructor.from_pretrained(device="cpu"), inputs, PipelineOptions(texture_size=64, neutral=True, arkit=True))
assert res.reconstruction.vertices.shape[1] == 7225 and res.texture is not None and res.arkit
print(json.dumps(sorted(m for m in sys.modules if m.startswith(("glvd_core", "research")))))
"""
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    assert "glvd_core.pipeline" in loaded and "glvd_core.texture" in loaded  # the probe did run the pipeline
    bad = [m for m in loaded if m.startswith(NOT_PRODUCT)]
    assert not bad, f"inference loaded {bad}"


def test_the_product_never_imports_research_or_bpy():
    offenders = []
    for p in (ROOT / "glvd_core").rglob("*.py"):
        text = p.read_text()
        if "import bpy" in text or "from research" in text or "import research" in text:
            offenders.append(str(p.relative_to(ROOT)))
    assert not offenders, offenders


def _untyped_public_functions(package: Path) -> list[str]:
    """Module-level functions and methods of public classes, not starting with ``_`` (``__init__``
    included), in non-private modules of ``package``, with an unannotated parameter or return."""
    import ast

    found = []
    for f in sorted(package.rglob("*.py")):
        if any(part.startswith("_") and part != "__init__.py" for part in f.relative_to(package).parts):
            continue
        tree = ast.parse(f.read_text())
        funcs = [(n, "") for n in tree.body if isinstance(n, ast.FunctionDef)]
        for c in tree.body:
            if isinstance(c, ast.ClassDef) and not c.name.startswith("_"):
                funcs += [(n, c.name + ".") for n in c.body if isinstance(n, ast.FunctionDef)]
        for fn, owner in funcs:
            if fn.name.startswith("_") and fn.name != "__init__":
                continue
            a = fn.args
            params = a.posonlyargs + a.args + a.kwonlyargs + [x for x in (a.vararg, a.kwarg) if x is not None]
            missing = [p.arg for p in params if p.annotation is None and p.arg not in ("self", "cls")]
            if fn.returns is None and fn.name != "__init__":
                missing.append("return")
            if missing:
                found.append(f"{f.relative_to(ROOT)}:{fn.lineno} {owner}{fn.name}: {', '.join(missing)}")
    return found


def test_public_functions_are_fully_typed():
    """Every public function of the core and the extension says what it takes and returns."""
    untyped = _untyped_public_functions(ROOT / "glvd_core") + _untyped_public_functions(ROOT / "glvd_blender")
    assert not untyped, "\n".join(untyped)
