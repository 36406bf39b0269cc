"""The models: the report's three CNNs, notebook 09's alternatives, notebook 12's attention models, their
registry and inspection.

=================== ==================================================================================
module              what it holds
=================== ==================================================================================
``layers``          activations (learnable ones too), attentive statistics pooling, conv blocks and trunks, the masked (variable-length) blocks, the
                    shared classification head, and the input contract (``INPUT_SHAPES``,
                    ``LENGTH_OF``, ``needs_lengths``)
``cnn``             ``CNN1D``, ``CNN2D``, ``Combined`` (the report's models)
``alternatives``    ``ResNet38`` (PANNs, + ``load_panns_checkpoint``), ``ResNet101``, ``CombinedVarLen``,
                    ``CombinedMean1D``, ``padding_invariance``
``attention``       ``CNN1DAttn``, ``CNN2DAttn`` (``1d-attn``, ``2d-attn``: the report's CNNs with attentive
                    statistics pooling)
``transformer``     ``AudioTransformer`` (``transformer``: conv stem, encoder, attentive pooling; masked)
``registry``        ``MODEL_REGISTRY`` (every model by name, in one place) and ``build_model``
``summary``         ``count_parameters``, ``example_inputs``, ``layer_table``, ``receptive_field``,
                    ``cost_per_sample``, ``describe``
=================== ==================================================================================

Everything public is re-exported here, so ``from ser_utils import models`` and
``models.build_model("combined")`` are all a caller needs.
"""

from __future__ import annotations

from ser_utils.models.alternatives import (PANNS_SKIPPED_PREFIXES, CombinedMean1D, CombinedVarLen, ResNet38,
                                           ResNet101, load_panns_checkpoint, padding_invariance)
from ser_utils.models.attention import CNN1DAttn, CNN2DAttn
from ser_utils.models.cnn import CNN1D, CNN2D, TRUNK_1D_WIDTHS, TRUNK_2D_WIDTHS, Combined, SingleTrunkCNN, TwoTrunkModel
from ser_utils.models.layers import (ACTIVATIONS, GROUP_NORM_GROUPS, INPUT_SHAPES, LEARNABLE_ACTIVATIONS, LENGTH_OF,
                                     AttentiveStatsPool, MaskedConvBlock, MaskedGroupNorm, MaskedTrunk, SwishBeta,
                                     attention_weights, attentive_pool, combined_head, conv_block, conv_trunk,
                                     get_activation, needs_lengths, time_mask)
from ser_utils.models.registry import ALTERNATIVES, ATTENTION_MODELS, MODEL_REGISTRY, build_model
from ser_utils.models.transformer import AudioTransformer, sinusoidal_positions
from ser_utils.models.summary import (INPUT_DESCRIPTIONS, cost_per_sample, count_parameters, describe,
                                      example_inputs, layer_table, receptive_field)

__all__ = [
    # layers: blocks and the input contract
    "ACTIVATIONS", "GROUP_NORM_GROUPS", "INPUT_SHAPES", "LENGTH_OF", "MaskedConvBlock", "MaskedGroupNorm",
    "MaskedTrunk", "combined_head", "conv_block", "conv_trunk", "get_activation", "needs_lengths", "time_mask",
    "LEARNABLE_ACTIVATIONS", "SwishBeta", "AttentiveStatsPool", "attention_weights", "attentive_pool",
    # cnn: the report's models
    "CNN1D", "CNN2D", "Combined", "SingleTrunkCNN", "TRUNK_1D_WIDTHS", "TRUNK_2D_WIDTHS", "TwoTrunkModel",
    # alternatives
    "PANNS_SKIPPED_PREFIXES", "CombinedMean1D", "CombinedVarLen", "ResNet38", "ResNet101",
    "load_panns_checkpoint", "padding_invariance",
    # attention pooling and the transformer (notebook 12)
    "CNN1DAttn", "CNN2DAttn", "AudioTransformer", "sinusoidal_positions",
    # registry
    "ALTERNATIVES", "ATTENTION_MODELS", "MODEL_REGISTRY", "build_model",
    # summary
    "INPUT_DESCRIPTIONS", "cost_per_sample", "count_parameters", "describe", "example_inputs", "layer_table",
    "receptive_field",
]
