"""Every page of the built site, loaded in Chromium with no network but the site itself.

Run after `make book`: `pytest tests/site --site _build/html`.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
import yaml
from playwright.sync_api import Browser, Page

from attention_book import quiz

ROOT = Path(__file__).resolve().parents[2]
TOC = yaml.safe_load((ROOT / "_toc.yml").read_text())
CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
PAGES = [TOC["root"]] + [c["file"] for part in TOC["parts"] for c in part["chapters"]]
REPO = CONFIG["repository"]["url"].removeprefix("https://github.com/")


@dataclass
class Visit:
    page: Page
    errors: list[str] = field(default_factory=list)


@pytest.fixture(scope="module", params=PAGES)
def visit(request: pytest.FixtureRequest, browser: Browser, base_url: str):
    """Load one page; record console errors, page errors, failed and off-site requests."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    page = context.new_page()
    found = Visit(page)

    def route(route):
        url = route.request.url
        if url.startswith((base_url, "data:", "blob:")):
            route.continue_()
        else:  # the site must not need the network
            found.errors.append(f"request off the site: {url}")
            route.abort()

    page.route("**/*", route)
    page.on("console", lambda m: m.type == "error" and found.errors.append(f"console: {m.text}"))
    page.on("pageerror", lambda e: found.errors.append(f"page error: {e}"))
    page.on(
        "response",
        lambda r: r.status >= 400 and found.errors.append(f"HTTP {r.status}: {r.url}"),
    )
    page.goto(base_url + request.param + ".html", wait_until="networkidle")
    page.wait_for_function("!window.MathJax || !MathJax.startup || !!MathJax.startup.document")
    page.evaluate("window.MathJax && MathJax.startup ? MathJax.startup.promise : null")
    page.wait_for_timeout(300)  # let widgets finish rendering
    found.page_name = request.param
    yield found
    context.close()


def test_page_loads_cleanly(visit):
    assert visit.page.title()
    assert visit.errors == []


def test_one_search_box(visit):
    boxes = visit.page.locator(".search-button-field")
    assert sum(boxes.nth(i).is_visible() for i in range(boxes.count())) == 1


def test_math_renders(visit):
    page = visit.page
    math = page.locator("div.math, span.math").count()
    if math == 0:
        pytest.skip("no math on this page")
    assert page.locator("mjx-container").count() >= math
    text = page.locator("article").inner_text()
    assert "\\(" not in text and "\\[" not in text and "$$" not in text


def test_images_load_and_have_alt_text(visit):
    # load lazy images too, then look at every <img>, visible or not (the logo has two)
    images = visit.page.evaluate(
        """async () => {
            const imgs = [...document.querySelectorAll("img")];
            imgs.forEach(img => { img.loading = "eager"; });
            await Promise.all(imgs.map(img => img.decode().catch(() => null)));
            return imgs.map(img => ({src: img.getAttribute("src"), alt: img.getAttribute("alt"),
                                     loaded: img.complete && img.naturalWidth > 0}));
        }"""
    )
    assert images, "every page shows at least the logo"
    for image in images:
        assert image["loaded"], f"image did not load: {image['src'][:80]}"
        assert (image["alt"] or "").strip(), f"no alt text: {image['src'][:80]}"


def test_solution_dropdowns_open(visit):
    dropdowns = visit.page.locator(".solution.dropdown")
    if dropdowns.count() == 0:
        pytest.skip("no solutions on this page")
    for i in range(dropdowns.count()):
        dropdown = dropdowns.nth(i)
        body = dropdown.locator("section").first
        assert not body.is_visible(), "solutions start folded"
        dropdown.locator(".toggle-button").click()
        body.wait_for(state="visible")
        assert "toggle-hidden" not in (dropdown.get_attribute("class") or "")


def test_answer_dropdowns_open(visit):
    dropdowns = visit.page.locator("details.sd-dropdown")
    if dropdowns.count() == 0:
        pytest.skip("no answer dropdowns on this page")
    for i in range(dropdowns.count()):
        dropdown = dropdowns.nth(i)
        assert not dropdown.evaluate("d => d.open"), "answers start folded"
        dropdown.locator("summary").click()
        assert dropdown.evaluate("d => d.open")
        assert dropdown.locator(".sd-card-body").is_visible()


def test_footer_states_the_licences(visit):
    footer = " ".join(visit.page.locator("footer").all_inner_texts())
    assert "MIT" in footer and "CC BY 4.0" in footer


def test_chapter_pages_have_colab_and_binder_buttons(visit):
    if not visit.page_name.startswith("notebooks/"):
        pytest.skip("front and back matter are not notebooks")
    notebook = f"{visit.page_name}.ipynb"
    hrefs = visit.page.eval_on_selector_all(
        ".dropdown-launch-buttons a", "els => els.map(a => a.href)"
    )
    colab = f"https://colab.research.google.com/github/{REPO}/blob/main/{notebook}"
    assert colab in hrefs
    binder = [h for h in hrefs if h.startswith(f"https://mybinder.org/v2/gh/{REPO}/main?")]
    assert (binder and quote(notebook, safe="") in binder[0]) or notebook in binder[0]


def test_widgets_render_without_a_kernel(visit):
    page = visit.page
    views = page.locator('script[type="application/vnd.jupyter.widget-view+json"]')
    if views.count() == 0:
        pytest.skip("no widgets on this page")
    rendered = page.evaluate(
        """() => [...document.querySelectorAll(
                'script[type="application/vnd.jupyter.widget-view+json"]')]
            .map(s => !!s.parentElement.querySelector('.jupyter-widgets'))"""
    )
    assert rendered and all(rendered), f"rendered views: {rendered}"


# The widest line of each box that scrolls sideways; a code cell must have none at 1280 px.
FIT_SCRIPT = """theme => {
    document.documentElement.dataset.theme = theme;
    document.documentElement.dataset.mode = theme;
    window.dispatchEvent(new Event("resize"));  // reading.js marks wide outputs again
    const longest = pre =>
        pre.innerText.split("\\n").reduce((a, b) => (b.length > a.length ? b : a));
    const wide = pre => pre.scrollWidth > pre.clientWidth + 1;
    const code = [...document.querySelectorAll("div.cell_input pre")].filter(wide).map(longest);
    const unmarked = [...document.querySelectorAll("div.cell_output pre")]
        .filter(wide)
        .filter(pre => {
            const box = pre.closest("div.output") || pre.parentElement;
            const label = getComputedStyle(box, "::after").content;
            return !box.classList.contains("scrolls-sideways") || !label.includes("scroll");
        })
        .map(longest);
    const page = document.documentElement.scrollWidth - window.innerWidth;
    return {code, unmarked, page, cells: document.querySelectorAll("div.cell_input pre").length};
}"""


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_code_and_outputs_fit_the_column(visit, theme):
    """At 1280 px no code cell scrolls sideways, and an output that does says so."""
    if not visit.page_name.startswith("notebooks/"):
        pytest.skip("only chapter pages have code cells")
    assert visit.page.viewport_size["width"] == 1280
    found = visit.page.evaluate(FIT_SCRIPT, theme)
    assert found["cells"] > 0, "no code cells found: has the theme's markup changed?"
    assert not found["code"], f"code cells that scroll sideways: {found['code']}"
    assert not found["unmarked"], f"wide outputs without a scroll note: {found['unmarked']}"
    assert found["page"] <= 0, f"the page itself scrolls sideways by {found['page']} px"


def test_the_landing_page_links_the_pdf_and_the_site_serves_it(visit, base_url):
    if visit.page_name != TOC["root"]:
        pytest.skip("the landing page links the PDF")
    links = visit.page.eval_on_selector_all(
        "article a[href$='paying-attention.pdf']", "els => els.map(e => e.href)"
    )
    assert links, "the landing page has no link to the PDF"
    # make pdf copies the book beside the site, as the publishing workflow does
    pdf = visit.page.request.get(base_url + "paying-attention.pdf")
    assert pdf.status == 200, "no paying-attention.pdf beside the site: run `make pdf`"
    assert pdf.body().startswith(b"%PDF")


def test_the_page_declares_a_favicon_that_loads(visit, base_url):
    """Without one, browsers ask for /favicon.ico, get a 404, and log a console error."""
    href = visit.page.eval_on_selector("link[rel~='icon']", "e => e.href")
    assert href.startswith(base_url), f"the favicon is not served by the site: {href}"
    assert visit.page.request.get(href).status == 200


# The chapter folders: each must hold an interactive figure (issue 19) and end with a quiz.
CHAPTERS = quiz.CHAPTERS


def test_every_chapter_has_an_interactive_figure(site_dir):
    found = {
        chapter: [
            page.stem
            for page in sorted((site_dir / "notebooks" / chapter).glob("*.html"))
            if 'class="pa-explorer"' in page.read_text(encoding="utf-8")
        ]
        for chapter in CHAPTERS
    }
    assert all(found.values()), f"chapters without an interactive figure: {found}"


def _figures(page):
    return page.locator("figure.pa-explorer")


def test_interactive_figures_answer_their_controls(visit):
    """Each control redraws the panels; hovering a row, token or patch says what it reads."""
    page = visit.page
    figures = _figures(page)
    if figures.count() == 0:
        pytest.skip("no interactive figure on this page")
    for f in range(figures.count()):
        figure = figures.nth(f)
        assert figure.locator(".pa-static").is_hidden(), "the script did not start"
        assert figure.locator(".pa-static").get_attribute("alt"), "the picture has no alt text"
        controls = figure.locator(".pa-controls select, .pa-controls input[type=range]")
        assert controls.count() > 0
        for c in range(controls.count()):
            control = controls.nth(c)
            before = figure.locator(".pa-panels").inner_html()
            if control.evaluate("e => e.tagName") == "SELECT":
                options = control.locator("option").count()
                current = int(control.input_value())
                control.select_option(str((current + 1) % options))
            else:
                control.focus()
                at_end = control.evaluate("e => +e.value === +e.max")
                page.keyboard.press("ArrowLeft" if at_end else "ArrowRight")
            after = figure.locator(".pa-panels").inner_html()
            assert after != before, f"figure {f}: control {c} did not change the drawing"
        hint = figure.locator(".pa-readout").inner_text()
        targets = figure.locator(".pa-panels [tabindex]")
        if targets.count():
            targets.nth(min(1, targets.count() - 1)).hover()
            assert figure.locator(".pa-readout").inner_text() != hint, "hovering said nothing"
    assert visit.errors == []


def test_interactive_figures_are_reached_with_the_keyboard(visit):
    page = visit.page
    if _figures(page).count() == 0:
        pytest.skip("no interactive figure on this page")
    page.locator("figure.pa-explorer").first.scroll_into_view_if_needed()
    page.evaluate("document.activeElement && document.activeElement.blur()")
    inside = "() => !!document.activeElement.closest('figure.pa-explorer .pa-controls')"
    page.locator("figure.pa-explorer").first.evaluate(
        "f => { const a = document.createElement('a'); a.href = '#'; a.id = 'pa-probe';"
        " f.before(a); a.focus(); }"
    )
    for _ in range(5):
        page.keyboard.press("Tab")
        if page.evaluate(inside):
            break
    assert page.evaluate(inside), "Tab does not reach the figure's controls"
    # a row, token or patch answers focus as it answers the mouse
    readout = page.locator("figure.pa-explorer .pa-readout").first
    hint = readout.inner_text()
    for _ in range(12):
        page.keyboard.press("Tab")
        if page.evaluate("() => !!document.activeElement.closest('.pa-panels')"):
            assert readout.inner_text() != hint
            break


def test_interactive_pages_stay_light(visit, base_url):
    """A page with interactive figures weighs under 3 MB with all it loads, compressed as a web
    server sends it (gzip), and says how much."""
    page = visit.page
    if _figures(page).count() == 0:
        pytest.skip("no interactive figure on this page")
    urls = page.evaluate(
        """() => [location.href].concat(
                performance.getEntriesByType('resource').map(e => e.name))"""
    )
    sizes = {
        url: len(gzip.compress(page.request.get(url).body(), 6))
        for url in dict.fromkeys(urls)
        if url.startswith(base_url)
    }
    weight = sum(sizes.values())
    own = sizes[urls[0]]
    print(f"\n{visit.page_name}: {weight / 2**20:.2f} MiB in all, the page {own / 2**10:.0f} KiB")
    assert weight < 3 * 2**20, f"{visit.page_name} loads {weight / 2**20:.2f} MiB (gzip)"


# The chapter quizzes (issue 20): each chapter's last page ends with one.
def test_every_chapter_ends_with_a_quiz(site_dir):
    last_pages = {
        part["chapters"][-1]["file"]
        for part in TOC["parts"]
        if part["chapters"][0]["file"].startswith("notebooks/")
    }
    assert len(last_pages) == len(CHAPTERS)
    for page in last_pages:
        assert 'class="pa-quiz"' in (site_dir / f"{page}.html").read_text(encoding="utf-8"), page


def test_a_quiz_explains_the_option_clicked(visit):
    """A click on a wrong option opens its explanation, saying why it is wrong; a click on
    the right one says why it is right. No kernel, no network."""
    page = visit.page
    quizzes = page.locator(".pa-quiz")
    if quizzes.count() == 0:
        pytest.skip("no quiz on this page")
    questions = quizzes.first.locator(".pa-question")
    assert questions.count() >= 5
    for q in range(questions.count()):
        question = questions.nth(q)
        wrong = question.locator("details.pa-wrong").first
        right = question.locator("details.pa-right")
        assert right.count() == 1
        assert not wrong.locator(".pa-why").is_visible(), "explanations start hidden"
        wrong.locator("summary").click()
        why = wrong.locator(".pa-why")
        why.wait_for(state="visible")
        assert why.inner_text().startswith("Not quite.") and len(why.inner_text()) > 20
        assert "pa-chosen" in (wrong.get_attribute("class") or ""), "the script did not run"
        assert not right.locator(".pa-why").is_visible()
        right.locator("summary").click()
        assert right.locator(".pa-why").inner_text().startswith("Right.")
    assert not visit.errors, visit.errors
