"""API7 server-side request forgery: the URLs clients store (avatars, product images)
are validated and never fetched by the server.

The probe is a listening socket on this machine, reached through a host *name* (names
are accepted; resolving them would itself be an outbound call): if any service
fetched, previewed or checked an image URL, a connection would arrive."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Iterator

import pytest

from tests.security.support import clients, is_problem
from tests.support.tokens import bearer, mint

pytestmark = pytest.mark.usefixtures("infra")

BAD_URLS = [
    "http://img.example.com/a.png",
    "javascript:alert(1)",
    "file:///etc/passwd",
    "data:image/png;base64,AAAA",
    "gopher://img.example.com/",
    "ftp://img.example.com/a.png",
    "//img.example.com/a.png",
    "https:///a.png",
    "https://user:secret@img.example.com/a.png",
    "https://127.0.0.1/a.png",
    "https://localhost:8000/a.png",
    "https://10.0.0.7/a.png",
    "https://192.168.1.1/a.png",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::1]/a.png",
    "https://[::ffff:127.0.0.1]/a.png",
    "https://2130706433/a.png",  # 127.0.0.1 to a browser
    "https://0x7f.1/a.png",
    "https://img.example.com/a b.png",
    "https://img.example.com/\r\nX-Injected: 1",
]


@pytest.fixture
def probe() -> Iterator[tuple[str, socket.socket]]:
    """(an https URL whose host name leads to this machine, the listening socket)."""
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))  # a test probe on every interface, closed at the end
    listener.listen(16)
    port = listener.getsockname()[1]
    host = socket.gethostname()
    # The probe works: a connection to that name and port does arrive.
    with socket.create_connection((host, port), timeout=2):
        pass
    listener.settimeout(2)
    listener.accept()[0].close()
    listener.setblocking(False)
    yield f"https://{host}:{port}/avatar.png?size=64", listener
    listener.close()


def _connections(listener: socket.socket) -> int:
    count = 0
    while True:
        try:
            listener.accept()[0].close()
        except BlockingIOError:
            return count
        count += 1


async def test_image_urls_are_stored_and_shown_but_never_fetched(
    probe: tuple[str, socket.socket],
) -> None:
    url, listener = probe
    owner, other = str(uuid.uuid4()), str(uuid.uuid4())
    admin = bearer(mint(role="admin"))
    async with clients("users", "catalog") as apps:
        _, users = apps["users"]
        _, catalog = apps["catalog"]
        mine = bearer(mint(owner))
        set_avatar = await users.patch("/api/v1/users/me", json={"avatar_url": url}, headers=mine)
        assert set_avatar.status_code == 200, set_avatar.text
        assert set_avatar.json()["avatar_url"] == url
        seen = await users.get(f"/api/v1/users/{owner}", headers=bearer(mint(other)))
        assert seen.json()["avatar_url"] == url
        listed = await users.get("/api/v1/users", params={"limit": 100}, headers=admin)
        assert listed.status_code == 200

        sku = f"SKU-{uuid.uuid4().hex[:10]}"
        product = {"sku": sku, "name": "Lamp", "price": "5.00", "currency": "EUR"}
        created = await catalog.post(
            "/api/v1/catalog/products",
            json={**product, "status": "active", "image_urls": [url, url + "&b"]},
            headers=admin,
        )
        assert created.status_code == 201, created.text
        product_id = created.json()["id"]
        assert (await catalog.get(f"/api/v1/catalog/products/{product_id}")).json()["image_urls"][
            0
        ] == url
        assert (await catalog.get(f"/api/v1/catalog/products/by-sku/{sku}")).status_code == 200
        assert (await catalog.get("/api/v1/catalog/products")).status_code == 200
        await asyncio.sleep(0.5)  # time for any background fetcher to try
    assert _connections(listener) == 0


async def test_unsafe_image_urls_are_422_in_every_service() -> None:
    admin = bearer(mint(role="admin"))
    async with clients("users", "catalog") as apps:
        _, users = apps["users"]
        _, catalog = apps["catalog"]
        me = bearer(mint())
        for bad in BAD_URLS:
            avatar = await users.patch("/api/v1/users/me", json={"avatar_url": bad}, headers=me)
            assert is_problem(avatar, 422), (bad, avatar.text)
            image = await catalog.post(
                "/api/v1/catalog/products",
                json={
                    "sku": f"SKU-{uuid.uuid4().hex[:10]}",
                    "name": "Lamp",
                    "price": "5.00",
                    "currency": "EUR",
                    "image_urls": [bad],
                },
                headers=admin,
            )
            assert is_problem(image, 422), (bad, image.text)
        good = await users.patch(
            "/api/v1/users/me", json={"avatar_url": "https://cdn.example.com/a.png"}, headers=me
        )
        assert good.status_code == 200
