"""Loading the settings: the schema, then layers merged over it, each named for errors and for `oak config`.

The layers, later over earlier: the recipe (pipelines/recipes/<recipe>.yaml, named by any later
layer), params.yaml, a study's settings for a planned run, and the command line's `key=value`
overrides. OmegaConf merges them over the typed schema (oak.config.schema), so an unknown key, a
value of the wrong type or a key left without a value is one error naming the key and the file.
"""

import copy
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from oak.config.checks import check_values
from oak.config.notes import NOTE_SECTIONS, recipe_notes
from oak.config.resolve import resolve
from oak.config.schema import OakConfig
from oak.errors import OakError
from oak.layout import PARAMS_FILE, PLAN_FILE, RECIPES_DIR

# The scales a study declares its runs at; published: released weights, evaluated only; budget: the imagenet profile's
# runs with the budget recipes of pipelines/budget.yaml (oak.studies.budget)
PROFILES = ("demo", "imagenet", "published", "budget")
RECIPE_SECTIONS = {"train", "trainer"}
SCHEMA = "the schema (src/oak/config/schema.py)"
COMMAND_LINE = "command line"


@dataclass(frozen=True)
class Layer:
    source: str  # the file it was read from, a planned run's studies, or "command line"
    values: DictConfig


def load_config(path: Path = PARAMS_FILE, overrides: Sequence[str] = (), *, study: tuple[str, Sequence[str]] | None = None) -> DictConfig:
    """The schema with every layer merged over it, checked and read-only.

    `study` is (where from, a planned run's settings as `key=value`), which go between params.yaml and
    the overrides; the recipe is read from `pipelines/recipes/` beside `path`.
    """
    if not path.exists():
        raise OakError(f"{path}: not found; run oak in the repository's root folder, or name the params file with --params")
    config = merged(config_layers(path, overrides, study=study))
    missing = sorted(OmegaConf.missing_keys(config))
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise OakError(f"{path}: no value for '{missing[0]}'{more}; every key the schema leaves to params.yaml needs one there")
    check_values(config)
    resolve(config)  # the keys derived from the others (global batch, EMA decay per update, crop rule)
    OmegaConf.set_readonly(config, True)
    return config


def config_layers(path: Path, overrides: Sequence[str] = (), *, study: tuple[str, Sequence[str]] | None = None) -> list[Layer]:
    layers = [Layer(str(path), read_yaml(path))]
    if study:
        source, settings = study
        layers.append(Layer(source, _parse_overrides(settings, source)))
    if overrides:
        layers.append(Layer(COMMAND_LINE, _parse_overrides(overrides, COMMAND_LINE)))
    recipe = merged(layers).recipe
    if recipe:
        recipe_file = path.parent / RECIPES_DIR / f"{recipe}.yaml"
        layers.insert(0, Layer(str(recipe_file), _read_recipe(recipe_file)))
    return layers


def merged(layers: list[Layer]) -> DictConfig:
    config = copy.deepcopy(_schema())  # what OmegaConf.merge would copy anyway, without rebuilding the schema
    for layer in layers:
        try:
            config = OmegaConf.merge(config, layer.values)
        except OmegaConfBaseException as error:
            raise translated(error, layer.source) from None
    return config


@cache
def _schema() -> DictConfig:
    """The typed schema as OmegaConf builds it from the dataclasses: 10 ms a time, and a plan merges hundreds of configs."""
    return OmegaConf.structured(OakConfig)


def value_sources(layers: list[Layer]) -> dict[str, str]:
    """Where each setting's value comes from: the last layer that sets it, else the schema."""
    sources = dict.fromkeys(flatten(_schema()), SCHEMA)
    for layer in layers:
        sources |= dict.fromkeys(flatten(layer.values), layer.source)
    return sources


def translated(error: OmegaConfBaseException, source: str, schema: str = SCHEMA) -> OakError:
    """OmegaConf's error as one line naming the source and the key."""
    key = getattr(error, "full_key", None) or "?"
    if "not in" in str(error):
        return OakError(f"{source}: unknown key '{key}'; check its spelling against {schema}")
    return OakError(f"{source}: key '{key}': {str(error).strip().splitlines()[0]}")


def flatten(config: DictConfig) -> dict[str, Any]:
    """`{"train.lr": 0.002, ...}`: the resolved config as dotted keys, for run params."""
    flat: dict[str, Any] = {}

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(value, f"{prefix}{key}.")
        else:
            flat[prefix[:-1]] = node

    walk(OmegaConf.to_container(config, resolve=True), "")
    return flat


# What Oak reads from a YAML document (params.yaml, a recipe, a study, the plan, a command line's value), checked on
# the parsed nodes before any value is built. An alias is one node there however often it is used: building its
# copies is what makes a "billion laughs" file (aliases of aliases) fill the memory. The shipped files are far inside
# (the largest, fig4_depth_width.yaml: 13 kB, 1,079 nodes, 8 levels); OmegaConf takes about 1.5 s per 10,000 nodes here.
MAX_YAML_BYTES = 256 * 1024
MAX_YAML_NODES = 10_000  # scalars, sequences and mappings, each alias counted as the node it copies
MAX_YAML_DEPTH = 32  # levels of nesting, aliases expanded


def read_yaml(path: Path) -> DictConfig:
    """A YAML mapping (safe: no tags that build objects) within the bounds above, or one error naming the file."""
    size = path.stat().st_size
    if size > MAX_YAML_BYTES:
        raise OakError(f"{path}: {size:,} bytes, over the {MAX_YAML_BYTES:,} Oak reads from a settings or study file; shorten it")
    content = parse_yaml(path.read_text(), str(path))
    if content is None:
        content = {}
    if not isinstance(content, dict):
        raise OakError(f"{path}: expected a mapping of settings at the top level")
    return OmegaConf.create(content)


def parse_yaml(text: str, source: str) -> Any:
    """`text` as YAML (safe_load's types), refused in one line naming `source` beyond the bounds above, where a
    mapping repeats a key (YAML keeps the last value and drops the others silently) or a value is an interpolation."""
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_extent(node, source, depth=1, extents={})
        return loader.construct_document(node)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = f" ({error.problem})" if getattr(error, "problem", None) else ""
        raise OakError(f"{source}: not valid YAML{where}{problem}; fix the syntax") from None
    except RecursionError:  # the parser's own recursion, on brackets nested hundreds deep
        raise OakError(f"{source}: nested more than {MAX_YAML_DEPTH} levels deep; flatten it") from None
    finally:
        loader.dispose()


def _check_extent(node: yaml.Node, source: str, depth: int, extents: dict[int, tuple[int, int] | None]) -> tuple[int, int]:
    """(nodes, levels) of `node` with its aliases expanded, each node visited once (`extents`, by id: None while
    its children are being visited, so an alias inside the node it names is found)."""
    line = node.start_mark.line + 1
    if depth > MAX_YAML_DEPTH:
        raise OakError(f"{source}: nested more than {MAX_YAML_DEPTH} levels deep at line {line}; flatten it")
    if id(node) in extents:
        extent = extents[id(node)]
        if extent is None:
            raise OakError(f"{source}: the value anchored at line {line} holds an alias of itself, an endless value; remove that alias")
        if depth + extent[1] - 1 > MAX_YAML_DEPTH:
            raise OakError(f"{source}: nested more than {MAX_YAML_DEPTH} levels deep by an alias of line {line}; flatten it")
        return extent
    extents[id(node)] = None
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        keys = [key.value for key, _ in node.value if isinstance(key, yaml.ScalarNode) and key.value != "<<"]  # <<: a merge
        repeated = next((key for key, count in Counter(keys).items() if count > 1), None)
        if repeated is not None:
            raise OakError(f"{source}: key {repeated!r} is written twice in the mapping at line {line}; keep one")
        children = [part for pair in node.value for part in pair]
    elif isinstance(node, yaml.SequenceNode):
        children = node.value
    elif "${" in node.value:  # OmegaConf would resolve it when read: environment variables, or strings doubling per reference
        raise OakError(f"{source}: {node.value!r} at line {line}: Oak resolves no interpolations (${{...}}); write the value itself")
    nodes, levels = 1, 1
    for child in children:
        child_nodes, child_levels = _check_extent(child, source, depth + 1, extents)
        nodes, levels = nodes + child_nodes, max(levels, child_levels + 1)
        if nodes > MAX_YAML_NODES:
            raise OakError(
                f"{source}: over {MAX_YAML_NODES:,} values with its aliases expanded (at line {line}), more than Oak reads "
                "from one document; write fewer values or aliases"
            )
    extents[id(node)] = nodes, levels
    return nodes, levels


def _read_recipe(path: Path) -> DictConfig:
    if not path.exists():
        known = sorted(p.stem for p in path.parent.glob("*.yaml"))
        raise OakError(f"recipe {path.stem!r}: {path} not found; known recipes: {', '.join(known) or 'none'}")
    recipe = read_yaml(path)
    stray = sorted(set(recipe) - RECIPE_SECTIONS - set(NOTE_SECTIONS))
    if stray:
        raise OakError(f"{path}: a recipe sets only {' and '.join(sorted(RECIPE_SECTIONS))}; move {', '.join(stray)} to params.yaml")
    recipe_notes(recipe, path)  # its source and differences, checked: the settings are the rest
    return OmegaConf.masked_copy(recipe, [section for section in RECIPE_SECTIONS if section in recipe])


def _parse_overrides(overrides: Sequence[str], source: str) -> DictConfig:
    for item in overrides:
        key, equals, value = item.partition("=")
        if not equals:
            raise OakError(f"{source}: {item!r}: expected key=value, e.g. train.epochs=3")
        parse_yaml(value, f"{source}: {key}")  # bounded and checked before OmegaConf builds the value
    try:
        return OmegaConf.from_dotlist(list(overrides))
    except OmegaConfBaseException as error:
        raise translated(error, source) from None


def listing(config: DictConfig, layers: list[Layer]) -> str:
    """Every setting as `key: value  # where it comes from`, one per line, for `oak config`."""
    sources = value_sources(layers)
    lines = [(f"{key}: {_yaml_value(value)}", sources[key]) for key, value in flatten(config).items()]
    width = max(len(line) for line, _ in lines)
    return "\n".join(f"{line:{width}}  # {source}" for line, source in lines)


def _yaml_value(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=1000).removesuffix("\n...\n").strip()


def planned_profile(path: Path = PLAN_FILE) -> str:
    """The profile of the plan file, or `demo` when there is none yet."""
    if not path.exists():
        return "demo"
    profile = read_yaml(path).get("profile")
    if profile not in PROFILES:
        raise OakError(f"{path}: no profile among {', '.join(PROFILES)}; run `oak plan` (or `make repro`) to regenerate it")
    return profile
