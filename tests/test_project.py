"""What a new user meets besides the services: compose files, buf lint, generated code, the demo model."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from tests.conftest import ROOT


def compose_config(*files: str, profile: str | None = None) -> dict:
    args = ["docker-compose", *(f for name in files for f in ("-f", name))]
    args += ["--profile", profile] if profile else []
    out = subprocess.run([*args, "config"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stderr
    return yaml.safe_load(out.stdout)


def test_compose_stack_shape() -> None:
    cfg = compose_config("docker-compose.yml", profile="test")
    services = cfg["services"]
    assert {"demo", "tokenizer", "model", "gateway", "tests"} <= services.keys()
    published = [name for name, s in services.items() if s.get("ports")]
    assert published == ["gateway"], "only the gateway's port is published"
    assert cfg["networks"]["backend"].get("internal") is True
    for name in ("tokenizer", "model"):
        assert list(services[name]["networks"]) == ["backend"]
    for name in ("tokenizer", "model", "gateway"):
        assert services[name]["restart"] == "unless-stopped"
        assert services[name]["healthcheck"]["test"][:3] == ["CMD", "python", "-m"]
        assert services[name]["build"]["context"] == str(ROOT)
    assert "torchrun" in services["model"]["command"][0]
    assert services["gateway"]["depends_on"]["model"]["condition"] == "service_healthy"
    assert services["tests"]["environment"]["LLAMA_GRPC_GATEWAY"] == "gateway:50051"
    assert services["tests"]["profiles"] == ["test"]
    for name in ("demo", "tokenizer", "model"):  # the model directory lives in a volume they share
        assert any(str(v).startswith("models:/models") for v in services[name]["volumes"]), services[name]["volumes"]
    assert "models" in cfg["volumes"]


def test_compose_gpu_override_reserves_gpus() -> None:
    cfg = compose_config("docker-compose.yml", "docker-compose.gpu.yml")
    model = cfg["services"]["model"]
    devices = model["deploy"]["resources"]["reservations"]["devices"]
    assert devices[0]["driver"] == "nvidia" and devices[0]["capabilities"] == ["gpu"]
    assert "--device=cuda" in model["command"]


def test_buf_lint_passes() -> None:
    buf = ROOT / "tools" / "node_modules" / ".bin" / "buf"
    assert buf.exists(), "run `make node` first"
    out = subprocess.run([str(buf), "lint", "protos"], cwd=ROOT, capture_output=True, text=True, check=False)
    assert out.returncode == 0, out.stdout + out.stderr


def test_generated_code_is_current() -> None:
    out = subprocess.run(
        [sys.executable, "scripts/gen_protos.py", "--check"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr


@pytest.fixture(scope="module")
def demo_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo model, trained for a few seconds only (the real one trains for 150)."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "demo", "--out", str(out), "--seconds", "4"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return out


def test_demo_model_is_made_in_metas_layout_and_cached(demo_model: Path, dist_ctx) -> None:
    from model_svc.checkpoint import load_model
    from model_svc.layout import merge_shards

    assert {p.name for p in demo_model.iterdir()} == {"tokenizer.model", "mp1", "mp2"}
    assert sorted(p.name for p in (demo_model / "mp2").glob("*.pth")) == ["consolidated.00.pth", "consolidated.01.pth"]
    one = torch.load(demo_model / "mp1" / "consolidated.00.pth")
    two = merge_shards([torch.load(demo_model / "mp2" / f"consolidated.0{r}.pth") for r in (0, 1)])
    assert all(torch.equal(one[k], two[k]) for k in one)
    model = load_model(
        demo_model / "mp1",
        max_seq_len=64,
        max_batch_size=1,
        device=torch.device("cpu"),
        dtype_name="float32",
        rank=0,
        world_size=1,
    )
    assert model.params.vocab_size == 1000
    again = subprocess.run(
        [sys.executable, "-m", "demo", "--out", str(demo_model)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 0 and "(cached)" in again.stdout
