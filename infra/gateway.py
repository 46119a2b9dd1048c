"""The local front door: what API Gateway, S3's POST endpoint and CloudFront do in AWS.

- ``/api/...``: the HTTP API. Routes come from the template's ``ApiFunction`` events; the
  bearer JWT is verified like the HTTP API JWT authorizer (signature against the user pool's
  JWKS, issuer, audience/client_id, expiry); the request becomes an HTTP API v2 event for the
  real handler.
- ``POST /s3/<bucket>``: browser uploads with a presigned POST. moto does not enforce POST
  policies, so this checks them as S3 does (the policy's SigV4 signature by a known access key,
  expiry, exact key, content type, size range, no unlisted fields) and only then writes the
  object, which makes moto send the S3 -> SQS notification.
- ``GET /s3/<bucket>/<key>``: the presigned preview links, answered only for a valid, unexpired
  SigV4 query signature (:mod:`infra.s3_auth`).
- ``POST /local/login``: stand-in for Cognito's hosted sign-in; returns the user pool's real
  tokens for one of the local clinicians (127.0.0.1 only).
- everything else: the static site in ``web/``, plus a generated ``config.json``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable
from xml.sax.saxutils import escape

import boto3
import jwt
from werkzeug.exceptions import HTTPException, NotFound
from werkzeug.utils import safe_join
from werkzeug.wrappers import Request, Response

from infra.lambda_context import FakeContext
from infra.local_stack import LOCAL_PASSWORD, LocalResources
from infra.s3_auth import S3Signatures
from infra.template import ACCOUNT_ID, REGION

LOG = logging.getLogger(__name__)
MAX_FORM_OVERHEAD = 64 * 1024
MAX_LOGIN_BODY = 4 * 1024
# Form fields S3 does not require the policy to list.
_UNLISTED_FIELDS = {"x-amz-signature", "file", "policy"}
# Virtual-hosted (https://bucket.s3.amazonaws.com/) or path-style (https://s3.amazonaws.com/bucket/) URLs.
_S3_URL = re.compile(rb"https://(?:([a-z0-9.-]+)\.s3\.amazonaws\.com|s3\.amazonaws\.com/([a-z0-9.-]+))/")


def _route_regex(path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(path)) + "$")


class JwtVerifier:
    """What the HTTP API JWT authorizer checks, against moto's user pool signing key."""

    def __init__(self, user_pool_id: str, audiences: list[str]) -> None:
        from moto.utilities.utils import load_resource

        self.issuer = f"https://cognito-idp.{REGION}.amazonaws.com/{user_pool_id}"
        self.audiences = audiences
        keys = load_resource("cognitoidp/resources/jwks-public.json")["keys"]
        self.keys = {k["kid"]: jwt.PyJWK(k).key for k in keys}

    def claims(self, authorization: str | None) -> dict | None:
        if not authorization or not authorization.lower().startswith("bearer "):
            return None
        token = authorization.split(" ", 1)[1].strip()
        try:
            kid = jwt.get_unverified_header(token).get("kid")
            claims = jwt.decode(token, self.keys[kid], algorithms=["RS256"], issuer=self.issuer,
                                options={"verify_aud": False, "require": ["exp", "iss", "sub"]})
        except (jwt.PyJWTError, KeyError):
            return None
        audience = claims.get("aud") or claims.get("client_id")
        return claims if audience in self.audiences else None


class Gateway:
    def __init__(self, resources: LocalResources, api_handler: Callable[[dict, Any], dict],
                 web_dir: Path, base_url: str = "", signatures: S3Signatures | None = None) -> None:
        self.resources = resources
        self.api_handler = api_handler
        self.web_dir = web_dir
        self.base_url = base_url  # set once the server knows its port
        self.routes = [(e["Method"].upper(), e["Path"], _route_regex(e["Path"]))
                       for e in resources.stack.function_events("ApiFunction", "HttpApi")]
        self.verifier = JwtVerifier(resources.user_pool_id, [resources.client_id])
        self.s3 = boto3.client("s3", region_name=REGION)
        self.cognito = boto3.client("cognito-idp", region_name=REGION)
        # The keys the handlers presign with (moto's, locally): S3 checks signatures against them.
        self.signatures = signatures or S3Signatures.from_environment(REGION)
        # Called with (key, body) for each upload S3 accepts, before it is stored: a test seam to see
        # the exact bytes a browser sent (the inference function deletes the object once read).
        self.upload_observers: list[Callable[[str, bytes], None]] = []
        # One API "container": Lambda runs one request at a time per container, and the handler's
        # resolver keeps the current event in module state, so concurrent requests take turns.
        self._api_lock = threading.Lock()

    # -- WSGI -----------------------------------------------------------------------------
    def __call__(self, environ: dict, start_response: Callable) -> Any:
        request = Request(environ)
        try:
            response = self.dispatch(request)
        except HTTPException as exc:
            response = exc.get_response()
        return response(environ, start_response)

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if path.startswith("/api/"):
            return self.api(request, path[len("/api"):])
        if path.startswith("/s3/"):
            bucket, _, key = path[len("/s3/"):].partition("/")
            if request.method == "GET" and key:
                return self.s3_get(request, bucket, key)
            return self.s3_post(request, bucket.strip("/"))
        if path == "/local/login" and request.method == "POST":
            return self.login(request)
        if path == "/config.json":
            return self._json(200, self.site_config())
        return self.static(path)

    # -- site -----------------------------------------------------------------------------
    def site_config(self) -> dict:
        return {"apiUrl": f"{self.base_url}/api",
                "auth": {"mode": "local", "loginUrl": f"{self.base_url}/local/login",
                         "users": self.resources.clinicians}}

    def static(self, path: str) -> Response:
        target = safe_join(str(self.web_dir), path.lstrip("/") or "index.html")
        if target is None:
            raise NotFound()
        file = Path(target)
        if file.is_dir():
            file = file / "index.html"
        if not file.is_file():
            raise NotFound()
        mimetype = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".json": "application/json",
                    ".png": "image/png", ".svg": "image/svg+xml"}.get(file.suffix, "application/octet-stream")
        return Response(file.read_bytes(), mimetype=mimetype, headers={"Cache-Control": "no-cache"})

    def login(self, request: Request) -> Response:
        raw = request.stream.read(MAX_LOGIN_BODY + 1)
        if len(raw) > MAX_LOGIN_BODY:
            return self._json(400, {"error": {"code": "INVALID_JSON", "message": "The sign-in request is too large."}})
        try:
            body = json.loads(raw or b"{}")
        except (ValueError, RecursionError):  # RecursionError: a deeply nested body
            body = None
        if not isinstance(body, dict):
            return self._json(400, {"error": {"code": "INVALID_JSON", "message": "Send a JSON object: {\"username\": ...}."}})
        username = body.get("username")
        if not isinstance(username, str) or username not in {c["username"] for c in self.resources.clinicians}:
            return self._json(400, {"error": {"code": "UNKNOWN_USER", "message": "Choose one of the local clinicians."}})
        auth = self.cognito.initiate_auth(ClientId=self.resources.client_id, AuthFlow="USER_PASSWORD_AUTH",
                                          AuthParameters={"USERNAME": username, "PASSWORD": LOCAL_PASSWORD})
        result = auth["AuthenticationResult"]
        return self._json(200, {"id_token": result["IdToken"], "access_token": result["AccessToken"],
                                "expires_in": result["ExpiresIn"]})

    # -- HTTP API -------------------------------------------------------------------------
    def api(self, request: Request, path: str) -> Response:
        for method, template_path, regex in self.routes:  # noqa: B007 (used after the loop)
            match = regex.match(path)
            if match and method == request.method:
                break
        else:
            return self._json(404, {"message": "Not Found"})
        claims = self.verifier.claims(request.headers.get("Authorization"))
        if claims is None:
            return self._json(401, {"message": "Unauthorized"})
        event = self.http_api_event(request, path, f"{method} {template_path}", match.groupdict(), claims)
        with self._api_lock:
            try:
                result = self.api_handler(event, FakeContext.for_function(self.resources.stack, "ApiFunction"))
            except Exception:  # the function errored: HTTP API answers its own 500, not the traceback
                LOG.exception("ApiFunction raised on %s", event["routeKey"])
                return self._json(500, {"message": "Internal Server Error"})
        body = result.get("body") or ""
        raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
        raw = self._local_s3_urls(raw)
        return Response(raw, status=result.get("statusCode", 200), headers=result.get("headers") or {})

    def http_api_event(self, request: Request, path: str, route_key: str, path_params: dict, claims: dict) -> dict:
        body = request.get_data()
        try:
            text, is_b64 = body.decode("utf-8"), False
        except UnicodeDecodeError:
            text, is_b64 = base64.b64encode(body).decode(), True
        now = time.time()
        event: dict[str, Any] = {
            "version": "2.0",
            "routeKey": route_key,
            "rawPath": path,
            "rawQueryString": request.query_string.decode(),
            "headers": {k.lower(): v for k, v in request.headers.items()},
            "requestContext": {
                "accountId": ACCOUNT_ID, "apiId": "local", "domainName": request.host,
                "domainPrefix": "local", "requestId": str(uuid.uuid4()), "routeKey": route_key,
                "stage": "$default", "time": dt.datetime.fromtimestamp(now, dt.UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
                "timeEpoch": int(now * 1000),
                "http": {"method": request.method, "path": path, "protocol": "HTTP/1.1",
                         "sourceIp": request.remote_addr or "127.0.0.1", "userAgent": request.user_agent.string},
                "authorizer": {"jwt": {"claims": {k: str(v) for k, v in claims.items()}, "scopes": None}},
            },
            "isBase64Encoded": is_b64,
        }
        if request.args:
            event["queryStringParameters"] = {k: ",".join(request.args.getlist(k)) for k in request.args}
        if path_params:
            event["pathParameters"] = path_params
        if body:
            event["body"] = text
        return event

    def _local_s3_urls(self, raw: bytes) -> bytes:
        """Point presigned S3 URLs (upload POSTs, preview GETs) at this gateway, the local S3 endpoint."""
        def local(match: re.Match) -> bytes:
            bucket = match.group(1) or match.group(2)
            return f"{self.base_url}/s3/{bucket.decode()}/".encode()

        return _S3_URL.sub(local, raw)

    # -- S3 browser POST upload -----------------------------------------------------------
    def s3_post(self, request: Request, bucket: str) -> Response:
        cors = {"Access-Control-Allow-Origin": request.headers.get("Origin", "*"),
                "Access-Control-Allow-Methods": "POST", "Access-Control-Allow-Headers": "*"}
        if request.method == "OPTIONS":
            return Response(status=200, headers=cors)
        if request.method != "POST" or bucket != self.resources.uploads_bucket:
            return self._s3_error(405 if request.method != "POST" else 404, "MethodNotAllowed", "Not supported", cors)
        max_bytes = int(self.resources.stack.parameters["UploadMaxBytes"])
        if (request.content_length or 0) > max_bytes + MAX_FORM_OVERHEAD:
            # S3 refuses before storing anything; so do we, without reading the body.
            return self._s3_error(400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size", cors)
        request.max_content_length = max_bytes + MAX_FORM_OVERHEAD
        form, files = request.form, request.files
        if "file" not in files or "policy" not in form or "key" not in form:
            return self._s3_error(400, "InvalidArgument", "POST requires key, policy and file fields", cors)
        data = files["file"].read()
        # S3's order: who signed the policy, then what the policy allows. Nothing is stored on a refusal.
        problem = (self.signatures.post_problem(form)
                   or check_post_policy(form["policy"], bucket, dict(form), len(data)))
        if problem:
            return self._s3_error(*problem, cors)
        for observe in self.upload_observers:
            observe(form["key"], data)
        self.s3.put_object(Bucket=bucket, Key=form["key"], Body=data,
                           ContentType=form.get("Content-Type", "application/octet-stream"))
        return Response(status=204, headers=cors)

    def s3_get(self, request: Request, bucket: str, key: str) -> Response:
        """A presigned GET: only artifacts (previews), only with a valid, unexpired SigV4 signature."""
        if bucket != self.resources.artifacts_bucket or not key.startswith("previews/"):
            return self._s3_error(403, "AccessDenied", "Access Denied", {})
        if not request.args:  # anonymous: the bucket blocks public access
            return self._s3_error(403, "AccessDenied", "Access Denied", {})
        problem = self.signatures.get_problem(bucket, key, request.args.items(multi=True), request.headers)
        if problem:
            return self._s3_error(*problem, {})
        try:
            obj = self.s3.get_object(Bucket=bucket, Key=key)
        except self.s3.exceptions.NoSuchKey:
            return self._s3_error(404, "NoSuchKey", "The specified key does not exist.", {})
        return Response(obj["Body"].read(), mimetype=obj.get("ContentType", "application/octet-stream"),
                        headers={"Cache-Control": "private, max-age=300"})

    @staticmethod
    def _s3_error(status: int, code: str, message: str, headers: dict) -> Response:
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n'
               f'<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message></Error>')
        return Response(xml, status=status, mimetype="application/xml", headers=headers)

    @staticmethod
    def _json(status: int, payload: dict) -> Response:
        return Response(json.dumps(payload), status=status, mimetype="application/json")


def check_post_policy(policy_b64: str, bucket: str, form: dict[str, str], size: int) -> tuple[int, str, str] | None:
    """S3's presigned-POST policy rules; (status, code, message) of the first broken one, else None.

    The policy's signature is checked before this (:meth:`infra.s3_auth.S3Signatures.post_problem`).
    """
    try:
        policy = json.loads(base64.b64decode(policy_b64))
        expires = dt.datetime.fromisoformat(policy["expiration"].replace("Z", "+00:00"))
        conditions = policy.get("conditions", [])
        if not isinstance(conditions, list) or not all(
                (isinstance(c, dict) and len(c) == 1) or (isinstance(c, list) and len(c) == 3) for c in conditions):
            raise ValueError("conditions")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        return 400, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."
    if expires.tzinfo is None or expires < dt.datetime.now(dt.UTC):
        return 403, "AccessDenied", "Invalid according to Policy: Policy expired."
    fields = {k.lower(): v for k, v in form.items()} | {"bucket": bucket}
    listed = set()
    for condition in conditions:
        if isinstance(condition, dict):
            (name, expected), = condition.items()
            listed.add(name.lower().lstrip("$"))
            if fields.get(name.lower()) != expected:
                return (403, "AccessDenied",
                        f"Invalid according to Policy: Policy Condition failed: [\"eq\", \"${name}\", \"{expected}\"]")
        elif condition[0] == "content-length-range":
            try:
                low, high = int(condition[1]), int(condition[2])
            except (ValueError, TypeError):
                return 400, "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range."
            if size > high:
                return 400, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size"
            if size < low:
                return 400, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size"
        elif condition[0] in ("eq", "starts-with") and isinstance(condition[1], str) and isinstance(condition[2], str):
            name, expected = condition[1].lstrip("$").lower(), condition[2]
            listed.add(name)
            actual = fields.get(name, "")
            ok = actual == expected if condition[0] == "eq" else actual.startswith(expected)
            if not ok:
                return 403, "AccessDenied", f"Invalid according to Policy: Policy Condition failed: {json.dumps(condition)}"
        else:
            return 400, "InvalidPolicyDocument", f"Invalid Policy: Invalid Condition: {json.dumps(condition)}"
    # Every field sent must be allowed by a condition, except the signature, the file, the policy, x-ignore-*.
    extra = sorted(name for name in fields if name not in listed and name not in _UNLISTED_FIELDS
                   and not name.startswith("x-ignore-") and name != "bucket")
    if extra:
        return 403, "AccessDenied", f"Invalid according to Policy: Extra input fields: {', '.join(extra)}"
    return None
