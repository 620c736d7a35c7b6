"""The labeling page in a real browser (Debian's Chromium, headless) against a running service."""

from __future__ import annotations

import struct
import subprocess
import threading
import time
import zlib
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_digits

from alstream.store import SampleRow, Store

from .conftest import ADMIN_TOKEN, AUTH, label_until_stable, wait_for
from .processes import Service, record_version

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"
DIGITS_Y = load_digits().target


def truth(sample_id: str) -> str:
    return str(DIGITS_Y[int(sample_id.removeprefix("digit-"))])


@pytest.fixture
def service(tmp_path) -> Iterator[Service]:
    service = Service(tmp_path)
    service.start()
    yield service
    if service.process and service.process.poll() is None:
        service.process.terminate()
        try:
            service.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            raise AssertionError(f"the service ignored SIGTERM for 30 s: {tmp_path}/service.log") from None


@pytest.fixture
def open_page(browser, service: Service) -> Iterator:
    """``open_page(annotator)``: the page in a fresh browser context (own storage), item shown."""
    contexts = []

    def open_(annotator: str, url: str = service.url, first: str = "#item[data-id^='digit-']"):
        contexts.append(browser.new_context(viewport={"width": 1280, "height": 860}))
        page = contexts[-1].new_page()
        page.goto(f"{url}/?annotator={annotator}#token={ADMIN_TOKEN}")
        page.wait_for_selector(first)
        return page

    yield open_
    for context in contexts:
        context.close()


def shown(page) -> str:
    return page.get_attribute("#item", "data-id")


def press(page, key: str) -> str:
    """Press ``key`` on the item shown; returns that item's id once the next one is shown."""
    before = shown(page)
    page.keyboard.press(key)
    page.wait_for_function("id => ![id, ''].includes(document.querySelector('#item').dataset.id)", arg=before)
    return before


def test_label_thirty_digits_by_keyboard_only(open_page, service):
    requests: list[str] = []
    page = open_page("alice")
    page.on("request", lambda request: requests.append(request.url))
    blocked: list[str] = []  # what the Content-Security-Policy refused (nothing the page needs)
    page.on(
        "console",
        lambda message: blocked.append(message.text) if "Content Security" in message.text else None,
    )
    page.reload()
    page.wait_for_selector("#item[data-id^='digit-']")
    done = [press(page, truth(shown(page))) for _ in range(30)]
    assert len(set(done)) == 30
    wait_for(lambda: len(service.labels()) == 30, what="30 stored labels")
    stored = service.labels()
    assert {i: stored[i] for i in done} == {i: (truth(i), "alice", False) for i in done}
    page.wait_for_function("() => document.querySelector('#session-count').textContent === '30'")
    page.wait_for_function("() => document.querySelector('#outbox-count').textContent === '0'")
    page.wait_for_function("() => document.querySelector('#model-badge').textContent !== 'model v1'")
    page.wait_for_function(  # the next poll draws the learning curve, one point per version
        "() => document.querySelector('#curve polyline.holdout').getAttribute('points').split(' ').length > 1"
    )
    assert requests and all(url.startswith(service.url) for url in requests), requests  # no CDN
    assert not blocked, blocked
    for button in page.locator("button").all():  # every button says what it does
        assert (button.get_attribute("aria-label") or button.inner_text()).strip()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "labeling-page.png"))


def test_undo_and_history_change_the_stored_label(open_page, service):
    page = open_page("ann")
    first = shown(page)
    wrong = "0" if truth(first) != "0" else "1"
    press(page, wrong)
    wait_for(lambda: service.labels().get(first) == (wrong, "ann", False), what="the wrong label")
    page.keyboard.press("Backspace")
    page.wait_for_function("id => document.querySelector('#item').dataset.id === id", arg=first)
    assert "was: " + wrong in page.inner_text("#relabel")
    press(page, truth(first))
    wait_for(lambda: service.labels().get(first) == (truth(first), "ann", False), what="the corrected label")
    second = press(page, "Enter")  # accept the model's guess
    wait_for(lambda: second in service.labels(), what="the accepted guess")
    other = "9" if service.labels()[second][0] != "9" else "8"
    page.locator("#history button", has_text=f"{second} →").click()  # change a decision by mouse
    page.wait_for_function("id => document.querySelector('#item').dataset.id === id", arg=second)
    page.click(f"#choices button[aria-label^='Label {other} ']")
    wait_for(lambda: service.labels()[second][0] == other, what="the changed decision")


def test_skip_stores_a_skip(open_page, service):
    page = open_page("sam")
    skipped = press(page, " ")
    wait_for(lambda: service.labels().get(skipped) == (None, "sam", True), what="the skip")
    assert page.inner_text("#session-count") == "0"  # a skip is not a label


def test_two_people_labeling_at_once_never_get_the_same_item(open_page, service):
    pages = [open_page(name) for name in ("bob", "cy")]
    seen: list[set[str]] = [set(), set()]
    for _ in range(15):
        for page, ids in zip(pages, seen, strict=True):
            ids.add(press(page, truth(shown(page))))
    assert len(seen[0]) == len(seen[1]) == 15
    assert not seen[0] & seen[1]
    wait_for(lambda: len(service.labels()) == 30, what="both people's labels")
    assert {a for _, a, _ in service.labels().values()} == {"bob", "cy"}


def test_the_model_badge_changes_after_the_retrain_threshold(open_page, service):
    page = open_page("dee")
    page.wait_for_function("() => document.querySelector('#model-badge').textContent.startsWith('model v')")
    badge = page.inner_text("#model-badge")
    for _ in range(10):
        press(page, truth(shown(page)))
    page.wait_for_function("b => document.querySelector('#model-badge').textContent !== b", arg=badge)
    newer = int(page.inner_text("#model-badge").removeprefix("model v"))
    assert newer > int(badge.removeprefix("model v"))
    page.wait_for_timeout(2500)  # a poll of /stats: the prefetched items are swapped for new ones
    versions = []
    for _ in range(8):  # within the prefetch depth, the items come scored by the new model
        versions.append(int(page.inner_text("#why").rsplit("model v", 1)[1]))
        press(page, truth(shown(page)))
    assert max(versions) >= newer, versions


def test_no_label_is_lost_when_the_service_restarts_mid_session(open_page, service):
    page = open_page("eve")
    before = [press(page, truth(shown(page))) for _ in range(5)]
    wait_for(lambda: len(service.labels()) == 5, what="the first labels")
    service.kill()
    during = [press(page, truth(shown(page))) for _ in range(3)]  # from the prefetched items
    page.wait_for_selector("#connection:not([hidden])")
    assert page.inner_text("#outbox-count") != "0"
    time.sleep(1)  # let the page fail a retry or two against the dead port
    service.start()
    sent = "() => document.querySelector('#outbox-count').textContent === '0'"
    page.wait_for_function(sent, timeout=60_000)
    wait_for(lambda: len(service.labels()) == 8, what="every label, after the restart")
    assert {i: service.labels()[i] for i in before + during} == {
        i: (truth(i), "eve", False) for i in before + during
    }
    page.wait_for_selector("#connection[hidden]", state="attached")
    press(page, truth(shown(page)))  # and labeling goes on


def test_text_items_keep_their_whitespace_and_an_empty_queue_says_so(open_page, tmp_path):
    project = '{"classes": ["spam", "ham"], "data": "text"}'
    texts = Service(tmp_path / "texts", wait_for_model=False, demo="false", project=project)
    (tmp_path / "texts").mkdir()
    texts.start()
    try:
        poem = "first line\n    indented second line\n\nafter a blank line"
        sent = [{"id": "t1", "text": poem}, {"id": "t2", "text": "win money now"}, {"id": "t3", "text": "hi"}]
        assert httpx.post(f"{texts.url}/send", json=sent, headers=AUTH).status_code == 202
        page = open_page("tess", url=texts.url, first="#item[data-id^='t']")
        page.wait_for_selector("#choices button >> text=spam")
        assert "Cold start" in page.inner_text("#why")  # no model yet: items come at random
        seen = {}
        for _ in range(3):
            item = shown(page)
            seen[item] = page.eval_on_selector(
                "#view pre.text", "e => [e.textContent, getComputedStyle(e).whiteSpace]"
            )
            page.keyboard.press("1")  # "spam": classes without one-character names get 1, 2, ...
            page.wait_for_function("id => document.querySelector('#item').dataset.id !== id", arg=item)
        assert seen["t1"] == [poem, "pre-wrap"]
        page.wait_for_selector("text=Nothing left to label: stream more data or lower the threshold.")
        wait_for(lambda: len(texts.labels()) == 3, what="the three labels")
        assert {label for label, _, _ in texts.labels().values()} == {"spam"}
    finally:
        texts.process.terminate()
        texts.process.wait(timeout=30)


def test_the_page_asks_for_a_token_and_keeps_it_for_the_session(browser, service):
    token = httpx.post(
        f"{service.url}/tokens", json={"role": "annotator", "name": "fay"}, headers=AUTH
    ).json()
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{service.url}/?annotator=fay")
        page.wait_for_selector("#token-form:not([hidden])")
        assert page.locator("#item[data-id^='digit-']").count() == 0  # nothing without a token
        page.fill("#token", token["token"])
        page.keyboard.press("Enter")
        page.wait_for_selector("#item[data-id^='digit-']")
        labeled = press(page, truth(shown(page)))
        wait_for(lambda: service.labels().get(labeled) == (truth(labeled), "fay", False), what="fay's label")
        page.reload()  # the same browser session: no need to ask again
        page.wait_for_selector("#item[data-id^='digit-']")
        assert page.locator("#token-form").is_hidden()
        assert token["token"] not in page.url
    finally:
        context.close()


def test_two_classes_accept_and_reject_the_guess_with_enter(open_page, tmp_path):
    project = '{"classes": ["spam", "ham"], "data": "text"}'
    home = tmp_path / "binary"
    home.mkdir()
    binary = Service(home, wait_for_model=False, demo="false", project=project, min_labels_per_class="2")
    binary.start()
    try:
        words = {"spam": "win money prize cash offer", "ham": "meeting lunch notes project agenda"}
        sent = [{"id": f"l-{c}-{i}", "text": words[c], "label": c} for c in words for i in range(3)]
        sent += [{"id": f"u-{i}", "text": words["spam" if i % 2 else "ham"]} for i in range(10)]
        assert httpx.post(f"{binary.url}/send", json=sent, headers=AUTH).status_code == 202
        wait_for(
            lambda: httpx.get(f"{binary.url}/health").json()["model_version"] is not None, what="a model"
        )
        page = open_page("hal", url=binary.url, first="#item[data-id^='u-']")
        page.wait_for_function("() => !document.querySelector('#accept').disabled")
        guesses = {}
        for key in ("Enter", "Shift+Enter"):
            item = shown(page)
            guesses[item] = page.get_attribute("#choices button.guess", "aria-label").split()[1]
            page.keyboard.press(key)
            page.wait_for_function("id => document.querySelector('#item').dataset.id !== id", arg=item)
        (accepted, guess_a), (rejected, guess_r) = guesses.items()
        other = {"spam": "ham", "ham": "spam"}
        wait_for(lambda: {accepted, rejected} <= set(binary.labels()), what="both decisions")
        assert binary.labels()[accepted][0] == guess_a
        assert binary.labels()[rejected][0] == other[guess_r]
    finally:
        binary.process.terminate()
        binary.process.wait(timeout=30)


def png(width: int, height: int) -> bytes:
    """A grey PNG of that size."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\x00" + b"\x80" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body


class ImageServer:
    """An HTTP server on 127.0.0.1 (its own port: another origin than the service) that serves a
    PNG at every path and counts the requests it gets, per path."""

    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()
        image, requests = png(8, 6), self.requests

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                requests[self.path] += 1
                self.send_response(200)
                self.send_header("Content-Type", "image/png")
                self.send_header("Content-Length", str(len(image)))
                self.end_headers()
                self.wfile.write(image)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_images_show_only_from_the_allowed_origins_and_others_are_never_requested(browser, tmp_path):
    allowed, other = ImageServer(), ImageServer()
    home = tmp_path / "images"
    home.mkdir()
    project = '{"classes": ["cat", "dog"], "n_features": 2}'
    images = Service(
        home, wait_for_model=False, demo="false", project=project, image_origins=f'["{allowed.origin}"]'
    )
    images.start()
    context = browser.new_context()
    try:
        sent = [
            {"id": "allowed", "features": [1, 2], "meta": {"image": f"{allowed.origin}/cat.png"}},
            {"id": "other", "features": [3, 4], "meta": {"image": f"{other.origin}/beacon.png?who=me"}},
        ]
        assert httpx.post(f"{images.url}/send", json=sent, headers=AUTH).status_code == 202
        page = context.new_page()
        violations: list[str] = []
        page.on(
            "console",
            lambda message: violations.append(message.text) if "Content Security" in message.text else None,
        )
        page.goto(f"{images.url}/?annotator=ivy#token={ADMIN_TOKEN}")
        seen = {}
        for _ in range(2):
            item = page.wait_for_selector("#item[data-id]:not([data-id=''])").get_attribute("data-id")
            if item == "allowed":
                page.wait_for_function("() => document.querySelector('#view img')?.naturalWidth === 8")
            seen[item] = (page.locator("#view img").count(), page.inner_text("#view"))
            page.keyboard.press("1")
            page.wait_for_function("id => document.querySelector('#item').dataset.id !== id", arg=item)
        assert seen["allowed"][0] == 1
        assert seen["other"][0] == 0  # not shown; the features are, and why the image is not
        assert f"Image not shown: its origin {other.origin} is not allowed" in seen["other"][1]
        assert "feature 1" in seen["other"][1]
        # Even a script that tries (an injected image) gets nothing from that origin: the CSP blocks it.
        page.evaluate(
            "url => document.body.append(Object.assign(new Image(), {src: url}))",
            f"{other.origin}/injected.png",
        )
        wait_for(lambda: any("injected.png" in text for text in violations), what="the CSP's report")
        assert allowed.requests["/cat.png"] >= 1
        assert not other.requests, other.requests
    finally:
        context.close()
        allowed.close()
        other.close()
        images.process.terminate()
        images.process.wait(timeout=30)


def test_an_annotator_token_starts_in_its_own_name_and_cannot_pick_another(browser, service):
    token = httpx.post(
        f"{service.url}/tokens", json={"role": "annotator", "name": "gus"}, headers=AUTH
    ).json()["token"]
    context = browser.new_context()
    try:
        page = context.new_page()
        page.goto(f"{service.url}/?annotator=ida#token={token}")  # a name it may not act as: ignored
        page.wait_for_selector("#item[data-id^='digit-']")
        assert (
            page.input_value("#annotator") == "gus"
            and page.locator("#annotator").get_attribute("readonly") is not None
        )
        labeled = press(page, truth(shown(page)))
        wait_for(lambda: service.labels().get(labeled) == (truth(labeled), "gus", False), what="gus's label")
        page.evaluate("setAnnotator('ida')")  # what typing would do, were the field not read-only
        assert page.input_value("#annotator") == "gus"
        labeled = press(page, truth(shown(page)))
        wait_for(lambda: service.labels().get(labeled) == (truth(labeled), "gus", False), what="gus's label")
    finally:
        context.close()


def test_a_drift_is_marked_on_the_learning_curve(open_page, service):
    """A version trained after a drift carries ``drift``: the curve marks where it took over."""
    page = open_page("ann")
    page.wait_for_selector("#item[data-id^='digit-']")
    curve = [
        {"version": 1, "n_labels": 30, "holdout_accuracy": 0.80},
        {"version": 2, "n_labels": 60, "holdout_accuracy": 0.40, "drift": True},
        {"version": 3, "n_labels": 90, "holdout_accuracy": 0.85},
    ]
    drawn = (
        "curve => { renderCurve(curve); return [...document.querySelectorAll('#curve line.drift')]"
        ".map((mark) => [mark.getAttribute('x1'), mark.textContent]); }"
    )  # at once: a poll redraws it
    marks = page.evaluate(drawn, curve)
    assert marks == [["160.0", "drift detected (version 2)"]]  # halfway between 30 and 90 labels


def test_an_error_stays_in_sight_past_the_next_polls_until_dismissed(open_page, service):
    """The page's own errors have their own place: the poll of /stats (every 2 s) leaves them be."""
    page = open_page("una")
    refused = [{"id": "digit-1", "label": "no such class", "annotator": "una"}]  # as an older page left it
    page.evaluate("labels => localStorage.setItem('alstream.outbox', JSON.stringify(labels))", refused)
    page.reload()
    page.wait_for_selector("#page-error:not([hidden])")
    message = page.inner_text("#page-error-text")
    assert message.startswith("The service refused 1 label(s): "), message
    for _ in range(2):  # two polls later
        with page.expect_response(lambda response: response.url.endswith("/stats")):
            pass
    page.wait_for_timeout(100)  # what the poll draws
    assert page.is_visible("#page-error") and page.inner_text("#page-error-text") == message
    assert page.inner_text("#outbox-count") == "0"  # never resent
    page.click("#page-error-dismiss")
    assert page.locator("#page-error").is_hidden()
    press(page, truth(shown(page)))  # and labeling goes on


def test_the_page_says_when_the_model_has_stabilised_and_the_queue_paused(open_page, tmp_path):
    stopping = Service(tmp_path / "stopping", pause_when_stable="true", random_share="0")
    (tmp_path / "stopping").mkdir()
    stopping.start()
    try:
        with httpx.Client(base_url=stopping.url, headers=AUTH) as client:
            label_until_stable(client, truth)
            kappa = client.get("/stats").json()["stopping"]["kappa"]
        page = open_page("sam", url=stopping.url, first="#stopping:not([hidden])")
        sentence = page.inner_text("#stopping")
        assert sentence.startswith("The model has stabilised: more labels are unlikely to change it (κ = ")
        assert f"κ = {kappa:.3f} between the last 4 models" in sentence and "The queue is paused." in sentence
        page.wait_for_selector("text=The queue is paused: the model has stabilised")
        assert page.locator("#item").is_hidden()
    finally:
        stopping.process.terminate()
        stopping.process.wait(timeout=30)


def test_a_replicas_page_draws_the_trainers_learning_curve(browser, tmp_path, postgres_url):
    """``alstream serve --stateless`` on PostgreSQL: the page draws the curve of the versions the
    trainer recorded (their held-out and stream accuracies) and marks the drift it reported."""
    store = Store(postgres_url)
    store.create()
    digits = load_digits()
    X, y = digits.data.astype(np.float32), digits.target.astype(str)
    ids = [f"digit-{i}" for i in range(300, 400)]
    store.add_samples([SampleRow(i, X[int(i[6:])], shard=0) for i in ids])
    models = tmp_path / "shared" / "models"
    for number in (1, 2, 3):  # as the trainer records them
        metrics = {"holdout_accuracy": 0.5 + number / 10, "stream_accuracy": 0.4 + number / 10}
        record_version(
            store, models, X[: 100 * number], y[: 100 * number], number, {**metrics, "stream_samples": 50.0}
        )
    recorded = [row["created_at"].timestamp() for row in store.models()]
    drift = {"signal": "accuracy", "at": (recorded[1] + recorded[2]) / 2, "estimate": 0.4, "model_version": 2}
    store.trainer_stats.report("trainer", {"drift": {"detected": 1, "events": [drift]}})  # before version 3
    store.candidates.publish(0, 3, ids, [1.0 - n / len(ids) for n in range(len(ids))])  # as a worker would
    store.close()
    home = tmp_path / "replica"
    home.mkdir()
    replica = Service(
        home,
        args=("--stateless",),
        database_url=postgres_url,
        data_dir=str(tmp_path / "shared"),
        demo="false",
    )
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    try:
        replica.start()
        page = context.new_page()
        page.goto(f"{replica.url}/?annotator=rae#token={ADMIN_TOKEN}")
        page.wait_for_selector("#item[data-id^='digit-']")
        page.wait_for_function(  # a poll of /stats draws it, one point per version
            "() => document.querySelector('#curve polyline.holdout')?.getAttribute('points')"
            ".split(' ').length === 3"
        )
        assert len(page.get_attribute("#curve polyline.stream", "points").split(" ")) == 3
        marks = page.eval_on_selector_all(
            "#curve line.drift", "marks => marks.map((mark) => mark.textContent)"
        )
        assert marks == ["drift detected (version 3)"]
    finally:
        context.close()
        if replica.process is not None and replica.process.poll() is None:
            replica.process.terminate()
            replica.process.wait(timeout=30)
