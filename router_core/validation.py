"""The shape of a `/v1/chat/completions` body, checked before any backend is chosen.

A body the OpenAI API would refuse (`tools: [1, 2]`, a message without a role, `stream: "yes"`)
must be refused here with a 400: relayed as-is, some upstreams answer it with a 5xx, which
counts against their health and opens their breakers for every other client. The checks are
plain type tests over the parsed JSON (a few microseconds for a usual body), not a pydantic
model: this is the hot path, and a pass-through relay never needs the request as objects.

What is checked is what the OpenAI API documents; anything it does not (extra top-level keys,
vendor content-part types such as vLLM's `video_url`) passes through for the upstream to judge.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["Invalid", "check_chat_body"]


class Invalid(NamedTuple):
    """Why a body is refused: OpenAI's `message`, `param` (a path such as `messages[0].role`)
    and `code` (`missing_required_parameter`, `invalid_type`, `invalid_value`, `empty_array`)."""

    message: str
    param: str | None
    code: str


_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})
_TOOL_CHOICE_WORDS = frozenset({"none", "auto", "required"})
_MISSING: Any = object()


def _missing(param: str) -> Invalid:
    return Invalid(f"'{param}' is missing", param, "missing_required_parameter")


def _wrong_type(param: str, expected: str, value: Any) -> Invalid:
    got = "null" if value is None else type(value).__name__
    return Invalid(f"'{param}' must be {expected}, not {got}", param, "invalid_type")


def _wrong_value(param: str, message: str) -> Invalid:
    return Invalid(f"'{param}' {message}", param, "invalid_value")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


# --------------------------------------------------------------------------- options


def _bool(param: str, value: Any) -> Invalid | None:
    return None if isinstance(value, bool) else _wrong_type(param, "a boolean", value)


def _str(param: str, value: Any) -> Invalid | None:
    return None if isinstance(value, str) else _wrong_type(param, "a string", value)


def _object(param: str, value: Any) -> Invalid | None:
    return None if isinstance(value, dict) else _wrong_type(param, "an object", value)


def _int_at_least(low: int) -> Callable[[str, Any], Invalid | None]:
    def check(param: str, value: Any) -> Invalid | None:
        if not _is_int(value):
            return _wrong_type(param, "an integer", value)
        return None if value >= low else _wrong_value(param, f"must be at least {low}")

    return check


def _int_between(low: int, high: int) -> Callable[[str, Any], Invalid | None]:
    def check(param: str, value: Any) -> Invalid | None:
        if not _is_int(value):
            return _wrong_type(param, "an integer", value)
        return None if low <= value <= high else _wrong_value(param, f"must be {low} to {high}")

    return check


def _number_between(low: float, high: float) -> Callable[[str, Any], Invalid | None]:
    def check(param: str, value: Any) -> Invalid | None:
        if not _is_number(value):
            return _wrong_type(param, "a number", value)
        return None if low <= value <= high else _wrong_value(param, f"must be {low:g} to {high:g}")

    return check


def _int(param: str, value: Any) -> Invalid | None:
    return None if _is_int(value) else _wrong_type(param, "an integer", value)


def _stop(param: str, value: Any) -> Invalid | None:
    if isinstance(value, str):
        return None
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return None
    return _wrong_type(param, "a string or a list of strings", value)


def _stream_options(param: str, value: Any) -> Invalid | None:
    if not isinstance(value, dict):
        return _wrong_type(param, "an object", value)
    include = value.get("include_usage")
    if include is not None and not isinstance(include, bool):
        return _wrong_type(f"{param}.include_usage", "a boolean", include)
    return None


def _response_format(param: str, value: Any) -> Invalid | None:
    if not isinstance(value, dict):
        return _wrong_type(param, "an object", value)
    kind = value.get("type")
    return None if isinstance(kind, str) else _wrong_type(f"{param}.type", "a string", kind)


def _named(param: str, value: Any, what: str) -> Invalid | None:
    """`value` is an object whose `name` is a non-empty string."""
    if not isinstance(value, dict):
        return _wrong_type(param, f"an object (the {what})", value)
    name = value.get("name", _MISSING)
    if name is _MISSING:
        return _missing(f"{param}.name")
    if not isinstance(name, str):
        return _wrong_type(f"{param}.name", "a string", name)
    if not name:
        return _wrong_value(f"{param}.name", "must not be empty")
    return None


def _function(param: str, value: Any) -> Invalid | None:
    problem = _named(param, value, "function")
    if problem is not None:
        return problem
    for key, check in (("description", _str), ("parameters", _object), ("strict", _bool)):
        field = value.get(key)
        if field is not None:
            problem = check(f"{param}.{key}", field)
            if problem is not None:
                return problem
    return None


def _plain_function(tool: Any) -> bool:
    """The usual tool, accepted without building a single error path (the slow check below
    would accept it too)."""
    if type(tool) is not dict or tool.get("type") != "function":
        return False
    function = tool.get("function")
    if type(function) is not dict:
        return False
    name = function.get("name")
    parameters = function.get("parameters")
    description = function.get("description")
    return (
        type(name) is str
        and name != ""
        and (parameters is None or type(parameters) is dict)
        and (description is None or type(description) is str)
        and "strict" not in function
    )


def _tools(param: str, value: Any) -> Invalid | None:
    if not isinstance(value, list):
        return _wrong_type(param, "a list of tools", value)
    for i, tool in enumerate(value):
        if _plain_function(tool):
            continue
        where = f"{param}[{i}]"
        if not isinstance(tool, dict):
            return _wrong_type(where, 'an object ({"type": "function", "function": {...}})', tool)
        kind = tool.get("type", _MISSING)
        if kind is _MISSING:
            return _missing(f"{where}.type")
        if kind == "function":
            if "function" not in tool:
                return _missing(f"{where}.function")
            problem = _function(f"{where}.function", tool["function"])
        elif kind == "custom":
            problem = _named(f"{where}.custom", tool.get("custom"), "custom tool")
        else:
            problem = _wrong_value(f"{where}.type", f"must be 'function' or 'custom', not {kind!r}")
        if problem is not None:
            return problem
    return None


def _tool_choice(param: str, value: Any) -> Invalid | None:
    if isinstance(value, str):
        if value in _TOOL_CHOICE_WORDS:
            return None
        return _wrong_value(
            param, f"must be 'none', 'auto', 'required' or an object, not {value!r}"
        )
    if not isinstance(value, dict):
        return _wrong_type(param, "a string or an object", value)
    kind = value.get("type")
    if kind == "function":
        return _named(f"{param}.function", value.get("function"), "function to call")
    if kind == "custom":
        return _named(f"{param}.custom", value.get("custom"), "custom tool to call")
    if kind == "allowed_tools":
        return _object(f"{param}.allowed_tools", value.get("allowed_tools"))
    return _wrong_value(
        f"{param}.type", f"must be 'function', 'custom' or 'allowed_tools', not {kind!r}"
    )


def _functions(param: str, value: Any) -> Invalid | None:
    if not isinstance(value, list):
        return _wrong_type(param, "a list of functions", value)
    for i, function in enumerate(value):
        problem = _function(f"{param}[{i}]", function)
        if problem is not None:
            return problem
    return None


def _function_call(param: str, value: Any) -> Invalid | None:
    if isinstance(value, str):
        return None
    return _named(param, value, "function to call")


_OPTIONS: dict[str, Callable[[str, Any], Invalid | None]] = {
    "stream": _bool,
    "stream_options": _stream_options,
    "n": _int_at_least(1),
    "temperature": _number_between(0.0, 2.0),
    "top_p": _number_between(0.0, 1.0),
    "max_tokens": _int_at_least(1),
    "max_completion_tokens": _int_at_least(1),
    "presence_penalty": _number_between(-2.0, 2.0),
    "frequency_penalty": _number_between(-2.0, 2.0),
    "seed": _int,
    "logprobs": _bool,
    "top_logprobs": _int_between(0, 20),
    "logit_bias": _object,
    "stop": _stop,
    "user": _str,
    "parallel_tool_calls": _bool,
    "response_format": _response_format,
    "tools": _tools,
    "tool_choice": _tool_choice,
    "functions": _functions,
    "function_call": _function_call,
    "metadata": _object,
    "store": _bool,
    "reasoning_effort": _str,
    "service_tier": _str,
}
"""Top-level keys the OpenAI API defines, and their check (null is accepted for every one)."""


# --------------------------------------------------------------------------- messages


def _parts(where: str, content: list[Any], allowed: frozenset[str] | None) -> Invalid | None:
    """A list of content parts: objects with a string `type`; the types OpenAI defines are
    checked (`text` needs a string `text`, `image_url` a URL), others are left to the upstream
    unless the role takes only the `allowed` ones (None: any)."""
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            return _wrong_type(at, "an object (a content part)", part)
        kind = part.get("type")
        if not isinstance(kind, str):
            return (
                _missing(f"{at}.type")
                if kind is None
                else _wrong_type(f"{at}.type", "a string", kind)
            )
        if kind == "text":
            text = part.get("text")
            if not isinstance(text, str):
                return _wrong_type(f"{at}.text", "a string", text)
        elif allowed is not None and kind not in allowed:
            return _wrong_value(f"{at}.type", f"cannot be {kind!r} in this message")
        elif kind == "image_url":
            image = part.get("image_url")
            url = image.get("url") if isinstance(image, dict) else image
            if not isinstance(url, str):
                return _wrong_type(f"{at}.image_url.url", "a string", url)
        elif kind == "refusal":
            refusal = part.get("refusal")
            if not isinstance(refusal, str):
                return _wrong_type(f"{at}.refusal", "a string", refusal)
    return None


_TEXT_PARTS = frozenset({"text"})
_ASSISTANT_PARTS = frozenset({"text", "refusal"})


def _content(
    where: str, content: Any, allowed: frozenset[str] | None, *, required: bool
) -> Invalid | None:
    if isinstance(content, str):
        return None
    if isinstance(content, list):
        return _parts(where, content, allowed)
    if content is None or content is _MISSING:
        return _missing(where) if required else None
    return _wrong_type(where, "a string or a list of content parts", content)


def _tool_calls(where: str, calls: Any) -> Invalid | None:
    if not isinstance(calls, list):
        return _wrong_type(where, "a list of tool calls", calls)
    for k, call in enumerate(calls):
        at = f"{where}[{k}]"
        if not isinstance(call, dict):
            return _wrong_type(at, "an object (a tool call)", call)
        call_id = call.get("id")
        if call_id is not None and not isinstance(call_id, str):
            return _wrong_type(f"{at}.id", "a string", call_id)
        function = call.get("function")
        problem = _named(f"{at}.function", function, "function called")
        if problem is not None:
            return problem
        assert isinstance(function, dict)
        arguments = function.get("arguments")
        if arguments is not None and not isinstance(arguments, str | dict):
            return _wrong_type(f"{at}.function.arguments", "a string (JSON text)", arguments)
    return None


_PLAIN_ROLES = frozenset({"system", "developer", "user", "assistant"})


def _message(i: int, message: Any) -> Invalid | None:
    if type(message) is dict and len(message) == 2 and type(message.get("content")) is str:
        role = message.get("role")
        if type(role) is str and role in _PLAIN_ROLES:
            return None  # the usual message, accepted without building an error path
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        return _wrong_type(where, "an object (a message)", message)
    role = message.get("role", _MISSING)
    if role is _MISSING:
        return _missing(f"{where}.role")
    if not isinstance(role, str) or role not in _ROLES:
        return _wrong_value(
            f"{where}.role",
            "must be one of 'system', 'developer', 'user', 'assistant', 'tool', 'function', "
            f"not {role!r}",
        )
    content = message.get("content", _MISSING)
    at = f"{where}.content"
    if role == "user":
        # any part type: vendors add their own (vLLM's `video_url`, ...)
        problem = _content(at, content, None, required=True)
    elif role == "assistant":
        problem = _content(at, content, _ASSISTANT_PARTS, required=False)
        calls = message.get("tool_calls")
        if problem is None and calls is not None:
            problem = _tool_calls(f"{where}.tool_calls", calls)
    elif role == "tool":
        problem = _content(at, content, _TEXT_PARTS, required=True)
        call_id = message.get("tool_call_id", _MISSING)
        if problem is None and not isinstance(call_id, str):
            problem = (
                _missing(f"{where}.tool_call_id")
                if call_id is _MISSING or call_id is None
                else _wrong_type(f"{where}.tool_call_id", "a string", call_id)
            )
    elif role == "function":
        problem = _content(at, content, _TEXT_PARTS, required=False)
        if problem is None:
            problem = _named(where, message, "message")
    else:  # system, developer
        problem = _content(at, content, _TEXT_PARTS, required=True)
    if problem is None:
        name = message.get("name")
        if name is not None and not isinstance(name, str):
            problem = _wrong_type(f"{where}.name", "a string", name)
    return problem


# --------------------------------------------------------------------------- the body


def check_chat_body(doc: dict[str, Any]) -> Invalid | None:
    """Why this parsed body is not a chat-completions request OpenAI would accept (None: it is)."""
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        if messages is None:
            return _missing("messages")
        if isinstance(messages, list):
            return Invalid("'messages' must be a non-empty list", "messages", "empty_array")
        return _wrong_type("messages", "a non-empty list", messages)
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        return Invalid(
            "'model' is missing or not a string",
            "model",
            "missing_required_parameter" if model is None else "invalid_type",
        )
    for i, message in enumerate(messages):
        problem = _message(i, message)
        if problem is not None:
            return problem
    options = _OPTIONS
    for key, value in doc.items():
        check = options.get(key)
        if check is not None and value is not None:
            problem = check(key, value)
            if problem is not None:
                return problem
    return None
