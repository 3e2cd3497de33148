"""Fixtures for the sandbox contract tests: in-process apps on a fake clock, one shared subprocess."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from infobip_provider.sandbox import SandboxConfig, create_app
from infobip_provider.sandbox.testing import FakeClock, clean_sandbox_fixture, sandbox_fixture

API_KEY = "test-key"
OTHER_KEY = "other-key"
AUTH = {"Authorization": f"App {API_KEY}"}
OTHER_AUTH = {"Authorization": f"App {OTHER_KEY}"}

# One real sandbox process for the whole run; ``sandbox`` resets it before each test.
infobip_sandbox = sandbox_fixture(api_key=API_KEY, cooldown_scale=0.01)
sandbox = clean_sandbox_fixture("infobip_sandbox")


class Api:
    """A TestClient that sends the API key on every call, plus the app's clock and core."""

    def __init__(self, client: TestClient, clock: FakeClock) -> None:
        self.client = client
        self.clock = clock
        self.core = client.app.state.sandbox  # type: ignore[attr-defined]

    def call(self, method: str, path: str, *, auth: dict[str, str] | None = AUTH, **kwargs: Any) -> Any:
        headers = {**(auth or {}), **kwargs.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kwargs)

    def get(self, path: str, **kwargs: Any) -> Any:
        return self.call("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> Any:
        return self.call("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> Any:
        return self.call("PATCH", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> Any:
        return self.call("DELETE", path, **kwargs)

    def admin(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.client.request(method, "/_sandbox" + path, **kwargs)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_800_000_000.0)


@pytest.fixture
def make_api(clock: FakeClock) -> Iterator[Callable[..., Api]]:
    """Build an in-process sandbox; cooldowns are off unless ``cooldown_scale`` is given."""
    clients: list[TestClient] = []

    def make(**overrides: Any) -> Api:
        settings: dict[str, Any] = {"api_keys": [API_KEY, OTHER_KEY], "cooldown_scale": 0.0, "clock": clock}
        settings.update(overrides)
        client = TestClient(create_app(SandboxConfig(**settings)))
        client.__enter__()  # run the lifespan (autosave, save at shutdown)
        clients.append(client)
        return Api(client, clock)

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()
