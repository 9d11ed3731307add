"""Reliability figures from real servers: hostile inputs, fuzzed images, a load run, fault scenarios and attacks.

    .venv/bin/python scripts/reliability_report.py            # writes bench/results/reliability.json, prints markdown
    .venv/bin/python scripts/reliability_report.py --readme   # also rewrites docs/reliability.md's figures

Every server is ``python -m service`` on 127.0.0.1 with a tiny hand-built ONNX model (the figures are about the
service's behaviour, not the network's speed), except the mixed load of the attacks, which runs the shipped model
(the good clients' latency is the point). Takes about five minutes on two cores; run it on an otherwise idle
machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import sys
import tempfile
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import onnxruntime  # noqa: E402
import psutil  # noqa: E402

from pose.errors import PoseError  # noqa: E402
from pose.layout import MPII  # noqa: E402
from service.http.errors import ApiError  # noqa: E402
from service.imaging.decode import decode_rgb, open_image  # noqa: E402
from tests.helpers import attacks as attack  # noqa: E402
from tests.helpers import fault_models  # noqa: E402
from tests.helpers import hostile_inputs as corpus  # noqa: E402
from tests.helpers.faults import BAD_MODELS, PNG, abandon_upload, log_lines, post_green  # noqa: E402
from tests.helpers.load import run_load, wait_in_flight  # noqa: E402
from tests.helpers.models import constant_model, flip_symmetric_peaks  # noqa: E402
from tests.helpers.server import ServiceProcess, run_service_once  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "reliability.json"
README = ROOT / "docs" / "reliability.md"
SECTION = "<!-- section: reliability (owner: reliability) -->"
LIMITS = {"max_upload_bytes": 2_000_000, "max_pixels": 4_000_000, "max_files": 4}
LOAD = {"clients": 64, "duration_s": 10.0, "max_concurrency": 2, "max_queue": 4, "rss_bound_mib": 300}
GOOD = corpus.jpeg(120, 90, seed=3)


def _post_good(server: ServiceProcess) -> bool:
    with server.client() as client:
        return client.post("/predict", content=GOOD, headers={"content-type": "image/jpeg"}).status_code == 200


# --------------------------------------------------------------------------- hostile inputs
def hostile(model: Path) -> dict[str, Any]:
    cases = corpus.corpus(max_files=LIMITS["max_files"])
    rows, documented, served_after, server_errors = [], 0, 0, 0
    with ServiceProcess(model, **LIMITS) as server, server.client() as client:
        for case in cases:
            response = client.post(case.path, **case.request_kwargs())
            code = response.json().get("error", {}).get("code") if response.status_code >= 400 else None
            ok = response.status_code == case.status and (not case.codes or code in case.codes)
            documented += ok
            server_errors += response.status_code >= 500
            served_after += _post_good(server)
            rows.append({"input": case.name, "expected": case.status, "got": response.status_code, "code": code})
    return {
        "inputs": len(cases),
        "as_documented": documented,
        "server_errors": server_errors,
        "good_request_served_after": served_after,
        "cases": rows,
    }


# --------------------------------------------------------------------------- fuzzing
def _mutate(data: bytes, rng: random.Random) -> bytes:
    buffer = bytearray(data)
    for _ in range(rng.randint(1, 6)):
        if not buffer:
            break
        at = rng.randrange(len(buffer))
        kind = rng.choice(["flip", "byte", "truncate", "splice", "duplicate"])
        if kind == "flip":
            buffer[at] ^= 1 << rng.randrange(8)
        elif kind == "byte":
            buffer[at] = rng.choice([0, 0xFF, 0x7F, 0x80, rng.randrange(256)])
        elif kind == "truncate":
            del buffer[at:]
        elif kind == "splice":
            buffer[at:at] = rng.randbytes(rng.randint(1, 64))
        else:
            buffer[at:at] = buffer[at : at + rng.randint(1, 256)]
    return bytes(buffer)


def _seeds() -> list[tuple[bytes, str]]:
    rgb = corpus.rgb_image(40, 28)
    return [
        (corpus.jpeg(40, 28), "image/jpeg"),
        (corpus.png(40, 28), "image/png"),
        (corpus.encode(rgb, "WEBP"), "image/webp"),
        (corpus.encode(rgb, "BMP"), "image/bmp"),
        (corpus.encode(rgb, "TIFF"), "image/tiff"),
        (corpus.animated_gif(2), "image/gif"),
        (corpus.png_16bit_rgb(20, 14), "image/png"),
        (corpus.cmyk_jpeg(), "image/jpeg"),
        (corpus.palette_png_with_transparency(), "image/png"),
    ]


def fuzz(model: Path, decode_inputs: int, live_inputs: int) -> dict[str, Any]:
    """Mutated images through the decoder in-process, then a share of them through a live server."""
    warnings.simplefilter("ignore")  # Pillow warns about every corrupt EXIF block
    rng = random.Random(8)
    seeds = _seeds()
    outcomes: Counter = Counter()
    unexpected: list[str] = []
    for i in range(decode_inputs):
        data, content_type = rng.choice(seeds)
        data = rng.randbytes(rng.randint(0, 2048)) if i % 5 == 0 else _mutate(data, rng)
        try:
            decode_rgb(open_image(data, LIMITS["max_pixels"], content_type), (64, 64))
            outcomes["decoded"] += 1
        except PoseError as exc:  # the service's own refusal: a 4xx through the HTTP layer's table
            outcomes[f"{ApiError.from_domain(exc).status} {type(exc).__name__}"] += 1
        except Exception as exc:  # noqa: BLE001 - exactly what the figure counts
            unexpected.append(f"{type(exc).__name__}: {exc}"[:200])
    statuses: Counter = Counter()
    with ServiceProcess(model, **LIMITS) as server, server.client() as client:
        for _ in range(live_inputs):
            data, content_type = rng.choice(seeds)
            response = client.post("/predict", content=_mutate(data, rng), headers={"content-type": content_type})
            statuses[response.status_code] += 1
        served_after = _post_good(server)
    return {
        "decode_inputs": decode_inputs,
        "decode_outcomes": dict(outcomes),
        "decode_unexpected_exceptions": len(unexpected),
        "unexpected_examples": unexpected[:5],
        "live_inputs": live_inputs,
        "live_statuses": {str(k): v for k, v in sorted(statuses.items())},
        "live_server_errors": sum(v for k, v in statuses.items() if k >= 500),
        "good_request_served_after": served_after,
    }


# --------------------------------------------------------------------------- load
def load(model: Path) -> dict[str, Any]:
    limits = {"max_concurrency": LOAD["max_concurrency"], "max_queue": LOAD["max_queue"], "request_timeout_s": 20}
    with ServiceProcess(model, **limits) as server:
        assert server.process is not None
        idle_rss = psutil.Process(server.process.pid).memory_info().rss
        result = run_load(server, corpus.jpeg(320, 240, seed=5), LOAD["clients"], LOAD["duration_s"])
        served_after = sum(_post_good(server) for _ in range(10))
    served = sorted(line["duration_ms"] for line in log_lines(server) if line["status"] == 200)
    other = {str(k): v for k, v in result.statuses.items() if k not in (200, 503)}
    return {
        **LOAD,
        "requests": result.requests,
        "ok_200": result.statuses[200],
        "rejected_503": result.statuses[503],
        "other_statuses": other,
        "transport_errors": result.transport_errors,
        "rejections_without_retry_after": result.missing_retry_after,
        "throughput_ok_per_s": round(result.statuses[200] / LOAD["duration_s"], 1),
        "latency_ok_p50_ms": round(result.latency_ms(0.5), 1),
        "latency_ok_p99_ms": round(result.latency_ms(0.99), 1),
        "server_time_ok_p50_ms": round(served[len(served) // 2], 1) if served else None,
        "server_time_ok_p99_ms": round(served[int(0.99 * (len(served) - 1))], 1) if served else None,
        "idle_rss_mib": round(idle_rss / 2**20, 1),
        "peak_rss_mib": round(result.peak_rss / 2**20, 1),
        "good_requests_served_after": f"{served_after}/10",
    }


# --------------------------------------------------------------------------- faults
def _scenario(name: str, survived: bool, detail: str) -> dict[str, Any]:
    return {"fault": name, "survived": bool(survived), "detail": detail}


def faults(model: Path, workdir: Path) -> list[dict[str, Any]]:
    rows = []
    for kind, (make, reason) in BAD_MODELS.items():
        path = make(workdir / f"bad-{kind.replace(' ', '-')}.onnx")
        result = run_service_once(path, timeout=60)
        message = next((line for line in result.stderr.splitlines() if line.startswith("error:")), "")
        message = message.replace(str(workdir), "<tmp>")
        ok = result.returncode != 0 and reason in message and "Traceback" not in result.stderr
        rows.append(_scenario(f"model {kind} at start", ok, f"exit {result.returncode}: {message[:120]}"))

    fail_model = fault_models.write_model(workdir / "fail.onnx", "fail")
    # ONNX Runtime: the model's failure is an ONNX Runtime kernel error (OpenVINO computes the same graph)
    with ServiceProcess(fail_model, engine="onnxruntime") as server, server.client() as client:
        statuses = []
        for _ in range(5):
            statuses.append(client.post("/predict", content=fault_models.green_png(), headers=PNG).status_code)
            statuses.append(client.post("/predict", content=fault_models.grey_png(), headers=PNG).status_code)
    ok = statuses == [500, 200] * 5
    rows.append(_scenario("ONNX Runtime error mid-request (x5)", ok, f"statuses {statuses}"))

    slow = fault_models.write_model(workdir / "slow.onnx", "slow", slow_iterations=80)
    server = ServiceProcess(slow, shutdown_timeout_s=30, max_concurrency=8).start()
    try:
        with ThreadPoolExecutor(6) as pool:
            futures = [pool.submit(post_green, server.url) for _ in range(6)]
            wait_in_flight(server, 6)
            assert server.process is not None
            server.process.send_signal(signal.SIGTERM)
            results = [f.result()[0] for f in futures]
        returncode = server.process.wait(60)
    finally:
        server.stop()
    rows.append(
        _scenario(
            "SIGTERM with 6 requests in flight",
            results == [200] * 6 and returncode == 0,
            f"in-flight answers {results}, exit code {returncode}",
        )
    )

    with ServiceProcess(model) as server:
        assert server.process is not None
        proc = psutil.Process(server.process.pid)
        for i in range(8):
            abandon_upload(server.port, multipart=bool(i % 2), reset=bool(i % 3))
        time.sleep(0.3)
        fds, rss = proc.num_fds(), proc.memory_info().rss
        for i in range(100):
            abandon_upload(server.port, multipart=bool(i % 2), reset=bool(i % 3))
        served = _post_good(server)
        time.sleep(0.3)
        d_fds, d_rss = proc.num_fds() - fds, (proc.memory_info().rss - rss) / 2**20
    rows.append(
        _scenario(
            "100 clients vanishing mid-upload",
            served and d_fds <= 2 and d_rss < 30,
            f"open fds {d_fds:+d}, RSS {d_rss:+.1f} MiB, next request {'served' if served else 'FAILED'}",
        )
    )

    with ServiceProcess(model, max_concurrency=1, max_queue=0, request_timeout_s=1.5) as server:
        head = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/jpeg\r\nContent-Length: 100000\r\n\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as slowloris:
            slowloris.sendall(head)
            time.sleep(0.3)
            with server.client() as client:
                busy = client.post("/predict", content=GOOD, headers={"content-type": "image/jpeg"})
            answer = slowloris.recv(4096)
        served = _post_good(server)
    rows.append(
        _scenario(
            "slow upload holding the only slot",
            busy.status_code == 503 and answer.startswith(b"HTTP/1.1 504") and served,
            f"other client {busy.status_code}, slow client {answer[9:12].decode()}, then "
            f"{'served' if served else 'FAILED'}",
        )
    )
    return rows


# --------------------------------------------------------------------------- attacks
PHOTO = ROOT / "tests" / "data" / "000000000785.jpg"
SHIPPED_MODEL = ROOT / "weights" / "default.onnx"


def attacks(model: Path) -> dict[str, Any]:
    """The second attack pass (tests/helpers/attacks.py), each on a fresh server with default settings."""
    photo = PHOTO.read_bytes()
    shipped = {"intra_op_threads": 0}  # the service's defaults (the test helper pins one thread otherwise)
    return {
        "header_bombs": attack.header_bomb_attack(model),
        "trickle": attack.trickle_attack(model),
        "trailer": attack.trailer_attack(model),
        "big_head": attack.big_head_attack(model),
        "mixed_load": {
            "good_only": attack.mixed_load_attack(SHIPPED_MODEL, photo, hostile=0, **shipped),
            "with_header_bombs": attack.mixed_load_attack(SHIPPED_MODEL, photo, **shipped),
            "with_same_size_garbage": attack.mixed_load_attack(
                SHIPPED_MODEL, photo, uploads=attack.same_size_garbage(), **shipped
            ),
        },
    }


def attack_lines(a: dict[str, Any]) -> list[str]:
    lines = [
        "Attacks (`tests/helpers/attacks.py`), each on a fresh server with default settings:",
        "",
        "| Attack | Target | Result | Met |",
        "| --- | --- | --- | --- |",
    ]
    for row in a["header_bombs"]:
        lines.append(
            f"| {row['input']} ({row['megabytes']} MB) | answered within 10 s, server + workers +400 MB at most, "
            f"1 CPU-second at most after the answer | {row['status']} `{row['code']}` in {row['seconds']} s, "
            f"+{row['grown_mb']} MB, {row['cpu_s_after_answer']} CPU-s after | {'yes' if row['met'] else 'NO'} |"
        )
    t, tr, h = a["trickle"], a["trailer"], a["big_head"]
    lines += [
        f"| {t['connections']} connections announcing 1 GB to `POST /healthz`, a byte every 3 s, 1,024 descriptors "
        f"| `/healthz` keeps answering | probes {t['probe_statuses']}, worst {t['worst_probe_s']} s; "
        f"{t['still_open_at_end']} still open after 20 s | {'yes' if t['met'] else 'NO'} |",
        f"| chunked upload with a trailer line that never ends (up to 100 MB) | `/healthz` under 1 s, +100 MB at "
        f"most | cut off after {tr['trailer_sent_mb']} MB sent, probes {tr['probe_statuses']}, worst "
        f"{tr['worst_probe_s']} s, +{tr['grown_mb']} MB | {'yes' if tr['met'] else 'NO'} |",
        f"| a {h['head_kb']} kB request head in one write | 431 | {h['status']} | {'yes' if h['met'] else 'NO'} |",
    ]
    m = a["mixed_load"]
    lines += [
        "",
        "Mixed load on the shipped model (no person detector, `POSE_INTRA_OP_THREADS` default), 48 closed-loop "
        "clients posting the COCO photo for 30 s, alone and beside 16 clients posting the header bombs above (or, as "
        "a control, random bytes of the same sizes, refused as soon as they are read):",
        "",
        "| hostile clients | good answers/s | good p99 | good answers | hostile answers | other 5xx | met |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, label in (("good_only", "none"), ("with_header_bombs", "16, header bombs"),
                        ("with_same_size_garbage", "16, same-size random bytes")):  # fmt: skip
        r = m[name]
        lines.append(
            f"| {label} | {r['good_per_s']} | {r['good_p99_s']} s | {r['good_statuses']} | "
            f"{r['hostile_statuses'] or '-'} | {r['server_errors']} | {'yes' if r['met'] else 'NO'} |"
        )
    lines += [
        "",
        "The header bombs cost what any upload of their size costs (the control row): a raw upload's header is "
        "checked as its first 64 kB arrive, so a bomb is refused in milliseconds. What was left was bandwidth: each "
        "refused upload (and each turned away with a 503) used to be read and dropped at loopback speed, about 1 GB/s "
        "for 16 clients, on the event loop that serves everyone. Now all lingering connections together drop at most "
        "32 MiB/s (`service/server/pace.py`): reading pauses and the senders wait on their own sockets, so a hostile "
        "client gets its connection closed after 2 s (the `error` answers) and costs almost nothing. The 503s are "
        "the back-pressure's (`POSE_MAX_CONCURRENCY` 8 + `POSE_MAX_QUEUE` 32 places for 48 closed-loop clients), "
        "each with `Retry-After`, as many with the good clients alone; no other 5xx.",
    ]
    return lines


# --------------------------------------------------------------------------- output
def markdown(report: dict[str, Any]) -> str:
    h, f, ld, fl = report["hostile"], report["fuzz"], report["load"], report["faults"]
    survived = sum(row["survived"] for row in fl)
    lines = [
        "The service bounds its work and keeps answering (pure ASGI middlewares in `service/http/middleware/`):",
        "",
        "- **Back-pressure**: at most `POSE_MAX_CONCURRENCY` prediction requests in flight and `POSE_MAX_QUEUE` "
        "waiting; beyond that an immediate `503` with `Retry-After` (a full dynamic-batching queue answers the same). "
        "`POSE_REQUEST_TIMEOUT_S` (queueing included) answers `504` and frees the slot. Health, readiness and metrics "
        "are never limited.",
        "- **API key** (optional): with `POSE_API_KEY` set, everything but the demo page `/` (exact path; a static "
        "page with no data that asks for the key and sends it as `X-API-Key`), `/healthz`, `/readyz`, `/docs` (Swagger "
        "UI served from the service itself, no CDN: it works offline) and "
        "`/openapi.json` needs `Authorization: Bearer <key>` or `X-API-Key: <key>` (constant-time comparison), else "
        "`401`, whatever the method (`OPTIONS` and `HEAD` included). The key appears in no log line and no error "
        "body. The demo page is served with a Content-Security-Policy that runs only its own inline script and "
        "style (by hash), connects only to this origin and forbids framing, plus `X-Content-Type-Options: nosniff`.",
        "- **Connections** (`service/server/connections.py`, uvicorn's httptools protocol with the limits uvicorn "
        "lacks): "
        "a request head larger than `POSE_MAX_HEADER_BYTES` (32 KiB) or with more than 100 fields is a `431` before "
        "the rest is read; a head not complete `POSE_HEADER_TIMEOUT_S` (10 s) after it is due, a `408`; past "
        "`POSE_MAX_CONNECTIONS` open connections (default: the descriptor limit minus 64) one lingering after its "
        "answer (below), else the oldest one that has not sent a byte, is closed to make room, else the newcomer "
        "gets `503`. Each closes the connection. The head "
        "limit counts the URL and fields however the head arrives (one write or many), and a chunked body's framing "
        "and trailer count against it too. An upload slower than `POSE_MIN_UPLOAD_RATE` (4 KiB/s on average after "
        "`POSE_UPLOAD_GRACE_S`, 5 s) gets a `408` and frees its prediction slot. A request answered before its body "
        "has all arrived (a route that does not read it, a refusal, that `408`, a `503` when busy) is not waited "
        "for: the rest is read and dropped for at most 2 s and 64 MiB (so a client still sending reads the answer), "
        "all such connections together at most 32 MiB/s, then the connection closes. `HEAD` works wherever `GET` "
        "does; no `server` banner.",
        "- **Decoding** (`service/imaging/`): the header's structure is counted from the bytes before Pillow parses "
        "it (`service/imaging/structure.py`: at most 1,000 JPEG header segments, 64 of them APP1; 20,000 PNG chunks, "
        "1,000 of them metadata; 4,096 GIF extension sub-blocks before the first image; 2,000 TIFF tags and 65,536 "
        "numbers in one), and a progressive JPEG may have at most 100 scans: past them a `422` `image_too_complex` "
        "in milliseconds (Pillow spent seconds to minutes and hundreds of MB on such headers, libjpeg on such "
        "scans). Every decode first reserves its memory, estimated from the header (mode, bit depth, "
        "format, the reduced JPEG scale, rows), from one `POSE_DECODE_MEMORY_MB` budget shared by the process, and "
        "keeps only what its result holds once done: an image needing more alone is a `413` `image_too_large`, and "
        "one that cannot get its share in time a `503`. A "
        "decode whose work (pixels times scans) exceeds 400 million pixel passes (about half a second) runs in one of "
        "`POSE_DECODE_PROCESSES` worker processes, killed and replaced at `POSE_DECODE_TIMEOUT_S` (`422`): its core "
        "and its slot are free at once. A worker that dies or is stopped is the service's fault: reaped and "
        "replaced at once, never handed a job, the hand-off itself under the timeout, and the request it held gets "
        "`503` `decoder_restarted`. 16/32-bit and float images are narrowed to 8 bits a strip at a time; a "
        "batch decodes one upload at a time straight into the model input; a resize shrinking more than 64 times "
        "reduces by whole factors first. The worst-case memory that follows is "
        "in the README's Memory table.",
        "- **Logs**: one JSON line per request on stderr (request id, method, path, status, an error answer's code, "
        "duration, stage timings, image size, bytes received; never image bytes, query strings or headers). "
        "`X-Request-ID` is echoed when it is a sane token (else generated) and returned on every response.",
        "- **Graceful shutdown**: on SIGTERM `/readyz` turns `503` at once, the port stops accepting, requests "
        "still waiting for a prediction slot get `503` + `Retry-After` at once (they can go elsewhere), in-flight "
        "requests finish within `POSE_SHUTDOWN_TIMEOUT_S` (those still running then get `503` + `Retry-After`), "
        "and the process exits with status 0, by then even if a model call or decode is still running.",
        "- **Inference errors** inside ONNX Runtime become a `500` whose message carries the request id, logged with "
        "the traceback; the next request is unaffected.",
        "- **Coverage-guided fuzzing**: `fuzz/atheris_images.py` (atheris 3.0.0, in the dev lock; usage in its "
        "docstring) runs the same decoding target as `tests/test_fuzz_images.py`, which also runs it for 3,000 "
        "inputs with a fixed seed in every `make test`.",
        "",
        f"Produced by `python scripts/reliability_report.py --readme` ({report['generated'][:10]}, "
        f"{report['machine']}); raw figures in `bench/results/reliability.json`. The same scenarios are tests: "
        "`tests/test_hostile.py`, `test_fuzz_images.py`, `test_schemathesis.py`, `test_load.py`, `test_faults.py`, "
        "`test_auth.py`; the resource bounds (decode time and memory, the memory ceiling, connections, slow uploads, "
        "shutdown) are the `reliability` mark, `pytest -m reliability`.",
        "",
        "| What | Inputs | Result |",
        "| --- | --- | --- |",
        f"| Hostile and broken uploads (bombs, truncations, odd modes, 1000-file multipart, bad queries) "
        f"| {h['inputs']} | {h['as_documented']} answered as documented, {h['server_errors']} server errors, "
        f"good request served after {h['good_request_served_after']}/{h['inputs']} |",
        f"| Mutated and random image bytes through the decoder | {f['decode_inputs']} "
        f"| {f['decode_unexpected_exceptions']} exceptions other than the service's 4xx error |",
        f"| Mutated images through a live server | {f['live_inputs']} | statuses {f['live_statuses']}, "
        f"{f['live_server_errors']} server errors |",
        f"| Load: {ld['clients']} clients for {ld['duration_s']:g} s, {ld['max_concurrency']} in flight + "
        f"{ld['max_queue']} queued | {ld['requests']} requests | {ld['ok_200']} x 200 "
        f"(client-side p50 {ld['latency_ok_p50_ms']} ms, p99 {ld['latency_ok_p99_ms']} ms; time inside the server "
        f"p50 {ld['server_time_ok_p50_ms']} ms, p99 {ld['server_time_ok_p99_ms']} ms), {ld['rejected_503']} x 503 with "
        f"Retry-After, other statuses {ld['other_statuses'] or 'none'}; server RSS {ld['idle_rss_mib']} MiB idle, "
        f"{ld['peak_rss_mib']} MiB peak (bound {ld['rss_bound_mib']} MiB) |",
        f"| Fault scenarios | {len(fl)} | {survived} survived |",
        "",
        "Client-side latency of the load run is mostly the 64 clients' own queueing on the same busy cores "
        "(closed loop: 64 clients / throughput); the server holds at most "
        f"{ld['max_concurrency']} + {ld['max_queue']} prediction requests and answers the rest at once.",
        "",
        "| Fault | Survived | Detail |",
        "| --- | --- | --- |",
    ]
    lines += [f"| {row['fault']} | {'yes' if row['survived'] else 'NO'} | {row['detail']} |" for row in fl]
    if "attacks" in report:
        lines += ["", *attack_lines(report["attacks"])]
    return "\n".join(lines)


def update_readme(text: str) -> None:
    """Replace what follows the reliability marker up to the next heading (under the README lock)."""
    lock = Path("/tmp/markers/lock-README.md")
    use_lock = lock.parent.is_dir()
    while use_lock:
        try:
            lock.mkdir()
            break
        except FileExistsError:
            time.sleep(2)
    try:
        readme = README.read_text()
        start = readme.index(SECTION) + len(SECTION)
        end = readme.find("\n## ", start)
        end = len(readme) if end < 0 else end
        README.write_text(readme[:start] + "\n\n" + text + "\n" + readme[end:])
    finally:
        if use_lock:
            lock.rmdir()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=RESULTS, help="JSON file for the figures")
    parser.add_argument("--readme", action="store_true", help="also rewrite the figures in docs/reliability.md")
    parser.add_argument("--fuzz-inputs", type=int, default=3000, help="mutated images through the decoder")
    parser.add_argument("--no-attacks", action="store_true", help="skip the attack scenarios (about 4 minutes)")
    args = parser.parse_args(argv)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="reliability-") as tmp:
        workdir = Path(tmp)
        model = workdir / "constant.onnx"
        constant_model(model, flip_symmetric_peaks(MPII, (64, 64), seed=7))
        report = {
            "generated": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{os.cpu_count()} CPU cores (load average {os.getloadavg()[0]:.1f} at start), "
            f"Python {platform.python_version()}, ONNX Runtime {onnxruntime.__version__}",
            "hostile": hostile(model),
            "fuzz": fuzz(model, args.fuzz_inputs, live_inputs=300),
            "load": load(model),
            "faults": faults(model, workdir),
        }
        if not args.no_attacks:
            report["attacks"] = attacks(model)
    report["seconds"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    text = markdown(report)
    print(text)
    if args.readme:
        update_readme(text)
    ok = (
        report["hostile"]["server_errors"] == 0
        and report["fuzz"]["decode_unexpected_exceptions"] == 0
        and report["fuzz"]["live_server_errors"] == 0
        and not report["load"]["other_statuses"]
        and all(row["survived"] for row in report["faults"])
        and all(row["met"] for row in report.get("attacks", {}).get("header_bombs", []))
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
