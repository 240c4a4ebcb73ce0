"""Reports: HTML that a task builds while it runs, written to `report.html` in its action's metadata directory
(`<run_base_dir>/<action>/report.html`), as Flyte's `flyte.report`.

`log`, `replace` and `flush` are callable plainly or awaited through `.aio`; outside a task they do nothing (and
`current_report()` is a throwaway report). A task declared with `@env.task(report=True)` is flushed when it ends.
"""

from __future__ import annotations

import html
import threading
from dataclasses import dataclass, field
from typing import Final

from flyte_celery._context import current_frame
from flyte_celery._syncify import syncify

MAIN_TAB: Final = "main"
REPORT_FILE: Final = "report.html"
_PAGE: Final = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>body{{font-family:sans-serif;margin:1em}} nav span{{margin-right:1em;cursor:pointer;font-weight:bold}}
section{{display:none}} section.shown{{display:block}}</style></head>
<body><nav>{nav}</nav>{sections}
<script>function show(i){{document.querySelectorAll('section').forEach((s,j)=>s.classList.toggle('shown',i===j))}}
show(0)</script></body></html>
"""


@dataclass
class Tab:
    """A tab of a report: HTML fragments shown one after the other."""

    name: str
    content: list[str] = field(default_factory=list, init=False)

    def log(self, content: str) -> None:
        """Append an HTML fragment (not a whole document: it goes inside a div)."""
        self.content.append(content)

    def replace(self, content: str) -> None:
        """Replace the tab's content with one HTML fragment."""
        self.content = [content]

    def get_html(self) -> str:
        return "\n".join(self.content)


@dataclass
class Report:
    """An action's report: its tabs, the first of which is "main"."""

    name: str
    tabs: dict[str, Tab] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tabs.setdefault(MAIN_TAB, Tab(MAIN_TAB))

    def has_content(self) -> bool:
        return any(tab.content for tab in self.tabs.values())

    def get_tab(self, name: str, create_if_missing: bool = True) -> Tab:
        """The tab named `name`, created if missing (or `ValueError` when `create_if_missing` is False)."""
        if name not in self.tabs:
            if not create_if_missing:
                raise ValueError(f"the report has no tab {name!r}")
            self.tabs[name] = Tab(name)
        return self.tabs[name]

    def get_final_report(self) -> str:
        """The whole report as one HTML page (fragments are the task's own HTML, inserted as they are)."""
        nav = "".join(f'<span onclick="show({i})">{html.escape(name)}</span>' for i, name in enumerate(self.tabs))
        sections = "".join(f"<section><div>{tab.get_html()}</div></section>" for tab in self.tabs.values())
        return _PAGE.format(title=html.escape(self.name), nav=nav, sections=sections)


_reports: dict[str, Report] = {}
_lock = threading.Lock()


def current_report() -> Report:
    """The report of the task running now (a throwaway one outside a task)."""
    frame = current_frame()
    if frame is None:
        return Report("not in a task")
    action = frame.task.task_action or frame.task.action
    with _lock:
        report = _reports.get(action.key)
        if report is None:
            report = _reports[action.key] = Report(action.name)
        return report


def get_tab(name: str, /, create_if_missing: bool = True) -> Tab:
    """The tab `name` of the current report."""
    return current_report().get_tab(name, create_if_missing=create_if_missing)


@syncify
async def log(content: str, do_flush: bool = False) -> None:
    """Append an HTML fragment to the main tab; with `do_flush`, write the report out."""
    get_tab(MAIN_TAB).log(content)
    if do_flush:
        await flush.aio()


@syncify
async def replace(content: str, do_flush: bool = False) -> None:
    """Replace the main tab's content; with `do_flush`, write the report out."""
    get_tab(MAIN_TAB).replace(content)
    if do_flush:
        await flush.aio()


@syncify
async def flush() -> None:
    """Write the current report to `<output_path>/report.html` (nothing happens outside a task)."""
    frame = current_frame()
    if frame is None or not frame.task.output_path:
        return
    from flyte_celery._storage import join, put_bytes

    page = current_report().get_final_report().encode("utf-8")
    await put_bytes(join(frame.task.output_path, REPORT_FILE), page)


async def finish(action_key: str, output_path: str, write: bool) -> None:
    """The action `action_key` ended: write its report if `write` (a `report=True` task) and it has content, and
    forget it."""
    with _lock:
        report = _reports.pop(action_key, None)
    if write and report is not None and report.has_content() and output_path:
        from flyte_celery._storage import join, put_bytes

        await put_bytes(join(output_path, REPORT_FILE), report.get_final_report().encode("utf-8"))


__all__ = ["Report", "Tab", "current_report", "flush", "get_tab", "log", "replace"]
