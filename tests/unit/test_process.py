"""streams/process.py: stop_process stops cleanly when it can and kills when it must."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

from streams.process import stop_process

IGNORES_TERM = (
    "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
    "print('ready', flush=True); time.sleep(60)"
)


def test_a_process_that_obeys_sigterm_stops_with_it():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(proc, grace=10)
    assert proc.returncode == -signal.SIGTERM


def test_a_process_that_ignores_sigterm_is_killed_after_the_grace_time():
    proc = subprocess.Popen([sys.executable, "-c", IGNORES_TERM], stdout=subprocess.PIPE)
    assert proc.stdout.readline().strip() == b"ready"  # its handler is installed
    t0 = time.monotonic()
    stop_process(proc, grace=0.5)
    assert proc.returncode == -signal.SIGKILL
    assert time.monotonic() - t0 < 10


def test_another_signal_can_be_sent_and_an_exited_process_is_left_alone():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    stop_process(proc, sig=signal.SIGKILL)
    assert proc.returncode == -signal.SIGKILL
    stop_process(proc)  # already exited: nothing to do, no error
    assert proc.returncode == -signal.SIGKILL
