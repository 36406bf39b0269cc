"""Alternative architectures (report sections 4.4 and 6.5; notebook 09): two deep ResNets on the
log-mel image, and two variants of the combined model that change what the 1D path sees.

=================== ============================================= =========== ======================
name                input(s) per clip                             parameters* what changes
=================== ============================================= =========== ======================
``resnet38``        ``x2d`` log-mel [1, 64, 64] (or [1, 64, T])   72,715,718  PANNs' ResNet38
``resnet101``       ``x2d`` log-mel [1, 64, 64] (or [1, 64, T])   42,506,182  torchvision ResNet-101
``combined-varlen`` ``x1d_var`` [27, T'] + ``len1d``,             5,739,462   no crop, no resize,
                    ``x2d_var`` [1, 64, T] + ``len2d``                        masked batches
``combined-mean1d`` ``x1d_avg`` [27] + ``x2d`` [1, 64, 64]        5,305,798   1D path is an MLP
=================== ============================================= =========== ======================

\\* trainable parameters with 6 classes (pinned by tests/test_models_alt.py).

Every model keeps the suite's constructor contract
``Model(n_classes=6, activation="relu", dropout_conv=0.3, dropout_head=0.5, **optional)`` and names
the tensors its ``forward`` takes in ``inputs`` (all declared in ``layers.INPUT_SHAPES``). They are
registered by name in :data:`ser_utils.models.MODEL_REGISTRY` (``registry.py``), so ``build_model``,
``training.run``, notebook 07 and the sweep (``--models resnet38,resnet101,combined-varlen,combined-mean1d``)
accept them. ``training.TrainingData`` provides the extra inputs (``x1d_var``/``len1d``/``x2d_var``/``len2d``
from the FeatureSet's variable-length store, ``x1d_avg`` from the frames).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ser_utils.models.cnn import TRUNK_1D_WIDTHS, TRUNK_2D_WIDTHS, TwoTrunkModel
from ser_utils.models.layers import INPUT_SHAPES, MaskedTrunk, combined_head, conv_trunk, get_activation, time_mask


# ============================================================================ PANNs ResNet38
def _xavier(layer: nn.Module) -> None:
    """PANNs' initialisation of a conv or linear layer: Xavier-uniform weights, zero bias."""
    nn.init.xavier_uniform_(layer.weight)
    if getattr(layer, "bias", None) is not None:
        nn.init.zeros_(layer.bias)


def _conv3x3(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv1x1(c_in: int, c_out: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1, stride=stride, bias=False)


class PannsConvBlock(nn.Module):
    """PANNs' ConvBlock: (3x3 conv, no bias -> BatchNorm -> activation) twice, then average pooling.

    Attribute names (conv1, bn1, conv2, bn2) follow PANNs so its checkpoints load by name.
    """

    def __init__(self, c_in: int, c_out: int, activation: str = "relu") -> None:
        super().__init__()
        self.conv1, self.bn1, self.act1 = _conv3x3(c_in, c_out), nn.BatchNorm2d(c_out), get_activation(activation)
        self.conv2, self.bn2, self.act2 = _conv3x3(c_out, c_out), nn.BatchNorm2d(c_out), get_activation(activation)
        _xavier(self.conv1)
        _xavier(self.conv2)

    def forward(self, x: torch.Tensor, pool: tuple[int, int] = (2, 2)) -> torch.Tensor:
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.bn2(self.conv2(x)))
        return x if pool == (1, 1) else F.avg_pool2d(x, kernel_size=pool)


class PannsBasicBlock(nn.Module):
    """PANNs' residual basic block: downsampling by 2x2 average pooling before conv1 (not a strided
    conv), dropout 0.1 between the two convs, and the second BatchNorm's scale initialised to 0 so
    every block starts as the identity."""

    expansion = 1

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 activation: str = "relu", dropout: float = 0.1) -> None:
        super().__init__()
        self.stride = stride
        self.conv1, self.bn1 = _conv3x3(c_in, planes), nn.BatchNorm2d(planes)
        self.act1, self.drop = get_activation(activation), nn.Dropout(dropout)
        self.conv2, self.bn2 = _conv3x3(planes, planes), nn.BatchNorm2d(planes)
        self.act2 = get_activation(activation)
        self.downsample = downsample
        _xavier(self.conv1)
        _xavier(self.conv2)
        nn.init.zeros_(self.bn2.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.avg_pool2d(x, kernel_size=2) if self.stride == 2 else x
        out = self.drop(self.act1(self.bn1(self.conv1(out))))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.act2(out + identity)


class PannsResNet(nn.Module):
    """PANNs' ``_ResNet``: four stages of basic blocks at 64/128/256/512 channels (stride 1, 2, 2, 2)."""

    def __init__(self, layers: Sequence[int] = (3, 4, 6, 3), activation: str = "relu", dropout: float = 0.1) -> None:
        super().__init__()
        self.in_channels = 64
        for i, (planes, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            stage = self._stage(planes, n_blocks, 1 if i == 0 else 2, activation, dropout)
            setattr(self, f"layer{i + 1}", stage)

    def _stage(self, planes: int, n_blocks: int, stride: int, activation: str, dropout: float) -> nn.Sequential:
        downsample = None
        if stride == 2:  # indices 1 and 2 as in PANNs, so checkpoints load by name
            downsample = nn.Sequential(nn.AvgPool2d(2), _conv1x1(self.in_channels, planes), nn.BatchNorm2d(planes))
            _xavier(downsample[1])
        elif self.in_channels != planes:
            downsample = nn.Sequential(_conv1x1(self.in_channels, planes), nn.BatchNorm2d(planes))
            _xavier(downsample[0])
        blocks = [PannsBasicBlock(self.in_channels, planes, stride, downsample, activation, dropout)]
        self.in_channels = planes
        blocks += [PannsBasicBlock(planes, planes, 1, None, activation, dropout) for _ in range(1, n_blocks)]
        return nn.Sequential(*blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


class ResNet38(nn.Module):
    """PANNs' ResNet38 (Kong et al. 2020) on our log-mel image: 72,715,718 parameters for 6 classes.

    Input ``x2d``: the report's log-mel image ``[B, 1, 64, 64]`` (64 mels x 64 resized frames,
    scaled to [0, 1]), or the un-resized ``[B, 1, 64, T]``. Layout as in PANNs'
    ``pytorch/models.py`` (re-implemented, not copied): ``bn0`` (BatchNorm over the 64 mel bins)
    -> ConvBlock(1 -> 64) + 2x2 average pooling -> ResNet of basic blocks [3, 4, 6, 3] at
    64/128/256/512 channels -> 2x2 average pooling -> ConvBlock(512 -> 2048) -> mean over
    frequency -> max + mean over time -> fc1 (2048 -> 2048) -> activation -> output layer.

    Adaptations: one input channel and no spectrogram/log-mel extractor inside (we feed the
    log-mel; internally transposed to PANNs' (time, mel) layout so pretrained filters line up);
    6 classes with a softmax/cross-entropy head instead of 527 sigmoids; random (PANNs')
    initialisation; no SpecAugment or mixup (the report's protocol has no augmentation); the
    activation is the configurable one; ``dropout_conv`` replaces PANNs' 0.2 between stages,
    ``dropout_head`` its 0.5 in the head, and the 0.1 inside each residual block stays
    (``dropout_block``). PANNs' ResNet38 has 73,783,247 parameters with 527 classes (the paper's
    "73.7 M"); with 6 the output layer shrinks from 1,079,823 to 12,294 parameters. Clips shorter than 32 frames are
    zero-padded to 32 (five 2x poolings in time).

    ``pretrained_path``: a local PANNs checkpoint (``ResNet38_mAP=0.434.pth``, which cannot be
    downloaded here); tensors are loaded by name and shape, skipping the spectrogram/log-mel
    extractors, ``bn0`` (its statistics are of PANNs' dB log-mel at 32 kHz, not our [0, 1]
    image) and the 527-class output layer. Note that PANNs' 64 mel bins span 50 Hz-14 kHz, ours
    0-8 kHz, so the pretrained filters see a stretched frequency axis.
    """

    inputs: tuple[str, ...] = ("x2d",)
    MIN_FRAMES = 32

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, pretrained_path: str | Path | None = None, n_mels: int = 64,
                 dropout_block: float = 0.1) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(n_mels)
        self.conv_block1 = PannsConvBlock(1, 64, activation)
        self.resnet = PannsResNet((3, 4, 6, 3), activation, dropout_block)
        self.conv_block_after1 = PannsConvBlock(512, 2048, activation)
        self.drop_conv = nn.Dropout(dropout_conv)
        self.drop_head = nn.Dropout(dropout_head)
        self.fc1 = nn.Linear(2048, 2048)
        self.fc_act = get_activation(activation)
        self.fc_out = nn.Linear(2048, n_classes)
        _xavier(self.fc1)
        _xavier(self.fc_out)
        self.pretrained: dict[str, Any] | None = None
        if pretrained_path is not None:
            self.pretrained = load_panns_checkpoint(self, pretrained_path)

    def forward(self, x2d: torch.Tensor) -> torch.Tensor:
        x = x2d.transpose(2, 3)  # [B, 1, mel, T] -> PANNs' [B, 1, T, mel]
        if x.shape[2] < self.MIN_FRAMES:
            x = F.pad(x, (0, 0, 0, self.MIN_FRAMES - x.shape[2]))
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise each mel bin
        x = self.drop_conv(self.conv_block1(x, pool=(2, 2)))
        x = self.drop_conv(F.avg_pool2d(self.resnet(x), kernel_size=2))
        x = self.drop_conv(self.conv_block_after1(x, pool=(1, 1)))
        x = x.mean(dim=3)  # over frequency
        x = x.amax(dim=2) + x.mean(dim=2)  # over time
        x = self.drop_head(self.fc_act(self.fc1(self.drop_head(x))))
        return self.fc_out(x)


#: Checkpoint prefixes never loaded from a PANNs file (see ResNet38's docstring).
PANNS_SKIPPED_PREFIXES = ("spectrogram_extractor.", "logmel_extractor.", "bn0.", "fc_audioset.")


def load_panns_checkpoint(model: nn.Module, path: str | Path) -> dict[str, Any]:
    """Copy the tensors of a local PANNs checkpoint into ``model`` where name and shape match.

    Returns ``{"path", "loaded": [...], "skipped": [...], "missing": [...]}`` (skipped: in the file
    but not used; missing: in the model but not in the file). FileNotFoundError names a missing
    file; ValueError when nothing matches (not a PANNs ResNet38 checkpoint).
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"PANNs checkpoint {path} does not exist; download ResNet38_mAP=0.434.pth "
                                f"from https://zenodo.org/record/3987831 on a machine with internet access, "
                                f"or pass pretrained_path=None for random initialisation")
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    state = checkpoint.get("model", checkpoint.get("state_dict", checkpoint)) if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds no state_dict (expected a dict, or one under 'model')")
    own = model.state_dict()
    loaded, skipped = {}, []
    for name, tensor in state.items():
        if name.startswith(PANNS_SKIPPED_PREFIXES) or name not in own or own[name].shape != tensor.shape:
            skipped.append(name)
        else:
            loaded[name] = tensor
    if not loaded:
        raise ValueError(f"no tensor of {path} matches {type(model).__name__} by name and shape; "
                         f"is it a PANNs ResNet38 checkpoint?")
    model.load_state_dict(loaded, strict=False)
    return {"path": str(path), "loaded": sorted(loaded), "skipped": skipped,
            "missing": sorted(set(own) - set(loaded))}


# ======================================================================= torchvision ResNet-101
class Bottleneck(nn.Module):
    """torchvision's bottleneck (ResNet v1.5: the stride sits on the 3x3 conv): 1x1 -> 3x3 -> 1x1 (x4)."""

    expansion = 4

    def __init__(self, c_in: int, planes: int, stride: int = 1, downsample: nn.Module | None = None,
                 activation: str = "relu") -> None:
        super().__init__()
        self.conv1, self.bn1 = _conv1x1(c_in, planes), nn.BatchNorm2d(planes)
        self.conv2, self.bn2 = _conv3x3(planes, planes, stride), nn.BatchNorm2d(planes)
        self.conv3, self.bn3 = _conv1x1(planes, planes * self.expansion), nn.BatchNorm2d(planes * self.expansion)
        self.act = get_activation(activation)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.bn1(self.conv1(x)))
        out = self.act(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.act(out + identity)


class ResNet101(nn.Module):
    """torchvision's ResNet-101 in plain torch, one input channel: 42,506,182 parameters for 6 classes.

    Input ``x2d``: the report's log-mel image ``[B, 1, 64, 64]`` (or un-resized ``[B, 1, 64, T]``),
    read as a one-channel image (frequency x time). Layout: 7x7 stride-2 conv (1 -> 64) ->
    BatchNorm -> activation -> 3x3 stride-2 max pooling -> bottleneck stages [3, 4, 23, 3] at
    64/128/256/512 planes (x4 expansion = 256/512/1024/2048 channels; stride 1, 2, 2, 2) ->
    global average pooling -> Linear(2048, n_classes). torchvision's ResNet-101 has 44,549,160
    parameters (3 input channels, 1,000 classes); one channel saves 6,272 and 6 classes 2,036,706.
    On 64 x 64 the last stage works on 2 x 2 positions.

    Initialisation as torchvision (Kaiming-normal fan-out convolutions, BatchNorm 1/0, no
    zero-initialised residuals). The contract's dropouts, which torchvision does not have, are
    added without parameters: ``dropout_conv`` after each of the four stages (where PANNs puts
    its 0.2) and ``dropout_head`` before the output layer. The activation replaces ReLU.
    """

    inputs: tuple[str, ...] = ("x2d",)

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, layers: Sequence[int] = (3, 4, 23, 3), in_channels: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.act = get_activation(activation)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.in_channels = 64
        for i, (planes, n_blocks) in enumerate(zip((64, 128, 256, 512), layers)):
            setattr(self, f"layer{i + 1}", self._stage(planes, n_blocks, 1 if i == 0 else 2, activation))
        self.drop_conv = nn.Dropout(dropout_conv)
        self.drop_head = nn.Dropout(dropout_head)
        self.fc = nn.Linear(512 * Bottleneck.expansion, n_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _stage(self, planes: int, n_blocks: int, stride: int, activation: str) -> nn.Sequential:
        out = planes * Bottleneck.expansion
        downsample = None
        if stride != 1 or self.in_channels != out:
            downsample = nn.Sequential(_conv1x1(self.in_channels, out, stride), nn.BatchNorm2d(out))
        blocks = [Bottleneck(self.in_channels, planes, stride, downsample, activation)]
        self.in_channels = out
        blocks += [Bottleneck(out, planes, 1, None, activation) for _ in range(1, n_blocks)]
        return nn.Sequential(*blocks)

    def forward(self, x2d: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.act(self.bn1(self.conv1(x2d))))
        for stage in (self.layer1, self.layer2, self.layer3, self.layer4):
            x = self.drop_conv(stage(x))
        return self.fc(self.drop_head(x.mean(dim=(2, 3))))


# ============================================================= variants of the combined model
class CombinedVarLen(TwoTrunkModel):
    """The combined model on un-cropped, un-resized features: 5,739,462 parameters (as ``combined``).

    Inputs: ``x1d_var`` ``[B, 27, T']`` (the 27 feature rows of every frame of the VAD-trimmed
    clip, not padded or cropped to 3.0 s), ``len1d`` ``[B]`` (T' per clip), ``x2d_var``
    ``[B, 1, 64, T]`` (the scaled log-mel before resizing, T frames at a 16 ms hop) and ``len2d``.
    A batch is zero-padded to its longest clip (training buckets clips by length so little padding
    is needed); the masked trunks (:class:`MaskedTrunk`) make the output independent of the
    padding: GroupNorm statistics over valid frames only, padded frames zeroed after every
    activation and pooling, global average pooling over valid frames only. A clip's prediction
    is therefore the same alone or in any batch (tested to float tolerance). Same widths, head
    and parameters as ``combined``, so the comparison isolates the crop/resize.
    """

    inputs: tuple[str, ...] = ("x1d_var", "len1d", "x2d_var", "len2d")
    trunk_inputs = ("x1d_var", "x2d_var")

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, hidden: int = 128) -> None:
        super().__init__(MaskedTrunk(1, INPUT_SHAPES["x1d_var"][0], TRUNK_1D_WIDTHS, activation, dropout_conv),
                         MaskedTrunk(2, INPUT_SHAPES["x2d_var"][0], TRUNK_2D_WIDTHS, activation, dropout_conv),
                         n_classes, activation, dropout_head, hidden)

    def forward(self, x1d_var: torch.Tensor, len1d: torch.Tensor, x2d_var: torch.Tensor,
                len2d: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.trunk1d(x1d_var, len1d), self.trunk2d(x2d_var, len2d)], dim=1))

    @staticmethod
    def example_inputs(batch_size: int = 1, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Random padded inputs of 3 s clips (301 frames, 188 mel frames), later clips shorter."""
        frames = torch.tensor([301 - 40 * (b % 5) for b in range(batch_size)])
        mels = torch.tensor([188 - 25 * (b % 5) for b in range(batch_size)])
        x1d = torch.randn((batch_size, 27, 301), generator=generator) * time_mask(frames, 301, 3)
        x2d = torch.rand((batch_size, 1, 64, 188), generator=generator) * time_mask(mels, 188, 4)
        return x1d, frames, x2d, mels


class CombinedMean1D(nn.Module):
    """The combined model with the 1D path reading one 27-vector per clip: 5,305,798 parameters.

    Input ``x1d_avg`` ``[B, 27]``: each of the 27 feature rows (ZCR, 12 chroma, 13 MFCC, RMS)
    averaged over the clip's valid frames (the un-padded frames when the FeatureSet has them, so
    the silence padded onto short clips does not dilute the means), then standardised per row
    with training-split statistics; ``x2d`` as in ``combined``.

    The 1D CNN is replaced by an MLP, ``Linear(27, 128) -> LayerNorm -> act -> Dropout(conv) ->
    Linear(128, 512) -> LayerNorm -> act -> Dropout(conv)``: with the time axis averaged away
    there is nothing left to convolve along. Reading the 27 values as a one-channel sequence
    would slide the same 3-tap filters across unrelated neighbours (ZCR next to chroma C,
    chroma B next to MFCC 0) and assume a translation symmetry the feature vector does not have.
    The MLP ends at 512 values like the 1D trunk, so the concatenation stays 512 + 1024 and the
    head is the combined model's; it has 70,912 parameters where the 1D trunk had 504,576.
    """

    inputs: tuple[str, ...] = ("x1d_avg", "x2d")

    def __init__(self, n_classes: int = 6, activation: str = "relu", dropout_conv: float = 0.3,
                 dropout_head: float = 0.5, hidden: int = 128, mlp_hidden: int = 128) -> None:
        super().__init__()
        n_rows, width = INPUT_SHAPES["x1d_avg"][0], TRUNK_1D_WIDTHS[-1]
        self.mlp1d = nn.Sequential(
            nn.Linear(n_rows, mlp_hidden), nn.LayerNorm(mlp_hidden), get_activation(activation),
            nn.Dropout(dropout_conv),
            nn.Linear(mlp_hidden, width), nn.LayerNorm(width), get_activation(activation), nn.Dropout(dropout_conv),
        )
        self.trunk2d = conv_trunk(2, INPUT_SHAPES["x2d"][0], TRUNK_2D_WIDTHS, activation, dropout_conv)
        self.head = combined_head(width + TRUNK_2D_WIDTHS[-1], hidden, n_classes, activation, dropout_head)

    def trunks(self) -> dict[str, nn.Module]:
        return {"x2d": self.trunk2d}

    def forward(self, x1d_avg: torch.Tensor, x2d: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.mlp1d(x1d_avg), self.trunk2d(x2d)], dim=1))


@torch.no_grad()
def padding_invariance(model: nn.Module, frames: Sequence[Any] | None, mels: Sequence[Any] | None,
                       extra: int = 50) -> dict[str, float]:
    """How much a variable-length model's logits move with padding (0 up to float rounding).

    ``frames``: per-clip ``[27, T']`` arrays (for a model reading ``x1d_var``), ``mels``: per-clip
    ``[64, T]`` arrays (``x2d_var``; ``combined-varlen`` reads both, ``transformer`` only the
    log-mel, so its ``frames`` may be None). Compares the clips batched together (padded to the
    longest), the same batch with ``extra`` more padded frames, and each clip alone without
    padding; returns the largest absolute logit differences.
    """
    def batch(items: Sequence[Any], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
        tensors = [torch.as_tensor(item, dtype=torch.float32) for item in items]
        lengths = torch.tensor([t.shape[-1] for t in tensors])
        out = torch.zeros(len(tensors), tensors[0].shape[0], int(lengths.max()) + pad)
        for i, t in enumerate(tensors):
            out[i, :, :t.shape[-1]] = t
        return out, lengths

    model = model.eval()

    def logits(pad: int, rows: Sequence[int]) -> torch.Tensor:
        args = {}
        if "x1d_var" in model.inputs:
            args["x1d_var"], args["len1d"] = batch([frames[i] for i in rows], pad)
        if "x2d_var" in model.inputs:
            x2, args["len2d"] = batch([mels[i] for i in rows], pad)
            args["x2d_var"] = x2[:, None]
        return model(*(args[name] for name in model.inputs))

    n = len(mels if mels is not None else frames)
    together = logits(0, range(n))
    alone = torch.cat([logits(0, [i]) for i in range(n)])
    return {"batched vs alone": float((together - alone).abs().max()),
            f"+{extra} padded frames": float((together - logits(extra, range(n))).abs().max())}
