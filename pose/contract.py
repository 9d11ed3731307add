"""The ONNX model's self-description: ``metadata_props`` keys, values and fallbacks.

Every value is a JSON string. The exporter writes them with :meth:`ModelMetadata.to_props`,
the service reads them with :meth:`ModelMetadata.from_props`. A model without metadata
still works: K=16 joints get the MPII layout, any other K gets ``joint_0..joint_{K-1}``;
the input size comes from the model's static input shape, else 256x256.

Pure Python (json + the keypoint layout): importable by the service without numpy or torch.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pose.layout import KeypointLayout

# the graph's one input, (N, 3, H, W) float32 RGB in [0, 1], and its output, (N, K, H/stride, W/stride) float32
INPUT_NAME = "image"
OUTPUT_NAME = "heatmaps"

# metadata_props keys (the ONNX export contract)
KEYPOINT_NAMES = "keypoint_names"  # JSON list of str
SKELETON = "skeleton"  # JSON list of [a, b] joint index pairs
FLIP_PAIRS = "flip_pairs"  # JSON list of [a, b] joint index pairs
INPUT_SIZE = "input_size"  # JSON [H, W]
HEATMAP_STRIDE = "heatmap_stride"  # JSON int (4)
ARCHITECTURE = "architecture"  # JSON object: stacks, features, order (, joints)
PROVENANCE = "provenance"  # JSON object: how the model was made
METADATA_KEYS: tuple[str, ...] = (
    KEYPOINT_NAMES,
    SKELETON,
    FLIP_PAIRS,
    INPUT_SIZE,
    HEATMAP_STRIDE,
    ARCHITECTURE,
    PROVENANCE,
)

DEFAULT_INPUT_SIZE: tuple[int, int] = (256, 256)
DEFAULT_HEATMAP_STRIDE = 4


class MetadataError(ValueError):
    """Malformed or inconsistent model metadata."""


@dataclass(frozen=True)
class ModelMetadata:
    """Keypoint layout, input geometry and origin of one exported model."""

    layout: KeypointLayout
    input_size: tuple[int, int] = DEFAULT_INPUT_SIZE  # (H, W)
    heatmap_stride: int = DEFAULT_HEATMAP_STRIDE
    architecture: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        h, w = _size_pair(self.input_size, INPUT_SIZE)
        object.__setattr__(self, "input_size", (h, w))
        if not _is_positive_int(self.heatmap_stride):
            raise MetadataError(f"{HEATMAP_STRIDE} must be a positive integer, got {self.heatmap_stride!r}")

    @property
    def keypoint_names(self) -> tuple[str, ...]:
        return self.layout.names

    @property
    def num_joints(self) -> int:
        return self.layout.num_joints

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:
        return self.layout.skeleton

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        return self.layout.flip_pairs

    @property
    def heatmap_size(self) -> tuple[int, int]:
        """(h, w) of the output heatmaps for the nominal input size."""
        return self.input_size[0] // self.heatmap_stride, self.input_size[1] // self.heatmap_stride

    def to_props(self) -> dict[str, str]:
        """All contract keys as JSON strings, ready for ONNX ``metadata_props``."""
        return {
            KEYPOINT_NAMES: json.dumps(list(self.layout.names)),
            SKELETON: json.dumps([list(p) for p in self.layout.skeleton]),
            FLIP_PAIRS: json.dumps([list(p) for p in self.layout.flip_pairs]),
            INPUT_SIZE: json.dumps(list(self.input_size)),
            HEATMAP_STRIDE: json.dumps(self.heatmap_stride),
            ARCHITECTURE: json.dumps(self.architecture, sort_keys=True),
            PROVENANCE: json.dumps(self.provenance, sort_keys=True),
        }

    @classmethod
    def from_props(
        cls,
        props: Mapping[str, str],
        num_joints: int | None = None,
        input_hw: Sequence[Any] | None = None,
    ) -> ModelMetadata:
        """Read the contract keys, filling in what is missing.

        ``num_joints`` is K from the model's output shape (None if unknown); ``input_hw`` is the
        model's static input (H, W), where dimensions that are not positive ints count as dynamic.
        Raises MetadataError (a ValueError) on malformed JSON, wrong types or a layout that contradicts K.
        """
        names_raw = _load(props, KEYPOINT_NAMES)
        if names_raw is None:
            if num_joints is None:
                raise MetadataError(f"model has no '{KEYPOINT_NAMES}' metadata and its joint count is unknown")
            default = KeypointLayout.default_for(num_joints)
            names = default.names
        else:
            if not isinstance(names_raw, list) or not all(isinstance(n, str) for n in names_raw):
                raise MetadataError(f"metadata '{KEYPOINT_NAMES}' must be a JSON list of strings, got {names_raw!r}")
            names = tuple(names_raw)
            if num_joints is not None and len(names) != num_joints:
                raise MetadataError(
                    f"metadata '{KEYPOINT_NAMES}' lists {len(names)} joints but the model outputs {num_joints}"
                )
            default = KeypointLayout.default_for(len(names))
            if default.names != names:  # custom names: no implied pairs or limbs
                default = KeypointLayout(names=names)
        flip_pairs = _pairs(props, FLIP_PAIRS, default.flip_pairs)
        skeleton = _pairs(props, SKELETON, default.skeleton)
        layout = KeypointLayout(names=names, flip_pairs=flip_pairs, skeleton=skeleton)

        size_raw = _load(props, INPUT_SIZE)
        if size_raw is not None:
            input_size = _size_pair(size_raw, INPUT_SIZE)
        elif input_hw is not None and len(input_hw) == 2 and all(_is_positive_int(d) for d in input_hw):
            input_size = (int(input_hw[0]), int(input_hw[1]))
        else:
            input_size = DEFAULT_INPUT_SIZE

        stride = _load(props, HEATMAP_STRIDE)
        stride = DEFAULT_HEATMAP_STRIDE if stride is None else stride
        if not _is_positive_int(stride):
            raise MetadataError(f"metadata '{HEATMAP_STRIDE}' must be a positive integer, got {stride!r}")

        return cls(
            layout=layout,
            input_size=input_size,
            heatmap_stride=int(stride),
            architecture=_object(props, ARCHITECTURE),
            provenance=_object(props, PROVENANCE),
        )


def _load(props: Mapping[str, str], key: str) -> Any:
    """JSON value of ``key``, or None when absent or empty."""
    raw = props.get(key)
    if raw is None or not str(raw).strip():
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise MetadataError(
            f"metadata '{key}' is not valid JSON ({exc.msg} at position {exc.pos}): {raw[:80]!r}"
        ) from exc


def _pairs(props: Mapping[str, str], key: str, default: tuple[tuple[int, int], ...]) -> tuple[tuple[int, int], ...]:
    value = _load(props, key)
    if value is None:
        return default
    if not isinstance(value, list) or not all(
        isinstance(p, list | tuple) and len(p) == 2 and all(_is_int(i) for i in p) for p in value
    ):
        raise MetadataError(f"metadata '{key}' must be a JSON list of [a, b] integer pairs, got {value!r}")
    return tuple((int(a), int(b)) for a, b in value)


def _object(props: Mapping[str, str], key: str) -> dict[str, Any]:
    value = _load(props, key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MetadataError(f"metadata '{key}' must be a JSON object, got {value!r}")
    return value


def _size_pair(value: Any, key: str) -> tuple[int, int]:
    if not isinstance(value, list | tuple) or len(value) != 2 or not all(_is_positive_int(v) for v in value):
        raise MetadataError(f"metadata '{key}' must be [H, W] with two positive integers, got {value!r}")
    return int(value[0]), int(value[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive_int(value: Any) -> bool:
    return _is_int(value) and value > 0
