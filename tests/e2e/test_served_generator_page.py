"""The page in Chromium with MO_EXPLORER_GENERATOR=openai:... — candidates from a real `transformers serve`."""

from __future__ import annotations

import pytest

from tests.e2e.conftest import SCREENSHOTS
from tests.ui_support import served, tiny_settings

pytestmark = [pytest.mark.e2e, pytest.mark.model]
TIMEOUT = 90_000  # ms: the server decodes the 4 candidates one request after another on a 2-core machine


@pytest.fixture(scope="module")
def app(openai_server, tiny_classifier_dir, tmp_path_factory):
    from mo_explorer.explorer import Explorer
    from mo_explorer.models import registry
    from mo_explorer.models.reward import SequenceClassificationRewardModel
    from mo_explorer.storage.store import Store

    url, model = openai_server
    tmp = tmp_path_factory.mktemp("e2e_served")
    settings = tiny_settings(MO_EXPLORER_GENERATOR=f"openai:{url}", MO_EXPLORER_OPENAI_MODEL=model)
    generator = registry.load_generator(settings)  # the path `serve` takes for openai: generators
    reward = SequenceClassificationRewardModel.load(str(tiny_classifier_dir), cache_dir=str(tmp))
    explorer = Explorer(settings, generator, reward, Store(f"sqlite:///{tmp / 'db.sqlite'}"))
    with served(explorer, settings) as page_url:
        yield explorer, page_url


def test_generate_on_the_page_with_a_served_generator(app, page):
    explorer, url = app
    page.goto(url)
    page.wait_for_function("new URL(location.href).searchParams.get('session')", timeout=TIMEOUT)
    session_id = page.evaluate("new URL(location.href).searchParams.get('session')")
    page.wait_for_selector(".moex", timeout=TIMEOUT)
    page.fill("#prompt textarea", "Name a fruit.")
    page.click("#generate")
    page.wait_for_function("document.querySelector('#status').innerText.includes('Done')", timeout=TIMEOUT)
    page.wait_for_function("document.querySelectorAll('.moex-by-direction li').length === 4", timeout=TIMEOUT)
    (rnd,) = explorer.session_rounds(session_id)
    assert rnd.status == "complete" and rnd.generator_id == f"openai:{explorer.generator.model}"
    assert len(rnd.candidates) == 4 and all(c.text.strip() for c in rnd.candidates)
    first = rnd.candidates[0].text.strip()[:20]
    assert first in page.locator(".moex-by-direction").inner_text()
    assert explorer.generator.last_round.requests == 4  # the server ignored n: one request per candidate
    assert page.js_errors == []
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "served_generator.png"), full_page=True)
