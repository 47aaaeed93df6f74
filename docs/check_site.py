"""Check the built site as a reader sees it: in headless Chromium, with the network blocked.

    python docs/check_site.py BUILD_DIR SCREENSHOT_DIR [--chromium PATH]

BUILD_DIR is the output of ``sphinx-build -b html docs BUILD_DIR``. For every page it checks,
from the page itself once it has loaded:

* math is typeset: each ``.math`` element Sphinx wrote holds MathJax's output (``mjx-container``),
  and no ``$$`` is left in the text outside code;
* every ``<img>`` loaded (``naturalWidth > 0``);
* every link of the navigation (header, sidebars, previous/next) and every other link inside the
  site points to a file that exists;
* nothing was requested from outside the site (every request that is not a ``file:`` URL is
  refused and reported; Chromium's resolver is also told that no host exists).

It also reads the HTML and CSS files for ``http`` in ``<script src>``, ``<link href>``,
``@import`` and ``url(...)``. It writes full-page screenshots of the index, of a notebook page with
math and a figure, and of an API page to SCREENSHOT_DIR, and exits with status 1, listing the
failures, if any check fails.

Playwright drives the system's Chromium (``apt-get install chromium`` on Debian; Playwright's
own browser download is not needed): ``--chromium`` or ``$CHROMIUM`` gives its path, otherwise
``chromium`` or ``chromium-browser`` on the PATH.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

# In the HTML: a script or a stylesheet loaded from a server; in CSS: @import or url() of one.
EXTERNAL_HTML = re.compile(r"""<(?:script[^>]*\ssrc|link[^>]*\shref)\s*=\s*["'](?:https?:)?//""", re.I)
EXTERNAL_CSS = re.compile(r"""(?:@import\s+(?:url\()?|url\()\s*["']?(?:https?:)?//""", re.I)

# What one page reports, computed in the page once MathJax has finished.
PAGE_REPORT_JS = """
async () => {
  // images below the fold may be lazy: load them all, then wait for each
  const imgs = Array.from(document.images);
  imgs.forEach(img => { img.loading = "eager"; });
  await Promise.all(imgs.map(img => img.complete ? null :
      new Promise(done => { img.onload = img.onerror = done; setTimeout(done, 10000); })));
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  const math = Array.from(document.querySelectorAll(".math"));
  const untypeset = math.filter(el => !el.querySelector("mjx-container")).map(el => el.textContent.slice(0, 60));
  // text outside code: a $$ there is math that was not recognised as math
  const clone = document.querySelector("main, body").cloneNode(true);
  clone.querySelectorAll("pre, code, script, style, .highlight").forEach(el => el.remove());
  const text = clone.textContent;
  const navSelector = "header a[href], nav a[href], .bd-sidebar-primary a[href], .prev-next-area a[href]";
  return {
    title: document.title,
    math: math.length,
    typeset: document.querySelectorAll("mjx-container").length,
    untypeset: untypeset,
    rawDollars: (text.match(/\\$\\$/g) || []).length,
    images: imgs.map(img => ({src: img.getAttribute("src"), width: img.naturalWidth})),
    nav: Array.from(document.querySelectorAll(navSelector)).map(a => a.getAttribute("href")),
    links: Array.from(document.querySelectorAll("a[href]")).map(a => a.getAttribute("href")),
  };
}
"""


def find_chromium(given: str | None) -> str | None:
    """The Chromium executable: ``given``, ``$CHROMIUM``, or the first of the usual names on the PATH."""
    for candidate in (given, os.environ.get("CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if candidate and (path := shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)):
            return path
    return None


def static_external_references(build: Path) -> list[str]:
    """``file: what`` for every reference to an outside server in the built HTML and CSS."""
    found = []
    for path in sorted(build.rglob("*")):
        if path.suffix not in (".html", ".css") or not path.is_file():
            continue
        pattern = EXTERNAL_HTML if path.suffix == ".html" else EXTERNAL_CSS
        for m in pattern.finditer(path.read_text(encoding="utf-8", errors="replace")):
            found.append(f"{path.relative_to(build)}: {m.group(0)[:80]}")
    return found


def local_target(page: Path, href: str, build: Path) -> Path | None:
    """The file a relative link of ``page`` points to, or None for a link outside the site."""
    url = urlparse(href)
    if url.scheme in ("http", "https", "mailto", "javascript", "data") or href.startswith("//"):
        return None
    if not url.path:  # "#anchor": the page itself
        return page
    if url.scheme == "file":
        return Path(unquote(url.path))
    target = (page.parent / unquote(url.path)).resolve()
    return target / "index.html" if target.is_dir() else target


def pick_pages(build: Path) -> dict[str, Path]:
    """The three pages to photograph: the index, a notebook with math and a figure, an API page."""
    pages = {"index": build / "index.html"}
    notebooks = sorted((build / "notebooks").glob("*.html"))
    with_both = [p for p in notebooks
                 if 'class="math' in (t := p.read_text(encoding="utf-8")) and "<img" in t]
    if with_both or notebooks:
        pages["notebook"] = (with_both or notebooks)[0]
    api = build / "api" / "generated" / "minibn.functional.batchnorm.html"
    pages["api"] = api if api.exists() else next(iter(sorted((build / "api").rglob("*.html"))), build / "api")
    return pages


def check(build: Path, shots: Path, chromium: str) -> list[str]:
    from playwright.sync_api import sync_playwright

    failures = [f"outside reference in {r}" for r in static_external_references(build)]
    pages = sorted(p for p in build.rglob("*.html") if "_modules" not in p.parts and "_static" not in p.parts)
    photograph = {path: name for name, path in pick_pages(build).items()}
    missing = [name for name, path in pick_pages(build).items() if not path.is_file()]
    failures += [f"no {name} page to photograph" for name in missing]
    shots.mkdir(parents=True, exist_ok=True)
    outside_requests: list[str] = []
    totals = {"pages": 0, "math": 0, "images": 0, "links": 0}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=[
            "--host-resolver-rules=MAP * ~NOTFOUND",  # no host name resolves: the network is off
            "--allow-file-access-from-files",
        ])
        context = browser.new_context(viewport={"width": 1280, "height": 900}, offline=True)

        def refuse_outside(route):
            if route.request.url.startswith(("file:", "data:", "about:", "blob:")):
                route.continue_()
            else:
                outside_requests.append(route.request.url)
                route.abort()

        context.route("**/*", refuse_outside)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        for path in pages:
            name = path.relative_to(build)
            errors.clear()
            page.goto(path.as_uri(), wait_until="load")
            report = page.evaluate(PAGE_REPORT_JS)
            totals["pages"] += 1
            totals["math"] += report["math"]
            totals["images"] += len(report["images"])
            if report["untypeset"]:
                failures.append(f"{name}: {len(report['untypeset'])} of {report['math']} math elements "
                                f"not typeset, first: {report['untypeset'][0]!r}")
            if report["rawDollars"]:
                failures.append(f"{name}: {report['rawDollars']} raw $$ in the text")
            for img in report["images"]:
                if not img["width"]:
                    failures.append(f"{name}: image {img['src']} did not load")
            for kind, hrefs in (("navigation link", report["nav"]), ("link", report["links"])):
                for href in hrefs:
                    target = local_target(path, href, build)
                    totals["links"] += target is not None
                    if target is not None and not target.is_file():
                        failures.append(f"{name}: {kind} {href} points to no file")
            failures += [f"{name}: script error {e}" for e in errors]
            if path in photograph:
                out = shots / f"{photograph[path]}.png"
                page.screenshot(path=str(out), full_page=True)
                print(f"screenshot of {name} ({report['math']} math elements, "
                      f"{len(report['images'])} images): {out}")
        browser.close()
    failures += [f"request to outside the site: {url}" for url in sorted(set(outside_requests))]
    print(f"checked {totals['pages']} pages: {totals['math']} math elements, {totals['images']} images, "
          f"{totals['links']} links inside the site")
    return sorted(set(failures), key=failures.index)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("build", type=Path, help="the folder sphinx-build wrote (holds index.html)")
    parser.add_argument("screenshots", type=Path, help="the folder to write the screenshots to")
    parser.add_argument("--chromium", help="the Chromium executable (default: $CHROMIUM, or chromium on the PATH)")
    args = parser.parse_args(argv)
    if not (args.build / "index.html").is_file():
        parser.error(f"build: expected a built site with an index.html, got {args.build}")
    chromium = find_chromium(args.chromium)
    if chromium is None:
        parser.error("--chromium: no Chromium found (apt-get install chromium, or give its path)")
    failures = check(args.build.resolve(), args.screenshots, chromium)
    for f in failures:
        print(f"FAIL {f}")
    print("site check: " + ("passed" if not failures else f"{len(failures)} failures"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
