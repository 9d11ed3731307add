"""Costly decodes run in child processes that are killed when they overrun, so a decode bomb cannot keep a
core or a request slot after its deadline (a thread cannot be stopped; a process can).

Which images go there is decided from the header (:attr:`service.imaging.reader.OpenedImage.decode_work`:
full-resolution pixels times the scans a progressive JPEG makes libjpeg run): every single-pass image within the
pixel limit and ordinary progressive photos decode in the request's own thread as before, with no process hop;
an image whose work exceeds :attr:`DecodeWorkers.min_work` (:data:`ISOLATE_WORK`) goes to one of a few
long-lived workers. A worker that passes the deadline is killed (SIGKILL) and replaced, and the request gets
:class:`DecodeStopped`.

A worker's own failure is the service's, not the client's (:class:`WorkerLost`, a 503 to retry): each worker has
a watcher thread that reaps it the moment it exits (no zombies) and starts its replacement; a dead worker is
never handed a job; the hand-off itself (the upload written to the worker's pipe) runs under the decode
timeout, so a stopped (SIGSTOP) worker cannot hold a request past it; and a timeout on a worker found stopped
is the service's fault too.

The worker is ``python -m service.imaging.isolation READ_FD WRITE_FD``: it imports only the in-thread decoder
(:mod:`service.imaging.reader`, a leaf), reads ``(data, content_type, max_pixels, min_size, threads)`` requests
(each a pickle behind its 8-byte length) from one pipe and answers each on the other (a
:class:`multiprocessing.connection.Connection`) with the decode error, or ``(mode, size, full_size, reduction,
rows)`` followed by the pixels in strips of ``rows`` rows.
"""

from __future__ import annotations

import io
import os
import pickle
import queue
import select
import struct
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path

from PIL import Image

from pose.errors import PoseError
from service.allocator import give_back_freed_memory
from service.imaging.budget import DecodeBusy
from service.imaging.reader import open_image, read_pixels

# Most pixel passes decoded in the request's thread: libjpeg takes about 1.1 ns per pixel pass here (a 95-scan
# 4000x3000 file, 1,140 M passes, 1.3 s), so this is at most about half a second; it keeps every single-pass
# image within the pixel limit and ordinary progressive photos (12 megapixels x 10 scans = 120 M) in-thread, where
# they cost no process hop (measured: the hop added 35 ms to a 12-megapixel progressive JPEG's 29 ms decode)
ISOLATE_WORK = 400_000_000
STRIP_BYTES = 4 << 20  # the decoded image crosses the pipe in strips of about this size
# What an isolated decode holds beyond the decode itself: the image rebuilt in the service (Pillow's 4 bytes per
# RGB pixel), and a strip on each side of the pipe
TRANSFER_BYTES_PER_PIXEL = 4
TRANSFER_BYTES = 4 * STRIP_BYTES
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder holding the ``service`` package


class DecodeStopped(PoseError):
    """A decode that overran the service's decode timeout and was stopped."""


class WorkerLost(PoseError):
    """The decode worker died or stopped responding: the service's fault; the client may retry."""


_LENGTH = struct.Struct("!Q")  # the length before each request's pickle


def _process_state(pid: int) -> str:
    """The one-letter state of ``pid`` from /proc (``T`` stopped, ``Z`` zombie); ``?`` when unknown."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return "?"


class _Worker:
    """One worker process and its two pipe ends."""

    def __init__(self) -> None:
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        path = os.pathsep.join(filter(None, [str(_PACKAGE_ROOT), os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "PYTHONPATH": path}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.imaging.isolation", str(request_read), str(answer_write)],
            pass_fds=(request_read, answer_write),
            stdin=subprocess.DEVNULL,
            cwd=_PACKAGE_ROOT,
            env=env,
        )
        os.close(request_read)
        os.close(answer_write)
        os.set_blocking(request_write, False)  # written under the deadline (:meth:`send`)
        self.requests = request_write
        self.answers = Connection(answer_read, writable=False)
        self._closed = False

    def alive(self) -> bool:
        """Running (not exited, not stopped by a signal)."""
        return self.process.poll() is None and _process_state(self.process.pid) not in ("T", "t", "Z")

    def send(self, message: object, deadline: float) -> bool:
        """Write one request before ``deadline``; False when the worker did not take it in time."""
        payload = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        view = memoryview(_LENGTH.pack(len(payload)) + payload)
        while view:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            _, writable, _ = select.select([], [self.requests], [], remaining)
            if writable:
                try:
                    view = view[os.write(self.requests, view) :]
                except BlockingIOError:
                    continue
        return True

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        if not self._closed:
            self._closed = True
            os.close(self.requests)
            self.answers.close()


class DecodeWorkers:
    """A few worker processes; :meth:`decode` borrows one, and kills and replaces it if it overruns."""

    def __init__(self, processes: int, timeout_s: float, wait_s: float, min_work: int = ISOLATE_WORK) -> None:
        if processes < 1:
            raise ValueError(f"DecodeWorkers needs at least one process, not {processes}")
        self.min_work = min_work  # images with more pixel passes than this decode here
        self.timeout_s = timeout_s
        self.wait_s = wait_s
        self._idle: queue.SimpleQueue[_Worker] = queue.SimpleQueue()
        self._all: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        for _ in range(processes):
            self._add()

    def _add(self) -> None:
        worker = _Worker()
        with self._lock:
            if self._closed:
                worker.kill()
                return
            self._all.add(worker)
        threading.Thread(target=self._watch, args=(worker,), name="decode-worker-watch", daemon=True).start()
        self._idle.put(worker)

    def _watch(self, worker: _Worker) -> None:
        """Reap ``worker`` the moment it exits, however it ends, and start its replacement (unless closing)."""
        worker.process.wait()
        with self._lock:
            replace = worker in self._all and not self._closed
            self._all.discard(worker)
        if replace:
            self._add()

    def _borrow(self) -> _Worker:
        """An idle worker that is alive; dead or stopped ones met on the way are killed (their watchers replace
        them). DecodeBusy when none frees up within the wait."""
        deadline = time.monotonic() + self.wait_s
        while True:
            try:
                worker = self._idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise DecodeBusy("every decode worker is busy; try again shortly") from None
            if worker.alive():
                return worker
            worker.kill()

    def decode(
        self, data: bytes, content_type: str | None, max_pixels: int, min_size: tuple[int, int] | None, threads: int
    ) -> tuple[Image.Image, tuple[int, int], float]:
        """The decoded RGB image, its full oriented size and its reduction (the decode errors; DecodeStopped;
        WorkerLost; :class:`~service.imaging.budget.DecodeBusy` when no worker frees up within the wait)."""
        worker = self._borrow()
        deadline = time.monotonic() + self.timeout_s
        lost = WorkerLost("the image decoder stopped working and was replaced; try again")
        try:
            if not worker.send((data, content_type, max_pixels, min_size, threads), deadline):
                raise OSError("the worker did not take the job in time")  # an idle worker reads at once
            answer = self._receive(worker, deadline)
        except (OSError, EOFError):  # the worker died (a decoder crash, the OOM killer)
            worker.kill()
            raise lost from None
        except DecodeStopped:
            stopped = not worker.alive()  # a worker stopped by a signal is not the image's doing
            worker.kill()
            if stopped:
                raise lost from None
            raise
        self._idle.put(worker)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _receive(self, worker: _Worker, deadline: float) -> tuple[Image.Image, tuple[int, int], float] | PoseError:
        def next_message() -> object:
            if not worker.answers.poll(max(0.0, deadline - time.monotonic())):
                raise DecodeStopped(self._overran())
            return worker.answers.recv()

        head = next_message()
        if isinstance(head, PoseError):
            return head
        mode, size, full_size, reduction, rows = head
        image = Image.new(mode, size)
        for top in range(0, size[1], rows):
            strip = next_message()
            image.paste(Image.frombytes(mode, (size[0], min(rows, size[1] - top)), strip), (0, top))
            del strip
        return image, full_size, reduction

    def _overran(self) -> str:
        return f"decoding the image took longer than {self.timeout_s:g} s; it was stopped"

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()


def _read_request(requests: io.BufferedReader) -> tuple | None:
    """The next request on the pipe; None when the service went away."""
    head = requests.read(_LENGTH.size)
    if len(head) < _LENGTH.size:
        return None
    (length,) = _LENGTH.unpack(head)
    payload = requests.read(length)
    return pickle.loads(payload) if len(payload) == length else None


def _serve(requests: io.BufferedReader, answers: Connection) -> None:
    while True:
        request = _read_request(requests)
        if request is None:  # the service went away
            return
        data, content_type, max_pixels, min_size, threads = request
        del request
        try:
            opened = open_image(data, max_pixels, content_type)
            opened.draft(min_size)
            image, full_size, reduction = read_pixels(opened, threads)
        except PoseError as exc:
            answers.send(exc)
            continue
        finally:
            del data
        width, height = image.size
        rows = max(1, STRIP_BYTES // (3 * width))
        answers.send((image.mode, image.size, full_size, reduction, rows))
        for top in range(0, height, rows):
            answers.send(image.crop((0, top, width, min(height, top + rows))).tobytes())
        del opened, image  # an idle worker holds no image
        give_back_freed_memory()


if __name__ == "__main__":
    _serve(os.fdopen(int(sys.argv[1]), "rb"), Connection(int(sys.argv[2]), readable=False))
