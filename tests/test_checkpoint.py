"""Each bad checkpoint or load argument gets its own clear error (issue: model core)."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from model_svc.checkpoint import CheckpointError, check_divisible, load_model
from model_svc.layout import merge_shards, random_state_dict, shard_state_dict
from tests.conftest import MHA


def load(ckpt: Path, world_size: int = 1, dtype: str = "float32", rank: int = 0, **kw: int):
    limits = {"max_seq_len": 64, "max_batch_size": 4} | kw
    return load_model(ckpt, device=torch.device("cpu"), dtype_name=dtype, rank=rank, world_size=world_size, **limits)


@pytest.fixture
def ckpt(tmp_path: Path, mha_ckpt, dist_ctx) -> Path:
    """A private copy of the MHA MP=1 checkpoint to break."""
    dst = tmp_path / "ckpt"
    shutil.copytree(mha_ckpt[0], dst)
    return dst


def test_good_checkpoint_loads_memory_mapped(ckpt: Path, dist_ctx) -> None:
    model = load(ckpt)
    assert model.params.vocab_size == MHA.vocab_size  # from tok_embeddings, params.json says -1
    assert json.loads((ckpt / "params.json").read_text())["vocab_size"] == -1
    # float32 weights come straight from the shard file's mapped pages: no second copy in memory.
    shard = str((ckpt / "consolidated.00.pth").resolve())
    regions = [
        tuple(int(x, 16) for x in line.split()[0].split("-"))
        for line in Path("/proc/self/maps").read_text().splitlines()
        if line.endswith(shard)
    ]
    for weight in (model.layers[0].attention.wq.weight, model.output.weight):
        assert any(lo <= weight.data_ptr() < hi for lo, hi in regions), "weight is not memory-mapped"


def test_bfloat16_on_cpu(ckpt: Path, dist_ctx) -> None:
    model = load(ckpt, dtype="bfloat16")
    assert model.output.weight.dtype is torch.bfloat16
    assert model.layers[0].attention.cache_k.dtype is torch.bfloat16
    assert model.forward(torch.tensor([[1, 5, 9]]), 0).dtype is torch.float32


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"checkpoint directory .*nope does not exist"):
        load(tmp_path / "nope")


def test_no_pth_files(ckpt: Path) -> None:
    for p in ckpt.glob("*.pth"):
        p.unlink()
    with pytest.raises(CheckpointError, match=r"no \.pth checkpoint files in"):
        load(ckpt)


def test_shard_count_differs_from_world_size(mha_ckpt) -> None:
    with pytest.raises(CheckpointError, match=r"holds 2 shard\(s\).*group has 1 rank.*--nproc_per_node 2"):
        load(mha_ckpt[1], world_size=1)


def test_missing_params_json(ckpt: Path) -> None:
    (ckpt / "params.json").unlink()
    with pytest.raises(CheckpointError, match=r"params\.json is missing"):
        load(ckpt)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", r"is not valid JSON"),
        ("[1, 2]", r"must hold a JSON object, not list"),
        ('{"dim": 64, "n_layers": 2}', r"lacks n_heads"),
        ('{"dim": "64", "n_layers": 2, "n_heads": 4}', r"dim must be int, got '64'"),
        ('{"dim": 64, "n_layers": 2, "n_heads": 0}', r"n_heads must be positive"),
        ('{"dim": 64, "n_layers": 2, "n_heads": 4, "norm_eps": true}', r"norm_eps must be int or float"),
    ],
)
def test_malformed_params_json(ckpt: Path, text: str, message: str) -> None:
    (ckpt / "params.json").write_text(text)
    with pytest.raises(CheckpointError, match=message):
        load(ckpt)


def test_tensor_shapes_do_not_match_params(ckpt: Path) -> None:
    params = json.loads((ckpt / "params.json").read_text())
    (ckpt / "params.json").write_text(json.dumps(params | {"multiple_of": 128}))
    with pytest.raises(CheckpointError, match=r"shapes do not match params\.json: layers\.0\.feed_forward\.w1"):
        load(ckpt)


def test_layer_count_does_not_match(ckpt: Path) -> None:
    params = json.loads((ckpt / "params.json").read_text())
    (ckpt / "params.json").write_text(json.dumps(params | {"n_layers": 3}))
    with pytest.raises(CheckpointError, match=r"lacks 9 tensor\(s\): layers\.2\."):
        load(ckpt)
    (ckpt / "params.json").write_text(json.dumps(params | {"n_layers": 1}))
    with pytest.raises(CheckpointError, match=r"tensor\(s\) params\.json does not describe: layers\.1\."):
        load(ckpt)


def test_truncated_shard(ckpt: Path) -> None:
    shard = ckpt / "consolidated.00.pth"
    shard.write_bytes(shard.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match=r"cannot read .*consolidated\.00\.pth"):
        load(ckpt)


@pytest.mark.parametrize(
    ("dtype", "message"),
    [("float16", r"unsupported dtype 'float16' on cpu: use one of float32, bfloat16"), ("int8", r"'int8'")],
)
def test_unsupported_dtype(ckpt: Path, dtype: str, message: str) -> None:
    with pytest.raises(CheckpointError, match=message):
        load(ckpt, dtype=dtype)


def test_bad_limits(ckpt: Path) -> None:
    with pytest.raises(CheckpointError, match="max_seq_len must be at least 2"):
        load(ckpt, max_seq_len=1)
    with pytest.raises(CheckpointError, match="max_batch_size must be at least 1"):
        load(ckpt, max_batch_size=0)


def test_split_dimensions_must_divide_by_world_size() -> None:
    with pytest.raises(CheckpointError, match="vocab_size 1001 does not divide by the model-parallel world size 2"):
        check_divisible(replace(MHA, vocab_size=1001), 2)
    with pytest.raises(CheckpointError, match="n_kv_heads 3 does not divide by the model-parallel world size 2"):
        check_divisible(replace(MHA, n_heads=6, n_kv_heads=3, dim=96), 2)
    with pytest.raises(CheckpointError, match="n_heads 4 is not a multiple of n_kv_heads 3"):
        check_divisible(replace(MHA, n_kv_heads=3), 1)
    check_divisible(MHA, 2)


def test_sharding_matches_metas_split_rules() -> None:
    state = random_state_dict(MHA)
    shards = shard_state_dict(state, 2)
    assert shards[0]["layers.0.attention.wq.weight"].shape == (32, 64)  # column-parallel: dim 0
    assert shards[0]["layers.0.attention.wo.weight"].shape == (64, 32)  # row-parallel: dim 1
    assert shards[0]["tok_embeddings.weight"].shape == (1000, 32)  # ParallelEmbedding: dim 1
    assert shards[0]["output.weight"].shape == (500, 64)
    assert torch.equal(shards[1]["norm.weight"], state["norm.weight"])  # replicated
    merged = merge_shards(shards)
    assert all(torch.equal(merged[k], v) for k, v in state.items())


def test_packed_weights_give_the_same_logits(ckpt: Path) -> None:
    from model_svc.packing import prepack_linears

    plain = load(ckpt)
    packed = load(ckpt)
    assert plain.layers[0].attention.wq.weight is not None  # load_model packs only when asked
    assert prepack_linears(packed) == 2 * 4 + 1  # qkv, wo, w1|w3, w2 of 2 blocks, and the output
    assert packed.layers[0].attention.wq.weight is None  # the packed copy replaced the weight
    tokens = torch.randint(0, 1000, (3, 20), generator=torch.Generator().manual_seed(0))
    a, b = plain.forward(tokens, 0), packed.forward(tokens, 0)
    assert ((a - b).abs().max() / a.abs().max()).item() <= 1e-5
