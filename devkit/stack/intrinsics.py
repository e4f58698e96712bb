"""CloudFormation's intrinsic functions and parameters, evaluated against the resources created so far."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any


class _NoValue:
    """AWS::NoValue: the property is removed."""


NO_VALUE = _NoValue()
SUB_VARIABLE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    """Evaluates intrinsic functions against parameters and the resources created so far."""

    def __init__(
        self, template: dict, parameters: Mapping[str, Any], *, prefix: str, region: str, account_id: Callable[[], str]
    ) -> None:
        self.template = template
        self.prefix = prefix
        self.parameters = parameter_values(template, parameters)
        self.refs: dict[str, Any] = {}
        self.attributes: dict[str, dict[str, Any]] = {}
        self._account_id = account_id
        self._region = region
        self._conditions: dict[str, bool] = {}

    def pseudo_parameter(self, name: str) -> Any:
        match name:
            case "AWS::Region":
                return self._region
            case "AWS::AccountId":
                return self._account_id()
            case "AWS::StackName":
                return self.prefix
            case "AWS::StackId":
                return f"arn:aws:cloudformation:{self._region}:{self._account_id()}:stack/{self.prefix}/local"
            case "AWS::Partition":
                return "aws"
            case "AWS::URLSuffix":
                return "amazonaws.com"
            case "AWS::NotificationARNs":
                return []
            case "AWS::NoValue":
                return NO_VALUE
        raise KeyError(f"unknown pseudo parameter {name}")

    def ref(self, name: str) -> Any:
        if name.startswith("AWS::"):
            return self.pseudo_parameter(name)
        if name in self.parameters:
            return self.parameters[name]
        if name in self.refs:
            return self.refs[name]
        if name in self.template.get("Resources", {}):
            return f"{self.prefix}-{name}"  # not created locally (function, layer...): its local name
        raise KeyError(f"!Ref {name}: no such parameter or resource")

    def get_att(self, resource: str, attribute: str) -> Any:
        try:
            return self.attributes[resource][attribute]
        except KeyError:
            raise KeyError(f"!GetAtt {resource}.{attribute}: not available locally") from None

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.resolve(self.template["Conditions"][name]))
        return self._conditions[name]

    def resolve(self, value: Any) -> Any:
        if isinstance(value, list):
            return [item for item in (self.resolve(v) for v in value) if item is not NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, argument),) = value.items()
            if key == "Ref":
                return self.ref(self.resolve(argument))
            if key == "Condition" and isinstance(argument, str):
                return self.condition(argument)
            if key.startswith("Fn::"):
                return self._function(key[4:], argument)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not NO_VALUE}

    def _function(self, name: str, argument: Any) -> Any:
        match name:
            case "GetAtt":
                resource, attribute = self.resolve(argument)
                return self.get_att(resource, attribute)
            case "Sub":
                return self._sub(argument)
            case "Join":
                delimiter, items = argument
                return self.resolve(delimiter).join(str(item) for item in self.resolve(items))
            case "Select":
                index, items = self.resolve(argument)
                return items[int(index)]
            case "Split":
                delimiter, text = self.resolve(argument)
                return text.split(delimiter)
            case "If":
                condition, when_true, when_false = argument
                return self.resolve(when_true if self.condition(condition) else when_false)
            case "Equals":
                left, right = self.resolve(argument)
                return str(left) == str(right)
            case "And":
                return all(self.resolve(argument))
            case "Or":
                return any(self.resolve(argument))
            case "Not":
                return not self.resolve(argument)[0]
            case "FindInMap":
                mapping, first, second = self.resolve(argument)[:3]
                return self.template["Mappings"][mapping][first][second]
            case "Base64":
                return base64.b64encode(str(self.resolve(argument)).encode()).decode()
            case "GetAZs":
                return [f"{self._region}{zone}" for zone in "abc"]
            case "ToJsonString":
                return json.dumps(self.resolve(argument), separators=(",", ":"))
        raise NotImplementedError(f"Fn::{name} is not supported by devkit.stack")

    def _sub(self, argument: Any) -> str:
        text, variables = (argument, {}) if isinstance(argument, str) else (argument[0], self.resolve(argument[1]))

        def substitute(match: re.Match[str]) -> str:
            name = match.group(1)
            if name.startswith("!"):
                return "${" + name[1:] + "}"
            if name in variables:
                return str(variables[name])
            if "." in name and not name.startswith("AWS::"):
                resource, _, attribute = name.partition(".")
                return str(self.get_att(resource, attribute))
            return str(self.ref(name))

        return SUB_VARIABLE.sub(substitute, text)


def parameter_values(template: dict, overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Parameter values as CloudFormation passes them: strings (lists for list types)."""
    declared = template.get("Parameters", {})
    unknown = set(overrides) - set(declared)
    if unknown:
        raise KeyError(f"unknown template parameters: {sorted(unknown)}")
    values: dict[str, Any] = {}
    for name, declaration in declared.items():
        if name in overrides:
            raw = overrides[name]
        elif "Default" in declaration:
            raw = declaration["Default"]
        else:
            raise KeyError(f"parameter {name} has no default: pass it in parameters=")
        text = ",".join(map(as_text, raw)) if isinstance(raw, list) else as_text(raw)
        parameter_type = declaration.get("Type", "String")
        is_list = parameter_type == "CommaDelimitedList" or parameter_type.startswith("List<")
        values[name] = [item.strip() for item in text.split(",")] if is_list else text
    return values


def as_text(value: Any) -> str:
    """A value as CloudFormation renders it in a string (environment variable, queue attribute)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def references(value: Any) -> set[str]:
    """Logical ids (and parameters) a property value refers to."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= references(item)
    elif isinstance(value, dict):
        for key, argument in value.items():
            if key == "Ref" and isinstance(argument, str):
                found.add(argument)
            elif key == "Fn::GetAtt":
                found.add(argument[0] if isinstance(argument, list) else str(argument).partition(".")[0])
            elif key == "Fn::Sub":
                text = argument if isinstance(argument, str) else argument[0]
                found |= {name.partition(".")[0] for name in SUB_VARIABLE.findall(text) if not name.startswith("!")}
            found |= references(argument)
    return found
