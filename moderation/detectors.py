"""Detectors for personal data and secrets: patterns confirmed by checksums and context.

Each detector has a cheap *gate* (a substring or character-class test run first) so that a normal
prompt pays for a handful of C-level scans, not for a dozen regular expressions; the patterns
themselves have no nested quantifiers, so no input makes them backtrack catastrophically (a test
feeds 1 MB adversarial inputs under a time bound). Matches are validated where a checksum exists:
payment cards (Luhn), IBANs (ISO 7064 mod 97), US SSNs (reserved ranges), IP addresses (octets).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

_DIGITS = str.maketrans("", "", "0123456789")
_SHAPE = str.maketrans("123456789", "000000000")


@dataclass(frozen=True)
class Finding:
    category: str  # pii or secret (injection and custom come from their own modules)
    kind: str  # email, phone, card, iban, ssn, ip, aws_key, private_key, jwt, ...
    start: int
    end: int


@dataclass(frozen=True)
class Clues:
    """What the gates look at, computed once per text: the digit count and the text's *shape*
    (every digit written as 0), so that "four digits in a row" is a substring test."""

    text: str
    digits: int
    shape: str

    @classmethod
    def of(cls, text: str) -> Clues:
        return cls(text, len(text) - len(text.translate(_DIGITS)), text.translate(_SHAPE))


@dataclass(frozen=True)
class Detector:
    kind: str
    category: str
    pattern: re.Pattern[str] | None  # None: ``find`` does the work
    gate: Callable[[Clues], bool]
    valid: Callable[[re.Match[str]], bool] = lambda match: True
    find: Callable[[str], Iterator[tuple[int, int]]] | None = None

    def spans(self, text: str) -> Iterator[tuple[int, int]]:
        if self.find is not None:
            yield from self.find(text)
            return
        assert self.pattern is not None
        for match in self.pattern.finditer(text):
            if self.valid(match):
                yield match.start(), match.end()


def luhn_valid(number: str) -> bool:
    digits = [int(c) for c in number if c.isdigit()]
    if not 13 <= len(digits) <= 19:
        return False
    total = 0
    for index, digit in enumerate(reversed(digits)):
        if index % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    compact = text.replace(" ", "").upper()
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    numeric = "".join(str(int(c, 36)) for c in rearranged)
    return int(numeric) % 97 == 1


def ssn_valid(match: re.Match[str]) -> bool:
    area, group, serial = match.group("area"), match.group("group"), match.group("serial")
    return area not in ("000", "666") and not area.startswith("9") and group != "00" and serial != "0000"


_VERSION_WORDS = ("version", "release", "python", "build", "firmware", "v", "ver")


def ip_valid(match: re.Match[str]) -> bool:
    try:
        address = ipaddress.ip_address(match.group(0))
    except ValueError:
        return False
    # Version strings ("version 1.2.3.4", "v1.2.3.4") look like addresses; loopback and
    # unspecified addresses carry no personal data.
    before = match.string[max(match.start() - 12, 0) : match.start()].lower().rstrip(" :=")
    if before.endswith(_VERSION_WORDS):
        return False
    return not (address.is_loopback or address.is_unspecified)


_IBAN_HINT = re.compile(r"[A-Z]{2}\d{2}")
_IPV6_HINT = re.compile(r"[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:")


def _phone_gate(c: Clues) -> bool:
    return c.digits >= 9 and any(hint in c.shape for hint in ("000-000", "000.000", "000 000", "(0", "+0"))


def _ip_gate(c: Clues) -> bool:
    return ("0.0" in c.shape and c.shape.count(".") >= 3) or (c.text.count(":") >= 7 and _IPV6_HINT.search(c.text) is not None)


_KEY_BEGIN = re.compile(r"-----BEGIN (?:[A-Z]{1,10} ){0,2}PRIVATE KEY-----")
_JWT_RUN = re.compile(r"[A-Za-z0-9_.-]{40,}")


def _private_keys(text: str) -> Iterator[tuple[int, int]]:
    """A BEGIN line through its END line (or the BEGIN line alone): linear, whatever the input."""
    position, end_marker = 0, 0
    while (begin := _KEY_BEGIN.search(text, position)) is not None:
        if 0 <= end_marker < begin.end():  # an END found earlier is behind us: look again
            end_marker = text.find("-----END", begin.end())
        close = text.find("-----", end_marker + 8) if end_marker >= 0 else -1
        end = close + 5 if close >= 0 else begin.end()
        yield begin.start(), end
        position = end


def _jwts(text: str) -> Iterator[tuple[int, int]]:
    """Three dot-separated base64url parts, the first two JSON (``eyJ``): found by splitting runs."""
    for run in _JWT_RUN.finditer(text):
        parts = run.group(0).split(".")
        offset = run.start()
        for index in range(len(parts) - 2):
            header, payload, signature = parts[index : index + 3]
            if header.startswith("eyJ") and payload.startswith("eyJ") and len(signature) >= 16 and len(header) >= 10:
                start = offset + sum(len(p) + 1 for p in parts[:index])
                yield start, start + len(header) + len(payload) + len(signature) + 2
                break


def _card_like(match: re.Match[str]) -> bool:
    return luhn_valid(match.group(0)) and len(set(c for c in match.group(0) if c.isdigit())) > 1


DETECTORS: tuple[Detector, ...] = (
    Detector("email", "pii", re.compile(r"\b[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){0,8}\.[A-Za-z]{2,24}\b"),
             lambda c: "@" in c.text),
    Detector("card", "pii", re.compile(r"\b\d(?:[ -]?\d){12,18}\b"), lambda c: c.digits >= 13 and "0000" in c.shape, _card_like),
    Detector("iban", "pii", re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"),
             lambda c: c.digits >= 8 and "00" in c.shape and _IBAN_HINT.search(c.text) is not None,
             lambda m: iban_valid(m.group(0))),
    Detector("ssn", "pii", re.compile(r"\b(?P<area>\d{3})-(?P<group>\d{2})-(?P<serial>\d{4})\b"),
             lambda c: "000-00-0000" in c.shape, ssn_valid),
    Detector("phone", "pii", re.compile(
        r"(?<![\w+-])(?:\+\d{1,3}[ .-]?\(?\d{1,4}\)?(?:[ .-]?\d{2,4}){2,4}"  # +44 20 7946 0958
        r"|\(\d{3}\) ?\d{3}[ .-]\d{4}|\d{3}[.-]\d{3}[.-]\d{4}"  # (415) 555-0132, 415-555-0132
        r"|\(0\d{1,4}\) ?\d{3,4}[ .-]?\d{3,4})"  # (020) 7946 0958
        r"(?![\w-]|[ .]\d)"), _phone_gate),
    Detector("ip", "pii", re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b|\b(?:[0-9A-Fa-f]{1,4}:){7}[0-9A-Fa-f]{1,4}\b"),
             _ip_gate, ip_valid),
    Detector("aws_key", "secret", re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA)[0-9A-Z]{16}\b"),
             lambda c: any(prefix in c.text for prefix in ("AKIA", "ASIA", "AGPA", "AIDA", "AROA"))),
    Detector("aws_secret", "secret", re.compile(r"(?i)aws.{0,20}?(?:secret|key).{0,20}?[\"'= :]+([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"),
             lambda c: "aws" in c.text or "AWS" in c.text or "Aws" in c.text),
    Detector("github_token", "secret", re.compile(r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{60,255})\b"),
             lambda c: "gh" in c.text or "github_pat_" in c.text),
    Detector("openai_key", "secret", re.compile(r"\bsk-(?:proj-|ant-|svcacct-|admin-)?[A-Za-z0-9_-]{20,200}\b"), lambda c: "sk-" in c.text),
    Detector("slack_token", "secret", re.compile(r"\bxox[abprs]-[A-Za-z0-9-]{10,100}\b"), lambda c: "xox" in c.text),
    Detector("google_api_key", "secret", re.compile(r"\bAIza[0-9A-Za-z_-]{35}\b"), lambda c: "AIza" in c.text),
    Detector("stripe_key", "secret", re.compile(r"\b(?:sk|rk)_live_[0-9A-Za-z]{16,99}\b"), lambda c: "_live_" in c.text),
    Detector("private_key", "secret", None, lambda c: "PRIVATE KEY-----" in c.text, find=_private_keys),
    Detector("jwt", "secret", None, lambda c: "eyJ" in c.text, find=_jwts),
)


def scan(text: str, detectors: tuple[Detector, ...] = DETECTORS) -> Iterator[Finding]:
    """Every validated match, detector by detector (overlaps are resolved by ``merge``)."""
    clues = Clues.of(text)
    for detector in detectors:
        if detector.gate(clues):
            for start, end in detector.spans(text):
                yield Finding(detector.category, detector.kind, start, end)


def merge(findings: list[Finding]) -> list[Finding]:
    """Drop findings inside a longer one (a phone number inside a card number, say)."""
    kept: list[Finding] = []
    for finding in sorted(findings, key=lambda f: (f.start, -(f.end - f.start))):
        if kept and finding.start < kept[-1].end:
            continue
        kept.append(finding)
    return kept
