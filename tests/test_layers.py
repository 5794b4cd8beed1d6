"""The layer rule: inference is the product; evaluation, baselines, training, data generation and
the benchmark import it, never the reverse. Reconstructing a photo loads none of them."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
NOT_PRODUCT = ("glvd_core.evaluate", "glvd_core.baselines", "glvd_core.train", "glvd_core.data", "glvd_core.bench",
               "glvd_core.demo", "research")


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
