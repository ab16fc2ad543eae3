r"""Convert the authors' Keras bias-field CNN (``IN.h5``) once into the package, as safetensors for torch.

    python scripts/convert_bfc.py [--source ../shared/baselines/bfc]

Reads ``IN.h5`` with h5py (no TensorFlow): checks that its ``model_config`` is the graph that
:class:`artefix.evaluation.baselines.bias_cnn.BFCNet` implements (layers, channels, kernels, strides, padding,
activations, batch-norm epsilon, how the residual ``Add`` layers connect, the two ``Lambda`` layers), then
writes to ``src/artefix/weights/bfc/``:

* ``bfc.safetensors``: the weights under torch names (convolutions OIHW from Keras's HWIO; batch
  normalisations as ``gamma``/``beta``/``moving_mean``/``moving_variance``), float32 as in the file, with
  the source and its sha256 in the metadata;
* ``LICENSE``: the authors' MIT licence, copied unchanged;
* ``README.md``: what the files are, where they come from, under which licence.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import shutil
from pathlib import Path

import h5py
import numpy as np

from artefix.evaluation.baselines.bias_cnn import (
    BFC_BN_EPSILON,
    BFC_SIZE,
    BFC_STAGES,
    BFC_STEM,
    KERAS_LAYERS,
    BFCNet,
)

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / ".." / "shared" / "baselines" / "bfc"
OUT = REPO / "src" / "artefix" / "weights" / "bfc"
UPSTREAM = "https://github.com/attilasimko/bfc"
COMMIT = "966afc0"
BN_FIELDS = ("gamma", "beta", "moving_mean", "moving_variance")

README = """# bfc: the implicitly trained bias-field CNN (weights)

`bfc.safetensors` holds the weights of the network of Simkó A, Löfstedt T, Garpebring A, Nyholm T,
Jonsson J, "MRI bias field correction with an implicitly trained CNN", MIDL 2022: the Keras model `IN.h5`
(the "ImageNet-based" model evaluated in the paper) of the authors' repository

- {upstream}, commit {commit},
- `IN.h5` sha256 `{sha256}`.

It is the `bfc` baseline of `artefix evaluate`; the network in torch is
`artefix.evaluation.baselines.bias_cnn`.

Converted once with `scripts/convert_bfc.py` (h5py, no TensorFlow): the same float32 numbers under torch
names; convolution kernels transposed from Keras's HWIO to torch's OIHW, batch normalisations kept as
`gamma`, `beta`, `moving_mean`, `moving_variance` (epsilon {eps}).

Licence: MIT, Copyright (c) 2022 Attila Simkó. The notice is in `LICENSE` beside this file and applies to
these weights (the rest of artefix is Apache-2.0).
"""


def sha256(path: Path) -> str:
    """Hex sha256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _layers(config: dict) -> dict[str, dict]:
    return {layer["config"]["name"]: layer for layer in config["config"]["layers"]}


def _inputs(layer: dict) -> list[str]:
    return [node[0] for node in layer["inbound_nodes"][0]] if layer["inbound_nodes"] else []


def _check_conv(layer: dict, filters: int, kernel: int, stride: int, inputs: list[str]) -> None:
    c = layer["config"]
    got = (layer["class_name"], c["filters"], c["kernel_size"], c["strides"], c["padding"], c["activation"])
    want = ("Conv2D", filters, [kernel, kernel], [stride, stride], "same", "linear")
    if got != want or c["use_bias"] is not True or c["dilation_rate"] != [1, 1] or _inputs(layer) != inputs:
        raise ValueError(f"layer {c['name']}: {got}, inputs {_inputs(layer)}; expected {want}, inputs {inputs}")


def _check_bn(layer: dict, inputs: list[str]) -> None:
    c = layer["config"]
    ok = layer["class_name"] == "BatchNormalization" and c["axis"] in ([3], 3, -1, [-1])
    if not ok or c["epsilon"] != BFC_BN_EPSILON or not (c["center"] and c["scale"]) or _inputs(layer) != inputs:
        raise ValueError(f"layer {c['name']}: not a batch normalisation (epsilon {BFC_BN_EPSILON}) of {inputs}")


def _lambda_text(layer: dict) -> bytes:
    """The marshalled bytecode of a Lambda layer (its names and constants are readable as bytes)."""
    return base64.b64decode(layer["config"]["function"][0])


def check_graph(config: dict) -> None:
    """Raise ``ValueError`` unless ``model_config`` is the graph :class:`BFCNet` implements.

    Args:
        config: The parsed ``model_config`` attribute of ``IN.h5``.
    """
    layers = _layers(config)
    k = {name: layers.get(keras) for name, keras in KERAS_LAYERS.items()}
    if None in k.values():
        raise ValueError(f"missing layers: {[KERAS_LAYERS[n] for n, v in k.items() if v is None]}")
    inp = config["config"]["input_layers"][0][0]
    if layers[inp]["config"]["batch_input_shape"] != [None, BFC_SIZE, BFC_SIZE, 1]:
        raise ValueError(f"input shape {layers[inp]['config']['batch_input_shape']}")
    prev = inp
    for i, cout in enumerate(BFC_STEM):
        _check_conv(k[f"stem.{i}"], cout, 3, 1, [prev])
        prev = KERAS_LAYERS[f"stem.{i}"]
    _check_bn(k["stem_bn"], [prev])
    prev = KERAS_LAYERS["stem_bn"]
    for i, cout in enumerate(BFC_STAGES):
        names = {p: KERAS_LAYERS[f"stages.{i}.{p}"] for p in ("down", "conv", "skip", "bn")}
        _check_conv(k[f"stages.{i}.down"], cout, 3, 2, [prev])
        _check_conv(k[f"stages.{i}.conv"], cout, 3, 1, [names["down"]])
        _check_conv(k[f"stages.{i}.skip"], cout, 3, 2, [prev])
        (add,) = _inputs(k[f"stages.{i}.bn"])
        _check_bn(k[f"stages.{i}.bn"], [add])
        if layers[add]["class_name"] != "Add" or sorted(_inputs(layers[add])) != sorted([names["skip"], names["conv"]]):
            raise ValueError(f"{add} adds {_inputs(layers[add])}, expected {names['skip']} and {names['conv']}")
        prev = names["bn"]
    _check_conv(k["head"], 1, 1, 1, [prev])
    order = [n for n, lay in layers.items() if lay["class_name"] == "Lambda"]
    if (
        len(order) != 2
        or _inputs(layers[order[0]]) != [KERAS_LAYERS["head"]]
        or _inputs(layers[order[1]]) != [order[0]]
    ):
        raise ValueError(f"expected two Lambda layers after {KERAS_LAYERS['head']}, got {order}")
    dct, clamp = (_lambda_text(layers[n]) for n in order)
    if not all(s in dct for s in (b"dct_transform", b"transpose", b"signal", b"idct")):
        raise ValueError(f"{order[0]} is not the dct_transform Lambda")
    if not all(s in clamp for s in (b"relu_range", b"greater", b"less", b"where")):
        raise ValueError(f"{order[1]} is not the relu_range Lambda")
    if config["config"]["output_layers"][0][0] != order[1] or len(layers) != len(KERAS_LAYERS) + 2 + 6 + 1:
        raise ValueError("unexpected extra layers or output")


def convert(h5_path: Path) -> dict[str, np.ndarray]:
    """Read ``IN.h5`` and return its weights under :class:`BFCNet`'s state-dict names (float32).

    Args:
        h5_path: The Keras HDF5 file.

    Returns:
        Tensor name -> array, exactly the keys of ``BFCNet().state_dict()``.
    """
    with h5py.File(h5_path, "r") as f:
        check_graph(json.loads(f.attrs["model_config"]))
        weights = f["model_weights"]
        out: dict[str, np.ndarray] = {}
        for name, keras in KERAS_LAYERS.items():
            group = weights[keras][keras]
            if keras.startswith("conv2d"):
                out[f"{name}.weight"] = np.ascontiguousarray(np.asarray(group["kernel:0"]).transpose(3, 2, 0, 1))
                out[f"{name}.bias"] = np.asarray(group["bias:0"])
            else:
                for field in BN_FIELDS:
                    out[f"{name}.{field}"] = np.asarray(group[f"{field}:0"])
    expected = {k: tuple(v.shape) for k, v in BFCNet().state_dict().items()}
    got = {k: tuple(v.shape) for k, v in out.items()}
    if got != expected:
        raise ValueError(f"converted tensors do not match BFCNet: {sorted(set(got) ^ set(expected))}")
    return {k: v.astype(np.float32, copy=False) for k, v in out.items()}


def metadata(h5_path: Path) -> dict[str, str]:
    """The safetensors metadata: where the weights come from and under which licence."""
    return {
        "source": f"{UPSTREAM} IN.h5",
        "commit": COMMIT,
        "sha256_h5": sha256(h5_path),
        "license": "MIT, Copyright (c) 2022 Attila Simko (see LICENSE beside this file)",
        "converted_by": "scripts/convert_bfc.py",
    }


def main(argv: list[str] | None = None) -> None:
    """Convert ``SOURCE/IN.h5`` into ``OUT`` (``bfc.safetensors``, ``LICENSE``, ``README.md``)."""
    from safetensors.numpy import save_file

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="folder with IN.h5 and LICENSE")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder")
    args = parser.parse_args(argv)
    h5_path = args.source / "IN.h5"
    tensors = convert(h5_path)
    args.out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(args.out / "bfc.safetensors"), metadata=metadata(h5_path))
    shutil.copyfile(args.source / "LICENSE", args.out / "LICENSE")
    text = README.format(upstream=UPSTREAM, commit=COMMIT, sha256=sha256(h5_path), eps=BFC_BN_EPSILON)
    (args.out / "README.md").write_text(text, encoding="utf-8")
    print(f"wrote {len(tensors)} tensors to {args.out / 'bfc.safetensors'}")


if __name__ == "__main__":
    main()
