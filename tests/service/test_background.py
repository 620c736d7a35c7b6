import logging
import subprocess
import sys
import threading
import time

from alstream.service.background import Worker


def test_jobs_run_in_order_and_a_failing_one_does_not_stop_the_next(caplog):
    done = []

    def fail():
        raise RuntimeError("tracking server said no")

    worker = Worker("test")
    with caplog.at_level(logging.ERROR, logger="alstream.service.background"):
        for job in (lambda: done.append(1), fail, lambda: done.append(2)):
            worker.submit(job)
        assert worker.close(timeout_s=10.0) == 0
    assert done == [1, 2]
    assert "tracking server said no" in caplog.text


def test_closing_gives_up_on_a_stuck_job_and_counts_what_is_left():
    release = threading.Event()
    worker = Worker("test")
    worker.submit(release.wait)  # a call that does not come back (an MLflow server that never answers)
    worker.submit(print, "never")
    worker.submit(print, "never")
    assert worker.close(timeout_s=0.2) == 3  # the stuck one and the two behind it
    release.set()


def test_a_stuck_job_does_not_hold_up_the_process_exit():
    script = (
        "import threading\n"
        "from alstream.service.background import Worker\n"
        "worker = Worker('test')\n"
        "worker.submit(threading.Event().wait, 120)\n"
        "assert worker.close(timeout_s=0.1) == 1\n"
    )
    start = time.monotonic()
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    assert time.monotonic() - start < 30
