"""Deterministic, realistic ticket data shaped exactly like GET /v2/agency/tickets/list.

Nothing is generated ahead: ``GeneratedTickets(count, seed=...)`` computes ticket ``i`` when it
is asked for, as a pure function of (seed, i, count), so a million tickets cost nothing until
they are served. Three cheap integer hashes of (seed, i) give what listings filter and sort on
(``created_at``; ``is_open``, teammate, client and title), so a filter scans hashes, never
whole tickets; a per-ticket ``random.Random`` draws the rest (replies, assets). The ticket's
id is an invertible scramble of (seed, i), so ``index_of(id)`` finds a ticket without a table.

The timeline is fixed, so the data never moves and never lies in the future: the ``count``
tickets are spread evenly (on average ``gap_for(count)`` seconds apart, at most 4 hours, the
whole set within about five years) over the time before `DATA_END` (2026-01-01T00:00:00Z),
ending ten days before it, so that every reply, asset and ``updated_at`` is before it too.
"""

from __future__ import annotations

import hashlib
import itertools
import random
import unicodedata
import uuid
from collections.abc import Callable, Iterable
from typing import Any

__all__ = [
    "CLIENTS",
    "DATA_END",
    "TEAMMATE_IDS",
    "GeneratedTickets",
    "TicketAttributes",
    "gap_for",
    "generate_tickets",
]

Ticket = dict[str, Any]

#: Every timestamp of the default timeline lies before this instant (2026-01-01T00:00:00Z).
DATA_END = 1_767_225_600
#: How long the newest ticket's replies, assets and updates may run on after it is created.
_TAIL = 10 * 86_400
_SPAN = 5 * 365 * 86_400
_MAX_GAP = 4 * 3_600

_M64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # splitmix64's increment: consecutive indices hash far apart
_M122 = (1 << 122) - 1
_MUL = 0x2B2E_5B7C_F0C8_1D6A_93F7_4E5D_C1B9_0A87 & _M122 | 1  # odd: invertible mod 2**122
_MUL_INV = pow(_MUL, -1, 1 << 122)


def gap_for(count: int) -> int:
    """Mean seconds between consecutive tickets of a data set of `count` (1 s to 4 h)."""
    return max(1, min(_MAX_GAP, _SPAN // max(count, 1)))


def _mix(x: int) -> int:
    """splitmix64's finaliser: a fast bijection of 64-bit integers that looks random."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _M64
    return x ^ (x >> 31)


def _key(seed: int, purpose: bytes) -> int:
    digest = hashlib.blake2b(repr(seed).encode(), digest_size=8, person=purpose).digest()
    return int.from_bytes(digest, "big")


def _uuid_text(bits: int) -> str:
    """A version-4 UUID string carrying 122 given bits (the other 6 are the version/variant)."""
    return "%08x-%04x-4%03x-%04x-%012x" % (  # noqa: UP031 - one call is the fast path here
        bits >> 90,
        bits >> 74 & 0xFFFF,
        bits >> 62 & 0xFFF,
        0x8000 | bits >> 48 & 0x3FFF,
        bits & 0xFFFF_FFFF_FFFF,
    )


def _uuid_bits(text: str) -> int | None:
    """The 122 bits that `_uuid_text` spelled as `text`, or None if it did not."""
    parts = text.split("-")
    if [len(part) for part in parts] != [8, 4, 4, 4, 12]:
        return None
    try:
        a, b, c, d, e = (int(part, 16) for part in parts)
    except ValueError:
        return None
    bits = a << 90 | b << 74 | (c & 0xFFF) << 62 | (d & 0x3FFF) << 48 | e
    # int() forgives what a UUID must not have (signs, "0x", capitals): compare the spelling.
    return bits if _uuid_text(bits) == text else None


def _scramble(x: int) -> int:
    for _ in range(3):
        x = x * _MUL & _M122
        x ^= x >> 61  # a shift of at least half the width is its own inverse
    return x


def _unscramble(x: int) -> int:
    for _ in range(3):
        x ^= x >> 61
        x = x * _MUL_INV & _M122
    return x


def _random_uuid(rng: random.Random) -> str:
    return _uuid_text(rng.getrandbits(122))


# fmt: off
# Word tables, kept dense: one entry per line would bury the code.
_FIRST = ["Ana", "Ben", "Chloé", "David", "Emma", "Felix", "Greta", "Hugo", "Inès", "Jonas",
          "Karin", "Lucas", "Maria", "Noah", "Olivia", "Pedro", "Rosa", "Sven", "Tara"]
_LAST = ["Almeida", "Bakker", "Costa", "Dubois", "Evans", "Fischer", "García", "Huber",
         "Janssen", "Klein", "Laurent", "Müller", "Novak", "Oliveira", "Peeters", "Rossi"]
_DOMAINS = ["example.com", "mail.example.org", "acme.test", "shop.example.net", "studio.example"]
# category -> (subcategories, title templates)
_CATEGORIES: dict[str, tuple[list[str], list[str]]] = {
    "Billing Issues": (
        ["Payment Failed", "Refund Request", "Invoice Error", "Subscription Change"],
        ["Payment failed for {product} subscription", "Refund request for order #{n}",
         "Invoice #{n} shows the wrong amount", "Charged twice for {product}",
         "Cannot update card details on {device}"]),
    "Technical Support": (
        ["Login Problem", "Bug Report", "Performance", "Integration"],
        ["Cannot log in to {product} on {device}", "{product} crashes when opening {feature}",
         "{feature} is very slow since the last update", "Error 500 when saving {feature}",
         "Webhook from {product} never arrives"]),
    "Account Management": (
        ["Password Reset", "Profile Update", "Account Deletion", "Permissions"],
        ["Password reset email not received", "Please delete my {product} account",
         "Change the owner of workspace {n}", "Teammate cannot access {feature}",
         "Update company name on {product} invoices"]),
    "Shipping & Delivery": (
        ["Delayed Delivery", "Wrong Item", "Damaged Package", "Tracking"],
        ["Order #{n} has not arrived yet", "Received the wrong item in order #{n}",
         "Package arrived damaged", "Tracking link for order #{n} does not work"]),
    "Product Questions": (
        ["Feature Request", "How-To", "Compatibility", "Pricing"],
        ["How do I export {feature} to CSV?", "Does {product} work on {device}?",
         "Feature request: dark mode for {feature}", "Pricing for {product} with 50 seats",
         "Is there an API for {feature}?"]),
}
_PRODUCTS = ["Tamio Pro", "Tamio Lite", "the mobile app", "the dashboard", "Analytics", "Inbox"]
_DEVICES = ["iPhone", "Android", "Windows", "macOS", "Linux", "iPad", "Chromebook"]
_FEATURES = ["reports", "the calendar", "invoices", "the contact list", "tags", "automations"]
_LANGUAGES = ["en"] * 6 + ["fr", "fr", "de", "de", "es", "pt", "nl", "it"]
_CLIENT_LINES = [
    "Hello, I have been trying to sort this out for two days and nothing works.",
    "Could you please have a look at this as soon as possible? It blocks my whole team.",
    "I attached a screenshot of what I see on my screen.",
    "Thanks for the quick answer, but the problem is still there after a restart.",
    "This started right after the update last Tuesday, before that everything was fine.",
    "Any news on this? Our customers are starting to complain.",
]
_AGENT_LINES = [
    "Thank you for reaching out, I am sorry for the trouble this has caused.",
    "I have forwarded this to our engineering team and will update you as soon as I hear back.",
    "Could you tell me which browser and version you are using?",
    "We have resolved your issue; please let us know if anything else comes up.",
    "I have applied a credit to your account for the inconvenience.",
    "Please try clearing the cache and logging in again, that usually fixes it.",
]
_IMAGE_EXT = ["png", "jpg", "webp", "gif"]
_DOC_EXT = ["pdf", "docx", "csv", "xlsx", "txt"]
_STEMS = ["screenshot", "photo", "error", "receipt", "export", "invoice", "log"]
_SIZES = [(1920, 1080), (1280, 720), (2560, 1440), (1170, 2532), (800, 600), (3024, 4032)]
_THUMB_WIDTHS = [150, 300, 600]
_ASSET_COUNTS = [0, 0, 1, 1, 2]
_VERSIONS = [1, 1, 1, 2, 3]
# fmt: on
_CATEGORY_NAMES = list(_CATEGORIES)
_SUBCATEGORIES = [subs for subs, _ in _CATEGORIES.values()]
# Templates start with a capital once formatted: "{product} crashes" -> "The dashboard crashes".
_TEMPLATES = [templates for _, templates in _CATEGORIES.values()]


def _texts(lines: list[str]) -> list[list[str]]:
    """Every reply text of 1, 2 or 3 distinct lines, by count: a pick replaces random.sample."""
    return [[" ".join(chosen) for chosen in itertools.permutations(lines, k)] for k in (1, 2, 3)]


_CLIENT_TEXTS, _AGENT_TEXTS = _texts(_CLIENT_LINES), _texts(_AGENT_LINES)


def _people() -> tuple[list[str], list[dict[str, str]]]:
    rng = random.Random(0x7A310)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    teammates = [uid() for _ in range(20)]
    clients = []
    for _ in range(200):
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        # Plain ASCII addresses: strict email validators reject "chloé.müller@...".
        local = unicodedata.normalize("NFKD", f"{first}.{last}".lower()).encode("ascii", "ignore")
        email = f"{local.decode()}{rng.randint(1, 99)}@{rng.choice(_DOMAINS)}"
        clients.append({"id": uid(), "name": f"{first} {last}", "email": email})
    return teammates, clients


# Fixed for every seed, so tests can filter by a teammate or client known to exist.
TEAMMATE_IDS, CLIENTS = _people()
_CLIENT_IDS = [client["id"] for client in CLIENTS]


class TicketAttributes:
    """What a listing filters and sorts on, from one 64-bit hash: no reply, no asset."""

    __slots__ = ("client", "is_open", "rest", "teammate")

    def __init__(self, h: int) -> None:
        # The layout `GeneratedTickets.matching` reads inline: 5, 20, 20, 200, then the rest.
        self.is_open = h % 5 < 2  # 40 % open
        teammate = h // 5 % 20
        self.teammate: int | None = None if h // 100 % 20 < 3 else teammate  # 15 % unassigned
        self.client = h // 2000 % 200
        self.rest = h // 400_000  # category, subcategory, language, title

    @property
    def parts(self) -> tuple[int, int, int, str]:
        """(category, subcategory, language, title)."""
        rest = self.rest
        category, template, words = _title_choice(rest)
        title = _title(category, template, words)
        return category, rest // 5 % 4, rest // 20 % len(_LANGUAGES), title

    @property
    def title(self) -> str:
        return _title(*_title_choice(self.rest))


def _numbered(template: str) -> tuple[str, str] | None:
    """A template whose only placeholder is {n}, casefolded around it (else None)."""
    before, n, after = template.partition("{n}")
    if not n:
        return None
    assert "{" not in before + after, template  # a word table invariant
    return before.casefold(), after.casefold()


_NUMBERED = [[_numbered(template) for template in templates] for templates in _TEMPLATES]


def _title_choice(rest: int) -> tuple[int, int, int]:
    """(category, template, words) from an attribute hash's rest."""
    category = rest % 5
    rest //= 20 * len(_LANGUAGES)  # past category, subcategory and language
    return category, rest % len(_TEMPLATES[category]), rest // 5


def _title(category: int, template: int, words: int) -> str:
    title = _TEMPLATES[category][template].format(
        product=_PRODUCTS[words % 6],
        device=_DEVICES[words // 6 % 7],
        feature=_FEATURES[words // 42 % 6],
        n=10_000 + words // 252 % 90_000,
    )
    return title[0].upper() + title[1:]  # templates may start with "{product}"


def _title_test(text: str) -> Callable[[int], bool]:
    """A fast "is casefolded `text` in the title?" on an attribute hash's rest."""
    memo: dict[tuple[int, int, int], bool] = {}

    def test(rest: int) -> bool:
        category, template, words = _title_choice(rest)
        numbered = _NUMBERED[category][template]
        if numbered is not None:
            # A {n} template has no other word: no memo, it would hold a key per number.
            before, after = numbered
            return text in f"{before}{10_000 + words // 252 % 90_000}{after}"
        key = (category, template, words % 252)
        found = memo.get(key)
        if found is None:
            found = memo[key] = text in _title(category, template, words).casefold()
        return found

    return test


class GeneratedTickets:
    """`count` tickets for a seed, each computed on demand; indices run oldest to newest.

    ``created_at`` strictly increases with the index. By default the tickets end ten days
    before `DATA_END`; with `start` they begin right after it instead (and `gap` seconds
    apart on average, default `gap_for(count)`), which is how newer tickets are added.
    """

    def __init__(
        self, count: int, *, seed: int = 0, start: int | None = None, gap: int | None = None
    ) -> None:
        if count < 0:
            raise ValueError(f"count must be at least 0, got {count}")
        self.count = count
        self.seed = seed
        self.gap = gap_for(count) if gap is None else max(1, gap)
        if start is None:
            self.first = DATA_END - _TAIL - count * self.gap
        else:
            self.first = start + 1
        self._time_key = _key(seed, b"created_at")
        self._attr_key = _key(seed, b"attributes")
        self._detail_key = _key(seed, b"details")
        self._id_key = _key(seed, b"id") >> 6  # 58 bits, above the 64 of the index

    def __len__(self) -> int:
        return self.count

    def created_at(self, i: int) -> int:
        """Unix seconds; strictly increasing in `i`."""
        jitter = _mix((self._time_key + i * _GOLDEN) & _M64) % self.gap
        return self.first + i * self.gap + jitter

    def attributes(self, i: int) -> TicketAttributes:
        return TicketAttributes(_mix((self._attr_key + i * _GOLDEN) & _M64))

    def titles(self, indices: Iterable[int]) -> list[str]:
        """The titles of these tickets; a title without a number is made once per call."""
        memo: dict[tuple[int, int, int], str] = {}
        out = []
        key = self._attr_key
        for i in indices:
            category, template, words = _title_choice(_mix((key + i * _GOLDEN) & _M64) // 400_000)
            if _NUMBERED[category][template] is not None:
                out.append(_title(category, template, words))
                continue
            memo_key = (category, template, words % 252)
            title = memo.get(memo_key)
            if title is None:
                title = memo[memo_key] = _title(category, template, words)
            out.append(title)
        return out

    def ticket_id(self, i: int) -> str:
        return _uuid_text(_scramble(self._id_key << 64 | i))

    def index_of(self, ticket_id: str) -> int | None:
        """The index of the ticket with this id, or None if it is not one of these."""
        bits = _uuid_bits(ticket_id)
        if bits is None:
            return None
        x = _unscramble(bits)
        index = x & _M64
        if x >> 64 != self._id_key or index >= self.count:
            return None
        return index

    def first_at_or_after(self, stamp: int) -> int:
        """The smallest index whose created_at is >= `stamp` (`count` if none)."""
        lo, hi = 0, self.count
        while lo < hi:
            mid = (lo + hi) // 2
            if self.created_at(mid) < stamp:
                lo = mid + 1
            else:
                hi = mid
        return lo

    def matching(
        self,
        lo: int,
        hi: int,
        *,
        is_open: bool | None = None,
        teammate: int | None = None,
        client: int | None = None,
        text: str | None = None,
    ) -> list[int]:
        """The indices in [lo, hi) whose attributes match (`text`: casefolded, in the title).

        The hot loop of every filtered listing: it computes hashes, never tickets (about
        0.5 s per million indices, plus about 1 µs per index the title must be made for).
        """
        if is_open is None and teammate is None and client is None and text is None:
            return list(range(lo, hi))
        out = []
        title_has = None if text is None else _title_test(text)
        x = (self._attr_key + lo * _GOLDEN) & _M64
        for i in range(lo, hi):
            # _mix and the first fields of TicketAttributes, inlined: this runs per index.
            h = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _M64
            h = (h ^ (h >> 27)) * 0x94D049BB133111EB & _M64
            h ^= h >> 31
            x = (x + _GOLDEN) & _M64
            if is_open is not None and (h % 5 < 2) is not is_open:
                continue
            if teammate is not None and (h // 5 % 20 != teammate or h // 100 % 20 < 3):
                continue
            if client is not None and h // 2000 % 200 != client:
                continue
            if title_has is not None and not title_has(h // 400_000):
                continue
            out.append(i)
        return out

    def ticket(self, i: int) -> Ticket:
        """Ticket `i` as the API sends it (a new dict on every call)."""
        if not 0 <= i < self.count:
            raise IndexError(f"ticket index {i} out of range 0..{self.count - 1}")
        attrs = self.attributes(i)
        category, subcategory, language, title = attrs.parts
        created_at = self.created_at(i)
        rng = random.Random(_mix((self._detail_key + i * _GOLDEN) & _M64))
        r = rng.random
        replies = []
        at = created_at
        for k in range(int(r() * 5)):
            at += 60 + int(r() * (2 * 86_400 - 59))
            # The ticket is the client's first message, so replies mostly alternate agent, client.
            from_client = k % 2 == 1 if r() < 0.8 else r() < 0.5
            texts = (_CLIENT_TEXTS if from_client else _AGENT_TEXTS)[int(r() * 3)]
            text = texts[int(r() * len(texts))]
            assets = [_asset(rng, at) for _ in range(_ASSET_COUNTS[int(r() * 5)])]
            replies.append(
                {
                    "id": _random_uuid(rng),
                    "text": text,
                    "is_client_reply": from_client,
                    "created_at": at,
                    "assets": assets,
                }
            )
        teammate = attrs.teammate
        return {
            "id": self.ticket_id(i),
            "object": "ticket",
            "title": title,
            "is_open": attrs.is_open,
            "category": _CATEGORY_NAMES[category],
            "subcategory": _SUBCATEGORIES[category][subcategory],
            "teammate_id": None if teammate is None else TEAMMATE_IDS[teammate],
            "client": dict(CLIENTS[attrs.client]),
            "language": _LANGUAGES[language],
            "created_at": created_at,
            "updated_at": at + int(r() * 3_601),
            "replies": replies,
        }


def _asset(rng: random.Random, created_at: int) -> dict[str, Any]:
    r = rng.random
    asset_id = _random_uuid(rng)
    image = r() < 0.6
    extensions = _IMAGE_EXT if image else _DOC_EXT
    ext = extensions[int(r() * len(extensions))]
    stem = _STEMS[int(r() * len(_STEMS))]
    filename = f"{stem}_{1 + int(r() * 9_999)}.{ext}"
    width: int | None = None
    height: int | None = None
    thumbnails: list[dict[str, Any]] = []
    if image:
        width, height = _SIZES[int(r() * len(_SIZES))]
        for tw in _THUMB_WIDTHS[: 1 + int(r() * 3)]:
            th = max(1, tw * height // width)
            thumbnails.append(
                {
                    "url": f"https://pub.ox31.com/assets/{asset_id}/thumb_{tw}x{th}.{ext}",
                    "width": tw,
                    "height": th,
                }
            )
    filesize = 8_000 + int(r() * 4_992_001)
    version = _VERSIONS[int(r() * 5)]
    status = "ready" if r() < 0.95 else "processing"
    folder = _random_uuid(rng) if r() < 0.5 else None
    edited = r() < 1 / 3
    return {
        "id": asset_id,
        "object": "asset",
        "filename": filename,
        "extension": ext,
        "filesize": filesize,
        "type": "image" if image else "document",
        "version": version,
        "status": status,
        "alt_text": f"{stem.capitalize()} attached by the sender" if image else filename,
        "width": width,
        "height": height,
        "public_url": f"https://pub.ox31.com/assets/{asset_id}/{filename}",
        "folder": folder,
        "thumbnails": thumbnails,
        "created_at": created_at,
        "updated_at": created_at + (1 + int(r() * 86_400) if edited else 0),
    }


def generate_tickets(count: int, *, seed: int = 0, start: int | None = None) -> list[Ticket]:
    """Return `count` tickets, identical for a seed, oldest first.

    They are what ``FakeTamioServer(tickets=count, seed=seed)`` serves. By default every
    timestamp lies before `DATA_END`; with `start`, every created_at is strictly after it.
    """
    source = GeneratedTickets(count, seed=seed, start=start)
    return [source.ticket(i) for i in range(count)]
