"""Printing the report: its HTML template and CSS, and nbconvert's webpdf through Debian's
Chromium with a local MathJax, offline (any request that is not a local file is refused).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import os
import tempfile
from pathlib import Path

from handin import ReportError

#: Chromium: $FLOWS_CHROMIUM, else the first of these that exists (Debian's package).
CHROMIUM_CANDIDATES = ["/usr/bin/chromium", "/usr/bin/chromium-browser",
                       "/usr/bin/google-chrome"]
#: MathJax 2.7: $FLOWS_MATHJAX, else Debian's libjs-mathjax.
MATHJAX_JS = Path("/usr/share/javascript/mathjax/MathJax.js")
MATHJAX_CONFIG = "?config=TeX-AMS_CHTML-full,Safe"

CSS = """
@page { size: A4; margin: 12mm 13mm 13mm 13mm; }
:root {
  --jp-content-font-size1: 9.5pt; --jp-content-font-size2: 11pt;
  --jp-content-font-size3: 12.5pt; --jp-content-font-size4: 15pt;
  --jp-content-font-size5: 18pt; --jp-code-font-size: 7.4pt;
  --jp-content-line-height: 1.35; --jp-code-line-height: 1.22; --jp-cell-padding: 0;
  --jp-content-heading-margin-top: 0.6em; --jp-content-heading-margin-bottom: 0.25em;
}
body, main, .jp-Notebook { padding: 0 !important; margin: 0 !important; }
.jp-Cell { padding: 0 !important; margin: 0 !important; }
.jp-InputPrompt, .jp-OutputPrompt, .jp-Collapser { display: none !important; }
.jp-RenderedHTMLCommon { padding-left: 0 !important; padding-right: 0 !important; }
.jp-RenderedHTMLCommon p, .jp-RenderedHTMLCommon ul { margin: 0 0 0.35em 0; }
.jp-RenderedHTMLCommon h1 { margin-top: 0; border-bottom: 1px solid #888; }
.jp-RenderedHTMLCommon h1, .jp-RenderedHTMLCommon h2, .jp-RenderedHTMLCommon h3 {
  break-after: avoid; page-break-after: avoid; }
.jp-RenderedHTMLCommon h2 { margin-top: 0.55em; color: #123c69; }
.jp-OutputArea-output pre, .jp-RenderedText pre {
  white-space: pre-wrap; word-break: normal; overflow-wrap: break-word;
  overflow: hidden; margin: 0.15em 0 0.3em 0;
  font-size: var(--jp-code-font-size); line-height: var(--jp-code-line-height); }
.jp-OutputArea-output { padding: 0 !important; }
.jp-RenderedImage { text-align: center; }
.jp-RenderedImage img { max-width: 100%; max-height: 13.5cm; height: auto; margin: 0.2em auto; }
.jp-OutputArea-child, .jp-RenderedImage, pre { break-inside: avoid; page-break-inside: avoid; }
/* a heading stays with what follows it (the next cell: a figure, a table) */
.jp-MarkdownCell:has(h1, h2, h3) { break-after: avoid; page-break-after: avoid; }
.report-title { text-align: center; }
.report-title h1 { border: none !important; font-size: 22pt; margin-bottom: 0.2em; }
.report-title .sub { font-size: 12pt; color: #333; margin: 0.2em 0 1.4em 0;
  text-align: center !important; }
.report-title table { margin: 0 auto 1.4em auto; font-size: 11pt; border: none; }
.report-title td { text-align: left !important; padding: 2px 10px !important; border: none; }
.report-title td:first-child { color: #555; }
.report-contents { max-width: 15cm; margin: 0 auto; text-align: left; font-size: 9.5pt; }
.report-contents li { margin-bottom: 0.25em; }
.report-note { font-size: 8.5pt; color: #444; }
"""


#: Page layouts, tried in turn until the report fits in MAX_PAGES: a title page, then the
#: sections running on one after another (a page break only where a figure or table would
#: not fit: no half-empty pages between sections); then the title as a header on the first
#: page.
LAYOUTS = {
    "title page": ".report-title { margin-top: 3cm; }\n.celltag_report-after-title "
                  "{ break-before: page; page-break-before: always; }",
    "compact": ".report-title { margin-top: 0; }",
}


TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{#- no require.js (it would come from a CDN): nothing in the report needs it -#}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_css -%}<style type="text/css">{{ resources.report_css }}</style>
{%- endblock html_head_css -%}
"""


def find_chromium() -> str:
    configured = os.environ.get("FLOWS_CHROMIUM")
    if configured:
        if not Path(configured).is_file():
            raise ReportError(f"FLOWS_CHROMIUM={configured} does not exist")
        return configured
    for candidate in CHROMIUM_CANDIDATES:
        if Path(candidate).is_file():
            return candidate
    raise ReportError("no Chromium found (looked for " + ", ".join(CHROMIUM_CANDIDATES)
                      + "): run `sudo tools/setup_system.sh` (Debian: apt-get install "
                      "chromium), or set FLOWS_CHROMIUM to a Chromium executable")


def mathjax_url() -> str:
    """The local MathJax 2.7: $FLOWS_MATHJAX (a MathJax.js), else Debian's libjs-mathjax."""
    path = Path(os.environ.get("FLOWS_MATHJAX") or MATHJAX_JS)
    if not path.is_file():
        raise ReportError(f"{path} is missing: the report renders math with a local "
                          "MathJax; run `sudo tools/setup_system.sh` (Debian: apt-get install "
                          "libjs-mathjax), or set FLOWS_MATHJAX to a MathJax 2.7 MathJax.js")
    return path.resolve().as_uri() + MATHJAX_CONFIG



FOOTER = ('<div style="font-size:7pt;color:#666;width:100%;text-align:center;'
          'font-family:sans-serif;"><span class="pageNumber"></span> / '
          '<span class="totalPages"></span></div>')


# After MathJax has typeset the page: did it load, and how many formulas failed?
MATHJAX_DONE = """async () => {
  if (!window.MathJax || !window.MathJax.Hub) { return {loaded: false}; }
  await new Promise(resolve => MathJax.Hub.Queue(resolve));
  await document.fonts.ready;
  return {loaded: true,
          rendered: document.querySelectorAll('.mjx-chtml, .MathJax_CHTML').length,
          errors: document.querySelectorAll('.mjx-merror, .MathJax_Error, merror').length};
}"""



# A printed table a little wider than the page is set in a smaller font until it fits (down
# to 7 pt); a longer line (a sentence) is wrapped at the usual size instead. The viewport has
# the printed width, so widths measured here are the printed ones.
FIT_TABLES = """() => {
  for (const pre of document.querySelectorAll('.jp-OutputArea-output pre')) {
    pre.style.whiteSpace = 'pre';
    const normal = parseFloat(getComputedStyle(pre).fontSize);
    let size = normal;
    while (pre.scrollWidth > pre.clientWidth + 1 && size > 9.34) {
      size -= 0.2;
      pre.style.fontSize = size + 'px';
    }
    if (pre.scrollWidth > pre.clientWidth + 1) {
      pre.style.fontSize = normal + 'px';
      pre.style.whiteSpace = 'pre-wrap';
    }
  }
}"""

#: The printed width of an A4 page less the margins of CSS's @page, in CSS pixels.
PRINT_WIDTH_PX = round((210 - 26) / 25.4 * 96)



def _chromium_pdf_exporter():
    from nbconvert.exporters import WebPDFExporter
    from traitlets import Unicode

    class ChromiumPDFExporter(WebPDFExporter):
        """nbconvert's webpdf through a given Chromium (nbconvert 7.17 has no option for
        the executable), offline: any request that is not a local file is refused."""

        executable_path = Unicode("/usr/bin/chromium").tag(config=True)

        def run_playwright(self, html_text):
            self.html = html_text
            self.math = {}
            self.blocked = []

            async def main(path):
                from playwright.async_api import async_playwright

                async with async_playwright() as playwright:
                    # --no-sandbox: Chromium's sandbox fails as root and in most containers;
                    # the page is our own notebook and the network is closed to it.
                    browser = await playwright.chromium.launch(
                        executable_path=self.executable_path, args=["--no-sandbox"],
                        handle_sigint=False, handle_sigterm=False, handle_sighup=False)
                    try:
                        page = await browser.new_page(
                            viewport={"width": PRINT_WIDTH_PX, "height": 1000})

                        async def offline(route):
                            url = route.request.url
                            if url.startswith(("file:", "data:")):
                                await route.continue_()
                            else:
                                self.blocked.append(url)
                                await route.abort()

                        await page.route("**/*", offline)
                        await page.emulate_media(media="print")
                        await page.goto(path.as_uri(), wait_until="load")
                        self.math = await page.evaluate(MATHJAX_DONE)
                        await page.evaluate(FIT_TABLES)
                        await page.wait_for_timeout(self.page_render_timeout)
                        return await page.pdf(
                            print_background=True, prefer_css_page_size=True,
                            display_header_footer=True, header_template="<span></span>",
                            footer_template=FOOTER)
                    finally:
                        await browser.close()

            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "report.html"
                path.write_text(html_text, encoding="utf-8")
                with concurrent.futures.ThreadPoolExecutor(1) as pool:  # own event loop
                    return pool.submit(asyncio.run, main(path)).result()

    return ChromiumPDFExporter


def render(nb, chromium: str, css: str = CSS) -> tuple[str, bytes, dict]:
    """``(html, pdf, mathjax status)`` of the merged notebook, styled by ``css``."""
    from jinja2 import DictLoader

    exporter = _chromium_pdf_exporter()(
        executable_path=chromium, exclude_input=True, exclude_input_prompt=True,
        exclude_output_prompt=True, mathjax_url=mathjax_url(), page_render_timeout=200,
        extra_loaders=[DictLoader({"report.html.j2": TEMPLATE})],
        template_file="report.html.j2")
    try:
        pdf, _ = exporter.from_notebook_node(nb, resources={"report_css": css})
    except Exception as error:  # playwright's errors are many lines: keep the first
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise ReportError(f"Chromium ({chromium}) could not print the report: "
                          f"{type(error).__name__}: {first}") from None
    return exporter.html, pdf, {**exporter.math, "blocked": exporter.blocked}


def page_count(pdf: bytes) -> int:
    from pypdf import PdfReader

    return len(PdfReader(io.BytesIO(pdf)).pages)

