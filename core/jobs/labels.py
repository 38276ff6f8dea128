"""Labels: a JSON schema of labels a person edits, asked of every video, one output column per label.

The schema is a small JSON Schema object: `properties` maps each label's name to its `type`
(`string`, `boolean`, `integer`, `number`), an optional `enum` of allowed strings and a
`description` that says what to look for. The question asked is written from the schema (any model
can answer it: Gemini, the local model, vLLM), the answer is read as one JSON object, and each value
is checked against its label; a value that does not fit leaves its cell empty and says why, the
other labels stand.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, Field

from core.errors import InputError

LabelType = Literal["string", "boolean", "integer", "number"]
MAX_LABELS = 24
NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,39}$")

EXAMPLE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "topic": {
            "type": "string",
            "enum": ["news", "sports", "music", "education", "entertainment", "other"],
            "description": "what the video is mostly about",
        },
        "people_visible": {"type": "boolean", "description": "whether any person can be seen"},
        "on_screen_text": {"type": "boolean", "description": "whether text is laid over the picture"},
        "setting": {"type": "string", "description": "where it seems to be filmed, in a few words"},
    },
}

_WORDS = {
    "boolean": "true or false",
    "integer": "a whole number",
    "number": "a number",
    "string": "a short text",
}


class LabelField(BaseModel):
    name: str
    type: LabelType = "string"
    enum: list[str] | None = None
    description: str = ""

    def wants(self) -> str:
        if self.enum:
            return "one of " + ", ".join(json.dumps(value) for value in self.enum)
        return _WORDS[self.type]


class LabelReading(BaseModel):
    values: dict[str, str] = Field(default_factory=dict)  # label name -> cell text ("" when missing or unfit)
    problems: list[str] = Field(default_factory=list)


class LabelSchema(BaseModel):
    fields: list[LabelField]

    @classmethod
    def from_json(cls, text: str) -> LabelSchema:
        """The schema a person wrote, or InputError saying what to fix."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise InputError(f"The label schema is not JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise InputError("The label schema must be a JSON object with 'properties'.")
        properties = data.get("properties", data if "type" not in data else None)
        if not isinstance(properties, dict) or not properties:
            raise InputError("The label schema has no labels: give 'properties', one entry per label.")
        if len(properties) > MAX_LABELS:
            raise InputError(f"The label schema has {len(properties)} labels; at most {MAX_LABELS} are allowed.")
        fields = [_field(name, spec) for name, spec in properties.items()]
        return cls(fields=fields)

    def to_json(self) -> str:
        """The schema as JSON Schema (what a person edits, and what a job stores)."""
        properties: dict[str, Any] = {}
        for field in self.fields:
            spec: dict[str, Any] = {"type": field.type}
            if field.enum:
                spec["enum"] = field.enum
            if field.description:
                spec["description"] = field.description
            properties[field.name] = spec
        return json.dumps({"type": "object", "properties": properties}, indent=2, ensure_ascii=False)

    @property
    def names(self) -> list[str]:
        return [field.name for field in self.fields]

    def question(self) -> str:
        """The question every video is asked."""
        lines = [
            "Label this video. Watch it, then answer with one JSON object and nothing else, with exactly these keys:"
        ]
        for field in self.fields:
            what = f" ({field.description})" if field.description else ""
            lines.append(f'- "{field.name}": {field.wants()}{what}')
        return "\n".join(lines)

    def read(self, answer: str) -> LabelReading:
        """Each label's value from an answer (a JSON object, perhaps inside tags or a code block)."""
        reading = LabelReading(values={name: "" for name in self.names})
        data = find_json_object(answer)
        if data is None:
            reading.problems.append("the answer holds no JSON object")
            return reading
        lowered = {str(key).strip().lower(): value for key, value in data.items()}
        for field in self.fields:
            if field.name.lower() not in lowered:
                reading.problems.append(f"no value for '{field.name}'")
                continue
            value, problem = _fit(field, lowered[field.name.lower()])
            if problem:
                reading.problems.append(f"{field.name}: {problem}")
            else:
                reading.values[field.name] = value
        return reading


def find_json_object(text: str) -> dict[str, Any] | None:
    """The first JSON object in `text` (reasoning tags, an <answer> wrapper and code fences allowed)."""
    cleaned = re.sub(r"<think>.*?(</think>|$)", " ", text or "", flags=re.S | re.I)
    inner = re.search(r"<answer>(.*?)(</answer>|$)", cleaned, flags=re.S | re.I)
    cleaned = inner.group(1) if inner else cleaned
    decoder = json.JSONDecoder()
    for match in re.finditer(r"\{", cleaned):
        try:
            value, _ = decoder.raw_decode(cleaned[match.start() :])
        except ValueError:
            continue
        if isinstance(value, dict):
            return value
    return None


def _field(name: object, spec: object) -> LabelField:
    if not isinstance(name, str) or not NAME.match(name):
        raise InputError(
            f"The label name {json.dumps(name)} is not usable.",
            "Use letters, digits and _ (starting with a letter, at most 40 characters).",
        )
    if not isinstance(spec, dict):
        raise InputError(f"The label '{name}' must be an object with a 'type'.")
    kind = spec.get("type", "string")
    if kind not in _WORDS:
        raise InputError(f"The label '{name}' has the type {json.dumps(kind)}; use string, boolean, integer or number.")
    enum = spec.get("enum")
    if enum is not None:
        if kind != "string" or not isinstance(enum, list) or not enum or len(enum) > 40:
            raise InputError(f"The label '{name}': 'enum' must be a list of 1 to 40 texts, on a string label.")
        enum = [str(value) for value in enum]
    description = str(spec.get("description", ""))[:300]
    return LabelField(name=name, type=kind, enum=enum, description=description)


def _fit(field: LabelField, value: Any) -> tuple[str, str | None]:
    """The cell text for `value` as `field` wants it, or a problem."""
    if value is None:
        return "", "no value"
    if field.type == "boolean":
        if isinstance(value, bool):
            return ("true" if value else "false"), None
        word = str(value).strip().lower()
        if word in ("true", "yes"):
            return "true", None
        if word in ("false", "no"):
            return "false", None
        return "", f"{json.dumps(value)} is not true or false"
    if field.type in ("integer", "number"):
        try:
            number = float(str(value).strip().replace(",", "."))
        except ValueError:
            return "", f"{json.dumps(value)} is not a number"
        if field.type == "integer":
            if number != int(number):
                return "", f"{json.dumps(value)} is not a whole number"
            return str(int(number)), None
        return f"{number:g}", None
    text = " ".join(str(value).split()) if not isinstance(value, (dict, list)) else json.dumps(value)
    if field.enum:
        match = next((option for option in field.enum if option.lower() == text.lower()), None)
        if match is None:
            return "", f"{json.dumps(text)} is not one of {', '.join(field.enum)}"
        return match, None
    return text, None
