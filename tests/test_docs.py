"""The docs a newcomer reads: a short README whose links resolve, and a layout that matches the tree."""

from __future__ import annotations

import re

from ser_utils import config

ROOT = config.REPO_ROOT
README = ROOT / "README.md"
PAGES = ["user-guide.md", "gpu-and-cluster.md", "measured.md", "ARCHITECTURE.md"]


def package_modules() -> dict[str, list[str]]:
    """Each layer folder of ser_utils (and "" for the top) with its modules' names."""
    package = ROOT / "ser_utils"
    layers = {"": sorted(p.stem for p in package.glob("*.py") if not p.stem.startswith("__"))}
    for folder in sorted(p for p in package.iterdir() if (p / "__init__.py").is_file()):
        layers[folder.name] = sorted([p.stem for p in folder.glob("*.py") if not p.stem.startswith("__")]
                                     + [p.name + "/" for p in folder.iterdir() if (p / "__init__.py").is_file()])
    return layers


def test_the_readme_is_short_and_every_docs_page_is_linked_from_it_and_from_the_architecture():
    text = README.read_text()
    assert len(text.splitlines()) <= 150
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for page in PAGES:
        assert (ROOT / "docs" / page).is_file(), page
        assert f"docs/{page}" in text, f"README does not link docs/{page}"
        if page != "ARCHITECTURE.md":
            assert f"({page}" in architecture, f"ARCHITECTURE.md does not link {page}"


def test_every_relative_link_in_the_docs_resolves():
    for doc in [README, *(ROOT / "docs").glob("*.md")]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if "://" in target:
                continue
            assert (doc.parent / target).exists(), f"{doc.relative_to(ROOT)} links {target}, which does not exist"


def test_the_readme_layout_and_the_architecture_name_every_module_of_the_tree():
    layout = README.read_text().split("## Layout", 1)[1]
    architecture = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    for layer, modules in package_modules().items():
        if layer:
            assert f"{layer}/" in layout, f"README layout misses ser_utils/{layer}/"
            assert f"### `{layer}/`" in architecture, f"ARCHITECTURE.md has no section for {layer}/"
        for module in modules:
            assert re.search(rf"\b{re.escape(module)}", layout), f"README layout misses {layer}/{module}"
            assert f"`{module}`" in architecture, f"ARCHITECTURE.md does not describe {layer}/{module}"
