"""Security review (issue 18): input handling and the hand-written wire clients.

Each test performs the attack or sends the bad input of one finding (docs/security.md,
"Review findings (issue 18): input handling and wire clients"):

- image and avatar URLs whose host a browser reads as a local address;
- two concurrent category moves that would make a cycle, and a cycle written around the
  service that must not make the product list run away;
- upstream and Redis servers that send bytes nobody asked for, header values with CR/LF;
- schema-driven clients: the served OpenAPI states the profile rules, Allow lists the
  methods a path really has.
(Log redaction in linear time is in tests/unit/test_logging.py.)
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import jsonschema
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy import text

from gateway.upstream import Address, UnsafeRequest, UpstreamPool
from services.common.leanredis import LeanRedis, _parse
from tests.integration.catalog.support import (
    API,
    admin_headers,
    catalog_client,
    create_category,
    create_product,
)
from tests.security.support import clients, is_problem
from tests.support.tokens import bearer, mint

# --- image and avatar URLs -------------------------------------------------------------

# Each of these reaches a loopback, private or link-local address in a browser (or is a
# URL whose host two parsers read differently). All are refused with a 422.
ATTACK_URLS = [
    "https://127.0.0.%31/a.png",  # percent-encoded digit
    "https://%31%32%37.0.0.1/a.png",
    "https://%6c%6fcalhost/a.png",  # percent-encoded name
    "https://localhost%2e/a.png",
    "https://LOCALHOST/a.png",
    "https://\uff11\uff12\uff17.\uff10.\uff10.\uff11/a.png",  # full-width digits
    "https://127\u30020\u30020\u30021/a.png",  # ideographic full stops
    "https://\u24dbocalhost/a.png",  # circled letter, NFKC-mapped to "l"
    "https://0x7f.1/a.png",
    "https://0x7f000001/a.png",
    "https://2130706433/a.png",
    "https://0177.0.0.1/a.png",  # octal
    "https://127.1/a.png",
    "https://%30x7f.1/a.png",
    "https://0/a.png",
    "https://10.0.0.1./a.png",
    "https://192.168.0.%31/a.png",
    "https://169.254.169.254/latest/meta-data/",
    "https://[::ffff:7f00:1]/a.png",
    "https://[0:0:0:0:0:ffff:127.0.0.1]/a.png",
    "https://[::]/a.png",
    "https://a.localhost/a.png",
    "https://127.0.0.1\\.img.example.com/a.png",  # "\" ends the host in a browser
    "https://img.example.com\\@127.0.0.1/a.png",
    "https://foo.127/a.png",  # ends in a number: not a valid host to a browser
    "https://1.2.3.999/a.png",
    "https://127.0.0.1%00.img.example.com/a.png",
    "https:img.example.com/a.png",
    "https:///img.example.com/a.png",
]

NORMAL_URLS = [
    "https://cdn.example.com/a.png",
    "https://CDN.Example.com:8443/img/a.png?size=64&v=2#top",
    "https://b\u00fccher.example/cover.jpg",  # an IDN
    "https://xn--bcher-kva.example/cover.jpg",
    "https://my_bucket.s3.example.com/a.png",
    "https://8.8.8.8/a.png",
    "https://[2606:4700:4700::1111]/a.png",
    "https://img.example.com/a%20b.png",
]


@pytest.mark.usefixtures("infra")
async def test_image_and_avatar_urls_are_checked_on_the_host_a_browser_reads() -> None:
    admin = admin_headers()
    async with clients("users", "catalog") as apps:
        _, users = apps["users"]
        _, catalog = apps["catalog"]
        me = bearer(mint())

        async def product(url: str) -> Any:
            body = {
                "sku": f"SKU-{uuid.uuid4().hex[:10]}",
                "name": "Lamp",
                "price": "5.00",
                "currency": "EUR",
                "image_urls": [url],
            }
            return await catalog.post(f"{API}/products", json=body, headers=admin)

        for url in ATTACK_URLS:
            image = await product(url)
            assert is_problem(image, 422), (url, image.status_code, image.text)
            assert image.json()["errors"][0]["field"].startswith("body.image_urls"), url
            avatar = await users.patch("/api/v1/users/me", json={"avatar_url": url}, headers=me)
            assert is_problem(avatar, 422), (url, avatar.status_code, avatar.text)
        for url in NORMAL_URLS:
            image = await product(url)
            assert image.status_code == 201, (url, image.text)
            assert image.json()["image_urls"] == [url]  # stored as given
            avatar = await users.patch("/api/v1/users/me", json={"avatar_url": url}, headers=me)
            assert avatar.status_code == 200, (url, avatar.text)


# --- the category tree --------------------------------------------------------------


async def _parents(app: Any) -> dict[uuid.UUID, uuid.UUID | None]:
    async with app.state.session_factory() as session:
        rows = (await session.exec(text("SELECT id, parent_id FROM catalog.categories"))).all()
    return {row.id: row.parent_id for row in rows}


def _cycles(parents: dict[uuid.UUID, uuid.UUID | None]) -> list[uuid.UUID]:
    """The categories whose walk up the tree comes back to a category already seen."""
    looping = []
    for start in parents:
        seen: set[uuid.UUID] = set()
        node: uuid.UUID | None = start
        while node is not None and node not in seen:
            seen.add(node)
            node = parents.get(node)
        if node is not None:
            looping.append(start)
    return looping


@pytest.mark.usefixtures("infra")
async def test_concurrent_moves_never_make_a_cycle() -> None:
    rounds = 25
    async with catalog_client() as (app, client):
        headers = {**admin_headers(), "If-Match": '"v1"'}
        outcomes: list[tuple[int, int]] = []
        for _ in range(rounds):
            a = await create_category(client)
            b = await create_category(client)
            # A under B and B under A, at the same time: each is fine on its own.
            under_b, under_a = await asyncio.gather(
                client.patch(
                    f"{API}/categories/{a['id']}", json={"parent_id": b["id"]}, headers=headers
                ),
                client.patch(
                    f"{API}/categories/{b['id']}", json={"parent_id": a["id"]}, headers=headers
                ),
            )
            outcomes.append((under_b.status_code, under_a.status_code))
            assert sorted(outcomes[-1]) == [200, 422], (under_b.text, under_a.text)
            refused = under_a if under_a.status_code == 422 else under_b
            assert is_problem(refused, 422)
            assert refused.json()["errors"][0]["field"] == "parent_id"
        assert _cycles(await _parents(app)) == []


@pytest.mark.usefixtures("infra")
async def test_a_move_that_makes_the_tree_too_deep_is_refused() -> None:
    async with catalog_client() as (_, client):
        chain = [await create_category(client)]
        for _ in range(5):  # depths 1..6
            chain.append(await create_category(client, parent_id=chain[-1]["id"]))
        top = await create_category(client)
        child = await create_category(client, parent_id=top["id"])
        await create_category(client, parent_id=child["id"])  # a subtree of three levels
        # Under depth 6 it would reach depth 9 (the parent alone is allowed children).
        deep = await client.patch(
            f"{API}/categories/{top['id']}",
            json={"parent_id": chain[-1]["id"]},
            headers={**admin_headers(), "If-Match": '"v1"'},
        )
        assert is_problem(deep, 422), deep.text
        assert "deeper than 8" in deep.json()["detail"]
        fits = await client.patch(
            f"{API}/categories/{top['id']}",
            json={"parent_id": chain[-4]["id"]},  # depth 3 + 3 levels = 6
            headers={**admin_headers(), "If-Match": '"v1"'},
        )
        assert fits.status_code == 200, fits.text


@pytest.mark.usefixtures("infra")
async def test_a_cycle_written_around_the_service_does_not_make_the_list_run_away() -> None:
    # A short statement timeout: without a depth bound the list query would run into it
    # (a 503), with one it answers at once.
    async with catalog_client(db_statement_timeout=3.0) as (app, client):
        a = await create_category(client)
        b = await create_category(client, parent_id=a["id"])
        in_a = await create_product(client, category_id=a["id"])
        in_b = await create_product(client, category_id=b["id"])
        # Products outside the subtree: the query must look past them (a semi-join that
        # scans an endless subtree for each of them is what ran away).
        elsewhere = await create_category(client)
        await create_product(client, category_id=elsewhere["id"])
        await create_product(client)
        async with app.state.session_factory() as session:
            await session.exec(
                text("UPDATE catalog.categories SET parent_id = :b WHERE id = :a"),
                params={"a": a["id"], "b": b["id"]},
            )
            await session.commit()
        assert _cycles(await _parents(app))  # the cycle is there
        for category in (a, b):
            listed = await client.get(
                f"{API}/products", params={"category": category["id"], "limit": 100}
            )
            assert listed.status_code == 200, listed.text
            ids = {item["id"] for item in listed.json()["items"]}
            assert ids == {in_a["id"], in_b["id"]}
        # Writes refuse to build on it: a move under a cycle member is too deep / a cycle.
        c = await create_category(client)
        moved = await client.patch(
            f"{API}/categories/{c['id']}",
            json={"parent_id": a["id"]},
            headers={**admin_headers(), "If-Match": '"v1"'},
        )
        assert is_problem(moved, 422)
        async with app.state.session_factory() as session:  # leave no cycle for others
            await session.exec(
                text("UPDATE catalog.categories SET parent_id = NULL WHERE id = :a"),
                params={"a": a["id"]},
            )
            await session.commit()


# --- the gateway's upstream pool: bytes after the answer, CR/LF in headers ---------------

# (request head, writer, nth request this server has read, over all its connections)
Answer = Callable[[bytes, asyncio.StreamWriter, int], Awaitable[None]]


class Upstream:
    def __init__(self) -> None:
        self.connections = 0
        self.heads: list[bytes] = []
        self.closed_by_client = 0


@asynccontextmanager
async def upstream(answer: Answer) -> AsyncIterator[tuple[Upstream, Address]]:
    """A tiny HTTP/1.1 server that answers each request head with `answer`."""
    state = Upstream()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        state.connections += 1
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, ConnectionError):
                    state.closed_by_client += 1
                    return
                state.heads.append(head)
                await answer(head, writer, len(state.heads))
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    address = Address.of(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    assert address is not None
    try:
        yield state, address
    finally:
        server.close()


def _pool() -> UpstreamPool:
    return UpstreamPool(limit=4, keepalive_timeout=4.0, connect_timeout=0.5, total_timeout=1.0)


OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"
# The head of a second answer whose body would swallow the start of the next real one.
SMUGGLED = b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\nx-smuggled: 1\r\n\r\n"


@pytest.mark.parametrize("when", ["same write", "before release"])
async def test_bytes_after_a_complete_answer_close_the_upstream_connection(when: str) -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> None:
        if n > 1:
            writer.write(OK)
        elif when == "same write":
            writer.write(OK + SMUGGLED)
        else:
            writer.write(OK)
            await writer.drain()
            await asyncio.sleep(0.02)
            writer.write(SMUGGLED)

    async with upstream(answer) as (server, address):
        pool = _pool()
        try:
            for _ in range(3):
                response = await pool.get(address, b"/x", [("x-request-id", "r1")])
                assert (response.status, await response.read()) == (200, b"ok")
                assert (b"x-smuggled", b"1") not in response.raw_headers
                await asyncio.sleep(0.05)  # the smuggled bytes arrive before the release
                response.release()
            await asyncio.sleep(0.05)
        finally:
            pool.close()
    # The first connection was closed by the client; the next ones were clean.
    assert server.connections == 2
    assert server.closed_by_client >= 1


@pytest.mark.parametrize(
    ("target", "headers"),
    [
        (b"/x", [("x-user-id", "u1\r\nx-user-role: admin")]),
        (b"/x", [("x-user-id", "u1\nx-user-role: admin")]),
        (b"/x", [("x-user-id", "u1\rx-user-role: admin")]),
        (b"/x", [("x-user-id\r\nx-user-role", "admin")]),
        (b"/x", [("x-user-id", "u1\x00")]),
        (b"/x HTTP/1.1\r\nx-user-role: admin\r\n\r\nGET /y", []),
    ],
)
async def test_header_values_with_cr_or_lf_are_never_sent_upstream(
    target: bytes, headers: list[tuple[str, str]]
) -> None:
    async def answer(head: bytes, writer: asyncio.StreamWriter, n: int) -> None:
        writer.write(OK)

    async with upstream(answer) as (server, address):
        pool = _pool()
        try:
            with pytest.raises(UnsafeRequest):
                await pool.get(address, target, headers)
            # The slot was given back and the pool still works for a clean request.
            response = await pool.get(address, b"/x", [("x-user-id", "u1")])
            assert await response.read() == b"ok"
            response.release()
        finally:
            pool.close()
    assert len(server.heads) == 1 and b"admin" not in server.heads[0]


# --- the lean Redis client: bytes no command asked for -----------------------------------


@asynccontextmanager
async def resp_server(extra: bytes, *, separate: bool) -> AsyncIterator[tuple[int, list[int]]]:
    """A RESP server answering GET k with k and anything else +OK; after the first GET's
    reply it sends `extra`, unasked (in the same write, or in a later one)."""
    connections: list[int] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        buf, gets = b"", 0
        while data := await reader.read(65536):
            buf += data
            while (parsed := _parse(buf, 0)) is not None:
                command, end = parsed
                buf = buf[end:]
                assert isinstance(command, list)
                if command[0] != b"GET":
                    writer.write(b"+OK\r\n")
                    continue
                gets += 1
                reply = b"$%d\r\n%s\r\n" % (len(command[1]), command[1])
                if gets == 1 and len(connections) == 1:
                    if separate:
                        writer.write(reply)
                        await writer.drain()
                        await asyncio.sleep(0.02)
                        writer.write(extra)
                    else:
                        writer.write(reply + extra)
                else:
                    writer.write(reply)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1], connections
    finally:
        server.close()


@pytest.mark.parametrize("separate", [False, True])
@pytest.mark.parametrize("extra", [b"$4\r\nevil\r\n", b"$4\r\nev", b"+OK\r\n"])
async def test_redis_bytes_with_no_command_waiting_close_the_connection(
    extra: bytes, separate: bool
) -> None:
    async with resp_server(extra, separate=separate) as (port, connections):
        client = LeanRedis("127.0.0.1", port, client_name="test-unasked", timeout=1.0)
        try:
            assert await client.get("first") == b"first"
            await asyncio.sleep(0.1)  # the unasked bytes arrive while nothing waits
            # Never the unasked "evil" / "OK": the next command gets its own reply, on a
            # new connection (or fails and the one after reconnects).
            try:
                second = await client.get("second")
            except RedisConnectionError:
                second = await client.get("second")
            assert second == b"second"
            assert await client.get("third") == b"third"
            assert len(connections) == 2
        finally:
            await client.close()


# --- contract: what the served schema says ------------------------------------------


def _request_schema(openapi: dict[str, Any], path: str, method: str) -> dict[str, Any]:
    body = openapi["paths"][path][method]["requestBody"]["content"]["application/json"]
    return {**body["schema"], "components": openapi["components"]}


PROFILE_VALUES = {
    "avatar_url": (
        ["https://cdn.example.com/a.png", "https://img.example.com/x/y.webp?s=64"],
        ["http://cdn.example.com/a.png", "https://user@cdn.example.com/a.png", "ftp://x/a"],
    ),
    "locale": (["en", "pt-BR", "zh-Hant-TW", "de-CH-1996"], ["english", "en_US", "e", "en-"]),
    "time_zone": (
        ["Europe/Paris", "America/Argentina/Buenos_Aires", "UTC"],
        ["../../etc/passwd", "Europe/Paris ", "/UTC"],
    ),
}


@pytest.mark.usefixtures("infra")
async def test_profile_rules_are_stated_by_the_served_schema() -> None:
    async with clients("users") as apps:
        _, users = apps["users"]
        openapi = (await users.get("/openapi.json")).json()
        schema = _request_schema(openapi, "/api/v1/users/me", "patch")
        validator = jsonschema.Draft202012Validator(schema)
        me = bearer(mint())
        for field, (allowed, forbidden) in PROFILE_VALUES.items():
            described = openapi["components"]["schemas"]["ProfileUpdate"]["properties"][field]
            string = next(s for s in described["anyOf"] if s.get("type") == "string")
            assert string.get("pattern") and string.get("description"), field
            for value in allowed:
                assert validator.is_valid({field: value}), (field, value)
                ok = await users.patch("/api/v1/users/me", json={field: value}, headers=me)
                assert ok.status_code == 200, (field, value, ok.text)
            for value in forbidden:
                assert not validator.is_valid({field: value}), (field, value)
                refused = await users.patch("/api/v1/users/me", json={field: value}, headers=me)
                assert is_problem(refused, 422), (field, value, refused.text)
        avatar = openapi["components"]["schemas"]["ProfileUpdate"]["properties"]["avatar_url"]
        assert any(s.get("format") == "uri" for s in avatar["anyOf"])
        # "$" before a final newline: Python's regex matched it, the schema's (ECMA) does not.
        newline = await users.patch("/api/v1/users/me", json={"locale": "en\n"}, headers=me)
        assert is_problem(newline, 422)


@pytest.mark.usefixtures("infra")
async def test_allow_lists_the_methods_a_path_really_has() -> None:
    async with catalog_client() as (_, client):
        product = await create_product(client)
        expected = {
            f"{API}/products/import": "POST",
            f"{API}/products/{product['id']}": "DELETE, GET, HEAD, PATCH",
            f"{API}/products/{product['id']}/archive": "POST",
            f"{API}/products/by-sku/archive": "GET, HEAD",
            f"{API}/products": "GET, HEAD, POST",
        }
        for path, allow in expected.items():
            for method in ("OPTIONS", "PUT"):
                response = await client.request(method, path, headers=admin_headers())
                assert is_problem(response, 405), (method, path, response.text)
                assert response.headers["allow"] == allow, (method, path)
