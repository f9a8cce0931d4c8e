"""The route class of the busiest endpoints: a JSON body validated straight into its model.

FastAPI resolves an endpoint's parameters through its dependency machinery on every
request (a tenth of a login's non-hashing CPU, bench/README.md). The endpoints every login
goes through take only what this class gives them, by name: ``request``, the path
parameters (strings), and ``body``, a pydantic model read from the JSON body. Everything
else stays FastAPI's: the path and methods, the OpenAPI description, the app's middleware
and error handlers. The outcomes are FastAPI's too, for the same input: a body that is not
JSON, not an object of the model's form, or missing raises the same
``RequestValidationError`` (so web/errors.py answers alike), and one that cannot be decoded
the same 400.

Nothing else is resolved: a route of this class with a dependency of its own is refused
when the app is built, and the app's one dependency (``refuse_nul_in_address``) is called
here, first, as FastAPI would.
"""

from __future__ import annotations

import json
import typing
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from securelogin.web.limits import refuse_nul_in_address

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class JsonBodyRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        if self.dependencies:
            raise TypeError(f"{self.path}: a JsonBodyRoute resolves no dependencies")
        endpoint = self.endpoint
        model = typing.get_type_hints(endpoint).get("body")
        if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
            raise TypeError(f"{self.path}: the body must be a pydantic model")
        path_names = tuple(self.param_convertors)

        async def handler(request: Request) -> Response:
            await refuse_nul_in_address(request)
            arguments: dict[str, Any] = {name: request.path_params[name] for name in path_names}
            if model is not None:
                arguments["body"] = await _body(request, model)
            response: Response = await endpoint(request=request, **arguments)
            return response

        return handler


async def _body(request: Request, model: type[BaseModel]) -> BaseModel:
    """The body as FastAPI reads one for a model parameter: JSON when the content type is
    JSON, the bytes themselves otherwise (which no model accepts), missing when empty."""
    raw = await request.body()
    if not raw:
        raise RequestValidationError(
            [{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}]
        )
    value: Any = raw
    if _is_json(request.headers.get("content-type")):
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as error:
            raise RequestValidationError(
                [
                    {
                        "type": "json_invalid",
                        "loc": ("body", error.pos),
                        "msg": "JSON decode error",
                        "input": {},
                        "ctx": {"error": error.msg},
                    }
                ]
            ) from None
        except (ValueError, RecursionError):  # not UTF-8 (or -16, -32), or nested past
            # Python's recursion limit: FastAPI's 400 for any body it cannot parse
            raise HTTPException(400, "There was an error parsing the body") from None
    try:
        return model.model_validate(value)
    except ValidationError as error:
        errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        raise RequestValidationError(errors) from None


def _is_json(content_type: str | None) -> bool:
    """``application/json`` or ``application/…+json``, parameters aside (FastAPI's test)."""
    if not content_type:
        return False
    kind = content_type.split(";", 1)[0].strip().lower()
    maintype, _, subtype = kind.partition("/")
    return maintype == "application" and (subtype == "json" or subtype.endswith("+json"))
