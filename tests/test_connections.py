"""Connection limits (``service/server/connections.py``): request heads bounded in size and time, open connections
bounded below the descriptor limit, uploads bounded in pace (``service/http/uploads.py``); a real server, raw
sockets playing the hostile clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.server.connections import LINGER_RATE, LINGER_S
from tests.helpers import hostile_inputs as corpus
from tests.helpers.raw_http import read_rest
from tests.helpers.server import ServiceProcess

pytestmark = pytest.mark.reliability

HEAD_TIMEOUT_S = 1.0
GOOD_JPEG = corpus.jpeg(80, 60)


@pytest.fixture(scope="module")
def server(constant_model_path: Path) -> Iterator[ServiceProcess]:
    with ServiceProcess(constant_model_path, header_timeout_s=HEAD_TIMEOUT_S) as running:
        yield running


def connect(server: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def answer(sock: socket.socket, timeout: float = 10.0) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except (TimeoutError, ConnectionResetError):
        pass
    return b"".join(chunks)


def still_serving(server: ServiceProcess) -> bool:
    with server.client(timeout=10) as client:
        return client.get("/healthz").status_code == 200


def test_an_endless_header_is_refused_long_before_its_end(server: ServiceProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        sent = 0
        while sent < 64 * 2**20:  # the client would go on for 64 MB
            try:
                sock.sendall(b"a" * 65536)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += 65536
            sock.setblocking(False)
            try:
                if sock.recv(1, socket.MSG_PEEK):
                    break  # the server has answered
            except BlockingIOError:
                pass
            finally:
                sock.setblocking(True)
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert b"request_header_fields_too_large" in reply
    assert sent < 16 * 2**20, sent  # answered while the client was still sending (socket buffers aside)
    assert still_serving(server)


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(b"".join(b"X-F%d: v\r\n" % i for i in range(150)), id="too many fields"),
        # the head limit holds however the head arrives: 60 kB of fields in one write (each well under it)
        pytest.param(b"".join(b"X-F%d: %s\r\n" % (i, b"v" * 5000) for i in range(12)), id="large, in one write"),
    ],
)
def test_an_oversized_head_is_a_431(server: ServiceProcess, fields: bytes) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert still_serving(server)


def test_a_silent_connection_is_closed_after_the_head_timeout(server: ServiceProcess) -> None:
    with connect(server) as sock:
        start = time.monotonic()
        reply = answer(sock, timeout=10)
        waited = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    assert HEAD_TIMEOUT_S - 0.1 <= waited < HEAD_TIMEOUT_S + 3, waited


def test_a_head_sent_a_byte_at_a_time_is_cut_off(server: ServiceProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        start, closed = time.monotonic(), False
        while time.monotonic() - start < 6:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            sock.settimeout(0.3)
            try:
                sock.recv(65536)  # the 408, or the end of the connection
            except TimeoutError:
                continue
            closed = True
            break
        cut_after = time.monotonic() - start
    assert closed and cut_after < HEAD_TIMEOUT_S + 3, cut_after


def test_a_kept_alive_connection_gets_a_fresh_head_timeout_per_request(server: ServiceProcess) -> None:
    with connect(server) as sock:
        sock.settimeout(10)
        for _ in range(3):
            time.sleep(HEAD_TIMEOUT_S * 0.6)  # more than the timeout in all, less for each request
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            reply = b""
            while not reply.endswith(b'{"status":"ok"}'):
                chunk = sock.recv(65536)
                assert chunk, f"closed after {reply[:200]!r}"
                reply += chunk
            assert reply.startswith(b"HTTP/1.1 200"), reply[:200]


def test_silent_connections_beyond_the_descriptor_limit_do_not_lock_clients_out(constant_model_path: Path) -> None:
    """Under a 128-descriptor limit, 300 connections that never send a byte: good requests are still answered
    (the oldest silent connections make room). Without the cap the server runs out of descriptors."""
    with ServiceProcess(constant_model_path, fd_limit=128, header_timeout_s=60) as server:
        silent = []
        try:
            for _ in range(300):
                silent.append(connect(server))
            time.sleep(0.5)
            for _ in range(3):
                with server.client(timeout=10) as client:
                    assert client.get("/healthz").status_code == 200
        finally:
            for sock in silent:
                sock.close()
        assert "Too many open files" not in server.log


def test_a_trickled_upload_is_cut_off_and_frees_its_slot(constant_model_path: Path) -> None:
    """One prediction slot, held by a client sending a byte every quarter second: after the grace period it
    gets a 408 (not the 504 of the 30 s request timeout), and the next client is served."""
    with ServiceProcess(constant_model_path, max_concurrency=1, max_queue=4, upload_grace_s=1) as server:
        with connect(server) as sock:
            sock.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
            )
            start, reply = time.monotonic(), b""
            while time.monotonic() - start < 8 and not reply:
                try:
                    sock.sendall(b"\xff")
                except (BrokenPipeError, ConnectionResetError):
                    break
                sock.settimeout(0.25)
                try:
                    reply = sock.recv(65536)
                except TimeoutError:
                    continue
            cut_after = time.monotonic() - start
            reply += read_rest(sock, reply)  # the head and the body may come in separate packets
            closed = closed_within(sock, 8.0)  # refused: the connection is not left open for more trickling
        assert closed
        assert reply.startswith(b"HTTP/1.1 408"), reply[:300]
        assert b"upload_too_slow" in reply
        assert cut_after < 4, cut_after
        with server.client(timeout=10) as client:
            good = client.post("/predict", content=GOOD_JPEG, headers={"content-type": "image/jpeg"})
            assert good.status_code == 200, good.text


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """True when the server ends the connection (EOF or reset) within ``seconds`` while the client keeps
    trickling a byte every quarter second (each byte would reset an idle timer); whatever it sends first."""
    deadline = time.monotonic() + seconds
    sock.settimeout(0.25)
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"x")
            if not sock.recv(65536):
                return True
        except (BrokenPipeError, ConnectionResetError):
            return True
        except TimeoutError:
            continue
    return False


def test_a_body_the_route_does_not_read_is_not_waited_for(server: ServiceProcess) -> None:
    """A gigabyte announced to a route that answers without reading it, trickled a byte at a time: the answer
    comes and the connection closes (it used to stay open for as long as the bytes kept coming)."""
    with connect(server) as sock:
        sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nx")
        assert closed_within(sock, 8.0)
    assert still_serving(server)


def test_an_endless_chunked_trailer_is_cut_off(server: ServiceProcess) -> None:
    """After the last chunk, one trailer line that never ends: refused once it passes the head limit."""
    with connect(server) as sock:
        sock.sendall(
            b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5\r\nhello\r\n0\r\nX-Trailer: "
        )
        sent, cut = 0, False
        while sent < 8 * 2**20:
            try:
                sock.sendall(b"a" * 16384)
            except (BrokenPipeError, ConnectionResetError):
                cut = True
                break
            sent += 16384
        assert cut or closed_within(sock, 8.0)
    assert sent < 4 * 2**20, sent
    assert still_serving(server)


@pytest.mark.parametrize("path", ["/healthz", "/", "/readyz", "/model"])
def test_head_works_wherever_get_does_without_a_banner(server: ServiceProcess, path: str) -> None:
    with server.client(timeout=10) as client:
        got = client.get(path)
        head = client.head(path)
    assert head.status_code == got.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == got.headers["content-length"]
    assert "server" not in head.headers and "server" not in got.headers  # no "server: uvicorn" banner


def test_head_where_get_does_not_exist_is_a_405_and_refusals_carry_no_banner(server: ServiceProcess) -> None:
    with server.client(timeout=10) as client:
        assert client.head("/predict").status_code == 405
    with connect(server) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-F: v\r\n" * 150 + b"\r\n")
        reply = answer(sock)
    assert reply.startswith(b"HTTP/1.1 431") and b"\r\nserver:" not in reply.lower()


def test_a_client_still_sending_its_upload_gets_the_early_answer(server: ServiceProcess) -> None:
    """A route that answers without reading the body: the connection lingers (reading and dropping) long enough
    for a client that sends its whole upload before reading to get that answer, not a reset."""
    with server.client(timeout=10) as client:
        for _ in range(3):
            answer = client.post("/healthz", content=b"x" * (8 * 2**20))
            assert answer.status_code == 405, answer.text[:200]


def test_connections_lingering_after_their_answer_make_room(constant_model_path: Path) -> None:
    """Under a 128-descriptor limit, 300 clients announcing a gigabyte to a route that answers without reading
    it, each trickling on: the lingering connections are the first closed to make room, so /healthz answers."""
    with ServiceProcess(constant_model_path, fd_limit=128) as server:
        trickling = []
        try:
            for _ in range(300):
                sock = connect(server)
                sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\nx")
                trickling.append(sock)
            for _ in range(5):
                with server.client(timeout=10) as client:
                    assert client.get("/healthz").status_code == 200
        finally:
            for sock in trickling:
                sock.close()
        assert "Too many open files" not in server.log


def test_unread_bodies_are_dropped_at_a_bounded_rate_while_the_service_answers(server: ServiceProcess) -> None:
    """Four clients each pushing 64 MiB as fast as loopback goes to a route that answers without reading it: the
    lingering connections together drop at most LINGER_RATE a second (reading pauses; the senders wait on their
    own sockets), so in the 2 s of lingering far less than the 256 MiB offered gets in (unpaced, loopback took it
    all). /healthz answers meanwhile."""
    chunk = b"x" * (1 << 20)
    sent = [0] * 4

    def flood(k: int) -> None:
        with connect(server) as sock:
            sock.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (64 << 20))
            sock.settimeout(LINGER_S + 3)
            try:
                for _ in range(64):
                    sock.sendall(chunk)
                    sent[k] += len(chunk)
            except OSError:  # closed after lingering: the rest was never taken
                pass

    threads = [threading.Thread(target=flood, args=(k,)) for k in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    assert still_serving(server)
    for thread in threads:
        thread.join(LINGER_S + 10)
    # what the server dropped, plus what the sockets' buffers held (at most a few MiB each on loopback)
    assert sum(sent) < LINGER_RATE * (LINGER_S + 0.5) + 4 * (12 << 20), [s >> 20 for s in sent]
    assert still_serving(server)
