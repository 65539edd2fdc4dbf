"""The browser client's type declarations ship beside the modules and are served with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Service

pytestmark = pytest.mark.anyio

STATIC = Path(__file__).resolve().parents[2] / "src" / "silentauth" / "web" / "static"


@pytest.mark.parametrize("name", ["silentauth.d.ts", "silentauth-axios.d.ts"])
async def test_type_declarations_are_served_beside_the_modules(service: Service, name: str) -> None:
    r = await service.client.get(f"/static/{name}")
    assert r.status_code == 200
    assert r.text == (STATIC / name).read_text()
    assert "export function createAuthClient" in r.text or "export function attachSilentAuth" in r.text
