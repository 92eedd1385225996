"""Every failure leaves the endpoint as ``{"error": {"code", "message", "request_id"}}``.

Codes are stable strings that clients branch on; messages are for people. Unexpected exceptions
are logged with their traceback under the request id and answered with a generic message.
"""
from __future__ import annotations

import json
import logging
import uuid
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("vipwatch.serve")

HTTP_CODES = {401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "method_not_allowed",
              413: "payload_too_large", 415: "unsupported_media_type"}


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def error_body(code: str, message: str, request_id: Optional[str] = None) -> dict:
    return {"error": {"code": code, "message": message, "request_id": request_id}}


def error_bytes(code: str, message: str) -> bytes:
    """For the raw ASGI guard, which answers before FastAPI sees the request."""
    return json.dumps(error_body(code, message)).encode()


def decode_error(message: str) -> ApiError:
    """The decoder reports why an input is unreadable as text on the row (the crawl writes it to
    Parquet); its fixed prefixes tell which client error it is."""
    if message.startswith("image too large"):
        return ApiError(400, "image_too_many_pixels", message)
    if message.startswith("file too large"):
        return ApiError(413, "payload_too_large", message)
    if message.startswith("video too"):
        # "video too large" / "video too many frames" / "video too long"
        return ApiError(413, message.split(":")[0].replace(" ", "_"), message)
    if message.startswith("empty file"):
        return ApiError(400, "empty_image", message)
    return ApiError(400, "undecodable_image", message)


def request_id(request: Request) -> str:
    if not hasattr(request.state, "request_id"):
        request.state.request_id = uuid.uuid4().hex
    return request.state.request_id


def install_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message, request_id(request)), status_code=exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, f"http_{exc.status_code}")
        return JSONResponse(error_body(code, str(exc.detail), request_id(request)), status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Location and reason only: echoing the input back could reflect a whole upload.
        problems = "; ".join(f"{'.'.join(map(str, e.get('loc', ())))}: {e.get('msg')}" for e in exc.errors())
        return JSONResponse(error_body("invalid_request", problems or "invalid request", request_id(request)),
                            status_code=422)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        rid = request_id(request)
        log.error("request %s failed", rid, exc_info=exc)
        return JSONResponse(error_body("internal_error", f"internal error (request id {rid}); see server logs", rid),
                            status_code=500)
