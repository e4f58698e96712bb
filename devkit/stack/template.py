"""template.yaml as data: CloudFormation's short intrinsic tags read in their long form, dates kept as strings."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
FUNCTION_TYPES = frozenset({"AWS::Serverless::Function", "AWS::Lambda::Function"})


class TemplateLoader(yaml.SafeLoader):
    """YAML loader for CloudFormation: short intrinsic tags in long form, dates kept as strings."""


# CloudFormation reads AWSTemplateFormatVersion "2010-09-09" as a string, not a date.
TemplateLoader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def _construct_intrinsic(loader: yaml.SafeLoader, tag_suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix in ("Ref", "Condition"):
        return {tag_suffix: value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        resource, _, attribute = value.partition(".")
        value = [resource, attribute]
    return {f"Fn::{tag_suffix}": value}


TemplateLoader.add_multi_constructor("!", _construct_intrinsic)


def _template_file(path: str | os.PathLike[str]) -> Path:
    candidate = Path(path)
    if candidate.is_absolute() or candidate.exists():
        return candidate
    return REPO_ROOT / candidate  # "template.yaml" works from any working directory


def load_template(path: str | os.PathLike[str] = "template.yaml") -> dict:
    """template.yaml as a dict, with ``!Ref x`` as ``{"Ref": x}``, ``!GetAtt a.b`` as ``{"Fn::GetAtt": [a, b]}``..."""
    with _template_file(path).open(encoding="utf-8") as stream:
        # TemplateLoader is a SafeLoader subclass: no arbitrary objects.
        return yaml.load(stream, Loader=TemplateLoader)  # nosec B506
