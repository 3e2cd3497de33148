"""Settings of one sandbox instance (what the ``infobip-sandbox`` command line fills in)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class SandboxConfig:
    """How a sandbox behaves.

    :param api_keys: keys with full access, accepted in ``Authorization: App <key>``; a key that is
        neither here nor in ``scoped_keys`` gets 401.
    :param scoped_keys: keys limited to some scopes (``{"key": ("people:manage", "sms:message:send")}``):
        such a key gets 403 from an endpoint that none of its scopes opens, as Infobip answers a key
        created without that scope.
    :param cooldown_scale: multiplies every endpoint interval (0.01 makes the 10 s list-add cooldown 0.1 s;
        0 turns pacing off).
    :param state_file: JSON file the state is loaded from at start and saved to (atomically) after changes,
        on demand and at shutdown; ``None`` keeps everything in memory.
    :param undeliverable_prefixes: SMS destinations starting with one of these end UNDELIVERABLE.
    :param delivery_delay: seconds an SMS stays PENDING before its final status.
    :param balance: what ``GET /account/1/balance`` answers.
    :param currency: the balance's (and SMS price's) currency.
    :param clock: epoch seconds; the single time source (arrival stamps, cooldowns, timestamps, delivery).
        Tests inject a fake one.
    :param save_interval: seconds between two background saves of a changed state.
    :param journal_size: how many requests the journal keeps (oldest dropped first).
    :param journal_bodies: how many of the newest journal entries keep their request body.
    :param slow_default_delay: seconds a ``slow`` fault waits when the fault gives no ``delay``.
    :param freeze_heap: after each store job, move every live object to the cyclic collector's
        permanent generation (``gc.freeze``), so that a full collection over a large store never holds
        up an arrival stamp. For a sandbox that owns its process (the ``infobip-sandbox`` command); an
        in-process test app leaves the host's collector alone.
    """

    api_keys: list[str]
    scoped_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)
    cooldown_scale: float = 1.0
    state_file: str | None = None
    undeliverable_prefixes: tuple[str, ...] = ("999",)
    delivery_delay: float = 0.0
    balance: float = 47.79
    currency: str = "EUR"
    clock: Callable[[], float] = field(default=time.time, repr=False)
    save_interval: float = 0.25
    journal_size: int = 50_000
    journal_bodies: int = 2_000
    slow_default_delay: float = 5.0
    freeze_heap: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.api_keys, str):
            self.api_keys = [self.api_keys]
        self.api_keys = [key for key in self.api_keys if key]
        self.scoped_keys = {key: tuple(scopes) for key, scopes in self.scoped_keys.items() if key}
        if not self.api_keys and not self.scoped_keys:
            raise ValueError("the sandbox needs at least one API key")
        both = set(self.api_keys) & set(self.scoped_keys)
        if both:
            raise ValueError("a key is either full-access or scoped, not both")
        if self.cooldown_scale < 0:
            raise ValueError("cooldown_scale must be >= 0")
        if self.delivery_delay < 0:
            raise ValueError("delivery_delay must be >= 0")
        self.undeliverable_prefixes = tuple(p for p in self.undeliverable_prefixes if p)
