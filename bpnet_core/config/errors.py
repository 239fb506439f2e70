"""Error text of the spec schemas: :func:`format_validation_error` condenses pydantic's first error into the
project's one-line message (``specs/x.yaml: model.stages must be >= 1 (got 0)``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from bpnet_core.config.fields import SpecValueError
from bpnet_core.config.keys import NotAMapping, UnknownKey, dotted, schema_lookup, split_key, unknown_key_message


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# ---------------------------------------------------------------------------------------------------- error text

_TYPE_TEXT = {
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "int_from_float": "must be an integer",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "list_type": "must be a list",
    "dict_type": "must be a mapping of keys",
    "model_type": "must be a mapping of keys",
    "model_attributes_type": "must be a mapping of keys",
    "finite_number": "must be a finite number",
}


def _error_text(err: dict) -> str:
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind == "greater_than_equal":
        text = f"must be >= {ctx['ge']}"
    elif kind == "greater_than":
        text = f"must be > {ctx['gt']}"
    elif kind == "less_than_equal":
        text = f"must be <= {ctx['le']}"
    elif kind == "less_than":
        text = f"must be < {ctx['lt']}"
    elif kind == "literal_error":
        expected = str(ctx.get("expected", ""))
        text = f"must be one of {expected}" if " or " in expected else f"must be {expected}"
    elif kind == "too_short":
        text = f"must have at least {ctx.get('min_length')} items"
    elif kind == "too_long":
        text = f"must have at most {ctx.get('max_length')} items"
    elif kind == "string_pattern_mismatch":
        text = "must be a plain file name (no folders)"
    elif kind == "string_type" and isinstance(err.get("input"), bool):
        text = "must be a string: YAML reads unquoted on/off/yes/no as true/false, so quote the word"
    elif kind in _TYPE_TEXT:
        text = _TYPE_TEXT[kind]
    else:
        text = str(err.get("msg", kind))
        text = text[:1].lower() + text[1:]
    if "input" in err:
        text += f" (got {_short(err['input'])})"
    return text


def _blamed(full: tuple, related: list[tuple], override_keys: tuple) -> bool:
    for key in [full, *related]:
        for o in override_keys:
            n = min(len(o), len(key))
            if n and tuple(o[:n]) == tuple(key[:n]):
                return True
    return False


def format_validation_error(
    exc: ValidationError, model: type[BaseModel], source: str, override_keys: tuple = ()
) -> str:
    """Condense pydantic's first error into one line: ``<source>: <dotted.key> <what was expected> (got <value>)``.

    ``source`` becomes ``--set`` when the key (or a key the check relates to) was set by an override."""
    err = exc.errors(include_url=False)[0]
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "[key]"))))
    kind = err["type"]
    related: list[tuple] = []
    if kind == "value_error" and isinstance((err.get("ctx") or {}).get("error"), SpecValueError):
        spec_err: SpecValueError = err["ctx"]["error"]
        full = loc + (split_key(spec_err.key) if spec_err.key else ())
        related = [loc + split_key(r) for r in spec_err.related]
        text = spec_err.message
    elif kind == "value_error":
        full = loc
        text = str((err.get("ctx") or {}).get("error", err.get("msg")))
    else:
        full = loc
        text = ""
    where = "--set" if _blamed(full, related, override_keys) else source
    if kind == "extra_forbidden":
        try:
            schema_lookup(model, full)
            candidates: list[str] = []
        except UnknownKey as e:
            candidates = e.candidates
        except NotAMapping:
            candidates = []
        return unknown_key_message(where, full, candidates)
    if kind == "missing":
        return f"{where}: missing required key {dotted(full)!r}"
    if not text:
        text = _error_text(err)
    if not full:
        return " ".join(f"{where}: {text}".split())
    return " ".join(f"{where}: {dotted(full)} {text}".split())
