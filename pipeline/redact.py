"""Secrets never reach what aig writes: API keys in command lines and credentials in URLs are masked."""

from __future__ import annotations

import re
import sys

MASK = "***"
# options whose value is a secret (`--api-key sk-...` or `--api-key=sk-...`)
SECRET_OPTION = re.compile(r"^--?[\w-]*(api[-_]?key|token|secret|password|passwd)[\w-]*$", re.IGNORECASE)
# scheme://user:password@host or scheme://token@host
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s?#]+)@")
# ?api_key=...&token=... in URLs
_QUERY_SECRET = re.compile(r"(?P<name>[?&][\w-]*(?:key|token|secret|password|sig|signature|credential)[\w-]*=)[^&#\s]+",
                           re.IGNORECASE)


def redact_url(text: str) -> str:
    """`http://user:secret@host/v1?api_key=x` -> `http://***@host/v1?api_key=***` (in any text)."""
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{MASK}@", text)
    return _QUERY_SECRET.sub(lambda m: m["name"] + MASK, text)


def redact_args(args: list[str]) -> list[str]:
    """Command-line arguments with secret option values masked and URL credentials removed."""
    out, hide_next = [], False
    for a in args:
        if hide_next:
            out.append(MASK)
            hide_next = False
            continue
        name, eq, _ = a.partition("=")
        if SECRET_OPTION.match(name):
            if eq:
                out.append(f"{name}={MASK}")
            else:
                out.append(a)
                hide_next = True
            continue
        out.append(redact_url(a))
    return out


def command_line(argv: list[str] | None = None) -> str:
    """The command as recorded in `runs.command`: `aig ...` with secrets masked."""
    return " ".join(["aig", *redact_args(list(sys.argv[1:] if argv is None else argv))])
