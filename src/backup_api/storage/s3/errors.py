"""What an S3 error response means to the owner: its code (or HTTP status when it has
none) -> a French reason. Shared by the service's botocore client and the upload
process's own requests, which must not import botocore's client."""

from __future__ import annotations

_REFUSED_CREDENTIALS = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "InvalidClientTokenId",
    "AuthorizationHeaderMalformed",
    "InvalidSecurity",
}
_REDIRECT_STATUSES = (301, 302, 303, 307, 308)


def describe_response(code: str, status: int | None, bucket: str = "") -> str:
    """The owner's French reason for an error response; never a server's own text."""
    if code in _REFUSED_CREDENTIALS:
        return "identifiants refusés par le stockage"
    if code == "NoSuchBucket":
        return f"compartiment introuvable: {bucket}" if bucket else "compartiment introuvable"
    if code in ("NoSuchKey", "404", "NotFound"):
        return "objet introuvable"
    if code in ("AccessDenied", "403", "Forbidden", "AllAccessDisabled"):
        return "accès refusé par le stockage"
    if code in ("NoSuchUpload",):
        return "envoi en plusieurs parties introuvable (annulé ou expiré)"
    if code in ("SlowDown", "ServiceUnavailable", "503", "InternalError", "500"):
        return "le stockage est indisponible (erreur du serveur)"
    if status in _REDIRECT_STATUSES or code in ("PermanentRedirect", "301", "307"):
        return "le stockage répond par une redirection, qui n'est pas suivie"
    return f"erreur du stockage: {code or status}"
