"""Transforms behind encoder variants (see encoders/variants.py for the semantics).

Model settings act on a deep copy of a loaded torch module; output settings act on
matrices of vectors after the embed stage.
"""

from __future__ import annotations

import copy

import numpy as np

from evalharness.encoders.spec import VariantOptions
from evalharness.errors import UserError


# -- model settings -------------------------------------------------------------------
def _module_holder(encoder):
    """(object, attribute) holding the base's torch module: ``encoder.model`` for st/hf,
    ``encoder.model.model`` for an mteb wrapper around a SentenceTransformer."""
    import torch

    model = getattr(encoder, "model", None)
    if isinstance(model, torch.nn.Module):
        return encoder, "model"
    inner = getattr(model, "model", None)
    if isinstance(inner, torch.nn.Module):
        return model, "model"
    raise UserError(f"encoder '{encoder.name}' exposes no torch module, so dtype/quantize "
                    "variants cannot be derived from it")


def transform_module(module, *, dtype: str | None = None, quantize: str | None = None):
    """A deep copy of ``module`` with the model settings applied (the base is untouched)."""
    import torch

    from evalharness.encoders.weights import torch_dtype

    m = copy.deepcopy(module)
    if dtype and dtype != "float32":
        m = m.to(torch_dtype(dtype))
    if quantize == "dynamic-int8":
        from torch.ao.quantization import quantize_dynamic

        # dynamic int8 kernels run on the CPU only: the quantised copy lives there
        m = quantize_dynamic(m.float().cpu(), {torch.nn.Linear}, dtype=torch.qint8)
    return m.eval()


def derive_model_encoder(base, *, dtype=None, quantize=None):
    """A shallow copy of the loaded ``base`` encoder whose torch module is transformed."""
    holder, attr = _module_holder(base)
    new_module = transform_module(getattr(holder, attr), dtype=dtype, quantize=quantize)
    derived = copy.copy(base)
    if holder is base:
        setattr(derived, attr, new_module)
    else:
        new_holder = copy.copy(holder)
        setattr(new_holder, attr, new_module)
        derived.model = new_holder
    opts = getattr(base, "options", None)
    if dtype and opts is not None and "dtype" in type(opts).model_fields:
        derived.options = opts.model_copy(update={"dtype": dtype})
    if quantize:  # inputs must follow the quantised module to the CPU
        for attr_name in ("torch_device", "_device_name"):
            if hasattr(derived, attr_name):
                setattr(derived, attr_name, "cpu")
    return derived


# -- output settings ------------------------------------------------------------------
def truncate(x: np.ndarray, dim: int) -> np.ndarray:
    """First ``dim`` dimensions, each row renormalised to unit length (zero rows stay 0)."""
    x = np.asarray(x, dtype=np.float32)[:, :dim]
    n = np.linalg.norm(x, axis=1, keepdims=True)
    n[n == 0] = 1.0
    return x / n


def int8_ranges(calibration: np.ndarray) -> np.ndarray:
    """(2, dim) per-dimension [min; max], as sentence-transformers computes them."""
    return np.vstack((calibration.min(axis=0), calibration.max(axis=0)))


def quantize_int8(x: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """sentence-transformers' int8 scalar quantisation with the given ranges, as float32."""
    from sentence_transformers.quantization import quantize_embeddings

    if len(x) == 0:
        return np.zeros_like(x, dtype=np.float32)
    return quantize_embeddings(np.asarray(x, dtype=np.float32), "int8",
                               ranges=ranges).astype(np.float32)


def binarize(x: np.ndarray) -> np.ndarray:
    """Sign bits as +/-1 floats: ``x > 0`` -> 1, else -1."""
    return np.where(np.asarray(x) > 0, 1.0, -1.0).astype(np.float32)


def apply_output(matrices: list[np.ndarray], opts: VariantOptions) -> list[np.ndarray]:
    """Apply truncate_dim then the embedding quantisation to every matrix of a run; int8
    ranges are calibrated on all of them together."""
    out = [np.asarray(m, dtype=np.float32) for m in matrices]
    if opts.truncate_dim:
        out = [truncate(m, opts.truncate_dim) for m in out]
    if opts.embedding == "int8":
        nonempty = [m for m in out if len(m)]
        if nonempty:
            ranges = int8_ranges(np.concatenate(nonempty))
            out = [quantize_int8(m, ranges) for m in out]
    elif opts.embedding == "binary":
        out = [binarize(m) for m in out]
    return out
