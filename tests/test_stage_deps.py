"""dvc.yaml's code dependencies: each stage depends on every module of Oak its command imports, and on no bytecode.

A module a stage imports but does not list would leave its results "up to date" for `dvc status` after
a change that could alter them. The imports are read from the source (the verb's handler in cli.py,
then every import of every module reached, at module level or inside a function: more than one run
may execute, never less).
"""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
SOURCE = REPO / "src"
CLI = SOURCE / "oak" / "cli.py"
BENCH = SOURCE / "oak" / "bench" / "commands.py"  # registers `oak bench MEASUREMENT`


def module_file(module: str) -> Path | None:
    """The file of an `oak.*` module or package; None outside Oak."""
    if module != "oak" and not module.startswith("oak."):
        return None
    base = SOURCE.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_modules(tree: ast.AST, package: str, *, in_functions: bool = True) -> set[str]:
    """Every module an AST imports (absolute names; `from x import y` counts x and x.y, y may be a module);
    without `in_functions`, only those its module level imports (what importing it runs)."""
    found: set[str] = set()
    nodes = ast.walk(tree) if in_functions else _module_level(tree)
    for node in nodes:
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found |= {base} | {f"{base}.{alias.name}" for alias in node.names}
    return found


def _module_level(tree: ast.AST):
    """The nodes Python runs on import: all but the bodies of functions (classes' bodies and `if`s run)."""
    waiting = [tree]
    while waiting:
        node = waiting.pop()
        yield node
        waiting += [child for child in ast.iter_child_nodes(node) if not isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)]


def closure(start: set[str], *, in_functions: bool) -> set[Path]:
    """The files of every Oak module reachable from `start`, packages' __init__ included (Python runs them);
    `in_functions`: following imports inside functions too (the work a command does may call any of them)."""
    files: set[Path] = set()
    waiting = list(start)
    while waiting:
        module = waiting.pop()
        parts = module.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py first
            path = module_file(".".join(parts[:depth]))
            if path is None or path in files:
                continue
            files.add(path)
            package = ".".join(parts[:depth]) if path.name == "__init__.py" else ".".join(parts[: depth - 1])
            waiting += imported_modules(ast.parse(path.read_text()), package, in_functions=in_functions)
    return files


def _handlers(path: Path, registrar: str, name_at: int) -> dict[str, ast.FunctionDef]:
    """The functions `path` registers as command handlers: its calls `registrar(..., "name", handler, ...)`."""
    tree = ast.parse(path.read_text())
    functions = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    handlers = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == registrar and len(node.args) > name_at + 1:
            name, handler = node.args[name_at], node.args[name_at + 1]
            if isinstance(name, ast.Constant) and isinstance(handler, ast.Name) and handler.id in functions:
                handlers[name.value] = functions[handler.id]
    return handlers


def verb_handlers() -> dict[str, tuple[list[ast.FunctionDef], str]]:
    """`oak VERB` (and `oak bench MEASUREMENT`) -> the functions that run it (its handler, and the helpers beside it
    that any handler may call), and the package they are in."""
    found = {}
    for path, registrar, name_at, prefix, package in ((CLI, "verb", 0, "", "oak"), (BENCH, "_measurement", 1, "bench ", "oak.bench")):
        handlers = _handlers(path, registrar, name_at)
        tree = ast.parse(path.read_text())
        registered = {handler.name for handler in handlers.values()}
        helpers = [node for node in tree.body if isinstance(node, ast.FunctionDef) and node.name not in registered]
        found |= {f"{prefix}{name}": ([handler, *helpers], package) for name, handler in handlers.items()}
    return found


def modules_of_verb(verb: str) -> set[Path]:
    """What `oak VERB` imports: what importing cli.py runs (it builds the parser of every verb), and everything
    its handler's imports reach, inside functions too (the handler's work may call any of them)."""
    functions, package = verb_handlers()[verb]
    started = set().union(*(imported_modules(function, package) for function in functions))
    return closure({"oak.cli"}, in_functions=False) | closure(started, in_functions=True)


def stage_commands() -> dict[str, tuple[str, list[str]]]:
    """Each stage of dvc.yaml: the `oak` verb its command runs, and its code dependencies (files and folders under src/)."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    found = {}
    for name, stage in stages.items():
        body = stage.get("do", stage)
        words = body["cmd"].split()
        verb = " ".join(words[words.index("oak") + 1 : words.index("oak") + (3 if words[words.index("oak") + 1] == "bench" else 2)])
        found[name] = (verb, [dep for dep in body.get("deps", []) if dep.startswith("src/")])
    return found


@pytest.mark.parametrize("stage", sorted(stage_commands()))
def test_a_stage_depends_on_every_module_its_command_imports(stage: str) -> None:
    verb, deps = stage_commands()[stage]
    covered = [REPO / dep for dep in deps]
    missing = sorted(
        str(path.relative_to(REPO)) for path in modules_of_verb(verb) if not any(path == dep or dep in path.parents for dep in covered)
    )
    assert not missing, f"dvc.yaml stage {stage} (oak {verb}) imports modules it does not depend on: {missing}"


def test_the_import_reading_sees_a_handlers_own_imports() -> None:
    # the check itself: `oak train` reaches the training loop and the loader through its handler's imports
    train = {str(path.relative_to(SOURCE)) for path in modules_of_verb("train")}
    assert {"oak/training/train.py", "oak/loading/loader.py", "oak/cli.py", "oak/__init__.py"} <= train
    assert "oak/report/build.py" not in train


@pytest.mark.slow  # dvc repro and dvc status in a scratch repository
@pytest.mark.parametrize("litter", ["__pycache__/code.cpython-311.pyc", "code.py.partial"])  # Python's bytecode; a killed atomic write's
def test_bytecode_or_a_partial_file_beside_a_dependency_leaves_its_stage_up_to_date(tmp_path: Path, litter: str) -> None:
    shutil.copy(REPO / ".dvcignore", tmp_path / ".dvcignore")
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "code.py").write_text("VALUE = 1\n")
    (tmp_path / "dvc.yaml").write_text("stages:\n  use:\n    cmd: cp pkg/code.py out.txt\n    deps: [pkg]\n    outs: [out.txt]\n")
    dvc = [str(Path(sys.executable).parent / "dvc")]
    for command in (["git", "init", "-q"], dvc + ["init", "-q"], dvc + ["repro", "-q"]):
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    (tmp_path / "pkg" / litter).parent.mkdir(exist_ok=True)
    (tmp_path / "pkg" / litter).write_bytes(b"litter")
    status = subprocess.run(dvc + ["status"], cwd=tmp_path, check=True, capture_output=True, text=True).stdout
    assert "up to date" in status, status
