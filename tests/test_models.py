"""The report's three CNNs: exact parameter counts, shapes, registries and inspection helpers."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ser_utils import config, models

# Our counts of the report's pseudocode for 6 classes (conv bias on, affine GroupNorm, 8 groups);
# the report gives no counts.
PSEUDOCODE_PARAMETERS = {"1d": 507_654, "2d": 5_043_270, "combined": 5_739_462}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One thread: faster and steadier than OpenMP's team on a busy shared machine."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


@pytest.mark.parametrize("name", list(PSEUDOCODE_PARAMETERS))
def test_parameter_counts_of_the_pseudocode(name):
    assert models.count_parameters(models.build_model(name)) == PSEUDOCODE_PARAMETERS[name]


@pytest.mark.parametrize("name", list(PSEUDOCODE_PARAMETERS))
def test_parameter_count_does_not_depend_on_activation(name):
    for activation in config.ACTIVATIONS:
        model = models.build_model(name, activation=activation)
        assert models.count_parameters(model) == PSEUDOCODE_PARAMETERS[name]


@pytest.mark.parametrize("name", list(PSEUDOCODE_PARAMETERS))
def test_forward_shapes(name):
    torch.manual_seed(0)
    model = models.build_model(name, n_classes=6).eval()
    inputs = models.example_inputs(model, batch_size=3)
    assert [tuple(x.shape[1:]) for x in inputs] == [models.INPUT_SHAPES[n] for n in model.inputs]
    with torch.no_grad():
        out = model(*inputs)
    assert out.shape == (3, 6)
    assert torch.isfinite(out).all()


def test_inputs_attribute_names_forward_arguments():
    assert models.CNN1D.inputs == ("x1d",)
    assert models.CNN2D.inputs == ("x2d",)
    assert models.Combined.inputs == ("x1d", "x2d")


def test_common_constructor_contract():
    for name in config.MODELS:
        model = models.MODEL_REGISTRY[name](n_classes=4, activation="elu", dropout_conv=0.1, dropout_head=0.2)
        with torch.no_grad():
            assert model.eval()(*models.example_inputs(model)).shape == (1, 4)
        drops = {m.p for m in model.modules() if isinstance(m, nn.Dropout)}
        assert 0.1 in drops and drops <= {0.1, 0.2}
        assert any(isinstance(m, nn.ELU) for m in model.modules())


def test_registry_matches_config_and_rejects_unknown_names():
    assert set(config.MODELS) <= set(models.MODEL_REGISTRY)  # later issues register more
    with pytest.raises(ValueError, match="1d, 2d, combined"):
        models.build_model("resnet9000")


def test_activation_registry():
    assert set(models.ACTIVATIONS) == set(config.ACTIVATIONS) | set(models.LEARNABLE_ACTIVATIONS)
    assert isinstance(models.get_activation("silu"), nn.SiLU)
    assert isinstance(models.get_activation("ReLU"), nn.ReLU)
    with pytest.raises(ValueError, match="elu, prelu, relu, silu, swish-beta"):
        models.get_activation("gelu")
    with pytest.raises(ValueError):
        models.build_model("1d", activation="tanh")


def test_group_norm_divides_every_width():
    model = models.build_model("combined")
    norms = [m for m in model.modules() if isinstance(m, nn.GroupNorm)]
    assert len(norms) == 7
    assert all(m.num_groups == models.GROUP_NORM_GROUPS and m.num_channels % m.num_groups == 0 for m in norms)


def test_layer_table_rows_sum_to_parameter_count():
    model = models.build_model("1d")
    table = models.layer_table(model)
    assert list(table.columns) == ["layer", "type", "output_shape", "parameters"]
    assert table["parameters"].sum() == PSEUDOCODE_PARAMETERS["1d"]
    pools = table.loc[table["type"] == "MaxPool1d", "output_shape"].tolist()
    assert [shape[-1] for shape in pools] == [150, 75, 37]
    assert table["output_shape"].iloc[-1] == (1, 6)
    assert model.training  # the helper restores the mode it found


def test_receptive_field_and_cost():
    rf = models.receptive_field(models.build_model("combined"))
    assert rf == {"x1d": {"receptive_field": 22, "stride": 8}, "x2d": {"receptive_field": 46, "stride": 16}}
    cost_1d = models.cost_per_sample(models.build_model("1d"))
    # conv MACs: 27*128*3*301 + 128*256*3*150 + 256*512*3*75 + the 512x6 classifier
    assert cost_1d["macs"] == 27 * 128 * 3 * 301 + 128 * 256 * 3 * 150 + 256 * 512 * 3 * 75 + 512 * 6
    assert cost_1d["flops"] == 2 * cost_1d["macs"]


# ------------------------------------------------------------------ package structure
def test_registry_lists_the_report_models_then_the_alternatives():
    assert list(models.MODEL_REGISTRY) == [*config.MODELS, *models.ALTERNATIVES, *models.ATTENTION_MODELS]
    assert models.MODEL_REGISTRY["combined"] is models.Combined


def test_input_shapes_declare_exactly_the_inputs_the_models_read():
    """Every tensor a registered model reads is declared once in layers.INPUT_SHAPES (nothing added elsewhere)."""
    read = {name for cls in models.MODEL_REGISTRY.values() for name in cls.inputs}
    assert set(models.INPUT_SHAPES) == read
    assert set(models.LENGTH_OF) | set(models.LENGTH_OF.values()) <= read
    assert models.needs_lengths(models.CombinedVarLen) and not models.needs_lengths(models.Combined)


def test_combined_uses_the_shared_head_with_unchanged_state_dict_keys():
    model = models.build_model("combined")
    shared = models.combined_head(512 + 1024, 128, 6, "relu", 0.5)
    assert [type(m) for m in model.head] == [type(m) for m in shared]
    head_keys = [k for k in model.state_dict() if k.startswith("head.")]
    # checkpoints saved before the models package existed load by these names
    assert head_keys == ["head.0.weight", "head.0.bias", "head.1.weight", "head.1.bias", "head.4.weight",
                         "head.4.bias"]
    assert models.count_parameters(model.head) == models.count_parameters(shared)


def test_models_package_imports_only_downwards():
    """layers <- cnn <- alternatives | attention | transformer <- registry <- summary <- __init__, and nothing else of ser_utils except
    config (for describe): no import circle, and no model code reaching into the pipeline."""
    import ast

    allowed = {"layers": set(), "cnn": {"layers"}, "alternatives": {"layers", "cnn"},
               "attention": {"layers", "cnn"}, "transformer": {"layers"},
               "registry": {"cnn", "alternatives", "attention", "transformer"},
               "summary": {"layers", "registry", "config"},
               "__init__": {"layers", "cnn", "alternatives", "attention", "transformer", "registry", "summary"}}
    folder = config.REPO_ROOT / "ser_utils" / "models"
    assert {p.stem for p in folder.glob("*.py")} == set(allowed)
    for stem, ok in allowed.items():
        found = set()
        for node in ast.walk(ast.parse((folder / f"{stem}.py").read_text())):  # function-level imports too
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("ser_utils"):
                module = node.module.removeprefix("ser_utils").removeprefix(".").removeprefix("models").lstrip(".")
                found |= {module} if module else {alias.name for alias in node.names}
            elif isinstance(node, ast.Import):
                found |= {a.name.removeprefix("ser_utils.") for a in node.names if a.name.startswith("ser_utils")}
        assert found <= ok, f"ser_utils/models/{stem}.py imports {sorted(found - ok)}"
