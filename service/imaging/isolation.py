"""Costly decodes run in child processes that are killed when they overrun, so a decode bomb cannot keep a
core or a request slot after its deadline (a thread cannot be stopped; a process can).

Which images go there is decided from the header (:attr:`service.imaging.reader.OpenedImage.decode_work`:
full-resolution pixels times the scans a progressive JPEG makes libjpeg run): every single-pass image within the
pixel limit and ordinary progressive photos decode in the request's own thread as before, with no process hop;
an image whose work exceeds :attr:`DecodeWorkers.min_work` (:data:`ISOLATE_WORK`) goes to one of a few
long-lived workers. A worker that passes the deadline is killed (SIGKILL) and replaced, and the request gets
:class:`DecodeStopped`.

The worker is ``python -m service.imaging.isolation READ_FD WRITE_FD``: it imports only the in-thread decoder
(:mod:`service.imaging.reader`, a leaf), reads ``(data, content_type, max_pixels, min_size, threads)`` requests
from one pipe and answers each on the other with the decode error, or ``(mode, size, full_size, reduction, rows)``
followed by the pixels in strips of ``rows`` rows.
"""

from __future__ import annotations

import os
import queue
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
    """A decode that overran the service's decode timeout (or crashed its worker) and was stopped."""


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
        self.requests = Connection(request_write, readable=False)
        self.answers = Connection(answer_read, writable=False)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait()
        self.requests.close()
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
        self._idle.put(worker)

    def decode(
        self, data: bytes, content_type: str | None, max_pixels: int, min_size: tuple[int, int] | None, threads: int
    ) -> tuple[Image.Image, tuple[int, int], float]:
        """The decoded RGB image, its full oriented size and its reduction (the decode errors; DecodeStopped,
        or :class:`~service.imaging.budget.DecodeBusy` when no worker frees up within the wait)."""
        try:
            worker = self._idle.get(timeout=self.wait_s)
        except queue.Empty:
            raise DecodeBusy("every decode worker is busy; try again shortly") from None
        deadline = time.monotonic() + self.timeout_s
        try:
            worker.requests.send((data, content_type, max_pixels, min_size, threads))
            answer = self._receive(worker, deadline)
        except (OSError, EOFError):  # the worker died mid-decode (a decoder crash, the OOM killer)
            self._replace(worker)
            raise DecodeStopped("the image's decoder crashed; it was stopped") from None
        except DecodeStopped:
            self._replace(worker)
            raise
        self._idle.put(worker)
        if isinstance(answer, BaseException):
            raise answer
        return answer

    def _receive(self, worker: _Worker, deadline: float) -> tuple[Image.Image, tuple[int, int], float] | PoseError:
        def next_message() -> object:
            if not worker.answers.poll(max(0.0, deadline - time.monotonic())):
                raise DecodeStopped(f"decoding the image took longer than {self.timeout_s:g} s; it was stopped")
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

    def _replace(self, worker: _Worker) -> None:
        worker.kill()
        with self._lock:
            self._all.discard(worker)
        self._add()

    def close(self) -> None:
        """Stop every worker (idempotent)."""
        with self._lock:
            self._closed = True
            workers, self._all = list(self._all), set()
        for worker in workers:
            worker.kill()


def _serve(requests: Connection, answers: Connection) -> None:
    while True:
        try:
            data, content_type, max_pixels, min_size, threads = requests.recv()
        except EOFError:  # the service went away
            return
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
    _serve(Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False))
