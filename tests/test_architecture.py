"""The shape of the code: dependencies point down (the library never imports a tool or a
stream script), the engine stays in short files, and the docs never point outside the repo."""
import ast
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIBRARY = ["engine", "dataloader", "network", "utils.py", "progress.py"]
ABOVE_THE_LIBRARY = ("tools", "spatial_cnn", "motion_cnn", "fusion")


def python_files(*entries):
    for entry in entries:
        path = os.path.join(ROOT, entry)
        if os.path.isfile(path):
            yield path
            continue
        for folder, _, files in os.walk(path):
            yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(".py"))


def imported_modules(source):
    """Every module name an import statement anywhere in `source` names (function bodies too)."""
    names = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{a.name}" for a in node.names]
    return names


def upward_imports(source):
    return sorted({n for n in imported_modules(source) if n.split(".")[0] in ABOVE_THE_LIBRARY})


def test_the_walker_sees_imports_at_any_depth():
    source = ("import os\nfrom tools import report\n"
              "def f():\n    import spatial_cnn\n    from motion_cnn import MOTION\n"
              "class C:\n    def g(self):\n        from tools.make_synthetic import main\n")
    assert upward_imports(source) == ["motion_cnn", "motion_cnn.MOTION", "spatial_cnn", "tools",
                                      "tools.make_synthetic", "tools.make_synthetic.main", "tools.report"]


@pytest.mark.parametrize("path", list(python_files(*LIBRARY)), ids=lambda p: os.path.relpath(p, ROOT))
def test_library_imports_no_tool_and_no_stream_script(path):
    with open(path, encoding="utf-8") as f:
        assert upward_imports(f.read()) == [], f"{os.path.relpath(path, ROOT)} imports from above the library"


def test_the_library_is_all_there():
    found = {os.path.relpath(p, ROOT) for p in python_files(*LIBRARY)}
    for module in ("engine/train.py", "engine/loop.py", "engine/streams.py", "dataloader/synthetic.py",
                   "dataloader/datasets.py", "network/model.py", "utils.py", "engine/fusion.py", "engine/scores.py"):
        assert module in found


def test_the_fusion_command_only_parses_calls_and_prints():
    with open(os.path.join(ROOT, "fusion.py"), encoding="utf-8") as f:
        assert len(f.readlines()) < 100, "fusion.py: 100 lines or more; the fusion itself belongs in engine/fusion.py"


def repo_files(*suffixes):
    """The project's own files with these suffixes (not generated data, runs or hidden folders)."""
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("data", "demo", "record", "picture")]
        yield from (os.path.join(folder, f) for f in sorted(files) if f.endswith(suffixes))


CODE = [p for p in repo_files(".py") if os.path.relpath(p, ROOT).split(os.sep)[0] != "tests"]


@pytest.mark.parametrize("path", CODE, ids=lambda p: os.path.relpath(p, ROOT))
def test_files_are_short(path):
    """A file a reader can see whole: no module outside the tests passes 300 lines."""
    with open(path, encoding="utf-8") as f:
        assert len(f.readlines()) <= 300, f"{os.path.relpath(path, ROOT)}: over 300 lines; split it by concern"


def test_backbones_are_named_in_one_place():
    """Adding a backbone is an entry in network/: its name appears in no other module (the
    options' default and the tests excepted)."""
    offenders = []
    for path in CODE:
        rel = os.path.relpath(path, ROOT)
        if rel.startswith("network" + os.sep) or rel == os.path.join("engine", "options.py"):
            continue
        with open(path, encoding="utf-8") as f:
            offenders += [f"{rel}:{i}" for i, line in enumerate(f, 1) if "resnet18" in line]
    assert offenders == []


def test_the_original_code_is_named_as_such():
    """'The seed' was never defined for a reader, and clashes with --seed: the code and docs
    call the original code 'the original two-stream scripts'."""
    phrase = re.compile(r"\bthe seed\b(?!\s*(=|\)|,))|\bseed's\b|\bseed[- ](notes|protocol|style)\b", re.I)
    offenders = []
    for path in repo_files(".py", ".md"):
        if os.path.basename(path) == "test_architecture.py":
            continue
        with open(path, encoding="utf-8", errors="replace") as f:
            offenders += [f"{os.path.relpath(path, ROOT)}:{i}" for i, line in enumerate(f, 1) if phrase.search(line)]
    assert offenders == []


def test_no_doc_or_help_text_points_outside_the_repo():
    outside = re.compile(r"REFERENCE(\.md| §)|\.\./shared|/work/shared")
    offenders = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("data", "demo", "record", "picture")]
        for f in files:
            if f.endswith((".py", ".md", ".txt", ".ini")) and f != "test_architecture.py":
                path = os.path.join(folder, f)
                with open(path, encoding="utf-8", errors="replace") as fh:
                    offenders += [f"{os.path.relpath(path, ROOT)}:{i}" for i, line in enumerate(fh, 1)
                                  if outside.search(line)]
    assert offenders == []
