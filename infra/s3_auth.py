"""S3's signature checks for the two kinds of presigned request the browser sends the local gateway.

moto does not check presigned-POST policies, and the gateway, not moto, answers the browser's
preview GETs; so this is where "only a holder of the secret key could have made this request"
is enforced locally, as S3 enforces it:

- presigned POST (SigV4 POST policy): ``x-amz-signature`` must be the hex HMAC-SHA256 of the
  base64 ``policy`` field exactly as sent, under the signing key derived from the secret of the
  access key named in ``x-amz-credential`` (date/region/s3/aws4_request);
- presigned GET (SigV4 query auth): ``X-Amz-Signature`` must sign the canonical request
  (method, URI-encoded path, every other query parameter, the signed headers, UNSIGNED-PAYLOAD),
  and the link must not have expired.

The expected signatures are computed by botocore's own signers (the code that made the links)
over the values received, and compared in constant time. SigV2 is refused, as it is for every
bucket created since June 2020. Errors are (status, S3 error code, S3's message).
"""

from __future__ import annotations

import datetime as dt
import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import quote

from botocore.auth import S3SigV4PostAuth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, ReadOnlyCredentials

ALGORITHM = "AWS4-HMAC-SHA256"
SIGV4_TIMESTAMP = "%Y%m%dT%H%M%SZ"
MAX_QUERY_EXPIRES = 7 * 24 * 3600  # S3's limit on X-Amz-Expires

SIGNATURE_MISMATCH = (403, "SignatureDoesNotMatch", "The request signature we calculated does not match the "
                                                    "signature you provided. Check your key and signing method.")
UNKNOWN_ACCESS_KEY = (403, "InvalidAccessKeyId", "The AWS Access Key Id you provided does not exist in our records.")
BAD_TOKEN = (403, "InvalidToken", "The provided token is malformed or otherwise invalid.")
SIGV2_REFUSED = (400, "InvalidRequest", "The authorization mechanism you have provided is not supported. "
                                        "Please use AWS4-HMAC-SHA256.")
QUERY_PARAMS_MISSING = (400, "AuthorizationQueryParametersError",
                        "Query-string authentication version 4 requires the X-Amz-Algorithm, X-Amz-Credential, "
                        "X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and X-Amz-Expires parameters.")
EXPIRED = (403, "AccessDenied", "Request has expired")

Problem = tuple[int, str, str]


class S3Signatures:
    """Verifies SigV4 presigned POSTs and GETs against the access keys the local stack signs with."""

    def __init__(self, credentials: Iterable[ReadOnlyCredentials], region: str) -> None:
        self.keys = {c.access_key: c for c in credentials}
        self.region = region

    @classmethod
    def from_environment(cls, region: str) -> "S3Signatures":
        """The credentials boto3 resolves in this process: those the handlers' S3 clients presign with.

        Locally that is moto's: ``mock_aws`` sets AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY for as long
        as it runs, and the local stack's AWS_SESSION_TOKEN (if any) comes along.
        """
        import boto3

        credentials = boto3.Session().get_credentials()
        return cls([credentials.get_frozen_credentials()] if credentials else [], region)

    # -- shared ----------------------------------------------------------------------------
    def _credentials(self, credential: str, amz_date: str, *, query: bool) -> tuple[ReadOnlyCredentials | None, Problem | None]:
        """The signing credentials named by ``<key>/<yyyymmdd>/<region>/s3/aws4_request``, or the problem."""
        code = "AuthorizationQueryParametersError" if query else "InvalidArgument"
        parts = credential.split("/")
        if len(parts) != 5:
            return None, (400, code, "Error parsing the X-Amz-Credential parameter; the Credential is mal-formed; "
                                     "expecting \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".")
        access_key, date, region, service, terminator = parts
        try:
            dt.datetime.strptime(amz_date, SIGV4_TIMESTAMP)
        except ValueError:
            return None, (400, code, "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
        if date != amz_date[:8]:
            return None, (400, code, f"Invalid credential date \"{date}\". This date is not the same as "
                                     f"X-Amz-Date: \"{amz_date[:8]}\".")
        if region != self.region:
            return None, (400, code, f"Error parsing the X-Amz-Credential parameter; the region '{region}' is wrong; "
                                     f"expecting '{self.region}'")
        if service != "s3" or terminator != "aws4_request":
            return None, (400, code, f"Error parsing the X-Amz-Credential parameter; incorrect service \"{service}\" "
                                     f"or terminal \"{terminator}\".")
        known = self.keys.get(access_key)
        if known is None:
            return None, UNKNOWN_ACCESS_KEY
        return known, None

    @staticmethod
    def _token_problem(known: ReadOnlyCredentials, token: str | None) -> Problem | None:
        """Temporary credentials are only good with their own session token."""
        if (known.token or None) != (token or None):
            return BAD_TOKEN
        return None

    @staticmethod
    def _same(expected: str, received: str) -> bool:
        return hmac.compare_digest(expected.encode(), received.encode())

    # -- presigned POST --------------------------------------------------------------------
    def post_problem(self, form: Mapping[str, str]) -> Problem | None:
        """None when ``form`` carries a SigV4 POST-policy signature by a known key; else the problem.

        Form field names are case-insensitive, as in S3. The policy's own rules (expiry,
        conditions) are checked separately, after this.
        """
        fields = {k.lower(): v for k, v in form.items()}
        if "signature" in fields or "awsaccesskeyid" in fields:
            return SIGV2_REFUSED
        for name in ("x-amz-algorithm", "x-amz-credential", "x-amz-date", "x-amz-signature"):
            if name not in fields:
                return 400, "InvalidArgument", (f"Bucket POST must contain a field named '{name}'.  If it is "
                                                "specified, please check the order of the fields.")
        if fields["x-amz-algorithm"] != ALGORITHM:
            return SIGV2_REFUSED
        known, problem = self._credentials(fields["x-amz-credential"], fields["x-amz-date"], query=False)
        if problem:
            return problem
        signer = S3SigV4PostAuth(Credentials(known.access_key, known.secret_key, known.token), "s3", self.region)
        request = AWSRequest(method="POST", url="https://s3.amazonaws.com/")
        request.context["timestamp"] = fields["x-amz-date"]
        expected = signer.signature(fields.get("policy", ""), request)  # over the base64 text exactly as received
        if not self._same(expected, fields["x-amz-signature"]):
            return SIGNATURE_MISMATCH
        return self._token_problem(known, fields.get("x-amz-security-token"))

    # -- presigned GET ---------------------------------------------------------------------
    def get_problem(self, bucket: str, key: str, args: Iterable[tuple[str, str]], headers: Mapping[str, str],
                    now: dt.datetime | None = None) -> Problem | None:
        """None when the query carries a valid, unexpired SigV4 signature for GET ``bucket``/``key``.

        ``args`` are the decoded query parameters (repeats allowed); ``headers`` the request's
        headers, for any signed besides ``host``. The links were made for S3's own host, which
        the gateway replaced with its own: both S3 URL styles are tried for ``host`` and path.
        """
        args = list(args)
        params = dict(args)
        if "Signature" in params or "AWSAccessKeyId" in params:
            return SIGV2_REFUSED
        required = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                    "X-Amz-SignedHeaders", "X-Amz-Expires")
        if not all(params.get(name) for name in required):
            return QUERY_PARAMS_MISSING
        if params["X-Amz-Algorithm"] != ALGORITHM:
            return 400, "AuthorizationQueryParametersError", "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\""
        try:
            expires_in = int(params["X-Amz-Expires"])
        except ValueError:
            return 400, "AuthorizationQueryParametersError", "X-Amz-Expires should be a number"
        if not 0 <= expires_in <= MAX_QUERY_EXPIRES:
            return 400, "AuthorizationQueryParametersError", ("X-Amz-Expires must be less than a week (in seconds) "
                                                              "that is 604800")
        known, problem = self._credentials(params["X-Amz-Credential"], params["X-Amz-Date"], query=True)
        if problem:
            return problem
        signed_headers = params["X-Amz-SignedHeaders"].lower().split(";")
        if "host" not in signed_headers:
            return 400, "AuthorizationQueryParametersError", "Host must be a signed header"
        lower_headers = {k.lower(): v for k, v in headers.items()}
        signer = S3SigV4QueryAuth(Credentials(known.access_key, known.secret_key, known.token), "s3", self.region,
                                  expires=expires_in)
        unsigned = [(k, v) for k, v in args if k != "X-Amz-Signature"]
        received = params["X-Amz-Signature"]
        matched = False
        for host, path in self._s3_addresses(bucket, key):
            request = AWSRequest(method="GET", url=f"https://{host}{quote(path, safe='/~')}", params=unsigned,
                                 headers={name: host if name == "host" else lower_headers.get(name, "")
                                          for name in signed_headers})
            request.context["timestamp"] = params["X-Amz-Date"]
            canonical = signer.canonical_request(request)
            expected = signer.signature(signer.string_to_sign(request, canonical), request)
            matched |= self._same(expected, received)  # no early exit: the same work for every guess
        if not matched:
            return SIGNATURE_MISMATCH
        problem = self._token_problem(known, params.get("X-Amz-Security-Token"))
        if problem:
            return problem
        signed_at = dt.datetime.strptime(params["X-Amz-Date"], SIGV4_TIMESTAMP).replace(tzinfo=dt.UTC)
        if (now or dt.datetime.now(dt.UTC)) > signed_at + dt.timedelta(seconds=expires_in):
            return EXPIRED
        return None

    @staticmethod
    def _s3_addresses(bucket: str, key: str) -> list[tuple[str, str]]:
        """(host, path) of the object in the two URL styles the gateway rewrites (see gateway._S3_URL)."""
        return [(f"{bucket}.s3.amazonaws.com", f"/{key}"), ("s3.amazonaws.com", f"/{bucket}/{key}")]

