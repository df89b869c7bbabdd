#!/usr/bin/env python3
"""Check that the documentation site renders in a real browser: title, navigation, images.

    python scripts/check_docs_render.py                      # builds the site into a temporary folder first
    python scripts/check_docs_render.py --site site          # an already built site (mkdocs build -d site)
    python scripts/check_docs_render.py --shots /tmp/docs_shots --page guides/phone/

The site is served with ``python -m http.server`` on a free local port, in a subprocess. Headless
Chromium (``chromium --headless=new --no-sandbox``) loads the start page and one guide: their DOM
after the scripts ran (``--dump-dom``) and a 1280×900 screenshot (``--screenshot``) each. Checked on
every page: the ``<title>`` (the site name; on a guide, its heading too), Material's primary
navigation (``nav.md-nav--primary`` with links to every guide), and every ``<img>``,
stylesheet and script: each ``src`` / ``href`` is fetched over HTTP and must answer 200. It prints
what it checked and exits 1 on any problem (2 when Chromium or mkdocs is missing).
"""

import argparse
import html.parser
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SITE_NAME = "keras_seg"
BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
GUIDES = ("guides/own-data/", "guides/losses/", "guides/phone/", "guides/multi-gpu/", "guides/from-pytorch/",
          "guides/presets/")  # fmt: skip


class Page(html.parser.HTMLParser):
    """What the checks need from a DOM: title, first h1, primary nav links, images, stylesheets, scripts."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.title, self.h1, self.nav_links = "", "", []
        self.images, self.stylesheets, self.scripts = [], [], []
        self.has_primary_nav = False
        self._in, self._nav_depth = None, 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        if tag == "title":
            self._in = "title"
        elif tag == "h1" and not self.h1:
            self._in = "h1"
        elif tag == "nav":
            if "md-nav--primary" in classes:
                self.has_primary_nav = True
                self._nav_depth = 1
            elif self._nav_depth:
                self._nav_depth += 1
        elif tag == "a" and self._nav_depth and attrs.get("href"):
            self.nav_links.append(attrs["href"])
        elif tag == "img":
            self.images.append(attrs.get("src") or "")
        elif tag == "link" and "stylesheet" in (attrs.get("rel") or "").split() and attrs.get("href"):
            self.stylesheets.append(attrs["href"])
        elif tag == "script" and attrs.get("src"):
            self.scripts.append(attrs["src"])

    def handle_endtag(self, tag):
        if tag in ("title", "h1"):
            self._in = None
        elif tag == "nav" and self._nav_depth:
            self._nav_depth -= 1

    def handle_data(self, data):
        if self._in == "title":
            self.title += data
        elif self._in == "h1":
            self.h1 += data


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(url, timeout=10):
    """HTTP status of ``url`` (a ``data:`` URI counts as 200; a failure as its error text)."""
    if url.startswith("data:"):
        return 200
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError) as error:
        return f"{type(error).__name__}: {error}"


def browser(name=None):
    for candidate in ([name] if name else BROWSERS):
        path = shutil.which(candidate)
        if path:
            return path
    return None


def chromium(exe, *args, timeout=90):
    command = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
               "--hide-scrollbars", *args]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def build_site(directory):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", directory], cwd=ROOT,
                          capture_output=True, text=True, env=dict(os.environ, NO_MKDOCS_2_WARNING="1"))  # fmt: skip
    if done.returncode != 0:
        print(done.stdout[-3000:] + done.stderr[-3000:], file=sys.stderr)
        sys.exit(f"mkdocs build --strict failed (exit {done.returncode})")


def check_page(exe, base, path, shots, problems):
    url = urllib.parse.urljoin(base, path)
    print(f"\n{url}")
    dom = chromium(exe, "--virtual-time-budget=5000", "--dump-dom", url)
    if dom.returncode != 0 or "<html" not in dom.stdout:
        problems.append(f"{url}: chromium --dump-dom failed (exit {dom.returncode}): {dom.stderr.strip()[-300:]}")
        return
    page = Page()
    page.feed(dom.stdout)
    title = " ".join(page.title.split())
    heading = " ".join(page.h1.replace("¶", "").split())
    ok = SITE_NAME in title and (path == "" or heading in title)
    print(f"  title       {title!r} (heading {heading!r}) {'ok' if ok else 'WRONG'}")
    if not ok:
        problems.append(f"{url}: title {title!r} does not name the site {SITE_NAME!r}" +
                        ("" if path == "" else f" and the page heading {heading!r}"))  # fmt: skip
    linked = {urllib.parse.urljoin(url, href).split("#")[0] for href in page.nav_links}
    missing = [g for g in GUIDES if urllib.parse.urljoin(base, g) not in linked]
    nav_ok = page.has_primary_nav and not missing
    print(f"  navigation  nav.md-nav--primary {'found' if page.has_primary_nav else 'MISSING'}, "
          f"{len(page.nav_links)} links, every guide linked: {'yes' if not missing else 'NO ' + str(missing)}")  # fmt: skip
    if not nav_ok:
        problems.append(f"{url}: Material's primary navigation is missing or lacks {missing}")
    for kind, sources in (("img", page.images), ("stylesheet", page.stylesheets), ("script", page.scripts)):
        for src in sources:
            target = urllib.parse.urljoin(url, src) if src else ""
            status = fetch(target) if target else "no src"
            print(f"  {kind:<11} {src[:70]:<70} {status}")
            if status != 200:
                problems.append(f"{url}: {kind} {src!r} -> {status}")
    if not page.images:
        print("  img         (none on this page)")
    shot = os.path.join(shots, (path.strip("/").replace("/", "_") or "index") + ".png")
    done = chromium(exe, "--virtual-time-budget=5000", f"--screenshot={shot}", "--window-size=1280,900", url)
    size = os.path.getsize(shot) if os.path.exists(shot) else 0
    with open(shot, "rb") if size else open(os.devnull, "rb") as f:
        png = f.read(8) == b"\x89PNG\r\n\x1a\n"
    print(f"  screenshot  {shot} ({size:,} bytes{', PNG' if png else ''})")
    if done.returncode != 0 or not png:
        problems.append(f"{url}: no screenshot (exit {done.returncode}): {done.stderr.strip()[-300:]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", help="a built site folder (default: build one with mkdocs into a temporary folder)")
    parser.add_argument("--shots", default="/tmp/docs_shots", help="where the screenshots go (/tmp/docs_shots)")
    parser.add_argument("--page", default="guides/own-data/", help="the guide to check beside the start page")
    parser.add_argument("--browser", help="the Chromium executable (default: chromium, chromium-browser, google-chrome)")
    args = parser.parse_args(argv)

    exe = browser(args.browser)
    if exe is None:
        print("Chromium is not installed (apt-get install -y chromium); nothing was checked.", file=sys.stderr)
        return 2
    scratch = None
    site = args.site
    if site is None:
        if subprocess.run([sys.executable, "-c", "import mkdocs"], capture_output=True).returncode != 0:
            print('mkdocs is not installed (pip install -e ".[docs]"); pass --site DIR.', file=sys.stderr)
            return 2
        scratch = tempfile.mkdtemp(prefix="keras_seg_site_")
        site = os.path.join(scratch, "site")
        start = time.perf_counter()
        build_site(site)
        print(f"built the site into {site} in {time.perf_counter() - start:.1f} s")
    if not os.path.isfile(os.path.join(site, "index.html")):
        print(f"{site} holds no index.html: not a built site.", file=sys.stderr)
        return 2
    os.makedirs(args.shots, exist_ok=True)
    port = free_port()
    base = f"http://127.0.0.1:{port}/"
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "--directory", site],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    problems = []
    try:
        for _ in range(100):
            if fetch(base, timeout=1) == 200:
                break
            time.sleep(0.1)
        else:
            print(f"the HTTP server on port {port} did not answer", file=sys.stderr)
            return 1
        print(f"serving {site} at {base} (python -m http.server, pid {server.pid}); browser {exe}")
        for path in ("", args.page):
            check_page(exe, base, path, args.shots, problems)
    finally:
        server.terminate()
        server.wait(timeout=10)
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    if problems:
        print(f"\n{len(problems)} problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 1
    print("\nall checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
