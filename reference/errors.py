"""JSON error bodies for both reference services: a string `error` always, never a traceback."""

import logging

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

log = logging.getLogger("sessionlab.errors")


def error_response(status: int, error: str, detail: object = None) -> JSONResponse:
    body: dict[str, object] = {"error": error}
    body["detail"] = error if detail is None else detail
    return JSONResponse(status_code=status, content=body)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail))


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    # `input` may echo a huge body back; the location and message are what a caller needs.
    detail = [
        {key: value for key, value in item.items() if key in ("loc", "msg", "type")}
        for item in exc.errors()
    ]
    return error_response(422, "invalid request", jsonable_encoder(detail))


async def client_gone(request: Request, _exc: Exception) -> JSONResponse:
    # The client closed its connection before its request body arrived: its choice, not a fault
    # here. The answer goes nowhere; the server drops what is sent on a closed connection.
    log.info(
        "client went away before its request was read: %s %s", request.method, request.url.path
    )
    return error_response(400, "client went away")


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(500, "internal error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, _unexpected)
