"""The embedding providers: the bundled ONNX MiniLM for real, the others by their seams.

Whether the ONNX model matches sentence-transformers is checked when it is exported
(scripts/export_embedding_model; the manifest records the measured cosine): torch is not
installed here, so these tests check the shipped files and properties any good sentence
embedder has.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from playloop.learn import embed
from playloop.learn.embed import (
    MODEL_DIR,
    EmbedderUnavailable,
    EmbedError,
    ModelError,
    OnnxEmbedder,
    OpenAIEmbedder,
    default_embedder,
    embeddings_url,
)


@pytest.fixture(scope="module")
def onnx() -> OnnxEmbedder:
    embedder = OnnxEmbedder()
    embedder.load()
    return embedder


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


def test_manifest_pins_the_shipped_files() -> None:
    manifest = json.loads((MODEL_DIR / "manifest.json").read_text())
    assert manifest["model"] == "all-MiniLM-L6-v2"
    assert manifest["dim"] == 384
    assert manifest["source"]["license"] == "Apache-2.0"
    assert manifest["verification"]["min_cosine"] >= 0.999
    sums = (MODEL_DIR / "SHA256SUMS").read_text().split("\n")
    for line in filter(None, sums):
        digest, name = line.split("  ")
        assert hashlib.sha256((MODEL_DIR / name).read_bytes()).hexdigest() == digest
        assert manifest["files"][name] == digest
    assert "Apache License" in (MODEL_DIR / "LICENSE").read_text()


def test_vectors_are_unit_length_float32_of_dim_384(onnx: OnnxEmbedder) -> None:
    vectors = onnx.embed(["connection refused", "", "x " * 1000, "ünïcødé ✓"])
    assert vectors.shape == (4, 384)
    assert vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert onnx.embed([]).shape == (0, 384)


def test_similar_texts_are_closer_than_unrelated_ones(onnx: OnnxEmbedder) -> None:
    refused, refused2, disk, cat = onnx.embed(
        [
            "connect ECONNREFUSED 127.0.0.1:5432",
            "could not connect to server: Connection refused",
            "OSError: [Errno 28] No space left on device",
            "A cat sat on the warm windowsill all afternoon.",
        ]
    )
    assert cos(refused, refused2) > cos(refused, disk) > cos(refused, cat)
    full, paraphrase, other = onnx.embed(
        [
            "No space left on device",
            "the disk is full",
            "permission denied",
        ]
    )
    assert cos(full, paraphrase) > 0.5 > cos(full, other)


def test_batching_and_order_do_not_change_vectors(onnx: OnnxEmbedder) -> None:
    texts = [f"error {i}: " + "timeout " * (i % 7) for i in range(70)]
    together = onnx.embed(texts)
    alone = np.stack([onnx.embed([t])[0] for t in texts[:5]])
    assert np.allclose(together[:5], alone, atol=1e-5)
    small = OnnxEmbedder(batch_size=4)
    assert np.allclose(small.embed(texts), together, atol=1e-5)


def test_long_texts_are_truncated_to_256_tokens(onnx: OnnxEmbedder) -> None:
    head = "the warehouse load failed because the disk is full. " * 40
    a, b = onnx.embed([head, head + "completely different ending " * 200])
    assert cos(a, b) > 0.9999


def test_import_does_not_load_onnxruntime() -> None:
    code = (
        "import sys, playloop.learn.embed as e; "
        "assert 'onnxruntime' not in sys.modules and 'numpy' not in sys.modules; "
        "x = e.default_embedder(); assert 'onnxruntime' not in sys.modules; "
        "x.embed(['hello']); assert 'onnxruntime' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def copy_model(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(MODEL_DIR, target)
    return target


def test_a_corrupt_model_is_a_clear_error(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    with (model / "model.onnx").open("r+b") as f:
        f.seek(1000)
        f.write(b"\x00\x01\x02")
    with pytest.raises(ModelError, match=r"model\.onnx is corrupt.*reinstall playloop"):
        OnnxEmbedder(model).embed(["x"])


def test_a_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    model = copy_model(tmp_path)
    (model / "model.onnx").unlink()
    with pytest.raises(ModelError, match=r"model\.onnx is missing"):
        OnnxEmbedder(model).load()
    with pytest.raises(ModelError, match="manifest"):
        OnnxEmbedder(tmp_path / "nowhere")


def test_default_embedder_follows_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PLAYLOOP_EMBED_URL", "PLAYLOOP_EMBED_MODEL", "PLAYLOOP_EMBED_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert isinstance(default_embedder(), OnnxEmbedder)
    assert default_embedder() is default_embedder()
    monkeypatch.setenv("PLAYLOOP_EMBED_MODEL", "st:all-MiniLM-L6-v2")
    st = default_embedder()
    assert st.name == "all-MiniLM-L6-v2"
    if "sentence_transformers" not in sys.modules:
        try:
            import sentence_transformers  # noqa: F401
        except ImportError:
            with pytest.raises(EmbedderUnavailable, match=r"playloop\[st\]"):
                st.embed(["x"])
    monkeypatch.setenv("PLAYLOOP_EMBED_MODEL", "text-embedding-3-small")
    with pytest.raises(EmbedderUnavailable, match="PLAYLOOP_EMBED_URL"):
        default_embedder()
    monkeypatch.setenv("PLAYLOOP_EMBED_URL", "http://127.0.0.1:9/v1")
    remote = default_embedder()
    assert isinstance(remote, OpenAIEmbedder)
    assert remote.url == "http://127.0.0.1:9/v1/embeddings"
    monkeypatch.delenv("PLAYLOOP_EMBED_MODEL")
    with pytest.raises(EmbedderUnavailable, match="PLAYLOOP_EMBED_MODEL"):
        default_embedder()


def test_embeddings_url() -> None:
    assert embeddings_url("http://h:8080") == "http://h:8080/v1/embeddings"
    assert embeddings_url("http://h/v1/") == "http://h/v1/embeddings"
    assert embeddings_url("http://h/openai/v1/embeddings") == "http://h/openai/v1/embeddings"


def test_openai_compatible_endpoint_learns_the_dimension() -> None:
    """A fake server by httpx's mock transport: out-of-order data, unnormalised vectors."""
    seen: list[dict[str, object]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        seen.append({"body": body, "auth": request.headers.get("authorization")})
        data = [
            {"index": i, "embedding": [float(len(t)), 1.0, 0.0]}
            for i, t in enumerate(body["input"])
        ]
        return httpx.Response(200, json={"data": list(reversed(data)), "model": body["model"]})

    remote = OpenAIEmbedder(
        "http://embed.test/v1", "m1", key="k", batch_size=2, transport=httpx.MockTransport(handler)
    )
    vectors = remote.embed(["a", "bbb", "cc"])
    assert remote.dim == 3
    assert vectors.shape == (3, 3)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0)
    assert vectors[1][0] > vectors[2][0] > vectors[0][0]  # kept in input order
    assert len(seen) == 2  # batches of 2
    assert seen[0]["auth"] == "Bearer k"
    assert seen[0]["body"] == {"model": "m1", "input": ["a", "bbb"]}


def test_openai_compatible_endpoint_errors_name_the_url() -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, text="invalid api key")

    remote = OpenAIEmbedder("http://embed.test", "m", transport=httpx.MockTransport(fail))
    with pytest.raises(EmbedError, match=r"http://embed.test/v1/embeddings answered 401"):
        remote.embed(["x"])

    def garbage(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"nope": 1})

    remote = OpenAIEmbedder("http://embed.test", "m", transport=httpx.MockTransport(garbage))
    with pytest.raises(EmbedError, match="without data"):
        remote.embed(["x"])


def test_protocol() -> None:
    assert isinstance(OnnxEmbedder(), embed.Embedder)
