"""Embedding providers: texts in, unit vectors out (``(n, dim)`` float32, L2-normalised).

Three providers behind one ``Embedder`` protocol; ``default_embedder()`` picks one by
environment:

- ``PLAYLOOP_EMBED_URL`` set: an OpenAI-compatible ``/v1/embeddings`` endpoint
  (``PLAYLOOP_EMBED_MODEL`` names the model, ``PLAYLOOP_EMBED_KEY`` is the bearer key, if
  any); the dimension is learned from the first response.
- ``PLAYLOOP_EMBED_MODEL=st:<name>``: a sentence-transformers model (the ``st`` extra).
- otherwise: the bundled all-MiniLM-L6-v2 (384 dimensions) on onnxruntime, the model
  files shipped in ``playloop/learn/model`` (see scripts/export_embedding_model).

Nothing heavy is imported with this module: onnxruntime, tokenizers, numpy and
sentence-transformers are imported on first use, so commands that never embed start fast.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import httpx
    import numpy
    from numpy.typing import NDArray

    Vectors = NDArray[numpy.float32]

__all__ = [
    "EmbedError",
    "Embedder",
    "EmbedderUnavailable",
    "ModelError",
    "OnnxEmbedder",
    "OpenAIEmbedder",
    "SentenceTransformerEmbedder",
    "default_embedder",
]

MODEL_DIR = Path(__file__).resolve().parent / "model"
#: the bundled model's window: longer texts are cut to their first 256 tokens
MAX_TOKENS = 256


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit vectors; ``name`` and ``dim`` identify the vector space."""

    @property
    def name(self) -> str: ...

    @property
    def dim(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> Vectors:
        """``(len(texts), dim)`` float32, each row of L2 norm 1 (or 0 for no signal)."""
        ...


class ModelError(RuntimeError):
    """The bundled embedding model is missing or corrupt: reinstall playloop."""


class EmbedderUnavailable(RuntimeError):
    """This embedding provider is not installed."""


class EmbedError(RuntimeError):
    """The embedding endpoint failed."""


def _normalise(vectors: Vectors) -> Vectors:
    import numpy as np

    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    out: Vectors = (vectors / np.where(norms > 0, norms, 1.0)).astype(np.float32, copy=False)
    return out


def _empty(dim: int) -> Vectors:
    import numpy as np

    return np.zeros((0, dim), dtype=np.float32)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def default_threads() -> int:
    """onnxruntime's intra-op threads: ``PLAYLOOP_EMBED_THREADS``, else the cores (max 4).

    One session per process; the engine's other threads mostly wait on I/O while a batch
    is embedded, so using every core of a small machine is the fast choice."""
    configured = os.environ.get("PLAYLOOP_EMBED_THREADS")
    if configured:
        return max(1, int(configured))
    return max(1, min(4, os.cpu_count() or 1))


class OnnxEmbedder:
    """The bundled all-MiniLM-L6-v2 (int8 weights) on onnxruntime and ``tokenizers``.

    The session is made on the first ``embed`` (or ``load``), after the model file's
    sha256 is checked against the manifest. Texts are sorted by length and embedded in
    batches of ``batch_size``, so a batch pads to similar lengths; each text is cut to its
    first 256 tokens. Thread-safe: one session serves every thread."""

    def __init__(
        self,
        model_dir: Path | None = None,
        *,
        threads: int | None = None,
        batch_size: int = 32,
    ) -> None:
        self.model_dir = model_dir or MODEL_DIR
        try:
            self.manifest: dict[str, Any] = json.loads(
                (self.model_dir / "manifest.json").read_text()
            )
        except (OSError, ValueError) as e:
            raise ModelError(
                f"the embedding model's manifest {self.model_dir / 'manifest.json'} is "
                f"missing or unreadable ({e}): reinstall playloop"
            ) from e
        self._name = str(self.manifest["model"])
        self._dim = int(self.manifest["dim"])
        self.max_tokens = int(self.manifest.get("max_tokens", MAX_TOKENS))
        self.threads = threads or default_threads()
        self.batch_size = batch_size
        self._session: Any = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return self._dim

    def load(self) -> None:
        """Check the files and make the session now rather than on the first ``embed``."""
        if self._session is not None:
            return
        with self._lock:
            if self._session is None:
                self._load()

    def _load(self) -> None:
        for file, expected in self.manifest["files"].items():
            path = self.model_dir / file
            if not path.is_file():
                raise ModelError(f"the embedding model file {path} is missing: reinstall playloop")
            if file != "LICENSE" and _sha256(path) != expected:
                raise ModelError(
                    f"the embedding model file {path} is corrupt (its sha256 is not the "
                    f"manifest's {expected}): reinstall playloop"
                )
        import onnxruntime
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.model_dir / "tokenizer.json"))
        tokenizer.enable_truncation(max_length=self.max_tokens)
        tokenizer.no_padding()
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # no busy-waiting between ops: on a small machine shared with the engine (and
        # other processes) spinning threads steal the cores the work needs
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._tokenizer = tokenizer
        self._session = onnxruntime.InferenceSession(
            str(self.model_dir / "model.onnx"), options, providers=["CPUExecutionProvider"]
        )

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        if not texts:
            return _empty(self._dim)
        self.load()
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            width = max(len(encodings[i].ids) for i in chunk)
            ids = np.zeros((len(chunk), width), dtype=np.int64)
            mask = np.zeros((len(chunk), width), dtype=np.int64)
            for row, i in enumerate(chunk):  # pad to the batch's longest text
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            (vectors,) = self._session.run(["embedding"], feed)
            out[chunk] = vectors
        return out


class SentenceTransformerEmbedder:
    """A sentence-transformers model by name or path (``pip install 'playloop[st]'``).

    Loaded on first use; vectors are normalised by sentence-transformers."""

    def __init__(self, model: str, *, device: str = "cpu", batch_size: int = 32) -> None:
        self._name = model
        self.device = device
        self.batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                try:
                    from sentence_transformers import SentenceTransformer
                except ImportError as e:
                    raise EmbedderUnavailable(
                        f"PLAYLOOP_EMBED_MODEL=st:{self._name} needs sentence-transformers: "
                        "install the extra with pip install 'playloop[st]'"
                    ) from e
                self._model = SentenceTransformer(self._name, device=self.device)
            return self._model

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        model = self._load()
        if not texts:
            return _empty(self.dim)
        vectors = model.encode(
            list(texts),
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)


def embeddings_url(url: str) -> str:
    """The endpoint for a base URL: ``http://h/v1`` and ``http://h`` both mean
    ``http://h/v1/embeddings``; a URL that already ends in ``/embeddings`` is kept."""
    url = url.rstrip("/")
    if url.endswith("/embeddings"):
        return url
    if url.endswith("/v1"):
        return url + "/embeddings"
    return url + "/v1/embeddings"


class OpenAIEmbedder:
    """An OpenAI-compatible ``POST /v1/embeddings`` (OpenAI, vLLM, Ollama, llama.cpp, TEI...).

    ``dim`` is learned from the first response (asking ``dim`` first embeds one probe
    text). Vectors are L2-normalised here, whatever the server returns."""

    def __init__(
        self,
        url: str,
        model: str,
        *,
        key: str | None = None,
        batch_size: int = 64,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        import httpx

        self.url = embeddings_url(url)
        self._name = model
        self.batch_size = batch_size
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.Client(timeout=timeout, headers=headers, transport=transport)
        self._dim: int | None = None

    @property
    def name(self) -> str:
        return self._name

    @property
    def dim(self) -> int:
        if self._dim is None:
            self.embed(["dimension probe"])
        assert self._dim is not None
        return self._dim

    def close(self) -> None:
        self._client.close()

    def _post(self, texts: list[str]) -> list[list[float]]:
        import httpx

        try:
            response = self._client.post(self.url, json={"model": self._name, "input": texts})
        except httpx.HTTPError as e:
            raise EmbedError(f"embedding endpoint {self.url} failed: {e}") from e
        if response.status_code != 200:
            raise EmbedError(
                f"embedding endpoint {self.url} answered {response.status_code}: "
                f"{response.text[:300]}"
            )
        try:
            data = sorted(response.json()["data"], key=lambda d: d["index"])
            vectors = [d["embedding"] for d in data]
        except (ValueError, KeyError, TypeError) as e:
            raise EmbedError(
                f"embedding endpoint {self.url} answered without data[].embedding: "
                f"{response.text[:300]}"
            ) from e
        if len(vectors) != len(texts):
            raise EmbedError(
                f"embedding endpoint {self.url} returned {len(vectors)} vectors "
                f"for {len(texts)} texts"
            )
        return vectors

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        if not texts:
            return _empty(self._dim or 0)
        rows: list[list[float]] = []
        for start in range(0, len(texts), self.batch_size):
            rows += self._post([t or " " for t in texts[start : start + self.batch_size]])
        vectors = np.asarray(rows, dtype=np.float32)
        if vectors.ndim != 2:
            raise EmbedError(f"embedding endpoint {self.url} returned vectors of mixed sizes")
        if self._dim is None:
            self._dim = int(vectors.shape[1])
        elif vectors.shape[1] != self._dim:
            raise EmbedError(
                f"embedding endpoint {self.url} changed dimension: {vectors.shape[1]}, "
                f"was {self._dim}"
            )
        return _normalise(vectors)


def default_embedder() -> Embedder:
    """The embedder the environment asks for (one per configuration per process)."""
    return _embedder(
        os.environ.get("PLAYLOOP_EMBED_URL") or None,
        os.environ.get("PLAYLOOP_EMBED_MODEL") or None,
        os.environ.get("PLAYLOOP_EMBED_KEY") or None,
    )


@cache
def _embedder(url: str | None, model: str | None, key: str | None) -> Embedder:
    if url:
        if not model:
            raise EmbedderUnavailable(
                "PLAYLOOP_EMBED_URL is set but PLAYLOOP_EMBED_MODEL is not: name the "
                "endpoint's embedding model"
            )
        return OpenAIEmbedder(url, model, key=key)
    if model and model.startswith("st:"):
        return SentenceTransformerEmbedder(model.removeprefix("st:"))
    if model:
        raise EmbedderUnavailable(
            f"PLAYLOOP_EMBED_MODEL={model!r} without PLAYLOOP_EMBED_URL: use st:<name> for a "
            "sentence-transformers model, or unset it for the bundled all-MiniLM-L6-v2"
        )
    return OnnxEmbedder()
